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
===============  ==========================================  =====================

:func:`speculative_step` is the one shared tree walk (one target call);
:mod:`chansim.simulate` runs the same node rules vectorised over many calls.
"""
from .autoregressive import Autoregressive
from .base import Method, NodeNoise
from .ersd import ERSD
from .registry import METHODS, get_method
from .rsd import RSD
from .sd import SD
from .specinfer import SpecInfer
from .spectr import SpecTr, spectr_rho
from .walk import (GenerationResult, GeneratorNoise, KeyedNoise, StepResult, as_tree,
                   speculative_generate, speculative_step)

__all__ = [
    "Method", "NodeNoise", "METHODS", "get_method",
    "Autoregressive", "SD", "SpecInfer", "RSD", "SpecTr", "ERSD", "spectr_rho",
    "KeyedNoise", "GeneratorNoise", "StepResult", "GenerationResult",
    "speculative_step", "speculative_generate", "as_tree",
]
