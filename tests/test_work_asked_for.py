"""Issue 23: only the work asked for, and the fast paths equal the slow ones they replace.

* ``bound --method sd`` computes no rank law (H(R), the ersd bound and the asymptote print '-');
* the optimal tree at k = 10^6 uses K = 64 ranks when P(R > 64) is already below the tolerance;
* SpecInfer's slot weights jump over stable residual phases: equal to the round-by-round loop
  (a broken jump, one round too long, is caught);
* the unstable sort of the competitor rates gives the quadratic reference's alpha_ER on ties.
"""
from __future__ import annotations

import numpy as np
import pytest

from chansim.cli import main
from chansim.sampling import races
from chansim.theory import report
from chansim.verify import specinfer


def _pair(vocab, seed, scale=2.0, noise=1.0):
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal(vocab)
    zq = z + noise * rng.standard_normal(vocab)
    p, q = np.exp(z - z.max()), np.exp(zq - zq.max())
    return p / p.sum(), q / q.sum()


def test_sd_alone_computes_no_rank_law(tmp_path, monkeypatch, capsys):
    p, q = zip(*(_pair(2000, s) for s in range(3)))
    np.save(tmp_path / "p.npy", np.array(p))
    np.save(tmp_path / "q.npy", np.array(q))

    def forbidden(*_, **__):
        raise AssertionError("the rank law was computed for sd alone")

    monkeypatch.setattr(report, "rank_law", forbidden)
    assert main(["bound", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"), "--method", "sd",
                 "--k", "1,4", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "H(R) = - (not computed" in out and "ersd bound" in out
    plot = tmp_path / "sd.png"                                   # no law: the plot leaves the ERSD lines out
    assert main(["bound", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"), "--method", "sd",
                 "--k", "1,4", "--jobs", "1", "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 0
    rep = report.speedup_report(np.array(p), np.array(q), k=[1, 4], methods=["sd"])
    assert rep.ersd_bound["value"] == [None, None] and rep.summary["rank_entropy_nats"] is None
    assert rep.methods["sd"]["tokens_per_call"][0] == pytest.approx(1 + np.minimum(p, q).sum(1).mean(), abs=1e-12)
    with pytest.raises(AssertionError, match="rank law was computed"):         # asked for: computed
        report.speedup_report(np.array(p), np.array(q), k=[1], methods=["sd"], rank_law=True)
    with pytest.raises(ValueError, match="valued through the rank law"):      # refused, not a crash later
        report.speedup_report(np.array(p), np.array(q), k=[1], methods=["ersd"], rank_law=False)


def test_law_ranks_follow_the_tail_not_k():
    p, q = _pair(300, 1, scale=1.0, noise=0.3)
    law = report._law_for(p, q, [1, 10**6], 1000, 0, 64, 1e-4, 0.95, 1e-3)
    assert len(law.probs) == 64 and law.tail <= 1e-3           # K = 64 holds the mass: no K = 1024 law
    flat_p, flat_q = _pair(200, 2, scale=0.3, noise=2.0)               # P(R > 64) large: widened (to V here)
    wide = report._law_for(flat_p, flat_q, [1, 10**6], 1000, 0, 64, 1e-4, 0.95, 1e-3)
    assert len(wide.probs) == 200 and wide.tail == 0.0


def _loop(p, q, m):
    return specinfer._rounds_loop(p, q, m)


def _random_pairs(n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        vocab = int(rng.integers(2, 50))
        p = rng.dirichlet(np.ones(vocab) * rng.uniform(0.05, 2))
        q = rng.dirichlet(np.ones(vocab) * rng.uniform(0.05, 2))
        if i % 3 == 0:
            q[rng.integers(vocab)] = 0.0
            q /= q.sum()
        yield p, q, int(rng.integers(65, 2500))


def test_specinfer_phase_jumps_equal_the_round_by_round_loop():
    for p, q, m in _random_pairs(150, 0):
        w_loop, rest_loop = _loop(p, q, m)
        w_jump, rest_jump = specinfer.residual_rounds(p, q, m)
        assert np.abs(w_jump - w_loop).max() <= 1e-12
        assert np.abs(rest_jump - rest_loop).sum() <= 1e-11
        assert w_jump.sum() + rest_jump.sum() == pytest.approx(1.0, abs=1e-12)


def test_specinfer_broken_jump_is_caught(monkeypatch):
    """A phase one round too long (beta kept where a token already fell below q) must fail the check."""
    real_ceil = np.ceil
    monkeypatch.setattr(specinfer.np, "ceil", lambda x: real_ceil(x) + 1)
    worst = max(np.abs(specinfer.residual_rounds(p, q, m)[0] - _loop(p, q, m)[0]).max()
                for p, q, m in _random_pairs(60, 1))
    assert worst > 1e-12


def test_specinfer_million_slots_at_real_vocabulary():
    p, q = _pair(49_152, 3, scale=3.0)
    w, rest = specinfer.residual_rounds(p, q, 10**6)
    assert w.shape == (10**6,) and w.sum() + rest.sum() == pytest.approx(1.0, abs=1e-12)
    w_loop, _ = _loop(p, q, 300)
    assert np.abs(w[:300] - w_loop).max() <= 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_unstable_sort_keeps_alpha_er_on_ties(seed):
    rng = np.random.default_rng(seed)
    p = rng.integers(1, 4, 40).astype(float)
    q = p * rng.choice([0.5, 1.0, 2.0], 40)                    # many tied ratios q/p
    p, q = p / p.sum(), q / q.sum()
    assert float(races.er_acceptance(p, q)) == pytest.approx(races.er_acceptance_quadratic(p, q), abs=1e-13)


def _brackets(p, q, exact, stride):
    from chansim.theory import rankbound as rb
    from chansim.theory.rank_light import power_sums_above

    winners = np.argsort(-p, kind="stable")
    short = np.argsort(-q)[:256]
    pos = np.full(len(p), -1)
    pos[short] = np.arange(len(short))
    outside = np.setdiff1d(np.arange(len(p)), short)
    rho = q[winners] / p[winners]
    s1, s2 = power_sums_above(p, q, outside, rho)
    old = rb._BRACKET_EXACT, rb._BRACKET_STRIDE
    rb._BRACKET_EXACT, rb._BRACKET_STRIDE = exact, stride
    try:
        return rb._mean_rank_brackets(p[short], q[short], pos, winners, rho, s1, s2, 512)
    finally:
        rb._BRACKET_EXACT, rb._BRACKET_STRIDE = old


def test_grid_brackets_contain_each_winners_own_bracket(monkeypatch):
    """Light winners bracketed from grid winners (S decreasing in rho) still bracket their own mean rank."""
    p, q = _pair(3000, 5)
    own_up, own_lo = _brackets(p, q, 10**9, 4)                 # every winner its own S(rho_y)
    up, lo = _brackets(p, q, 100, 7)
    assert np.all(up >= own_up - 1e-12) and np.all(lo <= own_lo + 1e-12) and np.all(lo <= up)
    assert np.abs(up - own_up).max() > 0                     # the grid is really used
    from chansim.theory import rankbound as rb
    real_searchsorted = np.searchsorted                        # broken: each winner takes the wrong grid cell

    def off_by_one(a, v, side="left", sorter=None):
        return np.minimum(real_searchsorted(a, v, side=side) + 1, len(a))

    monkeypatch.setattr(rb.np, "searchsorted", off_by_one)
    bad_up, bad_lo = _brackets(p, q, 100, 7)
    assert np.any(bad_up < own_up - 1e-9) or np.any(bad_lo > own_lo + 1e-9)


def test_specinfer_jumps_against_exact_rationals():
    """p = (1/2, 1/2), q = (9/10, 1/10): r_2 = (0, 1), then every round accepts with 1/10, so
    w_1 = 3/5 and w_j = (2/5)(1/10)(9/10)^(j-2) for j >= 2 (by hand, not by chansim)."""
    from fractions import Fraction

    m = 1000                                                   # > _JUMP_FROM: the phase-jump path
    w, rest = specinfer.residual_rounds(np.array([0.5, 0.5]), np.array([0.9, 0.1]), m)
    exact = [Fraction(3, 5)] + [Fraction(2, 5) * Fraction(1, 10) * Fraction(9, 10) ** (j - 2) for j in range(2, m + 1)]
    assert np.abs(w - np.array([float(x) for x in exact])).max() <= 1e-15
    assert rest[0] == 0.0 and abs(rest[1] - float(Fraction(2, 5) * Fraction(9, 10) ** (m - 1))) <= 1e-15
