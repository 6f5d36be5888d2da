r"""Rank laws of every position of a log, and their pooled law, with guaranteed errors.

Per position t, :func:`chansim.theory.rank_law` (exact for V <= 64, else the guaranteed
``"bounded"`` law of docs/theory.md §5) gives :math:`\hat a^{(t)}_1..\hat a^{(t)}_K`, the
tail mass :math:`\hat\tau_t = \widehat P(R_t > K)`, the never-drafted mass
:math:`\nu_t`, an :math:`\ell_1` error :math:`\varepsilon_t` and a rigorous interval for
:math:`H(R_t)`.  The **pooled** law :math:`\bar a = \frac1N\sum_t a^{(t)}` keeps the tail:

.. math::
    \bar a_r = \tfrac1N\textstyle\sum_t \hat a^{(t)}_r,\quad
    \bar\tau = \tfrac1N\sum_t \hat\tau_t,\quad \bar\nu = \tfrac1N\sum_t\nu_t,\quad
    \bar\varepsilon = \tfrac1N\sum_t\varepsilon_t

(:math:`\ell_1` distance is convex, so :math:`\bar\varepsilon` bounds the pooled error), and
H(ā) is bracketed by :func:`chansim.theory.rankbound.rank_entropy_interval` with the mean
of the per-position bounds on :math:`E[R\,1\{\text{drafted}\}]` (linear in the law).
Nothing is renormalised: the pooled vector sums to one only with its tail and never mass.

Positions are independent jobs: ``jobs``/``backend``/``scheduler`` spread them with joblib
(``backend="dask"`` with a ``dask.distributed`` scheduler address, as ``chansim figures``
does, :mod:`chansim.figures.runner`); every position's law is deterministic, so the result
does not depend on how the work is spread.
"""
from __future__ import annotations

import math

import numpy as np

from ..common.parallel import check_jobs, parallel_map

__all__ = ["position_law", "position_laws", "pooled_law"]

#: logs with fewer positions than this are computed in-process whatever ``jobs`` says
#: (worker start-up would cost more than the work; the numbers are the same either way)
MIN_PARALLEL_POSITIONS = 16


def position_law(target_probs, draft_probs, trials: int, seed: int, max_rank: int, tol: float) -> dict:
    """Summary of one position's rank law (plain floats/arrays, cheap to ship between processes).

    Keys: ``probs`` (shape (K,)), ``tail``, ``never``, ``error`` (guaranteed l1, 0 when
    exact), ``entropy``, ``entropy_ci`` (rigorous), ``second_moment``, ``exact``,
    ``guaranteed``, ``mean_rank_bound`` (upper bound on E[R 1{drafted}]).

    >>> d = position_law([0.5, 0.5], [0.9, 0.1], 10, 0, 64, 1e-4)
    >>> d["exact"], round(float(d["probs"][0]), 6), d["tail"]
    (True, 0.6, 0.0)
    """
    from ..theory import rank_law

    law = rank_law(target_probs, draft_probs, trials=trials, seed=seed, max_rank=max_rank, tol=tol)
    a = np.asarray(law.probs, dtype=float)
    if math.isfinite(law.mean_rank_bound):
        mean_rank = float(law.mean_rank_bound)
    else:                                            # exact law: E[R 1{drafted}] itself
        mean_rank = float((np.arange(1, len(a) + 1) * a).sum())
    error = float(law.error) if math.isfinite(law.error) else float("nan")
    return {"probs": a, "tail": float(law.tail), "never": float(law.never), "error": error,
            "entropy": float(law.entropy), "entropy_ci": (float(law.entropy_ci[0]), float(law.entropy_ci[1])),
            "second_moment": float(law.second_moment), "exact": bool(law.exact),
            "guaranteed": bool(law.guaranteed), "mean_rank_bound": mean_rank}


def position_laws(sequences, trials: int = 1000, seed: int = 0, max_rank: int = 64, tol: float = 1e-4,
                  jobs: int = 1, backend: str | None = None, scheduler: str | None = None) -> list:
    """:func:`position_law` for every position of ``sequences`` (iterable of (p, q, tokens)), in order.

    Position j (counted over all sequences) uses seed ``seed + j`` (only the Monte Carlo
    method draws random numbers).  ``jobs``, ``backend``, ``scheduler``: joblib workers,
    backend name (``"dask"``) and dask scheduler address (module docstring).
    """
    items, j = [], 0
    for p, q, _ in sequences:
        for t in range(len(p)):
            items.append((p[t], q[t], trials, seed + j, max_rank, tol))
            j += 1
    jobs = check_jobs(jobs)
    if scheduler and backend != "dask":
        raise ValueError("scheduler is only used with backend='dask'")
    if backend is None and (jobs == 1 or len(items) < MIN_PARALLEL_POSITIONS):
        return [position_law(*it) for it in items]
    return parallel_map(position_law, items, jobs=jobs, backend=backend, scheduler=scheduler, desc="rank laws")


def pooled_law(laws: list, vocab: int):
    r"""The pooled :class:`~chansim.theory.RankLaw` of ``laws`` (module docstring), tail kept.

    ``entropy_ci`` is rigorous given the per-position guarantees; ``entropy`` is its
    midpoint unless every position is an explicit pmf (error 0), then the exact H(ā).
    Nothing is renormalised: the pooled error is the mean of the per-position proved errors,
    and ``exact`` means that error is at most :data:`~chansim.theory.ranklaw.EXACT_L1`.

    >>> from chansim.logs.ranklaw import position_law
    >>> law = pooled_law([position_law([0.5, 0.5], [0.9, 0.1], 2, 0, 64, 1e-4)] * 2, 2)
    >>> [round(float(v), 6) for v in law.probs], law.tail, law.exact
    ([0.6, 0.4], 0.0, True)
    """
    from ..theory.rankbound import rank_entropy_interval
    from ..theory.ranklaw import EXACT_L1, RankLaw, law_from_probs

    n = len(laws)
    if n == 0:
        raise ValueError("no positions to pool")
    width = max(len(d["probs"]) for d in laws)
    head = np.zeros(width)
    for d in laws:
        head[:len(d["probs"])] += d["probs"]
    head /= n
    tail = float(np.mean([d["tail"] for d in laws]))
    never = float(np.mean([d["never"] for d in laws]))
    errors = [d["error"] for d in laws]
    if not all(math.isfinite(e) for e in errors):
        raise ValueError("pooling needs guaranteed per-position laws (exact or 'bounded'), not Monte Carlo")
    error = float(np.mean(errors))
    if error == 0.0 and tail == 0.0:                              # explicit pmfs: exact as they are
        return law_from_probs(head, never)
    n_tail = max(int(vocab) - width, 0)
    mean_rank = float(np.mean([d["mean_rank_bound"] for d in laws]))
    lo, hi = rank_entropy_interval(head, tail, never, error, mean_rank, n_tail)
    pos = head[head > 0]
    m2_head = float((pos * np.log(pos) ** 2).sum()) + (never * math.log(never) ** 2 if never > 0 else 0.0)
    tau = min(max(tail, 0.0), 1.0)
    m2_tail = tau * math.log(tau / n_tail) ** 2 if tau > 0 and n_tail > 0 else 0.0
    support = int(np.count_nonzero(head)) + (n_tail if tail > 0 else 0) + int(never > 0)
    exact = tail == 0.0 and error <= EXACT_L1                    # a proved error, never renormalised away
    return RankLaw(head, never, 0.5 * (lo + hi), m2_head + 0.5 * m2_tail, (lo, hi), exact, support,
                   0, tail, error, tail, True, mean_rank)
