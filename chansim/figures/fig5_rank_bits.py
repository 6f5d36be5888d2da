"""Figure 5: the rank law of the exponential race and the bits that set the speed-up.

(a) a_r = P(R = r) for a few pairs, exact (:func:`chansim.theory.rank_law`) with Monte
Carlo ranks (:func:`chansim.sampling.races.rank_distribution_mc`); (b) H(R) vs D(p||q) over many
pairs; (c) the slope of tokens per call vs ln k of the optimal ERSD tree against 1/H(R)
(the large-k relation predicts slope = 1/H(R)): fitted on the exact curve
(:func:`chansim.theory.top_products_curve`) for every pair and measured by simulation
(:func:`chansim.simulate.simulate` on :func:`chansim.theory.best_rank_set_tree`) for a few.
"""
from __future__ import annotations

import math

import numpy as np

from ..inputs.distributions import kl_divergence, synthetic_pair
from ..sampling.races import rank_distribution_mc
from ..simulate import simulate
from ..theory import best_rank_set_tree, rank_law, top_products_curve
from ..common.stats import normal_quantile
from ..verify.registry import role
from ._common import CONFIDENCE, FAMILY_KNOB, FAMILY_MARKERS, label_axes, mc_errorbar, seed_for

TITLE = "Rank law of the exponential race, H(R), and the slope of tokens per call vs ln k"

VOCAB = 16
KNOBS = {"dirichlet": (0.2, 1.0), "zipf": (0.25, 1.0), "noisy": (0.3, 2.5)}
EXAMPLES = (("dirichlet", 1.0), ("zipf", 0.5), ("noisy", 1.0))
FIT_K = (2 ** 7, 2 ** 13)              # exact-curve fit range of the slope
SIM_K = (16, 512)                     # simulated slope between these two budgets
COLOURS = {"dirichlet": "#1f77b4", "zipf": "#ff7f0e", "noisy": "#2ca02c"}


def _exact_law(family, knob, seed) -> tuple:
    """The synthetic pair ``(p, q)`` of ``family`` at ``knob`` and its exact rank law."""
    pair = synthetic_pair(family, VOCAB, knob, seed=seed)
    p, q = pair.target_probs, pair.draft_probs
    return p, q, rank_law(p, q, method="exact")


def _example(family, knob, seed, trials, mc_seed):
    p, q, law = _exact_law(family, knob, seed)
    mc = rank_distribution_mc(p, q, trials=trials, seed=mc_seed, confidence=CONFIDENCE)
    return {"family": family, "knob": knob, "seed": seed, "kl_bits": float(kl_divergence(p, q, base="bits")),
            "a": law.probs.tolist(), "entropy_nats": law.entropy,
            "mc": {"trials": trials, "seed": mc_seed, "a": mc.probs.tolist(), "ci_low": mc.ci_low.tolist(),
                   "ci_high": mc.ci_high.tolist()}}


def _pair(family, knob, seed, calls, sim_seed):
    p, q, law = _exact_law(family, knob, seed)
    if law.entropy < 1e-9:                  # q = p (a zipf shuffle that moved nothing): no log law
        return None
    kmax = FIT_K[1]
    acc = top_products_curve(law.probs, kmax)
    ks = np.unique(np.geomspace(FIT_K[0], kmax, 25).astype(int))
    slope = float(np.polyfit(np.log(ks), 1 + acc[ks - 1], 1)[0])
    row = {"family": family, "knob": float(knob), "seed": int(seed), "kl_bits": float(kl_divergence(p, q, base="bits")),
           "entropy_nats": law.entropy, "alpha_er": law.alpha, "slope_exact": slope, "sim": None}
    if calls:
        est = []
        for j, k in enumerate(SIM_K):
            tree = best_rank_set_tree(law.probs, k)
            res = simulate(role("rank-law"), tree, p, q, calls=calls, seed=int(np.random.SeedSequence([sim_seed, j])
                                                                        .generate_state(1)[0]))
            est.append(res.tokens_per_call)
        lnr = math.log(SIM_K[1] / SIM_K[0])
        s = (est[1].mean - est[0].mean) / lnr
        se = math.hypot(est[0].std_error, est[1].std_error) / lnr
        z = _z()
        exact = [(1 + acc[k - 1]) for k in SIM_K]
        row["sim"] = {"calls": calls, "k": list(SIM_K), "slope": s, "ci": [s - z * se, s + z * se],
                      "slope_exact_between": (exact[1] - exact[0]) / lnr,
                      "tokens": [e.mean for e in est], "tokens_exact": exact}
    return row


def _job(kind, args):
    return (_example if kind == "ex" else _pair)(*args)


def _z():
    return normal_quantile(CONFIDENCE)


def compute(settings, parallel) -> dict:
    trials = settings.trials(20_000, 1_000_000)
    calls = settings.trials(3000, 200_000)
    per_family = settings.count(16, 60, minimum=3)
    sim_every = 4 if settings.mode == "quick" else 2
    ex_items = [(f, k, seed_for(settings, 5, 0, i), trials, seed_for(settings, 5, 0, i, 1))
                for i, (f, k) in enumerate(EXAMPLES)]
    items = []
    for fi, (family, (lo, hi)) in enumerate(KNOBS.items()):
        for i, knob in enumerate(np.geomspace(lo, hi, per_family)):
            items.append((family, float(knob), seed_for(settings, 5, 1, fi, i), calls if i % sim_every == 1 else 0,
                          seed_for(settings, 5, 2, fi, i)))
    out = parallel.map(_job, [("ex", a) for a in ex_items] + [("pair", a) for a in items], desc="fig5 pairs")
    examples = out[:len(ex_items)]
    # ranks seen fewer times have intervals wider than the marker on the log axis: not plotted
    min_count = 10 if settings.mode == "quick" else 400
    rows = [r for r in out[len(ex_items):] if r is not None]
    dropped = len(items) - len(rows)
    ratio = np.array([r["slope_exact"] * r["entropy_nats"] for r in rows])
    sims = [r for r in rows if r["sim"]]
    inside = sum(r["sim"]["ci"][0] <= r["sim"]["slope_exact_between"] <= r["sim"]["ci"][1] for r in sims)
    summary = {"pairs": len(rows), "slope_times_entropy_min": float(ratio.min()),
               "slope_times_entropy_max": float(ratio.max()), "slope_times_entropy_median": float(np.median(ratio)),
               "sim_pairs": len(sims), "sim_inside_ci": int(inside)}
    caption = (
        f"V={VOCAB}. (a) rank law a_r of the target's race winner in the draft's race for a dirichlet (d=1), zipf "
        f"(shuffled fraction 0.5) and noisy (sigma=1) pair: exact lines, Monte Carlo markers from {trials} races "
        f"({int(CONFIDENCE * 100)}% simultaneous Wilson intervals; ranks seen at least {min_count} times). "
        f"(b) H(R) vs D(p||q) for {len(rows)} pairs "
        f"({per_family} per family: dirichlet d={KNOBS['dirichlet'][0]}..1, zipf {KNOBS['zipf'][0]}..1, noisy "
        f"sigma={KNOBS['noisy'][0]}..{KNOBS['noisy'][1]}), exact. (c) slope of E[tokens per call] of the optimal "
        f"ERSD tree vs ln k, least squares on the exact curve for k={FIT_K[0]}..{FIT_K[1]} (filled), and measured "
        f"by simulation between k={SIM_K[0]} and k={SIM_K[1]} for {len(sims)} pairs ({calls} calls per k, "
        f"{int(CONFIDENCE * 100)}% intervals; {inside}/{len(sims)} contain the exact secant slope). "
        f"slope*H(R) ranges {ratio.min():.3f}..{ratio.max():.3f} (median {np.median(ratio):.3f}); the large-k "
        f"relation predicts 1. Seeds from base seed {settings.seed}; {dropped} pair(s) with q = p dropped."
    )
    return {"vocab": VOCAB, "examples": examples, "rows": rows, "summary": summary, "mc_min_count": min_count,
            "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    for ex in data["examples"]:
        a = np.array(ex["a"])
        r = np.arange(1, len(a) + 1)
        c = COLOURS[ex["family"]]
        keep = a > 1e-12
        ax1.plot(r[keep], a[keep], color=c, lw=1.5,
                 label=f"{ex['family']} ({FAMILY_KNOB[ex['family']]} {ex['knob']}), D = {ex['kl_bits']:.2f} bits, "
                       f"H(R) = {ex['entropy_nats'] / math.log(2):.2f} bits")
        mc = ex["mc"]
        m = np.array(mc["a"])
        ok = m * mc["trials"] >= data["mc_min_count"] - 1e-9
        mc_errorbar(ax1, r[ok], m[ok], np.array(mc["ci_low"])[ok], np.array(mc["ci_high"])[ok], colour_=c,
                    marker_=FAMILY_MARKERS[ex["family"]], size=4)
    ax1.set_yscale("log")
    ax1.set_ylim(1e-6, 2.0)
    label_axes(ax1, "rank r of the target's winner in the draft race", "a_r = P(R = r)",
               "(a) rank law (lines exact, markers Monte Carlo)", 10, fontsize=7, loc="upper right")
    ax1.grid(alpha=0.3, which="both")

    rows = data["rows"]
    for fam, mk in FAMILY_MARKERS.items():
        sel = [r for r in rows if r["family"] == fam]
        ax2.scatter([r["kl_bits"] for r in sel], [r["entropy_nats"] / math.log(2) for r in sel], marker=mk,
                    color=COLOURS[fam], s=20, label=f"{fam} ({FAMILY_KNOB[fam]})")
    dmax = max(r["kl_bits"] for r in rows)
    g = np.linspace(0, dmax, 50)
    ax2.plot(g, g, color="0.5", ls=":", label="H(R) = D(p||q)")
    label_axes(ax2, "D(p || q)  [bits]", "H(R)  [bits]", "(b) entropy of the rank vs KL divergence", 10, grid=True,
               fontsize=7.5)

    inv = np.array([1 / r["entropy_nats"] for r in rows])
    for fam, mk in FAMILY_MARKERS.items():
        sel = [r for r in rows if r["family"] == fam]
        ax3.scatter([1 / r["entropy_nats"] for r in sel], [r["slope_exact"] for r in sel], marker=mk,
                    color=COLOURS[fam], s=20, label=f"{fam}, exact curve fit")
    sims = [r for r in rows if r["sim"]]
    if sims:
        mc_errorbar(ax3, [1 / r["entropy_nats"] for r in sims], [r["sim"]["slope"] for r in sims],
                    [r["sim"]["ci"][0] for r in sims], [r["sim"]["ci"][1] for r in sims], colour_="k", size=6,
                    label_=f"simulated, secant k = {sims[0]['sim']['k'][0]}..{sims[0]['sim']['k'][1]}")
    lim = [0, inv.max() * 1.05]
    ax3.plot(lim, lim, "k--", lw=1, label="slope = 1 / H(R)  (large-k relation)")
    ax3.set_xlabel("1 / H(R)  [1/nats]")
    ax3.set_ylabel("d E[tokens per call] / d ln k")
    ax3.set_title("(c) slope of tokens per call vs ln k, optimal ERSD tree", fontsize=10)
    ax3.set_xscale("log")
    ax3.set_yscale("log")
    ax3.legend(fontsize=7.5)
    ax3.grid(alpha=0.3, which="both")
    fig.suptitle(f"Rank of the target's token in the draft race (V = {data['vocab']})", fontsize=11)
    fig.tight_layout()
    return fig
