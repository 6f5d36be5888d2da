"""Diagnostics of the ``chansim`` command line: one ``logging`` setup for ``--quiet`` / ``--verbose``.

Results (tables, JSON) go to stdout with ``print``; everything else a command says
while it works (files written, skipped settings, progress) goes through the
``chansim`` logger to stderr, so ``--quiet`` silences it and ``--verbose`` adds debug
detail.  ``--quiet`` also silences the libraries' progress bars and warnings
(transformers, huggingface_hub, tqdm) — set through their environment variables before
they are imported, and through their own switches when they already are.
"""
from __future__ import annotations

import logging
import os
import sys

__all__ = ["LOGGER_NAME", "configure_logging", "get_logger", "progress_enabled", "progress_bar"]

LOGGER_NAME = "chansim"

_QUIET = False


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``chansim`` logger, or its child ``chansim.<name>``.

    >>> get_logger("bound").name
    'chansim.bound'
    """
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


def progress_enabled() -> bool:
    """False after ``configure_logging(quiet=True)``: commands then draw no progress bars."""
    return not _QUIET


class _NoBar:
    """A progress bar that draws nothing."""

    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(total: int, desc: str, enabled: bool = True, **tqdm_options):
    """A tqdm bar of ``total`` steps on stderr (``update``, ``close``), or one that draws nothing when
    ``enabled`` is False, after ``configure_logging(quiet=True)`` or without tqdm.

    >>> bar = progress_bar(3, "demo", enabled=False)
    >>> bar.update(), bar.close()
    (None, None)
    """
    if not (enabled and progress_enabled()):            # --quiet silences the bars too
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:                                  # pragma: no cover - tqdm is a dependency
        return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, **tqdm_options)


def configure_logging(quiet: bool = False, verbose: bool = False) -> int:
    """Set the ``chansim`` logger's level and handler; returns the level.

    ``quiet`` -> WARNING (and library bars/warnings off), default INFO, ``verbose`` -> DEBUG.

    >>> import logging
    >>> configure_logging(verbose=True) == logging.DEBUG
    True
    >>> configure_logging() == logging.INFO
    True
    """
    global _QUIET
    if quiet and verbose:
        raise ValueError("--quiet and --verbose exclude each other")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_chansim", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("chansim: %(message)s"))
        handler._chansim = True
        logger.addHandler(handler)
    for h in logger.handlers:
        if getattr(h, "_chansim", False):
            h.stream = sys.stderr          # follow a replaced stderr (tests capture it)
    logger.propagate = False
    _QUIET = bool(quiet)
    if quiet:
        _silence_libraries()
    else:
        if _SAVED_ENV and "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()
            hf_logging.set_verbosity_warning()
        for key, old in _SAVED_ENV.items():     # undo an earlier quiet call in this process
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        _SAVED_ENV.clear()
    return level


_QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
              "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
_SAVED_ENV: dict = {}


def _silence_libraries() -> None:
    for key, value in _QUIET_ENV.items():
        _SAVED_ENV.setdefault(key, os.environ.get(key))
        os.environ[key] = value
    if "transformers" in sys.modules:      # already imported: use its switches
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
