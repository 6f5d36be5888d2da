r"""Graded Gauss–Legendre panels in t for the guaranteed rank law (docs/theory.md §5 (g)).

For a winner y the integrand is :math:`e^{-t} P(N(t) = j)`, j = 0..K.  On a panel
[a, a + h] with Gauss–Legendre n points, Trefethen's bound (ATAP Thm 19.3) gives an
:math:`\ell_1` error over the K + 1 components of at most

.. math::
    (K+1)\,\frac{h}{2}\,\frac{64}{15(\varrho^2 - 1)}\, e^{-a + r} M\, \varrho^{-2n},
    \qquad r = \frac{h}{4}(\varrho - 1/\varrho),

where every point of the Bernstein ellipse :math:`E_\varrho` of the panel lies within r
of a real :math:`t_0 \in [a, a+h]`, and M bounds the :math:`\ell_1` norm of the
coefficients of the complexified generating function there.  With :math:`t = t_0 + s`,
:math:`|s| \le r`, a heavy factor :math:`e^{-tc} + (1 - e^{-tc}) z` has coefficient norm
:math:`\le 1 + 2 e^{-t_0 c} |e^{-sc} - 1| \le 1 + 2 e^{-a c}(e^{rc} - 1)` and the
Poisson(:math:`t C^L`) part :math:`\le e^{|t| C^L - \mathrm{Re}(t) C^L} \le e^{2 r C^L}`, so

.. math::
    \ln M \le 2 r C^L + 2 \sum_{x\ \mathrm{heavy}} e^{-a c_x}(e^{r c_x} - 1)
            \;[+\ (T_y + r)^2 S_2 \text{ for a second-order light part}],

the last term because :math:`\|\exp(-\tfrac{t^2 S_2}{2}(z^2 - z))\| \le e^{|t|^2 S_2}` and
:math:`|t| \le a + h + r \le T_y + r` on the ellipse (:mod:`chansim.theory.rank_light`).

The factor :math:`e^{-a c_x}` is what the uniform plan dropped: a competitor with a huge
rate c (a token the draft likes far more than the winner) only forces small panels near
t = 0; away from it panels grow geometrically.  The sum is bounded on a histogram of the
heavy rates in factor-2 bins :math:`(lo, hi]`: :math:`e^{-a c} \le e^{-a\,lo}` and
:math:`e^{rc} - 1 \le c (e^{r\,hi} - 1)/hi` (convexity), so each bin contributes
:math:`\le 2 e^{-a\,lo} s\,(e^{r\,hi} - 1)/hi`, s the bin's rate sum.

:func:`graded_panels` marches all winners from a = 0 to :math:`T_y` at once; at each step
every winner takes, over a grid of :math:`(\varrho, r)`, the panel with the most length per
node whose error is at most its share :math:`\text{share}\cdot(e^{-a} - e^{-a-h})/(1 - e^{-T_y})`
of the budget (so the panels of one winner total at most ``share``).  The error returned
is the bound of the panels actually taken.
"""
from __future__ import annotations

import math

import numpy as np

from .rank_heavy import HeavySets

__all__ = ["graded_panels", "rate_histogram"]

_VARRHO = np.array([2.0, math.e, 4.0, 8.0])
_R_GRID = 2.0 ** np.arange(-24, 5)                                         # [R] ellipse distances
_C0 = (64.0 / 15.0) / (_VARRHO ** 2 - 1)                                   # [4]
_HALF_WIDTH = 4.0 / (_VARRHO - 1.0 / _VARRHO)                              # h = r * this


def rate_histogram(heavy: HeavySets, winners, n_bins: int = 24):
    """Per winner: factor-2 bins of its heavy rates below its largest one.

    Returns ``(lo, hi, s)``, each shape (W, n_bins): bin j holds
    :math:`c \\in (c_{max} 2^{-j-1}, c_{max} 2^{-j}]` (the last bin everything below, lo = 0)
    and s its rate sum.
    """
    winners = np.asarray(winners)
    n = len(winners)
    s = np.zeros((n, n_bins))
    cmax = np.zeros(n)
    pos = np.full(len(heavy.group), -1)
    pos[winners] = np.arange(n)
    for g, mat in enumerate(heavy.mats):
        if mat.shape[1] == 0:
            continue
        members = np.flatnonzero((heavy.group == g) & (pos >= 0))
        if not len(members):
            continue
        rows = mat[heavy.local[members]]                                   # [m, h]
        top = rows.max(1)
        cmax[pos[members]] = top
        with np.errstate(divide="ignore"):
            j = np.floor(np.log2(np.where(rows > 0, top[:, None] / np.where(rows > 0, rows, 1.0), 1.0)))
        j = np.clip(j, 0, n_bins - 1).astype(int)
        flat = (pos[members][:, None] * n_bins + j).ravel()
        np.add.at(s.ravel(), flat, rows.ravel())
    hi = cmax[:, None] * 2.0 ** -np.arange(n_bins)[None, :]
    lo = hi / 2
    lo[:, -1] = 0.0
    return lo, hi, s


def graded_panels(heavy: HeavySets, winners, t_end, share: float, k: int, max_steps: int = 10_000):
    """Panels (winner, start, width, points) covering [0, T_y] per winner, and the error bound per winner.

    Parameters
    ----------
    heavy : HeavySets
    winners : ndarray, shape (B,)
        Winner indices (into ``heavy``) to plan for.
    t_end : ndarray, shape (B,)
        :math:`T_y`.
    share : float
        Error budget per winner (per unit mass, :math:`\\ell_1`).
    k : int
        K (K + 1 components).

    Winners whose largest heavy rate exceeds ``_EXTREME`` (a draft that gives the winner a
    tiny share of what the target gives it: :math:`c \\sim q_x p_y / q_y` up to
    :math:`10^{90}`) march on a wider grid of ellipse distances: besides the fixed
    :math:`2^{-24..4}`, the scaled :math:`2^{-10..2}/c_{max}` (the first panels, of width
    ~ :math:`1/c_{max}`) and :math:`a\\,2^{-6..3}` (panels that grow geometrically with their
    start a).  The fixed grid alone needs ~ :math:`c_{max} 2^{-24}` nodes per panel there
    (minutes, or a MemoryError, at :math:`c \\ge 10^{10}`).  Every choice is a valid panel;
    the error charged is the bound of the panel taken.

    Returns
    -------
    (y, a, h, n) : ndarrays, shape (P,)
        Panel winner index, start, width and Gauss points.
    err : ndarray, shape (B,)
        Guaranteed :math:`\\ell_1` quadrature error per winner (module docstring).
    stop : ndarray, shape (B,)
        The panels cover [0, stop]; stop < T_y where ``max_steps`` ran out or no panel met its
        budget within ``_MAX_POINTS`` nodes (the caller charges the uncovered [stop, T_y], whose
        mass is :math:`e^{-stop} - e^{-T_y}`, twice in l1).
    """
    winners = np.asarray(winners)
    t_end = np.asarray(t_end, dtype=float)
    lo, hi, s = rate_histogram(heavy, winners)
    cmax = hi[:, 0] if hi.shape[1] else np.zeros(len(winners))
    extreme = cmax > _EXTREME
    if not extreme.any():
        return _march(lo, hi, s, heavy, winners, t_end, share, k, max_steps, False)
    err, stop = np.zeros(len(winners)), t_end.copy()
    # extreme winners: factor-2 bins down to rate ~2^-24 (24 bins below c_max lumped every smaller rate,
    # with no decay in a, into one bin whose top c_max 2^-23 forced panels of width ~ 2^23/c_max)
    n_bins = int(min(1200, 48 + np.ceil(np.log2(cmax[extreme].max()))))
    ext = rate_histogram(heavy, winners[extreme], n_bins)
    parts = [_march(lo[~extreme], hi[~extreme], s[~extreme], heavy, winners[~extreme], t_end[~extreme], share, k,
                    max_steps, False)] if (~extreme).any() else []
    parts.append(_march(*ext, heavy, winners[extreme], t_end[extreme], share, k, max_steps, True))
    for m, (_, e, st) in zip([m for m in (~extreme, extreme) if m.any()], parts):
        err[m], stop[m] = e, st
    return tuple(np.concatenate([pp[0][i] for pp in parts]) for i in range(4)), err, stop


#: largest heavy rate above which a winner marches on the extended grid of :func:`graded_panels`
_EXTREME = 2.0 ** 20
_SCALED = 2.0 ** np.arange(-10, 3)                                        # r = these / c_max
_RELATIVE = 2.0 ** np.arange(-6, 4)                                       # r = a * these
#: most Gauss points per panel (a panel needing more is taken with this many, its bound charged)
_MAX_POINTS = 1024


def _march(lo, hi, s, heavy: HeavySets, winners, t_end, share: float, k: int, max_steps: int, extended: bool):
    """The panel march of :func:`graded_panels` for one set of winners (``extended``: wider r grid)."""
    c_light = heavy.light[winners]
    second = heavy.second[winners]
    sq_light = np.where(second, heavy.light_sq[winners], 0.0)

    def growth(r, hv):                                                     # (e^{r hi} - 1)/hi, -> r where hi = 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(hv > 0, np.expm1(np.minimum(r * hv, 600.0)) / np.where(hv > 0, hv, 1.0), r)

    n_w = len(winners)
    if extended:
        cmax = hi[:, 0]
        r_fixed = np.concatenate([np.broadcast_to(_R_GRID, (n_w, len(_R_GRID))), _SCALED[None, :] / cmax[:, None]], 1)
    else:
        r_fixed = np.broadcast_to(_R_GRID, (n_w, len(_R_GRID)))
    g = growth(r_fixed[:, :, None], hi[:, None, :])                       # [B, R, bins]
    a = np.zeros(n_w)
    err = np.zeros(n_w)
    norm = -np.expm1(-t_end)                                               # 1 - e^{-T}
    out_y, out_a, out_h, out_n = [], [], [], []
    active = np.flatnonzero(t_end > 0)
    log_k = math.log((k + 1) / 2.0)
    for _ in range(max_steps):
        if not len(active):
            break
        aa = a[active]
        rg, ga = r_fixed[active], g[active]                                # [A, R], [A, R, bins]
        if extended:
            rel = np.where(aa[:, None] > 0, aa[:, None] * _RELATIVE[None, :], _R_GRID[0])
            rg = np.concatenate([rg, rel], 1)
            ga = np.concatenate([ga, growth(rel[:, :, None], hi[active][:, None, :])], 1)
        decay = 2 * np.exp(-aa[:, None] * lo[active]) * s[active]         # [A, bins]
        log_m = np.einsum("ab,arb->ar", decay, ga) + 2 * rg * c_light[active, None]   # [A, R]
        # second-order light part: ||exp(-(t^2 S_2/2)(z^2 - z))|| <= e^{|t|^2 S_2}, |t| <= T_y + r
        log_m += sq_light[active, None] * (t_end[active, None] + rg) ** 2
        left = (t_end[active] - aa)[:, None, None]
        h = np.minimum(rg[:, :, None] * _HALF_WIDTH[None, None, :], left)                       # [A, R, 4]
        budget = share * (np.exp(-aa)[:, None, None] * -np.expm1(-h)) / norm[active, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            need = (log_k + np.log(h * _C0[None, None, :]) - aa[:, None, None] + rg[:, :, None]
                    + log_m[:, :, None] - np.log(budget))
        n = np.maximum(2, np.ceil(need / (2 * np.log(_VARRHO))[None, None, :]))
        n = np.where(np.isfinite(n), n, 1e12)                            # overflowed bounds: never chosen
        n_taken = np.minimum(n, _MAX_POINTS)
        score = np.where(n <= _MAX_POINTS, h / n, 0.0).reshape(len(active), -1)
        best = np.argmax(score, axis=1)
        stuck = score[np.arange(len(active)), best] <= 0                   # no panel within _MAX_POINTS nodes
        if stuck.any():
            # stop these winners here: the caller moves the mass of [a, T_y] to "N >= K" and charges
            # twice it (a panel taken instead would cost as much, or have no finite bound at all)
            keep = ~stuck
            active, aa, best, h, n_taken, rg, log_m = (active[keep], aa[keep], best[keep], h[keep], n_taken[keep],
                                                       rg[keep], log_m[keep])
            if not len(active):
                break
        ri, vi = np.unravel_index(best, (rg.shape[1], len(_VARRHO)))
        idx = np.arange(len(active))
        hb, nb = h[idx, ri, vi], n_taken[idx, ri, vi].astype(int)
        with np.errstate(over="ignore"):
            eb = np.exp(log_k + np.log(hb * _C0[vi]) - aa + rg[idx, ri] + log_m[idx, ri]
                        - 2 * nb * np.log(_VARRHO[vi]))
        # a Poisson light part keeps every row a probability vector times e^{-t}: the panel's integral
        # and its Gauss sum (positive weights) each have l1 norm <= h e^{-a}, so 2 h e^{-a} always holds
        eb = np.where(second[active], eb, np.minimum(eb, 2 * hb * np.exp(-aa)))
        out_y.append(winners[active])
        out_a.append(aa.copy())
        out_h.append(hb)
        out_n.append(nb)
        err[active] += eb
        a[active] = aa + hb
        active = active[a[active] < t_end[active] * (1 - 1e-12)]
    stop = np.where(a < t_end * (1 - 1e-12), a, t_end)                     # [B] panels cover [0, stop]
    cat = (lambda v: np.concatenate(v) if v else np.zeros(0))
    return (cat(out_y).astype(int), cat(out_a), cat(out_h), cat(out_n).astype(int)), err, stop
