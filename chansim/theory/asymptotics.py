r"""Large-k relation and all-k bound for ERSD (proofs: docs/theory.md §3–4).

With :math:`\mu = H(R)` (nats) and :math:`\mu_2 = E[(\ln a_R)^2]`, and no "never" mass:

* **large-k relation** (renewal theory, non-lattice :math:`-\ln a_R`): the optimal
  rank-set tree with k nodes gives

  .. math:: E[\text{tokens per call}] = \frac{\ln k}{\mu} + C + o(1), \qquad
            C = \frac{\ln \mu}{\mu} + \frac{\mu_2}{2\mu^2};

* **all-k bound** (Wald + entropy of the outcome): every tree of k nodes satisfies

  .. math:: E[\text{tokens per call}] \le \frac{\ln\big((k+1) V_R - k\big)}{\mu}
            \le \frac{\ln(k+1) + \ln V_R}{\mu},

  :math:`V_R` the number of values R can take, "never" included; :math:`V_R \le V`
  always ("never" needs a token with q = 0, which then holds no rank).
  :func:`all_k_bound` returns the second (the documented, slightly looser) form.

When the target's winner can be undraftable (``never`` = ν > 0) the expected tokens
stay below :math:`1/\nu` for every k; :func:`large_k_relation` then returns that limit.
"""
from __future__ import annotations

import math

import numpy as np

from ..inputs.trees import Tree
from .expectations import path_probabilities
from .ranklaw import RankLaw

__all__ = ["renewal_constant", "large_k_relation", "all_k_bound", "outcome_entropy", "naive_log_ratio"]


def _check_law(law) -> RankLaw:
    if not isinstance(law, RankLaw):
        raise ValueError(f"expected a RankLaw (chansim.theory.ranklaw.rank_law(p, q) or law_from_probs(rank_probs)), got "
                         f"{type(law).__name__}")
    return law


def _mu(law: RankLaw) -> float:
    _check_law(law)
    if law.entropy <= 0:
        raise ValueError("H(R) = 0 (the draft always proposes the target's token): tokens per call = k + 1, no log law")
    return float(law.entropy)


def renewal_constant(law: RankLaw) -> float:
    r"""C in :math:`E[\text{tokens}] = \ln k/\mu + C + o(1)`: :math:`\ln\mu/\mu + \mu_2/(2\mu^2)`.

    >>> from chansim.theory.ranklaw import law_from_probs
    >>> law = law_from_probs([0.5, 0.5])      # lattice case: the o(1) term oscillates
    >>> round(renewal_constant(law), 6) == round(math.log(math.log(2)) / math.log(2) + 0.5, 6)
    True
    """
    mu = _mu(law)
    return math.log(mu) / mu + law.second_moment / (2 * mu * mu)


def large_k_relation(k, law: RankLaw) -> np.ndarray:
    r"""Large-k relation for tokens per call, :math:`\ln k/\mu + C` (or :math:`1/\nu` if ν > 0).

    Meaningful for large k; for k = 1, 2 it can be below 1.
    """
    k = np.asarray(k, dtype=float)
    if np.any(k < 1):
        raise ValueError("the large-k relation needs k >= 1")
    if _check_law(law).never > 0:
        return np.full(k.shape, 1.0 / law.never)
    mu = _mu(law)
    return np.log(k) / mu + renewal_constant(law)


def all_k_bound(k, law: RankLaw, support: int | None = None) -> np.ndarray:
    r"""All-k bound :math:`(\ln(k+1) + \ln V_R)/H(R)` on tokens per call (any tree of k nodes).

    ``support`` overrides :math:`V_R` (``law.support`` by default).

    >>> from chansim.theory.ranklaw import law_from_probs
    >>> float(np.round(all_k_bound(0, law_from_probs([0.5, 0.5])), 6))   # (ln 1 + ln 2)/ln 2
    1.0
    """
    k = np.asarray(k, dtype=float)
    if np.any(k < 0):
        raise ValueError("k must be >= 0")
    mu = _mu(law)
    vr = law.support if support is None else int(support)
    return (np.log(k + 1) + math.log(max(vr, 1))) / mu


def naive_log_ratio(k, law: RankLaw) -> np.ndarray:
    r""":math:`\ln(k+1)/H(R)` — NOT a bound (docs/theory.md §4 gives counterexamples)."""
    return np.log(np.asarray(k, dtype=float) + 1) / _mu(law)


def outcome_entropy(tree: Tree, law: RankLaw) -> float:
    r"""Entropy (nats) of the ERSD outcome O = (stop node, final rank) on ``tree``.

    :math:`P(O = (u, r)) = P(\text{reach } u)\, a_r` for r not a child rank of u (r = "never"
    included).  Wald's identity gives :math:`H(O) = H(R)\,E[\text{tokens}]` exactly
    (docs/theory.md §4); this function lets tests check it.
    """
    a = np.append(law.probs, law.never)
    reach = path_probabilities(tree, law.probs)
    total = 0.0
    for u in range(tree.n_nodes):
        mask = np.ones(len(a), dtype=bool)
        kids = tree.ranks[tree.children[u]] - 1
        mask[kids[kids < len(law.probs)]] = False
        pr = reach[u] * a[mask]
        pr = pr[pr > 0]
        total -= float((pr * np.log(pr)).sum())
    return total
