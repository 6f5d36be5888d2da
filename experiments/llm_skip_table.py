"""Acceptance of layer-skipping drafts of SmolLM2-135M on pydoc text (table for issue 6).

Usage: python experiments/llm_skip_table.py [--prompts 8] [--new-tokens 32] [--seed 0]
       [--temperature 1.0] [--device cpu] [--threads N] [--json out.json]
"""
import argparse
import json

from chansim.llm.measure import DEFAULT_SKIP_SETS, format_table, measure_skip_sets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = ap.parse_args(argv)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    rows = measure_skip_sets(DEFAULT_SKIP_SETS, device=a.device, n_prompts=a.prompts,
                             prompt_tokens=a.prompt_tokens, new_tokens=a.new_tokens,
                             temperature=a.temperature, seed=a.seed)
    print(f"T={a.temperature}, {rows[0]['positions']} target-sampled positions "
          f"({a.prompts} pydoc prompts x {a.new_tokens} tokens), mean ± s.e.")
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
