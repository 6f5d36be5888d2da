"""The API reference builds from the docstrings (pdoc, in the dev extra), so CI builds it on every run."""
import pytest

from chansim.apidocs import api_modules, build_api_docs


def test_api_reference_builds_for_every_module(tmp_path):
    pytest.importorskip("pdoc", reason="pdoc is in the dev extra: pip install -e '.[dev]'")
    pages = build_api_docs(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in pages}
    for mod in api_modules():
        assert mod.replace(".", "/") + ".html" in names, mod
    html = (tmp_path / "chansim" / "theory" / "asymptotics.html").read_text()
    assert "all_k_bound" in html and "docs/theory.md" in html        # docstrings rendered
