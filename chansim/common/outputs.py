"""The one output door: every file chansim writes goes through :func:`check_output` and :func:`atomic_path`.

Rules, for every command and every file (logs, plots, tokens, figures with their data and
manifest, validation results):

* **checked before any work** (:func:`check_output`): refused, with one line naming the flag
  and the path, are an empty name, a directory, a wrong suffix, a missing or unwritable
  folder, any of the command's inputs (even with ``--force``), and an existing file unless
  ``--force`` is given;
* **atomic** (:func:`atomic_path`): the content goes to a temporary file in the same folder,
  renamed over the target only when complete, so an interrupted run (Ctrl-C, SIGTERM, a full
  disk) leaves the old file byte-identical, or no file -- never a truncated one;
* **modes as a shell would leave them**: a new file gets ``0o666`` less the umask (not the
  ``0o600`` of :func:`tempfile.mkstemp`), a replaced file keeps its mode;
* **OS errors are one line**: permission denied, a full disk, a read-only file system while
  writing all become an :class:`OutputError` (a ``ValueError``, exit status 2 in the CLI)
  naming the flag, the path and the reason.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> out = check_output(d / "tokens.npy", inputs=[], what="--emit-tokens", suffixes=(".npy",))
>>> with atomic_path(out) as tmp:
...     _ = pathlib.Path(tmp).write_text("x")
>>> out.read_text()
'x'
>>> oct(out.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
True
>>> check_output(out, what="--emit-tokens")
Traceback (most recent call last):
...
chansim.common.outputs.OutputError: --emit-tokens: .../tokens.npy already exists; pass --force to overwrite it
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["OutputError", "check_output", "check_output_dir", "atomic_path", "write_text_atomic", "same_file",
           "current_umask"]


class OutputError(ValueError):
    """An output that must not or cannot be written; the message is one line (flag, path, reason)."""


def current_umask() -> int:
    """The process umask (read from ``/proc/self/status`` where possible, else set and restored)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)          # pragma: no cover - non-Linux
    os.umask(mask)
    return mask


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (by inode when both exist, else by resolved path)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):     # a symlink loop: compare as written
        return os.path.abspath(a) == os.path.abspath(b)


def _input_paths(inputs) -> list[Path]:
    out = []
    for item in inputs:
        if item is None or (isinstance(item, str) and not item.strip()):
            continue
        text = os.fspath(item)
        if not os.path.exists(text) and ":" in text:          # PATH:KEY archive notation
            text = text.rpartition(":")[0]
        out.append(Path(text))
    return out


def _reason(err: OSError) -> str:
    return err.strerror or os.strerror(err.errno or 0) or type(err).__name__


def _check_folder(folder: Path, what: str, target) -> None:
    if not folder.is_dir():
        raise OutputError(f"{what}: folder {folder} " + ("is a file, not a folder" if folder.exists()
                                                         else "does not exist"))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what}: cannot write {target}: folder {folder} is not writable (permission denied)")


def check_output(path, inputs: Iterable = (), force: bool = False, what: str = "output",
                 suffixes: tuple[str, ...] | None = None, make_parents: bool = False) -> Path:
    """Validate an output file name before any work; return it as a :class:`~pathlib.Path`.

    Refuses (:class:`OutputError`, a ``ValueError`` naming ``what`` and the path): an empty
    name; an existing directory; a name without one of ``suffixes`` (when given: the file is
    written under exactly this name, nothing is appended); a missing parent folder (created
    instead when ``make_parents``) or one this process cannot write; any of ``inputs`` (even
    with ``force``); an existing file unless ``force``.
    """
    if path is None or str(path).strip() == "":
        raise OutputError(f"{what}: empty output file name")
    out = Path(path)
    if out.is_dir():
        raise OutputError(f"{what}: {out} is a directory; give a file name"
                          + (f" ending in {' or '.join(suffixes)}" if suffixes else ""))
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(f"{what}: {out} must end in {' or '.join(suffixes)} (the file is written under exactly "
                          "the name given)")
    for src in _input_paths(inputs):
        if same_file(out, src):
            raise OutputError(f"{what}: {out} is also an input file; refusing to write over an input "
                              "(--force does not change this)")
    if make_parents and not out.parent.exists():
        try:
            out.parent.mkdir(parents=True)
        except OSError as err:
            raise OutputError(f"{what}: cannot create folder {out.parent}: {_reason(err)}") from None
    _check_folder(out.parent, what, out)
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputError(f"{what}: {out} already exists; pass --force to overwrite it")
    return out


def check_output_dir(path, what: str = "--out", inputs: Iterable = ()) -> Path:
    """Validate an output *folder* (created if missing); refuse an empty name, a file, an input, an unwritable folder."""
    if path is None or str(path).strip() == "":
        raise OutputError(f"{what}: empty folder name; give a folder, e.g. {what} figures")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what}: {out} is a file; give a folder")
    for src in _input_paths(inputs):
        if src.is_file() and same_file(out, src):
            raise OutputError(f"{what}: {out} is also an input file")
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise OutputError(f"{what}: cannot create folder {out}: {_reason(err)}") from None
    _check_folder(out, what, out)
    return out


def _open_temporary(path: Path, mode: int) -> str:
    """Create an empty temporary file beside ``path`` with permission bits ``mode`` (less the umask)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        os.close(fd)
        return str(tmp)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path, what: str = "output") -> Iterator[str]:
    """Yield a temporary file name next to ``path`` (same suffix); rename it to ``path`` on success.

    The temporary file is created with mode ``0o666`` less the umask (a new file follows the
    umask, as the shell's ``>`` does); when ``path`` exists its permission bits are copied, so
    a replaced file keeps its mode. A symlink is followed: its target is replaced.

    On any exception (``KeyboardInterrupt`` and SIGTERM included) the temporary file is removed
    and ``path`` is left as it was; an ``OSError`` of the writing (full disk, permission,
    read-only file system) comes out as one :class:`OutputError` line naming ``what``.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        old_mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
        tmp = _open_temporary(path, 0o666)
        if old_mode is not None:
            os.chmod(tmp, old_mode)
    except OSError as err:
        raise OutputError(f"{what}: cannot write {path}: {_reason(err)}") from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{what}: cannot write {path}: {_reason(err)}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, what) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
