r"""``rsd`` — recursive rejection sampling with drafts without replacement (Jeon et al. 2024).

Children :math:`x_1..x_m` are drafted without replacement from q (the law of the m
earliest arrivals of the q-race, Gumbel-top-m; drawn here by rejection).  Round j proposes from
:math:`q_j = q` restricted to the untried tokens and renormalised; with :math:`r_1 = p`:

.. math::
    \text{accept } x_j \text{ w.p. } \min\!\Big(1, \frac{r_j(x_j)}{q_j(x_j)}\Big),
    \qquad \text{else } r_{j+1} = \mathrm{norm}\big((r_j - q_j)_+\big);

all rejected: :math:`y \sim r_{m+1}` (it puts no mass on tried tokens).  A node whose q
has fewer than m tokens of positive probability drafts fewer children (docs/algorithms.md).

Theory: the slot weights depend on the tokens already tried, so they are an expectation
over ordered draft histories — :func:`rsd_weights_exact` enumerates them (small V),
:func:`rsd_weights_mc` samples them with a Rao–Blackwellised integrand (docs/theory.md §1);
the acceptance along a logged path is exact for m <= 2 (:func:`rsd_path_weights`).

With a :class:`~chansim.sampling.race_sampling.RaceTable` in the node noise (the synthetic Monte
Carlo engine) the rounds run on :math:`r_j \propto (p - \lambda_j q)_+` over the untried
tokens, O(m log V) per row with no V-row renormalised (docs/theory.md §2.4).
"""
from __future__ import annotations

import math

import numpy as np

from ..inputs.distributions import check_pair_1d
from ..common.stats import normal_quantile
from .base import Method, NodeNoise, SlotWeights, check_width, residual, sample_rows, take_rows

__all__ = ["RSD", "rsd_weights", "rsd_weights_exact", "rsd_weights_mc", "rsd_path_weights"]


class RSD(Method):
    """Recursive speculative decoding (see the module docstring)."""

    name = "rsd"
    label = "rsd"
    colour = "#2ca02c"
    marker = "^"
    tree_family = "sibling-closed"
    has_path_prediction = True
    sd_on_chains = True
    truncated_intervals = "chains"        # where it is sd
    trials_divisor = 10     # one history = m residual rounds over V
    #: ``chansim bound`` lists rsd by default up to this vocabulary (its weights are Monte Carlo over V)
    bound_default_max_vocab = 64
    #: rejection rounds before the exact fallback (sampling from the renormalised remainder)
    max_redraws = 16
    uses_table = True
    #: below this V the full-V race sampler is cheaper than the table's per-visit overhead (race_tables="auto")
    table_min_vocab = 32

    def in_default(self, purpose: str, vocab: int | None = None, kmax: int | None = None) -> bool:
        return purpose == "bound" and vocab is not None and vocab <= self.bound_default_max_vocab

    def slot_weights(self, p, q, m: int, *, trials: int = 20_000, seed: int = 0, **_) -> SlotWeights:
        """Exact by enumeration when cheap, else Monte Carlo (:func:`rsd_weights`); p, q checked ``[V]``, w ``[m]``."""
        return rsd_weights(p, q, m, trials=trials, seed=seed, validate=False)

    def node_acceptance(self, p, q, m: int, **opts) -> float:
        """Σ_j w_j of a checked pair ``[V]`` (:func:`rsd_weights`)."""
        return float(rsd_weights(p, q, m, **opts, validate=False).w.sum())

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        """:func:`rsd_path_weights`: ``p``, ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T]``."""
        return rsd_path_weights(p, q, y, py, m)

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        """m tokens without replacement: x_j ~ q restricted to the untried tokens; ``q`` ``[R, V]`` → ``[B, m]``.

        Drawn by rejection (redraw x ~ q while it repeats an earlier draft), which is
        exact and O(log V) per draw for a shared row; rows still clashing after
        ``max_redraws`` rounds sample from the renormalised remainder directly.  A row
        whose q has no mass left gets -1 (fewer than m children).
        """
        batch, m = noise.batch, len(slots)
        if noise.table is not None:                                       # the q-race's first m arrivals
            pos, _ = noise.table.arrivals(noise.table_rows, m, noise.rng)
            return noise.table.tokens(noise.table_rows, pos)              # [B, m]
        drafts = np.full((batch, m), -1, dtype=np.int64)                  # [B, m]
        for j in range(m):
            pending = np.arange(batch)
            for _ in range(self.max_redraws):
                rows = q if q.shape[0] == 1 else q[pending]
                x = sample_rows(rows, noise.rng.random(pending.size))
                fresh = ~(drafts[pending, :j] == x[:, None]).any(axis=1)
                drafts[pending[fresh], j] = x[fresh]
                pending = pending[~fresh]
                if not pending.size:
                    break
            if pending.size:                                              # exact fallback
                rest = np.array(np.broadcast_to(q, (batch, q.shape[-1]))[pending])   # [P, V]
                tried = drafts[pending, :j]
                np.put_along_axis(rest, np.maximum(tried, 0), 0.0, axis=1)
                has_mass = rest.sum(axis=1) > 0
                if has_mass.any():
                    drafts[pending[has_mass], j] = sample_rows(rest[has_mass],
                                                               noise.rng.random(int(has_mass.sum())))
        return drafts

    def verify(self, p, q, drafts, noise: NodeNoise):
        """Recursive rejection over ``drafts`` ``[B, m]``; ``p``, ``q`` ``[R, V]`` → ``(accepted [B], token [B])``."""
        batch, m = drafts.shape
        u = noise.rng.random((batch, m + 1))                              # [B, m + 1]
        if noise.table is not None:
            return noise.table.rsd_verify(noise.table_rows, drafts, u, noise.rng)
        accepted = np.full(batch, -1, dtype=np.int64)
        token = np.full(batch, -1, dtype=np.int64)
        # Only rows that rejected every draft so far are carried (act); r and q_j stay one
        # shared row until a tried token makes them row-specific (from round 2 on).
        act = np.arange(batch)                                            # [A]
        r, q_j = p, q                                                     # [1 or A, V]
        for j in range(m):
            x = drafts[act, j]                                            # [A], -1 = no more drafts
            done = x < 0                                                  # q exhausted: y ~ r_j now
            if done.any():
                token[act[done]] = sample_rows(_rows(r, done), u[act[done], m])
                act, x, r, q_j = act[~done], x[~done], _rows(r, ~done), _rows(q_j, ~done)
            ok = u[act, j] * take_rows(q_j, x) < take_rows(r, x)          # w.p. min(1, r_j / q_j)
            accepted[act[ok]] = j
            token[act[ok]] = x[ok]
            act, x, r, q_j = act[~ok], x[~ok], _rows(r, ~ok), _rows(q_j, ~ok)
            if not act.size:
                break
            r = residual(r, q_j)                                          # r_{j+1} = norm((r_j - q_j)+)
            q_j = np.array(np.broadcast_to(q_j, (act.size, q_j.shape[-1])))   # [A, V]
            q_j[np.arange(act.size), x] = 0.0                             # drop the tried token
            q_j /= q_j.sum(axis=1, keepdims=True).clip(min=np.finfo(float).tiny)
        if act.size:
            token[act] = sample_rows(r, u[act, m])                        # y ~ r_{m+1}
        return accepted, token


def _rows(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of ``arr`` selected by ``mask`` (a shared single row stays shared)."""
    return arr if arr.shape[0] == 1 else arr[mask]


# ----------------------------------------------------------------------------- theory
def rsd_weights_exact(target_probs, draft_probs, m: int, max_histories: int = 200_000,
                      validate: bool = True) -> SlotWeights:
    r"""RSD slot weights by enumerating the ordered draft histories (p, q ``[V]``, small V); w ``[m]``.

    Round j sees the tried set :math:`T = \{x_1..x_{j-1}\}`, proposal
    :math:`q_j = q\,1_{\notin T}/(1 - q(T))`; the joint probability of drafting x and
    rejecting it is :math:`(q_j - r_j)_+(x)`, and after a rejection
    :math:`r_{j+1} = \mathrm{norm}((r_j - q_j)_+)`.  Cost :math:`O(V^{m})`.
    """
    p, q = check_pair_1d(target_probs, draft_probs, "rsd_weights_exact", validate)
    m = check_width(m)
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
    return SlotWeights.exact_weights(w)


def rsd_weights_mc(target_probs, draft_probs, m: int, trials: int = 20_000, seed: int = 0,
                   confidence: float = 0.999, chunk: int | None = None, validate: bool = True) -> SlotWeights:
    r"""RSD slot weights by Monte Carlo over draft histories (Gumbel-top-m of q); p, q ``[V]``, w ``[m]``.

    Each sample contributes the exact conditional weight
    :math:`\beta_j(x_{<j})\prod_{i<j}(1 - \min(1, r_i(x_i)/q_i(x_i)))`
    (Rao–Blackwellised over the accept coins and the j-th draft); the interval is the
    normal one at ``confidence``, Bonferroni-corrected over the m slots.
    """
    p, q = check_pair_1d(target_probs, draft_probs, "rsd_weights_mc", validate)
    m = check_width(m)
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
    z = normal_quantile(1 - (1 - confidence) / m)                # Bonferroni over the m slots
    half = z * np.sqrt(var / trials)
    return SlotWeights(mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), False, trials)


def rsd_weights(target_probs, draft_probs, m: int, method: str = "auto", trials: int = 20_000,
                seed: int = 0, max_histories: int = 100_000, validate: bool = True) -> SlotWeights:
    """RSD slot weights ``[m]`` of a pair ``[V]``: exact enumeration up to ``max_histories`` histories, else MC.

    ``validate=False``: p, q are already checked (internal callers); the public call checks once.

    >>> w = rsd_weights([0.5, 0.5], [0.9, 0.1], 2)       # V = 2: the second draft is the other token
    >>> np.round(w.w, 6).tolist(), w.exact
    ([0.6, 0.4], True)
    """
    p, q = check_pair_1d(target_probs, draft_probs, "rsd_weights", validate)
    m = check_width(m)
    if m > p.shape[-1]:                                   # no tokens left beyond slot V
        sw = rsd_weights(p, q, p.shape[-1], method, trials, seed, max_histories, validate=False)
        pad = np.zeros(m - p.shape[-1])
        return SlotWeights(*(np.concatenate([x, pad]) for x in (sw.w, sw.ci_low, sw.ci_high)), sw.exact, sw.trials)
    if method == "auto":
        n_hist = sum(math.perm(p.shape[-1], j) for j in range(min(m, p.shape[-1])))
        method = "exact" if n_hist <= max_histories else "mc"
    if method == "exact":
        return rsd_weights_exact(p, q, m, max_histories=max(max_histories, 1), validate=False)
    if method == "mc":
        return rsd_weights_mc(p, q, m, trials=trials, seed=seed, validate=False)
    raise ValueError(f"method must be 'auto', 'exact' or 'mc', got {method!r}")


# ----------------------------------------------------------------------------- logged paths
def rsd_path_weights(p, q, y, py, m: int) -> np.ndarray:
    r"""RSD (Jeon et al. 2024): m drafts without replacement, recursive rejection; exact for m <= 2.

    Round 1 rejects drafted x with probability mass :math:`(q_x - p_x)_+`; then
    :math:`r_2 = (p-q)_+/(1-\beta_1)` and the second draft comes from q without x,
    :math:`q_2 = q/(1 - q_x)` off x.  The last round's rejection-and-output mass is
    :math:`(r_2(y) - q_2(y))_+`, so

    .. math:: P(\text{both rejected} \wedge \text{out}=y) = \sum_x (q_x - p_x)_+
              \Big(r_2(y) - \frac{q(y)}{1 - q_x}\Big)_+ ,

    O(V) per position (y has :math:`p(y) > q(y)` whenever the term is non-zero, so
    y differs from every rejected x). m = 1 is sd. For m >= 3 the sum runs over ordered
    tuples of rejected tokens: ``ValueError``.

    Validated arrays: ``p``, ``q`` ``[T, V]``, ``y`` ``[T]``, ``py = p[t, y_t] > 0``
    (:func:`chansim.predict.rsd_path_acceptance` is the checked entry point).
    """
    rows = np.arange(len(y))
    if m == 1:
        return np.minimum(1.0, q[rows, y] / py)
    if m > 2:
        raise ValueError(f"rsd path prediction is exact only for at most 2 drafts per node, got {m} "
                         f"(use sd/specinfer/ersd for wider nodes)")
    w = np.maximum(q - p, 0.0)                                  # [T, V] round-1 rejection mass per token
    miss = w.sum(-1)                                            # [T] 1 - beta_1
    qy = q[rows, y]
    with np.errstate(divide="ignore", invalid="ignore"):
        r2y = np.where(miss > 0, np.maximum(py - qy, 0.0) / miss, 0.0)      # [T]
        q2y = np.where(qy[:, None] > 0, qy[:, None] / np.maximum(1.0 - q, 1e-300), 0.0)   # [T, V]
    reject_y = (w * np.maximum(r2y[:, None] - q2y, 0.0)).sum(-1)
    return np.clip(1.0 - reject_y / py, 0.0, 1.0)
