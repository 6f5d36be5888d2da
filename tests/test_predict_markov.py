"""Prediction from a logged path agrees with real speculative decoding on Markov models.

For each generated sequence y, E[calls to produce y | y] is computed from the on-path
(p_t, q_t) only (chansim.predict).  Averaged over sequences produced by the actual
method, it must equal the mean number of calls the method really made (tower rule), so
the per-sequence differences (actual - predicted) have mean zero.
"""
import numpy as np
import pytest

from chansim.predict import expected_calls, path_acceptance
from chansim.sampling.sources import MarkovSource
from chansim.verify import GeneratorNoise, KeyedNoise, speculative_generate

VOCAB = 4


@pytest.mark.parametrize(
    "method,tree,widths",
    [
        ("sd", "chain:3", [1, 1, 1]),
        ("specinfer", "branch:2,1", [2, 1]),
        ("ersd", "chain:2", [1, 1]),
        ("ersd", "branch:3,2", [3, 2]),
    ],
)
def test_predicted_calls_match_generation(method, tree, widths, markov_tables):
    target, draft = markov_tables(VOCAB, 3)
    target_src, draft_src = MarkovSource(target), MarkovSource(draft)
    length, runs = 60, 150
    diffs = []
    for run in range(runs):
        noise = KeyedNoise(1000 + run) if method == "ersd" else GeneratorNoise(np.random.default_rng(run))
        result = speculative_generate(method, tree, target_src, draft_src, length, noise, prefix=[0])
        y = result.tokens
        prev = np.concatenate([[0], y[:-1]])
        accept = path_acceptance(method, target[prev], draft[prev], y, widths)
        diffs.append(len(result.steps) - expected_calls(accept)[0])
    diffs = np.asarray(diffs)
    se = diffs.std(ddof=1) / np.sqrt(runs)
    # |t| < 5.5: a correct prediction fails with probability ~4e-8 (normal approximation)
    assert abs(diffs.mean()) < 5.5 * se + 1e-9, (diffs.mean(), se)
