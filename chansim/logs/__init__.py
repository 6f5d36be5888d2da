"""Logged runs without a model: the log format, imports of other tools' output, truncated
(top-n) logs, prediction from a logged path, per-position rank laws, sampling-settings
re-weighting, log statistics and the keyed noise shared with the model runs.

Nothing here imports :mod:`chansim.llm` (which loads and runs models) or torch: ``chansim
bound --log`` and ``chansim llm import`` of records work with the core install.

>>> from chansim.logs import read_log, write_log, LogError
>>> LogError.__mro__[1].__name__
'ValueError'
"""
from __future__ import annotations

from .format import LogError, LogFileNotFoundError, LogRun, read_log, write_log

__all__ = ["LogError", "LogFileNotFoundError", "LogRun", "read_log", "write_log"]
