"""Cheap layer-skipping drafts on this machine: acceptance, measured costs, break-even acceptance, best speed-up.

For each skip set: Σmin(p, q) along target-sampled pydoc text (chansim.llm.measure), the forward
costs c_q(1), c_p(1), c_p(K+1) measured on the pair (chansim.llm.wallclock.measure_costs), and from
them (chansim.logs.breakeven) the cost ratio rho_K, the acceptance an sd chain of K needs to break
even, and the predicted speed-up at the measured acceptance and with a perfect draft.

Usage: python experiments/cheap_draft.py [--prompts 4] [--new-tokens 16] [--repeats 7] [--json out.json]
"""
import argparse
import json

from chansim.logs.breakeven import breakeven_table
from chansim.llm.measure import measure_skip_sets, pydoc_prompts
from chansim.llm.models import load_default_pair
from chansim.llm.wallclock import measure_costs

SKIP_SETS = {"1 layer (15)": (15,), "4 layers (12-15)": tuple(range(12, 16)), "8 layers (11-18)": tuple(range(11, 19)),
             "15 layers (8-22)": tuple(range(8, 23)), "22 layers (4-25)": tuple(range(4, 26))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    acc = measure_skip_sets(list(SKIP_SETS.values()), n_prompts=a.prompts, prompt_tokens=48, new_tokens=a.new_tokens)
    out = []
    for (label, skip), row in zip(SKIP_SETS.items(), acc):
        pair = load_default_pair(skip)
        prompt = pydoc_prompts(pair.tokenizer, 1, 64)[0]
        costs = measure_costs(pair, prompt, [f"chain:{k}" for k in (1, 2, 3, 4)], repeats=a.repeats, context=64)
        table = breakeven_table(costs, row["sd_acceptance"])
        out.append({"label": label, "skip": list(skip), "beta": row["sd_acceptance"], "beta_se": row["sd_acceptance_se"],
                    "costs": costs, "table": table})
        cq = sorted(costs["draft"][1])[len(costs["draft"][1]) // 2]
        cp = sorted(costs["target"]["chain:0"])[len(costs["target"]["chain:0"]) // 2]
        print(f"{label}: Σmin(p,q) = {row['sd_acceptance']:.3f} ± {row['sd_acceptance_se']:.3f}; "
              f"c_q(1) = {1e3 * cq:.1f} ms, c_p(1) = {1e3 * cp:.1f} ms (c_q/c_p = {cq / cp:.2f})")
        for r in table:
            b = "none (rho >= K+1)" if r["breakeven_beta"] is None else f"{r['breakeven_beta']:.3f}"
            print(f"   chain:{r['depth']}  rho = {r['cost_ratio']:.2f}  break-even beta = {b:<18} "
                  f"predicted speed-up {r['speedup']:.3f} (perfect draft {r['speedup_perfect_draft']:.3f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
