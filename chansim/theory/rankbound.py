r"""The ERSD rank law at real vocabulary sizes with a guaranteed error (docs/theory.md §5).

:func:`bounded_rank_law` returns :math:`\hat a_1..\hat a_K`, :math:`\widehat{P}(R > K)` and
the never-drafted mass together with a number ``error`` such that the true vector
:math:`(a_1, .., a_K, P(R > K))` is within ``error`` of the computed one in
:math:`\ell_1` (so every :math:`a_r`, and every sum of them, is within ``error``).
Ingredients (each proven in docs/theory.md §5):

1. **Mixture** (§0): given that y wins the p-race at time t ~ Exp(1), the number N of
   tokens that precede y in the q-race is Poisson-binomial with
   :math:`\pi_x = 1 - e^{-t c_x}`, :math:`c_x = (q_x/\rho_y - p_x)_+`,
   :math:`\rho = q/p`: only tokens with a larger ratio than y can precede it.
2. **Winners** y are taken by decreasing :math:`p_y` until the rest has mass
   ``<= tol/6`` (or ``winners_max`` is hit); the rest is charged to ``error``.  A winner whose
   ratio :math:`q_y/p_y` is below :data:`RHO_FLOOR` = 1e-90 is computed at that ratio and the
   change is charged (part ``ratio_floor``, :func:`_clamp_ratios`).
3. **Heavy/light split** per winner: the :math:`h_y` competitors with the largest
   :math:`c_x` enter an exact Poisson-binomial recursion truncated at K (the last state
   absorbs :math:`N \ge K`); the others are replaced by Poisson(:math:`t C^L_y`),
   :math:`C^L_y = \sum_{light} c_x` (added up from the light rates, prefix sums outside the
   shortlist: :func:`chansim.theory.rank_light.power_sums_above`), at a total-variation cost
   :math:`\le \min(\sum_{light} c_x^2,\, C^L_y/(1 + C^L_y))`, or where cheaper by the
   second-order signed compound Poisson of :mod:`chansim.theory.rank_light`, whose error
   is cubic in the light rates.
4. **Quadrature in t**: Gauss–Legendre panels on :math:`[0, T_y]`, with the rigorous
   error bound for functions analytic in a Bernstein ellipse (Trefethen, ATAP Thm 19.3)
   and an explicit bound on the complexified Poisson-binomial; the node count per panel
   is chosen from that bound.
5. **Tail in t**: :math:`P(N(t) < K)` decreases in t, so
   :math:`\int_{T}^\infty e^{-t} P(N(t) = j)\,dt \le e^{-T} P(N(T) < K)` for j < K; T_y is
   picked from probe evaluations.

6. **Narrow first pass**: every quadrature row is first run truncated at K' = ``narrow``
   < K (the last state absorbs :math:`N \ge K'`); a row whose absorbed mass
   :math:`P(N(t) \ge K')` is at most a threshold keeps its values for j < K' and puts the
   absorbed mass on "N >= K", which moves the computed vector by at most twice that
   mass in :math:`\ell_1`; the sum :math:`2\sum w_{row} P(N \ge K')` over such rows is
   charged to ``error`` (part ``narrow``, at most ``tol/12``); the other rows are rerun at
   width K.  A second-order light part is a signed measure whose negative mass is at most
   half its :math:`\ell_1` error e(t), so such a row moves the vector by at most
   2 P(N >= K') + 2 e(t), and that is charged.

Entropy :math:`H(R)` is then bracketed rigorously (:func:`rank_entropy_interval`).
Everything is vectorised over (winner, node) rows; the work is
:math:`O(\text{rows} \cdot (\text{heavy} + K))` plus :math:`O(W \cdot S)` for the shortlist.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sampling.races import competitor_rates
from .rank_heavy import HeavySets, choose_heavy_sets, row_means, run_recursion, shortlist_rates
from .rank_light import power_sums_above
from .rank_quadrature import graded_panels

__all__ = ["BoundedRankLaw", "bounded_rank_law", "rank_entropy_interval", "entropy_continuity_bound"]



@dataclass(frozen=True)
class BoundedRankLaw:
    r"""Truncated rank law with a guaranteed :math:`\ell_1` error.

    Attributes
    ----------
    head : ndarray, shape (K,)
        :math:`\hat a_1..\hat a_K` (``head[0]`` is the exact :math:`\alpha_{ER}`).
    tail : float
        :math:`\widehat P(R > K)` (drafted but beyond rank K).
    never : float
        P(the target's winner has q = 0), exact.
    error : float
        Guarantee: :math:`\sum_{r \le K} |a_r - \hat a_r| + |P(R>K) - \widehat P(R>K)| \le` ``error``.
    mean_rank_bound : float
        Upper bound on :math:`E[R]` over drafted winners (used for the tail entropy).
    vocab : int
    parts : dict
        The error budget by source, eight terms summing to ``error`` (``winners``,
        ``ratio_floor``, ``binning``, ``light``, ``quadrature``, ``t_tail``, ``narrow``,
        ``rounding``), and work counters (``n_winners``, ``bins``, ``rows``, ...).
        The computed vector is clipped to [0, 1] (the true entries lie there, so no entry
        moves away from the truth and the guarantee stands).
    """

    head: np.ndarray
    tail: float
    never: float
    error: float
    mean_rank_bound: float
    vocab: int
    parts: dict


def _phi(x):
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, -x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def entropy_continuity_bound(delta: float, n_values: int) -> float:
    r"""Sharp continuity bound for entropy: :math:`\delta \ln(n-1) + h(\delta)` (nats).

    Holds for two laws on ``n_values`` points at total-variation distance
    :math:`\le \delta` **provided** :math:`\delta \le 1 - 1/n` (Audenaert 2007; Zhang 2007);
    :math:`h(\delta)` increases only up to 1/2, so a bound :math:`\delta` on the distance
    may be plugged in only when :math:`\delta \le 1/2`.  Otherwise the only general
    bound is :math:`\ln n` (docs/theory.md §5).

    >>> round(entropy_continuity_bound(0.0, 10), 12)
    0.0
    >>> entropy_continuity_bound(0.9, 10) == math.log(10)
    True
    """
    n = int(n_values)
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if n < 1:
        raise ValueError(f"n_values must be >= 1, got {n_values}")
    if n == 1:
        return 0.0
    if delta > min(0.5, 1 - 1 / n):
        return math.log(n)
    h = float(_phi(delta) + _phi(1 - delta))
    return min(math.log(n), delta * math.log(n - 1) + h)


def rank_entropy_interval(head, tail: float, never: float, error: float, mean_rank_bound: float,
                          n_tail: int) -> tuple:
    r"""Rigorous interval for H(R) (nats) from a truncated law with :math:`\ell_1` error.

    With :math:`\varphi(x) = -x\ln x`: :math:`H(R) = \sum_{r\le K}\varphi(a_r) + \varphi(\nu)
    + T`, where the tail part T over the ``n_tail`` ranks beyond K with mass
    :math:`\tau` satisfies :math:`\varphi(\tau) \le T \le \varphi(\tau) + \tau \min(\ln n_{tail},
    1 + \ln(B/\tau))`, B an upper bound on :math:`E[(R-K)_+]` (maximum entropy for a given
    mean).  The head moves by at most :math:`\varepsilon\ln((K+1)/\varepsilon)` when the
    vector moves by :math:`\varepsilon` in :math:`\ell_1` (Fannes' lemma
    :math:`|\varphi(a)-\varphi(b)| \le \varphi(|a-b|)` for :math:`|a-b|\le 1/2`, and
    concavity).  Proof: docs/theory.md §5.

    >>> lo, hi = rank_entropy_interval([0.5, 0.5], 0.0, 0.0, 0.0, 1.5, 0)
    >>> round(lo, 9) == round(hi, 9) == round(math.log(2), 9)
    True
    """
    a = np.asarray(head, dtype=float)
    k = len(a)
    eps = float(error)
    if eps < 0:
        raise ValueError(f"error must be >= 0, got {error}")
    if eps > 0.5:                                   # Fannes' lemma needs every |delta_r| <= 1/2
        return 0.0, math.log(k + 1 + max(int(n_tail), 0))
    base = float(_phi(a).sum()) + float(_phi(never))
    shift = eps * math.log((k + 1) / eps) if eps > 0 else 0.0
    t_lo, t_hi = max(0.0, tail - eps), min(1.0, tail + eps)
    if n_tail <= 0 or t_hi <= 0:
        return max(0.0, base - shift), base + shift
    phi_min = float(min(_phi(t_lo), _phi(t_hi)))
    phi_max = float(_phi(min(t_hi, 1 / math.e))) if t_lo <= 1 / math.e else float(_phi(t_lo))
    excess = max(float(mean_rank_bound) - sum((r + 1) * x for r, x in enumerate(a)) - k * tail + k * eps, t_hi)
    spread = min(math.log(n_tail), 1 + math.log(excess / t_hi)) if n_tail > 1 else 0.0
    return max(0.0, base - shift + phi_min), base + shift + phi_max + t_hi * spread


def _greedy_bins(by_rho, pw, m_up, m_lo, limit: float):
    r"""Cut winners (sorted by ratio) into bins whose replacement error stays <= ``limit``.

    Returns (starts, per-bin errors, total); a bin's error is
    :math:`\sum_y 2 p_y (m^{up}_{ref} - m^{lo}_y)_+`, ref = its first (lowest-ratio) winner.
    Each bin is grown by galloping search on prefix sums of the unclamped cost (monotone
    while :math:`m^{lo}_y \le m^{up}_{ref}`); the error charged is then recomputed with the
    clamp, so a cut made on the unclamped sums is still charged exactly.
    """
    n = len(by_rho)
    if n == 0:
        return np.zeros(1, dtype=int), np.zeros(1), 0.0
    w, mlo, mup = pw[by_rho], m_lo[by_rho], m_up[by_rho]
    cp = np.concatenate([[0.0], np.cumsum(w)])                             # [n+1]
    cpm = np.concatenate([[0.0], np.cumsum(w * mlo)])

    def cost(s, j):                                                        # winners s+1..j-1 against ref s
        return 2 * (mup[s] * (cp[j] - cp[s + 1]) - (cpm[j] - cpm[s + 1]))

    starts, s = [], 0
    while s < n:
        starts.append(s)
        lo, step = s + 1, 1                                                # cost(s, lo) = 0 fits
        while lo + step <= n and cost(s, lo + step) <= limit:
            lo += step
            step *= 2
        hi = min(lo + step, n + 1)                                         # first j known (or assumed) not to fit
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if cost(s, mid) <= limit else (lo, mid)
        s = lo
    starts = np.asarray(starts, dtype=int)
    ref_m = np.repeat(mup[starts], np.diff(np.append(starts, n)))        # [n] the ref of each winner's bin
    each = 2 * w * np.maximum(ref_m - mlo, 0.0)
    each[starts] = 0.0                                                     # a ref stands for itself
    errs = np.add.reduceat(each, starts)
    return starts, errs, float(errs.sum())


#: shares of ``tol`` given to each source of error (module docstring; they sum to < 1, the rest covers
#: rounding).  Binning sets the number of (winner, t) rows, so it gets the most; quadrature and the
#: t-tail cost only a logarithm of their share.
BUDGET = {"winners": 0.10, "binning": 0.55, "light": 0.12, "quadrature": 0.03, "t_tail": 0.03, "narrow": 0.06}


#: smallest winner ratio q_y/p_y used as such (rates c_x = q_x/rho_y - p_x stay <= 1e90, their cubes finite)
RHO_FLOOR = 1e-90


def _clamp_ratios(p, q, rho_w):
    r"""Raise winner ratios below :data:`RHO_FLOOR` to it; returns ``(rho, tv)``, tv per winner.

    A winner y that the draft gives :math:`q_y < 10^{-90} p_y` has rates
    :math:`c_x = q_x/\rho_y - p_x` beyond what float64 cubes hold.  With
    :math:`\rho'_y = \max(\rho_y, \rho_{floor})` every rate shrinks to
    :math:`c'_x = (q_x/\rho'_y - p_x)_+ \le c_x`; coupling each Bernoulli(1 - e^{-t c}) with
    Bernoulli(1 - e^{-t c'}) monotonically, the counts differ with probability at most
    :math:`\sum_x \int_0^\infty e^{-t}(e^{-t c'_x} - e^{-t c_x})\,dt
    \le \sum_{x:\ \rho_x > \rho_y} 1/(1 + c'_x)` (docs/theory.md §5), which is returned
    (capped at 1) as the total-variation cost of the winner's conditional law.
    """
    low = rho_w < RHO_FLOOR
    tv = np.zeros(len(rho_w))
    if not low.any():
        return rho_w, tv
    live = np.flatnonzero(q > 0)
    with np.errstate(divide="ignore"):
        rho = np.where(p[live] > 0, q[live] / np.where(p[live] > 0, p[live], 1.0), np.inf)
        term = 1.0 / (1.0 + np.maximum(q[live] / RHO_FLOOR - p[live], 0.0))
    order = np.argsort(-rho, kind="stable")
    suffix = np.concatenate([[0.0], np.cumsum(term[order])])               # over the largest ratios
    above = np.searchsorted(-rho[order], -rho_w[low], side="left")         # tokens with rho_x > rho_y
    tv[low] = np.minimum(suffix[above], 1.0)
    return np.maximum(rho_w, RHO_FLOOR), tv


def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(int(n))
    return x, w


def _run_dp(t_rows, win_rows, heavy: HeavySets, k: int, device=None) -> np.ndarray:
    """Truncated pmf of N at (winner, t) rows, shape (rows, k+1); last column = P(N >= k)."""
    return run_recursion(t_rows, win_rows, heavy, k, device)


def _width_ladder(narrow: int, k: int) -> list:
    """Recursion widths tried in turn: narrow, 2 narrow, 4 narrow, ... below k, then k."""
    widths = []
    w = int(narrow)
    while 0 < w < k:
        widths.append(w)
        w *= 2
    return widths + [k]


def _first_width(mean, widths, threshold: float) -> np.ndarray:
    r"""Index into ``widths`` of the first width predicted to pass, per row (a guess, never a bound).

    Chernoff: :math:`P(N \ge w) \le e^{-\mu}(e\mu/w)^w` for a sum of independent Bernoulli and
    Poisson counts of mean :math:`\mu < w`; a row starts at the smallest width where that is
    below ``10 * threshold``.  Rows that then fail the check move up one width.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 1e-300)
    first = np.full(len(mean), len(widths) - 1)
    for i in range(len(widths) - 2, -1, -1):
        w = widths[i]
        log_tail = np.where(mean < w, -mean + w * (1 + np.log(mean / w)), 0.0)
        first[log_tail <= np.log(10 * threshold)] = i
    return first


def _accumulate_rows(head, t_rows, y_rows, weight, heavy: HeavySets, k: int, narrow: int, threshold: float,
                     device=None):
    r"""Add the weighted truncated pmfs of all rows to ``head`` (shape (k+1,)); narrow passes first.

    Each row is run at the first width of :func:`_width_ladder` predicted to suffice
    (:func:`_first_width`); a row run at a width w < k whose absorbed mass
    :math:`P(N \ge w)` is at most ``threshold`` keeps it (on "N >= K"), the others move up a width.
    Returns ``(head, narrow_err, wide_rows)``; ``wide_rows`` = rows run at width k; ``narrow_err``
    = 2 * sum of weight * P(N >= w) over the rows kept at a width w < k, plus the
    second-order term (module docstring, 6.).  ``weight >= 0``.
    """
    narrow_err = 0.0
    widths = _width_ladder(narrow, k)
    level = _first_width(row_means(t_rows, y_rows, heavy), widths, threshold) if len(widths) > 1 else \
        np.zeros(len(t_rows), dtype=int)
    wide_rows = 0
    for i, w in enumerate(widths):
        todo = np.flatnonzero(level == i)
        step = max(1, (1 << 15) // (w + 1))                           # blocks of ~256 KiB stay in cache
        for s in range(0, len(todo), step):
            idx = todo[s:s + step]
            st = _run_dp(t_rows[idx], y_rows[idx], heavy, w, device)   # [rows, w+1]
            if w == k:
                head += weight[idx] @ st
                wide_rows += len(idx)
                continue
            ok = st[:, w] <= threshold
            w_ok = weight[idx][ok]
            head[:w] += w_ok @ st[ok, :w]
            moved = float(w_ok @ st[ok, w])
            head[k] += moved
            narrow_err += 2 * moved
            # a signed (second-order) light part has negative mass N <= half its l1 error; the
            # move then costs <= 2 moved + 4 N (docs/theory.md §5, narrow pass)
            y_ok = y_rows[idx][ok]
            sec = heavy.second[y_ok]
            if sec.any():                                              # 4 N <= 2 l1 error = 4 TV
                narrow_err += 4 * float(w_ok[sec] @ heavy.row_tv(t_rows[idx][ok][sec], y_ok[sec]))
            level[idx[~ok]] = i + 1
    return head, narrow_err, wide_rows


def _largest_winners(p, cand, share: float, winners_max: int):
    """Candidates by decreasing p until the rest has mass <= ``share`` (at most ``winners_max``); ``(winners, dropped mass)``."""
    order = cand[np.argsort(-p[cand], kind="stable")]
    rest = p[order].sum() - np.cumsum(p[order])                            # mass after each prefix
    n_win = int(np.searchsorted(-rest, -share)) + 1 if len(order) else 0
    winners = order[:min(n_win, len(order), int(winners_max))]
    return winners, float(max(p[order].sum() - p[winners].sum(), 0.0))


def _bin_winners(pw, rho_w, m_up, m_lo, share: float):
    """Bins of winners by ratio whose total replacement error is <= ``share`` (module docstring, 2.).

    Returns ``(ref_pos, bin_mass, error)``: each bin's reference winner (its lowest ratio, index into
    the winners), its p-mass and the charged error.  The per-bin limit is halved until the total fits.
    """
    by_rho = np.argsort(rho_w, kind="stable")
    limit = share
    for _ in range(40):                                                    # widest bins whose total error fits
        starts, _, total = _greedy_bins(by_rho, pw, m_up, m_lo, limit)
        if total <= share:
            break
        limit /= 2
    return by_rho[starts], np.add.reduceat(pw[by_rho], starts), total


def _probe_t_end(heavy_sets, bw, n_win: int, t_max: float, k: int, share: float, device=None):
    r"""Per winner the end :math:`T_y` of the t-integral and the l1 cost of cutting it there (module docstring, 5.).

    :math:`2 e^{-T} P(N(T) < K)` decreases in T, so the first of the probes
    :math:`T = t_{max} 2^{-9..0}` where it is at most ``share`` is found by bisection over the busy
    winners ``bw`` (any probe is valid: the error charged is the one at the chosen T, plus the
    light part's total variation there).  Returns ``(t_end, t_tail_err)``, shapes (n_win,).
    """
    probe_t = t_max * 2.0 ** -np.arange(10)[::-1]                          # [P] ascending
    t_end = np.full(n_win, t_max)
    t_tail_err = np.zeros(n_win)
    if not len(bw):
        return t_end, t_tail_err
    first = np.full(len(bw), len(probe_t) - 1)                             # [busy] probe index
    below = 1 - _run_dp(np.full(len(bw), probe_t[-1]), bw, heavy_sets, k, device)[:, k]   # P(N(T) < K)
    lo_idx = np.full(len(bw), -1)
    while True:
        act = np.flatnonzero(first - lo_idx > 1)
        if not len(act):
            break
        mid = (lo_idx[act] + first[act]) // 2
        b = 1 - _run_dp(probe_t[mid], bw[act], heavy_sets, k, device)[:, k]
        tv = heavy_sets.row_tv(probe_t[mid], bw[act])
        ok = 2 * np.exp(-probe_t[mid]) * np.clip(b + tv, 0, 1) + 1e-300 <= share
        first[act[ok]], below[act[ok]] = mid[ok], b[ok]
        lo_idx[act[~ok]] = mid[~ok]
    t_end[bw] = probe_t[first]
    # below was computed with the light part approximated: add its TV at T (module docstring, 3.)
    t_bw = t_end[bw]
    t_tail_err[bw] = 2 * np.exp(-t_bw) * np.clip(below + heavy_sets.row_tv(t_bw, bw) + 1e-15, 0, 1)
    return t_end, t_tail_err


def _quadrature_rows(heavy_sets, bw, t_end_bw, share: float, k: int):
    """Gauss–Legendre rows (t, weight, winner) of the graded panels of the busy winners ``bw``.

    Returns ``(t_rows, w_rows, y_rows, quad_err, gap)``: ``quad_err`` the panels' guaranteed error per
    busy winner and ``gap`` the mass :math:`e^{-stop} - e^{-T_y}` of any [stop, T_y] the panels did
    not reach (the caller moves it to "N >= K" and charges it twice; never a crash, issue 20).
    """
    (pan_y, pan_a, pan_h, pan_n), quad_err, stop = graded_panels(heavy_sets, bw, t_end_bw, share, k)
    gap = np.exp(-stop) - np.exp(-t_end_bw)
    t_list, w_list, y_list = [], [], []
    for n in np.unique(pan_n):
        xg, wg = _gauss_legendre(n)
        sel = np.flatnonzero(pan_n == n)
        half = pan_h[sel] / 2                                              # [panels]
        t_list.append((pan_a[sel, None] + half[:, None] * (1 + xg[None, :])).ravel())
        w_list.append((half[:, None] * wg[None, :]).ravel())
        y_list.append(np.repeat(pan_y[sel], n))
    cat = (lambda v, dtype=float: np.concatenate(v) if v else np.zeros(0, dtype=dtype))
    return cat(t_list), cat(w_list), cat(y_list, int), quad_err, gap


#: the winners of largest p whose mean-rank brackets are computed one by one; the others are bracketed
#: from every ``_BRACKET_STRIDE``-th of them in ratio order (:func:`_mean_rank_brackets`)
_BRACKET_EXACT = 4096
_BRACKET_STRIDE = 4


def _shortlist_sums(ps, qs, pos_in_short, winners, rho_w, chunk: int) -> np.ndarray:
    r""":math:`S(\rho_y) = \sum_{x \in \text{shortlist}} c_x/(1 + c_x)`, :math:`c_x = (q_x/\rho_y - p_x)_+`, per winner."""
    n = len(winners)
    out = np.empty(n)
    for s in range(0, n, chunk):
        sl = slice(s, min(n, s + chunk))
        c = shortlist_rates(ps, qs, pos_in_short, winners[sl], rho_w[sl])       # [chunk, S] c_x(y)
        out[sl] = (c / (1 + c)).sum(1)
    return out


def _mean_rank_brackets(ps, qs, pos_in_short, winners, rho_w, out_s1, out_s2, chunk: int):
    r""":math:`E[R \mid y] = 1 + \sum_x c_x/(1 + c_x)` bracketed per winner, ``(m_up, m_lo)`` shapes (W,).

    The shortlist's competitors (``ps``, ``qs``) enter through :func:`_shortlist_sums`; outside it
    :math:`c - c^2 \le c/(1+c) \le c` with the exact sums ``out_s1``, ``out_s2`` of c and c².
    ``winners`` come by decreasing p: the first :data:`_BRACKET_EXACT` get their own S(ρ_y).  S is
    decreasing in ρ (every :math:`c_x(\rho)` is), so each other winner, between two of the grid
    winners (every :data:`_BRACKET_STRIDE`-th of them in ratio order, both ends included) with
    :math:`g_i \le \rho_y \le g_{i+1}`, has :math:`S(g_{i+1}) \le S(\rho_y) \le S(g_i)` — a
    valid, slightly wider bracket at a quarter of the work (the light winners' brackets only
    size their bins, whose error is charged from the brackets as they are).
    """
    n_win = len(winners)
    head = min(n_win, _BRACKET_EXACT)
    s_up = np.empty(n_win)
    s_up[:head] = _shortlist_sums(ps, qs, pos_in_short, winners[:head], rho_w[:head], chunk)
    s_lo = s_up.copy()
    if n_win > head:
        rest = head + np.argsort(rho_w[head:], kind="stable")                  # light winners by ratio
        grid = np.unique(np.append(np.arange(0, len(rest), _BRACKET_STRIDE), len(rest) - 1))
        g_idx = rest[grid]
        s_grid = _shortlist_sums(ps, qs, pos_in_short, winners[g_idx], rho_w[g_idx], chunk)
        cell = np.searchsorted(grid, np.arange(len(rest)), side="right") - 1  # grid[cell] <= i
        upper = np.minimum(cell + 1, len(grid) - 1)                           # the next grid point (or itself)
        on_grid = grid[cell] == np.arange(len(rest))
        s_up[rest] = s_grid[cell]                                              # g_cell <= rho_y: S larger there
        s_lo[rest] = np.where(on_grid, s_grid[cell], s_grid[upper])
    m_up = 1 + s_up + out_s1
    m_lo = 1 + s_lo + np.maximum(out_s1 - out_s2, 0.0)
    return m_up, m_lo


def _integrate(heavy_sets, pw, busy, t_end, k: int, narrow: int, share: dict, device=None):
    r"""The mixture :math:`\sum_y p_y \int_0^{T_y} e^{-t} P(N(t) = \cdot)\,dt` truncated at K (module docstring, 4.-6.).

    ``pw`` the bins' masses, ``busy`` the bins with :math:`C_y > 0` (the others have N = 0 surely),
    ``t_end`` the :math:`T_y`.  The mass beyond :math:`T_y` and any part of [0, T_y] the panels did
    not reach go to "N >= K".  Returns ``(head, quad_err, rows, narrow_err, wide_rows)``: ``head``
    of shape (K+1,), ``quad_err`` per bin.
    """
    head = np.zeros(k + 1)
    head[0] += float(pw[~busy].sum())
    quad_err = np.zeros(len(pw))
    bw = np.flatnonzero(busy)
    if not len(bw):
        return head, quad_err, 0, 0.0, 0
    t_rows, w_rows, y_rows, quad_err[bw], gap = _quadrature_rows(heavy_sets, bw, t_end[bw], share["quadrature"], k)
    quad_err[bw] += 2 * gap                                                # [stop, T_y] moved to "N >= K"
    head[k] += float((pw[bw] * gap).sum())
    weight = pw[y_rows] * w_rows * np.exp(-t_rows)
    head, narrow_err, wide_rows = _accumulate_rows(head, t_rows, y_rows, weight, heavy_sets, k, narrow,
                                                   share["narrow"] / (4 * max(float(weight.sum()), 1e-300)), device)
    head[k] += float((pw[bw] * np.exp(-t_end[bw])).sum())                  # t > T_y: all mass to "N >= K"
    return head, quad_err, len(t_rows), narrow_err, wide_rows


def bounded_rank_law(target_probs, draft_probs, max_rank: int = 64, tol: float = 1e-7, heavy: int = 24,
                     heavy_max: int = 1 << 15, shortlist: int = 2048, winners_max: int = 1 << 20, chunk: int = 512,
                     narrow: int = 16, full_max: int = 64, heavy_work: int = 384,
                     device=None) -> BoundedRankLaw:
    r"""Rank law :math:`a_1..a_K` with a guaranteed :math:`\ell_1` error (module docstring).

    Parameters
    ----------
    target_probs, draft_probs : ndarray, shape (V,)
        Validated probability vectors.
    max_rank : int
        K, the number of ranks computed (``min(K, V)``).
    tol : float
        Error budget aimed at; the returned ``error`` is what is guaranteed (it exceeds
        ``tol`` when ``winners_max`` or ``heavy`` is too small for the pair).
    heavy, heavy_max : int
        Competitors per winner kept exactly in the Poisson-binomial recursion: each winner
        gets its own count from the ladder heavy, 2 heavy, 4 heavy, ... (at most
        ``heavy_max``), chosen so that the light-part error (module docstring, 3.) totals
        ``<= tol/6`` at the least recursion work (:mod:`chansim.theory.rank_heavy`).
    shortlist : int
        Competitor candidates (largest q) examined per winner; the others only enter
        through :math:`C_y` and a bound on their squared rates.
    winners_max : int
        Most winners examined (largest p first).
    chunk : int
        Winners per vectorised block.
    narrow : int
        Width K' of the first, cheap recursion (module docstring, 6.); 0 or ``>= max_rank``
        runs every row at full width.
    full_max : int
        Most winners given a full-vocabulary pass when the shortlist's heavy sets cannot
        meet the light-part budget.
    heavy_work : int
        Cap on the heavy counts summed over winners: ``heavy_work`` per (binned) winner
        (twice the old fixed count of 192) but at least 2^20 in all, i.e. on the work and
        memory of the recursion; a pair that needs more gets ``error > tol`` (reported,
        never hidden).
    device : str, optional
        A torch device (``"cpu"``, ``"cuda"``) for the Poisson-binomial recursion, the
        dominant cost; ``None`` (default) runs it in numpy.  Same float64 arithmetic.

    Examples
    --------
    >>> law = bounded_rank_law(np.array([0.5, 0.5]), np.array([0.9, 0.1]), max_rank=2)
    >>> bool(np.allclose(law.head, [0.6, 0.4], atol=law.error + 1e-12)), law.error < 1e-7
    (True, True)
    """
    p = np.asarray(target_probs, dtype=float)
    q = np.asarray(draft_probs, dtype=float)
    vocab = p.shape[-1]
    k = int(min(max_rank, vocab))
    if k < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    never = float(p[(p > 0) & (q == 0)].sum())
    rates = competitor_rates(p, q, validate=False)                         # [V] exact C_y
    cand = np.flatnonzero((p > 0) & (q > 0))
    if not len(cand):                                                      # every winner is never drafted
        return BoundedRankLaw(np.zeros(k), 0.0, never, 1e-13, 0.0, vocab,
                              {"winners": 0.0, "rounding": 1e-13, "n_winners": 0, "rows": 0})
    winners, dropped = _largest_winners(p, cand, tol * BUDGET["winners"], winners_max)
    n_win = len(winners)
    # shortlist of competitors by q; the rest enter only through C_y and a square bound
    s_n = min(int(shortlist), vocab)
    short = np.argpartition(-q, s_n - 1)[:s_n] if s_n < vocab else np.arange(vocab)
    outside = np.setdiff1d(np.arange(vocab), short)
    outside_qmax = float(q[outside].max()) if len(outside) else 0.0
    ps, qs = p[short], q[short]
    share = {part: tol * frac for part, frac in BUDGET.items()}
    pw = p[winners]
    rho_w = q[winners] / pw
    clamped = rho_w < RHO_FLOOR                                            # E[R | y] unknown there: use V
    rho_w, clamp_tv = _clamp_ratios(p, q, rho_w)
    c_tot = rates[winners]
    pos_in_short = np.full(vocab, -1)
    pos_in_short[short] = np.arange(s_n)

    # sum c_x and sum c_x^2 over the competitors outside the shortlist, exact (prefix sums; not
    # C_y minus the shortlist's rates, which cancels when those are large)
    out_s1, out_s2 = power_sums_above(p, q, outside, rho_w)

    m_up, m_lo = _mean_rank_brackets(ps, qs, pos_in_short, winners, rho_w, out_s1, out_s2, chunk)
    mean_bound = float((pw * np.where(clamped, vocab, np.minimum(m_up, vocab))).sum() + dropped * vocab)
    # bins of winners by ratio: R | y is stochastically decreasing in rho_y, so y may be
    # replaced by the bin's lowest-ratio winner at l1 cost 2 p_y (E[R | ref] - E[R | y]) (§5)
    ref_pos, bin_mass, binning_err = _bin_winners(pw, rho_w, m_up, m_lo, share["binning"])
    winners_before = winners
    winners, pw, rho_w, c_tot = winners[ref_pos], bin_mass, rho_w[ref_pos], c_tot[ref_pos]
    n_all_winners, n_win = n_win, len(ref_pos)
    winners_all = winners_before

    # heavy sets per winner (rank_heavy): light-part l1 cost <= share where reachable
    t_max = math.log(2 / share["t_tail"])                                            # largest T_y (probes below)
    heavy_sets = choose_heavy_sets(p, q, winners, pw, rho_w, (out_s1[ref_pos], out_s2[ref_pos]), short,
                                   outside_qmax, share["light"], heavy, heavy_max,
                                   chunk, full_max, max(heavy_work * n_win, 1 << 20), t_max)
    # winners with C_y = 0 (largest ratio): N = 0 surely
    busy = c_tot > 0
    # --- probes: choose T_y with 2 e^{-T} P(N(T) < K) <= share
    t_end, t_tail_err = _probe_t_end(heavy_sets, np.flatnonzero(busy), n_win, t_max, k, share["t_tail"], device)
    # --- graded quadrature panels (rank_quadrature), their rows and the recursion
    head, quad_err, rows_total, narrow_err, wide_rows = _integrate(heavy_sets, pw, busy, t_end, k, narrow, share,
                                                                   device)
    alpha = float(np.where(p > 0, p / (1.0 + np.where(np.isfinite(rates), rates, np.inf)), 0.0).sum())
    light_err = heavy_sets.mixed_tv(t_end)                                 # rows only reach T_y
    parts = {"winners": dropped,
             "ratio_floor": float(2 * (p[winners_all] * clamp_tv).sum()),
             "binning": binning_err,
             "light": float(2 * (pw * light_err).sum()),                  # l1 = 2 TV
             "quadrature": float((pw * quad_err).sum()),
             "t_tail": float((pw * t_tail_err).sum()),
             "narrow": narrow_err,
             "rounding": float(1e-13 * (1 + rows_total * 1e-6))}
    error = float(sum(parts.values()))
    parts.update(n_winners=int(n_all_winners), bins=int(n_win), rows=int(rows_total), wide_rows=int(wide_rows), heavy=int(heavy_sets.counts.max(initial=0)),
                 heavy_mean=float(heavy_sets.counts.mean()) if n_win else 0.0, full_pass=heavy_sets.full, shortlist=s_n,
                 second_order=int(heavy_sets.second.sum()))
    # the true a_r and P(R > K) lie in [0, 1]: clipping moves no entry away from the truth, so the
    # l1 guarantee still holds (rows of a signed second-order part can leave -1e-21 behind)
    a = np.clip(head[:k], 0.0, 1.0)
    a[0] = alpha                                                           # exact alpha_ER (closed form, §0)
    tail = float(np.clip(head[k], 0.0, 1.0)) if k < vocab else 0.0
    return BoundedRankLaw(a, tail, never, error, mean_bound, vocab, parts)
