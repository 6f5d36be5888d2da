"""Optimal trees, the large-k relation, the all-k bound and the sympy derivations."""
import math

import numpy as np
import pytest

from chansim.inputs.distributions import synthetic_pair
from chansim.sampling.races import er_acceptance
from chansim.theory import (all_k_bound, best_rank_set_tree, best_sibling_closed_tree, large_k_relation,
                            law_from_probs, naive_log_ratio, outcome_entropy, rank_law, renewal_constant,
                            sibling_closed_values, specinfer_weights, top_products_curve, top_products_sums,
                            tree_value)
from chansim.theory import symbolic
from chansim.inputs.trees import branching, chain
from itertools import product


def _brute_best(weights, k, closed):
    """Best tree value by brute force over all trees with k nodes (tiny k)."""
    w = list(weights)
    best = 0.0
    # enumerate trees as sets of rank sequences (prefix-closed; sibling-closed if asked)
    seqs = [s for d in range(1, k + 1) for s in product(range(1, len(w) + 1), repeat=d)]
    from itertools import combinations
    for combo in combinations(seqs, k):
        cs = set(combo)
        if any(s[:-1] and s[:-1] not in cs for s in cs):
            continue
        if closed and any(s[-1] > 1 and s[:-1] + (s[-1] - 1,) not in cs for s in cs):
            continue
        best = max(best, sum(math.prod(w[r - 1] for r in s) for s in cs))
    return best


def test_optimal_trees_match_brute_force():
    rng = np.random.default_rng(0)
    for size, kmax in ((3, 3), (2, 4), (3, 3), (2, 4)):          # brute force stays ~10^4 trees
        a = rng.dirichlet(np.ones(size))
        for k in range(1, kmax + 1):
            assert np.isclose(top_products_curve(a, k)[-1], _brute_best(a, k, closed=False))
            assert np.isclose(sibling_closed_values(a, k).f[k], _brute_best(a, k, closed=True))
            t = best_sibling_closed_tree(a, k)
            assert t.sibling_closed and t.size == k
            assert np.isclose(tree_value(t, a) - 1, sibling_closed_values(a, k).f[k])
            t = best_rank_set_tree(a, k)
            assert np.isclose(tree_value(t, a) - 1, top_products_curve(a, k)[-1])


def test_rank_sets_beat_top_m_when_a_not_decreasing():
    a = np.array([0.3, 0.1, 0.6])                     # a_3 > a_1: top-m drafting must take rank 1, 2 first
    gen = top_products_curve(a, 8)
    closed = sibling_closed_values(a, 8).f[1:]
    assert np.all(gen >= closed - 1e-12) and gen[0] > closed[0]


def test_wald_identity_and_bound_on_many_trees():
    for seed in range(5):
        p, q = synthetic_pair("dirichlet", 5, 1.0, seed=seed)
        law = rank_law(p, q)
        for tree in (chain(4), branching([3, 2]), best_rank_set_tree(law.probs, 12)):
            tokens = tree_value(tree, law.probs)
            h_out = outcome_entropy(tree, law)
            assert np.isclose(h_out, law.entropy * tokens, rtol=1e-9)          # Wald
            assert h_out <= math.log((tree.size + 1) * law.support - tree.size) + 1e-9
            assert tokens <= all_k_bound(tree.size, law) + 1e-9


def _family_pairs(n):
    out, i = [], 0
    while len(out) < n:
        fam = ("dirichlet", "zipf", "noisy")[i % 3]
        vocab = (4, 5, 6)[(i // 3) % 3]
        knob = (0.3, 0.6, 1.0)[(i // 9) % 3]
        p, q = synthetic_pair(fam, vocab, knob, seed=1000 + i)
        i += 1
        if np.abs(p - q).sum() > 1e-3:
            out.append((fam, vocab, knob, p, q))
    return out


@pytest.mark.slow
def test_all_k_bound_and_large_k_ratio_on_200_pairs():
    ks = np.array([1, 10, 100, 10**3, 10**4, 10**5, 10**6])
    worst_gap, worst_ratio, naive_fail = -np.inf, 0.0, 0
    for fam, vocab, knob, p, q in _family_pairs(200):
        law = rank_law(p, q)
        tokens = 1 + top_products_sums(law.probs, ks)
        worst_gap = max(worst_gap, float((tokens - all_k_bound(ks, law)).max()))
        naive_fail += bool((tokens > naive_log_ratio(ks, law)).any())
        rel = large_k_relation(ks, law)
        worst_ratio = max(worst_ratio, abs(tokens[-1] / rel[-1] - 1))
        # the ratio approaches 1: closer at 10^6 than at 10^2
        assert abs(tokens[-1] / rel[-1] - 1) <= abs(tokens[2] / rel[2] - 1) + 0.01
    assert worst_gap <= 1e-9, worst_gap              # no violation of the all-k bound
    assert worst_ratio < 0.1, worst_ratio            # measured worst: 0.082 (slowly converging pair)
    assert naive_fail >= 50                          # ln(k+1)/H(R) is not a bound


def test_naive_bound_counterexample():
    p, q = synthetic_pair("dirichlet", 6, 1.0, seed=3)
    law = rank_law(p, q)
    k = 10**4
    tokens = 1 + top_products_curve(law.probs, k)[-1]
    assert tokens > naive_log_ratio(k, law)
    assert tokens <= all_k_bound(k, law)


def test_renewal_constant_numerically():
    # non-lattice law: the gap tokens - ln k / mu approaches C
    law = law_from_probs([0.55, 0.3, 0.15])
    ks = np.array([10**4, 10**5, 10**6])
    tokens = 1 + top_products_curve(law.probs, int(ks[-1]))[ks - 1]
    gaps = tokens - np.log(ks) / law.entropy
    assert abs(gaps[-1] - renewal_constant(law)) < 0.05
    assert np.all(np.abs(tokens - large_k_relation(ks, law)) < 0.1)


def test_sympy_formulas_match_numerics():
    b, g, expr = symbolic.sd_chain_formula()
    for beta, gamma in ((0.3, 4), (0.9, 7)):
        assert np.isclose(float(expr.subs({b: beta, g: gamma})), tree_value(chain(gamma), [beta]))
    p1, q1, a1, a2 = symbolic.two_token_rank_law()
    for pv, qv in ((0.2, 0.7), (0.5, 0.9), (0.1, 0.1)):
        law = rank_law([pv, 1 - pv], [qv, 1 - qv])
        assert np.isclose(float(a1.subs({p1: pv, q1: qv})), law.probs[0], atol=1e-10)
        assert np.isclose(law.probs[0], er_acceptance([pv, 1 - pv], [qv, 1 - qv]))
    s, D, e = symbolic.complete_tree_formula()
    p, q = synthetic_pair("noisy", 5, 1.0, seed=2)
    law = rank_law(p, q)
    sv = law.probs[:2].sum()
    assert np.isclose(float(e.subs({s: sv, D: 3})), tree_value(branching([2, 2, 2]), law.probs))
    d, mu, mu2, C = symbolic.two_token_renewal()
    lawd = law_from_probs([0.8, 0.2])
    assert np.isclose(float(mu.subs(d, 0.2)), lawd.entropy)
    assert np.isclose(float(C.subs(d, 0.2)), renewal_constant(lawd))


def test_specinfer_weights_are_residual_products():
    p, q = synthetic_pair("zipf", 6, 1.0, seed=5)
    w = specinfer_weights(p, q, 4)
    assert np.all(np.diff(w) <= 1e-12)               # residual methods: w_j decreasing
    assert w.sum() <= 1 + 1e-12
