r"""The one interface every verification method implements, and the row-wise helpers they share.

A **method** is a small strategy object with two node-level rules, both written over a
leading batch axis B (trials in the Monte Carlo engine, 1 in the per-call walk):

``draft(q, slots, noise) -> drafts [B, m]``
    the tokens of the m children of a node, drafted from the node's draft law q
    (``slots`` = the children's 1-based slots/ranks, ``tree.ranks``); ``-1`` marks a
    slot that holds no token (a race rank beyond the support of q).
``verify(p, q, drafts, noise) -> (accepted [B], token [B])``
    the node rule: ``accepted`` is the index in ``0..m-1`` of the child the target
    moves to, or ``-1`` when the walk stops here; ``token`` is the accepted child's
    token, or else the output (correction / bonus) token, distributed so that the
    token produced at the node is exactly ~ p.

``p`` and ``q`` have shape ``[R, V]`` with R = B or R = 1 (one row shared by the whole
batch, as in the i.i.d. model: residuals are then computed once).  Randomness comes in
a :class:`NodeNoise`; nothing here touches a global RNG.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..races import race_times

__all__ = ["NodeNoise", "Method", "IIDDrafting", "sample_rows", "take_rows", "residual", "race_ranked_tokens"]


@dataclass
class NodeNoise:
    """Randomness for one node visit of a batch of B trials.

    Attributes
    ----------
    rng : numpy.random.Generator
        Uniforms for accept tests, i.i.d. drafting and residual sampling.
    batch : int
        B.
    race : ndarray, shape (B, V), optional
        Exp(1) race noise of the node's absolute position, shared by the draft (which
        races q with it) and the target (which races p with it).  Only for methods with
        ``uses_race``.
    """

    rng: np.random.Generator
    batch: int
    race: np.ndarray | None = None


class Method:
    """Base class of the verification strategies (see the module docstring).

    Class attributes describe what the shared walks must provide:
    ``uses_race`` (per-position race noise), ``merges_duplicates`` (after accepting a
    token, every candidate holding that token stays alive — SpecTr), ``verifies_chain``
    (the rule sees the whole drafted chain — block verification), and the tree
    shapes the method accepts (:meth:`check_tree`).
    """

    name = "method"
    uses_race = False
    merges_duplicates = False
    min_drafts = 1          # autoregressive: 0 (and max 0)
    chains_only = False     # every node has at most one child (sd)
    sequences_only = False  # disjoint chains below the root (spectr)
    any_ranks = False       # children may hold any set of slots (generalised ersd)
    #: the method decides on a whole drafted chain at once (block): the walks call
    #: ``verify_chain(p [γ+1, R, V], q [γ, R, V], drafts [B, γ], noise) -> (τ [B], token [B])``
    verifies_chain = False

    def check_tree(self, tree) -> None:
        """Raise ``ValueError`` when ``tree`` does not suit this method."""
        k = tree.size
        if self.min_drafts == 0 and k != 0:
            raise ValueError(f"method {self.name!r} drafts nothing; use the empty tree chain:0 (got {tree.name}, k={k})")
        if self.min_drafts > 0 and k < self.min_drafts:
            raise ValueError(f"method {self.name!r} needs at least one drafted token (k >= 1), got k={k}; "
                             "use method 'autoregressive' for k = 0")
        if self.chains_only and np.any(tree.num_children > 1):
            raise ValueError(f"method {self.name!r} runs on a chain (one child per node); tree {tree.name} "
                             "branches: use specinfer, rsd, spectr or ersd")
        if self.sequences_only and np.any(tree.num_children[1:] > 1):
            raise ValueError(f"method {self.name!r} runs on independent draft sequences (seq:CxL, batch:M, "
                             f"chain:K); tree {tree.name} branches below the root")
        if not self.any_ranks and not tree.sibling_closed:
            raise ValueError(f"tree {tree.name} uses slots other than 1..m under some node; only ersd "
                             f"(race ranks) gives slots a meaning, not {self.name!r}")

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:   # pragma: no cover - abstract
        raise NotImplementedError

    def verify(self, p, q, drafts, noise: NodeNoise):            # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IIDDrafting:
    """Mixin: the m children of a node are drafted i.i.d. from q (duplicates allowed)."""

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        u = noise.rng.random((noise.batch, len(slots)))                   # [B, m]
        return sample_rows(q, u).astype(np.int64)                         # [B, m] i.i.d. ~ q


# ----------------------------------------------------------------------------- helpers
def take_rows(arr: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``arr[b, tokens[b]]`` for arr ``[R, V]`` (R = 1 broadcasts), tokens ``[B]``; 0 where token = -1."""
    tok = np.asarray(tokens)
    safe = np.maximum(tok, 0)
    vals = arr[0, safe] if arr.shape[0] == 1 else arr[np.arange(len(tok)), safe]   # [B]
    return np.where(tok >= 0, vals, 0.0)


def sample_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: tokens from the rows of non-negative ``weights``, one per uniform.

    ``weights`` ``[R, V]`` (unnormalised; R = 1 is shared by the whole batch), ``u``
    ``[B]`` or ``[B, n]`` uniforms in [0, 1) → tokens of the same shape as ``u``, row b
    of ``u`` using row b of ``weights``.  Zero-weight tokens are never returned.  For
    R > 1 the index is the count of CDF entries <= u, an O(B V) pass per column of u.

    >>> sample_rows(np.array([[0.0, 1.0, 0.0, 3.0]]), np.array([0.0, 0.2, 0.3, 0.99])).tolist()
    [1, 1, 3, 3]
    >>> sample_rows(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.5, 0.9], [0.1, 0.5]])).tolist()
    [[0, 0], [1, 1]]
    """
    cdf = np.cumsum(weights, axis=-1)                       # [R, V]
    total = cdf[:, -1:]                                     # [R, 1]
    if np.any(total <= 0):
        raise ValueError("cannot sample from a row with zero total mass")
    cdf /= total                                            # last positive entry is exactly 1.0
    u = np.asarray(u, dtype=np.float64)
    vocab = cdf.shape[-1]
    if cdf.shape[0] == 1:
        return np.minimum(np.searchsorted(cdf[0], u, side="right"), vocab - 1)
    # token = #{x : cdf_x <= u} (first index whose cdf exceeds u), row by row
    cols = u.reshape(u.shape[0], -1)                        # [B, n]
    idx = np.empty(cols.shape, dtype=np.int64)
    for j in range(cols.shape[1]):
        idx[:, j] = np.count_nonzero(cdf <= cols[:, j:j + 1], axis=-1)
    return np.minimum(idx, vocab - 1).reshape(u.shape)


def residual(r: np.ndarray, q: np.ndarray) -> np.ndarray:
    r"""Residual :math:`\mathrm{norm}((r - q)_+)` along the last axis (rows with no mass keep r).

    A row with :math:`(r - q)_+ = 0` means r = q, where the next draft is accepted with
    probability one, so its residual is never sampled.
    """
    res = np.maximum(r - q, 0.0)                            # [R, V]
    mass = res.sum(axis=-1, keepdims=True)                  # [R, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, res / np.where(mass > 0, mass, 1.0), r)


def race_ranked_tokens(race: np.ndarray, q: np.ndarray, slots) -> np.ndarray:
    r"""Tokens holding the given 1-based ranks of the q-race :math:`E_x / q_x`, shape ``[B, m]``.

    ``race`` ``[B, V]`` Exp(1) noise, ``q`` ``[R, V]``.  A rank beyond the support of q
    (the token would arrive at time +inf) gives ``-1``.

    >>> race_ranked_tokens(np.array([[1.0, 0.5, 2.0]]), np.array([[0.2, 0.0, 0.8]]), [1, 2, 3]).tolist()
    [[2, 0, -1]]
    """
    slots = np.asarray(slots, dtype=np.int64)
    times = race_times(race, q)                              # [B, V]
    vocab = times.shape[-1]
    top = min(int(slots.max()), vocab)
    if top <= 8:                                             # a few argmin passes beat argpartition
        times = np.asarray(times, dtype=np.float64)         # a fresh array (race_times divides): mask winners in place
        rows = np.arange(times.shape[0])
        ranked = np.empty((times.shape[0], top), dtype=np.int64)
        ranked_t = np.empty((times.shape[0], top))
        for j in range(top):
            ranked[:, j] = np.argmin(times, axis=-1)
            ranked_t[:, j] = times[rows, ranked[:, j]]
            times[rows, ranked[:, j]] = np.inf
    else:
        if top < vocab:
            part = np.argpartition(times, top - 1, axis=-1)[:, :top]   # [B, top] unordered
        else:
            part = np.broadcast_to(np.arange(vocab), times.shape)
        vals = np.take_along_axis(times, part, -1)
        order = np.argsort(vals, axis=-1, kind="stable")
        ranked = np.take_along_axis(part, order, -1)         # [B, top] earliest first
        ranked_t = np.take_along_axis(vals, order, -1)
    ranked = np.where(np.isfinite(ranked_t), ranked, -1)
    ranked = np.concatenate([ranked, np.full((ranked.shape[0], 1), -1, dtype=ranked.dtype)], axis=1)
    return ranked[:, np.minimum(slots - 1, top)]             # [B, m]
