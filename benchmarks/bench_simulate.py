"""Simulated target calls per second at V = 32k (i.i.d. model): batched engine vs reference walk.

Run:  python benchmarks/bench_simulate.py [--quick] [--vocab 32768] [--calls 20000] [--ref-calls 200]
                                         [--out benchmarks/bench_simulate.json]

Both engines simulate the same method/tree/pair in one process, one after the other;
the ratio is the point (absolute numbers depend on the machine).  The reference engine
drives :func:`chansim.verify.speculative_step` one call at a time.  ersd and rsd run
on the exact O(m log V) samplers of :mod:`chansim.sampling.race_sampling` (docs/theory.md §2.4);
``--no-race-tables`` times their full-V samplers instead.  The summary compares batched
ersd with batched sd (same tree shape) in calls per second.
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

from _results import write_rows
from chansim.inputs.distributions import noisy_target_pair
from chansim.simulate import simulate

CASES = [
    ("autoregressive", "chain:0"),
    ("sd", "chain:4"),
    ("specinfer", "chain:4"), ("specinfer", "batch:4"),
    ("rsd", "chain:4"), ("rsd", "batch:4"),
    ("spectr", "chain:4"), ("spectr", "batch:4"),
    ("ersd", "chain:1"), ("ersd", "chain:4"), ("ersd", "batch:4"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--calls", type=int, default=20_000, help="calls for the batched engine")
    parser.add_argument("--ref-calls", type=int, default=200, help="calls for the reference engine")
    parser.add_argument("--noise", type=float, default=1.0, help="draft = noisy target, logit noise level")
    parser.add_argument("--quick", action="store_true", help="smoke run: V=4096, 2000 / 50 calls")
    parser.add_argument("--out", default=None, help="also write the rows (with versions) to this JSON file")
    parser.add_argument("--no-race-tables", action="store_true", help="ersd/rsd: full-V samplers (old engine)")
    args = parser.parse_args(argv)
    if args.quick:
        args.vocab, args.calls, args.ref_calls = 4096, 2000, 50

    p, q = noisy_target_pair(args.vocab, noise=args.noise, seed=0)
    rows = []
    print(f"V={args.vocab}  numpy {np.__version__}  {platform.processor() or platform.machine()}")
    print(f"{'method':<15}{'tree':<9}{'tok/call':>9}{'batched calls/s':>17}{'reference calls/s':>19}{'ratio':>8}")
    for method, tree in CASES:
        fast = simulate(method, tree, p, q, calls=args.calls, seed=0, race_tables=not args.no_race_tables)
        ref = simulate(method, tree, p, q, calls=args.ref_calls, seed=0, engine="reference")
        ratio = fast.calls_per_second / ref.calls_per_second
        rows.append({"method": method, "tree": tree, "vocab": args.vocab,
                     "tokens_per_call": fast.tokens_per_call.mean,
                     "batched_calls_per_s": fast.calls_per_second, "reference_calls_per_s": ref.calls_per_second,
                     "ratio": ratio})
        print(f"{method:<15}{tree:<9}{fast.tokens_per_call.mean:>9.3f}{fast.calls_per_second:>17,.0f}"
              f"{ref.calls_per_second:>19,.0f}{ratio:>8.1f}")
    speed = {(r["method"], r["tree"]): r["batched_calls_per_s"] for r in rows}
    for tree in ("chain:4",):
        if ("ersd", tree) in speed and ("sd", tree) in speed:
            print(f"ersd {tree} / sd {tree} batched calls per second: {speed['ersd', tree] / speed['sd', tree]:.2f}")
    for method, tree in (("ersd", "batch:4"), ("rsd", "batch:4")):
        row = next(r for r in rows if r["method"] == method and r["tree"] == tree)
        print(f"{method} {tree} batched / reference: {row['ratio']:.0f}x (target >= 100x)")
    if args.out:
        write_rows(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
