"""The one output door (issue 22, item 2): :mod:`chansim.common.outputs` and every command that writes.

Tiers: the writer's contract on its own (modes, refusals, OS errors, atomicity) and each
command's use of it (``--force``, never over an input, one-line errors). A deliberately broken
writer (``mkstemp``, mode 0600) must fail the mode checks. Interruption by SIGINT and SIGTERM in
the middle of each kind of write and stdout on a full device are in the hostile battery
(``tests/test_hostile.py``), which counts their outcomes; :data:`_HOOK` and :func:`_writes` here
are its helpers.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

from chansim.common import outputs
from chansim.cli import main
from chansim.common.outputs import OutputError, atomic_path, check_output, check_output_dir, write_text_atomic

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pq(tmp_path):
    np.save(tmp_path / "p.npy", P)
    np.save(tmp_path / "q.npy", Q)
    return tmp_path / "p.npy", tmp_path / "q.npy"


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _one_error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("chansim: ")]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ----------------------------------------------------------------------------- the writer's contract
@contextlib.contextmanager
def _mkstemp_writer(path, what="output"):
    """The writer before issue 22: mkstemp, so every new or replaced file ends up 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".part", dir=Path(path).parent)
    os.close(fd)
    yield tmp
    os.replace(tmp, path)


def _modes_after_writes(writer, folder: Path) -> tuple[int, int, int]:
    """(mode of a new file under umask 022, under umask 077, of a replaced 0644 file under umask 077)."""
    with umask(0o022):
        with writer(folder / "a.txt") as tmp:
            Path(tmp).write_text("a")
    with umask(0o077):
        with writer(folder / "b.txt") as tmp:
            Path(tmp).write_text("b")
        (folder / "c.txt").write_text("old")
        os.chmod(folder / "c.txt", 0o644)
        with writer(folder / "c.txt") as tmp:
            Path(tmp).write_text("new")
    return _mode(folder / "a.txt"), _mode(folder / "b.txt"), _mode(folder / "c.txt")


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    assert _modes_after_writes(atomic_path, tmp_path) == (0o644, 0o600, 0o644)


def test_mode_check_catches_the_mkstemp_writer(tmp_path):
    """The check above is not vacuous: the old writer (mkstemp, 0600 always) fails it."""
    assert _modes_after_writes(_mkstemp_writer, tmp_path) != (0o644, 0o600, 0o644)


def test_read_only_replaced_file_keeps_its_mode(tmp_path):
    f = tmp_path / "r.json"
    f.write_text("{}")
    os.chmod(f, 0o444)
    write_text_atomic(f, "[]")
    assert f.read_text() == "[]" and _mode(f) == 0o444


def test_symlink_output_replaces_its_target(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    os.chmod(real, 0o640)
    (tmp_path / "link.txt").symlink_to(real)
    write_text_atomic(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new" and _mode(real) == 0o640


@pytest.mark.parametrize("name, problem", [("", "empty output file name"), ("DIR", "is a directory"),
                                           ("x.txt", "must end in .png"), ("missing/x.png", "does not exist"),
                                           ("INPUT", "also an input file"), ("EXISTING", "already exists")])
def test_check_output_refusals(tmp_path, name, problem):
    (tmp_path / "in.png").write_bytes(b"input")
    (tmp_path / "old.png").write_bytes(b"old")
    name = {"DIR": str(tmp_path), "INPUT": str(tmp_path / "in.png"), "EXISTING": str(tmp_path / "old.png")}.get(
        name, str(tmp_path / name) if name else name)
    with pytest.raises(OutputError, match=problem):
        check_output(name, inputs=[tmp_path / "in.png"], what="--plot", suffixes=(".png",))
    assert (tmp_path / "in.png").read_bytes() == b"input" and (tmp_path / "old.png").read_bytes() == b"old"


def test_force_never_writes_over_an_input(tmp_path):
    f = tmp_path / "in.png"
    f.write_bytes(b"input")
    with pytest.raises(OutputError, match="--force does not change this"):
        check_output(f, inputs=[f], force=True, what="--plot")
    (tmp_path / "alias.png").symlink_to(f)                    # the same file under another name
    with pytest.raises(OutputError, match="also an input"):
        check_output(tmp_path / "alias.png", inputs=[f], force=True, what="--plot")


def test_check_output_dir(tmp_path):
    with pytest.raises(OutputError, match="empty folder name"):
        check_output_dir("", "--out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_dir(tmp_path / "f", "--out")
    assert check_output_dir(tmp_path / "new" / "sub", "--out").is_dir()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT])
def test_os_errors_while_writing_become_one_line_and_leave_the_old_file(tmp_path, code):
    f = tmp_path / "out.json"
    f.write_text("old")
    with pytest.raises(OutputError) as info:
        with atomic_path(f, "--out") as tmp:
            Path(tmp).write_text("partial")
            raise OSError(code, os.strerror(code), tmp)
    assert str(info.value).startswith("--out: cannot write") and os.strerror(code) in str(info.value)
    assert "\n" not in str(info.value)
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_interrupted_writer_leaves_old_file_and_no_temporary(tmp_path):
    f = tmp_path / "out.npy"
    f.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(f) as tmp:
            Path(tmp).write_bytes(b"half")
            raise KeyboardInterrupt
    assert f.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def _unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot create files in (a 0555 folder; as root, /sys, where root cannot either)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    if os.access(folder, os.W_OK):                          # root ignores the mode
        folder = Path("/sys")
        try:
            os.close(os.open(folder / "chansim-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError:
            return folder
        pytest.skip("no unwritable folder available (root with a writable /sys)")
    return folder


@pytest.mark.parametrize("command", ["plot", "emit", "figures"])
def test_unwritable_folder_is_one_line(tmp_path, pq, capsys, command):
    folder = _unwritable_folder(tmp_path)
    argv = {"plot": ["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", "1", "--method", "sd", "--jobs", "1",
                     "--plot", str(folder / "x.png")],
            "emit": ["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:1",
                     "--calls", "10", "--emit-tokens", str(folder / "t.npy")],
            "figures": ["figures", "--only", "fig1_trees", "--out", str(folder / "figs"), "--scale", "0.01"]}[command]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "permission denied" in line.lower() or "not writable" in line or "cannot" in line, line


def test_full_disk_while_saving_a_plot_is_one_line(pq, tmp_path, capsys, monkeypatch):
    import matplotlib.figure

    def full(self, fname, *a, **k):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    (tmp_path / "old.png").write_bytes(b"old plot")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", "1", "--method", "sd", "--jobs", "1",
                 "--plot", str(tmp_path / "old.png"), "--force"]) == 2
    assert "No space left on device" in _one_error_line(capsys)
    assert (tmp_path / "old.png").read_bytes() == b"old plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png", "p.npy", "q.npy"]


# stdout on a full device: tests/test_hostile.py::test_stdout_on_a_full_device (counted by the battery)


# ----------------------------------------------------------------------------- commands through the door
def test_bound_plot_onto_its_log_refused_even_with_force(tmp_path, capsys):
    log = tmp_path / "run.png"                     # a log whose name ends in .png
    log.write_bytes(b"a log, not a plot")
    for extra in ([], ["--force"]):
        assert main(["bound", "--log", str(log), "--temperatures", "1", "--plot", str(log)] + extra) == 2
        assert "also an input file" in _one_error_line(capsys)
    assert log.read_bytes() == b"a log, not a plot"


def test_bound_temperature_plot_needs_force(tmp_path, capsys):
    from test_hostile_reproducers import _race_log

    log = _race_log(tmp_path / "run.npz", n_seq=2, length=6, vocab=12)
    old = tmp_path / "old.png"
    old.write_bytes(b"keep")
    os.chmod(old, 0o644)
    argv = ["bound", "--log", str(log), "--temperatures", "0.5,1", "--k", "1", "--method", "sd", "--trials", "20",
            "--plot", str(old)]
    assert main(argv) == 2 and "already exists" in _one_error_line(capsys)
    assert old.read_bytes() == b"keep"
    with umask(0o077):
        assert main(argv + ["--force"]) == 0
    assert old.read_bytes()[:4] == b"\x89PNG" and _mode(old) == 0o644


def test_emit_tokens_follow_the_umask(pq, tmp_path):
    with umask(0o027):
        assert main(["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:1",
                     "--calls", "10", "--emit-tokens", str(tmp_path / "t.npy")]) == 0
    assert _mode(tmp_path / "t.npy") == 0o640


def test_figures_regenerate_their_own_files_but_not_foreign_ones(tmp_path, capsys):
    out = tmp_path / "figs"
    argv = ["figures", "--only", "fig1_trees", "--out", str(out), "--scale", "0.01", "--jobs", "1"]
    assert main(argv) == 0
    with umask(0o022):
        os.chmod(out / "fig1_trees.png", 0o664)
        assert main(argv) == 0                            # chansim's own set: regenerated in place
    assert _mode(out / "fig1_trees.png") == 0o664 and _mode(out / "fig1_trees.pdf") == 0o644
    capsys.readouterr()
    other = tmp_path / "other"
    other.mkdir()
    (other / "fig1_trees.png").write_bytes(b"mine")
    (other / "manifest.json").write_text("my notes")
    assert main(["figures", "--only", "fig1_trees", "--out", str(other), "--scale", "0.01"]) == 2
    assert "not written by chansim figures" in _one_error_line(capsys)
    assert (other / "fig1_trees.png").read_bytes() == b"mine" and (other / "manifest.json").read_text() == "my notes"
    assert main(["figures", "--only", "fig1_trees", "--out", str(other), "--scale", "0.01", "--force"]) == 0
    assert (other / "fig1_trees.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("opts, problem", [(["--out", ""], "--out is empty"), (["--out", " "], "--out is empty"),
                                           (["--data", "FILE"], "is a file"), (["--data", "MISSING"], "does not exist"),
                                           (["--data", ""], "--data is empty")])
def test_figures_out_and_data_checked(tmp_path, capsys, opts, problem):
    (tmp_path / "f.json").write_text("[]")
    sub = {"FILE": str(tmp_path / "f.json"), "MISSING": str(tmp_path / "none")}
    opts = [sub.get(v, v) for v in opts]
    if "--out" not in opts:
        opts += ["--out", str(tmp_path / "figs")]
    before = sorted(os.listdir(os.getcwd()))
    assert main(["figures", "--only", "fig1_trees"] + opts) == 2
    assert problem in _one_error_line(capsys)
    assert sorted(os.listdir(os.getcwd())) == before


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    import chansim.common.parallel

    monkeypatch.setattr(chansim.common.parallel, "CONNECT_TIMEOUT_S", 1.0)
    assert main(["figures", "--only", "fig1_trees", "--out", str(tmp_path / "f"), "--backend", "dask",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the dask scheduler" in _one_error_line(capsys)


# ----------------------------------------------------------------------------- signals in the middle of a write
#: run in a subprocess: deliver HOSTILE_SIGNAL to ourselves at the HOSTILE_AT-th opening of a temporary output
#: (1: just created, nothing written; 2: the writer's own open, content being written), then run the CLI
_HOOK = """
import os, signal, sys
SIG, AT, seen = getattr(signal, os.environ["HOSTILE_SIGNAL"]), int(os.environ["HOSTILE_AT"]), [0]
def hook(event, args):
    if event == "open" and args and ".part" in str(args[0]):
        seen[0] += 1
        if seen[0] == AT:
            os.kill(os.getpid(), SIG)
sys.addaudithook(hook)
if sys.argv[1] == "--library":          # a writer the CLI reaches only with a model: write_log / write_text_atomic
    from chansim.cli import _sigterm_as_interrupt
    kind, path = sys.argv[2], sys.argv[3]
    try:
        with _sigterm_as_interrupt():
            if kind == "log":
                from test_hostile_reproducers import _race_log
                _race_log(path, n_seq=2, length=8, vocab=16)
            else:
                from chansim.common.outputs import write_text_atomic
                write_text_atomic(path, "[" + ",".join(["1"] * 100000) + "]")
    except KeyboardInterrupt as err:
        print("interrupted" if type(err) is KeyboardInterrupt else "terminated", file=sys.stderr)
        sys.exit(130 if type(err) is KeyboardInterrupt else 143)
    sys.exit(0)
from chansim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _writes(tmp: Path, pq) -> dict:
    """kind -> (argv for the hook script, file that exists before and must survive)."""
    p, q = map(str, pq)
    return {
        "plot": (["bound", "--p", p, "--q", q, "--k", "1", "--method", "sd", "--jobs", "1", "--force",
                  "--plot", str(tmp / "old.png")], tmp / "old.png"),
        "tokens": (["simulate", "--method", "sd", "--p", p, "--q", q, "--tree", "chain:2", "--calls", "2000",
                    "--force", "--emit-tokens", str(tmp / "old.npy")], tmp / "old.npy"),
        "figure": (["figures", "--only", "fig1_trees", "--out", str(tmp / "figs"), "--scale", "0.01",
                    "--jobs", "1"], tmp / "figs" / "fig1_trees.json"),
        "log": (["--library", "log", str(tmp / "old.npz")], tmp / "old.npz"),
        "json": (["--library", "json", str(tmp / "old.json")], tmp / "old.json"),
    }


# the signal tests themselves are in the hostile battery (tests/test_hostile.py::test_signal_during_write),
# which counts their outcomes with the rest


def test_sigterm_outside_chansim_is_not_swallowed():
    """The SIGTERM handler is installed only while a command runs, and restored after."""
    before = signal.getsignal(signal.SIGTERM)
    assert main(["figures", "--only", "fig9", "--out", tempfile.mkdtemp()]) == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_outputs_all_exported():
    assert set(outputs.__all__) >= {"check_output", "atomic_path", "write_text_atomic", "OutputError"}
    assert json.loads(json.dumps(outputs.__all__))
