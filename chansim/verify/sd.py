r"""``sd`` — speculative sampling on a chain (Leviathan et al. 2023; Chen et al. 2023).

Draft :math:`x \sim q`; accept with probability :math:`\min(1, p(x)/q(x))`; on rejection
output :math:`y \sim \mathrm{norm}((p - q)_+)` and stop; after the last drafted token
output :math:`y \sim p`.  Acceptance per node :math:`\beta = \sum_x \min(p_x, q_x)`; in
the i.i.d. model a chain of :math:`\gamma` drafts yields
:math:`(1 - \beta^{\gamma+1})/(1 - \beta)` tokens per call (docs/algorithms.md, docs/theory.md §1).

It is :mod:`~chansim.verify.specinfer` with one child per node, so it shares that rule.
"""
from __future__ import annotations

import numpy as np

from .base import SlotWeights
from .specinfer import SpecInfer

__all__ = ["SD", "sd_chain_tokens"]


def sd_chain_tokens(beta, gamma) -> np.ndarray:
    r"""Closed form :math:`(1 - \beta^{\gamma+1})/(1 - \beta)` (= γ + 1 at β = 1); β and γ broadcast (any shape).

    Leviathan et al. (2023), eq. (1); re-derived in docs/theory.md and by sympy in
    :func:`chansim.theory.symbolic.sd_chain_formula`.

    >>> float(sd_chain_tokens(0.5, 2))
    1.75
    """
    beta = np.asarray(beta, dtype=float)
    gamma = np.asarray(gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = (1 - beta ** (gamma + 1)) / (1 - beta)
    return np.where(np.isclose(beta, 1.0, rtol=0, atol=1e-15), gamma + 1.0, val)


class SD(SpecInfer):
    """Chain speculative sampling = the one-child case of :class:`SpecInfer`."""

    name = "sd"
    label = "sd (single draft)"
    colour = "#1f77b4"
    marker = "o"
    chains_only = True
    tree_family = "chain"
    sd_on_chains = False    # it *is* sd
    truncated_intervals = "chains"
    default_in = frozenset({"bound", "top-n", "temperature", "settings-check"})
    roles = frozenset({"chain-reference"})

    def slot_weights(self, p, q, m: int = 1, **_) -> SlotWeights:
        r"""``sd`` slot weight :math:`w_1 = \beta = \sum_x \min(p_x, q_x)`; p, q ``[..., V]`` → ``(..., 1)``."""
        if m != 1:
            raise ValueError("sd drafts one token per node")
        return SlotWeights.exact_weights(np.minimum(p, q).sum(-1, keepdims=True))

    def node_acceptance(self, p, q, m: int = 1, **_) -> float:
        """β of one checked pair ``[V]``."""
        if m != 1:
            raise ValueError("sd drafts one token per node")
        return float(np.minimum(p, q).sum())

    def tree_tokens(self, tree, p, q):
        """The chain's closed form :func:`sd_chain_tokens` (the tree must be a chain); p, q checked ``[V]``."""
        kids = tree.num_children
        if np.any(kids > 1):
            raise ValueError(f"sd verifies a chain; got {tree!r}")
        return float(sd_chain_tokens(np.minimum(p, q).sum(), tree.size))

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        r""":math:`c_t = \min(1, q_t(y_t)/p_t(y_t))` for one drafted token.

        ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T]``.
        """
        self.check_widths([m])
        return np.minimum(1.0, q[np.arange(len(y)), y] / py)

    def check_widths(self, widths) -> None:
        if any(w != 1 for w in widths):
            raise ValueError(f"sd drafts a chain (one child per node), got {max(widths)} children; "
                             "use specinfer for trees")
