"""Figure 4: expected tokens per target call vs the number k of drafted tokens.

One (p, q) pair in the i.i.d. model; three drafting shapes — a sequence (chain), a batch
(k children of the root) and the optimal tree for each method — every method of the
registry with a tree family.  Every number is a library result: the curves are
:func:`chansim.theory.speedup_report` (the bound report's family rules, or a method's own
``report_tokens``), the Monte Carlo points are :func:`chansim.simulate.simulate`'s own
estimate and interval on the report's tree (:func:`chansim.theory.report_trees.report_tree`),
and, on top, the ERSD large-k relation ln k / H(R) + C (:mod:`chansim.theory.asymptotics`), the
guaranteed all-k bound that ``chansim bound`` prints
(:func:`chansim.theory.bound_columns.guaranteed_bound`, docs/theory.md §4, §5 and §10) and,
beside it, the paper's form (ln(k+1) + ln V_R) / H(R).
"""
from __future__ import annotations

import math

import numpy as np

from ..inputs.distributions import kl_divergence, synthetic_pair
from ..simulate import simulate
from ..theory import all_k_bound, large_k_relation, rank_law, speedup_report
from ..theory.bound_columns import guaranteed_bound
from ..theory.report_trees import report_tree
from ..inputs.trees import Tree, from_parents
from ..verify.registry import METHODS as METHODS_BY_NAME, baseline, method_names, role
from ._common import CONFIDENCE, STYLE, label, mc_errorbar, seed_for

TITLE = "Tokens per target call vs drafted tokens k: sequence, batch and optimal tree"

VOCAB = 16
FAMILY, KNOB = "noisy", 1.0
SHAPES = ("chain", "batch", "optimal")
#: optimal trees whose search costs more than the figure affords beyond a budget, by tree
#: family: SpecTr's best seq:CxL is an O(k^3 V) search
OPTIMAL_KMAX = {"sequences": {"quick": 32, "full": 64}}


def _methods(shape: str) -> tuple:
    """The registry's methods with a tree family; variants (ersd-topm) only on the optimal tree."""
    return method_names(theory=True, variants=shape == "optimal")


def _kgrid(kmax):
    pow2 = 2 ** np.arange(int(math.log2(kmax)) + 1)
    return np.unique(np.concatenate([np.round(np.geomspace(1, kmax, 40)).astype(int), pow2, [kmax]]))


def _curves(p, q, ks, mode, seed):
    """Per shape and method the report's tokens per call on the k grid (points without a value left out)."""
    curves = {s: {} for s in SHAPES}
    for shape in SHAPES:
        for method in _methods(shape):
            cap = OPTIMAL_KMAX.get(METHODS_BY_NAME[method].tree_family, {}).get(mode) if shape == "optimal" else None
            kk = [int(k) for k in ks if cap is None or k <= cap]
            rep = speedup_report(p, q, k=kk, methods=[method], tree=shape, pfr=False, seed=seed)
            entry = rep.methods[method]
            keep = [i for i, v in enumerate(entry["tokens_per_call"]) if v is not None]
            if len(keep) < 2:                  # no curve: e.g. a chain-only method on a batch
                continue
            curves[shape][method] = {"k": [kk[i] for i in keep],
                                     "value": [entry["tokens_per_call"][i] for i in keep],
                                     "depth": [entry["draft_depth"][i] for i in keep], "exact": entry["exact"]}
    return curves


def _simulate(shape, method, k, p, q, tree, calls, seed):
    if isinstance(tree, dict):
        tree = from_parents(tree["parents"], tree["ranks"], name=tree["name"])
    try:
        res = simulate(method, tree, p, q, calls=calls, seed=seed, confidence=CONFIDENCE)
    except ValueError as err:                # the sampler's own limit (multidraft's draft-set enumeration)
        return {"shape": shape, "method": method, "k": int(k), "skipped": str(err)}
    t = res.tokens_per_call
    return {"shape": shape, "method": method, "k": int(k), "tree": res.tree, "calls": calls, "seed": int(seed),
            "mean": t.mean, "ci_low": t.ci_low, "ci_high": t.ci_high}


def compute(settings, parallel) -> dict:
    kmax = 1024 if settings.scale >= 0.5 else 64
    calls = settings.trials(3000, 200_000)
    pair = synthetic_pair(FAMILY, VOCAB, KNOB, seed=seed_for(settings, 4))
    p, q = pair.target_probs, pair.draft_probs
    law = rank_law(p, q, method="exact")
    report_seed = seed_for(settings, 4, 1)
    ks = _kgrid(kmax)
    curves = _curves(p, q, ks, settings.mode, report_seed)

    mc_ks = [k for k in (1, 4, 16, 64, 256, 1024) if k <= kmax]
    items = []
    for si, shape in enumerate(SHAPES):
        for mi, method in enumerate(_methods(shape)):
            cur = curves[shape].get(method)
            for ki, k in enumerate(mc_ks):
                if cur is None or k not in cur["k"] or (shape == "batch" and k > VOCAB):
                    continue        # batches of more drafts than tokens: drawn, not simulated (rsd: minutes)
                tree = report_tree(method, p, q, k, shape, law=law, seed=report_seed)
                if tree is None:
                    continue
                if isinstance(tree, Tree):
                    tree = {"parents": tree.parents.tolist(), "ranks": tree.ranks.tolist(), "name": tree.name}
                items.append((shape, method, k, p, q, tree, calls, seed_for(settings, 4, 2, si, mi, ki)))
    mc = parallel.map(_simulate, items, desc="fig4 simulations")
    skipped = [pt for pt in mc if "skipped" in pt]
    mc = [pt for pt in mc if "skipped" not in pt]

    checks = []
    for pt in mc:
        cur = curves[pt["shape"]][pt["method"]]
        if cur["exact"]:
            exact = cur["value"][cur["k"].index(pt["k"])]
            pt["exact"] = exact
            checks.append(pt["ci_low"] <= exact <= pt["ci_high"])
    max_half = max((pt["ci_high"] - pt["ci_low"]) / 2 for pt in mc)
    theory = {"k": ks.tolist(), "large_k": large_k_relation(ks, law).tolist(),
              "all_k_bound": guaranteed_bound(ks, law, law.support),     # the ERSD bound (key kept for the data files)
              "all_k_bound_paper": all_k_bound(ks, law).tolist(), "entropy_nats": law.entropy,
              "support": law.support, "alpha_er": law.alpha, "beta": float(np.minimum(p, q).sum())}
    e_opt = curves["optimal"][role("rank-law")]
    inexact = [f"{m} ({s})" for s in SHAPES for m, c in curves[s].items() if not c["exact"]]
    caps = ", ".join(f"{m} k <= {OPTIMAL_KMAX[METHODS_BY_NAME[m].tree_family][settings.mode]}"
                     for m in curves["optimal"] if METHODS_BY_NAME[m].tree_family in OPTIMAL_KMAX)
    caption = (
        f"One {FAMILY} pair (V={VOCAB}, logit scale 3, noise sigma {KNOB}, seed from base seed {settings.seed}): "
        f"D(p||q) = {float(kl_divergence(p, q, base='bits')):.3f} bits, beta = sum min(p,q) = {theory['beta']:.3f}, "
        f"alpha_ER = {law.alpha:.3f}, H(R) = {law.entropy:.3f} nats. i.i.d. model (the same pair at every "
        "position). Lines: expected tokens per target call from the bound report (chansim.theory.speedup_report, "
        "tree=chain/batch/optimal; the optimal tree of each method by its family rule"
        + (f"; optimal tree searched for {caps}" if caps else "") + "); dotted: not exact (Monte Carlo slot or "
        f"block weights): {', '.join(inexact) or 'none'}. Curves equal to sd's are drawn once. "
        f"Markers: {calls} simulated target calls per point (chansim.simulate) on the report's trees "
        f"(batches up to k = V = {VOCAB}), "
        f"{int(CONFIDENCE * 100)}% intervals of the simulation; {sum(checks)}/{len(checks)} contain the exact "
        f"value; widest half-interval {max_half:.3f} tokens"
        + (f"; not simulated (sampler limit): {', '.join(sorted({pt['method'] + ' ' + pt['shape'] for pt in skipped}))}"
           f" at k >= {min(pt['k'] for pt in skipped)}" if skipped else "")
        + ". Black: ERSD large-k relation "
        f"ln k/H(R) + C (dashed), the ERSD all-k bound printed by chansim bound (solid; it bounds every ERSD tree, "
        f"ersd and ersd-topm, not the other methods: the least of k + 1, "
        f"(ln(k+1) + ln V_R)/H(R) and the exit-entropy bound of docs/theory.md §10) and, grey dotted, the paper's "
        f"form (ln(k+1) + ln V_R)/H(R), V_R = {law.support}. "
        f"Optimal ERSD at k={e_opt['k'][-1]}: {e_opt['value'][-1]:.3f} tokens/call "
        f"(relation {theory['large_k'][-1]:.3f}, ERSD bound {theory['all_k_bound'][-1]:.3f}, "
        f"paper form {theory['all_k_bound_paper'][-1]:.3f})."
    )
    return {"vocab": VOCAB, "family": FAMILY, "knob": KNOB, "curves": curves, "mc": mc, "theory": theory,
            "report_seed": report_seed, "mc_skipped": skipped, "mc_max_halfwidth": max_half, "mc_checks_inside": int(sum(checks)),
            "mc_checks": len(checks), "caption": caption}


def _same_as(curves: dict, method: str, reference: str | None = None) -> bool:
    """True when ``method``'s curve equals ``reference``'s (default: the registry's chain reference,
    sd) on the same k (drawn once)."""
    reference = role("chain-reference") if reference is None else reference
    ref, cur = curves.get(reference), curves[method]
    return (method != reference and ref is not None and ref["k"] == cur["k"]
            and bool(np.allclose(ref["value"], cur["value"], rtol=0, atol=1e-12)))


def plot(data):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), sharey=True)
    titles = {"chain": "sequence (chain of k drafts)", "batch": "batch (k children of the root)",
              "optimal": "optimal tree of k drafts per method"}
    th = data["theory"]
    names = list(METHODS_BY_NAME)
    offsets = {m: 0.92 + 0.025 * i for i, m in enumerate(names)}    # spread the markers of one k
    for ax, shape in zip(axes, SHAPES):
        curves = data["curves"][shape]
        for method, cur in curves.items():
            if _same_as(curves, method):
                continue
            twins = [m for m in curves if _same_as(curves, m) and method == role("chain-reference")]
            ls = "-" if cur["exact"] else ":"
            lab = " = ".join([label(method), *twins]) + ("" if cur["exact"] else " (MC weights)")
            ax.plot(cur["k"], cur["value"], color=STYLE[method][1], lw=1.6, ls=ls, label=lab, zorder=2)
        ax.axhline(1.0, color=STYLE[baseline()][1], lw=1.0, ls="-.", label=f"{baseline()} (1 token per call)")
        ax.plot(th["k"], th["large_k"], "k--", lw=1.1, label="ERSD large-k relation ln k / H(R) + C", zorder=1)
        ax.plot(th["k"], th["all_k_bound"], "k-", lw=1.1, label="ERSD all-k bound (ersd, ersd-topm; chansim bound)",
                zorder=1)
        ax.plot(th["k"], th["all_k_bound_paper"], color="0.45", ls=":", lw=1.1,
                label="paper form (ln(k+1) + ln V_R) / H(R)", zorder=1)
        for method in dict.fromkeys(pt["method"] for pt in data["mc"] if pt["shape"] == shape):
            pts = [pt for pt in data["mc"] if pt["shape"] == shape and pt["method"] == method]
            mc_errorbar(ax, [pt["k"] * offsets[method] for pt in pts], [pt["mean"] for pt in pts],
                        [pt["ci_low"] for pt in pts], [pt["ci_high"] for pt in pts], method=method, size=4.5)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("drafted tokens k (log scale)")
        ax.set_title(titles[shape], fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.set_ylim(0.8, max(th["all_k_bound_paper"]) * 1.05)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(plt.Line2D([], [], marker="o", mfc="white", mec="k", color="k", ls="none"))
        labels.append(f"Monte Carlo (chansim.simulate), {int(CONFIDENCE * 100)}% interval")
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    axes[0].set_ylabel("tokens per target call")
    fig.suptitle(f"Tokens per target call vs k ({data['family']} pair, V = {data['vocab']}, "
                 f"H(R) = {th['entropy_nats']:.3f} nats); markers: Monte Carlo, {int(CONFIDENCE * 100)}% intervals",
                 fontsize=11)
    fig.tight_layout()
    return fig
