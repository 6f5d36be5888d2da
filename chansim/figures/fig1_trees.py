"""Figure 1: the decoding trees and the accept/reject structure of the residual methods.

Five drafting shapes built with :mod:`chansim.inputs.trees` (autoregressive, single draft,
sequence, batch, tree).  Every drafted node is tried by the target in slot order
(accept edges); when every child of the node it has reached is rejected, the target
emits a *correction* token from the residual norm((r - q)+); when it reaches a leaf,
it emits a *bonus* token from p.  Either way one target call yields accepted depth + 1
tokens.  The data are the parent/slot arrays of the trees.
"""
from __future__ import annotations


from ..inputs import trees
from ..theory import best_sibling_closed_tree, specinfer_weights
from ..inputs.distributions import synthetic_pair
from .tree_drawing import tree_layout

_PAIR_SEED = 2

TITLE = "Decoding trees and the accept/reject structure of one target call"


def _panels(settings):
    pair = synthetic_pair("dirichlet", 16, 1.0, seed=_PAIR_SEED)   # fixed: the panel shows a shape
    w = specinfer_weights(pair.target_probs, pair.draft_probs, 6)
    opt = best_sibling_closed_tree(w, 6, name="tree")
    if opt.max_depth < 2 or opt.num_children[0] < 2:        # keep the panel a genuine tree
        opt = trees.from_parents([-1, 0, 0, 1, 1, 2, 3], name="tree")
    shapes = [
        ("autoregressive (k = 0)", trees.chain(0), "no draft: the target samples one token"),
        ("single draft (k = 1)", trees.chain(1), "sd: accept w.p. min(1, p/q)"),
        ("sequence (k = 4)", trees.chain(4), "sd on a chain"),
        ("batch (k = 4)", trees.batch(4), "specinfer / rsd / spectr / ersd"),
        ("tree (k = 6)", opt, "optimal specinfer tree for a Dirichlet pair"),
    ]
    return [{"title": t, "parents": tr.parents.tolist(), "ranks": tr.ranks.tolist(), "k": tr.size,
             "note": note} for t, tr, note in shapes]


def compute(settings, parallel) -> dict:
    panels = _panels(settings)
    caption = (
        "Draft trees from chansim.inputs.trees: autoregressive (k=0), single draft (k=1), sequence (chain, k=4), "
        "batch (k=4) and a k=6 tree (the best sibling-closed specinfer tree for an independent Dirichlet pair, "
        f"V=16, seed {_PAIR_SEED}). Solid green edges: drafted children, tried by the target in "
        "slot order (numbers). At the node the target has reached, if every child is rejected it emits a "
        "correction token from the residual norm((r-q)+) (red dashed); at a leaf it emits a bonus token from p "
        "(purple dotted). Tokens per target call = accepted depth + 1. No randomness, no trials."
    )
    return {"panels": panels, "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = data["panels"]
    heights = []
    for pnl in panels:
        tree = trees.from_parents(pnl["parents"], pnl["ranks"])
        heights.append(max(1, int((tree.num_children == 0).sum())))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.8),
                             gridspec_kw={"width_ratios": [0.7, 1.0, 1.6, 1.1, 1.4]})
    span = max(heights) + 0.6
    for ax, pnl in zip(axes, panels):
        tree = trees.from_parents(pnl["parents"], pnl["ranks"])
        x, y = tree_layout(tree)
        for u in range(1, tree.n_nodes):
            par = int(tree.parents[u])
            ax.annotate("", xy=(x[u], y[u]), xytext=(x[par], y[par]),
                        arrowprops=dict(arrowstyle="-|>", color="#2ca02c", lw=1.6, shrinkA=9, shrinkB=9))
            ax.text((x[u] + x[par]) / 2, (y[u] + y[par]) / 2 + 0.12, str(int(tree.ranks[u])),
                    color="#2ca02c", ha="center", va="bottom", fontsize=8)
        for u in range(tree.n_nodes):
            leaf = len(tree.children[u]) == 0
            ex, ey = (x[u] + 0.55, y[u]) if leaf else (x[u], y[u] - 0.5)   # bonus to the right, residual below
            style = dict(color="#9467bd", ls=":") if leaf else dict(color="#d62728", ls="--")
            ax.plot([x[u], ex], [y[u], ey], lw=1.2, **style, zorder=1)
            ax.scatter([ex], [ey], marker="s", s=60, facecolor="white", edgecolor=style["color"], zorder=2)
            ax.text(ex, ey, ("p" if tree.size == 0 else "b") if leaf else "r", ha="center", va="center",
                    fontsize=7, color=style["color"], zorder=3)
            is_root = u == 0
            ax.scatter([x[u]], [y[u]], s=330 if is_root else 250, zorder=4,
                       facecolor="#fde9c9" if is_root else "#dff0d8", edgecolor="k", lw=1.0)
            ax.text(x[u], y[u], "ctx" if is_root else f"x{u}", ha="center", va="center", fontsize=7, zorder=5)
        ax.set_title(pnl["title"], fontsize=10)
        ax.text(0.5, -0.02, pnl["note"], transform=ax.transAxes, ha="center", va="top", fontsize=7.5,
                color="0.3", wrap=True)
        ax.set_xlim(-0.5, max(1.0, x.max() + 0.9))
        mid = (y.min() + y.max()) / 2
        ax.set_ylim(mid - span / 2 - 0.3, mid + span / 2)      # one vertical scale for all panels
        ax.set_axis_off()
    handles = [
        Line2D([], [], color="#2ca02c", lw=1.6, label="drafted child (tried in slot order 1, 2, ...;"
               " accept -> move on)"),
        Line2D([], [], color="#d62728", ls="--", marker="s", mfc="white", label="all children rejected -> correction "
               "token r ~ norm((r - q)+)"),
        Line2D([], [], color="#9467bd", ls=":", marker="s", mfc="white", label="leaf reached -> bonus token b ~ p"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("One target call: tokens = accepted depth + 1", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig
