"""Adaptive draft length of a model draft (confidence stop, chansim.verify.speculative_step(confidence=...)):
exact for every method (chi-square, a broken variant caught), ERSD still reproduces race sampling, and the
prediction from a log (chansim.logs.adaptive) matches the fixed chain at threshold 0 and Monte Carlo runs."""
import numpy as np
import pytest

from chansim.logs.adaptive import choose_threshold, confidence_path, predict_confidence, stop_lengths
from chansim.logs.format import read_log, write_log
from chansim.sampling.races import keyed_exponential, race_winner
from chansim.sampling.sources import MarkovSource
from chansim.verify import SD, GeneratorNoise, KeyedNoise, speculative_generate, speculative_step
from chansim.verify.base import residual, sample_rows
from test_verify_exactness import ALPHA, chisquare_pvalue, ngram_counts

THRESHOLD = 0.6


def _pair():
    """Markov target/draft over 4 tokens; the draft is confident (max q >= 0.7) and mostly right after
    tokens 0 and 1, unsure (max q <= 0.4) and mostly wrong after 2 and 3 (acceptance 0.3-0.55), so a
    threshold of 0.6 cuts chains where drafting wastes work."""
    t = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.5, 0.3, 0.1], [0.05, 0.05, 0.1, 0.8], [0.1, 0.1, 0.7, 0.1]])
    d = np.array([[0.7, 0.2, 0.05, 0.05], [0.05, 0.8, 0.1, 0.05], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    init = np.full(4, 0.25)
    return MarkovSource(t, init), MarkovSource(d, init)


def _law_pvalue(method, streams, seed, confidence=THRESHOLD, prefix=(2,)):
    target, draft = _pair()
    rng = np.random.default_rng(seed)
    seqs = np.array([speculative_generate(method, "chain:3", target, draft, 3, GeneratorNoise(rng), prefix=list(prefix),
                                          confidence=confidence).tokens for _ in range(streams)])
    T = target.transition
    law = T[prefix[-1]][:, None, None] * T[:, :, None] * T[None, :, :]
    return chisquare_pvalue(ngram_counts(seqs, 4), law)


@pytest.mark.parametrize("method", ["sd", "specinfer", "spectr", "ersd", "block"])
def test_confidence_stop_generates_the_target_law(method):
    assert _law_pvalue(method, streams=3000, seed=5) > ALPHA
    assert _law_pvalue(method, streams=3000, seed=6, prefix=(0,)) > ALPHA


class CutAsRejection(SD):
    """Broken: a node with no drafted child (where the chain was cut) is treated as a rejection --
    the token comes from the residual norm((p - q)+) instead of p."""

    name = "broken-cut-as-rejection"

    def verify(self, p, q, drafts, noise):
        if drafts.shape[1] == 0 and np.isfinite(q).all():
            u = noise.rng.random(noise.batch)
            return np.full(noise.batch, -1, dtype=np.int64), sample_rows(residual(p, q), u)
        return super().verify(p, q, drafts, noise)


def test_broken_cut_is_caught():
    assert min(_law_pvalue(CutAsRejection(), streams=3000, seed=5),
               _law_pvalue(CutAsRejection(), streams=3000, seed=6, prefix=(0,))) < ALPHA


def test_ersd_with_confidence_stop_reproduces_race_sampling():
    target, draft = _pair()
    prefix, n, seed = [1], 40, 9
    seq = list(prefix)
    for _ in range(n):                                        # keyed race sampling of the target alone
        p = target.transition[seq[-1]]
        seq.append(int(race_winner(keyed_exponential(seed, np.int64(len(seq)), np.arange(4)), p)))
    out = speculative_generate("ersd", "chain:4", target, draft, n, KeyedNoise(seed), prefix=prefix,
                               confidence=THRESHOLD)
    assert out.tokens.tolist() == seq[1:]
    assert min(len(s.events) for s in out.steps) < 4 < max(len(s.events) for s in out.steps) + 1  # cut and full


def test_confidence_stop_shapes_and_errors():
    target, draft = _pair()
    full = speculative_generate("sd", "chain:3", target, draft, 30, GeneratorNoise(1), prefix=[0])
    zero = speculative_generate("sd", "chain:3", target, draft, 30, GeneratorNoise(1), prefix=[0], confidence=0.0)
    assert full.tokens.tolist() == zero.tokens.tolist()       # 0 = no stop, same random stream
    never = speculative_generate("sd", "chain:3", target, draft, 30, GeneratorNoise(1), prefix=[0], confidence=1.01)
    assert all(s.n_tokens == 1 and len(s.events) == 0 for s in never.steps)
    step = speculative_step("sd", "chain:3", [3], target, draft, GeneratorNoise(0), confidence=THRESHOLD)
    assert step.n_tokens == 1 and len(step.events) == 0       # unsure after 3: nothing drafted, one target token
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(ValueError, match="confidence must be"):
            speculative_step("sd", "chain:3", [3], target, draft, GeneratorNoise(0), confidence=bad)
    with pytest.raises(ValueError, match="applies to chains"):
        speculative_step("ersd", "batch:2", [3], target, draft, GeneratorNoise(0), confidence=0.5)


# ----------------------------------------------------------------------------- prediction from a log
def _log(path, n_seq, length, seed=4):
    target, draft = _pair()
    rng = np.random.default_rng(seed)
    prompts, tokens, tl, dl = [], [], [], []
    for _ in range(n_seq):
        seq = [int(rng.integers(4))]
        for _ in range(length):
            seq.append(int(rng.choice(4, p=target.transition[seq[-1]])))
        prompts.append(seq[:1])
        tokens.append(seq[1:])
        tl.append(np.log(target.transition[seq[:-1]]))
        dl.append(np.log(draft.transition[seq[:-1]]))
    write_log(path, prompts=prompts, tokens=tokens, target_log_probs=tl, draft_log_probs=dl,
              metadata={"seed": seed, "temperature": 1.0})
    return read_log(path)


def test_stop_lengths_and_recursion_by_hand():
    assert stop_lengths([0.9, 0.2, 0.8, 0.8, 0.8], 2, 0.5).tolist() == [1, 0, 2, 2, 1]
    # one position, chain of 1 always drafted and accepted w.p. 0.5: a call makes 1 token (the path ends)
    assert confidence_path(np.array([[0.5]]), np.array([1]))["calls"] == 1.0
    # two positions, first node accepted w.p. a: E[calls] = 1 + (1 - a); with L = 0 always 2 calls
    a = 0.3
    out = confidence_path(np.array([[a, a]]), np.array([1, 1]), {"drafted": [1, 1]})
    assert out["calls"] == pytest.approx(2 - a) and out["drafted"] == pytest.approx(1 + (1 - a))
    assert confidence_path(np.array([[a, a]]), np.array([0, 0]))["calls"] == 2.0


def test_prediction_matches_fixed_chain_and_monte_carlo(tmp_path):
    from chansim.logs.predict import predict_from_log

    run = _log(tmp_path / "a.npz", n_seq=150, length=40)
    rows = predict_confidence(run, [0.0, THRESHOLD, 2.0], k=3, method="sd")
    fixed = predict_from_log(run, "sd", "chain:3")
    assert rows[0]["tokens_per_call"]["mean"] == pytest.approx(fixed["mean"], rel=1e-12)
    assert rows[2]["tokens_per_call"]["mean"] == pytest.approx(1.0) and rows[2]["drafted_per_call"] == 0
    assert rows[2]["draft_forwards_per_call"] == pytest.approx(1.0)
    # Monte Carlo: sd with the stop on fresh target text (same chain, same threshold)
    target, draft = _pair()
    rng = np.random.default_rng(11)
    tokens = calls = drafted = 0
    for _ in range(150):
        out = speculative_generate("sd", "chain:3", target, draft, 40, GeneratorNoise(rng),
                                   prefix=[int(rng.integers(4))], confidence=THRESHOLD)
        tokens += 40
        calls += len(out.steps)
        drafted += sum(len(s.path) + (1 if len(s.events) and not s.events[-1] else 0) for s in out.steps)
    mid = rows[1]
    assert mid["tokens_per_call"]["ci_low"] - 0.03 <= tokens / calls <= mid["tokens_per_call"]["ci_high"] + 0.03
    assert 1.0 < mid["tokens_per_call"]["mean"] < rows[0]["tokens_per_call"]["mean"]
    # costs: a dear draft makes the stop pay (fewer wasted draft forwards), a free one does not
    costs = {"call": {n: [1.0] for n in range(1, 5)}, "draft_ratio": 0.5}
    dear = predict_confidence(run, [0.0, THRESHOLD], k=3, costs=costs)
    assert choose_threshold(dear)["threshold"] == THRESHOLD
    free = predict_confidence(run, [0.0, THRESHOLD], k=3, costs=dict(costs, draft_ratio=0.0))
    assert choose_threshold(free)["threshold"] == 0.0
    s = free[0]
    assert s["wall_speedup"]["mean"] == pytest.approx(s["tokens_per_call"]["mean"])   # flat c(n), free draft
    with pytest.raises(ValueError, match="thresholds"):
        predict_confidence(run, [-1.0], k=3)
    with pytest.raises(ValueError, match="jointly"):
        predict_confidence(run, [0.5], k=3, method="block")


# ----------------------------------------------------------------------------- the real model (llm tier)
def test_real_pair_confidence_stop_keeps_ersd_exact_and_cuts_drafts(default_pair):
    from chansim.llm.generate import generate_real, race_continuation
    from chansim.llm.measure import pydoc_prompts

    prompt = pydoc_prompts(default_pair.tokenizer, 1, 16)[0]
    ref = race_continuation(default_pair.target, prompt, 8, temperature=1.0, seed=3)
    full = generate_real(default_pair, "ersd", "chain:3", prompt, 8, seed=3)
    cut = generate_real(default_pair, "ersd", "chain:3", prompt, 8, seed=3, confidence=0.9)
    never = generate_real(default_pair, "sd", "chain:3", prompt, 4, seed=3, confidence=1.01)
    assert full.tokens.tolist() == cut.tokens.tolist() == ref.tolist()
    assert sum(cut.reached_per_depth) <= sum(full.reached_per_depth)
    assert cut.draft_forwards < full.draft_forwards
    assert never.target_calls == 4 and sum(never.reached_per_depth) == 0
