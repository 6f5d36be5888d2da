"""Cheap deterministic drafts on this machine: log, predict from the log, choose, then measure (interleaved).

For each workload (chansim.llm.workloads: ``copy`` = repeat a Python-docs passage, ``code`` = add a
docstring to a standard-library function, ``open`` = continue a pydoc topic, the control):

1. log the target's continuations (chansim.llm.logging_run.log_run, as ``chansim llm log``) at the
   run's temperature -> ``<out>/<workload>.npz``;
2. measure the cost of a target call verifying n = 1..N tokens on this device
   (chansim.llm.wallclock.measure_call_costs) -> ``<out>/costs.json`` (once, shared by workloads);
3. predict tokens per call and wall-clock speed-up of every draft of ``--drafts`` from the log
   (chansim.logs.lookup_predict), choose the best -> ``<out>/<workload>.predicted.json``, written
   before anything is measured;
4. measure, interleaved per prompt: chansim autoregressive, sd with the chosen draft and with
   ``--fixed`` drafts, ersd with the chosen draft (same keys as the log: it regenerates the logged
   text), transformers' plain generate and generate(prompt_lookup_num_tokens=K) for ``--hf-lookup``
   -> ``<out>/<workload>.measured.json``.

Usage (this 2-core CPU at load average 7-10: 34 min with the defaults, of which 10 min logging and
4-9 min per workload measuring; greedy, load 4-8: 21 min):
    OMP_NUM_THREADS=1 python experiments/lookup_speedup.py --out runs/lookup
"""
import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="copy,code,open")
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--size", type=int, default=96, help="passage / function / prompt tokens (see workloads)")
    ap.add_argument("--temperature", type=float, default=0.5, help="0 = greedy (log: chansim.llm.lookup.greedy_log)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drafts", default="lookup:1,lookup:2,lookup:3,lookup:4,lookup:6,lookup:8,lookup:12,lookup:16,"
                                        "ngram:2,ngram:4,ngram:4@0.5",
                    help="drafts predicted from the log (the choice is made among them)")
    ap.add_argument("--fixed", default="lookup:2,lookup:8", help="fixed drafts measured beside the chosen one (sd)")
    ap.add_argument("--ersd", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure ersd with the chosen draft")
    ap.add_argument("--hf-lookup", default="2,8", help="transformers prompt_lookup_num_tokens values ('' = none)")
    ap.add_argument("--cost-sizes", default="1-17,24,32,48,64", help="n of the measured call costs c(n)")
    ap.add_argument("--cost-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/lookup")
    ap.add_argument("--skip-measure", action="store_true", help="stop after the predictions")
    ap.add_argument("--costs", default=None, help="call costs to predict with (e.g. an earlier costs.calibrated.json) "
                                                  "instead of <out>/costs.json")
    ap.add_argument("--choose-by", choices=["mean", "low"], default="mean", help="chansim.logs.lookup_predict.choose_draft")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from chansim.drafts import parse_draft
    from chansim.llm.logging_run import log_run
    from chansim.llm.lookup import format_speedups, greedy_log, measure_lookup_speedups
    from chansim.llm.models import load_default_pair
    from chansim.llm.wallclock import measure_call_costs
    from chansim.llm.workloads import workload_prompts
    from chansim.logs.format import read_log, write_log
    from chansim.logs.lookup_predict import calibrate_overheads, choose_draft, format_lookup_rows, predict_lookup

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pair = load_default_pair()
    drafts = [parse_draft(d).name for d in a.drafts.split(",") if d]
    fixed = [parse_draft(d).name for d in a.fixed.split(",") if d]
    hf_ks = [int(k) for k in a.hf_lookup.split(",") if k]
    sizes = []
    for part in a.cost_sizes.split(","):
        lo, _, hi = part.partition("-")
        sizes += list(range(int(lo), int(hi or lo) + 1))
    need = max(parse_draft(d).num_tokens for d in drafts + fixed) + 1
    sizes = sorted(set(sizes) | set(range(1, need + 1)))
    workloads = [w for w in a.workloads.split(",") if w]
    prompt_sets = {w: workload_prompts(pair.tokenizer, w, a.prompts, a.size if w != "open" else a.size // 2)
                   for w in workloads}
    machine = {"threads": a.threads, "load_average_start": list(np.round(_load(), 2)), "torch": torch.__version__}

    # 1. logs
    for w, (prompts, source) in prompt_sets.items():
        path = out / f"{w}.npz"
        if not path.exists():
            t0 = time.time()
            if a.temperature > 0:
                write_log(path, **log_run(pair, prompts, a.new_tokens, a.temperature, a.seed, progress=False,
                                          prompt_source=dict(source, workload=w)))
            else:
                write_log(path, **greedy_log(pair, prompts, a.new_tokens, prompt_source=dict(source, workload=w)))
            print(f"[{w}] logged {len(prompts)} x {a.new_tokens} tokens in {time.time() - t0:.0f} s", file=sys.stderr)
    # 2. costs
    cost_path = Path(a.costs) if a.costs else out / "costs.json"
    if a.costs and not cost_path.exists():
        ap.error(f"--costs {a.costs} does not exist")
    if cost_path.exists():
        costs = json.loads(cost_path.read_text())
        costs["call"] = {int(k): v for k, v in costs["call"].items()}
    else:
        first = prompt_sets[workloads[0]][0][0]
        ctx = int(np.median([len(p) for p in prompt_sets[workloads[0]][0]])) + a.new_tokens // 2
        t0 = time.time()
        costs = measure_call_costs(pair, first, sizes, repeats=a.cost_repeats, context=ctx, temperature=a.temperature)
        costs["load_average"] = list(np.round(_load(), 2))
        cost_path.write_text(json.dumps(costs, indent=1))
        print(f"costs measured in {time.time() - t0:.0f} s", file=sys.stderr)
    med = {n: float(np.median(v)) for n, v in costs["call"].items()}
    print("call cost c(n)/c(1): " + ", ".join(f"{n}: {med[n] / med[1]:.2f}" for n in sorted(med)) +
          f"  (c(1) = {1e3 * med[1]:.1f} ms, context {costs['context']})")
    # 3. predictions, 4. measurements
    measured_all = []
    for w in workloads:
        run = read_log(out / f"{w}.npz")
        rows = predict_lookup(run, drafts, costs)
        best = choose_draft(rows, by=a.choose_by)
        (out / f"{w}.predicted.json").write_text(json.dumps({"rows": rows, "chosen": best["draft"], "workload": w,
                                                             "machine": machine}, indent=1))
        print(f"\n[{w}] predicted from {out / f'{w}.npz'} ({run.n_sequences} x {len(run.tokens[0])} tokens, "
              f"T = {a.temperature or 'greedy'}); chosen: {best['draft']}")
        print(format_lookup_rows(rows))
        if a.skip_measure:
            continue
        extra = [d for d in fixed if d != best["draft"]]
        for d in extra:
            if d not in drafts:
                rows += predict_lookup(run, [d], costs)
        settings = [("sd", best["draft"])] + [("sd", d) for d in extra] + ([("ersd", best["draft"])] if a.ersd else [])
        t0 = time.time()
        res = measure_lookup_speedups(pair, run.prompts, a.new_tokens, settings, hf_ks, a.temperature, a.seed)
        res["machine"] = dict(machine, load_average_end=list(np.round(_load(), 2)), seconds=time.time() - t0)
        res["workload"] = w
        res["chosen"] = best["draft"]
        (out / f"{w}.measured.json").write_text(json.dumps(res, indent=1))
        print(f"[{w}] measured in {time.time() - t0:.0f} s")
        print(format_speedups(res, {r["draft"]: r for r in rows}))
        measured_all.append(res)
    if measured_all:            # the run overheads of this machine, fitted to every measured sd run (lookup_predict)
        cal = calibrate_overheads(costs, measured_all)
        (out / "costs.calibrated.json").write_text(json.dumps(cal, indent=1))
        print(f"calibrated run overheads: {cal['call_overhead']:.3f} c(1) per call + {cal['token_overhead']:.3f} c(1) "
              f"per proposed token -> {out / 'costs.calibrated.json'} (use with --costs)")


def _load():
    import os

    return os.getloadavg()


if __name__ == "__main__":
    main()
