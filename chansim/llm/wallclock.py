r"""Wall-clock speed-up: predicted from tokens per call and measured forward costs, and measured end to end.

Cost model of one speculative call on a tree with depth D and :math:`n_d` nodes at depth d
(:math:`n_0 = 1`, the root):

.. math:: \tau_{\text{call}} = \sum_{d=0}^{D-1} c_q(n_d) + c_p(\text{tree}),

where :math:`c_q(n)` is the time of one draft forward feeding n new tokens (the draft
expands level d by scoring its n_d nodes in one forward; the leaf level is never scored) and
:math:`c_p(\text{tree})` the time of one target forward verifying the whole tree (the
correction token plus every node, one tree-attention pass). Autoregressive decoding costs
:math:`c_p(1)` per token, so

.. math:: S_{\text{wall}} = \frac{\text{tokens per call}\cdot c_p(1)}{\tau_{\text{call}}}

(docs/theory.md's ``--cost`` model with measured costs instead of a ratio).  The costs are
measured on the pair (:func:`measure_costs`, ``--cost auto``) with the KV caches of
:class:`~chansim.llm.scoring.TreeScorer` at a realistic context length; the interval of the
prediction combines the tokens-per-call interval with the inter-quartile range of the
repeated cost measurements.  The model leaves out the verification logic's own time (Python,
sampling), which the measured wall-clock includes: their gap is reported.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..common.stats import format_interval
from ..verify.registry import is_baseline, role

__all__ = ["level_sizes", "measure_costs", "measure_call_costs", "predict_wall_speedup", "wallclock_rows",
           "format_wallclock"]


def _random_prefix(prompt, context: int, vocab: int, rng) -> list:
    """The first ``context`` tokens of ``prompt``, extended with random ids to ``context`` tokens."""
    prefix = [int(t) for t in prompt][:context]
    return prefix + rng.integers(0, vocab, size=max(0, context - len(prefix))).tolist()


def level_sizes(tree_spec) -> list[int]:
    """Nodes at depths 0..D-1 that the draft scores (root = 1), for any tree.

    >>> level_sizes("chain:3"), level_sizes("batch:4"), level_sizes("branch:2,2")
    ([1, 1, 1], [1], [1, 2])
    """
    from ..verify import as_tree

    tree = as_tree(tree_spec)
    depth = np.asarray(tree.depth)
    return [int((depth == d).sum()) for d in range(int(tree.max_depth))]


def _timed(fn, repeats: int) -> np.ndarray:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.asarray(out)


def measure_costs(pair, prompt: Sequence[int], trees: Sequence[str], repeats: int = 7, context: int = 64,
                  seed: int = 0) -> dict:
    """Seconds of draft forwards of n tokens and of target tree verifications, measured on ``pair``.

    A prefix of ``context`` tokens (the prompt, extended with random ids) is cached; each
    repeat feeds fresh random tokens (so nothing is a cache hit): the draft ``n`` new nodes
    under the prefix, the target a new last token plus the tree's nodes. One warm-up call
    precedes each measurement.

    Returns
    -------
    dict
        ``draft`` ``{n: [seconds per repeat]}``, ``target`` ``{tree: [...]}`` (``"chain:0"``: the
        autoregressive 1-token call), ``context``, ``repeats``.
    """
    import torch

    from ..verify import as_tree
    from .scoring import TreeScorer

    rng = np.random.default_rng(seed)
    V = pair.vocab_size
    prefix = _random_prefix(prompt, context, V, rng)
    out = {"draft": {}, "target": {}, "context": len(prefix), "repeats": int(repeats)}
    sizes = sorted({n for t in trees for n in level_sizes(t)} | {1})
    with torch.no_grad():
        draft = TreeScorer(pair.draft)
        draft.next_log_probs(prefix[:-1])
        for n in sizes:
            def draft_call(n=n):
                toks = rng.integers(0, V, size=n)
                draft.tree_log_probs(prefix[:-1], [-1] + [0] * n, [-1] + toks.tolist())
            draft_call()
            out["draft"][n] = _timed(draft_call, repeats).tolist()
        target = TreeScorer(pair.target)
        target.next_log_probs(prefix[:-1])
        for spec in ["chain:0"] + [t for t in trees if t != "chain:0"]:
            tree = as_tree(spec)
            parents = np.asarray(tree.parents).tolist()

            def target_call(parents=parents):
                last = int(rng.integers(0, V))
                toks = [-1] + rng.integers(0, V, size=len(parents) - 1).tolist()
                target.tree_log_probs(prefix[:-1] + [last], parents, toks)
            target_call()
            out["target"][spec] = _timed(target_call, repeats).tolist()
    return out


def _quartiles(x) -> tuple[float, float, float]:
    a = np.asarray(x, dtype=float)
    lo, med, hi = np.quantile(a, [0.25, 0.5, 0.75])
    return float(lo), float(med), float(hi)


def predict_wall_speedup(tokens_per_call: dict, tree_spec: str, costs: dict) -> dict:
    """Predicted wall-clock speed-up over autoregressive decoding (module docstring), with an interval.

    ``tokens_per_call``: ``{mean, ci_low, ci_high}``; ``costs``: :func:`measure_costs`.
    Returns ``{mean, ci_low, ci_high, seconds_per_call, autoregressive_seconds}``.
    """
    sizes = level_sizes(tree_spec)
    if tree_spec not in costs["target"]:
        raise ValueError(f"no measured target cost for tree {tree_spec}")
    draft = [_quartiles(costs["draft"][n] if n in costs["draft"] else costs["draft"][str(n)]) for n in sizes]
    tgt = _quartiles(costs["target"][tree_spec])
    ar = _quartiles(costs["target"]["chain:0"])
    call = [sum(d[i] for d in draft) + tgt[i] for i in range(3)]
    return {"mean": tokens_per_call["mean"] * ar[1] / call[1],
            "ci_low": tokens_per_call["ci_low"] * ar[0] / call[2],
            "ci_high": tokens_per_call["ci_high"] * ar[2] / call[0],
            "seconds_per_call": call[1], "autoregressive_seconds": ar[1]}


def _seconds_per_token(row: dict, confidence: float) -> dict:
    from .validate import ratio_interval

    wall = row.get("sequence_wall_seconds")
    if not wall:
        s = row["wall_seconds"] / row["tokens"]
        return {"mean": s, "ci_low": s, "ci_high": s}
    return ratio_interval(wall, row["sequence_tokens"], confidence)


def wallclock_rows(result: dict, costs: dict, confidence: float = 0.95) -> list[dict]:
    """Predicted and measured wall-clock speed-up of every row of a validation with an autoregressive row.

    Measured: :math:`(W_{AR}/N_{AR}) / (W/N)` from total wall seconds W and tokens N; its
    interval combines the seconds-per-token ratio intervals of both runs
    (:func:`chansim.llm.validate.ratio_interval` over sequences), ends over ends.
    Rows of transformers' assisted generation (``result["hf_assisted"]`` with ``wall_speedup``)
    keep their own baseline, transformers' plain ``generate`` (:mod:`chansim.llm.hf_assisted`),
    and are predicted from the ``sd`` row of the same chain (transformers verifies with sd).
    Each row says its ``baseline``.
    """
    ar = next((r for r in result["rows"] if is_baseline(r["method"])), None)
    if ar is None:
        raise ValueError("wall-clock speed-up needs the autoregressive row (run validate with autoregressive)")
    base = _seconds_per_token(ar, confidence)
    out = []
    for r in list(result["rows"]) + list(result.get("hf_assisted", [])):
        if is_baseline(r["method"]):
            continue
        prediction = r.get("predicted")
        if r.get("wall_speedup"):            # transformers' assisted generation: against its own plain generate
            meas, baseline = dict(r["wall_speedup"]), "transformers generate"
            sd = next((x for x in result["rows"] if x["method"] == role("chain-reference") and x["tree"] == r["tree"]),
                      None)
            prediction = None if sd is None else sd.get("predicted")   # transformers verifies a chain with sd
        else:
            spt = _seconds_per_token(r, confidence)
            meas = {"mean": base["mean"] / spt["mean"], "ci_low": base["ci_low"] / spt["ci_high"],
                    "ci_high": base["ci_high"] / spt["ci_low"]}
            baseline = "chansim autoregressive"
        pred = None
        if prediction is not None and r["tree"] in costs["target"]:
            pred = predict_wall_speedup(prediction, r["tree"], costs)
        out.append({"method": r["method"], "tree": r["tree"], "k": r["k"],
                    "tokens_per_call": r["measured"]["mean"], "predicted": pred, "measured": meas,
                    "baseline": baseline, "wall_seconds": r["wall_seconds"]})
    return out


def format_wallclock(rows: list[dict], costs: dict) -> str:
    """Table of :func:`wallclock_rows` plus the measured costs."""
    ar = _quartiles(costs["target"]["chain:0"])[1]
    lines = [f"measured costs (median of {costs['repeats']}, context {costs['context']} tokens): target 1-token call "
             f"{1e3 * ar:.2f} ms; " + ", ".join(f"draft {n}-token forward {1e3 * _quartiles(v)[1]:.2f} ms"
                                                 for n, v in sorted(costs['draft'].items(), key=lambda kv: int(kv[0])))
             + "; " + ", ".join(f"target {t} {1e3 * _quartiles(v)[1]:.2f} ms" for t, v in costs["target"].items()
                                 if t != "chain:0"),
             f"{'method':<12}{'tree':<10}{'k':>3}  {'tokens/call':>11}  {'predicted wall speed-up':<26}"
             f"{'measured wall speed-up':<26}"]

    iv = format_interval
    for r in rows:
        lines.append(f"{r['method']:<12}{r['tree']:<10}{r['k']:>3}  {r['tokens_per_call']:>11.3f}  "
                     f"{iv(r['predicted']):<26}{iv(r['measured']):<26}")
    lines.append("(speed-up over autoregressive decoding of the same pair; predicted = tokens/call x c_p(1) / "
                 "(draft forwards + target tree call), costs measured on the pair; measured includes chansim's "
                 "verification overhead)")
    if any(r.get("baseline") == "transformers generate" for r in rows):
        lines.append("(hf-assisted: measured = transformers' assisted generate over its plain generate, same prompts, "
                     "interleaved, paired bootstrap over prompts; predicted = sd's predicted tokens/call on that chain "
                     "with the costs above)")
    return "\n".join(lines)


def measure_call_costs(pair, prompt: Sequence[int], sizes: Sequence[int], repeats: int = 5, context: int = 128,
                       temperature: float = 1.0, method: str | None = None, seed: int = 0, prefill: bool = True) -> dict:
    r"""Seconds of one target call verifying n tokens (the last token + a drafted chain of n - 1), n in ``sizes``.

    Each call is a whole :func:`chansim.drafts.deterministic_step` -- the target's forward over n new
    tokens under a cached prefix of ``context`` tokens (the prompt, extended with random ids), the
    conversion of its n rows to probabilities and the method's verification -- with a fresh random
    last token and random drafts (nothing is a cache hit).  This is the cost :math:`c(n)` of
    :mod:`chansim.logs.lookup_predict`, and, measured over n = 1..64, the device's answer to "how
    does a target call grow with the tokens it verifies".  Sizes are measured in an interleaved
    order (all sizes once, ``repeats`` times), so a load change spreads over all of them.

    With ``prefill`` also the pre-fill of the ``context``-token prefix in one forward, divided by its
    length (``prefill_per_token``, seconds per prompt token): both a speculative run and its
    autoregressive baseline pay it once per prompt, which dilutes the measured speed-up of short runs.

    Returns
    -------
    dict
        ``call`` ``{n: [seconds per repeat]}``, ``prefill_per_token`` (list), ``context``, ``repeats``,
        ``method`` (default: the registry's ``role("chain-reference")``, sd).
    """
    from ..drafts import deterministic_step
    from ..logs.temperature import SamplingSettings
    from ..verify import GeneratorNoise
    from .generate import ModelSource

    method = role("chain-reference") if method is None else method
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be positive integers, got {sizes}")
    rng = np.random.default_rng(seed)
    V = pair.vocab_size
    prefix = _random_prefix(prompt, context, V, rng)
    settings = SamplingSettings(float(temperature))                  # 0: greedy, as the runs it predicts
    source = ModelSource(pair.target, settings=settings)
    noise = GeneratorNoise(rng)
    out = {"call": {n: [] for n in sizes}, "context": len(prefix), "repeats": int(repeats), "method": method}
    source.tree_probs(prefix[:-1], [-1], [-1])                       # pre-fill the prefix once

    def call(n):
        last = int(rng.integers(0, V))
        proposal = rng.integers(0, V, size=n - 1)
        t0 = time.perf_counter()
        deterministic_step(method, proposal, prefix[:-1] + [last], source, noise)
        return time.perf_counter() - t0

    for n in sizes:                                                   # warm-up
        call(n)
    for _ in range(int(repeats)):
        for n in sizes:
            out["call"][n].append(call(n))
    if prefill:                                                       # the prompt's pre-fill, per token
        fresh = ModelSource(pair.target, settings=settings)
        seconds = []
        for _ in range(max(1, int(repeats) // 2)):
            fresh.reset()
            t0 = time.perf_counter()
            fresh.tree_probs(prefix, [-1], [-1])
            seconds.append((time.perf_counter() - t0) / len(prefix))
        out["prefill_per_token"] = seconds
    return out
