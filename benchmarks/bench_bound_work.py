"""``chansim bound`` does only the work asked for (issue 23) — timings end to end, not a test.

Each case runs the CLI as a child process and reports its wall time, CPU time (user + sys of
the child) and peak memory:

1. ``--method sd`` on a file of ``--positions`` x ``--vocab`` probabilities (no rank law:
   H(R), the ersd bound and the asymptote print '-');
2. the default methods (ERSD included: one guaranteed rank law per position) on the first
   ``--law-positions`` positions of the same pair, with the per-position CPU time and the
   extrapolation to all positions on ``--cores`` cores;
3. ``--tree optimal --k 1,1000,1000000`` on one position (K follows the tail P(R > K), not k;
   SpecInfer's residual rounds jump over stable phases);
4. the rank law's time and guaranteed error per ``--rank-tol`` (1e-2, 1e-3, 1e-4) on one position;
5. SpecInfer's slot weights for 20,000 slots at V = ``--vocab``: phase jumps vs the round-by-round
   loop (ratio in one run, same numbers to 1e-12);
6. with ``--log RUN.npz``: ``bound --log`` with k = 1, 4, 16, 64 and ``--jobs 2``.

    python benchmarks/bench_bound_work.py [--positions 1000] [--vocab 49152] [--log run.npz] [--out r.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _run(argv: list[str]) -> dict:
    """Run ``python -m chansim argv`` and return wall/CPU seconds, peak RSS (MB) and the stdout tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # the child reports its own peak RSS (RUSAGE_CHILDREN keeps the largest child of the whole run)
    code = ("import resource, runpy, sys; sys.argv = ['chansim'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('chansim', run_name='__main__')\n"
            "finally:\n    print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"chansim {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
    return {"argv": argv, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_mb": round(peak[-1] / 1024) if peak else None,
            "stdout_tail": proc.stdout.strip().splitlines()[-12:]}


def _specinfer_jump_ratio(p, q, slots: int = 20_000, reps: int = 2) -> dict:
    from chansim.verify import specinfer

    def loop():
        return specinfer._rounds_loop(p, q, slots)

    t_jump, t_loop = [], []
    for _ in range(reps):                                 # interleaved: load hits both alike
        t = time.perf_counter()
        w_jump, _ = specinfer.residual_rounds(p, q, slots)
        t_jump.append(time.perf_counter() - t)
        t = time.perf_counter()
        w_loop, _ = loop()
        t_loop.append(time.perf_counter() - t)
    return {"slots": slots, "jump_s": min(t_jump), "loop_s": min(t_loop), "ratio": min(t_loop) / min(t_jump),
            "max_abs_diff": float(np.abs(w_jump - w_loop).max())}


def _tolerance_sweep(p, q, tols=(1e-2, 1e-3, 1e-4)) -> list:
    from chansim.theory.rankbound import bounded_rank_law

    rows = []
    for tol in tols:
        t = time.process_time()
        law = bounded_rank_law(p, q, max_rank=64, tol=tol)
        rows.append({"rank_tol": tol, "cpu_s": round(time.process_time() - t, 2), "l1_error": law.error,
                     "tail": law.tail, "bins": law.parts["bins"], "rows": law.parts["rows"]})
    return rows


def _write_pair(folder: Path, vocab: int, positions: int, law_positions: int) -> None:
    """The pair files of every case, written by a child process: a child inherits its parent's
    peak RSS on Linux, so the parent must never hold the 800 MB pair itself."""
    code = ("import sys, numpy as np; from pathlib import Path\n"
            "from chansim.inputs.distributions import noisy_target_pair\n"
            "d, v, n, m = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
            "pair = noisy_target_pair(v, n=n)\n"
            "np.save(d / 'p.npy', pair.target_probs); np.save(d / 'q.npy', pair.draft_probs)\n"
            "np.save(d / 'p8.npy', pair.target_probs[:m]); np.save(d / 'q8.npy', pair.draft_probs[:m])\n"
            "np.save(d / 'p1.npy', pair.target_probs[0]); np.save(d / 'q1.npy', pair.draft_probs[0])\n")
    subprocess.run([sys.executable, "-c", code, str(folder), str(vocab), str(positions), str(law_positions)],
                   check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--vocab", type=int, default=49_152)
    parser.add_argument("--law-positions", type=int, default=8, help="positions of case 2 (ERSD rank laws)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--log", default=None, help="a 'chansim llm log' run for case 6")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    out = {"positions": args.positions, "vocab": args.vocab, "cpu_count": os.cpu_count(),
           "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_pair(tmp, args.vocab, args.positions, args.law_positions)
        p1, q1 = np.load(tmp / "p1.npy"), np.load(tmp / "q1.npy")
        files = ["--p", str(tmp / "p.npy"), "--q", str(tmp / "q.npy")]
        out["sd_only"] = _run(["bound", *files, "--method", "sd"])
        print(f"1. --method sd, {args.positions} x {args.vocab}: {out['sd_only']['wall_s']} s wall, "
              f"{out['sd_only']['cpu_s']} CPU-s, {out['sd_only']['peak_mb']} MB")
        law = _run(["bound", "--p", str(tmp / "p8.npy"), "--q", str(tmp / "q8.npy"), "--jobs", "1", "--force"])
        per = law["cpu_s"] / args.law_positions
        law["cpu_s_per_position"] = round(per, 2)
        law["extrapolated_wall_s_all_positions"] = round(per * args.positions / args.cores)
        out["default_methods"] = law
        print(f"2. default methods (ERSD rank law), {args.law_positions} positions: {law['cpu_s']} CPU-s "
              f"({per:.2f} per position; {args.positions} positions on {args.cores} cores ~ "
              f"{law['extrapolated_wall_s_all_positions']} s)")
        tree = _run(["bound", "--p", str(tmp / "p1.npy"), "--q", str(tmp / "q1.npy"), "--tree", "optimal",
                     "--k", "1,1000,1000000"])
        out["optimal_tree_1e6"] = tree
        print(f"3. --tree optimal --k 1,1000,1000000: {tree['wall_s']} s wall, {tree['peak_mb']} MB")
        out["rank_tol_sweep"] = _tolerance_sweep(p1, q1)
        for row in out["rank_tol_sweep"]:
            print(f"4. --rank-tol {row['rank_tol']:g}: {row['cpu_s']} CPU-s, guaranteed l1 error {row['l1_error']:.2e}")
        out["specinfer_jump"] = _specinfer_jump_ratio(p1, q1)
        sj = out["specinfer_jump"]
        print(f"5. specinfer {sj['slots']} slots: phase jumps {sj['jump_s']:.3f} s vs loop {sj['loop_s']:.3f} s "
              f"= {sj['ratio']:.0f}x, max |diff| {sj['max_abs_diff']:.1e}")
        if args.log:
            run = _run(["bound", "--log", args.log, "--k", "1,4,16,64", "--jobs", "2"])
            out["log"] = run
            print(f"6. bound --log {args.log} --k 1,4,16,64 --jobs 2: {run['wall_s']} s wall, {run['cpu_s']} CPU-s")
    out["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
