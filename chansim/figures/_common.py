"""Shared pieces of the figure modules: seeds, method styles, Monte Carlo markers."""
from __future__ import annotations

import numpy as np

from ..common.stats import wilson_interval
from ..verify.registry import METHODS, style

#: confidence level of every plotted Monte Carlo interval
CONFIDENCE = 0.99

#: name -> (label, colour, marker); one look for a method across all figures: the
#: registry's methods (their own style) and the figures' reference curves
STYLE = {
    **{name: style(name) for name in METHODS},
    "pfr": ("PFR list, i.i.d. candidates", "#17becf", "X"),
    "lp-iid": ("LP optimum, i.i.d. drafts", "k", None),
    "lp-without": ("LP optimum, drafts w/o replacement", "0.35", None),
}

FAMILY_MARKERS = {"dirichlet": "o", "zipf": "s", "noisy": "^"}
FAMILY_KNOB = {"dirichlet": "mixing distance", "zipf": "shuffled fraction", "noisy": "logit noise sigma"}


def seed_for(settings, *keys: int) -> int:
    """A 32-bit seed determined by the base seed and integer keys (figure, item, ...).

    Independent of the order in which parallel workers run, so the data are reproducible.
    """
    return int(np.random.SeedSequence([int(settings.seed), *map(int, keys)]).generate_state(1)[0])


def label(method: str) -> str:
    return STYLE[method][0]


def colour(method: str) -> str:
    return STYLE[method][1]


def marker(method: str) -> str:
    return STYLE[method][2] or "o"


def label_axes(ax, xlabel: str, ylabel: str, title: str, title_size=None, grid: bool = False, **legend) -> None:
    """Axis labels, title (at ``title_size`` when given) and legend (``legend``: its keywords) of one
    panel; ``grid``: a light grid."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title_size is None:
        ax.set_title(title)
    else:
        ax.set_title(title, fontsize=title_size)
    ax.legend(**legend)
    if grid:
        ax.grid(alpha=0.3)


def mc_errorbar(ax, x, mean, low, high, method: str | None = None, colour_=None, marker_=None, label_=None,
                size: float = 5.0, **kw):
    """Monte Carlo points with their (asymmetric) interval as error bars."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    yerr = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
    c = colour_ or (colour(method) if method else "k")
    m = marker_ or (marker(method) if method else "o")
    return ax.errorbar(x, mean, yerr=yerr, fmt=m, color=c, mfc="white", mec=c, ms=size, capsize=2.5, lw=1.0,
                       elinewidth=1.0, label=label_, zorder=3, **kw)


def wilson(successes, trials: int, confidence: float = CONFIDENCE):
    """Wilson interval (vectorised), as two lists."""
    lo, hi = wilson_interval(np.asarray(successes), int(trials), confidence)
    return np.atleast_1d(lo).tolist(), np.atleast_1d(hi).tolist()
