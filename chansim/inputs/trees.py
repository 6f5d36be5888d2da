r"""Draft trees as flat arrays.

Node 0 is the **root**: the end of the current prefix, where the target's next-token
distribution is known without drafting.  Nodes ``1..k`` are the ``k`` drafted tokens.
A tree is two integer arrays:

* ``parents[i]`` — parent of node i (``parents[0] = -1``; ``parents[i] < i``), so a
  node's ancestors precede it and depth-first code needs no recursion;
* ``ranks[i]`` — the 1-based **slot** of node i among its parent's drafts: for ERSD
  the rank, in the draft's race at the parent, of the token the node holds; for the
  other methods the order in which the child was drafted (1 = first).  Plain
  ("sibling-closed") trees have slots 1..m under every node; the generalised ERSD
  drafter may use any set of distinct ranks.

Tokens per target call = accepted depth + 1 (the target always adds a token).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .numbers import whole_number

__all__ = ["Tree", "chain", "batch", "branching", "sequences", "from_parents", "parse_tree", "as_tree", "check_token_tree"]


@dataclass(frozen=True, eq=False)
class Tree:
    """An immutable draft tree (see module docstring). Build it with the helpers below."""

    parents: np.ndarray   # [n_nodes] int64, parents[0] = -1
    ranks: np.ndarray     # [n_nodes] int64, ranks[0] = 0
    name: str = field(default="tree")

    def __post_init__(self):
        parents = np.asarray(self.parents, dtype=np.int64)
        ranks = np.asarray(self.ranks, dtype=np.int64)
        _validate(parents, ranks)
        parents.setflags(write=False)
        ranks.setflags(write=False)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "ranks", ranks)

    # ---- sizes
    @property
    def n_nodes(self) -> int:
        """Number of nodes including the root."""
        return len(self.parents)

    @property
    def size(self) -> int:
        """k: the number of drafted tokens (nodes other than the root)."""
        return len(self.parents) - 1

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of every node (root 0), shape ``(n_nodes,)``."""
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        for i in range(1, self.n_nodes):
            depth[i] = depth[self.parents[i]] + 1
        return depth

    @property
    def max_depth(self) -> int:
        return int(self.depth.max())

    @cached_property
    def children(self) -> tuple[np.ndarray, ...]:
        """``children[u]``: the children of node u ordered by slot (rank)."""
        kids = [[] for _ in range(self.n_nodes)]
        for i in range(1, self.n_nodes):
            kids[self.parents[i]].append(i)
        return tuple(np.array(sorted(c, key=lambda i: self.ranks[i]), dtype=np.int64) for c in kids)

    @cached_property
    def num_children(self) -> np.ndarray:
        return np.array([len(c) for c in self.children], dtype=np.int64)

    def path(self, node: int) -> list[int]:
        """Nodes from the root (exclusive) to ``node`` (inclusive)."""
        out = []
        while node > 0:
            out.append(int(node))
            node = int(self.parents[node])
        return out[::-1]

    @property
    def sibling_closed(self) -> bool:
        """True when every node's children hold slots 1..m (plain top-m drafting)."""
        return all(np.array_equal(self.ranks[c], np.arange(1, len(c) + 1)) for c in self.children)

    def __repr__(self) -> str:
        return f"Tree({self.name!r}, k={self.size}, depth={self.max_depth})"

    def render(self) -> str:
        """Text rendering, one node per line: ``└─ r2`` = the child in slot 2.

        >>> print(branching([2, 1]).render())
        root
        ├─ r1
        │  └─ r1
        └─ r2
           └─ r1
        """
        lines = ["root"]

        def walk(u, indent):
            kids = self.children[u]
            for j, c in enumerate(kids):
                last = j == len(kids) - 1
                lines.append(f"{indent}{'└─' if last else '├─'} r{self.ranks[c]}")
                walk(c, indent + ("   " if last else "│  "))

        walk(0, "")
        return "\n".join(lines)


def _validate(parents: np.ndarray, ranks: np.ndarray) -> None:
    if parents.ndim != 1 or len(parents) == 0:
        raise ValueError(f"parents must be a non-empty 1-D array, got shape {parents.shape}")
    if ranks.shape != parents.shape:
        raise ValueError(f"ranks shape {ranks.shape} differs from parents shape {parents.shape}")
    if parents[0] != -1:
        raise ValueError(f"node 0 is the root and must have parent -1, got {parents[0]}")
    n = len(parents)
    # vectorised pass (trees of 10^6 nodes); the loop below only runs to name a violation
    par, rk = parents[1:], ranks[1:]
    ordered = np.all((par >= 0) & (par < np.arange(1, n))) and np.all(rk >= 1)
    if ordered and not np.any(np.diff(np.sort(par * (int(rk.max(initial=0)) + 1) + rk)) == 0):
        return
    for i in range(1, n):
        par = parents[i]
        if not 0 <= par < n:
            raise ValueError(f"node {i} has parent index {par}, outside 0..{n - 1}")
        if par >= i:
            cyc = _find_cycle(parents)
            if cyc:
                raise ValueError(f"tree has a cycle through nodes {cyc}")
            raise ValueError(f"node {i} has parent {par} >= {i}: list parents before children")
        if ranks[i] < 1:
            raise ValueError(f"node {i} has slot/rank {ranks[i]}; ranks are 1-based")
    pairs = set()
    for i in range(1, n):
        key = (int(parents[i]), int(ranks[i]))
        if key in pairs:
            raise ValueError(f"node {i} repeats slot/rank {ranks[i]} under parent {parents[i]}")
        pairs.add(key)


def check_token_tree(parents, tokens, vocab_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a flat draft tree with tokens and return ``(parents, tokens)`` as int64 arrays.

    The one validation of token trees (LLM scoring, sources); :func:`from_parents`
    validates the shape-only :class:`Tree`.

    Parameters
    ----------
    parents, tokens : array_like of int, shape (n_nodes,)
        ``parents[i] < i`` for ``i >= 1``; entry 0 (the root) is ignored.
    vocab_size : int, optional
        If given, drafted tokens must lie in ``[0, vocab_size)``.

    Examples
    --------
    >>> check_token_tree([-1, 0, 1, 0], [-1, 5, 6, 7])[0].tolist()
    [-1, 0, 1, 0]
    """
    parents = np.asarray(parents, dtype=np.int64).reshape(-1)
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if parents.shape != tokens.shape or parents.size == 0:
        raise ValueError(f"parents and tokens must be non-empty and of equal length, "
                         f"got {parents.size} and {tokens.size}")
    idx = np.arange(parents.size)
    bad = np.flatnonzero((parents[1:] < 0) | (parents[1:] >= idx[1:]))
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(f"tree node {i} has parent {int(parents[i])}; need 0 <= parent < {i}")
    if vocab_size is not None:
        bad = np.flatnonzero((tokens[1:] < 0) | (tokens[1:] >= vocab_size))
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"tree node {i} has token {int(tokens[i])} outside [0, {vocab_size})")
    parents = parents.copy()
    parents[0] = -1
    return parents, tokens


def _find_cycle(parents: np.ndarray) -> list[int]:
    n = len(parents)
    for start in range(n):
        seen, u = [], start
        while 0 <= u < n and u not in seen and u != 0:
            seen.append(u)
            u = int(parents[u])
        if u in seen:
            return seen[seen.index(u):]
    return []


def from_parents(parents, ranks=None, name: str = "tree") -> Tree:
    """Tree from an explicit parent list (node 0 = root with parent -1).

    Without ``ranks`` children get slots 1, 2, ... in node order.

    >>> from_parents([-1, 0, 0, 1]).ranks.tolist()
    [0, 1, 2, 1]
    >>> from_parents([-1, 2, 1])
    Traceback (most recent call last):
    ...
    ValueError: tree has a cycle through nodes [1, 2]
    """
    parents = np.asarray(parents, dtype=np.int64)
    if ranks is None:
        ranks = np.zeros_like(parents)
        counts: dict[int, int] = {}
        for i in range(1, len(parents)):
            counts[int(parents[i])] = counts.get(int(parents[i]), 0) + 1
            ranks[i] = counts[int(parents[i])]
    return Tree(parents, np.asarray(ranks, dtype=np.int64), name)


def _check_k(k, what="k") -> int:
    return whole_number(k, what, minimum=0)


def chain(k: int) -> Tree:
    """A sequence of k drafted tokens (k = 0: autoregressive decoding)."""
    k = _check_k(k)
    return from_parents(np.arange(-1, k), name=f"chain:{k}")


def batch(m: int) -> Tree:
    """m drafted children of the root (one level)."""
    m = _check_k(m, "m")
    return from_parents([-1] + [0] * m, name=f"batch:{m}")


def branching(widths) -> Tree:
    """Every node at depth d has ``widths[d]`` children, e.g. ``[4, 2, 1]`` (4 + 8 + 8 nodes)."""
    widths = [_check_k(w, "branching width") for w in widths]
    parents, frontier = [-1], [0]
    for w in widths:
        nxt = []
        for u in frontier:
            for _ in range(w):
                parents.append(u)
                nxt.append(len(parents) - 1)
        frontier = nxt
    return from_parents(parents, name="branch:" + ",".join(map(str, widths)))


def sequences(count: int, length: int) -> Tree:
    """``count`` independent drafted sequences of ``length`` tokens (SpecTr's draft set)."""
    count, length = _check_k(count, "count"), _check_k(length, "length")
    parents = [-1]
    for _ in range(count):
        prev = 0
        for _ in range(length):
            parents.append(prev)
            prev = len(parents) - 1
    return from_parents(parents, name=f"seq:{count}x{length}")


def parse_tree(spec: str) -> Tree:
    """Parse ``chain:K``, ``batch:M``, ``branch:W1,W2,..`` or ``seq:CxL``.

    >>> parse_tree("branch:4,2,1").size
    20
    """
    kind, _, arg = str(spec).partition(":")
    try:
        if kind == "chain":
            return chain(int(arg))
        if kind == "batch":
            return batch(int(arg))
        if kind == "branch":
            return branching([int(w) for w in arg.split(",")])
        if kind == "seq":
            count, length = arg.lower().split("x")
            return sequences(int(count), int(length))
    except ValueError as err:
        if "invalid literal" not in str(err) and "not enough values" not in str(err):
            raise
    raise ValueError(f"bad tree spec {spec!r}; use chain:K, batch:M, branch:W1,W2,... or seq:CxL")


def as_tree(tree) -> Tree:
    """A :class:`~chansim.inputs.trees.Tree` from a tree or a spec string (``chain:4``, ...)."""
    if isinstance(tree, Tree):
        return tree
    if isinstance(tree, str):
        return parse_tree(tree)
    raise ValueError(f"tree must be a chansim.inputs.trees.Tree or a spec such as 'chain:4', got {tree!r}")
