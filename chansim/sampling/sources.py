r"""Next-token distribution sources: what a verifier asks a model for.

Every verifier in :mod:`chansim.verify` talks to the target and the draft through
one small protocol, :class:`DistributionSource`:

``tree_probs(prefix, parents, tokens) -> ndarray [n_nodes, V]``
    Row 0 is the next-token distribution after ``prefix``; row i (i >= 1) is the
    distribution after ``prefix + path(i)``, where node i holds token ``tokens[i]``
    and its parent is ``parents[i]`` (``parents[0] = -1``, ``parents[i] < i``,
    ``tokens[0]`` is ignored).  This is the flat-array tree of :mod:`chansim.inputs.trees`.

``vocab_size: int``
    V, checked to be equal for target and draft.

How the shared tree walk (:func:`chansim.verify.speculative_step`) calls it:

* **target**: once per step, on the whole drafted tree (a real model scores the tree
  in one forward pass with a tree attention mask);
* **draft**: level by level, ``max_depth + 1`` times per step, each time on the
  sub-tree of the nodes drafted so far (depth <= d, renumbered in increasing
  original index, so ``parents[i] < i`` still holds and the sub-tree of level d
  extends that of level d-1).  An adapter with a KV cache may reuse the rows it
  computed for the earlier, shorter sub-tree.

Order-1 sources (the law depends on the last token only: :class:`IIDSource`,
:class:`MarkovSource`) also provide ``next_probs(last_tokens) -> [B or 1, V]``,
which the vectorised Monte Carlo engine (:mod:`chansim.simulate`) uses instead of
``tree_probs``.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..inputs.distributions import check_probs
from ..inputs.trees import check_token_tree

__all__ = ["DistributionSource", "IIDSource", "MarkovSource", "as_source", "check_sources"]


@runtime_checkable
class DistributionSource(Protocol):
    """The protocol every target/draft model implements (see the module docstring)."""

    vocab_size: int

    def tree_probs(self, prefix, parents, tokens) -> np.ndarray:
        """Next-token distributions after the prefix (row 0) and after every node, ``[n_nodes, V]``."""
        ...


class IIDSource:
    """The i.i.d. model: the same next-token distribution ``probs`` after every context.

    >>> src = IIDSource([0.25, 0.75])
    >>> src.tree_probs([], [-1, 0, 1], [-1, 1, 0]).tolist()
    [[0.25, 0.75], [0.25, 0.75], [0.25, 0.75]]
    """

    def __init__(self, probs, name: str = "probs"):
        probs = check_probs(probs, name)
        if probs.ndim != 1:
            raise ValueError(f"IIDSource takes one 1-D probability vector, got shape {probs.shape}; "
                             "use MarkovSource for context-dependent distributions")
        probs.setflags(write=False)
        self.probs = probs                        # [V]
        self.vocab_size = int(probs.shape[0])

    def tree_probs(self, prefix, parents, tokens) -> np.ndarray:
        parents, _ = check_token_tree(parents, tokens, self.vocab_size)
        return np.broadcast_to(self.probs, (len(parents), self.vocab_size))   # [n_nodes, V]

    def next_probs(self, last_tokens) -> np.ndarray:
        """``[1, V]``: the same row for every context (broadcasts against a batch)."""
        return self.probs[None, :]                # [1, V]

    def __repr__(self) -> str:
        return f"IIDSource(V={self.vocab_size})"


class MarkovSource:
    r"""First-order Markov model: :math:`P(x_{t+1} = y \mid x_t = x) = T_{xy}`; first token ~ ``initial``.

    Parameters
    ----------
    transition : array, shape (V, V)
        Row x is the next-token law after token x.
    initial : array, shape (V,), optional
        Law of the first token (after an empty prefix).  Default: uniform.

    >>> src = MarkovSource([[0.9, 0.1], [0.2, 0.8]], initial=[0.5, 0.5])
    >>> src.tree_probs([1], [-1, 0], [-1, 0]).tolist()
    [[0.2, 0.8], [0.9, 0.1]]
    """

    def __init__(self, transition, initial=None, name: str = "transition"):
        transition = check_probs(transition, name)
        if transition.ndim != 2 or transition.shape[0] != transition.shape[1]:
            raise ValueError(f"{name} must be a square [V, V] matrix, got shape {transition.shape}")
        vocab = transition.shape[0]
        initial = np.full(vocab, 1.0 / vocab) if initial is None else check_probs(initial, f"{name} initial")
        if initial.shape != (vocab,):
            raise ValueError(f"vocabulary mismatch: initial has shape {initial.shape}, transition {transition.shape}")
        # row V (index -1) holds the initial law, so rows[last_token] works for last_token = -1
        rows = np.vstack([transition, initial[None, :]])        # [V + 1, V]
        rows.setflags(write=False)
        self._rows = rows
        self.transition = rows[:-1]                             # [V, V]
        self.initial = rows[-1]                                 # [V]
        self.vocab_size = int(vocab)

    def tree_probs(self, prefix, parents, tokens) -> np.ndarray:
        parents, tokens = check_token_tree(parents, tokens, self.vocab_size)
        prefix = np.asarray(prefix, dtype=np.int64).reshape(-1)
        last = np.empty(len(parents), dtype=np.int64)
        last[0] = prefix[-1] if prefix.size else -1
        last[1:] = tokens[1:]
        if last[0] >= self.vocab_size or last[0] < -1 or (prefix.size and prefix[-1] < 0):
            raise ValueError(f"prefix token {last[0]} outside [0, {self.vocab_size})")
        return self._rows[last]                                 # [n_nodes, V]

    def next_probs(self, last_tokens) -> np.ndarray:
        """Rows after each last token (``-1`` = empty prefix), shape ``[B, V]``."""
        return self._rows[np.asarray(last_tokens, dtype=np.int64)]   # [B, V]

    def __repr__(self) -> str:
        return f"MarkovSource(V={self.vocab_size})"


def as_source(probs_or_source, name: str = "probs"):
    """A source from a 1-D probability vector (i.i.d. model) or an existing source."""
    if isinstance(probs_or_source, DistributionSource):
        return probs_or_source
    from ..inputs.distributions import as_real_array

    arr = as_real_array(probs_or_source, name)          # complex, bool, str refused (never cast)
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}: pass a 1-D probability vector (i.i.d. model) "
                         "or a source such as MarkovSource(transition, initial)")
    return IIDSource(arr, name)


def check_sources(target_source, draft_source) -> int:
    """Check that target and draft share a vocabulary; return V."""
    for role, src in (("target", target_source), ("draft", draft_source)):
        if not isinstance(src, DistributionSource):
            raise ValueError(f"{role} source {src!r} does not implement tree_probs/vocab_size")
    vt, vd = int(target_source.vocab_size), int(draft_source.vocab_size)
    if vt != vd:
        raise ValueError(f"vocabulary mismatch: target has V={vt}, draft has V={vd}")
    return vt
