r"""Channel simulation with the Poisson functional representation (PFR).

The target holds p, the draft (decoder) knows only q, and both share a Poisson process.
Arrivals :math:`T_1 < T_2 < \dots` of a rate-1 Poisson process carry i.i.d. marks
:math:`X_i \sim q`; the target selects

.. math:: K = \arg\min_i \; T_i \, q(X_i) / p(X_i), \qquad X_K \sim p \text{ exactly},

and "sends" the index K: the cost of simulating one token of p at a decoder that knows q
is the length of a code for K (Li & El Gamal 2018).  With a list of k candidates (the
first k arrivals), the target's token is in the list with probability
:math:`P(K \le k)` — list acceptance.

Exact law of K (derived here; used by every ``index_*`` function)
------------------------------------------------------------------
Split the process by mark: arrivals with mark x form independent Poisson processes of
rate :math:`q_x`, whose *scores* :math:`T q_x/p_x` form Poisson processes of rate
:math:`p_x`.  So the winning score S is Exp(1), independent of the winning mark
:math:`Y \sim p`, and the winner arrives at time :math:`t = S p_Y/q_Y`.  Given (Y, S),
the arrivals before t with mark x are exactly the points of the mark-x process in
:math:`(S p_x/q_x,\, S p_Y/q_Y)` (earlier ones would have a smaller score), a Poisson
count with mean :math:`S\,c_x`, :math:`c_x = (p_Y q_x/q_Y - p_x)_+`.  Hence
:math:`K - 1 \mid (Y, S) \sim \mathrm{Poisson}(S\,C_Y)` with
:math:`C_y = \sum_x (p_y q_x / q_y - p_x)_+`, and mixing over :math:`S \sim \mathrm{Exp}(1)`
gives a geometric law:

.. math::
    P(K = k) = \sum_y p_y \frac{C_y^{\,k-1}}{(1 + C_y)^{k}}, \qquad
    P(K \le k) = 1 - \sum_y p_y \Big(\frac{C_y}{1 + C_y}\Big)^{k}.

Only x with :math:`\rho_x = q_x/p_x > \rho_y` contribute to :math:`C_y`, so all
:math:`C_y` come from one sort on :math:`\rho` in :math:`O(V \log V)`:
:math:`C_y = Q_{>}(y)/\rho_y - P_{>}(y)` with :math:`Q_>, P_>` the q- and p-mass
above :math:`\rho_y`.  (The same :math:`c_x` appear in the rank law of
:func:`chansim.sampling.races.rank_distribution_exact`.)  p = q gives C = 0 and K = 1 always.

Costs
-----
* :func:`expected_log2_index` — :math:`E[\log_2 K]` by one-dimensional quadrature of
  Frullani's identity (accurate to ~1e-10 bits);
* :func:`index_entropy` — H(K): exact sum for k <= 1024, then Euler–Maclaurin with
  Gauss–Legendre quadrature of the smooth summand (error ~1e-10 bits);
* :func:`expected_code_length` — exact expected length of Elias gamma / delta codes
  (their lengths are constant on dyadic blocks, so the CDF gives them in closed form);
* :func:`zipf_code_length` — the ideal length of the best Zipf code,
  :math:`\min_\lambda \lambda E[\log_2 K] + \log_2 \zeta(\lambda)` (a Shannon code on it
  adds < 1 bit); this is the code Li & El Gamal use.

Bounds (Li & El Gamal 2018, "Strong functional representation lemma and applications
to coding theorems", IEEE Trans. IT 64(11), arXiv:1701.02827)
------------------------------------------------------------------------------------
* PFR lemma: :math:`E[\log_2 K] \le D(p\|q) + \log_2(e)/e + 1 \approx D + 1.531` bits
  (:func:`pfr_log_bound`);
* strong functional representation lemma, via the Zipf code:
  :math:`H(K) \le D + \log_2(D + 1) + 4` bits (:func:`sfrl_entropy_bound`), which also
  bounds :math:`E[\log_2 K]` (see the note below).

The constants are quoted from memory of the paper (the stored text available while
writing could not be read to the equations); both bounds are checked numerically on
many random pairs in ``tests/test_channel.py``.  Note that :math:`E[\log_2 K] \le H(K)`
holds because the pmf of K is non-increasing (a mixture of geometrics), so
:math:`P(K = k) \le 1/k`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import integrate, optimize, special

from .inputs.numbers import whole_number
from .inputs.distributions import check_pair_1d, kl_divergence
from .sampling.races import competitor_rates
from .common.stats import normal_quantile, wilson_interval

__all__ = [
    "PFRSample",
    "pfr_sample",
    "index_rates",
    "index_pmf",
    "index_cdf",
    "list_acceptance",
    "expected_log2_index",
    "index_entropy",
    "elias_gamma_length",
    "elias_delta_length",
    "expected_code_length",
    "zipf_code_length",
    "pfr_log_bound",
    "sfrl_entropy_bound",
    "PFR_LOG_CONSTANT",
    "ChannelSummary",
    "channel_summary",
    "mc_index_stats",
]

_LOG2E = 1.0 / math.log(2.0)
#: Constant of the PFR lemma in bits, :math:`\log_2(e)/e + 1` (Li & El Gamal 2018).
PFR_LOG_CONSTANT = _LOG2E / math.e + 1.0


def _pair_1d(target_probs, draft_probs, what: str, validate: bool = True):
    """The door of every public function here: one checked 1-D pair ``[V]`` with q > 0 wherever p > 0
    (else D(p||q) = inf and no PFR exists).  The private kernels behind the doors take its arrays.

    ``validate=False`` (a caller holding a pair it already checked) skips :func:`check_pair`'s
    scan; the shape and the support condition are still checked.
    """
    p, q = check_pair_1d(target_probs, draft_probs, what, validate)
    bad = (p > 0) & (q == 0)
    if np.any(bad):
        x = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"draft_probs is 0 at token {x} where target_probs is {p[x]:.3g} > 0: "
            "D(p||q) is infinite and no channel simulation with marks from q can produce p"
        )
    return p, q


# ----------------------------------------------------------------------------- sampler
_MAX_BLOCK_ELEMENTS = 1 << 22


class PFRSample(NamedTuple):
    """Result of :func:`pfr_sample`: ``index`` K (1-based) and ``token`` X_K, each ``(trials,)``."""

    index: np.ndarray
    token: np.ndarray


def pfr_sample(target_probs, draft_probs, trials: int, rng: np.random.Generator, block: int = 8) -> PFRSample:
    r"""Sample (K, X_K) of the Poisson functional representation, vectorised over trials.

    Arrivals are generated in blocks for all still-active trials (a mask, compacted
    every round).  **Stopping rule**: with :math:`\rho_{\min} = \min_x q_x/p_x`
    (:math:`\le 1`), every arrival after time T has score
    :math:`T' q(X')/p(X') > T \rho_{\min}`; once :math:`T\rho_{\min}` reaches the best
    score so far no later arrival can win, so the trial stops.  Block sizes double per
    round (capped so one round holds at most ~4M arrivals), so a trial needing n
    arrivals takes O(log n) rounds and O(n) work.  A trial examines about
    :math:`\max_x p_x/q_x = e^{D_\infty(p\|q)}` arrivals before it can stop, so the
    sampler is for moderate :math:`D_\infty`; the law of K is exact in
    :func:`index_pmf` for any pair.

    Parameters
    ----------
    target_probs, draft_probs : array_like, shape (V,)
        p and q; q must be positive wherever p is.
    trials : int
        Number of independent runs.
    rng : numpy.random.Generator
        Source of the shared randomness (arrival gaps and marks).
    block : int
        Arrivals per trial in the first round.

    Returns
    -------
    PFRSample
        ``index`` (int64, 1-based K) and ``token`` (int64, X_K ~ p), each ``(trials,)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = pfr_sample([0.5, 0.5], [0.5, 0.5], 1000, rng)
    >>> bool(np.all(s.index == 1))
    True
    >>> s = pfr_sample([0.9, 0.1], [0.1, 0.9], 20000, rng)
    >>> bool(abs((s.token == 0).mean() - 0.9) < 0.01)
    True
    """
    p, q = _pair_1d(target_probs, draft_probs, "pfr_sample")
    return _pfr_sample(p, q, _check_trials(trials), rng, block)


def _check_trials(trials) -> int:
    return whole_number(trials, "trials")


def _pfr_sample(p: np.ndarray, q: np.ndarray, trials: int, rng: np.random.Generator, block: int = 8) -> PFRSample:
    """:func:`pfr_sample` on checked arrays ``p``, ``q`` ``[V]`` (see :func:`_pair_1d`)."""
    with np.errstate(divide="ignore"):
        ratio = np.where(p > 0, q / p, np.inf)               # [V] score per unit time
    rho_min = float(ratio.min())                              # > 0 since q > 0 where p > 0
    cdf = np.cumsum(q)
    cdf /= cdf[-1]                                            # guards searchsorted against rounding

    best = np.full(trials, np.inf)                            # [trials] best score so far
    best_k = np.zeros(trials, dtype=np.int64)
    best_x = np.zeros(trials, dtype=np.int64)
    clock = np.zeros(trials)                                  # [trials] time of the last arrival
    seen = np.zeros(trials, dtype=np.int64)                   # arrivals generated so far
    active = np.arange(trials)
    size = max(1, int(block))
    while active.size:
        n = active.size
        times = clock[active, None] + np.cumsum(rng.standard_exponential((n, size)), axis=1)  # [n, size]
        marks = np.searchsorted(cdf, rng.random((n, size)), side="right")                     # [n, size]
        marks = np.minimum(marks, len(q) - 1)
        scores = times * ratio[marks]                                                         # [n, size]
        j = np.argmin(scores, axis=1)
        s = scores[np.arange(n), j]
        better = s < best[active]
        idx = active[better]
        best[idx] = s[better]
        best_k[idx] = seen[active][better] + j[better] + 1
        best_x[idx] = marks[better, j[better]]
        clock[active] = times[:, -1]
        seen[active] += size
        active = active[clock[active] * rho_min < best[active]]
        size = min(2 * size, max(int(block), _MAX_BLOCK_ELEMENTS // max(1, active.size)))
    return PFRSample(best_k, best_x)


# ----------------------------------------------------------------------------- exact law
def index_rates(target_probs, draft_probs) -> np.ndarray:
    r"""Rates :math:`C_y = \sum_x (p_y q_x/q_y - p_x)_+` of the law of K, shape ``(V,)``.

    Given the winning mark y, :math:`K - 1` is geometric with mean :math:`C_y` (see the
    module docstring).  Computed in :math:`O(V\log V)` by sorting on
    :math:`\rho = q/p`; entries with :math:`p_y = 0` are 0 (they never win).

    >>> index_rates([0.5, 0.5], [0.5, 0.5])
    array([0., 0.])
    >>> index_rates([1.0, 0.0], [0.5, 0.5])          # K ~ Geometric(1/2)
    array([1., 0.])
    """
    return _index_rates(*_pair_1d(target_probs, draft_probs, "index_rates"))


def _index_rates(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`index_rates` on checked arrays ``p``, ``q`` ``[V]`` → ``[V]`` (see :func:`_pair_1d`)."""
    return competitor_rates(p, q, validate=False)


def _log_keep(c: np.ndarray) -> np.ndarray:
    """log(C/(1+C)) = log P(K-1 >= 1 more | y), -inf for C = 0."""
    with np.errstate(divide="ignore"):
        return np.where(c > 0, -np.log1p(1.0 / np.where(c > 0, c, 1.0)), -np.inf)


def index_pmf(target_probs, draft_probs, kmax: int) -> np.ndarray:
    r"""Exact :math:`P(K = k)` for k = 1..kmax, shape ``(kmax,)``.

    .. math:: P(K = k) = \sum_y p_y\, C_y^{k-1} / (1 + C_y)^{k}

    >>> index_pmf([1.0, 0.0], [0.5, 0.5], 3)
    array([0.5  , 0.25 , 0.125])
    """
    p, q = _pair_1d(target_probs, draft_probs, "index_pmf")
    whole_number(kmax, "kmax")
    c = _index_rates(p, q)
    return _mixture_pmf(p, c, np.arange(1, int(kmax) + 1))


def _mixture_pmf(p: np.ndarray, c: np.ndarray, k: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """sum_y p_y C^(k-1)/(1+C)^k at integer or real k >= 1 (chunked over y)."""
    keep = p > 0
    p, c = p[keep], c[keep]
    out = np.zeros(k.shape)
    lk, lstop = _log_keep(c), -np.log1p(c)
    step = max(1, chunk // max(1, k.size))
    for s in range(0, len(p), step):
        km1 = k[None, :] - 1.0
        with np.errstate(invalid="ignore"):
            expo = np.where(km1 > 0, km1 * lk[s:s + step, None], 0.0) + lstop[s:s + step, None]
        out += (p[s:s + step, None] * np.exp(expo)).sum(0)
    return out


def index_cdf(target_probs, draft_probs, k) -> np.ndarray:
    r"""List acceptance :math:`P(K \le k) = 1 - \sum_y p_y (C_y/(1+C_y))^k` (exact).

    ``k``: non-negative integers (any shape); the result has the shape of ``k``.

    >>> index_cdf([1.0, 0.0], [0.5, 0.5], [0, 1, 2, 3])
    array([0.   , 0.5  , 0.75 , 0.875])
    """
    p, q = _pair_1d(target_probs, draft_probs, "index_cdf")
    return _index_cdf(p, q, _check_list_sizes(k))


def _check_list_sizes(k) -> np.ndarray:
    k = np.asarray(k)
    if k.size and (np.any(k < 0) or np.any(k != np.floor(k))):
        raise ValueError(f"list sizes k must be non-negative integers, got {k}")
    return k


def _index_cdf(p: np.ndarray, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """:func:`index_cdf` on checked arrays ``p``, ``q`` ``[V]`` and list sizes ``k`` (any shape) → shape of k."""
    c = _index_rates(p, q)
    keep = p > 0
    lk = _log_keep(c[keep])
    kf = k.astype(float).reshape(-1)
    with np.errstate(invalid="ignore"):
        tail = np.exp(np.where(kf[:, None] > 0, kf[:, None] * lk[None, :], 0.0))    # [nk, V+]
    return np.where(kf == 0, 0.0, 1.0 - tail @ p[keep]).reshape(k.shape)


#: Alias: probability that the target's token is among the first k arrivals.
list_acceptance = index_cdf


def _geom_log_mean(c: np.ndarray) -> np.ndarray:
    r"""E[ln K] for K - 1 ~ Geometric with mean c, vectorised (Frullani's identity).

    :math:`\ln K = \int_0^\infty (e^{-t} - e^{-tK})/t\,dt` and
    :math:`E e^{-tK} = \pi e^{-t}/(1 - (1-\pi)e^{-t})`, :math:`\pi = 1/(1+c)`, give
    :math:`E\ln K = \int_0^\infty e^{-t}\, c\,(1-e^{-t}) / (1 + c(1-e^{-t}))\, dt/t`,
    integrated over :math:`u = \ln t`.
    """
    c = np.asarray(c, float)
    if c.size == 0 or not np.any(c > 0):
        return np.zeros(c.shape)
    lo = -math.log(float(c.max())) - 45.0

    def integrand(u):
        t = math.exp(u)
        one_minus = -math.expm1(-t)
        return math.exp(-t) * c * one_minus / (1.0 + c * one_minus)

    # break points where the integrand of each component turns over (t ~ 1/c)
    cpos = c[c > 0]
    points = sorted({float(np.clip(-math.log(x), lo + 1.0, 4.0)) for x in np.quantile(cpos, [0, 0.5, 1])})
    val, _ = integrate.quad_vec(integrand, lo, 5.0, epsabs=1e-13, epsrel=1e-11, limit=500, points=points)
    return np.where(c > 0, val, 0.0)


def expected_log2_index(target_probs, draft_probs, validate: bool = True) -> float:
    r"""Exact :math:`E[\log_2 K] = \sum_y p_y\, E[\log_2 K \mid y]` (quadrature, ~1e-10 bits); pair ``[V]``.

    ``validate=False``: p, q are already checked (e.g. by :func:`chansim.theory.speedup_report`'s door).

    >>> p = [1.0, 0.0]; q = [0.5, 0.5]
    >>> ref = sum(0.5 ** k * np.log2(k) for k in range(1, 200))
    >>> bool(abs(expected_log2_index(p, q) - ref) < 1e-9)
    True
    """
    return _expected_log2_index(*_pair_1d(target_probs, draft_probs, "expected_log2_index", validate))


def _expected_log2_index(p: np.ndarray, q: np.ndarray) -> float:
    """:func:`expected_log2_index` on checked arrays ``p``, ``q`` ``[V]``."""
    c = _index_rates(p, q)
    keep = p > 0
    return float(p[keep] @ _geom_log_mean(c[keep])) * _LOG2E


def _xlog2x(f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -f * np.log2(np.where(f > 0, f, 1.0)), 0.0)


def index_entropy(target_probs, draft_probs, exact_terms: int = 1024, grid_ratio: float = 1.05,
                  tail_tol: float = 1e-16) -> float:
    r"""Entropy :math:`H(K)` in bits.

    Exact sum of :math:`-P(k)\log_2 P(k)` for k <= ``exact_terms``; beyond, the summand
    is a smooth function of k (a mixture of decaying exponentials times a log): the sum
    becomes an integral plus the Euler–Maclaurin end correction, integrated by 6-point
    Gauss–Legendre on geometric cells of ratio ``grid_ratio`` until the tail mass is
    below ``tail_tol`` (agrees with direct summation to ~1e-10 bits in the tests).  Mixture components whose mass beyond
    ``exact_terms`` is negligible are dropped from the grid part.

    >>> ref = -sum(0.5 ** k * np.log2(0.5 ** k) for k in range(1, 200))   # Geometric(1/2): 2 bits
    >>> bool(abs(index_entropy([1.0, 0.0], [0.5, 0.5]) - ref) < 1e-9)
    True
    """
    p, q = _pair_1d(target_probs, draft_probs, "index_entropy")
    return _index_entropy(p, q, exact_terms, grid_ratio, tail_tol)


def _index_entropy(p: np.ndarray, q: np.ndarray, exact_terms: int = 1024, grid_ratio: float = 1.05,
                   tail_tol: float = 1e-16) -> float:
    """:func:`index_entropy` on checked arrays ``p``, ``q`` ``[V]``."""
    c = _index_rates(p, q)
    keep = p > 0
    p, c = p[keep], c[keep]
    n0 = int(exact_terms)
    h = float(_xlog2x(_mixture_pmf(p, c, np.arange(1, n0 + 1, dtype=float))).sum())
    lk = _log_keep(c)
    with np.errstate(invalid="ignore"):
        tail_mass = p * np.exp(n0 * lk)                        # P(K > n0, Y = y)
    live = tail_mass > tail_tol * 1e-3
    if not np.any(live):
        return h
    cl = c[live]
    kmax = n0 + 1 + float(np.max((1.0 + cl) * (math.log(1e3 / tail_tol) + 1.0)))
    # sum_{k > n0} g(k) = int_{n0+1/2}^inf g + g'(n0+1/2)/24 + ... (Euler-Maclaurin, midpoint
    # form); the integral by 6-point Gauss-Legendre on geometric cells of ratio grid_ratio
    start = n0 + 0.5
    n_cells = int(math.ceil(math.log((kmax + 0.5) / start) / math.log(grid_ratio)))
    edges = start * grid_ratio ** np.arange(n_cells + 1)
    nodes, weights = np.polynomial.legendre.leggauss(6)
    half = 0.5 * np.diff(edges)
    x = (0.5 * (edges[1:] + edges[:-1]))[:, None] + half[:, None] * nodes[None, :]      # [cells, 6]
    g = _xlog2x(_mixture_pmf(p[live], cl, x.ravel())).reshape(x.shape)
    integral = float((g * weights[None, :] * half[:, None]).sum())
    h_step = 0.25
    slope = (_xlog2x(_mixture_pmf(p[live], cl, np.array([start + h_step])))
             - _xlog2x(_mixture_pmf(p[live], cl, np.array([start - h_step])))) / (2 * h_step)
    return h + integral + float(slope[0]) / 24.0


# ----------------------------------------------------------------------------- codes
def elias_gamma_length(k) -> np.ndarray:
    r"""Length in bits of the Elias gamma code of k >= 1: :math:`2\lfloor\log_2 k\rfloor + 1`.

    >>> elias_gamma_length([1, 2, 3, 4, 1000]).tolist()
    [1, 3, 3, 5, 19]
    """
    n = _floor_log2(k)
    return 2 * n + 1


def elias_delta_length(k) -> np.ndarray:
    r"""Length in bits of the Elias delta code of k >= 1:
    :math:`N + 2\lfloor\log_2(N+1)\rfloor + 1`, :math:`N = \lfloor\log_2 k\rfloor`.

    >>> elias_delta_length([1, 2, 3, 4, 1000]).tolist()
    [1, 4, 4, 5, 16]
    """
    n = _floor_log2(k)
    return n + 2 * _floor_log2(n + 1) + 1


def _floor_log2(k) -> np.ndarray:
    """Exact integer floor(log2 k) for integers 1 <= k < 2**53 (frexp is exact there)."""
    k = np.asarray(k)
    if k.size and (np.any(k < 1) or np.any(k != np.floor(k)) or np.any(k >= 2.0**53)):
        raise ValueError(f"code lengths are defined here for integers 1 <= k < 2**53, got {k}")
    return (np.frexp(k.astype(np.float64))[1] - 1).astype(np.int64)


def expected_code_length(target_probs, draft_probs, code: str = "delta") -> float:
    r"""Exact expected length in bits of a prefix code for K: ``"gamma"`` or ``"delta"`` (Elias).

    Both lengths depend on k only through :math:`j = \lfloor\log_2 k\rfloor`, so
    :math:`E[\ell(K)] = \sum_j \ell_j\,[P(K < 2^{j+1}) - P(K < 2^j)]` from the exact CDF.

    >>> float(expected_code_length([0.5, 0.5], [0.5, 0.5], "gamma"))    # K = 1 always
    1.0
    """
    if code not in ("gamma", "delta"):
        raise ValueError(f"code must be 'gamma' or 'delta', got {code!r}")
    return _expected_code_length(*_pair_1d(target_probs, draft_probs, "expected_code_length"), code)


def _expected_code_length(p: np.ndarray, q: np.ndarray, code: str) -> float:
    """:func:`expected_code_length` on checked arrays ``p``, ``q`` ``[V]``."""
    j = np.arange(0, 63)
    cdf = _index_cdf(p, q, np.concatenate([[0], 2 ** (j + 1) - 1]))
    block = np.diff(cdf)                                        # P(2^j <= K < 2^(j+1))
    length = 2 * j + 1 if code == "gamma" else j + 2 * _floor_log2(j + 1) + 1
    return float(block @ length)


def zipf_code_length(target_probs, draft_probs) -> tuple[float, float]:
    r"""Ideal length of the best Zipf code for K, and its exponent :math:`\lambda`.

    A Zipf law :math:`P_\lambda(k) = k^{-\lambda}/\zeta(\lambda)` costs
    :math:`E[-\log_2 P_\lambda(K)] = \lambda E[\log_2 K] + \log_2\zeta(\lambda)` bits
    (>= H(K); a Shannon code on :math:`P_\lambda` adds < 1 bit).  Minimised over
    :math:`\lambda > 1`; the decoder must know :math:`\lambda` (one shared number), as in
    Li & El Gamal's proof of the SFRL.

    >>> bits, lam = zipf_code_length([0.9, 0.1], [0.1, 0.9])
    >>> bool(index_entropy([0.9, 0.1], [0.1, 0.9]) <= bits) and lam > 1
    True
    """
    return _zipf_code_length(*_pair_1d(target_probs, draft_probs, "zipf_code_length"))


def _zipf_code_length(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """:func:`zipf_code_length` on checked arrays ``p``, ``q`` ``[V]``."""
    e = _expected_log2_index(p, q)

    def cost(lam):
        return lam * e + math.log2(special.zeta(lam))

    res = optimize.minimize_scalar(cost, bounds=(1.0 + 1e-9, 80.0), method="bounded",
                                   options={"xatol": 1e-10})
    return float(res.fun), float(res.x)


# ----------------------------------------------------------------------------- bounds
def pfr_log_bound(kl_bits) -> np.ndarray:
    r"""Li & El Gamal (2018) PFR lemma: :math:`E[\log_2 K] \le D + \log_2(e)/e + 1` (D in bits).

    >>> round(float(pfr_log_bound(0.0)), 4)
    1.5307
    """
    return _check_kl(kl_bits) + PFR_LOG_CONSTANT


def _check_kl(kl_bits) -> np.ndarray:
    """A divergence in bits: numbers >= 0 (``inf`` allowed), not NaN, not booleans."""
    if isinstance(kl_bits, (bool, np.bool_)) or kl_bits is None or isinstance(kl_bits, str):
        raise ValueError(f"kl_bits must be a number >= 0, got {kl_bits!r}")
    d = np.asarray(kl_bits, float)
    if not np.all(d >= 0):
        raise ValueError(f"kl_bits must be >= 0 and not NaN, got {kl_bits!r}")
    return d


def sfrl_entropy_bound(kl_bits) -> np.ndarray:
    r"""Li & El Gamal (2018) SFRL-type bound: :math:`H(K) \le D + \log_2(D + 1) + 4` (D in bits).

    >>> float(sfrl_entropy_bound(1.0))
    6.0
    """
    d = _check_kl(kl_bits)
    return d + np.log2(d + 1.0) + 4.0


# ----------------------------------------------------------------------------- summaries
class ChannelSummary(NamedTuple):
    r"""Bits and list acceptance of channel simulation for one (p, q) pair (all in bits).

    ``acceptance[i] = P(K <= ks[i])``; ``mc`` holds Monte Carlo estimates with intervals
    (see :func:`mc_index_stats`) or ``None`` when ``trials == 0``.
    """

    kl_bits: float
    expected_log2_k: float
    entropy_k: float
    gamma_length: float
    delta_length: float
    zipf_length: float
    zipf_exponent: float
    ks: tuple
    acceptance: tuple
    pfr_bound: float
    sfrl_bound: float
    mc: dict | None

    def as_dict(self) -> dict:
        d = self._asdict()
        d["ks"], d["acceptance"] = list(self.ks), list(self.acceptance)
        return d

    def to_dict(self) -> dict:
        """JSON-ready dict (same as :meth:`as_dict`)."""
        return self.as_dict()

    def to_records(self) -> list:
        """One flat dict per list size k: exact ``acceptance`` = P(K <= k), Monte Carlo interval if sampled."""
        rows = []
        for i, (k, a) in enumerate(zip(self.ks, self.acceptance)):
            row = {"k": k, "acceptance": a}
            if self.mc is not None:
                row["mc_acceptance"] = self.mc["acceptance"][i]
                row["mc_ci_low"], row["mc_ci_high"] = self.mc["acceptance_ci"][i]
            rows.append(row)
        return rows


def channel_summary(target_probs, draft_probs, ks=(1, 2, 4, 8, 16, 32), trials: int = 0,
                    seed: int = 0, confidence: float = 0.999) -> ChannelSummary:
    """Every cost and bound for one pair; exact, plus Monte Carlo when ``trials > 0``.

    >>> s = channel_summary([0.5, 0.5], [0.5, 0.5])
    >>> s.expected_log2_k, s.acceptance[0]
    (0.0, 1.0)
    """
    p, q = _pair_1d(target_probs, draft_probs, "channel_summary")
    ks = tuple(int(k) for k in ks)
    d = float(kl_divergence(p, q, base="bits", validate=False))
    zl, lam = _zipf_code_length(p, q)
    mc = None
    if trials:
        sample = _pfr_sample(p, q, _check_trials(trials), np.random.default_rng(seed))
        mc = mc_index_stats(sample.index, ks, confidence)
    return ChannelSummary(
        kl_bits=d,
        expected_log2_k=_expected_log2_index(p, q),
        entropy_k=_index_entropy(p, q),
        gamma_length=_expected_code_length(p, q, "gamma"),
        delta_length=_expected_code_length(p, q, "delta"),
        zipf_length=zl,
        zipf_exponent=lam,
        ks=ks,
        acceptance=tuple(float(a) for a in _index_cdf(p, q, _check_list_sizes(np.array(ks)))),
        pfr_bound=float(pfr_log_bound(d)),
        sfrl_bound=float(sfrl_entropy_bound(d)),
        mc=mc,
    )


def mc_index_stats(index, ks=(1, 2, 4, 8), confidence: float = 0.999) -> dict:
    r"""Monte Carlo estimates from sampled K: mean of :math:`\log_2 K` with a normal-theory
    interval, plug-in H(K) (biased low for heavy tails), and :math:`P(K \le k)` with
    Wilson intervals (Bonferroni over ``ks``).

    >>> st = mc_index_stats(np.ones(100, dtype=int), ks=(1,))
    >>> st["mean_log2_k"], st["acceptance"]
    (0.0, [1.0])
    """
    k = np.asarray(index)
    n = k.size
    if n == 0:
        raise ValueError("no samples")
    if k.dtype.kind not in "iu" or k.min() < 1:
        raise ValueError(f"index must hold the sampled K, integers >= 1, got dtype {k.dtype}, minimum {k.min()}")
    lg = np.log2(k)
    z = normal_quantile(confidence)
    half = z * lg.std(ddof=1) / math.sqrt(n) if n > 1 else math.inf
    _, counts = np.unique(k, return_counts=True)
    freq = counts / n
    succ = np.array([np.count_nonzero(k <= kk) for kk in ks])
    low, high = wilson_interval(succ, n, 1 - (1 - confidence) / max(1, len(ks)))
    return {
        "trials": int(n),
        "mean_log2_k": float(lg.mean()),
        "mean_log2_k_ci": [float(lg.mean() - half), float(lg.mean() + half)],
        "entropy_k_plugin": float(-(freq * np.log2(freq)).sum()),
        "acceptance": [float(s / n) for s in succ],
        "acceptance_ci": [[float(a), float(b)] for a, b in zip(low, high)],
    }
