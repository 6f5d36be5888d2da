"""Build the API reference (HTML) from the docstrings with pdoc.

``python -m chansim.apidocs OUT_DIR`` writes one page per module of the package (every
submodule, found with :mod:`pkgutil`, since the package's ``__all__`` names only the
light modules) with numpydoc docstrings and LaTeX maths rendered.  The test suite
builds it into a temporary folder (``tests/test_api_docs.py``), so CI builds it on every
run.  pdoc is in the ``dev`` extra (``pip install -e ".[dev]"``).
"""
from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

__all__ = ["api_modules", "build_api_docs"]


def api_modules() -> list[str]:
    """Names of every module of the package, ``chansim`` first.

    >>> mods = api_modules()
    >>> mods[0], "chansim.theory.asymptotics" in mods
    ('chansim', True)
    """
    import chansim

    return ["chansim"] + sorted(m.name for m in pkgutil.walk_packages(chansim.__path__, "chansim."))


def build_api_docs(out_dir, modules: list[str] | None = None) -> list[Path]:
    """Render the API reference of ``modules`` (default: :func:`api_modules`) into ``out_dir``.

    Returns the HTML files written.  Raises ``ImportError`` when pdoc is missing.
    """
    import pdoc
    import pdoc.render

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pdoc.render.configure(docformat="numpy", math=True, footer_text="chansim API reference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # pdoc warns about string annotations it cannot resolve
        pdoc.pdoc(*(modules or api_modules()), output_directory=out)
    return sorted(out.rglob("*.html"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m chansim.apidocs OUT_DIR", file=sys.stderr)
        return 2
    pages = build_api_docs(argv[0])
    print(f"{len(pages)} pages in {argv[0]} (open {Path(argv[0]) / 'index.html'})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
