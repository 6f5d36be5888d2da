"""Independent checks of the claims of docs/theory.md §0, §3, §4 and §6.

Each check recomputes what it tests without the function under test:

* the ERSD rank law of a small pair exactly, in rational arithmetic, from the joint law
  of the exponential noise (:func:`_exact_rank_law`: condition on the winner's noise,
  every other token's event is an interval of one exponential, and the product of
  exponentials integrates in closed form) — no quadrature, no Poisson-binomial recursion;
* optimal rank-set trees by enumerating *every* tree with k <= 5 drafted nodes (V <= 4),
  and by an exhaustive Bellman recursion over node allocations for k <= 120;
* the PFR and the race built on one sample path (the race's noise is read off the
  PFR's first arrivals), so R <= K and {K = 1} = {R = 1} are checked path by path.

Each check also runs on a deliberately broken variant that it must reject.
Statistical thresholds: p-value 1e-9 (fixed seeds).
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from itertools import combinations, product

import numpy as np
import pytest
from scipy import stats

from chansim import channel
from chansim.sampling.races import er_acceptance, rank_distribution_exact
from chansim.theory import (all_k_bound, best_rank_set_tree, law_from_probs, outcome_entropy, rank_law,
                            top_products_curve, tree_value)
from chansim.inputs.trees import from_parents

ALPHA = 1e-9


# ----------------------------------------------------------------------------- exact rank law
def _exact_rank_law(p, q):
    r"""Exact :math:`a_r = P(R = r)` (r = 1..V) and ν = P(never) as Fractions.

    Given :math:`E_y = e`, y wins the p-race iff :math:`E_x > e p_x/p_y` for all x != y,
    and x precedes y in the q-race iff :math:`E_x < e q_x/q_y`.  So for a set S of
    tokens ahead of y,

    .. math:: P(y, S \mid e) = \prod_{x\in S}\big(e^{-e\,p_x/p_y} - e^{-e\,q_x/q_y}\big)_+
              \prod_{x\notin S} e^{-e\max(p_x/p_y,\, q_x/q_y)},

    and, :math:`E_y` having density :math:`e^{-e}`, :math:`\int_0^\infty e^{-e} e^{-e\lambda}\,de = 1/(1+\lambda)` after expanding
    the product: exact rational numbers for rational p, q.
    """
    vocab = len(p)
    a = [Fraction(0)] * vocab
    never = Fraction(0)
    for y in range(vocab):
        if p[y] == 0:
            continue
        if q[y] == 0:
            never += p[y]
            continue
        others = [x for x in range(vocab) if x != y]
        lo = {x: p[x] / p[y] for x in others}               # p-race: E_x > e * lo
        hi = {x: q[x] / q[y] for x in others}               # q-race: x ahead iff E_x < e * hi
        for size in range(len(others) + 1):
            for ahead in combinations(others, size):
                if any(hi[x] <= lo[x] for x in ahead):
                    continue                                # empty interval: probability 0
                behind = [x for x in others if x not in ahead]
                base = sum((max(lo[x], hi[x]) for x in behind), Fraction(0))
                total = Fraction(0)
                for signs in product((0, 1), repeat=size):  # expand prod (e^{-e lo} - e^{-e hi})
                    rate = base + sum((hi[x] if s else lo[x] for x, s in zip(ahead, signs)), Fraction(0))
                    total += (-1) ** sum(signs) / (1 + rate)
                a[size] += total
    return a, never


def _rational_pairs(n, seed, vocabs=(2, 3, 4)):
    """Random pairs with small integer weights (zeros, ties and equal pairs included)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        vocab = int(rng.choice(vocabs))
        wp = rng.integers(0, 6, vocab)
        wq = rng.integers(0, 6, vocab) if len(out) % 7 else wp.copy()
        if len(out) % 5 == 1:
            wq[rng.integers(vocab)] = 0                     # q = 0 somewhere: "never" or unreachable ranks
        if wp.sum() == 0 or wq.sum() == 0:
            continue
        out.append(([Fraction(int(v), int(wp.sum())) for v in wp], [Fraction(int(v), int(wq.sum())) for v in wq]))
    return out


def _floats(fr):
    return np.array([float(v) for v in fr])


def _entropy(probs):
    a = np.asarray(probs, dtype=float)
    a = a[a > 0]
    return float(-(a * np.log(a)).sum())


def test_exact_rank_law_by_hand_and_against_the_toolkit():
    # p = q = uniform on 2: R = 1 always; p point mass, q uniform: R uniform on {1, 2}
    assert _exact_rank_law([Fraction(1, 2)] * 2, [Fraction(1, 2)] * 2) == ([1, 0], 0)
    assert _exact_rank_law([Fraction(1), Fraction(0)], [Fraction(1, 2)] * 2) == ([Fraction(1, 2)] * 2, 0)
    for p, q in _rational_pairs(40, seed=1):
        a, never = _exact_rank_law(p, q)
        assert sum(a) + never == 1                                   # exact
        pf, qf = _floats(p), _floats(q)
        law = rank_distribution_exact(pf, qf)
        np.testing.assert_allclose(law.probs, _floats(a), atol=1e-10)
        assert law.never == pytest.approx(float(never), abs=1e-15)


# ----------------------------------------------------------------------------- §0: alpha_ER = 1 iff p = q
def test_alpha_er_equals_one_only_when_p_equals_q():
    """§0: alpha_ER <= sum min(p, q) = 1 - TV(p, q), so alpha_ER = 1 forces p = q."""
    pairs = _rational_pairs(60, seed=2)
    n_equal = 0
    for p, q in pairs:
        a, _ = _exact_rank_law(p, q)
        overlap = sum((min(x, y) for x, y in zip(p, q)), Fraction(0))
        assert a[0] <= overlap                                       # exact rational inequality
        assert (a[0] == 1) == (p == q)
        n_equal += p == q
        assert float(er_acceptance(_floats(p), _floats(q))) == pytest.approx(float(a[0]), abs=1e-12)
    assert 0 < n_equal < len(pairs)
    # near-equal pairs: alpha_ER < 1 strictly, below 1 - TV
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.dirichlet(np.ones(int(rng.integers(2, 30))))
        q = p * np.exp(rng.normal(0, 1e-3, p.size))
        q /= q.sum()
        alpha = float(er_acceptance(p, q))
        assert alpha <= np.minimum(p, q).sum() + 1e-12 and alpha < 1
    # broken variant (max replaced by min in alpha_ER = sum_y 1 / sum_x max(p_x/p_y, q_x/q_y)):
    # every term is then >= max(p_y, q_y), and the overlap inequality rejects it
    caught = 0
    for p, q in pairs:
        overlap = sum((min(x, y) for x, y in zip(p, q)), Fraction(0))
        if p != q and overlap > 0:
            broken = sum((1 / sum((min(p[x] / p[y], q[x] / q[y]) for x in range(len(p))), Fraction(0))
                          for y in range(len(p)) if p[y] > 0 and q[y] > 0), Fraction(0))
            caught += broken > overlap
    assert caught >= 30


# ----------------------------------------------------------------------------- §0 and §6: coupled PFR and race
def _coupled_paths(p, q, trials, rng, arrivals=400, independent_race=False):
    """K, X_K of the PFR and the race's winner and rank R, on the same sample paths.

    Each path holds the first ``arrivals`` points of a rate-1 Poisson process with marks
    ~ q; the test asserts that every mark with q > 0 has arrived, after which no later
    point can win (a mark's first arrival has its smallest score T q_x / p_x).  The
    race's noise is E_x = q_x * (first arrival time of x), i.i.d. Exp(1) by thinning.
    ``independent_race`` (broken variant) draws the race's noise afresh instead.
    """
    vocab = len(p)
    with np.errstate(divide="ignore"):
        ratio = np.where(p > 0, q / p, np.inf)                                   # [V] score per unit time
    times = np.cumsum(rng.standard_exponential((trials, arrivals)), axis=1)      # [trials, N]
    marks = rng.choice(vocab, size=(trials, arrivals), p=q)                      # [trials, N]
    j = np.argmin(times * ratio[marks], axis=1)                                  # PFR: argmin of the scores
    rows = np.arange(trials)
    k, xk = j + 1, marks[rows, j]
    hit = marks[:, :, None] == np.arange(vocab)                                  # [trials, N, V]
    first_idx = np.argmax(hit, axis=1)                                           # [trials, V]
    arrived = hit.any(axis=1)
    assert np.all(arrived[:, q > 0]), "a mark with q > 0 has not arrived: raise `arrivals`"
    first = np.where(arrived, times[rows[:, None], first_idx], np.inf)           # [trials, V] first arrivals
    noise = q * first if not independent_race else rng.standard_exponential((trials, vocab))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_times = np.where(p > 0, noise / p, np.inf)
        q_times = np.where(q > 0, noise / q, np.inf)
    y = np.argmin(p_times, axis=1)
    r = 1 + np.count_nonzero(q_times < q_times[rows, y][:, None], axis=1)
    return k, xk, y, r


COUPLED_PAIRS = [
    (np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])),
    (np.array([0.6, 0.1, 0.1, 0.2]), np.array([0.1, 0.4, 0.3, 0.2])),
    (np.array([0.7, 0.3, 0.0]), np.array([0.4, 0.4, 0.2])),            # p = 0 at a drafted token
]


@pytest.mark.parametrize("pair", range(len(COUPLED_PAIRS)))
def test_race_built_from_pfr_first_arrivals(pair):
    """§0/§6: on every path the PFR winner is the race winner, R <= K and {K = 1} = {R = 1}."""
    p, q = COUPLED_PAIRS[pair]
    trials = 20_000
    k, xk, y, r = _coupled_paths(p, q, trials, np.random.default_rng(100 + pair))
    assert np.array_equal(xk, y)                          # PFR winner = p-race winner (a first arrival)
    assert np.all(r <= k)                                 # R counts distinct marks among the first K arrivals
    assert np.array_equal(k == 1, r == 1)
    # and the coupled construction has the right marginals (exact laws of K and R)
    kmax = 12
    pmf = np.append(channel.index_pmf(p, q, kmax), 0.0)
    pmf[-1] = 1 - pmf[:-1].sum()
    obs = np.bincount(np.minimum(k, kmax + 1), minlength=kmax + 2)[1:]
    keep = pmf * trials > 5
    obs_k = np.append(obs[keep], obs[~keep].sum())
    exp_k = np.append(pmf[keep], pmf[~keep].sum()) * trials
    assert stats.chisquare(obs_k[exp_k > 0], exp_k[exp_k > 0]).pvalue > ALPHA
    a = rank_distribution_exact(p, q).probs
    obs_r = np.bincount(r, minlength=len(p) + 1)[1:]
    assert stats.chisquare(obs_r[a > 0], a[a > 0] * trials).pvalue > ALPHA and obs_r[a == 0].sum() == 0
    # hence P(R <= k) >= P(K <= k) for the exact laws, with equality at k = 1
    cdf_r = np.cumsum(a)
    cdf_k = channel.index_cdf(p, q, np.arange(1, len(p) + 1))
    assert np.all(cdf_r >= cdf_k - 1e-12) and cdf_r[0] == pytest.approx(cdf_k[0], abs=1e-12)


def test_coupled_path_check_catches_an_uncoupled_race():
    p, q = COUPLED_PAIRS[1]
    k, xk, y, r = _coupled_paths(p, q, 2000, np.random.default_rng(7), independent_race=True)
    assert not np.array_equal(xk, y)
    assert np.any(r > k) and not np.array_equal(k == 1, r == 1)


def test_rank_below_index_in_law_on_many_pairs():
    """P(R <= k) >= P(K <= k) for all k (exact laws; Dirichlet pairs with supp p in supp q)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        vocab = int(rng.integers(2, 9))
        p, q = rng.dirichlet(np.full(vocab, 0.5)), rng.dirichlet(np.full(vocab, 0.5))
        q = np.maximum(q, 1e-6)
        q /= q.sum()
        cdf_r = np.cumsum(rank_distribution_exact(p, q).probs)
        cdf_k = channel.index_cdf(p, q, np.arange(1, vocab + 1))
        assert np.all(cdf_r >= cdf_k - 1e-9)


def test_pfr_refuses_a_target_outside_the_draft_support():
    """§0: supp p must lie in supp q; the PFR functions raise, the race reports R = never."""
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4, 0.0])
    for call in (lambda: channel.pfr_sample(p, q, 10, np.random.default_rng(0)),
                 lambda: channel.index_pmf(p, q, 3), lambda: channel.index_cdf(p, q, [1])):
        with pytest.raises(ValueError, match="draft_probs is 0 at token 2"):
            call()
    assert rank_distribution_exact(p, q).never == pytest.approx(0.2, abs=1e-15)


# ----------------------------------------------------------------------------- §6 counterexample
def test_rank_entropy_can_be_far_below_expected_log_rank():
    """§6: H(R) >= E[log R] needs a non-increasing a; p = (0.001, 0.999), q = (0.999, 0.001) breaks it."""
    p, q = [Fraction(1, 1000), Fraction(999, 1000)], [Fraction(999, 1000), Fraction(1, 1000)]
    a, never = _exact_rank_law(p, q)
    assert never == 0 and a == [Fraction(1, 500), Fraction(499, 500)]       # a = (0.002, 0.998)
    h_bits = _entropy(_floats(a)) / math.log(2)
    e_log2 = float(a[1])                                                     # E[log2 R] = a_2 * log2(2)
    assert h_bits == pytest.approx(0.0208, abs=1e-4) and e_log2 == pytest.approx(0.998)
    assert h_bits < e_log2 / 40
    law = rank_law(_floats(p), _floats(q))                                   # the toolkit agrees
    assert law.entropy / math.log(2) == pytest.approx(h_bits, abs=1e-9)
    # the claim does hold whenever a is non-increasing (a_r <= 1/r, so log r <= -log a_r)
    for p, q in _rational_pairs(40, seed=8):
        a = _floats(_exact_rank_law(p, q)[0])
        if np.all(np.diff(a) <= 0):
            r = np.arange(1, a.size + 1)
            assert (a * np.log(r)).sum() <= _entropy(a) + 1e-12


# ----------------------------------------------------------------------------- §2/§4: brute-force trees
@lru_cache(maxsize=None)
def _forests(n, vocab):
    """Every set of n rank sequences below a root that is prefix-closed (every tree with n nodes)."""
    if n == 0:
        return (frozenset(),)
    out = []
    for m in range(1, min(n, vocab) + 1):
        for kids in combinations(range(1, vocab + 1), m):
            for sizes in _compositions(n, m):
                for subs in product(*(_forests(s - 1, vocab) for s in sizes)):
                    out.append(frozenset(seq for c, sub in zip(kids, subs)
                                         for seq in [(c,)] + [(c,) + s for s in sub]))
    return tuple(out)


def _compositions(n, m):
    if m == 1:
        yield (n,)
        return
    for first in range(1, n - m + 2):
        for rest in _compositions(n - first, m - 1):
            yield (first,) + rest


def _outcomes(tree, a, never):
    """Law of the ERSD outcome O = (stop node, final rank) and the stop depths, by enumeration."""
    nodes = [()] + sorted(tree, key=lambda s: (len(s), s))
    probs, depths = [], []
    for u in nodes:
        reach = math.prod(a[r - 1] for r in u)
        kids = {s[-1] for s in tree if len(s) == len(u) + 1 and s[:-1] == u}
        for r in range(1, len(a) + 1):
            if r not in kids:
                probs.append(reach * a[r - 1])
                depths.append(len(u))
        probs.append(reach * never)
        depths.append(len(u))
    return np.array(probs), np.array(depths)


def _as_tree(tree):
    nodes = sorted(tree, key=lambda s: (len(s), s))
    index = {(): 0, **{s: i + 1 for i, s in enumerate(nodes)}}
    return from_parents([-1] + [index[s[:-1]] for s in nodes], [0] + [s[-1] for s in nodes])


def test_tree_enumeration_counts():
    # subtrees of the full V-ary tree with the root and k more nodes: C(V(k+1), k+1) / ((V-1)(k+1) + 1)
    for vocab, k in ((2, 4), (3, 4), (4, 5)):
        n = k + 1
        assert len(_forests(k, vocab)) == math.comb(vocab * n, n) // ((vocab - 1) * n + 1)


@pytest.mark.parametrize("seed", [11, 12])
def test_every_tree_obeys_wald_and_the_all_k_bound_and_the_optimum_is_the_top_products(seed):
    """§2 and §4 on every tree with k <= 5 drafted nodes, for 20 pairs each (V <= 4, exact laws)."""
    worst = -np.inf
    for p, q in _rational_pairs(20, seed=seed):
        a_fr, never_fr = _exact_rank_law(p, q)
        a, never = _floats(a_fr), float(never_fr)
        h = _entropy(np.append(a, never))
        values_r = int(np.count_nonzero(np.append(a, never) > 0))         # V_R
        vocab = len(p)
        assert values_r <= vocab                                            # §4: V_R <= V, never included
        if h == 0:
            continue
        law = law_from_probs(a, never)
        for k in range(1, 6):
            best = 0.0
            for tree in _forests(k, vocab):
                probs, depths = _outcomes(tree, a, never)
                tokens = float(probs @ (depths + 1))                        # E[tau] from the outcome law
                nz = probs[probs > 0]
                h_out = float(-(nz * np.log(nz)).sum())
                assert h_out == pytest.approx(h * tokens, rel=1e-9, abs=1e-12)      # Wald: H(O) = H(R) E[tau]
                assert nz.size <= (k + 1) * values_r - k                            # outcomes over reachable nodes
                assert h_out <= math.log(nz.size) + 1e-12
                bound = (math.log(k + 1) + math.log(vocab)) / h
                worst = max(worst, tokens - bound)
                assert tokens <= bound + 1e-12
                best = max(best, tokens)
            assert best == pytest.approx(1 + top_products_curve(a, k)[-1], abs=1e-12)
            assert best == pytest.approx(float(tree_value(best_rank_set_tree(a, k), a)), abs=1e-12)
            assert best <= float(all_k_bound(k, law)) + 1e-12
    assert worst < 0


def _bellman_optimum(a, kmax):
    """Best E[accepted] of a rank-set tree for every budget 0..kmax, by exhaustive allocation.

    F(n) = max over (n_1..n_V) with sum n_r = n of sum_{n_r > 0} a_r (1 + F(n_r - 1)): every
    way of splitting n nodes among the child ranks is tried (knapsack over ranks,
    G_r(m) = max(G_{r-1}(m), max_t G_{r-1}(m - t) + a_r (1 + F(t - 1)))).
    """
    a = [float(v) for v in a if v > 0]
    f = np.zeros(kmax + 1)
    g = np.full((len(a) + 1, kmax + 1), -np.inf)        # g[r, m]: best over the first r ranks with m nodes
    g[:, 0] = 0.0
    for m in range(1, kmax + 1):
        take = np.arange(1, m + 1)                      # nodes given to rank r's subtree
        for r, ar in enumerate(a, start=1):
            g[r, m] = max(g[r - 1, m], float(np.max(g[r - 1, m - take] + ar * (1 + f[take - 1]))))
        f[m] = g[len(a), m]
    return f


def test_bellman_optimum_equals_top_products_and_obeys_the_bound():
    """§2/§4 for k up to 120 on 30 pairs: the greedy top-products tree is optimal and below the bound."""
    kmax = 120
    rng = np.random.default_rng(13)
    for i in range(30):
        vocab = int(rng.integers(2, 5))
        p, q = rng.dirichlet(np.full(vocab, 0.7)), rng.dirichlet(np.full(vocab, 0.7))
        law = rank_law(p, q)
        if law.entropy == 0:
            continue
        f = _bellman_optimum(law.probs, kmax)
        np.testing.assert_allclose(1 + top_products_curve(law.probs, kmax), 1 + f[1:], rtol=1e-10)
        ks = np.arange(1, kmax + 1)
        assert np.all(1 + f[1:] <= (np.log(ks + 1) + math.log(vocab)) / law.entropy + 1e-12)
    # broken variant: the top-m (sibling-closed) tree is not optimal when a is not decreasing
    a = np.array([0.3, 0.1, 0.6])
    f = _bellman_optimum(a, 1)
    assert f[1] == pytest.approx(0.6) and f[1] > a[0]


def test_outcome_count_over_reachable_nodes():
    """§4: a child whose rank has a_r = 0 is unreachable and the count (k+1)V_R - k still bounds."""
    p, q = np.array([0.6, 0.4, 0.0]), np.array([0.3, 0.7, 0.0])       # rank 3 never happens
    law = rank_law(p, q)
    assert law.probs[2] == pytest.approx(0.0, abs=1e-15) and law.support == 2
    tree = _as_tree(frozenset({(3,), (3, 1), (1,)}))                     # (3,) and (3, 1) unreachable
    probs, _ = _outcomes(frozenset({(3,), (3, 1), (1,)}), law.probs, law.never)
    assert np.count_nonzero(probs) == 3 <= (3 + 1) * 2 - 3
    assert outcome_entropy(tree, law) == pytest.approx(law.entropy * float(tree_value(tree, law.probs)))


# ----------------------------------------------------------------------------- §3: the o(1) term
def test_large_k_relation_is_asymptotic_with_an_oscillating_remainder():
    """§3: the gap E[tau] - (ln k/H + C) does not settle at k ~ 10^5..10^6; it oscillates by ~ +-0.01.

    E[tau] is the exact optimum (sum of the k largest path products, checked against
    exhaustive search above); the relation's remainder changes sign between budgets.
    """
    from chansim.theory import large_k_relation, top_products_sums

    law = law_from_probs([0.55, 0.3, 0.15])
    ks = np.unique(np.round(np.logspace(5, 6, 21)).astype(np.int64))
    gap = 1 + top_products_sums(law.probs, ks) - large_k_relation(ks, law)
    assert np.all(np.abs(gap) < 0.02)                       # the relation is good to ~0.01 ...
    assert gap.min() < -0.005 and gap.max() > 0.005         # ... but the o(1) term oscillates, not decays
    assert np.count_nonzero(np.diff(np.sign(gap))) >= 4


# ----------------------------------------------------------------------------- §9: the bound on a non-i.i.d. source
def test_log_bound_holds_for_real_ersd_generation_on_a_markov_source():
    """§9: E[sum_t H(a^(t))] <= E[calls] ln((k+1)V - k) for real ERSD generation.

    A 3-token Markov pair whose contexts differ in support: after token 0 the draft
    cannot propose token 2 (R = "never" possible), after tokens 1 and 2 every rank up to
    V is possible; so a rank-only outcome count would need V + 1 values, the per-position
    one V.  Calls are counted by running ERSD (keyed races) itself.
    """
    from chansim.sampling.sources import MarkovSource
    from chansim.verify import KeyedNoise, speculative_generate

    target = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    draft = np.array([[0.2, 0.8, 0.0], [0.6, 0.3, 0.1], [0.05, 0.15, 0.8]])
    laws = [rank_law(target[s], draft[s]) for s in range(3)]
    assert laws[0].never > 0 and laws[1].probs[2] > 0                       # both "never" and rank V occur
    h_state = np.array([law.entropy for law in laws])
    vocab, runs, length = 3, 300, 30
    ts, ds = MarkovSource(target), MarkovSource(draft)
    for tree, k in (("chain:1", 1), ("chain:3", 3), ("batch:2", 2), ("branch:2,2", 6)):
        gap = []
        for run in range(runs):
            res = speculative_generate("ersd", tree, ts, ds, length, KeyedNoise(500 + run), prefix=[0])
            prev = np.concatenate([[0], res.tokens[:-1]])
            gap.append(len(res.steps) * math.log((k + 1) * vocab - k) - h_state[prev].sum())
        gap = np.asarray(gap)
        # E[calls] ln((k+1)V - k) - E[sum H_t] >= 0; reject only below -5.33 standard errors (1e-7)
        assert gap.mean() > -5.33 * gap.std(ddof=1) / math.sqrt(runs), (tree, gap.mean())
