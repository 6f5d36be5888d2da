"""Figure 2: bits to simulate p from q with the Poisson functional representation vs D(p||q).

For many random pairs from the synthetic families: the exact E[log2 K], H(K) and the
expected lengths of an Elias-delta code and of the best Zipf code for K
(:mod:`chansim.channel`), against the Li & El Gamal bounds; a subset is re-estimated
by sampling the PFR (:func:`chansim.channel.pfr_sample`) with confidence intervals.
"""
from __future__ import annotations

import math

import numpy as np

from .. import channel
from ..inputs.distributions import kl_divergence, synthetic_pair
from ..common.stats import normal_quantile
from ._common import CONFIDENCE, FAMILY_KNOB, FAMILY_MARKERS, label_axes, mc_errorbar, seed_for

TITLE = "Channel simulation cost: bits to simulate p from q with the PFR vs D(p||q)"

VOCAB = 64
KNOBS = {"dirichlet": (0.05, 1.0), "zipf": (0.05, 1.0), "noisy": (0.1, 3.0)}
#: Monte Carlo only where max p/q is moderate (the sampler examines ~max p/q arrivals per trial)
MAX_RATIO_MC = 300.0


def _pair_stats(family, knob, seed, trials, mc_seed):
    pair = synthetic_pair(family, VOCAB, knob, seed=seed)
    p, q = pair.target_probs, pair.draft_probs
    d = float(kl_divergence(p, q, base="bits"))
    zipf_bits, zipf_lam = channel.zipf_code_length(p, q)
    row = {"family": family, "knob": float(knob), "seed": int(seed), "kl_bits": d,
           "max_ratio": float(np.max(p / q)),
           "expected_log2_k": channel.expected_log2_index(p, q), "entropy_k": channel.index_entropy(p, q),
           "delta_bits": channel.expected_code_length(p, q, "delta"), "zipf_bits": zipf_bits,
           "mc": None}
    if trials and row["max_ratio"] <= MAX_RATIO_MC:
        sample = channel.pfr_sample(p, q, trials, np.random.default_rng(mc_seed))
        st = channel.mc_index_stats(sample.index, ks=(1,), confidence=CONFIDENCE)
        delta = channel.elias_delta_length(sample.index).astype(float)
        half = float(np.std(delta, ddof=1) / math.sqrt(trials) * _z())
        row["mc"] = {"trials": int(trials), "seed": int(mc_seed), "mean_log2_k": st["mean_log2_k"],
                     "mean_log2_k_ci": st["mean_log2_k_ci"], "delta_bits": float(delta.mean()),
                     "delta_bits_ci": [float(delta.mean() - half), float(delta.mean() + half)]}
    return row


def _z():
    return normal_quantile(CONFIDENCE)


def compute(settings, parallel) -> dict:
    per_family = settings.count(20, 80, minimum=3)
    trials = settings.trials(4000, 200_000)
    mc_every = 3 if settings.mode == "quick" else 2
    items = []
    for f_index, (family, (lo, hi)) in enumerate(KNOBS.items()):
        for i, knob in enumerate(np.geomspace(lo, hi, per_family)):
            seed = seed_for(settings, 2, f_index, i)
            mc = trials if i % mc_every == 0 else 0
            items.append((family, float(knob), seed, mc, seed_for(settings, 2, f_index, i, 1)))
    rows = parallel.map(_pair_stats, items, desc="fig2 pairs")
    rows.sort(key=lambda r: (r["family"], r["kl_bits"]))
    slack = [r["expected_log2_k"] - r["kl_bits"] for r in rows]
    n_mc = sum(r["mc"] is not None for r in rows)
    inside = sum(1 for r in rows if r["mc"] and r["mc"]["mean_log2_k_ci"][0] <= r["expected_log2_k"]
                 <= r["mc"]["mean_log2_k_ci"][1])
    summary = {"pairs": len(rows), "mc_pairs": n_mc, "mc_inside_ci": inside,
               "max_log2k_minus_kl": float(max(slack)), "min_log2k_minus_kl": float(min(slack)),
               "pfr_constant": channel.PFR_LOG_CONSTANT,
               "bound_violations": int(sum(r["expected_log2_k"] > r["kl_bits"] + channel.PFR_LOG_CONSTANT + 1e-9
                                           for r in rows)),
               "sfrl_violations": int(sum(r["entropy_k"] > float(channel.sfrl_entropy_bound(r["kl_bits"])) + 1e-9
                                          for r in rows))}
    caption = (
        f"{len(rows)} random pairs, V={VOCAB}, families dirichlet (mixing distance {KNOBS['dirichlet'][0]}..1), "
        f"zipf (exponent 1.1, shuffled fraction {KNOBS['zipf'][0]}..1), noisy (logit scale 3, noise sigma "
        f"{KNOBS['noisy'][0]}..{KNOBS['noisy'][1]}), {per_family} per family, seeds from base seed {settings.seed}. "
        "Curves/points without bars: exact values from the law of the PFR index K. "
        f"Open markers with bars: {n_mc} pairs re-simulated with {trials} PFR samples each "
        f"({int(CONFIDENCE * 100)}% intervals; {inside}/{n_mc} contain the exact value). "
        f"Left: E[log2 K] lies between D-{-summary['min_log2k_minus_kl']:.2f} and "
        f"D+{summary['max_log2k_minus_kl']:.2f} "
        f"bits, under the PFR lemma bound D + log2(e)/e + 1 = D + {channel.PFR_LOG_CONSTANT:.3f}. "
        "Right: bits of actual codes for K (entropy H(K), ideal Zipf code, Elias delta) under the "
        "SFRL bound D + log2(D+1) + 4."
    )
    return {"vocab": VOCAB, "rows": rows, "summary": summary, "trials": trials, "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt

    rows = data["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    dmax = max(r["kl_bits"] for r in rows) * 1.05
    grid = np.linspace(0, dmax, 200)
    colours = {"dirichlet": "#1f77b4", "zipf": "#ff7f0e", "noisy": "#2ca02c"}
    for fam in FAMILY_MARKERS:
        sel = [r for r in rows if r["family"] == fam]
        if not sel:
            continue
        d = [r["kl_bits"] for r in sel]
        ax1.scatter(d, [r["expected_log2_k"] for r in sel], marker=FAMILY_MARKERS[fam], s=18,
                    color=colours[fam], label=f"E[log2 K], {fam} ({FAMILY_KNOB[fam]})", zorder=2)
        mc = [r for r in sel if r["mc"]]
        if mc:
            mc_errorbar(ax1, [r["kl_bits"] for r in mc], [r["mc"]["mean_log2_k"] for r in mc],
                        [r["mc"]["mean_log2_k_ci"][0] for r in mc], [r["mc"]["mean_log2_k_ci"][1] for r in mc],
                        colour_="k", marker_=FAMILY_MARKERS[fam], size=6)
    ax1.errorbar([], [], yerr=[], fmt="o", color="k", mfc="white", capsize=2.5, label="Monte Carlo (PFR sampler)")
    ax1.plot(grid, grid + data["summary"]["pfr_constant"], "k--", lw=1.2, label="bound D + log2(e)/e + 1")
    ax1.plot(grid, grid, color="0.5", lw=1.0, ls=":", label="D(p||q)")
    label_axes(ax1, "D(p || q)  [bits]", "E[log2 K]  [bits]", "index cost of the PFR", fontsize=7.5, loc="upper left")

    d = np.array([r["kl_bits"] for r in rows])
    for key, lab, c, m in (("entropy_k", "H(K)", "#9467bd", "o"), ("zipf_bits", "ideal Zipf code", "#8c564b", "s"),
                           ("delta_bits", "Elias delta code", "#e377c2", "^")):
        ax2.scatter(d, [r[key] for r in rows], s=14, marker=m, color=c, label=lab, zorder=2)
    mc = [r for r in rows if r["mc"]]
    if mc:
        mc_errorbar(ax2, [r["kl_bits"] for r in mc], [r["mc"]["delta_bits"] for r in mc],
                    [r["mc"]["delta_bits_ci"][0] for r in mc], [r["mc"]["delta_bits_ci"][1] for r in mc],
                    colour_="k", marker_="^", size=6, label_="Elias delta, Monte Carlo")
    ax2.plot(grid, grid + np.log2(grid + 1) + 4, "k--", lw=1.2, label="bound D + log2(D+1) + 4")
    ax2.plot(grid, grid, color="0.5", lw=1.0, ls=":", label="D(p||q)")
    label_axes(ax2, "D(p || q)  [bits]", "expected code length  [bits]", "entropy-coded length of K", fontsize=7.5,
               loc="upper left")
    for ax in (ax1, ax2):
        ax.set_xlim(0, dmax)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Channel simulation with the Poisson functional representation (V = {data['vocab']})", fontsize=11)
    fig.tight_layout()
    return fig
