"""Independent noise per sequence: keys, the load-time race check, and why (interval calibration)."""

import numpy as np
import pytest

from chansim.llm.logging_run import race_sample, stored_race_mismatches
from chansim.logs.format import LogError, read_log, write_log
from chansim.logs.noise_keys import PER_SEQUENCE, keyed_markov_paths, race_keys, sequence_key, sequence_rng
from chansim.predict import predict_path
from chansim.sampling.races import keyed_exponential


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log(path, keying, seed=4, n_seq=3, length=30, vocab=40):
    rng = np.random.default_rng(1)
    prompts, tokens, tl, dl = [], [], [], []
    for i in range(n_seq):
        prompt = [int(v) for v in rng.integers(0, vocab, size=5)]          # equal lengths: shared positions
        lt = np.log(_softmax(2.0 * rng.standard_normal((length, vocab))))
        lq = np.log(_softmax(np.exp(lt) + rng.standard_normal((length, vocab))))
        key = sequence_key(seed, i) if keying == "per-sequence" else seed
        tokens.append([race_sample(lt[t], key, len(prompt) + t) for t in range(length)])
        prompts.append(prompt)
        tl.append(lt)
        dl.append(lq)
    meta = {"seed": seed, "sampling": "keyed race on the target (synthetic test log)"}
    if keying != "shared":
        meta["noise_key"] = PER_SEQUENCE                   # "claims": per-sequence metadata over shared tokens
    return write_log(path, prompts=prompts, tokens=tokens, target_log_probs=tl, draft_log_probs=dl, metadata=meta)


def test_keys():
    assert race_keys({"seed": 2, "noise_key": PER_SEQUENCE}, 3) == [2, 2 + 2 ** 32, 2 + 2 ** 33]
    assert race_keys({"seed": 2}, 2, seed=7) == [7, 7]
    assert len({sequence_key(0, i) for i in range(100)}) == 100
    e0 = keyed_exponential(sequence_key(0, 0), 10, np.arange(50))
    e1 = keyed_exponential(sequence_key(0, 1), 10, np.arange(50))
    assert not np.allclose(e0, e1)                         # same position, other sequence: other noise
    assert sequence_rng(3, 1).random() == sequence_rng(3, 1).random() != sequence_rng(3, 2).random()
    with pytest.raises(ValueError, match="seed"):
        sequence_key(2 ** 32, 0)
    with pytest.raises(ValueError, match="index"):
        sequence_key(0, -1)


def test_per_sequence_log_is_checked_with_its_keys(tmp_path):
    run = read_log(_log(tmp_path / "ok.npz", "per-sequence"))
    assert run.metadata["noise_key"] == PER_SEQUENCE and stored_race_mismatches(run) == []
    shared = read_log(_log(tmp_path / "shared.npz", "shared"))           # an older log: one key for all
    assert stored_race_mismatches(shared) == []
    # per-sequence metadata over tokens drawn with one shared key: refused at load
    with pytest.raises(LogError, match="do not belong to these tokens"):
        read_log(_log(tmp_path / "bad.npz", "claims"))


def test_shared_keys_make_the_prediction_interval_overconfident():
    """Race paths keyed by position only are dependent across sequences: the bootstrap spread is far too small."""
    rng = np.random.default_rng(0)
    vocab = 30
    target = rng.dirichlet(np.full(vocab, 0.3), size=vocab)
    draft = 0.6 * target + 0.4 * rng.dirichlet(np.full(vocab, 0.3), size=vocab)

    def predicted(seed, per_sequence, n_seq=16, length=24):
        seqs = keyed_markov_paths(target, draft, seed, n_seq, length, per_sequence=per_sequence)
        pred = predict_path("sd", [1], seqs)
        lo, hi = pred.interval(0.95, 300)
        return pred.tokens_per_call, (hi - lo) / 3.92

    ratio = {}
    for per_sequence in (False, True):
        res = np.array([predicted(s, per_sequence) for s in range(60)])
        ratio[per_sequence] = res[:, 0].std(ddof=1) / res[:, 1].mean()     # true spread / reported spread
    assert ratio[False] > 3.0 and 0.6 < ratio[True] < 1.6, ratio
