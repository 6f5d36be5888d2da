"""Benchmark the guaranteed rank law (chansim/theory/rankbound.py) against Monte Carlo (not a test).

For an LM-like pair at V = ``--vocab`` (peaked Gumbel logits, draft = noisy target) it
times :func:`bounded_rank_law` at each ``--tol`` (reporting the guaranteed l1 error, the
width of the rigorous H(R) interval and the work counters), then times the Monte Carlo
sampler used before (:func:`chansim.sampling.races.sample_ranks`, float32) and extrapolates the
samples — and seconds — it needs for a 3-sigma half-width on a_1 equal to the guaranteed
error.  Ratios come from this one run.

    python benchmarks/bench_ranklaw.py                    # V = 49,152, tol 1e-5 and 1e-6
    python benchmarks/bench_ranklaw.py --vocab 262144 --tol 1e-5
    python benchmarks/bench_ranklaw.py --tol 1e-6 --narrow 16,0     # narrow first pass on / off
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def lm_like_pair(vocab: int, seed: int):
    """Peaked target (H(p) ~ 2 nats) and a draft = target logits + noise."""
    from chansim.inputs.distributions import softmax
    rng = np.random.default_rng(seed)
    z = rng.gumbel(size=vocab)
    z[:20] += np.linspace(12, 6, 20)
    return softmax(z), softmax(z + 0.3 * rng.standard_normal(vocab) + 0.2 * rng.gumbel(size=vocab))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--max-rank", type=int, default=64)
    parser.add_argument("--tol", default="1e-5,1e-6")
    parser.add_argument("--mc-trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--narrow", default="16",
                        help="comma-separated widths of the narrow first pass to time (0 = off), e.g. 16,0")
    args = parser.parse_args(argv)

    from chansim.sampling.races import sample_ranks
    from chansim.theory.rankbound import bounded_rank_law, rank_entropy_interval

    p, q = lm_like_pair(args.vocab, args.seed)
    print(f"V = {args.vocab}, K = {args.max_rank}, H(p) = {-(p * np.log(p)).sum():.3f} nats")
    t0 = time.perf_counter()
    sample_ranks(p, q, args.mc_trials, np.random.default_rng(0), dtype=np.float32, validate=False)
    mc_rate = args.mc_trials / (time.perf_counter() - t0)
    print(f"Monte Carlo (float32 sample_ranks): {mc_rate:.0f} samples/s")
    for tol, narrow in ((float(t), int(n)) for t in args.tol.split(",") for n in args.narrow.split(",")):
        t0 = time.perf_counter()
        b = bounded_rank_law(p, q, max_rank=args.max_rank, tol=tol, narrow=narrow)
        sec = time.perf_counter() - t0
        lo, hi = rank_entropy_interval(b.head, b.tail, b.never, b.error, b.mean_rank_bound, args.vocab - len(b.head))
        a1 = b.head[0]
        need = 9 * a1 * (1 - a1) / b.error ** 2                   # 3 sigma = guaranteed error on a_1 alone
        print(f"tol {tol:g}, narrow {narrow}: {sec:.2f} s, guaranteed l1 error {b.error:.2e}, H(R) in [{lo:.5f}, {hi:.5f}] "
              f"(width {hi - lo:.1e}), bins {b.parts['bins']} of {b.parts['n_winners']} winners, "
              f"rows {b.parts['rows']} ({b.parts['wide_rows']} at full width), heavy {b.parts['heavy']}")
        print(f"   Monte Carlo at equal error on a_1 only: {need:.2e} samples = {need / mc_rate:.2e} s "
              f"(ratio {need / mc_rate / sec:.1e}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
