r"""Predicted tokens per target call from a log, and the large-k relation and all-k bound on it.

Prediction (exact given the logged paths; derivation in docs/theory.md, "Prediction
from a logged path"): for a tree whose shape depends only on depth (``chain:K``,
``batch:M``, ``branch:W1,W2,...``), :func:`chansim.predict.predict_path` turns the
per-position acceptance probabilities :math:`c^{(d)}_t` of each logged sequence into
the expected number of target calls needed to produce it (backward recursion).  The
estimate is total logged tokens / total expected calls, with a bootstrap interval
over sequences.

Relation and bound (``log_theory``): per position t, the ERSD rank law
:math:`a^{(t)}` of :math:`(p_t, q_t)` (:func:`chansim.logs.ranklaw.position_laws`, the
same law as ``chansim bound``: exact for small V, else a_1..a_K, P(R > K) and a
rigorous H(R) interval with a guaranteed l1 error, docs/theory.md §5), and from it

* :math:`\bar H = \frac1N\sum_t H(R_t)` and :math:`\bar\mu_2 = \frac1N\sum_t E[(\ln a^{(t)}_{R_t})^2]`;
* the **all-k bound** :math:`\min(k+1, (\ln(k+1) + \ln V)/\bar H_{low})`, with
  :math:`\bar H_{low}` the mean of the lower ends of the rigorous H(R) intervals (a
  lower bound on :math:`\bar H`, so the bound stays guaranteed): for any ERSD tree of k nodes,
  per call :math:`E\sum_{t \in \text{call}} H(a^{(t)}) \le \ln((k+1)V - k)` (an
  inequality: the per-position laws are conditioned on the tokens as well as the
  ranks; proof in docs/theory.md §9); summing over calls,
  E[total entropy] <= E[calls] ln((k+1)V - k), and the generated text is target text,
  so E[tokens] / E[calls] <= (ln(k+1) + ln V) / E[H̄]: a bound on a ratio of
  expectations (estimated here by the log's H̄, like the prediction itself), not on
  the tokens per call of one finite run;
* the **large-k relation** :math:`\ln k/\bar H + \ln\bar H/\bar H + \bar\mu_2/(2\bar H^2)`:
  the renewal constant of theory §3 applied to the step sizes
  :math:`-\ln a^{(t)}_{R_t}`, whose mean along the path is :math:`\bar H`.  This is the
  rate of a tree that ranks nodes by their per-position path probability (an oracle
  that knows each position's rank law); it is reported with the rank law of the
  *pooled* position, :math:`\bar a = \frac1N\sum_t a^{(t)}` (what a fixed tree sees
  when positions are treated as independent draws from the log; its tail mass
  P(R > K) is kept, :func:`chansim.logs.ranklaw.pooled_law`): relation and the
  guaranteed bound of ``chansim bound`` (:func:`chansim.theory.bound_columns.guaranteed_bound`)
  on :math:`\bar a` (a bound for i.i.d. positions drawn from the log, not for consecutive
  positions).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..predict import predict_path
from ..inputs.trees import Tree, parse_tree
from ..verify.registry import baseline, get_method, is_baseline, method_names
from .format import LogRun, read_log

__all__ = ["tree_widths", "predict_from_log", "log_theory", "log_report", "LOG_METHODS", "BOUNDARY_SHARE_LIMIT"]

#: methods predictable from a log: the registry's methods with path prediction (variants left out)
LOG_METHODS = method_names(path=True, variants=False)

#: A prediction is flagged *boundary-limited* when the end of the sequences stops more
#: calls than the tree's depth does (cut calls outnumber leaf calls,
#: :func:`chansim.predict.call_endings`) and the cut calls carry more than this share of
#: the logged tokens (docs/theory.md §9).
BOUNDARY_SHARE_LIMIT = 0.01


def tree_widths(tree_spec) -> list[int]:
    """Children per depth of a tree whose shape depends only on depth.

    ``chain:0`` or ``autoregressive`` give ``[]``.

    >>> tree_widths("chain:3"), tree_widths("batch:4"), tree_widths("branch:3,2")
    ([1, 1, 1], [4], [3, 2])
    """
    if isinstance(tree_spec, str) and tree_spec in (baseline(), "chain:0"):
        return []
    tree = tree_spec if isinstance(tree_spec, Tree) else parse_tree(tree_spec)
    depth, kids = tree.depth, tree.num_children
    widths = []
    for d in range(int(tree.max_depth)):
        w = set(kids[depth == d].tolist())
        if len(w) != 1:
            raise ValueError(f"tree {tree_spec!r}: nodes at depth {d} have different numbers of children "
                             f"{sorted(w)}; prediction from a log needs a shape that depends only on depth "
                             f"(chain:K, batch:M, branch:W1,W2,...)")
        widths.append(w.pop())
    return widths


def _as_run(log) -> LogRun:
    return log if isinstance(log, LogRun) else read_log(Path(log))


#: a bootstrap over fewer sequences than this gives near-zero-width intervals: flagged ``small_sample``
SMALL_SEQUENCES = 4


def predict_from_log(log, method: str, tree_spec, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> dict:
    """Predicted tokens per target call of ``method`` on ``tree_spec`` for the logged paths.

    Parameters
    ----------
    log : LogRun or path
    method : str
        One of :data:`LOG_METHODS`.
    tree_spec : str or Tree
        ``chain:K``, ``batch:M`` or ``branch:W1,W2,...`` (any tree whose shape depends
        only on depth); ignored for ``autoregressive``.
    confidence, resamples, seed
        Bootstrap interval over sequences (:meth:`chansim.predict.PathPrediction.interval`).

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high`` (tokens per call, clipped to [1, depth + 1]),
        ``small_sample`` (fewer than 4 sequences), and ``method``, ``tree``,
        ``k`` (drafted tokens), ``widths``, ``expected_calls``, ``tokens``;
        ``boundary_share`` (share of the tokens produced by calls cut short by the end of
        their sequence), ``end_stop_share`` (of the calls not stopped by a rejection, the
        share stopped by the end of the sequence rather than the tree's last level) and
        ``boundary_limited`` (``end_stop_share > 1/2`` and ``boundary_share`` above
        :data:`BOUNDARY_SHARE_LIMIT`: the value reflects the sequence length, not the
        tree's depth).
    """
    run = _as_run(log)
    if method not in LOG_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(LOG_METHODS)}")
    widths = [] if is_baseline(method) else tree_widths(tree_spec)
    if not widths:
        method = baseline()
    pred = predict_path(method, widths, run.sequences())
    lo, hi = pred.interval(confidence, resamples, seed)
    k = int(sum(np.cumprod(widths))) if widths else 0
    depth = len(widths)                                  # feasible range: 1 .. depth + 1 tokens per call
    return {"method": method, "tree": str(tree_spec) if widths else "chain:0", "k": k, "widths": widths,
            "mean": pred.tokens_per_call, "ci_low": max(1.0, float(lo)), "ci_high": min(float(depth + 1), float(hi)),
            "small_sample": run.n_sequences < SMALL_SEQUENCES,
            "expected_calls": float(pred.expected_calls.sum()), "tokens": int(pred.tokens.sum()),
            "boundary_share": pred.boundary_share, "end_stop_share": pred.end_stop_share,
            "boundary_limited": bool(pred.end_stop_share > 0.5 and pred.boundary_share > BOUNDARY_SHARE_LIMIT)}


def log_theory(log, k: Sequence[int], trials: int = 1000, seed: int = 0, rank_tol: float = 1e-4,
               max_rank: int = 64, jobs: int = 1, backend: str | None = None,
               scheduler: str | None = None) -> dict:
    r"""Large-k relation and all-k bound evaluated on a log (module docstring says exactly what).

    Per-position rank laws come from :func:`chansim.logs.ranklaw.position_laws` (the
    same guaranteed law as ``chansim bound``, docs/theory.md §5; ``rank_tol`` is its l1
    error target, ``max_rank`` the ranks computed); ``jobs``/``backend``/``scheduler``
    spread the positions over joblib workers or a dask cluster without changing a number.

    Returns
    -------
    dict
        ``k``; ``mean_entropy_nats`` (H̄, mean of the per-position midpoints) with
        ``mean_entropy_ci`` = ``rank_entropy_interval`` (means of the rigorous per-position
        interval ends); ``rank_law_error`` (largest per-position guaranteed l1 error);
        ``mean_second_moment``; ``bound`` (:math:`\min(k+1, (\ln(k+1) + \ln V)/\bar H_{low})`,
        guaranteed: it uses the lower end of the H̄ interval), ``bound_paper`` (the same at
        the point H̄) and ``relation`` (lists over k); ``pooled_entropy_nats`` (H(ā)),
        ``pooled_entropy_interval``, ``pooled_rank_law_error``, ``pooled_tail`` (P(R > K)
        under ā, kept, never renormalised away), ``pooled_alpha_er`` (ā_1),
        ``pooled_relation``, ``pooled_bound`` (:func:`chansim.theory.bound_columns.guaranteed_bound`
        on ā); ``support`` (V); ``positions``, ``exact`` (all rank laws exact), ``trials``.
    """
    from ..theory import large_k_relation
    from ..theory.bound_columns import guaranteed_bound
    from .ranklaw import pooled_law, position_laws

    run = _as_run(log)
    ks = np.asarray(list(k), dtype=float)
    if ks.size == 0 or np.any(ks < 1):
        raise ValueError(f"k must be a non-empty list of integers >= 1, got {list(k)}")
    laws = position_laws(run.sequences(), trials=trials, seed=seed, max_rank=max(int(max_rank), 1), tol=rank_tol,
                         jobs=jobs, backend=backend, scheduler=scheduler)
    n = len(laws)
    exact = all(d["exact"] for d in laws)
    hbar = float(np.mean([d["entropy"] for d in laws]))
    m2bar = float(np.mean([d["second_moment"] for d in laws]))
    ci = [float(np.mean([d["entropy_ci"][j] for d in laws])) for j in (0, 1)]
    support = run.vocab_size                     # V_R <= V at every position (docs/theory.md §4)
    out = {"k": [int(v) for v in ks], "positions": n, "exact": bool(exact), "trials": 0,
           "mean_entropy_nats": hbar, "mean_entropy_ci": ci, "rank_entropy_interval": ci,
           "rank_law_error": float(max(d["error"] for d in laws)),
           "rank_entropy_guaranteed": all(d["guaranteed"] for d in laws),
           "mean_second_moment": m2bar, "support": support,
           "bound_basis": "lower end of the rank-entropy interval"}
    if hbar > 0:
        const = np.log(hbar) / hbar + m2bar / (2 * hbar * hbar)
        out["relation"] = (np.log(ks) / hbar + const).tolist()
        out["bound_paper"] = ((np.log(ks + 1) + np.log(support)) / hbar).tolist()
    else:
        out["relation"] = out["bound_paper"] = [float("inf")] * ks.size
    h_low = ci[0]
    paper_low = (np.log(ks + 1) + np.log(support)) / h_low if h_low > 0 else np.full(ks.size, np.inf)
    out["bound"] = np.minimum(ks + 1, paper_low).tolist()
    law = pooled_law(laws, support)
    out["pooled_entropy_nats"] = law.entropy
    out["pooled_entropy_interval"] = [float(v) for v in law.entropy_ci]
    out["pooled_rank_law_error"] = float(law.error)
    out["pooled_tail"] = float(law.tail)
    out["pooled_never"] = float(law.never)
    out["pooled_alpha_er"] = law.alpha
    if law.entropy > 0:
        out["pooled_relation"] = large_k_relation(ks, law).tolist()
        # the pooled law mixes positions: "never" and rank V may both occur, so V + 1 values then
        pooled_support = support + (1 if law.never > 0 else 0)
        out["pooled_bound"] = guaranteed_bound([int(v) for v in ks], law, pooled_support)
    return out


def _predict_group(run, tasks, confidence, seed) -> list:
    out = []
    for method, spec in tasks:
        try:
            out.append(predict_from_log(run, method, spec, confidence=confidence, seed=seed))
        except ValueError as err:
            out.append({"method": method, "tree": spec, "reason": str(err)})
    return out


def _predict_tasks(run, tasks, confidence, seed, jobs) -> list:
    """:func:`predict_from_log` for every (method, tree) task, in order; over ``jobs`` joblib workers when != 1.

    Each prediction is seeded by itself, so the result does not depend on ``jobs``; the
    log's arrays reach the workers memory-mapped (joblib), not copied per task.
    """
    from ..common.parallel import effective_jobs, parallel_map

    n = min(effective_jobs(jobs), len(tasks)) if jobs != 1 else 1
    if n <= 1:
        return _predict_group(run, tasks, confidence, seed)
    groups = [list(range(i, len(tasks), n)) for i in range(n)]          # interleaved: similar costs
    parts = parallel_map(_predict_group, [(run, [tasks[i] for i in g], confidence, seed) for g in groups], jobs=n,
                         desc="path predictions")
    out = [None] * len(tasks)
    for g, part in zip(groups, parts):
        for i, row in zip(g, part):
            out[i] = row
    return out


def log_report(log, methods: Sequence[str] | None = None, k: Sequence[int] = (1, 2, 4, 8),
               trees: Sequence[str] = ("chain", "batch"), extra_trees: Sequence[str] = (),
               trials: int = 1000, seed: int = 0, confidence: float = 0.95, rank_tol: float = 1e-4,
               jobs: int = 1, backend: str | None = None, scheduler: str | None = None) -> dict:
    """Everything ``chansim bound --log`` prints: statistics, predictions per method/tree/k, relation, bound.

    ``rank_tol``, ``jobs``, ``backend``, ``scheduler``: passed to :func:`log_theory`; ``jobs``
    also spreads the path predictions over joblib workers (without ``backend``).

    Combinations a method cannot predict (sd on batch:k>1, rsd with more than 2
    children per node, spectr on branching trees) are listed under ``skipped`` with the
    reason instead of failing the whole report.
    """
    run = _as_run(log)
    methods = list(methods) if methods else list(method_names(drafting=True, path=True, variants=False))
    bad = [m for m in methods if m not in LOG_METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(LOG_METHODS)}")
    specs = []
    for kind in trees:
        specs += [f"{kind}:{int(v)}" for v in k]
    specs += [s for s in extra_trees if s not in specs]
    stats = run.pair_statistics()
    unique, seen = [], set()
    for s in specs:                                      # chain:1 and batch:1 are the same tree
        w = tuple(tree_widths(s))
        if w not in seen:
            seen.add(w)
            unique.append(s)
    tasks = [(method, spec) for method in methods for spec in (["chain:0"] if is_baseline(method) else unique)
             if not (get_method(method).chains_only and any(w > 1 for w in tree_widths(spec)))]
    # (a chain method (sd, block) on a branching tree is silently not applicable)
    done = _predict_tasks(run, tasks, confidence, seed, jobs if backend is None else 1)
    rows = [r for r in done if "reason" not in r]
    skipped = [r for r in done if "reason" in r]
    return {
        "log": str(run.path), "sequences": run.n_sequences, "positions": run.n_positions,
        "vocab": run.vocab_size, "temperature": run.metadata.get("temperature"),
        "seed": run.metadata.get("seed"),
        "statistics": {key: {"mean": float(v.mean()),
                             "se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None}
                       for key, v in stats.items()},
        "normalisation_error": run.normalisation_error,
        "predictions": rows, "skipped": skipped, "confidence": confidence,
        "theory": log_theory(run, k, trials=trials, seed=seed, rank_tol=rank_tol, jobs=jobs, backend=backend,
                             scheduler=scheduler),
    }


def format_log_report(report: dict) -> str:
    """Plain-text rendering of :func:`log_report`."""
    s = report["statistics"]
    lines = [f"log {report['log']}: {report['sequences']} sequences, {report['positions']} positions, "
             f"V = {report['vocab']}, T = {report['temperature']}",
             f"  Σmin(p,q) = {s['sd_acceptance']['mean']:.4f}   α_ER = {s['er_acceptance']['mean']:.4f}   "
             f"KL(p‖q) = {s['kl_nats']['mean']:.4f} nats   (position means)",
             "",
             f"predicted tokens per target call (exact on the logged paths; "
             f"{100 * report.get('confidence', 0.95):g}% bootstrap over sequences)",
             f"  {'method':<11}{'tree':<14}{'k':>4}{'mean':>9}   interval"]
    for r in report["predictions"]:
        flag = (f"   boundary-limited ({100 * r['end_stop_share']:.0f}% of long calls stopped by the end; "
                f"{100 * r['boundary_share']:.0f}% of tokens)" if r.get("boundary_limited") else "")
        lines.append(f"  {r['method']:<11}{r['tree']:<14}{r['k']:>4}{r['mean']:>9.4f}   "
                     f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]{flag}")
    if any(r.get("boundary_limited") for r in report["predictions"]):
        lines.append("  boundary-limited: the end of the sequences stops more calls than the tree's depth does, so "
                     "the value reflects the sequence length, not k (log longer sequences; docs/theory.md §9)")
    for r in report["skipped"]:
        lines.append(f"  {r['method']:<11}{r['tree']:<14}   n/a: {r['reason']}")
    if report["sequences"] < SMALL_SEQUENCES:
        lines.append(f"  warning: small sample ({report['sequences']} sequence(s) < {SMALL_SEQUENCES}): the bootstrap "
                     "intervals above are unreliable (near zero width)")
    th = report["theory"]
    pooled_ci = th.get("pooled_entropy_interval", [th["pooled_entropy_nats"]] * 2)
    lines += ["",
              f"rank entropy: mean over positions H̄ = {th['mean_entropy_nats']:.4f} nats "
              f"[{th['mean_entropy_ci'][0]:.4f}, {th['mean_entropy_ci'][1]:.4f}]"
              f"{' (exact)' if th['exact'] else ' (guaranteed, l1 error <= %.1e per position)' % th['rank_law_error']}; "
              f"pooled position H(ā) in [{pooled_ci[0]:.4f}, {pooled_ci[1]:.4f}]"
              f"{'' if th['exact'] else ', P(R > K) = %.2e kept' % th.get('pooled_tail', 0.0)}",
              f"  {'k':>5}{'relation ln k/H̄ + C':>22}{'all-k bound':>14}{'pooled relation':>18}{'pooled bound':>15}"]
    for i, kk in enumerate(th["k"]):
        lines.append(f"  {kk:>5}{th['relation'][i]:>22.4f}{th['bound'][i]:>14.4f}"
                     f"{th.get('pooled_relation', [float('nan')] * len(th['k']))[i]:>18.4f}"
                     f"{th.get('pooled_bound', [float('nan')] * len(th['k']))[i]:>15.4f}")
    lines.append("  (bound: min(k+1, (ln(k+1) + ln V) / H̄_low) on E[tokens]/E[calls], any k-node ERSD tree, H̄_low = "
                 "lower end of the H̄ interval (guaranteed); pooled bound: as `chansim bound` on ā; relation: "
                 "large-k renewal estimate; see docs/theory.md §9, §10)")
    return "\n".join(lines)
