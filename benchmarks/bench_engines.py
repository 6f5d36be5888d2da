"""Batched engine vs the per-call walk, every method and tree, and sd's distance to its random-number floor.

Run:  python benchmarks/bench_engines.py [--vocab 1000,32768] [--reps 5] [--calls 20000] [--ref-calls 100]
                                        [--only METHOD[,METHOD]] [--out benchmarks/bench_engines.json]

For each (method, tree, V) the batched engine (``simulate``, default batch) and the reference
engine (``engine="reference"``: :func:`chansim.verify.speculative_step` one call at a time) run
on the same noisy pair, interleaved, ``--reps`` times; the ratio is of seconds per call, and the
row reports the minimum and the median over the repetitions of (batched calls/s) / (reference
calls/s), each repetition timing both engines back to back.  Target (issue 23): minimum >= 100x.

The floor line: sd chain:4 needs per call at most 2γ + 1 = 9 uniforms (γ draft uniforms, γ accept
uniforms, one residual/bonus uniform); its floor is the time ``Generator.random`` takes to draw
them, measured in the same run; target: batched sd chain:4 within 300x of it at V = 32,768.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

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
    ("ersd", "chain:4"), ("ersd", "batch:4"),
    ("ersd-topm", "chain:4"), ("ersd-topm", "batch:4"),
    ("block", "chain:4"),
    ("multidraft", "chain:4"), ("multidraft", "batch:4"),
]


def _per_call(method, tree, p, q, calls, seed, engine):
    t0 = time.perf_counter()
    simulate(method, tree, p, q, calls=calls, seed=seed, engine=engine)
    return (time.perf_counter() - t0) / calls


def _floor(calls, uniforms, reps):
    rng = np.random.default_rng(0)
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        rng.random(calls * uniforms)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="1000,32768")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per batched run")
    parser.add_argument("--ref-calls", type=int, default=100, help="calls per reference run")
    parser.add_argument("--only", default=None, help="comma-separated methods")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    rows = []
    print(f"numpy {np.__version__}  {platform.machine()}  reps={args.reps} (interleaved; ratio min / median)")
    print(f"{'V':>6} {'method':<15}{'tree':<9}{'batched us/call':>16}{'walk us/call':>14}{'min x':>8}{'median x':>10}")
    for vocab in [int(v) for v in args.vocab.split(",")]:
        p, q = noisy_target_pair(vocab, noise=1.0, seed=0)
        for method, tree in CASES:
            if only and method not in only:
                continue
            simulate(method, tree, p, q, calls=min(2000, args.calls), seed=99)          # warm caches (plans)
            fast, slow = [], []
            for rep in range(args.reps):
                fast.append(_per_call(method, tree, p, q, args.calls, rep, "batched"))
                slow.append(_per_call(method, tree, p, q, args.ref_calls, rep, "reference"))
            ratios = [s / f for f, s in zip(fast, slow)]
            row = {"vocab": vocab, "method": method, "tree": tree, "batched_s_per_call": min(fast),
                   "walk_s_per_call": min(slow), "ratio_min": min(ratios), "ratio_median": statistics.median(ratios)}
            rows.append(row)
            print(f"{vocab:>6} {method:<15}{tree:<9}{min(fast) * 1e6:>16.2f}{min(slow) * 1e6:>14.1f}"
                  f"{min(ratios):>8.0f}{statistics.median(ratios):>10.0f}", flush=True)
        if only is None or "sd" in only:
            floor = _floor(args.calls, 9, args.reps)
            sd = min(_per_call("sd", "chain:4", p, q, args.calls, rep, "batched") for rep in range(args.reps))
            print(f"{vocab:>6} sd chain:4 {sd * 1e6:.2f} us/call vs random-number floor {floor * 1e9:.1f} ns/call: "
                  f"{sd / floor:.0f}x (target <= 300x at V = 32,768)")
            rows.append({"vocab": vocab, "floor_s_per_call": floor, "sd_chain4_s_per_call": sd,
                         "floor_ratio": sd / floor})
    bad = [r for r in rows if "ratio_min" in r and r["ratio_min"] < 100]
    print("below 100x (min):", ", ".join(f"{r['method']} {r['tree']} V={r['vocab']} ({r['ratio_min']:.0f}x)"
                                         for r in bad) or "none")
    if args.out:
        write_rows(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
