r"""``speedup_report``: the theoretical speed-up of given distributions (``chansim bound``).

For one (p, q) pair or a batch of positions (leading axis) it computes, per position in
the i.i.d. model (that pair at every node), then averages over positions:
KL (nats, bits), TV, α_SD, α_ER, H(R), μ₂, tokens per call of every method at every k,
the large-k relation and the all-k bound, and optionally E[log2 K] of the PFR.

Trees (``tree=``):

* ``optimal`` — ``sd``: the chain; ``specinfer``/``rsd``: the best sibling-closed tree
  (Sequoia-style DP on the slot weights); ``spectr``: the best ``seq:CxL`` with C·L <= k;
  ``ersd``: the best tree with arbitrary rank sets (k largest path products), and
  ``ersd-topm``: the best sibling-closed tree (plain top-m drafting) — their ratio is
  the gain of the generalisation;
* ``chain`` / ``batch`` — the fixed k-chain / k-batch for every method (``sd`` only on
  chains).

Cost model (``cost=c``): one target call verifies the whole tree in parallel (time 1),
the draft model is called once per tree level (time c each, a level's nodes batched),
so a call with a depth-D tree takes 1 + c·D and

.. math:: \text{speed-up} = \frac{E[\text{tokens per call}]}{1 + c\,D}

relative to autoregressive decoding (1 token per time 1).  It ignores the growth of the
verification cost with the tree width.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..common.logconfig import get_logger
from ..sampling import races
from ..inputs.distributions import check_pair, kl_divergence, softmax, total_variation
from ..verify.registry import default_methods, get_method, method_names
from ..verify.sd import sd_chain_tokens
from ..verify.spectr import spectr_sequences_tokens, spectr_transition_matrix
from .optimal import sibling_closed_sums, top_products_table
from .bound_columns import bound_columns
from .ranklaw import rank_law

__all__ = ["BoundReport", "speedup_report", "best_sequences", "DEFAULT_K", "REPORT_METHODS", "FAMILIES"]

DEFAULT_K = (1, 2, 4, 8, 16, 32, 64)
#: the registry's methods with a tree family (``ersd-topm``: ersd on sibling-closed trees)
REPORT_METHODS = method_names(theory=True)
_TREES = ("optimal", "chain", "batch")


def _fmt_interval(s: dict) -> str:
    """H(R) with its interval, to the decimals the interval supports."""
    lo, hi = s["rank_entropy_ci"]
    if s["rank_entropy_exact"]:                 # proved to l1 error <= 1e-10 (EXACT_L1): every digit shown holds
        return f"{s['rank_entropy_nats']:.4f} (rank law l1 error {s['rank_law_error']:.0e})"
    width = max(hi - lo, 1e-12)
    dec = int(min(6, max(1, math.ceil(-math.log10(width)) + 1)))
    kind = "guaranteed" if s.get("rank_entropy_guaranteed") else "Monte Carlo"
    return f"{s['rank_entropy_nats']:.{dec}f} ({kind} {lo:.{dec}f}..{hi:.{dec}f}, l1 error {s['rank_law_error']:.1e})" \
        if s.get("rank_entropy_guaranteed") else f"{s['rank_entropy_nats']:.{dec}f} ({kind}, {lo:.{dec}f}..{hi:.{dec}f})"


@dataclass
class BoundReport:
    """Result of :func:`speedup_report`; ``str()`` is a table, :meth:`to_dict` is JSON-ready."""

    k: list
    tree: str
    positions: int
    vocab: int
    summary: dict                      # averaged scalars
    methods: dict                      # name -> {"k", "tokens_per_call", "interval", "exact", "exact_k", ...}
    ersd_bound: dict                   # {"k", "value", "paper_form"}: bounds ERSD trees only
    asymptote: dict
    cost: float | None = None
    per_position: list | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "k": self.k, "tree": self.tree, "positions": self.positions, "vocab": self.vocab,
            **self.summary,
            "methods": self.methods, "ersd_bound": self.ersd_bound, "asymptote": self.asymptote,
            "cost_model": None if self.cost is None else {
                "c": self.cost, "speedup": "tokens_per_call / (1 + c * draft_depth)"},
            "notes": self.notes,
        }
        if self.per_position is not None:
            out["per_position"] = self.per_position
        return out

    def to_records(self) -> list:
        """One flat dict per (method, k): tokens per call with the bound and relation at that k.

        Ready for ``pandas.DataFrame(report.to_records())`` or a CSV writer.
        """
        bound = dict(zip(self.ersd_bound.get("k", []), self.ersd_bound.get("value", [])))
        asym = dict(zip(self.asymptote.get("k", []), self.asymptote.get("value", [])))
        rows = []
        for name, entry in self.methods.items():
            for i, k in enumerate(entry["k"]):
                iv = (entry.get("interval") or [None] * len(entry["k"]))[i]
                row = {"method": name, "k": k, "tree": self.tree, "tokens_per_call": entry["tokens_per_call"][i],
                       "interval_low": None if iv is None else iv[0], "interval_high": None if iv is None else iv[1],
                       "exact": entry.get("exact_k", [entry.get("exact")] * len(entry["k"]))[i]}
                for key in ("speedup", "depth"):
                    if key in entry:
                        row[key] = entry[key][i]
                row["ersd_bound"], row["large_k_relation"] = bound.get(k), asym.get(k)
                rows.append(row)
        return rows

    def __str__(self) -> str:
        s = self.summary
        lines = [
            f"chansim bound: {self.positions} position(s), V = {self.vocab}, tree = {self.tree}"
            + ("" if self.positions == 1 else " (averages over positions)"),
            f"  KL(p||q) = {s['kl_nats']:.4f} nats = {s['kl_bits']:.4f} bits    TV = {s['tv']:.4f}",
            f"  alpha_SD = {s['alpha_sd']:.4f}    alpha_ER = {s['alpha_er']:.4f}",
            f"  H(R) = {_fmt_interval(s)} nats"
            + f"    E[(ln a_R)^2] = {s['rank_second_moment']:.4f}" if s.get("rank_entropy_nats") is not None else
            f"  H(R) = - ({s.get('rank_law')})",
        ]
        if s.get("pfr_log2_index_bits") is not None:
            hr = "" if s.get("rank_entropy_bits") is None else f"   H(R) = {s['rank_entropy_bits']:.4f} bits"
            lines.append(f"  PFR E[log2 K] = {s['pfr_log2_index_bits']:.4f} bits{hr}")
        names = list(self.methods)
        shown = [v for n in names for v in self.methods[n]["tokens_per_call"] if v is not None]
        shown += [v for v in list(self.asymptote["value"]) + list(self.ersd_bound["value"]) if v is not None]
        widest = max((len(f"{v:.4f}") for v in shown), default=6) + 3      # value, flag and two spaces
        width = max(10, widest, *(len(n) + 2 for n in names))
        wa, wb = max(12, widest), max(12, widest)
        head = f"  {'k':>8}" + "".join(f"{n:>{width}}" for n in names) + f"{'asymptote':>{wa}}{'ersd bound':>{wb}}"
        lines += ["", "  tokens per target call (* = its interval is wider than ±5e-5: Monte Carlo or rank-law "
                  "error; intervals in --json)", head]
        for i, k in enumerate(self.k):
            row = f"  {k:>8}"
            for n in names:
                v = self.methods[n]["tokens_per_call"][i]
                marks = self.methods[n].get("exact_k") or [self.methods[n]["exact"]] * len(self.k)
                flag = "" if marks[i] else "*"
                row += f"{'-' if v is None else f'{v:.4f}{flag}':>{width}}"
            av = self.asymptote["value"][i]
            bv = self.ersd_bound["value"][i]
            row += f"{'-' if av is None else f'{av:.4f}':>{wa}}{'-' if bv is None else f'{bv:.4f}':>{wb}}"
            lines.append(row)
        if self.cost is not None:
            lines += ["", f"  wall-clock speed-up, cost model tokens / (1 + c*depth), c = {self.cost:g}",
                      f"  {'k':>8}" + "".join(f"{n:>{width}}" for n in names)]
            for i, k in enumerate(self.k):
                row = f"  {k:>8}"
                for n in names:
                    v = self.methods[n].get("speedup", [None] * len(self.k))[i]
                    row += f"{'-' if v is None else f'{v:.4f}':>{width}}"
                lines.append(row)
        fk = s.get("asymptote_within_1pct_from_k")
        why = s.get("asymptote_note")
        lines += ["", "  asymptote: ln k / H(R) + C (renewal, optimal ERSD tree; '-' where outside [1, k+1])"
                  + (f"; within 1% of the optimum from k = {fk}" if fk is not None
                     else f"; 1% point: - ({why})" if why else ""),
                  "  ersd bound (guaranteed for every ERSD tree of k nodes, ersd and ersd-topm; other methods "
                  "may exceed it): min(k+1, 1/P(never), (ln(k+1) + ln V_R) / H_low(R), exit-rank entropy bound "
                  "c*_k of docs/theory.md §10)"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _as_pairs(target, draft, logits, temperature):
    if logits:
        target, draft = softmax(target, temperature), softmax(draft, temperature)
    elif temperature != 1.0:
        raise ValueError("temperature applies to logits only; pass logits=True")
    p, q = check_pair(target, draft)
    if p.ndim == 1:
        p, q = p[None], q[None]
    if p.ndim != 2:
        raise ValueError(f"expected one pair (V,) or a batch (positions, V), got shape {p.shape}")
    return p, q


#: most ranks of the guaranteed law computed above V = 64: a larger k uses these K ranks and the
#: tail mass P(R > K) in its interval (docs/theory.md §10a), so time and memory stay bounded
MAX_RANKS = 1024

#: the largest budget evaluated without ``max_k=None`` (CLI ``--force``): optimal trees need
#: O(k) time and memory, about 2.4 KB per group of path products in the worst case
MAX_K = 10**7


def _check_ks(k, max_k=MAX_K) -> list:
    ks = [k] if np.isscalar(k) else list(k)
    if not ks:
        raise ValueError("k list is empty")
    out = []
    for v in ks:
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"k values must be positive integers, got {v!r}")
        out.append(int(v))
    if max_k is not None and max(out) > max_k:
        raise ValueError(f"k = {max(out)} is above the guarded budget {max_k:.0e}: the optimal-tree values need "
                         f"O(k) time and up to ~{max(out) * 2.4e3 / 2**30:.0f} GiB of memory in the worst case; "
                         "pass --force (max_k=None) to try anyway")
    return out


def _weights(meth, p, q, kmax, law, seed):
    """Slot weights of a sibling-closed/rank-set method for the report (the law is reused for ersd).

    A race method's law may stop at K < kmax ranks (:data:`MAX_RANKS`): the slots beyond K get
    weight 0, a lower estimate whose upper side the intervals cover (P(R > K), docs/theory.md §10a).
    """
    if meth.uses_race and law is not None and kmax > len(law.probs):
        sw = meth.slot_weights(p, q, len(law.probs), seed=seed, law=law)
        return np.concatenate([sw.w, np.zeros(kmax - len(law.probs))]), sw.exact
    sw = meth.slot_weights(p, q, kmax, seed=seed, law=law if meth.uses_race else None)
    return sw.w, sw.exact


def _chain_family(meth, p, q, ks, tree, ctx):
    """sd: the chain closed form; only k = 1 fits a batch."""
    beta = ctx["beta"]
    if tree in ("optimal", "chain"):
        return [float(sd_chain_tokens(beta, k)) for k in ks], list(ks), True
    return [float(1 + beta) if k == 1 else None for k in ks], [1 if k == 1 else None for k in ks], True


def _sibling_closed_family(meth, p, q, ks, tree, ctx):
    """Slot weights on the best sibling-closed tree (Sequoia-style DP), a chain or a batch."""
    kmax = max(ks)
    w, exact = _weights(meth, p, q, kmax, ctx["law"], ctx["seed"])
    if tree == "optimal":
        vals, deps = sibling_closed_sums(w, ks)
        return [float(1 + v) for v in vals], [int(d) for d in deps], exact
    if tree == "chain":
        return [float(sd_chain_tokens(w[0], k)) for k in ks], list(ks), exact
    cw = np.cumsum(w)
    return [float(1 + cw[k - 1]) for k in ks], [1] * len(ks), exact


def _rank_set_family(meth, p, q, ks, tree, ctx):
    """Rank law on the best tree with any rank sets (k largest path products), a chain or a batch."""
    law = ctx["law"]
    # the law's own flag; the printed marks follow each value's interval (_intervals, §10a)
    exact = law.exact
    if tree == "optimal":
        vals, deps = top_products_table(law.probs, ks)
        return [float(1 + v) for v in vals], [int(d) for d in deps], exact
    if tree == "chain":                     # the closed-form alpha_ER (§0), exact at any V
        return [float(sd_chain_tokens(ctx["alpha_er"], k)) for k in ks], list(ks), True
    cw = np.cumsum(_weights(meth, p, q, max(ks), law, ctx["seed"])[0])
    return [float(1 + cw[k - 1]) for k in ks], [1] * len(ks), exact


def _sequences_family(meth, p, q, ks, tree, ctx):
    """SpecTr: the best seq:CxL with C*L <= k (exact DP), the chain (= sd) or one batch."""
    kmax = max(ks)
    if tree == "chain":
        return [float(sd_chain_tokens(ctx["beta"], k)) for k in ks], list(ks), True
    if tree == "batch":                     # one node of k drafts: 1 + its acceptance, O(V log V) per k
        return [1.0 + meth.node_acceptance(p, q, k) for k in ks], [1] * len(ks), True
    trans = spectr_transition_matrix(p, q, kmax)
    tok, depth = [], []
    for k in ks:
        best, bd = best_sequences(p, q, k, trans)
        tok.append(best)
        depth.append(bd)
    return tok, depth, True


def best_sequences(p, q, k: int, transition=None):
    """``(tokens, length)`` of SpecTr's best ``seq:CxL`` with C*L <= k (largest C·L-budget value; ties: fewer C).

    ``transition``: a :func:`~chansim.verify.spectr.spectr_transition_matrix` covering counts up to k.
    """
    if transition is None:
        transition = spectr_transition_matrix(p, q, k)
    best, bd = -1.0, 0
    for c in range(1, k + 1):
        v = spectr_sequences_tokens(p, q, c, k // c, transition=transition)
        if v > best + 1e-12:
            best, bd = v, k // c
    return best, bd


#: a printed value is marked exact (no "*") when its guaranteed interval is within this of it
#: (half a unit of the 4th decimal printed)
EXACT_HALF_WIDTH = 5e-5


def tree_value_interval(value: float, l1_error: float, upper: float, tail: float = 0.0, k: int = 0) -> tuple:
    r"""Interval for the optimal ERSD tree value of the true law from the value ``value`` on a law
    known to ``l1_error`` in :math:`\ell_1` (docs/theory.md §10a).

    With :math:`\delta = \varepsilon/2` (a total-variation bound), M = max(value, ``upper``)
    (``upper`` a proved upper bound on every tree value of the true law: the ERSD bound) and
    τ an upper bound on the mass of the ranks the computed law lumps as "beyond K"
    (``tail``; 0 when no tree of the family can use such ranks),

    .. math:: v(1 - \delta M) \le V^* \le v (1 + \delta M)(1 + \tau M),

    both ends clipped to [1, max(upper, v)], then widened by a rounding allowance
    :math:`v(10^{-12} + 2\cdot 10^{-16} k)` (a sum of k float products; not analysed, like the
    law's own 1e-13).  The same holds for one fixed tree (then ``value`` is that tree's value).

    >>> [round(x, 9) for x in tree_value_interval(3.0, 0.0, 5.0)]     # only the rounding allowance
    [3.0, 3.0]
    >>> lo, hi = tree_value_interval(39.1487, 2.65e-5, 45.0)          # issue 20, item 5
    >>> lo < 39.1562 < hi
    True
    """
    v, delta = float(value), max(float(l1_error), 0.0) / 2
    m = max(v, float(upper))
    lo = max(1.0, v * (1 - delta * m))
    hi = min(max(float(upper), v), v * (1 + delta * m) * (1 + max(float(tail), 0.0) * m))
    slack = v * (1e-12 + 2e-16 * max(int(k), 0))
    return max(1.0, lo - slack), max(hi, lo) + slack


def _intervals(meth, tok, exact, tree, ctx, bound):
    """Per-k ``(interval, exact_k, guaranteed)``: intervals [lo, hi] (None where no value), marks."""
    law = ctx["law"]
    race = meth.uses_race and meth.tree_family in ("rank-set", "sibling-closed")
    out, marks = [], []
    for i, v in enumerate(tok):
        if v is None:
            out.append(None)
            marks.append(True)
            continue
        if race and (tree == "chain" or ctx["ks"][i] == 1):   # 1 + alpha + .. + alpha^k, alpha_ER exact (§0)
            iv = (v, v) if law.guaranteed else None
        elif not race:                                    # the method's own flag (closed forms, Monte Carlo)
            iv = (v, v) if exact else None
        elif not law.guaranteed:                          # Monte Carlo law: no guaranteed interval
            iv = None
        elif tree == "batch":                             # 1 + a_1 + .. + a_k, a_1 exact: within the l1 error
            k = ctx["ks"][i]
            beyond = law.tail + law.error if k > len(law.probs) else 0.0          # ranks K+1..k unknown
            slack = v * (1e-12 + 2e-16 * k)                                     # rounding of the sum
            iv = (max(1.0, v - law.error - slack), min(k + 1.0, v + law.error + beyond) + slack)
        else:                                             # optimal tree: §10a
            k = ctx["ks"][i]
            beyond = len(law.probs) < ctx["support"] - int(law.never > 0) and (
                meth.tree_family == "rank-set" or k > len(law.probs))
            tail = law.tail + law.error if beyond else 0.0
            iv = tree_value_interval(v, law.error, bound[i], tail, k)
        out.append(None if iv is None else [float(iv[0]), float(iv[1])])
        marks.append(iv is not None and max(v - iv[0], iv[1] - v) <= EXACT_HALF_WIDTH)
    return out, marks, race and law.guaranteed or (not race and exact)


#: tree family (``Method.tree_family``) -> the report's rule for (optimal | chain | batch) trees
FAMILIES = {"chain": _chain_family, "sibling-closed": _sibling_closed_family, "rank-set": _rank_set_family,
            "sequences": _sequences_family}


#: per-position keys that come from the rank law (None when no printed column needs it)
_LAW_KEYS = ("rank_entropy_nats", "rank_entropy_ci", "rank_entropy_exact", "rank_second_moment", "rank_truncation",
             "rank_support", "rank_entropy_interval", "rank_law_error", "rank_probs", "rank_tail",
             "rank_entropy_guaranteed", "ersd_bound", "ersd_bound_paper", "asymptote",
             "asymptote_within_1pct_from_k", "asymptote_note")


def needs_rank_law(methods) -> bool:
    """True when one of ``methods`` is valued through the ERSD rank law (``Method.uses_race``)."""
    return any(get_method(name).uses_race for name in methods)


def _law_for(p, q, ks, trials, seed, exact_max_vocab, eps, confidence, rank_tol):
    """The rank law for budgets ``ks``: K = 64 first, widened x4 while P(R > K) > rank_tol and k > K."""
    vocab, kmax = p.shape[-1], max(ks)
    k_ranks = min(64, vocab)
    while True:
        start = time.process_time()
        law = rank_law(p, q, trials=trials, seed=seed, exact_max_vocab=exact_max_vocab, eps=eps,
                       confidence=confidence, max_rank=k_ranks, tol=rank_tol)
        get_logger("bound").debug("rank law K = %d, --rank-tol %g: l1 error %.2e, P(R > K) = %.2e, %.2f CPU-s",
                                  len(law.probs), rank_tol, law.error, law.tail, time.process_time() - start)
        if law.exact or law.tail <= rank_tol or k_ranks >= min(kmax, MAX_RANKS, vocab):
            return law
        k_ranks = min(4 * k_ranks, kmax, MAX_RANKS, vocab)


def _law_columns(law, ks, p, q) -> dict:
    """The per-position rank-law quantities and the bound/asymptote columns (docs/theory.md §3-§5, §10)."""
    never_possible = bool(np.any((p > 0) & (q == 0)))
    support = law.support if law.exact else int(np.count_nonzero(q)) + int(never_possible)
    out = {"rank_entropy_nats": law.entropy, "rank_entropy_ci": list(law.entropy_ci),
           "rank_entropy_exact": law.exact, "rank_second_moment": law.second_moment,
           "rank_truncation": law.truncation, "rank_never": law.never, "rank_support": support,
           "rank_entropy_interval": list(law.entropy_ci), "rank_law_error": law.error,
           "rank_probs": [float(v) for v in law.probs[:64]], "rank_tail": law.tail,
           "rank_entropy_guaranteed": law.guaranteed, "rank_law_ranks": len(law.probs)}
    out.update(bound_columns(ks, law, support))
    return out


def _no_law_columns(ks, p, q) -> dict:
    """The rank-law keys as None (no requested method or column needs the law), ``rank_never`` exact."""
    out = dict.fromkeys(_LAW_KEYS)
    out.update(ersd_bound=[None] * len(ks), ersd_bound_paper=[None] * len(ks), asymptote=[None] * len(ks),
               rank_never=float(p[(p > 0) & (q == 0)].sum()), rank_law_ranks=0)
    return out


def _position(p, q, ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence=0.95, rank_tol=1e-4,
              with_law=True):
    """All per-position quantities (dict of scalars and per-method lists); ``with_law=False`` skips the rank law."""
    law = _law_for(p, q, ks, trials, seed, exact_max_vocab, eps, confidence, rank_tol) if with_law else None
    beta = float(np.minimum(p, q).sum())
    alpha_er = float(races.er_acceptance(p, q, validate=False))
    out = {"kl_nats": float(kl_divergence(p, q, validate=False)), "tv": float(total_variation(p, q, validate=False)),
           "alpha_sd": beta, "alpha_er": alpha_er}
    out.update(_law_columns(law, ks, p, q) if law is not None else _no_law_columns(ks, p, q))
    support = out["rank_support"]
    ctx = {"law": law, "beta": beta, "seed": seed, "alpha_er": alpha_er, "ks": ks, "support": support}
    res = {}
    for name in methods:
        meth = get_method(name)
        rule = FAMILIES.get(meth.tree_family)                # else the method's own rule (block, multidraft)
        run = (lambda kk: rule(meth, p, q, kk, tree, ctx)) if rule else \
            (lambda kk: meth.report_tokens(p, q, kk, tree, ctx))
        kept = list(ks)
        while True:                                        # a method's own work limit: drop the largest k
            try:
                t_k, d_k, exact = run(kept)
                break
            except (ValueError, MemoryError) as exc:
                out.setdefault("method_notes", []).append(f"{name} at k = {max(kept)}: {exc}")
                kept = [k for k in kept if k < max(kept)]
                if not kept:
                    t_k, d_k, exact = [], [], False
                    break
        tok = [t_k[kept.index(k)] if k in kept else None for k in ks]
        depth = [d_k[kept.index(k)] if k in kept else None for k in ks]
        iv, marks, guaranteed = _intervals(meth, tok, exact, tree, ctx, out["ersd_bound"])
        res[name] = {"tokens_per_call": tok, "depth": depth, "exact": all(marks), "exact_k": marks,
                     "interval": iv, "interval_guaranteed": bool(guaranteed),
                     "race_tree": bool(meth.uses_race and meth.tree_family in ("rank-set", "sibling-closed"))}
    # the ERSD bound holds for the true law; a value computed on a law with an error can sit above
    # it, and no printed ERSD value may exceed the printed bound: raise it there (still a bound)
    if law is None:
        out["ersd_bound_raised"] = False
        out["methods"] = res
        return out
    raised = out["ersd_bound"]
    for r in res.values():
        if r["race_tree"]:
            raised = [b if v is None else max(b, v) for b, v in zip(raised, r["tokens_per_call"])]
    out["ersd_bound_raised"] = any(b2 > b1 for b1, b2 in zip(out["ersd_bound"], raised))
    out["ersd_bound"] = raised
    out["methods"] = res
    return out


def _rows(p, q, offset, ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence=0.95, rank_tol=1e-4,
          with_law=True):
    return [_position(p[i], q[i], ks, methods, tree, trials, seed + offset + i, exact_max_vocab, eps, confidence,
                      rank_tol, with_law)
            for i in range(len(p))]


def _default_methods(vocab: int, kmax: int) -> list:
    return list(default_methods("bound", vocab=vocab, kmax=kmax))


#: what the report prints where no requested method needs the rank law (``rank_law=None``)
NO_LAW_REASON = ("not computed: no requested method uses the ERSD rank law (add an ERSD method, or "
                 "rank_law=True / --rank-law, to compute H(R), the ersd bound and the asymptote)")


def _add_pfr(rows, p, q) -> None:
    """E[log2 K] of the PFR per position (None where q misses part of p's support: K = inf)."""
    from ..channel import expected_log2_index

    for i, row in enumerate(rows):
        covered = not np.any((p[i] > 0) & (q[i] == 0))
        row["pfr_log2_index_bits"] = float(expected_log2_index(p[i], q[i], validate=False)) if covered else None


def _column_mean(rows, key: str, n_k: int) -> list:
    """Per-k mean over positions of a per-k column (None where any position has None)."""
    cols = [[r[key][i] for r in rows] for i in range(n_k)]
    return [None if any(v is None for v in c) else float(np.mean(c)) for c in cols]


def _summary(rows, pfr: bool, with_law: bool) -> dict:
    """Scalars averaged over positions (rank-law entries None without the law)."""
    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    summary = {key: mean(key) for key in ("kl_nats", "tv", "alpha_sd", "alpha_er")}
    summary["kl_bits"] = summary["kl_nats"] / math.log(2)
    summary["rank_law"] = "computed" if with_law else NO_LAW_REASON
    pfr_ok = pfr and all(r["pfr_log2_index_bits"] is not None for r in rows)
    summary["pfr_log2_index_bits"] = mean("pfr_log2_index_bits") if pfr_ok else None
    if not with_law:
        summary.update(dict.fromkeys(("rank_entropy_nats", "rank_second_moment", "rank_entropy_bits",
                                      "rank_entropy_exact", "rank_entropy_ci", "rank_entropy_interval",
                                      "rank_entropy_guaranteed", "rank_law_error", "asymptote_within_1pct_from_k",
                                      "asymptote_note")))
        return summary
    summary.update(rank_entropy_nats=mean("rank_entropy_nats"), rank_second_moment=mean("rank_second_moment"))
    summary["rank_entropy_bits"] = summary["rank_entropy_nats"] / math.log(2)
    summary["rank_entropy_exact"] = all(r["rank_entropy_exact"] for r in rows)
    summary["rank_entropy_ci"] = [float(np.mean([r["rank_entropy_ci"][j] for r in rows])) for j in (0, 1)]
    summary["rank_entropy_interval"] = summary["rank_entropy_ci"]
    summary["rank_entropy_guaranteed"] = all(r["rank_entropy_guaranteed"] for r in rows)
    summary["rank_law_error"] = float(max(r["rank_law_error"] for r in rows))
    summary["rank_law_ranks"] = int(max(r["rank_law_ranks"] for r in rows))
    if len(rows) == 1:
        summary["rank_probs"] = rows[0]["rank_probs"]
        summary["rank_tail"] = rows[0]["rank_tail"]
    akv = [r["asymptote_within_1pct_from_k"] for r in rows]
    summary["asymptote_within_1pct_from_k"] = None if any(v is None for v in akv) else int(max(akv))
    why = sorted({r["asymptote_note"] for r in rows if r.get("asymptote_note")})
    summary["asymptote_note"] = "; ".join(why[:3]) if why else None
    return summary


def _method_entry(rows, name: str, ks, cost) -> dict:
    """One method's per-k means over positions; the mean's interval is the mean of the ends."""
    per = [r["methods"][name] for r in rows]
    n_k = len(ks)
    toks = _column_mean(per, "tokens_per_call", n_k)
    deps = _column_mean(per, "depth", n_k)
    ivs, marks = [], []
    for i in range(n_k):
        iv = [m["interval"][i] for m in per]
        ivs.append(None if toks[i] is None or any(v is None for v in iv)
                   else [float(np.mean([v[0] for v in iv])), float(np.mean([v[1] for v in iv]))])
        marks.append(all(m["exact_k"][i] for m in per))
    entry = {"k": ks, "tokens_per_call": toks, "interval": ivs,
             "interval_guaranteed": all(m["interval_guaranteed"] for m in per),
             "exact": all(marks), "exact_k": marks, "draft_depth": deps}
    if cost is not None:
        entry["speedup"] = [None if any(m["tokens_per_call"][i] is None for m in per)
                            else float(np.mean([m["tokens_per_call"][i] / (1 + cost * m["depth"][i]) for m in per]))
                            for i in range(n_k)]
    return entry


def _notes(rows, summary: dict, trials: int, eps: float) -> list:
    """The report's notes: how the rank law was computed, raised bounds, values not computed."""
    notes = []
    if summary["rank_law_error"] is None:
        notes.append(f"H(R), asymptote and ersd bound {NO_LAW_REASON}")
    elif not summary["rank_entropy_exact"] and summary["rank_entropy_guaranteed"]:
        notes.append(f"rank law with guaranteed l1 error <= {summary['rank_law_error']:.1e} "
                     f"over K = {summary['rank_law_ranks']} ranks and the tail P(R > K) "
                     "(docs/theory.md §5); bound column uses the lower end of the H(R) interval")
    elif not summary["rank_entropy_exact"]:
        notes.append(f"rank law by Monte Carlo ({trials} samples/position on the head of mass 1-{eps:g}); "
                     f"max truncation bound P(R != R') <= {max(r['rank_truncation'] for r in rows):.2e}")
    if any(r.get("ersd_bound_raised") for r in rows):
        notes.append("the ersd bound was raised to an ERSD value computed on the law with its error "
                     "(the interval of that value reaches below it)")
    for msg in sorted({m for r in rows for m in r.get("method_notes", [])}):
        notes.append(f"not computed, shown as '-': {msg}")
    if summary["asymptote_note"]:
        notes.append(f"auxiliary column not computed: {summary['asymptote_note']}")
    if any(r["rank_never"] > 0 for r in rows):
        notes.append("some target tokens have q = 0 (never draftable): tokens per call stays below 1/P(never)")
    return notes


def _per_position(r: dict, ks, methods, pfr: bool) -> dict:
    """One position's values for ``per_position=True``."""
    d = {key: r[key] for key in ("kl_nats", "tv", "alpha_sd", "alpha_er", "rank_entropy_nats", "rank_second_moment",
                                 "ersd_bound", "asymptote", "rank_entropy_interval", "rank_law_error")}
    d["kl_bits"] = d["kl_nats"] / math.log(2)
    d["methods"] = {m: {"k": ks, "tokens_per_call": r["methods"][m]["tokens_per_call"]} for m in methods}
    if pfr:
        d["pfr_log2_index_bits"] = r["pfr_log2_index_bits"]
    return d


def speedup_report(target, draft, k=DEFAULT_K, methods=None, tree: str = "optimal", cost: float | None = None,
                   per_position: bool = False, logits: bool = False, temperature: float = 1.0,
                   trials: int = 1000, seed: int = 0, exact_max_vocab: int = 64, eps: float = 1e-4,
                   pfr: bool | None = None, n_jobs: int = 1, confidence: float = 0.95,
                   rank_tol: float = 1e-4, max_k: int | None = MAX_K, rank_law: bool | None = None) -> BoundReport:
    r"""Theoretical tokens per call, large-k relation and all-k bound for given distributions.

    Parameters
    ----------
    target, draft : array_like, shape (V,) or (positions, V)
        Probabilities (or logits with ``logits=True``, softmax at ``temperature``).
    k : int or sequence of int
        Budgets of drafted tokens.
    methods : sequence of str, optional
        Subset of ``sd, specinfer, rsd, spectr, ersd, ersd-topm``; the default drops
        ``rsd`` (V > 64) and ``spectr`` (V·k² > 2e6) when they would be slow.
    tree : {"optimal", "chain", "batch"}
    cost : float, optional
        Draft/target time ratio c of the cost model (module docstring).
    per_position : bool
        Keep every position's values in ``per_position``.
    trials, seed, exact_max_vocab, eps, rank_tol
        Rank law: the full law with a proved l1 error ~3e-13 for V <= ``exact_max_vocab``, else a
        truncated law (K = 64, widened x4 up to min(k, 1024) while P(R > K) > ``rank_tol``) with a
        guaranteed l1 error aimed at ``rank_tol`` (:func:`chansim.theory.rank_law`, docs/theory.md §5;
        ``trials``/``eps`` only matter for ``method="mc"``).
    pfr : bool, optional
        Also compute E[log2 K] of the Poisson functional representation (default: when
        positions·V <= 2e5; it costs ~1 s per position at V = 49k).
    n_jobs : int
        Positions are processed in parallel with joblib when ``n_jobs != 1`` (-1: all cores).
    confidence : float
        Level of the Monte Carlo interval of H(R) (large V).
    max_k : int or None
        Budgets above ``max_k`` (default :data:`MAX_K` = 10^7) are refused before any work;
        ``None`` lifts the guard.
    rank_law : bool, optional
        Compute the ERSD rank law (H(R), the ersd bound, the asymptote).  ``None`` (default):
        only when a requested method uses it (:func:`needs_rank_law`); otherwise those columns
        are None and a note says why (:data:`NO_LAW_REASON`) — at V = 49,152 the law costs
        seconds per position, the other columns milliseconds.

    Returns
    -------
    BoundReport

    Examples
    --------
    >>> rep = speedup_report([0.5, 0.3, 0.2], [0.3, 0.3, 0.4], k=[1, 4], methods=["specinfer", "ersd-topm"])
    >>> round(rep.methods["specinfer"]["tokens_per_call"][0], 12)       # 1 + beta
    1.8
    >>> sorted(rep.to_dict())[:5]
    ['alpha_er', 'alpha_sd', 'asymptote', 'asymptote_note', 'asymptote_within_1pct_from_k']
    """
    p, q = _as_pairs(target, draft, logits, temperature)
    ks = _check_ks(k, max_k)
    if tree not in _TREES:
        raise ValueError(f"tree must be one of {', '.join(_TREES)}, got {tree!r}")
    if cost is not None and not (math.isfinite(cost) and cost >= 0):
        raise ValueError(f"cost must be a finite number >= 0, got {cost}")
    n, vocab = p.shape
    methods = list(methods) if methods else _default_methods(vocab, max(ks))
    known = method_names(theory=True)                 # looked up now: the registry may have grown
    for name in methods:
        if name not in known:
            raise ValueError(f"unknown method {name!r}; choose from {', '.join(known)}")
    with_law = needs_rank_law(methods) if rank_law is None else bool(rank_law)
    if not with_law and needs_rank_law(methods):
        raise ValueError(f"rank_law=False, but {', '.join(m for m in methods if get_method(m).uses_race)} "
                         "are valued through the rank law; drop them or leave rank_law unset")
    args = (ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence, rank_tol, with_law)
    if n_jobs == 1 or n < 16 or not with_law:          # without the law a position costs ~5 ms: no workers
        rows = _rows(p, q, 0, *args)
    else:
        from ..common.parallel import effective_jobs, parallel_map

        chunks = np.array_split(np.arange(n), min(n, 4 * effective_jobs(n_jobs)))
        parts = parallel_map(_rows, [(p[c], q[c], int(c[0]), *args) for c in chunks if len(c)], jobs=n_jobs,
                             desc="positions")
        rows = [r for part in parts for r in part]
    if pfr is None:
        pfr = n * vocab <= 200_000
    if pfr:
        _add_pfr(rows, p, q)
    summary = _summary(rows, pfr, with_law)
    meths = {name: _method_entry(rows, name, ks, cost) for name in methods}
    bound = {"k": ks, "value": _column_mean(rows, "ersd_bound", len(ks)),
             "paper_form": _column_mean(rows, "ersd_bound_paper", len(ks)),
             "bounds": "every ERSD tree of k drafted nodes (ersd, ersd-topm), not the other methods"}
    asym = {"k": ks, "value": _column_mean(rows, "asymptote", len(ks))}
    notes = _notes(rows, summary, trials, eps)
    per = [_per_position(r, ks, methods, pfr) for r in rows] if per_position else None
    return BoundReport(ks, tree, n, vocab, summary, meths, bound, asym, cost, per, notes)
