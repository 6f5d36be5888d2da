r"""Turn logits logged by other tools into chansim logs (format: docs/log-format.md).

Three sources:

* :func:`load_generate_output` -- the output of ``transformers`` ``model.generate(...,
  output_logits=True, return_dict_in_generate=True)`` saved with :func:`torch.save` or
  :mod:`safetensors`; the target's log-probs are :math:`\mathrm{log\_softmax}(z/T)` of the
  saved logits, the draft's are computed teacher-forced by a draft model in
  :func:`chansim.llm.import_generate.import_generate` (the one part that needs a model);
* :func:`import_arrays` -- plain arrays of target and draft logits (or log-probs) with the
  token ids;
* :func:`import_topn_records` -- top-n log-prob records as returned by vLLM /
  OpenAI-compatible servers (JSON lines, ``choices[0].logprobs.content[i].top_logprobs``
  or the legacy ``logprobs.top_logprobs``) and by llama.cpp's server
  (``completion_probabilities``): a truncated log (:mod:`chansim.logs.truncated`).

Full imports write :func:`chansim.logs.format.write_log` files, usable by ``chansim bound
--log`` and, when the metadata names the models, ``chansim llm validate``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
import numpy as np

__all__ = ["load_tensor_file", "load_generate_output", "import_arrays",
           "parse_topn_records", "import_topn_records", "log_softmax"]


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    r""":math:`\log\mathrm{softmax}(z/T)` in float64 along the last axis.

    >>> np.round(np.exp(log_softmax(np.array([0.0, np.log(3.0)]))), 3).tolist()
    [0.25, 0.75]
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits contain NaN or +inf")
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _to_numpy(x):
    """Tensor (any dtype, device, grad) or array -> numpy (float64 for floats)."""
    if hasattr(x, "detach"):
        import torch

        x = x.detach().to("cpu")
        x = x.to(torch.float64) if x.is_floating_point() else x.to(torch.int64)
        return x.numpy()
    return np.asarray(x)


def load_tensor_file(path, trust_pickle: bool = False) -> dict:
    """Load ``.pt``/``.pth``/``.bin`` (torch), ``.safetensors``, ``.npz`` or ``.npy`` into a dict.

    ``.npy`` and a tensor saved alone give ``{"": array}``. Torch files are loaded with
    ``weights_only=True`` unless ``trust_pickle`` (needed for a saved ``GenerateOutput`` object).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    suf = path.suffix.lower()
    if suf == ".safetensors":
        from safetensors.numpy import load_file
        try:
            return dict(load_file(str(path)))
        except Exception:                     # noqa: BLE001  bf16 tensors need torch
            from safetensors.torch import load_file as load_torch
            return dict(load_torch(str(path)))
    if suf == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    if suf == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    if suf in (".pt", ".pth", ".bin"):
        import torch
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        except Exception as err:              # noqa: BLE001  (pickle refusal: say what to do)
            raise ValueError(f"{path}: torch.load refused the file with weights_only=True ({type(err).__name__}); "
                             f"save a plain dict {{'sequences': out.sequences, 'logits': out.logits}} or pass "
                             f"--trust-pickle if you trust the file") from None
        if hasattr(obj, "keys"):
            return {k: obj[k] for k in obj.keys()}
        return {"": obj}
    raise ValueError(f"{path}: unsupported file type {suf!r} (use .pt, .safetensors, .npz or .npy)")


def load_generate_output(path, prompt_length: int | None = None, eos_token_id: int | None = None,
                         trust_pickle: bool = False) -> tuple[list, list, list]:
    """Prompts, continuations and raw target logits from a saved ``generate`` output.

    The file holds ``sequences`` (B, L) and ``logits``: from :func:`torch.save`, the
    tuple of ``new_tokens`` tensors (B, V) as ``generate`` returns it; from safetensors,
    ``torch.stack(out.logits)`` of shape (new_tokens, B, V). Optional keys:
    ``prompt_length`` (default ``L - new_tokens``) and ``attention_mask`` (B, prompt_length)
    of the input, whose zeros (left padding) are dropped from the prompts. With
    ``eos_token_id``, each continuation ends at its first EOS (later rows are padding).

    Returns
    -------
    (prompts, tokens, logits) : lists over the batch; ``logits[i]`` has shape (T_i, V).
    """
    data = load_tensor_file(path, trust_pickle)
    for key in ("sequences", "logits"):
        if key not in data or data[key] is None:
            raise ValueError(f"{path}: no {key!r} in the file (has {sorted(data)}); call generate with "
                             f"output_logits=True, return_dict_in_generate=True")
    seqs = _to_numpy(data["sequences"]).astype(np.int64)
    logits = data["logits"]
    if isinstance(logits, (list, tuple)):
        logits = np.stack([_to_numpy(z) for z in logits])           # [T, B, V]
    else:
        logits = _to_numpy(logits)
    if seqs.ndim != 2 or logits.ndim != 3 or logits.shape[1] != seqs.shape[0]:
        raise ValueError(f"{path}: sequences {seqs.shape} and logits {logits.shape} do not fit "
                         f"((B, L) and (new_tokens, B, V))")
    n_new = logits.shape[0]
    plen = int(_to_numpy(data["prompt_length"])) if prompt_length is None and "prompt_length" in data else prompt_length
    plen = seqs.shape[1] - n_new if plen is None else int(plen)
    if plen < 1 or plen + n_new != seqs.shape[1]:
        raise ValueError(f"{path}: prompt length {plen} + {n_new} logit rows != sequence length {seqs.shape[1]}")
    mask = _to_numpy(data["attention_mask"]).astype(bool) if "attention_mask" in data else None
    prompts, tokens, rows = [], [], []
    for b in range(seqs.shape[0]):
        pr = seqs[b, :plen]
        if mask is not None:
            pr = pr[mask[b, -plen:]]
        cont = seqs[b, plen:]
        n = cont.size
        if eos_token_id is not None and (cont == eos_token_id).any():
            n = int(np.flatnonzero(cont == eos_token_id)[0]) + 1
        prompts.append(pr.tolist())
        tokens.append(cont[:n])
        rows.append(logits[:n, b, :])
    return prompts, tokens, rows


def _batched(a: np.ndarray, name: str, ndim: int) -> np.ndarray:
    if a.ndim == ndim - 1:
        return a[None]
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim - 1} or {ndim} dimensions, got shape {a.shape}")
    return a


def import_arrays(target_logits, draft_logits, tokens, out, *, prompts=None, temperature: float = 1.0,
                  metadata: dict | None = None) -> Path:
    """Plain arrays/files of target and draft logits (or log-probs) with token ids -> full chansim log.

    Shapes: logits (T, V) with tokens (T,) for one sequence, or (B, T, V) with (B, T).
    Each may be a path (:func:`load_tensor_file`, the single array in it) or an array/tensor.
    Row t of both logit arrays must be the distribution of ``tokens[t]`` (given the prompt
    and earlier tokens); ``prompts`` (list of id lists, default empty) only names the keys.
    """
    from .format import write_log

    def arr(x, name):
        if isinstance(x, (str, Path)):
            d = load_tensor_file(x)
            if len(d) != 1:
                raise ValueError(f"{name} file {x} holds {len(d)} arrays ({sorted(d)}); give a file with one")
            x = next(iter(d.values()))
        return _to_numpy(x)

    t = _batched(arr(target_logits, "target logits"), "target logits", 3)
    d = _batched(arr(draft_logits, "draft logits"), "draft logits", 3)
    y = _batched(arr(tokens, "tokens").astype(np.int64), "tokens", 2)
    if t.shape != d.shape or t.shape[:2] != y.shape:
        raise ValueError(f"shapes do not fit: target {t.shape}, draft {d.shape}, tokens {y.shape}")
    prompts = [[] for _ in range(y.shape[0])] if prompts is None else [list(map(int, p)) for p in prompts]
    meta = {"temperature": float(temperature), "seed": None, "source": {"kind": "arrays"}}
    meta.update(metadata or {})
    return write_log(out, prompts=prompts, tokens=list(y), target_log_probs=[log_softmax(z, temperature) for z in t],
                     draft_log_probs=[log_softmax(z, temperature) for z in d], metadata=meta)


# ----------------------------------------------------------------------------- top-n records
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


def _records(path) -> list:
    """JSON lines (one response per line) or one JSON document (object or list of objects)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        pass
    out = []
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {i + 1} is not JSON ({err})") from None
    return out


def _entries(resp: dict, path, i: int) -> list:
    """A response -> [(chosen token key, chosen logprob, [(key, logprob), ...]), ...] per position."""
    def key(d, fallback):
        if "id" in d:
            return int(d["id"])
        tok = d.get("token", d.get("tok_str", fallback))
        m = _TOKEN_ID.match(str(tok))
        return int(m.group(1)) if m else str(tok)

    def lp(d):
        if "logprob" in d:
            return float(d["logprob"])
        if "prob" in d:
            return float(np.log(d["prob"])) if d["prob"] > 0 else -np.inf
        raise ValueError(f"{path}: record {i}: an entry has neither 'logprob' nor 'prob': {d}")

    if "completion_probabilities" in resp:                       # llama.cpp server
        out = []
        for e in resp["completion_probabilities"]:
            top = e.get("top_logprobs", e.get("probs", []))
            chosen = key(e, e.get("content"))
            heads = [(key(d, None), lp(d)) for d in top]
            c_lp = lp(e) if ("logprob" in e or "prob" in e) else dict(heads).get(chosen)
            if c_lp is None:
                raise ValueError(f"{path}: record {i}: the produced token {chosen!r} has no log-prob")
            out.append((chosen, c_lp, heads))
        return out
    choices = resp.get("choices")
    if not choices:
        raise ValueError(f"{path}: record {i} has neither 'choices' (vLLM/OpenAI) nor 'completion_probabilities' "
                         f"(llama.cpp)")
    lpobj = choices[0].get("logprobs")
    if not lpobj:
        raise ValueError(f"{path}: record {i}: choices[0].logprobs is missing (request logprobs/top_logprobs)")
    if "content" in lpobj:                                       # chat completions
        return [(key(e, None), lp(e), [(key(d, None), lp(d)) for d in e.get("top_logprobs", [])])
                for e in lpobj["content"]]
    if "tokens" in lpobj:                                        # legacy completions
        return [(key({"token": t}, None), float(l), [(key({"token": k}, None), float(v)) for k, v in (top or {}).items()])
                for t, l, top in zip(lpobj["tokens"], lpobj["token_logprobs"], lpobj.get("top_logprobs") or [])]
    raise ValueError(f"{path}: record {i}: unknown logprobs layout (keys {sorted(lpobj)})")


def parse_topn_records(path) -> list[list[tuple]]:
    """One list per response of ``(chosen key, chosen logprob, [(key, logprob), ...])`` per position.

    Keys are integer token ids when the records carry them (llama.cpp ``id``, vLLM's
    ``token_id:N`` strings with ``return_tokens_as_token_ids``), otherwise the token strings.
    """
    recs = _records(path)
    if not recs:
        raise ValueError(f"{path}: no records")
    return [_entries(r, path, i) for i, r in enumerate(recs)]


def _head(chosen, chosen_lp, top, intern) -> tuple:
    items = dict(top)
    n_top = len(items)
    floor = float(np.exp(min(items.values()))) if items else 1.0
    items.setdefault(chosen, chosen_lp)
    ids = [intern(k) for k in items]
    return ids, [min(0.0, v) for v in items.values()], floor if n_top else 1.0


def import_topn_records(target_records, out, *, draft_records=None, vocab_size=None, prompts=None,
                        metadata: dict | None = None) -> Path:
    """Top-n log-prob records of target (and draft) -> truncated log (:mod:`chansim.logs.truncated`).

    ``target_records``: the responses of the target (one per prompt, JSON lines or a JSON
    list). ``draft_records``: the draft's records *for the same text* (e.g. a server scoring
    prompt + the target's continuation with ``prompt_logprobs``/``echo``), position by
    position; the produced tokens must agree. Token keys (ids or strings) are matched
    between the two files; strings are numbered in order of appearance.
    """
    from .truncated import write_truncated_log

    if draft_records is None:
        raise ValueError("top-n records give only the target; pass the draft's records for the same text "
                         "(--draft-records)")
    tgt, drf = parse_topn_records(target_records), parse_topn_records(draft_records)
    if len(tgt) != len(drf):
        raise ValueError(f"{len(tgt)} target responses but {len(drf)} draft responses")
    table: dict = {}
    kinds = set()

    def intern(k):
        kinds.add(type(k))
        if isinstance(k, int):
            return k
        if k not in table:
            table[k] = len(table)
        return table[k]

    tokens, th, dh = [], [], []
    for i, (a, b) in enumerate(zip(tgt, drf)):
        if len(a) != len(b) or not a:
            raise ValueError(f"response {i}: {len(a)} target positions but {len(b)} draft positions (need equal, >= 1)")
        seq = []
        for t, (ea, eb) in enumerate(zip(a, b)):
            if ea[0] != eb[0]:
                raise ValueError(f"response {i}, position {t}: target produced {ea[0]!r} but the draft record "
                                 f"scores {eb[0]!r}; the draft must be scored on the target's text")
            seq.append(intern(ea[0]))
            th.append(_head(*ea, intern))
            dh.append(_head(*eb, intern))
        tokens.append(seq)
    if len(kinds) > 1:
        raise ValueError("the records mix token ids and token strings; use one kind")
    meta = {"source": {"kind": "topn-records", "target": str(target_records), "draft": str(draft_records)},
            "token_keys": "ids" if kinds == {int} else "strings", "temperature": 1.0}
    meta.update(metadata or {})
    return write_truncated_log(out, prompts=prompts or [[] for _ in tokens], tokens=tokens, target_heads=th,
                               draft_heads=dh, metadata=meta, vocab_size=vocab_size)
