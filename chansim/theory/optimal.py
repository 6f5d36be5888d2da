r"""Optimal draft trees for a budget of k drafted tokens (i.i.d. model).

The objective is :math:`E[\text{accepted}] = \sum_{v} \prod_{\text{path}} w_{\text{slot}}`.

* **ERSD, any rank sets** (:func:`best_rank_set_tree`): the children of a node may be
  any race ranks, so every finite sequence of ranks is an admissible node and the set
  of the k largest path products :math:`\prod a_{r_i}` is itself a tree (a prefix of
  a sequence has a larger product), hence optimal.  Priority queue, :math:`O(k\log k)`.
  :func:`top_products_curve` gives the optimum for *every* k up to ``kmax`` at once
  (vectorised threshold enumeration; k up to ~10^7).
* **Sibling-closed trees** (plain ERSD top-m drafting, SpecInfer, RSD: children hold
  slots 1..m; :func:`best_sibling_closed_tree`): dynamic program over budgets, as in
  Sequoia (Chen et al. 2024), needed because :math:`w_j` need not decrease in j
  (it does for the residual methods, not for the rank law a_r):

  .. math::
      G_j(n) = \max_{0 \le s \le n-j} G_{j-1}(n-1-s) + w_j\,(1 + f(s)), \qquad
      f(n) = \max_j G_j(n),

  f(n) the best value below a node with n descendants; :math:`O(k^2 \min(k, m))`.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from ..distributions import check_rank_probs
from ..trees import Tree, from_parents

__all__ = ["best_rank_set_tree", "top_products_curve", "top_products_sums", "best_sibling_closed_tree", "SiblingClosedDP",
           "sibling_closed_values", "tree_shape"]


def _check_budget(k) -> int:
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


def best_rank_set_tree(rank_probs, k: int) -> Tree:
    r"""The optimal ERSD tree with arbitrary rank sets: the k largest products :math:`\prod a_r`.

    Nodes come out in decreasing product order, so parents precede children.

    >>> t = best_rank_set_tree([0.6, 0.1, 0.3], 3)
    >>> t.ranks.tolist(), t.parents.tolist()      # products 0.6, 0.36, 0.3
    ([0, 1, 1, 3], [-1, 0, 1, 0])
    """
    k = _check_budget(k)
    a = check_rank_probs(rank_probs)
    order = np.argsort(-a, kind="stable")
    vals = a[order]
    vals = vals[vals > 0]
    parents, ranks = [-1], [0]
    if k == 0 or len(vals) == 0:
        return from_parents(parents, ranks, name="ersd-rankset:0")
    # heap entries: (-product, tie, parent node, index into sorted ranks, parent product)
    heap = [(-vals[0], 0, 0, 0, 1.0)]
    tie = 1
    while heap and len(parents) <= k:
        neg, _, par, idx, par_prod = heapq.heappop(heap)
        node = len(parents)
        parents.append(par)
        ranks.append(int(order[idx]) + 1)
        prod = -neg
        heapq.heappush(heap, (-prod * vals[0], tie, node, 0, prod)); tie += 1           # first child
        if idx + 1 < len(vals):
            heapq.heappush(heap, (-par_prod * vals[idx + 1], tie, par, idx + 1, par_prod)); tie += 1  # next sibling
    return from_parents(parents, ranks, name=f"ersd-rankset:{len(parents) - 1}")


def top_products_curve(rank_probs, kmax: int, max_nodes: int = 50_000_000) -> np.ndarray:
    r"""Optimal ERSD E[accepted] for every budget k = 1..kmax (arbitrary rank sets).

    Returns ``acc`` with ``acc[k-1]`` = sum of the k largest path products (tokens per
    call = 1 + acc).  All products above a threshold θ are enumerated level by level
    (vectorised), θ being lowered until at least ``kmax`` exist.

    >>> acc = top_products_curve([0.6, 0.1, 0.3], 3)
    >>> np.round(acc, 6).tolist()
    [0.6, 0.96, 1.26]
    """
    kmax = _check_budget(kmax)
    if kmax == 0:
        return np.zeros(0)
    prods, _ = _top_products(rank_probs, kmax, max_nodes)
    prods = np.sort(prods)[::-1][:kmax]
    acc = np.cumsum(prods)
    if len(acc) < kmax:                                         # finite support exhausted
        acc = np.concatenate([acc, np.full(kmax - len(acc), acc[-1] if len(acc) else 0.0)])
    return acc


def top_products_sums(rank_probs, ks, max_nodes: int = 50_000_000) -> np.ndarray:
    """Optimal ERSD E[accepted] at the budgets ``ks`` only (``np.partition``, no full sort).

    Same values as ``top_products_curve(a, max(ks))[ks - 1]``, cheaper for k ~ 10^6.

    >>> top_products_sums([0.6, 0.1, 0.3], [1, 3]).round(6).tolist()
    [0.6, 1.26]
    """
    ks = np.asarray(ks, dtype=np.int64)
    prods, _ = _top_products(rank_probs, int(ks.max()), max_nodes)
    out = np.empty(len(ks))
    neg = -prods
    for i, k in enumerate(ks):
        k = min(int(k), len(prods))
        out[i] = -np.partition(neg, k - 1)[:k].sum() if k < len(prods) else prods.sum()
    return out


def top_products_depths(rank_probs, ks, max_nodes: int = 50_000_000) -> np.ndarray:
    """Depth of the optimal rank-set ERSD tree (:func:`best_rank_set_tree`) at the budgets ``ks``.

    The deepest of the k largest path products, without building the tree (the heap
    build costs seconds at k ~ 10^6).  Equal products at the budget boundary are taken
    in enumeration order, so with exact ties the depth may differ from the heap's tree.

    >>> top_products_depths([0.6, 0.1, 0.3], [1, 2, 3]).tolist()
    [1, 2, 2]
    """
    ks = np.asarray(ks, dtype=np.int64)
    prods, levels = _top_products(rank_probs, int(ks.max()), max_nodes)
    if len(prods) == 0:
        return np.zeros(len(ks), dtype=np.int64)
    order = np.argsort(-prods, kind="stable")
    deepest = np.maximum.accumulate(levels[order])              # [n] depth of the best-k tree
    return deepest[np.minimum(ks, len(prods)) - 1]


def _top_products(rank_probs, kmax: int, max_nodes: int):
    """At least ``kmax`` of the largest path products (all those >= a threshold θ) and their depths.

    θ starts near the large-k scale 1/(H k) and is lowered until enough products exist.
    A rank law with a_1 = 1 gives the chain 1, 1, ... (depths 1..kmax).
    """
    kmax = _check_budget(kmax)
    a = np.sort(np.asarray(rank_probs, dtype=float))           # ascending
    a = a[a > 0]
    if len(a) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    if a[-1] >= 1.0:                                            # a_1 = 1: a chain accepts everything
        return np.ones(kmax), np.arange(1, kmax + 1)
    with np.errstate(divide="ignore"):
        h = float(-(a * np.log(a)).sum())
    theta = 0.5 / (max(h, 1e-3) * kmax)
    while True:
        found = _products_above(a, theta, max_nodes)
        if found is None:
            raise ValueError(f"more than {max_nodes} products needed for kmax={kmax}")
        if len(found[0]) >= kmax or theta < 1e-300:
            return found
        theta *= 0.25


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
    """Run the sibling-closed DP (module docstring) for budgets 0..k."""
    k = _check_budget(k)
    w = np.asarray(weights, dtype=float)
    J = min(k, len(w))
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


def best_sibling_closed_tree(weights, k: int, name: str = "sibling-closed") -> Tree:
    r"""The best k-node tree whose nodes hold slots 1..m (children tried in slot order).

    ``weights[j-1]`` = :math:`w_j`.  Ties favour fewer children.

    >>> t = best_sibling_closed_tree([0.5, 0.4], 2)      # chain: 0.5 + 0.25; batch: 0.9
    >>> t.parents.tolist(), t.ranks.tolist()
    ([-1, 0, 0], [0, 1, 2])
    """
    k = _check_budget(k)
    dp = sibling_closed_values(weights, k)
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

    >>> from chansim.trees import branching
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
