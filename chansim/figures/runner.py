"""Run figure modules: settings, parallel sweeps (:mod:`chansim.common.parallel`), file output."""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..common.outputs import OutputError, atomic_path, check_output_dir, write_text_atomic
from ..common.parallel import backend_context, parallel_map

#: figure name -> module under chansim.figures, in the order they are drawn
FIGURES = {
    "fig1_trees": "fig1_trees",
    "fig2_channel_cost": "fig2_channel_cost",
    "fig3_acceptance_vs_k": "fig3_acceptance_vs_k",
    "fig4_tokens_per_call": "fig4_tokens_per_call",
    "fig5_rank_bits": "fig5_rank_bits",
    "fig6_real_models": "fig6_real_models",
}


#: written last by :func:`run_figures`, after every figure of the set: its absence marks an incomplete set
MANIFEST = "manifest.json"
#: files of one figure, in the order they are written (the caption last)
FIGURE_FILES = ("json", "png", "pdf", "txt")


@dataclass(frozen=True)
class Settings:
    """Sizes of every sweep. ``quick`` (default) fits in minutes on 2 cores; ``full`` makes
    every Monte Carlo interval narrower than its marker."""

    mode: str = "quick"
    seed: int = 0
    jobs: int = 2
    backend: str | None = None          # joblib backend name, e.g. "dask"
    scheduler: str | None = None        # dask.distributed scheduler address
    scale: float = 1.0                  # multiplies trial counts (tests use a tiny scale)
    data_dir: str | None = None         # inputs produced elsewhere (real-model results); default <out>/data
    extra: dict = field(default_factory=dict)

    @classmethod
    def make(cls, mode: str = "quick", **kw) -> "Settings":
        if mode not in ("quick", "full"):
            raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}")
        return cls(mode=mode, **kw)

    def trials(self, quick: int, full: int) -> int:
        """Trial count for the current mode, scaled (at least 1)."""
        base = quick if self.mode == "quick" else full
        return max(1, int(round(base * self.scale)))

    def count(self, quick: int, full: int, minimum: int = 1) -> int:
        """Number of pairs/points for the current mode, scaled (at least ``minimum``)."""
        base = quick if self.mode == "quick" else full
        return max(minimum, int(round(base * min(1.0, self.scale ** 0.5))))


class Parallel:
    """A figure's view of :func:`chansim.common.parallel.parallel_map` with the run's settings.

    Results come back in item order whatever the backend, and every item carries its own
    seed, so the output does not depend on ``jobs`` or on the backend.
    """

    def __init__(self, settings: Settings, desc: str = ""):
        self.settings = settings
        self.desc = desc

    def map(self, func: Callable, items: Sequence, desc: str | None = None) -> list:
        s = self.settings
        return parallel_map(func, items, jobs=s.jobs, backend=s.backend, scheduler=s.scheduler,
                            desc=desc or self.desc)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else str(v)
    return obj


def run_figure(name: str, settings: Settings, out: Path) -> dict | None:
    """Compute one figure's data, write it, then plot from the written file.

    Returns the written record, or ``None`` when the module reports that its input
    data do not exist yet (e.g. real-model results), in which case nothing is drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    module = importlib.import_module(f"chansim.figures.{FIGURES[name]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = module.compute(settings, Parallel(settings, name))
    if data is None:
        return None
    record = {"figure": name, "title": module.TITLE, "settings": _jsonable(asdict(settings)), "data": _jsonable(data)}
    path = out / f"{name}.json"
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n", "--out")
    loaded = json.loads(path.read_text())["data"]       # plots read the file, not memory
    fig = module.plot(loaded)
    try:
        for ext in ("png", "pdf"):
            with atomic_path(out / f"{name}.{ext}", "--out") as tmp:
                fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight", metadata=_fixed_metadata(ext))
    finally:
        plt.close(fig)
    write_text_atomic(out / f"{name}.txt", f"{module.TITLE}\n{loaded['caption']}\n", "--out")   # caption last
    record["seconds"] = time.perf_counter() - start
    return record


def _fixed_metadata(ext: str) -> dict:
    # fixed metadata so re-running gives identical PDF/PNG bytes where the backend allows
    return {"CreationDate": None} if ext == "pdf" else {"Software": None}


def _is_record(path: Path, test: Callable[[dict], bool]) -> bool:
    """Whether ``path`` holds a JSON object written by chansim (``test`` recognises it)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and bool(test(obj))


def foreign_files(names: Iterable[str], out) -> list[Path]:
    """Files in ``out`` that a run of figures ``names`` would replace but that chansim did not write.

    A figure's files (:data:`FIGURE_FILES`) are chansim's when ``<name>.json`` is a figure
    record of that name; the :data:`MANIFEST` when it is a chansim manifest. Only these are
    regenerated without ``force``: anything else of the same name is the user's.
    """
    out = Path(out)
    found = []
    for name in names:
        ours = _is_record(out / f"{name}.json", lambda o: o.get("figure") == name)
        found += [out / f"{name}.{e}" for e in FIGURE_FILES
                  if not ours and ((out / f"{name}.{e}").exists() or (out / f"{name}.{e}").is_symlink())]
    manifest = out / MANIFEST
    if manifest.exists() and not _is_record(manifest, lambda o: "complete" in o and "figures" in o):
        found.append(manifest)
    return found


def run_figures(names: Iterable[str] | None = None, settings: Settings | None = None, out="figures",
                force: bool = False) -> dict:
    """Run several figures (all by default); returns ``{name: record or None}``.

    Every file is written atomically (temporary file, then rename: :mod:`chansim.common.outputs`);
    each figure's caption ``.txt`` comes after its data and plots, and the set's
    :data:`MANIFEST` (figures written and skipped) after every figure -- it is removed first,
    so an interrupted run leaves a folder without a manifest. Files of a figure set that
    chansim wrote are regenerated in place; a file of the same name that chansim did not
    write (:func:`foreign_files`) is refused unless ``force``; inputs (``data/``) are never
    written. ``out`` must be a folder (created if missing), not empty, not a file.
    """
    settings = settings or Settings()
    names = list(names) if names else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    out = check_output_dir(out, "--out")                     # '' is refused, not read as "the current folder"
    if settings.data_dir is None:
        settings = replace(settings, data_dir=str(out / "data"))
    elif Path(settings.data_dir).exists() and not Path(settings.data_dir).is_dir():
        raise ValueError(f"--data {settings.data_dir} is a file; give the folder that holds "
                         "llm_validation.json")
    foreign = [] if force else foreign_files(names, out)
    if foreign:
        raise OutputError(f"--out: {foreign[0]} already exists and was not written by chansim figures"
                          + (f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else "")
                          + "; pass --force to overwrite, or choose another --out")
    manifest = out / MANIFEST
    manifest.unlink(missing_ok=True)    # an interrupted run leaves no manifest: visibly incomplete
    results = {}
    with backend_context(settings.backend, settings.scheduler):   # one dask client for every figure
        for name in names:
            results[name] = run_figure(name, settings, out)
    written = {n: [f"{n}.{e}" for e in FIGURE_FILES] for n, r in results.items() if r is not None}
    write_text_atomic(manifest, json.dumps({"complete": True, "mode": settings.mode, "figures": written,
                                            "skipped": [n for n, r in results.items() if r is None]},
                                           indent=1, sort_keys=True) + "\n", "--out")
    return results
