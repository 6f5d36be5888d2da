"""Sub-commands of the ``chansim`` CLI, one module each (see :mod:`chansim.cli`)."""

#: How every command reads the shape of an array given in --p/--q (stated in their --help).
SHAPE_RULE = ("Array shapes mean the same in every command: (V,) is one distribution; (positions, V) holds one "
              "distribution per row (position); a Markov transition matrix [V, V] (row x = next-token law after "
              "token x) is read only with --markov (chansim simulate).")

#: Level of every interval the command line prints, unless ``--confidence`` says otherwise.
DEFAULT_CONFIDENCE = 0.95


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
