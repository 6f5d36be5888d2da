"""Score a whole draft tree in one forward pass, reusing keys/values between calls.

Tree convention (project-wide): node 0 is the root, i.e. the end of the current
prefix; nodes ``1..n-1`` hold drafted tokens ``tokens[i]`` with parent
``parents[i] < i`` (parent 0 = the root). ``parents[0]`` and ``tokens[0]`` are
ignored (use -1). Row ``i`` of the result is the next-token distribution after
the prefix followed by the path root -> i.

How it works: the scorer keeps a *trie* of every token it has keys/values for
(the committed prefix is a chain, the last tree hangs below it). A call maps
prefix + tree onto the trie; nodes already there are reused, the others are fed
in one forward pass with position ``len(prefix) - 1 + depth`` and a tree
attention mask (each node sees its ancestors and itself, never its siblings'
branches). Entries not on the new prefix + tree are dropped. So

* the target verifies tree ``t`` and, on the next call with the extended prefix
  (accepted path + correction token), only the correction token and the new tree
  are fed: the accepted nodes' keys/values are reused, not recomputed;
* a draft that grows its tree level by level calls :meth:`TreeScorer.tree_log_probs`
  with the growing tree and only the new level is fed each time.

Identical (context, token) nodes, e.g. duplicate i.i.d. drafts, share one entry.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..inputs.trees import check_token_tree
from .network import KVStore, LayerView

if TYPE_CHECKING:
    import torch

__all__ = ["TreeScorer", "check_tree", "tree_depths"]

#: the one token-tree validation (:func:`chansim.inputs.trees.check_token_tree`), under its historical name
check_tree = check_token_tree


def tree_depths(parents) -> np.ndarray:
    """Depth of every node (root 0), shape (n_nodes,).

    >>> tree_depths([-1, 0, 1, 0]).tolist()
    [0, 1, 2, 1]
    """
    parents = np.asarray(parents, dtype=np.int64)
    depth = np.zeros(parents.size, dtype=np.int64)
    for i in range(1, parents.size):
        depth[i] = depth[parents[i]] + 1
    return depth


class TreeScorer:
    """Next-token log-probabilities at every node of a draft tree, one forward pass per call.

    Parameters
    ----------
    network : LayerView
        The network to run (target, or a layer-skipping draft).

    Attributes
    ----------
    n_forward : int
        Forward passes run so far.
    n_fed : int
        Tokens fed so far (cache misses).
    """

    def __init__(self, network: LayerView) -> None:
        self.network = network
        self.n_forward = 0
        self.n_fed = 0
        self.reset()

    @property
    def vocab_size(self) -> int:
        return self.network.vocab_size

    def reset(self) -> None:
        """Forget all cached keys/values."""
        self._store = KVStore()
        self._tok: list[int] = []  # per entry
        self._par: list[int] = []  # parent entry, -1 for the first token
        self._children: dict[tuple[int, int], int] = {}  # (parent entry, token) -> entry
        self._logits: dict[int, torch.Tensor] = {}  # entry -> [V] raw logits

    def __len__(self) -> int:
        """Number of cached entries."""
        return len(self._tok)

    # ---- public API -------------------------------------------------------------------
    def tree_logits(self, prefix_ids, parents, tokens) -> torch.Tensor:
        """Raw float32 logits at every tree node, shape (n_nodes, V) (see :meth:`tree_log_probs`)."""
        prefix = [int(t) for t in np.asarray(prefix_ids, dtype=np.int64).reshape(-1)]
        if not prefix:
            raise ValueError("prefix_ids must hold at least one token (e.g. BOS)")
        V = self.vocab_size
        if min(prefix) < 0 or max(prefix) >= V:
            raise ValueError(f"prefix token outside [0, {V})")
        parents, tokens = check_tree(parents, tokens, V)
        return self._run(prefix, parents, tokens)

    def tree_log_probs(self, prefix_ids, parents, tokens, temperature: float = 1.0) -> np.ndarray:
        r"""Next-token log-probabilities after the prefix (row 0) and after each tree node.

        .. math:: \log p_T(\cdot \mid x) = \mathrm{log\_softmax}(z(x) / T)

        Parameters
        ----------
        prefix_ids : array_like of int, shape (L,)
            Committed tokens, ``L >= 1``. The root (node 0) is the last of them.
        parents, tokens : array_like of int, shape (n_nodes,)
            The draft tree (see module docstring).
        temperature : float
            ``T > 0``.

        Returns
        -------
        numpy.ndarray of float64, shape (n_nodes, V)
            Equal, to float tolerance, to running the network autoregressively on
            ``prefix + path(root -> i)`` for every node ``i``.
        """
        logits = self.tree_logits(prefix_ids, parents, tokens)
        return _log_softmax64(logits, temperature)

    def next_log_probs(self, prefix_ids, temperature: float = 1.0) -> np.ndarray:
        """Log-probabilities of the token after ``prefix_ids``, shape (V,)."""
        return self.tree_log_probs(prefix_ids, [-1], [-1], temperature)[0]

    def commit(self, prefix_ids) -> None:
        """Declare ``prefix_ids`` committed: drop every cached entry that is not on it.

        Optional (the next :meth:`tree_log_probs` call prunes the same way); use it to
        release the memory of a rejected tree early.
        """
        prefix = [int(t) for t in np.asarray(prefix_ids, dtype=np.int64).reshape(-1)]
        matched = []
        parent = -1
        for t in prefix:
            e = self._children.get((parent, t))
            if e is None:
                break
            matched.append(e)
            parent = e
        keep_logits = {matched[-1]} if matched and len(matched) == len(prefix) else set()
        self._keep(matched, keep_logits)

    # ---- internals --------------------------------------------------------------------
    def _run(self, prefix: list[int], parents: np.ndarray, tokens: np.ndarray) -> torch.Tensor:
        L, n = len(prefix), parents.size
        # full graph: prefix chain 0..L-1, then tree nodes 1..n-1 as L..L+n-2
        f_tok = prefix + tokens[1:].tolist()
        f_par = list(range(-1, L - 1)) + [L - 1 + int(p) if p > 0 else L - 1 for p in parents[1:]]
        f_pos = list(range(L)) + (L - 1 + tree_depths(parents)[1:]).tolist()
        out_nodes = list(range(L - 1, L - 1 + n))
        is_out = np.zeros(len(f_tok), dtype=bool)
        is_out[L - 1:] = True

        # 1. match against the trie; an output node must have stored logits
        entry = [-1] * len(f_tok)
        for v, t in enumerate(f_tok):
            p = f_par[v]
            if p >= 0 and entry[p] < 0:
                continue
            e = self._children.get((entry[p] if p >= 0 else -1, t))
            if e is not None and (not is_out[v] or e in self._logits):
                entry[v] = e
        matched = sorted({e for e in entry if e >= 0})
        self._keep(matched, {entry[v] for v in out_nodes if entry[v] >= 0})
        remap = {old: new for new, old in enumerate(matched)}
        entry = [remap[e] if e >= 0 else -1 for e in entry]
        K = len(self._tok)

        # 2. new nodes (dedupe identical (parent, token) among them)
        new_of: list[int] = [-1] * len(f_tok)  # full node -> index among new tokens
        new_nodes: list[int] = []
        seen: dict[tuple, int] = {}
        for v in range(len(f_tok)):
            if entry[v] >= 0:
                continue
            p = f_par[v]
            key = (("e", entry[p]) if p >= 0 and entry[p] >= 0 else ("n", new_of[p] if p >= 0 else -1), f_tok[v])
            if key in seen:
                new_of[v] = seen[key]
            else:
                new_of[v] = seen[key] = len(new_nodes)
                new_nodes.append(v)

        if new_nodes:
            import torch

            q = len(new_nodes)
            visible = torch.zeros(q, K + q, dtype=torch.bool)
            anc_cache: dict[int, torch.Tensor] = {}
            for j, v in enumerate(new_nodes):
                p = f_par[v]
                if p >= 0 and entry[p] < 0:
                    visible[j] = visible[new_of[p]]
                elif p >= 0:
                    e = entry[p]
                    if e not in anc_cache:
                        anc_cache[e] = self._ancestor_columns(e, K + q)
                    visible[j] = anc_cache[e]
                visible[j, K + j] = True
            ids = torch.tensor([f_tok[v] for v in new_nodes], dtype=torch.long)
            pos = torch.tensor([f_pos[v] for v in new_nodes], dtype=torch.long)
            logits = self.network.forward(ids, pos, visible, self._store)  # [q, V]
            self.n_forward += 1
            self.n_fed += q
            for j, v in enumerate(new_nodes):
                p = f_par[v]
                par_entry = (entry[p] if entry[p] >= 0 else K + new_of[p]) if p >= 0 else -1
                self._tok.append(f_tok[v])
                self._par.append(par_entry)
                self._children.setdefault((par_entry, f_tok[v]), K + j)
                if is_out[v]:
                    self._logits[K + j] = logits[j]
            for v in range(len(f_tok)):
                if entry[v] < 0:
                    entry[v] = K + new_of[v]
        import torch

        return torch.stack([self._logits[entry[v]] for v in out_nodes])  # [n, V]

    def _ancestor_columns(self, e: int, width: int) -> "torch.Tensor":
        import torch

        row = torch.zeros(width, dtype=torch.bool)
        while e >= 0:
            row[e] = True
            e = self._par[e]
        return row

    def _keep(self, entries: Sequence[int], keep_logits: set[int]) -> None:
        """Keep only ``entries`` (sorted, closed under parents) and logits of ``keep_logits``."""
        entries = list(entries)
        remap = {old: new for new, old in enumerate(entries)}
        self._store.keep(entries)
        self._tok = [self._tok[e] for e in entries]
        self._par = [remap[self._par[e]] if self._par[e] >= 0 else -1 for e in entries]
        self._children = {(self._par[i], t): i for i, t in reversed(list(enumerate(self._tok)))}
        self._logits = {remap[e]: self._logits[e] for e in keep_logits if e in self._logits}


def _log_softmax64(logits: torch.Tensor, temperature: float) -> np.ndarray:
    """``log_softmax(logits / T)`` in float64, as numpy, shape (n, V)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    import torch

    z = logits.detach().to("cpu", torch.float64) / float(temperature)
    return torch.log_softmax(z, dim=-1).numpy()
