"""Figure 4: expected tokens per target call vs the number k of drafted tokens.

One (p, q) pair in the i.i.d. model; three drafting shapes — a sequence (chain), a batch
(k children of the root) and the optimal tree for each method — every method, exact
curves (:mod:`chansim.theory`) with Monte Carlo points (:func:`chansim.simulate.simulate`
on the same trees) and, on top, the ERSD large-k relation ln k / H(R) + C and the
all-k bound (ln(k+1) + ln V_R) / H(R) (:mod:`chansim.theory.asymptotics`).
"""
from __future__ import annotations

import math

import numpy as np

from ..distributions import kl_divergence, synthetic_pair
from ..simulate import simulate
from ..theory import (all_k_bound, best_rank_set_tree, best_sibling_closed_tree, large_k_relation, rank_law,
                      rsd_weights, sd_chain_tokens, sibling_closed_values, specinfer_weights, spectr_acceptance,
                      spectr_sequences_tokens, top_products_curve)
from ..theory.nodes import spectr_transition_matrix
from ..theory.report import FAMILIES
from ..trees import from_parents
from ..verify.registry import METHODS as METHODS_BY_NAME, method_names
from ._common import CONFIDENCE, STYLE, label, mc_errorbar, seed_for

TITLE = "Tokens per target call vs drafted tokens k: sequence, batch and optimal tree"

VOCAB = 16
FAMILY, KNOB = "noisy", 1.0
SHAPES = ("chain", "batch", "optimal")
#: methods per shape, from the registry: every report method on its optimal tree; variants
#: (ersd-topm) only there; a batch for the methods that branch
#: (block and multidraft bring their own report rule, not one of report.FAMILIES; their curves are not drawn yet)
_DRAWN = tuple(m for m in method_names(theory=True) if METHODS_BY_NAME[m].tree_family in FAMILIES)
METHODS = {"chain": tuple(m for m in method_names(theory=True, variants=False) if m in _DRAWN),
           "batch": tuple(m for m in method_names(theory=True, variants=False)
                          if m in _DRAWN and not METHODS_BY_NAME[m].chains_only),
           "optimal": _DRAWN}
#: exact spectr on optimal sequence sets costs O(k^3 V); beyond this it is left out
SPECTR_OPT_KMAX = {"quick": 32, "full": 64}


def _kgrid(kmax):
    pow2 = 2 ** np.arange(int(math.log2(kmax)) + 1)
    return np.unique(np.concatenate([np.round(np.geomspace(1, kmax, 40)).astype(int), pow2, [kmax]]))


def _exact(p, q, law, rsd_w, kmax, spectr_kmax):
    """Exact (or, for rsd beyond its enumeration, Monte Carlo-weight) curves for every shape."""
    ks = _kgrid(kmax)
    beta = float(np.minimum(p, q).sum())
    a = law.weights(kmax)
    wi = specinfer_weights(p, q, kmax)
    curves = {s: {} for s in SHAPES}
    # chain: one child per node, every residual method has w_1 = beta (sd); ersd: w_1 = a_1
    for m in ("sd", "specinfer", "rsd", "spectr"):
        curves["chain"][m] = {"k": ks.tolist(), "value": sd_chain_tokens(beta, ks).tolist()}
    curves["chain"]["ersd"] = {"k": ks.tolist(), "value": sd_chain_tokens(law.alpha, ks).tolist()}
    # batch
    curves["batch"]["specinfer"] = {"k": ks.tolist(), "value": (1 + np.cumsum(wi)[ks - 1]).tolist()}
    curves["batch"]["ersd"] = {"k": ks.tolist(), "value": (1 + np.cumsum(a)[ks - 1]).tolist()}
    curves["batch"]["spectr"] = {"k": ks.tolist(), "value": [1 + spectr_acceptance(p, q, int(k)) for k in ks]}
    rw = {key: np.concatenate([np.asarray(rsd_w[key]), np.zeros(max(0, kmax - len(rsd_w[key])))])
          for key in ("w", "ci_low", "ci_high")}
    curves["batch"]["rsd"] = {"k": ks.tolist(), "value": (1 + np.cumsum(rw["w"])[ks - 1]).tolist(),
                              "ci_low": (1 + np.cumsum(rw["ci_low"])[ks - 1]).tolist(),
                              "ci_high": (1 + np.cumsum(rw["ci_high"])[ks - 1]).tolist()}
    # optimal trees
    curves["optimal"]["sd"] = curves["chain"]["sd"]
    for m, w in (("specinfer", wi), ("ersd-topm", a)):
        f = sibling_closed_values(w, kmax).f
        curves["optimal"][m] = {"k": ks.tolist(), "value": (1 + f[ks]).tolist()}
    vals = {key: 1 + sibling_closed_values(rw[key], kmax).f[ks] for key in ("w", "ci_low", "ci_high")}
    curves["optimal"]["rsd"] = {"k": ks.tolist(), "value": vals["w"].tolist(), "ci_low": vals["ci_low"].tolist(),
                                "ci_high": vals["ci_high"].tolist()}
    curves["optimal"]["ersd"] = {"k": ks.tolist(), "value": (1 + top_products_curve(law.probs, kmax)[ks - 1]).tolist()}
    ks_s = ks[ks <= spectr_kmax]
    trans = spectr_transition_matrix(p, q, int(ks_s.max()))
    best, shapes = [], []
    for k in ks_s:
        cand = [(spectr_sequences_tokens(p, q, c, int(k) // c, transition=trans), c) for c in range(1, int(k) + 1)]
        v, c = max(cand, key=lambda t: (t[0] + 0.0, -t[1]))
        best.append(v)
        shapes.append([c, int(k) // c])
    curves["optimal"]["spectr"] = {"k": ks_s.tolist(), "value": best, "shape": shapes}
    return curves


def _tree_for(shape, method, k, law, weights):
    """The tree the Monte Carlo runs for (shape, method, k), as a spec or a Tree."""
    if shape == "chain" or (shape == "optimal" and method == "sd"):
        return f"chain:{k}"
    if shape == "batch":
        return f"batch:{k}"
    if method == "ersd":
        return best_rank_set_tree(law.probs, k)
    if method in ("specinfer", "rsd", "ersd-topm"):
        return best_sibling_closed_tree(weights[method], k)
    raise ValueError(method)


def _simulate(shape, method, k, p, q, tree, calls, seed):
    if isinstance(tree, dict):
        tree = from_parents(tree["parents"], tree["ranks"], name=tree["name"])
    res = simulate(method, tree, p, q, calls=calls, seed=seed, confidence=CONFIDENCE)
    t = res.tokens_per_call
    low, high = t.ci_low, t.ci_high
    if t.std_error == 0:       # every call gave the same count: the normal interval collapses; use the rule of 3
        depth = len(res.tokens_histogram) - 2
        half = depth * -math.log(1 - CONFIDENCE) / calls
        low, high = max(1.0, t.mean - half), min(depth + 1.0, t.mean + half)
    return {"shape": shape, "method": method, "k": int(k), "tree": res.tree, "calls": calls, "seed": int(seed),
            "mean": t.mean, "ci_low": low, "ci_high": high}


def compute(settings, parallel) -> dict:
    kmax = 1024 if settings.scale >= 0.5 else 64
    spectr_kmax = min(kmax, SPECTR_OPT_KMAX[settings.mode])
    calls = settings.trials(3000, 200_000)
    rsd_trials = settings.trials(20_000, 1_000_000)
    pair = synthetic_pair(FAMILY, VOCAB, KNOB, seed=seed_for(settings, 4))
    p, q = pair.target_probs, pair.draft_probs
    law = rank_law(p, q, method="exact")
    sw = rsd_weights(p, q, VOCAB, method="mc", trials=rsd_trials, seed=seed_for(settings, 4, 1))
    rsd_w = {"w": sw.w.tolist(), "ci_low": sw.ci_low.tolist(), "ci_high": sw.ci_high.tolist(), "trials": rsd_trials}
    curves = _exact(p, q, law, rsd_w, kmax, spectr_kmax)

    mc_ks = [k for k in (1, 4, 16, 64, 256, 1024) if k <= kmax]
    weights = {"specinfer": specinfer_weights(p, q, kmax), "rsd": np.asarray(sw.w), "ersd-topm": law.weights(kmax)}
    items = []
    for si, shape in enumerate(SHAPES):
        for mi, method in enumerate(METHODS[shape]):
            for ki, k in enumerate(mc_ks):
                if shape == "batch" and method in ("rsd", "ersd") and k > VOCAB:
                    continue                        # without replacement: at most V distinct children
                if method == "spectr" and shape == "optimal":
                    if k > spectr_kmax:
                        continue
                    c, length = curves["optimal"]["spectr"]["shape"][curves["optimal"]["spectr"]["k"].index(k)]
                    tree = f"seq:{c}x{length}"
                else:
                    tree = _tree_for(shape, method, k, law, weights)
                if not isinstance(tree, str):
                    tree = {"parents": tree.parents.tolist(), "ranks": tree.ranks.tolist(), "name": tree.name}
                items.append((shape, method, k, p, q, tree, calls, seed_for(settings, 4, 2, si, mi, ki)))
    mc = parallel.map(_simulate, items, desc="fig4 simulations")

    checks = []
    for pt in mc:
        cur = curves[pt["shape"]][pt["method"]]
        if pt["k"] in cur["k"] and "ci_low" not in cur:
            exact = cur["value"][cur["k"].index(pt["k"])]
            pt["exact"] = exact
            checks.append(pt["ci_low"] <= exact <= pt["ci_high"])
    ks = _kgrid(kmax)
    max_half = max((pt["ci_high"] - pt["ci_low"]) / 2 for pt in mc)
    theory = {"k": ks.tolist(), "large_k": large_k_relation(ks, law).tolist(),
              "all_k_bound": all_k_bound(ks, law).tolist(), "entropy_nats": law.entropy,
              "support": law.support, "alpha_er": law.alpha, "beta": float(np.minimum(p, q).sum())}
    e_opt = curves["optimal"]["ersd"]["value"]
    caption = (
        f"One {FAMILY} pair (V={VOCAB}, logit scale 3, noise sigma {KNOB}, seed from base seed {settings.seed}): "
        f"D(p||q) = {float(kl_divergence(p, q, base='bits')):.3f} bits, beta = sum min(p,q) = {theory['beta']:.3f}, "
        f"alpha_ER = {law.alpha:.3f}, H(R) = {law.entropy:.3f} nats. i.i.d. model (the same pair at every "
        "position). Lines: exact expected tokens per target call (chansim.theory); rsd uses Monte Carlo slot weights "
        f"({rsd_trials} histories, band = {int(CONFIDENCE * 100)}% interval). Chain: specinfer, rsd and spectr "
        "coincide with sd (one draft per node). Optimal: sd on the chain; specinfer, rsd, ersd-topm on the best "
        "sibling-closed tree (DP); ersd on the best rank-set tree (k largest path products); spectr on the best "
        f"seq:CxL with C*L <= k (k <= {spectr_kmax}). Markers: {calls} simulated target calls per point "
        f"(chansim.simulate) on the same trees, {int(CONFIDENCE * 100)}% intervals; {sum(checks)}/{len(checks)} "
        f"contain the exact value; widest half-interval {max_half:.3f} tokens. Black: ERSD large-k relation "
        f"ln k/H(R) + C (dashed) and all-k bound (ln(k+1) + ln V_R)/H(R) (solid), V_R = {law.support}. "
        f"Optimal ERSD at k={ks[-1]}: {e_opt[-1]:.3f} tokens/call "
        f"(relation {theory['large_k'][-1]:.3f}, bound {theory['all_k_bound'][-1]:.3f})."
    )
    return {"vocab": VOCAB, "family": FAMILY, "knob": KNOB, "curves": curves, "mc": mc, "theory": theory,
            "rsd_weights": rsd_w, "mc_max_halfwidth": max_half, "mc_checks_inside": int(sum(checks)),
            "mc_checks": len(checks), "caption": caption}


def plot(data):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), sharey=True)
    titles = {"chain": "sequence (chain of k drafts)", "batch": "batch (k children of the root)",
              "optimal": "optimal tree of k drafts per method"}
    th = data["theory"]
    offsets = {"sd": 0.94, "specinfer": 0.97, "rsd": 1.0, "spectr": 1.03, "ersd": 1.06, "ersd-topm": 1.09}
    for ax, shape in zip(axes, SHAPES):
        for method, cur in data["curves"][shape].items():
            _, c, _ = STYLE[method]
            if shape == "chain" and method in ("specinfer", "rsd", "spectr"):
                continue                                      # identical to sd
            ls = ":" if "ci_low" in cur else "-"
            lab = label(method) + (" (MC weights)" if "ci_low" in cur else "")
            if shape == "chain" and method == "sd":
                lab = "sd = specinfer = rsd = spectr"
            ax.plot(cur["k"], cur["value"], color=c, lw=1.6, ls=ls, label=lab, zorder=2)
            if "ci_low" in cur:
                ax.fill_between(cur["k"], cur["ci_low"], cur["ci_high"], color=c, alpha=0.2, lw=0)
        ax.axhline(1.0, color=STYLE["autoregressive"][1], lw=1.0, ls="-.", label="autoregressive (1 token per call)")
        ax.plot(th["k"], th["large_k"], "k--", lw=1.1, label="ERSD large-k relation ln k / H(R) + C", zorder=1)
        ax.plot(th["k"], th["all_k_bound"], "k-", lw=1.1, label="all-k bound (ln(k+1) + ln V_R) / H(R)", zorder=1)
        for method in dict.fromkeys(pt["method"] for pt in data["mc"] if pt["shape"] == shape):
            pts = [pt for pt in data["mc"] if pt["shape"] == shape and pt["method"] == method]
            mc_errorbar(ax, [pt["k"] * offsets[method] for pt in pts], [pt["mean"] for pt in pts],
                        [pt["ci_low"] for pt in pts], [pt["ci_high"] for pt in pts], method=method, size=4.5)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("drafted tokens k (log scale)")
        ax.set_title(titles[shape], fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.set_ylim(0.8, max(th["all_k_bound"]) * 1.05)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(plt.Line2D([], [], marker="o", mfc="white", mec="k", color="k", ls="none"))
        labels.append("Monte Carlo (chansim.simulate), 99% interval")
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    axes[0].set_ylabel("tokens per target call")
    fig.suptitle(f"Tokens per target call vs k ({data['family']} pair, V = {data['vocab']}, "
                 f"H(R) = {th['entropy_nats']:.3f} nats); markers: Monte Carlo, 99% intervals", fontsize=11)
    fig.tight_layout()
    return fig
