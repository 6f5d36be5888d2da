"""Deterministic drafts (prompt lookup, n-gram model): proposals against independent references,
and every verifier exact with a point-mass draft and with an empty draft.

Statistical tests reuse the chi-square batteries of ``tests/test_verify_exactness.py`` (fixed seeds,
p-value threshold 1e-9: a correct implementation fails with probability < 1e-6 per run) and must
catch deliberately broken verifiers with the same settings.
"""
import numpy as np
import pytest

from chansim.drafts import (NGramModel, PromptLookup, call_lengths, deterministic_generate, deterministic_step,
                            parse_draft)
from chansim.sampling.sources import MarkovSource
from chansim.verify import SD, GeneratorNoise, KeyedNoise, Method, get_method
from chansim.verify.base import NodeNoise, sample_rows
from test_verify_exactness import (ALPHA, IID_PAIRS, BrokenRounds, chisquare_pvalue, iid_pvalues,
                                   markov_pvalues, ngram_counts)

CHAIN_METHODS = ["sd", "specinfer", "rsd", "spectr", "ersd", "block", "multidraft"]


# ----------------------------------------------------------------------------- proposals
def _hf_prompt_lookup(context, max_ngram, num_tokens):
    """transformers' own PromptLookupCandidateGenerator (the independent reference)."""
    torch = pytest.importorskip("torch")
    cg = pytest.importorskip("transformers.generation.candidate_generator")
    gen = cg.PromptLookupCandidateGenerator(num_output_tokens=num_tokens, max_matching_ngram_size=max_ngram,
                                            max_length=10_000)
    ids = torch.tensor([list(context)], dtype=torch.long)
    out, _ = gen.get_candidates(ids)
    return out[0, len(context):].tolist()


def test_prompt_lookup_matches_transformers():
    rng = np.random.default_rng(0)
    checked = nonempty = 0
    for _ in range(400):
        vocab, length = int(rng.integers(2, 8)), int(rng.integers(2, 40))
        ctx = rng.integers(0, vocab, length).tolist()
        n, k = int(rng.integers(1, 4)), int(rng.integers(1, 9))
        mine = PromptLookup(max_ngram=n, num_tokens=k).propose(ctx).tolist()
        assert mine == _hf_prompt_lookup(ctx, n, k), (ctx, n, k)
        checked += 1
        nonempty += bool(mine)
    assert checked == 400 and 0 < nonempty < 400          # both outcomes, proposals and "nothing", were compared


def _ngram_reference(ctx, max_order, min_order, k, threshold):
    """Dictionary counts, written independently of the numpy implementation."""
    seq, out, conf = list(ctx), [], []
    for _ in range(k):
        choice = None
        for n in range(min(max_order, len(seq)), min_order - 1, -1):
            key = tuple(seq[len(seq) - n:])
            follow = [(ctx[i + n], i) for i in range(len(ctx) - n) if tuple(ctx[i:i + n]) == key]
            if follow:
                counts = {}
                for tok, i in follow:
                    c, last = counts.get(tok, (0, -1))
                    counts[tok] = (c + 1, max(last, i))
                tok = max(counts, key=lambda t: counts[t])       # most counts, then most recent
                choice = (tok, counts[tok][0] / len(follow))
                break
        if choice is None or choice[1] < threshold:
            break
        out.append(choice[0])
        conf.append(choice[1])
        seq.append(choice[0])
    return out, conf


def test_ngram_model_matches_dictionary_reference():
    rng = np.random.default_rng(1)
    for _ in range(300):
        vocab, length = int(rng.integers(2, 6)), int(rng.integers(1, 30))
        ctx = rng.integers(0, vocab, length).tolist()
        order, k = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        thr = float(rng.choice([0.0, 0.4, 0.7]))
        toks, conf = NGramModel(max_order=order, num_tokens=k, threshold=thr).propose_with_confidence(ctx)
        ref_toks, ref_conf = _ngram_reference(ctx, order, 1, k, thr)
        assert toks.tolist() == ref_toks and np.allclose(conf, ref_conf), (ctx, order, k, thr)


def test_draft_specs_and_errors():
    assert parse_draft("lookup:4").name == "lookup:4"
    assert parse_draft("lookup:8:3,last") == PromptLookup(3, 8, occurrence="last")
    assert parse_draft(parse_draft("ngram:5:2@0.5").name) == NGramModel(2, 5, threshold=0.5)
    for bad in ("lookup", "lookup:0", "lookup:4@0.5", "ngram:4,last", "tree:3"):
        with pytest.raises(ValueError):
            parse_draft(bad)
    with pytest.raises(ValueError, match="min_ngram"):
        PromptLookup(max_ngram=1, min_ngram=2)
    with pytest.raises(ValueError, match=">= 0"):
        PromptLookup().propose([1, -2])
    assert PromptLookup().propose([]).size == 0 and NGramModel().propose([7]).size == 0


# ----------------------------------------------------------------------------- exactness, point mass
POINT = np.array([0.0, 0.0, 1.0, 0.0])           # q = delta_2; p = the "zeros" target (p_2 = 0.2, p_3 = 0)
POINT_ON_ZERO = np.array([0.0, 0.0, 0.0, 1.0])   # a point mass on a token the target never emits


@pytest.mark.parametrize("q", [POINT, POINT_ON_ZERO], ids=["delta-on-support", "delta-off-support"])
@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_point_mass_draft_iid_exact(method, q):
    p = IID_PAIRS["zeros"][0]
    pv3, pv2 = iid_pvalues(method, "chain:3", p, q, calls=40_000, seed=11)
    assert pv3 > ALPHA and pv2 > ALPHA, (pv3, pv2)


def _point_mass_markov(vocab=4, seed=5):
    """A Markov target and a deterministic draft: after token x the draft proposes (x + 1) mod V."""
    rng = np.random.default_rng(seed)
    t = 0.8 * rng.dirichlet(np.full(vocab, 1.0), size=vocab) + 0.2 / vocab
    d = np.roll(np.eye(vocab), 1, axis=1)                  # rows: point masses
    return MarkovSource(t, rng.dirichlet(np.full(vocab, 3.0))), MarkovSource(d, np.eye(vocab)[0])


@pytest.mark.parametrize("method", CHAIN_METHODS)
def test_point_mass_draft_markov_exact(method):
    target, draft = _point_mass_markov()
    assert min(markov_pvalues(method, "chain:3", target, draft, streams=40_000, seed=3)) > ALPHA


@pytest.mark.parametrize("method", ["autoregressive"] + CHAIN_METHODS)
def test_empty_draft_exact(method):
    """A call that drafts nothing: the node rule with m = 0 children outputs a target sample."""
    p = IID_PAIRS["zeros"][0]
    m = get_method(method)
    batch = 60_000
    rng = np.random.default_rng(21)
    race = rng.standard_exponential((batch, p.size)) if m.uses_race else None
    acc, tok = m.verify(p[None, :], p[None, :], np.empty((batch, 0), dtype=np.int64), NodeNoise(rng, batch, race))
    assert (acc == -1).all()
    assert chisquare_pvalue(np.bincount(tok, minlength=p.size), p) > ALPHA


# ----------------------------------------------------------------------------- the decoding loop itself
def _lookup_law_pvalue(method, draft, target, prefix, streams, seed, length=3):
    """Chi-square of the first ``length`` generated tokens against the Markov target's exact law."""
    rng = np.random.default_rng(seed)
    seqs = np.array([deterministic_generate(method, draft, target, length, GeneratorNoise(rng), prefix=prefix).tokens
                     for _ in range(streams)])
    T = target.transition
    law = T[prefix[-1]][:, None, None] * T[:, :, None] * T[None, :, :]        # x1, x2, x3 after the prefix
    return chisquare_pvalue(ngram_counts(seqs, T.shape[0]), law)


PREFIX = [0, 1, 0, 0, 1, 1, 0]      # no token 2: after a first 2 lookup proposes nothing, elsewhere it copies


def _copy_target(vocab=3):
    """A Markov target that mostly repeats the cycle 0 -> 1 -> 2 -> 0 (so lookup drafts are often right)."""
    t = np.full((vocab, vocab), 0.15)
    t[np.arange(vocab), (np.arange(vocab) + 1) % vocab] = 0.7
    return MarkovSource(t / t.sum(1, keepdims=True), np.full(vocab, 1 / vocab))


@pytest.mark.slow
@pytest.mark.parametrize("method,draft", [("sd", "lookup:3"), ("ersd", "lookup:3"), ("sd", "ngram:3:2"),
                                          ("spectr", "lookup:2:1,last")])
def test_lookup_decoding_generates_target_law(method, draft):
    assert _lookup_law_pvalue(method, draft, _copy_target(), PREFIX, streams=2000, seed=8) > ALPHA


class GreedyCopy(Method):
    """Broken: accepts a drafted token whenever the target gives it probability >= 0.3 (a common shortcut)."""

    name = "broken-greedy-copy"
    chains_only = True

    def draft(self, q, slots, noise):
        return SD().draft(q, slots, noise)

    def verify(self, p, q, drafts, noise):
        token = sample_rows(p, noise.rng.random(noise.batch))
        acc = np.full(noise.batch, -1, dtype=np.int64)
        if drafts.shape[1]:
            ok = p[np.arange(p.shape[0]), drafts[:, 0]] >= 0.3
            acc[ok] = 0
            token[ok] = drafts[ok, 0]
        return acc, token


class ArgmaxWhenEmpty(Method):
    """Broken: sd, except that a call with nothing drafted emits the target's argmax."""

    name = "broken-argmax-empty"
    chains_only = True

    def draft(self, q, slots, noise):
        return SD().draft(q, slots, noise)

    def verify(self, p, q, drafts, noise):
        if drafts.shape[1] == 0:
            return np.full(noise.batch, -1, dtype=np.int64), np.full(noise.batch, int(np.argmax(p[0])))
        return SD().verify(p, q, drafts, noise)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [GreedyCopy(), ArgmaxWhenEmpty(), BrokenRounds("no-residual", SD())],
                         ids=["greedy-copy", "argmax-when-empty", "no-residual"])
def test_broken_verifiers_caught_with_lookup_draft(broken):
    assert _lookup_law_pvalue(broken, "lookup:3", _copy_target(), PREFIX, streams=2000, seed=8) < ALPHA


def test_broken_point_mass_caught_by_iid_battery():
    p = IID_PAIRS["zeros"][0]
    assert min(iid_pvalues(BrokenRounds("no-residual", SD()), "chain:3", p, POINT, calls=40_000, seed=11)) < ALPHA


# ----------------------------------------------------------------------------- calls are a function of the text
@pytest.mark.parametrize("method", ["sd", "specinfer", "rsd", "spectr", "ersd"])
@pytest.mark.parametrize("draft", ["lookup:4", "ngram:3@0.5"])
def test_calls_follow_from_the_generated_text(method, draft):
    """With a point-mass draft a drafted token is accepted iff the output token equals it, so the calls
    of a run are call_lengths(draft, prefix, generated text): the identity the log prediction rests on."""
    target = _copy_target()
    for seed in range(5):
        out = deterministic_generate(method, draft, target, 30, GeneratorNoise(seed), prefix=PREFIX)
        proposed, accepted = call_lengths(draft, PREFIX, out.tokens)
        assert proposed.tolist() == out.proposed.tolist()
        # the last call may overshoot the end of the text; all others agree exactly
        assert accepted[:-1].tolist() == out.accepted[:-1].tolist()
        assert accepted[-1] <= out.accepted[-1]


def test_ersd_with_lookup_reproduces_race_sampling():
    """ERSD with a deterministic draft (empty proposals included) outputs the target's keyed race samples."""
    from chansim.sampling.races import keyed_exponential, race_winner

    target = _copy_target()
    out = deterministic_generate("ersd", "lookup:3", target, 25, KeyedNoise(4), prefix=PREFIX)
    seq = list(PREFIX)
    for _ in range(25):
        p = target.transition[seq[-1]]
        seq.append(int(race_winner(keyed_exponential(4, np.int64(len(seq)), np.arange(3)), p)))
    assert out.tokens.tolist() == seq[len(PREFIX):]
    assert (out.proposed == 0).any() and (out.proposed > 0).any()      # empty and real proposals both met


def test_deterministic_step_empty_proposal_is_one_target_token():
    target = _copy_target()
    step = deterministic_step("sd", [], PREFIX, target, GeneratorNoise(0))
    assert step.n_tokens == 1 and step.accepted == 0
    with pytest.raises(ValueError, match="outside"):
        deterministic_step("sd", [5], PREFIX, target, GeneratorNoise(0))


# ----------------------------------------------------------------------------- theory with q = point mass
@pytest.mark.parametrize("method", CHAIN_METHODS[:-1])
@pytest.mark.parametrize("d", [0, 2, 3])
def test_theory_with_a_point_mass_draft(method, d):
    """Node acceptance p(d) (alpha_ER too) and E[tokens per call] = (1 - p(d)^(k+1)) / (1 - p(d)) on chain:k,
    computed by hand from the exact rationals of p; d = 3 is a token the target never emits."""
    from fractions import Fraction

    from chansim.sampling.races import er_acceptance
    from chansim.theory import expected_tokens
    from chansim.theory.nodes import node_acceptance
    from chansim.inputs.trees import as_tree

    p = IID_PAIRS["zeros"][0]
    q = np.eye(p.size)[d]
    beta = Fraction(str(p[d]))
    assert node_acceptance(method, p, q, 1) == pytest.approx(float(beta), abs=1e-15)
    assert er_acceptance(p, q) == pytest.approx(float(beta), abs=1e-15)
    for k in (1, 3):
        closed = sum(beta ** j for j in range(k + 1))
        e = expected_tokens(method, as_tree(f"chain:{k}"), p, q)
        assert e.exact and e.value == pytest.approx(float(closed), abs=1e-12)
