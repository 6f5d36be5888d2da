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
(:func:`chansim.sampling.races.er_acceptance`; docs/algorithms.md, docs/theory.md §0).

``ersd-topm`` (:class:`ERSDTopM`) is the same rule restricted to sibling-closed trees
(plain top-m drafting); the bound report compares the two.

With a :class:`~chansim.sampling.race_sampling.RaceTable` in the node noise (the synthetic Monte
Carlo engine) the same race is sampled exactly without V draws: the draft race's first
max(slots) arrivals, then the target race's winner given them (docs/theory.md §2.4).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from ..sampling.kernels import poisson_binomial_add
from ..sampling.races import race_times
from ..common.stats import wilson_interval
from .base import Method, NodeNoise, SlotWeights, race_ranked_tokens

__all__ = ["ERSD", "ERSDTopM", "ersd_path_weights"]


class ERSD(Method):
    """Exponential-race speculative decoding on any tree (slots = race ranks)."""

    name = "ersd"
    label = "ersd (race)"
    colour = "#d62728"
    marker = "v"
    uses_race = True
    any_ranks = True
    uses_table = True
    #: below this V the full-V race sampler is cheaper than the table's per-visit overhead (race_tables="auto")
    table_min_vocab = 32
    tree_family = "rank-set"
    has_path_prediction = True
    default_in = frozenset({"bound", "temperature", "settings-check"})
    roles = frozenset({"rank-law"})

    def chain_tokens_batch(self, p: np.ndarray, q: np.ndarray, k: int):
        r"""On a chain of ``k`` drafts under i.i.d. positions, each draft is accepted with
        α_ER = P(the draft's first race token is the target's), so
        E[tokens] = (1 − α^{k+1}) / (1 − α) (:func:`~chansim.verify.sd.sd_chain_tokens`);
        positions with a zero in ``p`` or ``q`` go to the general theory (None).

        >>> p = np.array([[0.5, 0.3, 0.2]])
        >>> float(ERSD().chain_tokens_batch(p, p, 2)[0])     # q = p: everything accepted
        3.0
        """
        from ..sampling.races import er_acceptance
        from .sd import sd_chain_tokens

        if k < 1 or not (np.all(p > 0) and np.all(q > 0)):
            return None
        alpha = er_acceptance(p, q, validate=False)                    # [N]
        return np.asarray(sd_chain_tokens(alpha, int(k)), dtype=float)

    def slot_weights(self, p, q, m: int, *, law=None, confidence: float = 0.999, **_) -> SlotWeights:
        r""":math:`w_r = a_r`, the rank law ``law`` of (p, q) (a checked pair ``[V]``); w ``[m]``.

        The theory computes ``law`` with :func:`chansim.theory.rank_law` (the rank law's one
        entry point) and passes it for every method with ``uses_race``.  Monte Carlo laws
        get simultaneous Wilson intervals (Bonferroni over the m slots), widened by the
        law's head-truncation bound.
        """
        if law is None:
            raise ValueError("ersd's node weights are its rank law: pass law=chansim.theory.rank_law(p, q)")
        w = law.weights(m)
        if law.exact:
            return SlotWeights.exact_weights(w)
        if law.trials == 0:                 # a bounded law: each a_r within its guaranteed error (§5)
            return SlotWeights(w, np.clip(w - law.error, 0, 1), np.clip(w + law.error, 0, 1), False, 0)
        lo, hi = wilson_interval(w * law.trials, law.trials, 1 - (1 - confidence) / m)
        return SlotWeights(w, np.clip(lo - law.truncation, 0, 1), np.clip(hi + law.truncation, 0, 1), False,
                           law.trials)

    def node_acceptance(self, p, q, m: int, *, law=None, **_) -> float:
        """:math:`\\sum_{r\\le m} a_r` of the rank law ``law``."""
        return float(self.slot_weights(p, q, m, law=law).w.sum())

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        """:func:`ersd_path_weights`: ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T]``."""
        return ersd_path_weights(p, q, y, py, m)

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        """The tokens at ranks ``slots`` ``[m]`` of the q-race → ``[B, m]``.

        ``q`` ``[R, V]``; race noise ``[B, V]`` or the sorted table in ``noise``.
        """
        if not len(slots):
            return np.empty((noise.batch, 0), dtype=np.int64)
        if noise.race is None and noise.table is not None:                # exact O(m log V) race
            slots = np.asarray(slots, dtype=np.int64)
            pos, times = noise.table.arrivals(noise.table_rows, int(slots.max()), noise.rng)   # [B, M]
            noise.state["arrivals"] = (pos, times)
            return noise.table.tokens(noise.table_rows, pos[:, slots - 1])   # [B, m]
        return race_ranked_tokens(noise.race, q, slots)                   # [B, m]

    def verify(self, p, q, drafts, noise: NodeNoise):
        """The target's race winner; move to the child holding it.  ``p`` ``[R, V]``, ``drafts`` ``[B, m]``
        → ``(accepted [B], token [B])``."""
        if noise.race is None and noise.table is not None:
            if drafts.shape[1] == 0:                                      # a leaf: nothing arrived, winner ~ p
                token = noise.table.sample_target(noise.table_rows, noise.rng.random(noise.batch), noise.rng)
                return np.full(noise.batch, -1, dtype=np.int64), token
            pos, times = noise.state["arrivals"]
            token, _ = noise.table.race_winner(noise.table_rows, pos, times, noise.rng)   # [B]
        else:
            token = np.argmin(race_times(noise.race, p), axis=-1)         # [B] target's race winner
        match = drafts == token[:, None]                                  # [B, m]
        if drafts.shape[1] == 0:
            return np.full(len(token), -1, dtype=np.int64), token
        accepted = np.where(match.any(axis=1), match.argmax(axis=1), -1).astype(np.int64)
        return accepted, token


class ERSDTopM(ERSD):
    """ERSD restricted to sibling-closed trees: every node drafts the race's top m (ranks 1..m)."""

    name = "ersd-topm"
    label = "ersd, top-m children"
    colour = "#e377c2"
    marker = "P"
    any_ranks = False
    tree_family = "sibling-closed"
    variant_of = ERSD.name
    default_in = frozenset({"bound"})


# ----------------------------------------------------------------------------- logged paths
def ersd_path_weights(p, q, y, py, m: int, step: float = 0.25, exact_tokens: int = 64,
                      drop_tol: float = 1e-12) -> np.ndarray:
    r"""ERSD: P(the logged token's rank in the draft race is <= m | it won the target race).

    Given that y wins the p-race at time t (t ~ Exp(1), independent of y), token x
    arrives before y in the q-race independently with probability
    :math:`\pi_x(t) = 1 - e^{-t c_x}`, :math:`c_x = (p_y q_x/q_y - p_x)_+`, so

    .. math:: c = \int_0^\infty e^{-t}\, P\Big(\sum_x \mathrm{Bern}(\pi_x(t)) \le m-1\Big)\, dt ,

    which is :math:`p_y / \sum_x \max(p_x, p_y q_x/q_y)` for m = 1 (closed form used).
    For m > 1 the integral is a trapezoid rule in :math:`\log t` on
    :math:`[10^{-13}, 50]` (step 0.25; exponentially convergent, checked against the
    exact rank law to 1e-12), the ``exact_tokens`` largest :math:`c_x` enter an exact
    Poisson-binomial recursion, the others a Poisson law with the same mean (Le Cam:
    error <= :math:`4\sum_{\text{rest}} c_x^2`), and tokens whose :math:`c_x` sum to
    less than ``drop_tol`` are dropped (error <= that sum).

    Validated arrays: ``p``, ``q`` ``[T, V]``, ``y`` ``[T]``, ``py = p[t, y_t] > 0``
    (:func:`chansim.predict.ersd_path_acceptance` is the checked entry point).
    """
    rows = np.arange(len(y))
    qy = q[rows, y]
    out = np.zeros(len(y))
    ok = qy > 0                                        # q(y) = 0: y is never drafted
    if not np.any(ok):
        return out
    p, q, py, qy, yy = p[ok], q[ok], py[ok], qy[ok], y[ok]
    c = np.maximum((py / qy)[:, None] * q - p, 0.0)    # [T', V]
    c[np.arange(len(yy)), yy] = 0.0
    total = c.sum(-1)
    if m == 1:
        out[ok] = 1.0 / (1.0 + total)
        return out
    t = np.exp(np.arange(math.log(1e-13), math.log(50.0), step))      # [n_t]
    weight = step * t * np.exp(-t)                                       # trapezoid in log t
    vals = np.empty(len(yy))
    for i in range(len(yy)):
        ci = np.sort(c[i][c[i] > 0])[::-1]
        tail = np.cumsum(ci[::-1])[::-1]                 # tail[j] = sum of ci[j:]
        keep = int(np.searchsorted(-tail, -drop_tol))    # drop the smallest, summing < drop_tol
        big, rest = ci[:min(exact_tokens, keep)], ci[min(exact_tokens, keep):keep]
        pmf = np.zeros((len(t), m))
        pmf[:, 0] = 1.0
        if len(rest):                                    # Poisson part: P(N_rest = n), n < m
            lam = -np.expm1(-np.outer(t, rest)).sum(1)
            n = np.arange(m)
            pmf = np.exp(-lam[:, None] + n * np.log(np.maximum(lam[:, None], 1e-300)) - gammaln(n + 1.0))
        for cx in big:                                   # exact Poisson-binomial recursion
            poisson_binomial_add(pmf, -np.expm1(-t * cx)[:, None])
        vals[i] = float(weight @ pmf.sum(1))
    out[ok] = np.clip(vals, 0.0, 1.0)
    return out
