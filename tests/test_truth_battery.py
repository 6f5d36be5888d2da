"""Issue 20: "exact" and "guaranteed" must mean it — an adversarial battery against references
chansim does not compute.

References (independent of chansim's code):

* :func:`rational_rank_law` — the exact rank law in rational arithmetic (V <= 8). Given winner y,
  the competitors x with c_x = p_y q_x/q_y - p_x > 0 (set C, m of them) precede it independently
  with probability 1 - e^{-t c_x} at the race time t ~ Exp(1) (docs/theory.md §0); expanding
  the Poisson-binomial and integrating term by term,

      P(N = j | y) = sum_{W subset C} (-1)^{|W| - m + j} C(|W|, m - j) / (1 + c(W)),

  a sum of 2^m rationals (no quadrature).
* :func:`lnt_rank_law` — a float reference for V <= 40: the trapezoid rule in u = ln t with step
  1/20 on [-50, 4] (the integrand is analytic in the strip |Im u| < pi/2, so the rule's error is
  ~ 3^m e^{-2 pi (pi/2)/h}, far below 1e-14; the two ends hold < 1e-21).
* :func:`best_first_sums` — the k largest path products by a best-first search (first child /
  next sibling), the optimal rank-set tree value (docs/theory.md §2) without chansim's threshold search.

Checks per pair: the law within its guaranteed l1 error; H(R) inside its interval; the ERSD
bound above the exact optimum; every printed interval (optimal tree, batch, chain) containing the
exact value; no exception.  Broken variants the checks must catch: the renormalised adaptive
quadrature that used to be called exact (item 1), tree intervals without the perturbation factor
(item 5), the exit bound with the old tail count (item 6).

Size: the fast part runs ~150 generated pairs plus the fixed counterexamples; the slow part
(``-m slow``) 2,000 generated pairs, V = 2..2,000, k = 1..10^4 (measured: 0 failures).
"""
from __future__ import annotations

import heapq
import math
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from chansim.theory.ranklaw import rank_law
from chansim.theory.report import speedup_report, tree_value_interval

# --------------------------------------------------------------------------- references


def rational_rank_law(p, q):
    """Exact (a_1..a_V, never) as Fractions of the floats given (module docstring)."""
    P = [Fraction(float(v)) for v in p]
    Q = [Fraction(float(v)) for v in q]
    vocab = len(P)
    a = [Fraction(0)] * vocab
    never = sum((P[y] for y in range(vocab) if P[y] > 0 and Q[y] == 0), Fraction(0))
    for y in range(vocab):
        if P[y] == 0 or Q[y] == 0:
            continue
        rates = [P[y] * Q[x] / Q[y] - P[x] for x in range(vocab) if x != y]
        rates = [c for c in rates if c > 0]
        m = len(rates)
        g = [Fraction(0)] * (m + 1)                      # g_s = sum over |W| = s of 1/(1 + c(W))
        for mask in range(1 << m):
            total, s = Fraction(1), 0
            for i in range(m):
                if mask >> i & 1:
                    total += rates[i]
                    s += 1
            g[s] += 1 / total
        for j in range(m + 1):
            a[j] += P[y] * sum((-1) ** (s - m + j) * comb(s, m - j) * g[s] for s in range(m - j, m + 1))
    return a, never


def lnt_rank_law(p, q, K):
    """Float reference (a_1..a_K, P(R > K), never) by the trapezoid rule in ln t (module docstring)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    u = np.arange(-50.0, 4.0, 0.05)
    t = np.exp(u)
    weight = 0.05 * t * np.exp(-t)                       # dt = t du, times the Exp(1) density
    out = np.zeros(K + 1)
    for y in np.flatnonzero((p > 0) & (q > 0)):
        c = np.maximum(p[y] * q / q[y] - p, 0.0)
        c[y] = 0.0
        state = np.zeros((len(t), K + 1))
        state[:, 0] = 1.0
        for cx in c[c > 0]:
            pi = -np.expm1(-t * cx)
            moved = state[:, :K] * pi[:, None]
            state[:, :K] -= moved
            state[:, 1:] += moved
        out += p[y] * (weight @ state)
    return out[:K], float(out[K]), float(p[(p > 0) & (q == 0)].sum())


def best_first_sums(a, ks):
    """Sum of the k largest path products of weights a, for each k in ks (best-first search)."""
    w = sorted((float(x) for x in a if x > 0), reverse=True)
    kmax = max(ks)
    sums, total = [], 0.0
    if not w:
        return [0.0 for _ in ks]
    heap = [(-w[0], 0, 1.0)]                             # (-product, index of its last weight, parent product)
    while heap and len(sums) < kmax:
        neg, i, parent = heapq.heappop(heap)
        prod = -neg
        total += prod
        sums.append(total)
        if prod * w[0] > 0:
            heapq.heappush(heap, (-prod * w[0], 0, prod))           # first child
        if i + 1 < len(w):
            heapq.heappush(heap, (-parent * w[i + 1], i + 1, parent))   # next sibling
    sums += [total] * (kmax - len(sums))
    return [sums[k - 1] for k in ks]


def _entropy(vals):
    v = np.asarray([float(x) for x in vals], float)
    v = v[v > 0]
    return float(-(v * np.log(v)).sum())


# --------------------------------------------------------------------------- pair families

FAMILIES = ("dirichlet", "near_det", "ratio", "ties", "zeros", "reversed_zipf", "lm_logits", "confident_flat",
            "one_hot")


def make_pair(family: str, vocab: int, seed: int):
    """A (p, q) pair of one adversarial family (issue 20, item 5)."""
    rng = np.random.default_rng(seed)
    V = int(vocab)

    def norm(x):
        x = np.asarray(x, float)
        return x / x.sum()

    if family == "dirichlet":
        alpha = 10 ** rng.uniform(-1.3, 0.7)
        p, q = rng.dirichlet(np.full(V, alpha)), rng.dirichlet(np.full(V, alpha))
    elif family == "near_det":                            # a target sure of one token, tiny rest
        eta = 10 ** rng.uniform(-9, -1)
        p = norm(np.concatenate([[1.0], eta * rng.dirichlet(np.ones(V - 1))])) if V > 1 else np.ones(1)
        q = rng.dirichlet(np.full(V, 0.3))
    elif family == "ratio":                               # p/q up to 1e300 on one token
        p = rng.dirichlet(np.ones(V))
        q = rng.dirichlet(np.ones(V))
        y = int(rng.integers(V))
        q[y] = p[y] * 10.0 ** -rng.uniform(3, 300)
        q = norm(q)
    elif family == "ties":                                # rational values with many ties
        p = norm(rng.integers(1, 4, V).astype(float))
        q = norm(rng.integers(1, 4, V).astype(float))
    elif family == "zeros":                               # exact zeros in q and in p
        p = rng.dirichlet(np.ones(V))
        q = rng.dirichlet(np.ones(V))
        if V > 2:
            q[rng.choice(V, max(1, V // 3), replace=False)] = 0.0
            p[rng.choice(V, max(1, V // 4), replace=False)] = 0.0
        if p.sum() == 0:
            p[0] = 1.0
        if q.sum() == 0:
            q[-1] = 1.0
        p, q = norm(p), norm(q)
    elif family == "reversed_zipf":
        s = rng.uniform(0.5, 2.0)
        r = np.arange(1, V + 1, dtype=float)
        p, q = norm(r ** -s), norm(r[::-1] ** -s)
    elif family == "lm_logits":                           # p = softmax(beta z), q = softmax(beta z + noise)
        z = rng.normal(size=V)
        beta, sigma = rng.uniform(0.5, 4.0), rng.uniform(0.05, 2.0)
        lp = beta * z
        lq = lp + sigma * rng.normal(size=V)
        p, q = norm(np.exp(lp - lp.max())), norm(np.exp(lq - lq.max()))
    elif family == "confident_flat":                      # a confident target behind a flat draft
        conf = 1 - 10 ** rng.uniform(-6, -0.3)
        p = norm(np.concatenate([[conf], (1 - conf) * rng.dirichlet(np.ones(V - 1))])) if V > 1 else np.ones(1)
        q = np.full(V, 1.0 / V)
        if rng.random() < 0.5:                            # ... that gives the target's token almost nothing
            q[0] = 10.0 ** -rng.uniform(6, 14)
            q = norm(q)
    elif family == "one_hot":
        p, q = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
        if rng.random() < 0.5:
            p = np.eye(V)[int(rng.integers(V))]
        else:
            q = np.eye(V)[int(rng.integers(V))]
    else:
        raise ValueError(family)
    return np.asarray(p, float), np.asarray(q, float)


# --------------------------------------------------------------------------- the checks


def check_small_pair(p, q, ks, law_fn=None, shapes=True):
    """All containment checks of one V <= 8 pair against the rational reference; returns failures.

    ``shapes=False`` leaves out the batch and chain reports (the 2,000-pair run)."""
    fails = []
    exact_a, exact_never = rational_rank_law(p, q)
    a = np.array([float(x) for x in exact_a])
    nu = float(exact_never)
    h_exact = _entropy(list(a) + [nu])
    law = (law_fn or rank_law)(p, q)
    l1 = float(np.abs(law.probs[:len(a)] - a[:len(law.probs)]).sum() + a[len(law.probs):].sum())
    if l1 > law.error + 1e-14:
        fails.append(f"law l1 {l1:.3e} > its error {law.error:.3e}")
    if abs(law.never - nu) > 1e-15:
        fails.append("never mass")
    if not law.entropy_ci[0] - 1e-12 <= h_exact <= law.entropy_ci[1] + 1e-12:
        fails.append(f"H(R) {h_exact} outside {law.entropy_ci}")
    if law_fn is not None:                               # a law under test only: no report
        return fails
    opt = [1 + v for v in best_first_sums(a, ks)]
    rep = speedup_report(p, q, k=ks, methods=["ersd"], tree="optimal", pfr=False)
    e = rep.methods["ersd"]
    for i, k in enumerate(ks):
        if opt[i] > rep.ersd_bound["value"][i] + 1e-9:
            fails.append(f"k={k}: optimum {opt[i]} above the ERSD bound {rep.ersd_bound['value'][i]}")
        lo, hi = e["interval"][i]
        if not lo - 1e-9 * opt[i] <= opt[i] <= hi + 1e-9 * opt[i]:
            fails.append(f"k={k}: optimum {opt[i]} outside the printed interval [{lo}, {hi}]")
        if e["exact_k"][i] and abs(e["tokens_per_call"][i] - opt[i]) > 5e-5 + 1e-9:
            fails.append(f"k={k}: marked exact but off by {abs(e['tokens_per_call'][i] - opt[i]):.2e}")
    lo, hi = rep.summary["rank_entropy_interval"]
    if not lo - 1e-12 <= h_exact <= hi + 1e-12:
        fails.append("report H(R) interval")
    # a truncated guaranteed law (K < V, tail > 0): the same containments through tree_value_interval
    K = max(1, len(p) // 2)
    tl = rank_law(p, q, method="bounded", max_rank=K, tol=1e-4)
    l1 = float(np.abs(tl.probs - a[:K]).sum() + abs(tl.tail - a[K:].sum()))
    if l1 > tl.error + 1e-14:
        fails.append(f"truncated law l1 {l1:.3e} > its error {tl.error:.3e}")
    bound = [rep.ersd_bound["value"][i] for i in range(len(ks))]
    approx = [1 + v for v in best_first_sums(tl.probs, ks)]
    for i, k in enumerate(ks):
        lo, hi = tree_value_interval(approx[i], tl.error, bound[i], tl.tail + tl.error)
        if not lo - 1e-9 * opt[i] <= opt[i] <= hi + 1e-9 * opt[i]:
            fails.append(f"k={k}: truncated-law interval [{lo}, {hi}] misses the optimum {opt[i]}")
    # batch and chain values against the exact sums (one k)
    if not shapes:
        return fails
    k = ks[0]
    for shape, value in (("batch", 1 + a[:k].sum()), ("chain", sum(float(a[0]) ** d for d in range(k + 1)))):
        r = speedup_report(p, q, k=[k], methods=["ersd"], tree=shape, pfr=False).methods["ersd"]
        lo, hi = r["interval"][0]
        if not lo - 1e-12 <= value <= hi + 1e-12:
            fails.append(f"{shape} k={k}: {value} outside [{lo}, {hi}]")
    return fails


def check_mid_pair(p, q, ks):
    """V in 9..40: the law against the ln-t reference, the report's containments; returns failures."""
    fails = []
    V = len(p)
    a, tail, nu = lnt_rank_law(p, q, V)
    law = rank_law(p, q)
    l1 = float(np.abs(law.probs - a).sum())
    if l1 > law.error + 1e-12:
        fails.append(f"law l1 {l1:.3e} > its error {law.error:.3e}")
    h = _entropy(list(a) + [nu])
    if not law.entropy_ci[0] - 1e-10 <= h <= law.entropy_ci[1] + 1e-10:
        fails.append("H(R) interval")
    opt = [1 + v for v in best_first_sums(a, ks)]
    rep = speedup_report(p, q, k=ks, methods=["ersd"], tree="optimal", pfr=False)
    for i, k in enumerate(ks):
        lo, hi = rep.methods["ersd"]["interval"][i]
        if not (lo - 1e-8 * opt[i] <= opt[i] <= hi + 1e-8 * opt[i] and opt[i] <= rep.ersd_bound["value"][i] + 1e-8):
            fails.append(f"k={k}: optimum {opt[i]}, interval [{lo}, {hi}], bound {rep.ersd_bound['value'][i]}")
    return fails


def check_large_pair(p, q, ks):
    """V > 40: no exception, a finite error, intervals around their values and below the bound."""
    fails = []
    rep = speedup_report(p, q, k=ks, methods=["ersd"], tree="optimal", pfr=False)
    text = str(rep)
    if "ersd bound" not in text:
        fails.append("table")
    e = rep.methods["ersd"]
    if not math.isfinite(rep.summary["rank_law_error"]):
        fails.append("error not finite")
    for i, k in enumerate(ks):
        v, (lo, hi), b = e["tokens_per_call"][i], e["interval"][i], rep.ersd_bound["value"][i]
        if not (1 - 1e-12 <= lo <= v + 1e-12 and v <= b + 1e-12 and lo <= hi <= k + 1 + 1e-9):
            fails.append(f"k={k}: value {v}, interval [{lo}, {hi}], bound {b}")
    return fails


# --------------------------------------------------------------------------- fixed counterexamples (issue 20)

ITEM1_P = [0.9524018412416497, 0.04664990180371626, 4.849542943109224e-06, 9.43407411691018e-04]
ITEM1_Q = [1.0168859374668654e-08, 0.20645646287241659, 2.5915723909490261e-04, 0.79328436971962912]
ITEM5_P = [0.9999984874699844] + [5.041766718524370e-07] * 3
ITEM5_Q = [6.611809950722637e-03, 1.484007054967688e-04, 0.2590486512755714, 0.7341911380682092]


def _normed(v):
    v = np.asarray(v, float)
    return v / v.sum()


def renormalised_quadrature_law(p, q):
    """Broken variant (item 1): the adaptive quadrature, renormalised and reported with error 0."""
    from chansim.sampling.races import rank_distribution_exact
    from chansim.theory.ranklaw import law_from_probs

    rd = rank_distribution_exact(p, q)
    return law_from_probs(rd.probs * ((1 - rd.never) / rd.probs.sum()), rd.never)


def test_item1_small_v_law_is_right_and_the_renormalised_quadrature_is_caught():
    p, q = _normed(ITEM1_P), _normed(ITEM1_Q)
    exact_a, _ = rational_rank_law(p, q)
    assert float(exact_a[2]) == pytest.approx(3.9886e-5, rel=1e-4)        # the Monte Carlo: 3.93e-5 ± 0.1e-5
    assert _entropy(exact_a) == pytest.approx(0.211803, abs=1e-6)
    assert check_small_pair(p, q, [1, 10, 10_000]) == []
    law = rank_law(p, q)
    assert law.error < 1e-10 and law.probs[2] == pytest.approx(float(exact_a[2]), abs=law.error)
    rep = speedup_report(p, q, k=[1], methods=["ersd"], pfr=False)
    assert rep.methods["ersd"]["tokens_per_call"][0] == pytest.approx(1.952363, abs=1e-6)
    broken = check_small_pair(p, q, [1], law_fn=renormalised_quadrature_law)
    assert any("law l1" in f for f in broken) and any("H(R)" in f for f in broken), broken


def test_item2_gaussian_logit_pairs_return_a_table():
    rng = np.random.default_rng(0)
    rng.dirichlet(np.ones(100))
    rng.dirichlet(np.ones(100))
    z = 2 * rng.normal(size=100)
    p = np.exp(z - z.max())
    p /= p.sum()
    lq = z + rng.normal(size=100)
    q = np.exp(lq - lq.max())
    q /= q.sum()
    for methods in (None, ["sd"]):
        rep = speedup_report(p, q, k=[1, 4, 16, 64], methods=methods, pfr=False, rank_law=True)
        assert "ersd bound" in str(rep) and all(v >= 0 for v in rep.summary["rank_probs"])
    rep = speedup_report(p, q, k=[1, 4], methods=["sd"], pfr=False)      # sd alone: no law (issue 23)
    assert rep.summary["rank_entropy_nats"] is None
    assert rep.ersd_bound["value"] == [None, None] and "not computed" in str(rep)


@pytest.mark.parametrize("q0", [1e-10, 1e-11, 1e-12, 1e-20, 1e-300])
def test_item3_large_likelihood_ratios(q0):
    p = np.full(100, 0.5 / 99)
    p[0] = 0.5
    q = np.full(100, (1 - q0) / 99)
    q[0] = q0
    law = rank_law(p, q, max_rank=64, tol=1e-4)
    assert law.error <= 1e-4 and np.all(law.probs >= 0)
    assert check_large_pair(p, q, [1, 4, 16, 64]) == []


def test_item3_ratio_at_the_float_range_on_a_small_pair():
    p = _normed([0.5, 0.3, 0.2])
    q = _normed([1e-300, 0.5, 0.5])
    assert check_small_pair(p, q, [1, 100, 10_000]) == []


def test_item4_auxiliary_columns_never_abort(monkeypatch):
    import chansim.theory.bound_columns as columns

    def too_flat(*_, **__):                        # what a very flat law raises (ties at the node budget)
        raise ValueError("the 65536 largest path products need more than 135168 groups")

    p = np.zeros(65)
    p[0] = 1.0
    with monkeypatch.context() as patch:
        patch.setattr(columns, "top_products_sums", too_flat)
        rep = speedup_report(p, np.full(65, 1 / 65), k=[1, 64], pfr=False)
    assert rep.summary["asymptote_within_1pct_from_k"] is None and "135168 groups" in rep.summary["asymptote_note"]
    assert "1% point: -" in str(rep)
    rep = speedup_report([0.35, 0.65], [0.0, 1.0], k=[1, 2000], methods=["ersd"], pfr=False)
    chain = sum(0.65 ** d for d in range(2001))                          # a = (0.65,), never = 0.35
    assert rep.methods["ersd"]["tokens_per_call"][1] == pytest.approx(chain, rel=1e-12)


def test_item5_tree_interval_contains_the_truth_and_a_narrow_one_misses_it():
    p, q = _normed(ITEM5_P), _normed(ITEM5_Q)
    exact_a, _ = rational_rank_law(p, q)
    truth = 1 + best_first_sums([float(x) for x in exact_a], [10_000])[0]
    assert truth == pytest.approx(39.1562, abs=1e-4)
    law = rank_law(p, q, method="bounded", max_rank=4, tol=1e-4)          # the guaranteed law of the issue
    assert 1e-6 < law.error <= 1e-4
    v = 1 + best_first_sums(law.probs, [10_000])[0]
    bound = speedup_report(p, q, k=[10_000], methods=["ersd"], pfr=False).ersd_bound["value"][0]
    lo, hi = tree_value_interval(v, law.error, bound)
    assert lo <= truth <= hi and hi - lo > 1e-4                           # honest, and not marked exact
    assert not (v - law.error <= truth <= v + law.error)                  # broken variant: +- the l1 error only


def test_item6_exit_bound_counts_the_tail_at_v_equal_k_plus_one():
    from chansim.theory.bound_columns import exit_entropy_bound

    p = np.zeros(65)
    p[0] = 1.0
    law = rank_law(p, np.full(65, 1 / 65), method="bounded", max_rank=64, tol=1e-6)
    assert law.tail == pytest.approx(1 / 65, abs=1e-5)
    # exact law a_r = 1/65: H_max(c) = ln 65 for c >= 1, so the relaxation's largest c is exactly 2
    c_star = exit_entropy_bound(64, law, 65)
    assert 2.0 - 1e-12 <= c_star <= 2.01
    assert 1 + 64 / 65 <= c_star                                          # above the optimum 1.98462
    # broken variant: the old count (support - K - 1 tail ranks: none at V = K + 1) dropped the tail
    # mass from the caps, which is the bound of the same law without its tail
    import dataclasses

    assert exit_entropy_bound(64, dataclasses.replace(law, tail=0.0), 65) < 2.0 - 1e-3


# --------------------------------------------------------------------------- generated pairs (hypothesis)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_SMALL = st.tuples(st.sampled_from(FAMILIES), st.integers(2, 8), st.integers(0, 2**31 - 1),
                   st.integers(1, 10_000))


def _ks(k):
    return sorted({1, int(k), max(1, int(k) // 7)})


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_SMALL)
def test_generated_small_pairs_against_the_rational_law(case):
    family, vocab, seed, k = case
    p, q = make_pair(family, vocab, seed)
    assert check_small_pair(p, q, _ks(k)) == [], (family, vocab, seed, k)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.tuples(st.sampled_from(FAMILIES), st.integers(9, 24), st.integers(0, 2**31 - 1), st.integers(1, 10_000)))
def test_generated_mid_pairs_against_the_lnt_reference(case):
    family, vocab, seed, k = case
    p, q = make_pair(family, vocab, seed)
    assert check_mid_pair(p, q, _ks(k)) == [], (family, vocab, seed, k)


def test_the_battery_catches_the_renormalised_quadrature():
    """The law checks, with the broken law plugged in, fail on generated near-deterministic pairs."""
    caught = 0
    for seed in range(40):
        p, q = make_pair("near_det", 4, seed)
        caught += bool(check_small_pair(p, q, [1], law_fn=renormalised_quadrature_law))
        assert check_small_pair(p, q, [1], law_fn=rank_law) == []
    assert caught >= 1


@pytest.mark.slow
def test_battery_2000_generated_pairs():
    """2,000 pairs: V = 2..8 (rational reference, 1,870), 9..40 (ln-t reference, 100), 41..2,000 (no
    crash, consistent intervals, 30; k <= 64 there); k = 1..10^4."""
    rng = np.random.default_rng(20)
    failures, n = [], 0
    light = lambda p, q, ks: check_small_pair(p, q, ks, shapes=False)      # noqa: E731
    plan = [(2, 8, 1870, light), (9, 40, 100, check_mid_pair), (41, 2000, 30, check_large_pair)]
    for v_lo, v_hi, count, check in plan:
        for _ in range(count):
            family = FAMILIES[int(rng.integers(len(FAMILIES)))]
            vocab = int(np.exp(rng.uniform(np.log(v_lo), np.log(v_hi + 1)))) if v_hi > 100 else int(rng.integers(v_lo, v_hi + 1))
            vocab = min(max(vocab, v_lo), v_hi)
            seed = int(rng.integers(2**31))
            k = int(np.exp(rng.uniform(0, np.log(10_000))))
            p, q = make_pair(family, vocab, seed)
            ks = _ks(k) if check is not check_large_pair else sorted({1, min(k, 64)})
            try:
                fails = check(p, q, ks)
            except Exception as exc:                      # noqa: BLE001 - a crash is a failure, keep going
                fails = [f"{type(exc).__name__}: {exc}"]
            n += 1
            if fails:
                failures.append((family, vocab, seed, k, fails[:2]))
    import time
    print(f"battery: {n} pairs, {len(failures)} failures, {time.process_time():.0f} s CPU")
    assert n == 2000 and failures == [], failures[:5]


# --------------------------------------------------------------------------- issue 21, item 5: a bound says what it bounds


def test_ersd_bound_named_and_above_every_ersd_value_on_50_pairs():
    """``chansim bound``'s table on 50 random pairs: the column and JSON key name the ERSD bound, and no
    printed ERSD value (ersd, ersd-topm; optimal, chain and batch trees) lies above it."""
    rng = np.random.default_rng(21)
    for i in range(50):
        family = FAMILIES[i % len(FAMILIES)]
        p, q = make_pair(family, int(rng.integers(3, 13)), int(rng.integers(2**31)))
        for tree in ("optimal", "chain", "batch"):
            rep = speedup_report(p, q, k=[1, 4, 16, 64], methods=["sd", "ersd", "ersd-topm"], tree=tree, pfr=False)
            d = rep.to_dict()
            assert "bound" not in d and "ersd" in d["ersd_bound"]["bounds"].lower()
            assert "ersd bound" in str(rep)
            for name in ("ersd", "ersd-topm"):
                for v, b in zip(d["methods"][name]["tokens_per_call"], d["ersd_bound"]["value"]):
                    assert v is None or v <= b + 1e-12, (family, tree, name, v, b)


def test_figure4_bound_is_labelled_ersd_and_no_ersd_curve_exceeds_it():
    """Figure 4's data (the committed figures/fig4_tokens_per_call.json) and its legend."""
    import json
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chansim.figures import fig4_tokens_per_call as fig4

    path = Path(__file__).resolve().parents[1] / "figures" / "fig4_tokens_per_call.json"
    if not path.exists():
        pytest.skip("figure 4 not generated")
    data = json.loads(path.read_text())["data"]
    th = data["theory"]
    bound = dict(zip(th["k"], th["all_k_bound"]))
    for shape, curves in data["curves"].items():
        for name in ("ersd", "ersd-topm"):
            c = curves.get(name)
            if c:
                assert all(v <= bound[k] + 1e-9 for k, v in zip(c["k"], c["value"])), (shape, name)
    fig = fig4.plot(data)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    bounds = [t for t in labels if "bound" in t.lower()]
    assert bounds and all(t.startswith("ERSD") for t in bounds), bounds


def test_item3_k_up_to_a_million_returns_a_table():
    """k = 10^6: values where each method's work limit allows, '-' with the reason elsewhere."""
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.full(8, 0.3)), rng.dirichlet(np.full(8, 0.3))
    rep = speedup_report(p, q, k=[1, 1000, 10**6], pfr=False)
    text = str(rep)
    assert "ersd bound" in text and "not computed, shown as '-': ersd-topm at k = 1000000" in text
    e = rep.methods["ersd"]["tokens_per_call"]
    assert all(v is not None for v in e) and rep.methods["ersd-topm"]["tokens_per_call"][2] is None
    a, _ = rational_rank_law(p, q)
    assert e[1] == pytest.approx(1 + best_first_sums([float(x) for x in a], [1000])[0], rel=1e-9)
    assert e[1] < e[2] <= rep.ersd_bound["value"][2]
