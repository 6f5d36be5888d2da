"""What every benchmark script writes with ``--out``: its rows and the machine they were measured on."""
from __future__ import annotations

import json
import platform

import numpy as np


def write_rows(path, rows: list) -> None:
    """``{"meta": {numpy, python, machine}, "rows": rows}`` as indented JSON at ``path``."""
    meta = {"numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine()}
    with open(path, "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=2)
