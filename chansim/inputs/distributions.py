"""Probability vectors: validation, logits -> probabilities, divergences, synthetic families.

Conventions
-----------
* The **last axis is the vocabulary**; leading axes are batch (positions, trials, ...).
* ``target_probs`` (p) is the distribution we must reproduce exactly, ``draft_probs`` (q)
  is the cheap proposal.  All functions take ``base=`` (``"nats"`` default, or ``"bits"``).
* Nothing is renormalised silently: :func:`check_probs` raises a ``ValueError`` that names
  the problem and the first offending position.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "PROB_ATOL",
    "dtype_atol",
    "as_real_array",
    "check_probs",
    "check_rank_probs",
    "check_pair",
    "check_pair_1d",
    "as_pair",
    "check_logits",
    "log_softmax",
    "softmax",
    "entropy",
    "kl_divergence",
    "total_variation",
    "renyi_divergence",
    "sd_acceptance",
    "SyntheticPair",
    "dirichlet_pair",
    "zipf_pair",
    "noisy_target_pair",
    "synthetic_pair",
    "FAMILIES",
]

#: Largest allowed |sum(p) - 1| for a probability vector (float32 logits rounded to
#: probabilities typically sum to 1 within 1e-6; float16 logs within ~1e-3 are
#: re-normalised by the log reader explicitly, never here).
PROB_ATOL = 1e-6


#: unit roundoff of the storage dtypes a probability file may come in
_UNIT_ROUNDOFF = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24}
_FLOAT16_SUBNORMAL_STEP = 2.0 ** -25          # absolute rounding error of a float16 value below 2**-14


def dtype_atol(dtype, vocab: int) -> float:
    r"""Tolerance on :math:`|\sum_x p_x - 1|` for probabilities stored in ``dtype`` over ``vocab`` tokens.

    Float64 (and integer) data keep :data:`PROB_ATOL`. For a lower-precision storage
    dtype of unit roundoff :math:`u`, a softmax computed in float32 or better and then
    stored has mass error at most

    .. math:: 2u + 4\sqrt{V}\,u_{32} \;(+\, V 2^{-25} \text{ for float16 subnormals}),

    i.e. twice the storage rounding (:math:`|\sum_x \tilde p_x - \sum_x p_x| \le u \sum_x p_x`)
    plus four times the typical :math:`\sqrt V` growth of a float32 normalising sum
    (:math:`u_{32} = 2^{-24}`); never below :data:`PROB_ATOL`.

    >>> dtype_atol("float64", 49152) == PROB_ATOL
    True
    >>> 1.2e-5 < dtype_atol("float32", 49152) < 1e-4     # a float32 softmax over 49k tokens passes
    True
    >>> round(dtype_atol("bfloat16", 8), 4)
    0.0078
    """
    name = str(dtype).replace("torch.", "")
    if name not in _UNIT_ROUNDOFF:
        return PROB_ATOL
    u32 = _UNIT_ROUNDOFF["float32"]
    tol = 2 * min(_UNIT_ROUNDOFF[name], 1.0) + 4 * math.sqrt(max(int(vocab), 1)) * u32
    if name == "float16":
        tol += int(vocab) * _FLOAT16_SUBNORMAL_STEP
    return max(PROB_ATOL, tol)


def _log_factor(base: str) -> float:
    if base in ("nats", "e", None):
        return 1.0
    if base in ("bits", 2, "2"):
        return 1.0 / math.log(2.0)
    raise ValueError(f"base must be 'nats' or 'bits', got {base!r}")


def _first_bad(mask: np.ndarray) -> tuple:
    """Index tuple of the first True entry of ``mask`` (for error messages)."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def as_real_array(values, name: str = "values") -> np.ndarray:
    """``values`` as a float64 array, refusing anything that is not real numbers (never converting it).

    Accepts lists, numpy arrays and torch tensors of any float/int dtype (bfloat16 included),
    on any device, with or without ``requires_grad`` (detached; the caller's tensor is untouched).
    Refuses complex, boolean, string and object data with a ``ValueError`` naming ``name``.

    >>> as_real_array([1, 2.5]).tolist()
    [1.0, 2.5]
    >>> as_real_array([0.5, "0.5"], "p")
    Traceback (most recent call last):
    ...
    ValueError: p must hold real numbers, got dtype <U32
    """
    if hasattr(values, "detach") and hasattr(values, "dtype") and type(values).__module__.startswith("torch"):
        tensor = values.detach().to("cpu")
        if tensor.is_complex():
            raise ValueError(f"{name} has complex values; it must be real")
        if tensor.is_floating_point() and str(tensor.dtype) not in ("torch.float16", "torch.float32", "torch.float64"):
            tensor = tensor.float()                      # bfloat16 (and float8) -> float32 is exact
        values = tensor.numpy()
    if np.iscomplexobj(values):
        raise ValueError(f"{name} has complex values; it must be real")
    try:
        raw = np.asarray(values)
    except ValueError as err:                            # ragged nested lists
        raise ValueError(f"{name} must be a regular array of real numbers: {err}") from None
    if raw.dtype.kind == "b":
        raise ValueError(f"{name} holds booleans, not numbers")
    if raw.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {raw.dtype}")
    return raw.astype(np.float64)


def _real_rows(values, name: str, what: str) -> np.ndarray:
    """``values`` as a real float64 array with a non-empty last (vocabulary) axis; ``what`` names the
    values in the complex-number message (``"probabilities"``, ``"logits"``)."""
    if np.iscomplexobj(values):
        raise ValueError(f"{name} has complex values; {what} must be real")
    arr = as_real_array(values, name)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty vocabulary axis (last axis), got shape {arr.shape}")
    return arr


def _check_finite_nonnegative(arr: np.ndarray, name: str) -> None:
    """Refuse NaN, inf and negative entries of the probabilities ``arr``, naming the first one's index."""
    if not np.all(np.isfinite(arr)):
        bad = _first_bad(~np.isfinite(arr))
        raise ValueError(f"{name} contains NaN or inf at index {bad}")
    if np.any(arr < 0):
        bad = _first_bad(arr < 0)
        raise ValueError(f"{name} has a negative probability {arr[bad]:.3g} at index {bad}")


def check_probs(probs, name: str = "probs", atol: float = PROB_ATOL) -> np.ndarray:
    """Validate probability vectors along the last axis and return them as float64.

    Checks, in order: at least 1-D with a non-empty vocabulary, finite, non-negative,
    and ``|sum - 1| <= atol``.  Raises ``ValueError`` naming the problem and the
    position of the first offending vector/entry.

    >>> check_probs([0.25, 0.75])
    array([0.25, 0.75])
    >>> check_probs([0.5, 0.6], name="p")
    Traceback (most recent call last):
    ...
    ValueError: p is not normalised: sums to 1.1 at position () (tolerance 1e-06); pass logits or normalise explicitly
    """
    return _checked_probs(_real_rows(probs, name, "probabilities"), name, atol)


def _checked_probs(arr: np.ndarray, name: str, atol: float) -> np.ndarray:
    """The checks of :func:`check_probs` on a float64 array (from :func:`as_real_array`), returned as is."""
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty vocabulary axis (last axis), got shape {arr.shape}")
    _check_finite_nonnegative(arr, name)
    sums = arr.sum(axis=-1)
    off = np.abs(sums - 1.0) > atol
    if np.any(off):
        pos = _first_bad(off) if off.ndim else ()
        raise ValueError(
            f"{name} is not normalised: sums to {float(sums[pos]):.6g} at position {pos} "
            f"(tolerance {atol:g}); pass logits or normalise explicitly"
        )
    return arr


def check_pair(target_probs, draft_probs, atol: float = PROB_ATOL) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (target, draft) pair: both valid and of identical shape (same vocabulary).

    >>> p, q = check_pair([0.5, 0.5], [0.9, 0.1])
    >>> check_pair([0.5, 0.5], [0.2, 0.3, 0.5])
    Traceback (most recent call last):
    ...
    ValueError: vocabulary mismatch: target has shape (2,), draft has shape (3,)
    """
    p = as_real_array(target_probs, "target_probs")
    q = as_real_array(draft_probs, "draft_probs")
    if p.shape != q.shape and p.ndim and q.ndim:        # shapes first: a cut vector is not "unnormalised"
        kind = "vocabulary mismatch" if p.shape[-1] != q.shape[-1] else "shape mismatch"
        raise ValueError(f"{kind}: target has shape {p.shape}, draft has shape {q.shape}")
    p = _checked_probs(p, "target_probs", atol)          # as_real_array made the copy: one per side
    q = _checked_probs(q, "draft_probs", atol)
    if p.shape != q.shape:
        kind = "vocabulary mismatch" if p.shape[-1] != q.shape[-1] else "shape mismatch"
        raise ValueError(f"{kind}: target has shape {p.shape}, draft has shape {q.shape}")
    return p, q


def as_pair(target_probs, draft_probs, validate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_pair` at a public entry (``validate=True``); else the arrays as float64, taken as
    checked (internal callers that hold arrays a public function already checked).

    >>> as_pair([0.5, 0.5], [0.5, 0.6], validate=False)[1].tolist()      # not checked
    [0.5, 0.6]
    """
    if validate:
        return check_pair(target_probs, draft_probs)
    return np.asarray(target_probs, dtype=np.float64), np.asarray(draft_probs, dtype=np.float64)


def check_pair_1d(target_probs, draft_probs, what: str = "this function", validate: bool = True,
                  atol: float = PROB_ATOL) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_pair` for exactly one pair of 1-D vectors ``[V]``; float64 arrays back.

    ``what`` names the caller in the one-line ``ValueError`` a batch (or a scalar) gets.
    ``validate=False`` checks only the shape (free) and takes the values as checked (:func:`as_pair`).

    >>> p, q = check_pair_1d([0.5, 0.5], [0.9, 0.1])
    >>> check_pair_1d([[0.5, 0.5]], [[0.9, 0.1]], "selection_law")
    Traceback (most recent call last):
    ...
    ValueError: selection_law takes one pair of 1-D vectors, got shape (1, 2)
    """
    p, q = check_pair(target_probs, draft_probs, atol) if validate else as_pair(target_probs, draft_probs, False)
    if p.ndim != 1:
        raise ValueError(f"{what} takes one pair of 1-D vectors, got shape {p.shape}")
    return p, q


def check_rank_probs(rank_probs, name: str = "rank_probs", atol: float = PROB_ATOL) -> np.ndarray:
    """Validate a 1-D law of ranks :math:`a_r` (may be sub-stochastic: mass left for "never").

    Real, finite, non-negative, total at most ``1 + atol``; returns float64.

    >>> check_rank_probs([-0.6, 1.6])
    Traceback (most recent call last):
    ...
    ValueError: rank_probs has a negative probability -0.6 at index (0,)
    """
    a = as_real_array(rank_probs, name)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {a.shape}")
    _check_finite_nonnegative(a, name)
    if a.sum() > 1 + atol:
        raise ValueError(f"{name} sums to {a.sum():.6g} > 1; it must be a probability law (sum <= 1)")
    return a


def check_logits(logits, name: str = "logits") -> np.ndarray:
    """Validate logits: non-empty last axis; finite or ``-inf`` (a masked token); never NaN/+inf."""
    arr = _real_rows(logits, name, "logits")
    bad = np.isnan(arr) | (arr == np.inf)
    if np.any(bad):
        raise ValueError(f"{name} contains NaN or +inf at index {_first_bad(bad)}")
    if np.any(np.all(arr == -np.inf, axis=-1)):
        raise ValueError(f"{name} has a row where every logit is -inf")
    return arr


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    r"""Stable :math:`\log \mathrm{softmax}(z / T)` along the last axis.

    >>> np.round(np.exp(log_softmax([0.0, np.log(3.0)])), 6)
    array([0.25, 0.75])
    """
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    z = check_logits(logits) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """:math:`\\mathrm{softmax}(z / T)` along the last axis (see :func:`log_softmax`)."""
    return np.exp(log_softmax(logits, temperature))


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Elementwise p log(p/q) with 0 log 0 = 0 and p log(p/0) = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return out


def entropy(probs, base: str = "nats", validate: bool = True) -> np.ndarray:
    r"""Shannon entropy :math:`H(p) = -\sum_x p_x \log p_x` over the last axis.

    >>> float(entropy([0.5, 0.5], base="bits"))
    1.0
    """
    p = check_probs(probs, "probs") if validate else np.asarray(probs, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h * _log_factor(base)


def kl_divergence(target_probs, draft_probs, base: str = "nats", validate: bool = True) -> np.ndarray:
    r"""Kullback–Leibler divergence :math:`D(p\|q) = \sum_x p_x \log(p_x/q_x)`.

    Infinite where some :math:`q_x = 0 < p_x`.

    >>> float(kl_divergence([1.0, 0.0], [0.5, 0.5], base="bits"))
    1.0
    >>> float(kl_divergence([0.5, 0.5], [1.0, 0.0]))
    inf
    """
    p, q = as_pair(target_probs, draft_probs, validate)
    return _xlogy_ratio(p, q).sum(axis=-1) * _log_factor(base)


def total_variation(target_probs, draft_probs, validate: bool = True) -> np.ndarray:
    r"""Total variation :math:`\mathrm{TV}(p,q) = \tfrac12 \sum_x |p_x - q_x| = 1 - \sum_x \min(p_x, q_x)`."""
    p, q = as_pair(target_probs, draft_probs, validate)
    return 0.5 * np.abs(p - q).sum(axis=-1)


def sd_acceptance(target_probs, draft_probs, validate: bool = True) -> np.ndarray:
    r"""Single-draft acceptance of speculative sampling, :math:`\beta = \sum_x \min(p_x, q_x)`.

    Leviathan et al. (2023), Chen et al. (2023).

    >>> float(sd_acceptance([0.5, 0.5], [0.9, 0.1]))
    0.6
    """
    p, q = as_pair(target_probs, draft_probs, validate)
    return np.minimum(p, q).sum(axis=-1)


def renyi_divergence(target_probs, draft_probs, alpha: float, base: str = "nats", validate: bool = True) -> np.ndarray:
    r"""Rényi divergence of order :math:`\alpha` of p from q.

    .. math::
        D_\alpha(p\|q) = \frac{1}{\alpha - 1}\log \sum_x p_x^\alpha q_x^{1-\alpha},
        \qquad D_1 = D_{KL}, \qquad D_\infty = \log \max_x p_x / q_x .

    >>> p, q = [0.2, 0.8], [0.5, 0.5]
    >>> bool(np.isclose(renyi_divergence(p, q, 1.0), kl_divergence(p, q)))
    True
    >>> float(np.round(renyi_divergence(p, q, np.inf), 12)) == round(float(np.log(1.6)), 12)
    True
    """
    p, q = as_pair(target_probs, draft_probs, validate)
    if not alpha >= 0:
        raise ValueError(f"Renyi order alpha must be >= 0, got {alpha}")
    f = _log_factor(base)
    if alpha == 1:
        return kl_divergence(p, q, base=base, validate=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.isinf(alpha):
            ratio = np.where(p > 0, p / q, 0.0)
            return np.log(ratio.max(axis=-1)) * f
        if alpha == 0:
            return -np.log(np.where(p > 0, q, 0.0).sum(axis=-1)) * f
        terms = np.where(p > 0, np.exp(alpha * np.log(p) + (1 - alpha) * np.log(q)), 0.0)
        if alpha > 1:
            terms = np.where((p > 0) & (q == 0), np.inf, terms)
        return np.log(terms.sum(axis=-1)) / (alpha - 1) * f


# --------------------------------------------------------------------------- synthetic
class SyntheticPair(NamedTuple):
    """A seeded synthetic (target, draft) pair; arrays have shape ``(*batch, vocab)``."""

    target_probs: np.ndarray
    draft_probs: np.ndarray


def _batch_shape(n) -> tuple:
    return () if n is None else (int(n),)


def dirichlet_pair(vocab: int, concentration: float = 1.0, distance: float = 1.0, n=None, seed: int = 0) -> SyntheticPair:
    r"""Target :math:`p \sim \mathrm{Dir}(c\mathbf 1)`; draft mixes p with an independent Dirichlet draw.

    ``q = (1 - distance) p + distance * Dir(c 1)``: ``distance=0`` gives q = p, ``distance=1``
    gives an independent pair (two independent Dirichlet draws).
    """
    _check_knob(distance, "distance", 0.0, 1.0)
    _check_vocab(vocab)
    if isinstance(concentration, bool) or not 0 < concentration < np.inf:
        raise ValueError(f"concentration must be a finite number > 0, got {concentration!r}")
    rng = np.random.default_rng(seed)
    shape = _batch_shape(n) + (vocab,)
    p = rng.dirichlet(np.full(vocab, concentration), size=shape[:-1] or None).reshape(shape)
    other = rng.dirichlet(np.full(vocab, concentration), size=shape[:-1] or None).reshape(shape)
    q = (1 - distance) * p + distance * other
    return SyntheticPair(p, q / q.sum(-1, keepdims=True))


def zipf_pair(vocab: int, exponent: float = 1.1, distance: float = 0.5, n=None, seed: int = 0) -> SyntheticPair:
    r"""Heavy-tailed pair: :math:`p_x \propto x^{-s}` over a random permutation of the vocabulary;
    the draft uses the same law over a permutation in which a fraction ``distance`` of
    the ranks were shuffled (0: q = p; 1: unrelated orders)."""
    _check_knob(distance, "distance", 0.0, 1.0)
    _check_vocab(vocab)
    if isinstance(exponent, bool) or not 0 <= exponent < np.inf:
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent!r}")
    rng = np.random.default_rng(seed)
    batch = _batch_shape(n)
    weights = np.arange(1, vocab + 1, dtype=float) ** (-exponent)
    weights /= weights.sum()
    ps, qs = [], []
    for _ in range(int(np.prod(batch)) if batch else 1):
        order = rng.permutation(vocab)
        draft_order = order.copy()
        moved = np.flatnonzero(rng.random(vocab) < distance)
        draft_order[moved] = order[rng.permutation(moved)]
        p = np.empty(vocab); p[order] = weights
        q = np.empty(vocab); q[draft_order] = weights
        ps.append(p); qs.append(q)
    shape = batch + (vocab,)
    return SyntheticPair(np.reshape(ps, shape), np.reshape(qs, shape))


def noisy_target_pair(vocab: int, noise: float = 1.0, temperature: float = 1.0, logit_scale: float = 3.0,
                      n=None, seed: int = 0) -> SyntheticPair:
    r""""Draft = noisy target": target logits :math:`z \sim \mathcal N(0, s^2)`, p = softmax(z);
    draft q = softmax((z + \sigma \varepsilon) / T) with :math:`\varepsilon \sim \mathcal N(0, 1)`.
    ``noise`` is :math:`\sigma` and ``temperature`` is the draft's temperature change T."""
    _check_knob(noise, "noise", 0.0, np.finfo(float).max)
    _check_knob(logit_scale, "logit_scale", 0.0, np.finfo(float).max)
    _check_vocab(vocab)
    rng = np.random.default_rng(seed)
    shape = _batch_shape(n) + (vocab,)
    z = logit_scale * rng.standard_normal(shape)
    zq = z + noise * rng.standard_normal(shape)
    return SyntheticPair(softmax(z), softmax(zq, temperature))


def _check_knob(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (low <= value <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")


def _check_vocab(vocab) -> None:
    if isinstance(vocab, bool) or not isinstance(vocab, (int, np.integer)) or vocab < 1:
        raise ValueError(f"vocab must be a positive integer, got {vocab!r}")


#: Synthetic families by name: ``synthetic_pair(family, vocab, knob, n, seed)``.
FAMILIES = {
    "dirichlet": lambda vocab, knob, n, seed: dirichlet_pair(vocab, 1.0, knob, n, seed),
    "zipf": lambda vocab, knob, n, seed: zipf_pair(vocab, 1.1, knob, n, seed),
    "noisy": lambda vocab, knob, n, seed: noisy_target_pair(vocab, knob, 1.0, 3.0, n, seed),
}


def synthetic_pair(family: str, vocab: int, knob: float, n=None, seed: int = 0) -> SyntheticPair:
    """One synthetic pair (or a batch of ``n``) from a named family with its distance ``knob``.

    >>> pair = synthetic_pair("dirichlet", 8, 0.5, n=3, seed=1)
    >>> pair.target_probs.shape
    (3, 8)
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(FAMILIES)}")
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2, got {vocab}")
    return FAMILIES[family](vocab, knob, n, seed)
