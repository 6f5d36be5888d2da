"""How much shared randomness across sequences hides from the intervals (synthetic Markov pair).

Measured side: sd chain:1 on 16 prompts x 24 tokens, once with one uniform stream reused by every
prompt (what `llm validate` did before chansim.logs.noise_keys) and once with a stream per prompt.
Predicted side: logs sampled by keyed races with one key for every sequence (noise shared at
each absolute position) or a key per sequence, predicted with chansim.predict.predict_path.
For each, over 150 seeds: the spread of the estimate against the standard error it reports.

Usage: python experiments/shared_randomness.py   (under a minute on one core)
"""
import numpy as np

from chansim.logs.noise_keys import keyed_markov_paths, sequence_rng
from chansim.predict import predict_path
from chansim.sampling.sources import MarkovSource
from chansim.common.stats import ratio_interval
from chansim.verify import KeyedNoise, as_tree, get_method, speculative_generate

V, N_SEQ, LENGTH, SEEDS = 30, 16, 24, 150
rng = np.random.default_rng(0)
TARGET = rng.dirichlet(np.full(V, 0.3), size=V)
DRAFT = 0.6 * TARGET + 0.4 * rng.dirichlet(np.full(V, 0.3), size=V)


def measured(seed, shared):
    tokens, calls = [], []
    for i in range(N_SEQ):
        noise = KeyedNoise(seed) if shared else KeyedNoise(seed, rng=sequence_rng(seed, i))
        out = speculative_generate(get_method("sd"), as_tree("chain:1"), MarkovSource(TARGET), MarkovSource(DRAFT),
                                   LENGTH, noise, prefix=[i % V])
        tokens.append(LENGTH)
        calls.append(len(out.steps))
    iv = ratio_interval(tokens, calls)
    return iv["mean"], iv["std_error"]


def predicted(seed, shared):
    seqs = keyed_markov_paths(TARGET, DRAFT, seed, N_SEQ, LENGTH, per_sequence=not shared)
    pred = predict_path("sd", [1], seqs)
    lo, hi = pred.interval(0.95, 400)
    return pred.tokens_per_call, (hi - lo) / 3.92


for name, fn in (("measured", measured), ("predicted", predicted)):
    for shared in (True, False):
        res = np.array([fn(s, shared) for s in range(SEEDS)])
        print(f"{name:9s} {'shared' if shared else 'per-sequence':12s} mean {res[:, 0].mean():.4f}  "
              f"spread over seeds {res[:, 0].std(ddof=1):.4f}  mean reported s.e. {res[:, 1].mean():.4f}  "
              f"ratio {res[:, 0].std(ddof=1) / res[:, 1].mean():.2f}")
