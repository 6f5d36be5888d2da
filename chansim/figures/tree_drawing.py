"""Drawing draft trees with matplotlib (moved out of :mod:`chansim.inputs.trees`, which holds the structure only)."""
from __future__ import annotations

import numpy as np

from ..inputs.trees import Tree

__all__ = ["draw_tree", "tree_layout"]


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
    >>> from chansim.inputs.trees import branching
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

    >>> from chansim.inputs.trees import batch
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
