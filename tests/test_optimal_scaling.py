"""Optimal trees at any k (chansim.theory.optimal): grouped threshold search vs reference algorithms.

References kept here: a plain priority queue over rank sequences (the k largest path
products, one pop per node) and the sibling-closed dynamic program; exhaustive
enumeration on tiny cases lives in test_theory_bounds.py.
"""
import heapq
import math
from itertools import combinations, product

import numpy as np
import pytest

from chansim.theory import (best_rank_set_tree, best_sibling_closed_tree, rsd_weights, sibling_closed_sums,
                            sibling_closed_values, specinfer_weights, top_products_curve, top_products_depths,
                            top_products_sums, tree_value)
from chansim.theory.optimal import sibling_closed_depth


def heap_top_products(a, kmax):
    """Reference: the kmax largest path products (descending) and their depths, by a priority queue."""
    vals = sorted((x for x in a if x > 0), reverse=True)
    heap = [(-vals[0], 0, 1.0, 1)]                # (-product, sibling index, parent product, depth)
    prods, depths = [], []
    while heap and len(prods) < kmax:
        neg, idx, par, d = heapq.heappop(heap)
        prods.append(-neg)
        depths.append(d)
        heapq.heappush(heap, (neg * vals[0], 0, -neg, d + 1))
        if idx + 1 < len(vals):
            heapq.heappush(heap, (-par * vals[idx + 1], idx + 1, par, d))
    return np.array(prods), np.array(depths)


LAWS = [np.array(a) for a in ([0.6, 0.1, 0.3], [0.5, 0.5], [0.3, 0.3, 0.3, 0.1], [0.9, 0.05], [0.99, 0.005, 0.005],
                              [0.2] * 5, [0.45, 0.25, 0.15, 0.1, 0.05])]


@pytest.mark.parametrize("a", LAWS, ids=[str(i) for i in range(len(LAWS))])
def test_top_products_match_priority_queue(a):
    kmax = 3000
    prods, depths = heap_top_products(a, kmax)
    ks = np.array([1, 2, 3, 7, 50, 333, 1000, 2999, 3000])
    np.testing.assert_allclose(top_products_sums(a, ks), np.cumsum(prods)[ks - 1], rtol=1e-11)
    np.testing.assert_allclose(top_products_curve(a, kmax), np.cumsum(prods), rtol=1e-11)
    deepest = np.maximum.accumulate(depths)
    if len(set(np.round(prods, 12))) == len(prods):            # no ties: the depth is determined
        assert np.array_equal(top_products_depths(a, ks), deepest[ks - 1])


def test_random_laws_against_priority_queue():
    rng = np.random.default_rng(0)
    for size in (2, 3, 5, 9, 40):
        for conc in (0.2, 1.0, 5.0):
            a = rng.dirichlet(np.full(size, conc)) * rng.uniform(0.7, 1.0)
            prods, depths = heap_top_products(a, 2000)
            ks = np.array([1, 10, 100, 1000, 2000])
            np.testing.assert_allclose(top_products_sums(a, ks), np.cumsum(prods)[ks - 1], rtol=1e-11)
            assert np.array_equal(top_products_depths(a, ks), np.maximum.accumulate(depths)[ks - 1])
            t = best_rank_set_tree(a, 500)
            assert t.size == 500 and np.isclose(tree_value(t, a) - 1, prods[:500].sum(), rtol=1e-11)


@pytest.mark.parametrize("a", LAWS, ids=[str(i) for i in range(len(LAWS))])
def test_trees_hold_the_k_largest_products_with_ties(a):
    prods, _ = heap_top_products(a, 4000)
    w = np.sort(a)[::-1]
    for k in (1, 2, 3, 5, 17, 100, 1000, 4000):
        t = best_rank_set_tree(a, k)
        assert t.size == k and tree_value(t, a) - 1 == pytest.approx(prods[:k].sum(), rel=1e-10)
        s = best_sibling_closed_tree(w, k)                      # non-increasing: the same products, slots 1..m
        assert s.size == k and s.sibling_closed
        assert tree_value(s, w) - 1 == pytest.approx(prods[:k].sum(), rel=1e-10)


def test_deep_chain_like_law_at_one_million():
    eps = 1e-7                                                   # nearly equal p and q: depth-10^6 tree
    k = 10**6
    value = top_products_sums([1 - eps, eps], [k])[0]
    chain = (1 - eps) * (1 - (1 - eps) ** k) / eps               # every one of the k best paths is 1, 1, ...
    assert value == pytest.approx(chain, rel=1e-9)
    assert top_products_depths([1 - eps, eps], [k])[0] == k
    tree = best_rank_set_tree([1 - eps, eps], k)                 # built without a per-node Python loop
    assert tree.size == k and np.all(tree.ranks[1:] == 1)


def test_million_nodes_on_a_spread_law():
    a = np.array([0.5, 0.3, 0.15, 0.05])
    ks = np.array([10**4, 10**6])
    v = top_products_sums(a, ks)
    # the large-k relation: tokens grow like ln k / H; one more decade adds ln(10)/H up to o(1)
    h = float(-(a * np.log(a)).sum())
    assert (v[1] - v[0]) == pytest.approx(2 * math.log(10) / h, rel=0.02)


@pytest.mark.parametrize("bad", [[-0.6, 1.6], [np.nan, 0.5], [0.7, 0.6], [[0.5, 0.5]], [np.inf, 0.0]])
def test_bad_rank_laws_raise(bad):
    with pytest.raises(ValueError):
        best_rank_set_tree(bad, 2)
    with pytest.raises(ValueError):
        top_products_sums(bad, [2])


def test_bad_budgets_raise():
    with pytest.raises(ValueError):
        top_products_sums([0.5, 0.5], [0])
    with pytest.raises(ValueError):
        top_products_sums([0.5, 0.5], [])
    with pytest.raises(ValueError):
        sibling_closed_sums([0.5, 0.2], [1.5])
    with pytest.raises(ValueError):
        sibling_closed_sums([0.5, -0.2], [2])


def test_sibling_closed_fast_path_equals_dynamic_program():
    rng = np.random.default_rng(1)
    for _ in range(6):
        p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        w = specinfer_weights(p, q, 60)
        assert np.all(np.diff(w) <= 1e-12)                       # SpecInfer's weights never increase
        dp = sibling_closed_values(w, 60)
        ks = np.arange(1, 61)
        vals, depths = sibling_closed_sums(w, ks)
        np.testing.assert_allclose(vals, dp.f[1:], rtol=1e-10, atol=1e-15)
        for k in (5, 30, 60):
            t = best_sibling_closed_tree(w, k)
            assert t.sibling_closed and t.size == k
            assert tree_value(t, w) - 1 == pytest.approx(dp.f[k], rel=1e-10)
            assert t.max_depth == depths[k - 1] or abs(dp.f[k] - vals[k - 1]) < 1e-12


def test_increasing_weights_use_the_dynamic_program_and_stop_when_too_big():
    p = np.array([0.4, 0.3, 0.2, 0.1])
    w = rsd_weights(p, p[::-1].copy(), 8).w                       # 0.60, 0.16, 0.08, 0.16: increases at slot 4
    assert np.any(np.diff(w[:4]) > 0)
    dp = sibling_closed_values(w, 40)
    vals, depths = sibling_closed_sums(w, [10, 40])
    np.testing.assert_allclose(vals, dp.f[[10, 40]])
    assert depths.tolist() == [sibling_closed_depth(dp, 10), sibling_closed_depth(dp, 40)]
    assert vals[1] > top_products_sums(np.minimum.accumulate(w), [40])[0]   # the increase pays
    with pytest.raises(ValueError, match="dynamic program.*cell updates"):
        sibling_closed_sums(w, [10**6])
    with pytest.raises(ValueError, match="dynamic program"):
        best_sibling_closed_tree(w, 10**6)


def _brute_closed(w, k):
    seqs = [s for d in range(1, k + 1) for s in product(range(1, len(w) + 1), repeat=d)]
    best = 0.0
    for combo in combinations(seqs, k):
        cs = set(combo)
        if any(s[:-1] and s[:-1] not in cs for s in cs):
            continue
        if any(s[-1] > 1 and s[:-1] + (s[-1] - 1,) not in cs for s in cs):
            continue
        best = max(best, sum(math.prod(w[r - 1] for r in s) for s in cs))
    return best


@pytest.mark.parametrize("w", [[0.5, 0.3, 0.1], [0.2, 0.7], [0.4, 0.1, 0.35]])
def test_sibling_closed_exhaustive(w):
    for k in range(1, 5 if len(w) == 2 else 4):          # enumeration stays ~10^4 trees
        assert sibling_closed_sums(w, [k])[0][0] == pytest.approx(_brute_closed(w, k), abs=1e-12)
