r"""Per-winner heavy sets for the guaranteed rank law (docs/theory.md §5 (d)).

Given a winner y, its competitors x have rates :math:`c_x = (q_x/\rho_y - p_x)_+`.  The
``h`` largest enter the exact Poisson-binomial recursion; the others ("light") are
replaced by an approximant of :mod:`chansim.theory.rank_light` — Poisson(:math:`t C^L_y`),
or the second-order signed compound Poisson where its error is smaller — at a
total-variation cost (per unit mass, mixed over t on [0, T])

.. math::
    e_y(h) = \min\Big(\sum_{x\ \mathrm{light}} c_x^2,\ \frac{C^L_y}{1 + C^L_y},\
             \tfrac12 \int_0^T e^{-t} e^{t^2 S_2} \kappa(t c_m) t^3 S_3\, dt\Big),
    \qquad C^L_y = C_y - \sum_{x\ \mathrm{heavy}} c_x

(:math:`\ell_1` cost :math:`2 p_y e_y(h)`; :math:`S_2, S_3, c_m` the light part's sums of
squares and cubes and its largest rate; :math:`S_2` exact, from the shortlist and
:func:`~chansim.theory.rank_light.power_sums_above`).  One global ``h`` wastes work on the many easy
winners and can leave a single hard winner (a flat draft behind a confident target: tens
of thousands of competitors with :math:`c_x \sim 10^{-3}`) far above the budget.  Here
every winner gets its own ``h`` from a ladder (powers of two times ``heavy``): the
choice minimises :math:`\sum_y h_y` subject to :math:`\sum_y 2 p_y e_y(h_y) \le` budget by
a Lagrangian search (each winner takes :math:`\arg\min_h h + p_y e_y(h)/\lambda`, and
:math:`\lambda` is bisected); any choice is valid, the error charged is the one of the
choice.  Winners still above the budget at the shortlist's size get a full-vocabulary
pass (the largest rates over all V, up to ``heavy_max`` competitors).

:class:`HeavySets` holds the result in groups of equal ``h`` (memory
:math:`\sum_g n_g h_g`), and :func:`run_recursion` runs the truncated recursion of
(winner, t) rows group by group in blocks of at most ``_BLOCK`` rate entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rank_light import light_state, row_error, second_order_error

__all__ = ["HeavySets", "choose_heavy_sets", "row_means", "run_recursion", "shortlist_rates"]

#: most (row, competitor) rate entries held at once by the recursion (16 MiB of float64)
_BLOCK = 1 << 21
#: state entries per block of the recursion (512 KiB of float64: stays in a core's L2 cache)
_STATE_BLOCK = 1 << 16


@dataclass(frozen=True)
class HeavySets:
    r"""Heavy competitor rates per winner, grouped by count.

    Attributes
    ----------
    group : ndarray, shape (W,)
        Group of each winner.
    local : ndarray, shape (W,)
        Row of each winner in its group's matrix.
    mats : list of ndarray, shapes (n_g, h_g)
        Heavy rates, each row sorted decreasingly.
    light : ndarray, shape (W,)
        :math:`C^L_y` (rate of the Poisson that replaces the others).
    light_err : ndarray, shape (W,)
        :math:`e_y(h_y)` (total variation, per unit mass).
    light_sq : ndarray, shape (W,)
        :math:`S_2 = \sum_{x\ \mathrm{light}} c_x^2` (exact up to rounding; the second-order
        approximant uses it).
    counts : ndarray, shape (W,)
        :math:`h_y`.
    full : int
        Winners that got the full-vocabulary pass.
    light_cube : ndarray, shape (W,)
        Upper bound on :math:`S_3 = \sum_{x\ \mathrm{light}} c_x^3`.
    light_cmax : ndarray, shape (W,)
        Upper bound on the largest light rate :math:`c_m`.
    second : ndarray of bool, shape (W,)
        Whether the light part uses the second-order approximant (else Poisson).
    """

    group: np.ndarray
    local: np.ndarray
    mats: list
    light: np.ndarray
    light_err: np.ndarray
    light_sq: np.ndarray
    counts: np.ndarray
    full: int
    light_cube: np.ndarray
    light_cmax: np.ndarray
    second: np.ndarray

    @classmethod
    def single(cls, heavy_c, light, light_err=None):
        """One group holding ``heavy_c`` (shape (W, h)) for every winner (Poisson light part)."""
        heavy_c = np.asarray(heavy_c, dtype=float)
        n = heavy_c.shape[0]
        err = np.zeros(n) if light_err is None else np.asarray(light_err, dtype=float)
        return cls(np.zeros(n, dtype=int), np.arange(n), [heavy_c], np.asarray(light, dtype=float), err,
                   np.full(n, np.inf), np.full(n, heavy_c.shape[1]), 0, np.full(n, np.inf), np.full(n, np.inf),
                   np.zeros(n, dtype=bool))

    def row_tv(self, t, idx) -> np.ndarray:
        r"""Total variation at time t between the light count of winners ``idx`` and its approximant.

        Poisson: :math:`\min(t^2 S_2/2,\ 1 - e^{-t C^L})`; second order: half of
        :func:`~chansim.theory.rank_light.row_error`.
        """
        t = np.asarray(t, dtype=float)
        first = np.minimum(t * t * self.light_sq[idx] / 2, -np.expm1(-t * self.light[idx]))
        sec = row_error(t, self.light_sq[idx], self.light_cube[idx], self.light_cmax[idx]) / 2
        return np.where(self.second[idx], sec, first)

    def mixed_tv(self, t_end) -> np.ndarray:
        """``light_err`` with the second-order winners' error integrated on [0, t_end] only, shape (W,)."""
        sec = second_order_error(self.light_sq, self.light_cube, self.light_cmax, t_end) / 2
        return np.where(self.second, np.minimum(sec, self.light_err), self.light_err)

    @property
    def c_max(self) -> np.ndarray:
        """Largest heavy rate per winner, shape (W,) (0 without heavy competitors)."""
        tops = [m.max(1) if m.shape[1] else np.zeros(m.shape[0]) for m in self.mats]
        return np.array([tops[g][i] for g, i in zip(self.group, self.local)]) if len(self.group) else np.zeros(0)


def _absorb(state_t, pi_cols, k: int) -> None:
    r"""Add independent Bernoulli(pi) counts to ``state_t`` in place; the last state absorbs.

    ``state_t`` has shape (k+1, rows) (counts by row: each count's column of rows is contiguous,
    three passes per competitor over a block that stays in cache); ``pi_cols`` has shape
    (h, rows): :math:`s_j \leftarrow (1 - \pi) s_j + \pi s_{j-1}` for j < k and
    :math:`s_k \leftarrow s_k + \pi s_{k-1}`.
    """
    moved = np.empty((k, state_t.shape[1]))
    for pi in pi_cols:
        np.multiply(state_t[:k], pi[None, :], out=moved)                  # [k, rows]
        state_t[:k] -= moved
        state_t[1:] += moved


def _absorb_torch(state, pi_cols, k: int) -> None:
    """:func:`_absorb` on torch tensors (any device), in place."""
    import torch

    moved = state.new_empty((state.shape[0], k))
    for pi in pi_cols:
        torch.mul(state[:, :k], pi[:, None], out=moved)                     # [rows, k] (rows on the GPU: one block)
        state[:, :k] -= moved
        state[:, 1:] += moved


def _row_blocks(win_rows, heavy: HeavySets, k: int, in_cache: bool = True):
    """Blocks of rows sharing a heavy group: yields ``(idx, c_cols)``, ``c_cols`` of shape [h, rows].

    A block holds at most ``_BLOCK`` rates and about ``_STATE_BLOCK`` state entries ((k+1) x rows),
    so the recursion's three passes per competitor run in cache (``in_cache=False``, for a GPU:
    the rate limit only).
    """
    g_rows = heavy.group[win_rows]
    for g, mat in enumerate(heavy.mats):
        h = mat.shape[1]
        if h == 0:
            continue
        sel = np.flatnonzero(g_rows == g) if len(heavy.mats) > 1 else np.arange(len(win_rows))
        block = max(1, _BLOCK // h)
        if in_cache:
            block = min(block, max(64, _STATE_BLOCK // (k + 1)))
        for s in range(0, len(sel), block):
            idx = sel[s:s + block]
            yield idx, mat[heavy.local[win_rows[idx]]].T


def _run_torch(state_np, t_rows, win_rows, heavy: HeavySets, k: int, device) -> np.ndarray:
    """The heavy recursion of :func:`run_recursion` in float64 torch on ``device`` (e.g. ``"cuda"``)."""
    import torch

    state = torch.as_tensor(state_np, dtype=torch.float64, device=device)
    t = torch.as_tensor(t_rows, dtype=torch.float64, device=device)
    for idx, c_np in _row_blocks(win_rows, heavy, k, in_cache=False):
        idx_t = torch.as_tensor(idx, device=device)
        c_cols = torch.as_tensor(c_np, dtype=torch.float64, device=device)           # [h, rows]
        pi_cols = -torch.expm1(-c_cols * t[idx_t][None, :])                          # [h, rows]
        st = state[idx_t]
        _absorb_torch(st, pi_cols[pi_cols.amax(1) > 0], k)
        state[idx_t] = st
    return state.cpu().numpy()


def run_recursion(t_rows, win_rows, heavy: HeavySets, k: int, device=None) -> np.ndarray:
    """Truncated pmf of N at (winner, t) rows, shape (rows, k+1); last column = P(N >= k).

    N = heavy Bernoulli(1 - e^{-t c_x}) counts + the light approximant (Poisson(t C^L) or
    second order, :func:`~chansim.theory.rank_light.light_state`; docs/theory.md §5 (d)).
    ``device`` (``None``: numpy): a torch device (``"cpu"``, ``"cuda"``) for the heavy
    recursion, the same float64 arithmetic on tensors.
    """
    t_rows = np.asarray(t_rows, dtype=float)
    win_rows = np.asarray(win_rows)
    state = light_state(t_rows, heavy.light[win_rows], heavy.light_sq[win_rows], heavy.second[win_rows], k)
    if device is not None:
        return _run_torch(state, t_rows, win_rows, heavy, k, device)
    for idx, c_cols in _row_blocks(win_rows, heavy, k):                     # c_cols: [h, rows]
        pi_cols = -np.expm1(-c_cols * t_rows[idx][None, :])               # [h, rows]
        st = np.ascontiguousarray(state[idx].T)                            # [k+1, rows]
        _absorb(st, pi_cols[pi_cols.max(1) > 0], k)
        state[idx] = st.T
    return state


def shortlist_rates(ps, qs, pos_in_short, winners, rho_w) -> np.ndarray:
    r"""Rates :math:`c_x = (q_x/\rho_y - p_x)_+` of the shortlist's tokens x for each winner y, shape (W, S).

    ``ps``, ``qs`` the shortlist's p and q, ``pos_in_short`` each token's column (-1 outside); a
    winner's own column is set to 0 (its rate is 0 exactly; rounding could leave 1e-17).
    """
    c = np.maximum(qs[None, :] / rho_w[:, None] - ps[None, :], 0.0)         # [W, S]
    own = pos_in_short[winners]
    has = own >= 0
    c[np.flatnonzero(has), own[has]] = 0.0
    return c


def row_means(t_rows, win_rows, heavy: HeavySets) -> np.ndarray:
    r"""Mean of the approximated count per row: :math:`\sum_{heavy} (1 - e^{-t c_x}) + t C^L`, shape (rows,)."""
    t_rows = np.asarray(t_rows, dtype=float)
    win_rows = np.asarray(win_rows)
    mean = t_rows * heavy.light[win_rows]
    for idx, c_cols in _row_blocks(win_rows, heavy, 0, in_cache=False):
        mean[idx] += -np.expm1(-c_cols * t_rows[idx][None, :]).sum(0)
    return mean


def _ladder(heavy: int, top: int) -> list:
    """heavy, 2 heavy, 4 heavy, ... capped at ``top`` (which is included)."""
    top = max(int(top), 0)
    levels, h = {top}, max(int(heavy), 1)
    while h < top:
        levels.add(h)
        h *= 2
    return sorted(levels)


@dataclass
class _Light:
    """Light-part error and statistics per (winner, level), arrays of shape (rows, levels)."""

    err: np.ndarray                     # total variation, mixed over t (module docstring)
    cl: np.ndarray                      # S_1 = C^L
    sq: np.ndarray                      # S_2
    cube: np.ndarray                    # bound on S_3
    cmax: np.ndarray                    # bound on c_m
    second: np.ndarray                  # second-order approximant chosen

    FIELDS = ("err", "cl", "sq", "cube", "cmax", "second")

    @classmethod
    def empty(cls, n: int, n_levels: int):
        return cls(*(np.zeros((n, n_levels), dtype=bool) if name == "second" else np.empty((n, n_levels))
                     for name in cls.FIELDS))

    def set_rows(self, rows, other: "_Light") -> None:
        for name in _Light.FIELDS:
            getattr(self, name)[rows] = getattr(other, name)

    def widen(self, levels, base) -> "_Light":
        """Columns for ``levels``: a base level keeps its own values, the others the last base column."""
        out = _Light(*(np.repeat(v[:, -1:], len(levels), axis=1) for v in self.values()))
        for j, h in enumerate(levels):
            if h in base:
                out.set_rows((slice(None), j), self.column(base.index(h)))
        return out

    def values(self) -> list:
        return [getattr(self, name) for name in _Light.FIELDS]

    def column(self, j) -> "_Light":
        """One level (``j`` an int) or, with ``j`` an index array per row, one level per row."""
        if np.ndim(j) == 0:
            return _Light(*(v[:, j] for v in self.values()))
        return _Light(*(v[np.arange(len(j)), j] for v in self.values()))


def _errors(cs, rest_sum, rest_sq, rest_cube, rest_max, levels, t_end: float) -> _Light:
    """Light-part errors for each level; ``cs`` the largest rates sorted decreasingly per row.

    ``rest_*`` describe the competitors not in ``cs``: their sum and sum of squares
    (exact), a bound on their sum of cubes and on their largest rate.  Level h keeps
    ``cs[:, :h]`` heavy (h <= columns).  Every light sum is added up from the light rates
    themselves, never as a total minus the heavy ones (that cancels when heavy rates are large).
    """
    n, s = cs.shape
    rev = lambda v: np.concatenate([np.cumsum(v[:, ::-1], axis=1)[:, ::-1], np.zeros((n, 1))], axis=1)
    sum_tail, sq_tail, cube_tail = rev(cs), rev(cs * cs), rev(cs ** 3)  # [rows, S+1]
    nxt = np.concatenate([cs, np.zeros((n, 1))], axis=1)                 # largest light rate in cs
    out = _Light.empty(n, len(levels))
    for j, h in enumerate(levels):
        h = min(h, s)
        lt = sum_tail[:, h] + rest_sum
        sq = sq_tail[:, h] + rest_sq
        cube = cube_tail[:, h] + rest_cube
        cm = np.maximum(nxt[:, h], rest_max)
        first = np.minimum(sq, lt / (1 + lt))
        sec = second_order_error(sq, cube, cm, t_end) / 2
        out.err[:, j] = np.minimum(first, sec)
        out.cl[:, j], out.sq[:, j], out.cube[:, j], out.cmax[:, j], out.second[:, j] = lt, sq, cube, cm, sec < first
    return out


def _lagrange_pick(err, mass, levels, budget: float, max_cost: float = np.inf) -> np.ndarray:
    """Level index per winner minimising sum h subject to sum mass * err <= budget (if possible).

    The total count sum h is capped at ``max_cost`` (a work and memory bound): where the
    budget needs more, the cheapest-error choice within the cap is taken (its error is
    charged, so the guarantee then exceeds the budget).
    """
    cost = np.asarray(levels, dtype=float)[None, :]
    weighted = mass[:, None] * err                                        # [W, L]
    rows = np.arange(len(mass))

    def pick_at(log_lam):
        return np.argmin(cost + weighted / 10.0 ** log_lam, axis=1)

    def total_cost(pick):
        return float(cost[0, pick].sum())

    cheap = np.zeros(len(mass), dtype=int)
    if float(weighted[:, 0].sum()) <= budget or total_cost(cheap) >= max_cost:
        return cheap
    best = np.argmin(weighted, axis=1)                                     # smallest error (first = cheapest)
    if float(weighted[rows, best].sum()) <= budget:
        lo, hi = -80.0, 80.0                                               # log10 lambda: lo feasible, hi not
        pick = best
        for _ in range(70):
            mid = 0.5 * (lo + hi)
            cand = pick_at(mid)
            if float(weighted[rows, cand].sum()) <= budget:
                lo, pick = mid, cand
            else:
                hi = mid
        if total_cost(pick) <= max_cost:
            return pick
    elif total_cost(best) <= max_cost:
        return best
    lo, hi = -80.0, 80.0                                                   # lo over the cap, hi within it
    pick = cheap
    for _ in range(70):
        mid = 0.5 * (lo + hi)
        cand = pick_at(mid)
        if total_cost(cand) <= max_cost:
            hi, pick = mid, cand
        else:
            lo = mid
    return pick


def choose_heavy_sets(p, q, winners, mass, rho_w, out_sums, short, outside_qmax: float, budget: float,
                      heavy: int, heavy_max: int, chunk: int, full_max: int = 64,
                      heavy_work: int = 1 << 18, t_end: float = 40.0) -> HeavySets:
    """Heavy sets per winner with ``sum 2 mass_y e_y(h_y) <= budget`` where reachable (module docstring).

    Parameters
    ----------
    p, q : ndarray, shape (V,)
    winners : ndarray, shape (W,)
        Token ids of the (representative) winners.
    mass, rho_w : ndarray, shape (W,)
        Mass carried and ratio q/p of each winner.
    out_sums : (ndarray, ndarray), shapes (W,)
        :math:`\\sum c_x` and :math:`\\sum c_x^2` over the competitors outside the
        shortlist, exact (:func:`~chansim.theory.rank_light.power_sums_above`).
    short : ndarray, shape (S,)
        Shortlist of competitor ids (largest q); the others enter through ``out_sums`` and
        :math:`c_x \\le \\min(\\max_{x\\notin S} q_x/\\rho_y,\\ (\\sum_{x\\notin S} c_x^2)^{1/2})`.
    budget : float
        Target for the light part's :math:`\\ell_1` cost.
    heavy_work : int
        Cap on :math:`\\sum_y h_y` (work and memory of the recursion); where the budget
        needs more, the error charged exceeds it.
    t_end : float
        Upper end T of the race times the rows use (the second-order error is integrated
        on [0, T]).
    """
    vocab = len(p)
    n_win, s_n = len(winners), len(short)
    ps, qs = p[short], q[short]
    pos_in_short = np.full(vocab, -1)
    pos_in_short[short] = np.arange(s_n)
    top_short = min(int(heavy_max), s_n)
    base = _ladder(heavy, top_short)
    out_s1, out_sq = (np.asarray(v, dtype=float) for v in out_sums)

    def short_rates(sl, top=None):
        """Shortlist rates of winners ``sl``: the ``top`` largest sorted decreasingly (all if None),
        and the rest's (other shortlist rates and the outside) sum, sum of squares, bound on the
        sum of cubes and on the largest rate, each added up from the rest itself."""
        c = shortlist_rates(ps, qs, pos_in_short, winners[sl], rho_w[sl])       # [chunk, S]
        out_max = np.minimum(outside_qmax / rho_w[sl], np.sqrt(out_sq[sl]))   # c_x <= q_x / rho_y, c_x^2 <= S_2
        outside = (out_s1[sl], out_sq[sl], out_max * out_sq[sl], out_max)
        if top is not None and top < s_n:
            part = np.argpartition(c, s_n - top, axis=1)                   # O(S)
            kept = np.take_along_axis(c, part[:, s_n - top:], axis=1)
            rest = np.take_along_axis(c, part[:, :s_n - top], axis=1)      # [chunk, S - top]
            kept = -np.sort(-kept, axis=1)
            return kept, (rest.sum(1) + outside[0], (rest * rest).sum(1) + outside[1],
                          (rest ** 3).sum(1) + outside[2], np.maximum(rest.max(1), out_max))
        return -np.sort(-c, axis=1), outside

    # first level for everyone from a partition (O(S)); the sorted ladder only where it can matter
    h0 = base[0]
    first = _Light.empty(n_win, 1)
    for s in range(0, n_win, chunk):
        sl = slice(s, min(n_win, s + chunk))
        top, rest = short_rates(sl, min(h0 + 1, s_n))
        first.set_rows(sl, _errors(top, *rest, [h0], t_end))
    lev = first.widen(base, [h0])            # errors valid (not sharp) at every level; statistics redone below
    err0 = first.err[:, 0]
    if float((2 * mass * err0).sum()) > budget and len(base) > 1:
        # winners above budget / (2 W) each: the others together stay under budget / 2
        cand = np.flatnonzero(2 * mass * err0 > budget / (2 * n_win))
        for s in range(0, len(cand), chunk):
            idx = cand[s:s + chunk]
            cs, rest = short_rates(idx)
            lev.set_rows(idx, _errors(cs, *rest, base, t_end))
    # full-vocabulary pass for the winners that the shortlist cannot bring under the budget
    levels = base
    full_rates = {}
    top_full = min(int(heavy_max), vocab - 1)
    w_top = 2 * mass * lev.err[:, -1]
    if top_full > top_short and float(w_top.sum()) > budget:
        order = np.argsort(-w_top, kind="stable")
        rest = float(w_top.sum()) - np.cumsum(w_top[order])
        n_full = min(int(np.searchsorted(-rest, -budget / 2)) + 1, int(full_max), n_win)
        levels = _ladder(heavy, top_full)
        lev = lev.widen(levels, base)                                      # beyond the shortlist: no gain
        for y in order[:n_full]:
            c = np.maximum(q / rho_w[y] - p, 0.0)                         # [V]
            c[winners[y]] = 0.0
            srt = -np.sort(-c)
            cs = srt[None, :top_full + 1]
            tail = srt[top_full + 1:]                                      # beyond the kept prefix
            lev.set_rows(y, _errors(cs, np.array([float(tail.sum())]), np.array([float((tail * tail).sum())]),
                                    np.array([float((tail ** 3).sum())]), np.array([srt[top_full + 1]
                                    if len(tail) else 0.0]), levels, t_end))
            full_rates[int(y)] = cs[0]
    pick = _lagrange_pick(2 * lev.err, mass, levels, budget, heavy_work)
    counts = np.array([levels[i] for i in pick], dtype=int)
    # groups of equal count; rows sorted decreasingly
    group = np.empty(n_win, dtype=int)
    local = np.empty(n_win, dtype=int)
    mats = []
    chosen = lev.column(pick)
    for g, h in enumerate(np.unique(counts)):
        members = np.flatnonzero(counts == h)
        group[members], local[members] = g, np.arange(len(members))
        mat = np.zeros((len(members), int(h)))
        short_members = [i for i, y in enumerate(members) if int(y) not in full_rates]
        for s in range(0, len(short_members), chunk):
            rows = np.asarray(short_members[s:s + chunk], dtype=int)
            cs, rest = short_rates(members[rows], int(h) + 1 if int(h) < s_n else None)
            mat[rows, :min(int(h), s_n)] = cs[:, :min(int(h), s_n)]
            # the light part's statistics at the chosen count exactly (the approximant uses S_2)
            exact = _errors(cs, *rest, [int(h)], t_end)
            chosen.set_rows(members[rows], exact.column(0))
        for i, y in enumerate(members):
            if int(y) in full_rates:
                fr = full_rates[int(y)][:int(h)]
                mat[i, :len(fr)] = fr
        live = np.flatnonzero(mat.max(0) > 0) if mat.size else np.zeros(0, dtype=int)
        mat = mat[:, :live[-1] + 1] if len(live) else mat[:, :0]         # trailing zero columns do nothing
        mats.append(np.ascontiguousarray(mat))
    # C^L as the sum of the light rates themselves (total minus heavy would cancel)
    return HeavySets(group, local, mats, np.maximum(chosen.cl, 0.0), chosen.err, chosen.sq, counts, len(full_rates),
                     chosen.cube, chosen.cmax, chosen.second)
