"""Benchmark exponential-race primitives; ratios are measured within one run.

1. ``er_acceptance`` (sort, O(V log V)) against ``er_acceptance_quadratic`` (O(V^2),
   chunked over rows) at V = 1k, 8k, 32k: speed ratio and agreement.
2. Monte Carlo race/rank throughput of ``sample_ranks`` (noise generation included) in
   token evaluations per second, next to numpy's bare ``Generator.standard_exponential``
   element rate (float64, the same cache-sized blocks), at V = 49,152, interleaved
   best-of-7 so machine load affects both alike.  Target ratio >= 0.6.

Usage::

    python benchmarks/bench_races.py [--quick] [--out benchmarks/bench_races.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from chansim.sampling.races import er_acceptance, er_acceptance_quadratic, sample_ranks


def best_time(fn, repeat: int = 5, min_time: float = 0.2) -> float:
    """Best-of-``repeat`` seconds per call, each measurement looping for >= ``min_time``."""
    best = float("inf")
    for _ in range(repeat):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return best


def bench_acceptance(vocabs, seed: int = 0, repeat: int = 3) -> list[dict]:
    rows = []
    for vocab in vocabs:
        rng = np.random.default_rng(seed)
        p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab))
        fast = best_time(lambda: er_acceptance(p, q), repeat)
        slow = best_time(lambda: er_acceptance_quadratic(p, q), repeat, min_time=0.0)
        diff = abs(float(er_acceptance(p, q)) - er_acceptance_quadratic(p, q))
        rows.append({"vocab": vocab, "sort_s": fast, "quadratic_s": slow,
                     "speedup": slow / fast, "abs_diff": diff})
    return rows


def bench_throughput(vocab: int = 49_152, trials: int = 400, seed: int = 0, repeat: int = 7) -> dict:
    """Interleave the two measurements (best of ``repeat`` each) so machine load hits both alike."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab))
    rows = max(1, (1 << 16) // vocab)                        # same cache-sized block as sample_ranks
    block = np.empty((rows, vocab))
    gen = np.random.default_rng(seed + 1)
    mc_rng = np.random.default_rng(seed + 2)
    n_blocks = -(-trials // rows)

    def bare():
        for _ in range(n_blocks):
            gen.standard_exponential(out=block)

    bare_s = mc_s = float("inf")
    for _ in range(repeat):
        bare_s = min(bare_s, best_time(bare, 1, min_time=0.3))
        mc_s = min(mc_s, best_time(lambda: sample_ranks(p, q, trials, mc_rng), 1, min_time=0.3))
    bare_rate = n_blocks * block.size / bare_s
    rate = trials * vocab / mc_s
    return {"vocab": vocab, "trials_per_call": trials, "bare_exponential_per_s": bare_rate,
            "sample_ranks_token_evals_per_s": rate, "ratio": rate / bare_rate}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--out", help="write results as JSON to this path")
    args = parser.parse_args(argv)
    vocabs = [1000, 8000] if args.quick else [1000, 8000, 32000]
    acc = bench_acceptance(vocabs)
    thr = bench_throughput(trials=40 if args.quick else 400, repeat=2 if args.quick else 7)
    print("er_acceptance: O(V log V) sort vs O(V^2) reference (same run)")
    print(f"{'V':>8} {'sort [ms]':>10} {'quadratic [ms]':>15} {'speed-up':>9} {'|diff|':>9}")
    for r in acc:
        print(f"{r['vocab']:>8} {1e3 * r['sort_s']:>10.3f} {1e3 * r['quadratic_s']:>15.1f} "
              f"{r['speedup']:>9.0f} {r['abs_diff']:>9.1e}")
    print(f"\nrace/rank Monte Carlo at V = {thr['vocab']} (noise generation included)")
    print(f"  numpy standard_exponential : {thr['bare_exponential_per_s'] / 1e6:8.1f} M values/s")
    print(f"  sample_ranks               : {thr['sample_ranks_token_evals_per_s'] / 1e6:8.1f} M token-evals/s")
    print(f"  ratio                      : {thr['ratio']:8.2f}  (target >= 0.6)")
    if args.out:
        result = {"acceptance": acc, "throughput": thr, "numpy": np.__version__,
                  "python": platform.python_version(), "machine": platform.machine()}
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
