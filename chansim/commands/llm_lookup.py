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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (for --cost auto)")
    add_confidence(parser, "tokens-per-call and speed-up intervals")
    parser.add_argument("--out", default=None, help="write rows (and costs) as JSON (existing file: --force)")
    parser.add_argument("--force", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..drafts import parse_draft
    from ..logs.format import read_log
    from ..logs.lookup_predict import choose_draft, format_lookup_rows, predict_lookup
    from ..common.outputs import check_output, write_text_atomic

    drafts = [parse_draft(d) for d in args.drafts.split(",") if d.strip()]
    if not drafts:
        raise ValueError("--drafts is empty")
    if args.costs and args.cost:
        raise ValueError("give either --costs FILE or --cost auto, not both")
    if args.choose and not (args.costs or args.cost):
        raise ValueError("--choose needs call costs (--costs FILE or --cost auto)")
    if args.out:
        check_output(args.out, inputs=[args.log, args.costs], force=args.force, what="--out", suffixes=(".json",))
    log = read_log(args.log)
    greedy = log.metadata.get("decoding") == "greedy"
    temperature = 0.0 if greedy else float(log.metadata.get("temperature", 1.0))
    costs = None
    if args.costs:
        with open(args.costs, encoding="utf-8") as f:
            costs = json.load(f)
        costs = costs.get("costs", costs)
        if "call" not in costs:
            raise ValueError(f"{args.costs} holds no 'call' costs (write one with --cost auto --out)")
        costs["call"] = {int(k): v for k, v in costs["call"].items()}
    elif args.cost == "auto":
        import numpy as np
        import torch

        from ..llm.models import load_default_pair
        from ..llm.wallclock import measure_call_costs

        if args.threads:
            torch.set_num_threads(args.threads)
        pair = load_default_pair(device=args.device)
        if pair.vocab_size != log.vocab_size:
            raise ValueError(f"the log's vocabulary ({log.vocab_size}) is not the default target's "
                             f"({pair.vocab_size})")
        sizes = set(range(1, max(d.num_tokens for d in drafts) + 2))
        sizes |= {int(s) for s in args.cost_sizes.split(",") if s.strip()}
        context = int(np.median([len(p) for p in log.prompts])) + int(np.median([len(t) for t in log.tokens])) // 2
        costs = measure_call_costs(pair, log.prompts[0], sorted(sizes), repeats=args.repeats, context=context,
                                   temperature=temperature)
    rows = predict_lookup(log, drafts, costs, confidence=args.confidence)
    print(f"log {args.log}: {log.n_sequences} sequences, {log.n_positions} positions, "
          + ("greedy decoding" if greedy else f"T = {log.metadata.get('temperature', '?')}"))
    if costs is not None:
        c1 = float(sorted(costs["call"][1])[len(costs["call"][1]) // 2])
        print("call cost c(n)/c(1): " + ", ".join(
            f"{n}: {float(sorted(v)[len(v) // 2]) / c1:.2f}" for n, v in sorted(costs["call"].items()))
              + f"  (c(1) = {1e3 * c1:.1f} ms)")
    print(format_lookup_rows(rows))
    best = None
    if args.choose:
        best = choose_draft(rows)
        s = best["wall_speedup"]
        print(f"chosen: {best['draft']} (predicted wall-clock speed-up {s['mean']:.3f} "
              f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}])")
    if args.out:
        write_text_atomic(args.out, json.dumps({"log": str(args.log), "rows": rows, "costs": costs,
                                                "chosen": None if best is None else best["draft"]}, indent=1))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
