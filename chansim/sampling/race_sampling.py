r"""Exact race sampling in O(m log V) per node, for the synthetic Monte Carlo engine.

For a fixed pair of rows (p, q) a :class:`RaceTable` sorts the tokens once by
:math:`\rho_x = q_x / p_x` (p = 0 last) and keeps prefix sums of p and q.  Per node:

* :meth:`RaceTable.arrivals` — the first M arrivals of the draft race
  :math:`E_x / q_x` (tokens and times): sequential sampling without replacement
  :math:`\propto q`, the gap before arrival j being :math:`\mathrm{Exp}(1)/Q_{\text{rem}}`;
* :meth:`RaceTable.race_winner` — the target race winner :math:`\arg\min_x E_x / p_x`
  given those arrivals, exactly: the undrafted tokens' target times are offset
  exponentials :math:`t_M \rho_x + F_x / p_x`, whose minimum has the piecewise-linear
  cumulative hazard :math:`\Lambda(t) = t\,P_{\le i} - t_M Q_{\le i}` over the
  :math:`\rho` order, and whose identity is :math:`\propto p` over that prefix;
* :meth:`RaceTable.scaled_residual_mass` / :meth:`RaceTable.scaled_residual_sample` — block
  verification's :math:`\sum_x (w p_x - q_x)_+` and its residual law, a prefix of the
  :math:`\rho` order for every weight w;
* :meth:`RaceTable.rsd_verify` — RSD's rounds with the residuals
  :math:`r_j \propto (p - \lambda_j q)_+` on the untried tokens, a prefix of the
  :math:`\rho` order, so no V-row is renormalised per rejected draft.

Derivations: docs/theory.md §2.4.  Every search is a binary search over the sorted
prefix sums with an O(m) correction for the drafted (tried) tokens, vectorised over
the batch.  The keyed, device-independent race noise of real-model generation
(:class:`chansim.verify.KeyedNoise`) does not use this module.
"""
from __future__ import annotations

import numpy as np

__all__ = ["RaceTable"]


def _search(value, target: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Smallest s in [lo, hi) with ``value(s) > target`` (value non-decreasing), else ``hi``; per row."""
    lo, hi = lo.astype(np.int64).copy(), hi.astype(np.int64).copy()
    while True:
        act = lo < hi
        if not act.any():
            return lo
        mid = (lo + hi) // 2
        go = value(mid) > target
        hi = np.where(act & go, mid, hi)
        lo = np.where(act & ~go, mid + 1, lo)


def _segment_search(cum: np.ndarray, target: np.ndarray, top: np.ndarray, done_pos: np.ndarray,
                    done_w: np.ndarray) -> np.ndarray:
    """:func:`_search` for one shared row: smallest s <= top with cum[s+1] - W(s) > target, W(s) the
    weights of the done positions <= s; one ``searchsorted`` per stretch between done positions.

    ``cum`` ``[V+1]`` exclusive prefix sums, ``done_pos`` / ``done_w`` ``[B, j]`` (position V = none).
    Returns ``top`` where no stretch qualifies (rounding; the caller redraws).
    """
    batch, j = done_pos.shape
    order = np.argsort(done_pos, axis=1)
    d_pos = np.take_along_axis(done_pos, order, 1)                             # [B, j] ascending
    shift = np.concatenate([np.zeros((batch, 1)), np.cumsum(np.take_along_axis(done_w, order, 1), 1)], 1)
    start = np.concatenate([np.zeros((batch, 1), dtype=np.int64), d_pos + 1], 1)   # [B, j+1] stretch l
    end = np.minimum(np.concatenate([d_pos, np.full((batch, 1), cum.shape[0])], 1), top[:, None] + 1)
    first = np.searchsorted(cum[1:], target[:, None] + shift, side="right")     # [B, j+1] ignoring done tokens
    cand = np.maximum(first, start)
    ok = cand < end
    pick = np.argmax(ok, axis=1)
    return np.where(ok.any(axis=1), cand[np.arange(batch), pick], top).astype(np.int64)


class RaceTable:
    r"""Tokens sorted by :math:`\rho = q/p` with prefix sums of p and q, for rows of a pair.

    Parameters
    ----------
    target_rows, draft_rows : array, shape (R, V)
        Row r of each is one context's next-token law (R = 1 in the i.i.d. model).

    Examples
    --------
    >>> t = RaceTable([[0.5, 0.3, 0.2]], [[0.2, 0.3, 0.5]])
    >>> t.order.tolist(), t.rho.round(3).tolist()
    ([[0, 1, 2]], [[0.4, 1.0, 2.5]])
    """

    def __init__(self, target_rows, draft_rows):
        p = np.atleast_2d(np.asarray(target_rows, dtype=np.float64))           # [R, V]
        q = np.atleast_2d(np.asarray(draft_rows, dtype=np.float64))            # [R, V]
        if p.shape != q.shape:
            raise ValueError(f"target and draft rows differ in shape: {p.shape} vs {q.shape}")
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(p > 0, q / np.where(p > 0, p, 1.0), np.inf)         # [R, V]
        self.rows, self.vocab = p.shape
        self.order = np.argsort(rho, axis=1, kind="stable")                    # [R, V] token at sorted position
        self.inverse = np.empty_like(self.order)                               # [R, V] sorted position of token
        np.put_along_axis(self.inverse, self.order, np.broadcast_to(np.arange(self.vocab), p.shape), axis=1)
        self.rho = np.take_along_axis(rho, self.order, 1)                      # [R, V] ascending
        self.p = np.take_along_axis(p, self.order, 1)                          # [R, V]
        self.q = np.take_along_axis(q, self.order, 1)                          # [R, V]
        zeros = np.zeros((self.rows, 1))
        self.p_cum = np.concatenate([zeros, np.cumsum(self.p, axis=1)], axis=1)   # [R, V+1] exclusive prefix
        self.q_cum = np.concatenate([zeros, np.cumsum(self.q, axis=1)], axis=1)   # [R, V+1]
        with np.errstate(invalid="ignore"):
            # Λ(b_i) / t_M at the breakpoint b_i = t_M ρ_i, all tokens counted: ρ_i P_<i - Q_<i
            level = self.rho * self.p_cum[:, :-1] - self.q_cum[:, :-1]
        self.level = np.where(np.isfinite(self.rho), level, np.inf)            # [R, V]
        self.n_target = np.count_nonzero(p > 0, axis=1)                         # [R] tokens with p > 0 (prefix)
        self.n_draft = np.count_nonzero(q > 0, axis=1)                          # [R] tokens with q > 0

    # ------------------------------------------------------------------ helpers
    def _at(self, arr: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``arr[rows[b], idx[b, ...]]``, idx capped at the row's end (-1, a masked "none", reads the last entry)."""
        idx = np.minimum(idx, arr.shape[1] - 1)
        if self.rows == 1:
            return arr[0][idx]
        return arr[rows.reshape(rows.shape + (1,) * (idx.ndim - 1)), idx]

    def _cum_left(self, cum, rows, s, done_pos, done_w):
        """``cum[row, s + 1]`` minus the weights of the done tokens at sorted positions <= s; ``[B]``."""
        return self._at(cum, rows, s + 1) - (done_w * (done_pos <= s[:, None])).sum(axis=1)

    def _pick(self, cum, weight, rows, target, top, done_pos, done_w, rng, hit=None):
        """Smallest s in [0, top] whose corrected prefix sum exceeds ``target`` (inverse CDF).

        A result that lands, by rounding, on a done token or one of zero weight is redrawn
        with a fresh uniform (rows in ``hit`` only; ``weight(rows, s)`` gives the weight).
        """
        batch = len(rows)
        if self.rows == 1:
            s = _segment_search(cum[0], target, top, done_pos, done_w)
        else:
            s = _search(lambda x: self._cum_left(cum, rows, x, done_pos, done_w), target, np.zeros(batch), top)
        hit = np.ones(batch, dtype=bool) if hit is None else hit
        bad = hit & ((weight(rows, s) <= 0) | (done_pos == s[:, None]).any(axis=1))
        while bad.any():
            idx = np.flatnonzero(bad)
            r, dp, dw = rows[idx], done_pos[idx], done_w[idx]
            total = self._cum_left(cum, r, top[idx], dp, dw)
            s_new = _search(lambda x: self._cum_left(cum, r, x, dp, dw), rng.random(idx.size) * total,
                            np.zeros(idx.size), top[idx])
            s[idx] = s_new
            bad[idx] = (weight(r, s_new) <= 0) | (dp == s_new[:, None]).any(axis=1)
        return s

    def tokens(self, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Token ids of sorted positions ``pos`` ``[B, ...]`` (-1 stays -1)."""
        tok = self._at(self.order, np.asarray(rows, dtype=np.int64), pos)
        return np.where(pos >= 0, tok, -1)

    # ------------------------------------------------------------------ draft race
    def arrivals(self, rows: np.ndarray, count: int, rng: np.random.Generator):
        r"""The first ``count`` arrivals of the draft race :math:`E_x / q_x`, per batch row.

        Returns ``(pos, times)``, both ``[B, count]``: sorted positions (map to tokens
        with :meth:`tokens`) and arrival times, earliest first; ``-1`` / ``inf`` once q's
        support is used up.  Arrival j is drawn :math:`\propto q` over the tokens not yet
        arrived, after a gap :math:`\mathrm{Exp}(1) / Q_{\text{rem}}` (docs/theory.md §2.4).
        With one table row and ``count > 1`` the first arrivals come from
        :meth:`_distinct_prefix` (vectorised); the sequential draws continue from there.
        """
        rows = np.asarray(rows, dtype=np.int64)
        batch = len(rows)
        pos = np.full((batch, count), self.vocab, dtype=np.int64)              # [B, M] (V = none yet)
        times = np.full((batch, count), np.inf)                                # [B, M]
        q_arr = np.zeros((batch, count))                                       # [B, M] q of the arrived
        clock = np.zeros(batch)
        last = np.full(batch, self.vocab - 1, dtype=np.int64)
        start = np.zeros(batch, dtype=np.int64)                                # [B] slots filled by the prefix
        if self.rows == 1 and count > 1:
            start = self._distinct_prefix(count, rng, pos, times, q_arr)
            filled = start > 0
            clock[filled] = times[np.flatnonzero(filled), start[filled] - 1]
        for j in range(count):
            idx = np.flatnonzero(start <= j)                                   # rows drawing slot j here
            if not len(idx):
                continue
            r = rows[idx]
            gaps = rng.standard_exponential(len(idx))
            u = rng.random(len(idx))
            live = self.n_draft[r] > j                                         # q still has unarrived tokens
            rem = self._cum_left(self.q_cum, r, last[idx], pos[idx, :j], q_arr[idx, :j])
            clock[idx] = np.where(live, clock[idx] + gaps / np.where(live, rem, 1.0), np.inf)
            s_ = self._pick(self.q_cum, lambda rr, x: self._at(self.q, rr, x), r, u * rem, last[idx],
                            pos[idx, :j], q_arr[idx, :j], rng, hit=live)
            li = idx[live]
            pos[li, j] = s_[live]
            times[li, j] = clock[li]
            q_arr[li, j] = self._at(self.q, r, s_)[live]
        return np.where(pos < self.vocab, pos, -1), times

    def _distinct_prefix(self, count: int, rng: np.random.Generator, pos, times, q_arr, block: int = 1 << 20,
                         tries: int = 8):
        r"""Fill the first arrivals of every row by rejection from i.i.d. draws :math:`\propto q` (one table row).

        The distinct values of an i.i.d. :math:`\propto q` stream, in order of first
        appearance, are successive sampling without replacement :math:`\propto q` — the
        arrival order of the race (docs/theory.md §2.4): slot j takes the first draw not
        among slots 0..j-1, i.e. a draw :math:`\propto q` over the unseen tokens whatever
        the rejected draws were.  A row still without a new token after ``tries`` draws stops
        there; the rejected draws carry no information about the next new token, so the
        caller's sequential draws continue exactly from that slot.  Given the order, the gaps
        are independent :math:`\mathrm{Exp}(1)/Q_{\text{rem}}` (memorylessness).  Writes
        ``pos``, ``times``, ``q_arr`` in place; returns the prefix length per row, ``[B]``.
        ``block`` bounds the rows handled at once.
        """
        batch = pos.shape[0]
        cum, total, q_row = self.q_cum[0], self.q_cum[0, -1], self.q[0]
        found = np.zeros(batch, dtype=np.int64)
        for b0 in range(0, batch, max(1, block // max(1, count))):
            sl = np.arange(b0, min(batch, b0 + max(1, block // max(1, count))))
            live = sl
            clock = np.zeros(len(sl))
            for j in range(min(count, int(self.n_draft[0]))):
                new = np.full(len(live), -1, dtype=np.int64)
                pending = np.arange(len(live))
                for _ in range(tries):
                    draw = np.minimum(np.searchsorted(cum[1:], rng.random(len(pending)) * total, side="right"),
                                      self.vocab - 1)
                    fresh = (q_row[draw] > 0) & ~(pos[live[pending], :j] == draw[:, None]).any(axis=1)
                    new[pending[fresh]] = draw[fresh]
                    pending = pending[~fresh]
                    if not len(pending):
                        break
                ok = new >= 0
                rows_ok = live[ok]
                rem = total - q_arr[rows_ok, :j].sum(axis=1)
                clock_ok = clock[ok] + rng.standard_exponential(len(rows_ok)) / rem
                pos[rows_ok, j] = new[ok]
                q_arr[rows_ok, j] = q_row[new[ok]]
                times[rows_ok, j] = clock_ok
                found[rows_ok] = j + 1
                live, clock = rows_ok, clock_ok
                if not len(live):
                    break
        return found

    # ------------------------------------------------------------------ target race
    def race_winner(self, rows: np.ndarray, pos: np.ndarray, times: np.ndarray, rng: np.random.Generator,
                    offsets: bool = True):
        r"""Winner of the target race :math:`\arg\min_x E_x / p_x` given the draft race's first M arrivals.

        ``pos``, ``times`` ``[B, M]`` from :meth:`arrivals` (M may be 0).  Returns
        ``(token [B], arrival [B])``: the winner's token id and its index among the
        arrivals (``-1``: a token that had not arrived).  ``offsets=False`` is a
        deliberately wrong variant for tests (it drops the offsets :math:`t_M \rho_x`,
        i.e. forgets that the tokens that have not arrived lost the draft race so far).

        Arrived token j has target time :math:`t_j \rho_{x_j}`; every other token
        :math:`t_M \rho_x + F_x / p_x` with :math:`F_x \sim \mathrm{Exp}(1)`
        (memorylessness), :math:`t_M` the last arrival time.  With the tokens in
        :math:`\rho` order, the minimum of the latter solves
        :math:`\Lambda(t) = U \sim \mathrm{Exp}(1)` with
        :math:`\Lambda(t) = \sum_x p_x (t - t_M \rho_x)_+`, and its identity is
        :math:`\propto p` over the tokens with :math:`t_M \rho_x < t` (docs/theory.md §2.4).
        """
        rows = np.asarray(rows, dtype=np.int64)
        batch, count = pos.shape
        u_time, u_pick = rng.standard_exponential(batch), rng.random(batch)
        valid = pos >= 0                                                       # [B, M]
        t_last = np.where(valid, times, 0.0).max(axis=1, initial=0.0)          # [B] t_M (0 with no arrival)
        p_d = np.where(valid, self._at(self.p, rows, pos), 0.0)                # [B, M]
        q_d = np.where(valid, self._at(self.q, rows, pos), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t_drafted = np.where(valid & (p_d > 0), times * q_d / np.where(p_d > 0, p_d, 1.0), np.inf)
        pos_m = np.where(valid, pos, self.vocab)                               # [B, M] never counted when -1
        t_hazard = t_last if offsets else np.zeros(batch)
        n_target = self.n_target[rows]

        def level_at(i, sel):                                                  # Λ(b_i) / t_M, undrafted only
            rho_i = self._at(self.rho, rows[sel], i)
            with np.errstate(invalid="ignore"):                                # inf - inf on finished rows only
                corr = ((pos_m[sel] < i[:, None]) * (rho_i[:, None] * p_d[sel] - q_d[sel])).sum(axis=1)
                return self._at(self.level, rows[sel], i) - corr

        def level(i):
            return level_at(i, slice(None))

        with np.errstate(divide="ignore"):
            thr = np.where(t_hazard > 0, u_time / np.where(t_hazard > 0, t_hazard, 1.0), np.inf)
        if count:
            first_drafted = np.argmin(t_drafted, axis=1)
            t_first = t_drafted[np.arange(batch), first_drafted]
        else:
            first_drafted, t_first = np.zeros(batch, dtype=np.int64), np.full(batch, np.inf)
        decided = np.zeros(batch, dtype=bool)                                  # a drafted token surely wins
        if self.rows == 1:
            if count:
                # the undrafted minimum T solves Λ(T) = U, so a drafted token wins iff Λ(t_first) < U:
                # Λ(t) = t P_{<s} - t_M Q_{<s} over the tokens with ρ < t / t_M, less the drafted ones
                lam = self._undrafted_hazard(t_first, t_hazard, n_target)
                decided = np.isfinite(t_first) & (lam < u_time)
            # level <= the uncorrected level (the drafted tokens only lower it) and both are
            # non-decreasing, so the answer is at or after the uncorrected one: usually equal
            first = np.clip(np.searchsorted(self.level[0], thr, side="right"), 1, n_target)   # [B]
            settled = decided | (first >= n_target) | (level(np.minimum(first, n_target - 1)) > thr)
            first[~settled] = _search(lambda i: level_at(i, ~settled), thr[~settled], first[~settled] + 1,
                                      n_target[~settled])
            top = first - 1                                                    # [B] last active position
        else:
            top = _search(level, thr, np.ones(batch), n_target) - 1            # [B] last active position
        inside = pos_m <= top[:, None]                                         # [B, M]
        p_act = self._at(self.p_cum, rows, top + 1) - (p_d * inside).sum(axis=1)
        q_act = self._at(self.q_cum, rows, top + 1) - (q_d * inside).sum(axis=1)
        n_act = top + 1 - inside.sum(axis=1)                                   # undrafted tokens with p > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_rest = np.where((n_act > 0) & (p_act > 0), (u_time + t_hazard * q_act) / p_act, np.inf)
        first = first_drafted
        drafted_wins = decided | (t_first < t_rest)
        s = pos[np.arange(batch), first] if count else np.zeros(batch, dtype=np.int64)
        lost = np.flatnonzero(~drafted_wins)                                   # an undrafted token wins: ~ p there
        s[lost] = self._pick(self.p_cum, lambda r, x: self._at(self.p, r, x), rows[lost], (u_pick * p_act)[lost],
                             top[lost], pos_m[lost], p_d[lost], rng)
        return self.tokens(rows, s), np.where(drafted_wins, first, -1)

    def _undrafted_hazard(self, t, t_m, n_target):
        r""":math:`\Lambda(t) = \sum_{x \text{ undrafted}} p_x (t - t_M \rho_x)_+` per row (one table row), ``[B]``.

        The positive terms are the sorted prefix :math:`\rho < t / t_M`, one ``searchsorted``:
        :math:`\Lambda(t) = t P_{<s} - t_M Q_{<s}`.  At :math:`t = t_{\text{first}} = \min_j t_j \rho_j`
        no drafted token is in that prefix (:math:`t_j \le t_M` gives
        :math:`t_{\text{first}} / t_M \le \rho_j`), so nothing is taken out.  Rows with t = inf give 0.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            cut = np.where(t_m > 0, t / np.where(t_m > 0, t_m, 1.0), np.inf)
            finite = np.isfinite(t)
            s_cut = np.minimum(np.searchsorted(self.rho[0], np.where(finite, cut, 0.0), side="left"), n_target)
            return np.where(finite, t, 0.0) * self.p_cum[0][s_cut] - t_m * self.q_cum[0][s_cut]

    def sample_target(self, rows: np.ndarray, u: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        r"""Tokens :math:`\propto p` per batch row from uniforms ``u`` ``[B]`` (inverse CDF in the sorted order).

        The target race's winner when nothing has arrived in the draft race
        (:math:`\arg\min_x E_x/p_x \sim p`).  One table row: one ``searchsorted``; several rows:
        :meth:`scaled_residual_sample` at w = inf (``rng`` redraws rounding-level boundary cases).

        >>> RaceTable([[0.5, 0.5, 0.0]], [[0.2, 0.3, 0.5]]).sample_target(np.zeros(2, dtype=int), np.array([0.1, 0.9])).tolist()
        [0, 1]
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.rows > 1:
            return self.scaled_residual_sample(rows, np.full(len(rows), np.inf), u,
                                               rng if rng is not None else np.random.default_rng())
        cum = self.p_cum[0]
        s = np.searchsorted(cum[1:], np.asarray(u) * cum[-1], side="right")
        return self.tokens(rows, np.minimum(s, self.n_target[0] - 1))

    # ------------------------------------------------------------------ scaled residuals (block verification)
    def scaled_residual_mass(self, rows: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`R(w) = \sum_x (w\,p_x - q_x)_+` per batch row, in O(log V): ``(mass [B], prefix [B])``.

        The positive part is the sorted prefix :math:`\rho_x = q_x/p_x < w` (``prefix`` tokens),
        so :math:`R(w) = w\,P_{<s} - Q_{<s}` with the prefix sums of the table (clipped at 0).

        >>> t = RaceTable([[0.5, 0.3, 0.2]], [[0.2, 0.3, 0.5]])
        >>> [round(float(v), 12) for v in t.scaled_residual_mass(np.zeros(2, dtype=int), np.array([1.0, 0.5]))[0]]
        [0.3, 0.05]
        """
        rows = np.asarray(rows, dtype=np.int64)
        w = np.asarray(w, dtype=np.float64)
        prefix = self._count_below(rows, w)                                    # [B] tokens with rho < w
        mass = w * self._at(self.p_cum, rows, prefix) - self._at(self.q_cum, rows, prefix)
        return np.maximum(mass, 0.0), prefix

    def scaled_residual_sample(self, rows: np.ndarray, w: np.ndarray, u: np.ndarray,
                               rng: np.random.Generator) -> np.ndarray:
        r"""Tokens :math:`y \propto (w\,p - q)_+` per batch row (one uniform each), in O(log V); token ids ``[B]``.

        Inverse CDF over the sorted prefix :math:`\rho < w`, whose cumulative weights are
        :math:`w P_{\le j} - Q_{\le j}` (increasing there).  A row without mass (w p <= q
        everywhere, only reached by rounding) samples from p instead, like
        :func:`chansim.sampling.kernels.residual`, and so does ``w = inf`` (block's bonus token);
        a rounding-level landing on a zero weight is redrawn.  ``w = 1`` is sd's residual
        :math:`\mathrm{norm}((p - q)_+)`.
        """
        rows = np.asarray(rows, dtype=np.int64)
        w = np.asarray(w, dtype=np.float64)
        finite = np.isfinite(w)
        mass, prefix = self.scaled_residual_mass(rows, np.where(finite, w, 1.0))
        plain = ~finite | (mass <= 0) | (prefix == 0)                           # y ~ p
        scale = np.where(plain, 1.0, w)                                        # weights scale p - coef q
        coef = np.where(plain, 0.0, 1.0)
        top = np.where(plain, self.n_target[rows], prefix) - 1                 # [B] last token of the support
        total = np.where(plain, self._at(self.p_cum, rows, top + 1), mass)

        def value(x, r=rows, a=scale, b=coef):
            return a * self._at(self.p_cum, r, x + 1) - b * self._at(self.q_cum, r, x + 1)

        def weight(x, r=rows, a=scale, b=coef):
            return a * self._at(self.p, r, x) - b * self._at(self.q, r, x)

        s = _search(value, np.asarray(u) * total, np.zeros(len(rows)), top)
        bad = weight(s) <= 0
        while bad.any():                                                       # rounding-level boundary: redraw
            idx = np.flatnonzero(bad)
            sub = (rows[idx], scale[idx], coef[idx])
            s_new = _search(lambda x: value(x, *sub), rng.random(idx.size) * total[idx], np.zeros(idx.size),
                            top[idx])
            s[idx] = s_new
            bad[idx] = weight(s_new, *sub) <= 0
        return self.tokens(rows, s)

    # ------------------------------------------------------------------ rsd rounds
    def rsd_verify(self, rows: np.ndarray, drafts: np.ndarray, u: np.ndarray, rng: np.random.Generator):
        r"""RSD's node rule for drafts without replacement, in O(m (m + log V)) per row.

        ``drafts`` ``[B, m]`` token ids (``-1``: q exhausted), ``u`` ``[B, m + 1]`` uniforms
        (``rng`` only redraws a rounding-level boundary case).  With :math:`\lambda_1 = 0`,
        :math:`Z_1 = 1` and :math:`S_j` the q mass of the untried tokens, the residual of
        round j is :math:`r_j = (p - \lambda_j q)_+ / Z_j` on the untried tokens and
        :math:`\lambda_{j+1} = \lambda_j + Z_j / S_j` (docs/theory.md §2.4); :math:`Z_j` is a
        prefix sum in the :math:`\rho` order minus the tried tokens.  Returns
        ``(accepted [B], token [B])`` as :meth:`chansim.verify.base.Method.verify`.
        """
        rows = np.asarray(rows, dtype=np.int64)
        batch, m = drafts.shape
        has = drafts >= 0
        pos = np.where(has, self._at(self.inverse, rows, np.maximum(drafts, 0)), self.vocab)   # [B, m]
        p_x = np.where(has, self._at(self.p, rows, pos), 0.0)                  # [B, m]
        q_x = np.where(has, self._at(self.q, rows, pos), 0.0)
        accepted = np.full(batch, -1, dtype=np.int64)
        token = np.full(batch, -1, dtype=np.int64)
        lam = np.zeros(batch)                                                  # [B] λ_j
        mass = np.ones(batch)                                                  # [B] Z_j
        end = self.n_target[rows].astype(np.int64)                             # [B] prefix with p > λ q
        tried_pos = np.full((batch, m), self.vocab, dtype=np.int64)            # [B, m] V = not tried
        q_total = self.q_cum[rows, -1]
        running = np.ones(batch, dtype=bool)
        for j in range(m):
            now = running & ~has[:, j]
            if now.any():                                                      # q exhausted: y ~ r_j
                idx = np.flatnonzero(now)
                token[idx] = self._residual_sample(rows[idx], lam[idx], end[idx], tried_pos[idx], p_x[idx],
                                                   q_x[idx], u[idx, m], rng)
                running &= ~now
            s_left = q_total - (q_x * (tried_pos < self.vocab)).sum(axis=1)   # [B] S_j
            r_x = np.maximum(p_x[:, j] - lam * q_x[:, j], 0.0) / mass
            ok = running & (u[:, j] * q_x[:, j] < r_x * s_left)                # w.p. min(1, r_j(x) / q_j(x))
            accepted[ok] = j
            token[ok] = drafts[ok, j]
            running &= ~ok
            if not running.any():
                break
            tried_pos[:, j] = np.where(running, pos[:, j], self.vocab)
            with np.errstate(divide="ignore", invalid="ignore"):
                lam_new = lam + mass / s_left
                cut = 1.0 / lam_new
            end_new = self._count_below(rows, cut)                             # tokens with ρ < 1/λ
            inside = tried_pos < end_new[:, None]
            z_new = (self._at(self.p_cum, rows, end_new) - lam_new * self._at(self.q_cum, rows, end_new)
                     - ((p_x - lam_new[:, None] * q_x) * inside).sum(axis=1))
            move = running & (z_new > 0) & (end_new - inside.sum(axis=1) > 0)  # no mass left: r stays (residual())
            lam, mass, end = np.where(move, lam_new, lam), np.where(move, z_new, mass), np.where(move, end_new, end)
        if running.any():
            idx = np.flatnonzero(running)
            token[idx] = self._residual_sample(rows[idx], lam[idx], end[idx], tried_pos[idx], p_x[idx], q_x[idx],
                                               u[idx, m], rng)
        return accepted, token

    def _count_below(self, rows: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """Per row, the number of sorted tokens with ρ < cut."""
        if self.rows == 1:
            return np.searchsorted(self.rho[0], cut, side="left").astype(np.int64)
        batch = len(rows)
        return _search(lambda s: (self._at(self.rho, rows, s) >= cut).astype(float), np.zeros(batch),
                       np.zeros(batch), np.full(batch, self.vocab))

    def _residual_sample(self, rows, lam, end, tried_pos, p_x, q_x, u, rng):
        r"""y ∝ (p - λ q)_+ over the untried tokens of the sorted prefix ``[0, end)``; token ids ``[B]``."""
        top = np.maximum(end - 1, 0)
        w_done = p_x - lam[:, None] * q_x                                      # [B, m]
        total = (self._at(self.p_cum, rows, top + 1) - lam * self._at(self.q_cum, rows, top + 1)
                 - (w_done * (tried_pos <= top[:, None])).sum(axis=1))
        target = u * total

        def value(x, r=rows, lm=lam, dp=tried_pos, dw=w_done):
            return (self._at(self.p_cum, r, x + 1) - lm * self._at(self.q_cum, r, x + 1)
                    - (dw * (dp <= x[:, None])).sum(axis=1))

        s = _search(value, target, np.zeros(len(rows)), top)
        bad = (self._at(self.p, rows, s) - lam * self._at(self.q, rows, s) <= 0) | (tried_pos == s[:, None]).any(axis=1)
        while bad.any():                                                       # rounding-level boundary: redraw
            idx = np.flatnonzero(bad)
            r, lm, dp, dw = rows[idx], lam[idx], tried_pos[idx], w_done[idx]
            s_new = _search(lambda x: value(x, r, lm, dp, dw), rng.random(idx.size) * total[idx],
                            np.zeros(idx.size), top[idx])
            s[idx] = s_new
            bad[idx] = ((self._at(self.p, r, s_new) - lm * self._at(self.q, r, s_new) <= 0)
                        | (dp == s_new[:, None]).any(axis=1))
        return self.tokens(rows, s)
