r"""``rsd`` — recursive rejection sampling with drafts without replacement (Jeon et al. 2024).

Children :math:`x_1..x_m` are drafted without replacement from q (the law of the m
earliest arrivals of the q-race, Gumbel-top-m; drawn here by rejection).  Round j proposes from
:math:`q_j = q` restricted to the untried tokens and renormalised; with :math:`r_1 = p`:

.. math::
    \text{accept } x_j \text{ w.p. } \min\!\Big(1, \frac{r_j(x_j)}{q_j(x_j)}\Big),
    \qquad \text{else } r_{j+1} = \mathrm{norm}\big((r_j - q_j)_+\big);

all rejected: :math:`y \sim r_{m+1}` (it puts no mass on tried tokens).  A node whose q
has fewer than m tokens of positive probability drafts fewer children.

With a :class:`~chansim.race_sampling.RaceTable` in the node noise (the synthetic Monte
Carlo engine) the rounds run on :math:`r_j \propto (p - \lambda_j q)_+` over the untried
tokens, O(m log V) per row with no V-row renormalised (docs/theory.md §2.4).
"""
from __future__ import annotations

import numpy as np

from .base import Method, NodeNoise, residual, sample_rows, take_rows

__all__ = ["RSD"]


class RSD(Method):
    """Recursive speculative decoding (see the module docstring)."""

    name = "rsd"
    #: rejection rounds before the exact fallback (sampling from the renormalised remainder)
    max_redraws = 16
    uses_table = True

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        """m tokens without replacement: x_j ~ q restricted to the untried tokens.

        Drawn by rejection (redraw x ~ q while it repeats an earlier draft), which is
        exact and O(log V) per draw for a shared row; rows still clashing after
        ``max_redraws`` rounds sample from the renormalised remainder directly.  A row
        whose q has no mass left gets -1 (fewer than m children).
        """
        batch, m = noise.batch, len(slots)
        if noise.table is not None:                                       # the q-race's first m arrivals
            pos, _ = noise.table.arrivals(noise.table_rows, m, noise.rng)
            return noise.table.tokens(noise.table_rows, pos)              # [B, m]
        drafts = np.full((batch, m), -1, dtype=np.int64)                  # [B, m]
        for j in range(m):
            pending = np.arange(batch)
            for _ in range(self.max_redraws):
                rows = q if q.shape[0] == 1 else q[pending]
                x = sample_rows(rows, noise.rng.random(pending.size))
                fresh = ~(drafts[pending, :j] == x[:, None]).any(axis=1)
                drafts[pending[fresh], j] = x[fresh]
                pending = pending[~fresh]
                if not pending.size:
                    break
            if pending.size:                                              # exact fallback
                rest = np.array(np.broadcast_to(q, (batch, q.shape[-1]))[pending])   # [P, V]
                tried = drafts[pending, :j]
                np.put_along_axis(rest, np.maximum(tried, 0), 0.0, axis=1)
                has_mass = rest.sum(axis=1) > 0
                if has_mass.any():
                    drafts[pending[has_mass], j] = sample_rows(rest[has_mass],
                                                               noise.rng.random(int(has_mass.sum())))
        return drafts

    def verify(self, p, q, drafts, noise: NodeNoise):
        batch, m = drafts.shape
        u = noise.rng.random((batch, m + 1))                              # [B, m + 1]
        if noise.table is not None:
            return noise.table.rsd_verify(noise.table_rows, drafts, u, noise.rng)
        accepted = np.full(batch, -1, dtype=np.int64)
        token = np.full(batch, -1, dtype=np.int64)
        # Only rows that rejected every draft so far are carried (act); r and q_j stay one
        # shared row until a tried token makes them row-specific (from round 2 on).
        act = np.arange(batch)                                            # [A]
        r, q_j = p, q                                                     # [1 or A, V]
        for j in range(m):
            x = drafts[act, j]                                            # [A], -1 = no more drafts
            done = x < 0                                                  # q exhausted: y ~ r_j now
            if done.any():
                token[act[done]] = sample_rows(_rows(r, done), u[act[done], m])
                act, x, r, q_j = act[~done], x[~done], _rows(r, ~done), _rows(q_j, ~done)
            ok = u[act, j] * take_rows(q_j, x) < take_rows(r, x)          # w.p. min(1, r_j / q_j)
            accepted[act[ok]] = j
            token[act[ok]] = x[ok]
            act, x, r, q_j = act[~ok], x[~ok], _rows(r, ~ok), _rows(q_j, ~ok)
            if not act.size:
                break
            r = residual(r, q_j)                                          # r_{j+1} = norm((r_j - q_j)+)
            q_j = np.array(np.broadcast_to(q_j, (act.size, q_j.shape[-1])))   # [A, V]
            q_j[np.arange(act.size), x] = 0.0                             # drop the tried token
            q_j /= q_j.sum(axis=1, keepdims=True).clip(min=np.finfo(float).tiny)
        if act.size:
            token[act] = sample_rows(r, u[act, m])                        # y ~ r_{m+1}
        return accepted, token


def _rows(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of ``arr`` selected by ``mask`` (a shared single row stays shared)."""
    return arr if arr.shape[0] == 1 else arr[mask]
