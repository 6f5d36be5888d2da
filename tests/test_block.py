"""Block verification (chansim.verify.block): exactness, theory = simulation, block >= sd, paper values.

The exactness chi-square batteries run in tests/test_verify_exactness.py (method cases there);
the broken variant here uses its thresholds
(p-value < 1e-9 fails, so a correct implementation fails far below once in 10^6 runs).
"""
import json

import numpy as np
import pytest

from chansim.inputs.paths import check_path_inputs as _path_inputs
from chansim.simulate import simulate
from chansim.sampling.sources import MarkovSource
from chansim.theory.expectations import sd_chain_tokens
from chansim.verify import GeneratorNoise, get_method, speculative_generate
from chansim.inputs.trees import from_parents
from chansim.verify.base import sample_rows
from chansim.verify.block import (Block, block_call_lengths, block_chain_tokens, block_chain_tokens_mc, block_path_calls,
                                  block_weights)
from test_verify_exactness import ALPHA, IID_PAIRS, _rolled_markov, iid_pvalues, markov_pvalues
from conftest import random_small_pairs

PAPER_P, PAPER_Q = np.array([1 / 3, 2 / 3]), np.array([2 / 3, 1 / 3])


class UnweightedResidualBlock(Block):
    """Bug: after a rejection samples norm((p - q)+), forgetting the weight w_τ."""

    def verify_chain(self, p, q, drafts, noise):
        batch, gamma = drafts.shape
        tau, token = super().verify_chain(p, q, drafts, noise)
        rows = np.arange(batch)
        pr = p[tau, 0] if p.shape[1] == 1 else p[tau, rows]
        qt = np.minimum(tau, gamma - 1)
        qr = q[qt, 0] if q.shape[1] == 1 else q[qt, rows]
        res = np.where((tau < gamma)[:, None], np.maximum(pr - qr, 0.0), pr)
        fix = res.sum(1) > 0
        token[fix] = sample_rows(res[fix], noise.rng.random(int(fix.sum())))
        return tau, token


class TableMassAtOneBlock(Block):
    """Bug in the sorted-table path: R_i = sum (p - q)+ (the weight w_i forgotten in the mass, h_i wrong)."""

    @staticmethod
    def _residual_mass(p_row, q_row, w, table, table_rows):
        return Block._residual_mass(p_row, q_row, np.ones_like(w), table, table_rows)


def test_table_residual_sampler_matches_rows():
    """RaceTable.scaled_residual_sample draws (w p - q)+ (and p at w = inf) exactly: chi-square per weight."""
    from chansim.sampling.race_sampling import RaceTable
    from test_verify_exactness import chisquare_pvalue

    p, q = IID_PAIRS["zeros"]
    table = RaceTable(p[None], q[None])
    rng = np.random.default_rng(4)
    n = 40_000
    for w in (1.0, 0.7, 0.3, np.inf):
        tok = table.scaled_residual_sample(np.zeros(n, dtype=np.int64), np.full(n, w), rng.random(n), rng)
        law = p if np.isinf(w) else np.maximum(w * p - q, 0.0)
        assert chisquare_pvalue(np.bincount(tok, minlength=len(p)), law / law.sum()) > ALPHA
        if np.isfinite(w):
            assert table.scaled_residual_mass(np.zeros(1, dtype=np.int64), np.array([w]))[0][0] == \
                pytest.approx(np.maximum(w * p - q, 0.0).sum(), abs=1e-15)


@pytest.mark.parametrize("broken, tree", [(UnweightedResidualBlock, "chain:2"), (TableMassAtOneBlock, "chain:3")],
                         ids=["unweighted-residual", "table-mass-at-one"])
def test_broken_block_is_caught(broken, tree):
    p, q = IID_PAIRS["zeros"]
    assert min(iid_pvalues(broken(), tree, p, q, calls=40_000, seed=2024)) < ALPHA
    target, draft = _rolled_markov(p, q)
    assert min(markov_pvalues(broken(), tree, target, draft, streams=40_000, seed=99)) < ALPHA


# ----------------------------------------------------------------------------- theory
def test_paper_example_values():
    """Sun et al. §1: sd accepts 10/9 drafts per call, block verification 11/9 (γ = 2)."""
    assert block_chain_tokens(PAPER_P, PAPER_Q, 2) - 1 == pytest.approx(11 / 9, abs=1e-13)
    assert float(sd_chain_tokens(np.minimum(PAPER_P, PAPER_Q).sum(), 2)) - 1 == pytest.approx(10 / 9, abs=1e-13)
    assert block_chain_tokens(PAPER_P, PAPER_Q, 1) == pytest.approx(5 / 3, abs=1e-13)   # γ = 1: sd


def test_block_never_below_sd():
    """Exact expectations, 150 random pairs x chain lengths 1..6."""
    worst = np.inf
    for p, q in random_small_pairs(150, 11):
        beta = np.minimum(p, q).sum()
        for gamma in range(1, 7):
            gain = block_chain_tokens(p, q, gamma) - float(sd_chain_tokens(beta, gamma))
            worst = min(worst, gain)
            if gamma == 1:
                assert gain == pytest.approx(0.0, abs=1e-12)
    assert worst > -1e-12


def test_theory_matches_simulation():
    """20 (pair, γ) cases at confidence 1 - 1e-8 each."""
    for idx, (p, q) in enumerate(random_small_pairs(10, 5)):
        for gamma in (2, 4):
            res = simulate("block", f"chain:{gamma}", p, q, calls=6000, seed=idx, confidence=1 - 1e-8)
            assert res.tokens_per_call.contains(block_chain_tokens(p, q, gamma)), (idx, gamma, res.tokens_per_call)


def test_acceptance_per_depth_is_mean_weight():
    """P(τ >= i) = E[w_i]: the batched engine's per-depth acceptance matches it."""
    p, q = IID_PAIRS["dense"]
    res = simulate("block", "chain:3", p, q, calls=60_000, seed=3)
    mean_w = np.diff([block_chain_tokens(p, q, g) for g in range(4)])          # E[w_1], E[w_2], E[w_3]
    reach = np.concatenate([[1.0], np.cumprod(res.acceptance_per_depth)])[1:]  # P(τ >= i)
    se = np.sqrt(mean_w * (1 - mean_w) / res.calls)
    assert np.all(np.abs(reach - mean_w) < 6 * se), (reach, mean_w)


def test_block_weights_and_errors():
    w = block_weights(np.array([[[0.5, 0.5]]] * 3), np.array([[[0.25, 0.75]]] * 3), np.array([[0, 1, 1]]))
    assert w.tolist() == [[1.0, 1.0, 2 / 3, 4 / 9]]
    with pytest.raises(ValueError, match="gamma"):
        block_chain_tokens([0.5, 0.5], [0.5, 0.5], -1)
    with pytest.raises(ValueError, match="chain"):
        simulate("block", "batch:2", [0.5, 0.5], [0.5, 0.5], calls=10)
    assert get_method("block").name == "block"


# ----------------------------------------------------------------------------- logged path
def test_call_lengths_are_a_distribution():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=30), rng.dirichlet(np.ones(5), size=30)
    y = np.array([rng.choice(5, p=row) for row in p])
    for gamma in (1, 3):
        probs = block_call_lengths(p, q, y, gamma)
        assert np.all(probs >= 0) and np.allclose(probs.sum(1), 1.0)
    sd = block_call_lengths(p, q, y, 1)[:, 1]
    _, _, _, py = _path_inputs(p, q, y)
    assert np.allclose(sd, np.maximum(1 - q[np.arange(30), y] / py, 0.0))   # γ = 1: sd's rejection


def test_predicted_calls_match_generation(markov_tables):
    """Tower rule: E[actual calls - predicted calls | path] = 0 over generated paths."""
    target, draft = markov_tables(4, 3)
    target_src, draft_src = MarkovSource(target), MarkovSource(draft)
    length, runs, gamma = 60, 150, 3
    diffs = []
    for run in range(runs):
        result = speculative_generate("block", f"chain:{gamma}", target_src, draft_src, length,
                                      GeneratorNoise(np.random.default_rng(run)), prefix=[0])
        y = result.tokens
        prev = np.concatenate([[0], y[:-1]])
        diffs.append(len(result.steps) - block_path_calls(target[prev], draft[prev], y, gamma))
    diffs = np.asarray(diffs)
    se = diffs.std(ddof=1) / np.sqrt(runs)
    assert abs(diffs.mean()) < 5.5 * se, (diffs.mean(), se)


def test_monte_carlo_expectation_brackets_exact():
    p, q = IID_PAIRS["zeros"]
    est, lo, hi = block_chain_tokens_mc(p, q, 3, trials=50_000, seed=1, confidence=1 - 1e-8)
    assert lo <= block_chain_tokens(p, q, 3) <= hi and lo <= est <= hi
    with pytest.raises(ValueError, match="trials"):
        block_chain_tokens_mc(p, q, 3, trials=1)


def test_cli_simulate_block(tmp_path, capsys):
    """``chansim simulate --method block`` runs through the registry."""
    from chansim.cli import main

    np.save(tmp_path / "p.npy", PAPER_P)
    np.save(tmp_path / "q.npy", PAPER_Q)
    rc = main(["simulate", "--method", "block", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"),
               "--tree", "chain:2", "--calls", "20000", "--seed", "3", "--json"])
    tpc = json.loads(capsys.readouterr().out)["tokens_per_call"]
    assert rc == 0 and abs(tpc["mean"] - 20 / 9) < 6 * tpc["std_error"]


def test_method_theory_hooks():
    """What the registry's theory layer asks the class: node acceptance, tree tokens, report rows."""
    meth = Block()
    p, q = IID_PAIRS["dense"]
    assert meth.node_acceptance(p, q, 1) == pytest.approx(np.minimum(p, q).sum())
    assert meth.tree_tokens(from_parents([-1, 0, 1], name="c2"), PAPER_P, PAPER_Q) == pytest.approx(20 / 9)
    tok, depth, exact = meth.report_tokens(PAPER_P, PAPER_Q, [1, 2], "chain")
    assert exact and depth == [1, 2] and tok == pytest.approx([5 / 3, 20 / 9])
    tok, _, exact = meth.report_tokens(PAPER_P, PAPER_Q, [1, 2], "batch")
    assert tok == [pytest.approx(5 / 3), None]
    rng = np.random.default_rng(2)                               # V = 64, k = 8: Spitzer on the grid, exact to 1e-4
    p, q = rng.dirichlet(np.ones(64)), rng.dirichlet(np.ones(64))
    tok, _, exact = meth.report_tokens(p, q, [8], "optimal")
    est, lo, hi = block_chain_tokens_mc(p, q, 8, trials=20_000, seed=5, confidence=1 - 1e-8)
    assert exact and lo <= tok[0] <= hi


def test_bound_report_rows_come_from_the_method():
    """``chansim bound`` (speedup_report) reads block's rows through the registry (Block.report_tokens)."""
    from chansim.theory import speedup_report

    rep = speedup_report(PAPER_P, PAPER_Q, k=[1, 2, 3], methods=["sd", "block"], tree="chain")
    assert rep.methods["block"]["tokens_per_call"] == pytest.approx([block_chain_tokens(PAPER_P, PAPER_Q, g)
                                                                     for g in (1, 2, 3)])
    assert all(b >= s - 1e-12 for b, s in zip(rep.methods["block"]["tokens_per_call"],
                                              rep.methods["sd"]["tokens_per_call"]))
