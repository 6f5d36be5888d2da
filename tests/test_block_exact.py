"""Block verification's tokens per call by Spitzer's identity (chansim.verify.block_exact).

Tiers: exact rationals against the definition (every sequence of drafts enumerated), floats
against the existing law-of-w enumeration (block_mean_weights), the grid's guaranteed interval
against exact overlaps, and the real-V value against simulation (|z| < 3.5).  Two broken
variants must be caught: sd's overlaps c_n = beta^n, and the recursion without its 1/n.
"""
import itertools
from fractions import Fraction

import numpy as np
import pytest

from chansim.inputs.distributions import noisy_target_pair
from chansim.simulate import simulate
from chansim.verify.block import Block, block_mean_weights
from chansim.verify.block_exact import (block_tokens, product_overlap_bounds, product_overlaps_exact,
                                        spitzer_weights)
from conftest import random_small_pairs


def _rational_pair(rng, vocab):
    """A random pair of rational laws (some zeros), exactly normalised."""
    a = rng.integers(0, 6, vocab)
    b = rng.integers(0, 6, vocab)
    a[0] += 1
    b[-1] += 1
    return [Fraction(int(x), int(a.sum())) for x in a], [Fraction(int(x), int(b.sum())) for x in b]


def _mean_weights_by_definition(p, q, gamma):
    """E[w_i] from w_i = min(1, w_{i-1} p(X_i)/q(X_i)), every draft sequence enumerated (Fractions)."""
    out = []
    for i in range(1, gamma + 1):
        total = Fraction(0)
        for seq in itertools.product(range(len(p)), repeat=i):
            prob, w = Fraction(1), Fraction(1)
            for x in seq:
                prob *= q[x]
                if q[x] == 0:
                    break
                w = min(Fraction(1), w * p[x] / q[x])
            total += prob * w if prob else 0
        out.append(total)
    return out


def _broken_no_over_n(overlaps, gamma):
    """Bug: f_n = sum_k c_k f_{n-k} (the 1/n of the exponential's derivative forgotten)."""
    f = [1.0]
    for n in range(1, gamma + 1):
        f.append(sum(overlaps[k - 1] * f[n - k] for k in range(1, n + 1)))
    return f[1:]


def test_spitzer_identity_is_exact_on_rationals():
    rng = np.random.default_rng(7)
    for vocab, gamma in [(2, 4), (3, 4), (4, 3), (5, 3)]:
        for _ in range(3):
            p, q = _rational_pair(rng, vocab)
            exact = _mean_weights_by_definition(p, q, gamma)
            assert spitzer_weights(product_overlaps_exact(p, q, gamma)) == exact


def test_spitzer_matches_law_of_w_enumeration():
    for p, q in random_small_pairs(40, seed=11):
        gamma = 5
        ref = 1 + np.cumsum(block_mean_weights(p, q, gamma))
        bt = block_tokens(p, q, gamma)
        assert bt.exact and np.allclose(bt.value, ref, atol=1e-12, rtol=0)


def test_broken_overlaps_are_caught():
    """sd's overlaps beta^n give sd's beta^i (block > sd on these pairs); the recursion without 1/n is off too."""
    caught_sd = caught_n = 0
    for p, q in random_small_pairs(30, seed=3):
        gamma = 4
        c = product_overlaps_exact(p, q, gamma)
        ref = block_mean_weights(p, q, gamma)
        beta = c[0]
        sd_like = spitzer_weights([beta ** n for n in range(1, gamma + 1)])
        assert np.allclose(sd_like, [beta ** i for i in range(1, gamma + 1)])
        caught_sd += not np.allclose(sd_like, ref, atol=1e-9)
        caught_n += not np.allclose(_broken_no_over_n(c, gamma), ref, atol=1e-9)
    assert caught_sd >= 25 and caught_n == 30


def test_grid_bounds_contain_exact_overlaps():
    for p, q in random_small_pairs(25, seed=5):
        lo, hi = product_overlap_bounds(p, q, 5, step=2.0**-9)
        c = np.array(product_overlaps_exact(p, q, 5))
        assert np.all(lo <= c + 1e-14) and np.all(c <= hi + 1e-14)
        assert np.max(hi - lo) < 1e-3
    p, q = next(iter(random_small_pairs(1, seed=9)))                # force the grid: interval around the enumeration
    bt = block_tokens(p, q, 6, tol=1e-7, max_multisets=0)
    ref = 1 + np.cumsum(block_mean_weights(p, q, 6))
    assert bt.method == "grid" and bt.error <= 1e-7
    assert np.all(bt.low <= ref + 1e-12) and np.all(ref <= bt.high + 1e-12)


def test_long_chains_and_errors():
    p, q = np.array([1 / 3, 2 / 3]), np.array([2 / 3, 1 / 3])
    bt = block_tokens(p, q, 8)
    v, lo, hi = bt.at(10**6)                                  # past the computed depths: up to the infinite chain
    infinite = np.exp(sum(c / n for n, c in enumerate(product_overlaps_exact(p, q, 400), 1)))   # exp(sum c_n / n)
    assert lo == pytest.approx(bt.value[-1]) and lo <= v <= hi and lo <= infinite <= hi
    assert block_tokens(p, q, 400).value[-1] == pytest.approx(infinite, abs=1e-9)
    with pytest.raises(ValueError, match="gamma"):
        block_tokens(p, q, 0)


@pytest.mark.parametrize("vocab", [32768])
def test_real_vocabulary_value_agrees_with_simulation(vocab):
    """V = 32,768, chain:4: the guaranteed value against the batched engine (|z| < 3.5), and sd's value is not."""
    p, q = noisy_target_pair(vocab, noise=1.0, seed=0)
    bt = block_tokens(p, q, 4)
    assert bt.method == "grid" and bt.error <= 1e-6
    res = simulate("block", "chain:4", p, q, calls=20_000, seed=1)
    est = res.tokens_per_call
    z = (est.mean - bt.value[-1]) / est.std_error
    assert abs(z) < 3.5, (est.mean, bt.value[-1], z)
    beta = float(np.minimum(p, q).sum())
    sd_value = (1 - beta**5) / (1 - beta)
    assert abs((est.mean - sd_value) / est.std_error) > 3.5
    assert Block().tree_tokens(type("T", (), {"size": 4})(), p, q) == pytest.approx(bt.value[-1], abs=1e-6)
