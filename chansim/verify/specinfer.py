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
