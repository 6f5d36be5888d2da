"""``chansim llm lookup``: tokens per call and wall-clock speed-up of deterministic drafts, predicted from a log.

The calls of prompt lookup / an n-gram draft are a function of the text (chansim.drafts), so a log's
sampled continuations give them exactly (chansim.logs.lookup_predict); with measured call costs
(``--cost auto``: c(n) for a call verifying n tokens, on this device) every draft gets a predicted
wall-clock speed-up, and ``--choose`` names the best one.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from . import add_confidence

    parser = subparsers.add_parser(
        "lookup",
        help="predict prompt-lookup / n-gram drafts (tokens per call, wall-clock speed-up) from a log",
        description="For each deterministic draft (lookup:K[:N][,first|last] = transformers' prompt lookup with "
                    "draft length K and n-grams up to N; ngram:K[:N][@threshold] = a greedy n-gram model of the "
                    "context, cut where its confidence falls below the threshold), replay the draft on the "
                    "log's sampled text: the calls follow exactly. Prints tokens per call (bootstrap interval over "
                    "sequences), vLLM-style metrics and, with call costs, the predicted wall-clock speed-up.")
    parser.add_argument("--log", required=True, help="a log of `chansim llm log` (.npz)")
    parser.add_argument("--drafts", default="lookup:1,lookup:2,lookup:4,lookup:8,ngram:4",
                        help="comma-separated drafts (default: %(default)s)")
    parser.add_argument("--costs", default=None, help="call costs from an earlier --cost auto run (.json)")
    parser.add_argument("--cost", choices=["auto"], default=None,
                        help="auto: measure c(n) for n = 1..max K + 1 on the default target (--device)")
    parser.add_argument("--cost-sizes", default="", help="extra n to measure with --cost auto, e.g. 24,32,64")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each cost measurement")
    parser.add_argument("--choose", action="store_true", help="print the draft with the best predicted speed-up")
    add_choose_by(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (for --cost auto)")
    add_confidence(parser, "tokens-per-call and speed-up intervals")
    parser.add_argument("--out", default=None, help="write rows (and costs) as JSON (existing file: --force)")
    parser.add_argument("--force", action="store_true")
    parser.set_defaults(func=run)


def add_choose_by(parser) -> None:
    """``--choose-by mean|low`` (shared with ``bound --log``)."""
    parser.add_argument("--choose-by", choices=["mean", "low"], default="mean",
                        help="with --choose: rank drafts by the predicted speed-up (mean) or by the low end of its "
                             "interval (low: the safest choice when intervals overlap); default %(default)s")


def run(args) -> int:
    from ..common.outputs import check_output, write_text_atomic

    drafts = parse_drafts(args.drafts, costs_path=args.costs, cost_auto=args.cost == "auto", choose=args.choose)
    if args.out:
        check_output(args.out, inputs=[args.log, args.costs], force=args.force, what="--out", suffixes=(".json",))
    result = lookup_prediction(args.log, drafts, costs_path=args.costs, cost_auto=args.cost == "auto",
                               cost_sizes=args.cost_sizes, repeats=args.repeats, device=args.device,
                               threads=args.threads, confidence=args.confidence, choose=args.choose,
                               choose_by=args.choose_by)
    print(result["text"])
    if args.out:
        write_text_atomic(args.out, json.dumps({"log": str(args.log), "rows": result["rows"], "costs": result["costs"],
                                                "chosen": result["chosen"], "choose_by": args.choose_by}, indent=1))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def parse_drafts(text: str, costs_path=None, cost_auto: bool = False, choose: bool = False) -> list:
    """The drafts of ``--drafts`` (comma-separated), after the checks shared by ``llm lookup`` and ``bound --log``."""
    from ..drafts import parse_draft

    drafts = [parse_draft(d) for d in str(text).split(",") if d.strip()]
    if not drafts:
        raise ValueError("--drafts is empty")
    if costs_path and cost_auto:
        raise ValueError("give either --costs FILE or --cost auto, not both")
    if choose and not (costs_path or cost_auto):
        raise ValueError("--choose needs call costs (--costs FILE or --cost auto)")
    return drafts


def load_costs(path) -> dict:
    """Call costs written by an earlier ``--cost auto --out`` run (or :func:`measure_call_costs` as JSON).

    Accepts ``{"call": {n: [seconds, ...]}, ...}`` or an ``--out`` file holding it under ``"costs"``;
    refuses anything else with a message that names the file and what is wrong.
    """
    import math

    try:
        with open(path, encoding="utf-8") as f:
            costs = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"--costs {path}: not JSON ({err})") from None
    if isinstance(costs, dict) and isinstance(costs.get("costs"), dict):
        costs = costs["costs"]
    if not isinstance(costs, dict) or not isinstance(costs.get("call"), dict) or not costs["call"]:
        raise ValueError(f"--costs {path} holds no 'call' costs {{n: [seconds, ...]}} "
                         f"(write one with --cost auto --out)")
    call = {}
    for key, values in costs["call"].items():
        if not str(key).isdigit() or int(key) < 1:
            raise ValueError(f"--costs {path}: call sizes must be positive integers, got {key!r}")
        values = values if isinstance(values, list) else [values]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                 and v > 0 for v in values):
            raise ValueError(f"--costs {path}: the cost of a call verifying {key} tokens must be a non-empty list "
                             f"of positive seconds, got {values!r}")
        call[int(key)] = [float(v) for v in values]
    if 1 not in call:
        raise ValueError(f"--costs {path}: no cost c(1) of a 1-token call (the autoregressive baseline)")
    return dict(costs, call=call)


def lookup_prediction(log_path, drafts, costs_path=None, costs=None, cost_auto: bool = False, cost_sizes: str = "",
                      repeats: int = 5, device: str = "cpu", threads=None, confidence: float = 0.95,
                      choose: bool = False, choose_by: str = "mean") -> dict:
    """Predict every deterministic draft of ``drafts`` from the log at ``log_path`` (``llm lookup``, ``bound --log``).

    ``costs``: call costs already loaded (:func:`load_costs`), instead of ``costs_path``.
    Returns ``{"text": the printed report, "rows": predict_lookup rows, "costs", "chosen": draft name or None}``.
    """
    from ..logs.format import read_log
    from ..logs.lookup_predict import choose_draft, format_lookup_rows, predict_lookup

    log = read_log(log_path)
    greedy = log.metadata.get("decoding") == "greedy"
    temperature = 0.0 if greedy else float(log.metadata.get("temperature", 1.0))
    if costs is None and costs_path:
        costs = load_costs(costs_path)
    if costs is None and cost_auto:
        import numpy as np
        import torch

        from ..llm.models import load_default_pair
        from ..llm.wallclock import measure_call_costs

        if threads:
            torch.set_num_threads(threads)
        pair = load_default_pair(device=device)
        if pair.vocab_size != log.vocab_size:
            raise ValueError(f"the log's vocabulary ({log.vocab_size}) is not the default target's "
                             f"({pair.vocab_size})")
        sizes = set(range(1, max(d.num_tokens for d in drafts) + 2))
        sizes |= {int(s) for s in str(cost_sizes).split(",") if s.strip()}
        context = int(np.median([len(p) for p in log.prompts])) + int(np.median([len(t) for t in log.tokens])) // 2
        costs = measure_call_costs(pair, log.prompts[0], sorted(sizes), repeats=repeats, context=context,
                                   temperature=temperature)
    rows = predict_lookup(log, drafts, costs, confidence=confidence)
    lines = [f"log {log_path}: {log.n_sequences} sequences, {log.n_positions} positions, "
             + ("greedy decoding" if greedy else f"T = {log.metadata.get('temperature', '?')}")]
    if costs is not None:
        c1 = float(sorted(costs["call"][1])[len(costs["call"][1]) // 2])
        lines.append("call cost c(n)/c(1): " + ", ".join(
            f"{n}: {float(sorted(v)[len(v) // 2]) / c1:.2f}" for n, v in sorted(costs["call"].items()))
            + f"  (c(1) = {1e3 * c1:.1f} ms)")
        if costs.get("call_overhead") or costs.get("token_overhead"):
            lines.append(f"run overheads (calibrated): {costs.get('call_overhead', 0):.3f} c(1) per call + "
                         f"{costs.get('token_overhead', 0):.3f} c(1) per proposed token")
    lines.append(format_lookup_rows(rows))
    best = None
    if choose:
        best = choose_draft(rows, by=choose_by)
        s = best["wall_speedup"]
        lines.append(f"chosen: {best['draft']} (predicted wall-clock speed-up {s['mean']:.3f} "
                     f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]; by the {choose_by} of the predicted speed-up)")
    return {"text": "\n".join(lines), "rows": rows, "costs": costs, "chosen": None if best is None else best["draft"]}
