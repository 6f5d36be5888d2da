r"""Draft sets and the transport LP of one node: the numerics shared by the theory and the multi-draft verifier.

A verifier sees the draft *set* S (m tokens drafted i.i.d. from q, or without
replacement) and must output Y ~ p exactly; its acceptance is the mass of a transport
plan π(A, y) ≥ 0 (y ∈ A) with :math:`\sum_y \pi(A, y) \le P(S = A)` and
:math:`\sum_A \pi(A, y) \le p_y`.  :func:`optimal_transport_plan` solves that LP
(:mod:`chansim.theory.lp` reports its value, the small-V reference);
:func:`optimal_acceptance_iid` is its optimum for i.i.d. drafts in O(V log V), which
:mod:`chansim.verify.multidraft` attains at any V without the LP.  Derivations:
docs/methods_block_multidraft.md §2.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ..inputs.numbers import whole_number
from ..inputs.distributions import check_pair_1d

__all__ = ["check_lp_inputs", "draft_set_law", "optimal_transport_plan", "optimal_acceptance_iid"]

_MAX_VOCAB = 14


#: largest number of i.i.d. draft sets (sum_{s <= m} C(|supp q|, s)) the transport plan enumerates
_MAX_SETS = 6000


def check_lp_inputs(p, q, m, draws, by_sets=False):
    """Validated (p, q, m) for the node LP; the problem size is bounded by V (2^V sets) or, with
    ``by_sets`` and i.i.d. drafts, by the number of possible draft sets."""
    p, q = check_pair_1d(p, q, "the optimal-node LP")
    whole_number(m, "m")
    if by_sets and draws == "iid":
        support = int(np.count_nonzero(q > 0))
        n_sets = sum(math.comb(support, s) for s in range(1, min(int(m), support) + 1))
        if n_sets > _MAX_SETS:
            raise ValueError(f"the transport plan enumerates the {n_sets} possible draft sets of m={int(m)} "
                             f"i.i.d. drafts on {support} tokens (limit {_MAX_SETS})")
    elif p.shape[0] > _MAX_VOCAB:
        raise ValueError(f"the optimal-node LP enumerates 2^V subsets; V={p.shape[0]} > {_MAX_VOCAB}")
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
    ``plan.sum()``.  The small-V reference for the optimal multi-draft verifier
    (:mod:`chansim.verify.multidraft`, which does not need it).

    >>> sets, law, plan = optimal_transport_plan([0.5, 0.5], [0.9, 0.1], 1)
    >>> round(float(plan.sum()), 6)
    0.6
    """
    p, q, m = check_lp_inputs(target_probs, draft_probs, m, draws, by_sets=True)
    law = draft_set_law(q, m, draws)
    sets = list(law)
    var = [(i, y) for i, s in enumerate(sets) for y in sorted(s)]
    n = len(var)
    set_of, token_of = np.array(var, dtype=np.int64).reshape(-1, 2).T          # [n], [n]
    cols = np.arange(n)
    a_ub = sparse.csr_matrix((np.ones(2 * n), (np.concatenate([set_of, len(sets) + token_of]),
                                               np.concatenate([cols, cols]))), shape=(len(sets) + len(p), n))
    b_ub = np.concatenate([[law[s] for s in sets], p])
    res = linprog(-np.ones(n), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - the LP is always feasible (pi = 0)
        raise RuntimeError(f"LP failed: {res.message}")
    plan = np.zeros((len(sets), len(p)))
    plan[set_of, token_of] = np.maximum(0.0, res.x)
    return sets, np.array([law[s] for s in sets]), plan


def optimal_acceptance_iid(target_probs, draft_probs, m: int, validate: bool = True) -> float:
    r"""The i.i.d. min-cut in O(V log V): the minimising set is a top set of the ratio p/q.

    With :math:`g(t) = 1 - (1 - t)^m` concave, if x is in an optimal B and y is not, then
    :math:`p_y/q_y \le g'(q(B)) \le p_x/q_x` (exchange argument,
    docs/methods_block_multidraft.md §2.2), and along a group of equal ratios the
    objective is concave, so

    .. math:: \alpha^* = \min_{k} \; 1 - P_k + g(Q_k)

    over the prefixes of the tokens sorted by decreasing p/q (q = 0 first), P and Q
    their cumulative p and q.  Any V.  ``validate=False``: p, q ``[V]`` are already checked
    (internal callers such as :mod:`chansim.verify.multidraft`); the public call checks once.

    >>> round(optimal_acceptance_iid([0.5, 0.5], [0.9, 0.1], 2), 6)
    0.69
    """
    p, q = check_pair_1d(target_probs, draft_probs, "optimal_acceptance_iid", validate)
    whole_number(m, "m")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
    order = np.argsort(-ratio, kind="stable")
    cum_p = np.concatenate([[0.0], np.cumsum(p[order])])
    cum_q = np.minimum(1.0, np.concatenate([[0.0], np.cumsum(q[order])]))
    return float(np.min(1.0 - cum_p + 1.0 - (1.0 - cum_q) ** int(m)).clip(0.0, 1.0))
