"""Adaptive draft length of the layer-skipping model draft (confidence stop): predicted from a log, measured
beside transformers' ``assistant_confidence_threshold``.

1. log the target's continuations with the default pair's draft rows (chansim.llm.logging_run.log_run);
2. measure a draft forward and target calls verifying 1..k+1 tokens (chansim.llm.wallclock.measure_costs);
3. predict tokens per call, drafted tokens, draft forwards and wall speed-up of sd on chain:k for every
   threshold (chansim.logs.adaptive.predict_confidence) -> ``<out>/predicted.json`` (before measuring);
4. measure, interleaved per prompt: chansim autoregressive, chansim sd chain:k with each threshold
   (generate_real(confidence=c); 0 = fixed chain), transformers plain generate and assisted generate with
   ``num_assistant_tokens=k`` and ``assistant_confidence_threshold=c`` -> ``<out>/measured.json``.

transformers' rule differs from chansim's: it stops *after* a drafted token whose draft probability is
below c (that token is still verified), chansim stops *before* drafting from a node whose max q is below c.

Usage (this 2-core CPU, 2 prompts x 32 tokens, load 2-3: a few minutes):
    OMP_NUM_THREADS=1 python experiments/adaptive_model_draft.py --out runs/adaptive --prompts 2 --new-tokens 32
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--thresholds", default="0,0.3,0.5,0.7,0.9")
    ap.add_argument("--measure-thresholds", default="0,0.5", help="thresholds measured (chansim and transformers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="runs/adaptive")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from chansim.common.stats import bootstrap_ratio_interval
    from chansim.llm.generate import generate_real
    from chansim.llm.hf_assisted import HFGenerator
    from chansim.llm.logging_run import log_run
    from chansim.llm.measure import pydoc_prompts
    from chansim.llm.models import load_default_pair
    from chansim.llm.wallclock import measure_costs
    from chansim.logs.adaptive import format_confidence_rows, predict_confidence
    from chansim.logs.format import read_log, write_log
    from chansim.logs.noise_keys import sequence_key, sequence_rng
    from chansim.logs.temperature import SamplingSettings

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pair = load_default_pair()
    prompts = pydoc_prompts(pair.tokenizer, a.prompts, a.prompt_tokens)
    thresholds = [float(x) for x in a.thresholds.split(",")]
    measured_c = [float(x) for x in a.measure_thresholds.split(",")]
    load = [list(np.round(os.getloadavg(), 2))]
    t0 = time.time()
    log_path = out / "log.npz"
    if not log_path.exists():
        write_log(log_path, **log_run(pair, prompts, a.new_tokens, a.temperature, a.seed, progress=False))
    run = read_log(log_path)
    raw = measure_costs(pair, prompts[0], [f"chain:{j}" for j in range(1, a.k + 1)], repeats=a.repeats,
                        context=a.prompt_tokens + a.new_tokens // 2)
    costs = {"call": {j + 1: raw["target"][f"chain:{j}"] for j in range(a.k + 1)}, "draft": raw["draft"][1]}
    rows = predict_confidence(run, thresholds, k=a.k, method="sd", costs=costs)
    print(f"logged and measured costs in {time.time() - t0:.0f} s; c(1) = {1e3 * np.median(costs['call'][1]):.0f} ms, "
          f"draft forward {1e3 * np.median(costs['draft']):.0f} ms")
    print(format_confidence_rows(rows))
    (out / "predicted.json").write_text(json.dumps({"rows": rows, "costs": costs, "k": a.k,
                                                    "temperature": a.temperature}, indent=1))
    settings = SamplingSettings(a.temperature)
    runs = {"autoregressive": []}
    runs.update({f"sd c={c:g}": [] for c in measured_c})
    runs.update({"hf-generate": []})
    runs.update({f"hf-assisted c={c:g}": [] for c in measured_c})
    with HFGenerator(pair, a.temperature) as hf:
        hf.run(prompts[0], 4, a.seed)                                        # warm-up
        hf.run(prompts[0], 4, a.seed, a.k)
        for i, prompt in enumerate(prompts):
            r = generate_real(pair, "autoregressive", "chain:0", prompt, a.new_tokens, seed=sequence_key(a.seed, i),
                              target_settings=settings, draft_settings=settings, rng=sequence_rng(a.seed, i))
            runs["autoregressive"].append({"tokens": a.new_tokens, "calls": r.target_calls, "wall": r.wall_seconds})
            for c in measured_c:
                r = generate_real(pair, "sd", f"chain:{a.k}", prompt, a.new_tokens, seed=sequence_key(a.seed, i),
                                  target_settings=settings, draft_settings=settings, rng=sequence_rng(a.seed, i),
                                  confidence=c)
                runs[f"sd c={c:g}"].append({"tokens": a.new_tokens, "calls": r.target_calls, "wall": r.wall_seconds,
                                            "reached": int(sum(r.reached_per_depth)),
                                            "draft_forwards": r.draft_forwards})
            g = hf.run(prompt, a.new_tokens, a.seed + i)
            runs["hf-generate"].append({"tokens": g["tokens"], "calls": g["calls"], "wall": g["wall_seconds"]})
            for c in measured_c:
                g = hf.run(prompt, a.new_tokens, a.seed + i, a.k, assistant_confidence=c)
                runs[f"hf-assisted c={c:g}"].append({"tokens": g["tokens"], "calls": g["calls"],
                                                      "wall": g["wall_seconds"], "draft_forwards": g["draft_forwards"]})
            print(f"prompt {i} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    load.append(list(np.round(os.getloadavg(), 2)))
    table = []
    for name, rs in runs.items():
        base = runs["hf-generate" if name.startswith("hf") else "autoregressive"]
        tpc = bootstrap_ratio_interval([r["tokens"] for r in rs], [r["calls"] for r in rs])
        sp = bootstrap_ratio_interval([r["wall"] for r in base], [r["wall"] for r in rs])
        row = {"run": name, "tokens_per_call": {k: float(tpc[k]) for k in ("mean", "ci_low", "ci_high")},
               "wall_speedup": {k: float(sp[k]) for k in ("mean", "ci_low", "ci_high")},
               "tokens_per_second": sum(r["tokens"] for r in rs) / sum(r["wall"] for r in rs),
               "draft_forwards_per_call": (sum(r.get("draft_forwards", 0) for r in rs) / sum(r["calls"] for r in rs)),
               "runs": rs}
        table.append(row)
        print(f"{name:<22} tokens/call {tpc['mean']:.2f} [{tpc['ci_low']:.2f}, {tpc['ci_high']:.2f}]  "
              f"draft fwd/call {row['draft_forwards_per_call']:.2f}  tok/s {row['tokens_per_second']:.2f}  "
              f"speed-up {sp['mean']:.2f} [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}]")
    (out / "measured.json").write_text(json.dumps({"rows": table, "load_average": load, "k": a.k,
                                                   "temperature": a.temperature, "prompts": a.prompts,
                                                   "new_tokens": a.new_tokens, "torch": torch.__version__},
                                                  indent=1))


if __name__ == "__main__":
    main()
