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
Both forms enumerate the :math:`2^V` subsets: V <= 12 or so.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.optimize import linprog

from ..distributions import check_pair

__all__ = ["draft_set_law", "optimal_transport_plan", "optimal_acceptance_lp", "optimal_acceptance_mincut"]

_MAX_VOCAB = 14


def _check(p, q, m, draws):
    p, q = check_pair(p, q)
    if p.ndim != 1:
        raise ValueError("the optimal-node LP takes one 1-D pair")
    if p.shape[0] > _MAX_VOCAB:
        raise ValueError(f"the optimal-node LP enumerates 2^V subsets; V={p.shape[0]} > {_MAX_VOCAB}")
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    if draws not in ("iid", "without"):
        raise ValueError(f"draws must be 'iid' or 'without', got {draws!r}")
    return p, q, int(m)


def draft_set_law(draft_probs, m: int, draws: str = "iid") -> dict:
    r"""Law of the draft set S: ``{frozenset: probability}``.

    i.i.d.: inclusion–exclusion, :math:`P(S = A) = \sum_{B \subseteq A} (-1)^{|A|-|B|} q(B)^m`.
    Without replacement: sum over orderings of :math:`\prod_i q_{x_i}/(1 - \sum_{j<i} q_{x_j})`
    (the first m arrivals of the q-race); if fewer than m tokens have q > 0, S is the support.

    >>> law = draft_set_law([0.5, 0.5], 2)
    >>> {tuple(sorted(k)): round(v, 6) for k, v in law.items()}
    {(0,): 0.25, (1,): 0.25, (0, 1): 0.5}
    """
    q = np.asarray(draft_probs, dtype=float)
    vocab = len(q)
    support = [int(x) for x in np.flatnonzero(q > 0)]
    out = {}
    if draws == "iid":
        for size in range(1, min(m, len(support)) + 1):
            for subset in combinations(support, size):
                total = 0.0
                for bsize in range(1, size + 1):
                    for b in combinations(subset, bsize):
                        total += (-1) ** (size - bsize) * q[list(b)].sum() ** m
                if total > 1e-15:
                    out[frozenset(subset)] = float(total)
        return out
    mm = min(m, len(support))

    def visit(prefix, prob, used_mass):
        if len(prefix) == mm:
            key = frozenset(prefix)
            out[key] = out.get(key, 0.0) + float(prob)
            return
        for x in support:
            if x not in prefix:
                visit(prefix + (x,), prob * q[x] / (1 - used_mass), used_mass + q[x])

    visit((), 1.0, 0.0)
    del vocab
    return out


def optimal_transport_plan(target_probs, draft_probs, m: int, draws: str = "iid"):
    """An optimal solution π of the transport LP (see the module docstring).

    Returns ``(sets, law, plan)``: the draft sets with positive probability (a list of
    frozensets), their probabilities ``law`` ``[n_sets]`` and ``plan`` ``[n_sets, V]``
    with ``plan[i, y]`` = π(sets[i], y) (zero for y outside the set).  The optimum is
    ``plan.sum()``.  Used by the optimal multi-draft verifier
    (:mod:`chansim.verify.multidraft`).

    >>> sets, law, plan = optimal_transport_plan([0.5, 0.5], [0.9, 0.1], 1)
    >>> round(float(plan.sum()), 6)
    0.6
    """
    p, q, m = _check(target_probs, draft_probs, m, draws)
    law = draft_set_law(q, m, draws)
    sets = list(law)
    var = [(i, y) for i, s in enumerate(sets) for y in sorted(s)]
    n = len(var)
    a_ub = np.zeros((len(sets) + len(p), n))
    for j, (i, y) in enumerate(var):
        a_ub[i, j] = 1.0
        a_ub[len(sets) + y, j] = 1.0
    b_ub = np.concatenate([[law[s] for s in sets], p])
    res = linprog(-np.ones(n), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - the LP is always feasible (pi = 0)
        raise RuntimeError(f"LP failed: {res.message}")
    plan = np.zeros((len(sets), len(p)))
    for j, (i, y) in enumerate(var):
        plan[i, y] = max(0.0, float(res.x[j]))
    return sets, np.array([law[s] for s in sets]), plan


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
