r"""Optimal draft trees for a budget of k drafted tokens (i.i.d. model).

The objective is :math:`E[\text{accepted}] = \sum_{v} \prod_{\text{path}} w_{\text{slot}}`
(docs/theory.md §2.3).

* **ERSD, any rank sets** (:func:`best_rank_set_tree`): the children of a node may be
  any race ranks, so every finite sequence of ranks is an admissible node and the set
  of the k largest path products :math:`\prod a_{r_i}` is itself a tree (a prefix of
  a sequence has a larger product), hence optimal.  Built from the k-th largest
  product θ (below) in O(k) numpy work and memory, by generations of non-top ranks.  :func:`top_products_sums` / :func:`top_products_depths` give the
  optimum and its depth at any budgets without building the tree: paths are grouped
  by their ranks other than the most likely one (a group of i top ranks around a fixed
  sequence s holds :math:`\binom{i+|s|}{|s|}` equal products), and the threshold of the
  k-th largest product is found by bisection on a closed-form count — O(k) groups at
  worst, O(log k) for chain-like laws, k = 10^6 in about a second.
* **Sibling-closed trees** (plain ERSD top-m drafting, SpecInfer, RSD: children hold
  slots 1..m; :func:`sibling_closed_sums`, :func:`best_sibling_closed_tree`).  With
  non-increasing weights (SpecInfer's, most rank laws) the k largest path products are
  sibling-closed, so the same O(k log k) / O(k) algorithms are optimal.  Weights that
  increase somewhere (RSD's can, at the last slots: with V = 4 and q reversed p,
  w = 0.60, 0.16, 0.08, 0.16) need the dynamic program over budgets, as in Sequoia
  (Chen et al. 2024):

  .. math::
      G_j(n) = \max_{0 \le s \le n-j} G_{j-1}(n-1-s) + w_j\,(1 + f(s)), \qquad
      f(n) = \max_j G_j(n),

  f(n) the best value below a node with n descendants; :math:`O(k^2 \min(k, m))`,
  refused beyond ``MAX_DP_WORK`` with the estimate.

Bad weights (negative, above 1, NaN, rank laws summing to more than 1) raise ``ValueError``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ..inputs.numbers import whole_number
from ..inputs.trees import Tree, from_parents

__all__ = ["best_rank_set_tree", "top_products_curve", "top_products_sums", "top_products_depths", "top_products_table",
           "best_sibling_closed_tree", "SiblingClosedDP", "sibling_closed_values", "sibling_closed_sums",
           "sibling_closed_depth", "tree_shape"]


def _new_nodes(counts, n_nodes: int, max_nodes: int) -> tuple:
    """``counts[i]`` new nodes under item i: ``(owner, offset, total)`` -- each new node's item, its
    0-based place among its item's new nodes, and their number; refused past ``2 * max_nodes`` nodes."""
    total = int(counts.sum())
    if n_nodes + total > 2 * max_nodes:
        raise ValueError(f"more than {2 * max_nodes} nodes with product >= the k-th largest (ties)")
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts), total


def _check_budget(k) -> int:
    return whole_number(k, "k", minimum=0)


#: slack on the sum of a rank law (Monte Carlo / bounded estimates can exceed 1 by rounding)
RANK_SUM_TOL = 1e-3


def _check_weights(weights, name: str = "rank_probs", total: bool = True) -> np.ndarray:
    """A 1-D float array of finite weights in [0, 1] (summing to <= 1 when ``total``), or ValueError."""
    a = np.asarray(weights, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a[~np.isfinite(a)][:3].tolist()}")
    if np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{a.min()}, {a.max()}]")
    if total and a.sum() > 1 + RANK_SUM_TOL:                  # estimated laws may overshoot 1 slightly
        raise ValueError(f"{name} are probabilities of disjoint events and must sum to <= 1 "
                         f"(+{RANK_SUM_TOL} for estimates), got {float(a.sum())!r}")
    return a


def best_rank_set_tree(rank_probs, k: int, max_nodes: int = 20_000_000) -> Tree:
    r"""The optimal ERSD tree with arbitrary rank sets: the k largest products :math:`\prod a_r`.

    The k-th largest product θ comes from the grouped search of :func:`top_products_sums`;
    the nodes with product >= θ are then built by generations of non-top ranks, each
    generation adding whole chains of the top rank at once (O(k) numpy work, at most
    log₂(1/θ) generations however deep the tree; docs/theory.md §2.3), and surplus nodes
    tied at θ (within 10^-9 relative; they are leaves) are dropped, highest slots first.
    Nodes come out in decreasing product order, so parents precede children and the
    first k' + 1 nodes are an optimal tree for every k' <= k.  ``k > max_nodes``
    raises ``ValueError`` with the estimate.

    >>> t = best_rank_set_tree([0.6, 0.1, 0.3], 3)
    >>> sorted(zip(t.parents.tolist()[1:], t.ranks.tolist()[1:]))    # products 0.6, 0.36, 0.3
    [(0, 1), (0, 3), (1, 1)]
    """
    k = _check_budget(k)
    a = _check_weights(rank_probs)
    return _threshold_tree(a, k, max_nodes, name="ersd-rankset")


def _threshold_tree(a: np.ndarray, k: int, max_nodes: int, name: str) -> Tree:
    """The k largest path products of weights ``a`` as a tree (sibling-closed when ``a`` is non-increasing)."""
    if k > max_nodes:
        raise ValueError(f"a tree of k={k} nodes needs about {k * 40 / 2**20:.0f} MiB; more than "
                         f"max_nodes={max_nodes}")
    order = np.argsort(-a, kind="stable")
    vals = a[order]
    n_pos = int((vals > 0).sum())
    if k == 0 or n_pos == 0:
        return from_parents([-1], [0], name=f"{name}:0")
    if vals[0] >= 1.0:
        return from_parents(np.arange(-1, k), np.r_[0, np.full(k, order[0] + 1)], name=f"{name}:{k}")
    vals, ranks_of = vals[:n_pos], order[:n_pos] + 1          # descending weights and their 1-based ranks
    prods, mult, _ = _top_groups(vals, k, max(max_nodes, 2 * k + 4096))
    srt = np.argsort(-prods, kind="stable")
    cum = np.cumsum(mult[srt])
    theta = float(prods[srt][np.searchsorted(cum, k, side="left")])   # the k-th largest product
    cut = theta * (1 - 1e-12)
    log_top = np.log(float(vals[0]))
    rest = vals[1:]                                            # descending
    parents = [np.array([-1])]
    ranks = [np.array([0])]
    products = [np.array([1.0])]
    n_nodes = 1
    front_ids, front_p = np.array([0]), np.array([1.0])       # nodes whose top chain is still to be built
    while len(front_ids):
        # top-rank chains below every frontier node: lengths floor(ln(cut / P) / ln a_top)
        lengths = np.floor(np.log(cut / front_p) / log_top + 1e-9).astype(np.int64)
        lengths = np.maximum(lengths, 0)
        owner, step, total = _new_nodes(lengths, n_nodes, max_nodes)
        step = step + 1                                                                  # 1..length
        chain_ids = n_nodes + np.arange(total)
        chain_par = np.where(step == 1, front_ids[owner], chain_ids - 1)
        chain_p = front_p[owner] * np.exp(step * log_top)
        parents.append(chain_par)
        ranks.append(np.full(total, ranks_of[0]))
        products.append(chain_p)
        n_nodes += total
        # non-top children of the frontier nodes and of their chains: P * a_r >= cut
        exp_ids = np.concatenate([front_ids, chain_ids])
        exp_p = np.concatenate([front_p, chain_p])
        counts = np.searchsorted(-rest, -(cut / exp_p), side="right")      # rest[:c] >= cut / P
        owner, which, total = _new_nodes(counts, n_nodes, max_nodes)                # which: index into rest
        kid_ids = n_nodes + np.arange(total)
        kid_p = exp_p[owner] * rest[which]
        parents.append(exp_ids[owner])
        ranks.append(ranks_of[1 + which])
        products.append(kid_p)
        n_nodes += total
        front_ids, front_p = kid_ids, kid_p
    parents, ranks, products = np.concatenate(parents), np.concatenate(ranks), np.concatenate(products)
    if n_nodes - 1 > k:                                        # surplus ties at θ (leaves): drop the highest slots
        near = products[1:] <= theta * (1 + 1e-9)
        drop = np.lexsort((products[1:], -ranks[1:], ~near))[: n_nodes - 1 - k] + 1
        keep = np.ones(n_nodes, dtype=bool)
        keep[drop] = False
        new_id = np.cumsum(keep) - 1
        parents = np.where(parents[keep] >= 0, new_id[np.maximum(parents[keep], 0)], -1)
        ranks, products = ranks[keep], products[keep]
    # nodes in decreasing product order (a child's product is below its parent's, so parents
    # stay first, and the first k' + 1 nodes are an optimal tree for every k' <= k)
    order = np.argsort(-products, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    parents = np.where(parents[order] >= 0, position[np.maximum(parents[order], 0)], -1)
    return from_parents(parents, ranks[order], name=f"{name}:{len(parents) - 1}")


def top_products_curve(rank_probs, kmax: int, max_nodes: int = 50_000_000) -> np.ndarray:
    r"""Optimal ERSD E[accepted] for every budget k = 1..kmax (arbitrary rank sets).

    Returns ``acc`` with ``acc[k-1]`` = sum of the k largest path products (tokens per
    call = 1 + acc), from the grouped threshold enumeration of :func:`top_products_sums`.

    >>> acc = top_products_curve([0.6, 0.1, 0.3], 3)
    >>> np.round(acc, 6).tolist()
    [0.6, 0.96, 1.26]
    """
    kmax = _check_budget(kmax)
    if kmax == 0:
        return np.zeros(0)
    return top_products_sums(rank_probs, np.arange(1, kmax + 1), max_nodes)


def top_products_sums(rank_probs, ks, max_nodes: int = 50_000_000) -> np.ndarray:
    r"""Optimal ERSD E[accepted] at the budgets ``ks``: the sum of the k largest path products.

    Path products are grouped by their non-top ranks (docs/theory.md §2.3): a sequence s
    of ranks other than the most likely one, with product :math:`P_s`, and i copies of
    the top rank interleaved give :math:`\binom{i+|s|}{|s|}` paths of product
    :math:`a_{(1)}^i P_s`.  A threshold θ just below the k-th largest product is found by
    bisection on the closed-form count :math:`\sum_s \binom{i_{\max}(s)+|s|+1}{|s|+1}`;
    time and memory are O(number of groups) = O(k) (O(log k) groups for a chain-like
    law with :math:`a_{(1)} \to 1`).  More than ``max_nodes`` groups raise ``ValueError``.

    >>> top_products_sums([0.6, 0.1, 0.3], [1, 3]).round(6).tolist()
    [0.6, 1.26]
    >>> top_products_sums([1 - 1e-7, 1e-7], [10**6]).round(1).tolist()   # depth-10^6 optimal tree
    [951625.8]
    """
    values, _ = _top_sums_and_depths(rank_probs, ks, max_nodes)
    return values


def top_products_depths(rank_probs, ks, max_nodes: int = 50_000_000) -> np.ndarray:
    """Depth of the optimal rank-set ERSD tree (:func:`best_rank_set_tree`) at the budgets ``ks``.

    The deepest of the k largest path products, without building the tree.  Equal
    products at the budget boundary are taken in enumeration order, so with exact ties
    the depth may differ from the heap's tree.

    >>> top_products_depths([0.6, 0.1, 0.3], [1, 2, 3]).tolist()
    [1, 2, 2]
    """
    _, depths = _top_sums_and_depths(rank_probs, ks, max_nodes)
    return depths


def top_products_table(rank_probs, ks, max_nodes: int = 50_000_000):
    """``(top_products_sums(a, ks), top_products_depths(a, ks))`` from one search.

    >>> v, d = top_products_table([0.6, 0.1, 0.3], [1, 3])
    >>> v.round(6).tolist(), d.tolist()
    ([0.6, 1.26], [1, 2])
    """
    return _top_sums_and_depths(rank_probs, ks, max_nodes)


def _check_ks(ks) -> np.ndarray:
    ks = np.atleast_1d(np.asarray(ks))
    if ks.size == 0:
        raise ValueError("the list of budgets k is empty")
    if ks.dtype.kind not in "iu" and not np.all(ks == np.round(ks)):
        raise ValueError(f"budgets k must be integers, got {ks.tolist()[:5]}")
    ks = ks.astype(np.int64)
    if np.any(ks < 1):
        raise ValueError(f"budgets k must be positive, got {int(ks.min())}")
    return ks


def _top_sums_and_depths(weights, ks, max_nodes, name: str = "rank_probs", total: bool = True):
    """Sums of the k largest path products and the depth of the deepest of them, at ``ks``."""
    ks = _check_ks(ks)
    a = _check_weights(weights, name, total)
    kmax = int(ks.max())
    a = np.sort(a[a > 0])[::-1]                                # descending
    if len(a) == 0:                                            # nothing is ever accepted
        return np.zeros(len(ks)), np.zeros(len(ks), dtype=np.int64)
    if a[0] >= 1.0:                                            # a_1 = 1: the chain accepts everything
        return ks.astype(float), ks.copy()
    if len(a) == 1:                                            # one rank: the chain, sum a + .. + a^k
        top = float(a[0])
        return top * -np.expm1(ks * np.log(top)) / (1.0 - top), ks.copy()
    prods, mult, depth = _top_groups(a, kmax, max_nodes)
    order = np.argsort(-prods, kind="stable")
    prods, mult, depth = prods[order], mult[order], depth[order]
    cum_n = np.cumsum(mult)                                    # [G] paths in the first g groups
    cum_v = np.cumsum(prods * mult)
    if cum_n[-1] < kmax:
        # the search stops at the float floor: the missing paths have products below 2.2e-308 and
        # add less than k * 2.2e-308 to the sums; they hang below the deepest path found
        prods, mult = np.append(prods, 0.0), np.append(mult, kmax - cum_n[-1])
        depth = np.append(depth, depth.max(initial=0) + 1)
        cum_n, cum_v = np.append(cum_n, kmax), np.append(cum_v, cum_v[-1])
    g = np.searchsorted(cum_n, ks, side="left")                # group holding the k-th path
    before_n = np.where(g > 0, cum_n[g - 1], 0)
    before_v = np.where(g > 0, cum_v[g - 1], 0.0)
    values = before_v + (ks - before_n) * prods[g]
    depths = np.maximum.accumulate(depth)[g]
    return values, depths


def _top_groups(a_desc: np.ndarray, kmax: int, max_groups: int):
    """Groups (product, multiplicity capped at kmax, depth) holding at least the kmax largest path products.

    ``a_desc`` positive, descending, a_desc[0] < 1.
    """
    top, rest = float(a_desc[0]), np.sort(a_desc[1:])          # rest ascending
    log_top = np.log(top)
    budget = min(max_groups, 2 * kmax + 4096)

    def groups(log_theta, materialise):
        found = _products_above(rest, np.exp(log_theta), budget) if len(rest) else (np.zeros(0), np.zeros(0, dtype=np.int64))
        if found is None:
            return None
        red_p = np.concatenate([[1.0], found[0]])                # reduced sequences (the empty one first)
        red_d = np.concatenate([[0], found[1]]).astype(np.int64)
        with np.errstate(divide="ignore"):
            imax = np.floor((log_theta - np.log(red_p)) / log_top + 1e-9).astype(np.int64)   # top copies allowed
        imax = np.maximum(imax, -1)
        imax[0] = max(imax[0], 0)                               # the empty path (root) is dropped below
        n_entries = int((imax + 1).sum())
        log_count = (gammaln(imax + red_d + 2) - gammaln(red_d + 2) - gammaln(imax + 1))   # C(imax+j+1, j+1)
        count = float(np.minimum(np.exp(log_count), 4.0 * kmax + 8).sum()) - 1.0       # minus the root
        if not materialise:
            return n_entries, count
        if n_entries > max_groups:
            return None
        reps = imax + 1
        owner = np.repeat(np.arange(len(red_p)), reps)
        i = np.arange(n_entries) - np.repeat(np.cumsum(reps) - reps, reps)
        j = red_d[owner]
        prods = red_p[owner] * np.exp(i * log_top)
        log_mult = gammaln(i + j + 1) - gammaln(j + 1) - gammaln(i + 1)
        mult = np.where(log_mult > np.log(kmax + 1.0), kmax + 1, np.rint(np.exp(np.minimum(log_mult, 50.0))))
        keep = (i + j) > 0                                      # not the root
        return prods[keep], mult[keep].astype(np.int64), (i + j)[keep]

    # bisection on log θ: at hi fewer than kmax paths have product >= θ, at lo at least kmax
    hi = log_top + 1e-12
    lo = max(kmax * log_top, np.log(np.finfo(float).tiny))    # the chain alone has kmax paths there
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = float(-(a_desc * np.log(a_desc)).sum())
    mid = float(np.clip(-np.log(max(entropy, 1e-300) * kmax), lo, hi))   # renewal guess N(θ) ≈ 1/(H θ)
    n_lo, n_hi = None, 0.0                                     # path counts (lower bound at lo) at the ends
    for _ in range(400):
        res = groups(mid, materialise=False)
        if res is None or res[0] > budget:                    # too many groups: >= kmax paths
            lo, n_lo = mid, float(budget if res is None else res[0])
        elif res[1] < kmax:
            hi, n_hi = mid, res[1]
        else:
            out = groups(mid, materialise=True)
            if out is not None:
                return out
            lo, n_lo = mid, res[1]
        if hi - lo <= 1e-14 * max(1.0, abs(lo)):
            out = groups(lo, materialise=True)                 # lo: at least kmax paths, θ just below the kth
            if out is not None:
                return out
            break
        mid = 0.5 * (lo + hi)
        if n_lo is not None and n_hi >= 1 and n_lo > n_hi:    # ln N is close to linear in ln θ: aim at 1.5 kmax
            frac = (np.log(1.5 * kmax) - np.log(n_hi)) / (np.log(n_lo) - np.log(n_hi))
            mid = hi + float(np.clip(frac, 0.02, 0.98)) * (lo - hi)
    raise ValueError(f"the {kmax} largest path products need more than {budget} groups (ties at the budget "
                     f"boundary or a very flat law); raise max_nodes (memory ~ {budget * 48 / 2**20:.0f} MiB "
                     "per million groups)")


def _products_above(a_asc: np.ndarray, theta: float, max_nodes: int):
    """All products of rank sequences that are >= theta (a sorted ascending) and their depths,
    or None if there are more than ``max_nodes``."""
    out, depth = [], []
    frontier = np.array([1.0])
    total = 0
    level = 0
    while len(frontier):
        # children of f with f * a_r >= theta: a_r >= theta / f, a suffix of a_asc
        start = np.searchsorted(a_asc, theta / frontier * (1 - 1e-15), side="left")
        counts = len(a_asc) - start
        n = int(counts.sum())
        if n == 0:
            break
        total += n
        if total > max_nodes:
            return None
        level += 1
        owner = np.repeat(np.arange(len(frontier)), counts)
        offs = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        frontier = frontier[owner] * a_asc[start[owner] + offs]
        out.append(frontier)
        depth.append(np.full(n, level, dtype=np.int64))
    if not out:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(out), np.concatenate(depth)


@dataclass(frozen=True)
class SiblingClosedDP:
    """Tables of :func:`sibling_closed_values`: ``f[n]`` best E[accepted] with budget n."""

    f: np.ndarray          # [k+1]
    G: np.ndarray          # [J+1, k+1]
    choice: np.ndarray     # [J+1, k+1] subtree size of child j


def sibling_closed_values(weights, k: int) -> SiblingClosedDP:
    """Run the sibling-closed DP (module docstring) for budgets 0..k; slots past the last positive weight are dropped."""
    k = _check_budget(k)
    w = _check_weights(weights, "weights", total=False)
    J = min(k, max(1, _useful_slots(w)))
    G = np.full((J + 1, k + 1), -np.inf)
    G[0, 0] = 0.0
    choice = np.zeros((J + 1, k + 1), dtype=np.int64)
    f = np.zeros(k + 1)
    for n in range(1, k + 1):
        jj = min(n, J)
        prev = G[:jj, n - 1::-1] if n >= 1 else None                       # G[j-1, n-1-s], s = 0..n-1
        cand = prev + w[:jj, None] * (1 + f[None, :n])
        best = np.argmax(cand, axis=1)
        G[1:jj + 1, n] = cand[np.arange(jj), best]
        choice[1:jj + 1, n] = best
        f[n] = G[1:jj + 1, n].max()
    return SiblingClosedDP(f, G, choice)


#: increase allowed between consecutive weights for the non-increasing fast path (rounding noise)
MONOTONE_TOL = 1e-12
#: DP work (k^2 min(k, m) cell updates) above which sibling-closed trees with increasing weights stop
MAX_DP_WORK = 2e9


def _monotone(w: np.ndarray):
    """``w`` made non-increasing by its running minimum when it increases by at most MONOTONE_TOL, else None."""
    if len(w) < 2 or np.all(np.diff(w) <= MONOTONE_TOL):
        return np.minimum.accumulate(w)
    return None


def _slot_weights(weights) -> tuple:
    """Checked per-slot weights ``w`` (not summing to one) and :func:`_monotone` of them."""
    w = _check_weights(weights, "weights", total=False)
    return w, _monotone(w)


def _useful_slots(w: np.ndarray) -> int:
    """Slots up to the last positive weight (trailing zero-weight children never pay)."""
    nz = np.flatnonzero(w > 0)
    return int(nz[-1]) + 1 if len(nz) else 0


def _check_dp_cost(k: int, n_weights: int) -> None:
    work = float(k) * (k + 1) / 2 * min(k, n_weights)
    if work > MAX_DP_WORK:
        raise ValueError(f"the weights increase somewhere (w_j < w_j+1), so the best sibling-closed tree needs the "
                         f"O(k^2 min(k, m)) dynamic program: ~{work:.1e} cell updates (~{work / 2e8:.0f} s, "
                         f"{(k + 1) * (min(k, n_weights) + 1) * 16 / 2**20:.0f} MiB) for k={k}, m={n_weights}; "
                         f"limit {MAX_DP_WORK:.0e} (chansim.theory.optimal.MAX_DP_WORK)")


def sibling_closed_sums(weights, ks, max_nodes: int = 50_000_000):
    r"""Best E[accepted] of a sibling-closed tree and its depth at the budgets ``ks``.

    Non-increasing weights (SpecInfer's, most rank laws): every prefix and
    every smaller slot of a path has a product at least as large, so the k largest path
    products form a sibling-closed tree — the grouped threshold search of
    :func:`top_products_sums`, O(k) time and memory (docs/theory.md §2.3).  Increases up
    to ``MONOTONE_TOL`` (rounding) are removed by the running minimum (a lower bound
    within k·depth·tol).  Otherwise the O(k² min(k, m)) dynamic program of
    :func:`sibling_closed_values` runs, stopping first with ``ValueError`` when its
    work exceeds ``MAX_DP_WORK``.

    Returns ``(values [len(ks)], depths [len(ks)])``.

    >>> v, d = sibling_closed_sums([0.5, 0.4], [1, 2, 3])
    >>> v.round(6).tolist(), d.tolist()
    ([0.5, 0.9, 1.15], [1, 1, 2])
    >>> v, d = sibling_closed_sums([0.3, 0.1, 0.6], [2])      # increasing: dynamic program
    >>> v.round(6).tolist(), d.tolist()
    ([0.4], [1])
    """
    ks = _check_ks(ks)
    w, mono = _slot_weights(weights)
    if mono is not None:
        return _top_sums_and_depths(mono, ks, max_nodes, "weights", total=False)
    kmax = int(ks.max())
    _check_dp_cost(kmax, _useful_slots(w))
    dp = sibling_closed_values(w, kmax)
    return dp.f[ks].copy(), np.array([sibling_closed_depth(dp, int(k)) for k in ks], dtype=np.int64)


def sibling_closed_depth(dp: SiblingClosedDP, n: int) -> int:
    """Depth of the DP-optimal sibling-closed tree with budget n (same ties as :func:`best_sibling_closed_tree`)."""
    best = 0
    stack = [(n, 0)]
    while stack:
        b, d = stack.pop()
        if b == 0:
            best = max(best, d)
            continue
        col = dp.G[1:, b]
        j = int(np.flatnonzero(col >= col.max() - 1e-15)[0]) + 1
        for slot in range(j, 0, -1):
            s = int(dp.choice[slot, b])
            stack.append((s, d + 1))
            b -= 1 + s
    return best


def best_sibling_closed_tree(weights, k: int, name: str = "sibling-closed") -> Tree:
    r"""The best k-node tree whose nodes hold slots 1..m (children tried in slot order).

    ``weights[j-1]`` = :math:`w_j`.  Non-increasing weights: the priority queue of
    :func:`best_rank_set_tree` (O(k log k)), whose k largest products are sibling-closed
    (ties in slot order).  Otherwise the dynamic program (ties favour fewer children),
    which stops first with ``ValueError`` beyond ``MAX_DP_WORK``.

    >>> t = best_sibling_closed_tree([0.5, 0.4], 2)      # chain: 0.5 + 0.25; batch: 0.9
    >>> t.parents.tolist(), t.ranks.tolist()
    ([-1, 0, 0], [0, 1, 2])
    """
    k = _check_budget(k)
    w, mono = _slot_weights(weights)
    if mono is not None:
        return _threshold_tree(mono, k, 20_000_000, name=name)
    _check_dp_cost(k, _useful_slots(w))
    dp = sibling_closed_values(w, k)
    parents, ranks = [-1], [0]
    queue = [(0, k)]
    while queue:
        node, n = queue.pop(0)
        if n == 0:
            continue
        col = dp.G[1:, n]
        j = int(np.flatnonzero(col >= col.max() - 1e-15)[0]) + 1
        kids = []
        budget = n
        for slot in range(j, 0, -1):
            s = int(dp.choice[slot, budget])
            kids.append((slot, s))
            budget -= 1 + s
        for slot, s in sorted(kids):
            parents.append(node)
            ranks.append(slot)
            queue.append((len(parents) - 1, s))
    return from_parents(parents, ranks, name=f"{name}:{k}")


def tree_shape(tree: Tree) -> dict:
    """Summary of a tree's shape: nodes per depth, root width, largest rank used, leaves.

    >>> from chansim.inputs.trees import branching
    >>> tree_shape(branching([2, 1]))
    {'k': 4, 'depth': 2, 'nodes_per_depth': [2, 2], 'root_children': 2, 'max_rank': 2, 'leaves': 2}
    """
    depth = tree.depth[1:]
    per = np.bincount(depth, minlength=tree.max_depth + 1)[1:].tolist() if tree.size else []
    return {
        "k": tree.size,
        "depth": tree.max_depth,
        "nodes_per_depth": per,
        "root_children": int(tree.num_children[0]),
        "max_rank": int(tree.ranks.max()) if tree.size else 0,
        "leaves": int((tree.num_children[1:] == 0).sum()),
    }
