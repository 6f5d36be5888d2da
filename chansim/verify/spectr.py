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
holds the accepted token alive (``merges_duplicates``) (docs/algorithms.md).

Theory: the node acceptance :func:`spectr_acceptance`, the law of the number of drafts
that agree with the output (:func:`spectr_transition`) and from it the exact tokens per
call on k i.i.d. sequences (:func:`spectr_sequences_tokens`, docs/theory.md §1).
"""
from __future__ import annotations

import numpy as np
from scipy.special import comb

from ..inputs.trees import Tree
from .base import IIDDrafting, Method, NodeNoise, check_width, sample_rows, take_rows

__all__ = ["SpecTr", "spectr_rho", "spectr_beta_c", "spectr_acceptance", "spectr_transition",
           "spectr_transition_matrix", "spectr_sequences_tokens", "sequences_shape"]


def spectr_beta_c(p: np.ndarray, q: np.ndarray, k: int, rho: np.ndarray):
    r""":math:`\beta(\rho)` and :math:`c(\rho)` row by row; p, q ``[R, V]``, rho ``[R]``."""
    beta = np.minimum(q, p / rho[:, None]).sum(axis=-1)                   # [R]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(beta > 0, -np.expm1(k * np.log1p(-np.minimum(beta, 1.0))) / beta, float(k))
    return beta, c


def spectr_rho(p, q, k: int, iterations: int = 60) -> np.ndarray:
    r"""Smallest feasible :math:`\rho \in [1, k]` (:math:`c(\rho) \le \rho`) per row, by bisection.

    The one ρ of SpecTr, used by the verifier, the theory and path prediction.
    ``p``, ``q`` ``[R, V]`` or ``[V]`` → ρ ``[R]`` (``[1]`` for one pair).
    :math:`\rho = k` is always feasible (c <= k).  ``iterations`` halvings of [1, k] leave
    the returned value within :math:`(k-1)2^{-60}` of the feasibility boundary, and it is
    always feasible itself (exactness never depends on the tolerance).

    >>> spectr_rho(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]), 3).tolist()
    [1.0]
    >>> float(spectr_rho(np.array([[0.9, 0.1]]), np.array([[0.1, 0.9]]), 1)[0])
    1.0
    """
    p, q = np.atleast_2d(p), np.atleast_2d(q)
    rows = max(p.shape[0], q.shape[0])
    out = np.ones(rows)
    if k <= 1:                                       # c(1) = 1 at k = 1: rho = 1 (sd)
        return out
    _, c1 = spectr_beta_c(p, q, k, out)
    todo = np.flatnonzero(c1 > 1.0)                  # rows where rho = 1 is not feasible
    if not len(todo):
        return out
    shape = (rows, max(p.shape[1], q.shape[1]))
    p, q = np.broadcast_to(p, shape)[todo], np.broadcast_to(q, shape)[todo]
    lo, hi = np.ones(len(todo)), np.full(len(todo), float(k))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        _, c = spectr_beta_c(p, q, k, mid)
        feasible = c <= mid
        hi = np.where(feasible, mid, hi)
        lo = np.where(feasible, lo, mid)
    out[todo] = hi
    return out


def spectr_acceptance(target_probs, draft_probs, k: int) -> float:
    r"""Node acceptance of SpecTr with k i.i.d. drafts, :math:`1 - (1 - \beta(\rho))^k`; one checked pair ``[V]``."""
    p, q = np.asarray(target_probs, dtype=float), np.asarray(draft_probs, dtype=float)
    k = check_width(k)
    rho = spectr_rho(p, q, k)
    beta = spectr_beta_c(p[None], q[None], 1, rho)[0][0]
    return float(1 - (1 - beta) ** k)


def spectr_transition(target_probs, draft_probs, count: int) -> np.ndarray:
    r"""P(accept and exactly n of the ``count`` drafts equal the output), n = 1..count.

    SpecTr's k-sequential rule tries :math:`X_1..X_c` (i.i.d. q) in order and accepts
    :math:`X_i` with probability :math:`a(X_i) = \min(1, p/(\rho q))`.  With
    :math:`s_y = q_y a_y = \min(q_y, p_y/\rho)` and :math:`u_y = q_y - s_y`,

    .. math::
        P(\text{first accept at } i,\, Y = y,\, b \text{ earlier and } e \text{ later drafts} = y)
        = \tbinom{i-1}{b} u_y^b (1-\beta-u_y)^{i-1-b}\, s_y\,
          \tbinom{c-i}{e} q_y^e (1-q_y)^{c-i-e},

    and the drafts consistent with the output number n = 1 + b + e (their next tokens
    are again i.i.d. q, so the next node sees count n).  Shape ``(count,)``; the sum is
    the node acceptance :math:`1 - (1-\beta)^c`.  ``target_probs``, ``draft_probs``: one checked pair ``[V]``.
    """
    p, q = np.asarray(target_probs, dtype=float), np.asarray(draft_probs, dtype=float)
    c = check_width(count)
    rho = float(spectr_rho(p, q, c)[0])
    s = np.minimum(q, p / rho)
    beta = s.sum()
    u = q - s
    rest = np.clip(1 - beta - u, 0, None)                      # rejected and != y
    out = np.zeros(c)
    for i in range(1, c + 1):
        b = np.arange(i)
        before = comb(i - 1, b)[None, :] * u[:, None] ** b * rest[:, None] ** (i - 1 - b)      # [V, i]
        e = np.arange(c - i + 1)
        after = comb(c - i, e)[None, :] * q[:, None] ** e * (1 - q[:, None]) ** (c - i - e)   # [V, c-i+1]
        for bb in range(i):                                      # n - 1 = b + e
            out[bb: bb + c - i + 1] += (s * before[:, bb]) @ after
    return out


def spectr_transition_matrix(target_probs, draft_probs, cmax: int) -> np.ndarray:
    """``T[n, n']`` = :func:`spectr_transition` for every count n = 1..cmax, ``(cmax+1, cmax+1)``; pair ``[V]``."""
    cmax = check_width(cmax)
    trans = np.zeros((cmax + 1, cmax + 1))
    for n in range(1, cmax + 1):
        trans[n, 1:n + 1] = spectr_transition(target_probs, draft_probs, n)
    return trans


def sequences_shape(tree: Tree):
    """``(count, length)`` when the tree is ``count`` disjoint chains of equal length, else None."""
    if tree.size == 0:
        return (0, 0)
    kids = tree.num_children
    if np.any(kids[1:] > 1):
        return None
    leaves = np.flatnonzero(kids == 0)
    depths = tree.depth[leaves]
    if len(set(depths.tolist())) != 1:
        return None
    return int(kids[0]), int(depths[0])


def spectr_sequences_tokens(target_probs, draft_probs, count: int, length: int, transition=None) -> float:
    r"""Exact E[tokens per call] of SpecTr on ``count`` i.i.d. draft sequences of ``length``; pair ``[V]``.

    State = number n of drafted sequences whose prefix equals the output so far; the
    next-depth law of n comes from :func:`spectr_transition`
    (``transition``: a precomputed :func:`spectr_transition_matrix`
    covering counts up to ``count``, reused across shapes):

    .. math:: \pi_{d+1}(n') = \sum_n \pi_d(n)\, T_n(n'), \qquad
              E = 1 + \sum_{d=1}^{L} \sum_n \pi_d(n).
    """
    if count == 0 or length == 0:
        return 1.0
    if transition is None:
        transition = spectr_transition_matrix(target_probs, draft_probs, count)
    trans = transition[:count + 1, :count + 1]                   # trans[n, n']
    pi = np.zeros(count + 1)
    pi[count] = 1.0
    total = 1.0
    for _ in range(length):
        pi = pi @ trans
        total += pi.sum()
    return float(total)


class SpecTr(IIDDrafting, Method):
    """SpecTr k-sequential verification (see the module docstring).

    Parameters
    ----------
    rho : float, optional
        Fix :math:`\\rho` instead of the smallest feasible value; must satisfy
        :math:`c(\\rho) \\le \\rho` at every node (checked).
    """

    name = "spectr"
    label = "spectr"
    colour = "#9467bd"
    marker = "D"
    merges_duplicates = True
    sequences_only = True
    tree_family = "sequences"
    has_path_prediction = True
    sd_on_chains = True
    truncated_intervals = "chains"        # where it is sd
    #: ``chansim bound`` lists spectr by default while V·k_max² stays below this (ρ's bisection cost)
    bound_default_max_work = 2_000_000

    def in_default(self, purpose: str, vocab: int | None = None, kmax: int | None = None) -> bool:
        return (purpose == "bound" and vocab is not None and kmax is not None
                and vocab * kmax ** 2 <= self.bound_default_max_work)

    def node_acceptance(self, p, q, m: int, **_) -> float:
        """:func:`spectr_acceptance` of a checked pair ``[V]``."""
        return spectr_acceptance(p, q, m)

    def tree_tokens(self, tree, p, q):
        """Exact DP over k i.i.d. sequences (:func:`spectr_sequences_tokens`)."""
        shape = sequences_shape(tree)
        if shape is None:
            raise ValueError(f"spectr verifies disjoint equal-length draft sequences (seq:CxL); got {tree!r}")
        return spectr_sequences_tokens(p, q, *shape)

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        r"""The output is an accepted draft with law :math:`\min(q, p/\rho)\,c`, so
        :math:`c_t = \min(q(y), p(y)/\rho)\,c/p(y)`, :math:`c = (1-(1-\beta)^m)/\beta`
        (ρ = 1, c = 1 at m = 1: sd).  ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T]``."""
        rho = spectr_rho(p, q, m)
        _, c = spectr_beta_c(p, q, m, rho)
        rows = np.arange(len(y))
        return np.clip(np.minimum(q[rows, y], py / rho) * c / py, 0.0, 1.0)

    def check_widths(self, widths) -> None:
        if len(widths) > 1 and any(w > 1 for w in widths):
            raise ValueError(f"spectr path prediction needs a chain (widths all 1) or a single batch depth, got "
                             f"widths {widths}: on draft sequences the number of live drafts below depth 0 is random")

    def __init__(self, rho: float | None = None):
        if rho is not None and not (np.isfinite(rho) and rho >= 1):
            raise ValueError(f"spectr rho must be a finite number >= 1, got {rho}")
        self.rho = rho

    def verify(self, p, q, drafts, noise: NodeNoise):
        """k-sequential selection over ``drafts`` ``[B, k]``.

        ``p``, ``q`` ``[R, V]`` → ``(accepted [B], token [B])``.
        """
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
        hit = accepted >= 0
        token = np.where(hit, drafts[np.arange(batch), np.maximum(accepted, 0)], -1)
        miss = np.flatnonzero(~hit)                                       # y ~ p_res, only where none accepted
        if miss.size:
            token[miss] = sample_rows(p_res if p_res.shape[0] == 1 else p_res[miss], u[miss, k])
        return accepted, token
