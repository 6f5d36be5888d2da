"""Benchmark ``chansim bound`` on a batch of positions at a large vocabulary (not a test).

Writes target/draft logits for ``--positions`` positions of a "draft = noisy target"
pair with V = ``--vocab`` (float32 .npy, like a logit log), then times the CLI end to
end (load + softmax + report) in one process, and the exact-law-free parts alone.

    python benchmarks/bench_bound.py                      # 1000 x 49152, default k list
    python benchmarks/bench_bound.py --positions 200 --vocab 32000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--logit-scale", type=float, default=4.0, help="std of target logits (peakedness)")
    parser.add_argument("--noise", type=float, default=1.0, help="std of the draft's logit noise")
    parser.add_argument("--k", default="1,2,4,8,16,32,64")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

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
