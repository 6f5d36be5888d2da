r"""Is a gap between predicted and measured tokens per call noise or bias?  Row z-scores, pooled tests, path checks.

Three kinds of evidence, each with its null distribution:

* **per row** (:func:`row_z`): :math:`z = (\hat R_{meas} - \hat R_{pred}) / \sqrt{s_m^2 + s_p^2}`,
  standard errors read from the two intervals (half-width / :math:`z_{(1+\gamma)/2}`).  For
  ``sd`` the measured paths are fresh samples, independent of the logged ones, so this is
  the right scale; for ``ersd`` with the log's seed the measured run *is* the logged path
  (same keyed noise), the two estimates are positively correlated and this z is conservative
  (too small in magnitude).
* **pooled** (:func:`sign_test`, :func:`stouffer`): the two-sided binomial test on the signs
  and Stouffer's :math:`\sum z_i/\sqrt n`.  Both assume independent rows.  Rows of one
  validation are *not* independent: every prediction of one log conditions on the same
  paths, and every ``ersd`` row with the log's seed uses the same keyed noise at the same
  positions, so the ``ersd`` rows of one table move together.  :func:`pool_by_group`
  therefore first averages z within (run, method) and then pools those group values.
* **along the log, no generation needed**:

  - :func:`path_law_check` -- are the logged tokens distributed as the target?  With
    :math:`c_t = \min(1, q_t(y_t)/p_t(y_t))`, :math:`E[c_t \mid \text{context}] =
    \beta_t = \sum_x \min(p_t, q_t)(x)` when :math:`y_t \sim p_t`, and
    :math:`\mathrm{Var}(c_t \mid \text{context}) = \sum_y p_t(y) c_t(y)^2 - \beta_t^2`,
    so :math:`z = \sum_t (c_t - \beta_t) / \sqrt{\sum_t \mathrm{Var}_t}` is a martingale
    sum, N(0, 1) for a long log.  A positive z says the logged text is easier for the
    draft than target text (a sampler bias, or luck of the paths), which would push every
    ``sd`` prediction from that log above the measured value.
  - :func:`ersd_noise_check` -- was the keyed noise lucky for ``ersd``?  With the log's seed,
    the draft's race at position t uses the noise that drew :math:`y_t`, so whether the
    draft's rank of :math:`y_t` is :math:`\le m` (:math:`A_t`) is fixed by the log; given the
    path, :math:`A_t \sim \mathrm{Bernoulli}(c^{ER}_t)` independently
    (:func:`chansim.predict.ersd_path_acceptance`), so
    :math:`z = \sum_t (A_t - c^{ER}_t) / \sqrt{\sum_t c^{ER}_t (1 - c^{ER}_t)}`.  From the
    :math:`A_t` the ``ersd`` run's calls follow exactly (:func:`realised_calls`): the measured
    ``ersd`` row of ``llm validate`` is this number, one draw for all trees.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as _st

from ..common.stats import normal_quantile

__all__ = ["row_z", "row_z_table", "sign_test", "stouffer", "pool_by_group", "path_law_check",
           "ersd_ranks", "ersd_noise_check", "realised_calls", "position_z", "sd_acceptance_check"]


def position_z(excess: Sequence[np.ndarray], positions: Sequence[np.ndarray]) -> float:
    r"""Self-normalised z of a sum of per-token excesses grouped by absolute position.

    With one seed for every sequence the keyed noise :math:`E(\text{seed}, n, x)` is shared by all
    sequences at absolute position n, so their excesses at n are dependent; the per-position sums
    :math:`D_n` are still martingale differences, so :math:`z = \sum_n D_n / \sqrt{\sum_n D_n^2}`
    is N(0, 1) for many positions whatever the dependence inside a position.

    >>> round(position_z([np.array([1.0, -1.0])], [np.array([0, 1])]), 6)
    0.0
    """
    ex = np.concatenate([np.asarray(e, dtype=float) for e in excess])
    pos = np.concatenate([np.asarray(n, dtype=np.int64) for n in positions])
    _, inv = np.unique(pos, return_inverse=True)
    sums = np.bincount(inv, weights=ex)                                   # [distinct positions]
    ss = float((sums ** 2).sum())
    return float(sums.sum() / math.sqrt(ss)) if ss > 0 else 0.0


def _positions(run, i: int, length: int) -> np.ndarray:
    return len(run.prompts[i]) + np.arange(length, dtype=np.int64)


def _se(interval: dict, confidence: float) -> float:
    return (float(interval["ci_high"]) - float(interval["ci_low"])) / (2 * normal_quantile(confidence))


def row_z(row: dict, confidence: float = 0.95) -> float:
    """z-score of measured minus predicted tokens per call of one validation row (module docstring).

    >>> iv = lambda m, h: {"mean": m, "ci_low": m - h, "ci_high": m + h}
    >>> round(row_z({"predicted": iv(2.0, 0.0392), "measured": iv(1.9, 0.0392 * 3 ** 0.5)}), 3)
    -2.5
    """
    pred, meas = row.get("predicted"), row.get("measured")
    if not pred or not meas:
        raise ValueError(f"row {row.get('method')} {row.get('tree')} has no prediction or no measurement")
    se = math.hypot(_se(pred, confidence), _se(meas, confidence))
    if se <= 0:
        raise ValueError(f"row {row.get('method')} {row.get('tree')} has zero-width intervals: no z-score")
    return (float(meas["mean"]) - float(pred["mean"])) / se


def row_z_table(rows: Iterable[dict], confidence: float = 0.95, run: str = "") -> list[dict]:
    """One record per row with a prediction: ``run``, ``method``, ``tree``, ``predicted``, ``measured``, ``ratio``, ``z``."""
    out = []
    for r in rows:
        if not r.get("predicted") or not r.get("measured"):
            continue
        out.append({"run": run, "method": r["method"], "tree": r["tree"], "predicted": r["predicted"]["mean"],
                    "measured": r["measured"]["mean"], "ratio": r["measured"]["mean"] / r["predicted"]["mean"],
                    "z": row_z(r, confidence)})
    return out


def sign_test(values: Sequence[float]) -> dict:
    """Two-sided binomial sign test of ``values`` (zeros dropped): ``below``, ``above``, ``p_value``.

    >>> sign_test([-1, -2, -0.5, 3])["p_value"]
    0.625
    """
    v = np.asarray(values, dtype=float)
    below, above = int((v < 0).sum()), int((v > 0).sum())
    n = below + above
    p = 1.0 if n == 0 else float(_st.binomtest(below, n, 0.5).pvalue)
    return {"below": below, "above": above, "p_value": p}


def stouffer(zs: Sequence[float]) -> dict:
    r"""Pooled :math:`z = \sum z_i / \sqrt n` of independent z-scores and its two-sided p-value.

    >>> round(stouffer([1.0, 1.0, 1.0, 1.0])["z"], 6)
    2.0
    """
    z = np.asarray(zs, dtype=float)
    if z.size == 0:
        raise ValueError("no z-scores to pool")
    pooled = float(z.sum() / math.sqrt(z.size))
    return {"z": pooled, "p_value": float(2 * _st.norm.sf(abs(pooled))), "n": int(z.size)}


def pool_by_group(records: Sequence[dict], key=("run", "method")) -> dict:
    r"""Average z within each group (rows that share paths or noise), then pool the groups.

    A group's mean of m correlated z-scores is treated as one z-score of its own (conservative:
    with correlation 1 it is exactly one; with less, its variance is below 1).  Returns
    ``groups`` (``{name: (mean z, rows)}``), ``sign`` (:func:`sign_test` on the group means)
    and ``stouffer`` (on the group means).
    """
    groups: dict = {}
    for r in records:
        groups.setdefault(" ".join(str(r[k]) for k in key), []).append(float(r["z"]))
    means = {g: (float(np.mean(v)), len(v)) for g, v in groups.items()}
    vals = [m for m, _ in means.values()]
    return {"groups": means, "sign": sign_test(vals), "stouffer": stouffer(vals)}


def path_law_check(run) -> dict:
    r"""Do the logged tokens follow the target?  :math:`\sum_t (c_t - \beta_t)` against its null spread.

    Returns ``positions``, ``mean_c`` (path acceptance of one sd draft along the logged tokens),
    ``mean_beta`` (:math:`\overline{\sum\min(p_t,q_t)}` over the same contexts), ``z`` (sequences
    independent) and its two-sided ``p_value``, ``z_position`` / ``p_value_position``
    (:func:`position_z`: valid when the sequences share keyed noise), and per sequence
    ``sequence_excess`` = :math:`\sum_t (c_t - \beta_t)`.
    """
    diffs, variances, cs, betas, per_seq, where = [], [], [], [], [], []
    for i, (p, q, y) in enumerate(run.sequences()):      # p, q: [T, V]; y: [T]
        where.append(_positions(run, i, len(y)))
        rows = np.arange(len(y))
        ratio = np.minimum(1.0, np.divide(q, p, out=np.ones_like(p), where=p > 0))   # c(y) for every y, [T, V]
        beta = np.minimum(p, q).sum(-1)                                              # [T]
        var = (p * ratio ** 2).sum(-1) - beta ** 2                                   # [T]
        c = ratio[rows, y]
        diffs.append(c - beta)
        variances.append(np.maximum(var, 0.0))
        cs.append(c)
        betas.append(beta)
        per_seq.append(float((c - beta).sum()))
    d, v = np.concatenate(diffs), np.concatenate(variances)
    z = float(d.sum() / math.sqrt(v.sum())) if v.sum() > 0 else 0.0
    zp = position_z(diffs, where)
    return {"positions": int(d.size), "mean_c": float(np.concatenate(cs).mean()),
            "mean_beta": float(np.concatenate(betas).mean()), "z": z,
            "p_value": float(2 * _st.norm.sf(abs(z))), "z_position": zp,
            "p_value_position": float(2 * _st.norm.sf(abs(zp))), "sequence_excess": per_seq}


def ersd_ranks(run, seed: int | None = None) -> list[np.ndarray]:
    """Rank of each logged token in the draft's keyed race at its absolute position (1 = the draft's winner).

    Uses the noise :math:`E(k_i, n, x)` of :func:`chansim.sampling.races.keyed_exponential` at the absolute
    position n of the token, with the log's key :math:`k_i` of sequence i
    (:func:`chansim.logs.noise_keys.race_keys`; ``seed`` overrides the logged seed), as ERSD's draft does.
    """
    from ..sampling.races import keyed_exponential, race_times
    from .noise_keys import race_keys

    keys = race_keys(run.metadata, len(run.prompts), seed)
    out = []
    for i, (p, q, y) in enumerate(run.sequences()):
        pos = len(run.prompts[i]) + np.arange(len(y), dtype=np.int64)
        noise = keyed_exponential(keys[i], pos[:, None], np.arange(q.shape[1]))   # [T, V]
        times = race_times(noise, q)                                              # [T, V]
        ty = times[np.arange(len(y)), y]
        out.append((times < ty[:, None]).sum(-1) + 1)                             # [T]
    return out


def realised_calls(accepted: Sequence[np.ndarray], depth: int) -> int:
    """Calls of a run whose node at depth d after position t accepts iff ``accepted[d][t]`` (path fixed).

    A call at t walks d = 0, 1, ... while ``accepted[d][t + d]``; it then emits a correction (or,
    after depth ``depth``, a bonus) token, so it ends at ``t + d + 1``, cut at the end of the path.

    >>> realised_calls([np.array([True, False, True, True])], 1)   # calls at 0 (2 tokens), 2 (2 tokens)
    2
    >>> realised_calls([], 0)                                      # autoregressive: 1 token per call
    0
    """
    if depth == 0:
        return 0 if not len(accepted) else int(len(accepted[0]))
    length = len(accepted[0])
    t, calls = 0, 0
    while t < length:
        calls += 1
        d = 0
        while d < depth and t + d < length and accepted[d][t + d]:
            d += 1
        t = min(t + d + 1, length)
    return calls


def ersd_noise_check(run, widths: Sequence[int], seed: int | None = None, confidence: float = 0.95) -> dict:
    r"""Realised vs expected ERSD acceptance along the log, and the calls an ERSD run with the log's seed makes.

    ``widths``: drafts per depth (``[1] * K`` for ``chain:K``, ``[m]`` for ``batch:m``).
    Returns ``accepted`` (:math:`\sum_t A_t` at each distinct width), ``expected``
    (:math:`\sum_t c^{ER}_t`), ``z`` (module docstring), ``p_value``, ``z_position``
    (:func:`position_z`, for sequences sharing the keyed noise); ``realised_calls`` per
    sequence (what ``llm validate`` measures for ``ersd`` on that tree with the log's seed) and
    ``expected_calls`` per sequence (the prediction's :math:`E[\text{calls} \mid \text{path}]`).
    """
    from ..predict import ersd_path_acceptance, expected_calls

    ranks = ersd_ranks(run, seed)
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be positive integers, got {widths}")
    acc = {w: 0.0 for w in set(widths)}
    exp = {w: 0.0 for w in set(widths)}
    var = {w: 0.0 for w in set(widths)}
    real, expect, excess, where = [], [], {w: [] for w in set(widths)}, []
    for i, ((p, q, y), rank) in enumerate(zip(run.sequences(), ranks)):
        where.append(_positions(run, i, len(y)))
        c = {w: ersd_path_acceptance(p, q, y, w) for w in set(widths)}           # [T] per width
        a = {w: rank <= w for w in set(widths)}
        for w in set(widths):
            acc[w] += float(a[w].sum())
            exp[w] += float(c[w].sum())
            var[w] += float((c[w] * (1 - c[w])).sum())
            excess[w].append(a[w] - c[w])
        real.append(realised_calls([a[w] for w in widths], len(widths)))
        expect.append(float(expected_calls(np.stack([c[w] for w in widths]))[0]))
    z = {w: (acc[w] - exp[w]) / math.sqrt(var[w]) if var[w] > 0 else 0.0 for w in acc}
    return {"widths": widths, "accepted": acc, "expected": exp, "z": z,
            "p_value": {w: float(2 * _st.norm.sf(abs(v))) for w, v in z.items()},
            "z_position": {w: position_z(excess[w], where) for w in excess},
            "realised_calls": real, "expected_calls": expect,
            "tokens": [int(len(t)) for t in run.tokens]}


class _Recorder:
    """A source wrapper that keeps the rows of its latest ``tree_probs`` call."""

    def __init__(self, source):
        self.source = source
        self.vocab_size = source.vocab_size
        self.last = None

    def tree_probs(self, prefix, parents, tokens):
        self.last = np.asarray(self.source.tree_probs(prefix, parents, tokens))
        return self.last


def sd_acceptance_check(target_source, draft_source, prompts: Sequence[Sequence[int]], lengths: Sequence[int],
                        depth: int, seed: int = 0, method: str | None = None) -> dict:
    r"""Does ``sd`` accept at the rate :math:`\beta = \sum_x \min(p, q)` at the contexts it visits?

    Runs ``method`` (a chain method that is sd on chains; default: the registry's
    ``role("chain-reference")``, sd itself) on ``chain:depth`` step by step
    (:func:`chansim.verify.speculative_step`) with :class:`~chansim.verify.GeneratorNoise` seeded
    ``seed + i`` for prompt i (so prompts are independent), and at every verified node d of a
    call compares the event "accepted" with :math:`\beta_d = \sum_x \min(p_d, q_d)(x)` of the
    rows the sources returned for that node.  Given the call's past, the event is
    Bernoulli(:math:`\beta_d`), so :math:`z = \sum(\text{event} - \beta) / \sqrt{\sum\beta(1-\beta)}`
    is N(0, 1) for many events.  No log is involved: this checks the generation side alone.

    Returns ``events``, ``accepted``, ``expected``, ``z``, ``p_value``, ``calls``, ``tokens``,
    ``mean_beta`` and ``tokens_per_call``.
    """
    from ..verify import GeneratorNoise, as_tree, speculative_step
    from ..verify.registry import role

    method = role("chain-reference") if method is None else method

    tree = as_tree(f"chain:{int(depth)}")
    target, draft = _Recorder(target_source), _Recorder(draft_source)
    ev, betas, calls, tokens = [], [], 0, 0
    for i, (prompt, n) in enumerate(zip(prompts, lengths)):
        noise = GeneratorNoise(np.random.default_rng(int(seed) + i))
        text, start = [int(t) for t in prompt], len(prompt)
        while len(text) - start < int(n):
            step = speculative_step(method, tree, text, target, draft, noise)
            p, q = target.last, draft.last                    # rows of nodes 0..depth (chain order)
            for d, event in enumerate(step.events):
                ev.append(bool(event))
                betas.append(float(np.minimum(p[d], q[d]).sum()))
            calls += 1
            text.extend(step.tokens.tolist())
        tokens += int(n)
    e, b = np.asarray(ev, dtype=float), np.asarray(betas)
    var = float((b * (1 - b)).sum())
    z = float((e.sum() - b.sum()) / math.sqrt(var)) if var > 0 else 0.0
    return {"events": int(e.size), "accepted": int(e.sum()), "expected": float(b.sum()), "z": z,
            "p_value": float(2 * _st.norm.sf(abs(z))), "calls": calls, "tokens": tokens,
            "mean_beta": float(b.mean()) if b.size else float("nan"), "tokens_per_call": tokens / max(calls, 1)}
