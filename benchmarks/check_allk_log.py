"""Check the all-k bounds of ``chansim bound --log`` against the optimal ERSD value on a log (not a test).

For the log's pooled rank law ā (chansim/logs/ranklaw.py: per-position guaranteed
laws a_1..a_K, tail P(R > K) kept), it evaluates at k = 1..1024 and on a grid up to
10^6:

* ``bound``: the guaranteed bound of ``chansim bound`` (min of k + 1, the paper's form at
  the lower end of the H interval and the exit-entropy bound of docs/theory.md §10);
* ``paper``: (ln(k+1) + ln V)/H(ā) at the point value;
* the optimal ERSD tokens per call 1 + (sum of the k largest path products of ā)
  (chansim.theory.optimal.top_products_sums), computed twice: on the computed ranks only
  (``opt_head``, the tail's ranks left out: the optimum of a law below ā) and with the
  l1 error added to a_1 and the tail mass P(R > K) + the l1 error appended as extra
  ranks of mass a_K each (``opt_fill``, a conservative completion: the optimum is
  increasing in every a_r; the fill at level a_K assumes non-increasing tail ranks).

It prints the violations (bound < opt_fill) and the ratio bound / opt_head over k = 1..1024.

    python benchmarks/check_allk_log.py RUN.npz --max-rank 128 --jobs 2
"""
from __future__ import annotations

import argparse
import math
import pickle
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--max-rank", type=int, default=128)
    parser.add_argument("--rank-tol", type=float, default=1e-4)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--laws-cache", default=None, help="pickle of the per-position laws (read if present, else written)")
    args = parser.parse_args(argv)

    from chansim.logs.ranklaw import pooled_law, position_laws
    from chansim.logs.format import read_log
    from chansim.theory.bound_columns import guaranteed_bound
    from chansim.theory.optimal import _top_sums_and_depths, top_products_sums

    run = read_log(args.log)
    cache = Path(args.laws_cache) if args.laws_cache else None
    t0 = time.perf_counter()
    if cache is not None and cache.exists():
        laws = pickle.loads(cache.read_bytes())
    else:
        laws = position_laws(run.sequences(), max_rank=args.max_rank, tol=args.rank_tol, jobs=args.jobs)
        if cache is not None:
            cache.write_bytes(pickle.dumps(laws))
    sec = time.perf_counter() - t0
    law = pooled_law(laws, run.vocab_size)
    vocab = run.vocab_size
    print(f"log {args.log}: {len(laws)} positions, V = {vocab}, K = {len(law.probs)}; rank laws {sec:.1f} s")
    print(f"pooled: a_1 = {law.alpha:.5f}, P(R > K) = {law.tail:.2e}, never = {law.never:.2e}, "
          f"l1 error <= {law.error:.1e}, H in [{law.entropy_ci[0]:.5f}, {law.entropy_ci[1]:.5f}]")
    ks = np.unique(np.concatenate([np.arange(1, 1025), np.round(np.logspace(3, 6, 31)).astype(np.int64)]))
    head = np.asarray(law.probs, dtype=float)
    opt_head = 1 + top_products_sums(head / max(1.0, head.sum()), ks)
    extra = law.tail + law.error
    fill = np.full(int(math.ceil(extra / head[-1])) if head[-1] > 0 else 0, head[-1])
    if len(fill):
        fill[-1] = extra - head[-1] * (len(fill) - 1)
    filled = np.concatenate([head, fill])
    filled[0] += law.error                       # the l1 error put on the largest rank as well
    opt_fill = 1 + _top_sums_and_depths(filled, ks, 50_000_000, total=False)[0]
    bound = np.asarray(guaranteed_bound(ks, law, vocab + (1 if law.never > 0 else 0)))
    paper = (np.log(ks + 1) + math.log(vocab)) / law.entropy
    bad = ks[bound < opt_fill - 1e-12]
    print(f"violations (bound < optimum) at {len(ks)} values of k up to {ks[-1]}: {len(bad)} {bad[:10].tolist()}")
    small = ks <= 1024
    ratio = bound[small] / opt_head[small]
    ratio_paper = paper[small] / opt_head[small]
    print(f"k = 1..1024: bound / optimum max {ratio.max():.3f} (k = {ks[small][ratio.argmax()]}), "
          f"median {np.median(ratio):.3f}; paper form / optimum max {ratio_paper.max():.2f}, "
          f"min {ratio_paper.min():.2f}")
    print(f"  largest gap opt_fill - opt_head: {float(np.max(opt_fill - opt_head)):.2e}")
    print(f"  {'k':>8}{'optimum':>10}{'bound':>10}{'ratio':>8}{'paper':>10}")
    for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 10**4, 10**5, 10**6):
        i = int(np.searchsorted(ks, k))
        print(f"  {k:>8}{opt_head[i]:>10.4f}{bound[i]:>10.4f}{bound[i] / opt_head[i]:>8.3f}{paper[i]:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
