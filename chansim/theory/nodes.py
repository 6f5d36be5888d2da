r"""Acceptance of one tree node in the i.i.d. model: per-slot weights (public, validating entry points).

For a node with drafted children in slots 1..m, let

.. math:: w_j = P(\text{the verifier moves to the child in slot } j \mid \text{it is at the node}).

For every slot-based method :math:`w_j` does not depend on how many children follow slot j
(later drafts are only looked at after slot j was rejected), and with fresh
randomness at every node the events at different nodes are independent, so
:math:`P(\text{path passes } v) = \prod_{\text{edges}} w_{\text{slot}}` and
:math:`E[\text{tokens per call}] = 1 + \sum_{v \ne \text{root}} \prod w`
(:func:`chansim.theory.expectations.tree_value`; docs/theory.md §1).

The mathematics of each method lives in its module (its one home):

* ``sd``: :math:`w_1 = \beta` — :class:`chansim.verify.sd.SD`;
* ``specinfer``: :func:`chansim.verify.specinfer.residual_rounds`;
* ``rsd``: :func:`chansim.verify.rsd.rsd_weights` (exact enumeration / Monte Carlo);
* ``ersd``: :math:`w_r = a_r`, the rank law (:func:`chansim.theory.rank_law`);
* ``spectr``: not slot-based (:func:`chansim.verify.spectr.spectr_transition`).

This module validates the inputs once and looks the method up in the registry.
"""
from __future__ import annotations

import numpy as np

from ..inputs.distributions import check_pair
from ..verify.base import SlotWeights, check_width
from ..verify.registry import get_method
from ..verify.sd import SD
from ..verify.rsd import rsd_weights, rsd_weights_exact, rsd_weights_mc
from ..verify.specinfer import residual_rounds
from ..verify.spectr import spectr_acceptance as _spectr_acceptance
from ..verify.spectr import spectr_rho, spectr_transition as _spectr_transition
from ..verify.spectr import spectr_transition_matrix as _spectr_transition_matrix
from .ranklaw import rank_law

__all__ = [
    "SlotWeights",
    "sd_weights",
    "specinfer_weights",
    "rsd_weights",
    "rsd_weights_exact",
    "rsd_weights_mc",
    "spectr_rho",
    "spectr_acceptance",
    "spectr_transition",
    "spectr_transition_matrix",
    "node_acceptance",
]


def sd_weights(target_probs, draft_probs) -> np.ndarray:
    r"""``sd`` slot weight :math:`w_1 = \beta`, shape ``(..., 1)``.

    >>> sd_weights([0.5, 0.5], [0.9, 0.1]).tolist()
    [0.6]
    """
    p, q = check_pair(target_probs, draft_probs)
    return SD().slot_weights(p, q, 1).w


def specinfer_weights(target_probs, draft_probs, m: int) -> np.ndarray:
    r"""SpecInfer slot weights :math:`w_j = \beta_j\prod_{i<j}(1-\beta_i)`, shape ``(..., m)``.

    Batched over leading axes.  :math:`1 - \sum_j w_j = \prod_j (1 - \beta_j)` is the
    node's rejection probability (Miao et al. 2023; docs/algorithms.md).

    >>> w = specinfer_weights([0.5, 0.5], [0.9, 0.1], 2)
    >>> np.round(w, 6).tolist()        # beta_1 = 0.6, r_2 = (0, 1), beta_2 = 0.1
    [0.6, 0.04]
    """
    p, q = check_pair(target_probs, draft_probs)
    return residual_rounds(p, q, check_width(m))[0]


def spectr_acceptance(target_probs, draft_probs, k: int) -> float:
    r"""Node acceptance of SpecTr with k i.i.d. drafts, :math:`1 - (1 - \beta(\rho))^k`."""
    p, q = check_pair(target_probs, draft_probs)
    return _spectr_acceptance(p, q, check_width(k))


def spectr_transition(target_probs, draft_probs, count: int) -> np.ndarray:
    """P(accept and exactly n of the ``count`` drafts equal the output), n = 1..count (:func:`chansim.verify.spectr.spectr_transition`)."""
    p, q = check_pair(target_probs, draft_probs)
    return _spectr_transition(p, q, check_width(count))


def spectr_transition_matrix(target_probs, draft_probs, cmax: int) -> np.ndarray:
    """``T[n, n']`` = :func:`spectr_transition` for every count n = 1..cmax, shape ``(cmax+1, cmax+1)``."""
    p, q = check_pair(target_probs, draft_probs)
    return _spectr_transition_matrix(p, q, check_width(cmax))


def node_acceptance(method: str, target_probs, draft_probs, m: int, **opts) -> float:
    """Probability that a node with m drafted children accepts one of them (1-D pair).

    >>> from chansim.verify import SpecInfer
    >>> round(node_acceptance(SpecInfer(), [0.5, 0.5], [0.9, 0.1], 2), 6)
    0.64
    """
    p, q = check_pair(target_probs, draft_probs)
    m = check_width(m)
    meth = get_method(method)
    if meth.tree_family is None:
        raise ValueError(f"method {method!r} drafts nothing; it has no node acceptance")
    if meth.uses_race:                      # race methods' node law: the rank law (its one entry point)
        return meth.node_acceptance(p, q, m, law=rank_law(p, q, **{"max_rank": max(64, m), **opts}))
    return meth.node_acceptance(p, q, m, **opts)
