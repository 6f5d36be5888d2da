"""The registry is the one list of methods: every derived list, style and lookup comes from it."""
import itertools

import numpy as np
import pytest

from chansim.figures._common import STYLE
from chansim.sampling.kernels import poisson_binomial_add
from chansim.logs.predict import LOG_METHODS
from chansim.llm.validate import DEFAULT_METHODS
from chansim.predict import PATH_METHODS
from chansim.simulate import simulate
from chansim.theory import expected_tokens, node_acceptance, rank_law, speedup_report
from chansim.theory.report import REPORT_METHODS
from chansim.inputs.trees import batch, branching
from chansim.verify import METHODS, ERSDTopM, get_method, method_names, style
from chansim.verify.specinfer import SpecInfer

P = np.array([0.5, 0.25, 0.15, 0.1])
Q = np.array([0.2, 0.3, 0.4, 0.1])


def test_every_method_has_one_home_with_a_style():
    for name, cls in METHODS.items():
        assert cls.name == name
        assert cls.__module__ == f"chansim.verify.{(cls.variant_of or name).replace('-', '_')}"
        assert STYLE[name] == style(name) == (cls.label, cls.colour, cls.marker)
    assert len({cls.label for cls in METHODS.values()}) == len(METHODS)


def test_derived_lists_come_from_the_registry():
    assert REPORT_METHODS == ("sd", "specinfer", "rsd", "spectr", "ersd", "ersd-topm", "block", "multidraft")
    assert LOG_METHODS == ("autoregressive", "sd", "specinfer", "rsd", "spectr", "ersd", "block", "multidraft")
    assert DEFAULT_METHODS == ("sd", "specinfer", "rsd", "spectr", "ersd", "block")
    assert set(PATH_METHODS) == set(LOG_METHODS) | {"ersd-topm"}


def test_a_registered_method_appears_everywhere_it_qualifies(monkeypatch):
    class Twin(SpecInfer):
        name, label, colour, marker = "twin", "twin of specinfer", "#000000", "x"
        variant_of = None

    monkeypatch.setitem(METHODS, "twin", Twin)
    assert "twin" in method_names(theory=True) and "twin" in method_names(path=True, variants=False)
    e = expected_tokens("twin", branching([2, 2]), P, Q)
    assert e.value == expected_tokens("specinfer", branching([2, 2]), P, Q).value
    assert node_acceptance("twin", P, Q, 3) == node_acceptance("specinfer", P, Q, 3)
    rep = speedup_report(P, Q, k=[1, 4], methods=["twin", "specinfer"])
    assert rep.methods["twin"]["tokens_per_call"] == rep.methods["specinfer"]["tokens_per_call"]


def test_ersd_topm_is_ersd_on_sibling_closed_trees():
    topm = get_method("ersd-topm")
    assert isinstance(topm, ERSDTopM) and topm.variant_of == "ersd"
    tree = branching([3, 2])
    assert expected_tokens("ersd-topm", tree, P, Q).value == pytest.approx(expected_tokens("ersd", tree, P, Q).value,
                                                                         abs=1e-12)
    from chansim.inputs.trees import from_parents
    with pytest.raises(ValueError, match="slots other than 1..m"):
        expected_tokens("ersd-topm", from_parents([-1, 0], ranks=[0, 2]), P, Q)
    # Monte Carlo counterpart: the engine runs the variant by its registered name
    res = simulate("ersd-topm", batch(3), P, Q, calls=20_000, seed=3, confidence=0.999)
    exact = expected_tokens("ersd-topm", batch(3), P, Q).value
    assert res.tokens_per_call.ci_low <= exact <= res.tokens_per_call.ci_high


@pytest.mark.parametrize("method", ["sd", "specinfer", "rsd", "spectr", "ersd"])
def test_node_acceptance_is_the_methods_own(method):
    m = 1 if method == "sd" else 3
    meth = get_method(method)
    opts = {"law": rank_law(P, Q)} if meth.uses_race else {}     # race methods: the rank law, from the theory
    assert node_acceptance(method, P, Q, m) == meth.node_acceptance(P, Q, m, **opts)
    if method != "spectr":
        assert node_acceptance(method, P, Q, m) == pytest.approx(meth.slot_weights(P, Q, m, **opts).w.sum(), abs=1e-12)


def test_poisson_binomial_kernel_matches_enumeration():
    b = np.array([0.1, 0.5, 0.7, 0.3])
    pmf = np.zeros((1, 5))
    pmf[0, 0] = 1.0
    for x in b:
        poisson_binomial_add(pmf, np.array([[x]]))
    brute = np.zeros(5)
    for bits in itertools.product([0, 1], repeat=4):
        brute[sum(bits)] += np.prod([x if o else 1 - x for x, o in zip(b, bits)])
    np.testing.assert_allclose(pmf[0], brute, atol=1e-15)


def test_default_lists_come_from_the_methods():
    from chansim.verify.registry import METHODS, baseline, default_methods, is_baseline

    assert baseline() == next(n for n, c in METHODS.items() if c.min_drafts == 0)
    assert is_baseline(baseline()) and not is_baseline("sd")
    for purpose in ("top-n", "temperature", "settings-check"):
        names = default_methods(purpose)
        assert names and all(purpose in METHODS[n].default_in for n in names)
    # the bound's costly methods join only where they are cheap
    assert "rsd" in default_methods("bound", vocab=64, kmax=4)
    assert "rsd" not in default_methods("bound", vocab=65, kmax=4)
    assert "spectr" in default_methods("bound", vocab=1000, kmax=44)
    assert "spectr" not in default_methods("bound", vocab=1000, kmax=45)
    with pytest.raises(ValueError, match="unknown default list"):
        default_methods("everything")
