"""``chansim llm import``: turn logits from transformers, plain arrays, vLLM/OpenAI or llama.cpp into a chansim log."""
from __future__ import annotations


HELP = "make a chansim log from transformers generate output, logit arrays, or top-n log-prob records"
DESCRIPTION = ("Sources (docs/log-format.md has a worked example of each): --generate FILE (.pt or "
               ".safetensors from generate(..., output_logits=True, return_dict_in_generate=True); the "
               "draft is scored teacher-forced by --draft/--skip-layers, default SmolLM2 minus layer 15); "
               "--target-logits/--draft-logits/--tokens (plain arrays); --target-records/--draft-records "
               "(JSON lines from vLLM/OpenAI-compatible servers or llama.cpp: a truncated top-n log whose "
               "predictions are guaranteed intervals).")


def register(subparsers) -> None:
    from . import add_device, add_models, add_output, add_seed, command_parser

    parser = command_parser(subparsers, "import", run, HELP, DESCRIPTION)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--generate", metavar="FILE", help="saved transformers generate output")
    src.add_argument("--target-logits", metavar="FILE", help="target logits (T, V) or (B, T, V)")
    src.add_argument("--target-records", metavar="FILE", help="target top-n log-prob records (JSON lines)")
    parser.add_argument("--draft-logits", metavar="FILE", help="with --target-logits: draft logits, same shape")
    parser.add_argument("--tokens", metavar="FILE", help="with --target-logits: token ids (T,) or (B, T)")
    parser.add_argument("--draft-records", metavar="FILE", help="with --target-records: the draft's records on "
                                                                 "the same text")
    parser.add_argument("--vocab-size", type=int, default=None, help="with records: vocabulary size, if known")
    parser.add_argument("--draft-skip", type=int, default=None, metavar="N",
                        help="with records: drop the draft's first N scored positions (its prompt) instead of finding "
                             "the target's continuation in the draft's scored text")
    parser.add_argument("--token-strings", metavar="FILE", default=None,
                        help="with string-keyed records: JSON list of the decoded string of every token id (as the "
                             "tool writes them); strings are then mapped to ids and refused when ambiguous")
    parser.add_argument("--assume-distinct-strings", action="store_true",
                        help="with string-keyed records and no --token-strings: accept the strings as distinct ids "
                             "(recorded; U+FFFD and repeated strings are still refused)")
    parser.add_argument("--strip-pads", action="store_true",
                        help="with --generate and no attention_mask in the file: drop the pad-token runs at the "
                             "edges of each prompt (otherwise a padded batch without a mask is refused)")
    add_models(parser, target="target model (recorded for 'llm validate'; default SmolLM2)",
               draft="draft model path (default: the target minus --skip-layers)",
               skip_layers="draft layers to skip, comma-separated (default 15)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="with --generate / --target-logits: softmax temperature applied to both sides' logits "
                             "and recorded (default 1); refused with records (their values are the server's)")
    parser.add_argument("--prompt-length", type=int, default=None, help="with --generate: prompt tokens per row")
    parser.add_argument("--eos-token-id", type=int, default=None,
                        help="with --generate: cut continuations at their first EOS (default: the model config's EOS; "
                             "-1: keep them whole)")
    add_seed(parser, None, "seed recorded in the log (for 'llm validate'; the server's sampling seed for records)")
    parser.add_argument("--trust-pickle", action="store_true", help="load a pickled GenerateOutput object")
    add_device(parser, None, None, device_help="with --generate: device of the draft (default cpu)",
               dtype_help="with --generate: dtype of the draft (default float32)")
    add_output(parser, "output .npz log (never an input; existing: needs --force)", required=True)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..logs import importers
    from ..common.outputs import check_output

    inputs = [args.generate, args.target_logits, args.draft_logits, args.tokens, args.target_records,
              args.draft_records, args.token_strings]
    out_path = check_output(args.out, inputs=[i for i in inputs if i], force=args.force, what="--out",
                            suffixes=(".npz",))
    records, arrays, generate = bool(args.target_records), bool(args.target_logits), bool(args.generate)
    for flag, value, ok in (("--draft-skip", args.draft_skip, records), ("--token-strings", args.token_strings, records),
                            ("--assume-distinct-strings", args.assume_distinct_strings, records),
                            ("--vocab-size", args.vocab_size, records), ("--draft-records", args.draft_records, records),
                            ("--draft-logits", args.draft_logits, arrays), ("--tokens", args.tokens, arrays),
                            ("--strip-pads", args.strip_pads, generate), ("--prompt-length", args.prompt_length, generate),
                            ("--eos-token-id", args.eos_token_id, generate), ("--target", args.target, generate),
                            ("--draft", args.draft, generate), ("--skip-layers", args.skip_layers, generate),
                            ("--trust-pickle", args.trust_pickle, generate), ("--device", args.device, generate),
                            ("--dtype", args.dtype, generate)):
        if value not in (None, False) and not ok:
            raise ValueError(f"{flag} does not apply to this source (it would be ignored)")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    seed_meta = {} if args.seed is None else {"seed": int(args.seed)}
    if args.temperature is not None and not (args.temperature > 0 and args.temperature < float("inf")):
        raise ValueError(f"--temperature must be a finite number > 0, got {args.temperature}")
    temperature = 1.0 if args.temperature is None else float(args.temperature)
    if args.generate:
        from ..llm.import_generate import import_generate

        skip = None if args.skip_layers is None else [int(v) for v in args.skip_layers.split(",") if v.strip()]
        out = import_generate(args.generate, out_path, target=args.target, draft=args.draft,
                              skip_layers=skip, temperature=temperature,
                              prompt_length=args.prompt_length, eos_token_id=args.eos_token_id,
                              trust_pickle=args.trust_pickle, device=args.device or "cpu",
                              dtype=args.dtype or "float32", seed=args.seed, strip_pads=args.strip_pads)
    elif args.target_logits:
        if not (args.draft_logits and args.tokens):
            raise ValueError("--target-logits needs --draft-logits and --tokens")
        out = importers.import_arrays(args.target_logits, args.draft_logits, args.tokens, out_path,
                                      temperature=temperature, metadata=seed_meta)
    else:
        strings = None
        if args.token_strings:
            try:
                strings = json.loads(Path(args.token_strings).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"--token-strings {args.token_strings}: cannot read a JSON list ({err})") from None
            if not isinstance(strings, list) or not all(isinstance(v, str) for v in strings):
                raise ValueError(f"--token-strings {args.token_strings}: must be a JSON list of strings")
        out = importers.import_topn_records(args.target_records, out_path, draft_records=args.draft_records,
                                            vocab_size=args.vocab_size, draft_skip=args.draft_skip,
                                            token_strings=strings, temperature=temperature,
                                            assume_distinct_strings=args.assume_distinct_strings,
                                            metadata=seed_meta)
    print(f"wrote {out}")
    for note in _notes(out):
        print(f"note: {note}")
    return 0


def _notes(path) -> list:
    """What the user must know about the written log: rounding of the source, what the log-probs are, string keys."""
    import json

    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["metadata"][()]))
    return list(meta.get("notes", []))

