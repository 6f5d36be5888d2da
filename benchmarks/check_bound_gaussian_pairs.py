"""Issue 20 check: ``chansim bound`` returns a table on Gaussian-logit pairs (not a test).

For each vocabulary size, ``--pairs`` pairs drawn as in the issue: z = 2·N(0, 1) of size V,
p = softmax(z), q = softmax(z + N(0, 1)) (one ``default_rng(seed)`` stream per V), then the
bound report with the CLI's defaults at ``--k`` (default methods, optimal trees), exactly as
``chansim bound --p P --q Q --k 1,4,16,64`` computes it.  Counts the tables returned, the
exceptions (with their first message), the largest guaranteed rank-law error, how many ERSD
values carry an interval wider than the printed digits, and the CPU time per pair.

    python benchmarks/check_bound_gaussian_pairs.py --vocab 65,100,1000 --pairs 100
    python benchmarks/check_bound_gaussian_pairs.py --vocab 32768 --pairs 5
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", default="65,100,1000,32768")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--k", default="1,4,16,64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="one line per pair as it finishes")
    args = ap.parse_args(argv)
    from chansim.theory.report import speedup_report

    ks = [int(v) for v in args.k.split(",")]
    print(f"{'V':>7} {'pairs':>6} {'tables':>7} {'errors':>7} {'max l1 error':>13} {'starred':>8} "
          f"{'CPU s/pair':>11} {'max CPU s':>10}")
    for vocab in (int(v) for v in args.vocab.split(",")):
        rng = np.random.default_rng(args.seed)
        ok, errors, worst, starred, times, first = 0, 0, 0.0, 0, [], None
        for _ in range(args.pairs):
            z = 2 * rng.normal(size=vocab)
            p, q = _softmax(z), _softmax(z + rng.normal(size=vocab))
            t0 = time.process_time()
            try:
                rep = speedup_report(p, q, k=ks, pfr=False)
                str(rep)
                ok += 1
                worst = max(worst, rep.summary["rank_law_error"])
                starred += sum(not m for m in rep.methods["ersd"]["exact_k"])
            except Exception as exc:          # noqa: BLE001 - counted and reported
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"
            times.append(time.process_time() - t0)
            if args.verbose:
                print(f"  V = {vocab} pair {len(times)}: {'ok' if errors == 0 or first is None else first} "
                      f"{times[-1]:.1f} s CPU", flush=True)
        print(f"{vocab:>7} {args.pairs:>6} {ok:>7} {errors:>7} {worst:>13.2e} {starred:>8} "
              f"{np.mean(times):>11.2f} {np.max(times):>10.2f}" + (f"   first error: {first}" if first else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
