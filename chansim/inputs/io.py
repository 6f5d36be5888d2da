"""Loading probability / logit arrays from files: one loader for every format, strict about content.

Supported formats, chosen by extension: ``.npy``, ``.npz`` (the array named ``key``,
else the only array in the archive), ``.csv`` (comma-separated numbers, one vector per
row), ``.json`` (a list, a list of lists, or an object holding the array under
``key``), ``.pt`` (a tensor or array saved with ``torch.save``, read with
``weights_only=True``, or a dict of them) and ``.safetensors``.  The last axis is the
vocabulary.

Every format goes through the same checks: the data must be real numbers -- complex,
boolean, string, object and pickled data are refused, never converted -- and the
array must be non-empty and at least 1-D.  Tensors may be float16, bfloat16, float32
or float64, on any device, with or without ``requires_grad``; the storage dtype is
kept (:attr:`LoadedArray.dtype`) so that the normalisation tolerance can follow it
(:func:`chansim.inputs.distributions.dtype_atol`).
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from .distributions import check_probs, dtype_atol, softmax

__all__ = ["load_array", "read_array", "load_pair", "LoadedArray", "InputWarning", "FORMATS", "MAX_JSON_DEPTH"]

FORMATS = (".npy", ".npz", ".csv", ".json", ".pt", ".safetensors")
#: deepest JSON nesting accepted (an array of more axes than this is not a distribution)
MAX_JSON_DEPTH = 32
_REAL_KINDS = "fiu"                      # float, signed and unsigned integer numpy kinds


class InputWarning(UserWarning):
    """An input that is accepted but probably not what the user meant (e.g. ``--logits`` on probabilities)."""


class LoadedArray(NamedTuple):
    """A loaded array as float64 and the name of the dtype it was stored in (``"float16"``, ``"bfloat16"``, ...)."""

    array: np.ndarray
    dtype: str


def _split_key(path: str, key):
    if key is None and not os.path.isfile(path) and ":" in path:
        base, _, named = path.rpartition(":")           # PATH:KEY picks one array of an archive
        if os.path.isfile(base):
            return base, named
    return path, key


def _pick(name, path, mapping_keys, key, what):
    keys = list(mapping_keys)
    if key is None and len(keys) != 1:
        raise ValueError(f"{name}: {path} holds {what} {keys}; say which one as {path}:KEY")
    chosen = key if key is not None else keys[0]
    if chosen not in keys:
        raise ValueError(f"{name}: {path} has no array {chosen!r}; it holds {keys}")
    return chosen


def _real_numpy(name, path, raw) -> LoadedArray:
    arr = np.asarray(raw)
    kind = arr.dtype.kind
    if kind == "c":
        raise ValueError(f"{name}: {path} holds complex numbers (dtype {arr.dtype}); probabilities and logits "
                         "must be real")
    if kind == "b":
        raise ValueError(f"{name}: {path} holds booleans (dtype bool), not numbers")
    if kind not in _REAL_KINDS:
        raise ValueError(f"{name}: {path} holds non-numeric data (dtype {arr.dtype})")
    return LoadedArray(arr.astype(np.float64, copy=False), str(arr.dtype))   # np.load's array is ours


def _json_numbers(name, path, obj) -> np.ndarray:
    """Nested JSON lists of real numbers (not bools, not strings) -> float64 array, checked leaf by leaf."""
    if isinstance(obj, bool) or not isinstance(obj, (list, int, float)):
        raise ValueError(f"{name}: {path} must hold a list of numbers, got a JSON {_json_type(obj)}")
    depth, probe = 0, obj
    while isinstance(probe, list):
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{name}: {path} is nested deeper than {MAX_JSON_DEPTH} levels; expected a list "
                             "(V values) or a list of lists (positions x V)")
        if not probe:
            break
        probe = probe[0]
    flat, stack = [], [(obj, 0)]
    while stack:                                         # iterative walk: no recursion limit
        item, level = stack.pop()
        if isinstance(item, list):
            if level >= depth:
                raise ValueError(f"{name}: {path} is ragged (lists nested to different depths)")
            stack.extend((v, level + 1) for v in reversed(item))
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{name}: {path} holds a JSON {_json_type(item)} ({_short(item)}) where a number "
                             "is expected")
        elif level != depth:
            raise ValueError(f"{name}: {path} is ragged (lists nested to different depths)")
        else:
            flat.append(item)
    try:
        arr = np.array(obj, dtype=np.float64)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"{name}: {path} is ragged or out of range: {err}") from None
    return arr


def _json_type(v) -> str:
    return {bool: "boolean", str: "string", dict: "object", list: "list", type(None): "null"}.get(type(v), "number")


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _torch_numpy(name, path, tensor) -> LoadedArray:
    import torch

    if isinstance(tensor, np.ndarray):
        return _real_numpy(name, path, tensor)
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name}: {path} holds a {type(tensor).__name__}, not a tensor or array")
    if tensor.is_complex():
        raise ValueError(f"{name}: {path} holds complex numbers (dtype {tensor.dtype}); probabilities and logits "
                         "must be real")
    if tensor.dtype == torch.bool:
        raise ValueError(f"{name}: {path} holds booleans (dtype {tensor.dtype}), not numbers")
    if not tensor.is_floating_point() and tensor.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32,
                                                               torch.int64):
        raise ValueError(f"{name}: {path} holds {tensor.dtype} values, not real numbers")
    dtype = str(tensor.dtype).replace("torch.", "")
    t = tensor.detach().to("cpu")
    if t.dtype == torch.bfloat16 or (t.is_floating_point() and t.dtype not in (torch.float16, torch.float32,
                                                                                torch.float64)):
        t = t.to(torch.float32)                          # bfloat16 -> float32 is exact
    return LoadedArray(t.numpy().astype(np.float64), dtype)


def _read_pt(name, path, key):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)   # never unpickles code
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt/unsafe files
        raise ValueError(f"{name}: {path} is not a tensor file torch can load safely (weights_only=True): "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if isinstance(obj, dict):
        obj = obj[_pick(name, path, obj.keys(), key, "entries")]
    return _torch_numpy(name, path, obj)


def _read_safetensors(name, path, key):
    try:
        from safetensors import safe_open
    except ImportError as err:  # pragma: no cover - safetensors is a dependency of transformers
        raise ValueError(f"{name}: reading .safetensors needs the safetensors package") from err
    try:
        with safe_open(path, framework="pt") as fh:
            chosen = _pick(name, path, fh.keys(), key, "tensors")
            tensor = fh.get_tensor(chosen)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends
        raise ValueError(f"{name}: unreadable .safetensors file {path}: {type(err).__name__}: {err}") from None
    return _torch_numpy(name, path, tensor)


def read_array(path, name: str = "array", key: str | None = None) -> LoadedArray:
    """Read an array of real numbers from ``path`` with its storage dtype; see :func:`load_array`."""
    path, key = _split_key(os.fspath(path), key)
    if not os.path.isfile(path):
        if os.path.isdir(path):
            raise ValueError(f"{name}: {path} is a directory, not a file")
        raise FileNotFoundError(f"{name}: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{name}: unsupported file type {ext!r} for {path}; use one of {', '.join(FORMATS)}")
    try:
        if ext == ".npy":
            loaded = _real_numpy(name, path, np.load(path, allow_pickle=False))
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                loaded = _real_numpy(name, path, archive[_pick(name, path, archive.keys(), key, "arrays")])
        elif ext == ".csv":
            with warnings.catch_warnings():
                warnings.simplefilter("error")           # numpy warns (not fails) on some empty inputs
                loaded = LoadedArray(np.loadtxt(path, delimiter=",", ndmin=1, dtype=np.float64), "float64")
        elif ext == ".json":
            with open(path, encoding="utf-8") as fh:
                obj = json.load(fh)
            if isinstance(obj, dict):
                if key is None or key not in obj:
                    raise ValueError(f"{name}: {path} is a JSON object with keys {sorted(obj)[:20]}; say which one "
                                     f"as {path}:KEY")
                obj = obj[key]
            loaded = LoadedArray(_json_numbers(name, path, obj), "float64")
        elif ext == ".pt":
            loaded = _read_pt(name, path, key)
        else:
            loaded = _read_safetensors(name, path, key)
    except RecursionError:
        raise ValueError(f"{name}: {path} is nested too deeply to be an array") from None
    except ValueError as err:
        if str(err).startswith(f"{name}:"):
            raise
        if ext in (".npy", ".npz") and "pickled" in str(err):
            raise ValueError(f"{name}: {path} is not a valid numeric {ext} file (corrupt, or saved with "
                             "object/pickled data)") from None
        raise ValueError(f"{name}: cannot read numbers from {path}: {str(err).splitlines()[0]}") from None
    except (OSError, EOFError, UnicodeDecodeError, UserWarning, KeyError, TypeError, zipfile.BadZipFile,
            zlib.error) as err:
        raise ValueError(f"{name}: unreadable {ext} file {path}: {type(err).__name__}: {err}") from None
    arr = loaded.array
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name}: {path} must hold a non-empty array (last axis = vocabulary), got shape {arr.shape}")
    return loaded


def load_array(path, name: str = "array", key: str | None = None) -> np.ndarray:
    """Read a float64 array of real numbers from ``path``; ``name`` labels errors (e.g. ``"--p"``).

    An archive holding several arrays (``.npz``, ``.pt`` dict, ``.safetensors``, or a JSON
    object) needs ``key``, which can also be given in the path as ``PATH:KEY`` (so every CLI
    option accepts it). Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file for an unknown extension, unreadable content, non-real or non-numeric
    data (complex, boolean, strings, objects, pickles) or an empty / 0-d array.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "p.json").write_text("[0.25, 0.75]")
    12
    >>> load_array(d / "p.json", "p")
    array([0.25, 0.75])
    >>> _ = (d / "s.json").write_text('[0.5, "0.5"]')
    >>> load_array(d / "s.json", "p")
    Traceback (most recent call last):
    ...
    ValueError: p: ...s.json holds a JSON string ("0.5") where a number is expected
    >>> load_array(d / "missing.npy", "p")
    Traceback (most recent call last):
    ...
    FileNotFoundError: p: no such file: ...missing.npy
    """
    return read_array(path, name, key).array


def _looks_like_probabilities(arr: np.ndarray) -> bool:
    return bool(np.all(arr >= 0) and np.all(arr <= 1) and np.all(np.abs(arr.sum(-1) - 1) <= 1e-3))


def _check_side(arr, loaded_dtype, label, name, atol, logits):
    tol = dtype_atol(loaded_dtype, arr.shape[-1]) if atol is None else float(atol)
    try:
        probs = check_probs(arr, name, tol)
    except ValueError as err:
        hint = ""
        if not logits and np.all(np.isfinite(arr)) and np.any(arr < 0):
            hint = f"; {label} has negative values -- if it holds logits, pass --logits (logits=True)"
        raise ValueError(f"{err}{hint}") from None
    # rows within the (rounding) tolerance are divided by their mass, as the log reader does: the
    # stored values are a rounded probability vector, and every later check uses PROB_ATOL; in place
    # on check_probs' own copy (no third copy of a 400 MB file)
    probs /= probs.sum(axis=-1, keepdims=True)       # check_probs returned its own float64 copy
    return probs


def load_pair(p_path, q_path, logits: bool = False, temperature: float = 1.0,
              key: str | None = None, atol: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate a (target, draft) pair.

    With ``logits=True`` both files hold logits and are turned into probabilities by
    ``softmax(z / temperature)`` (an :class:`InputWarning` is issued when a file already
    looks like probabilities); otherwise they must already be probability vectors, each
    within ``atol`` of mass 1 -- by default a tolerance that follows the storage dtype
    (:func:`chansim.inputs.distributions.dtype_atol`). Rows within the tolerance are divided by
    their mass (a rounded probability vector, renormalised, as the log reader does);
    rows outside it are refused, never renormalised.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "p.npy", [0.0, 0.0]); np.save(d / "q.npy", [0.0, 2.0])
    >>> p, q = load_pair(d / "p.npy", d / "q.npy", logits=True)
    >>> p.tolist(), bool(q[1] > q[0])
    ([0.5, 0.5], True)
    >>> load_pair(d / "p.npy", d / "q.npy")
    Traceback (most recent call last):
    ...
    ValueError: target_probs is not normalised: sums to 0 at position () (tolerance 1e-06); pass logits or normalise explicitly
    """
    if atol is not None and not (0 < atol < 1):
        raise ValueError(f"atol must lie in (0, 1), got {atol}")
    lp = read_array(p_path, "target (p)", key)
    lq = read_array(q_path, "draft (q)", key)
    p, q = lp.array, lq.array
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"vocabulary mismatch: target {p_path} has {p.shape[-1]} entries, draft {q_path} has {q.shape[-1]}")
    if p.shape != q.shape:
        raise ValueError(f"shape mismatch: target {p_path} has shape {p.shape}, draft {q_path} has {q.shape}")
    if logits:
        for label, arr in (("target", p), ("draft", q)):
            if _looks_like_probabilities(arr):
                warnings.warn(f"--logits was given but the {label} file looks like probabilities (all values in "
                              "[0, 1], rows sum to 1); softmax of probabilities is nearly uniform -- drop --logits "
                              "if these are probabilities", InputWarning, stacklevel=2)
        return softmax(p, temperature), softmax(q, temperature)
    if temperature != 1.0:
        raise ValueError("temperature applies to logits only; pass logits=True (--logits) or normalise explicitly")
    return (_check_side(p, lp.dtype, "target", "target_probs", atol, logits),
            _check_side(q, lq.dtype, "draft", "draft_probs", atol, logits))
