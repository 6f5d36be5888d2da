"""Figure: predicted vs measured wall-clock speed-up of cheap drafts, and the call cost c(n) on this device.

Reads the files of experiments/lookup_speedup.py (``<run>/costs.json``, ``<run>/<workload>.predicted.json``,
``<run>/<workload>.measured.json``) -- real measured data only -- and writes a PNG and the plotted numbers
as JSON beside it.

Usage: python experiments/fig_lookup_speedup.py --run runs/lookup --out docs/figures/lookup_speedup.png
"""
import argparse
import json
from pathlib import Path

import numpy as np

COLOURS = {"copy": "#d62728", "code": "#1f77b4", "open": "#7f7f7f"}
MARKERS = {"sd": "o", "ersd": "s", "hf-lookup": "^"}


def collect(run: Path) -> dict:
    costs = json.loads((run / "costs.json").read_text())
    points = []
    for measured_file in sorted(run.glob("*.measured.json")):
        w = measured_file.name.split(".")[0]
        measured = json.loads(measured_file.read_text())
        predicted = json.loads((run / f"{w}.predicted.json").read_text())
        pred = {r["draft"]: r for r in predicted["rows"]}
        for r in measured["rows"]:
            if "wall_speedup" not in r or r["draft"] not in pred or not pred[r["draft"]].get("wall_speedup"):
                continue
            points.append({"workload": w, "method": r["method"], "draft": r["draft"],
                           "chosen": r["draft"] == measured["chosen"],
                           "predicted": pred[r["draft"]]["wall_speedup"], "measured": r["wall_speedup"],
                           "tokens_per_call_measured": r["tokens_per_call"],
                           "tokens_per_call_predicted": pred[r["draft"]]["tokens_per_call"]})
    med = {int(n): float(np.median(v)) for n, v in costs["call"].items()}
    return {"points": points, "cost_ratio": {n: med[n] / med[1] for n in sorted(med)}, "c1_seconds": med[1]}


def plot(data: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1.35]})
    n = np.array(list(data["cost_ratio"]))
    r = np.array(list(data["cost_ratio"].values()))
    ax0.plot(n, r, "o-", color="k", ms=3, label="measured c(n)/c(1)")
    ax0.plot(n, n, ":", color="0.6", label="n (no batching gain)")
    ax0.set_xscale("log", base=2)
    ax0.set_yscale("log", base=2)
    ax0.set_xlabel("tokens verified in one target call, n")
    ax0.set_ylabel("cost relative to a 1-token call")
    ax0.set_title(f"(a) target call cost on this CPU (c(1) = {1e3 * data['c1_seconds']:.0f} ms)", fontsize=10)
    ax0.legend(fontsize=8)
    lo = min([p["predicted"]["ci_low"] for p in data["points"]] + [p["measured"]["ci_low"] for p in data["points"]]
             + [0.8])
    hi = max([p["predicted"]["ci_high"] for p in data["points"]] + [p["measured"]["ci_high"] for p in data["points"]])
    ax1.plot([lo, hi], [lo, hi], color="0.5", lw=1)
    ax1.axhline(1, color="0.8", lw=1, ls="--")
    ax1.axvline(1, color="0.8", lw=1, ls="--")
    dodge = {"sd": 1.0, "ersd": 1.008, "hf-lookup": 0.992}          # side by side where predictions coincide
    for p in data["points"]:
        x, y = dict(p["predicted"]), p["measured"]
        f = dodge.get(p["method"], 1.0)
        x = {k: v * f for k, v in x.items()}
        ax1.errorbar(x["mean"], y["mean"], xerr=[[x["mean"] - x["ci_low"]], [x["ci_high"] - x["mean"]]],
                     yerr=[[y["mean"] - y["ci_low"]], [y["ci_high"] - y["mean"]]], fmt=MARKERS.get(p["method"], "o"),
                     color=COLOURS.get(p["workload"], "k"), ms=6 if p["chosen"] else 4, capsize=2, lw=0.8,
                     mfc="none" if p["method"] == "hf-lookup" else COLOURS.get(p["workload"], "k"))
        ax1.annotate(p["draft"].replace("lookup:", "L").replace("ngram:", "N"), (x["mean"], y["mean"]),
                     fontsize=6, xytext=(3, 3), textcoords="offset points")
    for w, c in COLOURS.items():
        if any(p["workload"] == w for p in data["points"]):
            ax1.plot([], [], "o", color=c, label=f"{w} prompts")
    for m, mk in MARKERS.items():
        if any(p["method"] == m for p in data["points"]):
            ax1.plot([], [], mk, color="k", mfc="none" if m == "hf-lookup" else "k",
                     label={"sd": "chansim sd", "ersd": "chansim ersd", "hf-lookup": "transformers prompt lookup"}[m])
    ax1.set_xlabel("predicted from the log (95% CI)")
    ax1.set_ylabel("measured, interleaved (95% CI over prompts)")
    ax1.set_title("(b) wall-clock speed-up over autoregressive decoding", fontsize=10)
    ax1.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=130)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/lookup")
    ap.add_argument("--out", default="docs/figures/lookup_speedup.png")
    a = ap.parse_args(argv)
    data = collect(Path(a.run))
    if not data["points"]:
        raise SystemExit(f"no measured rows with predictions in {a.run}")
    out = Path(a.out)
    plot(data, out)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    inside = sum(p["predicted"]["ci_low"] <= p["measured"]["ci_high"]
                 and p["measured"]["ci_low"] <= p["predicted"]["ci_high"]
                 for p in data["points"])
    print(f"wrote {out} ({len(data['points'])} points; predicted and measured intervals overlap in {inside})")


if __name__ == "__main__":
    main()
