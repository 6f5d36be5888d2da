"""Size guards: estimate the memory and time of a command before allocating anything, and stop early.

A command calls a ``check_*`` function with its parsed options; when the estimate exceeds
the machine (memory: 80 % of the memory available now; time: :data:`TIME_LIMIT_S`), a
``ValueError`` says what was asked, the estimate and the limit, and that ``--force`` runs
it anyway.  Estimates are deliberately coarse (constants measured on a 2-core laptop, see
the comments); they exist to turn a 10 GB allocation or an hour of waiting into a one-line
error, not to predict run times.

>>> tree_spec_size("branch:4,2,1")
(21, 3)
>>> check_simulation_size("branch:100000,100000", vocab=8, calls=10)
Traceback (most recent call last):
...
ValueError: --tree branch:100000,100000 (10000100001 nodes) with --calls 10: estimated ... above the limit ...; use a smaller tree or fewer calls, or pass --force
"""
from __future__ import annotations

import os
import re

__all__ = ["TIME_LIMIT_S", "available_memory", "tree_spec_size", "simulation_estimate", "check_simulation_size"]

#: estimated seconds above which a command stops unless ``--force`` is given
TIME_LIMIT_S = 300.0
_BYTES_PER_NODE = 400            # Python lists while building + parents/ranks/depth arrays + one child array each
_SECONDS_PER_NODE = 2e-6         # building the tree (measured: 1.7 us per node)
_SECONDS_PER_NODE_DEPTH = 4e-10  # per-depth node tables of the batched walk, O(nodes x depth) (measured)
_SECONDS_PER_CALL = 2e-6         # batched engine, V = 3 (measured: 1.3-3.3 s per 10^6 calls)
_SECONDS_PER_CALL_TOKEN = 2e-9   # plus this per vocabulary entry and visited depth (noise and distributions)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def tree_spec_size(spec) -> tuple[int, int]:
    """``(nodes including the root, depth)`` of a tree spec, computed without building the tree.

    Accepts the grammar of :func:`chansim.trees.parse_tree` (or a built ``Tree``); anything
    else is left for the parser to reject, and gets ``(1, 0)`` here.
    """
    if hasattr(spec, "n_nodes"):
        return int(spec.n_nodes), int(spec.max_depth)
    kind, _, arg = str(spec).partition(":")
    try:
        if kind in ("chain", "batch"):
            k = int(arg)
            return (k + 1, k) if kind == "chain" else (k + 1, 1 if k else 0)
        if kind == "branch":
            widths = [int(w) for w in arg.split(",")]
            nodes, level = 1, 1
            for w in widths:
                level *= max(w, 0)
                nodes += level
            return nodes, len(widths)
        if kind == "seq":
            count, length = (int(v) for v in re.split("[xX]", arg))
            return count * length + 1, length if count else 0
    except ValueError:
        pass
    return 1, 0


def simulation_estimate(spec, vocab: int, calls: int, streams: int | None = None,
                        markov: bool = False, emit_tokens: bool = False) -> tuple[float, float]:
    """Coarse ``(bytes, seconds)`` of ``chansim simulate`` with these options (module docstring).

    Memory: the tree (``nodes`` x 400 B) plus the output grid ``[streams, depth + 1]`` (int64,
    three copies while assembling) plus the per-node distributions ``[streams, V]`` (four float64
    arrays), plus ``calls x (depth + 1)`` int64 twice for ``--emit-tokens``. Time: building the
    tree and its per-depth tables, ``nodes x (depth + 1)``, plus the calls themselves
    (``calls x (2 us + 2 ns x V x (min(depth, 8) + 1))``).
    """
    nodes, depth = tree_spec_size(spec)
    calls = max(int(calls), 1)
    if streams is None:
        streams = min(calls, 1024) if markov else max(16, (1 << 22) // max(int(vocab), 1))
    streams = min(max(int(streams), 1), calls)
    memory = nodes * _BYTES_PER_NODE + 3 * 8 * streams * (depth + 2) + 4 * 8 * streams * int(vocab)
    if emit_tokens:
        memory += 2 * 8 * calls * (depth + 1)
    seconds = nodes * _SECONDS_PER_NODE + nodes * (depth + 1) * _SECONDS_PER_NODE_DEPTH
    seconds += calls * (_SECONDS_PER_CALL + _SECONDS_PER_CALL_TOKEN * int(vocab) * (min(depth, 8) + 1))
    return float(memory), float(seconds)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def _human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def check_simulation_size(spec, vocab: int, calls: int, streams: int | None = None, force: bool = False,
                          markov: bool = False, emit_tokens: bool = False) -> None:
    """Raise ``ValueError`` before ``chansim simulate`` allocates more than the machine has or runs for longer
    than :data:`TIME_LIMIT_S` (estimates from :func:`simulation_estimate`); ``force`` skips the check."""
    if force:
        return
    memory, seconds = simulation_estimate(spec, vocab, calls, streams, markov, emit_tokens)
    limit = 0.8 * available_memory()
    nodes, _ = tree_spec_size(spec)
    problems = []
    if memory > limit:
        problems.append(f"{_human_bytes(memory)} of memory, above the limit of {_human_bytes(limit)} "
                        "(80 % of the memory available)")
    if seconds > TIME_LIMIT_S:
        problems.append(f"{_human_seconds(seconds)} of run time, above the limit of {TIME_LIMIT_S:g} s")
    if problems:
        raise ValueError(f"--tree {spec} ({nodes} nodes) with --calls {calls}: estimated {' and '.join(problems)}; "
                         "use a smaller tree or fewer calls, or pass --force")
