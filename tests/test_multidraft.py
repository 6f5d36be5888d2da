"""Optimal multi-draft verifier (chansim.verify.multidraft): exactness, LP optimality, theory = simulation.

The exactness chi-square batteries run in tests/test_verify_exactness.py (method cases there);
the broken variant here uses the same thresholds.
"""
import numpy as np
import pytest

from chansim.predict import expected_calls
from chansim.simulate import simulate
from chansim.sampling.sources import MarkovSource
from chansim.theory.lp import optimal_acceptance_iid, optimal_acceptance_lp, optimal_acceptance_mincut
from chansim.inputs.trees import from_parents
from chansim.theory.nodes import specinfer_weights, spectr_acceptance
from chansim.verify import GeneratorNoise, speculative_generate
from chansim.verify.base import sample_rows
from chansim.verify.multidraft import (Multidraft, first_holder_law, multidraft_acceptance,
                                       multidraft_path_acceptance, multidraft_plan, multidraft_tree_tokens,
                                       multidraft_weights, selection_law)
from test_verify_exactness import ALPHA, IID_PAIRS, iid_pvalues
from conftest import random_small_pairs



class _SelectThenCorrect(Multidraft):
    """Broken variants share this skeleton: pick a draft y, accept w.p. min(1, p_y / law_y), else
    sample the residual (p - law)_+; each variant changes the pick or the law."""

    def pick(self, plan, drafts, u):
        return plan.select(drafts, *u)

    def law(self, plan, p, q):
        return plan.selected

    def verify(self, p, q, drafts, noise):
        batch, m = drafts.shape
        if m == 0:
            return super().verify(p, q, drafts, noise)
        u = noise.rng.random((batch, 2 * m + 2))
        plan = multidraft_plan(p[0], q[0], m)
        y = self.pick(plan, drafts, (u[:, 2:m + 2], u[:, m + 2:]))
        law = self.law(plan, p, q)
        ok = u[:, 0] * law[y] < p[0, y]
        token = y.copy()
        if not ok.all():
            token[~ok] = sample_rows(np.maximum(p - law, 0.0), u[~ok, 1])
        accepted = np.where(ok, np.argmax(drafts == y[:, None], axis=1), -1)
        return accepted, token


class DraftRatioMultidraft(_SelectThenCorrect):
    """Bug: step 2 tests min(1, p/q) as if the selected draft were ~ q (it is ~ r)."""

    def law(self, plan, p, q):
        return q[0]


class LowestPointMultidraft(_SelectThenCorrect):
    """Bug: selects the draft with the *lowest* priority point, but corrects with the law of the highest."""

    def pick(self, plan, drafts, u):
        low = np.argmin(plan.points(drafts, *u), axis=1)
        return drafts[np.arange(len(drafts)), low]


@pytest.mark.parametrize("broken", [DraftRatioMultidraft, LowestPointMultidraft])
def test_broken_multidraft_is_caught(broken):
    p, q = IID_PAIRS["dense"]
    assert min(iid_pvalues(broken(), "batch:2", p, q, calls=40_000, seed=2024)) < ALPHA


def test_unbroken_skeleton_passes():
    """The shared skeleton with the real pick and law passes the same check: the catches above are the bugs'."""
    p, q = IID_PAIRS["dense"]
    assert min(iid_pvalues(_SelectThenCorrect(), "batch:2", p, q, calls=40_000, seed=2024)) >= ALPHA


# ----------------------------------------------------------------------------- optimality
def test_node_acceptance_equals_lp_optimum():
    """120 random pairs, m = 1..4: acceptance = LP optimum = min-cut, >= specinfer and spectr."""
    gaps = []
    for p, q, m in random_small_pairs(120, 21, zero_in_p=True, drafts=(1, 5)):
        acc = multidraft_acceptance(p, q, m)
        gaps.append(abs(acc - optimal_acceptance_lp(p, q, m)))
        assert acc == pytest.approx(optimal_acceptance_mincut(p, q, m), abs=1e-7)
        assert acc == pytest.approx(optimal_acceptance_iid(p, q, m), abs=1e-7)
        assert acc >= specinfer_weights(p, q, m).sum() - 1e-9
        assert acc >= spectr_acceptance(p, q, m) - 1e-7
        assert multidraft_weights(p, q, m).sum() == pytest.approx(acc, abs=1e-12)
    assert max(gaps) < 1e-9, max(gaps)


def test_theory_matches_simulation():
    """Exact tree values inside 1 - 1e-8 intervals (12 cases)."""
    for idx, (p, q, _) in enumerate(random_small_pairs(4, 5, zero_in_p=True, drafts=(1, 5))):
        for tree in ("batch:3", "branch:2,2", "branch:3,1"):
            res = simulate("multidraft", tree, p, q, calls=6000, seed=idx, confidence=1 - 1e-8)
            assert res.tokens_per_call.contains(multidraft_tree_tokens(p, q, tree)), (idx, tree, res.tokens_per_call)


def test_errors():
    with pytest.raises(ValueError, match="m must be a positive integer"):
        multidraft_plan([0.5, 0.5], [0.5, 0.5], 0)
    with pytest.raises(ValueError, match="1-D"):
        selection_law([[0.5, 0.5]], [[0.5, 0.5]], 2)
    with pytest.raises(ValueError, match="slots"):
        simulate("multidraft", from_parents([-1, 0], ranks=[0, 2], name="slot2"), [0.5, 0.5], [0.5, 0.5], calls=10)


# ----------------------------------------------------------------------------- logged path
def test_predicted_calls_match_generation(markov_tables):
    """Tower rule: E[actual calls - predicted calls | path] = 0 over generated paths."""
    target, draft = markov_tables(4, 3)
    target_src, draft_src = MarkovSource(target), MarkovSource(draft)
    length, runs, widths = 60, 150, [2, 1]
    diffs = []
    for run in range(runs):
        result = speculative_generate("multidraft", "branch:2,1", target_src, draft_src, length,
                                      GeneratorNoise(np.random.default_rng(run)), prefix=[0])
        y = result.tokens
        prev = np.concatenate([[0], y[:-1]])
        accept = np.stack([multidraft_path_acceptance(target[prev], draft[prev], y, w) for w in widths])
        diffs.append(len(result.steps) - expected_calls(accept)[0])
    diffs = np.asarray(diffs)
    se = diffs.std(ddof=1) / np.sqrt(runs)
    assert abs(diffs.mean()) < 5.5 * se, (diffs.mean(), se)


def test_cli_simulate_multidraft(tmp_path, capsys):
    """``chansim simulate --method multidraft`` runs through the registry."""
    import json

    from chansim.cli import main

    p, q = IID_PAIRS["dense"]
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    rc = main(["simulate", "--method", "multidraft", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"),
               "--tree", "batch:3", "--calls", "20000", "--seed", "3", "--json"])
    tpc = json.loads(capsys.readouterr().out)["tokens_per_call"]
    assert rc == 0 and abs(tpc["mean"] - (1 + multidraft_acceptance(p, q, 3))) < 6 * tpc["std_error"]


def test_larger_vocabulary_attains_the_sorted_optimum():
    """V = 16 (beyond the 2^V enumeration): the plan still attains α* of the O(V log V) formula."""
    rng = np.random.default_rng(4)
    for m in (2, 3):
        p, q = rng.dirichlet(np.full(16, 0.7)), rng.dirichlet(np.full(16, 0.7))
        assert multidraft_acceptance(p, q, m) == pytest.approx(optimal_acceptance_iid(p, q, m), abs=1e-9)
    res = simulate("multidraft", "batch:3", p, q, calls=6000, seed=1, confidence=1 - 1e-8)
    assert res.tokens_per_call.contains(multidraft_tree_tokens(p, q, "batch:3"))


def test_method_theory_hooks():
    """What the registry's theory layer asks the class: node acceptance, tree tokens, report rows, path."""
    meth = Multidraft()
    p, q = IID_PAIRS["dense"]
    assert meth.node_acceptance(p, q, 3) == pytest.approx(multidraft_acceptance(p, q, 3), abs=1e-12)
    assert meth.tree_tokens(from_parents([-1, 0, 0], name="b2"), p, q) == pytest.approx(1 + multidraft_acceptance(p, q, 2))
    tok, _, exact = meth.report_tokens(p, q, [1, 3], "batch")
    assert exact and tok == pytest.approx([1 + np.minimum(p, q).sum(), 1 + multidraft_acceptance(p, q, 3)])
    y = np.array([0, 2])
    pp, qq = np.stack([p, p]), np.stack([q, q])
    assert np.allclose(meth.path_acceptance(pp, qq, y, pp[[0, 1], y], 2), multidraft_path_acceptance(pp, qq, y, 2))


def test_bound_report_rows_come_from_the_method():
    """``chansim bound --tree batch`` reads multidraft's rows through the registry: 1 + α*(k), >= specinfer."""
    from chansim.theory import speedup_report

    p, q = IID_PAIRS["dense"]
    rep = speedup_report(p, q, k=[1, 2, 3], methods=["specinfer", "multidraft"], tree="batch")
    tok = rep.methods["multidraft"]["tokens_per_call"]
    assert tok == pytest.approx([1 + multidraft_acceptance(p, q, k) for k in (1, 2, 3)], abs=1e-9)
    assert all(a >= b - 1e-12 for a, b in zip(tok, rep.methods["specinfer"]["tokens_per_call"]))


# ----------------------------------------------------------------------------- the selection at any V
def _in_base_polytope(r, q, m, tol=1e-12):
    """r(S) <= 1 - (1 - q(S))^m for all S (binding sets: prefixes in r/q order) and r(V) = 1."""
    on = q > 0
    order = np.argsort(-(r[on] / q[on]), kind="stable")
    cum_r, cum_q = np.cumsum(r[on][order]), np.cumsum(q[on][order])
    return bool(np.all(cum_r <= 1 - (1 - np.minimum(cum_q, 1)) ** m + tol) and abs(cum_r[-1] - 1) < tol
                and np.all(r[~on] == 0))


def test_selection_attains_the_optimum_on_random_pairs():
    """200 pairs, V <= 60, m = 1..8: the closed-form law and the sampler's law both reach α*.

    Largest gap |sum min(p, r) - α*| is ~1e-14; the law is a point of the base polytope
    (a law of "one token of the draft set"), the partition gives every token cells of total
    length q_y, and the first-holder law sums to r.
    """
    gaps = []
    for p, q, m in random_small_pairs(200, 7, zero_in_p=True, drafts=(1, 9), vocab=(2, 61),
                                      concentrations=(0.1, 0.3, 1.0, 3.0), zero_prob=0.3):
        alpha = optimal_acceptance_iid(p, q, m)
        law = selection_law(p, q, m)
        plan = multidraft_plan(p, q, m)
        assert _in_base_polytope(law, q, m)
        owned = np.zeros(len(p))
        np.add.at(owned, np.repeat(np.arange(len(p)), np.diff(plan.start)), plan.cell_hi - plan.cell_lo)
        assert np.allclose(owned, q, atol=1e-13, rtol=0)
        assert np.allclose(first_holder_law(plan).sum(axis=1), plan.selected, atol=1e-13, rtol=0)
        gaps += [abs(np.minimum(p, law).sum() - alpha), abs(np.minimum(p, plan.selected).sum() - alpha)]
    assert max(gaps) < 1e-12, max(gaps)


def test_selection_law_equals_the_lp_plans_acceptance():
    """Small V: the LP optimum (2^V enumeration) equals what the closed-form law accepts."""
    for p, q, m in random_small_pairs(40, 3, zero_in_p=True, drafts=(1, 5)):
        assert np.minimum(p, selection_law(p, q, m)).sum() == pytest.approx(optimal_acceptance_lp(p, q, m), abs=1e-9)


@pytest.mark.slow
def test_selection_attains_the_optimum_at_real_vocabulary():
    """V = 49,152, peaked LM-like pairs (benchmarks/bench_ranklaw.py): law and sampler reach α* (gap < 1e-10)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_ranklaw import lm_like_pair

    for seed, m in ((0, 2), (1, 4)):
        p, q = lm_like_pair(49_152, seed)
        alpha = optimal_acceptance_iid(p, q, m)
        law = selection_law(p, q, m)
        assert _in_base_polytope(law, q, m, tol=1e-10)
        assert abs(np.minimum(p, law).sum() - alpha) < 1e-10
        plan = multidraft_plan(p, q, m)
        assert abs(np.minimum(p, plan.selected).sum() - alpha) < 1e-10
        assert np.abs(plan.selected - law).max() < 1e-10
        assert len(plan.cell_lo) <= 2 * len(p)
    for seed in range(2, 8):                                   # the closed form alone: fast at any V
        p, q = lm_like_pair(49_152, seed)
        for m in (2, 3, 8):
            assert abs(np.minimum(p, selection_law(p, q, m)).sum() - optimal_acceptance_iid(p, q, m)) < 1e-10


def test_sampler_law_matches_monte_carlo():
    """The selected draft's empirical law agrees with plan.selected (chi-square, V = 12, m = 3)."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(11)
    p, q = rng.dirichlet(np.full(12, 0.5)), rng.dirichlet(np.full(12, 0.5))
    plan = multidraft_plan(p, q, 3)
    n = 200_000
    drafts = rng.choice(12, size=(n, 3), p=q)
    y = plan.select(drafts, rng.random((n, 3)), rng.random((n, 3)))
    counts = np.bincount(y, minlength=12)
    keep = plan.selected * n > 5
    expected = plan.selected[keep] * n
    assert chisquare(counts[keep], expected * counts[keep].sum() / expected.sum()).pvalue > ALPHA


def test_token_below_float_resolution_never_wins():
    """q_y ~ 1e-17 at the top of the axis: empty cell, selection law 0, never selected over a real draft."""
    p = np.array([0.01, 0.5, 0.49])
    q = np.array([1e-17, 0.5, 0.5])
    q /= q.sum()
    plan = multidraft_plan(p, q, 3)
    assert plan.start[1] == plan.start[0] and plan.selected[0] == 0.0
    drafts = np.array([[0, 1, 2], [0, 0, 2]])
    rng = np.random.default_rng(0)
    assert set(plan.select(drafts, rng.random((2, 3)), rng.random((2, 3))).tolist()) <= {1, 2}
    assert abs(np.minimum(p, plan.selected).sum() - optimal_acceptance_iid(p, q, 3)) < 1e-15


def test_path_acceptance_with_one_draft_is_selection_law():
    """m = 1 takes the shortcut r = q; it equals the general selection law (and sd's min(1, q/p))."""
    rng = np.random.default_rng(8)
    p, q = rng.dirichlet(np.full(30, 0.5), size=12), rng.dirichlet(np.full(30, 0.5), size=12)
    y = np.array([rng.choice(30, p=row) for row in p])
    got = multidraft_path_acceptance(p, q, y, 1)
    want = np.array([min(1.0, selection_law(p[t], q[t], 1)[y[t]] / p[t, y[t]]) for t in range(12)])
    assert np.allclose(got, want, atol=1e-12) and np.allclose(got, np.minimum(1, q[np.arange(12), y] / p[np.arange(12), y]))


def test_node_rule_and_theory_take_checked_arrays(monkeypatch):
    """Validation once at the door: the sampler's visits and the tree theory do not re-check the rows."""
    import chansim.inputs.distributions as D
    from chansim.verify.multidraft import multidraft_tree_tokens

    calls = []
    check = D.check_pair
    monkeypatch.setattr(D, "check_pair", lambda *a, **k: calls.append(1) or check(*a, **k))
    rng = np.random.default_rng(5)
    trans = rng.dirichlet(np.ones(6), size=6)
    simulate("multidraft", "branch:2,2", MarkovSource(trans), MarkovSource(0.5 * trans + 0.5 / 6), calls=100, seed=0)
    assert not calls                                 # the sources were checked when built
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    multidraft_tree_tokens(p, q, "branch:3,2")
    assert len(calls) == 1
