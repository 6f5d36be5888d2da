"""``chansim bound``: theoretical tokens per call, large-k relation and all-k bound for (p, q)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..verify.registry import default_methods
from . import SHAPE_RULE


_LOOKUP_DRAFTS = "lookup:1,lookup:2,lookup:4,lookup:8,ngram:2,ngram:4"


def _cost_arg(text: str):
    """``--cost``: a number c (the draft/target time ratio) or ``auto`` (measured call costs, --log only)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', got {text!r}") from None


def register(subparsers) -> None:
    from ..verify.registry import method_names
    from . import (add_atol, add_backend, add_confidence, add_logits, add_pair_files, add_report_output, add_sampling_filters,
                   add_seed)
    from .llm_lookup import add_choose_by

    parser = subparsers.add_parser(
        "bound",
        help="theoretical speed-up (tokens per target call) and its bounds for given distributions",
        description="Exact tokens per target call of every method in the i.i.d. model, the large-k relation "
                    "ln k / H(R) + C and the all-k bound (ln(k+1) + ln V) / H(R) for a (p, q) pair or a batch "
                    "of positions (averaged; --per-position for each). Derivations: docs/theory.md. " + SHAPE_RULE,
    )
    add_pair_files(parser, "target file (.npy/.npz/.csv/.json): shape (V,) or (positions, V)")
    parser.add_argument("--log", default=None, metavar="RUN.npz",
                        help="instead of --p/--q: a log from 'chansim llm log'; prints tokens per call predicted "
                             "exactly on the logged paths (per method, tree and k, with bootstrap intervals), "
                             "and the large-k relation and all-k bound evaluated on the log")
    parser.add_argument("--tree-spec", action="append", default=None, metavar="SPEC",
                        help="with --log: extra trees whose shape depends only on depth (branch:4,2,1; repeatable)")
    parser.add_argument("--top-n", default=None, metavar="N[,N...]",
                        help="with a full --log: truncate it to the top-N of p and q and print the guaranteed "
                             "intervals next to the full-log values (docs/log-format.md)")
    parser.add_argument("--temperatures", default=None, metavar="T[,T...]",
                        help="with a T = 1 --log: predict tokens per call at these target temperatures (0 = greedy; "
                             "i.i.d. model at each logged context; chansim/logs/temperature.py)")
    parser.add_argument("--draft-temperatures", default=None, metavar="T[,T...]",
                        help="with --temperatures: the draft's temperature for each (default: the same)")
    add_sampling_filters(parser, "with --temperatures: ")
    parser.add_argument("--positions", type=int, default=None,
                        help="with --temperatures: use only the first N logged positions (speed)")
    parser.add_argument("--markov", action="store_true", help=argparse.SUPPRESS)
    add_logits(parser)
    parser.add_argument("--k", default="1,2,4,8,16,32,64", help="budgets of drafted tokens, comma-separated")
    parser.add_argument("--method", action="append", default=None,
                        help=f"method(s) to report (repeat or comma-separate): {', '.join(method_names(theory=True))}; "
                             "default: all that are fast for this vocabulary; with --log: "
                             f"{', '.join(method_names(path=True, variants=False))}")
    parser.add_argument("--tree", default="optimal", choices=["optimal", "chain", "batch"],
                        help="draft tree for every method (optimal: best tree per method and k)")
    parser.add_argument("--cost", type=_cost_arg, default=None, metavar="C|auto",
                        help="draft/target time ratio c: also report speed-up = tokens / (1 + c * draft depth); "
                             "with --log: 'auto' measures the default target's call costs c(n) on this device "
                             "for the --drafts prediction")
    parser.add_argument("--drafts", default=None, metavar="DRAFT[,DRAFT...]",
                        help="with --log: also predict these deterministic drafts (lookup:K[:N], ngram:K[:N][@c]) "
                             "from the log -- tokens per call and, with --cost auto or --costs, wall-clock "
                             "speed-up -- as 'chansim llm lookup' (default with --cost auto/--costs/--choose: "
                             f"{_LOOKUP_DRAFTS})")
    parser.add_argument("--costs", default=None, metavar="COSTS.json",
                        help="with --log: call costs from an earlier 'llm lookup --cost auto --out' run")
    parser.add_argument("--choose", action="store_true",
                        help="with --log and call costs: name the draft with the best predicted wall-clock speed-up")
    parser.add_argument("--threads", type=int, default=None, help="with --cost auto: torch CPU threads")
    add_choose_by(parser)
    parser.add_argument("--per-position", action="store_true", help="include every position's values (JSON)")
    parser.add_argument("--jobs", type=int, default=-1, help="parallel workers over positions and, with --log, over the path predictions (-1: all cores)")
    add_backend(parser, "--log: joblib backend for the per-position rank laws, e.g. 'dask' (as chansim figures)",
                "--log: dask.distributed scheduler address for --backend dask")
    parser.add_argument("--trials", type=int, default=1000, help="Monte Carlo samples (rank law of --log predictions)")
    parser.add_argument("--rank-law", action="store_true",
                        help="compute the ERSD rank law (H(R), ersd bound, asymptote) even when no requested "
                             "method needs it (default: only with an ERSD method; it costs seconds per position "
                             "at V ~ 50k)")
    parser.add_argument("--rank-tol", type=float, default=1e-4,
                        help="guaranteed l1 error aimed at for the rank law when V > 64 (docs/theory.md §5)")
    add_seed(parser)
    add_confidence(parser, "intervals (Monte Carlo H(R) for large V; bootstrap for --log)")
    add_report_output(parser, "print one JSON object instead of a table",
                      "plot tokens per call vs k with the bounds (.png, .pdf or .svg; never over an input)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --plot file; allow k above 10^7 (the O(k) memory guard) and a "
                             "rank law estimated to run past the time limit")
    add_atol(parser)
    parser.set_defaults(func=run)


_PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _parse_ks(text: str) -> list:
    items = [v.strip() for v in text.split(",")]
    if any(not v.isdigit() for v in items):          # also refuses empty items: "1,,4", "1,", " "
        raise ValueError(f"--k must be comma-separated positive integers, got {text!r}")
    ks = [int(v) for v in items]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"--k must be comma-separated positive integers, got {text!r}")
    return ks


def _methods(values):
    """``--method`` values (repeated or comma-separated) as a list; None when not given.

    A ``--method`` that names nothing (``''``, ``',,,'``) is refused rather than read as "all"."""
    if not values:
        return None
    for v in values:
        if not [m for m in v.split(",") if m.strip()]:
            raise ValueError(f"--method {v!r} names no method; give names such as sd,ersd")
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


#: smallest --rank-tol accepted: below it the rank law's work grows past any useful run time
#: (the tolerance is an l1 error on a law of float64 probabilities; 1e-12 is already at rounding level)
RANK_TOL_FLOOR = 1e-12


def _check_common(args) -> None:
    """Argument checks shared by every mode of ``bound`` (before any file is read)."""
    if not RANK_TOL_FLOOR <= args.rank_tol < 1:                     # NaN fails too
        raise ValueError(f"--rank-tol must be a number in [{RANK_TOL_FLOOR:g}, 1) (the guaranteed l1 error of the "
                         f"rank law; smaller values do not fit float64 and run without end), got {args.rank_tol:g}")
    _methods(args.method)
    if args.plot is not None and not args.plot.strip():
        raise ValueError("--plot: empty output file name")
    _check_lookup_flags(args)


def _check_lookup_flags(args) -> None:
    """--drafts, --costs, --choose, --threads and --cost auto predict deterministic drafts from a log: --log only."""
    given = [flag for flag, on in (("--drafts", args.drafts is not None), ("--costs", args.costs is not None),
                                   ("--choose", args.choose), ("--threads", args.threads is not None),
                                   ("--cost auto", args.cost == "auto")) if on]
    if given and args.log is None:
        raise ValueError(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to --log only "
                         "(deterministic drafts are predicted from a log's text); give --log RUN.npz, or a number "
                         "--cost C for --p/--q")
    if given and (args.temperatures is not None or args.top_n is not None):
        raise ValueError(f"{', '.join(given)} do not combine with --temperatures or --top-n")
    if args.threads is not None and args.cost != "auto":
        raise ValueError("--threads applies with --cost auto only (the threads of the cost measurement)")


def _plot_output(args, inputs):
    """``--plot`` checked through the output door (never over an input, existing only with --force)."""
    from ..common.outputs import check_output

    return str(check_output(args.plot, inputs=inputs, force=args.force, what="--plot", suffixes=_PLOT_SUFFIXES))


def run(args) -> int:
    _check_common(args)
    if args.log is not None:
        if args.p is not None or args.q is not None:
            raise ValueError("give either --log or --p/--q, not both")
        return _run_log(args)
    if args.p is None or args.q is None:
        raise ValueError("--p and --q are required (or --log RUN.npz)")
    if args.backend or args.scheduler:
        raise ValueError("--backend and --scheduler apply to --log only")
    if args.markov:
        raise ValueError("bound reads 2-D --p/--q as positions (one distribution per row); Markov transition "
                         "matrices (--markov) are for 'chansim simulate'")
    from ..inputs.io import load_pair
    from ..theory.report import MAX_K, MAX_RANKS, speedup_report

    if args.plot:
        args.plot = _plot_output(args, [args.p, args.q])
    p, q = load_pair(args.p, args.q, logits=args.logits, temperature=args.temperature, atol=args.atol)
    if p.ndim > 2:
        raise ValueError(f"--p/--q must hold one pair (V,) or a batch (positions, V), got shape {p.shape}")
    if args.trials < 2:
        raise ValueError(f"--trials must be >= 2, got {args.trials}")
    if args.jobs == 0 or args.jobs < -1:
        raise ValueError(f"--jobs must be a positive number of workers or -1 (all cores), got {args.jobs}")
    if getattr(args, "tree_spec", None):
        raise ValueError("--tree-spec applies to --log only; use --tree optimal|chain|batch for --p/--q")
    for flag, value in (("--temperatures", args.temperatures), ("--draft-temperatures", args.draft_temperatures),
                        ("--positions", args.positions), ("--top-n", args.top_n)):
        if value is not None:
            raise ValueError(f"{flag} applies to --log only")
    from ..inputs.guards import check_rank_law_budget
    from ..theory.report import needs_rank_law

    ks = _parse_ks(args.k)
    methods = _methods(args.method) or list(default_methods("bound", vocab=p.shape[-1], kmax=max(ks)))
    with_law = args.rank_law or needs_rank_law(methods)
    seconds = check_rank_law_budget(p.shape[-1], args.rank_tol, positions=p.shape[0] if p.ndim == 2 else 1,
                                    jobs=args.jobs, force=args.force, ranks=min(max(ks), MAX_RANKS)) if with_law else 0.0
    if seconds > 10:
        from ..common.logconfig import get_logger

        get_logger("bound").info("the guaranteed rank law at V = %s (--rank-tol %g) takes about %.0f s; "
                                    "Ctrl-C stops it", f"{p.shape[-1]:,}", args.rank_tol, seconds)
    report = speedup_report(p, q, k=ks, methods=methods, tree=args.tree, rank_law=True if args.rank_law else None,
                            cost=args.cost, per_position=args.per_position, trials=args.trials, seed=args.seed,
                            n_jobs=args.jobs, confidence=args.confidence, rank_tol=args.rank_tol,
                            max_k=None if args.force else MAX_K)
    if args.plot:
        _plot(report, args.plot)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    if args.plot:
        from ..common.logconfig import get_logger

        get_logger("bound").info("plot written to %s", args.plot)
    return 0


def _run_log(args) -> int:
    from ..logs.predict import format_log_report, log_report
    from ..logs.truncated import format_truncated_report, is_truncated_log, truncated_report

    if args.temperatures is not None:
        return _run_temperatures(args)
    if args.draft_temperatures is not None or args.positions is not None:
        raise ValueError("--draft-temperatures and --positions apply with --temperatures only")
    if args.top_n is not None:
        from ..logs.format import read_log
        from ..logs.truncated import format_truncation_widths, truncation_widths

        top_n = [v.strip() for v in args.top_n.split(",")]
        if not top_n or any(not v.isdigit() or int(v) < 1 for v in top_n):
            raise ValueError(f"--top-n must be comma-separated positive integers, got {args.top_n!r}")
        rows = truncation_widths(read_log(args.log), [int(v) for v in top_n],
                                 methods=_methods(args.method) or default_methods("top-n"))
        print(json.dumps(rows, indent=1) if args.json else format_truncation_widths(rows))
        return 0
    if is_truncated_log(args.log):                       # top-n log: guaranteed intervals (docs/log-format.md)
        if _lookup_drafts(args) is not None:
            raise ValueError("--drafts, --costs, --choose and --cost auto need a full log; this one is top-n "
                             "truncated")
        trees = {"optimal": ("chain", "batch"), "chain": ("chain",), "batch": ("batch",)}[args.tree]
        rep = truncated_report(args.log, k=_parse_ks(args.k), methods=_methods(args.method), trees=trees)
        print(json.dumps(rep, indent=2) if args.json else format_truncated_report(rep))
        return 0

    if args.trials < 2:
        raise ValueError(f"--trials must be >= 2, got {args.trials}")
    lookup = _lookup_drafts(args)
    if lookup is not None and args.costs:
        from .llm_lookup import load_costs

        lookup_costs = load_costs(args.costs)           # a malformed file fails before the log report's work
    if args.logits or args.cost not in (None, "auto") or args.per_position or (args.plot and not args.temperatures):
        raise ValueError("--logits, --cost C, --per-position and --plot do not apply to --log "
                         "(--cost auto does, with --drafts)")
    trees = {"optimal": ("chain", "batch"), "chain": ("chain",), "batch": ("batch",)}[args.tree]
    report = log_report(args.log, methods=_methods(args.method), k=_parse_ks(args.k), trees=trees,
                        extra_trees=[s.strip() for v in (args.tree_spec or []) for s in [v] if s.strip()],
                        trials=args.trials, seed=args.seed, confidence=args.confidence, rank_tol=args.rank_tol,
                        jobs=args.jobs, backend=args.backend, scheduler=args.scheduler)
    if lookup is None:
        print(json.dumps(report, indent=2) if args.json else format_log_report(report))
        return 0
    from .llm_lookup import lookup_prediction

    pred = lookup_prediction(args.log, lookup, costs=lookup_costs if args.costs else None,
                             cost_auto=args.cost == "auto",
                             threads=args.threads, confidence=args.confidence, choose=args.choose,
                             choose_by=args.choose_by)
    if args.json:
        print(json.dumps({"log_report": report, "drafts": pred["rows"], "costs": pred["costs"],
                          "chosen": pred["chosen"], "choose_by": args.choose_by if args.choose else None}, indent=2))
    else:
        print(format_log_report(report))
        print("\ndeterministic drafts (prompt lookup / n-gram), predicted from the log's text "
              "(as 'chansim llm lookup'):")
        print(pred["text"])
    return 0


def _lookup_drafts(args):
    """The deterministic drafts asked for with --log (--drafts / --cost auto / --costs / --choose), or None."""
    from .llm_lookup import parse_drafts

    wanted = args.drafts is not None or args.costs is not None or args.choose or args.cost == "auto"
    if not wanted:
        return None
    if args.drafts is not None and not args.drafts.strip():
        raise ValueError("--drafts is empty; give drafts such as lookup:2,ngram:4")
    return parse_drafts(args.drafts or _LOOKUP_DRAFTS, costs_path=args.costs, cost_auto=args.cost == "auto",
                        choose=args.choose)


def _run_temperatures(args) -> int:
    import numpy as np

    from ..logs.format import read_log
    from ..logs.temperature import format_sweep, plot_sweep, temperature_sweep

    def floats(text, name):
        items = [v.strip() for v in text.split(",")]
        try:
            values = [float(v) for v in items]
        except ValueError:
            values = []
        if not values or any(not (v >= 0 and v < float("inf")) for v in values):
            raise ValueError(f"{name} must be comma-separated finite numbers >= 0 (0 = greedy), got {text!r}")
        return values

    temperatures = floats(args.temperatures, "--temperatures")
    drafts = None if args.draft_temperatures is None else floats(args.draft_temperatures, "--draft-temperatures")
    if drafts is not None and len(drafts) != len(temperatures):
        raise ValueError(f"--draft-temperatures needs one value per --temperatures value ({len(temperatures)}), "
                         f"got {len(drafts)}")
    if args.positions is not None and args.positions < 1:
        raise ValueError(f"--positions must be a positive number of positions, got {args.positions}")
    if args.plot:
        args.plot = _plot_output(args, [args.log])
    run = read_log(args.log)
    if run.metadata.get("temperature") not in (None, 1, 1.0):
        raise ValueError(f"--temperatures needs a log made at T = 1 (this one: T = {run.metadata['temperature']})")
    n = run.n_positions if args.positions is None else min(int(args.positions), run.n_positions)
    trees = {"optimal": ("chain", "batch"), "chain": ("chain",), "batch": ("batch",)}[args.tree]
    specs = [f"{kind}:{k}" for kind in trees for k in _parse_ks(args.k) if f"{kind}:{k}" != "batch:1"]
    rows = temperature_sweep(np.asarray(run.target_log_probs[:n]), np.asarray(run.draft_log_probs[:n]),
                             temperatures, drafts,
                             methods=_methods(args.method) or default_methods("temperature"), trees=specs,
                             target_top_k=args.top_k, target_top_p=args.top_p, draft_top_k=args.draft_top_k,
                             draft_top_p=args.draft_top_p, trials=args.trials, seed=args.seed)
    if args.plot:
        from ..common.outputs import atomic_path

        with atomic_path(args.plot, "--plot") as tmp:       # the suffix of tmp is the plot's: same format
            plot_sweep(rows, tmp)
    print(json.dumps(rows, indent=1) if args.json else format_sweep(rows))
    return 0


def _plot(report, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in report.methods.items():
        pts = [(k, v) for k, v in zip(report.k, entry["tokens_per_call"]) if v is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name + ("" if entry["exact"] else " (* interval in --json)"))
    asym = [float("nan") if v is None else v for v in report.asymptote["value"]]     # None: outside [1, k+1]
    bound = [float("nan") if v is None else v for v in report.ersd_bound["value"]]   # None: no rank law asked for
    if not all(v != v for v in asym):
        ax.plot(report.asymptote["k"], asym, "k--", label="ERSD large-k relation ln k / H(R) + C (not a bound)")
    if not all(v != v for v in bound):
        ax.plot(report.ersd_bound["k"], bound, "k:", label="ERSD all-k bound (guaranteed for ersd, ersd-topm)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("drafted tokens k")
    ax.set_ylabel("tokens per target call")
    ax.set_title(f"tree = {report.tree}, {report.positions} position(s), V = {report.vocab}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    from ..common.outputs import atomic_path

    with atomic_path(path, "--plot") as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:].lower())
    plt.close(fig)
