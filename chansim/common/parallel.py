"""One parallel map for the whole package: ``parallel_map(func, items, jobs=, backend=, scheduler=)``.

Every sweep that spreads independent work over processes (figures, the bound report's
positions, ``simulate.sweep``, the per-position rank laws and path predictions of a log)
goes through :func:`parallel_map`.  It is the ground floor: it imports nothing of chansim
but :mod:`chansim.common.logconfig`, so any layer may use it.

Guarantees
----------
* **Order and seeds**: results come back in item order whatever the backend; each item
  carries its own arguments (seeds included), so results do not depend on ``jobs``.
* **Workers end with their parent** (docs/architecture.md, "Parallel work"): every task
  of a local backend (loky, multiprocessing) runs inside :func:`_guarded_call`, which
  starts (once per worker process) a daemon thread that polls ``os.getppid()``.  When the
  parent dies — SIGKILL from a time limit, SIGTERM from a scheduler, Ctrl-C — the worker
  is re-parented and exits within :data:`PARENT_POLL_S` seconds, even in the middle of a
  long task; a task that reaches a worker after its parent died is not started.  joblib's
  own resource tracker removes its memory-mapping folders once the parent is gone.
* **A dask scheduler that cannot be reached** fails after :data:`CONNECT_TIMEOUT_S`
  seconds with a one-line ``ValueError`` naming the address.

>>> parallel_map(pow, [(2, 3), (3, 2)])
[8, 9]
>>> parallel_map(pow, [(2, 3), (3, 2), (5, 1)], jobs=2)
[8, 9, 5]
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterable, Sequence

__all__ = ["parallel_map", "check_jobs", "effective_jobs", "backend_context", "PARENT_POLL_S", "CONNECT_TIMEOUT_S"]

#: seconds between two checks of a worker that its parent is still alive
PARENT_POLL_S = 0.5
#: seconds allowed to connect to a dask scheduler before giving up with a clear error
CONNECT_TIMEOUT_S = 10.0

_WATCHED_PARENT: list = []        # pid a worker process watches (set once per process)
_ACTIVE_BACKEND: list = []        # (backend, scheduler) contexts open (re-entrant use)
#: joblib backends whose workers are this process's children (or threads of it): watched
_LOCAL_BACKENDS = (None, "loky", "multiprocessing", "threading", "sequential")


def check_jobs(jobs: int) -> int:
    """``jobs`` as an int: >= 1, or -1 for all cores (joblib's convention); else ``ValueError``."""
    if isinstance(jobs, bool) or not isinstance(jobs, (int,)) and not hasattr(jobs, "__index__"):
        raise ValueError(f"jobs must be an integer >= 1 or -1 (all cores), got {jobs!r}")
    jobs = int(jobs)
    if jobs == 0 or jobs < -1:
        raise ValueError(f"jobs must be >= 1 or -1 (all cores), got {jobs}")
    return jobs


def _watch_parent(parent_pid: int) -> None:
    """In a local worker process: exit as soon as ``parent_pid`` is no longer our parent.

    Nothing happens when the task runs in the parent itself (threads, sequential).  A
    worker that receives a task after its parent died (the task was already in its pipe)
    exits at once instead of running it.
    """
    if _WATCHED_PARENT or os.getpid() == parent_pid:
        return
    if os.getppid() != parent_pid:
        os._exit(143)
        return                        # only reached when os._exit is replaced (tests)
    _WATCHED_PARENT.append(parent_pid)
    threading.Thread(target=_poll_parent, args=(parent_pid,), name="chansim-parent-watch", daemon=True).start()


def _poll_parent(parent_pid: int) -> None:
    """Every :data:`PARENT_POLL_S` s: once re-parented (the parent is gone), end the process at once."""
    import time

    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(143)             # no clean-up in a worker: its parent's resources are not ours
            return                    # only reached when os._exit is replaced (tests)


def _guarded_call(parent_pid: int | None, func: Callable, args: tuple):
    """Run ``func(*args)`` in a worker that exits when ``parent_pid`` dies (module docstring).

    ``parent_pid`` is None for backends whose workers are not our children (dask).
    """
    if parent_pid is not None:
        _watch_parent(parent_pid)
    return func(*args)


@contextlib.contextmanager
def backend_context(backend: str | None, scheduler: str | None = None):
    """joblib backend for the enclosed maps; ``"dask"`` connects to ``scheduler`` (or starts an
    in-process ``dask.distributed`` client, closed on exit).  Re-entrant: nested uses share it."""
    from joblib import parallel_config

    if scheduler and backend != "dask":
        raise ValueError("--scheduler is only used with --backend dask")
    if _ACTIVE_BACKEND or not backend:
        yield
        return
    client = None
    if backend == "dask":
        try:
            from dask.distributed import Client
        except ImportError as err:  # pragma: no cover - depends on extras
            raise ValueError("--backend dask needs dask.distributed: pip install -e '.[dask]'") from err
        if scheduler:
            try:
                client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError, ValueError) as err:
                raise ValueError(f"cannot reach the dask scheduler at {scheduler!r} within "
                                 f"{CONNECT_TIMEOUT_S:g} s ({type(err).__name__}); start it or check the address") from None
        else:
            client = Client(processes=False)
    _ACTIVE_BACKEND.append((backend, scheduler))
    try:
        with parallel_config(backend=backend):
            yield
    finally:
        _ACTIVE_BACKEND.pop()
        if client is not None:
            client.close()


def parallel_map(func: Callable, items: Iterable[Sequence], *, jobs: int = 1, backend: str | None = None,
                 scheduler: str | None = None, desc: str = "", progress: bool | None = None) -> list:
    """``[func(*item) for item in items]``, spread over ``jobs`` joblib workers; results in item order.

    ``jobs``: 1 runs in this process (no workers); -1 uses every core.  ``backend``: a
    joblib backend name (``"dask"`` with ``scheduler``, an address, for a cluster).
    ``progress``: a tqdm bar on stderr (default: when :func:`chansim.common.logconfig.progress_enabled`
    and there are at least 4 items).  ``func`` must be picklable (a module-level function).
    """
    from tqdm.auto import tqdm

    from .logconfig import progress_enabled

    jobs = check_jobs(jobs)
    items = [tuple(it) for it in items]
    if progress is None:
        progress = progress_enabled()
    bar = dict(total=len(items), desc=desc or None, leave=False, disable=not progress or len(items) < 4)
    if (jobs == 1 and backend is None) or len(items) <= 1 and backend is None:
        return [func(*it) for it in tqdm(items, **bar)]
    from joblib import Parallel, delayed

    parent = os.getpid() if backend in _LOCAL_BACKENDS else None
    with backend_context(backend, scheduler):
        runner = Parallel(n_jobs=jobs, return_as="generator")
        return list(tqdm(runner(delayed(_guarded_call)(parent, func, it) for it in items), **bar))


def effective_jobs(jobs: int) -> int:
    """Number of workers ``jobs`` means on this machine (-1: every core)."""
    from joblib import effective_n_jobs

    return int(effective_n_jobs(check_jobs(jobs)))
