r"""Pure numerical kernels shared by the verifiers, the theory, path prediction and the figures.

* :func:`residual` — one residual round :math:`\mathrm{norm}((r - q)_+)` of the
  rejection-sampling verifiers (docs/algorithms.md: sd, specinfer, rsd);
* :func:`poisson_binomial_add` — one step of the Poisson-binomial recursion: add an
  independent Bernoulli(b) to a count whose (truncated) pmf is given.  It is the
  integrand of every race integral of the form
  :math:`\int_0^\infty w(t)\,P\big(\sum_x \mathrm{Bern}(1 - e^{-t c_x}) \in A\big)\,dt`
  (rank law of ERSD, ERSD path acceptance, the without-replacement min-cut;
  docs/theory.md §0).
"""
from __future__ import annotations

import numpy as np

__all__ = ["residual", "poisson_binomial_add"]


def residual(r: np.ndarray, q: np.ndarray) -> np.ndarray:
    r"""Residual :math:`\mathrm{norm}((r - q)_+)` along the last axis (rows with no mass keep r).

    A row with :math:`(r - q)_+ = 0` means r = q, where the next draft is accepted with
    probability one, so its residual is never sampled.

    >>> residual(np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])).tolist()
    [[0.0, 1.0]]
    """
    res = np.maximum(r - q, 0.0)                            # [R, V]
    mass = res.sum(axis=-1, keepdims=True)                  # [R, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, res / np.where(mass > 0, mass, 1.0), r)


def poisson_binomial_add(pmf: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Add an independent Bernoulli(b) to counts with pmf ``pmf``, in place; returns ``pmf``.

    ``pmf`` ``[..., n]`` holds P(N = 0..n-1) (truncated: mass moving past n - 1 is
    dropped), ``b`` ``[..., 1]`` the success probabilities:
    :math:`P(N' = j) = P(N = j)(1 - b) + P(N = j - 1)\, b`.

    >>> poisson_binomial_add(np.array([[1.0, 0.0, 0.0]]), np.array([[0.5]])).tolist()
    [[0.5, 0.5, 0.0]]
    """
    pmf[..., 1:] = pmf[..., 1:] * (1 - b) + pmf[..., :-1] * b
    pmf[..., :1] = pmf[..., :1] * (1 - b)
    return pmf
