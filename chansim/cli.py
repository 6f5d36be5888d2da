"""``chansim`` command-line entry point.

Each sub-command lives in its own module under :mod:`chansim.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed arguments, returning an exit status).  Modules are imported lazily by name so
that ``chansim --help`` stays fast and a missing optional dependency (torch,
transformers) only affects the command that needs it.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: sub-command name -> module under chansim.commands
COMMANDS = {
    "simulate": "simulate",
    "bound": "bound",
    "figures": "figures",
    "llm": "llm",
    "channel": "channel",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chansim",
        description="Speculative decoding as channel simulation: simulate, bound and validate speed-ups.",
    )
    parser.add_argument("--version", action="version", version=f"chansim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"chansim.commands.{module}")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("chansim.commands"):
                continue  # command not built yet
            raise
        mod.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"chansim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
