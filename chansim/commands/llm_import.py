"""``chansim llm import``: turn logits from transformers, plain arrays, vLLM/OpenAI or llama.cpp into a chansim log."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="make a chansim log from transformers generate output, logit arrays, or top-n log-prob records",
        description="Sources (docs/log-format.md has a worked example of each): --generate FILE (.pt or "
                    ".safetensors from generate(..., output_logits=True, return_dict_in_generate=True); the "
                    "draft is scored teacher-forced by --draft/--skip-layers, default SmolLM2 minus layer 15); "
                    "--target-logits/--draft-logits/--tokens (plain arrays); --target-records/--draft-records "
                    "(JSON lines from vLLM/OpenAI-compatible servers or llama.cpp: a truncated top-n log whose "
                    "predictions are guaranteed intervals).",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--generate", metavar="FILE", help="saved transformers generate output")
    src.add_argument("--target-logits", metavar="FILE", help="target logits (T, V) or (B, T, V)")
    src.add_argument("--target-records", metavar="FILE", help="target top-n log-prob records (JSON lines)")
    parser.add_argument("--draft-logits", metavar="FILE", help="with --target-logits: draft logits, same shape")
    parser.add_argument("--tokens", metavar="FILE", help="with --target-logits: token ids (T,) or (B, T)")
    parser.add_argument("--draft-records", metavar="FILE", help="with --target-records: the draft's records on "
                                                                 "the same text")
    parser.add_argument("--vocab-size", type=int, default=None, help="with records: vocabulary size, if known")
    parser.add_argument("--target", default=None, help="target model (recorded for 'llm validate'; default SmolLM2)")
    parser.add_argument("--draft", default=None, help="draft model path (default: the target minus --skip-layers)")
    parser.add_argument("--skip-layers", default=None, help="draft layers to skip, comma-separated (default 15)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the logits (> 0)")
    parser.add_argument("--prompt-length", type=int, default=None, help="with --generate: prompt tokens per row")
    parser.add_argument("--eos-token-id", type=int, default=None, help="with --generate: cut continuations at EOS")
    parser.add_argument("--seed", type=int, default=None, help="seed recorded in the log (for 'llm validate')")
    parser.add_argument("--trust-pickle", action="store_true", help="load a pickled GenerateOutput object")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", required=True, help="output .npz log")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..logs import importers

    if args.generate:
        from ..llm.import_generate import import_generate

        skip = None if args.skip_layers is None else [int(v) for v in args.skip_layers.split(",") if v.strip()]
        out = import_generate(args.generate, args.out, target=args.target, draft=args.draft,
                              skip_layers=skip, temperature=args.temperature,
                              prompt_length=args.prompt_length, eos_token_id=args.eos_token_id,
                              trust_pickle=args.trust_pickle, device=args.device, dtype=args.dtype,
                              seed=args.seed)
    elif args.target_logits:
        if not (args.draft_logits and args.tokens):
            raise ValueError("--target-logits needs --draft-logits and --tokens")
        out = importers.import_arrays(args.target_logits, args.draft_logits, args.tokens, args.out,
                                      temperature=args.temperature)
    else:
        out = importers.import_topn_records(args.target_records, args.out, draft_records=args.draft_records,
                                            vocab_size=args.vocab_size)
    print(f"wrote {out}")
    return 0
