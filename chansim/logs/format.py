r"""Logged draft/target distributions along target-sampled paths: the ``.npz`` format, writer and reader.

A *log* holds, for ``n_sequences`` prompts, the continuation sampled from the target
and, at every sampled position t, the target and draft next-token distributions
:math:`p_t, q_t` over the full vocabulary (the inputs of :mod:`chansim.predict`).

File format (``format_version`` 1)
----------------------------------
An uncompressed or zip-deflated ``.npz`` archive (``numpy.savez[_compressed]``), read
with ``allow_pickle=False``. Ragged sequences are concatenated with offsets
(prefix sums, ``offsets[0] = 0``, ``offsets[-1]`` = total length):

===================== ================ ===================================================
key                   dtype, shape     meaning
===================== ================ ===================================================
``format``            str, ()          the magic string ``"chansim-llm-log"``
``format_version``    int64, ()        1
``metadata``          str, ()          a JSON object (see below)
``prompt_ids``        int32, (P,)      all prompts' token ids, concatenated
``prompt_offsets``    int64, (n+1,)    prompt i is ``prompt_ids[o[i]:o[i+1]]``
``tokens``            int32, (N,)      the sampled continuations, concatenated
``token_offsets``     int64, (n+1,)    continuation i is ``tokens[o[i]:o[i+1]]``
``target_log_probs``  float16, (N, V)  :math:`\log p_t` before ``tokens[t]``
``draft_log_probs``   float16, (N, V)  :math:`\log q_t` on the same prefix
===================== ================ ===================================================

Row t of the log-probs is the distribution of ``tokens[t]`` given its prompt and the
earlier tokens of its continuation. The absolute position of ``tokens[t]`` (the key
of the shared race noise) is ``len(prompt) + (t - token_offsets[i])``.

Metadata written by :func:`write_log` always contains ``format``,
``format_version``, ``created`` (UTC ISO 8601), ``chansim``, ``numpy`` and
``python`` versions, ``n_sequences``, ``n_positions`` and ``vocab_size``; the caller
adds the rest (:func:`chansim.llm.logging_run.log_run` records models and file
hashes, skipped layers, temperature, seed, prompt source and ids, sampling rule,
torch/transformers versions, device and dtype).

Precision (float16 log-probabilities)
-------------------------------------
Log-probabilities are rounded to float16 (round to nearest; unit roundoff
:math:`u = 2^{-11}`), so a stored value :math:`\tilde\ell = \ell(1+\epsilon)`,
:math:`|\epsilon| \le u` (values below :math:`-65504`, i.e. probabilities below
:math:`e^{-65504}`, become :math:`-\infty`; subnormal values near 0 carry an absolute
error below :math:`2^{-25}`). Hence each probability has relative error at most
:math:`e^{u|\ell|} - 1 \approx u|\ell|` -- 0.05 % for :math:`p > e^{-1}`, 0.5 % at
:math:`p = e^{-10}` -- and a row's mass :math:`\sum_x e^{\tilde\ell_x}` differs from 1 by
at most about :math:`u \sum_x p_x |\ln p_x| = u\,H(p)` (:math:`\le 5.3\cdot 10^{-3}` even
for the uniform law over 49 152 tokens; typically :math:`10^{-4}`).

The reader never renormalises silently. Its rule, stated once:

* it computes, per row, the raw mass :math:`s = \sum_x e^{\tilde\ell_x}` (float64);
* it raises :class:`LogError` if :math:`|s - 1| > 2u\sum_x e^{\tilde\ell_x}|\tilde\ell_x| + 2^{-20}`
  (twice the first-order rounding bound plus slack: such a row is not a rounded
  log-probability vector);
* otherwise it returns float64 probabilities :math:`\mathrm{softmax}(\tilde\ell)`
  (the rounded row, renormalised), and records the largest :math:`|s-1|` of each side
  in :attr:`LogRun.normalisation_error`.

Downstream numbers (acceptance, predicted tokens per call) therefore refer to the
renormalised float16 distributions; they differ from the model's float32 ones by the
relative errors above, far below the statistical error of any real log.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "LogError", "LogFileNotFoundError", "LogRun", "write_log", "read_log",
           "float16_mass_tolerance"]

FORMAT = "chansim-llm-log"
FORMAT_VERSION = 1
_U16 = 2.0 ** -11                      # float16 unit roundoff
_KEYS = ("format", "format_version", "metadata", "prompt_ids", "prompt_offsets", "tokens", "token_offsets",
         "target_log_probs", "draft_log_probs")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class LogError(ValueError):
    """A log file is missing, corrupt, truncated or inconsistent (the message names file and problem)."""


class LogFileNotFoundError(LogError, FileNotFoundError):
    """The log file does not exist."""


def float16_mass_tolerance(log_probs: np.ndarray) -> np.ndarray:
    r"""Per-row tolerance on :math:`|\sum_x e^{\tilde\ell_x} - 1|`: :math:`2u\sum_x e^{\tilde\ell_x}|\tilde\ell_x| + 2^{-20}`.

    ``log_probs`` shape (n, V) (float16 values, any float dtype); returns shape (n,).

    >>> float(float16_mass_tolerance(np.zeros((1, 1)))[0]) == 2.0 ** -20
    True
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ent = np.where(np.isneginf(lp), 0.0, np.exp(lp) * np.abs(lp)).sum(-1)
    return 2 * _U16 * ent + 2.0 ** -20


# ----------------------------------------------------------------------------- writing
def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]).astype(np.int64)


def _centred_sequence(i: int, target_lp, draft_lp, n_tokens: int, vocab: int | None) -> tuple:
    """Sequence ``i``'s target and draft log-probs ``(T, V)`` checked (shapes, ``n_tokens`` rows,
    vocabulary ``vocab`` unless None, finite, normalised) and re-centred by their float64 log-sum-exp."""
    a = np.asarray(target_lp, dtype=np.float64)
    b = np.asarray(draft_lp, dtype=np.float64)
    if a.ndim != 2 or b.shape != a.shape:
        raise ValueError(f"sequence {i}: target/draft log-probs must both have shape (T, V), got "
                         f"{a.shape} and {b.shape}")
    if a.shape[0] != n_tokens or n_tokens == 0:
        raise ValueError(f"sequence {i}: {n_tokens} tokens but {a.shape[0]} rows of log-probs "
                         f"(need equal and >= 1)")
    if vocab is not None and a.shape[1] != vocab:
        raise ValueError(f"sequence {i}: vocabulary size {a.shape[1]} differs from {vocab}")
    for side, arr in (("target", a), ("draft", b)):
        if np.isnan(arr).any() or np.isposinf(arr).any():
            raise ValueError(f"sequence {i}: {side} log-probs contain NaN or +inf")
        with np.errstate(divide="ignore"):
            lse = np.log(np.exp(arr).sum(-1))
        bad = np.flatnonzero(~(np.abs(lse) <= 1e-4))
        if bad.size:
            raise ValueError(f"sequence {i}, row {int(bad[0])}: {side} log-probs are not normalised "
                             f"(log sum exp = {lse[bad[0]]:.3g}); pass log-softmax values")
    # re-centre by the (<= 1e-4) float64 log-sum-exp so that rounding is the only error left
    with np.errstate(divide="ignore"):
        return a - np.log(np.exp(a).sum(-1, keepdims=True)), b - np.log(np.exp(b).sum(-1, keepdims=True))


def _metadata_json(path, metadata: dict, n_sequences: int, n_positions: int, vocab: int) -> str:
    """The caller's metadata with the standard fields added, checked, as sorted JSON."""
    meta = dict(metadata)
    meta.update(_standard_metadata(n_sequences, n_positions, vocab, meta))
    _check_metadata(path, meta)
    try:
        return json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata is not JSON-serialisable: {err}") from None


def write_log(path, *, prompts: Sequence[Sequence[int]], tokens: Sequence[Sequence[int]],
              target_log_probs: Sequence[np.ndarray], draft_log_probs: Sequence[np.ndarray],
              metadata: dict, compress: bool = True) -> Path:
    r"""Write a log (module docstring) and return its path.

    Parameters
    ----------
    path : str or Path
        Output file; ``.npz`` is appended by numpy if missing, so pass a ``.npz`` name.
    prompts : list of list of int
        Prompt token ids, one list per sequence (may be empty lists).
    tokens : list of list of int
        Sampled continuation of each prompt (``T_i >= 1`` tokens).
    target_log_probs, draft_log_probs : list of array_like, shapes (T_i, V)
        Log-probabilities (any float dtype; stored as float16). Each row must be a
        normalised log-probability vector (:math:`|\log\sum e^\ell| \le 10^{-4}`); rows are
        re-centred by that log-sum-exp in float64 before rounding to float16.
    metadata : dict
        JSON-serialisable description of the run; the standard fields of the module
        docstring are added (caller values win except for the sizes, which must agree).
    compress : bool
        Deflate the archive (about 20 % smaller for float16 log-probs; slower to read).

    Raises
    ------
    ValueError
        Inconsistent inputs (lengths, shapes, vocab sizes, token ids, non-finite or
        unnormalised log-probs, metadata not JSON); nothing is written then.

    Examples
    --------
    >>> import tempfile, os
    >>> lp = np.log(np.full((2, 4), 0.25))
    >>> f = os.path.join(tempfile.mkdtemp(), "run.npz")
    >>> _ = write_log(f, prompts=[[1, 2]], tokens=[[3, 0]], target_log_probs=[lp], draft_log_probs=[lp],
    ...               metadata={"temperature": 1.0})
    >>> run = read_log(f)
    >>> run.n_sequences, run.n_positions, run.vocab_size, run.tokens[0].tolist()
    (1, 2, 4, [3, 0])
    """
    path = Path(path)
    n = len(prompts)
    if n == 0:
        raise ValueError("a log needs at least one sequence")
    for name, seq in (("tokens", tokens), ("target_log_probs", target_log_probs),
                      ("draft_log_probs", draft_log_probs)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} sequences but prompts has {n}")
    tok = [np.asarray(t, dtype=np.int64).reshape(-1) for t in tokens]
    vocab = None
    tl, dl = [], []
    for i in range(n):
        a, b = _centred_sequence(i, target_log_probs[i], draft_log_probs[i], tok[i].size, vocab)
        vocab = a.shape[1]
        tl.append(a)
        dl.append(b)
    pr = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    all_tok = np.concatenate(tok)
    all_pr = np.concatenate(pr) if sum(p.size for p in pr) else np.zeros(0, np.int64)
    for name, ids in (("tokens", all_tok), ("prompts", all_pr)):
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(f"{name} hold token ids outside [0, {vocab})")
    t16, d16 = _float16_rows(tl, dl, all_tok)
    meta_json = _metadata_json(path, metadata, n, int(all_tok.size), int(vocab))
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "metadata": np.array(meta_json),
        "prompt_ids": all_pr.astype(np.int32),
        "prompt_offsets": _offsets([p.size for p in pr]),
        "tokens": all_tok.astype(np.int32),
        "token_offsets": _offsets([t.size for t in tok]),
        "target_log_probs": t16,
        "draft_log_probs": d16,
    }
    _save_npz(path, arrays, compress)
    return path


def _float16_rows(tl: list, dl: list, tokens: np.ndarray) -> tuple:
    """The sequences' target and draft rows as float16 ``[positions, V]``; refused where the logged
    token's target probability rounds to 0."""
    with np.errstate(over="ignore"):
        t16 = np.concatenate(tl).astype(np.float16)
        d16 = np.concatenate(dl).astype(np.float16)
    rows = np.arange(tokens.size)
    if np.isneginf(t16[rows, tokens]).any():
        t = int(np.flatnonzero(np.isneginf(t16[rows, tokens]))[0])
        raise ValueError(f"position {t}: the logged token has target probability 0 (after float16 rounding)")
    return t16, d16


def _save_npz(path: Path, arrays: dict, compress: bool) -> None:
    """Write ``arrays`` to exactly ``path`` (no ".npz" appended), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..common.outputs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:   # exact name, no ".npz" appended; whole or nothing
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def _standard_metadata(n_seq: int, n_pos: int, vocab: int, given: dict) -> dict:
    from .. import __version__

    for key, val in (("n_sequences", n_seq), ("n_positions", n_pos), ("vocab_size", vocab)):
        if key in given and given[key] != val:
            raise ValueError(f"metadata[{key!r}] = {given[key]!r} disagrees with the arrays ({val})")
    out = {"format": FORMAT, "format_version": FORMAT_VERSION, "n_sequences": n_seq, "n_positions": n_pos,
           "vocab_size": vocab, "chansim": __version__, "numpy": np.__version__,
           "python": platform.python_version()}
    out.setdefault("created", given.get("created") or
                   _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return out


# ----------------------------------------------------------------------------- reading
class LoggedSequences:
    """What every log holds along its sampled paths: prompts, tokens and their position offsets.

    ``path`` (or None for a log built in memory), ``metadata``, ``prompts`` (list of list
    of int), ``tokens`` (list of int64 arrays, shape (T_i,)) and ``offsets`` (int64,
    shape (n_sequences + 1,): sequence i occupies positions ``offsets[i]:offsets[i+1]``).
    """

    def __init__(self, path, metadata, prompts, tokens, offsets):
        self.path = Path(path) if path is not None else None
        self.metadata = metadata
        self.prompts = prompts
        self.tokens = tokens
        self.offsets = offsets

    @property
    def n_sequences(self) -> int:
        return len(self.tokens)

    @property
    def n_positions(self) -> int:
        return int(self.offsets[-1])


class LogRun(LoggedSequences):
    """A validated log in memory (see the module docstring; create with :func:`read_log`).

    Attributes
    ----------
    path : Path
    metadata : dict
    vocab_size : int
    prompts : list of list of int
    tokens : list of ndarray of int64, shape (T_i,)
        The sampled continuation of each prompt.
    offsets : ndarray of int64, shape (n_sequences + 1,)
        Sequence i occupies rows ``offsets[i]:offsets[i+1]`` of the log-prob arrays.
    target_log_probs, draft_log_probs : ndarray of float16, shape (n_positions, V)
        The stored values (read-only).
    normalisation_error : dict
        ``{"target": max |Σ exp(ℓ) − 1|, "draft": ...}`` over all rows, before the
        reader's renormalisation (module docstring).
    """

    def __init__(self, path, metadata, prompts, tokens, offsets, target_lp, draft_lp, norm_err):
        super().__init__(path, metadata, prompts, tokens, offsets)
        self.target_log_probs = target_lp
        self.draft_log_probs = draft_lp
        self.normalisation_error = norm_err

    @property
    def vocab_size(self) -> int:
        return int(self.target_log_probs.shape[1])

    def positions(self, i: int) -> np.ndarray:
        """Absolute positions (race-noise keys) of continuation ``i``: ``len(prompt) + arange(T_i)``."""
        return len(self.prompts[i]) + np.arange(len(self.tokens[i]), dtype=np.int64)

    def sequence(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(target_probs [T, V] float64, draft_probs [T, V] float64, tokens [T] int64)`` of sequence ``i``.

        Probabilities are the softmax of the stored float16 log-probs (module docstring).
        """
        if not -self.n_sequences <= i < self.n_sequences:
            raise IndexError(f"sequence {i} out of range (the log has {self.n_sequences})")
        i %= self.n_sequences
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return _softmax64(self.target_log_probs[a:b]), _softmax64(self.draft_log_probs[a:b]), self.tokens[i]

    def sequences(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Iterate :meth:`sequence` over all sequences (input of :func:`chansim.predict.predict_path`)."""
        for i in range(self.n_sequences):
            yield self.sequence(i)

    def pair_statistics(self) -> dict:
        """Per-position Σ min(p, q), α_ER and KL(p‖q) in nats, each an array of shape (n_positions,).

        Keys ``sd_acceptance``, ``er_acceptance``, ``kl_nats`` (positions in log order).
        """
        from .statistics import probability_statistics

        per_sequence = [probability_statistics(p, q, validate=False) for p, q, _ in self.sequences()]
        return {k: np.concatenate([s[k] for s in per_sequence]) for k in per_sequence[0]}

    def __repr__(self) -> str:
        return (f"LogRun({str(self.path)!r}, sequences={self.n_sequences}, positions={self.n_positions}, "
                f"vocab={self.vocab_size})")


def _softmax64(lp16: np.ndarray) -> np.ndarray:
    z = lp16.astype(np.float64)
    z -= z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _fail(path, problem: str):
    raise LogError(f"{path}: {problem}")


def read_log(path) -> LogRun:
    """Read and validate a log written by :func:`write_log`.

    Every check names the file and the problem: missing file, not a zip/npz archive,
    truncated or corrupt archive or member, missing keys, wrong ``format`` or
    ``format_version``, metadata that is not a JSON object, offsets inconsistent with
    the arrays, target/draft vocabulary mismatch, NaN or +inf in log-probs, rows with
    no mass or whose mass is not explained by float16 rounding, token ids outside the
    vocabulary, and a logged token with target log-prob −inf.

    Raises
    ------
    LogFileNotFoundError
        The file does not exist (also a ``FileNotFoundError``).
    LogError
        Any other problem (a ``ValueError``).
    """
    path = Path(path)
    if not path.exists():
        raise LogFileNotFoundError(f"{path}: log file not found")
    if not path.is_file():
        _fail(path, "not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        _fail(path, f"cannot read the log ({err.strerror or type(err).__name__})")
    if len(head) < 4 or head not in _ZIP_MAGIC:
        _fail(path, "not an .npz log (the file does not start with the zip signature"
                    + (", it is empty)" if not head else ")"))
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        _fail(path, f"truncated or corrupt archive ({type(err).__name__}: {err}); the zip directory "
                    f"at its end could not be read -- was the file cut short?")
    with npz:
        missing = [k for k in _KEYS if k not in npz.files]
        if missing:
            _fail(path, f"missing key(s) {', '.join(missing)} (has: {', '.join(npz.files) or 'none'})")
        arr = {}
        for k in _KEYS:
            try:
                arr[k] = npz[k]
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
                _fail(path, f"member {k!r} is corrupt or truncated ({type(err).__name__}: {err})")
    return _validate(path, arr)


def _narrow_lossless(a: np.ndarray) -> np.ndarray:
    """``a`` in the narrowest of float16 / float32 that holds every value exactly (a lossless upcast is undone)."""
    if a.dtype.kind != "f":
        return a
    for narrow in (np.float16, np.float32):
        if a.dtype.itemsize <= np.dtype(narrow).itemsize:
            return a
        step = max(1, (1 << 22) // max(1, a.shape[1]))
        with np.errstate(over="ignore"):
            exact = all(np.array_equal(a[lo:lo + step].astype(narrow).astype(a.dtype), a[lo:lo + step], equal_nan=True)
                        for lo in range(0, a.shape[0], step))
        if exact:
            return a.astype(narrow)
    return a


def _mass_tolerance(lp64: np.ndarray, dtype) -> np.ndarray:
    """Per-row mass tolerance for log-probs stored in ``dtype`` (float16 rule of the module docstring, scaled to the
    dtype's unit roundoff; 1e-6 for float64)."""
    if dtype == np.float16:
        return float16_mass_tolerance(lp64)
    if dtype == np.float32:
        return float16_mass_tolerance(lp64) * (2.0 ** -24 / _U16) + 1e-7
    return np.full(lp64.shape[0], 1e-6)


#: rows of a keyed-race log checked at load (spread evenly; capped so that V x rows stays ~2M noise draws)
_RACE_CHECK_ELEMENTS = 1 << 21


def _check_race(path, meta, tl, dl, tokens, toff, poff) -> None:
    r"""Refuse a keyed-race log whose tokens are not the race winners of its target log-probs.

    Logs written by :func:`chansim.llm.logging_run.log_run` record the race seed: the token at
    absolute position n is :math:`\arg\min_x E(\text{seed}, n, x)/p(x)`. For a sample of rows the
    winner is re-derived from the *stored* target log-probs. Rounding moves each arrival time by a
    factor of at most :math:`e^{u|\ell_x|}` (:math:`u` the storage unit roundoff), so a logged token
    that is not the stored winner must arrive within :math:`e^{2u(|\ell_y| + |\ell_w|)}` of it; a
    later arrival cannot come from rounding and means the target log-probs do not belong to these
    tokens (swapped with the draft's, or from another run).
    """
    sampling = str(meta.get("sampling", ""))
    if "seed" not in meta or not sampling.startswith("keyed race"):
        return                                       # not a keyed-race log: nothing to re-derive
    from .noise_keys import keyed_rows, race_keys

    seed = int(meta["seed"])
    keys = race_keys(meta, toff.size - 1)                                # one key per sequence (or the seed)
    n_rows = tokens.size
    count = int(min(n_rows, max(16, _RACE_CHECK_ELEMENTS // max(1, tl.shape[1]))))
    rows = np.unique(np.linspace(0, n_rows - 1, count).astype(np.int64))
    seq = np.searchsorted(toff, rows, side="right") - 1                  # sequence of each row
    position = (poff[seq + 1] - poff[seq]) + (rows - toff[seq])          # absolute position (race key)
    u = {np.dtype(np.float16): _U16, np.dtype(np.float32): 2.0 ** -24}.get(tl.dtype, 2.0 ** -52)
    vocab = np.arange(tl.shape[1])

    def late(log_probs):
        lp = log_probs[rows].astype(np.float64)                          # [n, V]
        noise = keyed_rows(keys, seq, position, vocab)                   # [n, V]
        with np.errstate(divide="ignore", over="ignore"):
            log_time = np.log(noise) - lp                                # log arrival time
        win = np.argmin(log_time, axis=1)
        idx = np.arange(rows.size)
        gap = log_time[idx, tokens[rows]] - log_time[idx, win]           # >= 0
        slack = 2 * u * (np.abs(lp[idx, tokens[rows]]) + np.abs(lp[idx, win])) + 1e-12
        return np.flatnonzero(gap > slack)

    bad = late(tl)
    if bad.size == 0:
        return
    r = int(rows[bad[0]])
    why = (f"{bad.size} of {rows.size} checked positions (first: row {r}, sequence {int(seq[bad[0]])}) log a token "
           f"that is not the keyed-race winner of target_log_probs under the logged seed {seed}, beyond what "
           f"rounding explains")
    if late(dl).size == 0:
        _fail(path, f"{why}; draft_log_probs reproduce every checked token, so target_log_probs and "
                    f"draft_log_probs look swapped")
    _fail(path, f"{why}; the target log-probs do not belong to these tokens (mismatched log, seed or prompts)")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_metadata(path, meta: dict) -> None:
    """The metadata fields chansim reads back, by type and range (one :class:`LogError` naming the field).

    ``temperature``, ``draft_temperature``: a finite number > 0 (absent: 1, and the
    target's); ``seed``: an integer >= 0 or null (null only when the log is not a keyed-race
    log, whose tokens the seed re-derives); ``n_sequences``, ``n_positions``: integers >= 1;
    ``vocab_size``: integer >= 1 (or null in a truncated log); ``top_n``: integer >= 1;
    ``notes``: a list of strings.
    """
    for key in ("temperature", "draft_temperature"):
        if key in meta:
            v = meta[key]
            if not (_number(v) and np.isfinite(v) and v > 0):
                _fail(path, f"metadata {key} must be a finite number > 0, got {v!r}")
    if "seed" in meta:
        v = meta["seed"]
        if v is None:
            if str(meta.get("sampling", "")).startswith("keyed race"):
                _fail(path, "metadata seed is null but the log's sampling is a keyed race: the seed that drew its "
                            "tokens is needed")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
            _fail(path, f"metadata seed must be an integer >= 0 or null, got {v!r}")
    if "notes" in meta and not (isinstance(meta["notes"], list) and all(isinstance(n, str) for n in meta["notes"])):
        _fail(path, f"metadata notes must be a list of strings, got {meta['notes']!r:.60}")
    for key in ("n_sequences", "n_positions", "top_n"):
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 1):
            _fail(path, f"metadata {key} must be an integer >= 1, got {meta[key]!r}")


def _scalar(path, arr, key, kind):
    a = arr[key]
    if a.shape != () or a.dtype.kind not in kind:
        _fail(path, f"{key!r} must be a scalar of kind {kind!r}, got {a.dtype} {a.shape}")
    return a[()]


def _int_vector(path, arr, key):
    a = arr[key]
    if a.ndim != 1 or a.dtype.kind not in "iu":
        _fail(path, f"{key!r} must be a 1-D integer array, got {a.dtype} {a.shape}")
    return a.astype(np.int64)


def _check_offsets(path, name, off, total):
    if off.size < 2 or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != total:
        _fail(path, f"{name} {off.tolist()[:8]}{'...' if off.size > 8 else ''} do not split an array of "
                    f"length {total} (need 0 = o[0] <= ... <= o[-1] = {total}, at least one sequence)")


def _normalisation_error(path, side: str, a: np.ndarray, vocab: int) -> float:
    """max |Σ exp(ℓ) − 1| over the rows of one side's stored log-probs ``a`` ``[positions, V]``, after
    refusing NaN/+inf, rows without mass and rows whose error the storage rounding cannot explain."""
    bad = np.isnan(a) | np.isposinf(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        _fail(path, f"{side} log-probs hold {a[r, c]} at position {int(r)}, token {int(c)}")
    empty = np.flatnonzero(np.isneginf(a).all(-1))
    if empty.size:
        _fail(path, f"{side} log-probs at position {int(empty[0])} are all -inf (no probability mass)")
    mass = np.empty(a.shape[0])
    tol = np.empty(a.shape[0])
    step = max(1, (1 << 22) // max(1, vocab))             # ~32 MB of float64 at a time
    for lo in range(0, a.shape[0], step):
        lp = a[lo:lo + step].astype(np.float64)          # [rows, V]
        mass[lo:lo + step] = np.exp(lp).sum(-1)
        tol[lo:lo + step] = _mass_tolerance(lp, a.dtype)
    err = np.abs(mass - 1.0)
    bad = np.flatnonzero(err > tol)
    if bad.size:
        r = int(bad[0])
        _fail(path, f"{side} log-probs at position {r} have total mass {mass[r]:.6g}; {a.dtype} rounding "
                    f"explains at most ±{tol[r]:.3g}, so they are not log-probabilities")
    return float(err.max()) if err.size else 0.0


def _validate(path, arr) -> LogRun:
    fmt = str(_scalar(path, arr, "format", "U"))
    if fmt != FORMAT:
        _fail(path, f"format is {fmt!r}, expected {FORMAT!r}")
    version = int(_scalar(path, arr, "format_version", "iu"))
    if version != FORMAT_VERSION:
        _fail(path, f"format_version {version} is not supported (this chansim reads version {FORMAT_VERSION})")
    try:
        meta = json.loads(str(_scalar(path, arr, "metadata", "U")))
    except json.JSONDecodeError as err:
        _fail(path, f"metadata is not valid JSON ({err})")
    if not isinstance(meta, dict):
        _fail(path, f"metadata must be a JSON object, got {type(meta).__name__}")
    _check_metadata(path, meta)
    tl, dl = arr["target_log_probs"], arr["draft_log_probs"]
    for name, a in (("target_log_probs", tl), ("draft_log_probs", dl)):
        if a.ndim != 2 or a.dtype.kind != "f":
            _fail(path, f"{name!r} must be a 2-D float array (positions, vocab), got {a.dtype} {a.shape}")
    if tl.shape[1] != dl.shape[1]:
        _fail(path, f"vocabulary mismatch: target log-probs have V = {tl.shape[1]}, draft V = {dl.shape[1]}")
    if tl.shape[0] != dl.shape[0]:
        _fail(path, f"target log-probs have {tl.shape[0]} positions but draft log-probs {dl.shape[0]}")
    vocab = tl.shape[1]
    if vocab < 1:
        _fail(path, "vocabulary size is 0")
    if "vocab_size" in meta and meta["vocab_size"] != vocab:
        _fail(path, f"metadata vocab_size {meta['vocab_size']} disagrees with the log-prob arrays (V = {vocab})")
    tokens = _int_vector(path, arr, "tokens")
    toff = _int_vector(path, arr, "token_offsets")
    prompt_ids = _int_vector(path, arr, "prompt_ids")
    poff = _int_vector(path, arr, "prompt_offsets")
    if tokens.size != tl.shape[0]:
        _fail(path, f"{tokens.size} tokens but {tl.shape[0]} rows of log-probs")
    _check_offsets(path, "token_offsets", toff, tokens.size)
    _check_offsets(path, "prompt_offsets", poff, prompt_ids.size)
    if poff.size != toff.size:
        _fail(path, f"{poff.size - 1} prompts but {toff.size - 1} continuations")
    if np.any(np.diff(toff) == 0):
        _fail(path, f"continuation {int(np.flatnonzero(np.diff(toff) == 0)[0])} is empty")
    if "n_positions" in meta and meta["n_positions"] != tokens.size:
        _fail(path, f"metadata n_positions {meta['n_positions']} disagrees with the arrays ({tokens.size})")
    for name, ids in (("tokens", tokens), ("prompt_ids", prompt_ids)):
        bad = np.flatnonzero((ids < 0) | (ids >= vocab))
        if bad.size:
            _fail(path, f"{name}[{int(bad[0])}] = {int(ids[bad[0]])} is outside the vocabulary [0, {vocab})")
    tl, dl = _narrow_lossless(tl), _narrow_lossless(dl)
    norm_err = {side: _normalisation_error(path, side, a, vocab) for side, a in (("target", tl), ("draft", dl))}
    rows = np.arange(tokens.size)
    dead = np.flatnonzero(np.isneginf(tl[rows, tokens]))
    if dead.size:
        t = int(dead[0])
        _fail(path, f"the logged token {int(tokens[t])} at position {t} has target log-prob -inf "
                    f"(the target could not have sampled it)")
    _check_race(path, meta, tl, dl, tokens, toff, poff)
    for a in (tl, dl):
        a.setflags(write=False)
    prompts = [prompt_ids[poff[i]:poff[i + 1]].tolist() for i in range(poff.size - 1)]
    toks = [tokens[toff[i]:toff[i + 1]].copy() for i in range(toff.size - 1)]
    return LogRun(path, meta, prompts, toks, toff, tl, dl, norm_err)
