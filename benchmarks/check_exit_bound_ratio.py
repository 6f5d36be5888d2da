"""Issue 20 check: how far the ERSD bound of ``chansim bound`` sits above the optimum (not a test).

Pairs from the adversarial families of ``tests/test_truth_battery.py`` (V = 2..8), the exact
optimum from the rational rank law (best-first search over path products), and the printed
``ersd_bound`` (min of k + 1, 1/nu, Theorem 2 at H_low and the exit-rank bound c*_k, §10).
Prints the worst and median bound/optimum per k and counts violations (bound < optimum).

    python benchmarks/check_exit_bound_ratio.py --pairs 300
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_truth_battery import FAMILIES, best_first_sums, make_pair, rational_rank_law

    from chansim.theory.report import speedup_report

    ks = [1, 2, 4, 10, 100, 1000, 10_000]
    rng = np.random.default_rng(args.seed)
    ratios, worst, violations = {k: [] for k in ks}, {k: (0.0, None) for k in ks}, 0
    for _ in range(args.pairs):
        fam = FAMILIES[int(rng.integers(len(FAMILIES)))]
        vocab, seed = int(rng.integers(2, 9)), int(rng.integers(2**31))
        p, q = make_pair(fam, vocab, seed)
        a, _ = rational_rank_law(p, q)
        opt = [1 + v for v in best_first_sums([float(x) for x in a], ks)]
        bound = speedup_report(p, q, k=ks, methods=["ersd"], pfr=False).ersd_bound["value"]
        for k, o, b in zip(ks, opt, bound):
            if b < o - 1e-9:
                violations += 1
            if o < k + 1 - 1e-9:                        # skip pairs where every drafted token is accepted
                ratios[k].append(b / o)
                if b / o > worst[k][0]:
                    worst[k] = (b / o, f"{fam} V={vocab} seed={seed}")
    print(f"{args.pairs} pairs, violations (bound < optimum): {violations}")
    print(f"{'k':>7} {'median':>8} {'worst':>8}  worst pair")
    for k in ks:
        r = np.asarray(ratios[k])
        print(f"{k:>7} {np.median(r):>8.3f} {worst[k][0]:>8.3f}  {worst[k][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
