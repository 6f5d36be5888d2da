r"""``specinfer`` — multi-round speculative sampling on a tree (Miao et al. 2023, SpecInfer).

The paper's "GSD" baseline generalised to trees.  At a node with law p (target) and q
(draft), children :math:`x_1..x_m` are drafted i.i.d. from q (duplicates allowed, each
with its own subtree).  With :math:`r_1 = p`, for j = 1..m:

.. math::
    \text{accept } x_j \text{ w.p. } \min\!\Big(1, \frac{r_j(x_j)}{q(x_j)}\Big),
    \qquad \text{else } r_{j+1} = \mathrm{norm}\big((r_j - q)_+\big);

all rejected: output :math:`y \sim r_{m+1}`.  Node acceptance
:math:`1 - \prod_j (1 - \beta_j)`, :math:`\beta_j = \sum_x \min(r_j(x), q(x))`
(docs/algorithms.md; slot weights and path acceptance: docs/theory.md §1, §9).
"""
from __future__ import annotations

import numpy as np

from .base import IIDDrafting, Method, NodeNoise, SlotWeights, residual, sample_rows, take_rows

__all__ = ["SpecInfer", "residual_rounds"]


def residual_rounds(p, q, m: int):
    r"""The m residual rounds of a node with i.i.d. drafts: slot weights and the leftover output mass.

    With :math:`r_1 = p`, :math:`\beta_j = \sum_x \min(r_j(x), q(x))` (round j accepts
    with this probability whatever was drafted before) and
    :math:`r_{j+1} = \mathrm{norm}((r_j - q)_+)` (the verifier's own :func:`residual`):

    * ``w[..., j-1]`` :math:`= \beta_j \prod_{i<j}(1-\beta_i)`, shape ``(..., m)``;
    * ``rest[..., x]`` :math:`= \prod_{j\le m}(1-\beta_j)\, r_{m+1}(x)` = P(all m rejected
      and output x), shape ``(..., V)``.

    ``p``, ``q`` ``[..., V]``, checked (batched over leading axes).  Rounds stop once the node is (numerically)
    never reached any more (:math:`\prod (1-\beta) \le 10^{-16}`).

    >>> w, rest = residual_rounds(np.array([0.5, 0.5]), np.array([0.9, 0.1]), 2)
    >>> np.round(w, 6).tolist(), np.round(rest, 6).tolist()   # beta_1 = 0.6, r_2 = (0, 1), beta_2 = 0.1
    ([0.6, 0.04], [0.0, 0.36])
    """
    if p.ndim == 1 and m > _JUMP_FROM:
        return _rounds_1d(p, q, m)
    return _rounds_loop(p, q, m)


def _rounds_loop(p, q, m: int):
    """:func:`residual_rounds` round by round (batched; the reference for :func:`_rounds_1d`)."""
    r = p.copy()
    alive = np.ones(p.shape[:-1])
    out = np.zeros(p.shape[:-1] + (m,))
    for j in range(m):
        beta = np.minimum(r, q).sum(-1)
        out[..., j] = alive * beta
        alive = alive * np.clip(1 - beta, 0, None)
        if not np.any(alive > 1e-16):                       # later slots are (numerically) never reached
            break
        r = residual(r, q)                                  # norm((r - q)+), the verifier's own rule
    return out, alive[..., None] * r


#: :func:`residual_rounds` on one node jumps over stable phases when it needs more rounds than this
_JUMP_FROM = 64
#: shortest phase taken in one jump (shorter ones run round by round)
_JUMP_MIN = 8


def _rounds_1d(p, q, m: int):
    r""":func:`residual_rounds` for one node, jumping over stable phases (docs/theory.md §1).

    While every token of the residual's support S has :math:`r(x) > q(x)`, a round accepts with
    :math:`\beta = q(S)` whatever r is, and :math:`r_{n} = c + (r_0 - c)\,g^{n}` on S with
    :math:`c = q_S/q(S)`, :math:`g = 1/(1 - q(S))` (the map :math:`r \mapsto (r - q_S)/(1 - q(S))`).
    The phase ends at the first n where some :math:`r_n(x) \le q(x)`; its L rounds have the
    geometric weights :math:`\text{alive}\,(1-\beta)^i\beta`.  A phase of at least
    ``_JUMP_MIN`` rounds is taken in one step (O(V)), others round by round, so the work is
    O(V · phases) instead of O(V · m): k = 10^6 slots at V = 49,152 in well under a second
    where the round-by-round loop took minutes.
    """
    r = p.copy()
    alive = 1.0
    out = np.zeros(m)
    j, next_try, backoff = 0, 0, 1
    while j < m and alive > 1e-16:
        if j >= next_try:                                   # look for a stable phase (O(V), so not every round)
            jumped = _jump(r, q, m - j)
            if jumped is None:
                next_try, backoff = j + backoff, min(2 * backoff, _JUMP_BACKOFF)
            else:
                length, beta, r_after = jumped
                out[j:j + length] = alive * beta * (1.0 - beta) ** np.arange(length)
                alive *= (1.0 - beta) ** length
                j += length
                if r_after is None:                         # r = c on S: a fixed point, every later round alike
                    break
                r, next_try, backoff = r_after, j, 1
                continue
        beta = float(np.minimum(r, q).sum())
        if beta <= 0.0:                                     # q misses S: no later round accepts
            break
        out[j] = alive * beta
        alive *= max(1.0 - beta, 0.0)
        j += 1
        if alive <= 1e-16:
            break
        r = residual(r, q)
    return out, alive * r


#: most rounds between two looks for a stable phase after failed looks (doubling from 1)
_JUMP_BACKOFF = 32


def _jump(r, q, left: int):
    r"""The stable phase that starts at residual ``r``, if it lasts at least ``_JUMP_MIN`` rounds.

    Returns None, or ``(length, beta, r_after)``: its length L (at most ``left``), its constant
    acceptance :math:`\beta = q(S)` and the residual after it (None at a fixed point, where
    every later round is the same); :func:`_rounds_1d` has the derivation.
    """
    on = r > 0
    r_s, q_on = r[on], q[on]
    q_s = float(q_on.sum())
    if not (0.0 < q_s < 1.0) or not np.all(r_s > q_on):
        return None
    c = q_on / q_s
    down = r_s < c
    if not down.any():
        return left, q_s, None
    with np.errstate(divide="ignore", invalid="ignore"):
        n_x = np.log((c[down] - q_on[down]) / (c[down] - r_s[down])) / -np.log1p(-q_s)
    length = int(min(np.ceil(n_x).min(), left))
    if length < _JUMP_MIN:
        return None
    with np.errstate(over="ignore"):
        growth = np.exp(-length * np.log1p(-q_s))           # g^L, finite: r stays in [0, 1] until L
    r_after = np.zeros_like(r)
    r_after[on] = np.maximum(c + (r_s - c) * growth, 0.0)   # r > 0 on S after the phase
    return length, q_s, r_after / r_after.sum()


class SpecInfer(IIDDrafting, Method):
    """Multi-round speculative sampling with i.i.d. drafts (see the module docstring)."""

    name = "specinfer"
    label = "specinfer"
    colour = "#ff7f0e"
    marker = "s"
    tree_family = "sibling-closed"
    has_path_prediction = True
    sd_on_chains = True
    truncated_intervals = "depth-only"    # specinfer_path_acceptance_bounds per depth width
    default_in = frozenset({"bound", "top-n", "temperature"})

    def slot_weights(self, p, q, m: int, **_) -> SlotWeights:
        r""":math:`w_j = \beta_j\prod_{i<j}(1-\beta_i)` (:func:`residual_rounds`), exact.

        ``p``, ``q`` ``[..., V]`` → ``w`` ``[..., m]``.
        """
        return SlotWeights.exact_weights(residual_rounds(p, q, m)[0])

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        r""":math:`c = 1 - \prod_{j\le m}(1-\beta_j)\, r_{m+1}(y)/p(y)` (the ``rest`` of :func:`residual_rounds`).

        ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` (checked by :func:`chansim.inputs.paths.check_path_inputs`) → ``[T]``.
        """
        _, rest = residual_rounds(p, q, m)                                # [T, V]
        return np.clip(1.0 - rest[np.arange(len(y)), y] / py, 0.0, 1.0)

    def verify(self, p, q, drafts, noise: NodeNoise):
        """Residual rounds over ``drafts`` ``[B, m]``; ``p``, ``q`` ``[R, V]`` → ``(accepted [B], token [B])``."""
        batch, m = drafts.shape
        u = noise.rng.random((batch, m + 1))                              # [B, m + 1]
        accepted = np.full(batch, -1, dtype=np.int64)
        r = p                                                             # [R, V] residual r_j
        for j in range(m):
            x = drafts[:, j]                                              # [B]
            ok = (accepted < 0) & (u[:, j] * take_rows(q, x) < take_rows(r, x))   # w.p. min(1, r/q)
            accepted[ok] = j
            r = residual(r, q)
        hit = accepted >= 0
        token = np.where(hit, drafts[np.arange(batch), np.maximum(accepted, 0)], -1) if m else np.full(batch, -1)
        miss = np.flatnonzero(~hit)                                       # y ~ r_{m+1}, only where all rejected
        if miss.size:
            token[miss] = sample_rows(r if r.shape[0] == 1 else r[miss], u[miss, m])
        return accepted, token
