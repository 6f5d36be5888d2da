"""Monte Carlo engine: known answers, q = p, determinism, batched vs reference, sweeps, errors."""
import json
import math

import numpy as np
from scipy import stats
import pytest

from chansim.inputs.distributions import sd_acceptance
from chansim.sampling.races import rank_distribution_exact
from chansim.simulate import generate, grid, simulate, sweep
from chansim.sampling.sources import IIDSource, MarkovSource
from chansim.verify import spectr_rho
from chansim.verify.base import residual

STRICT = 1 - 1e-7        # CI level for known-answer checks: a correct engine fails < 1e-6 of the time


def _pair_with_beta(beta):
    """p, q with sum(min(p, q)) = beta."""
    p = np.array([0.3, 0.5, 0.2, 0.0])
    q = np.concatenate([beta * p[:3], [1 - beta]])
    assert math.isclose(sd_acceptance(p, q), beta)
    return p, q


@pytest.mark.parametrize("beta", [0.5, 0.8, 0.95])
@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_sd_chain_known_answer(beta, gamma):
    p, q = _pair_with_beta(beta)
    res = simulate("sd", f"chain:{gamma}", p, q, calls=20_000, seed=gamma, confidence=STRICT)
    expected = (1 - beta ** (gamma + 1)) / (1 - beta)
    assert res.tokens_per_call.contains(expected), (res.tokens_per_call, expected)
    # every depth accepts with probability beta
    reached, accepted = np.array(res.reached_per_depth), np.array(res.accepted_per_depth)
    z = 5.5 * np.sqrt(reached * beta * (1 - beta))
    assert np.all(np.abs(accepted - reached * beta) <= z + 1e-9)


P = np.array([0.45, 0.3, 0.15, 0.1])
Q = np.array([0.1, 0.2, 0.3, 0.4])


def test_node_known_answers_for_batches():
    m = 3
    law = rank_distribution_exact(P, Q).probs
    r, rej = P.copy(), 1.0
    for _ in range(m):
        rej *= 1 - np.minimum(r, Q).sum()
        r = residual(r[None], Q[None])[0]
    rho = spectr_rho(P[None], Q[None], m)[0]
    expected = {
        "ersd": 1 + law[:m].sum(),
        "specinfer": 2 - rej,
        "spectr": 2 - (1 - np.minimum(Q, P / rho).sum()) ** m,
    }
    for method, value in expected.items():
        res = simulate(method, f"batch:{m}", P, Q, calls=20_000, seed=5, confidence=STRICT)
        assert res.tokens_per_call.contains(value), (method, res.tokens_per_call, value)


def test_ersd_chain_known_answer():
    a1 = rank_distribution_exact(P, Q).probs[0]
    res = simulate("ersd", "chain:4", P, Q, calls=20_000, seed=3, confidence=STRICT)
    assert res.tokens_per_call.contains(sum(a1 ** d for d in range(5)))


@pytest.mark.parametrize("method,tree", [("ersd", "chain:5"), ("ersd", "batch:3"), ("ersd", "branch:2,2,2"),
                                         ("sd", "chain:5"), ("specinfer", "branch:2,2"), ("rsd", "branch:2,2"),
                                         ("spectr", "seq:3x3")])
def test_q_equal_p_accepts_every_draft(method, tree):
    for target in (P, MarkovSource(np.tile(P, (4, 1)))):
        res = simulate(method, tree, target, target, calls=3000, seed=1)
        depth = len(res.acceptance_per_depth)
        assert res.tokens_per_call.mean == depth + 1 and res.acceptance_per_depth == [1.0] * depth


def test_autoregressive_is_one_token_per_call():
    res = simulate("autoregressive", "chain:0", P, Q, calls=1000, seed=0, emit_tokens=True)
    assert res.tokens_per_call.mean == 1.0 and len(res.tokens) == 1000 and res.acceptance_per_depth == []


def test_seeded_determinism():
    for model in ((P, Q), (MarkovSource(np.tile(P, (4, 1))), MarkovSource(np.tile(Q, (4, 1))))):
        a = simulate("ersd", "branch:3,2", *model, calls=5000, seed=7, emit_tokens=True)
        b = simulate("ersd", "branch:3,2", *model, calls=5000, seed=7, emit_tokens=True)
        c = simulate("ersd", "branch:3,2", *model, calls=5000, seed=8, emit_tokens=True)
        assert np.array_equal(a.tokens, b.tokens) and a.tokens_histogram == b.tokens_histogram
        assert not np.array_equal(a.tokens, c.tokens)


@pytest.mark.parametrize("method,tree", [("sd", "chain:3"), ("specinfer", "branch:2,2"), ("rsd", "batch:3"),
                                         ("spectr", "seq:2x2"), ("ersd", "branch:3,1"),
                                         ("autoregressive", "chain:0")])
def test_batched_engine_agrees_with_reference_walk(method, tree):
    rng = np.random.default_rng(0)
    target = MarkovSource(rng.dirichlet(np.ones(5), size=5))
    draft = MarkovSource(rng.dirichlet(np.ones(5), size=5))
    fast = simulate(method, tree, target, draft, calls=20_000, seed=1)
    calls = 600 if method == "spectr" else 1500      # the reference walk is slow (benchmarks/)
    ref = simulate(method, tree, target, draft, calls=calls, seed=2, engine="reference", streams=60)
    se = math.hypot(fast.tokens_per_call.std_error, ref.tokens_per_call.std_error)
    # the reference error is estimated from 60 streams: Student t (59 dof) at two-sided 1e-7
    threshold = stats.t.ppf(1 - 0.5e-7, 59)
    assert abs(fast.tokens_per_call.mean - ref.tokens_per_call.mean) <= threshold * se + 1e-12
    assert ref.engine == "reference" and sum(ref.tokens_histogram) == calls


def test_counts_and_token_streams_are_consistent():
    target = MarkovSource(np.tile(P, (4, 1)))
    draft = MarkovSource(np.tile(Q, (4, 1)))
    res = simulate("specinfer", "branch:2,1", target, draft, calls=1001, seed=0, streams=10, emit_tokens=True)
    hist = np.array(res.tokens_histogram)
    assert hist.sum() == 1001 and hist[0] == 0
    assert len(res.tokens) == (np.arange(len(hist)) * hist).sum() == res.stream_lengths.sum()
    assert len(res.stream_lengths) == 10
    assert res.reached_per_depth[0] == 1001 and res.accepted_per_depth[0] == hist[2:].sum()
    d = res.to_dict()
    json.dumps(d)
    assert {"method", "tree", "calls", "seed", "tokens_per_call", "acceptance_per_depth"} <= set(d)
    assert d["tokens_per_call"]["ci_low"] <= d["tokens_per_call"]["mean"] <= d["tokens_per_call"]["ci_high"]


def test_single_markov_stream_is_one_generation():
    src = MarkovSource([[0.0, 1.0], [1.0, 0.0]], initial=[1.0, 0.0])    # deterministic 0 1 0 1 ...
    res = simulate("sd", "chain:2", src, src, calls=50, seed=0, streams=1, emit_tokens=True)
    assert res.tokens.tolist() == [0, 1] * 75
    assert generate("rsd", "batch:1", src, src, streams=3, length=5).tolist() == [[0, 1, 0, 1, 0]] * 3


def test_sweep_runs_configs_in_order_and_matches_simulate():
    configs = grid(method=["sd", "ersd"], tree="chain", k=[1, 3], pair=(P, Q), calls=2000, seed=4)
    results = sweep(configs, n_jobs=2, backend="threading", progress=False)
    assert [(r.method, r.tree) for r in results] == [("sd", "chain:1"), ("sd", "chain:3"),
                                                     ("ersd", "chain:1"), ("ersd", "chain:3")]
    direct = simulate("ersd", "chain:3", P, Q, calls=2000, seed=4)
    assert results[3].tokens_histogram == direct.tokens_histogram


def test_large_vocabulary_iid_smoke():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5000)), rng.dirichlet(np.ones(5000))
    for method, tree in [("sd", "chain:2"), ("specinfer", "batch:2"), ("rsd", "batch:2"), ("spectr", "batch:2"),
                         ("ersd", "batch:2")]:
        res = simulate(method, tree, p, q, calls=300, seed=0)
        assert 1.0 <= res.tokens_per_call.mean <= 3.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(calls=0), "calls must be a positive integer"),
    (dict(calls=10, seed=-1), "seed must be a non-negative integer"),
    (dict(calls=10, engine="gpu"), "engine must be"),
    (dict(calls=10, confidence=1.5), "confidence"),
    (dict(calls=10, method="beam"), "unknown method"),
    (dict(calls=10, tree="batch:2"), "runs on a chain"),
    (dict(calls=10, tree="chain:0"), "at least one drafted token"),
    (dict(calls=10, draft_probs=[0.5, 0.5]), "vocabulary mismatch"),
    (dict(calls=10, target_probs=np.tile(P, (4, 1))), "MarkovSource"),
    (dict(calls=10, target_probs=[0.5, 0.6, 0.1, 0.0]), "not normalised"),
    (dict(calls=10, rho=2.0), "bad options"),
    (dict(calls=10, streams=0), "streams must be a positive integer"),
])
def test_bad_input(kwargs, match):
    args = dict(method="sd", tree="chain:2", target_probs=P, draft_probs=Q)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(**args)


def test_general_source_is_refused_with_a_pointer():
    class TreeOnly:
        vocab_size = 4

        def tree_probs(self, prefix, parents, tokens):
            return np.tile(P, (len(parents), 1))

    with pytest.raises(ValueError, match="speculative_generate"):
        simulate("sd", "chain:1", TreeOnly(), IIDSource(Q), calls=10)


def test_interval_does_not_collapse_when_every_call_is_identical():
    # q = p with sd on chain:3: every call yields 4 tokens; the interval must still have width.
    import numpy as np
    from chansim.simulate import simulate

    p = np.array([0.2, 0.3, 0.5])
    res = simulate("sd", "chain:3", p, p, calls=200, seed=0)
    est = res.tokens_per_call
    assert est.mean == 4.0
    assert est.ci_low < 4.0 <= est.ci_high
    assert est.ci_low > 3.9            # 200 identical calls: at most ~3% could differ
