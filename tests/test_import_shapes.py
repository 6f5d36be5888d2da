"""Every record shape the tools really write, built from a full log, through ``llm import`` and the intervals.

The builders below follow each tool's own serialisation (the source functions named in
each docstring) and cut the records from a full log (:func:`chansim.logs.write_log`), so
the full distributions are the independent reference: for top-n = 1, 5, 20 every
interval must contain the full-log value and every floor must bound every unlisted token.
Broken variants (the floor taken as the smallest listed value; token strings merged) must
be caught.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs import importers
from chansim.logs.format import read_log, write_log
from chansim.logs.predict import predict_from_log
from chansim.logs.truncated import acceptance_bounds, predict_interval, read_truncated_log

V, PROMPT = 40, [1, 2]


def _lsm(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


CORPUS = Path(__file__).resolve().parent / "data" / "records"
CORPUS_N = 3


def _full_log(path):
    """The synthetic full log every record is cut from: 3 sequences x 6 positions, V = 40, seed 21."""
    rng = np.random.default_rng(21)
    tl, dl, toks = [], [], []
    for _ in range(3):
        zt = rng.normal(size=(6, V)) * 2.0
        t, d = _lsm(zt), _lsm(zt + rng.normal(size=zt.shape) * 1.2)
        toks.append(np.array([rng.choice(V, p=np.exp(r) / np.exp(r).sum()) for r in t]))
        tl.append(t)
        dl.append(d)
    return write_log(path, prompts=[PROMPT] * 3, tokens=toks, target_log_probs=tl, draft_log_probs=dl,
                     metadata={"temperature": 1.0, "created": "2026-01-01T00:00:00+00:00"})


def _rows(run):
    return [(np.log(p), np.log(q), y) for p, q, y in run.sequences()]      # the reader's float64 rows


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The full log (:func:`_full_log`) and its rows as float64 log-probs."""
    run = read_log(_full_log(tmp_path_factory.mktemp("full") / "full.npz"))
    return run, _rows(run)


def _name(i):
    return f"tok{i}"


def _top(lp, n):
    return [int(i) for i in np.argsort(-lp, kind="stable")[:n]]


def _vllm_dict(lp, y, n):
    """vLLM v1 ``_make_logprob_dict`` over ``gather_logprobs``' ids: the sampled id first, then the top-n by rank."""
    d = {int(y): float(lp[y])}
    for i in _top(lp, n):
        d.setdefault(i, float(lp[i]))
    return list(d.items())


def _rank(lp, i):
    return int((lp > lp[i]).sum()) + 1


# ----------------------------------------------------------------------------- target shapes (one response each)
def vllm_chat(rows, n, ids=True):
    """vLLM ``serving_chat._create_chat_logprobs``: the first n items of the dict (``token_id:N`` with
    ``--return-tokens-as-token-ids``, else the decoded string)."""
    key = (lambda i: f"token_id:{i}") if ids else _name
    content = [{"token": key(y), "logprob": float(lp[y]), "bytes": None,
                "top_logprobs": [{"token": key(k), "logprob": v, "bytes": None} for k, v in _vllm_dict(lp, y, n)[:n]]}
               for lp, y in rows]
    return {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "logprobs": {"content": content}}]}


def vllm_completions(rows, n, ids=True):
    """vLLM ``serving_completion._create_completion_logprobs``: all n+1 items of the dict, as ``{token: logprob}``."""
    key = (lambda i: f"token_id:{i}") if ids else _name
    return {"choices": [{"index": 0, "logprobs": {
        "tokens": [key(y) for _, y in rows], "token_logprobs": [float(lp[y]) for lp, y in rows],
        "top_logprobs": [{key(k): v for k, v in _vllm_dict(lp, y, n)} for lp, y in rows],
        "text_offset": list(range(len(rows)))}}]}


def _logprob_obj(lp, y, n):
    return {str(k): {"logprob": v, "rank": _rank(lp, k), "decoded_token": _name(k)} for k, v in _vllm_dict(lp, y, n)}


def vllm_request_output(rows, n):
    """An offline ``RequestOutput`` as JSON: ``outputs[0].logprobs`` = dicts id -> ``Logprob(logprob, rank, decoded_token)``."""
    return {"request_id": "0", "prompt_token_ids": PROMPT, "prompt_logprobs": None,
            "outputs": [{"index": 0, "text": "", "token_ids": [int(y) for _, y in rows],
                         "logprobs": [_logprob_obj(lp, y, n) for lp, y in rows], "finish_reason": "length"}]}


def llamacpp_completion(rows, n, post=False, oai=False):
    """llama.cpp ``completion_token_output::to_json`` / ``probs_vector_to_json``: the produced token and the top
    ``n_probs`` (``logprob``/``top_logprobs``; ``prob``/``top_probs`` with ``post_sampling_probs``)."""
    val, top = ("prob", "top_probs") if post else ("logprob", "top_logprobs")

    def v(x):
        return float(np.exp(x)) if post else float(x)

    ents = [{"id": int(y), "token": _name(y), "bytes": [], val: v(lp[y]),
             top: [{"id": k, "token": _name(k), "bytes": [], val: v(lp[k])} for k in _top(lp, n)]} for lp, y in rows]
    if oai:                                            # the OpenAI-compatible endpoint wraps the same entries
        return {"choices": [{"index": 0, "logprobs": {"content": ents}}]}
    return {"content": "", "completion_probabilities": ents}


def llamacpp_old(rows, n):
    """llama.cpp before per-token ``logprob``: ``{content, probs: [{tok_str, prob}]}`` (strings, top-n only)."""
    return {"content": "", "completion_probabilities": [
        {"content": _name(y), "probs": [{"tok_str": _name(k), "prob": float(np.exp(lp[k]))} for k in _top(lp, n)]}
        for lp, y in rows]}


def tgi(rows, n):
    """TGI ``Details``: ``tokens`` [{id, text, logprob, special}] and ``top_tokens`` (``batch_top_tokens``)."""
    tok = [{"id": int(y), "text": _name(y), "logprob": float(lp[y]), "special": False} for lp, y in rows]
    top = [[{"id": k, "text": _name(k), "logprob": float(lp[k]), "special": False} for k in _top(lp, n)]
           for lp, _ in rows]
    return {"generated_text": "", "details": {"finish_reason": "length", "generated_tokens": len(rows), "seed": 0,
                                              "prefill": [], "tokens": tok, "top_tokens": top}}


def sglang(rows, n):
    """SGLang ``meta_info``: ``output_token_logprobs`` [[logprob, id, text]], ``output_top_logprobs``."""
    return {"text": "", "meta_info": {
        "output_token_logprobs": [[float(lp[y]), int(y), None] for lp, y in rows],
        "output_top_logprobs": [[[float(lp[k]), k, None] for k in _top(lp, n)] for lp, _ in rows]}}


# ----------------------------------------------------------------------------- draft shapes scoring given text
def _prompt_rows(rows, rng):
    """The draft's rows over prompt + continuation: invented rows for the prompt (skipped by the importer)."""
    pre = [(_lsm(rng.normal(size=V)), PROMPT[1])]
    return pre + list(rows)


def vllm_prompt_logprobs(rows, n, rng):
    """vLLM completions with ``prompt_logprobs`` (``clamp_prompt_logprobs``): ``[null, {id: {logprob, rank, ...}}]``."""
    rr = _prompt_rows(rows, rng)
    return {"choices": [{"index": 0, "text": "x", "logprobs": None,
                         "prompt_logprobs": [None] + [_logprob_obj(lp, y, n) for lp, y in rr]}]}


def vllm_echo(rows, n, rng):
    """Legacy completions with ``echo: true, max_tokens: 1``: prompt tokens (the first ``null``), then one generated."""
    rr = _prompt_rows(rows, rng)
    extra = (_lsm(rng.normal(size=V)), 3)
    body = vllm_completions(rr + [extra], n)["choices"][0]["logprobs"]
    body["tokens"].insert(0, f"token_id:{PROMPT[0]}")
    body["token_logprobs"].insert(0, None)
    body["top_logprobs"].insert(0, None)
    return {"choices": [{"index": 0, "logprobs": body}], "usage": {"prompt_tokens": len(PROMPT) + len(rows)}}


def vllm_request_output_prompt(rows, n, rng):
    rr = _prompt_rows(rows, rng)
    return {"prompt_token_ids": PROMPT + [int(y) for _, y in rows],
            "prompt_logprobs": [None] + [_logprob_obj(lp, y, n) for lp, y in rr],
            "outputs": [{"index": 0, "token_ids": [5], "logprobs": [{"5": {"logprob": -1.0, "rank": 1}}]}]}


def tgi_prefill(rows, n, rng):
    """TGI with ``decoder_input_details``: ``prefill`` [{id, text, logprob}] (no alternatives), the first null."""
    rr = _prompt_rows(rows, rng)
    pre = [{"id": PROMPT[0], "text": "a", "logprob": None}] + [
        {"id": int(y), "text": _name(y), "logprob": float(lp[y])} for lp, y in rr]
    return {"generated_text": "", "details": {"prefill": pre, "tokens": [{"id": 3, "text": "", "logprob": -0.1}]}}


def sglang_input(rows, n, rng):
    rr = _prompt_rows(rows, rng)
    return {"text": "", "meta_info": {
        "input_token_logprobs": [[None, PROMPT[0], None]] + [[float(lp[y]), int(y), None] for lp, y in rr],
        "input_top_logprobs": [None] + [[[float(lp[k]), k, None] for k in _top(lp, n)] for lp, _ in rr],
        "output_token_logprobs": [[-0.5, 3, None]], "output_top_logprobs": [[[-0.5, 3, None]]]}}


def llamacpp_per_prefix(rows, n, rng):
    """One ``/completion`` per prefix (``n_predict: 1, n_probs: n``): the draft's own sample and its top-n."""
    out = []
    for lp, _ in rows:
        z = int(rng.choice(V, p=np.exp(lp) / np.exp(lp).sum()))
        out.append(llamacpp_completion([(lp, z)], n))
    return out


def vllm_echo_target(rows, n):
    """Legacy completions with ``echo: true`` for the target: prompt first (``usage.prompt_tokens``), then the sample."""
    body = vllm_completions(rows, n)["choices"][0]["logprobs"]
    body["tokens"][:0] = [f"token_id:{PROMPT[0]}", f"token_id:{PROMPT[1]}"]
    body["token_logprobs"][:0] = [None, -1.5]
    body["top_logprobs"][:0] = [None, {f"token_id:{PROMPT[1]}": -1.5}]
    return {"choices": [{"index": 0, "logprobs": body}], "usage": {"prompt_tokens": len(PROMPT)}}


def vllm_chat_top0(rows, n):
    """vLLM chat with ``logprobs: true, top_logprobs: 0``: every ``top_logprobs`` list is empty (no floor)."""
    doc = vllm_chat(rows, n)
    for e in doc["choices"][0]["logprobs"]["content"]:
        e["top_logprobs"] = []
    return doc


TARGETS = {
    "vllm-chat-ids": vllm_chat, "vllm-chat-strings": lambda r, n: vllm_chat(r, n, ids=False),
    "vllm-completions-ids": vllm_completions,
    "vllm-completions-strings": lambda r, n: vllm_completions(r, n, ids=False),
    "vllm-request-output": vllm_request_output, "llamacpp": llamacpp_completion,
    "llamacpp-post-sampling": lambda r, n: llamacpp_completion(r, n, post=True),
    "llamacpp-oai-chat": lambda r, n: llamacpp_completion(r, n, oai=True), "llamacpp-old": llamacpp_old,
    "tgi": tgi, "sglang": sglang, "vllm-echo-target": vllm_echo_target, "vllm-chat-top0": vllm_chat_top0,
    "llamacpp-oai-post-sampling": lambda r, n: llamacpp_completion(r, n, post=True, oai=True),
}
DRAFTS = {
    "same-shape": None, "vllm-prompt-logprobs": vllm_prompt_logprobs, "vllm-echo": vllm_echo,
    "vllm-request-output-prompt": vllm_request_output_prompt, "tgi-prefill": tgi_prefill,
    "sglang-input": sglang_input, "llamacpp-per-prefix": llamacpp_per_prefix,
}
_STRINGS = {"vllm-chat-strings", "vllm-completions-strings", "llamacpp-old"}
#: (target shape, draft shape): every target shape with its own shape as the draft's, and every draft route
CASES = [(t, "same-shape") for t in TARGETS] + [
    ("vllm-chat-ids", "vllm-prompt-logprobs"), ("vllm-completions-ids", "vllm-echo"),
    ("vllm-request-output", "vllm-request-output-prompt"), ("tgi", "tgi-prefill"), ("sglang", "sglang-input"),
    ("llamacpp", "llamacpp-per-prefix"), ("vllm-chat-ids", "sglang-input"), ("llamacpp-oai-chat", "tgi-prefill"),
    ("vllm-chat-ids", "vllm-echo"), ("vllm-n2", "vllm-prompt-logprobs"),
]


def _write(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _corpus(tmp_path, seqs, tshape, dshape, n, seed=0):
    rng = np.random.default_rng(seed)
    tdocs, ddocs = [], []
    if tshape == "vllm-n2":                              # n = 2 choices in the first response, listed out of order
        a, b, c = (vllm_chat(list(zip(tl, y)), n) for tl, _, y in seqs)
        tdocs = [{"choices": [dict(b["choices"][0], index=1), a["choices"][0]]}, c]
        ddocs = [DRAFTS[dshape](list(zip(dl, y)), n, rng) for _, dl, y in seqs]
        return _write(tmp_path / "t.jsonl", tdocs), _write(tmp_path / "d.jsonl", ddocs)
    for tl, dl, y in seqs:
        tdocs.append(TARGETS[tshape](list(zip(tl, y)), n))
        drows = list(zip(dl, y))
        if DRAFTS[dshape] is None:
            ddocs.append(TARGETS[tshape](drows, n))
        elif dshape == "llamacpp-per-prefix":
            ddocs += DRAFTS[dshape](drows, n, rng)
        else:
            ddocs.append(DRAFTS[dshape](drows, n, rng))
    return _write(tmp_path / "t.jsonl", tdocs), _write(tmp_path / "d.jsonl", ddocs)


def _check_truncated(trunc, run, seqs):
    """Every floor is a true bound and the heads hold the true values (ids and numbered strings both)."""
    rows = [(tl, dl) for tl, dl, _ in seqs]
    tl_all = np.concatenate([r[0] for r in rows])
    dl_all = np.concatenate([r[1] for r in rows])
    strings = trunc.metadata["token_keys"] != "ids"
    for side, lp_all in (("target", tl_all), ("draft", dl_all)):
        ids, probs, floor = trunc.heads[side]
        for r in range(ids.shape[0]):
            p = np.exp(lp_all[r])
            known = ids[r][ids[r] >= 0]
            if not strings:
                assert np.allclose(probs[r][ids[r] >= 0], p[known], rtol=1e-6, atol=1e-12)
                outside = np.setdiff1d(np.arange(V), known)
            else:                                       # numbered strings: compare as a multiset of values
                outside_mass = 1 - probs[r].sum()
                assert outside_mass >= -1e-6
                outside = np.argsort(-p)[len(known):]
            assert (p[outside] <= floor[r] * (1 + 1e-6) + 1e-12).all(), (side, r)


@pytest.mark.parametrize("n", [1, 5, 20])
@pytest.mark.parametrize("tshape,dshape", CASES)
def test_every_shape_interval_contains_full_value(tmp_path, full, tshape, dshape, n, capsys):
    run, seqs = full
    t, d = _corpus(tmp_path, seqs, tshape, dshape, n)
    out = tmp_path / "top.npz"
    args = ["llm", "import", "--target-records", str(t), "--draft-records", str(d), "--out", str(out)]
    if tshape in _STRINGS:                               # strings: checked against the vocabulary's strings
        (tmp_path / "names.json").write_text(json.dumps([_name(i) for i in range(V)]))
        args += ["--token-strings", str(tmp_path / "names.json")]
    else:
        args += ["--vocab-size", str(V)]
    rc = main(args)
    err = capsys.readouterr().err
    if tshape == "llamacpp-old" and rc != 0:              # the produced token outside probs: a clear refusal
        assert rc == 2 and "no probability for the produced token" in err and "Traceback" not in err
        return
    assert rc == 0, err
    trunc = read_truncated_log(out)
    _check_truncated(trunc, run, seqs)
    lo, hi = acceptance_bounds(trunc)
    beta = run.pair_statistics()["sd_acceptance"]
    assert np.all(lo <= beta + 1e-6) and np.all(beta <= hi + 1e-6)
    for method, spec in (("sd", "chain:2"), ("specinfer", "batch:2"), ("specinfer", "batch:3")):
        iv = predict_interval(trunc, method, spec)
        truth = predict_from_log(run, method, spec)["mean"]
        assert iv["low"] - 1e-6 <= truth <= iv["high"] + 1e-6, (method, spec, iv, truth)
    assert main(["bound", "--log", str(out), "--k", "1,2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert all(math.isfinite(r["low"]) and r["low"] <= r["high"] for r in rep["predictions"])


def test_corpus_size():
    """>= 20 distinct shapes (target shapes, the n = 2 layout, and the draft routes), >= 20 pairings."""
    assert len(TARGETS) + 1 + len(DRAFTS) - 1 >= 20 and len(CASES) >= 20


# ----------------------------------------------------------------------------- broken variants
def _broken_head(pos, where, side="target"):
    """Broken: the floor is the smallest listed value, the produced token's included (the old rule)."""
    vals = [lp for _, lp in pos.listed] or [0.0]
    listed = dict(pos.listed)
    if pos.logprob is not None:
        listed[pos.token] = pos.logprob
    return list(listed), list(listed.values()), math.exp(min(vals))


def test_broken_floor_is_caught(tmp_path, full, monkeypatch):
    """With vLLM's produced-first order, floor = smallest listed is false somewhere; the check above catches it."""
    run, seqs = full
    t, d = _corpus(tmp_path, seqs, "vllm-chat-ids", "same-shape", 5)
    import chansim.logs.truncated as tr

    monkeypatch.setattr(tr, "record_head", _broken_head)
    importers.import_topn_records(t, tmp_path / "b.npz", draft_records=d, vocab_size=V)
    with pytest.raises(AssertionError):
        _check_truncated(read_truncated_log(tmp_path / "b.npz"), run, seqs)


# ----------------------------------------------------------------------------- the two quoted vLLM cases
def _quoted_list_order(tmp_path):
    """The 8-token case: vLLM chat, n = 2, produced token 2 (outside both top-2); true Σmin = 0.49."""
    p = np.array([0.6, 0.3, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01])
    q = np.array([0.4, 0.02, 0.02, 0.5, 0.015, 0.015, 0.015, 0.015])
    rows = 4

    def rec(r):
        content = [{"token": "token_id:2", "logprob": float(np.log(r[2])), "bytes": None,
                    "top_logprobs": [{"token": f"token_id:{k}", "logprob": v, "bytes": None}
                                     for k, v in _vllm_dict(np.log(r), 2, 2)[:2]]} for _ in range(rows)]
        return {"id": "x", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "."},
                             "logprobs": {"content": content}}]}

    return _write(tmp_path / "t.jsonl", [rec(p)]), _write(tmp_path / "d.jsonl", [rec(q)]), p, q


def test_quoted_vllm_list_order_case(tmp_path):
    from chansim.predict import expected_calls, specinfer_path_acceptance

    t, d, p, q = _quoted_list_order(tmp_path)
    importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, vocab_size=8)
    log = read_truncated_log(tmp_path / "o.npz")
    lo, hi = acceptance_bounds(log)
    assert np.all(lo <= 0.49) and np.all(0.49 <= hi)
    iv = predict_interval(log, "specinfer", "batch:2")
    c = specinfer_path_acceptance(np.tile(p, (4, 1)), np.tile(q, (4, 1)), np.full(4, 2), 2)
    truth = 4 / expected_calls(c[None])[0]
    assert truth == pytest.approx(1.483, abs=1e-3) and iv["low"] <= truth <= iv["high"]
    # the broken floor (smallest listed, the produced token's) claims an interval without the truth
    import chansim.logs.truncated as tr

    keep = tr.record_head
    try:
        tr.record_head = _broken_head
        importers.import_topn_records(t, tmp_path / "b.npz", draft_records=d, vocab_size=8)
    finally:
        tr.record_head = keep
    blo, bhi = acceptance_bounds(read_truncated_log(tmp_path / "b.npz"))
    bad = predict_interval(read_truncated_log(tmp_path / "b.npz"), "specinfer", "batch:2")
    assert bhi.max() < 0.49 and not bad["low"] <= truth <= bad["high"]


def _quoted_strings(tmp_path):
    """Ids 0 and 1 both decode to U+FFFD; true Σmin = 0.5005."""
    names = ["\ufffd", "\ufffd", " the", " a", " an", "x"]
    p = np.array([0.3, 1e-4, 0.5, 0.1997, 1e-4, 1e-4])
    q = np.array([1e-4, 0.3, 0.5, 1e-4, 0.1997, 1e-4])

    def rec(r):
        content = [{"token": names[2], "logprob": float(np.log(r[2])),
                    "top_logprobs": [{"token": names[k], "logprob": v} for k, v in _vllm_dict(np.log(r), 2, 3)[:3]]}
                   for _ in range(3)]
        return {"choices": [{"logprobs": {"content": content}}]}

    return _write(tmp_path / "t2.jsonl", [rec(p)]), _write(tmp_path / "d2.jsonl", [rec(q)]), names


def test_quoted_string_keys_case_refused(tmp_path, capsys):
    t, d, names = _quoted_strings(tmp_path)
    assert main(["llm", "import", "--target-records", str(t), "--draft-records", str(d),
                 "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "return token ids" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "names.json").write_text(json.dumps(names))
    assert main(["llm", "import", "--target-records", str(t), "--draft-records", str(d), "--token-strings",
                 str(tmp_path / "names.json"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "decoding of 2 token ids" in capsys.readouterr().err
    assert main(["llm", "import", "--target-records", str(t), "--draft-records", str(d), "--assume-distinct-strings",
                 "--out", str(tmp_path / "o.npz")]) == 2
    assert "U+FFFD" in capsys.readouterr().err
    # broken variant: strings merged -> a "guaranteed" interval without the truth 0.5005
    monkey = importers._Keys.__call__

    def merged(self, key, where, field="token"):
        if key not in self.table:
            self.table[key] = len(self.table)
        return self.table[key]

    importers._Keys.__call__ = merged
    try:
        importers.import_topn_records(t, tmp_path / "m.npz", draft_records=d, assume_distinct_strings=True)
    finally:
        importers._Keys.__call__ = monkey
    lo, hi = acceptance_bounds(read_truncated_log(tmp_path / "m.npz"))
    assert not (lo.min() <= 0.5005 <= hi.max())


def test_string_keys_with_vocabulary_give_true_intervals(tmp_path, full):
    """With --token-strings, string records map to the real ids and the intervals hold."""
    run, seqs = full
    t, d = _corpus(tmp_path, seqs, "vllm-chat-strings", "same-shape", 5)
    importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, token_strings=[_name(i) for i in range(V)])
    log = read_truncated_log(tmp_path / "o.npz")
    assert log.metadata["token_keys"].startswith("strings (checked")
    assert np.concatenate(log.tokens).tolist() == np.concatenate(run.tokens).tolist()
    _check_truncated(log, run, seqs)


def test_string_keys_refused_unless_checked_or_assumed(tmp_path, full, capsys):
    run, seqs = full
    t, d = _corpus(tmp_path, seqs, "vllm-completions-strings", "same-shape", 5)
    base = ["llm", "import", "--target-records", str(t), "--draft-records", str(d), "--out", str(tmp_path / "o.npz")]
    assert main(base) == 2
    assert "--assume-distinct-strings" in capsys.readouterr().err
    assert main(base + ["--assume-distinct-strings"]) == 0
    assert "assumed to name distinct ids" in capsys.readouterr().out
    _check_truncated(read_truncated_log(tmp_path / "o.npz"), run, seqs)
    assert main(["bound", "--log", str(tmp_path / "o.npz"), "--k", "1"]) == 0
    assert "hold only under that assumption" in capsys.readouterr().out


def test_draft_skip_flag(tmp_path, full):
    run, seqs = full
    t, d = _corpus(tmp_path, seqs, "vllm-chat-ids", "vllm-prompt-logprobs", 5)
    importers.import_topn_records(t, tmp_path / "a.npz", draft_records=d, vocab_size=V, draft_skip=2)
    with pytest.raises(ValueError, match="--draft-skip 1"):
        importers.import_topn_records(t, tmp_path / "b.npz", draft_records=d, vocab_size=V, draft_skip=1)


def test_n_choices_are_one_sequence_each(tmp_path, full):
    """``n = 2`` choices in one response: two sequences (by index), the draft scoring each."""
    run, seqs = full
    a, b = vllm_chat(list(zip(seqs[0][0], seqs[0][2])), 3), vllm_chat(list(zip(seqs[1][0], seqs[1][2])), 3)
    two = {"choices": [dict(b["choices"][0], index=1), a["choices"][0]]}
    t = _write(tmp_path / "t.jsonl", [two])
    d = _write(tmp_path / "d.jsonl", [vllm_chat(list(zip(seqs[i][1], seqs[i][2])), 3) for i in (0, 1)])
    importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, vocab_size=V)
    log = read_truncated_log(tmp_path / "o.npz")
    assert [s.tolist() for s in log.tokens] == [seqs[0][2].tolist(), seqs[1][2].tolist()]


def test_draft_token_outside_its_head_gives_an_interval(tmp_path, full):
    """Per-prefix drafts at n = 1: q(y) is often unknown; the sd interval is then wide but holds (never an error)."""
    from chansim.logs.truncated import _token_probs, sd_path_acceptance_bounds

    run, seqs = full
    t, d = _corpus(tmp_path, seqs, "llamacpp", "llamacpp-per-prefix", 1)
    importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, vocab_size=V)
    log = read_truncated_log(tmp_path / "o.npz")
    _, known = _token_probs(log, "draft")
    assert (~known).sum() >= 3
    lo, hi = sd_path_acceptance_bounds(log)
    p = np.exp(np.concatenate([s[0] for s in seqs]))
    q = np.exp(np.concatenate([s[1] for s in seqs]))
    y = np.concatenate([s[2] for s in seqs])
    c = np.minimum(1, q[np.arange(y.size), y] / p[np.arange(y.size), y])
    assert np.all(lo <= c + 1e-6) and np.all(c <= hi + 1e-6) and np.all((hi - lo)[~known] > 0)


def test_chat_prompt_logprobs_at_top_level(tmp_path, full):
    """vLLM chat puts ``prompt_logprobs`` beside ``choices``; the draft's own generated tokens are ignored."""
    run, seqs = full
    rng = np.random.default_rng(5)
    t = _write(tmp_path / "t.jsonl", [vllm_chat(list(zip(tl, y)), 5) for tl, _, y in seqs])
    docs = []
    for _, dl, y in seqs:
        plp = vllm_prompt_logprobs(list(zip(dl, y)), 5, rng)["choices"][0]["prompt_logprobs"]
        own = vllm_chat([(dl[0], 7)], 5)
        docs.append({"choices": own["choices"], "prompt_logprobs": plp})
    d = _write(tmp_path / "d.jsonl", docs)
    importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, vocab_size=V)
    log = read_truncated_log(tmp_path / "o.npz")
    assert log.metadata["source"]["draft_shape"] == ["vllm-prompt-logprobs"]
    _check_truncated(log, run, seqs)


_HOSTILE = [None, "x", "-0.5", 1.5, -1, 10 ** 20, 1e20, True, [], {}, [1], {"a": 1}, float("nan"), float("inf"),
            -float("inf"), 0.5]


def _leaves(o, path=()):
    yield path
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o[:2]):
            yield from _leaves(v, path + (i,))


def _mutated(doc, path, value):
    import copy

    doc = copy.deepcopy(doc)
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    if value is _leaves:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return doc


def test_hostile_mutations_are_clean_errors(tmp_path, full):
    """Seeded mutations of every shape (a field set to a wrong type/value, or deleted): read or a ValueError, nothing else."""
    import random

    run, seqs = full
    pick = random.Random(22)
    runs = 0
    for tshape, dshape in CASES:
        t, d = _corpus(tmp_path, seqs, tshape, dshape, 3)
        good = {"t": t.read_text().splitlines(), "d": d.read_text().splitlines()}
        for side in ("t", "d"):
            doc = json.loads(good[side][0])
            paths = [p for p in _leaves(doc) if p]
            for path in pick.sample(paths, min(4, len(paths))):
                for value in pick.sample(_HOSTILE, 2) + [_leaves]:
                    lines = dict(good)
                    lines[side] = [json.dumps(_mutated(doc, path, value))] + good[side][1:]
                    t.write_text("\n".join(lines["t"]) + "\n")
                    d.write_text("\n".join(lines["d"]) + "\n")
                    runs += 1
                    try:
                        importers.import_topn_records(t, tmp_path / "o.npz", draft_records=d, vocab_size=V,
                                                      token_strings=[_name(i) for i in range(V)])
                    except ValueError as err:
                        assert len(str(err).splitlines()) == 1
    assert runs > 300



# ----------------------------------------------------------------------------- the committed corpus
def write_corpus(folder=CORPUS):
    """Write the corpus files (``python tests/test_import_shapes.py``): the full log and, per case, both sides at n = 3."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = read_log(_full_log(folder / "full.npz")) if not (folder / "full.npz").exists() else read_log(folder / "full.npz")
    seqs = _rows(run)
    for tshape, dshape in CASES:
        case = folder / f"{tshape}__{dshape}"
        case.mkdir(exist_ok=True)
        _corpus(case, seqs, tshape, dshape, CORPUS_N)
    quoted = folder / "quoted"
    quoted.mkdir(exist_ok=True)
    _quoted_list_order(quoted)
    _quoted_strings(quoted)
    return folder


def test_committed_corpus_is_what_the_builders_write(tmp_path):
    """tests/data/records holds every case's files, equal to what the builders cut from its full log (no drift)."""
    assert (CORPUS / "full.npz").exists(), "run: python tests/test_import_shapes.py"
    (tmp_path / "full.npz").write_bytes((CORPUS / "full.npz").read_bytes())
    write_corpus(tmp_path)
    for tshape, dshape in CASES:
        for side in ("t.jsonl", "d.jsonl"):
            name = f"{tshape}__{dshape}/{side}"
            assert (CORPUS / name).read_text() == (tmp_path / name).read_text(), name
    for name in ("t.jsonl", "d.jsonl", "t2.jsonl", "d2.jsonl"):
        assert (CORPUS / "quoted" / name).read_text() == (tmp_path / "quoted" / name).read_text()


@pytest.mark.parametrize("tshape,dshape", CASES)
def test_committed_corpus_imports(tmp_path, tshape, dshape):
    """Each committed case imports (or, for llama.cpp's old target shape, is refused with the reason)."""
    case = CORPUS / f"{tshape}__{dshape}"
    kw = {"token_strings": [_name(i) for i in range(V)]} if tshape in _STRINGS else {"vocab_size": V}
    try:
        importers.import_topn_records(case / "t.jsonl", tmp_path / "o.npz", draft_records=case / "d.jsonl", **kw)
    except ValueError as err:
        assert tshape == "llamacpp-old" and "no probability for the produced token" in str(err)
        return
    run = read_log(CORPUS / "full.npz")
    _check_truncated(read_truncated_log(tmp_path / "o.npz"), run, _rows(run))


if __name__ == "__main__":
    print(f"wrote {write_corpus()}")
