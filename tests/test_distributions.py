"""Validation, divergences and synthetic families of chansim.inputs.distributions."""
import math

import numpy as np
import pytest

from chansim.inputs import distributions as D


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad, match", [
    ([0.5, np.nan, 0.5], r"NaN or inf at index \(1,\)"),
    ([0.5, np.inf], r"NaN or inf at index \(1,\)"),
    ([0.7, -0.2, 0.5], r"negative probability -0.2 at index \(1,\)"),
    ([0.5, 0.6], r"not normalised: sums to 1.1"),
    ([], r"non-empty vocabulary"),
    (0.5, r"non-empty vocabulary"),
])
def test_check_probs_names_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        D.check_probs(bad)


def test_check_probs_reports_position_in_batch():
    batch = np.array([[0.5, 0.5], [0.3, 0.3]])
    with pytest.raises(ValueError, match=r"p is not normalised: sums to 0.6 at position \(1,\)"):
        D.check_probs(batch, name="p")


def test_check_probs_tolerance_and_no_renormalisation():
    ok = np.array([0.5, 0.5 + 5e-7])
    assert D.check_probs(ok)[1] == ok[1]                  # accepted, returned unchanged
    with pytest.raises(ValueError, match="tolerance 1e-06"):
        D.check_probs([0.5, 0.5 + 2e-6])


def test_vocab_and_shape_mismatch():
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        D.check_pair([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="shape mismatch"):
        D.check_pair([[0.5, 0.5]] * 2, [0.5, 0.5])
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        D.kl_divergence([0.5, 0.5], [1.0])


def test_check_pair_1d_names_the_caller_and_checks_once():
    p, q = D.check_pair_1d([1, 0], [0.5, 0.5], "caller")
    assert p.dtype == q.dtype == np.float64 and p.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"^caller takes one pair of 1-D vectors, got shape \(1, 2\)$"):
        D.check_pair_1d([[0.5, 0.5]], [[0.9, 0.1]], "caller")
    with pytest.raises(ValueError, match="not normalised"):
        D.check_pair_1d([0.5, 0.6], [0.5, 0.5], "caller")
    # validate=False: the values are taken as checked, the shape is still checked (it costs nothing)
    assert D.check_pair_1d([0.5, 0.6], [0.5, 0.5], "caller", validate=False)[0].tolist() == [0.5, 0.6]
    with pytest.raises(ValueError, match="caller takes one pair of 1-D vectors"):
        D.check_pair_1d([[0.5, 0.5]], [[0.5, 0.5]], "caller", validate=False)


def test_as_pair_checks_only_when_asked():
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        D.as_pair([0.5, 0.5], [1.0])
    p, q = D.as_pair([1, 0], [0.5, 0.5], validate=False)
    assert p.dtype == np.float64 and q.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("bad, match", [
    ([0.0, np.nan], "NaN or \\+inf"),
    ([0.0, np.inf], "NaN or \\+inf"),
    ([-np.inf, -np.inf], "every logit is -inf"),
    ([], "non-empty vocabulary"),
])
def test_bad_logits(bad, match):
    with pytest.raises(ValueError, match=match):
        D.softmax(bad)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.inf, np.nan])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        D.softmax([0.0, 1.0], temperature)


def test_bad_renyi_order_and_base():
    with pytest.raises(ValueError, match="Renyi order alpha must be >= 0"):
        D.renyi_divergence([0.5, 0.5], [0.5, 0.5], -0.5)
    with pytest.raises(ValueError, match="base must be 'nats' or 'bits'"):
        D.entropy([0.5, 0.5], base="dits")


# ----------------------------------------------------------------------------- softmax
def test_softmax_stable_temperature_and_masked():
    z = np.array([1000.0, 1000.0 + math.log(3.0), -np.inf])
    np.testing.assert_allclose(D.softmax(z), [0.25, 0.75, 0.0], atol=1e-15)
    # temperature 2 on logits (0, 2 log 3) is softmax of (0, log 3)
    np.testing.assert_allclose(D.softmax([0.0, 2 * math.log(3.0)], 2.0), [0.25, 0.75], atol=1e-15)
    assert np.all(np.isfinite(D.log_softmax([0.0, 1e4])))


# ----------------------------------------------------------------------------- divergences
def test_hand_values():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    kl = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    assert float(D.kl_divergence(p, q)) == pytest.approx(kl, abs=1e-15)
    assert float(D.kl_divergence(p, q, base="bits")) == pytest.approx(kl / math.log(2), abs=1e-15)
    assert float(D.total_variation(p, q)) == pytest.approx(0.25, abs=1e-15)
    assert float(D.sd_acceptance(p, q)) == pytest.approx(0.75, abs=1e-15)
    assert float(D.entropy([0.25] * 4, base="bits")) == pytest.approx(2.0, abs=1e-15)
    assert float(D.entropy([1.0, 0.0])) == 0.0
    # Renyi of order 2: log sum p^2 / q ; order 0: -log q(supp p); order inf: log max p/q
    assert float(D.renyi_divergence(p, q, 2.0)) == pytest.approx(math.log(0.25 / 0.25 + 0.25 / 0.75), abs=1e-14)
    assert float(D.renyi_divergence([1.0, 0.0], q, 0.0)) == pytest.approx(-math.log(0.25), abs=1e-14)
    assert float(D.renyi_divergence(p, q, np.inf, base="bits")) == pytest.approx(1.0, abs=1e-14)
    assert float(D.renyi_divergence(p, q, 1.0)) == pytest.approx(kl, abs=1e-15)


def test_infinite_divergences_and_renyi_monotone_in_order():
    assert float(D.kl_divergence([0.5, 0.5], [1.0, 0.0])) == np.inf
    assert float(D.renyi_divergence([0.5, 0.5], [1.0, 0.0], 2.0)) == np.inf
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(10))
    orders = [0.0, 0.5, 0.999, 1.0, 1.001, 2.0, 5.0, np.inf]
    vals = [float(D.renyi_divergence(p, q, a)) for a in orders]
    assert all(a <= b + 1e-9 for a, b in zip(vals, vals[1:]))
    assert vals[2] == pytest.approx(vals[3], rel=1e-2) and vals[4] == pytest.approx(vals[3], rel=1e-2)


def test_batched_equals_loop():
    pair = D.synthetic_pair("dirichlet", 7, 0.8, n=5, seed=3)
    p, q = pair.target_probs, pair.draft_probs
    for fn in (D.kl_divergence, D.total_variation, D.sd_acceptance, lambda a, b: D.renyi_divergence(a, b, 3.0)):
        batched = fn(p, q)
        assert batched.shape == (5,)
        np.testing.assert_allclose(batched, [float(fn(a, b)) for a, b in zip(p, q)], rtol=1e-13)
    assert D.entropy(p, base="bits").shape == (5,)


# ----------------------------------------------------------------------------- synthetic families
@pytest.mark.parametrize("family", sorted(D.FAMILIES))
def test_families_seeded_valid_and_zero_distance(family):
    a = D.synthetic_pair(family, 50, 0.5, n=4, seed=11)
    b = D.synthetic_pair(family, 50, 0.5, n=4, seed=11)
    c = D.synthetic_pair(family, 50, 0.5, n=4, seed=12)
    assert np.array_equal(a.target_probs, b.target_probs) and np.array_equal(a.draft_probs, b.draft_probs)
    assert not np.array_equal(a.target_probs, c.target_probs)
    D.check_pair(a.target_probs, a.draft_probs)
    zero = D.synthetic_pair(family, 50, 0.0, n=4, seed=11)
    np.testing.assert_allclose(zero.draft_probs, zero.target_probs, atol=1e-12)


@pytest.mark.parametrize("family, knobs", [
    ("dirichlet", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("zipf", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("noisy", [0.0, 0.5, 1.0, 2.0, 4.0]),
])
def test_knob_moves_distance_monotonically_on_average(family, knobs):
    means = []
    for knob in knobs:
        pair = D.synthetic_pair(family, 100, knob, n=200, seed=5)
        means.append(float(D.total_variation(pair.target_probs, pair.draft_probs).mean()))
    assert means[0] < 1e-9
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_bad_family_arguments():
    with pytest.raises(ValueError, match="unknown family"):
        D.synthetic_pair("gauss", 10, 0.5)
    with pytest.raises(ValueError, match="vocab must be >= 2"):
        D.synthetic_pair("dirichlet", 1, 0.5)
    with pytest.raises(ValueError, match=r"distance must lie in \[0.0, 1.0\]"):
        D.dirichlet_pair(10, distance=1.5)


def test_complex_input_is_rejected_not_truncated():
    import numpy as np
    import pytest
    from chansim.inputs.distributions import check_logits, check_probs

    with pytest.raises(ValueError, match="complex"):
        check_probs(np.array([0.5 + 0.1j, 0.5]), "p")
    with pytest.raises(ValueError, match="complex"):
        check_logits(np.array([0.0 + 1j, 1.0]))
