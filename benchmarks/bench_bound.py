"""Benchmark ``chansim bound`` on a batch of positions at a large vocabulary (not a test).

Writes target/draft logits for ``--positions`` positions of a "draft = noisy target"
pair with V = ``--vocab`` (float32 .npy, like a logit log), then times the CLI end to
end (load + softmax + report) in one process, and the exact-law-free parts alone.

    python benchmarks/bench_bound.py                      # 1000 x 49152, default k list
    python benchmarks/bench_bound.py --positions 200 --vocab 32000
    python benchmarks/bench_bound.py --optimal            # optimal trees at k = 1 .. 10^6 (small pairs)

``--optimal`` times the optimal-tree values (docs/theory.md §2.3) at k = 1, 10, ..., 10^6
on small pairs, nearly equal p and q included, and checks them against the reference
algorithms kept here (a priority queue over rank sequences; the sibling-closed dynamic
program) at the k they can reach, reporting the speed ratio there (k = 10^5 for the queue, 2,000 for the DP).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _heap_reference(a, kmax):
    """Reference: sum of the kmax largest path products by a plain priority queue (one pop per node)."""
    import heapq

    vals = sorted((x for x in a if x > 0), reverse=True)
    heap, total, n = [(-vals[0], 0, 1.0)], 0.0, 0
    while heap and n < kmax:
        neg, idx, par = heapq.heappop(heap)
        total, n = total - neg, n + 1
        heapq.heappush(heap, (neg * vals[0], 0, -neg))
        if idx + 1 < len(vals):
            heapq.heappush(heap, (-par * vals[idx + 1], idx + 1, par))
    return total


def optimal_trees(ks=(1, 10, 100, 1000, 10_000, 100_000, 1_000_000)) -> int:
    from chansim.theory import (rank_law, sibling_closed_sums, sibling_closed_values, specinfer_weights,
                                top_products_sums, top_products_table)

    pairs = {"nearly equal V=2": ([0.5, 0.5], [0.5001, 0.4999]),
             "V=3": ([0.6, 0.3, 0.1], [0.5, 0.3, 0.2]),
             "V=8 dirichlet": tuple(np.random.default_rng(0).dirichlet(np.ones(8), size=2))}
    ks = np.array(ks)
    print(f"{'pair':<18}{'method':<11}{'k=10^6 tokens':>15}{'depth':>9}{'seconds':>9}{'ref k':>8}{'ref s':>8}{'speed-up':>10}")
    for name, (p, q) in pairs.items():
        p, q = np.asarray(p, float), np.asarray(q, float)
        law = rank_law(p, q)
        for method, w in (("ersd", law.probs), ("ersd-topm", law.weights(int(ks.max()))),
                          ("specinfer", specinfer_weights(p, q, int(ks.max())))):
            t0 = time.perf_counter()
            try:
                if method == "ersd":
                    vals, depth = top_products_table(w, ks)
                else:
                    vals, depth = sibling_closed_sums(w, ks)
            except ValueError as err:                   # increasing weights: the DP is refused at 10^6
                print(f"{name:<18}{method:<11}  refused: {str(err)[:150]}")
                continue
            elapsed = time.perf_counter() - t0
            t1 = time.perf_counter()
            ref_k = 100_000 if method == "ersd" else 2000
            ref = _heap_reference(w, ref_k) if method == "ersd" else sibling_closed_values(w[:ref_k], ref_k).f[ref_k]
            ref_s = time.perf_counter() - t1
            t2 = time.perf_counter()
            fast = (top_products_sums(w, [ref_k]) if method == "ersd" else sibling_closed_sums(w, [ref_k])[0])[0]
            fast_s = time.perf_counter() - t2
            assert abs(fast - ref) <= 1e-9 * max(1.0, ref), (name, method, fast, ref)
            print(f"{name:<18}{method:<11}{1 + vals[-1]:>15.4f}{depth[-1]:>9d}{elapsed:>9.2f}{ref_k:>8d}{ref_s:>8.2f}"
                  f"{ref_s / max(fast_s, 1e-9):>9.0f}x")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--logit-scale", type=float, default=4.0, help="std of target logits (peakedness)")
    parser.add_argument("--noise", type=float, default=1.0, help="std of the draft's logit noise")
    parser.add_argument("--k", default="1,2,4,8,16,32,64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimal", action="store_true", help="time the optimal-tree values up to k = 10^6 instead")
    args = parser.parse_args(argv)
    if args.optimal:
        return optimal_trees()

    from chansim.cli import main as cli

    rng = np.random.default_rng(args.seed)
    shape = (args.positions, args.vocab)
    z = (args.logit_scale * rng.standard_normal(shape)).astype(np.float32)
    zq = (z + args.noise * rng.standard_normal(shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        pp, qp = Path(tmp) / "p.npy", Path(tmp) / "q.npy"
        np.save(pp, z)
        np.save(qp, zq)
        del z, zq
        t0 = time.perf_counter()
        rc = cli(["bound", "--p", str(pp), "--q", str(qp), "--logits", "--k", args.k])
        elapsed = time.perf_counter() - t0
    print(f"\nchansim bound on {args.positions} x {args.vocab}: {elapsed:.1f} s (exit {rc}); "
          f"target < 60 s: {'OK' if elapsed < 60 else 'TOO SLOW'}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
