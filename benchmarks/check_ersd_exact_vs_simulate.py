"""Exact ERSD tokens per call vs ``chansim simulate`` at real vocabulary sizes (a check, not a test).

For a "noisy target" pair (Gaussian logits, draft = target logits + noise) at each
vocabulary size, the exact value of ``chansim bound`` (guaranteed rank law,
docs/theory.md §5; ``--rank-tol``) on a chain, a batch and the optimal rank-set tree of
k drafts is compared with the Monte Carlo of ``chansim simulate`` on the same tree
(exact race samplers, docs/theory.md §2.4), and the z-score
(exact − simulated) / standard error is printed; |z| stays small when both are right.
The rank law's guaranteed error is printed beside it (it must be far below the
standard error for the z-score to mean anything).

    python benchmarks/check_ersd_exact_vs_simulate.py --vocab 1000,32768,262144 --k 1,4,16,64 --calls 1000000
"""
from __future__ import annotations

import argparse
import json
import time


from chansim.inputs.distributions import noisy_target_pair
from chansim.simulate import simulate
from chansim.theory import rank_law
from chansim.theory.report import speedup_report
from chansim.theory.report_trees import report_tree


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", default="1000,32768,262144")
    parser.add_argument("--k", default="1,4,16,64")
    parser.add_argument("--trees", default="chain,batch,optimal")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--rank-tol", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    ks = [int(v) for v in args.k.split(",")]
    rows = []
    print(f"{'V':>7} {'tree':>8} {'k':>4} {'exact':>9} {'simulated':>10} {'se':>8} {'z':>6} {'law err':>8} {'s':>6}")
    for vocab in (int(v) for v in args.vocab.split(",")):
        p, q = noisy_target_pair(vocab, args.noise, seed=args.seed)
        for shape in args.trees.split(","):
            t0 = time.perf_counter()
            rep = speedup_report(p, q, k=ks, methods=["ersd"], tree=shape, rank_tol=args.rank_tol, pfr=False)
            exact = rep.methods["ersd"]["tokens_per_call"]
            err = rep.summary.get("rank_law_error", 0.0)
            # the optimal tree is built once per pair from the law the report used (same
            # arguments), not once per k: at V = 262,144 one law costs minutes
            law = rank_law(p, q, max_rank=max(64, *ks), tol=args.rank_tol, seed=args.seed) \
                if shape == "optimal" else None
            for i, k in enumerate(ks):
                tree = report_tree("ersd", p, q, k, shape, law=law)
                res = simulate("ersd", tree, p, q, calls=args.calls, seed=args.seed + 1000 * i + 7)
                est = res.tokens_per_call
                z = (exact[i] - est.mean) / est.std_error if est.std_error > 0 else float("nan")
                rows.append({"vocab": vocab, "tree": shape, "k": k, "exact": exact[i], "simulated": est.mean,
                             "std_error": est.std_error, "z": z, "rank_law_error": err})
                print(f"{vocab:>7} {shape:>8} {k:>4} {exact[i]:>9.4f} {est.mean:>10.4f} {est.std_error:>8.5f} "
                      f"{z:>6.2f} {err:>8.1e} {time.perf_counter() - t0:>6.1f}", flush=True)
    worst = max(rows, key=lambda r: abs(r["z"]))
    print(f"worst |z| = {abs(worst['z']):.2f} (V = {worst['vocab']}, {worst['tree']}, k = {worst['k']}) over {len(rows)} "
          f"comparisons; with {len(rows)} comparisons |z| < {3.5:.1f} is expected")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
