"""``chansim`` command-line entry point.

Each sub-command lives in its own module under :mod:`chansim.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed arguments, returning an exit status).  Modules are imported lazily by name so
that ``chansim --help`` stays fast and a missing optional dependency (torch,
transformers) only affects the command that needs it.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import warnings

from . import __version__
from .common.logconfig import configure_logging

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
    """``--quiet``/``--verbose`` (diagnostics on stderr; see :mod:`chansim.common.logconfig`)."""
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


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler so that a terminated run cleans up as an interrupted one does
    (temporary files of :func:`chansim.common.outputs.atomic_path` removed, old files left as they were)."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While the command runs, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):      # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """Run the CLI; returns the exit status.

    0: success; 2: bad input or options, or an output that must not or cannot be written
    (one line ``chansim CMD: error: ...`` on stderr); 1: out of memory or another error of the
    system (one line); 130: interrupted (Ctrl-C), 143: terminated (SIGTERM), one line each, after
    the same cleanup. A closed output pipe (``chansim ... | head``) ends quietly with status 0;
    standard output on a full device (``> /dev/full``) ends in one line, status 1.
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
    name = args.command + (f" {args.llm_command}" if getattr(args, "llm_command", None) else "")
    try:
        with _sigterm_as_interrupt():
            status = int(args.func(args) or 0)
            sys.stdout.flush()                   # a full device fails here, inside the handlers below
            return status
    except Terminated:
        return _one_line(f"chansim {name}: terminated", 143)
    except KeyboardInterrupt:
        return _one_line(f"chansim {name}: interrupted", 130)
    except (ValueError, FileNotFoundError) as err:
        return _one_line(f"chansim {name}: error: {_first_line(err)}", 2)
    except RecursionError:
        return _one_line(f"chansim {name}: error: input nested too deeply", 2)
    except MemoryError as err:
        return _one_line(f"chansim {name}: error: out of memory ({err or 'allocation failed'}); "
                         "use smaller inputs or options", 1)
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except OSError as err:                       # the system refused: full disk, permissions, stdout on /dev/full
        on_stdout = not err.filename and err.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)
        if on_stdout:
            _quiet_broken_pipe()                 # the exit flush must not fail a second time
        where = f": {err.filename}" if err.filename else " (writing standard output)" if on_stdout else ""
        return _one_line(f"chansim {name}: error: {err.strerror or type(err).__name__}{where}", 1)
    finally:
        warnings.showwarning = shown


def _first_line(err) -> str:
    """The message on one line (a multi-line message is joined, nothing dropped)."""
    text = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    return text or type(err).__name__


def _one_line(text: str, status: int) -> int:
    """Print ``text`` on stderr (ignoring a stderr that fails too); return ``status``."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    return status


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head``): point stdout at devnull so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
