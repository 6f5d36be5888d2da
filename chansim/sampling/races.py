r"""Exponential races: shared randomness for draft and target.

An exponential race over a distribution :math:`r` gives token :math:`x` the arrival
time :math:`E_x / r_x` with :math:`E_x \sim \mathrm{Exp}(1)` i.i.d.; the winner
:math:`\arg\min_x E_x/r_x` is distributed exactly as :math:`r`, and the arrival order
is sampling without replacement from :math:`r` (its first m entries are the
Gumbel-top-m sample, since :math:`-\log E_x` is Gumbel).  Tokens with
:math:`r_x = 0` arrive at :math:`+\infty` and never win.

The same noise vector :math:`E` drives the target race (under p) and the draft race
(under q).  The **rank** R of the target's winner in the draft's race is the quantity
the whole speed-up analysis rests on (Kobus & Gündüz 2025).

Noise comes from two places:

* :func:`keyed_exponential` — a counter-based hash of (seed, position, token) that
  gives bit-identical values in numpy and torch (CPU and CUDA), so a draft model and a
  target model on different devices share it without communicating;
* a ``numpy.random.Generator`` (``rng.standard_exponential``) for Monte Carlo, where
  draft and target are simulated side by side.

The rank law has one entry point, :func:`chansim.theory.rank_law` (exact for small V,
guaranteed error above).  :func:`rank_distribution_exact` (its small-V kernel) and
:func:`rank_distribution_mc` (the Monte Carlo reference the tests compare against) live
here because they are race computations, not because they are a second way in.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import integrate

from ..inputs.numbers import whole_number
from ..inputs.distributions import as_pair, check_pair_1d
from .kernels import poisson_binomial_add
from ..common.stats import wilson_interval

__all__ = [
    "keyed_uniform",
    "keyed_exponential",
    "portable_log",
    "race_times",
    "race_winner",
    "race_top_m",
    "race_rank",
    "competitor_rates",
    "er_acceptance",
    "er_acceptance_quadratic",
    "RankDistribution",
    "rank_distribution_exact",
    "rank_distribution_mc",
    "sample_ranks",
]

# ----------------------------------------------------------------------------- keyed noise
_MASK32 = 0xFFFFFFFF
_TWO_POW_21 = float(2**21)
_TWO_POW_53 = float(2**53)


def _fmix32(h):
    """MurmurHash3 32-bit finaliser on non-negative int64 values < 2**32.

    Products may wrap around int64 (numpy and torch both wrap in two's complement),
    so the low 32 bits, kept by the mask, are exact in both libraries.
    """
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _MASK32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def _as_int64(x, like):
    """int64 array/tensor of ``x`` in the library of ``like`` (numpy unless ``like`` is a tensor)."""
    if _is_torch(like):
        import torch

        return torch.as_tensor(x, dtype=torch.int64, device=like.device)
    return np.asarray(x, dtype=np.int64)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def keyed_uniform(seed: int, position, tokens):
    r"""Uniforms :math:`U(\text{seed}, \text{position}, \text{token}) \in (0, 1)` from a counter-based hash.

    ``position`` and ``tokens`` broadcast against each other (e.g. ``position`` of shape
    ``(n, 1)`` and ``tokens`` of shape ``(V,)`` give ``(n, V)``).  Pass ``tokens`` as a
    torch tensor to compute on its device; the values are bit-identical to numpy's.
    Each uniform has 53 random bits, ``(a * 2**21 + b // 2**11 + 0.5) / 2**53`` for two
    32-bit hashes a, b; for a fixed (seed, position) the hash ``a`` is a bijection of the
    token id, so two tokens never share a value.

    >>> u = keyed_uniform(7, 3, np.arange(4))
    >>> bool(np.all((u > 0) & (u < 1))), bool(np.array_equal(u, keyed_uniform(7, 3, np.arange(4))))
    (True, True)
    """
    if not (0 <= int(seed) < 2**63):
        raise ValueError(f"seed must be a non-negative integer below 2**63, got {seed}")
    tok = _as_int64(tokens, tokens)
    pos = _as_int64(position, tok)
    if (pos < 0).any() or (pos >= 2**32).any():
        raise ValueError("positions must lie in [0, 2**32)")
    if (tok < 0).any() or (tok >= 2**32).any():
        raise ValueError("token ids must lie in [0, 2**32)")
    seed = int(seed)
    with np.errstate(over="ignore"):      # int64 wrap-around is intended (low 32 bits kept)
        a, b = _hash_pair(seed, pos, tok)
    if _is_torch(a):
        import torch

        a, b = a.to(torch.float64), b.to(torch.float64)
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * _TWO_POW_21 + (b // 2048.0) + 0.5) / _TWO_POW_53


def _hash_pair(seed: int, pos, tok):
    """Two 32-bit hashes of (seed, position, token); the first is a bijection of tok."""
    key = _fmix32((seed & _MASK32) ^ 0x9E3779B9)
    key = _fmix32(key ^ ((seed >> 32) & _MASK32))
    h = _fmix32((pos ^ key) & _MASK32)                      # one key per position
    h = _fmix32((h + 0x7F4A7C15) & _MASK32)
    a = _fmix32((_fmix32(h ^ tok) + 0x6A09E667) & _MASK32)  # bijective in tok for fixed h
    b = _fmix32((_fmix32((h ^ 0xA5A5A5A5) ^ tok) + 0x3C6EF372) & _MASK32)
    return a, b


def keyed_exponential(seed: int, position, tokens):
    r"""Keyed Exp(1) noise :math:`E = -\log U(\text{seed}, \text{position}, \text{token})`.

    numpy in, numpy out; torch in, torch out (same device), bit-identical: the logarithm
    is :func:`portable_log`, built from IEEE-exact operations only, because library
    ``log`` implementations (glibc, SLEEF, CUDA) differ in the last bit.
    See :func:`keyed_uniform`.

    >>> E = keyed_exponential(0, np.arange(2000)[:, None], np.arange(500))
    >>> bool(abs(E.mean() - 1) < 0.01 and abs(E.var() - 1) < 0.02)
    True
    """
    return -_portable_log(keyed_uniform(seed, position, tokens))


_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
#: 2/(2j+1) for the series log m = 2 atanh(s) = 2 (s + s^3/3 + ...), s = (m-1)/(m+1)
_ATANH_COEFFS = [2.0 / (2 * j + 1) for j in range(13)]


def portable_log(x):
    r"""Natural log of positive float64 values using only +, -, *, / and frexp.

    :math:`x = m 2^e` with :math:`m \in [\sqrt{1/2}, \sqrt 2)`, then
    :math:`\log x = e\log 2 + 2\,\mathrm{atanh}\big((m-1)/(m+1)\big)` summed to 13 terms
    (|s| <= 0.172, truncation < 1e-20).  IEEE arithmetic is exactly rounded, so numpy,
    torch CPU and torch CUDA give the same bits (relative error vs ``np.log`` ~1e-16).

    numpy input must be >= 0 and not NaN (``ValueError``; ``log 0 = -inf``); torch tensors are
    taken as checked.

    >>> x = np.array([1e-300, 0.1, 0.5, 1.0, 7.0])
    >>> bool(np.allclose(portable_log(x), np.log(x), rtol=1e-15, atol=1e-15))
    True
    """
    if not _is_torch(x):
        v = np.asarray(x)
        if v.dtype.kind not in "biuf":
            raise ValueError(f"portable_log takes real numbers, got dtype {v.dtype}")
        if v.size and not float(np.min(v)) >= 0:
            raise ValueError(f"portable_log takes values >= 0, got minimum {float(np.min(v)):g}")
        x = v.astype(np.float64)
    return _portable_log(x)


def _portable_log(x):
    """:func:`portable_log` without the input check (keyed uniforms lie in (0, 1])."""
    if _is_torch(x):
        import torch

        m, e = torch.frexp(x)
        e = e.to(torch.float64)
    else:
        m, e = np.frexp(x)
        e = e.astype(np.float64)
    low = (m < _SQRT_HALF) * 1.0             # bring m into [sqrt(1/2), sqrt(2))
    m = m * (1.0 + low)                      # doubles m where low (exact)
    e = e - low
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    acc = s2 * 0.0 + _ATANH_COEFFS[-1]
    for coeff in reversed(_ATANH_COEFFS[:-1]):
        acc = acc * s2 + coeff
    return e * _LN2 + s * acc


# ----------------------------------------------------------------------------- races
def race_times(noise, probs):
    r"""Arrival times :math:`E_x / r_x` (``+inf`` where :math:`r_x = 0`).

    A kernel on checked input (the verification walks call it on every node, so it does not
    scan its arguments): ``noise`` >= 0 and ``probs`` >= 0, neither NaN. :func:`race_winner`,
    :func:`race_top_m` and :func:`race_rank` are the checked entry points.

    ``noise`` shape ``(..., V)`` (Exp(1) values), ``probs`` broadcastable to it.  Plain
    float64 division rather than log space: division is exactly rounded on every
    backend, so a race on the same (noise, probs) has the same winner in numpy and
    torch, CPU or CUDA (float64 keeps E/r finite for any r above ~1e-300).
    """
    if _is_torch(noise):
        import torch

        return noise / torch.as_tensor(probs, dtype=noise.dtype, device=noise.device)
    with np.errstate(divide="ignore"):
        return np.asarray(noise) / np.asarray(probs, dtype=float)


def _check_rates(probs, name: str = "probs") -> None:
    """Rates of a race must be >= 0 and not NaN (numpy inputs; one pass over ``probs``, not the noise)."""
    r = np.asarray(probs)
    if r.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers, got dtype {r.dtype}")
    if r.size and not float(np.min(r)) >= 0:                          # NaN fails too
        raise ValueError(f"{name} must be non-negative rates (probabilities), got minimum {float(np.min(r)):g}")
    if r.size and not np.isfinite(float(np.max(r))):
        raise ValueError(f"{name} must be finite, got {float(np.max(r)):g}")


def _check_times(first):
    """The earliest arrival of each race must be a number >= 0: a negative or NaN time means noise that is
    not Exp(1) values (a NaN anywhere in a row makes argmin pick it, so checking the winner finds it)."""
    if first.size and not float(np.min(first)) >= 0:
        raise ValueError("noise must hold Exp(1) values (>= 0, not NaN): a race time is negative or NaN")


def race_winner(noise, probs):
    r"""Winner :math:`\arg\min_x E_x / r_x` of the race along the last axis (distributed as r).

    numpy inputs are checked (``ValueError``): rates ``probs`` >= 0 and finite, noise >= 0 and
    not NaN; torch tensors are taken as checked (a check would synchronise the device).

    >>> int(race_winner(np.array([1.0, 0.5, 2.0]), np.array([0.2, 0.0, 0.8])))
    2
    >>> race_winner(np.array([1.0, 1.0]), np.array([-0.5, 1.5]))
    Traceback (most recent call last):
    ...
    ValueError: probs must be non-negative rates (probabilities), got minimum -0.5
    """
    if _is_torch(noise):
        return race_times(noise, probs).argmin(-1)
    _check_rates(probs)
    t = np.asarray(race_times(noise, probs))
    if t.ndim == 0:
        raise ValueError("a race needs at least one token (noise and probs are scalars)")
    if t.shape[-1] == 0:
        raise ValueError("a race needs at least one token (empty last axis)")
    win = np.argmin(t, axis=-1)
    _check_times(np.take_along_axis(t, np.asarray(win)[..., None], -1))
    return win


def race_top_m(noise, probs, m: int):
    r"""The ``m`` earliest arrivals of the race, earliest first, shape ``(..., m)``.

    This is sampling without replacement from r (Gumbel-top-m).  Only tokens with
    :math:`r_x > 0` can arrive; ``m`` larger than the support raises ``ValueError``.
    """
    m = _check_m(m)
    if not _is_torch(noise):
        _check_rates(probs)
    t = race_times(noise, probs)
    if _is_torch(t):
        if m > t.shape[-1]:
            raise ValueError(f"m={m} exceeds the vocabulary size {t.shape[-1]}")
        top = t.topk(m, dim=-1, largest=False, sorted=True)
        if not bool(top.values.isfinite().all()):
            raise ValueError(f"m={m} exceeds the number of tokens with positive probability")
        return top.indices
    t = np.asarray(t)
    if m > t.shape[-1]:
        raise ValueError(f"m={m} exceeds the vocabulary size {t.shape[-1]}")
    part = np.argpartition(t, m - 1, axis=-1)[..., :m] if m < t.shape[-1] else np.broadcast_to(np.arange(m), t.shape)
    vals = np.take_along_axis(t, part, -1)
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"m={m} exceeds the number of tokens with positive probability")
    order = np.argsort(vals, axis=-1, kind="stable")
    _check_times(np.take_along_axis(vals, order[..., :1], -1))
    return np.take_along_axis(part, order, -1)


def race_rank(noise, probs, token):
    r"""1-based rank of ``token`` in the race: :math:`1 + \#\{x : E_x/r_x < E_t/r_t\}`.

    A token with :math:`r_t = 0` gets rank ``V + 1`` (it never arrives).
    ``token`` has the batch shape of ``noise[..., 0]``.
    """
    _check_rates(probs)
    t = np.asarray(race_times(noise, probs))
    token = np.asarray(token)
    if token.dtype.kind not in "iu" or (token.size and (token.min() < 0 or token.max() >= t.shape[-1])):
        raise ValueError(f"token must hold integer ids in [0, {t.shape[-1]}), got {token!r}")
    tt = np.take_along_axis(t, token[..., None], -1)
    rank = 1 + np.count_nonzero(t < tt, axis=-1)
    return np.where(np.isfinite(tt[..., 0]), rank, t.shape[-1] + 1)


def _check_trials(trials) -> int:
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer, float, np.floating)) \
            or trials != trials or int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    return int(trials)


def _check_m(m) -> int:
    return whole_number(m, "number of drafted tokens")


# ----------------------------------------------------------------------------- acceptance
def competitor_rates(target_probs, draft_probs, validate: bool = True) -> np.ndarray:
    r"""Rates :math:`C_y = \sum_x (p_y q_x/q_y - p_x)_+` for every token y, shape ``(..., V)``.

    If y wins the p-race at time t, token x arrives before y in the q-race with
    probability :math:`1 - e^{-t c_x}`, :math:`c_x = (p_y q_x/q_y - p_x)_+`, and
    :math:`C_y = \sum_x c_x`.  Hence :math:`\alpha_{ER} = \sum_y p_y/(1 + C_y)`
    (:func:`er_acceptance`) and the PFR index K has :math:`K - 1 \mid y \sim`
    Geometric with mean :math:`C_y` (:mod:`chansim.channel`).  With
    :math:`\rho = q/p`, :math:`1 + C_y = \sum_{x:\rho_x\le\rho_y} p_x + \rho_y^{-1}\sum_{x:\rho_x>\rho_y} q_x`,
    so one sort on :math:`\rho` gives every :math:`C_y` in :math:`O(V\log V)`.
    :math:`C_y = 0` where :math:`p_y = 0` (y never wins) and :math:`+\infty` where
    :math:`q_y = 0 < p_y` (y is never drafted).  Batched over leading axes.

    >>> competitor_rates([0.5, 0.5], [0.5, 0.5]).tolist()
    [0.0, 0.0]
    >>> competitor_rates([1.0, 0.0], [0.5, 0.5]).tolist()
    [1.0, 0.0]
    """
    p, q = as_pair(target_probs, draft_probs, validate)
    order, p_s, rates_s = _sorted_rates(p, q)
    rates = np.empty_like(rates_s)
    np.put_along_axis(rates, order, rates_s, -1)
    return rates


def _gather(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``a`` reordered along the last axis (plain indexing in 1-D: take_along_axis costs 3x there)."""
    return a[order] if a.ndim == 1 else np.take_along_axis(a, order, -1)


def _sorted_rates(p: np.ndarray, q: np.ndarray):
    r"""``(order, p sorted, C sorted)``: :func:`competitor_rates` in the order of ascending :math:`\rho = q/p`.

    Checked arrays of equal shape.  Ties of :math:`\rho` are one block (every member counts the
    others as "below"), so any order within a tie gives the same rates: an unstable sort is exact.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rho = np.where(p > 0, q / p, np.inf)                  # inf for p = 0 (always "above")
    order = np.argsort(rho, axis=-1)
    rho_s, p_s, q_s = _gather(rho, order), _gather(p, order), _gather(q, order)
    end = _tie_block_end(rho_s)                               # ties of rho count as "below"
    p_above = p_s.sum(-1, keepdims=True) - _gather(np.cumsum(p_s, axis=-1), end)
    q_above = q_s.sum(-1, keepdims=True) - _gather(np.cumsum(q_s, axis=-1), end)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rates_s = np.where(p_s > 0, np.maximum(np.where(q_above > 0, q_above / rho_s, 0.0) - p_above, 0.0), 0.0)
        rates_s = np.where((p_s > 0) & (rho_s == 0), np.inf, rates_s)
    return order, p_s, rates_s


def er_acceptance(target_probs, draft_probs, validate: bool = True) -> np.ndarray:
    r"""Acceptance of a single exponential-race draft, :math:`\alpha_{ER} = P(R = 1)`.

    .. math::
        \alpha_{ER} = \sum_x \frac{1}{\sum_y \max(p_y/p_x,\; q_y/q_x)}
                    = \sum_y \frac{p_y}{1 + C_y},

    with the competitor rates :math:`C_y` of :func:`competitor_rates`, computed in
    :math:`O(V\log V)` by sorting on :math:`\rho = q/p` (Kobus & Gündüz 2025;
    derivation in docs/theory.md §0).  Batched over leading axes.

    >>> float(er_acceptance([0.3, 0.7], [0.3, 0.7]))
    1.0
    >>> p, q = [0.1, 0.2, 0.7], [0.5, 0.25, 0.25]
    >>> bool(np.isclose(er_acceptance(p, q), er_acceptance_quadratic(p, q), rtol=0, atol=1e-12))
    True
    """
    p, q = as_pair(target_probs, draft_probs, validate)
    _, p_s, rates_s = _sorted_rates(p, q)                   # the sum needs no unsorting
    with np.errstate(invalid="ignore"):
        return np.where(p_s > 0, p_s / (1.0 + rates_s), 0.0).sum(-1)


def _tie_block_end(sorted_vals: np.ndarray) -> np.ndarray:
    """For each index of an ascending array, the last index holding the same value."""
    n = sorted_vals.shape[-1]
    is_last = np.ones(sorted_vals.shape, dtype=bool)
    is_last[..., :-1] = sorted_vals[..., 1:] != sorted_vals[..., :-1]
    idx = np.where(is_last, np.arange(n), n)
    return np.flip(np.minimum.accumulate(np.flip(idx, -1), axis=-1), -1)


def er_acceptance_quadratic(target_probs, draft_probs, chunk: int = 256) -> float:
    r"""Reference :math:`O(V^2)` evaluation of :math:`\sum_x 1/\sum_y \max(p_y/p_x, q_y/q_x)` (1-D only).

    Rows x are processed ``chunk`` at a time, so memory is O(chunk * V), not O(V^2).

    >>> float(er_acceptance_quadratic([0.3, 0.7], [0.3, 0.7], chunk=1))
    1.0
    """
    p, q = check_pair_1d(target_probs, draft_probs, "er_acceptance_quadratic")
    chunk = max(1, int(chunk))
    keep = (p > 0) & (q > 0)
    pk, qk = p[keep], q[keep]
    total = 0.0
    with np.errstate(divide="ignore", over="ignore"):
        for s in range(0, len(pk), chunk):
            ratio = np.maximum(p[None, :] / pk[s:s + chunk, None], q[None, :] / qk[s:s + chunk, None])  # [chunk, V]
            total += float((1.0 / ratio.sum(axis=1)).sum())
    return total


# ----------------------------------------------------------------------------- rank law
class RankDistribution(NamedTuple):
    r"""Law of the rank R of the target's race winner in the draft's race.

    ``probs[r-1] = a_r = P(R = r)`` for r = 1..V; ``never`` = P(the winner has q = 0), the
    mass of R = "never drafted".  For Monte Carlo results ``ci_low``/``ci_high`` hold
    simultaneous confidence bounds (Bonferroni-corrected Wilson intervals); for exact
    results they equal ``probs``.
    """

    probs: np.ndarray
    never: float
    ci_low: np.ndarray
    ci_high: np.ndarray
    trials: int  # 0 for exact

    @property
    def exact(self) -> bool:
        return self.trials == 0

    def entropy(self) -> float:
        """H(R) in nats, counting the "never" outcome as one more value."""
        a = np.append(self.probs, self.never)
        a = a[a > 0]
        return float(-(a * np.log(a)).sum())


def rank_distribution_exact(target_probs, draft_probs, epsabs: float = 1e-14,
                            validate: bool = True) -> RankDistribution:
    """Exact rank law by adaptive quadrature of the Poisson-binomial mixture; p, q ``[V]``.

    Each quadrature node costs O(V^3): V winners x a V-step recursion over V counts.
    ``validate=False``: p, q are already checked (:func:`chansim.theory.rank_law`, the rank
    law's entry point, checks them once).
    """
    p, q = check_pair_1d(target_probs, draft_probs, "rank_distribution_exact", validate)
    vocab = p.shape[-1]
    winners = np.flatnonzero((p > 0) & (q > 0))
    never = float(p[(p > 0) & (q == 0)].sum())
    # c[y, x] = (p_y q_x / q_y - p_x)_+ , zero on the diagonal
    c = np.maximum(p[winners, None] * q[None, :] / q[winners, None] - p[None, :], 0.0)
    c[np.arange(len(winners)), winners] = 0.0

    def integrand(t):
        before = -np.expm1(-t * c)                                 # [winners, V]
        pmf = np.zeros((len(winners), vocab))
        pmf[:, 0] = 1.0
        for x in range(vocab):                                     # Poisson-binomial DP over x
            poisson_binomial_add(pmf, before[:, x:x + 1])
        return math.exp(-t) * (p[winners, None] * pmf).sum(0)

    a, _ = integrate.quad_vec(integrand, 0.0, np.inf, epsabs=epsabs, epsrel=1e-12, limit=400)
    a = np.clip(a, 0.0, None)
    return RankDistribution(a, never, a.copy(), a.copy(), 0)


#: Token evaluations per chunk of :func:`sample_ranks`: 2**16 float64 = 512 KiB per buffer,
#: so noise, times and the comparison mask stay in a (per-core) L2 cache; measured best
#: at V = 49,152 (one row per chunk) in benchmarks/bench_races.py.
_RANK_CHUNK_ELEMENTS = 1 << 16


def sample_ranks(target_probs, draft_probs, trials: int, rng: np.random.Generator, chunk: int | None = None,
                 dtype=np.float64, validate: bool = True) -> np.ndarray:
    r"""Monte Carlo ranks of the p-race winner in the q-race, shape ``(trials,)``.

    Each trial draws V fresh Exp(1) values (``rng.standard_exponential``, float64, not
    keyed), finds the p-race winner w = argmin E/p and counts the tokens with
    :math:`E_x/q_x < E_w/q_w`; rank ``V + 1`` = never drafted (winner has q = 0).
    Vectorised over trials in cache-sized chunks (``chunk`` trials, default ~2**16 token
    evaluations) with preallocated buffers; the random stream does not depend on
    ``chunk`` (rows are filled in order), so results are reproducible across chunkings.
    ``dtype=np.float32`` halves the memory traffic (about 2x faster); ties between float32
    race times then occur with probability ~V 2**-24 per trial and go to the lower rank,
    so use it for estimates, not for exactness tests.  ``validate=False`` accepts
    unnormalised non-negative weights (e.g. the head of a distribution).

    >>> r = sample_ranks([0.5, 0.5], [0.5, 0.5], 1000, np.random.default_rng(0))
    >>> bool(np.all(r == 1))
    True
    """
    p, q = check_pair_1d(target_probs, draft_probs, "sample_ranks", validate)
    trials = _check_trials(trials)
    vocab = p.shape[-1]
    with np.errstate(divide="ignore"):
        inv_p, inv_q = (1.0 / p).astype(dtype), (1.0 / q).astype(dtype)   # [V], inf where r = 0
    chunk = int(chunk or max(1, _RANK_CHUNK_ELEMENTS // vocab))
    out = np.empty(trials, dtype=np.int64)
    noise = np.empty((chunk, vocab), dtype=dtype)                 # [chunk, V] Exp(1)
    times = np.empty((chunk, vocab), dtype=dtype)                 # [chunk, V] race times
    ahead = np.empty((chunk, vocab), dtype=bool)                  # [chunk, V] x before winner in q-race
    rows = np.arange(chunk)
    for start in range(0, trials, chunk):
        n = min(chunk, trials - start)
        e, t, b = noise[:n], times[:n], ahead[:n]
        rng.standard_exponential(out=e, dtype=e.dtype)
        np.multiply(e, inv_p, out=t)                              # p-race times
        winner = t.argmin(axis=1)                                 # [n]
        np.multiply(e, inv_q, out=t)                              # q-race times
        tw = t[rows[:n], winner]                                  # [n] winner's q-race time
        np.less(t, tw[:, None], out=b)
        if n <= 4:                                                # large V: count_nonzero's flat fast path
            rank = 1 + np.array([np.count_nonzero(row) for row in b])
        else:
            rank = 1 + np.count_nonzero(b, axis=1)
        out[start:start + n] = np.where(np.isfinite(tw), rank, vocab + 1)
    return out


def rank_distribution_mc(target_probs, draft_probs, trials: int = 200_000, seed: int = 0,
                         confidence: float = 0.999) -> RankDistribution:
    """Monte Carlo rank law with simultaneous Wilson intervals (Bonferroni over the observed ranks).

    ``trials`` must be a positive integer and ``confidence`` in (0, 1) (``ValueError``).

    >>> rank_distribution_mc([0.5, 0.5], [0.5, 0.5], trials=0)
    Traceback (most recent call last):
    ...
    ValueError: trials must be a positive integer, got 0
    """
    trials = _check_trials(trials)
    if isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    p, q = check_pair_1d(target_probs, draft_probs, "rank_distribution_mc")
    vocab = p.shape[-1]
    ranks = sample_ranks(p, q, trials, np.random.default_rng(seed), validate=False)
    counts = np.bincount(ranks, minlength=vocab + 2)[1:]
    observed = max(1, int(np.count_nonzero(counts)))
    low, high = wilson_interval(counts, trials, 1 - (1 - confidence) / observed)
    return RankDistribution(counts[:vocab] / trials, counts[vocab] / trials, low[:vocab], high[:vocab], trials)
