"""Boundary-limited predictions from a log (docs/theory.md §9, issue: chain:64 on 48-token paths).

:func:`chansim.predict.boundary_tokens` is checked against a direct simulation of the
calls on a path (independent of the recursion), and ``chansim bound --log`` must flag
the rows whose value is set by the end of the sequences.
"""
import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs.format import read_log, write_log
from chansim.logs.predict import BOUNDARY_SHARE_LIMIT, predict_from_log
from chansim.predict import boundary_tokens, call_endings, expected_calls

Z = 5.33          # two-sided normal quantile for 1e-7


def _simulate_calls(accept, trials, rng, leaf_counts_as_cut=False):
    """Per run: calls, and calls ended by rejection / leaf / end of path, and tokens of cut calls.

    A call at t visits depth d = 0, 1, ... at position t + d and accepts w.p.
    accept[d, t + d]; it ends at the first rejection (d + 1 tokens), after D accepts
    (D + 1 tokens, the bonus), or at the end of the path.  It is *cut* when the end of
    the path comes with depth to spare (d < D).  ``leaf_counts_as_cut`` is the broken
    variant that also counts a full-depth call whose bonus falls past the end as cut.
    """
    depth, length = accept.shape
    pos = np.zeros(trials, dtype=np.int64)
    counts = np.zeros((trials, 5))                  # calls, rejected, leaf, cut, cut tokens
    live = pos < length
    while live.any():
        idx = np.flatnonzero(live)
        counts[idx, 0] += 1
        t0 = pos[idx]
        going = np.ones(idx.size, dtype=bool)
        end = t0.copy()
        for d in range(depth + 1):
            at = t0 + d
            if d < depth or leaf_counts_as_cut:
                hit_end = going & (at >= length)
                counts[idx[hit_end], 3] += 1
                counts[idx[hit_end], 4] += length - t0[hit_end]
                end[hit_end] = length
                going &= ~hit_end
            if d == depth:
                counts[idx[going], 2] += 1
                end[going] = at[going] + 1                 # bonus token at t0 + D
                break
            u = rng.random(idx.size)
            acc = np.zeros(idx.size, dtype=bool)
            acc[going] = u[going] < accept[d, at[going]]
            stop = going & ~acc
            counts[idx[stop], 1] += 1
            end[stop] = at[stop] + 1                       # correction token at t0 + d
            going &= acc
        pos[idx] = np.minimum(end, length)
        live = pos < length
    return counts


@pytest.mark.parametrize("depth,length,seed", [(3, 10, 0), (6, 5, 1), (4, 4, 2)])
def test_call_endings_match_simulated_calls(depth, length, seed):
    rng = np.random.default_rng(seed)
    accept = rng.uniform(0.5, 1.0, size=(depth, length))
    accept[:, rng.integers(length)] = 1.0
    trials = 200_000
    counts = _simulate_calls(accept, trials, rng)
    ends = call_endings(accept)
    exact = [expected_calls(accept)[0], ends.rejected, ends.leaf, ends.cut, ends.cut_tokens]
    half = Z * counts.std(axis=0) / np.sqrt(trials) + 1e-12
    assert np.all(np.abs(counts.mean(axis=0) - exact) < half), (counts.mean(axis=0), exact)
    assert ends.cut_tokens == boundary_tokens(accept)
    assert ends.rejected + ends.leaf + ends.cut == pytest.approx(exact[0])      # every call ends one way
    # broken variant: counting full-depth calls whose bonus falls past the end as cut
    broken = _simulate_calls(accept, trials, rng, leaf_counts_as_cut=True)
    if depth <= length:
        assert broken[:, 4].mean() - ends.cut_tokens > 2 * half[4]


def _log(path, tables, length, runs=6, seed=0):
    target, draft = tables
    rng = np.random.default_rng(seed)
    tokens, tl, dl = [], [], []
    for _ in range(runs):
        prev, y = 0, []
        for _ in range(length):
            prev = int(rng.choice(len(target), p=target[prev]))
            y.append(prev)
        y = np.asarray(y)
        before = np.concatenate([[0], y[:-1]])
        tokens.append(y)
        tl.append(np.log(target[before]))
        dl.append(np.log(draft[before]))
    write_log(path, prompts=[[0]] * runs, tokens=tokens, target_log_probs=tl, draft_log_probs=dl,
              metadata={"source": "markov"})
    return read_log(path)


def test_deep_chain_on_short_paths_is_flagged(tmp_path, markov_tables, capsys):
    target, _ = markov_tables(4, 5)
    run = _log(tmp_path / "same.npz", (target, target), length=12)     # q = p: every draft accepted
    deep = predict_from_log(run, "sd", "chain:64")
    assert deep["boundary_share"] == pytest.approx(1.0) and deep["end_stop_share"] == 1.0 and deep["boundary_limited"]
    assert deep["mean"] == pytest.approx(12.0)                           # one call per sequence: set by T
    shallow = predict_from_log(run, "sd", "chain:1")
    assert shallow["boundary_share"] == 0.0 and not shallow["boundary_limited"]
    # a realistic pair on longer paths: chain:1 never cut; chain:64 never reaches its leaf
    run = _log(tmp_path / "m.npz", markov_tables(5, 3), length=48)
    rows = {k: predict_from_log(run, "sd", f"chain:{k}") for k in (1, 4, 64)}
    assert rows[1]["boundary_share"] == 0.0 and not rows[1]["boundary_limited"]
    assert rows[1]["boundary_share"] <= rows[4]["boundary_share"] <= rows[64]["boundary_share"]
    assert rows[64]["end_stop_share"] == pytest.approx(1.0) and rows[64]["boundary_limited"]
    for method in ("sd", "ersd"):
        for k in (2, 64):
            r = predict_from_log(run, method, f"chain:{k}")
            assert r["boundary_limited"] == (r["end_stop_share"] > 0.5 and r["boundary_share"] > BOUNDARY_SHARE_LIMIT)
    rc = main(["bound", "--log", str(tmp_path / "same.npz"), "--k", "1,64", "--method", "sd", "--tree", "chain"])
    out = capsys.readouterr().out
    assert rc == 0
    flagged = [line for line in out.splitlines() if "chain:64" in line]
    assert flagged and "boundary-limited" in flagged[0]
    assert "boundary-limited" not in [line for line in out.splitlines() if "chain:1 " in line][0]
    rc = main(["bound", "--log", str(tmp_path / "same.npz"), "--k", "64", "--method", "sd", "--tree", "chain",
               "--json"])
    row = json.loads(capsys.readouterr().out)["predictions"][0]
    assert rc == 0 and row["boundary_limited"] is True and row["boundary_share"] == pytest.approx(1.0)
