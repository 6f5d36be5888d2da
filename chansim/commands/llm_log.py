"""``chansim llm log``: sample target paths by keyed races and log target/draft distributions (.npz)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


HELP = "log target and draft next-token distributions along target-sampled paths (.npz)"
DESCRIPTION = ("Sample --new-tokens tokens per prompt from the target by keyed exponential races "
               "(token at absolute position n = argmin_x E(seed, n, x) / p(x), so ERSD with the same seed "
               "reproduces it) and record float16 log-probs of target and draft at every position. "
               "Format and precision: chansim/logs/format.py. Default pair: SmolLM2-135M-Instruct and the "
               "same network with --skip-layers skipped.")


def register(subparsers) -> None:
    from . import add_device, add_models, add_output, add_seed, command_parser

    parser = command_parser(subparsers, "log", run, HELP, DESCRIPTION)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--prompts", type=int, default=None, metavar="N",
                     help="N prompts cut deterministically from pydoc_data.topics (default 8)")
    src.add_argument("--prompt-file", default=None, metavar="F",
                     help="prompts from a file: .json (list of strings or of token-id lists) or text "
                          "(prompts separated by blank lines)")
    parser.add_argument("--prompt-tokens", type=int, default=64,
                        help="tokens per prompt (pydoc prompts are cut to it; file prompts longer than it too)")
    parser.add_argument("--new-tokens", type=int, required=True, help="tokens sampled per prompt")
    parser.add_argument("--temperature", type=float, default=1.0, help="target softmax temperature (> 0)")
    parser.add_argument("--draft-temperature", type=float, default=None,
                        help="draft softmax temperature (> 0; default: --temperature). Greedy, top-k and top-p "
                             "are not logged (a log holds full-support rows): log at T = 1 and use "
                             "'bound --log --temperatures' or 'llm validate --temperature/--top-k/...'")
    add_seed(parser, help="key of the race noise")
    add_models(parser, target="target model: .gguf file or local HF directory",
               draft="draft model (default: layer-skipping view of the target)",
               skip_layers="draft = target minus these decoder layers, comma-separated (default 15; with "
                           "--draft: layers of the draft model to skip, default none)", skip_first=True)
    add_device(parser, "cpu", "float32")
    add_output(parser, "output .npz file (never over an input; existing: --force)", required=True)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _skip(text):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--skip-layers must be comma-separated integers, got {text!r}") from None


def _file_prompts(path: str, tokenizer, max_tokens: int) -> tuple[list, dict]:
    from ..llm.models import file_sha256

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prompt file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"prompt file {p} is not valid JSON: {err}") from None
        if not isinstance(items, list) or not items:
            raise ValueError(f"prompt file {p} must hold a non-empty JSON list")
    else:
        items = [block.strip() for block in text.split("\n\n") if block.strip()]
    prompts = []
    for j, item in enumerate(items):
        if isinstance(item, str):
            ids = tokenizer(item, add_special_tokens=False)["input_ids"]
        elif isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            ids = item
        else:
            raise ValueError(f"prompt file {p}: item {j} is neither a string nor a list of token ids")
        ids = [int(t) for t in ids][:max_tokens]
        if not ids:
            raise ValueError(f"prompt file {p}: prompt {j} is empty")
        prompts.append(ids)
    return prompts, {"source": "file", "path": str(p), "sha256": file_sha256(p), "max_tokens": max_tokens}


def run(args) -> int:
    from ..llm.logging_run import log_run, stored_race_mismatches
    from ..logs.format import read_log, write_log
    from ..llm.measure import pydoc_prompt_keys, pydoc_prompts
    from ..llm.models import load_pair

    if args.new_tokens < 1:
        raise ValueError(f"--new-tokens must be >= 1, got {args.new_tokens}")
    if args.prompt_tokens < 1:
        raise ValueError(f"--prompt-tokens must be >= 1, got {args.prompt_tokens}")
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0 (greedy and top-k/top-p: see --help), got {args.temperature}")
    if args.draft_temperature is not None and not args.draft_temperature > 0:
        raise ValueError(f"--draft-temperature must be > 0, got {args.draft_temperature}")
    from ..common.outputs import check_output

    check_output(args.out, inputs=[args.prompt_file, args.target, args.draft], force=args.force, what="--out",
                 suffixes=(".npz",), make_parents=True)
    if args.prompt_file and not Path(args.prompt_file).is_file():      # before the (slow) model load
        raise FileNotFoundError(f"prompt file {args.prompt_file} does not exist")
    t0 = time.perf_counter()
    pair = load_pair(args.target, args.draft, skip_layers=_skip(args.skip_layers), device=args.device,
                     dtype=args.dtype)
    if args.prompt_file:
        prompts, source = _file_prompts(args.prompt_file, pair.tokenizer, args.prompt_tokens)
    else:
        n = 8 if args.prompts is None else args.prompts
        prompts = pydoc_prompts(pair.tokenizer, n, args.prompt_tokens)
        source = {"source": "pydoc_data.topics", "keys": pydoc_prompt_keys(n, args.prompt_tokens),
                  "prompt_tokens": args.prompt_tokens, "python": sys.version.split()[0]}
    t1 = time.perf_counter()
    result = log_run(pair, prompts, args.new_tokens, args.temperature, args.seed,
                     progress=not args.no_progress, prompt_source=source, draft_temperature=args.draft_temperature)
    t2 = time.perf_counter()
    result["metadata"]["cli_args"] = {k: v for k, v in vars(args).items() if k != "func"}
    result["metadata"]["seconds"] = {"load": round(t1 - t0, 3), "sample_and_score": round(t2 - t1, 3)}
    out = write_log(args.out, **result)
    run_ = read_log(out)
    mism = stored_race_mismatches(run_)
    stats = run_.pair_statistics()
    print(f"wrote {out}: {run_.n_sequences} sequences x {args.new_tokens} tokens, V = {run_.vocab_size}, "
          f"{out.stat().st_size / 1e6:.1f} MB, {t2 - t1:.1f} s sampling")
    print(f"  Σmin(p,q) = {stats['sd_acceptance'].mean():.3f}   α_ER = {stats['er_acceptance'].mean():.3f}   "
          f"KL(p‖q) = {stats['kl_nats'].mean():.3f} nats   (means over {run_.n_positions} positions)")
    print(f"  float16 mass error ≤ {max(run_.normalisation_error.values()):.2e}; race re-sampled from the stored "
          f"distributions disagrees at {len(mism)} position(s)")
    return 0
