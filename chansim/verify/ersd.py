r"""``ersd`` — exponential-race speculative decoding (Kobus & Gündüz 2025, arXiv 2504.15475).

Shared noise :math:`E_x = E(\text{seed}, \text{position}, x) \sim \mathrm{Exp}(1)`, keyed by
the absolute position, so draft and target see the same race.  Draft: the children of
a node are the tokens at the tree's slots (= ranks, 1-based) of the q-race
:math:`E_x / q(x)` — plain ERSD takes ranks 1..m, the generalisation any rank set.
Target: :math:`y = \arg\min_x E_x / p(x)`; move to the child holding y if there is one,
else output y and stop.  y is always the target's own race winner, so the text equals
plain race sampling of the target with the same noise, token for token.

Rank law :math:`a_r = P(\text{rank of } y \text{ in the q-race} = r)`,
:math:`\alpha_{ER} = a_1 = \sum_x 1/\sum_y \max(p_y/p_x, q_y/q_x)`
(:func:`chansim.races.er_acceptance`).

With a :class:`~chansim.race_sampling.RaceTable` in the node noise (the synthetic Monte
Carlo engine) the same race is sampled exactly without V draws: the draft race's first
max(slots) arrivals, then the target race's winner given them (docs/theory.md §2.4).
"""
from __future__ import annotations

import numpy as np

from ..races import race_times
from .base import Method, NodeNoise, race_ranked_tokens

__all__ = ["ERSD"]


class ERSD(Method):
    """Exponential-race speculative decoding on any tree (slots = race ranks)."""

    name = "ersd"
    uses_race = True
    any_ranks = True
    uses_table = True

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        if not len(slots):
            return np.empty((noise.batch, 0), dtype=np.int64)
        if noise.race is None and noise.table is not None:                # exact O(m log V) race
            slots = np.asarray(slots, dtype=np.int64)
            pos, times = noise.table.arrivals(noise.table_rows, int(slots.max()), noise.rng)   # [B, M]
            noise.state["arrivals"] = (pos, times)
            return noise.table.tokens(noise.table_rows, pos[:, slots - 1])   # [B, m]
        return race_ranked_tokens(noise.race, q, slots)                   # [B, m]

    def verify(self, p, q, drafts, noise: NodeNoise):
        if noise.race is None and noise.table is not None:
            empty = (np.empty((noise.batch, 0), dtype=np.int64), np.empty((noise.batch, 0)))
            pos, times = noise.state.get("arrivals", empty)
            token, _ = noise.table.race_winner(noise.table_rows, pos, times, noise.rng)   # [B]
        else:
            token = np.argmin(race_times(noise.race, p), axis=-1)         # [B] target's race winner
        match = drafts == token[:, None]                                  # [B, m]
        if drafts.shape[1] == 0:
            return np.full(len(token), -1, dtype=np.int64), token
        accepted = np.where(match.any(axis=1), match.argmax(axis=1), -1).astype(np.int64)
        return accepted, token
