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
:math:`P(S\cap B\ne\emptyset) = 1 - (1 - q(B))^m` for i.i.d. drafts (ALGORITHMS.md).
Both forms enumerate the :math:`2^V` subsets: V <= 12 or so.  The LP itself, the law of
the draft set and the i.i.d. optimum by sorting live in :mod:`chansim.transport`.
"""
from __future__ import annotations

import numpy as np

from ..transport import check_lp_inputs as _check
from ..transport import draft_set_law, optimal_acceptance_iid, optimal_transport_plan

__all__ = ["draft_set_law", "optimal_transport_plan", "optimal_acceptance_lp", "optimal_acceptance_mincut",
           "optimal_acceptance_iid"]

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
