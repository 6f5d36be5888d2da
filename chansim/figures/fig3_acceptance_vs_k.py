"""Figure 3: acceptance of one node vs the number k of drafted children.

Small vocabulary so that every exact value and the LP optimum are available.  Exact
curves: PFR list acceptance P(K <= k) with i.i.d. candidates
(:func:`chansim.channel.index_cdf`), the exponential race with distinct tokens
P(R <= k) = a_1 + ... + a_k (:func:`chansim.theory.rank_law`), specinfer and spectr
(:mod:`chansim.theory.nodes`), rsd where its history enumeration is small, and the
optimal acceptance over all exact verifiers (transport LP as a min-cut) for i.i.d. drafts
and for drafts without replacement.  Monte Carlo: every method simulated on ``batch:k``
(:func:`chansim.simulate.simulate`), rsd's Rao-Blackwellised slot weights, and the PFR
sampler, each with an interval.
"""
from __future__ import annotations

import math

import numpy as np

from .. import channel
from ..inputs.distributions import kl_divergence, synthetic_pair, total_variation
from ..simulate import simulate
from ..theory import (mincut_without_replacement, optimal_acceptance_mincut, rank_law, rsd_weights, specinfer_weights,
                      spectr_acceptance)
from ..verify import ERSD, RSD, SpecInfer, SpecTr
from ._common import CONFIDENCE, STYLE, label, mc_errorbar, seed_for, wilson

TITLE = "Acceptance of one node vs the number of drafted tokens k"

VOCAB = 10
FAMILY = "dirichlet"
DISTANCES = (0.4, 0.8, 1.0)
MC_K = (1, 2, 3, 4, 6, 8, 10)
#: the methods drawn, each with its own exact curve (:func:`_exact_curves`); names from their classes
SIM_METHODS = (SpecInfer.name, RSD.name, SpecTr.name, ERSD.name)
RSD_EXACT_HISTORIES = 100_000


def _exact_curves(p, q):
    ks = np.arange(1, VOCAB + 1)
    law = rank_law(p, q, method="exact")
    m_exact = 1
    while m_exact < VOCAB and sum(math.perm(VOCAB, j) for j in range(m_exact + 1)) <= RSD_EXACT_HISTORIES:
        m_exact += 1
    rsd = rsd_weights(p, q, m_exact, method="exact")
    return {
        "k": ks.tolist(),
        "pfr": channel.index_cdf(p, q, ks).tolist(),
        ERSD.name: np.cumsum(law.weights(VOCAB)).tolist(),
        SpecInfer.name: np.cumsum(specinfer_weights(p, q, VOCAB)).tolist(),
        SpecTr.name: [spectr_acceptance(p, q, int(k)) for k in ks],
        RSD.name: np.cumsum(rsd.w).tolist(),                        # k = 1..m_exact
        "lp-iid": [optimal_acceptance_mincut(p, q, int(k)) for k in ks],
        "lp-without": mincut_without_replacement(p, q).tolist(),
    }


def _panel(panel, distance, seed, trials, mc_seed):
    pair = synthetic_pair(FAMILY, VOCAB, distance, seed=seed)
    p, q = pair.target_probs, pair.draft_probs
    out = {"distance": distance, "seed": seed, "kl_bits": float(kl_divergence(p, q, base="bits")),
           "tv": float(total_variation(p, q)), "exact": _exact_curves(p, q), "mc": {}}
    ks = list(MC_K)
    for j, method in enumerate(SIM_METHODS):
        mean, lo, hi = [], [], []
        for i, k in enumerate(ks):
            res = simulate(method, f"batch:{k}", p, q, calls=trials, seed=seed_for_k(mc_seed, j, i))
            acc, n = res.accepted_per_depth[0], res.reached_per_depth[0]
            l, h = wilson(acc, n)
            mean.append(acc / n), lo.append(l[0]), hi.append(h[0])
        out["mc"][method] = {"k": ks, "mean": mean, "ci_low": lo, "ci_high": hi, "trials": trials}
    sample = channel.pfr_sample(p, q, trials, np.random.default_rng(seed_for_k(mc_seed, 99, 0)))
    st = channel.mc_index_stats(sample.index, ks=ks, confidence=CONFIDENCE)
    out["mc"]["pfr"] = {"k": ks, "mean": st["acceptance"], "ci_low": [c[0] for c in st["acceptance_ci"]],
                        "ci_high": [c[1] for c in st["acceptance_ci"]], "trials": trials}
    sw = rsd_weights(p, q, VOCAB, method="mc", trials=trials, seed=seed_for_k(mc_seed, 98, 0))
    out["mc"]["rsd-weights"] = {"k": list(range(1, VOCAB + 1)), "mean": np.cumsum(sw.w).tolist(),
                                "ci_low": np.cumsum(sw.ci_low).clip(0, 1).tolist(),
                                "ci_high": np.cumsum(sw.ci_high).clip(0, 1).tolist(), "trials": trials}
    return out


def seed_for_k(base: int, *keys: int) -> int:
    return int(np.random.SeedSequence([int(base), *keys]).generate_state(1)[0])


def compute(settings, parallel) -> dict:
    trials = settings.trials(4000, 400_000)
    # one seed for every panel: the same target and the same Dirichlet draw, only d changes
    items = [(i, d, seed_for(settings, 3), trials, seed_for(settings, 3, i, 1)) for i, d in enumerate(DISTANCES)]
    panels = parallel.map(_panel, items, desc="fig3 panels")
    checks = []
    for pnl in panels:
        ex = pnl["exact"]
        for method in (SpecInfer.name, SpecTr.name, ERSD.name, "pfr"):
            mc = pnl["mc"][method]
            for k, lo, hi in zip(mc["k"], mc["ci_low"], mc["ci_high"]):
                checks.append(lo - 1e-12 <= ex[method][k - 1] <= hi + 1e-12)
    caption = (
        f"One node, V={VOCAB}, {FAMILY} pairs (p ~ Dir(1), q = (1-d) p + d Dir(1)) at mixing distance d = "
        f"{', '.join(map(str, DISTANCES))} (one pair seed, from base seed {settings.seed}). Lines: exact acceptance "
        "P(target token among the k drafts). The two black lines are the optimum over all exact verifiers "
        "(transport LP via min-cut) for i.i.d. drafts (bounds PFR, specinfer, spectr) and for drafts without "
        "replacement (bounds ersd, rsd). rsd is exact only while its history enumeration stays below "
        f"{RSD_EXACT_HISTORIES} histories; beyond that its curve is Monte Carlo (Rao-Blackwellised slot weights, "
        f"band). Markers: Monte Carlo, {trials} simulated target calls on batch:k per point (chansim.simulate; PFR: "
        f"{trials} sampler runs), {int(CONFIDENCE * 100)}% Wilson intervals; {sum(checks)}/{len(checks)} intervals "
        "of exactly known methods contain the exact value. sd = specinfer at k = 1."
    )
    return {"vocab": VOCAB, "panels": panels, "mc_checks_inside": int(sum(checks)), "mc_checks": len(checks),
            "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt

    panels = data["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), sharey=True)
    order = ("lp-iid", "lp-without", "pfr", SpecInfer.name, SpecTr.name, RSD.name, ERSD.name)
    offsets = {SpecInfer.name: -0.18, SpecTr.name: -0.06, RSD.name: 0.06, ERSD.name: 0.18, "pfr": 0.0}
    for ax, pnl in zip(np.atleast_1d(axes), panels):
        ex = pnl["exact"]
        ks = np.array(ex["k"])
        for name in order:
            vals = np.array(ex[name], dtype=float)
            _, c, m = STYLE[name]
            if name.startswith("lp"):
                ax.plot(ks, vals, color=c, lw=2.0, ls="-" if name == "lp-iid" else "--", label=label(name), zorder=1)
            else:
                ax.plot(ks[:len(vals)], vals, color=c, lw=1.5, label=f"{label(name)} (exact)", zorder=2)
        rw = pnl["mc"]["rsd-weights"]
        n_exact = len(ex[RSD.name])
        kk = np.array(rw["k"])[n_exact - 1:]
        ax.plot(kk, rw["mean"][n_exact - 1:], color=STYLE[RSD.name][1], lw=1.5, ls=":", label=f"{RSD.name} (Monte Carlo)")
        ax.fill_between(kk, rw["ci_low"][n_exact - 1:], rw["ci_high"][n_exact - 1:], color=STYLE[RSD.name][1],
                        alpha=0.2, lw=0)
        for name, off in offsets.items():
            mc = pnl["mc"][name]
            mc_errorbar(ax, np.array(mc["k"]) + off, mc["mean"], mc["ci_low"], mc["ci_high"], method=name, size=4)
        ax.set_title(f"d = {pnl['distance']}:  D(p||q) = {pnl['kl_bits']:.2f} bits,  TV = {pnl['tv']:.2f}",
                     fontsize=9.5)
        ax.set_xlabel("drafted tokens k at the node")
        ax.set_xticks(range(1, data["vocab"] + 1))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("acceptance  P(target token is drafted)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="o", mfc="white", mec="k", ls="none"))
    labels.append(f"Monte Carlo, {int(100 * 0.99)}% interval")
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(f"Acceptance of one node vs the number of drafts (V = {data['vocab']})", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
