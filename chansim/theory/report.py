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
from dataclasses import dataclass, field

import numpy as np

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
            + f"    E[(ln a_R)^2] = {s['rank_second_moment']:.4f}",
        ]
        if s.get("pfr_log2_index_bits") is not None:
            lines.append(f"  PFR E[log2 K] = {s['pfr_log2_index_bits']:.4f} bits   H(R) = {s['rank_entropy_bits']:.4f} bits")
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
            row += f"{'-' if av is None else f'{av:.4f}':>{wa}}{self.ersd_bound['value'][i]:>{wb}.4f}"
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


def _position(p, q, ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence=0.95, rank_tol=1e-4):
    """All per-position quantities (dict of scalars and per-method lists)."""
    kmax = max(ks)
    law = rank_law(p, q, trials=trials, seed=seed, exact_max_vocab=exact_max_vocab, eps=eps, confidence=confidence,
                   max_rank=min(max(64, kmax), MAX_RANKS), tol=rank_tol)
    beta = float(np.minimum(p, q).sum())
    never_possible = bool(np.any((p > 0) & (q == 0)))
    support = law.support if law.exact else int(np.count_nonzero(q)) + int(never_possible)
    alpha_er = float(races.er_acceptance(p, q, validate=False))
    out = {"kl_nats": float(kl_divergence(p, q, validate=False)), "tv": float(total_variation(p, q, validate=False)),
           "alpha_sd": beta, "alpha_er": alpha_er,
           "rank_entropy_nats": law.entropy, "rank_entropy_ci": list(law.entropy_ci),
           "rank_entropy_exact": law.exact, "rank_second_moment": law.second_moment,
           "rank_truncation": law.truncation, "rank_never": law.never, "rank_support": support,
           "rank_entropy_interval": list(law.entropy_ci), "rank_law_error": law.error,
           "rank_probs": [float(v) for v in law.probs[:64]], "rank_tail": law.tail,
           "rank_entropy_guaranteed": law.guaranteed}
    out.update(bound_columns(ks, law, support))
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
                     "ersd": bool(meth.uses_race and meth.tree_family in ("rank-set", "sibling-closed"))}
    # the ERSD bound holds for the true law; a value computed on a law with an error can sit above
    # it, and no printed ERSD value may exceed the printed bound: raise it there (still a bound)
    raised = out["ersd_bound"]
    for r in res.values():
        if r["ersd"]:
            raised = [b if v is None else max(b, v) for b, v in zip(raised, r["tokens_per_call"])]
    out["ersd_bound_raised"] = any(b2 > b1 for b1, b2 in zip(out["ersd_bound"], raised))
    out["ersd_bound"] = raised
    out["methods"] = res
    return out


def _rows(p, q, offset, ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence=0.95, rank_tol=1e-4):
    return [_position(p[i], q[i], ks, methods, tree, trials, seed + offset + i, exact_max_vocab, eps, confidence,
                      rank_tol)
            for i in range(len(p))]


def _default_methods(vocab: int, kmax: int) -> list:
    return list(default_methods("bound", vocab=vocab, kmax=kmax))


def speedup_report(target, draft, k=DEFAULT_K, methods=None, tree: str = "optimal", cost: float | None = None,
                   per_position: bool = False, logits: bool = False, temperature: float = 1.0,
                   trials: int = 1000, seed: int = 0, exact_max_vocab: int = 64, eps: float = 1e-4,
                   pfr: bool | None = None, n_jobs: int = 1, confidence: float = 0.95,
                   rank_tol: float = 1e-4, max_k: int | None = MAX_K) -> BoundReport:
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
        truncated law (K = min(max(64, k), 1024)) with a guaranteed l1 error
        aimed at ``rank_tol`` (:func:`chansim.theory.rank_law`, docs/theory.md §5;
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

    Returns
    -------
    BoundReport

    Examples
    --------
    >>> rep = speedup_report([0.5, 0.3, 0.2], [0.3, 0.3, 0.4], k=[1, 4], methods=["sd", "ersd"])
    >>> round(rep.methods["sd"]["tokens_per_call"][0], 12)       # 1 + beta
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
    args = (ks, methods, tree, trials, seed, exact_max_vocab, eps, confidence, rank_tol)
    if n_jobs == 1 or n < 16:
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
        from ..channel import expected_log2_index
        for i, row in enumerate(rows):
            # the PFR cannot simulate p from q when q misses part of p's support (K = inf)
            covered = not np.any((p[i] > 0) & (q[i] == 0))
            row["pfr_log2_index_bits"] = float(expected_log2_index(p[i], q[i], validate=False)) if covered else None

    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    summary = {key: mean(key) for key in ("kl_nats", "tv", "alpha_sd", "alpha_er", "rank_entropy_nats",
                                          "rank_second_moment")}
    summary["kl_bits"] = summary["kl_nats"] / math.log(2)
    summary["rank_entropy_bits"] = summary["rank_entropy_nats"] / math.log(2)
    summary["rank_entropy_exact"] = all(r["rank_entropy_exact"] for r in rows)
    summary["rank_entropy_ci"] = [float(np.mean([r["rank_entropy_ci"][j] for r in rows])) for j in (0, 1)]
    summary["rank_entropy_interval"] = summary["rank_entropy_ci"]
    summary["rank_entropy_guaranteed"] = all(r["rank_entropy_guaranteed"] for r in rows)
    summary["rank_law_error"] = float(max(r["rank_law_error"] for r in rows))
    if n == 1:
        summary["rank_probs"] = rows[0]["rank_probs"]
        summary["rank_tail"] = rows[0]["rank_tail"]
    akv = [r["asymptote_within_1pct_from_k"] for r in rows]
    summary["asymptote_within_1pct_from_k"] = None if any(v is None for v in akv) else int(max(akv))
    why = sorted({r["asymptote_note"] for r in rows if r.get("asymptote_note")})
    summary["asymptote_note"] = "; ".join(why[:3]) if why else None
    pfr_ok = pfr and all(r["pfr_log2_index_bits"] is not None for r in rows)
    summary["pfr_log2_index_bits"] = mean("pfr_log2_index_bits") if pfr_ok else None
    meths = {}
    for name in methods:
        toks, deps, ivs, marks = [], [], [], []
        for i in range(len(ks)):
            vals = [r["methods"][name]["tokens_per_call"][i] for r in rows]
            toks.append(None if any(v is None for v in vals) else float(np.mean(vals)))
            dv = [r["methods"][name]["depth"][i] for r in rows]
            deps.append(None if any(v is None for v in dv) else float(np.mean(dv)))
            iv = [r["methods"][name]["interval"][i] for r in rows]      # the mean's interval: mean of the ends
            ivs.append(None if toks[-1] is None or any(v is None for v in iv)
                       else [float(np.mean([v[0] for v in iv])), float(np.mean([v[1] for v in iv]))])
            marks.append(all(r["methods"][name]["exact_k"][i] for r in rows))
        entry = {"k": ks, "tokens_per_call": toks, "interval": ivs,
                 "interval_guaranteed": all(r["methods"][name]["interval_guaranteed"] for r in rows),
                 "exact": all(marks), "exact_k": marks, "draft_depth": deps}
        if cost is not None:
            sp_ = []
            for i in range(len(ks)):
                vals = [(r["methods"][name]["tokens_per_call"][i], r["methods"][name]["depth"][i]) for r in rows]
                sp_.append(None if any(v is None for v, _ in vals)
                           else float(np.mean([v / (1 + cost * d) for v, d in vals])))
            entry["speedup"] = sp_
        meths[name] = entry
    bound = {"k": ks, "value": [float(np.mean([r["ersd_bound"][i] for r in rows])) for i in range(len(ks))],
             "paper_form": [float(np.mean([r["ersd_bound_paper"][i] for r in rows])) for i in range(len(ks))],
             "bounds": "every ERSD tree of k drafted nodes (ersd, ersd-topm), not the other methods"}
    asym_cols = [[r["asymptote"][i] for r in rows] for i in range(len(ks))]
    asym = {"k": ks, "value": [None if any(v is None for v in c) else float(np.mean(c)) for c in asym_cols]}
    notes = []
    if not summary["rank_entropy_exact"] and summary["rank_entropy_guaranteed"]:
        notes.append(f"rank law with guaranteed l1 error <= {summary['rank_law_error']:.1e} "
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
    per = None
    if per_position:
        per = []
        for r in rows:
            d = {key: r[key] for key in ("kl_nats", "tv", "alpha_sd", "alpha_er", "rank_entropy_nats",
                                         "rank_second_moment", "ersd_bound", "asymptote", "rank_entropy_interval",
                                         "rank_law_error")}
            d["kl_bits"] = d["kl_nats"] / math.log(2)
            d["methods"] = {m: {"k": ks, "tokens_per_call": r["methods"][m]["tokens_per_call"]} for m in methods}
            if pfr:
                d["pfr_log2_index_bits"] = r["pfr_log2_index_bits"]
            per.append(d)
    return BoundReport(ks, tree, n, vocab, summary, meths, bound, asym, cost, per, notes)
