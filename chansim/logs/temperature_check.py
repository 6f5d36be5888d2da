r"""Predict tokens per call at another temperature from a log, with intervals, and set it beside real generation.

A log made at temperature :math:`T_0` stores :math:`\log p_{T_0} = \ell / T_0 - c` (``chansim llm
log``), so the law at temperature :math:`T > 0` is exactly
:math:`p_T = \mathrm{softmax}(\log p_{T_0} \cdot T_0 / T)` (top-k/top-p then as in
:class:`~chansim.logs.temperature.SamplingSettings`; :math:`T = 0` is greedy).  The logged *paths*,
however, were sampled at :math:`T_0`, so the exact path prediction of :mod:`chansim.predict` does
not apply at :math:`T`; instead each logged context :math:`t` gets the **i.i.d. model**
:math:`E_t = \mathbb{E}[\tau]` of :func:`chansim.theory.expectations.expected_tokens` for
:math:`(p_{t,T}, q_{t,T'})`, i.e. as if every later position of the call saw the same pair
(docs/theory.md; the model ``chansim bound`` uses for a batch of positions).  Two approximations are
made, and :func:`iid_prediction` lets one measure each (docs/llm_validation.md, "another temperature"):

1. *contexts*: the contexts visited at :math:`T_0` differ from those visited at :math:`T` (at
   :math:`T < 1` the text is more predictable, so both models agree more);
2. *i.i.d. within a call*: a call's later positions have their own, different pairs.

Two aggregations over the positions of a sequence are reported:

* ``mean``: :math:`\frac1N \sum_t E_t` (what ``chansim bound --log --temperatures`` prints);
* ``rate``: :math:`N / \sum_t E_t^{-1}` -- position :math:`t` costs :math:`1/E_t` target calls per
  token in the i.i.d. model, so this is the model's tokens / calls, the quantity
  ``chansim llm validate`` measures (ratio estimator).  By the AM-HM inequality ``rate`` <= ``mean``.

Intervals are over sequences (the independent units): Student t on per-sequence means for
``mean``, the ratio interval of :func:`chansim.common.stats.ratio_interval` for ``rate``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common.stats import format_interval

__all__ = ["rescale_settings", "iid_prediction", "compare_with_validation", "format_comparison"]


def rescale_settings(log_temperature: float, temperature: float, top_k: int = 0, top_p: float = 1.0):
    r"""Settings that turn log-probs stored at ``log_temperature`` into the law at ``temperature``.

    :math:`\mathrm{softmax}(\log p_{T_0} / (T/T_0)) = p_T`; ``temperature = 0`` stays greedy.

    >>> rescale_settings(0.7, 0.7).temperature, rescale_settings(1.0, 0.7).temperature
    (1.0, 0.7)
    >>> rescale_settings(0.7, 0.0).greedy
    True
    """
    from .temperature import SamplingSettings

    if not (np.isfinite(log_temperature) and log_temperature > 0):
        raise ValueError(f"the log's temperature must be a finite number > 0, got {log_temperature!r}")
    return SamplingSettings(float(temperature) / float(log_temperature), top_k, top_p)


def iid_prediction(run, temperature: float, draft_temperature: float | None = None,
                   methods: Sequence[str] | None = None, trees: Sequence[str] = ("chain:4",),
                   target_top_k: int = 0, target_top_p: float = 1.0, draft_top_k: int = 0, draft_top_p: float = 1.0,
                   new_tokens: int | None = None, confidence: float = 0.95, trials: int = 4000,
                   seed: int = 0, log_temperature: float | None = None) -> list[dict]:
    r"""i.i.d.-model tokens per call at ``temperature`` from every logged context of ``run``, with intervals.

    Parameters
    ----------
    run : LogRun
        A log (:func:`chansim.logs.format.read_log`) made at any temperature :math:`T_0 > 0`
        (metadata ``temperature``, default 1).
    temperature, draft_temperature : float
        Target and draft temperatures to predict at (draft default: the target's; 0 = greedy).
    methods, trees
        Each method on each tree it accepts (others skipped).
    new_tokens : int, optional
        Use only the first ``new_tokens`` positions of each sequence (as ``llm validate --new-tokens``).
    confidence : float
        Two-sided level of the intervals over sequences.
    trials, seed
        Monte Carlo effort of :func:`expected_tokens` where a method is not exact.
    log_temperature : float, optional
        Temperature both models' rows are at (default: the log's metadata ``temperature`` and
        ``draft_temperature``; 1 means "use the rows as they are").

    Returns
    -------
    list of dict
        ``method``, ``tree``, ``temperature``, ``draft_temperature``, ``log_temperature``,
        ``mean`` and ``rate`` (each ``{"mean", "ci_low", "ci_high"}``), ``exact``, ``positions``,
        ``sequences``.
    """
    from ..verify.registry import default_methods, get_method

    methods = list(methods) if methods else list(default_methods("settings-check"))

    from ..common.stats import student_quantile
    from ..verify import as_tree

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    t0 = float(run.metadata.get("temperature") or 1.0) if log_temperature is None else float(log_temperature)
    d0 = float(run.metadata.get("draft_temperature") or t0) if log_temperature is None else t0
    draft_temperature = temperature if draft_temperature is None else draft_temperature
    p_set = rescale_settings(t0, temperature, target_top_k, target_top_p)
    q_set = rescale_settings(d0, draft_temperature, draft_top_k, draft_top_p)
    rows_of = _rows_used(np.asarray(run.offsets), new_tokens)       # per sequence: row indices used
    idx = np.concatenate(rows_of)
    p = p_set.apply(np.asarray(run.target_log_probs[idx]))           # [N, V]
    q = q_set.apply(np.asarray(run.draft_log_probs[idx]))            # [N, V]
    seq_of = np.repeat(np.arange(len(rows_of)), [len(r) for r in rows_of])   # [N]
    n_seq = len(rows_of)
    tcrit = student_quantile(confidence, max(n_seq - 1, 1))
    out = []
    for method in methods:
        for spec in trees:
            tree = as_tree(spec)
            per_context = _context_tokens(get_method(method), tree, p, q, trials, seed)
            if per_context is None:
                continue                                           # method does not run on this tree
            e, exact = per_context
            mean, rate = _over_sequences(e, seq_of, n_seq, tcrit, confidence)
            out.append({"method": method, "tree": spec, "temperature": float(temperature),
                        "draft_temperature": float(draft_temperature), "log_temperature": t0,
                        "mean": mean, "rate": {k: float(rate[k]) for k in ("mean", "ci_low", "ci_high")},
                        "exact": exact, "positions": int(len(idx)), "sequences": n_seq})
    return out


def _rows_used(offsets: np.ndarray, new_tokens) -> list:
    """Per sequence, the log rows used: all, or the first ``new_tokens`` of each."""
    rows_of = []
    for i in range(len(offsets) - 1):
        stop = offsets[i + 1] if new_tokens is None else min(offsets[i + 1], offsets[i] + int(new_tokens))
        rows_of.append(np.arange(offsets[i], stop))
    return rows_of


def _context_tokens(method, tree, p: np.ndarray, q: np.ndarray, trials: int, seed: int):
    """``(e [N], exact)``: i.i.d.-model tokens per call on ``tree`` at each context (rows of p, q ``[N, V]``),
    by the method's closed form on chains where it has one; None when the method refuses the tree."""
    from ..theory.expectations import expected_tokens

    is_chain = tree.size > 0 and tree.max_depth == tree.size
    fast = method.chain_tokens_batch(p, q, tree.size) if is_chain else None
    if fast is not None:
        return fast, True                                          # [N] closed form, no Monte Carlo
    try:
        es = [expected_tokens(method, tree, p[j], q[j], trials=trials, seed=seed + j) for j in range(len(p))]
    except ValueError:
        return None
    return np.array([x.value for x in es]), all(bool(x.exact) for x in es)


def _over_sequences(e: np.ndarray, seq_of: np.ndarray, n_seq: int, tcrit: float, confidence: float) -> tuple:
    """Intervals over sequences of the per-context tokens per call ``e`` ``[N]`` (``seq_of``: each
    context's sequence): of their mean (Student t) and of the rate tokens / calls (ratio estimator)."""
    from ..common.stats import ratio_interval

    per_seq_mean = np.array([e[seq_of == s].mean() for s in range(n_seq)])
    half = tcrit * per_seq_mean.std(ddof=1) / np.sqrt(n_seq) if n_seq > 1 else float("inf")
    mean = {"mean": float(e.mean()), "ci_low": float(e.mean() - half), "ci_high": float(e.mean() + half)}
    tokens = np.array([np.sum(seq_of == s) for s in range(n_seq)], dtype=float)
    calls = np.array([np.sum(1.0 / e[seq_of == s]) for s in range(n_seq)])
    return mean, ratio_interval(tokens, calls, confidence)


def _overlap(a, b) -> bool:
    return a is not None and b is not None and a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def compare_with_validation(result: dict, predictions: dict[str, list[dict]]) -> list[dict]:
    """Join ``llm validate`` rows with i.i.d. predictions (``{label: iid_prediction(...)}``) by method and tree.

    Each output row: ``method``, ``tree``, ``measured``, ``path`` (the exact path prediction of
    the validated log, or None), and per label ``{label}:mean`` / ``{label}:rate`` with
    ``{label}:rate_overlap`` (rate interval overlaps the measured one).
    """
    rows = []
    for r in result["rows"]:
        if r.get("measured") is None:
            continue
        row = {"method": r["method"], "tree": r["tree"], "measured": r["measured"], "path": r.get("predicted")}
        for label, preds in predictions.items():
            match = [x for x in preds if x["method"] == r["method"] and x["tree"] == r["tree"]]
            if match:
                row[f"{label}:mean"] = match[0]["mean"]
                row[f"{label}:rate"] = match[0]["rate"]
                row[f"{label}:rate_overlap"] = _overlap(match[0]["rate"], r["measured"])
        rows.append(row)
    return rows


def format_comparison(rows: list[dict], labels: Sequence[str]) -> str:
    """Plain-text table of :func:`compare_with_validation` (value [interval])."""
    def iv(x):
        return format_interval(x, "—") if x is not None else "—"

    head = f"{'method':<8}{'tree':<9}{'measured':<26}{'exact path (this log)':<26}"
    for lab in labels:
        head += f"{'iid ' + lab + ' rate':<26}{'iid ' + lab + ' mean':<26}"
    lines = [head]
    for r in rows:
        line = f"{r['method']:<8}{r['tree']:<9}{iv(r['measured']):<26}{iv(r['path']):<26}"
        for lab in labels:
            line += f"{iv(r.get(f'{lab}:rate')):<26}{iv(r.get(f'{lab}:mean')):<26}"
        lines.append(line)
    lines.append("rate = positions / Σ 1/E_t (the i.i.d. model's tokens per call); mean = mean of E_t "
                 "(bound --temperatures); intervals over sequences")
    return "\n".join(lines)
