r"""``spectr`` — k-sequential selection over i.i.d. drafts (Sun et al. 2023, SpecTr).

At a node with k drafts :math:`X_1..X_k` i.i.d. from q and a parameter :math:`\rho \ge 1`:
for i = 1..k accept :math:`X_i` with probability :math:`\min(1, p(X_i)/(\rho\, q(X_i)))`
(the first acceptance wins).  If none is accepted output :math:`y \sim p_{res}`,

.. math::
    p_{res}(x) = \frac{p(x) - \min(q(x), p(x)/\rho)\, c}{(1 - \beta)^k},\qquad
    \beta(\rho) = \sum_x \min(q(x), p(x)/\rho),\qquad c = \frac{1 - (1 - \beta)^k}{\beta}.

Then :math:`P(y = x) = \min(q, p/\rho)(x)\, c + (1-\beta)^k p_{res}(x) = p(x)`.
:math:`p_{res} \ge 0` needs :math:`c \le \rho`; acceptance :math:`1 - (1 - \beta)^k` grows
as :math:`\rho` shrinks, so :func:`spectr_rho` takes the smallest feasible :math:`\rho`
by bisection (:math:`\rho = 1` when k = 1: plain sd).

On k i.i.d. draft *sequences* (tree ``seq:kxL``) the rule is applied at each depth to
the drafts whose prefix equals the output so far (their next tokens are i.i.d. from q
at that context), with k replaced by their count: the walks keep every candidate that
holds the accepted token alive (``merges_duplicates``).
"""
from __future__ import annotations

import numpy as np

from .base import IIDDrafting, Method, NodeNoise, sample_rows, take_rows

__all__ = ["SpecTr", "spectr_rho", "spectr_beta_c"]


def spectr_beta_c(p: np.ndarray, q: np.ndarray, k: int, rho: np.ndarray):
    r""":math:`\beta(\rho)` and :math:`c(\rho)` row by row; p, q ``[R, V]``, rho ``[R]``."""
    beta = np.minimum(q, p / rho[:, None]).sum(axis=-1)                   # [R]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(beta > 0, -np.expm1(k * np.log1p(-np.minimum(beta, 1.0))) / beta, float(k))
    return beta, c


def spectr_rho(p, q, k: int, iterations: int = 40) -> np.ndarray:
    r"""Smallest feasible :math:`\rho \in [1, k]` (:math:`c(\rho) \le \rho`) per row, by bisection.

    :math:`\rho = k` is always feasible (c <= k).  ``iterations`` halvings of [1, k] leave
    the returned value within :math:`(k-1)2^{-40}` of the feasibility boundary, and it is
    always feasible itself (exactness never depends on the tolerance).

    >>> spectr_rho(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]), 3).tolist()
    [1.0]
    >>> float(spectr_rho(np.array([[0.9, 0.1]]), np.array([[0.1, 0.9]]), 1)[0])
    1.0
    """
    p, q = np.atleast_2d(p), np.atleast_2d(q)
    rows = max(p.shape[0], q.shape[0])
    lo, hi = np.ones(rows), np.full(rows, float(k))
    _, c1 = spectr_beta_c(p, q, k, lo)
    ok_at_one = c1 <= 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        _, c = spectr_beta_c(p, q, k, mid)
        feasible = c <= mid
        hi = np.where(feasible, mid, hi)
        lo = np.where(feasible, lo, mid)
    return np.where(ok_at_one, 1.0, hi)


class SpecTr(IIDDrafting, Method):
    """SpecTr k-sequential verification (see the module docstring).

    Parameters
    ----------
    rho : float, optional
        Fix :math:`\\rho` instead of the smallest feasible value; must satisfy
        :math:`c(\\rho) \\le \\rho` at every node (checked).
    """

    name = "spectr"
    merges_duplicates = True
    sequences_only = True

    def __init__(self, rho: float | None = None):
        if rho is not None and not (np.isfinite(rho) and rho >= 1):
            raise ValueError(f"spectr rho must be a finite number >= 1, got {rho}")
        self.rho = rho

    def verify(self, p, q, drafts, noise: NodeNoise):
        batch, k = drafts.shape
        u = noise.rng.random((batch, k + 1))                              # [B, k + 1]
        accepted = np.full(batch, -1, dtype=np.int64)
        if k == 0:
            return accepted, sample_rows(p, u[:, 0])
        rows = max(p.shape[0], q.shape[0])
        if self.rho is None:
            rho = spectr_rho(p, q, k)                                     # [R]
        else:
            rho = np.full(rows, float(self.rho))
        beta, c = spectr_beta_c(p, q, k, rho)
        if self.rho is not None and np.any(c > rho * (1 + 1e-12)):
            raise ValueError(f"spectr rho={self.rho} is infeasible here (c(rho)={c.max():.6g} > rho) for k={k}")
        for i in range(k):
            x = drafts[:, i]                                              # accept w.p. min(1, p/(rho q))
            ok = (accepted < 0) & (u[:, i] * rho * take_rows(q, x) < take_rows(p, x))
            accepted[ok] = i
        p_res = np.maximum(p - np.minimum(q, p / rho[:, None]) * c[:, None], 0.0)   # [R, V] unnormalised
        # beta = 1 (q = p): no residual mass, and the first draft is accepted surely
        p_res = np.where(p_res.sum(axis=-1, keepdims=True) > 0, p_res, p)
        token = sample_rows(p_res, u[:, k])
        hit = accepted >= 0
        token[hit] = drafts[hit, accepted[hit]]
        return accepted, token
