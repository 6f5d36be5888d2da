r"""The best possible acceptance of one node with m drafts (optimal transport, small V).

A verifier sees the draft *set* S (m tokens drafted i.i.d. from q, or without
replacement) and must output Y ~ p exactly; it accepts when Y ∈ S.  The best exact
acceptance over all verifiers is the value of the transport LP

.. math::
    \max_{\pi \ge 0} \sum_{A,\, y \in A} \pi(A, y) \quad\text{s.t.}\quad
    \sum_{y\in A} \pi(A, y) \le P(S = A), \qquad \sum_{A \ni y} \pi(A, y) \le p_y

(any feasible π extends to a coupling by routing the leftover mass off the diagonal).
It is a bipartite max-flow, so by max-flow/min-cut it equals
:math:`\min_{B \subseteq V} p(V\setminus B) + P(S \cap B \ne \emptyset)`, with
:math:`P(S\cap B\ne\emptyset) = 1 - (1 - q(B))^m` for i.i.d. drafts (docs/algorithms.md, "The optimal node").
Both forms enumerate the :math:`2^V` subsets: V <= 12 or so.  The LP itself, the law of
the draft set and the i.i.d. optimum by sorting live in :mod:`chansim.sampling.transport`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from ..sampling.kernels import poisson_binomial_add
from ..sampling.transport import check_lp_inputs as _check
from ..sampling.transport import draft_set_law, optimal_acceptance_iid, optimal_transport_plan

__all__ = ["draft_set_law", "optimal_transport_plan", "optimal_acceptance_lp", "optimal_acceptance_mincut",
           "optimal_acceptance_iid", "mincut_without_replacement"]


def optimal_acceptance_lp(target_probs, draft_probs, m: int, draws: str = "iid") -> float:
    """Optimal node acceptance by the transport LP (scipy HiGHS); see the module docstring.

    >>> round(optimal_acceptance_lp([0.5, 0.5], [0.9, 0.1], 1), 6)   # m = 1: 1 - TV
    0.6
    """
    return float(optimal_transport_plan(target_probs, draft_probs, m, draws)[2].sum())


def optimal_acceptance_mincut(target_probs, draft_probs, m: int, draws: str = "iid") -> float:
    r""":math:`\min_B p(V\setminus B) + P(S \cap B \ne \emptyset)` over all token sets B.

    >>> round(optimal_acceptance_mincut([0.5, 0.5], [0.9, 0.1], 1), 6)
    0.6
    """
    p, q, m = _check(target_probs, draft_probs, m, draws)
    vocab = len(p)
    law = None if draws == "iid" else draft_set_law(q, m, draws)
    best = 1.0
    for mask in range(1 << vocab):
        b = [x for x in range(vocab) if mask >> x & 1]
        outside = p.sum() - p[b].sum()
        if draws == "iid":
            hit = 1 - (1 - q[b].sum()) ** m
        else:
            bs = set(b)
            hit = sum(v for s, v in law.items() if s & bs)
        best = min(best, outside + hit)
    return float(best)


def mincut_without_replacement(target_probs, draft_probs) -> np.ndarray:
    r"""Optimal node acceptance for m = 1..V drafts *without replacement* (the race's top m).

    Min-cut form of the transport LP (:mod:`chansim.theory.lp`):
    :math:`\min_B p(B^c) + 1 - P(S \cap B = \emptyset)`.  The first m race arrivals avoid
    B iff at least m tokens of :math:`B^c` arrive before B's first arrival
    :math:`T_B \sim \mathrm{Exp}(q(B))`; given :math:`T_B = t` they arrive independently
    with probabilities :math:`1 - e^{-q_x t}`, so

    .. math:: P(S\cap B=\emptyset) = \int_0^\infty q(B) e^{-q(B) t}\,
              P(\mathrm{PoisBin}(\{1-e^{-q_x t}\}_{x\notin B}) \ge m)\,dt,

    integrated for all :math:`2^V` sets and all m at once (``quad_vec``).  Agrees with
    the enumeration in :func:`optimal_acceptance_mincut` (checked in tests); docs/theory.md §1 ("Optimal node (LP)").
    """
    p, q = np.asarray(target_probs, float), np.asarray(draft_probs, float)
    vocab = len(p)
    masks = np.arange(1 << vocab)
    member = (masks[:, None] >> np.arange(vocab)[None, :]) & 1                 # [2^V, V] x in B
    q_b = member @ q                                                           # [2^V]
    p_out = 1.0 - member @ p

    def integrand(u):                                                          # u = q_B t, t = u / q_B
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(q_b > 0, u / q_b, np.inf)
        before = np.where(member == 0, -np.expm1(-np.outer(t, q)), 0.0)        # [2^V, V] x not in B
        before = np.nan_to_num(before, nan=1.0)
        pmf = np.zeros((len(masks), vocab + 1))
        pmf[:, 0] = 1.0
        for x in range(vocab):                                                 # Poisson-binomial DP
            poisson_binomial_add(pmf, before[:, x:x + 1])
        tail = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]                        # tail[:, m] = P(N >= m)
        return math.exp(-u) * tail[:, 1:]                                      # m = 1..V

    avoid, _ = integrate.quad_vec(integrand, 0.0, np.inf, epsabs=1e-12, epsrel=1e-10, limit=400)
    avoid[q_b == 0] = 1.0                                                      # B never drafted
    return (p_out[:, None] + 1.0 - avoid).min(axis=0).clip(0.0, 1.0)
