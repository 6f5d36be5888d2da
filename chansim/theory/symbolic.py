r"""Symbolic derivations (sympy) behind the closed forms; tests compare them with numerics.

* :func:`sd_chain_formula` — :math:`1 + \sum_{d=1}^{\gamma}\beta^d = (1-\beta^{\gamma+1})/(1-\beta)`.
* :func:`two_token_rank_law` — for V = 2 the rank law from the exact integral
  :math:`a_1 = \sum_y p_y \int_0^\infty e^{-t} e^{-t c_{y}}\,dt = \sum_y p_y/(1 + c_y)`,
  :math:`c_y = (p_y q_{x}/q_y - p_x)_+` (x the other token), which simplifies to
  :math:`a_1 = 1 - |p_1 - q_1| = \sum_x \min(p_x, q_x)`: for two tokens ERSD and sd accept
  equally often.
* :func:`complete_tree_formula` — a complete tree with m ranked children per node and
  depth D under ERSD: :math:`\sum_{d=0}^{D} s^d = (1 - s^{D+1})/(1 - s)`,
  :math:`s = \sum_{r\le m} a_r`.
* :func:`two_token_renewal` — μ, μ₂ and the renewal constant C for a = (1 - δ, δ).
"""
from __future__ import annotations

import sympy as sp

__all__ = ["sd_chain_formula", "two_token_rank_law", "complete_tree_formula", "two_token_renewal"]


def sd_chain_formula():
    r"""Return ``(beta, gamma, expr)`` with expr the summed geometric series for sd on a chain.

    >>> b, g, e = sd_chain_formula()
    >>> sp.simplify(e - (1 - b**(g + 1)) / (1 - b))
    0
    """
    beta, d = sp.symbols("beta d", positive=True)
    gamma = sp.Symbol("gamma", integer=True, nonnegative=True)
    series = sp.summation(beta ** d, (d, 1, gamma))
    if isinstance(series, sp.Piecewise):          # (gamma, beta = 1), (general, otherwise)
        series = series.args[-1][0]
    return beta, gamma, sp.simplify(1 + series)


def two_token_rank_law():
    r"""Symbolic :math:`(a_1, a_2)` for V = 2 in the case :math:`q_1 \ge p_1` (0 < p_1, q_1 < 1).

    Derived from the integral form of the rank law (see module docstring), not assumed.
    Returns ``(p1, q1, a1, a2)``.

    >>> p1, q1, a1, a2 = two_token_rank_law()
    >>> sp.simplify(a1 - (1 - (q1 - p1)))
    0
    """
    p1, q1, t = sp.symbols("p1 q1 t", positive=True)
    p2, q2 = 1 - p1, 1 - q1
    # case q1 >= p1 (rho_1 = q1/p1 >= rho_2): for y = 1 the other token (2) has
    # c = (p1 q2/q1 - p2)_+ = 0; for y = 2, c = p2 q1/q2 - p1 >= 0.
    c_y1 = 0
    c_y2 = p2 * q1 / q2 - p1
    a1 = (p1 * sp.integrate(sp.exp(-t) * sp.exp(-t * c_y1), (t, 0, sp.oo))
          + p2 * sp.integrate(sp.exp(-t) * sp.exp(-t * c_y2), (t, 0, sp.oo), conds="none"))
    a1 = sp.simplify(a1)
    return p1, q1, a1, sp.simplify(1 - a1)


def complete_tree_formula():
    r"""``(s, D, expr)``: tokens per call of a complete tree whose path products are powers of s.

    >>> s, D, e = complete_tree_formula()
    >>> sp.simplify(e.subs({s: sp.Rational(1, 2), D: 2}))
    7/4
    """
    s, d = sp.symbols("s d", positive=True)
    depth = sp.Symbol("D", integer=True, nonnegative=True)
    expr = sp.summation(s ** d, (d, 0, depth))
    if isinstance(expr, sp.Piecewise):
        expr = expr.args[-1][0]
    return s, depth, sp.simplify(expr)


def two_token_renewal():
    r"""``(delta, mu, mu2, C)`` for the rank law a = (1 - δ, δ).

    >>> d, mu, mu2, C = two_token_renewal()
    >>> float(mu.subs(d, sp.Rational(1, 2))) == float(sp.log(2))
    True
    """
    delta = sp.Symbol("delta", positive=True)
    a = (1 - delta, delta)
    mu = -sum(x * sp.log(x) for x in a)
    mu2 = sum(x * sp.log(x) ** 2 for x in a)
    C = sp.log(mu) / mu + mu2 / (2 * mu ** 2)
    return delta, mu, mu2, C
