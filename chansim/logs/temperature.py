r"""Sampling settings as users set them (temperature, top-k, top-p, greedy) and predictions at any temperature.

:class:`SamplingSettings` turns log-probabilities (or logits) into the distribution a
sampler with those settings draws from, in the order transformers applies them:

1. temperature :math:`T > 0`: :math:`\mathrm{softmax}(\ell / T)`; :math:`T = 0` is *greedy*: all mass
   on :math:`\arg\max_x \ell_x` (ties: the smallest id, as ``torch.argmax``);
2. top-k (``k > 0``): keep the k largest probabilities (ties at the k-th value: smallest ids first);
3. top-p (``p < 1``): keep the smallest set of most likely tokens whose mass reaches p
   (the token that crosses p is kept), renormalise.

Every exact verification method stays exact for any pair of such laws: the verifiers only
need :math:`p` and :math:`q` as distributions. Support mismatches are handled by the rules
themselves: a drafted token outside the target's support (:math:`p(x) = 0`, e.g. cut by the
target's top-k) is always rejected (:math:`\min(p, q)(x) = 0`); a target token outside the
draft's support can only come from the residual/fallback; in a race, a token with
:math:`q(x) = 0` never wins the draft race.  **Greedy** target (T = 0): :math:`p = \delta_{x^*}`,
so sd accepts with probability :math:`q(x^*)` and a greedy draft too gives acceptance
:math:`[\arg\max q = x^*]` -- the familiar greedy rule "accept while the draft's token equals
the target's argmax" is the special case, not a separate algorithm.

Predicting at another temperature from a T = 1 log: stored log-probs are logits up to a
per-row constant, so :math:`p_T = \mathrm{softmax}(\log p_1 / T)` exactly. The logged *paths*
were sampled at T = 1, however, so the exact path prediction (:mod:`chansim.predict`) does
not apply; :func:`temperature_sweep` uses the i.i.d. model at each logged context
(:func:`chansim.theory.expectations.expected_tokens` on :math:`(p_{t,T}, q_{t,T'})`, averaged
over positions), the model ``chansim bound`` uses for a batch of positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["SamplingSettings", "temperature_sweep", "format_sweep", "plot_sweep"]


@dataclass(frozen=True)
class SamplingSettings:
    """Temperature (0 = greedy), top-k (0 = off) and top-p (1 = off) of one model's sampler.

    >>> SamplingSettings(0.0).apply(np.log([[0.2, 0.5, 0.3]])).tolist()
    [[0.0, 1.0, 0.0]]
    >>> np.round(SamplingSettings(1.0, top_k=2).apply(np.log([[0.2, 0.5, 0.3]])), 3).tolist()
    [[0.0, 0.625, 0.375]]
    >>> np.round(SamplingSettings(1.0, top_p=0.6).apply(np.log([[0.2, 0.5, 0.3]])), 3).tolist()
    [[0.0, 0.625, 0.375]]
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def apply(self, log_probs) -> np.ndarray:
        """Distribution sampled under these settings, float64, same shape as ``log_probs`` (rows on the last axis)."""
        lp = np.asarray(log_probs, dtype=np.float64)
        if np.isnan(lp).any() or np.isposinf(lp).any():
            raise ValueError("log-probs/logits contain NaN or +inf")
        if self.greedy:
            out = np.zeros_like(lp)
            np.put_along_axis(out, lp.argmax(-1)[..., None], 1.0, axis=-1)
            return out
        z = lp / self.temperature
        z = z - z.max(-1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(-1, keepdims=True)
        if self.top_k and self.top_k < prob.shape[-1]:
            order = np.argsort(-prob, axis=-1, kind="stable")          # ties: smaller id first
            cut = np.zeros_like(prob, dtype=bool)
            np.put_along_axis(cut, order[..., self.top_k:], True, axis=-1)
            prob = np.where(cut, 0.0, prob)
            prob /= prob.sum(-1, keepdims=True)
        if self.top_p < 1:
            order = np.argsort(-prob, axis=-1, kind="stable")
            sorted_p = np.take_along_axis(prob, order, axis=-1)
            before = np.cumsum(sorted_p, axis=-1) - sorted_p              # mass of strictly more likely tokens
            drop_sorted = before >= self.top_p
            cut = np.zeros_like(prob, dtype=bool)
            np.put_along_axis(cut, order, drop_sorted, axis=-1)
            prob = np.where(cut, 0.0, prob)
            prob /= prob.sum(-1, keepdims=True)
        return prob

    def label(self) -> str:
        s = "greedy" if self.greedy else f"T={self.temperature:g}"
        if self.top_k:
            s += f", top-k {self.top_k}"
        if self.top_p < 1:
            s += f", top-p {self.top_p:g}"
        return s


def temperature_sweep(target_log_probs, draft_log_probs, temperatures: Sequence[float],
                      draft_temperatures: Sequence[float] | None = None, methods: Sequence[str] | None = None,
                      trees: Sequence[str] = ("chain:1", "chain:4", "batch:4"), target_top_k: int = 0,
                      target_top_p: float = 1.0, draft_top_k: int = 0, draft_top_p: float = 1.0,
                      trials: int = 2000, seed: int = 0) -> list[dict]:
    r"""Tokens per call of each method and tree at each (target, draft) temperature, i.i.d. model per context.

    Parameters
    ----------
    target_log_probs, draft_log_probs : array_like, shape (positions, V)
        Log-probs (or logits) at temperature 1, e.g. a log's rows.
    temperatures : sequence of float
        Target temperatures (0 = greedy).
    draft_temperatures : sequence of float, optional
        Draft temperature for each target temperature (default: the same).
    methods, trees
        As in :func:`chansim.theory.expectations.expected_tokens` (each method on the trees it accepts).

    Returns
    -------
    list of dict
        ``temperature``, ``draft_temperature``, ``method``, ``tree``, ``k``, ``tokens_per_call``
        (mean over positions of the per-context expectation), ``exact`` (all per-position values
        exact), ``sd_acceptance`` (mean Σ min(p_T, q_T')), ``positions``.
    """
    from ..verify.registry import default_methods

    methods = list(methods) if methods else list(default_methods("temperature"))
    from ..theory.expectations import expected_tokens
    from ..verify import as_tree

    tl = np.atleast_2d(np.asarray(target_log_probs, dtype=np.float64))
    dl = np.atleast_2d(np.asarray(draft_log_probs, dtype=np.float64))
    if tl.shape != dl.shape:
        raise ValueError(f"target and draft log-probs must have one shape, got {tl.shape} and {dl.shape}")
    temps = [float(t) for t in temperatures]
    dtemps = temps if draft_temperatures is None else [float(t) for t in draft_temperatures]
    if len(dtemps) != len(temps):
        raise ValueError(f"{len(temps)} target temperatures but {len(dtemps)} draft temperatures")
    rows = []
    for t_T, t_D in zip(temps, dtemps):
        p = SamplingSettings(t_T, target_top_k, target_top_p).apply(tl)       # [N, V]
        q = SamplingSettings(t_D, draft_top_k, draft_top_p).apply(dl)
        beta = float(np.minimum(p, q).sum(-1).mean())
        for method in methods:
            for spec in trees:
                tree = as_tree(spec)
                vals, exact = [], True
                try:
                    for i in range(p.shape[0]):
                        e = expected_tokens(method, tree, p[i], q[i], trials=trials, seed=seed + i)
                        vals.append(e.value)
                        exact &= bool(e.exact)
                except ValueError:
                    continue                                        # method does not run on this tree
                rows.append({"temperature": t_T, "draft_temperature": t_D, "method": method, "tree": spec,
                             "k": int(tree.size), "tokens_per_call": float(np.mean(vals)), "exact": exact,
                             "sd_acceptance": beta, "positions": int(p.shape[0])})
    return rows


def format_sweep(rows: list[dict]) -> str:
    """Plain-text table of :func:`temperature_sweep`."""
    lines = [f"{'T target':>9}{'T draft':>9}{'Σmin(p,q)':>11}  {'method':<11}{'tree':<10}{'tokens/call':>12}"]
    for r in rows:
        lines.append(f"{r['temperature']:>9g}{r['draft_temperature']:>9g}{r['sd_acceptance']:>11.4f}  "
                     f"{r['method']:<11}{r['tree']:<10}{r['tokens_per_call']:>12.4f}{'' if r['exact'] else ' (MC)'}")
    lines.append("(i.i.d. model at each logged context, mean over positions; T = 0 is greedy)")
    return "\n".join(lines)


def plot_sweep(rows: list[dict], path) -> None:
    """Tokens per call vs target temperature, one line per method and tree."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(r["method"], r["tree"]) for r in rows}):
        pts = sorted((r["temperature"], r["tokens_per_call"]) for r in rows if (r["method"], r["tree"]) == key)
        ax.plot(*zip(*pts), marker="o", label=f"{key[0]} {key[1]}")
    ax.set_xlabel("temperature (target = draft; 0 = greedy)")
    ax.set_ylabel("tokens per target call")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
