r"""Predict tokens per target call from a logged path (real-model validation).

A log holds, along one sequence :math:`y_1, y_2, \dots, y_T` sampled from the target,
the target and draft distributions :math:`(p_t, q_t)` of :math:`y_t`.  For a draft tree
whose shape depends only on depth (``widths[d]`` children at depth d, as in
:func:`chansim.inputs.trees.branching`), condition on the output being the logged path: the
node at position t and depth d *accepts* (the output came from a drafted child rather
than the fallback) with probability

.. math:: c_t^{(d)} = P(\text{accept} \wedge \text{output} = y_t) / p_t(y_t),

computable from :math:`(p_t, q_t)` alone (each method's ``path_acceptance``, in its
module ``chansim/verify/<method>.py``; derivations in docs/theory.md §9 and docs/algorithms.md):

* ``sd`` (one draft): :math:`c = \min(1, q(y)/p(y))`;
* ``specinfer`` (m i.i.d. drafts, residuals :math:`r_{j+1} = \mathrm{norm}((r_j - q)_+)`):
  :math:`c = 1 - \prod_{j\le m}(1-\beta_j)\, r_{m+1}(y)/p(y)`;
* ``ersd`` (race ranks 1..m): :math:`c = P(R \le m \mid y \text{ wins the p-race})`, see
  :func:`ersd_path_acceptance`;
* ``rsd`` (m drafts without replacement): m = 1 is sd; m = 2 exactly,
  :math:`c = 1 - \sum_{x} (q_x - p_x)_+ \big(r_2(y) - q(y)/(1 - q_x)\big)_+ / p(y)` with
  :math:`r_2 = (p - q)_+/\sum (p - q)_+` (:func:`rsd_path_acceptance`); m >= 3 is not
  available (a sum over ordered (m-1)-tuples of rejected tokens) and raises;
* ``spectr`` (k i.i.d. drafts, k-sequential selection with the smallest feasible ρ):
  :math:`c = \min(q(y), p(y)/\rho)\,(1 - (1-\beta)^k)/(\beta\, p(y))`
  (:func:`spectr_path_acceptance`); only for trees where every depth has one draft
  (then it is sd) or for a single batch depth, since on k draft sequences the number
  of drafts still alive at depth d > 0 is random;
* ``multidraft`` (m i.i.d. drafts, optimal selection law :math:`r`, then sd against it):
  :math:`c = \min(1, r(y)/p(y))` (:meth:`chansim.verify.multidraft.Multidraft.path_acceptance`);
* ``block`` (a chain decided as a whole): no per-node acceptance; the law of a call's
  length along the path (``Block.path_call_lengths``) enters the recursion below;
* ``autoregressive``: :math:`c = 0`.

Given the path, fresh randomness per position makes these events independent, so a
call starting at t yields j tokens with probability
:math:`\prod_{d<j-1} c^{(d)}_{t+d}\,(1 - c^{(j-1)}_{t+j-1})` (j <= D) or
:math:`\prod_{d<D} c^{(d)}_{t+d}` (j = D + 1), and the expected number of calls to
produce the whole path solves the backward recursion
:math:`f(t) = 1 + \sum_j P_t(j)\, f(t + j)`, :math:`f(t \ge T) = 0`.
"""
from __future__ import annotations

import math

from typing import NamedTuple, Sequence

import numpy as np

from .inputs.paths import check_path_inputs as _path_inputs, expected_calls_from_lengths
from .common.stats import bootstrap_ratios
from .verify.base import check_width
from .verify.ersd import ERSD
from .verify.rsd import RSD
from .verify.sd import SD
from .verify.specinfer import SpecInfer
from .verify.spectr import SpecTr
from .verify.registry import get_method, method_names

__all__ = [
    "sd_path_acceptance",
    "specinfer_path_acceptance",
    "ersd_path_acceptance",
    "rsd_path_acceptance",
    "spectr_path_acceptance",
    "path_acceptance",
    "expected_calls",
    "boundary_tokens",
    "call_endings",
    "CallEndings",
    "PathPrediction",
    "predict_path",
    "PATH_METHODS",
    "expected_calls_from_lengths",
    "call_endings_from_lengths",
]


def sd_path_acceptance(target_probs, draft_probs, tokens) -> np.ndarray:
    r""":math:`c_t = \min(1, q_t(y_t)/p_t(y_t))` for one drafted token (Leviathan et al. 2023).

    >>> sd_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0]).tolist()
    [0.4]
    """
    return _checked(SD(), target_probs, draft_probs, tokens, 1)


def specinfer_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r"""Multi-round acceptance with m i.i.d. drafts (Miao et al. 2023), conditioned on the output.

    :math:`P(\text{all rejected} \wedge \text{out}=y) = \prod_{j\le m}(1-\beta_j)\, r_{m+1}(y)`
    (:func:`chansim.verify.specinfer.residual_rounds`).

    >>> specinfer_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0], 1).round(12).tolist()
    [0.4]
    """
    return _checked(SpecInfer(), target_probs, draft_probs, tokens, m)


def ersd_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r"""ERSD: P(the logged token's rank in the draft race is <= m | it won the target race).

    The race integral of :func:`chansim.verify.ersd.ersd_path_weights`.

    >>> ersd_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0], 1).round(6).tolist()
    [0.4]
    """
    return _checked(ERSD(), target_probs, draft_probs, tokens, m)


def rsd_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r"""RSD (Jeon et al. 2024), exact for m <= 2 (:func:`chansim.verify.rsd.rsd_path_weights`).

    >>> rsd_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0], 1).tolist()
    [0.4]
    >>> rsd_path_acceptance([[0.5, 0.3, 0.2]], [[0.2, 0.5, 0.3]], [0], 2).round(6).tolist()
    [0.617143]
    """
    return _checked(RSD(), target_probs, draft_probs, tokens, m)


def spectr_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r"""SpecTr k-sequential selection with m i.i.d. drafts (Sun et al. 2023), conditioned on the output.

    The output is an accepted draft with law :math:`\min(q, p/\rho)\,c`, so
    :math:`c_t = \min(q(y), p(y)/\rho)\,c/p(y)`, :math:`c = (1-(1-\beta)^m)/\beta`, with the
    smallest feasible ρ of :func:`chansim.verify.spectr.spectr_rho` (ρ = 1, c = 1 at m = 1: sd).

    >>> spectr_path_acceptance([[0.5, 0.5]], [[0.2, 0.8]], [0], 1).tolist()
    [0.4]
    """
    return _checked(SpecTr(), target_probs, draft_probs, tokens, m)


def _checked(method, target_probs, draft_probs, tokens, m):
    p, q, y, py = _path_inputs(target_probs, draft_probs, tokens)
    return get_method(method).path_acceptance(p, q, y, py, check_width(m))


#: methods with prediction from a logged path (the registry's, variants included)
PATH_METHODS = method_names(path=True)


def path_acceptance(method: str, target_probs, draft_probs, tokens, widths: Sequence[int]) -> np.ndarray:
    """c[d, t]: conditional acceptance at position t for a node at depth d with ``widths[d]`` children."""
    known = method_names(path=True)
    if method not in known:
        raise ValueError(f"no path prediction for method {method!r}; available: {', '.join(known)}")
    meth = get_method(method)
    if meth.tree_family is None:
        return np.zeros((0, len(tokens)))
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive integers, got {widths}")
    meth.check_widths(widths)
    p, q, y, py = _path_inputs(target_probs, draft_probs, tokens)
    cache = {w: meth.path_acceptance(p, q, y, py, w) for w in set(widths)}
    return np.stack([cache[w] for w in widths])


def expected_calls(accept: np.ndarray) -> np.ndarray:
    r"""Expected number of target calls to produce positions t..T-1 of the path, for each t.

    ``accept[d, t]`` = :math:`c^{(d)}_t` (shape ``(D, T)``; D = 0 is autoregressive).
    Backward recursion :math:`f(t) = 1 + \sum_{j=1}^{D+1} P_t(j) f(t+j)`; returns f of
    shape ``(T + 1,)`` with ``f[T] = 0`` (calls that would run past the end are cut there).

    >>> expected_calls(np.zeros((0, 3))).tolist()     # autoregressive: one call per token
    [3.0, 2.0, 1.0, 0.0]
    >>> float(expected_calls(np.ones((2, 6)))[0])     # everything accepted: 3 tokens per call
    2.0
    """
    accept = np.asarray(accept, dtype=float)
    depth, length = accept.shape
    f = np.zeros(length + depth + 2)
    for t in range(length - 1, -1, -1):
        reach = 1.0            # P(the first j-1 nodes accepted)
        total = 0.0
        for j in range(1, depth + 2):
            d = j - 1
            if d < depth and t + d < length:
                stop = 1.0 - accept[d, t + d]
            else:
                stop = 1.0     # leaf reached (bonus token) or end of path
            total += reach * stop * f[min(t + j, length)]
            reach *= 1.0 - stop
            if reach == 0.0:
                break
        f[t] = 1.0 + total
    return f[: length + 1]


class CallEndings(NamedTuple):
    """Expected numbers of calls on one path by how they end (see :func:`call_endings`)."""

    rejected: float      # a drafted node rejected: correction token
    leaf: float          # the tree's full depth accepted: bonus token
    cut: float           # the end of the path reached with drafted depth to spare
    cut_tokens: float    # path tokens produced by the cut calls


def call_endings(accept: np.ndarray) -> CallEndings:
    r"""How the calls on one logged path end, in expectation: rejection, leaf or end of path.

    A call starting at t is *cut* when it is still accepting at the last position with
    drafted depth to spare (it reaches position T with d < D): on a longer text the
    method would have gone on.  With the start probabilities :math:`s(0) = 1`,
    :math:`s(t + j) \mathrel{+}= s(t) P_t(j)` of the recursion in :func:`expected_calls`,
    each ending is summed over starts; a cut call from t yields all T - t remaining
    tokens.  When cut calls outnumber leaf calls, the end of the path limits the calls
    more than the tree's depth does (docs/theory.md §9, "Boundary-limited predictions").

    >>> call_endings(np.ones((8, 6)))            # chain deeper than the path, all accepted
    CallEndings(rejected=0.0, leaf=0.0, cut=1.0, cut_tokens=6.0)
    >>> call_endings(np.zeros((8, 6))).rejected  # every draft rejected: six one-token calls
    6.0
    """
    accept = np.asarray(accept, dtype=float)
    depth, length = accept.shape
    start = np.zeros(length + depth + 2)          # [T + D + 2] P(a call starts at t)
    start[0] = 1.0
    rejected = leaf = cut = cut_tokens = 0.0
    for t in range(length):
        if start[t] == 0.0:
            continue
        reach = start[t]                          # P(call from t is still going at depth d)
        for d in range(depth + 1):
            if d < depth and t + d >= length:     # end of path with depth to spare: cut
                cut += reach
                cut_tokens += reach * (length - t)
                break
            if d == depth:                        # leaf: bonus token (possibly past the end)
                leaf += reach
                start[t + d + 1] += reach
                break
            stop = reach * (1.0 - accept[d, t + d])
            rejected += stop
            start[t + d + 1] += stop
            reach -= stop
            if reach == 0.0:
                break
    return CallEndings(float(rejected), float(leaf), float(cut), float(cut_tokens))


def call_endings_from_lengths(lengths: np.ndarray) -> CallEndings:
    r""":func:`call_endings` from the law of a call's length ``lengths[t, j]`` (``(T, D + 2)``).

    With r = T - t tokens left, a call from t of length j is cut when r < D and j > r
    (it was still accepting at the end of the path, with depth to spare), a leaf call
    when j = D + 1 otherwise, and a rejection when j <= D and j <= r — the same
    classification as :func:`call_endings` makes node by node.

    >>> call_endings_from_lengths(np.array([[0, 0, 0, 0, 1.0]] * 2))   # depth 3, all accepted, T = 2
    CallEndings(rejected=0.0, leaf=0.0, cut=1.0, cut_tokens=2.0)
    """
    lengths = np.asarray(lengths, dtype=float)
    length, cols = lengths.shape
    depth = cols - 2
    start = np.zeros(length + cols)
    start[0] = 1.0
    rejected = leaf = cut = cut_tokens = 0.0
    js = np.arange(1, cols)
    for t in range(length):
        if start[t] == 0.0:
            continue
        probs = start[t] * lengths[t, 1:]                        # [D + 1] by length j
        left = length - t
        if left < depth:
            beyond = probs[js > left].sum()
            cut += beyond
            cut_tokens += beyond * left
            probs = np.where(js > left, 0.0, probs)
        leaf += probs[-1]
        rejected += probs[:-1].sum()
        np.add.at(start, t + js, probs)
    return CallEndings(float(rejected), float(leaf), float(cut), float(cut_tokens))


def boundary_tokens(accept: np.ndarray) -> float:
    """Expected path tokens produced by calls the end of the path cuts short (:func:`call_endings`).

    >>> boundary_tokens(np.ones((8, 6)))
    6.0
    """
    return call_endings(accept).cut_tokens


class PathPrediction(NamedTuple):
    """Predicted calls for a set of logged sequences (one entry per sequence).

    ``cut_tokens``, ``cut_calls``, ``leaf_calls``: per sequence, from :func:`call_endings`
    (``None`` when not computed).
    """

    tokens: np.ndarray           # [n_seq] path lengths
    expected_calls: np.ndarray   # [n_seq] E[calls | path]
    cut_tokens: np.ndarray | None = None   # [n_seq] E[tokens from calls cut by the end of the path]
    cut_calls: np.ndarray | None = None    # [n_seq] E[calls cut by the end of the path]
    leaf_calls: np.ndarray | None = None   # [n_seq] E[calls that used the tree's full depth]

    def to_dict(self) -> dict:
        """JSON-ready dict: the estimate, the boundary share and the per-sequence arrays as lists."""
        return {"tokens_per_call": self.tokens_per_call, "boundary_share": self.boundary_share,
                "end_stop_share": self.end_stop_share,
                "tokens": self.tokens.tolist(), "expected_calls": self.expected_calls.tolist(),
                "cut_tokens": None if self.cut_tokens is None else self.cut_tokens.tolist()}

    def to_records(self) -> list:
        """One flat dict per logged sequence: ``sequence``, ``tokens``, ``expected_calls``, ``cut_tokens``."""
        cut = self.cut_tokens if self.cut_tokens is not None else [None] * len(self.tokens)
        return [{"sequence": i, "tokens": float(t), "expected_calls": float(c), "cut_tokens": None if x is None
                 else float(x)} for i, (t, c, x) in enumerate(zip(self.tokens, self.expected_calls, cut))]

    @property
    def boundary_share(self) -> float:
        """Share of the logged tokens produced by calls cut short by the end of their path."""
        return float(self.cut_tokens.sum() / self.tokens.sum()) if self.cut_tokens is not None else float("nan")

    @property
    def end_stop_share(self) -> float:
        """Among calls not stopped by a rejection, the share stopped by the end of the path (not the leaf)."""
        if self.cut_calls is None or self.leaf_calls is None:
            return float("nan")
        total = float(self.cut_calls.sum() + self.leaf_calls.sum())
        return float(self.cut_calls.sum()) / total if total > 0 else 0.0

    @property
    def tokens_per_call(self) -> float:
        return float(self.tokens.sum() / self.expected_calls.sum())

    def interval(self, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
        """Bootstrap interval over sequences of total tokens / total expected calls.

        One sequence gives no interval (nothing to resample): ``(-inf, inf)``, which callers
        clip to the feasible range 1 .. depth + 1 tokens per call.
        """
        if len(self.tokens) < 2:
            return -math.inf, math.inf
        lo, hi, _ = bootstrap_ratios(self.tokens, self.expected_calls, confidence, resamples, seed)
        return lo, hi


def predict_path(method: str, widths: Sequence[int], sequences) -> PathPrediction:
    """Predict tokens per call for logged sequences ``[(target_probs [T,V], draft_probs [T,V], tokens [T]), ...]``.

    ``widths`` gives the children per depth (``[1]*gamma`` for a chain of gamma, ``[m]``
    for a batch); the baseline that drafts nothing (:func:`chansim.verify.registry.baseline`) ignores it.  A method whose nodes do not
    accept independently along the path (block) gives the law of a call's length per
    sequence (``Method.path_call_lengths``), turned into calls by
    :func:`expected_calls_from_lengths` and :func:`call_endings_from_lengths`; every other
    method gives per-depth acceptances (:func:`path_acceptance`).
    """
    lengths, calls, ends = [], [], []
    meth = get_method(method) if method in method_names(path=True) else None
    for target_probs, draft_probs, tokens in sequences:
        law = None
        if meth is not None and meth.tree_family is not None:
            meth.check_widths([int(w) for w in widths])
            law = meth.path_call_lengths(*_path_inputs(target_probs, draft_probs, tokens), [int(w) for w in widths])
        if law is not None:                 # the method's own law of a call's length (block)
            calls.append(expected_calls_from_lengths(law)[0])
            ends.append(call_endings_from_lengths(law))
        else:
            accept = path_acceptance(method, target_probs, draft_probs, tokens, widths)
            calls.append(expected_calls(accept)[0])
            ends.append(call_endings(accept))
        lengths.append(len(tokens))
    if not lengths:
        raise ValueError("no logged sequences to predict from")
    ends = np.asarray(ends, float).reshape(-1, 4)                       # [n_seq, (rejected, leaf, cut, cut_tokens)]
    return PathPrediction(np.asarray(lengths, float), np.asarray(calls, float), ends[:, 3], ends[:, 2], ends[:, 1])
