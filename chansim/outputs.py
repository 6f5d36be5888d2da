"""Writing output files safely: never over an input, never over an existing file unless forced, atomically.

Every command that writes a file goes through :func:`check_output` (before any work is
done, so a refused run costs nothing) and :func:`atomic_path` (the content is written to a
temporary file in the same folder and renamed over the target only when complete, so an
interrupted run leaves either the old file or none -- never a truncated one).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> out = check_output(d / "tokens.npy", inputs=[], what="--emit-tokens", suffixes=(".npy",))
>>> with atomic_path(out) as tmp:
...     _ = pathlib.Path(tmp).write_text("x")
>>> out.read_text()
'x'
>>> check_output(out, what="--emit-tokens")
Traceback (most recent call last):
...
ValueError: --emit-tokens: .../tokens.npy already exists; pass --force to overwrite it
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["check_output", "atomic_path", "write_text_atomic", "same_file"]


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (by inode when both exist, else by resolved path)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _input_paths(inputs) -> list[Path]:
    out = []
    for item in inputs:
        if item is None:
            continue
        text = os.fspath(item)
        if not os.path.exists(text) and ":" in text:          # PATH:KEY archive notation
            text = text.rpartition(":")[0]
        out.append(Path(text))
    return out


def check_output(path, inputs: Iterable = (), force: bool = False, what: str = "output",
                 suffixes: tuple[str, ...] | None = None, make_parents: bool = False) -> Path:
    """Validate an output file name before any work; return it as a :class:`~pathlib.Path`.

    Refuses (``ValueError`` naming ``what`` and the path): an existing directory; a name
    without one of ``suffixes`` (when given: the file is written under exactly this name,
    nothing is appended); a missing parent folder (created instead when ``make_parents``);
    any of ``inputs``; an existing file unless ``force``.
    """
    if path is None or str(path).strip() == "":
        raise ValueError(f"{what}: empty output file name")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{what}: {out} is a directory; give a file name"
                         + (f" ending in {' or '.join(suffixes)}" if suffixes else ""))
    if suffixes and out.suffix.lower() not in suffixes:
        raise ValueError(f"{what}: {out} must end in {' or '.join(suffixes)} (the file is written under exactly "
                         "the name given)")
    if make_parents and not out.parent.exists():
        out.parent.mkdir(parents=True)
    if not out.parent.is_dir():
        raise ValueError(f"{what}: folder {out.parent} does not exist")
    for src in _input_paths(inputs):
        if same_file(out, src):
            raise ValueError(f"{what}: {out} is also an input file; refusing to write over an input")
    if out.exists() and not force:
        raise ValueError(f"{what}: {out} already exists; pass --force to overwrite it")
    return out


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary file name next to ``path`` (same suffix); rename it to ``path`` on success.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent or ".")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
