"""``chansim llm``: real-model work (log logits, validate predicted vs measured speed-ups,
import other tools' logits, prompt lookup on a pair).

Sub-commands live in their own modules (:data:`SUBCOMMANDS`: ``llm_log.py``, ``llm_validate.py``,
``llm_import.py``, ``llm_lookup.py``), each exposing ``register(subparsers)``; this module only
groups them.
"""
from __future__ import annotations

import importlib

SUBCOMMANDS = ("llm_log", "llm_validate", "llm_import", "llm_lookup")


def register(sub) -> None:
    parser = sub.add_parser("llm", help="real language models: log logits, run methods, validate predictions",
                            description="Real-model validation (default pair: SmolLM2-135M-Instruct and a "
                                        "layer-skipping draft; needs the 'llm' extra).")
    llm_sub = parser.add_subparsers(dest="llm_command", metavar="SUBCOMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"chansim.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"chansim.commands.{name}":
                continue
            raise
        module.register(llm_sub)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
