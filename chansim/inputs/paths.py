"""Logged-path inputs and the call recursion shared by path prediction and the methods' path hooks.

:mod:`chansim.predict` (the public path prediction) and the verifiers whose logged-path
rule is their own (``verify/block.py``, ``verify/multidraft.py``) both use these; they live
below both so that a method's module never imports the prediction layer above it.
"""
from __future__ import annotations

import numpy as np

from .distributions import check_pair

__all__ = ["check_path_inputs", "expected_calls_from_lengths"]


def check_path_inputs(target_probs, draft_probs, tokens):
    """Validate a logged path: p, q of shape [T, V], integer tokens [T] with p_t(y_t) > 0.

    Returns ``(p, q, y, py)`` with ``py[t]`` = :math:`p_t(y_t)`.

    >>> check_path_inputs([[0.5, 0.5]], [[0.2, 0.8]], [1])[3].tolist()
    [0.5]
    """
    p, q = check_pair(target_probs, draft_probs)
    if p.ndim != 2:
        raise ValueError(f"logged distributions must have shape [T, V], got {p.shape}")
    y = np.asarray(tokens)
    if y.shape != p.shape[:1] or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"tokens must be an integer array of shape ({p.shape[0]},), got {y.dtype} {y.shape}")
    if np.any((y < 0) | (y >= p.shape[1])):
        raise ValueError(f"token ids must lie in [0, {p.shape[1]})")
    py = p[np.arange(len(y)), y]
    if np.any(py <= 0):
        t = int(np.flatnonzero(py <= 0)[0])
        raise ValueError(f"logged token {int(y[t])} at position {t} has target probability 0")
    return p, q, y, py


def expected_calls_from_lengths(lengths: np.ndarray) -> np.ndarray:
    r"""Expected target calls to produce positions t..T-1, from the law of a call's length.

    For methods whose nodes do not accept independently along the path (block
    verification decides on the whole chain), the method gives
    ``lengths[t, j]`` = :math:`P_t(j)`, the probability that a call starting at t yields j
    tokens given the path (shape ``(T, D + 2)``, column 0 unused, positions past the end
    counted as accepted).  Same recursion as :func:`expected_calls`:
    :math:`f(t) = 1 + \sum_j P_t(j)\, f(\min(t + j, T))`, ``f[T] = 0``.

    >>> expected_calls_from_lengths(np.array([[0, 0.5, 0.5]] * 4)).tolist()
    [2.875, 2.25, 1.5, 1.0, 0.0]
    """
    lengths = np.asarray(lengths, dtype=float)
    length, cols = lengths.shape
    f = np.zeros(length + 1)
    for t in range(length - 1, -1, -1):
        ahead = np.minimum(t + np.arange(1, cols), length)
        f[t] = 1.0 + float(lengths[t, 1:] @ f[ahead])
    return f
