r"""Turn logits logged by other tools into chansim logs (format: docs/log-format.md).

Three sources:

* :func:`load_generate_output` -- the output of ``transformers`` ``model.generate(...,
  output_logits=True, return_dict_in_generate=True)`` saved with :func:`torch.save` or
  :mod:`safetensors`; the target's log-probs are :math:`\mathrm{log\_softmax}(z/T)` of the
  saved logits, the draft's are computed teacher-forced by a draft model in
  :func:`chansim.llm.import_generate.import_generate` (the one part that needs a model);
* :func:`import_arrays` -- plain arrays of target and draft logits (or log-probs) with the
  token ids;
* :func:`import_topn_records` -- top-n log-prob records of vLLM / OpenAI-compatible servers,
  llama.cpp, TGI and SGLang, read by :mod:`chansim.logs.readers` (one function per real
  shape, behind one validating door) and turned into heads and floors by
  :func:`chansim.logs.truncated.record_head`: a truncated log (:mod:`chansim.logs.truncated`).

Full imports write :func:`chansim.logs.format.write_log` files, usable by ``chansim bound
--log`` and, when the metadata names the models, ``chansim llm validate``.
"""
from __future__ import annotations

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
        if x.is_complex() or x.dtype == torch.bool:
            return x.numpy()
        x = x.to(torch.float64) if x.is_floating_point() else x.to(torch.int64)
        return x.numpy()
    return np.asarray(x)


def _dtype_name(x) -> str:
    return str(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).replace("torch.", "")


def _real_array(x, what: str, integer: bool = False) -> np.ndarray:
    """The door for arrays: real numbers (ids: integers); bool, complex, object and strings refused."""
    a = _to_numpy(x)
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{what}: expected an array, got {type(a).__name__}")
    kinds = "iu" if integer else "iuf"
    if a.dtype.kind not in kinds:
        raise ValueError(f"{what}: {'token ids must be integers' if integer else 'logits must be real numbers'}, "
                         f"got dtype {a.dtype}")
    return a


def load_tensor_file(path, trust_pickle: bool = False) -> dict:
    """Load ``.pt``/``.pth``/``.bin`` (torch), ``.safetensors``, ``.npz`` or ``.npy`` into a dict.

    ``.npy`` and a tensor saved alone give ``{"": array}``. Torch files are loaded with
    ``weights_only=True`` unless ``trust_pickle`` (needed for a saved ``GenerateOutput`` object).
    A missing, unreadable, empty, truncated or corrupt file is a one-line ``ValueError``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a tensor file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
    if size == 0:
        raise ValueError(f"{path}: the file is empty")
    suf = path.suffix.lower()
    if suf not in (".safetensors", ".npy", ".npz", ".pt", ".pth", ".bin"):
        raise ValueError(f"{path}: unsupported file type {suf!r} (use .pt, .safetensors, .npz or .npy)")
    try:
        return _load_tensor_file(path, suf, trust_pickle)
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable {suf} file, truncated or corrupt ({err})") from None
    except Exception as err:                  # noqa: BLE001  (zip, safetensors, pickle and torch errors: one line)
        raise ValueError(f"{path}: not a readable {suf} file, truncated or corrupt ({type(err).__name__}: "
                         f"{str(err)[:120]})") from None


def _load_tensor_file(path: Path, suf: str, trust_pickle: bool) -> dict:
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
    import pickle

    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err).lower() and "weights only" not in str(err).lower():
            raise
        raise ValueError(f"{path}: torch.load refused the file with weights_only=True; save a plain dict "
                         f"{{'sequences': out.sequences, 'logits': out.logits}} or pass --trust-pickle if you "
                         f"trust the file") from None
    if hasattr(obj, "keys"):
        return {k: obj[k] for k in obj.keys()}
    return {"": obj}


#: unit roundoff of the half-precision dtypes a generate output may hold
_ROUNDOFF = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -11, "float32": 2.0 ** -24}


def _pad_runs(row: np.ndarray, pad: int) -> tuple[int, int]:
    """Lengths of the runs of ``pad`` at the start and at the end of ``row``."""
    lead = int(np.argmax(row != pad)) if (row != pad).any() else row.size
    trail = int(np.argmax(row[::-1] != pad)) if (row != pad).any() else 0
    return lead, trail


def _check_scores(path, logits: np.ndarray, scores, temperature: float, dtype: str) -> None:
    r"""With both ``logits`` (raw) and ``scores`` (processed) saved: the sampled rows must be ``logits / T``.

    Without top-k, top-p or penalties, generate's processed scores equal the raw logits
    divided by T (up to a constant per row, and the dtype's rounding). Masked tokens
    (``-inf`` scores where the logit is finite) or a row that is not ``z / T + c`` mean the
    paths were not sampled from :math:`\mathrm{softmax}(z/T)`: refused, naming the cause.
    """
    sc = np.stack([_real_array(z, f"{path}: scores") for z in scores]) if isinstance(scores, (list, tuple)) \
        else _real_array(scores, f"{path}: scores")
    if sc.shape != logits.shape:
        raise ValueError(f"{path}: scores {sc.shape} and logits {logits.shape} differ in shape")
    masked = np.isneginf(sc) & np.isfinite(logits)
    if masked.any():
        t, b, _ = np.argwhere(masked)[0]
        raise ValueError(f"{path}: the saved scores mask tokens that the logits do not (new token {t}, row {b}): the "
                         f"paths were sampled with top-k/top-p (transformers' default top_k is 50), so they are not "
                         f"samples of softmax(logits/T); regenerate with top_k=0, top_p=1.0, or import the scores alone")
    fin = np.isfinite(sc) & np.isfinite(logits)
    diff = np.where(fin, sc - logits / temperature, np.nan)
    spread = np.nanmax(diff, axis=-1) - np.nanmin(diff, axis=-1)
    zmax = float(np.abs(logits[np.isfinite(logits)]).max()) if np.isfinite(logits).any() else 0.0
    tol = 4 * _ROUNDOFF.get(dtype, 2.0 ** -24) * zmax * max(1.0, 1 / temperature) + 1e-4
    if np.nanmax(spread) > tol:
        t, b = np.unravel_index(int(np.nanargmax(spread)), spread.shape)
        raise ValueError(f"{path}: the saved scores are not logits / {temperature:g} (new token {t}, row {b}: they "
                         f"differ by up to {float(spread[t, b]):.3g} beyond a constant): the paths were sampled at "
                         f"another temperature or with penalties/processors; pass the sampling --temperature")


def load_generate_output(path, prompt_length: int | None = None, eos_token_id=None, trust_pickle: bool = False,
                         *, pad_token_id: int | None = None, strip_pads: bool = False,
                         temperature: float = 1.0) -> tuple[list, list, list, dict]:
    r"""Prompts, continuations and target log-probs from a saved ``generate`` output.

    The file holds ``sequences`` (B, L) and ``logits``: from :func:`torch.save`, the
    tuple of ``new_tokens`` tensors (B, V) as ``generate`` returns it (``output_logits``:
    *raw*, before temperature/top-k/top-p); from safetensors, ``torch.stack(out.logits)``
    of shape (new_tokens, B, V). ``scores`` (``output_scores``: *processed* by generate's
    logits processors, the distribution that was sampled) are read when ``logits`` are
    absent; they already hold the temperature, so ``temperature`` must then be 1. With both
    saved, the scores must be ``logits / T`` (checked: :func:`_check_scores` refuses top-k,
    top-p, penalties or another temperature). Target rows are :math:`\log\mathrm{softmax}(z/T)`.

    Optional keys: ``prompt_length`` (default ``L - new_tokens``) and ``attention_mask``
    (B, prompt_length) or (B, L) of the input, whose zeros (left or right padding) are
    dropped from the prompts: generate gave the pads no attention and continued the
    positions of the real tokens, so the unpadded prompt is what the target conditioned on.
    Without a mask, a prompt that begins or ends with ``pad_token_id`` is refused
    (``strip_pads``: those runs are dropped instead) -- never scored as prompt tokens.
    With ``eos_token_id`` (an id or a list; callers pass the model config's), each
    continuation ends at its first EOS (later rows belong to a finished sequence).

    Returns
    -------
    (prompts, tokens, log_probs, info) : lists over the batch; ``log_probs[i]`` has shape
        (T_i, V); ``info`` holds ``logits_key``, ``logits_dtype``, ``rounding`` (the
        half-precision error bound, or None) and ``padding`` (what was done).
    """
    data = load_tensor_file(path, trust_pickle)
    key = "logits" if data.get("logits") is not None else "scores"
    for k in ("sequences", key):
        if k not in data or data[k] is None:
            raise ValueError(f"{path}: no {k!r} in the file (has {sorted(data)}); call generate with "
                             f"output_logits=True, return_dict_in_generate=True")
    if key == "scores" and temperature != 1.0:
        raise ValueError(f"{path}: the file holds 'scores' (output_scores: already processed by generate's "
                         f"temperature/top-k/top-p); --temperature {temperature} would apply the temperature twice")
    seqs = _real_array(data["sequences"], f"{path}: sequences", integer=True).astype(np.int64)
    logits = data[key]
    if isinstance(logits, (list, tuple)):
        if not logits:
            raise ValueError(f"{path}: {key} is an empty list")
        dtype = _dtype_name(logits[0])
        logits = np.stack([_real_array(z, f"{path}: {key}") for z in logits])      # [T, B, V]
    else:
        dtype = _dtype_name(logits)
        logits = _real_array(logits, f"{path}: {key}")
    if seqs.ndim != 2 or logits.ndim != 3 or logits.shape[1] != seqs.shape[0]:
        raise ValueError(f"{path}: sequences {seqs.shape} and {key} {logits.shape} do not fit "
                         f"((B, L) and (new_tokens, B, V))")
    if key == "logits" and data.get("scores") is not None:
        _check_scores(path, logits, data["scores"], temperature, dtype)
    if seqs.size and (seqs.min() < 0 or seqs.max() >= logits.shape[2]):
        raise ValueError(f"{path}: sequences hold token ids outside [0, {logits.shape[2]})")
    plen = _prompt_length(path, data, prompt_length, seqs.shape[1], logits.shape[0])
    mask = _prompt_mask(path, data, seqs.shape, plen)
    eos = [] if eos_token_id is None else [int(e) for e in np.atleast_1d(eos_token_id)]
    prompts, tokens, rows, padding = [], [], [], "none"
    for b in range(seqs.shape[0]):
        pr, done = _unpadded_prompt(path, b, seqs[b, :plen], None if mask is None else mask[b], pad_token_id,
                                    strip_pads)
        padding = done or padding
        cont = seqs[b, plen:]
        n = cont.size
        hits = np.flatnonzero(np.isin(cont, eos)) if eos else np.zeros(0, int)
        if hits.size:
            n = int(hits[0]) + 1
        prompts.append(pr.tolist())
        tokens.append(cont[:n])
        rows.append(log_softmax(logits[:n, b, :], temperature))
    info = {"logits_key": key, "logits_dtype": dtype, "rounding": _rounding(logits, dtype, temperature),
            "padding": padding,
            "log_probs": "raw logits (output_logits) / temperature" if key == "logits" else
            "processed scores (output_scores: after generate's logits processors)",
            "eos_token_id": eos or None}
    return prompts, tokens, rows, info


def _check_records_options(draft_records, temperature, draft_skip, vocab_size, token_strings):
    """Refuse what top-n records cannot give (no draft, a temperature) and malformed options; the
    vocabulary size (``--vocab-size``, else the number of ``--token-strings``, else None)."""
    if draft_records is None:
        raise ValueError("top-n records give only the target; pass the draft's records for the same text "
                         "(--draft-records)")
    if temperature != 1.0:
        raise ValueError(f"--temperature {temperature} cannot be applied to top-n records (re-tempering needs the "
                         f"normaliser of the whole distribution); give the log-probs of the distribution that was "
                         f"sampled (vLLM --logprobs-mode processed_logprobs, llama.cpp post_sampling_probs) and "
                         f"leave --temperature at 1")
    if draft_skip is not None and (isinstance(draft_skip, bool) or not isinstance(draft_skip, int) or draft_skip < 0):
        raise ValueError(f"--draft-skip must be an integer >= 0, got {draft_skip!r}")
    if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1):
        raise ValueError(f"--vocab-size must be an integer >= 1, got {vocab_size!r}")
    if token_strings is not None and vocab_size is not None and len(token_strings) != vocab_size:
        raise ValueError(f"--token-strings lists {len(token_strings)} strings but --vocab-size is {vocab_size}")
    if token_strings is not None and vocab_size is None:
        vocab_size = len(token_strings)
    return vocab_size


def _records_metadata(target_records, draft_records, tgt, drf, per_prefix: bool, key_mode: str) -> dict:
    """The metadata of a log imported from records: sources, shapes, layout, token keys, what the values are."""
    meta = {"source": {"kind": "topn-records", "target": str(target_records), "draft": str(draft_records),
                       "target_shape": sorted({s.shape for s in tgt}), "draft_shape": sorted({s.shape for s in drf}),
                       "draft_layout": "one response per position (per prefix)" if per_prefix else
                       "one response per sequence"},
            "token_keys": key_mode, "temperature": 1.0,
            "logprobs": {"target": sorted({s.logprobs for s in tgt}), "draft": sorted({s.logprobs for s in drf})},
            "logprobs_note": "the intervals are for the distributions these records give: 'raw' log-probs (vLLM's "
                             "default) are before temperature/top-k/top-p and describe the sampling only when the "
                             "server sampled at temperature 1 without truncation"}
    notes = [f"log-probs as the tools returned them (target: {', '.join(meta['logprobs']['target'])}; draft: "
             f"{', '.join(meta['logprobs']['draft'])}); " + meta["logprobs_note"]]
    if key_mode.startswith("strings (assumed"):
        notes.append("token keys are strings assumed to name distinct ids (--assume-distinct-strings; U+FFFD and "
                     "repeated strings were refused): the intervals hold only under that assumption -- return token "
                     "ids or pass --token-strings to make them guaranteed")
    meta["notes"] = notes
    return meta


def _unpadded_prompt(path, b: int, pr: np.ndarray, mask_row, pad_token_id, strip_pads: bool) -> tuple:
    """Row ``b``'s prompt without its padding, and what was done to it (None: nothing).

    With an attention mask its zeros are dropped; without one, pad runs at the prompt's edges
    are refused unless ``strip_pads`` (then dropped).
    """
    if mask_row is not None:
        if not mask_row.any():
            raise ValueError(f"{path}: row {b}: the attention_mask masks the whole prompt")
        done = None if mask_row.all() else "dropped the attention_mask's zeros from the prompts"
        return pr[mask_row], done
    if pad_token_id is None:
        return pr, None
    lead, trail = _pad_runs(pr, int(pad_token_id))
    if not (lead or trail):
        return pr, None
    if not strip_pads:
        side = "starts" if lead else "ends"
        raise ValueError(f"{path}: row {b}: the prompt {side} with {lead or trail} pad token(s) (id "
                         f"{pad_token_id}) and the file has no attention_mask, so the padding cannot be "
                         f"told from the prompt; save 'attention_mask' with the output, or pass "
                         f"--strip-pads to drop pad runs at the prompt's edges")
    pr = pr[lead:pr.size - trail]
    if pr.size == 0:
        raise ValueError(f"{path}: row {b}: the prompt is only pad tokens")
    return pr, f"stripped pad runs (id {pad_token_id}) at the prompts' edges (--strip-pads)"


def _prompt_length(path, data: dict, prompt_length, length: int, n_new: int) -> int:
    """Prompt tokens per row: ``prompt_length``, else the file's, else ``length - n_new``; checked to
    leave exactly the ``n_new`` logit rows of a ``length``-token sequence."""
    if prompt_length is None and "prompt_length" in data:
        pl = _to_numpy(data["prompt_length"])
        if np.ndim(pl) != 0 or np.asarray(pl).dtype.kind not in "iu":
            raise ValueError(f"{path}: prompt_length must be one integer")
        prompt_length = int(pl)
    plen = length - n_new if prompt_length is None else int(prompt_length)
    if plen < 1 or plen + n_new != length:
        raise ValueError(f"{path}: prompt length {plen} + {n_new} logit rows != sequence length {length}")
    return plen


def _prompt_mask(path, data: dict, shape: tuple, plen: int):
    """The file's ``attention_mask`` over the prompts, boolean ``(B, plen)``, or None without one."""
    if data.get("attention_mask") is None:
        return None
    mask = _to_numpy(data["attention_mask"])
    mask = _real_array(mask.astype(np.int64) if mask.dtype.kind == "b" else mask, f"{path}: attention_mask",
                       integer=True)
    if mask.ndim != 2 or mask.shape[0] != shape[0] or mask.shape[1] not in (plen, shape[1]):
        raise ValueError(f"{path}: attention_mask {mask.shape} fits neither (B, prompt_length) = "
                         f"({shape[0]}, {plen}) nor (B, L) = {shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError(f"{path}: attention_mask must hold only 0 and 1")
    return mask[:, :plen].astype(bool)


def _rounding(logits: np.ndarray, dtype: str, temperature: float):
    """The half-precision error bound on the log-probs of ``dtype`` logits, or None for wider dtypes."""
    if dtype not in ("bfloat16", "float16"):
        return None
    u = _ROUNDOFF.get(dtype)
    z = logits[np.isfinite(logits)]
    zmax = float(np.abs(z).max()) if z.size else 0.0
    return {"dtype": dtype, "unit_roundoff": u, "max_abs_logit": zmax,
            "log_prob_error_bound": 2 * u * zmax / temperature,
            "note": f"{dtype} logits: each logit z carries a relative rounding error <= {u:.3g}, so each "
                    f"log-prob is within 2u·max|z|/T = {2 * u * zmax / temperature:.3g} of the float32 "
                    f"model's (rows can differ from float32 by a few 1e-2 in total variation)"}


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

    def arr(x, name, integer=False):
        if isinstance(x, (str, Path)):
            d = load_tensor_file(x)
            if len(d) != 1:
                raise ValueError(f"{name} file {x} holds {len(d)} arrays ({sorted(d)}); give a file with one")
            x = next(iter(d.values()))
        return _real_array(x, name, integer)

    t = _batched(arr(target_logits, "target logits"), "target logits", 3)
    d = _batched(arr(draft_logits, "draft logits"), "draft logits", 3)
    y = _batched(arr(tokens, "tokens", integer=True).astype(np.int64), "tokens", 2)
    if t.shape != d.shape or t.shape[:2] != y.shape:
        raise ValueError(f"shapes do not fit: target {t.shape}, draft {d.shape}, tokens {y.shape}")
    prompts = [[] for _ in range(y.shape[0])] if prompts is None else [list(map(int, p)) for p in prompts]
    meta = {"temperature": float(temperature), "seed": None, "source": {"kind": "arrays"}}
    meta.update(metadata or {})
    return write_log(out, prompts=prompts, tokens=list(y), target_log_probs=[log_softmax(z, temperature) for z in t],
                     draft_log_probs=[log_softmax(z, temperature) for z in d], metadata=meta)


# ----------------------------------------------------------------------------- top-n records
def parse_topn_records(path, vocab_size=None) -> list[list[tuple]]:
    """One list per generated sequence of ``(produced key, its log-prob, [(key, log-prob), ...])`` per position.

    A thin view of :func:`chansim.logs.readers.read_records` (generated sequences only, in
    response and choice order); keys are ids when the records carry them, else strings.
    """
    from .readers import read_records

    return [[(p.token, p.logprob, list(p.listed)) for p in s.positions]
            for resp in read_records(path, vocab_size) for s in resp if s.kind == "generated"]


class _Keys:
    """Token keys of both files -> ids: ids as given; strings through ``token_strings`` or numbered, refused when ambiguous."""

    def __init__(self, token_strings=None, assume_distinct: bool = False):
        self.assume_distinct = assume_distinct
        self.kinds: set = set()
        self.table: dict = {}
        self.by_string = None
        if token_strings is not None:
            self.by_string = {}
            for i, text in enumerate(token_strings):
                self.by_string.setdefault(text, []).append(i)

    def __call__(self, key, where, field="token"):
        self.kinds.add(type(key))
        if len(self.kinds) > 1:
            raise where.error(field, "the records mix token ids and token strings; use one kind (ids)")
        if isinstance(key, int):
            return key
        if self.by_string is not None:
            ids = self.by_string.get(key, [])
            if len(ids) != 1:
                raise where.error(field, f"the token string {key!r} is the decoding of {len(ids)} token ids "
                                           f"in --token-strings{' (' + ', '.join(map(str, ids[:5])) + ', ...)' if len(ids) > 1 else ''}; "
                                           f"the records cannot say which -- return token ids (vLLM: "
                                           f"--return-tokens-as-token-ids)")
            return ids[0]
        if not self.assume_distinct:
            raise where.error(field, f"the records key tokens by strings ({key!r}); different ids can decode to one "
                                     f"string (byte pieces to U+FFFD, SentencePiece '\u2581the' and 'the'), which would "
                                     f"merge them silently -- return token ids (vLLM: --return-tokens-as-token-ids), "
                                     f"or pass --token-strings FILE to check each string names one id, or "
                                     f"--assume-distinct-strings to accept the risk (recorded in the log)")
        if "\ufffd" in key:
            raise where.error(field, f"the token string {key!r} holds U+FFFD, the decoding of an incomplete UTF-8 "
                                       f"byte sequence that many different token ids share; the records cannot say "
                                       f"which id it is -- return token ids (vLLM: --return-tokens-as-token-ids)")
        if key not in self.table:
            self.table[key] = len(self.table)
        return self.table[key]

    @property
    def mode(self) -> str:
        if self.kinds == {str}:
            return "strings (checked unique in --token-strings)" if self.by_string is not None else \
                "strings (assumed distinct ids: --assume-distinct-strings)"
        return "ids"


def _target_sequences(path, responses) -> list:
    """The sampled sequences of the target's records (each choice; an echo response's completion part)."""
    from .readers._types import Scored

    out = []
    for i, resp in enumerate(responses):
        gen = [s for s in resp if s.kind == "generated"]
        if not gen:
            echo = [s for s in resp if s.kind == "prompt" and s.prompt_length is not None]
            if not echo:
                raise ValueError(f"{path}: response {i} holds only prompt log-probs, no generated tokens: the "
                                 f"target's records must be its sampled continuation")
            s = echo[0]
            gen = [Scored(s.positions[s.prompt_length:], s.shape, "generated", s.logprobs, response=i)]
        for s in gen:
            if not s.positions:
                raise ValueError(f"{path}: response {i}, choice {s.choice}: no generated positions")
            if s.processors:
                shown = ", ".join(f"{k} {v}" for k, v in s.processors.items())
                raise ValueError(f"{path}: response {i}: the server sampled with {shown} (generation_settings) but "
                                 f"the records hold raw log-probs, before those settings: the listed law is not the "
                                 f"one the tokens were drawn from -- request post_sampling_probs: true, or sample "
                                 f"with temperature 1, top_k 0, top_p 1, min_p 0 and no penalties")
            s.response = i
            out.append(s)
    return out


def _draft_sequences(responses) -> list:
    """The draft's scored sequences: a prompt-scored one (teacher-forced on the text) where a response has it."""
    out = []
    for i, resp in enumerate(responses):
        prompt = [s for s in resp if s.kind == "prompt"]
        picked = prompt[:1] if prompt else [s for s in resp if s.kind == "generated"]
        for s in picked:
            s.response = i
        out += picked
    return out


def _align(tgt, drf, skip, tpath, dpath) -> int:
    """Offset o such that draft positions o..o+T-1 score the target's T tokens (``skip``, or the unique match)."""
    y = [p.token for p in tgt.positions]
    d = drf.positions

    def fits(o):
        return o + len(y) <= len(d) and all(d[o + t].token == y[t] and d[o + t].scored for t in range(len(y)))

    where = f"{tpath} response {tgt.response} / {dpath} response {drf.response}"
    if skip is not None:
        if not fits(skip):
            raise ValueError(f"{where}: with --draft-skip {skip} the draft's positions do not score the target's "
                             f"{len(y)} tokens")
        return skip
    hits = [o for o in range(len(d) - len(y) + 1) if fits(o)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        o = 0 if len(d) == len(y) else max(0, len(d) - len(y))
        bad = next((t for t in range(len(y)) if o + t >= len(d) or d[o + t].token != y[t] or not d[o + t].scored),
                   len(y) - 1)
        got = "nothing" if o + bad >= len(d) else (f"{d[o + bad].token!r}" if d[o + bad].scored else
                                                    f"{d[o + bad].token!r} without a log-prob")
        raise ValueError(f"{where}: {len(y)} target positions but the draft's record ({drf.shape}, {len(d)} "
                         f"positions) never scores them in order (position {bad}: target produced {y[bad]!r} "
                         f"but the draft record scores {got}); the draft must be scored on the target's text")
    raise ValueError(f"{where}: the target's tokens occur at {len(hits)} offsets of the draft's scored text "
                     f"({hits[:4]}); pass --draft-skip (number of the draft's leading prompt positions)")


def import_topn_records(target_records, out, *, draft_records=None, vocab_size=None, prompts=None,
                        metadata: dict | None = None, draft_skip: int | None = None, token_strings=None,
                        assume_distinct_strings: bool = False, temperature: float = 1.0) -> Path:
    r"""Top-n log-prob records of target and draft -> truncated log (:mod:`chansim.logs.truncated`).

    ``target_records``: the target's responses (every shape of :mod:`chansim.logs.readers`;
    ``n > 1`` choices are one sequence each, in ``index`` order). ``draft_records``: the
    draft's scores of the *same text*, in one of two layouts:

    * one response per target sequence (same order), scoring its tokens teacher-forced:
      vLLM ``prompt_logprobs`` / legacy ``echo`` (the prompt + the target's continuation sent
      as the prompt), TGI ``prefill``, SGLang ``input_*``, or records whose produced tokens
      equal the target's. The continuation is found in the draft's scored text by its
      tokens; ``draft_skip`` fixes the number of leading prompt positions to drop instead;
    * one response per target *position* (llama.cpp scored one request per prefix,
      ``n_predict: 1``): assembled by position; each response's own produced token is the
      draft's sample, an extra known value; q(y) is known when y is in its list, otherwise
      it lies in [0, min(floor, tail)] (docs/log-format.md).

    Heads and floors: :func:`chansim.logs.truncated.record_head`. Token keys are ids, or
    strings mapped through ``token_strings`` (the decoded string of every id, as the tool
    writes them; a string naming several ids is refused). Without ``token_strings``,
    string keys are refused unless ``assume_distinct_strings``: then they are numbered in
    order of appearance, the strings known to be ambiguous (U+FFFD; the same string twice
    in one list) are still refused, and the log's notes record the assumption.

    ``temperature`` must be 1: records hold the server's log-probs, and re-tempering a
    top-n list needs the whole distribution's normaliser (refused otherwise, never ignored).
    The metadata records what the values are (``logprobs``: raw, post-sampling, ...).
    """
    from .readers import read_records
    from .readers._door import Where
    from .truncated import record_head, write_truncated_log

    vocab_size = _check_records_options(draft_records, temperature, draft_skip, vocab_size, token_strings)
    tgt = _target_sequences(target_records, read_records(target_records, vocab_size))
    drf = _draft_sequences(read_records(draft_records, vocab_size))
    n_pos = sum(len(s.positions) for s in tgt)
    # one single-position draft response per target position: per prefix (when the counts of sequences and
    # positions agree, every T_i = 1, the stricter reading wins: the draft must score the target's tokens)
    per_prefix = len(drf) != len(tgt) and len(drf) == n_pos and all(len(s.positions) == 1 for s in drf)
    if len(drf) != len(tgt) and not per_prefix:
        raise ValueError(f"{len(tgt)} target sequences ({target_records}) but {len(drf)} draft responses "
                         f"({draft_records}); give one draft response per target sequence (scoring its text) or one "
                         f"per target position (a request per prefix, {n_pos} in all)")
    keys = _Keys(token_strings, assume_distinct_strings)
    tokens, th, dh = [], [], []
    k = 0
    for i, ts in enumerate(tgt):
        if per_prefix:
            dpos = [drf[k + t].positions[0] for t in range(len(ts.positions))]
            dwhere = [Where(draft_records, drf[k + t].response, 0, vocab_size) for t in range(len(ts.positions))]
            k += len(ts.positions)
        else:
            o = _align(ts, drf[i], draft_skip, target_records, draft_records)
            dpos = drf[i].positions[o:o + len(ts.positions)]
            dwhere = [Where(draft_records, drf[i].response, o + t, vocab_size) for t in range(len(ts.positions))]
        seq = []
        for t, (tp, dp) in enumerate(zip(ts.positions, dpos)):
            tw = Where(target_records, ts.response, t, vocab_size)
            y = keys(tp.token, tw)
            seq.append(y)
            for pos, w, side, acc in ((tp, tw, "target", th), (dp, dwhere[t], "draft", dh)):
                head_keys, lps, floor = record_head(pos, w, side)
                acc.append(([keys(h, w, "token" if h == pos.token else "top list") for h in head_keys], lps, floor))
        tokens.append(seq)
    meta = _records_metadata(target_records, draft_records, tgt, drf, per_prefix, keys.mode)
    meta.update(metadata or {})
    return write_truncated_log(out, prompts=prompts or [[] for _ in tokens], tokens=tokens, target_heads=th,
                               draft_heads=dh, metadata=meta, vocab_size=vocab_size)
