r"""Validate predicted tokens per target call against real speculative generation.

For a log (:mod:`chansim.logs.format`) and each (method, tree):

* **predicted** — :func:`chansim.logs.predict.predict_from_log`: expected calls given
  the logged paths (exact, no i.i.d. approximation), bootstrap interval over sequences;
* **measured** — :func:`chansim.llm.generate.generate_real` on the same pair (rebuilt from
  the log's metadata), the same prompts and the same number of new tokens per prompt,
  seeded with the log's seed (so ``ersd`` regenerates the logged paths); estimate
  :math:`\hat R = \sum_i n_i / \sum_i c_i` (tokens and target calls of sequence i), with
  the ratio-estimator interval of :func:`chansim.common.stats.ratio_interval`.

Side by side (``hf_assisted=True``): transformers' own assisted generation with
sampling on the same pair and prompts (:mod:`chansim.llm.hf_assisted`), its tokens per
target call (target forward calls counted by a hook), wall time, and its wall-clock
speed-up over transformers' plain ``generate`` (interleaved per prompt, paired bootstrap).

Rows are plain dicts (``method``, ``tree``, ``k``, ``predicted`` and ``measured`` as
``{mean, ci_low, ci_high}``, ``target_calls``, ``wall_seconds``, ...), the format read by
:mod:`chansim.figures.fig6_real_models`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..inputs.numbers import whole_number
from ..common.logconfig import get_logger, progress_bar
from ..logs.temperature import SamplingSettings
from ..common.stats import format_interval, bootstrap_ratio_interval, ratio_interval
from ..verify.registry import baseline, is_baseline, method_names, role
from .hf_assisted import format_hf_speedups, hf_assisted_generate, hf_draft_model, hf_side_by_side

_log = get_logger("validate")

__all__ = ["ratio_interval", "bootstrap_ratio_interval", "pair_from_log", "measure", "hf_draft_model",
           "hf_assisted_generate", "validate", "format_table", "results_document", "DEFAULT_METHODS",
           "DEFAULT_TREES"]

#: methods validated by default: every drafting method with path prediction (variants and
#: methods with ``validated_by_default = False`` left out)
DEFAULT_METHODS = method_names(drafting=True, path=True, variants=False, default=True)
DEFAULT_TREES = ("chain:1", "chain:2", "chain:4", "batch:2", "batch:4")


# ----------------------------------------------------------------------------- statistics
#: below these sizes a row is flagged ``small_sample`` (its intervals, and so "overlap", are unreliable)
SMALL_SEQUENCES, SMALL_CALLS = 4, 30
#: the law a log holds (its rows are already at the log's temperature)
_SAME = SamplingSettings(1.0)


def _feasible_row(row: dict, max_tokens: int, n_sequences: int) -> None:
    """Clip a row's intervals to the feasible range [1, depth + 1] tokens per call and flag small samples."""
    for key in ("predicted", "measured"):
        iv = row.get(key)
        if isinstance(iv, dict) and "ci_low" in iv:
            iv["ci_low"] = max(1.0, float(iv["ci_low"]))
            iv["ci_high"] = min(float(max_tokens), float(iv["ci_high"]))
    calls = row.get("target_calls")
    row["small_sample"] = bool(n_sequences < SMALL_SEQUENCES or (calls is not None and calls < SMALL_CALLS))


def _intervals_overlap(a: dict, b: dict) -> bool:
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


# ----------------------------------------------------------------------------- the pair
def _resolve_model_path(entry, role: str) -> Path:
    """The recorded model file, or the installed default GGUF when the recorded path moved."""
    from .models import GGUF_FILENAME, default_gguf_path, file_sha256

    if not isinstance(entry, dict) or not entry.get("path"):
        raise ValueError(f"the log's metadata has no {role} model path; pass --target/--draft")
    path = Path(entry["path"])
    if not path.exists() and path.name == GGUF_FILENAME:
        path = default_gguf_path()
    if not path.exists():
        raise FileNotFoundError(f"the log's {role} model {entry['path']} does not exist here; pass --target/--draft")
    want = entry.get("sha256")
    if want and path.is_file() and file_sha256(path) != want:
        raise ValueError(f"{role} model {path} has sha256 {file_sha256(path)[:12]}..., but the log was made "
                         f"with {want[:12]}...: predictions would not describe this pair")
    return path


def pair_from_log(run, *, target=None, draft=None, skip_layers=None, device: str = "cpu", dtype=None):
    """Rebuild the log's model pair (paths, skipped layers, dtype), optionally overridden.

    The recorded paths are used when they exist; a moved default GGUF is found again by
    :func:`~chansim.llm.models.default_gguf_path`.  File hashes are checked.
    """
    from .models import load_model, load_pair

    meta = run.metadata
    dtype = dtype or meta.get("dtype") or "float32"
    t_path = Path(target) if target is not None else _resolve_model_path(meta.get("target"), "target")
    same = meta.get("draft_skipped_layers") is not None and (meta.get("draft") or {}).get("path") == \
        (meta.get("target") or {}).get("path")
    if draft is None and not same and meta.get("draft") is not None:
        d_path = _resolve_model_path(meta["draft"], "draft")
    else:
        d_path = None if draft is None else Path(draft)
    if skip_layers is None:
        if d_path is None:
            skip_layers = meta.get("draft_skipped_layers")
        elif meta.get("draft_layers") is not None:
            d_model, _ = load_model(d_path, device=device, dtype=dtype)
            kept = set(int(i) for i in meta["draft_layers"])
            skip_layers = [i for i in range(len(d_model.model.layers)) if i not in kept]
    pair = load_pair(t_path, d_path, skip_layers=skip_layers, device=device, dtype=dtype)
    if pair.vocab_size != run.vocab_size:
        raise ValueError(f"vocabulary mismatch: the log has V={run.vocab_size}, the model pair V={pair.vocab_size}")
    return pair


# ----------------------------------------------------------------------------- measuring
def _setting_bar(label: str, total: int, enabled: bool):
    """One tqdm bar per setting (prompts done), on stderr; a no-op when disabled or tqdm is missing."""
    return progress_bar(total, f"[validate] {label}", enabled, unit="prompt")


def measure(pair, prompts: Sequence[Sequence[int]], lengths: Sequence[int], method: str, tree,
            temperature: float, seed: int, confidence: float = 0.95, reference=None, progress: bool = False,
            target_settings=None, draft_settings=None, race_keys: Sequence[int] | None = None) -> dict:
    """Run ``method`` on ``tree`` for every prompt and aggregate (see the module docstring).

    Parameters
    ----------
    pair : ModelPair
    prompts : list of list of int
    lengths : list of int
        New tokens to generate per prompt.
    method, tree
        As in :func:`~chansim.llm.generate.generate_real`.
    temperature : float
    seed : int
        Prompt i draws its uniforms from ``default_rng([seed, i])``
        (:func:`chansim.logs.noise_keys.sequence_rng`: prompts are independent units).
    race_keys : list of int, optional
        Race-noise key of each prompt (:func:`chansim.logs.noise_keys.race_keys` of the log, so
        ``ersd`` regenerates the logged paths); default ``seed`` for every prompt.
    confidence : float
    reference : list of arrays, optional
        Logged continuations; the number of sequences whose generated continuation equals
        them is reported (``ersd`` with the log's seed must reproduce them).
    progress : bool
        Draw a progress bar over the prompts of this setting on stderr (tqdm).
    target_settings, draft_settings : SamplingSettings, optional
        Separate samplers (replace ``temperature``), as in :func:`~chansim.llm.generate.generate_real`.

    Returns
    -------
    dict
        ``measured`` interval (:func:`ratio_interval`), counts, forward counts and times
        summed over prompts, acceptance per depth, per-sequence tokens and calls.
    """
    from ..verify import as_tree
    from .generate import generate_real

    tree = as_tree(tree)
    bar = _setting_bar(f"{method} {tree.name}", len(prompts), progress)
    from ..logs.noise_keys import sequence_rng

    keys = [int(seed)] * len(prompts) if race_keys is None else [int(k) for k in race_keys]
    if len(keys) != len(prompts):
        raise ValueError(f"need one race key per prompt (got {len(keys)} keys, {len(prompts)} prompts)")
    runs = []
    for i, (p, n) in enumerate(zip(prompts, lengths)):
        runs.append(generate_real(pair, method, tree, p, n, temperature, keys[i], target_settings=target_settings,
                                  draft_settings=draft_settings, rng=sequence_rng(seed, i)))
        bar.update(1)
    bar.close()
    tokens = np.array([r.new_tokens for r in runs])
    calls = np.array([r.target_calls for r in runs])
    reached = np.sum([r.reached_per_depth for r in runs], axis=0).astype(int).tolist() if tree.max_depth else []
    accepted = np.sum([r.accepted_per_depth for r in runs], axis=0).astype(int).tolist() if tree.max_depth else []
    hist = np.sum([r.tokens_histogram for r in runs], axis=0)                # [max_depth + 2]
    call_tokens = np.repeat(np.arange(hist.size), hist)
    out = {
        "method": runs[0].method, "tree": tree.name, "k": tree.size,
        "measured": ratio_interval(tokens, calls, confidence, call_tokens, max_call_tokens=tree.max_depth + 1),
        "tokens": int(tokens.sum()), "target_calls": int(calls.sum()), "sequences": len(runs),
        "target_forwards": sum(r.target_forwards for r in runs), "draft_forwards": sum(r.draft_forwards for r in runs),
        "target_seconds": sum(r.target_seconds for r in runs), "draft_seconds": sum(r.draft_seconds for r in runs),
        "wall_seconds": sum(r.wall_seconds for r in runs),
        "acceptance_per_depth": [a / r if r else None for a, r in zip(accepted, reached)],
        "reached_per_depth": reached, "accepted_per_depth": accepted,
        "sequence_tokens": tokens.tolist(), "sequence_calls": calls.tolist(), "tokens_histogram": hist.tolist(),
        "sequence_wall_seconds": [r.wall_seconds for r in runs],
    }
    if reference is not None:
        out["log_path_matches"] = int(sum(np.array_equal(r.tokens, np.asarray(ref)[:r.new_tokens])
                                          for r, ref in zip(runs, reference)))
    return out


# ----------------------------------------------------------------------------- the whole validation
def _predict(run, method: str, tree, lengths, confidence: float):
    """Prediction from the log (``None`` when the method/tree has no path prediction)."""
    from ..predict import predict_path
    from ..logs.predict import predict_from_log, tree_widths

    try:
        if all(n == len(t) for n, t in zip(lengths, run.tokens)):
            pred = predict_from_log(run, method, tree, confidence=confidence)
            return {k: float(pred[k]) for k in ("mean", "ci_low", "ci_high")}
        widths = [] if is_baseline(method) else tree_widths(tree)   # measured on a prefix of the log
        seqs = ((p[:n], q[:n], y[:n]) for (p, q, y), n in zip(run.sequences(), lengths))
        pred = predict_path(method if widths else baseline(), widths, seqs)
        lo, hi = pred.interval(confidence)                 # (-inf, inf) from one sequence: the feasible range
        return {"mean": pred.tokens_per_call, "ci_low": max(1.0, lo), "ci_high": min(float(len(widths) + 1), hi)}
    except ValueError as err:
        return str(err)


def _relative(settings, log_temperature: float):
    """Settings acting on the log's rows (stored at ``log_temperature``) that give ``settings``' law."""
    from ..logs.temperature import SamplingSettings

    return SamplingSettings(settings.temperature / log_temperature, settings.top_k, settings.top_p)


def _predict_iid(run, method: str, tree: str, lengths, confidence: float, t_set, d_set):
    """i.i.d.-model prediction (rate aggregation) when the generation's laws differ from the log's."""
    from ..logs.temperature_check import iid_prediction

    try:
        rows = iid_prediction(run, t_set.temperature, d_set.temperature, methods=[method], trees=[tree],
                              target_top_k=t_set.top_k, target_top_p=t_set.top_p, draft_top_k=d_set.top_k,
                              draft_top_p=d_set.top_p, new_tokens=min(lengths), confidence=confidence,
                              log_temperature=1.0)
    except ValueError as err:
        return str(err)
    return rows[0]["rate"] if rows else f"{method} does not run on {tree}"


def validate(run, pair, methods: Sequence[str] = DEFAULT_METHODS, trees: Sequence[str] = DEFAULT_TREES, *,
             new_tokens: int | None = None, seed: int | None = None, confidence: float = 0.95,
             hf_assisted: bool = False, skip_chain_duplicates: bool = True, time_budget: float | None = None,
             progress: bool = True, target_settings=None, draft_settings=None) -> dict:
    """Predicted vs measured tokens per call for every (method, tree) that suits the method.

    Parameters
    ----------
    run : LogRun
        The log (:func:`chansim.logs.format.read_log`).
    pair : ModelPair
        Usually :func:`pair_from_log`.
    methods, trees : sequences of str
        Every method is run on every tree it accepts (``sd`` chains only, ``spectr``
        ``batch``/``chain``/``seq``, ``autoregressive`` ``chain:0``); others are skipped.
    new_tokens : int, optional
        Tokens per prompt (default and maximum: the logged length; a shorter run is
        predicted from the first ``new_tokens`` logged positions).
    seed : int, optional
        Default: the log's seed (so ``ersd`` reproduces the logged paths).
    confidence : float
    hf_assisted : bool
        Also run transformers' plain ``generate`` and its assisted generation for every
        ``chain:K`` tree, interleaved per prompt (:func:`chansim.llm.hf_assisted.hf_side_by_side`):
        rows ``hf_assisted`` (each with ``wall_speedup`` over plain generation) and ``hf_generate``.
    skip_chain_duplicates : bool
        With ``sd`` among the methods, do not rerun ``specinfer``, ``rsd`` and ``spectr`` on
        chains: with one draft per node each of them *is* sd (same output law, same
        prediction), so the rows would only repeat the sd row with other random numbers.
    time_budget : float, optional
        Seconds; once spent, no further setting is started (the rest are listed in
        ``skipped`` with the reason), so a run on a lent machine ends in time.
    progress : bool
        One line per setting on stderr.

    target_settings, draft_settings : SamplingSettings, optional
        Generate with these separate samplers (temperature, 0 = greedy, top-k, top-p) instead
        of the log's temperature.  When they give other laws than the log's, the exact path
        prediction does not apply; ``predicted`` is then the i.i.d. model per logged context
        (``rate`` of :func:`chansim.logs.temperature_check.iid_prediction`) and the row says so
        in ``prediction``.
    Returns
    -------
    dict
        ``rows`` (one per (method, tree); ``predicted`` is ``None`` with ``note`` when the
        log gives no prediction), ``hf_assisted`` rows, ``skipped`` settings, and metadata.
    """
    from ..logs.noise_keys import race_keys
    from ..verify import as_tree, get_method

    meta = run.metadata
    temperature, draft_settings, t_set, d_set, path_valid = _settings_against_log(meta, target_settings,
                                                                                 draft_settings)
    seed = int(meta.get("seed", 0) if seed is None else seed)
    keys = race_keys(meta, len(run.prompts), seed)          # the log's keying rule (per sequence, or one seed)
    lengths = _run_lengths([len(t) for t in run.tokens], new_tokens)
    rows, skipped = [], []
    start = time.perf_counter()

    def out_of_time() -> bool:
        return time_budget is not None and time.perf_counter() - start > time_budget

    for method in methods:
        m = get_method(method)
        for spec in trees:
            tree = as_tree(spec)
            reason = _skip_reason(m, tree, methods, skip_chain_duplicates, time_budget if out_of_time() else None)
            if reason:
                skipped.append({"method": method, "tree": tree.name, "reason": reason})
                continue
            rows.append(_compare_setting(run, pair, m, tree, lengths, temperature, seed, confidence, path_valid,
                                         (t_set, d_set, target_settings, draft_settings), keys, progress))
    hf_rows, hf_generate = [], None
    if hf_assisted:
        hf_rows, hf_generate = _hf_part(pair, run, lengths, temperature, _chain_budgets(trees), seed, confidence,
                                        rows, progress, skipped, time_budget if out_of_time() else None)
    result = {"rows": rows, "hf_assisted": hf_rows, "hf_generate": hf_generate, "skipped": skipped}
    result.update(_run_summary(run, pair, rows, lengths, temperature, seed, confidence, target_settings,
                               draft_settings))
    return result


def _compare_setting(run, pair, m, tree, lengths, temperature, seed, confidence, path_valid, settings, keys,
                     progress) -> dict:
    """Predict one setting (method ``m`` on ``tree``) from the log, measure it on the pair and compare.

    ``settings`` = ``(t_set, d_set, target_settings, draft_settings)`` of :func:`validate`; the
    prediction is exact on the logged paths when ``path_valid``, else the i.i.d. model per context.
    """
    t_set, d_set, target_settings, draft_settings = settings
    if path_valid:
        pred = _predict(run, m.name, tree, lengths, confidence)
    else:
        pred = _predict_iid(run, m.name, tree.name, lengths, confidence, t_set or _SAME, d_set or _SAME)
    row = measure(pair, run.prompts, lengths, m.name, tree, temperature, seed, confidence,
                  reference=run.tokens if m.uses_race and path_valid else None, progress=progress,
                  target_settings=target_settings, draft_settings=draft_settings, race_keys=keys)
    row = _compared_row(row, pred, path_valid, tree, len(run.prompts))
    if progress:
        _log_row(row, pred)
    return row


def _log_row(row: dict, pred) -> None:
    """One line on stderr for a compared row: predicted (or -) and measured tokens per call."""
    p = f"{pred['mean']:.3f}" if isinstance(pred, dict) else "  -  "
    _log.info("[validate] %10s %-10s predicted %s measured %.3f (%d calls, %.1f s)", row["method"], row["tree"], p,
              row["measured"]["mean"], row["target_calls"], row["wall_seconds"])


def _hf_part(pair, run, lengths, temperature, ks, seed, confidence, rows, progress, skipped, spent_budget) -> tuple:
    """transformers' rows for the chains ``chain:k``, k in ``ks`` (``([], None)`` without any); once
    the time budget is spent (``spent_budget``, else None) they are listed in ``skipped`` instead."""
    if ks and spent_budget is not None:
        skipped += [{"method": "hf-assisted", "tree": f"chain:{k}", "reason": f"time budget {spent_budget} s spent"}
                    for k in ks]
    elif ks:
        return _hf_rows(pair, run, lengths, temperature, ks, seed, confidence, rows, progress)
    return [], None


def _chain_budgets(trees) -> list:
    """The sorted k of the ``chain:k`` trees (k >= 1) among ``trees`` (transformers' assisted generation)."""
    from ..verify import as_tree

    return sorted({as_tree(s).size for s in trees if str(as_tree(s).name).startswith("chain:") and as_tree(s).size})


def _settings_against_log(meta: dict, target_settings, draft_settings):
    """``(temperature, draft_settings, t_set, d_set, path_valid)``: the samplers relative to the
    log's own temperatures, and whether the logged path still predicts them exactly."""
    temperature = float(meta.get("temperature", 1.0))
    draft_temperature = float(meta.get("draft_temperature", temperature))
    if draft_settings is None and draft_temperature != temperature:   # a log with its own draft temperature
        draft_settings = SamplingSettings(draft_temperature)
    t_set = None if target_settings is None else _relative(target_settings, temperature)
    d_set = None if draft_settings is None else _relative(draft_settings, draft_temperature)
    path_valid = t_set in (None, _SAME) and d_set in (None, _SAME)
    return temperature, draft_settings, t_set, d_set, path_valid


def _run_lengths(logged: list, new_tokens) -> list:
    """Tokens to generate per prompt: the logged lengths, or ``new_tokens`` (at most the shortest)."""
    if new_tokens is None:
        return logged
    whole_number(new_tokens, "new_tokens")
    if new_tokens > min(logged):
        raise ValueError(f"new_tokens={new_tokens} exceeds the shortest logged continuation ({min(logged)}): "
                         "predictions need logged positions")
    return [int(new_tokens)] * len(logged)


def _skip_reason(m, tree, methods, skip_chain_duplicates: bool, spent_budget) -> str | None:
    """Why the setting (method ``m``, ``tree``) is not run, or None."""
    if spent_budget is not None:
        return f"time budget {spent_budget} s spent"
    try:
        m.check_tree(tree)
    except ValueError as err:
        return str(err)
    if skip_chain_duplicates and m.sd_on_chains and tree.max_depth == tree.size and role("chain-reference") in methods:
        return f"{m.name} on a chain is sd (one draft per node): same law, see the sd row"
    return None


def _compared_row(row: dict, pred, path_valid: bool, tree, n_prompts: int) -> dict:
    """A measured row with its prediction, ratio and overlap (or why there is no prediction)."""
    row["prediction"] = "exact path" if path_valid else "i.i.d. per logged context (rate)"
    row = {"method": row.pop("method"), "tree": row.pop("tree"), "k": row.pop("k"),
           "predicted": pred if isinstance(pred, dict) else None, "measured": row.pop("measured"), **row}
    _feasible_row(row, tree.max_depth + 1, n_prompts)
    if isinstance(pred, dict):
        row["ratio"] = row["measured"]["mean"] / pred["mean"]
        row["overlap"] = _intervals_overlap(pred, row["measured"])
    else:
        row["note"] = f"no prediction from the log: {pred}"
    return row


def _hf_rows(pair, run, lengths, temperature, ks, seed, confidence, rows, progress) -> tuple:
    """transformers' plain and assisted generation on every ``chain:K`` (``(assisted rows, generate row)``)."""
    bar = _setting_bar("hf generate/assisted " + ",".join(f"chain:{k}" for k in ks), len(run.prompts), progress)
    hf = hf_side_by_side(pair, run.prompts, lengths, temperature, ks, seed, confidence, progress=bar.update)
    bar.close()
    out = []
    for row in hf["assisted"]:
        ours = next((r for r in rows if r["method"] == role("chain-reference") and r["tree"] == row["tree"]), None)
        if ours is not None:
            row["chansim_sd_wall_seconds"] = ours["wall_seconds"]
        out.append(row)
        if progress:
            s = row["wall_speedup"]
            _log.info("[validate] hf-assisted %s: %.3f tokens/call (%d calls, %.1f s), wall speed-up over "
                      "transformers generate %.3f [%.3f, %.3f]", row["tree"], row["measured"]["mean"],
                      row["target_calls"], row["wall_seconds"], s["mean"], s["ci_low"], s["ci_high"])
    return out, hf["generate"]


def _run_summary(run, pair, rows, lengths, temperature, seed, confidence, target_settings, draft_settings) -> dict:
    """The validation's metadata and its agreement counts (overlaps, worst ratio)."""
    with_pred = [r for r in rows if r["predicted"] is not None]
    worst = min(with_pred, key=lambda r: min(r["ratio"], 1 / r["ratio"])) if with_pred else None
    pm = pair.metadata
    return {
        "target": Path(str((pm.get("target") or {}).get("path", "?"))).name,
        "draft": _describe_draft(pm),
        "device": str(pair.device), "dtype": str(pm.get("dtype", "")), "temperature": temperature, "seed": seed,
        "target_sampling": None if target_settings is None else target_settings.label(),
        "draft_sampling": None if draft_settings is None else draft_settings.label(),
        "prompts": len(run.prompts), "positions": int(sum(lengths)), "new_tokens": lengths[0] if len(set(lengths)) == 1
        else None, "confidence": confidence, "log": str(getattr(run, "path", "")),
        "overlap": sum(bool(r.get("overlap")) for r in with_pred), "compared": len(with_pred),
        "small_sample": sum(bool(r.get("small_sample")) for r in rows),
        "worst_ratio": None if worst is None else worst["ratio"],
        "worst_setting": None if worst is None else f"{worst['method']} {worst['tree']}",
    }


def _describe_draft(pm: dict) -> str:
    skipped = pm.get("draft_skipped_layers")
    if skipped is not None and (pm.get("draft") or {}).get("path") == (pm.get("target") or {}).get("path"):
        return f"target minus layers {list(skipped)}"
    return Path(str((pm.get("draft") or {}).get("path", "?"))).name


def results_document(result: dict) -> dict:
    """The figure-6 contract: ``{"rows": [...rows with a prediction], ...scalar metadata}``."""
    doc = {k: v for k, v in result.items() if k != "rows"}
    doc["rows"] = [r for r in result["rows"] if r["predicted"] is not None]
    doc["unpredicted_rows"] = [r for r in result["rows"] if r["predicted"] is None]
    return doc


def format_table(result: dict) -> str:
    """Plain-text table of predicted vs measured tokens per call (and HF assisted rows)."""
    conf = int(round(100 * result.get("confidence", 0.95)))
    head = (f"{'method':<12}{'tree':<11}{'k':>3}  {'predicted [' + str(conf) + '% CI]':<26}"
            f"{'measured [' + str(conf) + '% CI]':<26}{'ratio':>7}{'calls':>7}{'t fwd':>7}{'d fwd':>7}{'wall s':>8}")
    lines = [head, "-" * len(head)]

    iv = format_interval
    for r in result["rows"]:
        ratio = f"{r['ratio']:.3f}" if r.get("ratio") is not None else "-"
        lines.append(f"{r['method']:<12}{r['tree']:<11}{r['k']:>3}  {iv(r['predicted']):<26}{iv(r['measured']):<26}"
                     f"{ratio:>7}{r['target_calls']:>7}{r['target_forwards']:>7}{r['draft_forwards']:>7}"
                     f"{r['wall_seconds']:>8.1f}")
    for r in result.get("hf_assisted", []):
        lines.append(f"{'hf-assisted':<12}{r['tree']:<11}{r['k']:>3}  {'(transformers)':<26}{iv(r['measured']):<26}"
                     f"{'-':>7}{r['target_calls']:>7}{r['target_calls']:>7}{r['draft_forwards']:>7}"
                     f"{r['wall_seconds']:>8.1f}")
    if result.get("hf_generate"):
        lines.append(format_hf_speedups(result["hf_generate"], result.get("hf_assisted", [])))
    for sk in result.get("skipped", []):
        if "time budget" in sk["reason"] or "no prediction" in sk["reason"]:
            lines.append(f"skipped {sk['method']} {sk['tree']}: {sk['reason']}")
    if result.get("compared"):
        lines.append(f"{result['overlap']}/{result['compared']} predicted and measured intervals overlap; "
                     f"worst ratio measured/predicted {result['worst_ratio']:.3f} ({result['worst_setting']}).")
    if result.get("small_sample"):
        lines.append(f"warning: {result['small_sample']} row(s) from a small sample (< {SMALL_SEQUENCES} sequences or "
                     f"< {SMALL_CALLS} target calls): their intervals, and whether they overlap, are unreliable.")
    lines.append(f"pair: {result['target']} / draft {result['draft']}; T={result['temperature']}, "
                 f"seed {result['seed']}, {result['prompts']} prompts, {result['positions']} positions, "
                 f"device {result['device']}.")
    return "\n".join(lines)
