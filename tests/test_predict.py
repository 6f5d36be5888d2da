"""Prediction of tokens per call from a logged path (chansim.predict)."""
import numpy as np
import pytest

from chansim.inputs.distributions import synthetic_pair
from chansim.predict import (
    ersd_path_acceptance,
    expected_calls,
    path_acceptance,
    predict_path,
    sd_path_acceptance,
    specinfer_path_acceptance,
)
from chansim.sampling.races import rank_distribution_exact


def _all_tokens(p, q):
    vocab = p.shape[-1]
    return np.tile(p, (vocab, 1)), np.tile(q, (vocab, 1)), np.arange(vocab)


@pytest.mark.parametrize("family,knob,seed", [("dirichlet", 0.8, 1), ("noisy", 2.0, 2), ("zipf", 0.7, 3), ("dirichlet", 0.3, 4)])
def test_ersd_conditional_acceptance_averages_to_rank_law(family, knob, seed):
    # E_y[c_y(m)] with y ~ p must equal P(R <= m) from the exact rank law.
    p, q = synthetic_pair(family, 8, knob, seed=seed)
    law = rank_distribution_exact(p, q)
    P, Q, y = _all_tokens(p, q)
    for m in (1, 2, 3, 5):
        c = ersd_path_acceptance(P, Q, y, m)
        assert np.all((c >= 0) & (c <= 1))
        assert abs(p @ c - law.probs[:m].sum()) < 1e-10


def test_ersd_conditional_acceptance_matches_monte_carlo_given_winner():
    # Direct check of c_y: among race trials whose p-winner is y, fraction with q-rank <= m.
    p, q = synthetic_pair("noisy", 6, 1.5, seed=7)
    rng = np.random.default_rng(11)
    noise = rng.standard_exponential((400_000, 6))
    winner = np.argmin(noise / p, axis=1)
    qtimes = noise / q
    rank = 1 + np.sum(qtimes < qtimes[np.arange(len(winner)), winner][:, None], axis=1)
    P, Q, y = _all_tokens(p, q)
    c = ersd_path_acceptance(P, Q, y, 2)
    for tok in range(6):
        sel = winner == tok
        n = sel.sum()
        est = np.mean(rank[sel] <= 2)
        sd = np.sqrt(max(c[tok] * (1 - c[tok]), 1e-12) / n)
        assert abs(est - c[tok]) < 5.5 * sd + 1e-9       # 5.5 sigma: false alarm < 1e-7 per token


def test_specinfer_conditional_acceptance_averages_to_node_acceptance():
    p, q = synthetic_pair("dirichlet", 7, 0.9, seed=5)
    P, Q, y = _all_tokens(p, q)
    for m in (1, 2, 4):
        c = specinfer_path_acceptance(P, Q, y, m)
        r, reject = p.copy(), 1.0
        for _ in range(m):
            beta = np.minimum(r, q).sum()
            reject *= 1 - beta
            r = np.maximum(r - q, 0)
            r = r / r.sum() if r.sum() > 0 else r
        assert abs(p @ c - (1 - reject)) < 1e-12


def test_sd_is_specinfer_with_one_draft_and_ersd_differs():
    p, q = synthetic_pair("dirichlet", 5, 0.6, seed=3)
    P, Q, y = _all_tokens(p, q)
    np.testing.assert_allclose(sd_path_acceptance(P, Q, y), specinfer_path_acceptance(P, Q, y, 1), atol=1e-14)
    assert p @ sd_path_acceptance(P, Q, y) == pytest.approx(np.minimum(p, q).sum(), abs=1e-14)


def test_identical_distributions_accept_everything():
    p, _ = synthetic_pair("dirichlet", 6, 0.0, seed=1)
    P, Q, y = _all_tokens(p, p)
    for method in ("sd", "specinfer", "ersd"):
        c = path_acceptance(method, P, Q, y, [1, 1])
        np.testing.assert_allclose(c, 1.0, atol=1e-9)


def _simulate_calls(accept, rng, runs):
    depth, length = accept.shape
    calls = np.zeros(runs)
    for r in range(runs):
        t = 0
        while t < length:
            calls[r] += 1
            d = 0
            while d < depth and t + d < length and rng.random() < accept[d, t + d]:
                d += 1
            t += d + 1
    return calls


def test_expected_calls_matches_direct_simulation_of_acceptance_events():
    rng = np.random.default_rng(3)
    accept = rng.random((3, 40))
    f = expected_calls(accept)
    calls = _simulate_calls(accept, np.random.default_rng(4), 20_000)
    se = calls.std() / np.sqrt(len(calls))
    assert abs(calls.mean() - f[0]) < 5.5 * se


def test_predict_path_chain_iid_limit():
    # Long i.i.d. path: sd chain prediction approaches (1 - b^(g+1)) / (1 - b) with b = E_y c_y.
    p, q = synthetic_pair("dirichlet", 6, 0.5, seed=9)
    rng = np.random.default_rng(0)
    y = rng.choice(6, size=20_000, p=p)
    P, Q = np.tile(p, (len(y), 1)), np.tile(q, (len(y), 1))
    pred = predict_path("sd", [1, 1, 1], [(P, Q, y)])
    # conditional c_t are not identical across positions, so compare to the exact renewal value
    c = sd_path_acceptance(P, Q, y)
    assert 1.0 < pred.tokens_per_call < 4.0
    beta = np.minimum(p, q).sum()
    assert abs(c.mean() - beta) < 5.5 * c.std() / np.sqrt(len(c))    # E_y[min(1, q_y/p_y)] = sum min(p, q)
    iid = (1 - beta**4) / (1 - beta)
    assert abs(pred.tokens_per_call - iid) / iid < 0.03
    lo, hi = pred.interval()
    assert lo <= pred.tokens_per_call <= hi


def test_bad_inputs_are_named():
    p, q = synthetic_pair("dirichlet", 4, 0.5, n=3, seed=1)
    with pytest.raises(ValueError, match="shape"):
        sd_path_acceptance(p, q, np.array([0, 1]))
    with pytest.raises(ValueError, match="token ids"):
        sd_path_acceptance(p, q, np.array([0, 1, 9]))
    with pytest.raises(ValueError, match="positive integer"):
        ersd_path_acceptance(p, q, np.array([0, 1, 2]), 0)
    with pytest.raises(ValueError, match="no path prediction"):
        path_acceptance("magic", p, q, np.array([0, 1, 2]), [1])
    with pytest.raises(ValueError, match="sd drafts a chain"):
        path_acceptance("sd", p, q, np.array([0, 1, 2]), [2])
