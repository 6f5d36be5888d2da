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
import os
import sys
import warnings

from . import __version__
from .logconfig import configure_logging

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
    _add_verbosity(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"chansim.commands.{module}")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("chansim.commands"):
                continue  # command not built yet
            raise
        mod.register(sub)
    _add_verbosity_everywhere(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Input warnings as one line ``chansim: warning: ...`` on stderr (no file/line noise)."""
    print(f"chansim: warning: {message}", file=file or sys.stderr)


def _add_verbosity(parser: argparse.ArgumentParser, default) -> None:
    """``--quiet``/``--verbose`` (diagnostics on stderr; see :mod:`chansim.logconfig`)."""
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no diagnostics, progress bars or library warnings on stderr (results only)")
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="debug diagnostics on stderr")


def _add_verbosity_everywhere(subparsers) -> None:
    """Accept the global flags after any sub-command too (``chansim llm validate --quiet``)."""
    for child in subparsers.choices.values():
        if not any("--quiet" in a.option_strings for a in child._actions):
            _add_verbosity(child, argparse.SUPPRESS)
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_verbosity_everywhere(action)


def main(argv=None) -> int:
    """Run the CLI; returns the exit status.

    0: success; 2: bad input or options (one line ``chansim CMD: error: ...`` on stderr);
    1: out of memory; 130: interrupted (Ctrl-C, one line). A closed output pipe
    (``chansim ... | head``) ends quietly with status 0.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(quiet=bool(getattr(args, "quiet", False)), verbose=bool(getattr(args, "verbose", False)))
    except ValueError as err:
        parser.error(str(err))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"chansim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"chansim {args.command}: error: input nested too deeply", file=sys.stderr)
        return 2
    except MemoryError as err:
        print(f"chansim {args.command}: error: out of memory ({err or 'allocation failed'}); "
              "use smaller inputs or options", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"chansim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    finally:
        warnings.showwarning = shown


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head``): point stdout at devnull so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
