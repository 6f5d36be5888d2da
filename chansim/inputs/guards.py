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

import math
import os
import re

__all__ = ["TIME_LIMIT_S", "available_memory", "tree_spec_size", "simulation_estimate", "check_simulation_size",
           "pfr_estimate", "check_pfr_trials", "FIGURE_SECONDS", "MAX_FIGURE_SCALE", "check_figure_scale",
           "rank_law_seconds", "check_rank_law_budget"]

#: estimated seconds above which a command stops unless ``--force`` is given
TIME_LIMIT_S = 300.0
_BYTES_PER_NODE = 400            # Python lists while building + parents/ranks/depth arrays + one child array each
_SECONDS_PER_NODE = 2e-6         # building the tree (measured: 1.7 us per node)
_SECONDS_PER_NODE_DEPTH = 4e-10  # per-depth node tables of the batched walk, O(nodes x depth) (measured)
_SECONDS_PER_CALL = 2e-6         # batched engine, V = 3 (measured: 1.3-3.3 s per 10^6 calls)
_SECONDS_PER_CALL_TOKEN = 2e-9   # plus this per vocabulary entry and visited depth (noise and distributions)
_SECONDS_PER_REFERENCE_CALL = 1e-3        # reference engine, one call at a time (measured: 1.4 ms, chain:1, V = 3)
_SECONDS_PER_REFERENCE_NODE = 2e-4        # plus this per tree level (measured: 2.8 ms chain:8, 3.8 ms branch:4,4,2)
_SECONDS_PER_REFERENCE_TOKEN = 2e-8       # plus this per vocabulary entry and level (5.8 ms chain:4, V = 50,000)
_PFR_BYTES_PER_TRIAL = 96                 # pfr_sample: seven [trials] arrays (float64/int64) + the index statistics
_PFR_SECONDS_PER_TRIAL = 1e-6             # plus this per expected arrival: measured 5e-5 s/trial at
_PFR_SECONDS_PER_ARRIVAL = 1.5e-7         # max p/q = 380 (V = 3), 2.9e-4 at 1,250 (V = 1,000)
_RANK_LAW_SECONDS_PER_TOKEN = 1.3e-4     # guaranteed rank law at tol 1e-4, K = 64 (measured: 4 CPU-s at V = 49,152, 33 at 262,144)
_RANK_LAW_DECADE_FACTOR = 2.0            # per decade of tol below 1e-4 (measured: x 4.2 from 1e-4 to 1e-6 at V = 4,096)
_RANK_LAW_EXACT_VOCAB = 64               # at or below: the exact kernel, fast
#: seconds of ``chansim figures`` at ``--scale 1`` on a 2-core laptop, per mode (coarse; most of it scales with trials)
FIGURE_SECONDS = {"quick": 300.0, "full": 3600.0}
#: ``--scale`` above this is refused without ``--force`` (its run time grows in proportion)
MAX_FIGURE_SCALE = 10.0


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

    Accepts the grammar of :func:`chansim.inputs.trees.parse_tree` (or a built ``Tree``); anything
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
                        markov: bool = False, emit_tokens: bool = False,
                        engine: str = "batched") -> tuple[float, float]:
    """Coarse ``(bytes, seconds)`` of ``chansim simulate`` with these options (module docstring).

    Memory: the tree (``nodes`` x 400 B) plus the output grid ``[streams, depth + 1]`` (int64,
    three copies while assembling) plus the per-node distributions ``[streams, V]`` (four float64
    arrays), plus ``calls x (depth + 1)`` int64 twice for ``--emit-tokens``. Time: building the
    tree and its per-depth tables, ``nodes x (depth + 1)``, plus the calls themselves
    (``calls x (2 us + 2 ns x V x (min(depth, 8) + 1))``); the reference engine (one call at a
    time) costs ``calls x (1 ms + (0.2 ms + 20 ns x V) x depth)``.
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
    if engine == "reference":
        seconds += calls * (_SECONDS_PER_REFERENCE_CALL + max(depth, 1) * (
            _SECONDS_PER_REFERENCE_NODE + _SECONDS_PER_REFERENCE_TOKEN * int(vocab)))
    else:
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
    if s < 2 * 86400:
        return f"{s / 3600:.3g} h"
    if s < 2 * 365 * 86400:
        return f"{s / 86400:.3g} days"
    return f"{s / (365 * 86400):.3g} years"


def check_simulation_size(spec, vocab: int, calls: int, streams: int | None = None, force: bool = False,
                          markov: bool = False, emit_tokens: bool = False, engine: str = "batched") -> None:
    """Raise ``ValueError`` before ``chansim simulate`` allocates more than the machine has or runs for longer
    than :data:`TIME_LIMIT_S` (estimates from :func:`simulation_estimate`); ``force`` skips the check."""
    if force:
        return
    memory, seconds = simulation_estimate(spec, vocab, calls, streams, markov, emit_tokens, engine)
    nodes, _ = tree_spec_size(spec)
    problems = _problems(memory, seconds)
    if problems:
        engine_text = " on the reference engine" if engine == "reference" else ""
        raise ValueError(f"--tree {spec} ({nodes} nodes) with --calls {calls}{engine_text}: estimated "
                         f"{' and '.join(problems)}; use a smaller tree or fewer calls"
                         + (" (or --engine batched)" if engine == "reference" else "") + ", or pass --force")


def _problems(memory: float, seconds: float) -> list[str]:
    limit = 0.8 * available_memory()
    problems = []
    if memory > limit:
        problems.append(f"{_human_bytes(memory)} of memory, above the limit of {_human_bytes(limit)} "
                        "(80 % of the memory available)")
    if seconds > TIME_LIMIT_S:
        problems.append(f"{_human_seconds(seconds)} of run time, above the limit of {TIME_LIMIT_S:g} s")
    return problems


def pfr_estimate(trials: int, max_ratio: float) -> tuple[float, float]:
    """Coarse ``(bytes, seconds)`` of :func:`chansim.channel.pfr_sample`: ``trials`` runs, each examining
    about ``max_ratio`` = max p/q arrivals before it may stop (constants measured, see above)."""
    trials = max(int(trials), 0)
    ratio = float(max_ratio) if max_ratio == max_ratio else float("inf")
    return (float(trials * _PFR_BYTES_PER_TRIAL),
            trials * (_PFR_SECONDS_PER_TRIAL + _PFR_SECONDS_PER_ARRIVAL * min(ratio, 1e300)))


def check_pfr_trials(trials: int, max_ratio: float, force: bool = False) -> None:
    """Raise ``ValueError`` before ``chansim channel --trials`` runs out of memory or past :data:`TIME_LIMIT_S`."""
    if force or not trials:
        return
    problems = _problems(*pfr_estimate(trials, max_ratio))
    if problems:
        raise ValueError(f"--trials {trials} (each trial examines about max p/q = {max_ratio:.3g} arrivals): "
                         f"estimated {' and '.join(problems)}; use fewer --trials, or pass --force")


def check_figure_scale(scale: float, mode: str = "quick", force: bool = False) -> None:
    """Refuse ``chansim figures --scale`` above :data:`MAX_FIGURE_SCALE` (unless ``force``), with the estimate.

    >>> check_figure_scale(1e9)
    Traceback (most recent call last):
    ...
    ValueError: --scale 1e+09 multiplies every trial count: estimated ... (the quick set takes about 5 min at --scale 1 on 2 cores); above the limit of --scale 10; use a smaller --scale, or pass --force
    """
    if force or scale <= MAX_FIGURE_SCALE:
        return
    base = FIGURE_SECONDS.get(mode, FIGURE_SECONDS["quick"])
    raise ValueError(f"--scale {scale:g} multiplies every trial count: estimated {_human_seconds(base * scale)} "
                     f"(the {mode} set takes about {_human_seconds(base)} at --scale 1 on 2 cores); above the limit "
                     f"of --scale {MAX_FIGURE_SCALE:g}; use a smaller --scale, or pass --force")


def rank_law_seconds(vocab: int, tol: float, ranks: int = 64) -> float:
    """Coarse seconds of one guaranteed rank law (:func:`chansim.theory.rankbound.bounded_rank_law`) at
    vocabulary ``vocab``, l1 tolerance ``tol`` and ``ranks`` = K: linear in V, doubling per decade of
    ``tol`` below 1e-4, and linear in K above 64 (the recursion's width; ``chansim bound`` starts at
    K = 64 and widens only while the tail P(R > K) is above ``tol``, so this is the worst case).

    >>> round(rank_law_seconds(262_144, 1e-4))
    34
    >>> round(rank_law_seconds(49_152, 1e-4, ranks=1024) / rank_law_seconds(49_152, 1e-4))
    16
    """
    if vocab <= _RANK_LAW_EXACT_VOCAB:
        return 0.0
    width = max(int(ranks), 64) / 64
    return _RANK_LAW_SECONDS_PER_TOKEN * vocab * _RANK_LAW_DECADE_FACTOR ** math.log10(1e-4 / tol) * width


def check_rank_law_budget(vocab: int, tol: float, positions: int = 1, jobs: int = 1, force: bool = False,
                          ranks: int = 64) -> float:
    """Estimated seconds of the rank laws of ``chansim bound`` (one per position, ``jobs`` at a time).

    Raises ``ValueError`` with the estimate, and the flags that change it, above :data:`TIME_LIMIT_S`
    unless ``force``; returns the estimate (the command says it on stderr when it is long).
    """
    workers = (os.cpu_count() or 1) if jobs == -1 else max(int(jobs), 1)
    rounds = -(-max(int(positions), 1) // workers)
    seconds = rounds * rank_law_seconds(vocab, tol, ranks)
    if seconds > TIME_LIMIT_S and not force:
        raise ValueError(f"the guaranteed rank law at V = {vocab:,} with --rank-tol {tol:g} for {positions} "
                         f"position(s): estimated {_human_seconds(seconds)} of run time, above the limit of "
                         f"{TIME_LIMIT_S:g} s; raise --rank-tol (each decade about halves it), use fewer positions "
                         "or more --jobs, or pass --force")
    return seconds
