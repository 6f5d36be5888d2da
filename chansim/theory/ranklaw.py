r"""The ERSD rank law :math:`a_r = P(R = r)` and the moments the theory needs.

R is the rank, in the draft's exponential race, of the target's race winner
(docs/algorithms.md, ERSD).  The large-k relation and the all-k bound depend on R only through

.. math::
    \mu = H(R) = E[-\ln a_R] \;\text{(nats)}, \qquad \mu_2 = E[(\ln a_R)^2],

and the tree expectations through the vector :math:`a`.  :func:`rank_law` returns a
:class:`RankLaw` carrying both with a proved :math:`\ell_1` error at every V: the full law
(K = V) for small vocabularies and a truncated law above, both by
:func:`chansim.theory.rankbound.bounded_rank_law` (docs/theory.md §0, §5); the older Monte
Carlo estimate below is kept as ``method="mc"``.

Large vocabularies (Monte Carlo on a head, with a rigorous truncation term)
--------------------------------------------------------------------------
The exact law costs :math:`O(V^3)` per quadrature node, so for large V we sample the
race restricted to a *head* H (tokens sorted by :math:`\max(p_x, q_x)`, the fewest
whose complement T has :math:`p(T), q(T) \le \varepsilon`, at most ``head_max``).
Let R' be the rank of the head-only p-race winner in the head-only q-race.  With the
same noise, R' = R unless the full winner y lies in T (probability p(T)) or some tail
token precedes y in the q-race.  Given y wins the p-race at time t (y ~ p, t ~ Exp(1)
independent), a tail token x precedes it with probability at most
:math:`1 - e^{-t q_x p_y/q_y}`, so

.. math::
    P(R \ne R') \le \delta = p(T) + \sum_{y \in H} p_y \frac{\lambda_y}{1 + \lambda_y},
    \qquad \lambda_y = q(T)\, p_y / q_y ,

and by the sharp continuity bound for entropy (Audenaert 2007 / Zhang 2007),
:math:`|H(R) - H(R')| \le \delta \ln V + h(\delta)` (h the binary entropy, nats).
H(R') is estimated from ``trials`` samples (plug-in with the Miller–Madow correction;
normal interval from the sample variance of :math:`-\ln \hat a_{R'}`), and the
reported interval for H(R) is widened by the truncation term.  The Monte Carlo part
of the interval is asymptotic (delta method); the truncation part is rigorous.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..inputs.distributions import check_pair
from ..common.stats import normal_quantile
from ..sampling.races import sample_ranks
from .rankbound import bounded_rank_law, entropy_continuity_bound, rank_entropy_interval

__all__ = ["RankLaw", "rank_law", "law_from_probs", "head_split"]


@dataclass(frozen=True)
class RankLaw:
    r"""Law of the ERSD rank R with its entropy moments.

    Attributes
    ----------
    probs : ndarray, shape (n,)
        :math:`a_1..a_n` (n = V for exact laws; for Monte Carlo the observed ranks).
    never : float
        P(the target's winner has q = 0): it can never be drafted.
    entropy : float
        :math:`\mu = H(R)` in nats (the "never" outcome counted as one more value).
    second_moment : float
        :math:`\mu_2 = E[(\ln a_R)^2]`.
    entropy_ci : (float, float)
        Interval for H(R) (equal to ``(entropy, entropy)`` when exact).
    exact : bool
        True when ``probs`` carries a *proved* :math:`\ell_1` error ``error`` <= :data:`EXACT_L1`
        = 1e-10 (the full small-V law of ``method="exact"``, docs/theory.md §5), or is an
        explicit pmf (:func:`law_from_probs`, error 0).  Never set from a quadrature's own
        error estimate.
    support : int
        Number of values R can take (ranks with :math:`a_r > 0`, plus "never").
    trials : int
        Monte Carlo sample size (0 when exact).
    truncation : float
        The bound :math:`\delta` on P(R != R') from the head restriction (0 if none).
    error : float
        Guaranteed :math:`\ell_1` error of ``(probs, tail)`` (``"exact"`` and ``"bounded"``,
        docs/theory.md §5; 0 only for :func:`law_from_probs`, ``nan`` for Monte Carlo).
    tail : float
        P(R > len(probs)) (drafted beyond the computed ranks).
    guaranteed : bool
        True when ``entropy_ci`` is a rigorous interval (exact or ``"bounded"``), False
        for the Monte Carlo interval.
    mean_rank_bound : float
        ``"bounded"``: upper bound on :math:`E[R\,1\{\text{drafted}\}]`
        (:attr:`chansim.theory.rankbound.BoundedRankLaw.mean_rank_bound`); ``nan`` otherwise.
    """

    probs: np.ndarray
    never: float
    entropy: float
    second_moment: float
    entropy_ci: tuple
    exact: bool
    support: int
    trials: int = 0
    truncation: float = 0.0
    error: float = 0.0
    tail: float = 0.0
    guaranteed: bool = True
    mean_rank_bound: float = float("nan")

    @property
    def alpha(self) -> float:
        """:math:`\\alpha_{ER} = a_1`."""
        return float(self.probs[0]) if len(self.probs) else 0.0

    def weights(self, m: int) -> np.ndarray:
        """Per-slot weights :math:`a_1..a_m` (zero beyond the known ranks), shape ``(m,)``.

        Raises ValueError when m exceeds the computed ranks of a truncated law
        (``tail > 0``): ask :func:`rank_law` for ``max_rank >= m``.
        """
        if int(m) > len(self.probs) and self.tail > 0:
            raise ValueError(f"rank law computed for {len(self.probs)} ranks (P(R > {len(self.probs)}) = "
                             f"{self.tail:.2e}); call rank_law(..., max_rank={int(m)})")
        out = np.zeros(int(m))
        n = min(int(m), len(self.probs))
        out[:n] = self.probs[:n]
        return out


def law_from_probs(probs, never: float = 0.0) -> RankLaw:
    r"""A :class:`RankLaw` from an explicit rank pmf (exact moments).

    >>> law = law_from_probs([0.5, 0.25, 0.25])
    >>> round(law.entropy, 6) == round(1.5 * math.log(2), 6)
    True
    """
    a = np.asarray(probs, dtype=float)
    full = np.append(a, never)
    if np.any(full < 0) or abs(full.sum() - 1) > 1e-6:
        raise ValueError(f"rank probabilities must be non-negative and sum to 1 (with never), got sum {full.sum():.6g}")
    pos = full[full > 0]
    h = float(-(pos * np.log(pos)).sum())
    m2 = float((pos * np.log(pos) ** 2).sum())
    return RankLaw(a, float(never), h, m2, (h, h), True, int(len(pos)))


def head_split(target_probs, draft_probs, eps: float = 1e-4, head_max: int = 2048):
    """Indices of the head H (see module docstring) and the truncation bound delta.

    Returns ``(head, delta)``; ``head`` is sorted by decreasing ``max(p, q)``.
    """
    p, q = np.asarray(target_probs, float), np.asarray(draft_probs, float)
    score = np.maximum(p, q)
    vocab = len(p)
    if vocab <= head_max:
        order = np.argsort(-score, kind="stable")
    else:
        part = np.argpartition(-score, head_max - 1)[:head_max]
        order = part[np.argsort(-score[part], kind="stable")]
    tail_p = p.sum() - np.cumsum(p[order])
    tail_q = q.sum() - np.cumsum(q[order])
    ok = np.flatnonzero((tail_p <= eps) & (tail_q <= eps))
    n = int(ok[0]) + 1 if len(ok) else len(order)
    head = order[:n]
    pt, qt = max(float(tail_p[n - 1]), 0.0), max(float(tail_q[n - 1]), 0.0)
    ph, qh = p[head], q[head]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(ph > 0, qt * ph / qh, 0.0)
        term = np.where(np.isinf(lam), 1.0, lam / (1 + lam))
    delta = min(1.0, pt + float((ph * term).sum()))
    return head, delta


def _binary_entropy(d: float) -> float:
    if d <= 0 or d >= 1:
        return 0.0
    return -d * math.log(d) - (1 - d) * math.log(1 - d)


def rank_law(target_probs, draft_probs, method: str = "auto", trials: int = 4000, seed: int = 0,
             exact_max_vocab: int = 64, eps: float = 1e-4, head_max: int = 2048,
             confidence: float = 0.99, max_rank: int = 64, tol: float = 1e-4) -> RankLaw:
    r"""Rank law of one (p, q) pair with a proved :math:`\ell_1` error ``law.error`` at every V.

    ``"exact"`` (the default for ``V <= exact_max_vocab``) is the full law, K = V, by the
    guaranteed method below at tol 1e-12 (proved error ~3e-13, no renormalisation;
    ``exact`` is True when the error is <= 1e-10).  ``"bounded"`` (the default above ``exact_max_vocab``,
    :func:`chansim.theory.rankbound.bounded_rank_law`) returns :math:`a_1..a_K`,
    K = ``max_rank``, with a guaranteed :math:`\ell_1` error ``law.error`` (aimed at
    ``tol``), ``probs[0]`` = the exact :math:`\alpha_{ER}`, and a rigorous interval
    ``entropy_ci`` for H(R) (docs/theory.md §5); ``entropy`` is its midpoint and
    ``second_moment`` the head value plus the midpoint of the tail's bracket.
    ``"mc"`` is the older Monte Carlo estimate on a head (kept for comparison).

    Parameters
    ----------
    target_probs, draft_probs : array_like, shape (V,)
    method : {"auto", "exact", "bounded", "mc"}
    trials : int
        Monte Carlo sample size (``"mc"``).
    eps, head_max : float, int
        Head restriction for Monte Carlo (module docstring); ``eps=0`` keeps every token
        with positive mass.
    confidence : float
        Level of ``entropy_ci`` (``"mc"``).
    max_rank, tol : int, float
        ``"bounded"``: number of ranks computed and the error aimed at.

    Examples
    --------
    >>> law = rank_law([0.5, 0.5], [0.9, 0.1])          # V = 2: a_1 = 1 - TV
    >>> bool(np.isclose(law.probs[0], 0.6))
    True
    """
    p, q = check_pair(target_probs, draft_probs)
    if p.ndim != 1:
        raise ValueError(f"rank_law takes one pair of 1-D vectors, got shape {p.shape}")
    vocab = p.shape[-1]
    if method == "auto":
        method = "exact" if vocab <= exact_max_vocab else "bounded"
    if method == "bounded":
        return _bounded_law(p, q, max_rank, tol)
    if method == "exact":
        return _small_law(p, q)
    if method != "mc":
        raise ValueError(f"method must be 'auto', 'exact', 'bounded' or 'mc', got {method!r}")
    if trials < 2:
        raise ValueError(f"trials must be >= 2, got {trials}")
    head, delta = head_split(p, q, eps, head_max)
    ph, qh = p[head], q[head]
    ranks = sample_ranks(ph, qh, trials, np.random.default_rng(seed), dtype=np.float32, validate=False)
    n_head = len(head)
    counts = np.bincount(ranks, minlength=n_head + 2)[1:]          # ranks 1..n_head, then never
    freq = counts / trials
    observed = int(np.count_nonzero(counts))
    logf = np.log(freq[ranks - 1])
    h_plug = float(-logf.mean())
    h = h_plug + (observed - 1) / (2 * trials)                     # Miller–Madow
    m2 = float((logf ** 2).mean())
    z = normal_quantile(confidence)
    se = float(logf.std(ddof=1)) / math.sqrt(trials)
    trunc = entropy_continuity_bound(delta, vocab + 1)                    # needs delta <= 1/2 (§5)
    ci = (max(0.0, h - z * se - (observed - 1) / (2 * trials) - trunc), h + z * se + trunc)
    a = freq[:n_head]
    never = float(freq[n_head])
    return RankLaw(a, never, h, m2, ci, False, observed, trials, delta, float("nan"), 0.0, False)


#: l1 error aimed at by the full law of ``method="exact"`` (V <= ``exact_max_vocab`` by default)
EXACT_TOL = 1e-12
#: a law whose proved l1 error is at most this is flagged ``exact`` (far below any printed digit)
EXACT_L1 = 1e-10


def structural_support(p, q) -> int:
    r"""Number of values R can take, "never" included: :math:`\max_y (n_y + 1) + 1\{\nu > 0\}`.

    Given winner y (:math:`p_y, q_y > 0`), exactly the :math:`n_y` tokens with
    :math:`\rho_x = q_x/p_x > \rho_y` (q_x > 0) can precede it, each with positive probability
    and jointly (§0: independent Bernoullis with :math:`\pi_x(t) > 0`), so the ranks
    1..n_y + 1 all have positive probability and no other rank does.

    >>> structural_support(np.array([1.0, 0.0]), np.array([0.5, 0.5]))   # ranks 1, 2
    2
    """
    live = (p > 0) & (q > 0)
    never = bool(np.any((p > 0) & (q == 0)))
    if not live.any():
        return int(never)
    with np.errstate(divide="ignore"):
        rho = np.where(p > 0, q / np.where(p > 0, p, 1.0), np.inf)[q > 0]      # drafted tokens' ratios
    lowest = float(np.min(q[live] / p[live]))                                  # the winner with most rivals
    return int(np.count_nonzero(rho > lowest)) + 1 + int(never)


def _small_law(p, q) -> RankLaw:
    r"""The full law (K = V) by :func:`bounded_rank_law` at ``EXACT_TOL``: a proved l1 error, no renormalisation.

    Replaces the adaptive quadrature with renormalisation that was called exact (issue 20:
    it missed a feature near t ~ 1e-7 and hid the lost mass). ``exact`` is True only when
    the proved error is at most :data:`EXACT_L1`; ``error`` always carries it.
    """
    vocab = p.shape[-1]
    b = bounded_rank_law(p, q, max_rank=vocab, tol=EXACT_TOL)
    lo, hi = rank_entropy_interval(b.head, 0.0, b.never, b.error, b.mean_rank_bound, 0)
    full = np.append(b.head, b.never)
    pos = full[full > 0]
    h = float(-(pos * np.log(pos)).sum())
    m2 = float((pos * np.log(pos) ** 2).sum())
    return RankLaw(b.head, b.never, min(max(h, lo), hi), m2, (lo, hi), b.error <= EXACT_L1,
                   structural_support(p, q), 0, 0.0, b.error, 0.0, True, float(b.mean_rank_bound))


def _bounded_law(p, q, max_rank: int, tol: float) -> RankLaw:
    """:class:`RankLaw` from :func:`bounded_rank_law` (docs/theory.md §5)."""
    vocab = p.shape[-1]
    b = bounded_rank_law(p, q, max_rank=max_rank, tol=tol)
    n_tail = vocab - len(b.head)
    lo, hi = rank_entropy_interval(b.head, b.tail, b.never, b.error, b.mean_rank_bound, n_tail)
    pos = b.head[b.head > 0]
    m2_head = float((pos * np.log(pos) ** 2).sum()) + (b.never * math.log(b.never) ** 2 if b.never > 0 else 0.0)
    # tail part of E[(ln a_R)^2]: in [0, tau ln^2(tau/n_tail)] (x ln^2 x is concave below 1/e^2)
    tau = min(max(b.tail, 0.0), 1.0)
    m2_tail = tau * math.log(tau / n_tail) ** 2 if tau > 0 and n_tail > 0 else 0.0
    support = int(np.count_nonzero(b.head)) + (n_tail if b.tail > 0 else 0) + int(b.never > 0)
    return RankLaw(b.head, b.never, 0.5 * (lo + hi), m2_head + 0.5 * m2_tail, (lo, hi), False, support,
                   0, b.tail, b.error, b.tail, True, float(b.mean_rank_bound))
