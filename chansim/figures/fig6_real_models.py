"""Figure 6: predicted vs measured tokens per target call on the real model pair.

Reads the results of the LLM validation (``chansim llm validate``), by contract the file
``<data_dir>/llm_validation.json`` (default ``figures/data/llm_validation.json``): either a
list of rows or ``{"rows": [...], ...metadata}``, each row

``{"method", "tree", "k", "predicted": {"mean", "ci_low", "ci_high"},
"measured": {"mean", "ci_low", "ci_high"}, "target_calls", "wall_seconds"}``.

When the file does not exist, :func:`compute` returns ``None`` and the figure is not
drawn (it is never drawn from placeholders).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ._common import STYLE, colour, label, label_axes, marker

TITLE = "Real models: predicted vs measured tokens per target call"

RESULTS_FILE = "llm_validation.json"
_META_KEYS = ("target", "draft", "model", "draft_model", "target_model", "prompts", "source", "seed", "device",
              "temperature", "max_new_tokens", "positions")


def results_path(settings) -> Path:
    return Path(settings.data_dir or "figures/data") / RESULTS_FILE


def _interval(row, key, i):
    iv = row.get(key)
    if not isinstance(iv, dict) or not all(isinstance(iv.get(f), (int, float)) for f in ("mean", "ci_low", "ci_high")):
        raise ValueError(f"{RESULTS_FILE} row {i}: '{key}' must be an object with numeric mean, ci_low, ci_high; "
                         f"got {iv!r}")
    if any(isinstance(iv[f], bool) for f in ("mean", "ci_low", "ci_high")):
        raise ValueError(f"{RESULTS_FILE} row {i}: '{key}' must hold numbers, not booleans; got {iv!r}")
    vals = [float(iv[f]) for f in ("mean", "ci_low", "ci_high")]
    if not all(math.isfinite(v) for v in vals) or not vals[1] <= vals[0] <= vals[2]:
        raise ValueError(f"{RESULTS_FILE} row {i}: '{key}' needs finite ci_low <= mean <= ci_high, got {vals}")
    if vals[0] < 1:                 # every target call yields at least one token
        raise ValueError(f"{RESULTS_FILE} row {i}: '{key}' mean {vals[0]:g} is below 1 token per target call, "
                         "which no decoding can give")
    return {"mean": vals[0], "ci_low": vals[1], "ci_high": vals[2]}


def load_results(path) -> dict:
    """Read and check the validation results; raises ``ValueError`` naming the bad row/field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    meta = {}
    if isinstance(raw, dict):
        rows = raw.get("rows")
        meta = {k: raw[k] for k in raw if k != "rows" and isinstance(raw[k], (str, int, float, bool))}
    else:
        rows = raw
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty list of rows (or an object with 'rows')")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path} row {i}: expected an object, got {type(row).__name__}")
        for key in ("method", "tree", "k"):
            if key not in row:
                raise ValueError(f"{path} row {i}: missing '{key}'")
        k = row["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"{path} row {i}: k must be a non-negative integer, got {k!r}")
        for key in ("method", "tree"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(f"{path} row {i}: '{key}' must be a non-empty string, got {row[key]!r}")
        calls = row.get("target_calls")
        if calls is not None and (isinstance(calls, bool) or not isinstance(calls, int) or calls < 0):
            raise ValueError(f"{path} row {i}: target_calls must be a non-negative integer, got {calls!r}")
        wall = row.get("wall_seconds")
        if wall is not None and (isinstance(wall, bool) or not isinstance(wall, (int, float))
                                 or not math.isfinite(wall) or wall < 0):
            raise ValueError(f"{path} row {i}: wall_seconds must be a non-negative number, got {wall!r}")
        out.append({"method": row["method"], "tree": row["tree"], "k": int(k),
                    "predicted": _interval(row, "predicted", i), "measured": _interval(row, "measured", i),
                    "target_calls": int(calls or 0), "wall_seconds": float(wall or 0.0)})
    return {"rows": out, "meta": meta}


def compute(settings, parallel) -> dict | None:
    path = results_path(settings)
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{path} is not a file (figure 6 reads the results of 'chansim llm validate' from it)")
    res = load_results(path)
    rows = res["rows"]
    overlap = sum(r["predicted"]["ci_low"] <= r["measured"]["ci_high"] and r["measured"]["ci_low"]
                  <= r["predicted"]["ci_high"] for r in rows)
    rel = [abs(r["measured"]["mean"] - r["predicted"]["mean"]) / r["predicted"]["mean"] for r in rows]
    meta = res["meta"]
    pair = ", ".join(f"{k}={meta[k]}" for k in _META_KEYS if k in meta) or "model pair as logged in the results file"
    caption = (
        f"Real model pair ({pair}). {len(rows)} (method, tree) settings, methods "
        f"{', '.join(sorted({r['method'] for r in rows}))}; {sum(r['target_calls'] for r in rows)} measured target "
        f"calls in total. Predicted: tokens per call from the logged draft/target distributions (chansim.predict); "
        f"measured: speculative generation with the models; bars are the intervals in {path.name}. "
        f"{overlap}/{len(rows)} predicted and measured intervals overlap; median relative difference "
        f"{100 * float(np.median(rel)):.1f}%, max {100 * float(np.max(rel)):.1f}%."
    )
    return {"rows": rows, "meta": meta, "source": path.name, "overlap": int(overlap),
            "median_relative_difference": float(np.median(rel)), "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt

    rows = data["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    methods = list(dict.fromkeys(r["method"] for r in rows))

    def style(method):
        return (colour(method), marker(method), label(method)) if method in STYLE else ("k", "o", method)

    for method in methods:
        c, m, lab = style(method)
        sel = [r for r in rows if r["method"] == method]
        px = np.array([r["predicted"]["mean"] for r in sel])
        my = np.array([r["measured"]["mean"] for r in sel])
        xerr = np.vstack([px - [r["predicted"]["ci_low"] for r in sel], [r["predicted"]["ci_high"] for r in sel] - px])
        yerr = np.vstack([my - [r["measured"]["ci_low"] for r in sel], [r["measured"]["ci_high"] for r in sel] - my])
        ax1.errorbar(px, my, xerr=xerr, yerr=yerr, fmt=m, color=c, mfc="white", ms=5, capsize=2, label=lab)
        families = list(dict.fromkeys(r["tree"].split(":")[0] for r in sel))
        for fam, ls in zip(families, ("-", "--", ":", "-.")):
            fs = sorted((r for r in sel if r["tree"].split(":")[0] == fam), key=lambda r: r["k"])
            ks = np.array([max(r["k"], 1) for r in fs])
            ax2.plot(ks, [r["predicted"]["mean"] for r in fs], color=c, ls=ls, lw=1.3,
                     label=f"{lab}, {fam}: predicted")
            ax2.fill_between(ks, [r["predicted"]["ci_low"] for r in fs], [r["predicted"]["ci_high"] for r in fs],
                             color=c, alpha=0.15, lw=0)
            mm = np.array([r["measured"]["mean"] for r in fs])
            ax2.errorbar(ks, mm, yerr=np.vstack([mm - [r["measured"]["ci_low"] for r in fs],
                                                 [r["measured"]["ci_high"] for r in fs] - mm]),
                         fmt=m, color=c, mfc="white", ms=5, capsize=2, ls="none")
    lo = min(min(r["predicted"]["ci_low"], r["measured"]["ci_low"]) for r in rows)
    hi = max(max(r["predicted"]["ci_high"], r["measured"]["ci_high"]) for r in rows)
    pad = 0.05 * (hi - lo + 1e-9)
    ax1.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="measured = predicted")
    label_axes(ax1, "predicted tokens per target call", "measured tokens per target call", "(a) every method and k",
               10, grid=True, fontsize=7.5)
    ks_all = [r["k"] for r in rows]
    if max(ks_all) / max(1, min(k for k in ks_all if k > 0) if any(ks_all) else 1) >= 10:
        ax2.set_xscale("log", base=2)
    ax2.set_xlabel("drafted tokens k" + (" (log scale)" if ax2.get_xscale() == "log" else ""))
    ax2.set_ylabel("tokens per target call")
    ax2.set_title("(b) vs k: lines predicted, markers measured", fontsize=10)
    ax2.legend(fontsize=7, ncol=1 if len(methods) < 4 else 2)
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle("Real models: predicted vs measured tokens per target call", fontsize=11)
    fig.tight_layout()
    return fig
