"""Sub-commands of the ``chansim`` CLI, one module each (see :mod:`chansim.cli`)."""

#: How every command reads the shape of an array given in --p/--q (stated in their --help).
SHAPE_RULE = ("Array shapes mean the same in every command: (V,) is one distribution; (positions, V) holds one "
              "distribution per row (position); a Markov transition matrix [V, V] (row x = next-token law after "
              "token x) is read only with --markov (chansim simulate).")

#: Level of every interval the command line prints, unless ``--confidence`` says otherwise.
DEFAULT_CONFIDENCE = 0.95


def command_parser(subparsers, name: str, run, help: str, description: str):
    """A sub-command's parser: ``name`` with its ``--help`` line and description; ``run(args)`` runs it."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=run)
    return parser


def add_confidence(parser, what: str = "intervals") -> None:
    """Add ``--confidence`` (default :data:`DEFAULT_CONFIDENCE`) to a sub-command's parser."""
    parser.add_argument("--confidence", type=_confidence, default=DEFAULT_CONFIDENCE, metavar="LEVEL",
                        help=f"level of the {what}, in (0, 1) (default {DEFAULT_CONFIDENCE})")


def _confidence(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


# ---------------------------------------------------------------------------- shared option groups
# Each helper adds a group of options that several commands share, in the order they print in
# --help; the help texts differ per command where the option means something a little different,
# so they are arguments (the defaults are the wording most commands use).

def add_pair_files(parser, p_help: str, q_help: str = "draft file, same shape", *, required: bool = False) -> None:
    """``--p`` (target file) and ``--q`` (draft file)."""
    parser.add_argument("--p", required=required, default=None, help=p_help)
    parser.add_argument("--q", required=required, default=None, help=q_help)


def add_logits(parser, how: str = "at") -> None:
    """``--logits`` (the files hold logits) and ``--temperature`` (their softmax temperature, default 1)."""
    parser.add_argument("--logits", action="store_true", help=f"files hold logits (softmax {how} --temperature)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature for --logits")


def add_atol(parser) -> None:
    """``--atol``: the tolerance on ``|sum(p) - 1|`` of probability files (default: by their dtype)."""
    parser.add_argument("--atol", type=float, default=None,
                        help="tolerance on |sum(p) - 1| (default: follows the files' dtype, 1e-6 for float64)")


def add_seed(parser, default=0, help: str | None = None) -> None:
    """``--seed`` (an int; no help line unless ``help`` is given)."""
    parser.add_argument("--seed", type=int, default=default, help=help)


def add_models(parser, target: str, draft: str, skip_layers: str, *, skip_first: bool = False) -> None:
    """``--target``, ``--draft`` and ``--skip-layers`` (model paths, all default None); ``skip_first``
    prints ``--skip-layers`` before the other two."""
    if skip_first:
        parser.add_argument("--skip-layers", default=None, help=skip_layers)
    parser.add_argument("--target", default=None, help=target)
    parser.add_argument("--draft", default=None, help=draft)
    if not skip_first:
        parser.add_argument("--skip-layers", default=None, help=skip_layers)


def add_device(parser, device: str = "cpu", dtype: str | None = None, *,
               device_help: str = "cpu or cuda[:N]", dtype_help: str = "float32, bfloat16 or float16") -> None:
    """``--device`` and ``--dtype`` of the models."""
    parser.add_argument("--device", default=device, help=device_help)
    parser.add_argument("--dtype", default=dtype, help=dtype_help)


def add_output(parser, out_help: str, force_help: str = "overwrite an existing --out file", *,
               required: bool = False) -> None:
    """``--out`` (a file never written over an input) and ``--force`` (overwrite it)."""
    parser.add_argument("--out", required=required, default=None, help=out_help)
    parser.add_argument("--force", action="store_true", help=force_help)


def add_backend(parser, backend_help: str, scheduler_help: str) -> None:
    """``--backend`` (joblib backend of :func:`chansim.common.parallel.parallel_map`) and ``--scheduler``
    (a dask.distributed address)."""
    parser.add_argument("--backend", default=None, help=backend_help)
    parser.add_argument("--scheduler", default=None, help=scheduler_help)


def add_sampling_filters(parser, when: str = "") -> None:
    """``--top-k``, ``--top-p``, ``--draft-top-k``, ``--draft-top-p`` (0 and 1: off); ``when`` prefixes
    every help line (e.g. ``"with --temperatures: "``)."""
    for side in ("", "draft-"):
        who = "draft" if side else "target"
        parser.add_argument(f"--{side}top-k", type=int, default=0, help=f"{when}{who} top-k (0 = off)")
        parser.add_argument(f"--{side}top-p", type=float, default=1.0, help=f"{when}{who} top-p (1 = off)")


def add_report_output(parser, json_help: str, plot_help: str) -> None:
    """``--json`` (print JSON instead of a table) and ``--plot OUT.png``."""
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--plot", default=None, metavar="OUT.png", help=plot_help)
