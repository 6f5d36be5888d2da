"""Statistical exactness: generated 2- and 3-token sequences follow the target exactly.

Every (method, tree) runs on the i.i.d. model and on a Markov model; the n-gram counts
are compared with the exact n-gram probabilities (enumerated for V = 3..4) by a
chi-square test.  Seeds are fixed and the threshold is p-value < 1e-9 (``ALPHA``), so a correct
implementation fails with probability < 1e-6 per run, while deliberately broken
verifiers (below) give p-values far below it.
"""
import numpy as np
import pytest
from scipy import stats

from chansim.simulate import generate, simulate
from chansim.sampling.sources import MarkovSource
from chansim.inputs.trees import from_parents
from chansim.verify import RSD, SD, GeneratorNoise, Method, speculative_generate
from chansim.verify.base import residual, sample_rows, take_rows

ALPHA = 1e-9   # per p-value; a test combines a handful, so a correct run fails far below 1e-6

CASES = [
    ("autoregressive", "chain:0"),
    ("sd", "chain:1"), ("sd", "chain:3"),
    ("specinfer", "batch:3"), ("specinfer", "branch:2,2"), ("specinfer", "chain:2"),
    ("rsd", "batch:3"), ("rsd", "branch:3,2"), ("rsd", "branch:2,1,2"),
    ("spectr", "batch:3"), ("spectr", "seq:3x2"), ("spectr", "seq:2x3"),
    ("ersd", "chain:3"), ("ersd", "batch:3"), ("ersd", "branch:2,2"),
    ("ersd", from_parents([-1, 0, 0, 1, 2], ranks=[0, 2, 3, 1, 2], name="ranks{2,3}")),
    ("block", "chain:1"), ("block", "chain:2"), ("block", "chain:3"),
    ("multidraft", "batch:2"), ("multidraft", "batch:3"), ("multidraft", "branch:2,2"),
]
IDS = [f"{m}-{t if isinstance(t, str) else t.name}" for m, t in CASES]

# i.i.d. pairs: one with zeros (a token the draft never proposes, one the target never emits)
IID_PAIRS = {
    "zeros": (np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.0, 0.6, 0.3])),
    "dense": (np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.3, 0.5])),
}


def _markov_pair(vocab=4, seed=7):
    rng = np.random.default_rng(seed)
    t = 0.8 * rng.dirichlet(np.full(vocab, 1.5), size=vocab) + 0.2 / vocab
    d = 0.5 * t + 0.5 * rng.dirichlet(np.full(vocab, 1.0), size=vocab)
    init_t = rng.dirichlet(np.full(vocab, 3.0))
    init_d = rng.dirichlet(np.full(vocab, 3.0))
    return MarkovSource(t, init_t), MarkovSource(d, init_d)


def chisquare_pvalue(counts, probs) -> float:
    """Pearson chi-square goodness of fit; cells with expected < 5 are pooled; mass on a zero cell → 0."""
    counts, probs = np.ravel(counts).astype(float), np.ravel(probs)
    if counts[probs == 0].sum() > 0:
        return 0.0
    n = counts.sum()
    obs, exp = counts[probs > 0], n * probs[probs > 0]
    small = exp < 5
    if small.any():
        obs = np.append(obs[~small], obs[small].sum())
        exp = np.append(exp[~small], exp[small].sum())
    stat = ((obs - exp) ** 2 / exp).sum()
    return float(stats.chi2.sf(stat, len(obs) - 1))


def ngram_counts(seqs, vocab):
    """Counts of the rows of ``seqs`` ([N, n] tokens) over the V^n cells."""
    n = seqs.shape[1]
    idx = np.ravel_multi_index(tuple(seqs.T), (vocab,) * n)
    return np.bincount(idx, minlength=vocab ** n).reshape((vocab,) * n)


def iid_pvalues(method, tree, p, q, calls, seed, **options):
    res = simulate(method, tree, p, q, calls=calls, seed=seed, emit_tokens=True, **options)
    toks, vocab = res.tokens, len(p)
    half = len(toks) // 2
    tri = toks[: 3 * (half // 3)].reshape(-1, 3)                        # non-overlapping 3-grams
    bi = toks[half: half + 2 * ((len(toks) - half) // 2)].reshape(-1, 2)   # and 2-grams elsewhere
    p3 = p[:, None, None] * p[None, :, None] * p[None, None, :]
    return chisquare_pvalue(ngram_counts(tri, vocab), p3), chisquare_pvalue(ngram_counts(bi, vocab), np.outer(p, p))


def markov_pvalues(method, tree, target, draft, streams, seed, **options):
    seqs = generate(method, tree, target, draft, streams=streams, length=5, seed=seed, **options)   # [N, 5]
    vocab, T = target.vocab_size, target.transition
    first = target.initial[:, None, None] * T[:, :, None] * T[None, :, :]               # x0, x1, x2
    marg2 = target.initial @ T @ T                                                       # law of x2
    later = marg2[:, None, None] * T[:, :, None] * T[None, :, :]                         # x2, x3, x4
    return (chisquare_pvalue(ngram_counts(seqs[:, :3], vocab), first),
            chisquare_pvalue(ngram_counts(seqs[:, 2:], vocab), later),
            chisquare_pvalue(ngram_counts(seqs[:, 3:], vocab), (target.initial @ T @ T @ T)[:, None] * T))


# ----------------------------------------------------------------------------- correct methods
@pytest.mark.parametrize("pair", list(IID_PAIRS))
@pytest.mark.parametrize("method,tree", CASES, ids=IDS)
def test_iid_ngrams_follow_target(method, tree, pair):
    p, q = IID_PAIRS[pair]
    pv3, pv2 = iid_pvalues(method, tree, p, q, calls=40_000, seed=2024)
    assert pv3 > ALPHA and pv2 > ALPHA, (pv3, pv2)


def _rolled_markov(p, q):
    """Markov model whose row after token x is the (p, q) pair rotated by x (keeps the zeros)."""
    vocab = len(p)
    return (MarkovSource(np.array([np.roll(p, x) for x in range(vocab)]), p),
            MarkovSource(np.array([np.roll(q, x) for x in range(vocab)]), q))


@pytest.mark.parametrize("model", ["dirichlet", "rolled-zeros"])
@pytest.mark.parametrize("method,tree", CASES, ids=IDS)
def test_markov_ngrams_follow_target(method, tree, model):
    target, draft = _markov_pair() if model == "dirichlet" else _rolled_markov(*IID_PAIRS["zeros"])
    pvals = markov_pvalues(method, tree, target, draft, streams=40_000, seed=99)
    assert min(pvals) > ALPHA, pvals


TABLE_CASES = [("ersd", "batch:3"), ("ersd", "branch:2,2"), ("rsd", "batch:3"), ("rsd", "branch:3,2"),
               ("block", "chain:3")]


@pytest.mark.parametrize("method,tree", TABLE_CASES)
def test_table_samplers_follow_target(method, tree):
    """The sorted-table samplers forced on (``race_tables=True``; "auto" skips them for ersd/rsd at small V)
    and the full-V samplers forced on (block), i.i.d. and Markov."""
    for tables in (True, False):
        if method != "block" and not tables:
            continue                                   # the default batteries above run ersd/rsd full-V
        p, q = IID_PAIRS["zeros"]
        assert min(iid_pvalues(method, tree, p, q, calls=40_000, seed=2024, race_tables=tables)) > ALPHA
        target, draft = _rolled_markov(p, q)
        assert min(markov_pvalues(method, tree, target, draft, streams=40_000, seed=99, race_tables=tables)) > ALPHA


@pytest.mark.parametrize("method,tree", [("sd", "chain:2"), ("specinfer", "branch:2,2"), ("rsd", "batch:2"),
                                         ("spectr", "seq:2x2"), ("ersd", "branch:2,2"), ("block", "chain:3"),
                                         ("multidraft", "branch:2,2")])
def test_reference_walk_markov_bigrams_follow_target(method, tree):
    """The one-call-at-a-time shared walk (general sources) is exact too."""
    target, draft = _markov_pair(vocab=3, seed=3)
    rng = np.random.default_rng(5)
    seqs = np.array([speculative_generate(method, tree, target, draft, 2, GeneratorNoise(rng)).tokens
                     for _ in range(1500)])
    probs = target.initial[:, None] * target.transition
    assert chisquare_pvalue(ngram_counts(seqs, 3), probs) > ALPHA


# ----------------------------------------------------------------------------- broken methods
class BrokenRounds(Method):
    """One deliberately broken multi-round verifier, with the bug chosen by ``bug``.

    The correct rule (specinfer/rsd) accepts draft j w.p. min(1, r_j/q) and moves to
    r_{j+1} = norm((r_j - q)+).  Bugs:

    * ``"no-residual"`` — on rejection keeps sampling from p (r is never updated);
    * ``"inverted-ratio"`` — accepts with min(1, q/r_j) instead of min(1, r_j/q);
    * ``"unrenormalised"`` — with drafts without replacement, keeps proposing from q
      (tried tokens not removed, no renormalisation).

    ``drafting`` is the method whose draft rule is reused (sd: one i.i.d. draft, rsd:
    without replacement).
    """

    BUGS = ("no-residual", "inverted-ratio", "unrenormalised")

    def __init__(self, bug: str, drafting: Method):
        assert bug in self.BUGS
        self.bug, self.drafting, self.name = bug, drafting, f"broken-{bug}"

    def draft(self, q, slots, noise):
        return self.drafting.draft(q, slots, noise)

    def verify(self, p, q, drafts, noise):
        batch, m = drafts.shape
        u = noise.rng.random((batch, m + 1))
        accepted = np.full(batch, -1, dtype=np.int64)
        r = p
        for j in range(m):
            x = drafts[:, j]
            num, den = (q, r) if self.bug == "inverted-ratio" else (r, q)
            ok = (accepted < 0) & (x >= 0) & (u[:, j] * take_rows(den, x) < take_rows(num, x))
            accepted[ok] = j
            if self.bug != "no-residual":
                r = residual(r, q)
        token = sample_rows(r, u[:, m])
        hit = accepted >= 0
        token[hit] = drafts[hit, accepted[hit]]
        return accepted, token

    def __repr__(self):
        return f"BrokenRounds({self.bug!r}, {self.drafting!r})"


BROKEN = [(BrokenRounds("no-residual", SD()), "chain:2", "dense"),
          (BrokenRounds("inverted-ratio", SD()), "chain:2", "dense"),
          (BrokenRounds("unrenormalised", RSD()), "batch:2", "zeros")]


@pytest.mark.parametrize("method,tree,pair", BROKEN, ids=[m.bug for m, _, _ in BROKEN])
def test_broken_verifiers_are_caught(method, tree, pair):
    p, q = IID_PAIRS[pair]
    assert min(iid_pvalues(method, tree, p, q, calls=40_000, seed=2024)) < ALPHA
    target, draft = _rolled_markov(p, q)
    assert min(markov_pvalues(method, tree, target, draft, streams=40_000, seed=99)) < ALPHA
