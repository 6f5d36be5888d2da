r"""Exact expected tokens per target call in the i.i.d. model (same p, q at every node).

Tokens per call = accepted depth + 1, and accepted depth = number of drafted nodes on
the target's path, so

.. math:: E[\text{tokens}] = 1 + \sum_{v \ne \text{root}} P(\text{target path passes } v)
          = 1 + \sum_{v} \prod_{e \in \text{path}(v)} w_{\text{slot}(e)}

for every slot-based method (per-slot weights from :mod:`chansim.theory.nodes`).
``sd`` on a chain of γ gives the closed form :math:`(1-\beta^{\gamma+1})/(1-\beta)`;
``spectr`` on k i.i.d. sequences is a dynamic program over (depth, number of drafts
consistent with the output).  Derivations: docs/theory.md §1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import check_pair
from ..races import rank_distribution_exact, rank_distribution_mc
from ..trees import Tree
from .nodes import rsd_weights, specinfer_weights, spectr_transition_matrix

__all__ = ["Expectation", "tree_value", "path_probabilities", "sd_chain_tokens", "expected_tokens",
           "sequences_shape", "spectr_sequences_tokens", "METHODS"]

METHODS = ("autoregressive", "sd", "specinfer", "rsd", "spectr", "ersd")


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

    >>> from chansim.trees import chain, batch
    >>> float(tree_value(chain(2), [0.5]))        # 1 + 0.5 + 0.25
    1.75
    >>> float(tree_value(batch(3), [0.5, 0.2]))   # slot 3 has weight 0
    1.7
    """
    return path_probabilities(tree, weights).sum(-1)


def sd_chain_tokens(beta, gamma) -> np.ndarray:
    r"""Closed form :math:`(1 - \beta^{\gamma+1})/(1 - \beta)` (= γ + 1 at β = 1).

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


def sequences_shape(tree: Tree):
    """``(count, length)`` when the tree is ``count`` disjoint chains of equal length, else None."""
    if tree.size == 0:
        return (0, 0)
    kids = tree.num_children
    if np.any(kids[1:] > 1):
        return None
    leaves = np.flatnonzero(kids == 0)
    depths = tree.depth[leaves]
    if len(set(depths.tolist())) != 1:
        return None
    return int(kids[0]), int(depths[0])


def spectr_sequences_tokens(target_probs, draft_probs, count: int, length: int, transition=None) -> float:
    r"""Exact E[tokens per call] of SpecTr on ``count`` i.i.d. draft sequences of ``length``.

    State = number n of drafted sequences whose prefix equals the output so far; the
    next-depth law of n comes from :func:`chansim.theory.nodes.spectr_transition`
    (``transition``: a precomputed :func:`~chansim.theory.nodes.spectr_transition_matrix`
    covering counts up to ``count``, reused across shapes):

    .. math:: \pi_{d+1}(n') = \sum_n \pi_d(n)\, T_n(n'), \qquad
              E = 1 + \sum_{d=1}^{L} \sum_n \pi_d(n).
    """
    if count == 0 or length == 0:
        return 1.0
    if transition is None:
        p, q = check_pair(target_probs, draft_probs)
        transition = spectr_transition_matrix(p, q, count)
    trans = transition[:count + 1, :count + 1]                   # trans[n, n']
    pi = np.zeros(count + 1)
    pi[count] = 1.0
    total = 1.0
    for _ in range(length):
        pi = pi @ trans
        total += pi.sum()
    return float(total)


def _ersd_weights(p, q, m, trials, seed, exact_max_vocab):
    if p.shape[-1] <= exact_max_vocab:
        rd = rank_distribution_exact(p, q)
        w = np.zeros(m)
        n = min(m, len(rd.probs))
        w[:n] = rd.probs[:n]
        return w, w, w, True
    rd = rank_distribution_mc(p, q, trials=trials, seed=seed)
    out = []
    for arr in (rd.probs, rd.ci_low, rd.ci_high):
        w = np.zeros(m)
        n = min(m, len(arr))
        w[:n] = arr[:n]
        out.append(w)
    return out[0], out[1], out[2], False


def expected_tokens(method: str, tree: Tree, target_probs, draft_probs, trials: int = 200_000,
                    seed: int = 0, exact_max_vocab: int = 16) -> Expectation:
    r"""Expected tokens per target call of ``method`` on ``tree`` in the i.i.d. model.

    Exact where available (``sd``, ``specinfer``, ``spectr``; ``ersd`` and ``rsd`` for
    small V); otherwise Monte Carlo on the node weights with a conservative interval
    (the tree value is increasing in every weight, so evaluating it at the weights'
    simultaneous lower/upper bounds brackets it).

    Parameters
    ----------
    method : {"autoregressive", "sd", "specinfer", "rsd", "spectr", "ersd"}
    tree : chansim.trees.Tree
        ``sd`` needs a chain; ``spectr`` needs disjoint equal-length sequences
        (:func:`chansim.trees.sequences`, including ``batch`` and ``chain``); ``ersd``
        reads ``tree.ranks`` as race ranks.
    target_probs, draft_probs : array_like, shape (V,)

    Examples
    --------
    >>> from chansim.trees import chain
    >>> e = expected_tokens("sd", chain(3), [0.5, 0.5], [0.9, 0.1])
    >>> round(e.value, 6), e.exact
    (2.176, True)
    """
    p, q = check_pair(target_probs, draft_probs)
    if p.ndim != 1:
        raise ValueError(f"expected_tokens takes one pair of 1-D vectors, got shape {p.shape}")
    if not isinstance(tree, Tree):
        raise ValueError(f"tree must be a chansim.trees.Tree, got {type(tree).__name__}")
    name = tree.name
    if method == "autoregressive" or tree.size == 0:
        if method == "autoregressive" and tree.size:
            raise ValueError("autoregressive decoding drafts nothing; use chain(0)")
        return Expectation(1.0, 1.0, 1.0, True, method, name)
    m = int(tree.ranks.max())
    if method == "sd":
        shape = sequences_shape(tree)
        if shape is None or shape[0] != 1:
            raise ValueError(f"sd verifies a chain; got {tree!r}")
        v = float(sd_chain_tokens(np.minimum(p, q).sum(), tree.size))
        return Expectation(v, v, v, True, method, name)
    if method == "specinfer":
        v = float(tree_value(tree, specinfer_weights(p, q, m)))
        return Expectation(v, v, v, True, method, name)
    if method == "rsd":
        sw = rsd_weights(p, q, m, trials=max(2, trials // 10), seed=seed)
        v, lo, hi = (float(tree_value(tree, w)) for w in (sw.w, sw.ci_low, sw.ci_high))
        return Expectation(v, lo, hi, sw.exact, method, name)
    if method == "spectr":
        shape = sequences_shape(tree)
        if shape is None:
            raise ValueError(f"spectr verifies disjoint equal-length draft sequences (seq:CxL); got {tree!r}")
        v = spectr_sequences_tokens(p, q, *shape)
        return Expectation(v, v, v, True, method, name)
    if method == "ersd":
        w, lo, hi, exact = _ersd_weights(p, q, m, trials, seed, exact_max_vocab)
        v, vlo, vhi = (float(tree_value(tree, x)) for x in (w, lo, hi))
        return Expectation(v, vlo, vhi, exact, method, name)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
