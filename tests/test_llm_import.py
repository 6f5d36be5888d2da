"""``chansim llm import`` (generate output, arrays, top-n records) and guaranteed intervals of truncated logs."""
import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs.importers import import_arrays, import_topn_records, parse_topn_records
from chansim.logs.format import read_log, write_log
from chansim.logs.predict import predict_from_log
from chansim.logs.truncated import (acceptance_bounds, expected_calls_interval, read_truncated_log, truncate_log,
                                   truncated_report)
from chansim.predict import expected_calls


def _lsm(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _synthetic_log(path, seed=0, n_seq=3, length=6, vocab=40):
    rng = np.random.default_rng(seed)
    tl, dl, toks = [], [], []
    for _ in range(n_seq):
        zt = rng.normal(size=(length, vocab)) * 2.5
        t = _lsm(zt)
        d = _lsm(zt + rng.normal(size=zt.shape))
        p = np.exp(t)
        toks.append(np.array([rng.choice(vocab, p=row / row.sum()) for row in p]))
        tl.append(t)
        dl.append(d)
    return write_log(path, prompts=[[1, 2]] * n_seq, tokens=toks, target_log_probs=tl, draft_log_probs=dl,
                     metadata={"temperature": 1.0})


# ---------------------------------------------------------------- intervals (no model)
def test_expected_calls_interval_contains_every_table():
    rng = np.random.default_rng(1)
    for depth in (0, 1, 2, 4):
        for length in (1, 3, 7):
            c = rng.random((depth, length))
            lo_eq, hi_eq = expected_calls_interval(c, c)
            assert lo_eq == pytest.approx(expected_calls(c)[0], abs=1e-12) == hi_eq
            lo, hi = c * rng.random(c.shape), c + (1 - c) * rng.random(c.shape)
            f_lo, f_hi = expected_calls_interval(lo, hi)
            vals = [expected_calls(lo + (hi - lo) * rng.random(c.shape))[0] for _ in range(100)]
            corners = [expected_calls(np.where(rng.random(c.shape) < 0.5, lo, hi))[0] for _ in range(50)]
            assert f_lo - 1e-12 <= min(vals + corners) and max(vals + corners) <= f_hi + 1e-12
    with pytest.raises(ValueError, match="lo <= hi"):
        expected_calls_interval(np.ones((1, 2)), np.zeros((1, 2)))


@pytest.mark.parametrize("n", [1, 3, 10, 40])
def test_truncated_intervals_contain_full_values(tmp_path, n):
    run = read_log(_synthetic_log(tmp_path / "full.npz"))
    trunc = truncate_log(run, n)
    lo, hi = acceptance_bounds(trunc)
    beta = run.pair_statistics()["sd_acceptance"]
    assert np.all(lo <= beta + 1e-9) and np.all(beta <= hi + 1e-9)
    rep = truncated_report(trunc, k=(1, 2, 4))
    assert {r["method"] for r in rep["predictions"]} == {"sd", "specinfer", "rsd", "spectr"}
    assert any(r["tree"] == "batch:4" and r["method"] == "specinfer" for r in rep["predictions"])
    for row in rep["predictions"]:
        full = predict_from_log(run, row["method"], row["tree"])["mean"]
        assert row["low"] - 1e-9 <= full <= row["high"] + 1e-9
        if n == run.vocab_size:                             # whole vocabulary known: exact
            assert row["high"] - row["low"] < 1e-9
    if n == run.vocab_size:
        assert np.allclose(lo, beta) and np.allclose(hi, beta)


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_specinfer_bounds_contain_every_completion(m):
    """Random full (p, q) pairs, truncated at random n: the specinfer c interval holds the full value."""
    from chansim.logs.truncated import specinfer_path_acceptance_bounds
    from chansim.predict import specinfer_path_acceptance

    class _Run:                                  # the minimum truncate_log reads
        pass

    rng = np.random.default_rng(m)
    for trial in range(20):
        vocab, length = 30, 4
        zt = rng.normal(size=(length, vocab)) * 2
        t, d = _lsm(zt), _lsm(zt + rng.normal(size=zt.shape) * 1.5)
        y = np.array([rng.choice(vocab, p=np.exp(r)) for r in t])
        run = _Run()
        run.vocab_size, run.tokens, run.offsets, run.prompts, run.path = vocab, [y], np.array([0, length]), [[]], None
        run.target_log_probs, run.draft_log_probs, run.metadata = t.astype(np.float16), d.astype(np.float16), {}
        trunc = truncate_log(run, int(rng.integers(1, vocab + 1)))
        p = np.exp(t.astype(np.float16).astype(float))
        q = np.exp(d.astype(np.float16).astype(float))
        full = specinfer_path_acceptance(p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True), y, m)
        lo, hi = specinfer_path_acceptance_bounds(trunc, m)
        assert np.all(lo <= full + 1e-9) and np.all(full <= hi + 1e-9)


def test_truncated_bounds_attained_by_worst_case_completion():
    """The lower bound of Σmin is reached: put each tail on tokens the other side does not use."""
    from chansim.logs.truncated import TruncatedLog

    # p head {0: .5}, floor .5 (tail .5); q head {1: .6}, floor .6 (tail .4); V large
    heads = {"target": (np.array([[0]]), np.array([[0.5]]), np.array([0.5])),
             "draft": (np.array([[1]]), np.array([[0.6]]), np.array([0.6]))}
    log = TruncatedLog(None, {"vocab_size": None}, [[]], [np.array([0])], np.array([0, 1]), heads)
    lo, hi = acceptance_bounds(log)
    # lower 0: p tail on tokens 2.., q tail on tokens 100..; upper: q(0)=.4, p(1)=.5 -> min terms .4 + .5 = .9
    assert lo[0] == 0.0 and hi[0] == pytest.approx(0.9)


# ---------------------------------------------------------------- arrays and records (no model)
def test_import_arrays_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    t = rng.normal(size=(2, 5, 8)) * 3
    d = t + rng.normal(size=t.shape)
    y = rng.integers(0, 8, size=(2, 5))
    np.save(tmp_path / "t.npy", t)
    np.save(tmp_path / "d.npy", d)
    np.save(tmp_path / "y.npy", y)
    rc = main(["llm", "import", "--target-logits", str(tmp_path / "t.npy"), "--draft-logits",
               str(tmp_path / "d.npy"), "--tokens", str(tmp_path / "y.npy"), "--out", str(tmp_path / "a.npz")])
    assert rc == 0
    run = read_log(tmp_path / "a.npz")
    p, q, tok = run.sequence(1)
    assert np.allclose(p, np.exp(_lsm(t[1])), rtol=2e-3, atol=1e-6) and tok.tolist() == y[1].tolist()


def test_import_arrays_shape_error(tmp_path):
    with pytest.raises(ValueError, match="shapes do not fit"):
        import_arrays(np.zeros((3, 4)), np.zeros((3, 5)), np.zeros(3, int), tmp_path / "x.npz")


def _chat(entries):
    return {"choices": [{"logprobs": {"content": entries}}]}


def test_parse_record_layouts(tmp_path):
    chat = _chat([{"token": "token_id:5", "logprob": -0.1,
                   "top_logprobs": [{"token": "token_id:5", "logprob": -0.1}, {"token": "token_id:7", "logprob": -2.5}]}])
    legacy = {"choices": [{"logprobs": {"tokens": ["a"], "token_logprobs": [-0.2],
                                        "top_logprobs": [{"a": -0.2, "b": -1.9}]}}]}
    llama_new = {"completion_probabilities": [{"id": 3, "token": "x", "logprob": -0.3,
                                               "top_logprobs": [{"id": 3, "token": "x", "logprob": -0.3}]}]}
    llama_old = {"completion_probabilities": [{"content": "x", "probs": [{"tok_str": "x", "prob": 0.7},
                                                                          {"tok_str": "y", "prob": 0.2}]}]}
    for doc, first in ((chat, 5), (legacy, "a"), (llama_new, 3), (llama_old, "x")):
        f = tmp_path / "r.jsonl"
        f.write_text(json.dumps(doc) + "\n")
        (entries,) = parse_topn_records(f)
        assert entries[0][0] == first and entries[0][1] <= 0
    f.write_text(json.dumps({"choices": [{}]}))
    with pytest.raises(ValueError, match=r"logprobs: is missing"):
        parse_topn_records(f)


def test_records_must_score_the_same_text(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text(json.dumps(_chat([{"token": "token_id:1", "logprob": -0.5, "top_logprobs": []}])))
    b.write_text(json.dumps(_chat([{"token": "token_id:2", "logprob": -0.5, "top_logprobs": []}])))
    with pytest.raises(ValueError, match="scored on the target's text"):
        import_topn_records(a, tmp_path / "o.npz", draft_records=b)


# ---------------------------------------------------------------- the real SmolLM2 pair
def _records_from_log(run, side, n):
    """vLLM chat-completions JSON lines (return_tokens_as_token_ids) for one side of a full log.

    vLLM's own order (v1 ``_make_logprob_dict`` over the sampled id then the top-n ids; chat's
    ``_create_chat_logprobs`` keeps the first n items): the produced token first, so the n-th
    ranked token is dropped whenever the produced token is outside the top-n.
    """
    lines = []
    lp_all = run.target_log_probs if side == "target" else run.draft_log_probs
    for i in range(run.n_sequences):
        a, b = int(run.offsets[i]), int(run.offsets[i + 1])
        content = []
        for t, y in zip(range(a, b), run.tokens[i]):
            lp = lp_all[t].astype(np.float64)
            lp = lp - np.log(np.exp(lp).sum())
            order = list(dict.fromkeys([int(y)] + [int(x) for x in np.argsort(-lp)[:n]]))[:n]
            content.append({"token": f"token_id:{int(y)}", "logprob": float(lp[y]),
                            "top_logprobs": [{"token": f"token_id:{x}", "logprob": float(lp[x])} for x in order]})
        lines.append(json.dumps(_chat(content)))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def generated(default_pair, tmp_path_factory):
    import torch
    from transformers import GenerationConfig

    from chansim.llm.measure import pydoc_prompts

    pair = default_pair
    model = pair.target.model
    prompts = pydoc_prompts(pair.tokenizer, 2, 12)
    torch.manual_seed(0)
    cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=12,
                           eos_token_id=None, pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = model.generate(torch.tensor(prompts), attention_mask=torch.ones(2, 12, dtype=torch.long),
                             generation_config=cfg)
    d = tmp_path_factory.mktemp("gen")
    torch.save({"sequences": out.sequences, "logits": out.logits}, d / "gen.pt")
    from safetensors.torch import save_file

    save_file({"sequences": out.sequences.contiguous(), "logits": torch.stack(out.logits).to(torch.bfloat16)},
              str(d / "gen.safetensors"))
    return pair, prompts, out, d


@pytest.mark.llm
@pytest.mark.slow
def test_generate_import_bound_validate(generated, capsys):
    from chansim.llm.measure import _path_log_probs

    pair, prompts, out, d = generated
    assert main(["llm", "import", "--generate", str(d / "gen.pt"), "--seed", "0", "--out", str(d / "run.npz")]) == 0
    run = read_log(d / "run.npz")
    assert run.n_sequences == 2 and run.n_positions == 24 and run.prompts == prompts
    for i in range(2):
        seq = prompts[i] + run.tokens[i].tolist()
        assert run.tokens[i].tolist() == out.sequences[i, 12:].tolist()
        for net, stored in ((pair.target, run.target_log_probs), (pair.draft, run.draft_log_probs)):
            ref = _path_log_probs(net, seq, 12, 1.0)
            got = stored[run.offsets[i]:run.offsets[i + 1]].astype(np.float64)
            top = ref > -12
            assert np.abs(got - ref)[top].max() < 0.02          # float16 rounding + cached vs full forward
    # bf16 logits in safetensors, stacked (new_tokens, B, V): the same paths, bf16-close distributions
    assert main(["llm", "import", "--generate", str(d / "gen.safetensors"), "--out", str(d / "run_st.npz")]) == 0
    st = read_log(d / "run_st.npz")
    assert [t.tolist() for t in st.tokens] == [t.tolist() for t in run.tokens]
    assert np.allclose(st.pair_statistics()["sd_acceptance"], run.pair_statistics()["sd_acceptance"], atol=0.05)
    capsys.readouterr()
    assert main(["bound", "--log", str(d / "run.npz"), "--k", "1,2", "--method", "sd,ersd"]) == 0
    assert "predicted tokens per target call" in capsys.readouterr().out
    assert main(["llm", "validate", "--log", str(d / "run.npz"), "--methods", "sd", "--trees", "chain:2",
                 "--out", "-", "--quiet", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["method"] == "sd" and rows[0]["predicted"]["mean"] > 1 and rows[0]["measured"]["mean"] >= 1


@pytest.mark.llm
@pytest.mark.slow
def test_vllm_records_import_gives_intervals_around_full_log(generated, capsys):
    pair, prompts, out, d = generated
    if not (d / "run.npz").exists():
        assert main(["llm", "import", "--generate", str(d / "gen.pt"), "--out", str(d / "run.npz")]) == 0
    run = read_log(d / "run.npz")
    full_beta = run.pair_statistics()["sd_acceptance"]
    rows = {"target": np.exp(run.target_log_probs.astype(np.float64)),
            "draft": np.exp(run.draft_log_probs.astype(np.float64))}
    broken_violations = 0
    for n in (1, 5, 20):
        (d / "t.jsonl").write_text(_records_from_log(run, "target", n))
        (d / "q.jsonl").write_text(_records_from_log(run, "draft", n))
        assert main(["llm", "import", "--target-records", str(d / "t.jsonl"), "--draft-records",
                     str(d / "q.jsonl"), "--vocab-size", str(run.vocab_size), "--out", str(d / "top.npz"),
                     "--force"]) == 0
        trunc = read_truncated_log(d / "top.npz")
        for side, full_p in rows.items():                   # every floor bounds every unlisted token (true rows)
            ids, probs, floor = trunc.heads[side]
            full_p = full_p / full_p.sum(1, keepdims=True)
            unlisted = np.ones(full_p.shape, bool)
            np.put_along_axis(unlisted, np.maximum(ids, 0), False, axis=1)
            assert (np.where(unlisted, full_p, 0).max(1) <= floor * (1 + 1e-3)).all()
            listed_min = np.where(ids >= 0, probs, np.inf).min(1)      # broken: floor = smallest listed value
            broken_violations += int((np.where(unlisted, full_p, 0).max(1) > listed_min * (1 + 1e-3)).sum())
        lo, hi = acceptance_bounds(trunc)
        assert np.all(lo <= full_beta + 1e-3) and np.all(full_beta <= hi + 1e-3)   # float16 vs float32 rows
        capsys.readouterr()
        assert main(["bound", "--log", str(d / "top.npz"), "--k", "1,2,4", "--json"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["predictions"]
        for row in rep["predictions"]:
            full = predict_from_log(run, row["method"], row["tree"])["mean"]
            assert row["low"] - 1e-3 <= full <= row["high"] + 1e-3
    assert broken_violations > 0             # vLLM's order breaks the old floor on the real log


def test_bound_top_n_table(tmp_path, capsys):
    path = _synthetic_log(tmp_path / "full.npz")
    assert main(["bound", "--log", str(path), "--top-n", "2,40", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["n"], r["draft_token"]) for r in rows} == {(2, True), (40, True), (2, False), (40, False)}
    for r in rows:
        assert r["low"] - 1e-9 <= r["full"] <= r["high"] + 1e-9
        if r["n"] == 40:
            assert r["width"] < 1e-9
    assert max(r["width"] for r in rows if r["n"] == 2) > 0


@pytest.mark.parametrize("stem,ext", [("vllm", "jsonl"), ("llamacpp", "json")])
def test_docs_examples_import(tmp_path, capsys, stem, ext):
    """The worked examples of docs/log-format.md import and give intervals."""
    from pathlib import Path

    ex = Path(__file__).resolve().parents[1] / "docs" / "examples"
    out = tmp_path / f"{stem}.npz"
    assert main(["llm", "import", "--target-records", str(ex / f"{stem}_target.{ext}"), "--draft-records",
                 str(ex / f"{stem}_draft.{ext}"), "--vocab-size", "49152", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["bound", "--log", str(out), "--k", "1,2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["sd_acceptance"]["low"] <= rep["sd_acceptance"]["high"]
    assert all(1 <= r["low"] <= r["high"] <= 3 for r in rep["predictions"])


# ---------------------------------------------------------------- transformers generate files (no model)
def _gen_file(tmp_path, seqs, logits, name="gen.pt", **extra):
    import torch

    d = {"sequences": torch.tensor(seqs), "logits": tuple(torch.tensor(z) for z in logits)}
    d.update({k: torch.tensor(v) for k, v in extra.items()})
    torch.save(d, tmp_path / name)
    return tmp_path / name


def _left_padded(rng, pad=0):
    """Two prompts of lengths 2 and 4, left-padded to 4 with ``pad``; 3 new tokens each; V = 6."""
    seqs = [[pad, pad, 3, 4, 5, 2, 1], [3, 4, 5, 1, 2, 2, 3]]
    logits = [rng.normal(size=(2, 6)) for _ in range(3)]
    return seqs, logits


def test_generate_padding_without_mask_refused_or_stripped(tmp_path):
    from chansim.logs.importers import load_generate_output

    seqs, logits = _left_padded(np.random.default_rng(0))
    f = _gen_file(tmp_path, seqs, logits)
    with pytest.raises(ValueError, match=r"row 0: the prompt starts with 2 pad token\(s\) \(id 0\)"):
        load_generate_output(f, pad_token_id=0)
    prompts, tokens, rows, info = load_generate_output(f, pad_token_id=0, strip_pads=True)
    assert prompts == [[3, 4], [3, 4, 5, 1]] and "stripped" in info["padding"]
    # the old behaviour (no pad id known): the pads are scored as prompt -- what the refusal prevents
    assert load_generate_output(f)[0][0] == [0, 0, 3, 4]


@pytest.mark.parametrize("width", ["prompt", "full"])
def test_generate_mask_drops_left_and_right_padding(tmp_path, width):
    from chansim.logs.importers import load_generate_output

    seqs, logits = _left_padded(np.random.default_rng(1))
    seqs[1] = [3, 4, 0, 0, 2, 2, 3]                                  # right-padded prompt (mask zeros at its end)
    mask = [[0, 0, 1, 1], [1, 1, 0, 0]]
    if width == "full":
        mask = [m + [1, 1, 1] for m in mask]
    f = _gen_file(tmp_path, seqs, logits, attention_mask=mask)
    prompts, tokens, _, info = load_generate_output(f, pad_token_id=0)
    assert prompts == [[3, 4], [3, 4]] and info["padding"].startswith("dropped")
    f2 = _gen_file(tmp_path, seqs, logits, name="bad.pt", attention_mask=[[1, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="attention_mask"):
        load_generate_output(f2)


def test_generate_eos_cut_and_scores(tmp_path):
    from chansim.logs.importers import load_generate_output

    seqs, logits = _left_padded(np.random.default_rng(2))
    f = _gen_file(tmp_path, seqs, logits, attention_mask=[[0, 0, 1, 1], [1, 1, 1, 1]])
    _, tokens, rows, _ = load_generate_output(f, eos_token_id=[2, 9])
    assert [t.tolist() for t in tokens] == [[5, 2], [2]] and rows[0].shape == (2, 6)
    import torch

    torch.save({"sequences": torch.tensor(seqs), "scores": tuple(torch.tensor(z) for z in logits)}, tmp_path / "s.pt")
    with pytest.raises(ValueError, match="temperature twice"):
        load_generate_output(tmp_path / "s.pt", temperature=0.7)
    assert "processed" in load_generate_output(tmp_path / "s.pt")[3]["log_probs"]


def test_generate_bf16_rounding_bound_holds(tmp_path):
    """bf16 logits: the stated log-prob error bound 2u·max|z|/T holds against the float32 logits (reference)."""
    import torch

    from chansim.logs.importers import load_generate_output, log_softmax

    rng = np.random.default_rng(3)
    z32 = [rng.normal(size=(2, 50)).astype(np.float32) * 8 for _ in range(3)]
    seqs = [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]
    torch.save({"sequences": torch.tensor(seqs), "logits": tuple(torch.tensor(z).to(torch.bfloat16) for z in z32)},
               tmp_path / "b.pt")
    _, _, rows, info = load_generate_output(tmp_path / "b.pt", temperature=0.8)
    bound = info["rounding"]["log_prob_error_bound"]
    assert info["logits_dtype"] == "bfloat16" and "bfloat16" in info["rounding"]["note"]
    err = max(np.abs(rows[b] - log_softmax(np.stack([z[b] for z in z32]), 0.8)).max() for b in range(2))
    assert 0 < err <= bound
    # a broken bound (float16's unit roundoff for bf16 data) would not hold
    assert err > bound * 2.0 ** -3


def test_generate_config_ids():
    from types import SimpleNamespace

    from chansim.llm.import_generate import _config_ids

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[2, 7], pad_token_id=None),
                            config=SimpleNamespace(eos_token_id=2, pad_token_id=0))
    pair = SimpleNamespace(target=SimpleNamespace(model=model), tokenizer=SimpleNamespace(eos_token_id=2, pad_token_id=9))
    assert _config_ids(pair) == ([2, 7], 0, "SimpleNamespace")


def test_generate_scores_checked_against_logits(tmp_path):
    """Both logits and scores saved: top-k masking or another temperature is caught (the paths' true law)."""
    import torch

    from chansim.logs.importers import load_generate_output

    rng = np.random.default_rng(4)
    z = [rng.normal(size=(2, 6)) * 3 for _ in range(3)]
    seqs = [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]

    def save(scores, name):
        torch.save({"sequences": torch.tensor(seqs), "logits": tuple(torch.tensor(a) for a in z),
                    "scores": tuple(torch.tensor(a) for a in scores)}, tmp_path / name)
        return tmp_path / name

    ok = save([a / 0.7 + 1.0 for a in z], "ok.pt")
    assert len(load_generate_output(ok, temperature=0.7)[2]) == 2
    with pytest.raises(ValueError, match="not logits / 1"):
        load_generate_output(ok)                                     # wrong --temperature: caught
    topk = [np.where(a >= np.sort(a, -1)[:, -2:-1], a, -np.inf) for a in z]
    with pytest.raises(ValueError, match="top-k/top-p"):
        load_generate_output(save(topk, "topk.pt"))


def test_import_generate_records_settings_and_notes(tmp_path, monkeypatch):
    """Without a model: EOS from the config, the temperature applied and recorded, bf16 and raw-logit notes."""
    from types import SimpleNamespace

    import torch

    import chansim.llm.import_generate as ig

    rng = np.random.default_rng(6)
    z = [rng.normal(size=(2, 6)).astype(np.float32) for _ in range(3)]
    seqs = [[1, 3, 4, 5, 2], [1, 3, 2, 5, 5]]
    torch.save({"sequences": torch.tensor(seqs), "logits": tuple(torch.tensor(a).to(torch.bfloat16) for a in z)},
               tmp_path / "g.pt")
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=2, pad_token_id=0))
    pair = SimpleNamespace(target=SimpleNamespace(model=model), draft=None, tokenizer=None, vocab_size=6,
                           metadata={"target": {"path": "x"}})
    seen = {}

    def fake_draft(net, prompts, tokens, temperature):
        seen["temperature"] = temperature
        return [np.log(np.full((len(t), 6), 1 / 6)) for t in tokens]

    monkeypatch.setattr(ig, "draft_log_probs", fake_draft)
    out = ig.import_generate(tmp_path / "g.pt", tmp_path / "run.npz", pair=pair, temperature=0.5)
    run = read_log(out)
    assert [t.tolist() for t in run.tokens] == [[4, 5, 2], [2]]                  # cut at the config's EOS 2
    assert run.metadata["temperature"] == 0.5 == seen["temperature"]
    notes = " ".join(run.metadata["notes"])
    assert "bfloat16" in notes and "raw logits" in notes and "EOS [2]" in notes
    assert run.metadata["source"]["eos_source"] == "SimpleNamespace"
