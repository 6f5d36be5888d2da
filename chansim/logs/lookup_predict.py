r"""Tokens per call and wall-clock speed-up of deterministic drafts (prompt lookup, n-gram), predicted from a log.

Why a log predicts them exactly in law.  With a point-mass draft :math:`q_j = \delta_{d_j}` every
method accepts drafted token :math:`d_j` iff the target's token at that node equals it
(:mod:`chansim.drafts.proposers`), and the generated text is a target sample.  So the calls of a run
are a function of its text (:func:`chansim.drafts.call_lengths`), and a log's sampled continuations
(target samples, whatever produced them) give, sequence by sequence, exactly the calls a
speculative run *would* make on that text: an unbiased sample of the run's call structure on the
log's prompts, with no model of acceptance in between.  The prediction is

.. math:: \widehat{\text{tokens/call}} = \frac{\sum_i T_i}{\sum_i C_i},

:math:`T_i` the tokens and :math:`C_i` the calls of sequence i, with a percentile bootstrap over
sequences (:func:`chansim.common.stats.bootstrap_ratio_interval`).  ERSD run with the log's seed even
reproduces the logged text, hence these very calls.

Acceptance probabilities from the logged distributions.  A drafted node at text position s is
*reached* when every earlier node of its call was accepted; its context is then the logged text,
so its acceptance probability is read off the log: :math:`\beta = p_s(d)` (sd's
:math:`\sum_x \min(p_s(x), \delta_d(x))`; for a greedy log, ``metadata["decoding"] == "greedy"``,
:math:`p_s` is the point mass on the row's argmax, so :math:`\beta \in \{0, 1\}` and the realised
acceptances must equal the expected ones exactly).  The realised acceptances minus these probabilities
form a martingale, so

.. math:: z = \frac{\sum_{\text{reached}} (\mathbb 1[y_s = d] - p_s(d))}{\sqrt{\sum p_s(d)(1 - p_s(d))}}

is approximately N(0, 1) when the logged tokens are target samples (``acceptance_z``).

vLLM-style metrics (over calls that proposed something, "drafts"): mean acceptance length
:math:`1 + \sum a / n_{\text{drafts}}`, per-position acceptance rate
:math:`\#\{a \ge j\} / n_{\text{drafts}}`, draft efficiency :math:`\sum a / \sum m` (accepted over
proposed tokens), and the proposal rate :math:`n_{\text{drafts}} / C`.

Wall clock.  A call verifying n tokens (the last committed token + m = n - 1 drafted ones) costs
:math:`c(n)` (measured on the device, :func:`chansim.llm.wallclock.measure_call_costs`), a proposal
:math:`c_d`, autoregressive decoding :math:`c(1)` per token, so

.. math:: \hat S = \frac{\sum_i \big(L_i c_{\text{pre}} + T_i\, c(1)\big)}
          {\sum_i \big(L_i c_{\text{pre}} + \sum_{\text{calls}} (c(m + 1) + c_d)\big)},

with :math:`L_i c_{\text{pre}}` the pre-fill of prompt i (its length times the measured pre-fill cost
per token; both runs pay it, as the measured end-to-end times do; 0 when not measured).

Its interval: the bootstrap over sequences at the median costs, widened by the costs' quartiles
(low end: autoregressive at its first quartile and calls at their third, and conversely).

Overheads of a real run.  :math:`c(n)` is measured call by call at a fixed context with random
proposals; a real decoding loop pays more per speculative call than that (bookkeeping of the text
and the KV trie, proposals against a growing text, accepted nodes' verification) -- on this CPU the
speed-ups of chansim's sd measured in ``docs/llm_validation.md`` sat 0.02-0.32 below their
predictions, more for drafts that make more calls.  With ``costs["call_overhead"]`` = :math:`o` and
``costs["token_overhead"]`` = :math:`v` (both in units of :math:`c(1)`, so they carry over between
machine loads) a call proposing m tokens costs :math:`c(m + 1) + c_d + (o + v\,m)\, c(1)`.
:func:`calibrate_overheads` fits o and v (least squares, both >= 0) to a measured run of
:func:`chansim.llm.lookup.measure_lookup_speedups`, each prompt's speculative wall time scaled by its
own autoregressive one (so a load change between prompts cancels).

The choice (:func:`choose_draft`): the largest predicted speed-up (``by="mean"``) or the largest low
end of its interval (``by="low"``: when two drafts' predictions are within noise, the one whose
worse case is better -- usually the draft that verifies fewer tokens per call, the least exposed to
the cost model's error).
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..drafts.proposers import call_lengths, parse_draft
from ..common.stats import format_interval, bootstrap_ratio_interval, bootstrap_ratios
from ..verify.registry import baseline, role

__all__ = ["lookup_log_calls", "lookup_metrics", "predict_lookup", "lookup_wall_speedup", "choose_draft",
           "calibrate_overheads", "format_lookup_rows"]


def lookup_log_calls(logged, draft) -> dict:
    """The calls of ``draft`` on every logged sequence (:func:`chansim.drafts.call_lengths`).

    Parameters
    ----------
    logged : chansim.logs.format.LoggedSequences
        Any log (prompts and sampled continuations).
    draft : str or draft

    Returns
    -------
    dict
        ``draft`` (name), ``k`` (its draft length), ``proposed`` / ``accepted`` (lists of int arrays,
        one per sequence), ``tokens`` (T_i), ``propose_seconds`` (wall time of all proposals, on this
        machine) and ``proposals`` (their number).
    """
    d = parse_draft(draft)
    proposed, accepted, tokens = [], [], []
    t0 = time.perf_counter()
    for prompt, text in zip(logged.prompts, logged.tokens):
        m, a = call_lengths(d, prompt, text)
        proposed.append(m)
        accepted.append(a)
        tokens.append(int(len(text)))
    seconds = time.perf_counter() - t0
    return {"draft": d.name, "k": int(d.num_tokens), "proposed": proposed, "accepted": accepted, "tokens": tokens,
            "prompt_lengths": [len(p) for p in logged.prompts],
            "propose_seconds": seconds, "proposals": int(sum(m.size for m in proposed))}


def _node_probabilities(run, draft, calls: dict):
    """``(p_s(d), accepted)`` at every reached drafted node of every sequence (module docstring)."""
    d = parse_draft(draft)
    greedy = run.metadata.get("decoding") == "greedy"
    probs, hits = [], []
    for i, (prompt, text) in enumerate(zip(run.prompts, run.tokens)):
        a0 = int(run.offsets[i])
        rows = np.asarray(run.target_log_probs[a0:a0 + len(text)], dtype=np.float64)     # [T, V]
        if greedy:                                   # the greedy target's law: a point mass on its argmax
            rows = np.where(np.arange(rows.shape[1]) == rows.argmax(1)[:, None], 0.0, -np.inf)
        with np.errstate(divide="ignore"):
            lse = np.log(np.exp(rows).sum(-1))                                           # [T]
        seq = np.concatenate([np.asarray(prompt, dtype=np.int64), text])
        t = 0
        for m, a in zip(calls["proposed"][i], calls["accepted"][i]):
            if m:
                prop = d.propose(seq[:len(prompt) + t])
                for j in range(min(a + 1, m, len(text) - t)):          # reached nodes: accepted ones + the first miss
                    s = t + j
                    probs.append(float(np.exp(rows[s, prop[j]] - lse[s])))
                    hits.append(bool(text[s] == prop[j]))
            t += a + 1
    return np.asarray(probs), np.asarray(hits)


def lookup_metrics(calls: dict) -> dict:
    """vLLM-style acceptance metrics of :func:`lookup_log_calls` output (module docstring)."""
    m = np.concatenate(calls["proposed"])
    a = np.concatenate(calls["accepted"])
    drafts = int((m > 0).sum())
    k = int(calls["k"])
    per_pos = [float((a >= j).sum() / drafts) if drafts else float("nan") for j in range(1, k + 1)]
    cond = [float((a >= j).sum() / ((m >= j) & (a >= j - 1)).sum()) if ((m >= j) & (a >= j - 1)).any()
            else float("nan") for j in range(1, k + 1)]
    return {"calls": int(m.size), "drafts": drafts, "proposal_rate": drafts / m.size if m.size else float("nan"),
            "mean_acceptance_length": 1 + a.sum() / drafts if drafts else float("nan"),
            "per_position_acceptance": per_pos, "conditional_acceptance": cond,
            "draft_efficiency": float(a.sum() / m.sum()) if m.sum() else float("nan"),
            "proposed_tokens": int(m.sum()), "accepted_tokens": int(a.sum())}


def _cost_quartiles(values) -> tuple[float, float, float]:
    lo, med, hi = np.quantile(np.asarray(values, dtype=float), [0.25, 0.5, 0.75])
    return float(lo), float(med), float(hi)


def _call_cost(costs: dict, n: int, which: int) -> float:
    table = costs["call"]
    key = n if n in table else str(n)
    if key not in table:
        raise ValueError(f"no measured cost for a call verifying {n} tokens (measured: "
                         f"{sorted(int(x) for x in table)}); measure up to the draft length + 1")
    return _cost_quartiles(table[key])[which]


def lookup_wall_speedup(calls: dict, costs: dict, confidence: float = 0.95, resamples: int = 2000,
                        seed: int = 0) -> dict:
    r"""Predicted wall-clock speed-up of a deterministic draft over autoregressive decoding (module docstring).

    ``costs``: ``{"call": {n: [seconds, ...]}, "propose": seconds per proposal (optional),
    "prefill_per_token": [seconds, ...] (optional), "call_overhead" / "token_overhead": per call and per
    proposed token, in units of c(1) (optional, :func:`calibrate_overheads`)}``; with no ``propose`` the proposals' own time
    measured by :func:`lookup_log_calls` is used; with ``prefill_per_token`` the prompt's pre-fill
    :math:`L_i\, c_{\text{pre}}` is added to both runs of sequence i (end-to-end speed-up, as measured).
    Returns ``{mean, ci_low, ci_high, seconds_per_token, autoregressive_seconds}``.
    """
    prop = costs.get("propose")
    if prop is None:
        prop = calls["propose_seconds"] / max(1, calls["proposals"])
    tokens = np.asarray(calls["tokens"], dtype=float)

    call_o, token_o = _overheads(costs)

    def seconds(which_call):
        c1 = _call_cost(costs, 1, which_call)
        return np.array([sum(_call_cost(costs, int(mm) + 1, which_call) for mm in m) + prop * m.size
                         + (call_o * m.size + token_o * float(np.sum(m))) * c1
                         for m in calls["proposed"]])

    pre = np.zeros(tokens.size)
    if costs.get("prefill_per_token"):
        pre = np.asarray(calls.get("prompt_lengths", [0] * tokens.size), dtype=float) * float(
            np.median(costs["prefill_per_token"]))
    ar = [_call_cost(costs, 1, w) for w in range(3)]
    spec = [seconds(w) + pre for w in range(3)]
    base = [tokens * ar[w] + pre for w in range(3)]
    mean = float(base[1].sum() / spec[1].sum())
    if tokens.size >= 2:
        lo, hi, _ = bootstrap_ratios(base[1], spec[1], confidence, resamples, seed)
    else:
        lo = hi = mean
    low_scale = (base[0].sum() / spec[2].sum()) / mean
    high_scale = (base[2].sum() / spec[0].sum()) / mean
    return {"mean": mean, "ci_low": float(min(lo, mean) * low_scale), "ci_high": float(max(hi, mean) * high_scale),
            "seconds_per_token": float((spec[1] - pre).sum() / tokens.sum()), "autoregressive_seconds": ar[1],
            "prefill_seconds": float(pre.sum())}


def predict_lookup(logged, drafts: Sequence, costs: dict | None = None, confidence: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Predicted tokens per call (and wall-clock speed-up, given ``costs``) of each draft from a log.

    Parameters
    ----------
    logged : LogRun or LoggedSequences
        With target log-probs (a :class:`~chansim.logs.format.LogRun`), each row also gets the
        acceptance check of the module docstring (``expected_accepted``, ``acceptance_z``).
    drafts : sequence of str or drafts
        e.g. ``["lookup:2", "lookup:4", "ngram:4"]``.
    costs : dict, optional
        See :func:`lookup_wall_speedup`.

    Returns
    -------
    list of dict
        Per draft: ``draft``, ``k``, ``tokens_per_call`` ``{mean, ci_low, ci_high}``, the metrics of
        :func:`lookup_metrics`, ``sequence_tokens`` / ``sequence_calls``, and ``wall_speedup``.
    """
    if not drafts:
        raise ValueError("need at least one draft")
    rows = []
    for draft in drafts:
        calls = lookup_log_calls(logged, draft)
        n_calls = [int(m.size) for m in calls["proposed"]]
        tpc = bootstrap_ratio_interval(calls["tokens"], n_calls, confidence, resamples, seed)
        row = {"draft": calls["draft"], "k": calls["k"],
               "tokens_per_call": {k: float(tpc[k]) for k in ("mean", "ci_low", "ci_high")},
               "sequence_tokens": calls["tokens"], "sequence_calls": n_calls,
               "propose_seconds_per_call": calls["propose_seconds"] / max(1, calls["proposals"])}
        row.update(lookup_metrics(calls))
        if hasattr(logged, "target_log_probs"):
            probs, hits = _node_probabilities(logged, draft, calls)
            var = float((probs * (1 - probs)).sum())
            row["reached_nodes"] = int(probs.size)
            row["expected_accepted"] = float(probs.sum())
            row["realised_accepted"] = int(hits.sum())
            row["acceptance_z"] = float((hits.sum() - probs.sum()) / np.sqrt(var)) if var > 0 else float("nan")
            row["mean_node_acceptance"] = float(probs.mean()) if probs.size else float("nan")
        row["wall_speedup"] = None if costs is None else lookup_wall_speedup(calls, costs, confidence, resamples, seed)
        rows.append(row)
    return rows


def choose_draft(rows: Sequence[dict], by: str = "mean") -> dict:
    """The row with the largest predicted wall-clock speed-up (the hardware-aware choice).

    ``by="mean"``: the largest prediction; ``by="low"``: the largest low end of its interval (module
    docstring); ties go to the row that proposes fewer tokens.
    """
    if by not in ("mean", "low"):
        raise ValueError(f"choose by 'mean' or 'low', got {by!r}")
    scored = [r for r in rows if r.get("wall_speedup")]
    if not scored:
        raise ValueError("no row has a predicted wall-clock speed-up (pass costs to predict_lookup)")
    key = "mean" if by == "mean" else "ci_low"
    return max(scored, key=lambda r: (r["wall_speedup"][key], -r.get("proposed_tokens", 0)))


def _overheads(costs: dict) -> tuple[float, float]:
    out = []
    for name in ("call_overhead", "token_overhead"):
        v = costs.get(name, 0.0) or 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"costs[{name!r}] must be a number >= 0 (in units of c(1)), got {v!r}")
        out.append(float(v))
    return out[0], out[1]


def calibrate_overheads(costs: dict, measured: dict, methods: Sequence[str] | None = None) -> dict:
    r"""Fit the per-call and per-proposed-token overheads of a real decoding loop (module docstring).

    Parameters
    ----------
    costs : dict
        Call costs (:func:`lookup_wall_speedup`), as used for the prediction.
    measured : dict or sequence of dict
        Output(s) of :func:`chansim.llm.lookup.measure_lookup_speedups` (``runs`` with, per prompt,
        ``wall_seconds``, ``n_tokens``, ``proposed``; the ``autoregressive`` runs of the same prompts).
    methods : sequence of str, optional
        Which speculative runs to fit (default: the chain reference, ``registry.role("chain-reference")``).

    Returns
    -------
    dict
        ``costs`` with ``call_overhead`` and ``token_overhead`` set (units of c(1), both >= 0), and
        ``calibration``: the number of runs fitted and the median |relative error| of the modelled
        wall time before and after.

    For prompt i with autoregressive wall time :math:`A_i`, the load factor is
    :math:`\lambda_i = A_i / (L_i c_{\text{pre}} + T_i c(1))`; a speculative run of it with wall time
    :math:`W_i` and calls of :math:`m_c` proposed tokens gives the residual
    :math:`W_i / \lambda_i - L_i c_{\text{pre}} - \sum_c (c(m_c + 1) + c_d) = c(1)\,(o\, C_i + v \sum_c m_c)`,
    solved for (o, v) >= 0 by least squares over all runs.
    """
    measured = [measured] if isinstance(measured, dict) else list(measured)
    methods = (role("chain-reference"),) if methods is None else tuple(methods)
    c1 = _call_cost(costs, 1, 1)
    pre = float(np.median(costs["prefill_per_token"])) if costs.get("prefill_per_token") else 0.0
    prop = float(costs.get("propose") or 0.0)
    X, y, base = [], [], []
    for res in measured:
        groups = {(g["method"], g["draft"]): g["runs"] for g in res["runs"]}
        ar = groups.get((baseline(), "-"))
        if ar is None:
            raise ValueError("a measured run without its autoregressive baseline cannot calibrate the overheads")
        lengths = res.get("prompt_lengths") or [0] * len(ar)
        for (method, _), runs in groups.items():
            if method not in methods:
                continue
            for i, r in enumerate(runs):
                m = np.asarray(r["proposed"], dtype=np.int64)
                lam = ar[i]["wall_seconds"] / (lengths[i] * pre + ar[i]["n_tokens"] * c1)
                model = lengths[i] * pre + sum(_call_cost(costs, int(mm) + 1, 1) for mm in m) + prop * m.size
                X.append([m.size * c1, float(m.sum()) * c1])
                y.append(r["wall_seconds"] / lam - model)
                base.append(model)
    if not X:
        raise ValueError(f"no measured runs of {list(methods)} to calibrate on")
    X, y, base = np.asarray(X), np.asarray(y), np.asarray(base)
    best = None
    for cols in ((0, 1), (0,), (1,)):                   # least squares with o, v >= 0 (2 unknowns: try the faces)
        coef = np.zeros(2)
        sol = np.linalg.lstsq(X[:, cols], y, rcond=None)[0]
        if np.any(sol < 0):
            continue
        coef[list(cols)] = sol
        err = float(((X @ coef - y) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, coef)
    coef = np.zeros(2) if best is None else best[1]
    before = float(np.median(np.abs(y) / (base + y)))
    after = float(np.median(np.abs(y - X @ coef) / (base + y)))
    return dict(costs, call_overhead=float(coef[0]), token_overhead=float(coef[1]),
                calibration={"runs": int(len(y)), "median_abs_rel_error_before": before,
                             "median_abs_rel_error_after": after})


def format_lookup_rows(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`predict_lookup` rows."""
    iv = format_interval
    lines = [f"{'draft':<16}{'tokens/call [95% CI]':<28}{'wall speed-up [95% CI]':<28}{'prop.':>6}{'MAL':>7}"
             f"{'eff.':>7}{'E[acc]/acc':>14}{'z':>7}  per-position acceptance"]
    for r in rows:
        pos = " ".join(f"{x:.2f}" for x in r["per_position_acceptance"][:8])
        e = f"{r['expected_accepted']:.1f}/{r['realised_accepted']}" if "expected_accepted" in r else "-"
        z = f"{r['acceptance_z']:+.2f}" if np.isfinite(r.get("acceptance_z", np.nan)) else "-"
        lines.append(f"{r['draft']:<16}{iv(r['tokens_per_call']):<28}{iv(r.get('wall_speedup')):<28}"
                     f"{r['proposal_rate']:>6.2f}{r['mean_acceptance_length']:>7.2f}{r['draft_efficiency']:>7.2f}"
                     f"{e:>14}{z:>7}  {pos}")
    lines.append("(prop. = share of calls with a proposal; MAL = mean acceptance length 1 + accepted/drafts; eff. = "
                 "accepted/proposed tokens; E[acc]/acc = sum of p(draft) over reached nodes vs accepted; z ~ N(0,1) "
                 "if the logged text is target text)")
    return "\n".join(lines)

