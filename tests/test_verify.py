"""Verifiers: exact tiny cases, seeded determinism, node-level laws, ERSD = race sampling, errors."""
import numpy as np
import pytest

from chansim.sampling import races
from chansim.inputs.distributions import sd_acceptance
from chansim.sampling.sources import IIDSource, MarkovSource
from chansim.inputs.trees import batch, branching, chain, from_parents, sequences
from chansim.verify import (METHODS, GeneratorNoise, KeyedNoise, NodeNoise, get_method, speculative_generate,
                            speculative_step, spectr_rho)
from chansim.verify.base import race_ranked_tokens, residual, sample_rows

TREES = {  # a tree each method accepts
    "autoregressive": chain(0), "sd": chain(3), "specinfer": branching([2, 2]),
    "rsd": branching([2, 2]), "spectr": sequences(3, 2), "ersd": branching([2, 2]),
    "ersd-topm": branching([2, 2]), "block": chain(3), "multidraft": branching([2, 2]),
}


def _markov(vocab, seed, conc=2.0):
    rng = np.random.default_rng(seed)
    return MarkovSource(rng.dirichlet(np.full(vocab, conc), size=vocab), rng.dirichlet(np.full(vocab, conc)))


# ----------------------------------------------------------------------------- exact tiny cases
@pytest.mark.parametrize("method", [m for m in METHODS if m != "autoregressive"])
def test_q_equal_p_accepts_every_draft_on_a_chain(method):
    src = _markov(5, 0)
    tree = chain(4)
    for seed in range(5):
        step = speculative_step(method, tree, [2], src, src, GeneratorNoise(seed))
        assert step.n_tokens == 5 and step.events.all() and step.path.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("method,tree", [("ersd", batch(3)), ("ersd", branching([3, 2])), ("sd", chain(6)),
                                         ("specinfer", batch(2)), ("spectr", sequences(2, 3))])
def test_q_equal_p_reaches_full_depth(method, tree):
    src = IIDSource([0.1, 0.2, 0.3, 0.4])
    for seed in range(5):
        step = speculative_step(method, tree, [], src, src, KeyedNoise(seed))
        assert step.n_tokens == tree.max_depth + 1 and step.events.all()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "autoregressive"])
def test_forced_rejection_when_supports_are_disjoint(method):
    target, draft = IIDSource([1.0, 0.0, 0.0]), IIDSource([0.0, 0.5, 0.5])
    tree = TREES[method]
    for seed in range(5):
        step = speculative_step(method, tree, [], target, draft, GeneratorNoise(seed))
        assert step.tokens.tolist() == [0] and step.events.tolist() == [False]


def test_greedy_target_is_followed_by_every_method():
    """A one-hot target forces the output; a draft containing it gets accepted or corrected."""
    target, draft = IIDSource([0.0, 1.0, 0.0]), IIDSource([0.4, 0.3, 0.3])
    for method in METHODS:
        step = speculative_step(method, TREES[method], [], target, draft, GeneratorNoise(1))
        assert set(step.tokens.tolist()) == {1}


def test_autoregressive_emits_one_token():
    src = IIDSource([0.5, 0.5])
    step = speculative_step("autoregressive", "chain:0", [], src, src, GeneratorNoise(0))
    assert step.n_tokens == 1 and step.accepted == 0 and len(step.events) == 0


def test_step_result_fields_are_consistent():
    src, drf = _markov(6, 1), _markov(6, 2)
    for seed in range(20):
        step = speculative_step("specinfer", branching([3, 2, 1]), [4], src, drf, GeneratorNoise(seed))
        assert step.accepted == len(step.path) == step.n_tokens - 1
        assert step.drafted[step.path].tolist() == step.accepted_tokens.tolist()
        assert step.bonus_token == step.tokens[-1]
        assert step.position == 1
        tree = branching([3, 2, 1])
        for a, b in zip(step.path[:-1], step.path[1:]):
            assert tree.parents[b] == a


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("method", list(METHODS))
def test_same_seed_same_generation(method):
    src, drf = _markov(7, 3), _markov(7, 4)
    a = speculative_generate(method, TREES[method], src, drf, 60, GeneratorNoise(11), prefix=[1])
    b = speculative_generate(method, TREES[method], src, drf, 60, GeneratorNoise(11), prefix=[1])
    c = speculative_generate(method, TREES[method], src, drf, 60, GeneratorNoise(12), prefix=[1])
    assert np.array_equal(a.tokens, b.tokens)
    assert [s.tokens.tolist() for s in a.steps] == [s.tokens.tolist() for s in b.steps]
    assert not np.array_equal(a.tokens, c.tokens)


# ----------------------------------------------------------------------------- ERSD = race sampling
def _plain_race_sampling(transition, initial, seed, n, prefix=()):
    out, last = [], (prefix[-1] if len(prefix) else -1)
    for t in range(len(prefix), len(prefix) + n):
        row = initial if last < 0 else transition[last]
        last = int(races.race_winner(races.keyed_exponential(seed, t, np.arange(len(row))), row))
        out.append(last)
    return np.array(out)


@pytest.mark.parametrize("tree", [chain(1), chain(4), batch(3), branching([3, 2, 1]),
                                  from_parents([-1, 0, 0, 1, 2], ranks=[0, 2, 5, 1, 3], name="ranks"),
                                  sequences(1, 3)])
def test_ersd_reproduces_plain_race_sampling_token_for_token(tree):
    vocab = 8
    target, draft = _markov(vocab, 5), _markov(vocab, 6, conc=0.7)
    for seed in (0, 123456789):
        gen = speculative_generate("ersd", tree, target, draft, 400, KeyedNoise(seed), prefix=[3])
        plain = _plain_race_sampling(target.transition, target.initial, seed, 400, prefix=[3])
        assert np.array_equal(gen.tokens, plain)
        assert gen.tokens_per_call > 1.0     # speculation actually happened


def test_ersd_with_sparse_draft_skips_unreachable_ranks():
    """Ranks beyond the draft's support hold no token; output still equals race sampling."""
    target = MarkovSource(np.full((4, 4), 0.25))
    draft = MarkovSource(np.tile([0.5, 0.5, 0.0, 0.0], (4, 1)), initial=[0.5, 0.5, 0.0, 0.0])
    gen = speculative_generate("ersd", batch(4), target, draft, 200, KeyedNoise(9))
    assert np.array_equal(gen.tokens, _plain_race_sampling(target.transition, target.initial, 9, 200))
    assert all((s.drafted[3:] == -1).all() for s in gen.steps)


# ----------------------------------------------------------------------------- node-level laws
def _node_run(method, p, q, m, n=200_000, seed=0):
    """Draft m children and apply the node rule for n trials sharing (p, q)."""
    method = get_method(method)
    rng = np.random.default_rng(seed)
    noise = NodeNoise(rng, n, rng.standard_exponential((n, len(p))) if method.uses_race else None)
    p2, q2 = np.asarray(p)[None], np.asarray(q)[None]
    drafts = method.draft(q2, np.arange(1, m + 1), noise)
    return method.verify(p2, q2, drafts, noise)


def _binom_ok(successes, n, prob, z=6.0):
    return abs(successes - n * prob) <= z * np.sqrt(n * prob * (1 - prob)) + 1e-9


P4 = np.array([0.45, 0.3, 0.15, 0.1])
Q4 = np.array([0.1, 0.2, 0.3, 0.4])


def test_node_acceptance_sd_is_beta():
    acc, _ = _node_run("sd", P4, Q4, 1)
    assert _binom_ok((acc >= 0).sum(), len(acc), sd_acceptance(P4, Q4))


def test_node_acceptance_specinfer_multi_round():
    m, r, rej = 3, P4.copy(), 1.0
    for _ in range(m):
        rej *= 1 - np.minimum(r, Q4).sum()
        r = residual(r[None], Q4[None])[0]
    acc, _ = _node_run("specinfer", P4, Q4, m)
    assert _binom_ok((acc >= 0).sum(), len(acc), 1 - rej)


def test_node_acceptance_spectr_uses_smallest_feasible_rho():
    k = 3
    rho = float(spectr_rho(P4[None], Q4[None], k)[0])
    beta = np.minimum(Q4, P4 / rho).sum()
    c = (1 - (1 - beta) ** k) / beta
    assert 1.0 <= rho <= k and c <= rho + 1e-12
    c_lower = (1 - (1 - np.minimum(Q4, P4 / (rho - 1e-6)).sum()) ** k) / np.minimum(Q4, P4 / (rho - 1e-6)).sum()
    assert c_lower > rho - 1e-6                     # just below rho is infeasible
    acc, _ = _node_run("spectr", P4, Q4, k)
    assert _binom_ok((acc >= 0).sum(), len(acc), 1 - (1 - beta) ** k)


def test_node_acceptance_ersd_is_rank_law():
    law = races.rank_distribution_exact(P4, Q4)
    for m in (1, 2):
        acc, _ = _node_run("ersd", P4, Q4, m)
        assert _binom_ok((acc >= 0).sum(), len(acc), law.probs[:m].sum())


@pytest.mark.parametrize("method,m", [("sd", 1), ("specinfer", 3), ("rsd", 3), ("spectr", 3), ("ersd", 2),
                                      ("autoregressive", 0)])
def test_node_output_is_distributed_as_target(method, m):
    """The token produced at a node (accepted draft or correction) is exactly ~ p."""
    _, tok = _node_run(method, P4, Q4, m, seed=3)
    counts = np.bincount(tok, minlength=4)
    for x in range(4):
        assert _binom_ok(counts[x], len(tok), P4[x])


def test_rsd_handles_draft_support_smaller_than_m():
    p, q = np.array([0.25, 0.25, 0.25, 0.25]), np.array([0.7, 0.3, 0.0, 0.0])
    acc, tok = _node_run("rsd", p, q, 3, seed=4)
    counts = np.bincount(tok, minlength=4)
    assert all(_binom_ok(counts[x], len(tok), 0.25) for x in range(4))
    assert (acc <= 1).all()


# ----------------------------------------------------------------------------- helpers
def test_sample_rows_matches_weights_and_skips_zeros():
    w = np.array([[0.0, 2.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 3.0]])
    u = np.random.default_rng(0).random((2, 50_000))
    tok = sample_rows(w, u)
    assert set(np.unique(tok[0])) == {1, 3} and set(np.unique(tok[1])) == {0, 4}
    assert _binom_ok((tok[0] == 1).sum(), 50_000, 2 / 3) and _binom_ok((tok[1] == 4).sum(), 50_000, 0.75)
    assert sample_rows(w, np.array([[1 - 2**-53], [1 - 2**-53]])).ravel().tolist() == [3, 4]


def test_race_ranked_tokens_agrees_with_race_top_m():
    rng = np.random.default_rng(1)
    e, q = rng.standard_exponential((50, 9)), rng.dirichlet(np.ones(9), size=50)
    top = races.race_top_m(e, q, 5)
    assert np.array_equal(race_ranked_tokens(e, q, [1, 2, 3, 4, 5]), top)
    assert np.array_equal(race_ranked_tokens(e, q, [4, 2]), top[:, [3, 1]])


# ----------------------------------------------------------------------------- errors
def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'greedy'"):
        speculative_step("greedy", chain(1), [], IIDSource([1.0]), IIDSource([1.0]), GeneratorNoise(0))


@pytest.mark.parametrize("method,tree,match", [
    ("sd", batch(2), "runs on a chain"),
    ("sd", chain(0), "at least one drafted token"),
    ("ersd", chain(0), "at least one drafted token"),
    ("autoregressive", chain(2), "drafts nothing"),
    ("spectr", branching([2, 2]), "independent draft sequences"),
    ("specinfer", from_parents([-1, 0], ranks=[0, 3]), "only ersd"),
])
def test_tree_method_incompatibility(method, tree, match):
    src = IIDSource([0.5, 0.5])
    with pytest.raises(ValueError, match=match):
        speculative_step(method, tree, [], src, src, GeneratorNoise(0))


def test_vocabulary_mismatch():
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        speculative_step("sd", chain(1), [], IIDSource([0.5, 0.5]), IIDSource([0.2, 0.3, 0.5]), GeneratorNoise(0))


def test_bad_sources_and_trees():
    with pytest.raises(ValueError, match="not normalised"):
        IIDSource([0.5, 0.6])
    with pytest.raises(ValueError, match="square"):
        MarkovSource(np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="cycle"):
        from_parents([-1, 2, 1])
    with pytest.raises(ValueError, match="non-negative integer"):
        chain(-1)
    with pytest.raises(ValueError, match="bad tree spec"):
        speculative_step("sd", "chain:x", [], IIDSource([1.0]), IIDSource([1.0]), GeneratorNoise(0))
    with pytest.raises(ValueError, match="positive integer"):
        speculative_generate("sd", chain(1), IIDSource([1.0]), IIDSource([1.0]), 0, GeneratorNoise(0))
    with pytest.raises(ValueError, match="bad options"):
        get_method("sd", rho=2.0)
    with pytest.raises(ValueError, match="rho"):
        get_method("spectr", rho=0.5)
