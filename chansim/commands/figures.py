"""``chansim figures``: regenerate every plot of the analysis with its data."""
from __future__ import annotations

import time


HELP = "regenerate every figure (PNG + PDF + data + caption)"
DESCRIPTION = "Regenerate every figure of the analysis with the data behind it."


def register(sub) -> None:
    from . import add_backend, add_seed, command_parser

    parser = command_parser(sub, "figures", run, HELP, DESCRIPTION)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="default: minutes on a 2-core laptop")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="enough trials that every Monte Carlo interval is narrower than its marker")
    parser.set_defaults(mode="quick")
    parser.add_argument("--out", default="figures", help="output folder (default: figures/)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers (joblib), default 2")
    add_seed(parser, help="base seed (default 0)")
    parser.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    parser.add_argument("--data", default=None,
                        help="folder with inputs made elsewhere, e.g. llm_validation.json (default: <out>/data)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every trial count (default 1)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files in --out that chansim did not write, and run --scale past its limit "
                             "(chansim's own figure files are regenerated without it)")
    add_backend(parser, "joblib backend, e.g. 'dask' (needs the dask extra)",
                "dask.distributed scheduler address for --backend dask")


def run(args) -> int:
    from chansim.figures import FIGURES, Settings, run_figures
    from chansim.common.logconfig import get_logger

    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.only is not None and not args.only.strip(","):
        raise ValueError("--only needs at least one figure name, e.g. --only fig4_tokens_per_call")
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only is not None else list(FIGURES)
    if not 0 < args.scale < float("inf"):
        raise ValueError(f"--scale must be a finite number > 0, got {args.scale}")
    from chansim.inputs.guards import check_figure_scale

    check_figure_scale(args.scale, args.mode, force=args.force)
    if not args.out.strip():
        raise ValueError("--out is empty; give a folder, e.g. --out figures")
    if args.data is not None:
        from pathlib import Path

        if not args.data.strip():
            raise ValueError("--data is empty; give the folder that holds llm_validation.json")
        if not Path(args.data).is_dir():
            raise ValueError(f"--data {args.data} " + ("is a file" if Path(args.data).exists() else "does not exist")
                             + "; give the folder that holds llm_validation.json")
    settings = Settings.make(args.mode, seed=args.seed, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
                             scale=args.scale, data_dir=args.data)
    start = time.perf_counter()
    results = run_figures(names, settings, args.out, force=args.force)
    for name, record in results.items():
        if record is None:
            get_logger("figures").warning("%s: skipped (its input data do not exist yet)", name)
        else:
            print(f"{name}: {args.out}/{name}.png  ({record['seconds']:.1f} s)")
    print(f"{sum(r is not None for r in results.values())} figure(s) in {time.perf_counter() - start:.1f} s "
          f"({settings.mode} mode)")
    return 0
