"""Real speculative generation on SmolLM2-135M (CPU): ERSD = race sampling, exactness of residual methods.

Tolerance of the statistical tests: Pearson chi-square over the bins of the most likely
tokens (expected count >= 5) plus an "other" bin, exact probabilities from the target
model; a test fails when the p-value is below ALPHA = 1e-6, so a correct implementation
fails with probability < 1e-6 per test (seeds are fixed, so the outcome is deterministic).
A deliberately broken verifier (rejection -> p instead of the residual) gets p ~ 1e-24.
"""
import numpy as np
import pytest
from scipy import stats

pytest.importorskip("torch")
pytest.importorskip("transformers")

from chansim.llm.generate import ModelSource, generate_real, race_continuation  # noqa: E402
from chansim.verify import GeneratorNoise, speculative_generate  # noqa: E402
from chansim.verify.specinfer import SpecInfer  # noqa: E402
from chansim.verify.base import sample_rows, take_rows  # noqa: E402

pytestmark = pytest.mark.llm

ALPHA = 1e-6
SEED = 11
PROMPT = "The assert statement is a convenient way to insert debugging assertions into a"


@pytest.fixture(scope="module")
def pair(default_pair):
    return default_pair


@pytest.fixture(scope="module")
def prompt(pair):
    return pair.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def race_reference(pair, prompt):
    return race_continuation(pair.target, prompt, 12, 1.0, SEED)


# ---------------------------------------------------------------- ERSD = race sampling


@pytest.mark.parametrize("tree", ["chain:3", "batch:3"])
def test_ersd_reproduces_race_sampling(pair, prompt, race_reference, tree):
    res = generate_real(pair, "ersd", tree, prompt, 12, 1.0, SEED)
    np.testing.assert_array_equal(res.tokens, race_reference)
    # bookkeeping: one target forward per call, the draft skips its leaf level
    assert res.target_forwards == res.target_calls == sum(res.tokens_histogram)
    depth = 3 if tree == "chain:3" else 1
    assert res.draft_forwards == depth * res.target_calls
    assert sum(j * c for j, c in enumerate(res.tokens_histogram)) >= 12
    assert res.tokens_per_call == 12 / res.target_calls and res.tokens_per_call > 1
    assert all(0 <= a <= r for a, r in zip(res.accepted_per_depth, res.reached_per_depth))
    assert res.wall_seconds >= res.target_seconds + res.draft_seconds > 0


def test_other_seed_other_text(pair, prompt, race_reference):
    res = generate_real(pair, "ersd", "batch:2", prompt, 12, 1.0, SEED + 1)
    assert not np.array_equal(res.tokens, race_reference)


def test_every_method_runs(pair, prompt):
    for method, tree in [("autoregressive", "chain:0"), ("rsd", "branch:2,1"), ("spectr", "seq:2x2")]:
        res = generate_real(pair, method, tree, prompt, 3, 1.0, 0)
        assert res.tokens.shape == (3,) and res.target_calls >= 1
    assert generate_real(pair, "autoregressive", "chain:0", prompt, 3, 1.0, 0).draft_forwards == 0
    with pytest.raises(ValueError, match="chain"):
        generate_real(pair, "sd", "batch:2", prompt, 3)


# ---------------------------------------------------------------- exactness of residual methods
class ShallowMemo:
    """A memoised ModelSource whose rows deeper than ``keep`` tokens past the prompt are uniform.

    The first ``keep + 1`` generated tokens depend only on rows whose context is at most
    ``keep`` tokens past the prompt (row at context depth d gives the law of token d + 1,
    and the walk decides tokens in order), so replacing deeper rows by any fixed law
    leaves their joint law unchanged, while the model runs once per distinct context.
    """

    def __init__(self, network, prompt, keep, temperature):
        self.source = ModelSource(network, temperature)
        self.vocab_size = self.source.vocab_size
        self.base, self.keep = len(prompt), keep
        self.memo = {}
        self.dummy = np.full(self.vocab_size, 1.0 / self.vocab_size)

    def prefetch(self, prompt, tokens):
        """Rows after ``prompt + [x]`` for every x in ``tokens`` (one forward pass, a batch tree)."""
        self.tree_probs(prompt, [-1] + [0] * len(tokens), [-1] + list(tokens))

    def tree_probs(self, prefix, parents, tokens):
        keys = [tuple(int(t) for t in prefix)]
        for i in range(1, len(parents)):
            keys.append(keys[parents[i]] + (int(tokens[i]),))
        real = np.array([len(k) - self.base <= self.keep for k in keys])    # ancestor-closed
        if any(real[i] and keys[i] not in self.memo for i in range(len(keys))):
            idx = np.flatnonzero(real)
            remap = {int(old): new for new, old in enumerate(idx)}
            sub_par = [-1] + [remap[int(parents[i])] for i in idx[1:]]
            rows = self.source.tree_probs(prefix, sub_par, np.asarray(tokens)[idx])
            for j, i in enumerate(idx):
                self.memo[keys[i]] = rows[j]
        return np.stack([self.memo[k] if r else self.dummy for k, r in zip(keys, real)])


def chisquare_pvalue(counts, probs):
    counts, probs = np.asarray(counts, float), np.asarray(probs, float)
    exp = counts.sum() * probs
    return float(stats.chi2.sf(((counts - exp) ** 2 / exp).sum(), len(counts) - 1))


def binned(samples, law, min_expected=5.0):
    """Counts and probabilities over the outcomes with n * P >= min_expected plus one 'other' bin."""
    n = len(samples)
    bins = sorted((o for o, pr in law.items() if n * pr >= min_expected), key=lambda o: -law[o])
    index = {o: j for j, o in enumerate(bins)}
    counts = np.zeros(len(bins) + 1)
    for s in samples:
        counts[index.get(s, len(bins))] += 1
    probs = np.array([law[o] for o in bins] + [0.0])
    probs[-1] = max(0.0, 1.0 - probs[:-1].sum())
    return counts, probs


class BrokenSD(SpecInfer):
    """Deliberately wrong: on rejection samples from p instead of the residual norm((p - q)+)."""

    name = "broken"
    chains_only = True

    def verify(self, p, q, drafts, noise):
        u = noise.rng.random((drafts.shape[0], 2))
        if drafts.shape[1] == 0:
            return np.full(drafts.shape[0], -1), sample_rows(p, u[:, 1])
        x = drafts[:, 0]
        ok = u[:, 0] * take_rows(q, x) < take_rows(p, x)
        return np.where(ok, 0, -1), np.where(ok, x, sample_rows(p, u[:, 1]))


RUNS = 1200
#: T = 0.5 keeps the tail light (the 128 likeliest first tokens hold 99.98 % of p and q), so
#: one batched pass per model covers almost every context; Σ min(p, q) = 0.77 at the root,
#: so rejections (and residuals) are frequent.
TEMPERATURE = 0.5


@pytest.fixture(scope="module")
def memo_sources(pair, prompt):
    target = ShallowMemo(pair.target, prompt, keep=1, temperature=TEMPERATURE)
    draft = ShallowMemo(pair.draft, prompt, keep=1, temperature=TEMPERATURE)
    p0 = target.tree_probs(prompt, [-1], [-1])[0]
    q0 = draft.tree_probs(prompt, [-1], [-1])[0]
    top = np.argsort(-np.maximum(p0, q0))[:128]
    target.prefetch(prompt, top)
    draft.prefetch(prompt, top)
    return target, draft, p0


def run_two_tokens(method, tree, sources, prompt, seed):
    target, draft, _ = sources
    rng = np.random.default_rng(seed)
    return [tuple(speculative_generate(method, tree, target, draft, 2, GeneratorNoise(rng), prefix=prompt)
                  .tokens.tolist()) for _ in range(RUNS)]


def exact_laws(sources, prompt, samples):
    """Target law of the first token and of the pair (first tokens seen in samples or likely)."""
    target, _, p0 = sources
    first = {x: float(p0[x]) for x in np.flatnonzero(p0 * RUNS >= 0.5)}
    pairs = {}
    for x in sorted(set(first) | {s[0] for s in samples}):
        row = target.tree_probs(list(prompt) + [int(x)], [-1], [-1])[0]
        for y in np.flatnonzero(p0[x] * row * RUNS >= 0.5):
            pairs[(int(x), int(y))] = float(p0[x] * row[y])
    return first, pairs


@pytest.mark.parametrize("method,tree", [("sd", "chain:2"), ("specinfer", "batch:2")])
def test_residual_methods_exact_on_real_model(memo_sources, prompt, method, tree):
    samples = run_two_tokens(method, tree, memo_sources, prompt, seed=2024)
    first, pairs = exact_laws(memo_sources, prompt, samples)
    c1, p1 = binned([s[0] for s in samples], first)
    c2, p2 = binned(samples, pairs)
    assert len(c1) >= 5 and len(c2) >= 5                       # the test has bins to look at
    assert chisquare_pvalue(c1, p1) > ALPHA, (c1, RUNS * p1)
    assert chisquare_pvalue(c2, p2) > ALPHA, (c2, RUNS * p2)


def test_broken_verifier_is_caught(memo_sources, prompt):
    samples = run_two_tokens(BrokenSD(), "chain:2", memo_sources, prompt, seed=2024)
    first, pairs = exact_laws(memo_sources, prompt, samples)
    c1, p1 = binned([s[0] for s in samples], first)
    c2, p2 = binned(samples, pairs)
    assert min(chisquare_pvalue(c1, p1), chisquare_pvalue(c2, p2)) < ALPHA
