r"""When can a draft pay for itself?  Break-even acceptance of an sd chain from measured forward costs.

With the cost model of :mod:`chansim.llm.wallclock` (docs/theory.md, ``--cost``), an sd chain of
K drafted tokens with per-node acceptance :math:`\beta` (i.i.d. model) has wall-clock speed-up

.. math:: S_K(\beta) = \frac{1 - \beta^{K+1}}{1 - \beta}\cdot
          \frac{c_p(1)}{K\,c_q(1) + c_p(K+1)}

(Leviathan et al. 2023, eq. (1), with measured costs: :math:`c_q(1)` one draft forward of one
token, :math:`c_p(n)` one target forward of n tokens).  It exceeds 1 iff the tokens per call
exceed the cost ratio :math:`\rho_K = (K c_q(1) + c_p(K+1))/c_p(1)`; the smallest such
:math:`\beta` is the break-even acceptance :math:`\beta^*_K` (none when :math:`\rho_K \ge K + 1`,
the most a chain of K can give: then no draft with these costs can win, however good).
"""
from __future__ import annotations

import numpy as np

from ..verify.sd import sd_chain_tokens

__all__ = ["cost_ratio", "breakeven_acceptance", "chain_speedup", "breakeven_table"]


def _median(x) -> float:
    return float(np.median(np.asarray(x, dtype=float)))


def _cost(costs: dict, role: str, key):
    table = costs[role]
    if key in table:
        return _median(table[key])
    if str(key) in table:
        return _median(table[str(key)])
    raise ValueError(f"no measured {role} cost for {key!r} (have {sorted(map(str, table))})")


def cost_ratio(costs: dict, depth: int) -> float:
    r""":math:`\rho_K = (K c_q(1) + c_p(K+1)) / c_p(1)` from :func:`chansim.llm.wallclock.measure_costs` medians.

    >>> costs = {"draft": {1: [0.5]}, "target": {"chain:0": [1.0], "chain:2": [1.2]}}
    >>> cost_ratio(costs, 2)
    2.2
    """
    k = int(depth)
    if k < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return (k * _cost(costs, "draft", 1) + _cost(costs, "target", f"chain:{k}")) / _cost(costs, "target", "chain:0")


def chain_speedup(beta, depth: int, costs: dict):
    r""":math:`S_K(\beta)` of the module docstring (array-valued in ``beta``).

    >>> costs = {"draft": {1: [0.5]}, "target": {"chain:0": [1.0], "chain:2": [1.2]}}
    >>> round(float(chain_speedup(0.5, 2, costs)), 6)      # 1.75 tokens per call / 2.2
    0.795455
    """
    return sd_chain_tokens(beta, int(depth)) / cost_ratio(costs, depth)


def breakeven_acceptance(costs: dict, depth: int) -> float | None:
    r"""Smallest :math:`\beta` with :math:`S_K(\beta) \ge 1`, or ``None`` if even :math:`\beta = 1` loses.

    :math:`(1-\beta^{K+1})/(1-\beta)` increases from 1 to K + 1 on [0, 1], so the root of
    :math:`S_K(\beta) = 1` is found by bisection (to 1e-12).

    >>> costs = {"draft": {1: [0.5]}, "target": {"chain:0": [1.0], "chain:1": [1.1]}}
    >>> round(breakeven_acceptance(costs, 1), 6)            # 1 + beta = 1.6
    0.6
    >>> breakeven_acceptance({"draft": {1: [1.0]}, "target": {"chain:0": [1.0], "chain:1": [1.1]}}, 1) is None
    True
    """
    rho = cost_ratio(costs, depth)
    if rho <= 1.0:
        return 0.0
    if rho >= int(depth) + 1:
        return None
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sd_chain_tokens(mid, int(depth)) < rho else (lo, mid)
    return 0.5 * (lo + hi)


def breakeven_table(costs: dict, beta: float, depths=(1, 2, 3, 4)) -> list[dict]:
    """Per chain depth: cost ratio, break-even acceptance, predicted speed-up at ``beta`` and at beta = 1."""
    out = []
    for k in depths:
        out.append({"depth": int(k), "cost_ratio": cost_ratio(costs, k), "breakeven_beta": breakeven_acceptance(costs, k),
                    "speedup": float(chain_speedup(beta, k, costs)), "speedup_perfect_draft": float(chain_speedup(1.0, k, costs))})
    return out
