r"""Exact expected tokens per target call in the i.i.d. model (same p, q at every node).

Tokens per call = accepted depth + 1, and accepted depth = number of drafted nodes on
the target's path, so

.. math:: E[\text{tokens}] = 1 + \sum_{v \ne \text{root}} P(\text{target path passes } v)
          = 1 + \sum_{v} \prod_{e \in \text{path}(v)} w_{\text{slot}(e)}

for every slot-based method (per-slot weights from the method's
:meth:`~chansim.verify.base.Method.slot_weights`).  Methods with a closed form give it
through :meth:`~chansim.verify.base.Method.tree_tokens`: ``sd`` on a chain of γ,
:math:`(1-\beta^{\gamma+1})/(1-\beta)`; ``spectr`` on k i.i.d. sequences, a dynamic
program over (depth, number of drafts consistent with the output).  Derivations:
docs/theory.md §1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inputs.distributions import check_pair
from ..inputs.trees import Tree
from ..verify.registry import get_method, method_names
from ..verify.sd import sd_chain_tokens
from ..verify.spectr import sequences_shape, spectr_sequences_tokens
from .ranklaw import rank_law

__all__ = ["Expectation", "tree_value", "path_probabilities", "sd_chain_tokens", "expected_tokens",
           "sequences_shape", "spectr_sequences_tokens", "METHODS"]

#: methods with exact expectations (the registry's methods, variants left out)
METHODS = method_names(variants=False)


@dataclass(frozen=True)
class Expectation:
    """Expected tokens per target call with an interval (``ci_low == ci_high == value`` when exact)."""

    value: float
    ci_low: float
    ci_high: float
    exact: bool
    method: str = ""
    tree: str = ""

    def __float__(self) -> float:
        return float(self.value)


def path_probabilities(tree: Tree, weights) -> np.ndarray:
    r"""P(target path passes v) for every node, shape ``(..., n_nodes)`` (root = 1).

    ``weights[..., j-1]`` is the weight of slot j; slots beyond the last weight get 0.
    """
    w = np.asarray(weights, dtype=float)
    m = w.shape[-1]
    prob = np.zeros(w.shape[:-1] + (tree.n_nodes,))
    prob[..., 0] = 1.0
    # process level by level so that the loop is over depth, not nodes
    depth = tree.depth
    for d in range(1, tree.max_depth + 1 if tree.size else 1):
        nodes = np.flatnonzero(depth == d)
        slots = tree.ranks[nodes] - 1
        ok = slots < m
        wv = np.zeros(w.shape[:-1] + (len(nodes),))
        wv[..., ok] = w[..., slots[ok]]
        prob[..., nodes] = prob[..., tree.parents[nodes]] * wv
    return prob


def tree_value(tree: Tree, weights) -> np.ndarray:
    r"""Expected tokens per call :math:`1 + \sum_v \prod w` for slot weights ``(..., m)``.

    >>> from chansim.inputs.trees import chain, batch
    >>> float(tree_value(chain(2), [0.5]))        # 1 + 0.5 + 0.25
    1.75
    >>> float(tree_value(batch(3), [0.5, 0.2]))   # slot 3 has weight 0
    1.7
    """
    return path_probabilities(tree, weights).sum(-1)


def expected_tokens(method: str, tree: Tree, target_probs, draft_probs, trials: int = 200_000,
                    seed: int = 0) -> Expectation:
    r"""Expected tokens per target call of ``method`` on ``tree`` in the i.i.d. model.

    Exact where available (``sd``, ``specinfer``, ``spectr``; ``ersd`` and ``rsd`` for
    small V); otherwise Monte Carlo on the node weights with a conservative interval
    (the tree value is increasing in every weight, so evaluating it at the weights'
    simultaneous lower/upper bounds brackets it).  The method is looked up in the
    registry: its :meth:`~chansim.verify.base.Method.tree_tokens` closed form if it has
    one, else :func:`tree_value` of its slot weights.

    Parameters
    ----------
    method : str
        A registered method (:data:`METHODS`, or a variant such as ``ersd-topm``).
    tree : chansim.inputs.trees.Tree
        ``sd`` needs a chain; ``spectr`` needs disjoint equal-length sequences
        (:func:`chansim.inputs.trees.sequences`, including ``batch`` and ``chain``); ``ersd``
        reads ``tree.ranks`` as race ranks.
    target_probs, draft_probs : array_like, shape (V,)
    trials, seed
        Monte Carlo effort where a method's weights are not exact: ``trials //
        Method.trials_divisor`` samples (rsd: histories, 10 times dearer; ersd: the rank
        law's samples, :func:`chansim.theory.rank_law`).

    Examples
    --------
    >>> from chansim.inputs.trees import chain
    >>> from chansim.verify import SD
    >>> e = expected_tokens(SD(), chain(3), [0.5, 0.5], [0.9, 0.1])
    >>> round(e.value, 6), e.exact
    (2.176, True)
    """
    p, q = check_pair(target_probs, draft_probs)
    if p.ndim != 1:
        raise ValueError(f"expected_tokens takes one pair of 1-D vectors, got shape {p.shape}")
    if not isinstance(tree, Tree):
        raise ValueError(f"tree must be a chansim.inputs.trees.Tree, got {type(tree).__name__}")
    meth = get_method(method)
    name = tree.name
    if meth.tree_family is None or tree.size == 0:
        if meth.tree_family is None and tree.size:
            raise ValueError(f"{meth.name} decoding drafts nothing; use chain(0)")
        return Expectation(1.0, 1.0, 1.0, True, meth.name, name)
    meth.check_tree(tree)
    closed = meth.tree_tokens(tree, p, q)
    if closed is not None:
        return Expectation(float(closed), float(closed), float(closed), True, meth.name, name)
    m = int(tree.ranks.max())
    effort = max(2, trials // meth.trials_divisor)
    law = rank_law(p, q, trials=effort, seed=seed) if meth.uses_race else None   # race methods: the rank law
    sw = meth.slot_weights(p, q, m, seed=seed, trials=effort, law=law)
    v, lo, hi = (float(tree_value(tree, w)) for w in (sw.w, sw.ci_low, sw.ci_high))
    return Expectation(v, lo, hi, sw.exact, meth.name, name)
