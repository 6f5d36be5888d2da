r"""Per-winner heavy sets for the guaranteed rank law (docs/theory.md §5 (d)).

Given a winner y, its competitors x have rates :math:`c_x = (q_x/\rho_y - p_x)_+`.  The
``h`` largest enter the exact Poisson-binomial recursion; the others ("light") are
replaced by one Poisson variable, at a total-variation cost

.. math::
    e_y(h) = \min\Big(\sum_{x\ \mathrm{light}} c_x^2,\ \frac{C^L_y}{1 + C^L_y}\Big),
    \qquad C^L_y = C_y - \sum_{x\ \mathrm{heavy}} c_x

(:math:`\ell_1` cost :math:`2 p_y e_y(h)`).  One global ``h`` wastes work on the many easy
winners and can leave a single hard winner (a flat draft behind a confident target: tens
of thousands of competitors with :math:`c_x \sim 10^{-3}`) far above the budget.  Here
every winner gets its own ``h`` from a ladder (powers of two times ``heavy``): the
choice minimises :math:`\sum_y h_y` subject to :math:`\sum_y 2 p_y e_y(h_y) \le` budget by
a Lagrangian search (each winner takes :math:`\arg\min_h h + p_y e_y(h)/\lambda`, and
:math:`\lambda` is bisected); any choice is valid, the error charged is the one of the
choice.  Winners still above the budget at the shortlist's size get a full-vocabulary
pass (exact :math:`\sum c^2`, up to ``heavy_max`` competitors).

:class:`HeavySets` holds the result in groups of equal ``h`` (memory
:math:`\sum_g n_g h_g`), and :func:`run_recursion` runs the truncated recursion of
(winner, t) rows group by group in blocks of at most ``_BLOCK`` rate entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["HeavySets", "choose_heavy_sets", "run_recursion", "poisson_truncated"]

#: most (row, competitor) rate entries held at once by the recursion (16 MiB of float64)
_BLOCK = 1 << 21


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
        Upper bound on :math:`\sum_{x\ \mathrm{light}} c_x^2` (the TV at time t is at most
        :math:`\min(t^2 \cdot \text{light\_sq}/2,\ 1 - e^{-t C^L})`).
    counts : ndarray, shape (W,)
        :math:`h_y`.
    full : int
        Winners that got the full-vocabulary pass.
    """

    group: np.ndarray
    local: np.ndarray
    mats: list
    light: np.ndarray
    light_err: np.ndarray
    light_sq: np.ndarray
    counts: np.ndarray
    full: int

    @classmethod
    def single(cls, heavy_c, light, light_err=None):
        """One group holding ``heavy_c`` (shape (W, h)) for every winner."""
        heavy_c = np.asarray(heavy_c, dtype=float)
        n = heavy_c.shape[0]
        err = np.zeros(n) if light_err is None else np.asarray(light_err, dtype=float)
        return cls(np.zeros(n, dtype=int), np.arange(n), [heavy_c], np.asarray(light, dtype=float), err,
                   np.full(n, np.inf), np.full(n, heavy_c.shape[1]), 0)

    @property
    def c_max(self) -> np.ndarray:
        """Largest heavy rate per winner, shape (W,) (0 without heavy competitors)."""
        tops = [m.max(1) if m.shape[1] else np.zeros(m.shape[0]) for m in self.mats]
        return np.array([tops[g][i] for g, i in zip(self.group, self.local)]) if len(self.group) else np.zeros(0)


def poisson_truncated(lam, k: int) -> np.ndarray:
    """Rows of P(Pois(lam) = j), j < k, and P(Pois >= k) in the last column, shape (rows, k+1)."""
    lam = np.asarray(lam, dtype=float)[:, None]
    j = np.arange(k)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = np.where(lam > 0, j * np.log(np.where(lam > 0, lam, 1.0)) - lam - special.gammaln(j + 1),
                          np.where(j == 0, 0.0, -np.inf))
    out = np.empty((lam.shape[0], k + 1))
    out[:, :k] = np.exp(logpmf)
    out[:, k] = special.pdtrc(k - 1, lam[:, 0]) if k > 0 else 1.0
    return out


def _absorb(state, pi_cols, k: int) -> None:
    """Add independent Bernoulli(pi) counts to ``state`` (rows, k+1) in place; last state absorbs.

    ``pi_cols`` has shape (h, rows) (one contiguous row per competitor).
    """
    moved = np.empty((state.shape[0], k))
    for pi in pi_cols:
        np.multiply(state[:, :k], pi[:, None], out=moved)                # [rows, k]
        state[:, :k] -= moved
        state[:, 1:] += moved


def _absorb_torch(state, pi_cols, k: int) -> None:
    """:func:`_absorb` on torch tensors (any device), in place."""
    import torch

    moved = state.new_empty((state.shape[0], k))
    for pi in pi_cols:
        torch.mul(state[:, :k], pi[:, None], out=moved)                     # [rows, k]
        state[:, :k] -= moved
        state[:, 1:] += moved


def _row_blocks(win_rows, heavy: HeavySets):
    """Blocks of rows sharing a heavy group: yields ``(idx, c_cols)``, ``c_cols`` of shape [h, rows]."""
    g_rows = heavy.group[win_rows]
    for g, mat in enumerate(heavy.mats):
        h = mat.shape[1]
        if h == 0:
            continue
        sel = np.flatnonzero(g_rows == g) if len(heavy.mats) > 1 else np.arange(len(win_rows))
        block = max(1, _BLOCK // h)
        for s in range(0, len(sel), block):
            idx = sel[s:s + block]
            yield idx, mat[heavy.local[win_rows[idx]]].T


def _run_torch(state_np, t_rows, win_rows, heavy: HeavySets, k: int, device) -> np.ndarray:
    """The heavy recursion of :func:`run_recursion` in float64 torch on ``device`` (e.g. ``"cuda"``)."""
    import torch

    state = torch.as_tensor(state_np, dtype=torch.float64, device=device)
    t = torch.as_tensor(t_rows, dtype=torch.float64, device=device)
    for idx, c_np in _row_blocks(win_rows, heavy):
        idx_t = torch.as_tensor(idx, device=device)
        c_cols = torch.as_tensor(c_np, dtype=torch.float64, device=device)           # [h, rows]
        pi_cols = -torch.expm1(-c_cols * t[idx_t][None, :])                          # [h, rows]
        st = state[idx_t]
        _absorb_torch(st, pi_cols[pi_cols.amax(1) > 0], k)
        state[idx_t] = st
    return state.cpu().numpy()


def run_recursion(t_rows, win_rows, heavy: HeavySets, k: int, device=None) -> np.ndarray:
    """Truncated pmf of N at (winner, t) rows, shape (rows, k+1); last column = P(N >= k).

    N = heavy Bernoulli(1 - e^{-t c_x}) counts + Poisson(t C^L) (docs/theory.md §5 (d)).
    ``device`` (``None``: numpy): a torch device (``"cpu"``, ``"cuda"``) for the heavy
    recursion, the same float64 arithmetic on tensors.
    """
    t_rows = np.asarray(t_rows, dtype=float)
    win_rows = np.asarray(win_rows)
    state = poisson_truncated(t_rows * heavy.light[win_rows], k)           # [rows, k+1]
    if device is not None:
        return _run_torch(state, t_rows, win_rows, heavy, k, device)
    for idx, c_cols in _row_blocks(win_rows, heavy):                        # c_cols: [h, rows]
        pi_cols = -np.expm1(-c_cols * t_rows[idx][None, :])               # [h, rows]
        st = state[idx]
        _absorb(st, pi_cols[pi_cols.max(1) > 0], k)
        state[idx] = st
    return state


def _ladder(heavy: int, top: int) -> list:
    """heavy, 2 heavy, 4 heavy, ... capped at ``top`` (which is included)."""
    top = max(int(top), 0)
    levels, h = {top}, max(int(heavy), 1)
    while h < top:
        levels.add(h)
        h *= 2
    return sorted(levels)


def _errors(cs, c_tot, out_sq, levels):
    """e(h) and the light sum-of-squares bound for each level, rates ``cs`` sorted decreasingly per row.

    Returns two arrays of shape (rows, len(levels)).
    """
    n, s = cs.shape
    sq_tail = np.concatenate([np.cumsum((cs * cs)[:, ::-1], axis=1)[:, ::-1], np.zeros((n, 1))], axis=1)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(cs, axis=1)], axis=1)   # [rows, S+1]
    out, sq = np.empty((n, len(levels))), np.empty((n, len(levels)))
    for j, h in enumerate(levels):
        h = min(h, s)
        lt = np.maximum(c_tot - csum[:, h], 0.0)
        sq[:, j] = np.maximum(sq_tail[:, h] + out_sq, 0.0)
        out[:, j] = np.minimum(sq[:, j], lt / (1 + lt))
    return out, sq


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


def choose_heavy_sets(p, q, winners, mass, rho_w, c_tot, short, outside_qmax: float, budget: float,
                      heavy: int, heavy_max: int, chunk: int, full_max: int = 64,
                      heavy_work: int = 1 << 18) -> HeavySets:
    """Heavy sets per winner with ``sum 2 mass_y e_y(h_y) <= budget`` where reachable (module docstring).

    Parameters
    ----------
    p, q : ndarray, shape (V,)
    winners : ndarray, shape (W,)
        Token ids of the (representative) winners.
    mass, rho_w, c_tot : ndarray, shape (W,)
        Mass carried, ratio q/p and exact :math:`C_y` of each winner.
    short : ndarray, shape (S,)
        Shortlist of competitor ids (largest q); the rest enter through :math:`C_y` and
        :math:`\\sum_{x \\notin S} c_x^2 \\le (\\max_{x\\notin S} q_x/\\rho_y) \\sum_{x\\notin S} c_x`.
    budget : float
        Target for the light part's :math:`\\ell_1` cost.
    heavy_work : int
        Cap on :math:`\\sum_y h_y` (work and memory of the recursion); where the budget
        needs more, the error charged exceeds it.
    """
    vocab = len(p)
    n_win, s_n = len(winners), len(short)
    ps, qs = p[short], q[short]
    pos_in_short = np.full(vocab, -1)
    pos_in_short[short] = np.arange(s_n)
    top_short = min(int(heavy_max), s_n)
    base = _ladder(heavy, top_short)

    def short_rates(sl, top=None):
        """Shortlist rates of winners ``sl``, the ``top`` largest sorted decreasingly (all if None)."""
        c = np.maximum(qs[None, :] / rho_w[sl, None] - ps[None, :], 0.0)    # [chunk, S]
        own = pos_in_short[winners[sl]]
        has = own >= 0
        c[np.flatnonzero(has), own[has]] = 0.0
        c_out = np.maximum(c_tot[sl] - c.sum(1), 0.0)
        if top is not None and top < s_n:
            kept = np.partition(c, s_n - top, axis=1)[:, s_n - top:]       # [chunk, top], O(S)
            return -np.sort(-kept, axis=1), c_out * outside_qmax / rho_w[sl], (c * c).sum(1)
        return -np.sort(-c, axis=1), c_out * outside_qmax / rho_w[sl], (c * c).sum(1)

    # first level for everyone from a partition (O(S)); the sorted ladder only where it can matter
    h0 = base[0]
    err0, sq0 = np.empty(n_win), np.empty(n_win)
    for s in range(0, n_win, chunk):
        sl = slice(s, min(n_win, s + chunk))
        top, out_sq, all_sq = short_rates(sl, h0)
        sq0[sl] = np.maximum(all_sq - (top * top).sum(1) + out_sq, 0.0)
        lt = np.maximum(c_tot[sl] - top.sum(1), 0.0)
        err0[sl] = np.minimum(sq0[sl], lt / (1 + lt))
    err_base = np.repeat(err0[:, None], len(base), axis=1)                # valid (not sharp) at every level
    sq_base = np.repeat(sq0[:, None], len(base), axis=1)
    if float((2 * mass * err0).sum()) > budget and len(base) > 1:
        # winners above budget / (2 W) each: the others together stay under budget / 2
        cand = np.flatnonzero(2 * mass * err0 > budget / (2 * n_win))
        for s in range(0, len(cand), chunk):
            idx = cand[s:s + chunk]
            cs, out_sq, _ = short_rates(idx)
            err_base[idx], sq_base[idx] = _errors(cs, c_tot[idx], out_sq, base)
    # full-vocabulary pass for the winners that the shortlist cannot bring under the budget
    levels, err, sq = base, err_base, sq_base
    full_rates = {}
    top_full = min(int(heavy_max), vocab - 1)
    w_top = 2 * mass * err_base[:, -1]
    if top_full > top_short and float(w_top.sum()) > budget:
        order = np.argsort(-w_top, kind="stable")
        rest = float(w_top.sum()) - np.cumsum(w_top[order])
        n_full = min(int(np.searchsorted(-rest, -budget / 2)) + 1, int(full_max), n_win)
        levels = _ladder(heavy, top_full)
        err = np.repeat(err_base[:, -1:], len(levels), axis=1)            # beyond the shortlist: no gain
        sq = np.repeat(sq_base[:, -1:], len(levels), axis=1)
        for j, h in enumerate(levels):                                     # base levels keep their own errors
            if h in base:
                err[:, j], sq[:, j] = err_base[:, base.index(h)], sq_base[:, base.index(h)]
        for y in order[:n_full]:
            c = np.maximum(q / rho_w[y] - p, 0.0)                         # [V]
            c[winners[y]] = 0.0
            cs = -np.sort(-c)[None, :top_full + 1]
            tail_sq = float((c * c).sum()) - float((cs * cs).sum())       # beyond the kept prefix
            e, e_sq = _errors(cs, np.array([c_tot[y]]), np.array([max(tail_sq, 0.0)]), levels)
            err[y], sq[y] = e[0], e_sq[0]                                  # <= the shortlist's bounds
            full_rates[int(y)] = cs[0]
    pick = _lagrange_pick(2 * err, mass, levels, budget, heavy_work)
    counts = np.array([levels[i] for i in pick], dtype=int)
    # groups of equal count; rows sorted decreasingly
    group = np.empty(n_win, dtype=int)
    local = np.empty(n_win, dtype=int)
    mats, light = [], np.zeros(n_win)
    for g, h in enumerate(np.unique(counts)):
        members = np.flatnonzero(counts == h)
        group[members], local[members] = g, np.arange(len(members))
        mat = np.zeros((len(members), int(h)))
        short_members = [i for i, y in enumerate(members) if int(y) not in full_rates]
        for s in range(0, len(short_members), chunk):
            rows = np.asarray(short_members[s:s + chunk], dtype=int)
            cs, _, _ = short_rates(members[rows], int(h))
            mat[rows, :min(int(h), s_n)] = cs[:, :min(int(h), s_n)]
        for i, y in enumerate(members):
            if int(y) in full_rates:
                fr = full_rates[int(y)][:int(h)]
                mat[i, :len(fr)] = fr
        live = np.flatnonzero(mat.max(0) > 0) if mat.size else np.zeros(0, dtype=int)
        mat = mat[:, :live[-1] + 1] if len(live) else mat[:, :0]         # trailing zero columns do nothing
        mats.append(np.ascontiguousarray(mat))
        light[members] = np.maximum(c_tot[members] - mat.sum(1), 0.0)
    light_err, light_sq = err[np.arange(n_win), pick], sq[np.arange(n_win), pick]
    return HeavySets(group, local, mats, light, light_err, light_sq, counts, len(full_rates))
