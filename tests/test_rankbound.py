"""Guaranteed rank law at large V (chansim/theory/rankbound.py, docs/theory.md §5)."""
import math

import numpy as np
import pytest

from chansim.inputs.distributions import dirichlet_pair, softmax
from chansim.sampling.races import er_acceptance, rank_distribution_exact, sample_ranks
from chansim.theory.bound_columns import bound_columns, guaranteed_bound
from chansim.theory.rankbound import bounded_rank_law, entropy_continuity_bound, rank_entropy_interval
from chansim.theory.ranklaw import law_from_probs, rank_law


def _exact_pairs():
    rng = np.random.default_rng(11)
    for vocab in (2, 3, 5, 8, 12):
        for conc in (0.3, 1.0, 3.0):
            p, q = rng.dirichlet(np.full(vocab, conc)), rng.dirichlet(np.full(vocab, conc))
            yield p, q
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.0, 0.3, 0.3, 0.4])                     # q = 0 where p > 0, and p = 0 where q > 0
    yield p, q


@pytest.mark.parametrize("max_rank", [1, 3, 64])
def test_guaranteed_error_contains_exact_law(max_rank):
    """The l1 guarantee contains the exact law (adaptive quadrature, error ~1e-12), and H(R) is inside its interval."""
    for p, q in _exact_pairs():
        ex = rank_distribution_exact(p, q)
        b = bounded_rank_law(p, q, max_rank=max_rank, tol=1e-7)
        k = len(b.head)
        dev = np.abs(ex.probs[:k] - b.head).sum() + abs(ex.probs[k:].sum() - b.tail)
        assert dev <= b.error + 1e-11, (len(p), max_rank, dev, b.error)
        assert abs(b.never - ex.never) < 1e-15
        assert abs(b.head[0] - float(er_acceptance(p, q))) < 1e-15
        lo, hi = rank_entropy_interval(b.head, b.tail, b.never, b.error, b.mean_rank_bound, len(p) - k)
        assert lo - 1e-10 <= ex.entropy() <= hi + 1e-10


def test_small_heavy_sets_still_bound_the_truth():
    """Few heavy competitors and a short shortlist: large but still valid error (the light-part bound works)."""
    rng = np.random.default_rng(3)
    for vocab in (20, 40):
        p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab))
        ex = rank_distribution_exact(p, q)
        b = bounded_rank_law(p, q, max_rank=8, heavy=2, heavy_max=4, shortlist=6, tol=1e-7)
        dev = np.abs(ex.probs[:8] - b.head).sum() + abs(ex.probs[8:].sum() - b.tail)
        assert b.parts["light"] > 1e-4                     # the approximation is really exercised
        assert dev <= b.error


def test_broken_light_bound_is_caught():
    """A deliberately broken variant (light error dropped) underestimates the error: the check above would fail."""
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.ones(40)), rng.dirichlet(np.ones(40))
    ex = rank_distribution_exact(p, q)
    b = bounded_rank_law(p, q, max_rank=8, heavy=2, heavy_max=4, shortlist=6, tol=1e-7)
    dev = np.abs(ex.probs[:8] - b.head).sum() + abs(ex.probs[8:].sum() - b.tail)
    assert dev > b.error - b.parts["light"]


@pytest.mark.parametrize("vocab", [1000, pytest.param(32768, marks=pytest.mark.slow)])
def test_large_vocab_against_long_monte_carlo(vocab):
    """V = 1,000 and 32,768: a_1..a_8 within error + 5 sigma of a long Monte Carlo."""
    rng = np.random.default_rng(5)
    if True:
        z = rng.gumbel(size=vocab)
        z[:10] += np.linspace(9, 4, 10)
        p, q = softmax(z), softmax(z + 0.4 * rng.standard_normal(vocab))
        b = bounded_rank_law(p, q, max_rank=8, tol=1e-5)
        trials = 100_000 if vocab <= 1000 else 40_000
        ranks = sample_ranks(p, q, trials, np.random.default_rng(1))
        freq = np.bincount(ranks, minlength=10)[1:9] / trials
        se = np.sqrt(np.maximum(freq * (1 - freq), 1 / trials) / trials)
        assert np.all(np.abs(freq - b.head) <= b.error + 5 * se), (vocab, freq, b.head, b.error)
        assert b.error < 1e-4


def test_rank_law_bounded_method_and_interval():
    p, q = dirichlet_pair(100, 1.0, 0.5, seed=2)
    law = rank_law(p, q, method="bounded", max_rank=100, tol=1e-6)
    ex = rank_distribution_exact(p, q)
    assert law.guaranteed and not law.exact
    assert law.entropy_ci[0] <= ex.entropy() <= law.entropy_ci[1]
    assert abs(law.alpha - float(er_acceptance(p, q))) < 1e-14
    with pytest.raises(ValueError, match="method"):
        rank_law(p, q, method="nope")


def test_entropy_continuity_condition():
    """§5: delta ln(n-1) + h(delta) only for delta <= min(1/2, 1 - 1/n); else ln n."""
    assert entropy_continuity_bound(0.6, 100) == math.log(100)
    assert entropy_continuity_bound(0.4, 2) == pytest.approx(-0.4 * math.log(0.4) - 0.6 * math.log(0.6))   # ln(n-1) = 0
    assert entropy_continuity_bound(0.7, 2) == math.log(2)          # delta > 1 - 1/n
    d = 0.1
    assert entropy_continuity_bound(d, 10) == pytest.approx(d * math.log(9) - d * math.log(d) - (1 - d) * math.log(1 - d))
    with pytest.raises(ValueError):
        entropy_continuity_bound(-0.1, 10)
    rng = np.random.default_rng(0)
    for _ in range(200):                                            # the bound holds on random pairs
        n = int(rng.integers(2, 8))
        a, b = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
        tv = 0.5 * np.abs(a - b).sum()
        ha, hb = (-(x[x > 0] * np.log(x[x > 0])).sum() for x in (a, b))
        assert abs(ha - hb) <= entropy_continuity_bound(tv, n) + 1e-12


def test_guaranteed_bound_edge_cases():
    """q = 0 where p > 0 caps the bound at 1/nu; disjoint supports give exactly 1."""
    disjoint = rank_law([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5])
    assert guaranteed_bound([1, 10, 1000], disjoint, disjoint.support) == [1.0, 1.0, 1.0]
    law = rank_law([0.4, 0.4, 0.2], [0.5, 0.5, 0.0])
    cols = bound_columns([1, 4, 1000], law, law.support)
    assert all(b <= 1 / law.never + 1e-12 for b in cols["ersd_bound"])
    assert cols["asymptote"][0] is None                              # 1/nu = 5 > k + 1 = 2
    same = law_from_probs([1.0])
    assert bound_columns([3], same, 1)["ersd_bound"] == [4.0]


def _zipf_shift(vocab=1000):
    r = np.arange(1, vocab + 1.0)
    p, q = r ** -1.1, (r + 2.0) ** -1.1
    return p / p.sum(), q / q.sum()


def test_bound_report_ersd_agrees_with_simulate_at_v1000():
    """Issue 10: chain:4 and batch:4 ERSD values of `chansim bound` inside `chansim simulate`'s interval."""
    from chansim.simulate import simulate
    from chansim.theory.report import speedup_report

    p, q = _zipf_shift()
    for tree, spec in (("chain", "chain:4"), ("batch", "batch:4")):
        rep = speedup_report(p, q, k=[4], methods=["ersd"], tree=tree, pfr=False)
        value = rep.methods["ersd"]["tokens_per_call"][0]
        est = simulate("ersd", spec, p, q, calls=20_000, seed=3).tokens_per_call
        z = (value - est.mean) / est.std_error
        assert abs(z) < 5.5, (tree, value, est.mean, est.std_error)
    d = rep.to_dict()
    assert {"rank_entropy_interval", "rank_law_error", "rank_entropy_ci", "ersd_bound", "asymptote"} <= set(d)
    lo, hi = d["rank_entropy_interval"]
    assert lo <= d["rank_entropy_nats"] <= hi and hi - lo < 0.01
    assert all(b >= v for b, v in zip(d["ersd_bound"]["value"], d["methods"]["ersd"]["tokens_per_call"]))


def _exit_pairs(n_per_family):
    from chansim.inputs.distributions import FAMILIES
    rng = np.random.default_rng(0)
    for fam in ("dirichlet", "zipf", "noisy"):
        for i in range(n_per_family):
            vocab = int(rng.integers(3, 9))
            pair = FAMILIES[fam](vocab, [0.3, 0.6, 1.0][i % 3], None, 1000 * i + vocab)
            yield pair.target_probs, pair.draft_probs


def _check_exit_bound(n_per_family):
    from chansim.theory.bound_columns import exit_entropy_bound
    from chansim.theory.optimal import top_products_sums
    ks = [1, 2, 4, 10, 32, 100, 1000, 10**4, 10**5, 10**6]
    checked = 0
    for p, q in _exit_pairs(n_per_family):
        law = rank_law(p, q)
        if law.entropy <= 0:
            continue
        opt = 1 + np.asarray(top_products_sums(law.probs, ks))
        bound = np.array([exit_entropy_bound(k, law, law.support) for k in ks])
        paper = (np.log(np.array(ks) + 1.0) + math.log(law.support)) / law.entropy_ci[0]
        assert np.all(opt <= bound + 1e-9), (p, q, opt, bound)
        assert np.all(bound <= paper + 1e-9)                 # never weaker than Theorem 2 at H_low
        checked += 1
    return checked


def test_exit_entropy_bound_few_pairs():
    assert _check_exit_bound(8) >= 20


@pytest.mark.slow
def test_exit_entropy_bound_200_pairs():
    """§10: zero violations against the exact optimum on >= 200 pairs, k up to 10^6."""
    assert _check_exit_bound(70) >= 180             # p = q pairs (H(R) = 0 exactly) are skipped


def test_max_entropy_capped():
    from chansim.theory.bound_columns import max_entropy_capped
    assert max_entropy_capped([0.2, 0.2]) == -math.inf                # infeasible
    assert max_entropy_capped([0.1, 1.0], [1, 1]) == pytest.approx(-0.1 * math.log(0.1) - 0.9 * math.log(0.9))
    assert max_entropy_capped([1.0], [4]) == pytest.approx(math.log(4))


def test_narrow_first_pass_keeps_guarantee():
    """Rows finished at width K' < K (mass beyond K' charged as 'narrow' error) stay within the l1 guarantee."""
    from chansim.theory import rank_law
    from chansim.theory.rank_heavy import HeavySets
    from chansim.theory.rankbound import _accumulate_rows, bounded_rank_law

    rng = np.random.default_rng(11)
    vocab = 40
    z = 2.0 * rng.standard_normal(vocab)
    p = np.exp(z) / np.exp(z).sum()
    w = z + 1.5 * rng.standard_normal(vocab)
    q = np.exp(w) / np.exp(w).sum()
    exact = rank_law(p, q, method="exact")
    k = 24
    for narrow in (0, 4, 8):
        b = bounded_rank_law(p, q, max_rank=k, tol=1e-6, narrow=narrow)
        l1 = np.abs(b.head - exact.probs[:k]).sum() + abs(b.tail - exact.probs[k:].sum())
        assert l1 <= b.error, (narrow, l1, b.error)
        if narrow:
            assert b.parts["narrow"] > 0 and b.parts["wide_rows"] < b.parts["rows"]
    # every row kept at width 4: the computed vector moves by at most the charged error, and
    # the move is real (an uncharged narrow pass, error 0, would be caught)
    heavy_c, light = rng.exponential(0.5, (30, 6)), rng.exponential(0.5, 30)
    t, y = rng.exponential(1.0, 3000), rng.integers(0, 30, 3000)
    weight = rng.uniform(0, 1, 3000) / 3000
    heavy = HeavySets.single(heavy_c, light)
    full, err0, _ = _accumulate_rows(np.zeros(k + 1), t, y, weight, heavy, k, 0, 0.0)
    kept, err, wide = _accumulate_rows(np.zeros(k + 1), t, y, weight, heavy, k, 4, np.inf)
    moved = np.abs(full - kept).sum()
    assert err0 == 0 and wide == 0 and err > 1e-3
    assert 0.1 * err < moved <= err + 1e-12


def _hard_pair(vocab=2048):
    """Confident target, flat draft: thousands of competitors with small rates behind the top token."""
    from chansim.inputs.distributions import softmax
    rng = np.random.default_rng(0)
    z = rng.standard_normal(vocab)
    z[0] += 9
    return softmax(z), softmax(0.2 * z + 0.5 * rng.standard_normal(vocab))


def test_error_meets_tol_on_a_hard_pair():
    """Per-winner heavy sets (rank_heavy) bring the guaranteed error under tol where a fixed cap of 192 could not."""
    p, q = _hard_pair()
    capped = bounded_rank_law(p, q, max_rank=8, tol=1e-3, heavy_max=192)
    assert capped.error > 1.0                              # the old fixed ladder: light part dominates
    b = bounded_rank_law(p, q, max_rank=8, tol=1e-3)
    assert b.error <= 1e-3 and b.parts["light"] <= 1e-3 / 6
    trials = 100_000
    ranks = sample_ranks(p, q, trials, np.random.default_rng(2))
    freq = np.bincount(ranks, minlength=10)[1:9] / trials
    se = np.sqrt(np.maximum(freq * (1 - freq), 1 / trials) / trials)
    assert np.all(np.abs(freq - b.head) <= b.error + 5 * se), (freq, b.head, b.error)


def test_full_vocabulary_pass_contains_exact_law():
    """A shortlist too short for the budget: the full-vocabulary pass is used and the guarantee holds, <= tol."""
    rng = np.random.default_rng(3)
    for vocab in (20, 40):
        p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab))
        ex = rank_distribution_exact(p, q)
        b = bounded_rank_law(p, q, max_rank=8, heavy=2, shortlist=6, tol=1e-7)
        dev = np.abs(ex.probs[:8] - b.head).sum() + abs(ex.probs[8:].sum() - b.tail)
        assert b.parts["full_pass"] > 0
        assert dev <= b.error <= 1e-7


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA device"))])
def test_torch_recursion_matches_numpy(device):
    """The torch path of the recursion (device='cpu' / 'cuda') gives the numpy law to rounding."""
    pytest.importorskip("torch")
    p, q = _hard_pair(1024)
    ref = bounded_rank_law(p, q, max_rank=8, tol=1e-3)
    got = bounded_rank_law(p, q, max_rank=8, tol=1e-3, device=device)
    assert np.abs(ref.head - got.head).max() < 1e-12 and abs(ref.tail - got.tail) < 1e-12
    assert ref.error == pytest.approx(got.error, rel=1e-9, abs=1e-15)
