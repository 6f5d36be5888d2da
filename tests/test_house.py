"""The house rules of docs/architecture.md that a reading of the code can check (issue 19).

* a method's name is written as a string in at most 4 files of ``chansim/`` (its own module,
  the registry, and at most two more); every other layer asks the registry (``default_methods``,
  ``baseline``, ``role``) or uses the method's class;
* ``chansim/logs`` (logged runs without a model) never imports ``chansim.llm``, and importing
  it loads neither the model layer nor torch.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from chansim.verify.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chansim"
MAX_FILES = 4

#: files allowed to name methods as strings beyond the rule (none since issue 19 closed)
NOT_YET = frozenset()


def _files_naming(name: str) -> list[str]:
    pattern = re.compile(r"[\"']" + re.escape(name) + r"[\"']")
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in NOT_YET and pattern.search(path.read_text(encoding="utf-8")):
            out.append(rel)
    return out


def test_each_method_is_named_as_a_string_in_at_most_four_files():
    too_many = {name: files for name in METHODS if len(files := _files_naming(name)) > MAX_FILES}
    assert not too_many, (f"method names written as strings in more than {MAX_FILES} files (ask the registry: "
                          f"default_methods, baseline, role, or use the method class): {too_many}")


def test_the_count_sees_a_method_module_and_the_registry():
    # the check above must not pass because it reads nothing
    assert _files_naming("ersd")[:2] == ["chansim/verify/ersd.py", "chansim/verify/registry.py"]


def _imported_modules(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports, at any depth of the file (lazy imports too)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_logs_never_imports_the_model_layer():
    offenders = {}
    for path in sorted((PACKAGE / "logs").rglob("*.py")):
        bad = [m for m in _imported_modules(path) if m == "chansim.llm" or m.startswith("chansim.llm.")]
        if bad:
            offenders[path.relative_to(ROOT).as_posix()] = bad
    assert not offenders, f"chansim/logs imports the model layer: {offenders}"


def test_importing_every_logs_module_loads_neither_llm_nor_torch():
    code = (
        "import importlib, pkgutil, sys\n"
        "import chansim.logs as logs\n"
        "for m in pkgutil.walk_packages(logs.__path__, 'chansim.logs.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'torch' or n == 'chansim.llm' or n.startswith('chansim.llm.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
