"""Light part of the guaranteed rank law: approximants and their error bounds (chansim/theory/rank_light.py)."""
import numpy as np
import pytest
import sympy as sp

from chansim.theory import rank_light as rl


def _poisson_binomial(pis, k):
    """Truncated law of a sum of Bernoulli(pis): states 0..k-1 and ">= k"."""
    state = np.zeros(k + 1)
    state[0] = 1.0
    for pi in pis:
        moved = state[:k] * pi
        state[:k] -= moved
        state[1:] += moved
    return state


def _cases(n_cases=400, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(1, 300))
        c = rng.exponential(1.0, n) * 10 ** rng.uniform(-5, 0)
        yield c, float(rng.uniform(0, 10)), int(rng.choice([1, 3, 16, 64, 300]))


def _second_order(c, t, k, b_scale=1.0):
    return rl.second_order_truncated(np.array([t * c.sum()]), np.array([b_scale * t * t * (c * c).sum() / 2]), k)[0]


def test_leading_coefficient_has_norm_one():
    """f_x - g_x = tau^3 (w/6 + w^2/2 + w^3/3) + O(tau^4), and that polynomial in z has coefficient norm 1."""
    tau, w, z = sp.symbols("tau w z")
    f = 1 + (1 - sp.exp(-tau)) * w
    g = sp.exp(tau * w - tau ** 2 / 2 * (w + 1) * w)                    # z w = (w + 1) w
    series = sp.series(f - g, tau, 0, 4).removeO()
    assert sp.expand(series.coeff(tau, 1)) == 0 and sp.expand(series.coeff(tau, 2)) == 0
    cubic = sp.expand(series.coeff(tau, 3))
    assert sp.simplify(cubic - (w / 6 + w ** 2 / 2 + w ** 3 / 3)) == 0
    coeffs = sp.Poly(sp.expand(cubic.subs(w, z - 1)), z).all_coeffs()
    assert sum(abs(c) for c in coeffs) == 1


def test_kappa_is_increasing_and_continuous():
    s = np.concatenate([np.linspace(0, 2e-2, 2001), np.geomspace(2e-2, 3, 500)])
    k = rl.kappa(s)
    assert k[0] == 1 and np.all(np.diff(k) >= -1e-4)           # (the branch switch at 1e-2 steps down < 1e-4)
    below, above = rl.kappa(np.nextafter(1e-2, 0)), rl.kappa(1e-2)       # series branch | closed form
    assert 0 <= below - above < 1e-4
    # the series branch is an upper bound of D(s)/s^3 (computed exactly with sympy)
    x = sp.symbols("x")
    d = x ** 3 + 2 * (sp.exp(x) - 1 - x - x ** 2 / 2 - x ** 3 / 6) + sp.exp(2 * x + x ** 2) - 1 - 2 * x - 3 * x ** 2 \
        - sp.Rational(10, 3) * x ** 3
    for v in ("1e-6", "1e-4", "1e-3", "9.99e-3"):
        exact = float(sp.N((d / x ** 3).subs(x, sp.Rational(v)), 30))
        assert exact <= float(rl.kappa(float(v))) <= exact + 1e-4


def test_second_order_within_its_row_bound():
    """Exact Poisson-binomial vs the truncated signed approximant: l1 <= row_error, and the bound is tight at small tau."""
    ratios = []
    for c, t, k in _cases():
        exact = _poisson_binomial(-np.expm1(-t * c), k)
        approx = _second_order(c, t, k)
        l1 = np.abs(exact - approx).sum()
        bound = float(rl.row_error(t, (c * c).sum(), (c ** 3).sum(), c.max()))
        assert np.all(np.isfinite(approx))
        if t * t * (c * c).sum() < 10:                 # coefficients <= e^{t^2 S_2}: rounding stays small
            assert abs(approx.sum() - 1) < 1e-12
        assert l1 <= bound + 1e-12, (t, k, l1, bound)
        if l1 > 1e-10:
            ratios.append(l1 / bound)
    assert max(ratios) > 0.9                      # not vacuous: the leading term is attained


@pytest.mark.parametrize("broken", ["poisson", "half_correction"])
def test_broken_approximants_break_the_row_bound(broken):
    """Poisson(t C^L), or the second-order term halved, leave the second-order bound: the test above would fail."""
    violated = 0
    for c, t, k in _cases(100, seed=1):
        exact = _poisson_binomial(-np.expm1(-t * c), k)
        approx = (rl.poisson_truncated(np.array([t * c.sum()]), k)[0] if broken == "poisson"
                  else _second_order(c, t, k, b_scale=0.5))
        bound = float(rl.row_error(t, (c * c).sum(), (c ** 3).sum(), c.max()))
        violated += np.abs(exact - approx).sum() > bound + 1e-12
    assert violated >= 30


def test_mixed_error_bounds_the_integral():
    """second_order_error >= the integral of row_error over [0, T] (fine trapezoid), and close to it where small."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        c = rng.exponential(1.0, 200) * 10 ** rng.uniform(-4, -1)
        s2, s3, cm, t_end = (c * c).sum(), (c ** 3).sum(), c.max(), rng.uniform(1, 14)
        ts = np.linspace(0, t_end, 40_001)
        integral = np.trapezoid(np.exp(-ts) * rl.row_error(ts, s2, s3, cm), ts)
        bound = float(rl.second_order_error(s2, s3, cm, t_end))
        assert integral <= bound
        if bound < 1e-3:                                # where the approximant is chosen
            assert bound <= 1.5 * integral


def test_power_sums_above_match_brute_force():
    rng = np.random.default_rng(5)
    for vocab in (1, 5, 50, 300):
        p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab))
        p[rng.random(vocab) < 0.2] = 0.0                                 # p = 0: ratio infinite, always above
        p /= max(p.sum(), 1e-300)
        tokens = rng.choice(vocab, size=max(1, vocab // 2), replace=False)
        rho_w = np.append(rng.uniform(0.01, 5, 7), q[tokens[0]] / p[tokens[0]] if p[tokens[0]] > 0 else 1.0)
        s1, s2 = rl.power_sums_above(p, q, tokens, rho_w)
        with np.errstate(divide="ignore"):
            rho_x = np.where(p[tokens] > 0, q[tokens] / np.where(p[tokens] > 0, p[tokens], 1), np.inf)
        for r, g1, g2 in zip(rho_w, s1, s2):
            c = np.where(rho_x > r, q[tokens] / r - p[tokens], 0.0)
            assert g1 == pytest.approx(c.sum(), rel=1e-9, abs=1e-15)
            assert g2 == pytest.approx((c * c).sum(), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("rho0", [1e-4, 1e-6])
def test_guarantee_holds_behind_huge_heavy_rates(rho0):
    """A winner with tiny q/p (heavy rates ~ 1/rho0): the light sums must be added up from the light
    rates, not as totals minus the heavy ones (which cancelled to 0 and broke the guarantee)."""
    from chansim.sampling.races import rank_distribution_exact
    from chansim.theory.rankbound import bounded_rank_law

    vocab = 12
    p, q = np.zeros(vocab), np.zeros(vocab)
    p[0], p[1], p[2] = 0.5, 0.01, 0.01
    p[3:] = (1 - p[:3].sum()) / 9
    q[0] = p[0] * rho0
    q[3:] = (p[3:] + np.linspace(0.005, 0.02, 9)) * rho0
    q[1] = q[2] = (1 - q[0] - q[3:].sum()) / 2
    exact = rank_distribution_exact(p, q)
    b = bounded_rank_law(p, q, max_rank=8, tol=1e-7, heavy=2, heavy_max=2)
    dev = np.abs(exact.probs[:8] - b.head).sum() + abs(exact.probs[8:].sum() - b.tail)
    assert b.parts["second_order"] > 0
    assert dev <= b.error, (dev, b.error)


def test_guarantee_holds_with_second_order_light_parts():
    """Small heavy sets on a Gaussian-logit pair at V = 1,000: most winners take the second-order approximant,
    and the law stays within its error of an all-heavy reference (no light part at all)."""
    from chansim.inputs.distributions import noisy_target_pair
    from chansim.theory.rankbound import bounded_rank_law

    p, q = noisy_target_pair(1000, 1.0, seed=0)
    ref = bounded_rank_law(p, q, max_rank=8, tol=1e-9, heavy=1000, heavy_max=1000, shortlist=1000, heavy_work=1 << 30)
    assert ref.parts["light"] == 0
    for kw in (dict(heavy=4, heavy_max=16, shortlist=64), dict(heavy=24, heavy_max=48, shortlist=256)):
        b = bounded_rank_law(p, q, max_rank=8, tol=1e-6, **kw)
        assert b.parts["second_order"] > b.parts["bins"] // 2
        dev = np.abs(b.head - ref.head).sum() + abs(b.tail - ref.tail)
        assert dev <= b.error + ref.error, (kw, dev, b.error)


def test_narrow_pass_charges_second_order_rows():
    """Rows with a signed light part kept at width K' move the vector by at most the charged narrow error."""
    from dataclasses import replace

    from chansim.theory.rank_heavy import HeavySets
    from chansim.theory.rankbound import _accumulate_rows

    rng = np.random.default_rng(6)
    n, k = 30, 24
    light = rng.exponential(2.0, n)
    cmax = rng.uniform(0.05, 0.4, n) * light
    heavy = HeavySets.single(rng.exponential(0.5, (n, 4)), light)
    heavy = replace(heavy, light_sq=cmax * light, light_cube=cmax ** 2 * light, light_cmax=cmax,
                    second=np.ones(n, dtype=bool))
    t, y = rng.exponential(1.0, 3000), rng.integers(0, n, 3000)
    weight = rng.uniform(0, 1, 3000) / 3000
    full, _, _ = _accumulate_rows(np.zeros(k + 1), t, y, weight, heavy, k, 0, 0.0)
    kept, err, wide = _accumulate_rows(np.zeros(k + 1), t, y, weight, heavy, k, 4, np.inf)
    assert wide == 0 and np.abs(full - kept).sum() <= err + 1e-12
