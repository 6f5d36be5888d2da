"""``chansim simulate``: Monte Carlo tokens per target call of one method on one draft tree."""
from __future__ import annotations

import json
import math

from . import SHAPE_RULE


HELP = "Monte Carlo tokens per target call (with a confidence interval) of one method on a draft tree"
DESCRIPTION = ("Simulate target calls of an exact speculative decoding method on synthetic distributions. "
               "1-D --p/--q: the i.i.d. model (same pair at every position). With --markov, square [V, V] "
               "arrays: a Markov model (row x = next-token law after token x; the first token is uniform), "
               "generated as --streams independent chained generations. " + SHAPE_RULE)


def register(subparsers) -> None:
    from ..verify import METHODS
    from . import add_atol, add_confidence, add_logits, add_seed, command_parser

    parser = command_parser(subparsers, "simulate", run, HELP, DESCRIPTION)
    parser.add_argument("--method", required=True, choices=list(METHODS), help="verification method")
    parser.add_argument("--p", required=True, help="target file (.npy/.npz/.csv/.json): shape (V,), or (V, V) with "
                                                   "--markov")
    parser.add_argument("--markov", action="store_true",
                        help="--p/--q are Markov transition matrices [V, V] (row x = next-token law after token x)")
    parser.add_argument("--q", required=True, help="draft file, same shape")
    parser.add_argument("--tree", required=True,
                        help="draft tree: chain:K, batch:M, branch:W1,W2,... or seq:CxL (chain:0 for autoregressive)")
    parser.add_argument("--calls", type=int, default=100_000, help="number of simulated target calls")
    add_seed(parser, help="random seed (same seed, same result)")
    add_logits(parser)
    parser.add_argument("--streams", type=int, default=None,
                        help="Markov: independent generations (default min(calls, 1024)); i.i.d.: batch size")
    parser.add_argument("--engine", choices=["batched", "reference"], default="batched",
                        help="vectorised engine or the one-call-at-a-time reference walk")
    add_confidence(parser, "normal confidence interval of tokens per call")
    parser.add_argument("--rho", type=float, default=None, help="spectr only: fixed rho (default: smallest feasible)")
    parser.add_argument("--emit-tokens", default=None, metavar="OUT.npy",
                        help="write the concatenated output tokens of all calls (1-D int64 array) to this .npy "
                             "file (never over an input; an existing file only with --force)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --emit-tokens file and run past the size guard")
    add_atol(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    import inspect

    import numpy as np

    from ..inputs.io import load_pair
    from ..common.logconfig import get_logger
    from ..simulate import simulate
    from ..sampling.sources import MarkovSource
    from ..verify import METHODS

    from ..common.outputs import atomic_path, check_output
    from ..inputs.guards import check_simulation_size

    if args.calls < 1:
        raise ValueError(f"--calls must be a positive integer, got {args.calls}")
    if args.streams is not None and args.streams < 1:
        raise ValueError(f"--streams must be a positive integer, got {args.streams}")
    if args.emit_tokens is not None:
        args.emit_tokens = str(check_output(args.emit_tokens, inputs=[args.p, args.q], force=args.force,
                                            what="--emit-tokens", suffixes=(".npy",)))
    p, q = load_pair(args.p, args.q, logits=args.logits, temperature=args.temperature, atol=args.atol)
    markov = bool(getattr(args, "markov", False))
    if markov and (p.ndim != 2 or p.shape[0] != p.shape[1]):
        raise ValueError(f"--markov needs square Markov transition matrices [V, V] in --p/--q, got shape {p.shape}")
    if p.ndim == 2 and not markov:
        if p.shape[0] != p.shape[1]:
            raise ValueError(f"--p/--q of shape {p.shape} hold one distribution per position (row); simulate takes "
                             "one pair (V,) or, with --markov, transition matrices [V, V]. For per-position pairs "
                             "use 'chansim bound'")
        get_logger("simulate").warning(
            "a square 2-D --p/--q of shape %s is read as a Markov transition matrix; pass --markov to say so "
            "(2-D arrays mean positions elsewhere, and this implicit reading will be removed)", p.shape)
        markov = True
    if markov:
        p, q = MarkovSource(p, name="target (p)"), MarkovSource(q, name="draft (q)")
    elif p.ndim != 1:
        raise ValueError(f"--p/--q must have shape (V,) (i.i.d. model) or (V, V) with --markov, got {p.shape}")
    options = {} if args.rho is None else {"rho": args.rho}
    if options and "rho" not in inspect.signature(METHODS[args.method]).parameters:
        raise ValueError("--rho applies to --method spectr only")
    check_simulation_size(args.tree, p.vocab_size if hasattr(p, "vocab_size") else p.shape[-1], args.calls,
                          args.streams, force=args.force, markov=hasattr(p, "vocab_size"),
                          emit_tokens=bool(args.emit_tokens), engine=args.engine)
    result = simulate(args.method, args.tree, p, q, calls=args.calls, seed=args.seed, streams=args.streams,
                      emit_tokens=bool(args.emit_tokens), engine=args.engine, confidence=args.confidence,
                      **options)
    if args.emit_tokens:
        with atomic_path(args.emit_tokens, "--emit-tokens") as tmp, open(tmp, "wb") as fh:
            np.save(fh, result.tokens)                          # a handle: exactly this name, nothing appended
    if args.json:
        out = result.to_dict()
        if args.emit_tokens:
            out["tokens_file"] = args.emit_tokens
            # Markov: the file is the streams one after another; these are their lengths
            out["stream_lengths"] = [int(n) for n in result.stream_lengths]
        print(json.dumps(out, indent=2))
        return 0
    tpc = result.tokens_per_call
    print(f"{result.method} on {result.tree} (k={result.k}), {result.model} model, V={p.vocab_size if hasattr(p, 'vocab_size') else len(p)}")
    print(f"  calls {result.calls}  seed {result.seed}  engine {result.engine}  ({result.seconds:.2f} s)")
    print(f"  tokens per call {tpc.mean:.4f}  [{tpc.ci_low:.4f}, {tpc.ci_high:.4f}] "
          f"({100 * tpc.confidence:g}% normal CI)")
    if tpc.small_sample:
        print(f"  warning: small sample ({result.calls} calls, {result.streams} stream(s)); the interval is "
              "unreliable below 30 calls (Markov: 4 streams)")
    if result.acceptance_per_depth:
        print("  acceptance per depth: " + "  ".join(
            "-" if math.isnan(a) else f"{a:.4f}" for a in result.acceptance_per_depth))
    if args.emit_tokens:
        print(f"  {len(result.tokens)} tokens written to {args.emit_tokens} "
              f"({len(result.stream_lengths)} stream(s) of lengths {_short(result.stream_lengths)})")
    return 0


def _short(lengths) -> str:
    lengths = [int(n) for n in lengths]
    return ", ".join(map(str, lengths)) if len(lengths) <= 6 else f"{lengths[0]}, ..., {lengths[-1]}"
