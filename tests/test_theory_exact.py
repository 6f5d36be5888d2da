"""Exact expectations of chansim.theory agree with Monte Carlo (chansim.simulate) and with each other."""
import numpy as np
import pytest

from chansim.inputs.distributions import synthetic_pair
from chansim.simulate import simulate
from chansim.theory import (expected_tokens, node_acceptance, optimal_acceptance_lp, optimal_acceptance_mincut,
                            rank_law, rsd_weights, sd_chain_tokens, sd_weights, specinfer_weights,
                            spectr_acceptance, spectr_sequences_tokens, tree_value)
from chansim.inputs.trees import batch, branching, chain, sequences

FAMILIES = ("dirichlet", "zipf", "noisy")


def _pairs(n, vocab=5, seed=0):
    out = []
    i = 0
    while len(out) < n:
        fam = FAMILIES[i % 3]
        p, q = synthetic_pair(fam, vocab, [0.4, 0.8, 1.0][i % 3], seed=seed + i)
        i += 1
        if np.abs(p - q).sum() > 1e-6:
            out.append((fam, p, q))
    return out


CASES = [("sd", chain(3)), ("specinfer", branching([2, 2])), ("rsd", branching([3, 1])),
         ("spectr", sequences(2, 2)), ("ersd", branching([2, 1, 1])), ("ersd", batch(3))]


@pytest.mark.parametrize("method,tree", CASES, ids=[f"{m}-{t.name}" for m, t in CASES])
def test_exact_matches_monte_carlo(method, tree):
    # 20 pairs per test at confidence 1 - 1e-8 each: a correct implementation fails a
    # test with probability < 2e-7 (simulate's interval stays valid when every call
    # gives the same count: Clopper-Pearson bound, see chansim.simulate).
    for idx, (_, p, q) in enumerate(_pairs(20, seed=10)):
        e = expected_tokens(method, tree, p, q)
        assert e.exact
        res = simulate(method, tree, p, q, calls=6000, seed=idx, confidence=1 - 1e-8)
        assert res.tokens_per_call.contains(e.value), (method, tree, idx, e.value, res.tokens_per_call)


def test_monte_carlo_weights_bracket_exact():
    for _, p, q in _pairs(3, vocab=6, seed=3):
        ex = rsd_weights(p, q, 3, method="exact")
        mc = rsd_weights(p, q, 3, method="mc", trials=20_000, seed=1)
        assert np.all(mc.ci_low <= ex.w + 1e-12) and np.all(ex.w <= mc.ci_high + 1e-12)


def test_sd_chain_closed_form_equals_tree_sum():
    for _, p, q in _pairs(5):
        beta = sd_weights(p, q)
        for g in range(6):
            assert np.isclose(sd_chain_tokens(beta[0], g), tree_value(chain(g), beta))
    assert sd_chain_tokens(1.0, 4) == 5.0


def test_specialisations_agree():
    for _, p, q in _pairs(5, vocab=6, seed=4):
        beta = float(sd_weights(p, q)[0])
        # every residual method on a chain is sd
        for m in ("specinfer", "rsd", "spectr"):
            assert np.isclose(expected_tokens(m, chain(3), p, q).value, sd_chain_tokens(beta, 3))
        # spectr on a batch: 1 + 1 - (1 - beta(rho))^k
        assert np.isclose(spectr_sequences_tokens(p, q, 4, 1), 1 + spectr_acceptance(p, q, 4))
        # ersd on a batch: 1 + P(R <= m)
        law = rank_law(p, q)
        assert np.isclose(expected_tokens("ersd", batch(3), p, q).value, 1 + law.probs[:3].sum())


def test_lp_equals_mincut_and_dominates_methods():
    for _, p, q in _pairs(20, vocab=5, seed=20):
        law = rank_law(p, q)
        for m in (1, 2, 3):
            iid = optimal_acceptance_lp(p, q, m, "iid")
            wor = optimal_acceptance_lp(p, q, m, "without")
            assert np.isclose(iid, optimal_acceptance_mincut(p, q, m, "iid"), atol=1e-9)
            assert np.isclose(wor, optimal_acceptance_mincut(p, q, m, "without"), atol=1e-9)
            tol = 1e-9
            assert iid >= specinfer_weights(p, q, m).sum() - tol
            assert iid >= spectr_acceptance(p, q, m) - tol
            assert wor >= rsd_weights(p, q, m).w.sum() - tol
            assert wor >= law.probs[:m].sum() - tol
            if m == 1:
                assert np.isclose(iid, sd_weights(p, q)[0])       # one draft: 1 - TV is optimal


def test_bad_inputs():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    with pytest.raises(ValueError, match="chain"):
        expected_tokens("sd", batch(2), p, q)
    with pytest.raises(ValueError, match="sequences"):
        expected_tokens("spectr", branching([2, 2]), p, q)
    with pytest.raises(ValueError, match="unknown method"):
        node_acceptance("nope", p, q, 1)
    with pytest.raises(ValueError, match="not normalised"):
        expected_tokens("sd", chain(1), [0.5, 0.6], q)


def test_optimal_rank_set_tree_depth_without_building_the_tree():
    from chansim.theory import best_rank_set_tree, top_products_curve, top_products_depths, top_products_sums

    rng = np.random.default_rng(0)
    ks = np.array([1, 2, 3, 5, 10, 50, 200])
    for _ in range(30):
        a = rng.dirichlet(np.ones(rng.integers(2, 8)))
        tree = best_rank_set_tree(a, 200)
        deepest = np.maximum.accumulate(tree.depth[1:])
        assert np.array_equal(top_products_depths(a, ks), deepest[ks - 1])
        np.testing.assert_allclose(top_products_sums(a, ks), top_products_curve(a, 200)[ks - 1], rtol=1e-12)
