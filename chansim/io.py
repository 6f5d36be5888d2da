"""Loading probability / logit arrays from files with clear errors.

Supported formats, chosen by extension: ``.npy``, ``.npz`` (the array named ``key``,
else the only array in the archive), ``.csv`` (comma-separated numbers, one vector per
row), ``.json`` (a list, a list of lists, or an object holding the array under
``key``).  The last axis is the vocabulary.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .distributions import check_pair, softmax

__all__ = ["load_array", "load_pair", "FORMATS"]

FORMATS = (".npy", ".npz", ".csv", ".json")


def load_array(path, name: str = "array", key: str | None = None) -> np.ndarray:
    """Read a float64 array from ``path``; ``name`` labels errors (e.g. ``"--p"``).

    An archive holding several arrays (``.npz``, or a JSON object) needs ``key``, which
    can also be given in the path as ``PATH:KEY`` (so every CLI option accepts it).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for
    an unknown extension, unreadable content, non-numeric data or an empty / 0-d array.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "p.json").write_text("[0.25, 0.75]")
    12
    >>> load_array(d / "p.json", "p")
    array([0.25, 0.75])
    >>> load_array(d / "missing.npy", "p")
    Traceback (most recent call last):
    ...
    FileNotFoundError: p: no such file: ...missing.npy
    """
    path = os.fspath(path)
    if key is None and not os.path.isfile(path) and ":" in path:
        base, _, named = path.rpartition(":")           # PATH:KEY picks one array of an archive
        if os.path.isfile(base):
            path, key = base, named
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{name}: unsupported file type {ext!r} for {path}; use one of {', '.join(FORMATS)}")
    try:
        if ext == ".npy":
            raw = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if key is None and len(keys) != 1:
                    raise ValueError(f"{name}: {path} holds arrays {keys}; say which one as {path}:KEY")
                k = key if key is not None else keys[0]
                if k not in keys:
                    raise ValueError(f"{name}: {path} has no array {k!r}; it holds {keys}")
                raw = archive[k]
        elif ext == ".csv":
            raw = np.loadtxt(path, delimiter=",", ndmin=1)
        else:
            with open(path, encoding="utf-8") as fh:
                obj = json.load(fh)
            if isinstance(obj, dict):
                if key is None or key not in obj:
                    raise ValueError(f"{name}: {path} is a JSON object with keys {sorted(obj)}; say which one as {path}:KEY")
                obj = obj[key]
            raw = obj
        arr = np.asarray(raw, dtype=np.float64)
    except ValueError as err:
        if str(err).startswith(f"{name}:"):
            raise
        if ext in (".npy", ".npz") and "pickled" in str(err):
            raise ValueError(f"{name}: {path} is not a valid numeric {ext} file (corrupt, or saved with "
                             "object/pickled data)") from err
        raise ValueError(f"{name}: cannot read numbers from {path}: {err}") from err
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{name}: unreadable {ext} file {path}: {err}") from err
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name}: {path} must hold a non-empty array (last axis = vocabulary), got shape {arr.shape}")
    return arr


def load_pair(p_path, q_path, logits: bool = False, temperature: float = 1.0,
              key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate a (target, draft) pair.

    With ``logits=True`` both files hold logits and are turned into probabilities by
    ``softmax(z / temperature)``; otherwise they must already be probability vectors
    (checked by :func:`chansim.distributions.check_pair`, never renormalised).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "p.npy", [0.0, 0.0]); np.save(d / "q.npy", [0.0, 1.0])
    >>> p, q = load_pair(d / "p.npy", d / "q.npy", logits=True)
    >>> p.tolist(), bool(q[1] > q[0])
    ([0.5, 0.5], True)
    >>> load_pair(d / "p.npy", d / "q.npy")
    Traceback (most recent call last):
    ...
    ValueError: target_probs is not normalised: sums to 0 at position () (tolerance 1e-06); pass logits or normalise explicitly
    """
    p = load_array(p_path, "target (p)", key)
    q = load_array(q_path, "draft (q)", key)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"vocabulary mismatch: target {p_path} has {p.shape[-1]} entries, draft {q_path} has {q.shape[-1]}")
    if logits:
        p, q = softmax(p, temperature), softmax(q, temperature)
    elif temperature != 1.0:
        raise ValueError("temperature applies to logits only; pass logits=True (--logits) or normalise explicitly")
    return check_pair(p, q)
