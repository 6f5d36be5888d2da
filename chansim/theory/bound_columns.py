r"""The ``bound`` and ``asymptote`` columns of ``chansim bound`` (docs/theory.md §3–§5).

* **bound** (guaranteed): every ERSD tree of k drafted nodes has

  .. math:: E[\tau] \le \min\Big(k + 1,\ \frac{1}{\nu},\
            \frac{\ln(k+1) + \ln V_R}{H_{\mathrm{low}}(R)},\ c^*_k\Big),

  :math:`c^*_k` the exit-entropy bound of §10 (:func:`exit_entropy_bound`),

  with :math:`H_{\mathrm{low}}` the lower end of the rigorous H(R) interval (the exact
  H(R) for small V), ν = P(never drafted) (a path is cut with probability ≥ ν at every
  node, so :math:`E[\tau] \le 1/\nu`) and k + 1 the trivial bound.  ``bound_paper`` is
  the paper's form :math:`(\ln(k+1) + \ln V_R)/H(R)` at the point value of H(R).
* **asymptote**: the large-k relation :math:`\ln k/H(R) + C` (or :math:`1/\nu`), shown
  only where it lies in [1, k + 1]; ``asymptote_within_1pct_from_k`` is the smallest k of
  the grid 1, 2, 4, …, 2^16 from which it stays within 1% of the optimal ERSD value
  (:func:`chansim.theory.optimal.top_products_sums` on the computed ranks).
"""
from __future__ import annotations

import math

import numpy as np

from .asymptotics import large_k_relation
from .optimal import top_products_sums
from .ranklaw import RankLaw

__all__ = ["bound_columns", "guaranteed_bound", "exit_entropy_bound", "max_entropy_capped"]

_GRID = [2 ** j for j in range(17)]


def max_entropy_capped(caps, mult=None) -> float:
    r"""Max of H(b) over laws b with :math:`b_r \le` ``caps[r]`` (``mult[r]`` copies of each cap); -inf if infeasible.

    Water-filling: :math:`b_r = \min(\text{cap}_r, \lambda)` with :math:`\sum b = 1` (KKT).

    >>> round(max_entropy_capped([1.0, 1.0]), 12) == round(math.log(2), 12)
    True
    """
    caps = np.asarray(caps, dtype=float)
    mult = np.ones_like(caps) if mult is None else np.asarray(mult, dtype=float)
    if float((caps * mult).sum()) < 1.0:
        return -math.inf
    order = np.argsort(caps)
    c, m = caps[order], mult[order]
    below = np.concatenate([[0.0], np.cumsum(c * m)])[:-1]          # mass of the caps under c_i
    above = m[::-1].cumsum()[::-1]                                   # count of ranks from i on
    lam_i = (1.0 - below) / above                                    # level if ranks i.. sit at lambda
    i = int(np.flatnonzero(lam_i <= c)[0])
    lam = lam_i[i]
    pos_c = c[:i][c[:i] > 0]
    pos_m = m[:i][c[:i] > 0]
    h = float(-(pos_m * pos_c * np.log(pos_c)).sum())
    if lam > 0:
        h += float(-above[i] * lam * math.log(lam))
    return h


def exit_entropy_bound(k: int, law: RankLaw, support: int) -> float:
    r"""All-k bound of docs/theory.md §10: the largest c in [1, k+1] with
    :math:`c\,H_{low}(R) \le \ln(k+1) + H_{max}(c)`, :math:`H_{max}(c)` the largest entropy of a
    law b with :math:`b_r \\le c\\,\\hat a_r`, the ranks beyond the computed ones sharing
    :math:`c\\hat\\tau` over the ``support`` − K remaining values, plus a pool of mass
    :math:`c\\varepsilon` (the l1 error of the law) over ``support`` extra values.

    >>> from chansim.theory.ranklaw import law_from_probs
    >>> exit_entropy_bound(0, law_from_probs([0.5, 0.5]), 2)        # k = 0: one call, one token
    1.0
    """
    h = float(law.entropy_ci[0])
    if h <= 0:
        return float(k + 1)
    eps = 0.0 if not np.isfinite(law.error) else float(law.error)
    a = np.append(np.asarray(law.probs, dtype=float), law.never)
    # ranks beyond the computed K: V_R minus the K computed ones minus "never" when it is a value
    # (counting "never" when it is impossible undercounted them by one, and at V = K + 1 dropped
    # the tail mass from the caps: issue 20)
    n_tail = max(int(support) - len(law.probs) - int(law.never > 0), 0)
    tail = max(float(law.tail), 0.0)                                 # the excess over it is in the pool
    if tail > 0:
        n_tail = max(n_tail, 1)
    n_pool = max(int(support), 1)
    log_k = math.log(k + 1)
    h_cap = math.log(max(int(support), 1))                           # b lives on the V_R values of R

    def ok(c):                                                       # g(c) <= 0 (or c below E[tau])
        # caps c*a_hat on computed ranks, c*tau_hat spread over the tail, and a pool of c*eps
        # over support values for the l1 error (splitting b = b' + b'' only raises entropy, §10)
        caps = np.concatenate([np.minimum(c * a, 1.0), [c * tail / max(n_tail, 1), c * eps / n_pool]])
        mult = np.concatenate([np.ones(len(a)), [n_tail if tail > 0 else 0.0, n_pool if eps > 0 else 0.0]])
        keep = (mult > 0) & (caps > 0)
        hm = min(max_entropy_capped(caps[keep], mult[keep]), h_cap)
        return c * h <= log_k + hm

    lo, hi = 1.0, float(k + 1)
    if ok(hi):
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return hi


def guaranteed_bound(ks, law: RankLaw, support: int) -> list:
    r"""Guaranteed upper bound on tokens per call for each k (module docstring).

    >>> from chansim.theory.ranklaw import law_from_probs
    >>> b = guaranteed_bound([1, 100], law_from_probs([0.5, 0.5]), 2)  # k + 1, then (ln 101 + ln 2)/ln 2
    >>> b[0], round(b[1], 6) == round((math.log(101) + math.log(2)) / math.log(2), 6)
    (2.0, True)
    """
    h_lo = float(law.entropy_ci[0])
    out = []
    for k in ks:
        vals = [k + 1.0]
        if law.never > 0:
            vals.append(1.0 / law.never)
        if h_lo > 0:
            vals.append((math.log(k + 1) + math.log(max(int(support), 1))) / h_lo)
            vals.append(exit_entropy_bound(k, law, support))
        out.append(float(min(vals)))
    return out


def _within_from(law: RankLaw):
    if law.never > 0 or law.entropy <= 0:
        return None
    opt = 1 + np.asarray(top_products_sums(law.probs, _GRID), dtype=float)
    asym = large_k_relation(_GRID, law)
    good = np.abs(asym / opt - 1) <= 0.01
    if not good[-1]:
        return None
    bad = np.flatnonzero(~good)
    return int(_GRID[bad[-1] + 1]) if len(bad) else 1


def bound_columns(ks, law: RankLaw, support: int) -> dict:
    """``ersd_bound``, ``ersd_bound_paper``, ``asymptote`` (None where meaningless) and
    ``asymptote_within_1pct_from_k`` for one position.

    The asymptote and its 1% point are auxiliary: a failure there (a law too flat for the
    2^16-node optimum, say) leaves them None with the reason in ``asymptote_note``; it
    never aborts the report.
    """
    ks = [int(k) for k in ks]
    bound = guaranteed_bound(ks, law, support)
    note = None
    if law.entropy > 0:
        paper = [float((math.log(k + 1) + math.log(max(int(support), 1))) / law.entropy) for k in ks]
        try:
            asym = [float(v) for v in large_k_relation(ks, law)]
        except (ValueError, FloatingPointError, OverflowError) as exc:
            asym, note = [None] * len(ks), f"asymptote: {exc}"
    else:                                    # p = q: every drafted token is accepted
        paper = [float(k + 1) for k in ks]
        asym = [float(k + 1) for k in ks]
    asym = [v if v is not None and 1.0 <= v <= k + 1 else None for v, k in zip(asym, ks)]
    try:
        within = _within_from(law)
    except (ValueError, FloatingPointError, OverflowError, MemoryError) as exc:
        within = None
        note = (note + "; " if note else "") + f"1% point: {exc}"
    return {"ersd_bound": bound, "ersd_bound_paper": paper, "asymptote": asym,
            "asymptote_within_1pct_from_k": within, "asymptote_note": note}
