"""``chansim channel``: bits and list acceptance of channel simulation (PFR) for one (p, q)."""
from __future__ import annotations

import json


HELP = "cost in bits and list acceptance P(K<=k) of the Poisson functional representation"
DESCRIPTION = ("Channel simulation of the target p at a decoder knowing the draft q: D(p||q), E[log2 K], H(K), "
               "Elias/Zipf code lengths, P(K<=k) and the Li-El Gamal bounds.")


def register(subparsers) -> None:
    from . import add_confidence, add_logits, add_pair_files, add_seed, command_parser

    parser = command_parser(subparsers, "channel", run, HELP, DESCRIPTION)
    add_pair_files(parser, "target distribution file (.npy/.npz/.csv/.json, 1-D)",
                   "draft distribution file, same vocabulary", required=True)
    add_logits(parser, "with")
    parser.add_argument("--ks", default="1,2,4,8,16,32", help="list sizes k for P(K<=k), comma-separated")
    parser.add_argument("--trials", type=int, default=0, help="also run the PFR sampler this many times (Monte Carlo)")
    add_seed(parser)
    add_confidence(parser, "Monte Carlo intervals (with --trials)")
    parser.add_argument("--force", action="store_true",
                        help="run --trials past the size guard (estimated memory or run time above the limit)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    from ..channel import channel_summary
    from ..inputs.io import load_pair

    p, q = load_pair(args.p, args.q, logits=args.logits, temperature=args.temperature)
    if p.ndim != 1:
        raise ValueError(f"chansim channel takes one pair of 1-D vectors, got shape {p.shape}")
    if any(not k.strip().isdigit() for k in args.ks.split(",")):
        raise ValueError(f"--ks must be comma-separated positive integers, got {args.ks!r}")
    ks = [int(k) for k in args.ks.split(",")]
    if args.trials < 0:
        raise ValueError(f"--trials must be >= 0, got {args.trials}")
    if args.trials:
        import numpy as np

        from ..inputs.guards import check_pfr_trials

        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(np.max(np.where(p > 0, p / q, 0.0)))          # arrivals a trial examines (inf: refused below)
        if np.isfinite(ratio):
            check_pfr_trials(args.trials, ratio, force=args.force)
    s = channel_summary(p, q, ks=ks, trials=args.trials, seed=args.seed, confidence=args.confidence)
    if args.json:
        print(json.dumps(s.as_dict(), indent=2))
        return 0
    rows = [
        ("D(p||q)", s.kl_bits),
        ("E[log2 K]", s.expected_log2_k),
        ("  bound D + log2(e)/e + 1", s.pfr_bound),
        ("H(K)", s.entropy_k),
        ("  bound D + log2(D+1) + 4", s.sfrl_bound),
        ("Elias gamma E[len]", s.gamma_length),
        ("Elias delta E[len]", s.delta_length),
        (f"Zipf code (lambda={s.zipf_exponent:.3f})", s.zipf_length),
    ]
    print(f"vocabulary {p.shape[-1]}; all quantities in bits")
    for label, value in rows:
        print(f"{label:<34}{value:10.4f}")
    print("list acceptance P(K <= k):")
    for i, (k, a) in enumerate(zip(s.ks, s.acceptance)):
        extra = ""
        if s.mc:
            lo, hi = s.mc["acceptance_ci"][i]
            extra = f"   MC {s.mc['acceptance'][i]:.4f} [{lo:.4f}, {hi:.4f}]"
        print(f"  k = {k:<6d}{a:10.4f}{extra}")
    if s.mc:
        lo, hi = s.mc["mean_log2_k_ci"]
        print(f"MC E[log2 K] over {s.mc['trials']} trials: {s.mc['mean_log2_k']:.4f} [{lo:.4f}, {hi:.4f}]")
    return 0
