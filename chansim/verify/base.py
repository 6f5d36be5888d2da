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

from dataclasses import dataclass, field

import numpy as np

from ..inputs.numbers import whole_number
from ..sampling.kernels import residual
from ..sampling.races import race_times

__all__ = ["NodeNoise", "Method", "SlotWeights", "IIDDrafting", "sample_rows", "take_rows", "residual",
           "race_ranked_tokens", "check_width"]


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
    table : chansim.sampling.race_sampling.RaceTable, optional
        Precomputed sorted tables of the (p, q) rows: methods with ``uses_table`` then
        sample their races / residuals exactly in O(m log V) per trial instead of
        touching V entries (the synthetic Monte Carlo engine; ``race`` is None then).
    table_rows : ndarray, shape (B,), optional
        Row of ``table`` for each trial (its context).
    state : dict
        Scratch space a method's ``draft`` may fill for its ``verify`` at the same node
        (e.g. the draft race's arrival times).
    """

    rng: np.random.Generator
    batch: int
    race: np.ndarray | None = None
    table: object | None = None
    table_rows: np.ndarray | None = None
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SlotWeights:
    """Per-slot weights ``w`` shape ``(..., m)`` with an interval (equal to ``w`` when exact)."""

    w: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    exact: bool
    trials: int = 0

    @classmethod
    def exact_weights(cls, w) -> "SlotWeights":
        """Exact weights (the interval is the point)."""
        w = np.asarray(w, dtype=float)
        return cls(w, w.copy(), w.copy(), True, 0)


def check_width(m) -> int:
    """The number of drafted children of a node, checked to be a positive integer."""
    return whole_number(m, "number of drafted children")


class Method:
    """Base class of the verification methods: everything chansim knows about one method.

    A method's module (``chansim/verify/<name>.py``) is its one home; the registry
    (:mod:`chansim.verify.registry`) lists it once and every layer looks it up there.

    **Sampling** (used by :func:`~chansim.verify.speculative_step` and :mod:`chansim.simulate`):
    :meth:`draft` and :meth:`verify` (module docstring).  Class attributes describe what
    the shared walks must provide: ``uses_race`` (per-position race noise),
    ``merges_duplicates`` (after accepting a token, every candidate holding that token
    stays alive — SpecTr), ``verifies_chain`` (the rule sees the whole drafted chain —
    block verification: ``verify_chain`` instead of :meth:`verify`), and the tree shapes
    the method accepts (:meth:`check_tree`).

    **Theory** (i.i.d. model, :mod:`chansim.theory`): ``tree_family`` names the optimal-tree
    search that suits the method (``"chain"``, ``"sibling-closed"``, ``"rank-set"``,
    ``"sequences"``; None: nothing drafted); :meth:`slot_weights` gives the exact (or
    Monte Carlo) per-slot weights of one node, :meth:`node_acceptance` their sum, and
    :meth:`tree_tokens` a closed form for E[tokens per call] where the method has one.

    **Logged paths** (:mod:`chansim.predict`): :meth:`path_acceptance` gives the
    acceptance of a node conditioned on the logged output token; :meth:`check_widths`
    rejects tree shapes the prediction cannot handle; ``truncated_intervals`` says on which
    trees a log holding only the top-n of p and q still gives a guaranteed interval.

    **Display**: ``label``, ``colour``, ``marker`` (tables and figures); ``variant_of``
    names the method a registered variant runs (e.g. ``ersd-topm``), and variants are
    left out of the default method lists.

    The theory and path methods take validated float arrays (p, q of equal shape, rows
    summing to one); validation happens once, at the public functions that call them.
    """

    name = "method"
    label = "method"
    colour = "k"
    marker = "o"
    variant_of: str | None = None
    tree_family: str | None = None
    has_path_prediction = False
    #: run by ``chansim llm validate`` when no method is named (False: a costly sampler at real V)
    validated_by_default = True
    #: the other default lists this method belongs to (:func:`chansim.verify.registry.default_methods`):
    #: ``"bound"`` (``chansim bound``'s table), ``"top-n"`` (``bound --log --top-n``), ``"temperature"``
    #: (``bound --log --temperatures``), ``"settings-check"`` (``llm validate``'s i.i.d. settings check)
    default_in: frozenset = frozenset()
    #: the parts this method plays for other layers (:func:`chansim.verify.registry.role`), each
    #: held by exactly one method: ``"chain-reference"`` (the single-draft rule every
    #: ``sd_on_chains`` method equals on a chain: transformers' assisted generation verifies with
    #: it, call costs are measured with it, equal curves are drawn as its twins),
    #: ``"rank-law"`` (accepting drafts of race ranks 1..k is :math:`P(R \le k)`: the rank law's
    #: own method, whose tokens per call the ERSD bound bounds)
    roles: frozenset = frozenset()
    sd_on_chains = False    # on a chain (one draft per node) the rule is exactly sd's
    #: trees with a guaranteed tokens-per-call interval from top-n heads (chansim.logs.truncated):
    #: "chains", "depth-only" (any tree whose width depends only on depth) or None
    truncated_intervals: str | None = None
    trials_divisor = 1      # Monte Carlo node weights: a sample costs this many "trials" of the theory
    uses_race = False
    merges_duplicates = False
    min_drafts = 1          # autoregressive: 0 (and max 0)
    chains_only = False     # every node has at most one child (sd)
    sequences_only = False  # disjoint chains below the root (spectr)
    any_ranks = False       # children may hold any set of slots (generalised ersd)
    uses_table = False      # has an exact O(m log V) path through NodeNoise.table
    table_min_vocab = 0     # the engine's race_tables="auto" uses the table only from this V on
    #: the method decides on a whole drafted chain at once (block): the walks call
    #: ``verify_chain(p [γ+1, R, V], q [γ, R, V], drafts [B, γ], noise) -> (τ [B], token [B])``
    verifies_chain = False

    def chain_tokens_batch(self, p: np.ndarray, q: np.ndarray, k: int):
        """Closed-form E[tokens per call] on ``chain:k`` for many i.i.d. positions at once.

        ``p``, ``q``: checked probability rows, shape ``[N, V]``; returns shape ``[N]``, or
        None when the method has no such closed form (callers then use the per-position theory).
        """
        return None

    def in_default(self, purpose: str, vocab: int | None = None, kmax: int | None = None) -> bool:
        """Whether this method is in the default list ``purpose`` (``default_in``); methods whose
        cost grows with ``vocab`` and the largest budget ``kmax`` override it."""
        return purpose in self.default_in

    def check_tree(self, tree) -> None:
        """Raise ``ValueError`` when ``tree`` does not suit this method."""
        from .registry import baseline          # the registry imports this module

        k = tree.size
        if self.min_drafts == 0 and k != 0:
            raise ValueError(f"method {self.name!r} drafts nothing; use the empty tree chain:0 (got {tree.name}, k={k})")
        if self.min_drafts > 0 and k < self.min_drafts:
            raise ValueError(f"method {self.name!r} needs at least one drafted token (k >= 1), got k={k}; "
                             f"use method {baseline()!r} for k = 0")
        if self.chains_only and np.any(tree.num_children > 1):
            raise ValueError(f"method {self.name!r} runs on a chain (one child per node); tree {tree.name} "
                             "branches: use specinfer, rsd, spectr or ersd")
        if self.sequences_only and np.any(tree.num_children[1:] > 1):
            raise ValueError(f"method {self.name!r} runs on independent draft sequences (seq:CxL, batch:M, "
                             f"chain:K); tree {tree.name} branches below the root")
        if not self.any_ranks and not tree.sibling_closed:
            raise ValueError(f"tree {tree.name} uses slots other than 1..m under some node; only ersd "
                             f"(race ranks) gives slots a meaning, not {self.name!r}")

    # ------------------------------------------------------------------ theory (i.i.d. model)
    def slot_weights(self, p, q, m: int, *, trials: int = 20_000, seed: int = 0, law=None) -> SlotWeights:
        """Per-slot weights :math:`w_1..w_m` of a node with m drafted children (docs/theory.md §1).

        ``p``, ``q``: one checked pair ``[V]`` (the theory's door checks it), or ``[..., V]`` where
        a method is batched over positions (sd, specinfer); ``w`` ``[m]`` (``[..., m]``).
        ``trials``, ``seed``: Monte Carlo effort where the weights are not exact; ``law``:
        the rank law of (p, q), passed by the theory to methods with ``uses_race``.
        """
        raise ValueError(f"method {self.name!r} has no per-slot node weights")

    def node_acceptance(self, p, q, m: int, **opts) -> float:
        """P(a node with m drafted children moves to one of them) = :math:`\\sum_j w_j`; p, q checked ``[V]``."""
        return float(self.slot_weights(p, q, m, **opts).w.sum())

    def tree_tokens(self, tree, p, q):
        """Exact E[tokens per call] on ``tree`` by a method-specific closed form, or None (use slot weights).

        ``p``, ``q``: one checked pair ``[V]`` (i.i.d. model: every node sees it).
        """
        return None

    # ------------------------------------------------------------------ logged paths
    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        """c_t = P(accept at a node with m children and output y_t) / p_t(y_t), shape ``[T]``.

        ``p``, ``q`` ``[T, V]``, ``y`` ``[T]`` logged tokens, ``py = p[t, y_t] > 0``.
        """
        raise ValueError(f"no path prediction for method {self.name!r}")

    def path_call_lengths(self, p, q, y, py, widths):
        """P(a call from t yields j tokens | the logged path), ``[T, D + 2]``, or None.

        For methods whose nodes do not accept independently along the path (block decides
        on the whole chain); None (the default): :mod:`chansim.predict` uses
        :meth:`path_acceptance` per depth.  Arguments as :meth:`path_acceptance`, with the
        children per depth ``widths`` (checked by :meth:`check_widths`).
        """
        return None

    def check_widths(self, widths) -> None:
        """Raise ``ValueError`` when a depth-only tree shape (children per depth) does not suit path prediction."""

    # ------------------------------------------------------------------ sampling
    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:   # pragma: no cover - abstract
        """Tokens of a node's children ``[B, m]`` (``-1``: slot holds no token).

        ``q`` ``[R, V]`` (R = B or 1) checked draft rows; ``slots`` ``[m]`` the children's 1-based slots.
        """
        raise NotImplementedError

    def verify(self, p, q, drafts, noise: NodeNoise):            # pragma: no cover - abstract
        """The node rule: ``(accepted [B], token [B])`` (``accepted = -1``: stop with ``token``).

        ``p``, ``q`` ``[R, V]`` (R = B or 1) checked rows; ``drafts`` ``[B, m]`` from :meth:`draft`.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IIDDrafting:
    """Mixin: the m children of a node are drafted i.i.d. from q (duplicates allowed)."""

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        """m i.i.d. draws from ``q`` ``[R, V]`` per row → ``[B, m]`` (``slots`` ``[m]`` only counts them)."""
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
