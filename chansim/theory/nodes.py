r"""Acceptance of one tree node in the i.i.d. model: per-slot weights.

For a node with drafted children in slots 1..m, let

.. math:: w_j = P(\text{the verifier moves to the child in slot } j \mid \text{it is at the node}).

For every method here :math:`w_j` does not depend on how many children follow slot j
(later drafts are only looked at after slot j was rejected), and with fresh
randomness at every node the events at different nodes are independent, so
:math:`P(\text{path passes } v) = \prod_{\text{edges}} w_{\text{slot}}` and
:math:`E[\text{tokens per call}] = 1 + \sum_{v \ne \text{root}} \prod w`
(:func:`chansim.theory.expectations.tree_value`).  Rules: ALGORITHMS.md.

* ``sd`` (one draft): :math:`w_1 = \beta = \sum_x \min(p_x, q_x)`.
* ``specinfer`` (i.i.d. drafts, residuals): round j accepts with probability
  :math:`\beta_j = \sum_x \min(r_j(x), q(x))` whatever was drafted before, with the
  deterministic residuals :math:`r_1 = p`, :math:`r_{j+1} = \mathrm{norm}((r_j - q)_+)`,
  hence :math:`w_j = \beta_j \prod_{i<j}(1 - \beta_i)`.
* ``rsd`` (drafts without replacement): the proposal :math:`q_j` and hence the
  residuals depend on the tokens already tried, so
  :math:`w_j = E\big[\beta_j(x_{<j}) \prod_{i<j} (1 - \min(1, r_i(x_i)/q_i(x_i)))\big]`
  over :math:`x_1, x_2, \dots` drawn without replacement from q — exact by enumerating
  the ordered histories (small V) or by Monte Carlo with the Rao–Blackwellised
  integrand above (large V).
* ``ersd``: :math:`w_r = a_r`, the rank law (:mod:`chansim.theory.ranklaw`); any set
  of ranks may be drafted.
* ``spectr``: not slot-based (the selection depends on the number of drafts); see
  :func:`spectr_transition`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import numpy as np
from scipy import stats
from scipy.special import comb

from ..distributions import check_pair
from ..verify.base import residual
from ..verify.spectr import spectr_beta_c
from ..verify.spectr import spectr_rho as _rho_rows

__all__ = [
    "SlotWeights",
    "sd_weights",
    "specinfer_weights",
    "rsd_weights",
    "rsd_weights_exact",
    "rsd_weights_mc",
    "spectr_rho",
    "spectr_acceptance",
    "spectr_transition",
    "spectr_transition_matrix",
    "node_acceptance",
]


@dataclass(frozen=True)
class SlotWeights:
    """Per-slot weights ``w`` shape ``(..., m)`` with an interval (equal to ``w`` when exact)."""

    w: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    exact: bool
    trials: int = 0


def _exact(w) -> SlotWeights:
    w = np.asarray(w, dtype=float)
    return SlotWeights(w, w.copy(), w.copy(), True, 0)


def _check_m(m) -> int:
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"number of drafted children must be a positive integer, got {m!r}")
    return int(m)


def sd_weights(target_probs, draft_probs) -> np.ndarray:
    r"""``sd`` slot weight :math:`w_1 = \beta`, shape ``(..., 1)``.

    >>> sd_weights([0.5, 0.5], [0.9, 0.1]).tolist()
    [0.6]
    """
    p, q = check_pair(target_probs, draft_probs)
    return np.minimum(p, q).sum(-1, keepdims=True)


def specinfer_weights(target_probs, draft_probs, m: int) -> np.ndarray:
    r"""SpecInfer slot weights :math:`w_j = \beta_j\prod_{i<j}(1-\beta_i)`, shape ``(..., m)``.

    Batched over leading axes.  :math:`1 - \sum_j w_j = \prod_j (1 - \beta_j)` is the
    node's rejection probability (Miao et al. 2023; ALGORITHMS.md).

    >>> w = specinfer_weights([0.5, 0.5], [0.9, 0.1], 2)
    >>> np.round(w, 6).tolist()        # beta_1 = 0.6, r_2 = (0, 1), beta_2 = 0.1
    [0.6, 0.04]
    """
    p, q = check_pair(target_probs, draft_probs)
    m = _check_m(m)
    r = p.copy()
    alive = np.ones(p.shape[:-1])
    out = np.zeros(p.shape[:-1] + (m,))
    for j in range(m):
        beta = np.minimum(r, q).sum(-1)
        out[..., j] = alive * beta
        alive = alive * np.clip(1 - beta, 0, None)
        if not np.any(alive > 1e-16):                       # later slots are (numerically) never reached
            break
        r = residual(r, q)                                  # norm((r - q)+), the verifier's own rule
    return out


def rsd_weights_exact(target_probs, draft_probs, m: int, max_histories: int = 200_000) -> SlotWeights:
    r"""RSD slot weights by enumerating the ordered draft histories (1-D pair, small V).

    Round j sees the tried set :math:`T = \{x_1..x_{j-1}\}`, proposal
    :math:`q_j = q\,1_{\notin T}/(1 - q(T))`; the joint probability of drafting x and
    rejecting it is :math:`(q_j - r_j)_+(x)`, and after a rejection
    :math:`r_{j+1} = \mathrm{norm}((r_j - q_j)_+)`.  Cost :math:`O(V^{m})`.
    """
    p, q = check_pair(target_probs, draft_probs)
    m = _check_m(m)
    if p.ndim != 1:
        raise ValueError("rsd_weights_exact takes one 1-D pair")
    vocab = len(p)
    n_hist = sum(math.perm(vocab, j) for j in range(min(m, vocab)))
    if n_hist > max_histories:
        raise ValueError(f"exact RSD enumeration needs {n_hist} histories (> {max_histories}); use Monte Carlo")
    w = np.zeros(m)

    def visit(j, tried, r, prob):
        if j >= m or prob <= 0:
            return
        qt = q.sum() - q[list(tried)].sum() if tried else q.sum()
        if qt <= 1e-300:
            return
        qj = q.copy()
        if tried:
            qj[list(tried)] = 0.0
        qj /= qt
        w[j] += prob * np.minimum(r, qj).sum()
        rej = np.clip(qj - r, 0, None)                  # P(draft x and reject it)
        resid = np.clip(r - qj, 0, None)
        tot = resid.sum()
        if tot <= 1e-300 or j + 1 >= m:
            return
        r_next = resid / tot
        for x in np.flatnonzero(rej > 0):
            visit(j + 1, tried + (int(x),), r_next, prob * rej[x])

    visit(0, (), p.copy(), 1.0)
    return _exact(w)


def rsd_weights_mc(target_probs, draft_probs, m: int, trials: int = 20_000, seed: int = 0,
                   confidence: float = 0.999, chunk: int | None = None) -> SlotWeights:
    r"""RSD slot weights by Monte Carlo over draft histories (Gumbel-top-m of q).

    Each sample contributes the exact conditional weight
    :math:`\beta_j(x_{<j})\prod_{i<j}(1 - \min(1, r_i(x_i)/q_i(x_i)))`
    (Rao–Blackwellised over the accept coins and the j-th draft); the interval is the
    normal one at ``confidence``, Bonferroni-corrected over the m slots.
    """
    p, q = check_pair(target_probs, draft_probs)
    m = _check_m(m)
    if p.ndim != 1:
        raise ValueError("rsd_weights_mc takes one 1-D pair")
    rng = np.random.default_rng(seed)
    vocab = len(p)
    chunk = chunk or max(1, 2_000_000 // vocab)
    s1 = np.zeros(m)
    s2 = np.zeros(m)
    with np.errstate(divide="ignore"):
        inv_q = 1.0 / q
    for start in range(0, trials, chunk):
        n = min(chunk, trials - start)
        times = rng.standard_exponential((n, vocab)) * inv_q            # [n, V] q-race
        mm = min(m, vocab)
        order = np.argsort(times, axis=1)[:, :mm]                        # drafts w/o replacement
        rows = np.arange(n)
        r = np.broadcast_to(p, (n, vocab)).copy()
        qj = np.broadcast_to(q, (n, vocab)).copy()
        alive = np.ones(n)
        for j in range(mm):
            tot_q = qj.sum(1, keepdims=True)
            valid = tot_q[:, 0] > 1e-300
            qn = np.where(valid[:, None], qj / np.where(valid, tot_q[:, 0], 1)[:, None], 0.0)
            beta = np.minimum(r, qn).sum(1)
            contrib = np.where(valid, alive * beta, 0.0)
            s1[j] += contrib.sum()
            s2[j] += (contrib ** 2).sum()
            x = order[:, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                acc = np.where(qn[rows, x] > 0, np.minimum(1.0, r[rows, x] / qn[rows, x]), 1.0)
            alive = alive * (1 - acc)
            resid = np.clip(r - qn, 0, None)
            tot = resid.sum(1, keepdims=True)
            r = np.where(tot > 1e-300, resid / np.where(tot > 0, tot, 1), 0.0)
            qj[rows, x] = 0.0
    mean = s1 / trials
    var = np.clip(s2 / trials - mean ** 2, 0, None) * trials / max(trials - 1, 1)
    z = stats.norm.ppf(1 - (1 - confidence) / (2 * m))
    half = z * np.sqrt(var / trials)
    return SlotWeights(mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), False, trials)


def rsd_weights(target_probs, draft_probs, m: int, method: str = "auto", trials: int = 20_000,
                seed: int = 0, max_histories: int = 100_000) -> SlotWeights:
    """RSD slot weights: exact enumeration when it needs <= ``max_histories`` histories, else MC.

    >>> w = rsd_weights([0.5, 0.5], [0.9, 0.1], 2)       # V = 2: the second draft is the other token
    >>> np.round(w.w, 6).tolist(), w.exact
    ([0.6, 0.4], True)
    """
    p, q = check_pair(target_probs, draft_probs)
    m = _check_m(m)
    if m > p.shape[-1]:                                   # no tokens left beyond slot V
        sw = rsd_weights(p, q, p.shape[-1], method, trials, seed, max_histories)
        pad = np.zeros(m - p.shape[-1])
        return SlotWeights(*(np.concatenate([x, pad]) for x in (sw.w, sw.ci_low, sw.ci_high)), sw.exact, sw.trials)
    if method == "auto":
        n_hist = sum(math.perm(p.shape[-1], j) for j in range(min(m, p.shape[-1])))
        method = "exact" if n_hist <= max_histories else "mc"
    if method == "exact":
        return rsd_weights_exact(p, q, m, max_histories=max(max_histories, 1))
    if method == "mc":
        return rsd_weights_mc(p, q, m, trials=trials, seed=seed)
    raise ValueError(f"method must be 'auto', 'exact' or 'mc', got {method!r}")


# ----------------------------------------------------------------------------- spectr
def _spectr_beta(p, q, rho):
    return spectr_beta_c(p[None], q[None], 1, np.array([rho]))[0][0]


def spectr_rho(target_probs, draft_probs, k: int, iters: int = 60) -> float:
    r"""SpecTr's ρ for k i.i.d. drafts: the smallest ρ in [1, k] with :math:`c(\rho) \le \rho`,

    :math:`c(\rho) = (1 - (1 - \beta(\rho))^k)/\beta(\rho)`,
    :math:`\beta(\rho) = \sum_x \min(q_x, p_x/\rho)` — the verifier's own bisection
    (:func:`chansim.verify.spectr.spectr_rho`, always feasible), for one validated pair.
    """
    p, q = check_pair(target_probs, draft_probs)
    k = _check_m(k)
    return float(_rho_rows(p[None], q[None], k, iterations=iters)[0])


def spectr_acceptance(target_probs, draft_probs, k: int) -> float:
    r"""Node acceptance of SpecTr with k i.i.d. drafts, :math:`1 - (1 - \beta(\rho))^k`."""
    p, q = check_pair(target_probs, draft_probs)
    beta = _spectr_beta(p, q, spectr_rho(p, q, k))
    return float(1 - (1 - beta) ** k)


def spectr_transition(target_probs, draft_probs, count: int) -> np.ndarray:
    r"""P(accept and exactly n of the ``count`` drafts equal the output), n = 1..count.

    SpecTr's k-sequential rule tries :math:`X_1..X_c` (i.i.d. q) in order and accepts
    :math:`X_i` with probability :math:`a(X_i) = \min(1, p/(\rho q))`.  With
    :math:`s_y = q_y a_y = \min(q_y, p_y/\rho)` and :math:`u_y = q_y - s_y`,

    .. math::
        P(\text{first accept at } i,\, Y = y,\, b \text{ earlier and } e \text{ later drafts} = y)
        = \tbinom{i-1}{b} u_y^b (1-\beta-u_y)^{i-1-b}\, s_y\,
          \tbinom{c-i}{e} q_y^e (1-q_y)^{c-i-e},

    and the drafts consistent with the output number n = 1 + b + e (their next tokens
    are again i.i.d. q, so the next node sees count n).  Shape ``(count,)``; the sum is
    the node acceptance :math:`1 - (1-\beta)^c`.
    """
    p, q = check_pair(target_probs, draft_probs)
    c = _check_m(count)
    rho = spectr_rho(p, q, c)
    s = np.minimum(q, p / rho)
    beta = s.sum()
    u = q - s
    rest = np.clip(1 - beta - u, 0, None)                      # rejected and != y
    out = np.zeros(c)
    for i in range(1, c + 1):
        b = np.arange(i)
        before = comb(i - 1, b)[None, :] * u[:, None] ** b * rest[:, None] ** (i - 1 - b)      # [V, i]
        e = np.arange(c - i + 1)
        after = comb(c - i, e)[None, :] * q[:, None] ** e * (1 - q[:, None]) ** (c - i - e)   # [V, c-i+1]
        for bb in range(i):                                      # n - 1 = b + e
            out[bb: bb + c - i + 1] += (s * before[:, bb]) @ after
    return out


def spectr_transition_matrix(target_probs, draft_probs, cmax: int) -> np.ndarray:
    """``T[n, n']`` = :func:`spectr_transition` for every count n = 1..cmax, shape ``(cmax+1, cmax+1)``."""
    cmax = _check_m(cmax)
    trans = np.zeros((cmax + 1, cmax + 1))
    for n in range(1, cmax + 1):
        trans[n, 1:n + 1] = spectr_transition(target_probs, draft_probs, n)
    return trans


def node_acceptance(method: str, target_probs, draft_probs, m: int, **opts) -> float:
    """Probability that a node with m drafted children accepts one of them (1-D pair)."""
    p, q = check_pair(target_probs, draft_probs)
    m = _check_m(m)
    if method == "sd":
        if m != 1:
            raise ValueError("sd drafts one token per node")
        return float(np.minimum(p, q).sum())
    if method == "specinfer":
        return float(specinfer_weights(p, q, m).sum())
    if method == "rsd":
        return float(rsd_weights(p, q, m, **opts).w.sum())
    if method == "spectr":
        return spectr_acceptance(p, q, m)
    if method == "ersd":
        from .ranklaw import rank_law
        opts.setdefault("max_rank", max(64, m))                    # truncated law: enough ranks for m
        return float(rank_law(p, q, **opts).weights(m).sum())
    raise ValueError(f"unknown method {method!r}; choose from sd, specinfer, rsd, spectr, ersd")
