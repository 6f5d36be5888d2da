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

__all__ = ["Tree", "chain", "batch", "branching", "sequences", "from_parents", "parse_tree", "draw_tree", "tree_layout"]


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
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {k!r}")
    return int(k)


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


def draw_tree(tree: Tree, ax=None, labels=None, highlight=None, node_size: float = 220.0,
              color: str = "#4C72B0", highlight_color: str = "#DD8452", show_ranks: bool = True):
    """Draw ``tree`` with matplotlib: depth left to right, leaves spread vertically.

    Parameters
    ----------
    tree : Tree
    ax : matplotlib Axes, optional
        Created (``plt.subplots()``) when omitted.
    labels : sequence of str, optional
        One label per node (e.g. drafted tokens); default: the slot ``r<k>`` of each
        non-root node when ``show_ranks``.
    highlight : iterable of int, optional
        Nodes to colour with ``highlight_color`` (e.g. a ``StepResult.path``); the
        edges into them are drawn thicker.

    Returns
    -------
    matplotlib Axes

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = draw_tree(branching([2, 1]), highlight=[1, 2])
    >>> len(ax.collections) >= 1
    True
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.1 * tree.max_depth, 0.8 + 0.35 * max(1, _leaf_count(tree))))
    x, y = tree_layout(tree)                                    # [n_nodes] each
    marked = set(int(i) for i in (highlight if highlight is not None else []))
    marked_root = marked | {0} if marked else marked
    for i in range(1, tree.n_nodes):
        par = int(tree.parents[i])
        on_path = i in marked and par in marked_root
        ax.plot([x[par], x[i]], [y[par], y[i]], color=highlight_color if on_path else "0.6",
                lw=2.4 if on_path else 1.0, zorder=1)
    colours = [highlight_color if (i in marked or (i == 0 and marked)) else color for i in range(tree.n_nodes)]
    colours[0] = "0.25" if not marked else highlight_color
    ax.scatter(x, y, s=node_size, c=colours, zorder=2, edgecolors="white", linewidths=1.0)
    if labels is None and show_ranks:
        labels = ["root"] + [f"r{r}" for r in tree.ranks[1:]]
    if labels is not None:
        if len(labels) != tree.n_nodes:
            raise ValueError(f"labels has {len(labels)} entries for {tree.n_nodes} nodes")
        for i, text in enumerate(labels):
            ax.annotate(str(text), (x[i], y[i]), xytext=(0, 9), textcoords="offset points", ha="center",
                        fontsize=7)
    ax.set_xticks(range(tree.max_depth + 1))
    ax.set_xlabel("depth")
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{tree.name} (k={tree.size})", fontsize=9)
    ax.margins(0.15)
    return ax


def _leaf_count(tree: Tree) -> int:
    return int(np.count_nonzero(tree.num_children == 0))


def tree_layout(tree: Tree) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates ``(x, y)`` of every node: x = depth; leaves at y = 0, -1, -2, ...
    in depth-first order, inner nodes at the mean of their children.

    >>> x, y = tree_layout(batch(2))
    >>> x.tolist(), y.tolist()
    ([0.0, 1.0, 1.0], [-0.5, 0.0, -1.0])
    """
    return tree.depth.astype(float), _leaf_positions(tree)


def _leaf_positions(tree: Tree) -> np.ndarray:
    """y of :func:`tree_layout`."""
    y = np.zeros(tree.n_nodes)
    counter = [0]

    def place(u):
        kids = tree.children[u]
        if not len(kids):
            y[u] = -counter[0]
            counter[0] += 1
            return
        for c in kids:
            place(int(c))
        y[u] = y[kids].mean()

    place(0)
    return y
