r"""``specinfer`` — multi-round speculative sampling on a tree (Miao et al. 2023, SpecInfer).

The paper's "GSD" baseline generalised to trees.  At a node with law p (target) and q
(draft), children :math:`x_1..x_m` are drafted i.i.d. from q (duplicates allowed, each
with its own subtree).  With :math:`r_1 = p`, for j = 1..m:

.. math::
    \text{accept } x_j \text{ w.p. } \min\!\Big(1, \frac{r_j(x_j)}{q(x_j)}\Big),
    \qquad \text{else } r_{j+1} = \mathrm{norm}\big((r_j - q)_+\big);

all rejected: output :math:`y \sim r_{m+1}`.  Node acceptance
:math:`1 - \prod_j (1 - \beta_j)`, :math:`\beta_j = \sum_x \min(r_j(x), q(x))`.
"""
from __future__ import annotations

import numpy as np

from .base import IIDDrafting, Method, NodeNoise, residual, sample_rows, take_rows

__all__ = ["SpecInfer"]


class SpecInfer(IIDDrafting, Method):
    """Multi-round speculative sampling with i.i.d. drafts (see the module docstring)."""

    name = "specinfer"

    def verify(self, p, q, drafts, noise: NodeNoise):
        batch, m = drafts.shape
        u = noise.rng.random((batch, m + 1))                              # [B, m + 1]
        accepted = np.full(batch, -1, dtype=np.int64)
        r = p                                                             # [R, V] residual r_j
        for j in range(m):
            x = drafts[:, j]                                              # [B]
            ok = (accepted < 0) & (u[:, j] * take_rows(q, x) < take_rows(r, x))   # w.p. min(1, r/q)
            accepted[ok] = j
            r = residual(r, q)
        token = sample_rows(r, u[:, m])                                   # y ~ r_{m+1}
        hit = accepted >= 0
        token[hit] = drafts[hit, accepted[hit]]
        return accepted, token
