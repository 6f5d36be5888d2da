"""The O(m log V) race / residual samplers (chansim.sampling.race_sampling) against brute force.

Two-sample chi-square tests (fixed seeds, p-value threshold 1e-9) compare the joint law
of everything a node visit produces — the draft race's first M arrivals and the target
race's winner; RSD's accepted index and token — with the full-V samplers.  A deliberately
wrong variant (the target race of the tokens not yet arrived
without its offsets) is caught by the same test.
"""
import numpy as np
import pytest
from scipy import stats

from chansim.inputs.distributions import noisy_target_pair
from chansim.sampling.race_sampling import RaceTable
from chansim.simulate import simulate
from chansim.theory import expected_tokens
from chansim.inputs.trees import from_parents
from chansim.verify import RSD
from chansim.verify.base import NodeNoise

ALPHA = 1e-9
PAIRS = {
    "zeros": (np.array([0.5, 0.3, 0.2, 0.0, 0.0]), np.array([0.1, 0.0, 0.6, 0.3, 0.0])),
    "dense": (np.array([0.45, 0.25, 0.15, 0.1, 0.05]), np.array([0.05, 0.2, 0.3, 0.15, 0.3])),
}


def two_sample_pvalue(a, b) -> float:
    """Chi-square test that two samples of cell ids come from one law (cells with < 10 pooled)."""
    cells = np.union1d(a, b)
    ca = np.array([(a == c).sum() for c in cells])
    cb = np.array([(b == c).sum() for c in cells])
    small = (ca + cb) < 10
    if small.any():
        ca = np.append(ca[~small], ca[small].sum())
        cb = np.append(cb[~small], cb[small].sum())
    if len(ca) < 2:
        return 1.0
    return float(stats.chi2_contingency(np.stack([ca, cb]))[1])


def brute_race(p, q, n, count, rng):
    """Tokens of the first ``count`` q-race arrivals (-1 beyond q's support) and the p-race winner."""
    e = rng.standard_exponential((n, len(p)))
    with np.errstate(divide="ignore"):
        tq, tp = e / q, e / p
    ranked = np.argsort(tq, axis=1, kind="stable")[:, :count]
    ranked = np.where(np.isfinite(np.take_along_axis(tq, ranked, 1)), ranked, -1)
    return ranked, np.argmin(tp, axis=1)


def encode(cols, vocab):
    """One cell id per row of token columns (-1 allowed)."""
    cell = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        cell = cell * (vocab + 1) + (np.asarray(c) + 1)
    return cell


def fast_race(table, rows, count, rng, correct=True):
    pos, times = table.arrivals(rows, count, rng)
    winner, arrival = table.race_winner(rows, pos, times, rng, offsets=correct)
    drafts = table.tokens(rows, pos)
    if count:
        hit = np.where(arrival >= 0, drafts[np.arange(len(rows)), np.maximum(arrival, 0)], winner)
        assert np.array_equal(hit, winner)              # the arrival index points at the winner
    else:
        assert np.all(arrival == -1)
    return drafts, winner


def fast_vs_brute_pvalue(p, q, count, correct=True, n=30_000, table_cls=RaceTable):
    """Two-sample p-value of (first ``count`` arrivals, winner): table sampler (``table_cls``,
    a broken variant in the tests that must catch one) vs full-V races."""
    table = table_cls(p[None], q[None])
    drafts, winner = fast_race(table, np.zeros(n, dtype=np.int64), count, np.random.default_rng(1), correct=correct)
    ref_drafts, ref_winner = brute_race(p, q, n, count, np.random.default_rng(2))
    a = encode(list(drafts.T) + [winner], len(p))
    b = encode(list(ref_drafts.T) + [ref_winner], len(p))
    return two_sample_pvalue(a, b)


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("count", [0, 1, 3])
def test_race_matches_brute_force(pair, count):
    assert fast_vs_brute_pvalue(*PAIRS[pair], count) > ALPHA


def test_race_with_context_rows_matches_brute_force():
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.full(4, 0.7), size=3)
    Q = rng.dirichlet(np.full(4, 0.7), size=3)
    Q[1, 2] = 0.0
    Q[1] /= Q[1].sum()
    table = RaceTable(P, Q)
    n = 45_000
    rows = np.repeat(np.arange(3), n // 3)
    drafts, winner = fast_race(table, rows, 2, np.random.default_rng(4))
    ref = [brute_race(P[r], Q[r], n // 3, 2, np.random.default_rng(5 + r)) for r in range(3)]
    ref_drafts = np.concatenate([d for d, _ in ref])
    ref_winner = np.concatenate([w for _, w in ref])
    a = encode([rows] + list(drafts.T) + [winner], 4)
    b = encode([rows] + list(ref_drafts.T) + [ref_winner], 4)
    assert two_sample_pvalue(a, b) > ALPHA


def test_race_without_offsets_is_caught():
    assert fast_vs_brute_pvalue(*PAIRS["dense"], 2, correct=False) < ALPHA


class _HalvedHazard(RaceTable):
    """Deliberately wrong shortcut: Λ(t_first) halved (too small, so the shortcut declares a drafted winner
    too often; an overestimate would only send rows to the exact path)."""

    def _undrafted_hazard(self, t, t_m, n_target):
        return super()._undrafted_hazard(t, t_m, n_target) / 2


def test_winner_shortcut_with_wrong_hazard_is_caught():
    """The O(log V) "a drafted token surely wins" test (Λ(t_first) < U) must use the exact hazard."""
    assert fast_vs_brute_pvalue(*PAIRS["dense"], 3, table_cls=_HalvedHazard) < ALPHA


class _PrefixWithoutGaps(RaceTable):
    """Deliberately wrong prefix: the gaps ignore the mass already arrived (Exp(1)/Q_total each)."""

    def _distinct_prefix(self, count, rng, pos, times, q_arr, block=1 << 20):
        found = super()._distinct_prefix(count, rng, pos, times, q_arr, block)
        valid = np.arange(count)[None, :] < found[:, None]
        redrawn = np.cumsum(rng.standard_exponential(times.shape), axis=1) / self.q_cum[0, -1]
        times[:] = np.where(valid, redrawn, times)
        return found


def test_vectorised_prefix_with_wrong_gaps_is_caught():
    """The arrival times of the prefix matter (they set the target race's offsets): a wrong gap law is caught."""
    assert fast_vs_brute_pvalue(*PAIRS["dense"], 3, table_cls=_PrefixWithoutGaps) < ALPHA


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("m", [1, 3, 4])
def test_rsd_rounds_match_full_vocabulary_rule(pair, m):
    """Same drafts law; (drafts, accepted, token) of the table rule vs the renormalising rule."""
    p, q = PAIRS[pair]
    n = 30_000
    table = RaceTable(p[None], q[None])
    out = []
    for seed, use_table in ((6, True), (7, False)):
        rng = np.random.default_rng(seed)
        rows = np.zeros(n, dtype=np.int64)
        noise = NodeNoise(rng, n, None, table=table, table_rows=rows)
        drafts = RSD().draft(q[None], np.arange(1, m + 1), noise)
        if not use_table:
            noise = NodeNoise(rng, n, None)
        acc, tok = RSD().verify(p[None], q[None], drafts, noise)
        assert np.all(tok >= 0) and np.all(p[tok] > 0)
        out.append(encode(list(drafts.T) + [acc, tok], len(p)))
    assert two_sample_pvalue(*out) > ALPHA


@pytest.mark.parametrize("method,tree", [("ersd", "batch:4"), ("ersd", "branch:3,2"), ("rsd", "batch:4"),
                                         ("ersd", from_parents([-1, 0, 0, 1], ranks=[0, 1, 3, 2], name="r13"))])
def test_simulate_agrees_with_exact_tokens_per_call(method, tree):
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.full(12, 0.8)), rng.dirichlet(np.full(12, 0.8))
    res = simulate(method, tree, p, q, calls=60_000, seed=11)
    exact = expected_tokens(method, res_tree(tree), p, q)
    z = abs(res.tokens_per_call.mean - exact.value) / res.tokens_per_call.std_error
    assert exact.exact and z < 6.1, (res.tokens_per_call, exact.value)   # 6.1 sigma: two-sided p ~ 1e-9


def test_markov_simulation_with_and_without_tables():
    """Markov sources: per-context tables (or the full-V samplers) give the same tokens per call."""
    from chansim.sampling.sources import MarkovSource

    rng = np.random.default_rng(8)
    t = rng.dirichlet(np.full(5, 0.8), size=5)
    d = 0.5 * t + 0.5 * rng.dirichlet(np.full(5, 0.8), size=5)
    target, draft = MarkovSource(t, t[0]), MarkovSource(d, d[0])
    res = {rt: simulate("ersd", "batch:3", target, draft, calls=40_000, seed=4, race_tables=rt)
           for rt in (True, False)}
    a, b = res[True].tokens_per_call, res[False].tokens_per_call
    assert abs(a.mean - b.mean) < 6.1 * np.hypot(a.std_error, b.std_error)


def res_tree(tree):
    from chansim.verify import as_tree
    return as_tree(tree)


def test_large_vocabulary_race_matches_rank_law():
    """V = 4096: rank-1 acceptance of the table race vs the exact ER acceptance."""
    from chansim.sampling.races import er_acceptance

    p, q = noisy_target_pair(4096, noise=1.0, seed=0)
    n = 40_000
    table = RaceTable(p[None], q[None])
    drafts, winner = fast_race(table, np.zeros(n, dtype=np.int64), 1, np.random.default_rng(9))
    hits = int((drafts[:, 0] == winner).sum())
    assert stats.binomtest(hits, n, float(er_acceptance(p, q))).pvalue > ALPHA
