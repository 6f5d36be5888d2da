"""``report_tree``: the tree behind each value of the bound report has that value exactly."""
import numpy as np
import pytest

from chansim.inputs.distributions import synthetic_pair
from chansim.theory import expected_tokens, speedup_report
from chansim.theory.report_trees import report_tree
from chansim.inputs.trees import parse_tree
from chansim.verify.registry import get_method, method_names

KS = [1, 3, 6]


@pytest.mark.parametrize("shape", ["optimal", "chain", "batch"])
def test_report_value_is_the_trees_exact_value(shape):
    pair = synthetic_pair("noisy", 5, 1.0, seed=2)
    p, q = pair.target_probs, pair.draft_probs
    for method in method_names(theory=True):
        rep = speedup_report(p, q, k=KS, methods=[method], tree=shape, pfr=False, seed=0)
        if not rep.methods[method]["exact"]:
            continue                                          # Monte Carlo slot weights (rsd at this V)
        for k, value in zip(KS, rep.methods[method]["tokens_per_call"]):
            tree = report_tree(method, p, q, k, shape)
            assert (tree is None) == (value is None), (method, shape, k)
            if tree is None:
                continue
            tree = parse_tree(tree) if isinstance(tree, str) else tree
            assert tree.size == k
            exact = expected_tokens(method, tree, p, q)
            # multidraft's tree value comes from its priority partition (Newton-placed cells, ~1e-13),
            # its report value from the closed-form optimum
            assert exact.exact and exact.value == pytest.approx(value, abs=1e-10), (method, shape, k)


def test_report_tree_errors():
    p, q = np.array([0.5, 0.5]), np.array([0.3, 0.7])
    with pytest.raises(ValueError, match="drafts nothing"):
        report_tree("autoregressive", p, q, 2, "chain")
    with pytest.raises(ValueError, match="shape"):
        report_tree("sd", p, q, 2, "star")
    assert report_tree("block", p, q, 2, "batch") is None and get_method("block").chains_only


def test_optimal_rank_set_tree_at_real_vocab_uses_the_bounded_law(monkeypatch):
    """Above V = 64 the report tree takes the guaranteed-error law at K = 64, never the full small-V law."""
    import chansim.theory.ranklaw as ranklaw
    from chansim.inputs.distributions import noisy_target_pair

    def refuse(*_, **__):
        raise AssertionError("full (K = V) rank law called at V = 1000")

    monkeypatch.setattr(ranklaw, "_small_law", refuse)
    p, q = noisy_target_pair(1000, 1.0, seed=0)
    tree = report_tree("ersd", p, q, 4, "optimal")
    assert tree.size == 4
    topm = report_tree("ersd-topm", p, q, 4, "optimal")
    assert topm.size == 4
