"""Exponential races: winners, top-m, ranks, keyed noise, alpha_ER and the rank law.

Statistical tests use fixed seeds and accept when a chi-square / KS p-value exceeds
1e-7 (or an interval at confidence 1 - 1e-7), so a correct implementation fails far
less than once in 10^6 runs.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from chansim.sampling import races as R
from chansim.sampling.races import wilson_interval
from chansim.theory import rank_law

ALPHA = 1e-7
R6 = np.array([0.05, 0.1, 0.0, 0.2, 0.3, 0.35])


def chisquare_p(counts, probs):
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a zero-probability outcome occurred"
    expected = probs[keep] / probs[keep].sum() * counts.sum()
    return stats.chisquare(counts[keep], expected).pvalue


# ----------------------------------------------------------------------------- winners
def test_race_winner_is_distributed_as_r_numpy_generator():
    rng = np.random.default_rng(2024)
    noise = rng.standard_exponential((300_000, 6))
    winners = R.race_winner(noise, R6)
    assert chisquare_p(np.bincount(winners, minlength=6), R6) > ALPHA


def test_race_winner_is_distributed_as_r_keyed_noise():
    noise = R.keyed_exponential(17, np.arange(300_000)[:, None], np.arange(6))
    winners = R.race_winner(noise, R6)
    assert chisquare_p(np.bincount(winners, minlength=6), R6) > ALPHA


def test_race_top_m_is_sampling_without_replacement():
    r = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    rng = np.random.default_rng(7)
    top = R.race_top_m(rng.standard_exponential((200_000, 5)), r, 2)        # [trials, 2]
    assert np.all(top[:, 0] != top[:, 1])
    pairs = list(itertools.permutations(range(5), 2))
    exact = np.array([r[a] * r[b] / (1 - r[a]) for a, b in pairs])
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    index = {pair: i for i, pair in enumerate(pairs)}
    counts = np.bincount([index[(a, b)] for a, b in top.tolist()], minlength=len(pairs))
    assert chisquare_p(counts, exact) > ALPHA


def test_race_top_m_errors_and_order():
    noise = np.array([[1.0, 0.5, 2.0, 0.1]])
    probs = np.array([0.25, 0.25, 0.5, 0.0])
    assert R.race_top_m(noise, probs, 3).tolist() == [[1, 0, 2]]          # times 4, 2, 4 -> stable: 1, 0, 2
    with pytest.raises(ValueError, match="exceeds the number of tokens with positive probability"):
        R.race_top_m(noise, probs, 4)
    with pytest.raises(ValueError, match="exceeds the vocabulary size"):
        R.race_top_m(noise, probs, 5)
    with pytest.raises(ValueError, match="positive integer"):
        R.race_top_m(noise, probs, 0)


def test_race_rank_hand_cases():
    noise = np.array([1.0, 0.5, 2.0, 0.3])
    probs = np.array([0.25, 0.25, 0.5, 0.0])              # times 4, 2, 4, inf
    assert R.race_rank(noise, probs, np.array(1)) == 1
    assert R.race_rank(noise, probs, np.array(0)) == 2     # tie with token 2 is not "before"
    assert R.race_rank(noise, probs, np.array(2)) == 2
    assert R.race_rank(noise, probs, np.array(3)) == 5     # r = 0: never arrives -> V + 1
    batch = np.stack([noise, noise[::-1]])
    assert R.race_rank(batch, probs, np.array([1, 1])).tolist() == [1, 3]


# ----------------------------------------------------------------------------- keyed noise
SEEDS = [0, 1, 123456789, 2**40, 2**63 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_keyed_noise_bit_identical_numpy_torch(seed):
    torch = pytest.importorskip("torch")
    positions = np.array([0, 1, 2, 1000, 2**20 + 3, 2**31 - 1, 2**31, 2**32 - 1])[:, None]
    tokens = np.concatenate([np.arange(64), np.arange(2**17 - 64, 2**17)])
    ref = R.keyed_exponential(seed, positions, tokens)
    got = R.keyed_exponential(seed, torch.as_tensor(positions), torch.as_tensor(tokens))
    assert got.dtype == torch.float64
    assert np.array_equal(ref, got.numpy())
    assert np.array_equal(R.keyed_uniform(seed, positions, tokens),
                          R.keyed_uniform(seed, torch.as_tensor(positions), torch.as_tensor(tokens)).numpy())


@pytest.mark.parametrize("seed", [0, 2**40])
def test_keyed_noise_bit_identical_on_cuda(seed):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    positions = np.arange(0, 2**31, 2**21)[:, None]
    tokens = np.arange(0, 2**17, 97)
    ref = R.keyed_exponential(seed, positions, tokens)
    dev = torch.device("cuda")
    got = R.keyed_exponential(seed, torch.as_tensor(positions, device=dev), torch.as_tensor(tokens, device=dev))
    assert got.device.type == "cuda"
    assert np.array_equal(ref, got.cpu().numpy())


def test_keyed_noise_is_exp1_and_deterministic():
    e = R.keyed_exponential(99, np.arange(400)[:, None], np.arange(500)).ravel()
    assert stats.kstest(e, "expon").pvalue > ALPHA
    assert np.array_equal(e, R.keyed_exponential(99, np.arange(400)[:, None], np.arange(500)).ravel())
    assert not np.array_equal(e, R.keyed_exponential(100, np.arange(400)[:, None], np.arange(500)).ravel())
    u = R.keyed_uniform(3, np.arange(2000)[:, None], np.arange(200))
    assert np.all((u > 0) & (u < 1))
    assert len(np.unique(u[0])) == u.shape[1]              # distinct tokens never share a value


def test_keyed_noise_independent_across_positions_and_tokens():
    e = R.keyed_exponential(5, np.arange(1000)[:, None], np.arange(1000))      # [positions, tokens]
    bound = 6.0 / np.sqrt(e.size)                           # ~6 sigma for a correlation of 1e6 pairs
    for a, b in [(e[:-1], e[1:]), (e[:, :-1], e[:, 1:]), (e[:-1, :-1], e[1:, 1:])]:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < bound
    # seeds: same (position, token) under neighbouring seeds are uncorrelated too
    f = R.keyed_exponential(6, np.arange(1000)[:, None], np.arange(1000))
    assert abs(np.corrcoef(e.ravel(), f.ravel())[0, 1]) < bound


def test_keyed_noise_rejects_bad_keys():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        R.keyed_uniform(-1, 0, np.arange(3))
    with pytest.raises(ValueError, match="positions must lie in"):
        R.keyed_uniform(0, -1, np.arange(3))
    with pytest.raises(ValueError, match="token ids must lie in"):
        R.keyed_uniform(0, 0, np.array([2**32]))


def test_portable_log_matches_numpy():
    x = np.concatenate([np.geomspace(1e-300, 1.0, 5000), np.random.default_rng(0).random(5000)])
    np.testing.assert_allclose(R.portable_log(x), np.log(x), rtol=1e-15, atol=1e-16)


# ----------------------------------------------------------------------------- alpha_ER
def _random_pairs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    for i in range(n):
        vocab = int(rng.integers(2, 40))
        conc = rng.choice([0.05, 0.3, 1.0, 5.0])
        p, q = rng.dirichlet(np.full(vocab, conc)), rng.dirichlet(np.full(vocab, conc))
        if i % 4 == 1:                                      # zeros in p and/or q
            p[rng.integers(vocab)] = 0.0
            q[rng.integers(vocab)] = 0.0
        if i % 4 == 2 and vocab >= 4:                       # ties in q/p
            q[:4] = p[:4] * (q[:4].sum() / p[:4].sum())
        if i % 4 == 3:                                      # exact repeated values
            p = np.round(p * 8) + 1.0
            q = np.round(q * 8) + (rng.random(vocab) < 0.5)
        p, q = p / p.sum(), q / q.sum()
        yield p, q


def test_er_acceptance_equals_quadratic_formula():
    for p, q in _random_pairs():
        fast = float(R.er_acceptance(p, q))
        assert fast == pytest.approx(R.er_acceptance_quadratic(p, q), abs=1e-12)
        assert fast == pytest.approx(R.er_acceptance_quadratic(p, q, chunk=3), abs=1e-12)


def test_er_acceptance_bounds_and_identity():
    for p, q in _random_pairs(seed=1):
        a = float(R.er_acceptance(p, q))
        with np.errstate(invalid="ignore"):
            lower = np.where(p + q > 0, p * q / (p + q), 0.0).sum()
        assert lower - 1e-12 <= a <= 1 + 1e-12
        assert float(R.er_acceptance(p, p)) == pytest.approx(1.0, abs=1e-12)


def test_er_acceptance_batched():
    pairs = list(_random_pairs(seed=2, n=10))
    p = np.stack([a for a, _ in pairs[:1]] * 3)
    q = np.stack([b for _, b in pairs[:1]] * 3)
    np.testing.assert_allclose(R.er_acceptance(p, q), float(R.er_acceptance(p[0], q[0])), rtol=0, atol=1e-15)


def test_er_acceptance_within_monte_carlo_interval():
    rng = np.random.default_rng(11)
    for _ in range(3):
        p, q = rng.dirichlet(np.ones(20)), rng.dirichlet(np.ones(20))
        trials = 200_000
        ranks = R.sample_ranks(p, q, trials, rng)
        low, high = wilson_interval(np.count_nonzero(ranks == 1), trials, 1 - ALPHA)
        assert low <= float(R.er_acceptance(p, q)) <= high


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=12))
def test_er_acceptance_property(weights):
    w = np.array(weights)
    if w[:, 0].sum() < 1e-3 or w[:, 1].sum() < 1e-3:
        return
    p, q = w[:, 0] / w[:, 0].sum(), w[:, 1] / w[:, 1].sum()
    a = float(R.er_acceptance(p, q))
    assert -1e-12 <= a <= 1 + 1e-12
    assert a == pytest.approx(R.er_acceptance_quadratic(p, q), abs=1e-12)


# ----------------------------------------------------------------------------- rank law
def test_sample_ranks_chunking_does_not_change_the_stream():
    rng_p = np.random.default_rng(0)
    p, q = rng_p.dirichlet(np.ones(30)), rng_p.dirichlet(np.ones(30))
    a = R.sample_ranks(p, q, 1000, np.random.default_rng(4), chunk=7)
    b = R.sample_ranks(p, q, 1000, np.random.default_rng(4), chunk=1000)
    c = R.sample_ranks(p, q, 1000, np.random.default_rng(4), chunk=2)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert a.min() >= 1 and a.max() <= 30


def test_sample_ranks_matches_direct_race():
    rng = np.random.default_rng(8)
    p, q = rng.dirichlet(np.ones(12)), rng.dirichlet(np.ones(12))
    ranks = R.sample_ranks(p, q, 500, np.random.default_rng(9))
    noise = np.random.default_rng(9).standard_exponential((500, 12))
    direct = R.race_rank(noise, q, R.race_winner(noise, p))
    assert np.array_equal(ranks, direct)


def test_rank_distribution_exact_vs_monte_carlo():
    rng = np.random.default_rng(21)
    for conc in (0.3, 1.0):
        p, q = rng.dirichlet(np.full(8, conc)), rng.dirichlet(np.full(8, conc))
        exact = R.rank_distribution_exact(p, q)
        assert exact.exact and exact.never == 0.0
        assert exact.probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert exact.probs[0] == pytest.approx(float(R.er_acceptance(p, q)), abs=1e-9)
        mc = R.rank_distribution_mc(p, q, trials=200_000, seed=3, confidence=1 - ALPHA)
        assert not mc.exact and mc.trials == 200_000
        assert np.all(mc.ci_low <= exact.probs + 1e-12) and np.all(exact.probs <= mc.ci_high + 1e-12)


def test_rank_distribution_never_mass_when_q_zero():
    p = np.array([0.4, 0.3, 0.2, 0.1])
    q = np.array([0.5, 0.5, 0.0, 0.0])
    exact = R.rank_distribution_exact(p, q)
    assert exact.never == pytest.approx(0.3, abs=1e-15)
    assert exact.probs.sum() + exact.never == pytest.approx(1.0, abs=1e-9)
    assert exact.probs[0] == pytest.approx(float(R.er_acceptance(p, q)), abs=1e-9)
    mc = R.rank_distribution_mc(p, q, trials=100_000, seed=1)
    assert abs(mc.never - 0.3) < 5.33 * np.sqrt(0.21 / 100_000)            # 1e-7 two-sided
    assert R.rank_distribution_exact(p, p).probs[0] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="method must be"):          # the one entry point names its methods
        rank_law(p, q, method="magic")
