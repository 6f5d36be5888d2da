"""Optimal multi-draft verifier at real vocabulary size: set-up cost and optimality of its selection.

For LM-like pairs (``bench_ranklaw.lm_like_pair``, V = 49,152) and m = 2, 4, 8: time of the
closed-form selection law (``selection_law``, O(V log V)) and of the priority partition that
realises it (``multidraft_plan``, one Python pass), the ratio of the two, the number of cells
per token, and the gap between the sampler's acceptance sum min(p, r) and alpha*
(docs/methods_block_multidraft.md §2.3-2.4).  With ``--log run.npz``: the same on the stored
positions of a ``chansim llm log`` run.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _measure(p, q, m):
    from chansim.sampling.transport import optimal_acceptance_iid
    from chansim.verify import multidraft as md

    md._PLANS.clear()
    t0 = time.perf_counter()
    law = md.selection_law(p, q, m)
    t_law = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = md.multidraft_plan(p, q, m)
    t_plan = time.perf_counter() - t0
    alpha = optimal_acceptance_iid(p, q, m)
    return {"m": m, "law_s": t_law, "plan_s": t_plan, "plan_over_law": t_plan / t_law,
            "cells_per_token": len(plan.cell_lo) / len(p), "alpha": alpha,
            "gap_law": float(np.minimum(p, law).sum() - alpha),
            "gap_sampler": float(np.minimum(p, plan.selected).sum() - alpha),
            "max_law_difference": float(np.abs(plan.selected - law).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--m", default="2,4,8")
    parser.add_argument("--log", help="a chansim llm log (.npz): use its first positions instead")
    parser.add_argument("--positions", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    ms = [int(x) for x in args.m.split(",")]
    pairs = []
    if args.log:
        from chansim.logs.format import read_log

        for p, q, _ in read_log(args.log).sequences():
            for t in range(min(args.positions, len(p))):
                pt, qt = np.asarray(p[t], float), np.asarray(q[t], float)
                pairs.append((f"log t={t}", pt / pt.sum(), qt / qt.sum()))
            break
    else:
        from bench_ranklaw import lm_like_pair

        pairs = [(f"lm_like seed={s}", *lm_like_pair(args.vocab, s)) for s in range(args.seeds)]
    rows = []
    print(f"{'pair':16s} {'m':>2s} {'law s':>7s} {'plan s':>7s} {'ratio':>6s} {'cells/V':>7s} "
          f"{'alpha*':>10s} {'gap (sampler)':>14s}")
    for name, p, q in pairs:
        for m in ms:
            row = {"pair": name, **_measure(p, q, m)}
            rows.append(row)
            print(f"{name:16s} {m:2d} {row['law_s']:7.3f} {row['plan_s']:7.3f} {row['plan_over_law']:6.0f} "
                  f"{row['cells_per_token']:7.3f} {row['alpha']:10.6f} {row['gap_sampler']:14.2e}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"numpy": np.__version__, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
