"""Exact verification methods behind one interface (see :mod:`chansim.verify.base`).

===============  ==========================================  =====================
name             drafting at a node                          node rule
===============  ==========================================  =====================
autoregressive   nothing                                     y ~ p
sd               1 child ~ q (chain)                         min(1, p/q), residual
specinfer        m children i.i.d. ~ q                       multi-round residuals
rsd              m children without replacement (race top-m) renormalised rounds
spectr           i.i.d. sequences ~ q                        k-sequential, rho
ersd             race ranks of q (any rank set)              target's race winner
ersd-topm        race ranks 1..m of q (variant of ersd)      target's race winner
block            1 child ~ q (chain), decided as a block      longest passing prefix
multidraft       m children i.i.d. ~ q                       optimal selection, then sd
===============  ==========================================  =====================

Each method's module holds everything about it (sampling rule, node weights for the
theory, acceptance along a logged path, tree shapes, display style, the default lists it
belongs to and its roles); the registry (:mod:`chansim.verify.registry`) lists it once and
answers every other layer (``get_method``, ``method_names``, ``default_methods``,
``baseline``, ``role``).  docs/architecture.md: how to add one.

:func:`speculative_step` is the one shared tree walk (one target call);
:mod:`chansim.simulate` runs the same node rules vectorised over many calls.
"""
from .autoregressive import Autoregressive
from .base import Method, NodeNoise, SlotWeights
from .block import Block
from .ersd import ERSD, ERSDTopM
from .multidraft import Multidraft
from .registry import METHODS, baseline, default_methods, get_method, is_baseline, method_names, role, style
from .rsd import RSD
from .sd import SD
from .specinfer import SpecInfer
from .spectr import SpecTr, spectr_rho
from .walk import (GenerationResult, GeneratorNoise, KeyedNoise, StepResult, as_tree,
                   speculative_generate, speculative_step)

__all__ = [
    "Method", "NodeNoise", "SlotWeights", "METHODS", "get_method", "method_names", "default_methods",
    "baseline", "is_baseline", "role", "style",
    "Autoregressive", "SD", "SpecInfer", "RSD", "SpecTr", "ERSD", "ERSDTopM", "Block", "Multidraft", "spectr_rho",
    "KeyedNoise", "GeneratorNoise", "StepResult", "GenerationResult",
    "speculative_step", "speculative_generate", "as_tree",
]
