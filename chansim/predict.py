r"""Predict tokens per target call from a logged path (real-model validation).

A log holds, along one sequence :math:`y_1, y_2, \dots, y_T` sampled from the target,
the target and draft distributions :math:`(p_t, q_t)` of :math:`y_t`.  For a draft tree
whose shape depends only on depth (``widths[d]`` children at depth d, as in
:func:`chansim.trees.branching`), condition on the output being the logged path: the
node at position t and depth d *accepts* (the output came from a drafted child rather
than the fallback) with probability

.. math:: c_t^{(d)} = P(\text{accept} \wedge \text{output} = y_t) / p_t(y_t),

computable from :math:`(p_t, q_t)` alone (ALGORITHMS.md, "Predicting from a logged
path"; derivations in docs/theory.md):

* ``sd`` (one draft): :math:`c = \min(1, q(y)/p(y))`;
* ``specinfer`` (m i.i.d. drafts, residuals :math:`r_{j+1} = \mathrm{norm}((r_j - q)_+)`):
  :math:`c = 1 - \prod_{j\le m}(1-\beta_j)\, r_{m+1}(y)/p(y)`;
* ``ersd`` (race ranks 1..m): :math:`c = P(R \le m \mid y \text{ wins the p-race})`, see
  :func:`ersd_path_acceptance`;
* ``autoregressive``: :math:`c = 0`.

Given the path, fresh randomness per position makes these events independent, so a
call starting at t yields j tokens with probability
:math:`\prod_{d<j-1} c^{(d)}_{t+d}\,(1 - c^{(j-1)}_{t+j-1})` (j <= D) or
:math:`\prod_{d<D} c^{(d)}_{t+d}` (j = D + 1), and the expected number of calls to
produce the whole path solves the backward recursion
:math:`f(t) = 1 + \sum_j P_t(j)\, f(t + j)`, :math:`f(t \ge T) = 0`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from .distributions import check_pair

__all__ = [
    "sd_path_acceptance",
    "specinfer_path_acceptance",
    "ersd_path_acceptance",
    "path_acceptance",
    "expected_calls",
    "PathPrediction",
    "predict_path",
    "PATH_METHODS",
]


def _path_inputs(target_probs, draft_probs, tokens):
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


def sd_path_acceptance(target_probs, draft_probs, tokens) -> np.ndarray:
    r""":math:`c_t = \min(1, q_t(y_t)/p_t(y_t))` for one drafted token (Leviathan et al. 2023).

    >>> sd_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0]).tolist()
    [0.4]
    """
    p, q, y, py = _path_inputs(target_probs, draft_probs, tokens)
    return np.minimum(1.0, q[np.arange(len(y)), y] / py)


def specinfer_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r"""Multi-round acceptance with m i.i.d. drafts (Miao et al. 2023), conditioned on the output.

    :math:`P(\text{all rejected} \wedge \text{out}=y) = \prod_{j\le m}(1-\beta_j)\, r_{m+1}(y)` with
    :math:`\beta_j = \sum_x \min(r_j, q)` and :math:`r_{j+1} = (r_j - q)_+ / (1 - \beta_j)`.

    >>> specinfer_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0], 1).tolist()
    [0.4]
    """
    p, q, y, py = _path_inputs(target_probs, draft_probs, tokens)
    m = _check_width(m)
    residual = p.copy()                    # [T, V] unnormalised: mass still to be produced
    for _ in range(m):
        residual = np.maximum(residual - q * residual.sum(-1, keepdims=True), 0.0)
        # after normalising r_j and subtracting q, rescale back by (1 - beta_j) * mass
    reject_y = residual[np.arange(len(y)), y]
    return np.clip(1.0 - reject_y / py, 0.0, 1.0)


def ersd_path_acceptance(target_probs, draft_probs, tokens, m: int, step: float = 0.25,
                         exact_tokens: int = 64, drop_tol: float = 1e-12) -> np.ndarray:
    r"""ERSD: P(the logged token's rank in the draft race is <= m | it won the target race).

    Given that y wins the p-race at time t (t ~ Exp(1), independent of y), token x
    arrives before y in the q-race independently with probability
    :math:`\pi_x(t) = 1 - e^{-t c_x}`, :math:`c_x = (p_y q_x/q_y - p_x)_+`, so

    .. math:: c = \int_0^\infty e^{-t}\, P\Big(\sum_x \mathrm{Bern}(\pi_x(t)) \le m-1\Big)\, dt ,

    which is :math:`p_y / \sum_x \max(p_x, p_y q_x/q_y)` for m = 1 (closed form used).
    For m > 1 the integral is a trapezoid rule in :math:`\log t` on
    :math:`[10^{-13}, 50]` (step 0.25; exponentially convergent, checked against the
    exact rank law to 1e-12), the ``exact_tokens`` largest :math:`c_x` enter an exact
    Poisson-binomial recursion, the others a Poisson law with the same mean (Le Cam:
    error <= :math:`2\sum_{\text{rest}} c_x^2`), and tokens whose :math:`c_x` sum to
    less than ``drop_tol`` are dropped (error <= that sum).
    """
    p, q, y, py = _path_inputs(target_probs, draft_probs, tokens)
    m = _check_width(m)
    rows = np.arange(len(y))
    qy = q[rows, y]
    out = np.zeros(len(y))
    ok = qy > 0                                        # q(y) = 0: y is never drafted
    if not np.any(ok):
        return out
    p, q, py, qy, yy = p[ok], q[ok], py[ok], qy[ok], y[ok]
    c = np.maximum((py / qy)[:, None] * q - p, 0.0)    # [T', V]
    c[np.arange(len(yy)), yy] = 0.0
    total = c.sum(-1)
    if m == 1:
        out[ok] = 1.0 / (1.0 + total)
        return out
    t = np.exp(np.arange(math.log(1e-13), math.log(50.0), step))      # [n_t]
    weight = step * t * np.exp(-t)                                       # trapezoid in log t
    vals = np.empty(len(yy))
    for i in range(len(yy)):
        ci = np.sort(c[i][c[i] > 0])[::-1]
        tail = np.cumsum(ci[::-1])[::-1]                 # tail[j] = sum of ci[j:]
        keep = int(np.searchsorted(-tail, -drop_tol))    # drop the smallest, summing < drop_tol
        big, rest = ci[:min(exact_tokens, keep)], ci[min(exact_tokens, keep):keep]
        pmf = np.zeros((len(t), m))
        pmf[:, 0] = 1.0
        if len(rest):                                    # Poisson part: P(N_rest = n), n < m
            lam = -np.expm1(-np.outer(t, rest)).sum(1)
            n = np.arange(m)
            pmf = np.exp(-lam[:, None] + n * np.log(np.maximum(lam[:, None], 1e-300)) - _log_factorial(n))
        for cx in big:                                   # exact Poisson-binomial recursion
            b = -np.expm1(-t * cx)[:, None]
            nxt = pmf * (1 - b)
            nxt[:, 1:] += pmf[:, :-1] * b
            pmf = nxt
        vals[i] = float(weight @ pmf.sum(1))
    out[ok] = np.clip(vals, 0.0, 1.0)
    return out


def _log_factorial(n: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(n + 1.0)


def _check_width(m) -> int:
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"number of drafted children must be a positive integer, got {m!r}")
    return int(m)


#: method -> function(p, q, y, m) giving c_t for a node with m drafted children.
PATH_METHODS = {
    "sd": lambda p, q, y, m: sd_path_acceptance(p, q, y) if m == 1 else _sd_width_error(m),
    "specinfer": specinfer_path_acceptance,
    "ersd": ersd_path_acceptance,
}


def _sd_width_error(m):
    raise ValueError(f"sd drafts a chain (one child per node), got {m} children; use specinfer for trees")


def path_acceptance(method: str, target_probs, draft_probs, tokens, widths: Sequence[int]) -> np.ndarray:
    """c[d, t]: conditional acceptance at position t for a node at depth d with ``widths[d]`` children."""
    if method == "autoregressive":
        return np.zeros((0, len(tokens)))
    if method not in PATH_METHODS:
        raise ValueError(f"no path prediction for method {method!r}; available: autoregressive, {', '.join(PATH_METHODS)}")
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive integers, got {widths}")
    cache = {w: PATH_METHODS[method](target_probs, draft_probs, tokens, w) for w in set(widths)}
    return np.stack([cache[w] for w in widths])


def expected_calls(accept: np.ndarray) -> np.ndarray:
    r"""Expected number of target calls to produce positions t..T-1 of the path, for each t.

    ``accept[d, t]`` = :math:`c^{(d)}_t` (shape ``(D, T)``; D = 0 is autoregressive).
    Backward recursion :math:`f(t) = 1 + \sum_{j=1}^{D+1} P_t(j) f(t+j)`; returns f of
    shape ``(T + 1,)`` with ``f[T] = 0`` (calls that would run past the end are cut there).

    >>> expected_calls(np.zeros((0, 3))).tolist()     # autoregressive: one call per token
    [3.0, 2.0, 1.0, 0.0]
    >>> float(expected_calls(np.ones((2, 6)))[0])     # everything accepted: 3 tokens per call
    2.0
    """
    accept = np.asarray(accept, dtype=float)
    depth, length = accept.shape
    f = np.zeros(length + depth + 2)
    for t in range(length - 1, -1, -1):
        reach = 1.0            # P(the first j-1 nodes accepted)
        total = 0.0
        for j in range(1, depth + 2):
            d = j - 1
            if d < depth and t + d < length:
                stop = 1.0 - accept[d, t + d]
            else:
                stop = 1.0     # leaf reached (bonus token) or end of path
            total += reach * stop * f[min(t + j, length)]
            reach *= 1.0 - stop
            if reach == 0.0:
                break
        f[t] = 1.0 + total
    return f[: length + 1]


class PathPrediction(NamedTuple):
    """Predicted calls for a set of logged sequences (one entry per sequence)."""

    tokens: np.ndarray           # [n_seq] path lengths
    expected_calls: np.ndarray   # [n_seq] E[calls | path]

    @property
    def tokens_per_call(self) -> float:
        return float(self.tokens.sum() / self.expected_calls.sum())

    def interval(self, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
        """Bootstrap interval over sequences of total tokens / total expected calls."""
        if len(self.tokens) < 2:
            return self.tokens_per_call, self.tokens_per_call
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self.tokens), size=(resamples, len(self.tokens)))
        ratios = self.tokens[idx].sum(1) / self.expected_calls[idx].sum(1)
        lo, hi = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(lo), float(hi)


def predict_path(method: str, widths: Sequence[int], sequences) -> PathPrediction:
    """Predict tokens per call for logged sequences ``[(target_probs [T,V], draft_probs [T,V], tokens [T]), ...]``.

    ``widths`` gives the children per depth (``[1]*gamma`` for a chain of gamma, ``[m]``
    for a batch); ``method="autoregressive"`` ignores it.
    """
    lengths, calls = [], []
    for target_probs, draft_probs, tokens in sequences:
        accept = path_acceptance(method, target_probs, draft_probs, tokens, widths)
        lengths.append(len(tokens))
        calls.append(expected_calls(accept)[0])
    if not lengths:
        raise ValueError("no logged sequences to predict from")
    return PathPrediction(np.asarray(lengths, float), np.asarray(calls, float))
