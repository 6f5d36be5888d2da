"""Rank laws on a log (chansim/logs/ranklaw.py): tail kept, guaranteed intervals, --jobs, bound checks.

The pooled law of a log at V = 80 (above the exact cut-off, so every position uses the
guaranteed "bounded" law) is compared with the exact pooled law; ``--jobs 2`` must give
the same numbers as ``--jobs 1``; and the all-k bounds printed for a log are never below
the optimal ERSD value of the log's pooled law (k = 1..1024 and up to 10^6).
"""
import json
import math

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs.ranklaw import pooled_law, position_law, position_laws
from chansim.logs.format import read_log, write_log
from chansim.logs.predict import log_theory
from chansim.theory import rank_law
from chansim.theory.bound_columns import guaranteed_bound
from chansim.theory.optimal import top_products_sums
from chansim.theory.ranklaw import law_from_probs


def _log(path, vocab, positions, seed, sequences=2, sharp=3.0):
    """Random LM-like (peaked) target/draft pairs written as a log."""
    rng = np.random.default_rng(seed)
    tokens, tl, dl = [], [], []
    for _ in range(sequences):
        z = sharp * rng.standard_normal((positions, vocab))
        w = z + 0.7 * rng.standard_normal((positions, vocab))
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        lq = w - np.log(np.exp(w).sum(1, keepdims=True))
        tokens.append(np.array([rng.choice(vocab, p=np.exp(r) / np.exp(r).sum()) for r in lp]))
        tl.append(lp)
        dl.append(lq)
    write_log(path, prompts=[[0]] * sequences, tokens=tokens, target_log_probs=tl, draft_log_probs=dl,
              metadata={"source": "random", "seed": seed})
    return read_log(path)


@pytest.fixture(scope="module")
def log80(tmp_path_factory):
    return _log(tmp_path_factory.mktemp("lr") / "v80.npz", 80, 3, seed=1)


def _exact_pooled(run):
    probs, never = [], []
    for p, q, _ in run.sequences():
        for t in range(len(p)):
            law = rank_law(p[t], q[t], method="exact")
            probs.append(law.probs)
            never.append(law.never)
    a = np.mean(probs, axis=0)
    nu = float(np.mean(never))
    return law_from_probs(a / (a.sum() + nu), nu / (a.sum() + nu))


def test_pooled_law_keeps_tail_and_brackets_exact(log80):
    laws = position_laws(log80.sequences(), max_rank=4, tol=1e-5)
    assert all(not d["exact"] and d["guaranteed"] and d["error"] <= 1e-4 for d in laws)
    law = pooled_law(laws, log80.vocab_size)
    exact = _exact_pooled(log80)
    # not renormalised: head + tail + never = 1 up to the guaranteed error
    assert law.tail > 100 * law.error
    assert abs(law.probs.sum() + law.tail + law.never - 1) <= law.error + 1e-9
    l1 = np.abs(law.probs - exact.probs[:4]).sum() + abs(law.tail - exact.probs[4:].sum())
    assert l1 <= law.error + 1e-9
    lo, hi = law.entropy_ci
    assert lo <= exact.entropy <= hi and hi - lo < 0.5
    # a broken pooling that drops the tail and renormalises is caught by the same check
    broken = law.probs / law.probs.sum()
    assert np.abs(broken - exact.probs[:4]).sum() + exact.probs[4:].sum() > 10 * law.error


def test_log_theory_bound_uses_lower_end(log80):
    th = log_theory(log80, [1, 4, 64], rank_tol=1e-4)
    ks = np.array([1, 4, 64])
    lo, hi = th["rank_entropy_interval"]
    assert lo <= th["mean_entropy_nats"] <= hi and th["rank_law_error"] <= 1e-3
    want = np.minimum(ks + 1, (np.log(ks + 1) + math.log(80)) / lo)
    np.testing.assert_allclose(th["bound"], want, rtol=1e-12)
    np.testing.assert_allclose(th["bound_paper"], (np.log(ks + 1) + math.log(80)) / th["mean_entropy_nats"])
    assert np.all(np.asarray(th["bound"]) >= np.minimum(ks + 1, th["bound_paper"]) - 1e-12)
    p_lo, p_hi = th["pooled_entropy_interval"]
    assert p_lo <= th["pooled_entropy_nats"] <= p_hi and th["pooled_tail"] > 0


def test_jobs_give_identical_numbers(tmp_path, capsys):
    _log(tmp_path / "v70.npz", 70, 9, seed=2)               # 18 positions >= MIN_PARALLEL_POSITIONS
    out = []
    for jobs in ("1", "2"):
        rc = main(["bound", "--log", str(tmp_path / "v70.npz"), "--k", "1,4", "--method", "ersd,sd,specinfer",
                   "--json", "--jobs", jobs])
        assert rc == 0
        out.append(json.loads(capsys.readouterr().out))
    assert out[0] == out[1]                                 # theory and the path predictions (spread too)
    assert len(out[0]["predictions"]) == 8                  # 3 trees each; sd on batch:4 not applicable
    assert {"rank_entropy_interval", "rank_law_error", "bound", "bound_paper", "pooled_bound"} <= set(out[0]["theory"])


def test_cli_backend_needs_log(capsys):
    rc = main(["bound", "--p", "x.npy", "--q", "y.npy", "--backend", "dask"])
    assert rc == 2 and "--log only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="scheduler"):
        position_laws([], scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="jobs"):
        position_laws([], jobs=0)


def test_pooled_rejects_monte_carlo():
    d = position_law([0.5, 0.5], [0.9, 0.1], 10, 0, 64, 1e-4)
    with pytest.raises(ValueError, match="guaranteed"):
        pooled_law([dict(d, error=float("nan"))], 2)


KS = np.unique(np.concatenate([np.arange(1, 1025, 3), np.round(np.logspace(3, 6, 13)).astype(int)]))


def test_all_k_bounds_never_below_optimum_on_log(tmp_path):
    """Zero violations: pooled bound (exit-entropy form, §10) and per-position bound >= exact optimum."""
    run = _log(tmp_path / "v24.npz", 24, 12, seed=5, sequences=2, sharp=2.0)   # exact laws (V <= 64)
    laws = position_laws(run.sequences())
    assert all(d["exact"] for d in laws)
    law = pooled_law(laws, run.vocab_size)
    assert law.exact and law.never == 0
    opt = 1 + top_products_sums(law.probs, KS)
    bound = np.asarray(guaranteed_bound(KS, law, run.vocab_size))
    assert np.all(bound >= opt - 1e-9), KS[bound < opt - 1e-9][:5]
    assert np.all(bound <= KS + 1 + 1e-12)
    paper = (np.log(KS + 1) + math.log(run.vocab_size)) / law.entropy
    assert np.all(paper >= opt - 1e-9)
    # a deliberately wrong "bound" (ln(k+1)/H, no ln V term: not a bound, docs/theory.md §4) is caught
    naive = np.log(KS + 1) / law.entropy
    assert np.any(naive < opt)


def test_dask_backend_gives_identical_numbers(tmp_path):
    pytest.importorskip("dask.distributed")
    run = _log(tmp_path / "v70.npz", 70, 9, seed=2)
    ref = position_laws(run.sequences(), jobs=1)
    got = position_laws(run.sequences(), jobs=2, backend="dask")          # in-process dask client
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a["probs"], b["probs"])
        assert a["entropy_ci"] == b["entropy_ci"] and a["error"] == b["error"] and a["tail"] == b["tail"]


def test_pooled_small_vocabulary_law_keeps_its_proved_error():
    """Per-position laws at V <= 64 carry a proved error (never 0); pooling keeps their mean
    and never renormalises it away (the old pooled law said error 0)."""
    from chansim.logs.ranklaw import pooled_law, position_law
    from chansim.theory.ranklaw import EXACT_L1

    rng = np.random.default_rng(3)
    laws = [position_law(rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6)), 10, 0, 64, 1e-4) for _ in range(4)]
    pooled = pooled_law(laws, 6)
    errors = [d["error"] for d in laws]
    assert all(0 < e <= EXACT_L1 for e in errors)
    assert pooled.error == pytest.approx(np.mean(errors)) and pooled.error > 0
    assert pooled.exact
    head = np.mean([d["probs"] for d in laws], axis=0)
    assert np.array_equal(pooled.probs, head)                        # as pooled, not rescaled
    lo, hi = pooled.entropy_ci
    assert lo <= pooled.entropy <= hi
