"""``chansim llm validate``: run every method on the logged pair and prompts; predicted vs measured."""
from __future__ import annotations

import json
from pathlib import Path



HELP = "run the methods on a log's model pair and prompts; predicted vs measured tokens per call"
DESCRIPTION = ("For every method and tree: tokens per target call predicted from the log (exact given the "
               "logged paths, bootstrap interval over sequences) and measured by real speculative generation "
               "on the same pair (rebuilt from the log's metadata), prompts, temperature and seed (ratio "
               "estimator: total tokens / total calls; interval from the spread over sequences, Student t, "
               "or over calls when there are fewer than 4 sequences). Prints the table (or --json); writes "
               "the results file only where --out says (figure 6 reads figures/data/llm_validation.json).")


def register(subparsers) -> None:
    from ..llm.validate import DEFAULT_METHODS, DEFAULT_TREES
    from . import (add_confidence, add_device, add_models, add_output, add_report_output, add_sampling_filters,
                   add_seed, command_parser)

    parser = command_parser(subparsers, "validate", run, HELP, DESCRIPTION)
    parser.add_argument("--log", required=True, metavar="RUN.npz", help="log from 'chansim llm log'")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated methods (autoregressive, sd, specinfer, rsd, spectr, ersd)")
    parser.add_argument("--trees", default=",".join(DEFAULT_TREES),
                        help="comma-separated trees: chain:K, batch:M, branch:W1/W2/.. (or branch:W1,W2 as the last "
                             "item), seq:CxL; each method runs on the trees it accepts")
    parser.add_argument("--k", default=None, help="shortcut: chain:K and batch:K trees for these comma-separated K")
    parser.add_argument("--new-tokens", type=int, default=None,
                        help="tokens per prompt (default and maximum: the logged length)")
    add_seed(parser, None, "noise seed (default: the log's, so ersd reproduces it)")
    add_confidence(parser, "predicted and measured intervals")
    add_device(parser, "cpu", None, dtype_help="float32, bfloat16 or float16 (default: the log's)")
    add_models(parser, target="override the log's target model path", draft="override the log's draft model path",
               skip_layers="override the draft's skipped layers (comma-separated)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--hf-assisted", action="store_true",
                        help="also run transformers' assisted generation (do_sample=True) for every chain:K and its "
                             "plain generate, interleaved per prompt: tokens per call and wall-clock speed-up "
                             "(chansim/llm/hf_assisted.py)")
    add_report_output(parser, "print the list of rows as JSON instead of a table",
                      "plot predicted vs measured (figure 6 style)")
    add_output(parser, "results file (JSON); default: none, nothing is written ('-' also means none). "
                       "Figure 6 reads figures/data/llm_validation.json", "overwrite existing --out / --plot files")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no further setting after this many seconds (for lent machines)")
    parser.add_argument("--cost", default=None, choices=["auto"],
                        help="auto: measure draft-forward and target tree-call costs on the pair, also run "
                             "autoregressive decoding, and report predicted vs measured wall-clock speed-up "
                             "(chansim/llm/wallclock.py)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="generate with this target temperature (0 = greedy; default: the log's); laws other "
                             "than the log's are predicted with the i.i.d. model per logged context")
    parser.add_argument("--draft-temperature", type=float, default=None,
                        help="draft temperature (default: the log's draft temperature)")
    add_sampling_filters(parser)
    parser.add_argument("--predict-from", default=None, metavar="LOG.npz[,LOG.npz]",
                        help="also predict from these logs (any logged temperature, e.g. a T = 1 log) at this log's "
                             "temperature with the i.i.d. model per logged context, with intervals, and print them "
                             "beside the measured values (chansim/logs/temperature_check.py)")


def _split_trees(text: str) -> list[str]:
    """``chain:1,batch:4,branch:2,2`` -> items; a bare number continues the previous branch spec."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit() and out and out[-1].startswith("branch:"):
            out[-1] += "," + part
        else:
            out.append(part.replace("/", ","))
    if not out:
        raise ValueError("--trees is empty")
    return out


def _ints(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    return vals


def _jsonable(x):
    import numpy as np

    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and x != x:
        return None
    return x


def run(args) -> int:
    from ..logs.format import read_log
    from ..common.logconfig import get_logger
    from ..llm.validate import pair_from_log, results_document, validate

    methods, trees = _methods_and_trees(args)
    _check_outputs(args)
    if args.cost == "auto":               # the wall-clock speed-up is over autoregressive decoding: run it too
        from ..verify.registry import baseline

        methods = methods if baseline() in methods else [baseline()] + methods
        trees = trees if "chain:0" in trees else ["chain:0"] + trees
    log = read_log(Path(args.log))
    target_settings, draft_settings = _settings(args, log.metadata)
    for path in (p.strip() for p in (args.predict_from or "").split(",") if p.strip()):
        if not Path(path).is_file():                      # before the (slow) model load and generation
            raise FileNotFoundError(f"--predict-from log {path} does not exist")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    skip = None if args.skip_layers is None else _ints(args.skip_layers, "--skip-layers")
    pair = pair_from_log(log, target=args.target, draft=args.draft, skip_layers=skip, device=args.device,
                         dtype=args.dtype)
    result = _jsonable(validate(log, pair, methods, trees, new_tokens=args.new_tokens, seed=args.seed,
                                confidence=args.confidence, hf_assisted=args.hf_assisted,
                                time_budget=args.time_budget, progress=not getattr(args, "quiet", False),
                                target_settings=target_settings, draft_settings=draft_settings))
    wall = None
    if args.cost == "auto":
        from ..llm.wallclock import measure_costs, wallclock_rows

        costs = measure_costs(pair, log.prompts[0], [t for t in trees if t != "chain:0"])
        wall = {"costs": costs, "rows": _jsonable(wallclock_rows(result, costs, args.confidence))}
        result["wallclock"] = wall
    iid = _iid_predictions(args, log, result, methods, trees, target_settings, draft_settings) \
        if args.predict_from else None
    doc = results_document(result)
    if args.out and args.out != "-":
        from ..common.outputs import write_text_atomic

        out = write_text_atomic(args.out, json.dumps(doc, indent=1, allow_nan=False) + "\n", "--out")
        get_logger("validate").info("[validate] wrote %d rows to %s", len(doc["rows"]), out)
    if args.plot:
        _plot(doc, args.plot)
    _print_results(args, result, wall, iid)
    return 0


def _methods_and_trees(args) -> tuple:
    """The methods and tree specs the flags ask for, each checked before any model loads."""
    from ..verify import as_tree, get_method

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)                                  # unknown names fail before any model loads
    trees = _split_trees(args.trees)
    if args.k is not None:
        ks = _ints(args.k, "--k")
        if not ks or min(ks) < 1:
            raise ValueError(f"--k must be positive integers, got {args.k!r}")
        trees = [f"chain:{k}" for k in ks] + [f"batch:{k}" for k in ks if k > 1]
    for t in trees:
        as_tree(t)
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {args.confidence}")
    return methods, trees


def _check_outputs(args) -> None:
    """Refuse --out / --plot names that are empty, an input, or an existing file without --force."""
    from ..common.outputs import check_output

    for flag, value in (("--out", args.out), ("--plot", args.plot)):
        if value is not None and not value.strip():
            raise ValueError(f"{flag}: empty output file name" + (" (use '-' for none)" if flag == "--out" else ""))
    if args.out and args.out != "-":
        check_output(args.out, inputs=[args.log], force=args.force, what="--out", suffixes=(".json",),
                     make_parents=True)
    if args.plot:
        check_output(args.plot, inputs=[args.log], force=args.force, what="--plot", suffixes=(".png", ".pdf", ".svg"),
                     make_parents=True)


def _print_results(args, result: dict, wall, iid) -> None:
    """The rows as JSON (--json) or as tables: validation, wall clock (--cost auto), i.i.d. (--predict-from)."""
    from ..llm.validate import format_table

    if args.json:
        print(json.dumps(result["rows"] + result["hf_assisted"], indent=1, allow_nan=False))
        return
    print(format_table(result))
    if wall is not None:
        from ..llm.wallclock import format_wallclock

        print(format_wallclock(wall["rows"], wall["costs"]))
    if iid is not None:
        from ..logs.temperature_check import format_comparison

        print(format_comparison(iid["rows"], iid["labels"]))


def _settings(args, meta: dict):
    """SamplingSettings of target and draft from the flags (None: as logged)."""
    from ..logs.temperature import SamplingSettings

    t_log = float(meta.get("temperature", 1.0))
    d_log = float(meta.get("draft_temperature", t_log))
    target = draft = None
    if args.temperature is not None or args.top_k or args.top_p < 1:
        target = SamplingSettings(t_log if args.temperature is None else args.temperature, args.top_k, args.top_p)
    if args.draft_temperature is not None or args.draft_top_k or args.draft_top_p < 1 or target is not None:
        d_t = args.draft_temperature
        if d_t is None:          # follow the target's temperature when only that was changed
            d_t = d_log if args.temperature is None else args.temperature
        draft = SamplingSettings(d_t, args.draft_top_k, args.draft_top_p)
    return target, draft


def _iid_predictions(args, log, result, methods, trees, target_settings, draft_settings) -> dict:
    """i.i.d.-model predictions at the validated settings from this log and each --predict-from log."""
    from ..logs.format import read_log
    from ..logs.temperature import SamplingSettings

    t_log = float(log.metadata.get("temperature", 1.0))
    t = target_settings or SamplingSettings(t_log)
    d = draft_settings or SamplingSettings(float(log.metadata.get("draft_temperature", t_log)))
    from ..logs.temperature_check import compare_with_validation, iid_prediction

    logs = {"this log": log}
    for path in (p.strip() for p in args.predict_from.split(",") if p.strip()):
        other = read_log(Path(path))
        logs[f"{Path(path).name} (T={other.metadata.get('temperature', 1.0):g})"] = other
    preds = {label: iid_prediction(run_, t.temperature, d.temperature, methods=methods, trees=trees,
                                   target_top_k=t.top_k, target_top_p=t.top_p, draft_top_k=d.top_k,
                                   draft_top_p=d.top_p, new_tokens=args.new_tokens, confidence=args.confidence)
             for label, run_ in logs.items()}
    out = {"labels": list(preds), "rows": _jsonable(compare_with_validation(result, preds))}
    result["iid_predictions"] = out
    return out


def _plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures.fig6_real_models import plot

    if not doc["rows"]:
        raise ValueError("nothing to plot: no row has a prediction from the log")
    fig = plot({"rows": doc["rows"]})
    from ..common.outputs import atomic_path

    with atomic_path(path, "--plot") as tmp:
        fig.savefig(tmp, dpi=150, format=Path(path).suffix[1:].lower())
    plt.close(fig)
