r"""Confidence intervals used across chansim: one home for each statistical rule.

* :func:`normal_quantile`, :func:`student_quantile` — two-sided quantiles
  :math:`z_{(1+\gamma)/2}` and :math:`t_{\nu,(1+\gamma)/2}`;
* :func:`ratio_standard_error` — delta-method standard error of a ratio estimator
  :math:`\hat R = \sum n_i / \sum c_i` over independent units;
* :func:`no_spread_fraction` — Clopper–Pearson upper bound on the fraction of events
  never observed in n trials;
* :func:`wilson_interval` — Wilson score interval for binomial proportions;
* :func:`ratio_interval`, :func:`bootstrap_ratios`, :func:`bootstrap_ratio_interval`
  — intervals for tokens per call measured over sequences.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

__all__ = ["format_interval", "normal_quantile", "student_quantile", "ratio_standard_error", "no_spread_fraction",
           "wilson_interval", "ratio_interval", "bootstrap_ratios", "bootstrap_ratio_interval"]


def format_interval(x: dict | None, empty: str = "-") -> str:
    """``"mean [ci_low, ci_high]"`` to 3 decimals for an interval dict (``empty`` for None or ``{}``).

    >>> format_interval({"mean": 1.5, "ci_low": 1.25, "ci_high": 1.75})
    '1.500 [1.250, 1.750]'
    """
    return f"{x['mean']:.3f} [{x['ci_low']:.3f}, {x['ci_high']:.3f}]" if x else empty


def _check_confidence(confidence) -> float:
    """``confidence`` as a float in (0, 1); ``ValueError`` otherwise (bool, NaN, 0, 1, ...)."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.integer, np.floating)) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return float(confidence)


def _check_count(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ``ValueError`` for bools, non-integers and smaller values."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or value != value or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_units(numer, denom, what: str = "numer and denom"):
    n, c = np.asarray(numer, dtype=float).reshape(-1), np.asarray(denom, dtype=float).reshape(-1)
    if n.size == 0 or n.shape != c.shape:
        raise ValueError(f"{what} must be non-empty and of equal length, got {n.size} and {c.size}")
    if np.any(c <= 0) or np.any(n < 0) or not (np.all(np.isfinite(n)) and np.all(np.isfinite(c))):
        raise ValueError(f"{what}: denominators must be positive and numerators non-negative (finite)")
    return n, c


def normal_quantile(confidence: float) -> float:
    """Two-sided normal quantile :math:`z_{(1+\\gamma)/2}`.

    >>> round(normal_quantile(0.95), 4)
    1.96
    """
    confidence = _check_confidence(confidence)
    return float(_st.norm.ppf(0.5 + confidence / 2))


def student_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t quantile :math:`t_{\\nu,(1+\\gamma)/2}` with ``dof`` degrees of freedom.

    >>> round(student_quantile(0.95, 3), 3)
    3.182
    """
    confidence = _check_confidence(confidence)
    dof = _check_count(dof, "dof")
    return float(_st.t.ppf(0.5 + confidence / 2, dof))


def ratio_standard_error(numer, denom, ratio: float) -> float:
    r"""Delta-method standard error of :math:`\hat R = \sum n_i/\sum c_i` over s >= 2 independent units,

    :math:`\sqrt{\tfrac{s}{s-1}\sum_i (n_i - \hat R c_i)^2}\,/\sum_i c_i`.

    >>> round(ratio_standard_error([2.0, 4.0], [1.0, 1.0], 3.0), 6)
    1.0
    """
    n, c = _check_units(numer, denom)
    s = n.size
    if s < 2:
        raise ValueError(f"ratio_standard_error needs at least 2 units, got {s}")
    if not math.isfinite(ratio):
        raise ValueError(f"ratio must be finite, got {ratio!r}")
    dev = n - ratio * c
    return math.sqrt(s / (s - 1) * float((dev ** 2).sum())) / float(c.sum())


def no_spread_fraction(confidence: float, trials: int) -> float:
    r"""Upper bound :math:`u = 1 - ((1-\gamma)/2)^{1/n}` on the probability of an event never seen in n trials.

    The Clopper–Pearson upper limit for 0 events (two-sided level :math:`\gamma`).

    >>> round(no_spread_fraction(0.95, 100), 5)
    0.03622
    """
    confidence = _check_confidence(confidence)
    trials = _check_count(trials, "trials")
    return 1.0 - ((1.0 - confidence) / 2.0) ** (1.0 / trials)


def wilson_interval(successes, trials: int, confidence: float = 0.95):
    """Wilson score interval for binomial proportions (vectorised).

    ``successes`` must lie in [0, ``trials``] (``ValueError`` otherwise, as for ``trials`` < 1
    or ``confidence`` outside (0, 1)).

    >>> lo, hi = wilson_interval(5, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.2366, 0.7634)
    """
    confidence = _check_confidence(confidence)
    trials = _check_count(trials, "trials")
    z = _st.norm.ppf(0.5 + confidence / 2)
    raw = np.asarray(successes)
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"successes must be numbers, got dtype {raw.dtype}")
    k = raw.astype(float)
    if not np.all((k >= 0) & (k <= trials)):
        bad = k[~((k >= 0) & (k <= trials))].ravel()[0]
        raise ValueError(f"successes must lie in [0, trials = {trials}], got {float(bad):g}")
    phat = k / trials
    denom = 1 + z**2 / trials
    centre = (phat + z**2 / (2 * trials)) / denom
    half = z * np.sqrt(phat * (1 - phat) / trials + z**2 / (4 * trials**2)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def ratio_interval(tokens, calls, confidence: float = 0.95, call_tokens=None, min_sequences: int = 4,
                   max_call_tokens: int | None = None) -> dict:
    r"""Ratio estimate :math:`\hat R = \sum n_i / \sum c_i` over s sequences, with an interval.

    Two standard errors:

    * over sequences (delta method, :func:`ratio_standard_error`; sequences are the
      independent units, positions inside one share the text);
    * over calls (the randomness of the method only, as if calls were i.i.d.):
      :math:`\widehat{\mathrm{se}}_{call} = \mathrm{sd}(\text{tokens of a call}) / \sqrt{\sum_i c_i}`,
      from ``call_tokens`` (tokens of every call).

    Half-width :math:`\max(t_{s-1,(1+\gamma)/2}\,\widehat{\mathrm{se}}_{seq},\ z_{(1+\gamma)/2}\,
    \widehat{\mathrm{se}}_{call})` when :math:`s \ge` ``min_sequences``; with fewer
    sequences the sequence term is unreliable (and ``t`` huge) and only the call term is used.
    If every call produced the same number c of tokens (no spread at all), the interval is
    the one of :func:`chansim.simulate` for that case: the fraction of calls that differ
    is at most :func:`no_spread_fraction`, each by at most c - 1 below or
    ``max_call_tokens`` - c above.

    Parameters
    ----------
    tokens, calls : array_like, shape (s,)
        Tokens produced and target calls made per sequence (calls > 0).
    confidence : float
        Two-sided level in (0, 1).
    call_tokens : array_like, optional
        Tokens produced by each call (any order), for the call-level term.
    min_sequences : int
        Fewest sequences for the sequence-level term.
    max_call_tokens : int, optional
        Most tokens one call can produce (tree depth + 1): the interval is clipped to
        ``[1, max_call_tokens]``, and used in the no-spread case.

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``std_error`` (the one that set the width) and
        ``interval`` (``"sequences"``, ``"calls"`` or ``"none"`` when nothing could be estimated).

    Examples
    --------
    >>> r = ratio_interval([10, 12, 9, 11], [4, 5, 4, 5])
    >>> round(r["mean"], 4), r["ci_low"] < r["mean"] < r["ci_high"], r["interval"]
    (2.3333, True, 'sequences')
    >>> r = ratio_interval([6, 6], [3, 3], call_tokens=[1, 3, 2, 2, 3, 1])
    >>> r["interval"], round(r["ci_high"] - r["mean"], 3)
    ('calls', 0.716)
    """
    n, c = _check_units(tokens, calls, "tokens and calls")
    confidence = _check_confidence(confidence)
    s = n.size
    mean = float(n.sum() / c.sum())
    half, se, kind = 0.0, float("nan"), "none"
    if s >= max(2, min_sequences):
        se = ratio_standard_error(n, c, mean)
        half, kind = student_quantile(confidence, s - 1) * se, "sequences"
    if call_tokens is not None:
        ct = np.asarray(call_tokens, dtype=float).reshape(-1)
        if ct.size >= 2:
            se_call = float(ct.std(ddof=1)) / math.sqrt(float(c.sum()))
            h = normal_quantile(confidence) * se_call
            if h > half or kind == "none":
                half, se, kind = h, se_call, "calls"
            if half == 0.0 and max_call_tokens is not None and np.all(ct == ct[0]):
                u = no_spread_fraction(confidence, ct.size)
                return {"mean": mean, "ci_low": mean - (mean - 1.0) * u,
                        "ci_high": mean + (max_call_tokens - mean) * u, "std_error": 0.0, "interval": "no-spread"}
    lo, hi = mean - half, mean + half
    if max_call_tokens is not None:                  # a call makes 1 .. max_call_tokens tokens
        lo, hi = max(lo, min(1.0, mean)), min(hi, max(float(max_call_tokens), mean))
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "std_error": se, "interval": kind}


def bootstrap_ratios(numer, denom, confidence: float = 0.95, resamples: int = 2000, seed: int = 0):
    r"""Percentile bootstrap over units of :math:`\sum n_i/\sum c_i`: ``(low, high, ratios [resamples])``.

    >>> lo, hi, r = bootstrap_ratios([10, 12, 9, 11], [4, 5, 4, 5], resamples=200)
    >>> bool(lo <= 42 / 18 <= hi), r.shape
    (True, (200,))
    """
    n, c = _check_units(numer, denom)
    confidence = _check_confidence(confidence)
    resamples = _check_count(resamples, "resamples")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n.size, size=(resamples, n.size))                # [resamples, s]
    ratios = n[idx].sum(1) / c[idx].sum(1)
    lo, hi = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi), ratios


def bootstrap_ratio_interval(tokens, calls, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    r"""Percentile bootstrap over sequences of :math:`\sum n_i / \sum c_i` (as the prediction's interval).

    >>> r = bootstrap_ratio_interval([10, 12, 9, 11], [4, 5, 4, 5])
    >>> r["ci_low"] <= r["mean"] <= r["ci_high"]
    True
    """
    n = np.asarray(tokens, dtype=float).reshape(-1)
    c = np.asarray(calls, dtype=float).reshape(-1)
    point = ratio_interval(n, c, confidence, min_sequences=2)
    if n.size < 2:
        return point
    lo, hi, ratios = bootstrap_ratios(n, c, confidence, resamples, seed)
    return {"mean": point["mean"], "ci_low": float(min(lo, point["mean"])), "ci_high": float(max(hi, point["mean"])),
            "std_error": float(ratios.std(ddof=1)), "interval": "bootstrap"}
