r"""``multidraft`` — the optimal multi-draft verifier for i.i.d. drafts (Khisti et al. 2024, arXiv 2410.18234).

Everything about the method lives here: the node rule, its exact node and tree
expectations in the i.i.d. model, and its conditional acceptance along a logged path.
Derivation and proofs: docs/methods_block_multidraft.md §2.

Canonical architecture.  At a node, m children :math:`x_1..x_m` are drafted i.i.d.
from q; let :math:`A = \{x_1..x_m\}` be the draft *set*.

1. **Selection**: pick one drafted token :math:`Y \sim \beta(\cdot \mid A)`; its law is
   the *selection law* r.
2. **Single-draft speculative sampling** of Y against p: accept Y with probability
   :math:`\min(1, p(Y)/r(Y))` (move to the first child holding Y), else output
   :math:`\sim \mathrm{norm}((p - r)_+)`.

Step 2 makes the output exactly ~ p for *any* selection; the node accepts with
probability :math:`\sum_y \min(p_y, r_y)`, at most the LP optimum

.. math:: \alpha^* = \min_k\; 1 - P_k + g(Q_k), \qquad g(t) = 1 - (1 - t)^m

(prefixes of the tokens sorted by decreasing p/q, :func:`chansim.sampling.transport.optimal_acceptance_iid`).

**The optimal selection at any V** (docs/methods_block_multidraft.md §2.3–2.5).  The
laws r of "select one token of A" are the base polytope of the coverage function
:math:`f(S) = g(q(S))`.  :func:`selection_law` builds, in O(V log V), a point r of it
with :math:`\sum_y \min(p_y, r_y) = \alpha^*`: the greedy
:math:`R_k = \min(R_{k-1} + p_k, g(Q_k))` in ratio order, extended on the tokens after
its last tight prefix by the mirrored greedy from the end.  :func:`multidraft_plan`
realises r by a *priority partition*: every token y owns a few cells of the priority
axis [0, 1] of total length q_y (built by the left-curtain, or shadow, construction of
martingale transport); each draft gets a uniform point of its token's cells and the
draft with the highest point is selected.  A draft's point is then uniform on [0, 1],
so token y is selected with probability :math:`\sum_{[a,b] \in \text{cells}(y)} b^m - a^m`,
which is r_y up to rounding; the sd step uses exactly this sum.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ..inputs.numbers import whole_number
from ..inputs.distributions import check_pair_1d
from ..inputs.paths import check_path_inputs
from ..inputs.trees import as_tree
from ..sampling.transport import optimal_acceptance_iid
from .base import IIDDrafting, Method, NodeNoise, sample_rows

__all__ = ["Multidraft", "MultidraftPlan", "selection_law", "multidraft_plan", "multidraft_acceptance", "first_holder_law",
           "multidraft_weights", "multidraft_tree_tokens", "multidraft_path_acceptance"]


# ----------------------------------------------------------------------------- the optimal selection law
def _ratio_order(p, q):
    """Tokens with q > 0 sorted by decreasing p/q (stable), ``[n]``."""
    support = np.flatnonzero(q > 0)
    return support[np.argsort(-(p[support] / q[support]), kind="stable")]


def _greedy_law(ps, qs, m: int):
    r"""The optimal selection law on the ratio-ordered support and its tight prefixes.

    ``ps``, ``qs`` ``[n]`` in ratio order.  Returns ``r`` ``[n]`` and ``tight`` ``[n]``
    (bool: ``r[:k+1].sum() == g(Q_k)``, the prefix is filled to its bound; always True
    at the end).  Head (up to the last tight prefix a of the forward greedy):
    :math:`R_k = P_k + \min(0, \min_{i \le k} g(Q_i) - P_i)`.  Tail: suffix sums
    :math:`U_j = \max(U_{j+1} + p_j, (1 - Q_{j-1})^m)`, i.e.
    :math:`U_j = S_j + \max_{k \ge j} ((1 - Q_{k-1})^m - S_k)` with S the suffix sums of p.
    """
    n = len(ps)
    rest_q = np.concatenate([np.cumsum(qs[::-1])[::-1], [0.0]])        # [n+1] q of tokens k.. (= 1 - Q_{k-1})
    cum_p = np.cumsum(ps)                                              # [n]
    slack = (1.0 - rest_q[1:] ** m) - cum_p                            # [n] g(Q_k) - P_k
    run_min = np.minimum.accumulate(slack)
    head_cum = cum_p + np.minimum(run_min, 0.0)                        # [n] R_k
    tight = (slack <= 0.0) & (slack <= run_min)                        # R_k = g(Q_k)
    last = n - 1 - int(np.argmin(slack[::-1]))                         # last tight prefix of the forward greedy
    if slack[last] > 0.0:
        last = -1
    r = np.diff(np.concatenate([[0.0], head_cum]))                     # [n]
    if last < n - 1:                                                   # tail after it: mirrored greedy
        suffix_p = np.concatenate([np.cumsum(ps[::-1])[::-1], [0.0]])  # [n+1] S_k
        bound = rest_q ** m                                            # [n+1] (1 - Q_{k-1})^m, 0 at n
        excess = bound - suffix_p                                      # [n+1]
        rev_max = np.maximum.accumulate(excess[::-1])[::-1]            # max_{k >= j}
        suffix_r = suffix_p + rev_max                                  # [n+1] U_j
        j = np.arange(last + 1, n)
        r[j] = suffix_r[j] - suffix_r[j + 1]
        tight[last + 1:] = False
        tight[j[1:] - 1] = excess[j[1:]] >= rev_max[j[1:]]             # U_j = bound_j: prefix up to j-1 full
        tight[n - 1] = True
    tight[n - 1] = True
    return np.maximum(r, 0.0), tight


def selection_law(target_probs, draft_probs, m: int) -> np.ndarray:
    r"""The optimal selection law r ``[V]`` of the canonical verifier for a pair ``[V]``, in O(V log V).

    r is a law of "one token of the draft set" (a point of the base polytope of
    :math:`S \mapsto 1 - (1 - q(S))^m`) with :math:`\sum_y \min(p_y, r_y) = \alpha^*`
    (docs/methods_block_multidraft.md §2.3): in the ratio order the greedy
    :math:`R_k = \min(R_{k-1} + p_k, g(Q_k))` on the head, the mirrored greedy from the
    end on the tail, so r ≤ p before the last tight prefix and r ≥ p after it.

    >>> selection_law([0.5, 0.5], [0.9, 0.1], 2).round(6).tolist()   # alpha* = 0.5 + 1 - 0.9^2
    [0.81, 0.19]
    >>> selection_law([0.5, 0.5], [0.9, 0.1], 1).round(6).tolist()   # m = 1: r = q
    [0.9, 0.1]
    """
    p, q = check_pair_1d(target_probs, draft_probs, "selection_law")
    m = _check_m(m)
    order = _ratio_order(p, q)
    r = np.zeros_like(p)
    r[order] = _greedy_law(p[order], q[order], m)[0]
    return r


def _check_m(m) -> int:
    return whole_number(m, "m")


# ----------------------------------------------------------------------------- the priority partition
def _power_diff(hi, lo, n: int):
    r""":math:`hi^n - lo^n` without cancellation: :math:`(hi - lo)\sum_{i<n} hi^i lo^{n-1-i}`."""
    hi = np.asarray(hi, dtype=float)
    lo = np.asarray(lo, dtype=float)
    if n == 0:
        return np.zeros(np.broadcast(hi, lo).shape)
    total = np.zeros(np.broadcast(hi, lo).shape)
    for i in range(n):
        total = total + hi ** i * lo ** (n - 1 - i)
    return (hi - lo) * total


def _measure(b: float, a: float, e: float) -> float:
    r""":math:`b^e - a^e` for :math:`0 \le a \le b`, accurate when a is close to b."""
    if a < 0.5 * b:                                                # no cancellation
        return b ** e - a ** e
    return -(b ** e) * math.expm1(e * math.log1p((a - b) / b)) if b > 0.0 else 0.0


def _window(lo: list, hi: list, i: int, x: float, need: float, pw: float):
    """``(measure, last fragment, end)`` of the window of free length ``need`` from x in fragment i.

    ``lo``, ``hi``: the free fragments of the priority axis, ascending; the measure is
    :math:`\\int m u^{m-1} du` over the window (``pw`` = m), ``inf`` when the free space runs out.
    """
    mu = 0.0
    j, start = i, x
    last = len(lo) - 1
    while True:
        avail = hi[j] - start
        if avail >= need:
            end = start + need
            return mu + _measure(end, start, pw), j, end
        mu += _measure(hi[j], start, pw)
        need -= avail
        if j == last:
            return math.inf, j, hi[j]              # runs out of free space: too high
        j += 1
        start = lo[j]


def _bracket_fragment(lo: list, hi: list, i: int, need: float, target: float, pw: float) -> int:
    """The last fragment i whose window from its bottom, :math:`W(i, lo_i)`, has measure <= ``target``.

    W increases with i; galloping from the guess ``i`` then bisection.
    """
    low, high = i, i                                           # W(low) <= target < W(high + 1) sought
    step = 1
    while low > 0 and _window(lo, hi, low, lo[low], need, pw)[0] > target:
        high = low - 1
        low = max(low - step, 0)
        step *= 2
    step = 1
    while high + 1 < len(lo) and _window(lo, hi, high + 1, lo[high + 1], need, pw)[0] <= target:
        low = high + 1
        high = min(high + step, len(lo) - 1)
        step *= 2
    while low < high:                                          # W(low) <= target, answer in [low, high]
        mid = (low + high + 1) // 2
        if _window(lo, hi, mid, lo[mid], need, pw)[0] <= target:
            low = mid
        else:
            high = mid - 1
    return low


def _windows_in_fragment(lo: list, hi: list, i: int, need: float, pw: float):
    """``window_i(x)``: :func:`_window` for starts x inside fragment i, in O(log span).

    The free lengths and measures of the fragments above i are cumulated once (until they
    hold the window), so each evaluation is one bisection instead of a walk.
    """
    cum_len, cum_mu, t, tot_len, tot_mu = [], [], i + 1, 0.0, 0.0
    while t < len(lo) and tot_len < need:
        tot_len += hi[t] - lo[t]
        tot_mu += _measure(hi[t], lo[t], pw)
        cum_len.append(tot_len)
        cum_mu.append(tot_mu)
        t += 1
    b_i = hi[i]

    def window_i(x):
        rest = need - (b_i - x)
        if rest <= 0.0:
            return _measure(x + need, x, pw), i, x + need
        k = bisect.bisect_left(cum_len, rest)
        if k == len(cum_len):
            return math.inf, len(lo) - 1, hi[-1]
        below_len, below_mu = (cum_len[k - 1], cum_mu[k - 1]) if k else (0.0, 0.0)
        end = lo[i + 1 + k] + (rest - below_len)
        return _measure(b_i, x, pw) + below_mu + _measure(end, lo[i + 1 + k], pw), i + 1 + k, end

    return window_i


def _solve_window(lo: list, hi: list, i: int, need: float, target: float, u_star: float, pw: float):
    """Start x in fragment i of the window of measure ``target``: safeguarded Newton from ``u_star``.

    Returns ``(x, last fragment j, end)``.  The bracket [a, b] of fragment i shrinks with every
    evaluation; a Newton step that leaves it (or has no slope) bisects instead.
    """
    a, b = lo[i], hi[i]
    window_i = _windows_in_fragment(lo, hi, i, need, pw)

    def evaluate(x):
        """The window from x, with the bracket [a, b] shrunk to the side of x the target lies on."""
        nonlocal a, b
        val, j, end = window_i(x)
        if val > target:
            b = x
        else:
            a = x
        return val, j, end

    x = u_star - 0.5 * need
    if not a < x < b - need:
        x = max(a, b - need)                                   # windows from below x stay inside fragment i
    val, j, end = evaluate(x)
    for _ in range(200):
        if val == target or b - a <= 4e-16 * b:
            break
        if math.isfinite(val) and abs(val - target) <= 1e-13 * target:
            break
        slope = pw * _measure(end, x, pw - 1.0) if math.isfinite(val) else 0.0
        x_new = x - (val - target) / slope if slope > 0.0 else 0.5 * (a + b)
        if slope > 0.0 and abs(x_new - x) <= 2e-16 * x:        # Newton step below one ulp: converged
            break
        if not a < x_new < b:
            x_new = 0.5 * (a + b)
        x = x_new
        val, j, end = evaluate(x)
    if not math.isfinite(val):                                 # only by rounding at the very top
        x = a
        val, j, end = window_i(x)
    return x, j, end


def _take_window(lo: list, hi: list, cells: list, k: int, i: int, j: int, x: float, end: float, top: float) -> int:
    """Give token k the window [x, hi_i] + fragments i+1..j-1 + [lo_j, end]; cut it from the free
    fragments (in place) and return the fragment where the next search starts."""
    if j == i:
        cells.append((k, x, end))
    else:
        cells.append((k, x, hi[i]))
        cells.extend((k, lo[t], hi[t]) for t in range(i + 1, j))
        cells.append((k, lo[j], end))
    keep_low = x > lo[i]
    keep_high = end < hi[j]
    new_lo, new_hi = [], []
    if keep_low:
        new_lo.append(lo[i])
        new_hi.append(x)
    if keep_high:
        new_lo.append(end)
        new_hi.append(hi[j])
    lo[i:j + 1] = new_lo
    hi[i:j + 1] = new_hi
    if not lo:                                                 # rounding ate the last fragment
        lo.append(top)
        hi.append(top)
    return i if keep_low else max(i - 1, 0)


def _curtain(sizes, targets, bottom: float, top: float, m: int):
    """Left-curtain partition of the priority interval [bottom, top] among one segment's tokens.

    ``sizes``, ``targets`` in ratio order (decreasing target/size).  Tokens are placed from
    the last (lowest ratio) up: each takes the window of the still-free part of free length
    ``sizes[k]`` whose measure :math:`\\int m u^{m-1} du` is ``targets[k]`` (the shadow of
    an atom, docs/methods_block_multidraft.md §2.4); the first token takes what is left.
    Returns a list of ``(token, lo, hi)`` cells.  One pass over the tokens, four steps each:
    a guess where the density :math:`m u^{m-1}` equals target/size, the fragment that holds
    the window's start (:func:`_bracket_fragment`), the start itself (:func:`_solve_window`,
    a safeguarded Newton iteration) and the cut (:func:`_take_window`).
    """
    lo, hi = [bottom], [top]                       # free fragments, ascending
    cells = []
    gap = 0                                        # fragment where the last window started
    pw = float(m)
    for k in range(len(sizes) - 1, 0, -1):
        need, target = float(sizes[k]), float(targets[k])
        if m > 1 and need > 0.0:                                   # where the density m u^(m-1) equals target/need
            u_star = (target / (need * pw)) ** (1.0 / (pw - 1.0))
            i = min(max(bisect.bisect_right(lo, u_star) - 1, 0), len(lo) - 1)
        else:
            u_star = lo[0]
            i = min(gap, len(lo) - 1)
        i = _bracket_fragment(lo, hi, i, need, target, pw)
        x, j, end = _solve_window(lo, hi, i, need, target, u_star, pw)
        gap = _take_window(lo, hi, cells, k, i, j, x, end, top)
    cells.extend((0, a, b) for a, b in zip(lo, hi) if b > a)
    return cells


@dataclass(frozen=True)
class MultidraftPlan:
    """The selection rule of one node: a priority partition of [0, 1].

    Attributes
    ----------
    m : int
        Number of drafts it was built for.
    cell_lo, cell_hi : ndarray, shape (C,)
        Cells of the priority axis, grouped by token (token y owns cells
        ``start[y]:start[y+1]``, total length q_y).
    start : ndarray of int, shape (V + 1,)
    cum_len : ndarray, shape (C + 1,)
        Cumulative cell lengths (picks a token's cell in proportion to its length).
    selected : ndarray, shape (V,)
        r, the law of the selected draft: :math:`\\sum_{cells} hi^m - lo^m`.
    law : ndarray, shape (V,)
        The closed-form optimal law it realises (:func:`selection_law`), equal to
        ``selected`` up to rounding.
    """

    m: int
    cell_lo: np.ndarray
    cell_hi: np.ndarray
    start: np.ndarray
    cum_len: np.ndarray
    selected: np.ndarray
    law: np.ndarray

    def points(self, drafts: np.ndarray, u_cell: np.ndarray, u_pos: np.ndarray) -> np.ndarray:
        """Priority points of ``drafts`` ``[B, m]`` from two uniforms each → ``[B, m]``."""
        first, stop = self.start[drafts], self.start[drafts + 1]                  # [B, m]
        target = self.cum_len[first] + u_cell * (self.cum_len[stop] - self.cum_len[first])
        cell = np.clip(np.searchsorted(self.cum_len, target, side="right") - 1, first, np.maximum(stop - 1, first))
        cell = np.minimum(cell, len(self.cell_lo) - 1)
        point = self.cell_lo[cell] + u_pos * (self.cell_hi[cell] - self.cell_lo[cell])
        # a token whose cells vanished in floating point (q_y below the resolution of its place
        # on the axis, e.g. q_y ~ 1e-17 next to 1) has selection law 0: it never wins
        return np.where(stop > first, point, -1.0)

    def select(self, drafts: np.ndarray, u_cell: np.ndarray, u_pos: np.ndarray) -> np.ndarray:
        """The selected token Y of each row of ``drafts`` ``[B, m]`` → ``[B]`` (highest point wins)."""
        best = np.argmax(self.points(drafts, u_cell, u_pos), axis=1)
        return drafts[np.arange(drafts.shape[0]), best]


_PLANS: dict = {}
_MAX_CACHED_PLANS = 256


def multidraft_plan(target_probs, draft_probs, m: int) -> MultidraftPlan:
    r"""The optimal selection rule for one (p, q) pair ``[V]`` and m i.i.d. drafts (any V).

    Builds :func:`selection_law` and its priority partition: segments between tight
    prefixes are independent (a one-token segment is the interval of the ratio order);
    the others are split by the left-curtain construction (docs/methods_block_multidraft.md
    §2.4).  Plans are cached per (p, q, m).

    >>> plan = multidraft_plan([0.5, 0.5], [0.9, 0.1], 2)
    >>> plan.selected.round(6).tolist()
    [0.81, 0.19]
    """
    p, q = check_pair_1d(target_probs, draft_probs, "multidraft_plan")
    return _plan(p, q, _check_m(m))


def _plan(p: np.ndarray, q: np.ndarray, m: int) -> MultidraftPlan:
    """:func:`multidraft_plan` on checked arrays ``p``, ``q`` ``[V]`` (its door checks them), cached."""
    key = (p.tobytes(), q.tobytes(), m)
    if key in _PLANS:
        return _PLANS[key]
    vocab = len(p)
    order = _ratio_order(p, q)                                            # [n]
    ps, qs = p[order], q[order]
    r, tight = _greedy_law(ps, qs, m)
    n = len(order)
    rest_q = np.concatenate([np.cumsum(qs[::-1])[::-1], [0.0]])           # [n+1]; token k: u in [rest_q[k+1], rest_q[k]]
    ends = np.flatnonzero(tight)                                          # last token of each segment
    begins = np.concatenate([[0], ends[:-1] + 1])
    single = ends == begins
    toks = [begins[single]]                                               # one-token segments: their own interval
    lows, highs = [rest_q[begins[single] + 1]], [rest_q[begins[single]]]
    for b, e in zip(begins[~single], ends[~single]):
        cells = _curtain(qs[b:e + 1], r[b:e + 1], rest_q[e + 1], rest_q[b], m)
        arr = np.array(cells, dtype=float).reshape(-1, 3)
        toks.append(arr[:, 0].astype(np.int64) + b)
        lows.append(arr[:, 1])
        highs.append(arr[:, 2])
    tok = order[np.concatenate(toks)]                                     # vocabulary ids
    cell_lo, cell_hi = np.concatenate(lows), np.concatenate(highs)
    keep = cell_hi > cell_lo
    tok, cell_lo, cell_hi = tok[keep], cell_lo[keep], cell_hi[keep]
    by_token = np.argsort(tok, kind="stable")
    tok, cell_lo, cell_hi = tok[by_token], cell_lo[by_token], cell_hi[by_token]
    start = np.searchsorted(tok, np.arange(vocab + 1))
    cum_len = np.concatenate([[0.0], np.cumsum(cell_hi - cell_lo)])
    selected = np.zeros(vocab)
    np.add.at(selected, tok, _power_diff(cell_hi, cell_lo, m))
    law = np.zeros(vocab)
    law[order] = r
    del n
    if len(_PLANS) >= _MAX_CACHED_PLANS:
        _PLANS.clear()
    _PLANS[key] = out = MultidraftPlan(m, cell_lo, cell_hi, start, cum_len, selected, law)
    return out


class Multidraft(IIDDrafting, Method):
    """Optimal multi-draft verification, canonical two-step form (see the module docstring)."""

    name = "multidraft"
    label = "multidraft (optimal)"
    colour = "#17becf"
    marker = "*"
    #: the slot weights depend on the node's m, so no slot-based tree search: the
    #: theory asks :meth:`tree_tokens`, the bound report :meth:`report_tokens`
    tree_family = "multidraft"
    #: c_t = min(1, r_t(y_t)/p_t(y_t)) with r the closed-form selection law (any V)
    has_path_prediction = True
    #: the selection plan costs about a second per node at V = 49,152 (one Python pass over the
    #: tokens), so ``llm validate`` runs it only when asked (``--methods multidraft``)
    validated_by_default = False

    # ------------------------------------------------------------------ theory (i.i.d. model)
    def node_acceptance(self, p, q, m: int, **opts) -> float:
        """α*, the LP optimum it attains, of a checked pair ``[V]`` in O(V log V).

        :func:`chansim.sampling.transport.optimal_acceptance_iid`.
        """
        return optimal_acceptance_iid(p, q, m, validate=False)

    def tree_tokens(self, tree, p, q):
        """Exact E[tokens per call] on a sibling-closed tree (:func:`multidraft_tree_tokens`); p, q checked ``[V]``."""
        tree = as_tree(tree)
        self.check_tree(tree)
        return _tree_tokens(p, q, tree)

    def report_tokens(self, p, q, ks, tree: str, ctx=None):
        """Tokens per call at each k for the bound report: ``batch`` = 1 + α*(k), ``chain`` = sd.

        No optimal-tree search.  ``p``, ``q``: a checked pair ``[V]``; returns
        ``(values [len(ks)], budgets [len(ks)], exact)``.
        """
        ks = [int(k) for k in ks]
        if tree == "batch":
            return [1.0 + optimal_acceptance_iid(p, q, k, validate=False) for k in ks], [1] * len(ks), True
        if tree == "chain":
            beta = float(np.minimum(p, q).sum())
            return ([float(k + 1) if beta >= 1 else float((1 - beta ** (k + 1)) / (1 - beta)) for k in ks],
                    list(ks), True)
        return [None] * len(ks), [None] * len(ks), True

    # ------------------------------------------------------------------ logged paths
    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        """:func:`multidraft_path_acceptance` on checked arrays: min(1, r_t(y_t)/p_t(y_t)), O(V log V) per position.

        ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T]``.
        """
        m = _check_m(m)
        if m == 1:                                                         # one draft: r = q (sd)
            return np.minimum(1.0, q[np.arange(len(y)), y] / py)
        ry = np.empty(len(y))
        for t in range(len(y)):
            order = _ratio_order(p[t], q[t])
            law = _greedy_law(p[t][order], q[t][order], m)[0]
            where = np.flatnonzero(order == y[t])
            ry[t] = law[where[0]] if len(where) else 0.0
        return np.minimum(1.0, ry / py)

    def verify(self, p, q, drafts, noise: NodeNoise):
        """Select Y among ``drafts`` ``[B, m]``, then sd against the selection law; ``p``, ``q`` ``[R, V]`` (checked
        rows, one plan per distinct row pair) → ``(accepted [B], token [B])``."""
        batch, m = drafts.shape
        u = noise.rng.random((batch, 2 * m + 2))                           # [B, 2m + 2]
        accepted = np.full(batch, -1, dtype=np.int64)
        token = np.empty(batch, dtype=np.int64)
        if m == 0:                                                         # leaf: bonus y ~ p
            return accepted, sample_rows(p, u[:, 0])
        if p.shape[0] == 1 and q.shape[0] == 1:
            groups = [(np.arange(batch), p[0], q[0])]
        else:
            vocab = p.shape[-1]
            pq = np.concatenate([np.broadcast_to(p, (batch, vocab)), np.broadcast_to(q, (batch, vocab))], axis=1)
            rows, inverse = np.unique(pq, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            groups = [(np.flatnonzero(inverse == g), row[:vocab], row[vocab:]) for g, row in enumerate(rows)]
        for idx, p_row, q_row in groups:
            plan = _plan(p_row, q_row, m)                                  # rows checked by the walk's sources
            x = drafts[idx]                                                # [b, m]
            y = plan.select(x, u[idx, 2:m + 2], u[idx, m + 2:])            # step 1: Y ~ beta(. | A)
            ok = u[idx, 0] * plan.selected[y] < p_row[y]                   # step 2: w.p. min(1, p/r)
            token[idx] = y
            if not ok.all():
                rest = np.maximum(p_row - plan.selected, 0.0)[None, :]     # norm((p - r)+)
                token[idx[~ok]] = sample_rows(rest, u[idx[~ok], 1])
            accepted[idx[ok]] = np.argmax(x[ok] == y[ok, None], axis=1)    # first child holding Y
        return accepted, token


# ----------------------------------------------------------------------------- theory (i.i.d. model)
def multidraft_acceptance(target_probs, draft_probs, m: int) -> float:
    r"""Node acceptance :math:`\sum_y \min(p_y, r_y)` of the selection law (= the LP optimum α*); pair ``[V]``.

    >>> round(multidraft_acceptance([0.5, 0.5], [0.9, 0.1], 2), 6)   # H = {1}: 0.5 + 1 - 0.9^2
    0.69
    """
    p, q = check_pair_1d(target_probs, draft_probs, "multidraft_acceptance")
    return float(np.minimum(p, _plan(p, q, _check_m(m)).selected).sum())


def first_holder_law(plan: MultidraftPlan) -> np.ndarray:
    r""":math:`P(Y = y,\ y \text{ first drafted at slot } j)` of one node's ``plan``, shape ``(V, m)``; rows sum to r.

    Draft i has a priority point :math:`u_i` uniform on [0, 1] and token = owner of its
    cell.  For a cell [a, b] of y, :math:`\beta = a - |\text{cells}(y) \cap [0, a]|` is
    the chance that a draft lies below the cell's points without holding y (constant on
    the cell), so (docs/methods_block_multidraft.md §2.6)

    .. math:: P_j(y) = \sum_{[a,b]} \beta^{j-1}\Big[(m - j + 1) I_{m-j} - (m - j)\,\beta\, I_{m-j-1}\Big],
              \qquad I_e = \int_a^b u^e\,du,

    the first term with the winning draft at slot j, the second with a later winner.
    """
    m = plan.m
    vocab = len(plan.start) - 1
    length = plan.cell_hi - plan.cell_lo                                       # [C]
    tok = np.repeat(np.arange(vocab), np.diff(plan.start))                     # [C]
    before = np.zeros(len(length))                                             # y's own length below the cell
    if len(length):
        order = np.lexsort((plan.cell_lo, tok))                                # by token, then position
        cum_sorted = np.cumsum(length[order])
        group_start = np.searchsorted(tok[order], tok[order], side="left")     # first cell of the token
        before[order] = cum_sorted - length[order] - np.concatenate([[0.0], cum_sorted])[group_start]
    beta = np.maximum(plan.cell_lo - before, 0.0)                              # [C]
    out = np.zeros((vocab, m))
    for j in range(1, m + 1):
        e = m - j
        term = (e + 1) * _power_diff(plan.cell_hi, plan.cell_lo, e + 1) / (e + 1)
        if e >= 1:
            term = term - e * beta * _power_diff(plan.cell_hi, plan.cell_lo, e) / e
        np.add.at(out[:, j - 1], tok, beta ** (j - 1) * term)
    return out


def multidraft_weights(target_probs, draft_probs, m: int) -> np.ndarray:
    r"""Slot weights :math:`w_j` = P(move to child j) of a node with m children, shape ``(m,)``; pair ``[V]``.

    The accepted child is the first one holding Y, so
    :math:`w_j = \sum_y P(Y = y, \text{first at } j)\,\min(1, p_y/r_y)` with the first
    factor in closed form (:func:`first_holder_law`).  They sum to :func:`multidraft_acceptance`.

    >>> multidraft_weights([0.5, 0.5], [0.5, 0.5], 2).round(6).tolist()
    [0.75, 0.25]
    """
    p, q = check_pair_1d(target_probs, draft_probs, "multidraft_weights")
    return _weights(p, q, _check_m(m))


def _weights(p: np.ndarray, q: np.ndarray, m: int) -> np.ndarray:
    """:func:`multidraft_weights` on checked arrays ``p``, ``q`` ``[V]`` → ``[m]``."""
    plan = _plan(p, q, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(plan.selected > 0, np.minimum(1.0, p / plan.selected), 0.0)     # [V]
    return keep @ first_holder_law(plan)


def multidraft_tree_tokens(target_probs, draft_probs, tree) -> float:
    r"""Exact expected tokens per call on a sibling-closed tree (i.i.d. model; pair ``[V]``).

    :math:`1 + \sum_{v \ne \text{root}} P(\text{path passes } v)`, where the edge to the
    child in slot j of a node with :math:`m_u` children has weight
    :math:`w_j(m_u)` (:func:`multidraft_weights`; it depends on :math:`m_u`, since
    the selection sees all drafts).

    >>> from chansim.inputs.trees import batch
    >>> round(multidraft_tree_tokens([0.5, 0.5], [0.9, 0.1], batch(2)), 6)
    1.69
    """
    tree = as_tree(tree)
    Multidraft().check_tree(tree)
    p, q = check_pair_1d(target_probs, draft_probs, "multidraft_tree_tokens")
    return _tree_tokens(p, q, tree)


def _tree_tokens(p: np.ndarray, q: np.ndarray, tree) -> float:
    """:func:`multidraft_tree_tokens` on checked arrays ``p``, ``q`` ``[V]`` and a checked sibling-closed tree."""
    cache = {}
    reach = np.zeros(tree.n_nodes)
    reach[0] = 1.0
    for u in np.argsort(tree.depth, kind="stable"):
        kids = tree.children[u]
        if len(kids):
            m = len(kids)
            if m not in cache:
                cache[m] = _weights(p, q, m)
            reach[kids] = reach[u] * cache[m][tree.ranks[kids] - 1]
    return float(reach.sum())


# ----------------------------------------------------------------------------- logged path
def multidraft_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r""":math:`c_t = P(\text{accept} \wedge \text{out} = y_t)/p_t(y_t) = \min(1, r_t(y_t)/p_t(y_t))`.

    (Accepting outputs Y = y with probability :math:`r(y)\min(1, p(y)/r(y))`; r is the
    closed-form :func:`selection_law`, O(V log V) per position.)  Same signature as the
    functions of :data:`chansim.predict.PATH_METHODS`: p, q ``[T, V]``, tokens ``[T]`` → ``[T]``.

    >>> multidraft_path_acceptance([[0.5, 0.5]], [[0.9, 0.1]], [1], 2).round(6).tolist()
    [0.38]
    """
    p, q, y, py = check_path_inputs(target_probs, draft_probs, tokens)
    return Multidraft().path_acceptance(p, q, y, py, m)
