r"""Block verification's tokens per call at real vocabulary sizes (i.i.d. model), by Spitzer's identity.

Block verification on ``chain:γ`` yields :math:`1 + \sum_{i=1}^{\gamma} E_q[w_i]` tokens per
call, :math:`w_i = \min(1, w_{i-1}\,\rho(X_i))`, :math:`\rho = p/q`, :math:`X_i` i.i.d. ~ q
(docs/methods_block_multidraft.md §1.3).  With :math:`S_k = \sum_{j \le k} \log\rho(X_j)`,
:math:`\log w_i` has the law of the running minimum :math:`\min_{0 \le k \le i} S_k`
(Lindley's recursion read backwards), and **Spitzer's identity** turns its exponential
moments into those of the single sums (docs/methods_block_multidraft.md §1.5):

.. math::
    \sum_{i \ge 0} E[w_i]\, t^i = \exp\Big(\sum_{n \ge 1} \frac{c_n}{n}\, t^n\Big), \qquad
    c_n = E_q\big[\min(1, e^{S_n})\big] = \sum_{x \in V^n} \min\big(p^{\otimes n}(x), q^{\otimes n}(x)\big),

i.e. :math:`n\,E[w_n] = \sum_{k=1}^{n} c_k\, E[w_{n-k}]` (:func:`spitzer_weights`), where
:math:`c_n = 1 - \mathrm{TV}(p^{\otimes n}, q^{\otimes n})` is the overlap of the n-fold product
laws.  sd is the same series with :math:`c_n = \beta^n` (:math:`\beta = c_1`), and
:math:`c_n \ge \beta^n` gives block ≥ sd again.  An infinite chain yields
:math:`\exp(\sum_n c_n / n)` tokens per call.

The overlaps :math:`c_n` are computed

* **exactly** on small V, by enumerating the multisets of n tokens (:func:`product_overlaps_exact`,
  with :class:`fractions.Fraction` inputs the value is an exact rational);
* **with a guaranteed interval** at any V (:func:`product_overlap_bounds`): the law of
  :math:`S_n` on a grid of step h, carrying for every cell the exact p- and q-masses of the
  sequences it holds and an interval that contains their true :math:`S_n`; the overlap of a
  cell is exact unless its interval straddles 0, and there it is bracketed.  Cost
  :math:`O(V + n_{\max}\,(L/h)\log(L/h))`, polynomial in V and γ.

Every :math:`E[w_i]` is a polynomial with non-negative coefficients in :math:`c_1..c_i`, so the
intervals of the :math:`c_n` give a guaranteed interval of the tokens per call
(:func:`block_tokens`).
"""
from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import fft as sfft

from ..inputs.numbers import whole_number
from ..inputs.distributions import check_pair, check_pair_1d

__all__ = ["spitzer_weights", "product_overlaps_exact", "product_overlap_bounds", "BlockTokens", "block_tokens",
           "multisets"]

#: log-ratio window |S_n| <= L kept on the grid; a sequence dropped outside it costs at most e^{-L} of its mass
WINDOW = 36.0
#: floating-point allowance of one FFT convolution, as a multiple of u·log2(N)·sqrt(N) (Higham, *Accuracy and
#: Stability of Numerical Algorithms*, 2nd ed., §24.1: the FFT's normwise error is O(u log2 N))
FFT_ERROR_CONSTANT = 5.0


def spitzer_weights(overlaps, gamma: int | None = None):
    r""":math:`E[w_1..w_\gamma]` from the overlaps :math:`c_1..c_N` ``[N]`` by Spitzer's identity: a list, length γ.

    :math:`f_0 = 1`, :math:`n f_n = \sum_{k=1}^{n} c_k f_{n-k}` (the coefficients of
    :math:`\exp(\sum_n c_n t^n / n)`); overlaps past N count as 0.  Works on floats and on
    :class:`fractions.Fraction` (exact rationals).

    >>> [str(f) for f in spitzer_weights([Fraction(2, 3), Fraction(2, 3)])]   # the paper's example
    ['2/3', '5/9']
    >>> spitzer_weights([0.5, 0.25, 0.125])        # c_n = beta^n: sd's beta^n
    [0.5, 0.25, 0.125]
    """
    c = list(overlaps)
    gamma = len(c) if gamma is None else int(gamma)
    if c and isinstance(c[0], Fraction):
        f = [Fraction(1)]
        for n in range(1, gamma + 1):
            f.append(sum(c[k - 1] * f[n - k] for k in range(1, min(n, len(c)) + 1)) / n)
        return f[1:]
    c = np.asarray(c, dtype=float)
    f = np.zeros(gamma + 1)
    f[0] = 1.0
    for n in range(1, gamma + 1):
        k = min(n, len(c))
        f[n] = float(c[:k] @ f[n - 1::-1][:k]) / n              # sum_k c_k f_{n-k}
    return f[1:].tolist()


def multisets(vocab: int, n: int) -> int:
    """Number of multisets of n tokens out of ``vocab``: C(V + n - 1, n)."""
    return math.comb(vocab + n - 1, n)


def product_overlaps_exact(target_probs, draft_probs, n_max: int):
    r""":math:`c_n = \sum_{x \in V^n} \min(p^{\otimes n}(x), q^{\otimes n}(x))` for n = 1..n_max, by enumeration.

    One pair ``[V]``.  A sequence's probabilities depend only on its multiset of tokens, so the sum runs over
    the :math:`\binom{V+n-1}{n}` multisets with their multinomial counts.  Entries of type
    :class:`~fractions.Fraction` give exact rationals (no validation then); floats are
    validated.

    >>> [str(c) for c in product_overlaps_exact([Fraction(1, 3), Fraction(2, 3)], [Fraction(2, 3), Fraction(1, 3)], 2)]
    ['2/3', '2/3']
    """
    if not (len(target_probs) and isinstance(target_probs[0], Fraction)):
        p, q = check_pair(target_probs, draft_probs)
    else:
        p, q = target_probs, draft_probs
    return _overlaps_exact(p, q, int(n_max))


def _overlaps_exact(p, q, n_max: int) -> list:
    """:func:`product_overlaps_exact` on a checked pair ``[V]`` (floats) or on Fractions (exact rationals)."""
    if not (len(p) and isinstance(p[0], Fraction)):
        p, q = [float(v) for v in p], [float(v) for v in q]
    else:
        p, q = list(p), list(q)
    vocab = len(p)
    out = []
    for n in range(1, n_max + 1):
        total = 0
        for combo in itertools.combinations_with_replacement(range(vocab), n):
            count = math.factorial(n)
            pp = qq = 1
            for x, group in itertools.groupby(combo):
                r = len(list(group))
                count //= math.factorial(r)
                pp, qq = pp * p[x] ** r, qq * q[x] ** r
            total += count * min(pp, qq)
        out.append(total)
    return out


def _fft_conv(a_hat, b, size):
    """Linear convolution of a kernel (its rfft ``a_hat`` at ``size``) with ``b``."""
    return sfft.irfft(a_hat * sfft.rfft(b, size), size)


def product_overlap_bounds(target_probs, draft_probs, n_max: int, step: float = 2.0**-12,
                           window: float = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    r"""Guaranteed bounds ``(lower, upper)`` on :math:`c_1..c_{n_{\max}}`, each of shape ``(n_max,)``; pair ``[V]``.

    Grid of step h (``step``) on the log-ratio :math:`z = \log p/q` of the drafted tokens
    (q > 0).  Cell j of :math:`S_n` holds the p-mass :math:`P_j` and q-mass :math:`Q_j` of the
    sequences assigned to it; their true :math:`S_n` lie in :math:`[jh - nh/2, jh + nh/2]`
    (each token's z is within h/2 of its cell, and cells add).  Since
    :math:`\min(p_s, q_s) = q_s \min(1, e^{z_s}) = p_s \min(1, e^{-z_s})`, a cell contributes
    exactly :math:`P_j` when its interval :math:`[l, u]` lies in :math:`z \le 0`, :math:`Q_j` when
    it lies in :math:`z \ge 0`, and between :math:`\max(Q_j e^{l}, P_j e^{-u})` and
    :math:`\min(P_j, Q_j)` when it straddles 0.  Cells beyond :math:`\pm` ``window`` are
    dropped after each convolution: the extensions of a dropped sequence s add at most its
    :math:`p_s` (left) or :math:`q_s` (right) to every later :math:`c_n`, which the upper
    bound carries.  Tokens with p = 0 give :math:`z = -\infty` (overlap 0).  The upper bound
    also carries a floating-point allowance per FFT convolution
    (:data:`FFT_ERROR_CONSTANT`), and both are clipped to :math:`[0, 1]`.

    >>> lo, hi = product_overlap_bounds([1/3, 2/3], [2/3, 1/3], 2, step=2**-10)
    >>> bool(lo[1] <= 2/3 <= hi[1]) and float(hi[1] - lo[1]) < 1e-3   # the pairs ab, ba sit at S_2 = 0
    True
    """
    p, q = check_pair_1d(target_probs, draft_probs, "product_overlap_bounds")
    return _overlap_bounds(p, q, int(n_max), step, window)


def _overlap_bounds(p: np.ndarray, q: np.ndarray, n_max: int, step: float = 2.0**-12,
                    window: float = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """:func:`product_overlap_bounds` on checked arrays ``p``, ``q`` ``[V]`` → ``(lower [n_max], upper [n_max])``."""
    drafted = (q > 0) & (p > 0)                              # p = 0: z = -inf, overlap 0 (never counts)
    with np.errstate(divide="ignore"):
        z = np.log(p[drafted]) - np.log(q[drafted])           # [V'] log-ratios
    half = int(math.ceil(window / step))                      # cells -half..half
    cell = np.rint(z / step).astype(np.int64)                  # |z - cell h| <= h/2
    inside = np.abs(cell) <= half
    lo_z, hi_z = int(cell[inside].min(initial=0)), int(cell[inside].max(initial=0))
    pz = np.bincount(cell[inside] - lo_z, weights=p[drafted][inside], minlength=hi_z - lo_z + 1)
    qz = np.bincount(cell[inside] - lo_z, weights=q[drafted][inside], minlength=hi_z - lo_z + 1)
    drop_p = float(p[drafted][cell < -half].sum())            # left pool: bounded by its p-mass
    drop_q = float(q[drafted][cell > half].sum())             # right pool: bounded by its q-mass
    fft_slack = 0.0
    lower, upper = np.zeros(n_max), np.zeros(n_max)
    P, Q, offset = pz.copy(), qz.copy(), lo_z                 # law of S_1: cells offset..offset+len-1
    kernel = None
    for n in range(1, n_max + 1):
        if n > 1:
            size = sfft.next_fast_len(len(P) + len(pz) - 1, real=True)
            if kernel is None or kernel[0] != size:
                kernel = (size, sfft.rfft(pz, size), sfft.rfft(qz, size))
            P = _fft_conv(kernel[1], P, size)[:len(P) + len(pz) - 1]
            Q = _fft_conv(kernel[2], Q, size)[:len(Q) + len(qz) - 1]
            fft_slack += 2 * FFT_ERROR_CONSTANT * np.finfo(float).eps * math.log2(size) * math.sqrt(size)
            np.maximum(P, 0.0, out=P)
            np.maximum(Q, 0.0, out=Q)
            offset += lo_z
            idx = offset + np.arange(len(P))
            left, right = idx < -half, idx > half
            drop_p += float(P[left].sum())
            drop_q += float(Q[right].sum())
            keep = ~(left | right)
            P, Q, offset = P[keep], Q[keep], int(idx[keep][0]) if keep.any() else 0
            if not keep.any():
                P, Q = np.zeros(1), np.zeros(1)
        centre = (offset + np.arange(len(P))) * step
        width = n * step / 2                                  # true S_n within centre ± width
        neg, pos = centre + width <= 0, centre - width >= 0
        mid = ~(neg | pos)
        exact = float(P[neg].sum() + Q[pos].sum())
        lo_mid = np.maximum(Q[mid] * np.exp(centre[mid] - width), P[mid] * np.exp(-centre[mid] - width))
        hi_mid = np.minimum(P[mid], Q[mid])
        lower[n - 1] = exact + float(lo_mid.sum()) - fft_slack
        upper[n - 1] = exact + float(hi_mid.sum()) + drop_p + drop_q + fft_slack
    if n_max:
        lower[0] = upper[0] = float(np.minimum(p, q).sum())   # c_1 = beta, exactly
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


@dataclass(frozen=True)
class BlockTokens:
    """Tokens per call of block verification on ``chain:γ`` for γ = 1..len: value with a guaranteed interval."""

    value: np.ndarray          # [Γ] midpoint of the interval (the exact value when ``exact``)
    low: np.ndarray            # [Γ]
    high: np.ndarray           # [Γ]
    exact: bool                # the overlaps were enumerated (no interval beyond rounding)
    method: str                # "enumeration" or "grid"
    limit_high: float = math.inf   # upper bound on every chain length (the infinite chain, exp(sum c_n / n))

    @property
    def error(self) -> float:
        """Largest half-width of the intervals."""
        return float(np.max(self.high - self.low) / 2) if len(self.value) else 0.0

    def at(self, gamma: int) -> tuple[float, float, float]:
        """``(value, low, high)`` on ``chain:γ``; past the computed depths, between the last value and the limit."""
        gamma = int(gamma)
        if gamma <= len(self.value):
            return float(self.value[gamma - 1]), float(self.low[gamma - 1]), float(self.high[gamma - 1])
        low, high = float(self.low[-1]), max(float(self.high[-1]), self.limit_high)
        return (low + high) / 2, low, high


def _tokens(overlaps, gamma):
    return 1.0 + np.cumsum(spitzer_weights([float(c) for c in overlaps], gamma))


def _limit(overlaps, bc):
    """Upper bound on the tokens per call of every chain: exp(sum_n c_n/n) with c_n <= bc^n past the given ones."""
    head = sum(float(c) / n for n, c in enumerate(overlaps, 1))
    if bc >= 1:
        return math.inf
    tail = -math.log1p(-bc) - sum(bc ** n / n for n in range(1, len(overlaps) + 1))
    return math.exp(head + max(tail, 0.0))


#: chains longer than this are bracketed between the value at this depth and the infinite chain's bound
MAX_DEPTH = 4096


def block_tokens(target_probs, draft_probs, gamma: int, tol: float = 1e-6, max_multisets: int = 200_000,
                 max_cells: int = 2**22) -> BlockTokens:
    r"""Tokens per call of block verification on ``chain:1`` .. ``chain:γ`` (i.i.d. model; pair ``[V]``), at any V.

    Exact by enumeration of the overlaps when :math:`\sum_{n \le \gamma}\binom{V+n-1}{n}` is at
    most ``max_multisets``; otherwise :func:`product_overlap_bounds` with the grid step halved
    until the guaranteed half-width is at most ``tol`` (or the grid would exceed
    ``max_cells``; the interval is then wider, and still guaranteed).  Past the depth N
    where the Bhattacharyya bound :math:`c_n \le (\sum_x \sqrt{p_x q_x})^n` makes the rest
    negligible, overlaps enter the interval through that bound.  Results are cached per
    (pair, γ, settings) for the last few pairs.  Formula and proof:
    docs/methods_block_multidraft.md §1.5.

    >>> bt = block_tokens([1/3, 2/3], [2/3, 1/3], 2)
    >>> round(float(bt.value[-1]), 12) == round(20 / 9, 12), bt.exact
    (True, True)
    """
    p, q = check_pair_1d(target_probs, draft_probs, "block_tokens")
    return cached_block_tokens(p, q, gamma, tol, max_multisets, max_cells)


def cached_block_tokens(p: np.ndarray, q: np.ndarray, gamma: int, tol: float = 1e-6, max_multisets: int = 200_000,
                        max_cells: int = 2**22) -> BlockTokens:
    """:func:`block_tokens` on checked arrays ``p``, ``q`` ``[V]`` and γ >= 1 (the theory's and the bound
    report's calls through :class:`~chansim.verify.block.Block`, which hold checked arrays)."""
    whole_number(gamma, "gamma")
    key = (hashlib.sha1(p.tobytes() + q.tobytes()).hexdigest(), min(int(gamma), MAX_DEPTH), float(tol),
           int(max_multisets), int(max_cells))
    if key not in _CACHE:                                     # the bound report asks twice (chain, optimal)
        if len(_CACHE) >= 16:
            _CACHE.clear()
        _CACHE[key] = _block_tokens(p, q, *key[1:])
    return _CACHE[key]


_CACHE: dict = {}


def _block_tokens(p, q, gamma, tol, max_multisets, max_cells) -> BlockTokens:
    """:func:`block_tokens` on a checked pair ``p``, ``q`` ``[V]`` (uncached)."""
    vocab = len(p)
    bc = float(np.sqrt(p * q).sum())                          # c_n <= bc^n
    if sum(multisets(vocab, n) for n in range(1, gamma + 1)) <= max_multisets:
        c = _overlaps_exact(p, q, gamma)
        val = _tokens(c, gamma)
        return BlockTokens(val, val.copy(), val.copy(), True, "enumeration", _limit(c, bc))
    # depth N past which the Bhattacharyya tail moves the value by < tol / 4: T <= 1/(1 - bc) and
    # dT/dc_n <= T/n, so the overlaps past N move T by at most bc^(N+1) / ((N+1)(1 - bc)^2)
    depth = gamma
    if bc < 1:
        tail = [n for n in range(1, gamma + 1) if bc ** (n + 1) / ((n + 1) * (1 - bc) ** 2) <= tol / 4]
        depth = min(gamma, tail[0]) if tail else gamma
    step = 2.0**-10
    while True:
        lo_c, hi_c = _overlap_bounds(p, q, depth, step=step)
        hi_c = np.minimum(hi_c, bc ** np.arange(1, depth + 1))
        low = _tokens(lo_c, gamma)
        high = _tokens(list(hi_c) + [bc ** n for n in range(depth + 1, gamma + 1)], gamma)
        if np.max(high - low) / 2 <= tol or 2 * WINDOW / (step / 2) > max_cells:
            break
        step /= 2
    return BlockTokens((low + high) / 2, low, high, False, "grid", _limit(hi_c, bc))
