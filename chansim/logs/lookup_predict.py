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
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..drafts.proposers import call_lengths, parse_draft
from ..common.stats import bootstrap_ratio_interval, bootstrap_ratios

__all__ = ["lookup_log_calls", "lookup_metrics", "predict_lookup", "lookup_wall_speedup", "choose_draft",
           "format_lookup_rows"]


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
    "prefill_per_token": [seconds, ...] (optional)}``; with no ``propose`` the proposals' own time
    measured by :func:`lookup_log_calls` is used; with ``prefill_per_token`` the prompt's pre-fill
    :math:`L_i\, c_{\text{pre}}` is added to both runs of sequence i (end-to-end speed-up, as measured).
    Returns ``{mean, ci_low, ci_high, seconds_per_token, autoregressive_seconds}``.
    """
    prop = costs.get("propose")
    if prop is None:
        prop = calls["propose_seconds"] / max(1, calls["proposals"])
    tokens = np.asarray(calls["tokens"], dtype=float)

    def seconds(which_call):
        return np.array([sum(_call_cost(costs, int(mm) + 1, which_call) for mm in m) + prop * m.size
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


def choose_draft(rows: Sequence[dict]) -> dict:
    """The row with the largest predicted wall-clock speed-up (the hardware-aware choice)."""
    scored = [r for r in rows if r.get("wall_speedup")]
    if not scored:
        raise ValueError("no row has a predicted wall-clock speed-up (pass costs to predict_lookup)")
    return max(scored, key=lambda r: r["wall_speedup"]["mean"])


def format_lookup_rows(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`predict_lookup` rows."""
    def iv(x):
        return f"{x['mean']:.3f} [{x['ci_low']:.3f}, {x['ci_high']:.3f}]" if x else "-"

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

