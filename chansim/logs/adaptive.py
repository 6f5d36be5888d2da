r"""Adaptive draft length of a model draft (confidence stop), predicted from a log.

The stop rule (:func:`chansim.verify.speculative_step` with ``confidence=c``): a chain of at most
k drafted tokens stops at the first node whose draft law has :math:`\max_x q(x) < c`; that node
gets no child.  The analogue of transformers' ``assistant_confidence_threshold`` (which tests the
drafted token's probability after drafting it; chansim tests max q before drafting).

Why a log predicts it with the closed forms of a fixed chain.  A call starting at logged position
t drafts its node of depth j+1 (for position t + j) only if every node above it was drafted *and
accepted* -- otherwise the call has already ended, so whether that node exists never matters.
Along accepted nodes the context is the logged text, so the draft laws the stop rule looks at are
the logged rows :math:`q_{t}, \dots, q_{t+j}`, and the chain started at t has the deterministic
length

.. math:: L_t = \min\big(k, \#\{\text{consecutive } s \ge t : \max_x q_s(x) \ge c\}\big).

The call's node at depth d + 1 is then accepted with the fixed-chain probability
:math:`c^{(d)}_{t+d}` (:func:`chansim.predict.path_acceptance`) if d < L_t and is absent (the call
ends with a target token) otherwise.  The backward recursion of :func:`chansim.predict.expected_calls`
with this start-dependent mask gives the expected calls, and the same recursion with a per-call
weight gives the expected drafted tokens (:math:`L_t`), target tokens verified (:math:`L_t + 1`) and
draft forwards (:math:`\min(L_t + 1, k)`: the laws at depths 0..L_t, the leaf's never computed).
``c = 0`` is the fixed chain:k (equal to :func:`chansim.logs.predict.predict_from_log`); c > 1 is
autoregressive decoding.

Wall clock, with a target call verifying n tokens costing :math:`c_T(n)` and a draft forward
:math:`c_D` (seconds, or in units of a target call):

.. math:: \hat S = \frac{T\, c_T(1)}{\mathbb E\big[\sum_{\text{calls}} c_T(L + 1) + c_D \min(L + 1, k)\big]}.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common.stats import format_interval, bootstrap_ratio_interval
from ..predict import path_acceptance
from .format import LogRun, read_log

__all__ = ["stop_lengths", "confidence_path", "predict_confidence", "choose_threshold", "format_confidence_rows"]


def stop_lengths(max_q, k: int, threshold: float) -> np.ndarray:
    """Drafted length :math:`L_t` of a chain started at each position (module docstring); ``max_q`` ``[T]``.

    >>> stop_lengths([0.9, 0.2, 0.8, 0.8, 0.8], 2, 0.5).tolist()
    [1, 0, 2, 2, 1]
    """
    ok = np.asarray(max_q, dtype=float) >= float(threshold)
    run = np.zeros(ok.size + 1, dtype=np.int64)
    for t in range(ok.size - 1, -1, -1):
        run[t] = run[t + 1] + 1 if ok[t] else 0
    return np.minimum(run[:-1], int(k))


def confidence_path(accept: np.ndarray, lengths: np.ndarray, weights: dict | None = None) -> dict:
    r"""Expected calls (and weighted sums over calls) to produce one logged path.

    ``accept`` ``[k, T]``: :math:`c^{(d)}_t` of the fixed chain; ``lengths`` ``[T]``: :math:`L_t`;
    ``weights``: name -> ``[T]`` per-call amounts of a call started at t.  Backward recursion
    :math:`f(t) = w_t + \sum_j P_t(j) f(t + j)` with :math:`P_t` the law of the call's length
    (calls running past the end are cut there).  Returns ``{"calls": f_1(0), name: f_w(0), ...}``.
    """
    accept = np.asarray(accept, dtype=float)
    depth, length = accept.shape
    names = ["calls"] + list(weights or {})
    w = np.ones((len(names), length))
    for i, name in enumerate(names[1:], start=1):
        w[i] = np.asarray(weights[name], dtype=float)
    f = np.zeros((len(names), length + 1))
    for t in range(length - 1, -1, -1):
        reach, total = 1.0, np.zeros(len(names))
        for j in range(1, int(lengths[t]) + 2):             # the call makes j tokens (t .. t+j-1)
            d = j - 1
            if d < lengths[t] and t + d < length:
                stop = 1.0 - accept[d, t + d]
            else:
                stop = 1.0                                   # no node there (stop rule, leaf) or end of path
            total += reach * stop * f[:, min(t + j, length)]
            reach *= 1.0 - stop
            if reach == 0.0:
                break
        f[:, t] = w[:, t] + total
    return dict(zip(names, f[:, 0].tolist()))


def _cost(costs, n):
    if costs is None:
        return float("nan")
    table = costs["call"]
    key = n if n in table else str(n)
    if key not in table:
        raise ValueError(f"no measured cost for a target call verifying {n} tokens")
    return float(np.median(table[key]))


def predict_confidence(log, thresholds: Sequence[float], k: int = 8, method: str | None = None, costs: dict | None = None,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Predicted tokens per call, drafted tokens and wall-clock speed-up of chain:k with each stop threshold.

    Parameters
    ----------
    log : LogRun or path
        A log with the draft's rows (``chansim llm log``).
    thresholds : sequence of float
        Confidence thresholds c (0: the fixed chain).
    k : int
        Maximum draft length.
    method : str, optional
        A method with per-node path acceptance on chains (default: the chain reference,
        ``registry.role("chain-reference")``).
    costs : dict, optional
        ``{"call": {n: [seconds, ...]}, "draft": [seconds per draft forward, ...]}`` (the
        ``draft`` key, or ``draft_ratio`` in units of c(1)); gives ``wall_speedup``.

    Returns
    -------
    list of dict
        Per threshold: ``threshold``, ``tokens_per_call`` ``{mean, ci_low, ci_high}`` (bootstrap over
        sequences), ``drafted_per_call``, ``draft_forwards_per_call``, ``acceptance`` (accepted /
        drafted tokens), ``wall_speedup`` (None without costs).
    """
    run = log if isinstance(log, LogRun) else read_log(log)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    thresholds = [float(c) for c in thresholds]
    if not thresholds or any(not np.isfinite(c) or c < 0 for c in thresholds):
        raise ValueError(f"thresholds must be finite numbers >= 0, got {thresholds}")
    k = int(k)
    from ..verify import get_method
    from ..verify.registry import role

    method = role("chain-reference") if method is None else method

    if get_method(method).verifies_chain:
        raise ValueError(f"{method} verifies a chain jointly (no per-node acceptance); predict sd, specinfer, "
                         "spectr or ersd")
    seqs = []
    for p, q, y in run.sequences():
        accept = path_acceptance(method, p, q, y, [1] * k)                  # [k, T]
        seqs.append((accept, np.asarray(q).max(-1), len(y)))
    c1 = _cost(costs, 1)
    if costs is not None:
        if costs.get("draft") is not None:
            cd = float(np.median(costs["draft"]))
        elif costs.get("draft_ratio") is not None:
            cd = float(costs["draft_ratio"]) * c1
        else:
            raise ValueError("costs need 'draft' (seconds per draft forward) or 'draft_ratio' (units of c(1))")
    rows = []
    for c in thresholds:
        per = []
        for accept, max_q, T in seqs:
            L = stop_lengths(max_q, k, c)
            weights = {"drafted": L, "forwards": np.minimum(L + 1, k)}
            if costs is not None:
                weights["seconds"] = np.array([_cost(costs, int(n) + 1) for n in L]) + cd * weights["forwards"]
            per.append(dict(confidence_path(accept, L, weights), tokens=T))
        tokens = np.array([r["tokens"] for r in per], dtype=float)
        calls = np.array([r["calls"] for r in per])
        tpc = bootstrap_ratio_interval(tokens, calls, confidence, resamples, seed)
        drafted = sum(r["drafted"] for r in per)
        accepted = tokens.sum() - calls.sum()
        row = {"threshold": c, "k": k, "method": method,
               "tokens_per_call": {x: float(tpc[x]) for x in ("mean", "ci_low", "ci_high")},
               "drafted_per_call": float(drafted / calls.sum()),
               "draft_forwards_per_call": float(sum(r["forwards"] for r in per) / calls.sum()),
               "acceptance": float(accepted / drafted) if drafted else float("nan"), "wall_speedup": None}
        if costs is not None:
            sec = np.array([r["seconds"] for r in per])
            s = bootstrap_ratio_interval(tokens * c1, sec, confidence, resamples, seed)
            row["wall_speedup"] = {x: float(s[x]) for x in ("mean", "ci_low", "ci_high")}
        rows.append(row)
    return rows


def choose_threshold(rows: Sequence[dict]) -> dict:
    """The row with the largest predicted wall-clock speed-up (rows of :func:`predict_confidence` with costs)."""
    scored = [r for r in rows if r.get("wall_speedup")]
    if not scored:
        raise ValueError("no row has a predicted wall-clock speed-up (pass costs to predict_confidence)")
    return max(scored, key=lambda r: (r["wall_speedup"]["mean"], -r["drafted_per_call"]))


def format_confidence_rows(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`predict_confidence` rows."""
    iv = format_interval
    lines = [f"{'threshold':>10}  {'tokens/call [95% CI]':<28}{'drafted/call':>13}{'draft fwd/call':>15}"
             f"{'accepted/drafted':>17}  wall speed-up [95% CI]"]
    for r in rows:
        lines.append(f"{r['threshold']:>10.3f}  {iv(r['tokens_per_call']):<28}{r['drafted_per_call']:>13.2f}"
                     f"{r['draft_forwards_per_call']:>15.2f}{r['acceptance']:>17.2f}  {iv(r['wall_speedup'])}")
    return "\n".join(lines)
