"""Block verification at real V: Spitzer's identity (guaranteed interval) vs the batched Monte Carlo engine.

Run:  python benchmarks/bench_block_exact.py [--vocab 32768,49152] [--gamma 4,16,64] [--calls 40000]
                                            [--out benchmarks/bench_block_exact.json]

Per (V, γ) on a noisy pair: :func:`chansim.verify.block_exact.block_tokens` (value, guaranteed
half-width, CPU seconds) and ``simulate("block", "chain:γ")`` (mean, standard error, CPU seconds,
z = (mean - value) / se).  ``mc/exact`` is the CPU time Monte Carlo would need to reach the exact
interval's half-width (calls scale as (se / half-width)^2) divided by the exact computation's
time, both measured in this run.  The old law-of-w enumeration (``block_mean_weights``) raises
at these sizes (its ``max_states``).
"""
from __future__ import annotations

import argparse
import time


from _results import write_rows
from chansim.inputs.distributions import noisy_target_pair
from chansim.simulate import simulate
from chansim.verify.block import block_mean_weights
from chansim.verify.block_exact import block_tokens


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="32768,49152")
    parser.add_argument("--gamma", default="4,16,64")
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'V':>6}{'γ':>4}{'exact value':>14}{'± half-width':>14}{'exact CPU s':>12}{'MC mean':>10}{'MC se':>9}"
          f"{'MC CPU s':>10}{'z':>7}{'mc/exact':>10}  old enumeration")
    for vocab in [int(v) for v in args.vocab.split(",")]:
        p, q = noisy_target_pair(vocab, noise=1.0, seed=0)
        for gamma in [int(g) for g in args.gamma.split(",")]:
            t0 = time.process_time()
            bt = block_tokens(p, q, gamma)
            t_exact = time.process_time() - t0
            value, lo, hi = bt.at(gamma)
            t0 = time.process_time()
            est = simulate("block", f"chain:{gamma}", p, q, calls=args.calls, seed=gamma).tokens_per_call
            t_mc = time.process_time() - t0
            z = (est.mean - value) / est.std_error
            half = max((hi - lo) / 2, 1e-12)
            ratio = t_mc * (est.std_error / half) ** 2 / max(t_exact, 1e-9)
            try:
                block_mean_weights(p, q, gamma)
                old = "ran"
            except ValueError:
                old = "max_states"
            rows.append({"vocab": vocab, "gamma": gamma, "value": value, "low": lo, "high": hi, "exact_cpu_s": t_exact,
                         "mc_mean": est.mean, "mc_se": est.std_error, "mc_cpu_s": t_mc, "z": z,
                         "mc_over_exact_at_equal_precision": ratio, "old_enumeration": old})
            print(f"{vocab:>6}{gamma:>4}{value:>14.7f}{half:>14.1e}{t_exact:>12.2f}{est.mean:>10.4f}{est.std_error:>9.4f}"
                  f"{t_mc:>10.2f}{z:>7.2f}{ratio:>10.1e}  {old}", flush=True)
    print("all |z| < 3.5:", all(abs(r["z"]) < 3.5 for r in rows))
    if args.out:
        write_rows(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
