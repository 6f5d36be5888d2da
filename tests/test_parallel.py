"""The one parallel map (:mod:`chansim.common.parallel`): order, argument checks, a dead scheduler,
and workers that end with their parent whatever killed it (SIGKILL, SIGTERM, SIGINT)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from chansim.common import parallel
from chansim.common.parallel import check_jobs, parallel_map

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]


def _square_sum(x, y):
    return x * x + y


def test_results_in_item_order_whatever_the_number_of_jobs():
    items = [(i, 10 * i) for i in range(9)]
    expected = [_square_sum(*it) for it in items]
    assert parallel_map(_square_sum, items) == expected
    assert parallel_map(_square_sum, items, jobs=2) == expected
    assert parallel_map(_square_sum, items, jobs=2, backend="threading") == expected


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_jobs_must_be_an_integer_at_least_one_or_minus_one(bad):
    with pytest.raises(ValueError, match="jobs must be"):
        check_jobs(bad)
    with pytest.raises(ValueError, match="jobs must be"):
        parallel_map(_square_sum, [(1, 2)], jobs=bad)


def test_unreachable_scheduler_fails_fast_with_one_line(monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 2.0)
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach the dask scheduler at 'tcp://127\.0\.0\.1:9' within 2 s"):
        parallel_map(_square_sum, [(1, 2), (3, 4)], jobs=2, backend="dask", scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - start < 30


def test_scheduler_without_dask_backend_is_refused():
    with pytest.raises(ValueError, match="--scheduler is only used with --backend dask"):
        parallel_map(_square_sum, [(1, 2), (3, 4)], jobs=2, scheduler="tcp://127.0.0.1:9")


# A parent that spreads ~60 s of work over two loky workers, each task holding an array large
# enough (2 MB) for joblib to memory-map it into a temporary folder.
_PARENT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from chansim.common.parallel import parallel_map

    def spin(seconds, payload, marks):
        open(os.path.join(marks, str(os.getpid())), "w").close()      # this worker has started a task
        end = time.time() + seconds
        while time.time() < end:
            payload.sum()
        return float(payload[0])

    parallel_map(spin, [(60.0, np.ones(250_000), sys.argv[1]) for _ in range(4)], jobs=2, progress=False)
    print("finished", flush=True)
""")


def _workers_of(proc: subprocess.Popen, marks: Path, want: int, timeout: float = 120.0) -> list:
    """The parent's descendant processes once ``want`` workers have started a task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(marks.iterdir())) >= want:
            return psutil.Process(proc.pid).children(recursive=True)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise AssertionError(f"the parent never started {want} tasks")


def _alive(procs) -> list:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _joblib_folders(pid: int) -> list:
    roots = {Path("/dev/shm"), Path(tempfile.gettempdir())}
    return [f for r in roots if r.is_dir() for f in r.glob(f"joblib_memmapping_folder_{pid}_*")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["KILL", "TERM", "INT"])
def test_workers_end_with_their_parent(sig, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workers = _workers_of(proc, tmp_path, want=2)
        assert len(workers) >= 2
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(workers), f"still running 10 s after the parent's {sig.name}: {_alive(workers)}"
        if sig != signal.SIGKILL:     # exit paths that can clean up: no joblib folder left behind
            deadline = time.monotonic() + 10
            while _joblib_folders(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _joblib_folders(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_broken_watchdog_would_be_caught(monkeypatch):
    """The watchdog ends a worker once it is re-parented (a variant without it leaves ``calls`` empty)."""
    calls = []
    monkeypatch.setattr(parallel.os, "_exit", lambda code: calls.append(code))
    monkeypatch.setattr(parallel, "PARENT_POLL_S", 0.01)
    monkeypatch.setattr(parallel, "_WATCHED_PARENT", [])
    # The watched pid is our (fake) parent at start, then the fake getppid says we were re-parented.
    state = {"first": True}

    def getppid():
        if state["first"]:
            state["first"] = False
            return 4242
        return 1

    monkeypatch.setattr(parallel.os, "getppid", getppid)
    parallel._watch_parent(4242)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [143]


def test_a_task_reaching_an_orphaned_worker_is_not_started(monkeypatch):
    calls, ran = [], []
    monkeypatch.setattr(parallel.os, "_exit", lambda code: calls.append(code))
    monkeypatch.setattr(parallel.os, "getppid", lambda: 1)            # already re-parented
    monkeypatch.setattr(parallel, "_WATCHED_PARENT", [])
    parallel._guarded_call(4242, ran.append, ("ran",))
    assert calls == [143]
