r"""``sd`` — speculative sampling on a chain (Leviathan et al. 2023; Chen et al. 2023).

Draft :math:`x \sim q`; accept with probability :math:`\min(1, p(x)/q(x))`; on rejection
output :math:`y \sim \mathrm{norm}((p - q)_+)` and stop; after the last drafted token
output :math:`y \sim p`.  Acceptance per node :math:`\beta = \sum_x \min(p_x, q_x)`; in
the i.i.d. model a chain of :math:`\gamma` drafts yields
:math:`(1 - \beta^{\gamma+1})/(1 - \beta)` tokens per call.

It is :mod:`~chansim.verify.specinfer` with one child per node, so it shares that rule.
"""
from __future__ import annotations

from .specinfer import SpecInfer

__all__ = ["SD"]


class SD(SpecInfer):
    """Chain speculative sampling = the one-child case of :class:`SpecInfer`."""

    name = "sd"
    chains_only = True
