"""Simulated target calls per second at V = 32k (i.i.d. model): batched engine vs reference walk.

Run:  python benchmarks/bench_simulate.py [--quick] [--vocab 32768] [--calls 20000] [--ref-calls 200]
                                         [--out benchmarks/bench_simulate.json]

Both engines simulate the same method/tree/pair in one process, one after the other;
the ratio is the point (absolute numbers depend on the machine).  The reference engine
drives :func:`chansim.verify.speculative_step` one call at a time.
"""
from __future__ import annotations

import argparse
import json
import platform

import numpy as np

from chansim.distributions import noisy_target_pair
from chansim.simulate import simulate

CASES = [
    ("autoregressive", "chain:0"),
    ("sd", "chain:4"),
    ("specinfer", "chain:4"), ("specinfer", "batch:4"),
    ("rsd", "chain:4"), ("rsd", "batch:4"),
    ("spectr", "chain:4"), ("spectr", "batch:4"),
    ("ersd", "chain:4"), ("ersd", "batch:4"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--calls", type=int, default=20_000, help="calls for the batched engine")
    parser.add_argument("--ref-calls", type=int, default=200, help="calls for the reference engine")
    parser.add_argument("--noise", type=float, default=1.0, help="draft = noisy target, logit noise level")
    parser.add_argument("--quick", action="store_true", help="smoke run: V=4096, 2000 / 50 calls")
    parser.add_argument("--out", default=None, help="also write the rows (with versions) to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.vocab, args.calls, args.ref_calls = 4096, 2000, 50

    p, q = noisy_target_pair(args.vocab, noise=args.noise, seed=0)
    rows = []
    print(f"V={args.vocab}  numpy {np.__version__}  {platform.processor() or platform.machine()}")
    print(f"{'method':<15}{'tree':<9}{'tok/call':>9}{'batched calls/s':>17}{'reference calls/s':>19}{'ratio':>8}")
    for method, tree in CASES:
        fast = simulate(method, tree, p, q, calls=args.calls, seed=0)
        ref = simulate(method, tree, p, q, calls=args.ref_calls, seed=0, engine="reference")
        ratio = fast.calls_per_second / ref.calls_per_second
        rows.append({"method": method, "tree": tree, "vocab": args.vocab,
                     "tokens_per_call": fast.tokens_per_call.mean,
                     "batched_calls_per_s": fast.calls_per_second, "reference_calls_per_s": ref.calls_per_second,
                     "ratio": ratio})
        print(f"{method:<15}{tree:<9}{fast.tokens_per_call.mean:>9.3f}{fast.calls_per_second:>17,.0f}"
              f"{ref.calls_per_second:>19,.0f}{ratio:>8.1f}")
    if args.out:
        meta = {"numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine()}
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
