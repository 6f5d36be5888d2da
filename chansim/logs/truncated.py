r"""Truncated (top-n) logs and the guaranteed intervals they give.

Servers (vLLM, OpenAI-compatible APIs, llama.cpp) return only the n most likely tokens
of each distribution with their log-probabilities, plus the log-probability of the token
actually produced.  A *truncated log* keeps exactly that, for the target :math:`p_t` and
the draft :math:`q_t` at every position t of target-sampled continuations; everything
else (the *tail*) is unknown.  Predictions then become intervals that are guaranteed to
contain the value of every full distribution consistent with what is known
(docs/log-format.md, "Intervals from truncated logs", has the proofs).

What is known at a row (one side, say p)
----------------------------------------
* head ids :math:`S` and their probabilities :math:`p(x), x\in S` (the top-n entries
  and the produced token);
* the floor :math:`m_p`: every token outside S has :math:`p(x)\le m_p` (the n-th largest
  value of a top-n list; 0 when the head is the whole vocabulary);
* hence the tail mass :math:`r_p = 1-\sum_{x\in S}p(x)`.

The head model of real records (:func:`record_head`)
----------------------------------------------------
A tool's list mixes two kinds of entries: *ranked* ones (the top-n of the distribution,
so every unlisted token is at most as likely as the least likely of them) and the
*produced* token, which vLLM puts first whether or not it is in the top-n (chat keeps the
first n items, so the n-th ranked token is then dropped; legacy completions keep n+1).
The floor is therefore the smallest *ranked* value, never the produced token's: when the
produced token is outside the top-n its probability is an extra known value, usually far
below the ranked ones, and taking it as the floor is false for the dropped n-th token
(and for every other unlisted token above it).

File format (``chansim-llm-topn-log``, version 1)
-------------------------------------------------
An ``.npz`` archive like a full log (:mod:`chansim.logs.format`) with ``format``,
``format_version``, ``metadata``, ``prompt_ids``, ``prompt_offsets``, ``tokens``,
``token_offsets`` and, instead of full log-prob matrices, for ``side`` in target, draft:

====================== ================ =================================================
``{side}_ids``         int64, (N, n)    head token ids per row, ``-1`` pads
``{side}_log_probs``   float32, (N, n)  their log-probabilities, ``-inf`` on pads
``{side}_floor``       float64, (N,)    upper bound on any probability outside the head
====================== ================ =================================================

Each row's head must contain the logged token on the target side (its probability is
what the target sampled).  The metadata holds ``vocab_size`` (``null`` if unknown).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .format import LogError, LoggedSequences, _offsets, _standard_metadata
from ..verify.registry import METHODS, default_methods, get_method, method_names

__all__ = ["TOPN_FORMAT", "TruncatedLog", "record_head", "write_truncated_log", "read_truncated_log", "truncate_log",
           "is_truncated_log", "acceptance_bounds", "sd_path_acceptance_bounds", "specinfer_path_acceptance_bounds",
           "predict_interval", "INTERVAL_METHODS", "truncation_widths", "format_truncation_widths", "expected_calls_interval",
           "truncated_report", "format_truncated_report"]

TOPN_FORMAT = "chansim-llm-topn-log"
_MASS_TOL = 1e-3          # head masses above 1 + this are rejected (float32 log-probs from servers)
_TOPN_KEYS = ("format", "format_version", "metadata", "prompt_ids", "prompt_offsets", "tokens", "token_offsets",
              "target_ids", "target_log_probs", "target_floor", "draft_ids", "draft_log_probs", "draft_floor")


class TruncatedLog(LoggedSequences):
    """Heads of p and q along logged paths (module docstring); build with :func:`read_truncated_log`.

    Attributes
    ----------
    prompts : list of list of int
    tokens : list of ndarray of int64, shape (T_i,)
    offsets : ndarray of int64, shape (n_sequences + 1,)
    heads : dict
        ``{"target": (ids [N, n_t], probs [N, n_t], floor [N]), "draft": (...)}``; pads have id -1, prob 0.
    metadata : dict
    """

    def __init__(self, path, metadata, prompts, tokens, offsets, heads):
        super().__init__(path, metadata, prompts, tokens, offsets)
        self.heads = heads

    @property
    def vocab_size(self):
        return self.metadata.get("vocab_size")

    def __repr__(self) -> str:
        return (f"TruncatedLog({str(self.path)!r}, sequences={self.n_sequences}, positions={self.n_positions}, "
                f"n = {self.heads['target'][0].shape[1]}/{self.heads['draft'][0].shape[1]})")


def _pad_rows(rows_ids: Sequence, rows_lp: Sequence) -> tuple[np.ndarray, np.ndarray]:
    width = max(1, max(len(r) for r in rows_ids))
    ids = np.full((len(rows_ids), width), -1, dtype=np.int64)
    lp = np.full((len(rows_ids), width), -np.inf, dtype=np.float64)
    for i, (a, b) in enumerate(zip(rows_ids, rows_lp)):
        ids[i, :len(a)] = a
        lp[i, :len(b)] = b
    return ids, lp


def _check_side(name: str, ids: np.ndarray, lp: np.ndarray, floor: np.ndarray, vocab) -> None:
    if ids.shape != lp.shape or ids.ndim != 2 or floor.shape != ids.shape[:1]:
        raise ValueError(f"{name}: ids {ids.shape}, log-probs {lp.shape} and floor {floor.shape} do not match")
    if np.any(ids < -1):
        raise ValueError(f"{name}: negative token id {int(ids.min())} (only -1 marks a pad)")
    real = ids >= 0
    if np.any(np.isnan(lp)) or np.any(lp[real] > 1e-6) or np.any(np.isposinf(lp)):
        raise ValueError(f"{name}: log-probabilities must be <= 0 (no NaN)")
    if vocab is not None and np.any(ids >= vocab):
        raise ValueError(f"{name}: token id {int(ids.max())} outside the vocabulary [0, {vocab})")
    srt = np.sort(np.where(real, ids, -1 - np.arange(ids.shape[1])), axis=1)
    if np.any(np.diff(srt, axis=1) == 0):
        r = int(np.flatnonzero((np.diff(srt, axis=1) == 0).any(1))[0])
        raise ValueError(f"{name}: row {r} lists a token id twice")
    mass = np.where(real, np.exp(np.minimum(lp, 0.0)), 0.0).sum(1)
    if np.any(mass > 1 + _MASS_TOL):
        r = int(np.flatnonzero(mass > 1 + _MASS_TOL)[0])
        raise ValueError(f"{name}: row {r} has head mass {mass[r]:.6f} > 1: these are not log-probabilities")
    if np.any(~(floor >= 0)) or np.any(floor > 1):
        raise ValueError(f"{name}: floor must lie in [0, 1]")


_LP_AGREE = 1e-5          # produced token's log-prob vs its list entry: same float, up to JSON/float32 rounding


def record_head(pos, where, side: str = "target") -> tuple[list, list, float]:
    r"""The head (known values) and the floor of one scored position of a tool's record.

    ``pos`` is a :class:`chansim.logs.readers.Position`; ``where`` a
    :class:`chansim.logs.readers._door.Where` (for the errors).  Rules:

    * **ranked entries**: with ranks (vLLM ``Logprob.rank``), the entries of ranks
      :math:`1..K` for the largest K with no gap; for a top-n-only list (llama.cpp, TGI,
      SGLang, ``pos.ranked_only``), all entries; otherwise (vLLM / OpenAI), every entry but
      the produced token's, which may sit in the list without being ranked;
    * **floor** :math:`m = \max_{x\notin S} p(x) \le \min_{\text{ranked}} p`: the ranked
      entries are the top-k of the distribution for some k, so every unlisted token is at
      most the least likely of them; 1 (no information) when there is no ranked entry;
    * **sentinels**: ``-inf``, vLLM's ``-9999.0`` and llama.cpp's lowest float (read as
      ``-inf`` by the door) are probability 0; an empty list is no ranked entry;
    * the **produced token** joins the head with its own log-prob (an extra known value
      when it is not ranked); its list entry, if any, must carry the same value; on the
      target side it must be known and > 0 (the target sampled it);
    * a key listed twice is refused: for strings, two ids that decode alike (the records
      cannot say which is which); for a top-n-only list, a produced token outside the
      list must not be more likely than the floor; and the unlisted mass
      :math:`1 - \sum_S p` must fit under the floor, :math:`\le m\,(V - |S|)` (with V
      unknown: :math:`m = 0` forces it to 0), otherwise no distribution has these values.

    Returns ``(keys, log_probs, floor)``: the head's keys (ids or strings, produced token
    included when known), their log-probs, and the floor (a probability in [0, 1]).

    >>> from chansim.logs.readers import Position
    >>> from chansim.logs.readers._door import Where
    >>> import math
    >>> pos = Position(7, math.log(.01), ((7, math.log(.01)), (0, math.log(.6)), (1, math.log(.3))))
    >>> keys, lps, floor = record_head(pos, Where("t.jsonl"))   # vLLM chat, n = 3, produced outside the top 3
    >>> keys, round(floor, 6)
    ([7, 0, 1], 0.3)
    """
    import math

    listed = _listed_once(pos, where)
    ranked = _ranked_values(pos, listed)
    floor = math.exp(min(ranked)) if ranked else 1.0
    if pos.logprob is not None:
        if pos.token in listed and abs(listed[pos.token] - pos.logprob) > _LP_AGREE * max(1.0, abs(pos.logprob)) \
                and not (math.isinf(pos.logprob) and math.isinf(listed[pos.token])):
            raise where.error("logprob", f"the produced token {pos.token!r} has log-prob {pos.logprob!r} but its list "
                                         f"entry says {listed[pos.token]!r}")
        if pos.ranked_only and pos.token not in listed and ranked and math.exp(pos.logprob) > floor * (1 + 1e-4) + 1e-9:
            raise where.error("logprob", f"the produced token {pos.token!r} (log-prob {pos.logprob:.6g}) is not listed "
                                         f"but is more likely than a listed one ({math.log(floor):.6g}): the list is "
                                         f"not the top-n of this distribution")
        listed[pos.token] = pos.logprob
    if side == "target":
        if pos.logprob is None:
            raise where.error("logprob", f"the record gives no probability for the produced token {pos.token!r} (it "
                                         f"is outside the listed top-n: llama.cpp's old 'probs' shape); the target's "
                                         f"p(y) is needed -- use a llama.cpp with per-token 'logprob' or a larger "
                                         f"n_probs")
        if pos.logprob == -math.inf:
            raise where.error("logprob", f"the target's produced token {pos.token!r} has probability 0 (log-prob -inf "
                                         f"or a sentinel such as vLLM's -9999.0): these log-probs are not the "
                                         f"distribution it was sampled from")
    _check_mass(listed, floor, where)
    return list(listed), list(listed.values()), floor


def _listed_once(pos, where) -> dict:
    """The position's top list as ``{key: log-prob}``, refusing a key listed twice."""
    listed = {}
    for k, lp in pos.listed:
        if k in listed:
            if isinstance(k, str):
                raise where.error("top list", f"lists the token string {k!r} twice: two different token ids decode "
                                              f"to it and the records cannot say which is which -- return token ids "
                                              f"(vLLM: --return-tokens-as-token-ids; llama.cpp, TGI and SGLang give ids)")
            raise where.error("top list", f"lists token id {k} twice")
        listed[k] = lp
    return listed


def _ranked_values(pos, listed: dict) -> list:
    """The log-probs of the ranked entries (:func:`record_head`'s first rule)."""
    if pos.ranks is not None and all(r is not None for r in pos.ranks):
        have = set(pos.ranks)
        top_k = 0
        while top_k + 1 in have:
            top_k += 1
        return [lp for (_, lp), r in zip(pos.listed, pos.ranks) if r <= top_k]
    if pos.ranked_only:
        return list(listed.values())
    return [lp for k, lp in listed.items() if k != pos.token]


def _check_mass(listed: dict, floor: float, where) -> None:
    """Refuse a head whose mass exceeds 1 or leaves the unlisted tokens more than the floor allows."""
    import math

    mass = sum(math.exp(v) for v in listed.values())
    if mass > 1 + _MASS_TOL:
        raise where.error("top list", f"listed probabilities sum to {mass:.6f} > 1: these are not log-probabilities "
                                      f"of one distribution")
    room = floor * (where.vocab_size - len(listed)) if where.vocab_size is not None else (math.inf if floor > 0 else 0.0)
    if 1 - mass > room + _MASS_TOL:
        raise where.error("top list", f"the listed probabilities leave mass {1 - mass:.6f} to the unlisted tokens, "
                                      f"but the ranked values allow at most {room:.6g} (each unlisted token <= "
                                      f"{floor:.6g}): the list is not the top-n of this distribution")


def write_truncated_log(path, *, prompts, tokens, target_heads, draft_heads, metadata: dict,
                        vocab_size: int | None = None) -> Path:
    """Write a truncated log (module docstring).

    Parameters
    ----------
    prompts, tokens : list of list of int
        As in :func:`chansim.logs.format.write_log`.
    target_heads, draft_heads : list of (ids, log_probs, floor)
        One entry per *position* (all sequences concatenated): the head token ids, their
        log-probabilities and the floor (upper bound on every probability outside the head).
    metadata : dict
    vocab_size : int, optional
        Size of the vocabulary (``None``: unknown, intervals then allow any size).

    Raises
    ------
    ValueError
        Inconsistent sizes, log-probs > 0, duplicated ids, a head mass above 1, or a logged
        token missing from its target head.
    """
    path = Path(path)
    tok = [np.asarray(t, dtype=np.int64).reshape(-1) for t in tokens]
    if not tok or len(prompts) != len(tok) or any(t.size == 0 for t in tok):
        raise ValueError("need one non-empty continuation per prompt")
    n_pos = int(sum(t.size for t in tok))
    arrays = {}
    for side, heads in (("target", target_heads), ("draft", draft_heads)):
        if len(heads) != n_pos:
            raise ValueError(f"{side} heads: {len(heads)} rows for {n_pos} positions")
        ids, lp = _pad_rows([np.asarray(h[0], np.int64) for h in heads], [np.asarray(h[1], float) for h in heads])
        floor = np.asarray([float(h[2]) for h in heads])
        _check_side(side, ids, lp, floor, vocab_size)
        arrays[f"{side}_ids"], arrays[f"{side}_log_probs"], arrays[f"{side}_floor"] = ids, lp.astype(np.float32), floor
    all_tok = np.concatenate(tok)
    hit = (arrays["target_ids"] == all_tok[:, None]).any(1)
    if not hit.all():
        r = int(np.flatnonzero(~hit)[0])
        raise ValueError(f"position {r}: the logged token {int(all_tok[r])} is not in the target head "
                         f"(its log-probability is needed)")
    meta = dict(metadata)
    meta["vocab_size"] = vocab_size
    std = _standard_metadata(len(tok), n_pos, vocab_size, {k: v for k, v in meta.items() if k != "vocab_size"})
    meta.update({**std, "format": TOPN_FORMAT})
    from .format import _check_metadata

    _check_metadata(path, meta)
    pr = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    arrays.update({
        "format": np.array(TOPN_FORMAT), "format_version": np.array(1, dtype=np.int64),
        "metadata": np.array(json.dumps(meta, allow_nan=False, sort_keys=True)),
        "prompt_ids": (np.concatenate(pr) if sum(p.size for p in pr) else np.zeros(0, np.int64)).astype(np.int64),
        "prompt_offsets": _offsets([p.size for p in pr]), "tokens": all_tok,
        "token_offsets": _offsets([t.size for t in tok]),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..common.outputs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:   # whole or nothing (an interrupt keeps the old file)
        np.savez_compressed(f, **arrays)
    return path


def is_truncated_log(path) -> bool:
    """True if ``path`` is an ``.npz`` whose ``format`` is :data:`TOPN_FORMAT`."""
    import zipfile
    import zlib

    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            return "format" in npz.files and str(npz["format"][()]) == TOPN_FORMAT
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return False


def read_truncated_log(path) -> TruncatedLog:
    """Read and check a truncated log written by :func:`write_truncated_log`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: truncated log not found")
    if not path.is_file():
        raise LogError(f"{path}: not a regular file")
    import zipfile
    import zlib

    from .format import _check_metadata, _check_offsets

    try:
        with np.load(path, allow_pickle=False) as npz:
            arr = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise LogError(f"{path}: not a readable .npz, truncated or corrupt ({type(err).__name__}: {err})") from None
    if str(arr.get("format", np.array(""))[()]) != TOPN_FORMAT:
        raise LogError(f"{path}: format is not {TOPN_FORMAT!r}")
    missing = [k for k in _TOPN_KEYS if k not in arr]
    if missing:
        raise LogError(f"{path}: missing key(s) {', '.join(missing)} (has: {', '.join(sorted(arr))})")
    try:
        meta = json.loads(str(arr["metadata"][()]))
    except json.JSONDecodeError as err:
        raise LogError(f"{path}: metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise LogError(f"{path}: metadata must be a JSON object")
    _check_metadata(path, meta)
    vocab = meta.get("vocab_size")
    if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1):
        raise LogError(f"{path}: metadata vocab_size must be an integer >= 1 or null, got {vocab!r}")
    for k in ("tokens", "token_offsets", "prompt_ids", "prompt_offsets", "target_ids", "draft_ids"):
        if arr[k].dtype.kind not in "iu":
            raise LogError(f"{path}: {k!r} must be an integer array, got {arr[k].dtype}")
    for k in ("target_log_probs", "draft_log_probs", "target_floor", "draft_floor"):
        if arr[k].dtype.kind != "f":
            raise LogError(f"{path}: {k!r} must be a float array, got {arr[k].dtype}")
    toff, poff = arr["token_offsets"].astype(np.int64), arr["prompt_offsets"].astype(np.int64)
    tokens = arr["tokens"].astype(np.int64)
    _check_offsets(path, "token_offsets", toff, tokens.size)
    _check_offsets(path, "prompt_offsets", poff, arr["prompt_ids"].size)
    for key, val in (("n_sequences", toff.size - 1), ("n_positions", tokens.size)):
        if key in meta and meta[key] != val:
            raise LogError(f"{path}: metadata {key} {meta[key]!r} disagrees with the arrays ({val})")
    if poff.size != toff.size or np.any(np.diff(toff) == 0):
        raise LogError(f"{path}: {poff.size - 1} prompts for {toff.size - 1} continuations, or an empty continuation")
    heads = {}
    for side in ("target", "draft"):
        ids, lp, floor = arr[f"{side}_ids"], arr[f"{side}_log_probs"].astype(np.float64), arr[f"{side}_floor"]
        try:
            _check_side(side, ids, lp, floor, vocab)
        except ValueError as err:
            raise LogError(f"{path}: {err}") from None
        if ids.shape[0] != tokens.size:
            raise LogError(f"{path}: {side} heads have {ids.shape[0]} rows for {tokens.size} tokens")
        heads[side] = (ids, np.where(ids >= 0, np.exp(np.minimum(lp, 0.0)), 0.0), floor.astype(np.float64))
    hit = heads["target"][0] == tokens[:, None]
    if not hit.any(1).all() or np.any(np.where(hit, heads["target"][1], 1.0).min(1) <= 0):
        r = int(np.flatnonzero(~hit.any(1) | (np.where(hit, heads["target"][1], 1.0).min(1) <= 0))[0])
        raise LogError(f"{path}: position {r}: the logged token {int(tokens[r])} has no positive target "
                       f"probability in its head (the target could not have sampled it)")
    prompts = [arr["prompt_ids"][poff[i]:poff[i + 1]].tolist() for i in range(poff.size - 1)]
    toks = [tokens[toff[i]:toff[i + 1]] for i in range(toff.size - 1)]
    return TruncatedLog(path, meta, prompts, toks, toff, heads)


def truncate_log(run, n: int, draft_token: bool = True) -> TruncatedLog:
    """Keep the top-``n`` of p and q (plus the logged token: always for p, for q if ``draft_token``), in memory.

    This is what a server returning ``top_logprobs = n`` plus the sampled token's log-prob
    (and the draft scored teacher-forced on the same text, e.g. vLLM ``prompt_logprobs``,
    which include the scored token) would give; ``draft_token=False`` models a draft
    record with the top-n only.
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = min(int(n), run.vocab_size)
    heads = {}
    all_tok = np.concatenate(run.tokens)
    rows = np.arange(all_tok.size)
    for side, lp16 in (("target", run.target_log_probs), ("draft", run.draft_log_probs)):
        probs = np.concatenate([np.exp(lp16[a:b].astype(np.float64)) for a, b in zip(run.offsets[:-1], run.offsets[1:])])
        probs /= probs.sum(1, keepdims=True)                     # the reader's renormalised rows
        top = np.argpartition(-probs, n - 1, axis=1)[:, :n]      # [N, n]
        floor = probs[rows[:, None], top].min(1) if n < run.vocab_size else np.zeros(rows.size)
        extra = ~(top == all_tok[:, None]).any(1) & (side == "target" or draft_token)
        ids = np.concatenate([top, np.where(extra, all_tok, -1)[:, None]], axis=1)
        p = np.where(ids >= 0, probs[rows[:, None], np.maximum(ids, 0)], 0.0)
        heads[side] = (ids, p, floor)
    meta = {"vocab_size": run.vocab_size, "truncated_from": str(run.path), "top_n": n,
            "temperature": run.metadata.get("temperature")}
    return TruncatedLog(run.path, meta, run.prompts, run.tokens, run.offsets, heads)


# ----------------------------------------------------------------------------- bounds
def _aligned(ids_a, pa, ids_b):
    """pa re-indexed on ids_b's columns: value where the id is in a's head, NaN otherwise. Shape of ids_b.

    Rows are processed in chunks of at most ~4M (row, b, a) comparisons (bounded memory).
    """
    out = np.full(ids_b.shape, np.nan)
    step = max(1, (1 << 22) // max(1, ids_a.shape[1] * ids_b.shape[1]))
    for lo in range(0, ids_b.shape[0], step):
        a, b, v = ids_a[lo:lo + step], ids_b[lo:lo + step], pa[lo:lo + step]
        match = (b[:, :, None] == a[:, None, :]) & (b[:, :, None] >= 0)          # [rows, nb, na]
        out[lo:lo + step] = np.where(match.any(2), (match * v[:, None, :]).sum(2), np.nan)
    return out


def acceptance_bounds(log: TruncatedLog, scale=1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Guaranteed interval of :math:`\beta_t=\sum_x\min(p_t(x),q_t(x))` per position, shapes (N,), (N,).

    With :math:`K = S_p\cap S_q` (both known), :math:`A = S_p\setminus S_q`, :math:`B = S_q\setminus S_p`:

    * lower: :math:`\sum_K \min(p,q)` (every unknown term is :math:`\ge 0`);
    * upper: :math:`\sum_K\min(p,q) + \min(a + r_p,\ b + r_q,\ a + b + \min(r_p, r_q))` with
      :math:`a = \min(\sum_A\min(p,m_q), r_q)`, :math:`b = \min(\sum_B\min(q,m_p), r_p)`

    (proof: docs/log-format.md).  Exact when both heads are the whole vocabulary.
    With ``scale`` s (a number or shape (N,)), the same for :math:`\sum_x\min(p(x), s\,q(x))`
    (q, its floor and its tail all scale by s), used by :func:`specinfer_path_acceptance_bounds`.
    """
    ids_p, p, mp = log.heads["target"]
    ids_q, q, mq = log.heads["draft"]
    s = np.broadcast_to(np.asarray(scale, dtype=float), mp.shape)
    q, mq = q * s[:, None], mq * s
    q_on_p = _aligned(ids_q, q, ids_p)                       # [N, n_p]
    p_on_q = _aligned(ids_p, p, ids_q)                       # [N, n_q]
    both = ~np.isnan(q_on_p)
    known = np.where(both, np.minimum(p, np.nan_to_num(q_on_p)), 0.0).sum(1)
    a_only = (ids_p >= 0) & ~both
    b_only = (ids_q >= 0) & np.isnan(p_on_q)
    rp = np.clip(1.0 - p.sum(1), 0.0, 1.0)
    rq = s * np.clip(1.0 - log.heads["draft"][1].sum(1), 0.0, 1.0)
    a = np.minimum(np.where(a_only, np.minimum(p, mq[:, None]), 0.0).sum(1), rq)   # Σ_A min(p, q) <= a
    b = np.minimum(np.where(b_only, np.minimum(q, mp[:, None]), 0.0).sum(1), rp)   # Σ_B min(p, q) <= b
    upper = known + np.minimum.reduce([a + rp, b + rq, a + b + np.minimum(rp, rq)])
    return known, np.minimum(upper, 1.0)


def _token_probs(log: TruncatedLog, side: str):
    """(value, known) of the logged token's probability on one side, shapes (N,)."""
    ids, probs, _ = log.heads[side]
    y = np.concatenate(log.tokens)
    hit = ids == y[:, None]
    return np.where(hit, probs, 0.0).sum(1), hit.any(1)


def specinfer_path_acceptance_bounds(log: TruncatedLog, m: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Interval of specinfer's :math:`c_t` with m i.i.d. drafts (:func:`chansim.predict.specinfer_path_acceptance`).

    The unnormalised residual after j rounds is :math:`R_j = (p - s_j q)_+` with
    :math:`s_1 = 1`, :math:`s_{j+1} = s_j + G(s_j)`, :math:`G(s) = \sum_x (p - s q)_+ = 1 - \sum_x\min(p, s q)`
    (induction: :math:`(R_j - q|R_j|)_+ = (p - (s_j + |R_j|) q)_+`), so
    :math:`c = 1 - (p(y) - s_m q(y))_+ / p(y)`.  :math:`s \mapsto s + G(s)` is non-decreasing
    (:math:`G' \ge -1`), so the bounds of :func:`acceptance_bounds` with scale s propagate an
    interval :math:`[s^-_j, s^+_j]`; c is non-decreasing in :math:`s_m` and :math:`q(y)`.
    m = 1 gives :func:`sd_path_acceptance_bounds`.
    """
    if int(m) < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    py, _ = _token_probs(log, "target")
    qy, q_known = _token_probs(log, "draft")
    q_lo = np.where(q_known, qy, 0.0)
    q_hi = np.where(q_known, qy, np.minimum(log.heads["draft"][2], np.clip(1 - log.heads["draft"][1].sum(1), 0, 1)))
    s_lo = np.ones_like(py)
    s_hi = np.ones_like(py)
    for _ in range(int(m) - 1):
        _, hi_at_lo = acceptance_bounds(log, s_lo)          # G(s_lo) >= 1 - upper bound of Σmin(p, s_lo q)
        lo_at_hi, _ = acceptance_bounds(log, s_hi)
        s_lo, s_hi = s_lo + np.clip(1.0 - hi_at_lo, 0, None), s_hi + np.clip(1.0 - lo_at_hi, 0, None)
    c_lo = 1.0 - np.maximum(py - s_lo * q_lo, 0.0) / py
    c_hi = 1.0 - np.maximum(py - s_hi * q_hi, 0.0) / py
    return np.clip(c_lo, 0.0, 1.0), np.clip(c_hi, 0.0, 1.0)


def sd_path_acceptance_bounds(log: TruncatedLog) -> tuple[np.ndarray, np.ndarray]:
    r"""Interval of :math:`c_t=\min(1, q_t(y_t)/p_t(y_t))` (sd on a chain, :mod:`chansim.predict`), shapes (N,).

    :math:`p_t(y_t)` is always known; :math:`q_t(y_t)` is known when :math:`y_t` is in the
    draft head and otherwise lies in :math:`[0, m_q]`.
    """
    return specinfer_path_acceptance_bounds(log, 1)


def expected_calls_interval(accept_lo: np.ndarray, accept_hi: np.ndarray) -> tuple[float, float]:
    r"""Guaranteed [min, max] of expected target calls over every acceptance table in the box ``[lo, hi]``.

    ``accept_lo``, ``accept_hi`` shape (D, T) (as :func:`chansim.predict.expected_calls`).
    Interval arithmetic on the backward recursion: inside one call, with reach depth d,
    :math:`g(d) = (1-c_d) f(t+d+1) + c_d\, g(d+1)`, :math:`g(D) = f(t+D+1)`, is linear in
    :math:`c_d` and increasing in :math:`g(d+1)` and every :math:`f`, so its extremes over the
    box take the extreme endpoint of each :math:`c_d` given the extremes of what follows.
    Each call's :math:`c` values are optimised separately (an outer bound: it contains the
    value of every consistent table; equal to it when ``lo == hi``).

    >>> lo = hi = np.full((1, 4), 0.5)
    >>> from chansim.predict import expected_calls
    >>> expected_calls_interval(lo, hi)[0] == float(expected_calls(lo)[0])
    True
    """
    lo_c = np.asarray(accept_lo, float)
    hi_c = np.asarray(accept_hi, float)
    if lo_c.shape != hi_c.shape or lo_c.ndim != 2 or np.any(lo_c > hi_c + 1e-15):
        raise ValueError("accept_lo and accept_hi must have one shape (D, T) with lo <= hi")
    depth, length = lo_c.shape
    f_min = np.zeros(length + 1)
    f_max = np.zeros(length + 1)
    for t in range(length - 1, -1, -1):
        g_min, g_max = f_min[min(t + depth + 1, length)], f_max[min(t + depth + 1, length)]
        for d in range(depth - 1, -1, -1):
            nxt = min(t + d + 1, length)
            if t + d >= length:                                  # past the end of the path: stop there
                g_min, g_max = f_min[nxt], f_max[nxt]
                continue
            ends = (lo_c[d, t + d], hi_c[d, t + d])
            g_min = min((1 - c) * f_min[nxt] + c * g_min for c in ends)
            g_max = max((1 - c) * f_max[nxt] + c * g_max for c in ends)
        f_min[t] = 1.0 + g_min
        f_max[t] = 1.0 + g_max
    return float(f_min[0]), float(f_max[0])


#: methods with a guaranteed interval, and on which trees ("chains" or "depth-only"), from the registry
INTERVAL_METHODS = {name: cls.truncated_intervals for name, cls in METHODS.items() if cls.truncated_intervals}


def predict_interval(log: TruncatedLog, method: str, tree_spec) -> dict:
    """Guaranteed [low, high] of tokens per target call of ``method`` on ``tree_spec`` for the logged paths.

    Per position and depth, the acceptance :math:`c^{(d)}_t` lies in the interval of
    :func:`specinfer_path_acceptance_bounds` (width ``widths[d]``; sd and, on chains,
    rsd/spectr are the width-1 case), and :func:`expected_calls_interval` turns those boxes
    into calls per sequence; tokens per call = total tokens / total calls.

    Raises
    ------
    ValueError
        For a method/tree without a guaranteed interval (ersd; rsd and spectr with more than
        one draft per node), naming why.
    """
    from .predict import tree_widths

    widths = tree_widths(tree_spec)
    if method not in INTERVAL_METHODS:
        raise ValueError(f"no guaranteed interval for {method!r} from top-n heads: its acceptance depends on the "
                         f"whole tail through races (methods with intervals: {', '.join(INTERVAL_METHODS)})")
    if INTERVAL_METHODS[method] == "chains" and any(w > 1 for w in widths):
        raise ValueError(f"{method} on {tree_spec} has no guaranteed interval from top-n heads (only on chains, "
                         f"where it is sd)")
    bounds = {w: specinfer_path_acceptance_bounds(log, w) for w in set(widths)}
    lo = np.stack([bounds[w][0] for w in widths]) if widths else np.zeros((0, log.n_positions))
    hi = np.stack([bounds[w][1] for w in widths]) if widths else np.zeros((0, log.n_positions))
    calls_lo = calls_hi = 0.0
    for a, b in zip(log.offsets[:-1], log.offsets[1:]):
        f_lo, f_hi = expected_calls_interval(lo[:, a:b], hi[:, a:b])
        calls_lo += f_lo
        calls_hi += f_hi
    k = int(sum(np.cumprod(widths))) if widths else 0
    return {"method": method, "tree": str(tree_spec), "k": k, "widths": widths,
            "low": log.n_positions / calls_hi, "high": log.n_positions / calls_lo}


def truncated_report(log, k: Sequence[int] = (1, 2, 4, 8), methods: Sequence[str] | None = None,
                     trees: Sequence[str] = ("chain", "batch")) -> dict:
    """Guaranteed intervals from a truncated log: Σmin(p, q) (position mean) and tokens per call.

    Returns
    -------
    dict
        ``sd_acceptance`` ``{low, high}`` (position means), ``predictions`` (rows of
        :func:`predict_interval`), ``skipped`` (method, tree, reason), ``tail_mass`` (mean
        unknown mass of p and q), ``top_n``.
    """
    if not isinstance(log, TruncatedLog):
        log = read_truncated_log(log)
    b_lo, b_hi = acceptance_bounds(log)
    methods = list(methods) if methods else list(method_names(drafting=True, path=True, variants=False))
    specs = []
    for kind in trees:
        specs += [f"{kind}:{int(v)}" for v in k if f"{kind}:{int(v)}" not in ("batch:1",)]
    rows, skipped = [], []
    for method in methods:
        for spec in specs:
            if get_method(method).chains_only and spec.startswith("batch:"):
                continue
            try:
                rows.append(predict_interval(log, method, spec))
            except ValueError as err:
                skipped.append({"method": method, "tree": spec, "reason": str(err)})
    tails = {side: float(np.clip(1 - log.heads[side][1].sum(1), 0, 1).mean()) for side in ("target", "draft")}
    return {"log": str(log.path), "sequences": log.n_sequences, "positions": log.n_positions,
            "top_n": {s: int(log.heads[s][0].shape[1]) for s in ("target", "draft")},
            "sd_acceptance": {"low": float(b_lo.mean()), "high": float(b_hi.mean())},
            "tail_mass": tails, "predictions": rows, "skipped": skipped,
            "notes": list(log.metadata.get("notes", []))}


def format_truncated_report(rep: dict) -> str:
    """Plain-text rendering of :func:`truncated_report`."""
    lines = [f"truncated log {rep['log']}: {rep['sequences']} sequences, {rep['positions']} positions, "
             f"top-n target {rep['top_n']['target']}, draft {rep['top_n']['draft']}; mean unknown tail mass "
             f"p {rep['tail_mass']['target']:.4f}, q {rep['tail_mass']['draft']:.4f}",
             f"  Σmin(p,q) (position mean) in [{rep['sd_acceptance']['low']:.4f}, {rep['sd_acceptance']['high']:.4f}]"
             " (guaranteed for every completion of the tails)",
             "", "tokens per target call on the logged paths, guaranteed interval (no sampling error term):",
             f"  {'method':<10}{'tree':<10}{'k':>4}   interval"]
    for r in rep["predictions"]:
        lines.append(f"  {r['method']:<10}{r['tree']:<10}{r['k']:>4}   [{r['low']:.4f}, {r['high']:.4f}]")
    shown = set()
    for r in rep["skipped"]:
        tree = r["tree"] if r["method"] in INTERVAL_METHODS else "any"
        if (r["method"], tree) not in shown:
            shown.add((r["method"], tree))
            lines.append(f"  {r['method']:<10}{tree:<10}      n/a: {r['reason']}")
    lines.append("  (proofs: docs/log-format.md)")
    lines += [f"  note: {n}" for n in rep.get("notes", [])]
    return "\n".join(lines)


def truncation_widths(run, top_n: Sequence[int], methods: Sequence[str] | None = None,
                      trees: Sequence[str] = ("chain:1", "chain:4", "batch:4")) -> list[dict]:
    """Truncate a full log at each n and compare the guaranteed intervals with the full-log values.

    Two variants: the draft head holds the logged token (``draft_token`` True) or not.
    Returns rows ``{n, draft_token, method, tree, full, low, high, width, tail_p, tail_q}`` (tokens per
    call; ``method = "Σmin(p,q)"`` rows hold the position-mean acceptance).
    """
    methods = list(methods) if methods else list(default_methods("top-n"))
    from .predict import predict_from_log

    full_beta = float(run.pair_statistics()["sd_acceptance"].mean())
    full = {(m, t): predict_from_log(run, m, t)["mean"] for m in methods for t in trees
            if not (get_method(m).chains_only and t.startswith("batch"))}
    return [row for draft_token in (True, False) for row in _widths(run, top_n, full, draft_token, full_beta)]


def _widths(run, top_n, full, draft_token, full_beta):
    rows = []
    for n in top_n:
        trunc = truncate_log(run, int(n), draft_token)
        lo, hi = acceptance_bounds(trunc)
        tails = [float(np.clip(1 - trunc.heads[s][1].sum(1), 0, 1).mean()) for s in ("target", "draft")]
        rows.append({"n": int(n), "draft_token": draft_token, "method": "Σmin(p,q)", "tree": "-", "full": full_beta,
                     "low": float(lo.mean()), "high": float(hi.mean()), "width": float(hi.mean() - lo.mean()),
                     "tail_p": tails[0], "tail_q": tails[1]})
        for (m, t), value in full.items():
            iv = predict_interval(trunc, m, t)
            rows.append({"n": int(n), "draft_token": draft_token, "method": m, "tree": t, "full": value,
                         "low": iv["low"], "high": iv["high"], "width": iv["high"] - iv["low"],
                         "tail_p": tails[0], "tail_q": tails[1]})
    return rows


def format_truncation_widths(rows: list[dict]) -> str:
    """Plain-text table of :func:`truncation_widths`."""
    lines = [f"{'n':>5}  {'q(y) known':<11}{'quantity':<12}{'tree':<10}{'full log':>10}   "
             f"{'guaranteed interval':<22}{'width':>8}{'tail p':>9}{'tail q':>9}"]
    for r in rows:
        lines.append(f"{r['n']:>5}  {'yes' if r['draft_token'] else 'no':<11}{r['method']:<12}{r['tree']:<10}"
                     f"{r['full']:>10.4f}   [{r['low']:.4f}, {r['high']:.4f}]{'':<4}{r['width']:>8.4f}"
                     f"{r['tail_p']:>9.4f}{r['tail_q']:>9.4f}")
    return "\n".join(lines)
