r"""``multidraft`` — the optimal multi-draft verifier for i.i.d. drafts (Khisti et al. 2024, arXiv 2410.18234).

Everything about the method lives here: the node rule, its exact node and tree
expectations in the i.i.d. model, and its conditional acceptance along a logged path.
Derivation: docs/methods_block_multidraft.md §2.

Canonical architecture.  At a node, m children :math:`x_1..x_m` are drafted i.i.d.
from q; let :math:`A = \{x_1..x_m\}` be the draft *set*.

1. **Importance-sampling selection**: pick one drafted token
   :math:`Y \sim \beta(\cdot \mid A)` (a law on the tokens of A).  Its marginal is
   :math:`r(y) = \sum_A P(S = A)\,\beta(y \mid A)`.
2. **Single-draft speculative sampling** of Y against p: accept Y with probability
   :math:`\min(1, p(Y)/r(Y))` (move to the first child holding Y), else output
   :math:`\sim \mathrm{norm}((p - r)_+)`.

Step 2 makes the output exactly ~ p for *any* selection β; the node accepts with
probability :math:`\sum_y \min(p_y, r_y)`.  Khisti et al. show that with the best β
this two-step scheme loses nothing against every verifier of the draft set, i.e. it
attains the optimum of the transport LP (:mod:`chansim.theory.lp`)

.. math:: \alpha^* = \min_{H \subseteq V}\; p(V \setminus H) + 1 - (1 - q(H))^m .

Here β comes from an optimal plan π of that LP (:func:`chansim.transport.optimal_transport_plan`):
:math:`\beta(y \mid A) = \pi(A, y)/P(A)`, the plan's unused mass of A spread over A in
proportion to q.  Then :math:`r \ge \sum_A \pi(A, \cdot)` and
:math:`\sum_y \min(p_y, r_y) \ge \sum \pi = \alpha^*`, so equality holds.  The LP
enumerates the possible draft sets (at most 6000, e.g. V = 16 with m <= 4); plans
are cached per (p, q, m).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import check_pair
from ..paths import check_path_inputs
from ..trees import as_tree
from ..transport import optimal_acceptance_iid, optimal_transport_plan
from .base import IIDDrafting, Method, NodeNoise, sample_rows

__all__ = ["Multidraft", "MultidraftPlan", "multidraft_plan", "multidraft_acceptance", "multidraft_weights",
           "multidraft_tree_tokens", "multidraft_path_acceptance"]


@dataclass(frozen=True)
class MultidraftPlan:
    """The selection rule of one node.

    Attributes
    ----------
    masks : ndarray of int, shape (S,)
        The possible draft sets as sorted bit masks (bit x = token x drafted).
    selection : ndarray, shape (S, V)
        ``selection[i]`` = β(· | A) for the draft set with bit mask ``masks[i]``.
    selected : ndarray, shape (V,)
        r, the law of the selected draft Y.
    """

    masks: np.ndarray
    selection: np.ndarray
    selected: np.ndarray

    def rows(self, drafts: np.ndarray) -> np.ndarray:
        """β(· | A) for each row of ``drafts`` ``[B, m]`` → ``[B, V]``."""
        mask = np.bitwise_or.reduce(np.left_shift(np.int64(1), drafts.astype(np.int64)), axis=1)   # [B]
        return self.selection[np.searchsorted(self.masks, mask)]


_PLANS: dict = {}
_MAX_CACHED_PLANS = 4096


def multidraft_plan(target_probs, draft_probs, m: int) -> MultidraftPlan:
    r"""The optimal selection β and its marginal r for one (p, q) pair and m i.i.d. drafts.

    >>> plan = multidraft_plan([0.5, 0.5], [0.9, 0.1], 1)       # m = 1: Y = the draft, r = q
    >>> plan.selected.round(6).tolist()
    [0.9, 0.1]
    """
    p, q = check_pair(target_probs, draft_probs)
    if p.ndim != 1:
        raise ValueError(f"multidraft_plan takes one pair of 1-D vectors, got shape {p.shape}")
    key = (p.tobytes(), q.tobytes(), int(m))
    if key in _PLANS:
        return _PLANS[key]
    if p.shape[0] > 62:
        raise ValueError(f"multidraft encodes draft sets as 64-bit masks: V={p.shape[0]} > 62")
    sets, law, plan = optimal_transport_plan(p, q, m)                  # [S], [S, V]
    vocab = len(p)
    member = np.zeros((len(sets), vocab), dtype=bool)                  # [S, V] token in set
    for i, members in enumerate(sets):
        member[i, sorted(members)] = True
    beta = plan / np.maximum(law, plan.sum(axis=1))[:, None]           # π(A, .)/P(A)
    spare = np.maximum(1.0 - beta.sum(axis=1), 0.0)[:, None]           # the plan's unused mass of A
    q_in = np.where(member, q[None, :], 0.0)
    beta = beta + spare * q_in / q_in.sum(axis=1, keepdims=True)       # ... spread over A in proportion to q
    masks = (member.astype(np.int64) << np.arange(vocab, dtype=np.int64)[None, :]).sum(axis=1)
    order = np.argsort(masks)
    if len(_PLANS) >= _MAX_CACHED_PLANS:
        _PLANS.clear()
    _PLANS[key] = out = MultidraftPlan(masks[order], beta[order], law @ beta)
    return out


class Multidraft(IIDDrafting, Method):
    """Optimal multi-draft verification, canonical two-step form (see the module docstring)."""

    name = "multidraft"
    label = "multidraft (optimal)"
    colour = "#17becf"
    marker = "*"
    #: the slot weights depend on the node's m, so no slot-based tree search: the
    #: theory asks :meth:`tree_tokens`, the bound report :meth:`report_tokens`
    tree_family = "multidraft"
    #: its logged-path acceptance (:meth:`path_acceptance`) solves the node LP per position, so it
    #: suits small vocabularies only; kept out of the default log/validation lists
    has_path_prediction = False

    # ------------------------------------------------------------------ theory (i.i.d. model)
    def node_acceptance(self, p, q, m: int, **opts) -> float:
        """α*, the LP optimum it attains, in O(V log V) (:func:`chansim.transport.optimal_acceptance_iid`)."""
        return optimal_acceptance_iid(p, q, m)

    def tree_tokens(self, tree, p, q):
        """Exact E[tokens per call] on a sibling-closed tree (:func:`multidraft_tree_tokens`)."""
        return multidraft_tree_tokens(p, q, tree)

    def report_tokens(self, p, q, ks, tree: str, ctx=None):
        """Tokens per call at each k for the bound report: ``batch`` = 1 + α*(k), ``chain`` = sd; no optimal-tree search."""
        ks = [int(k) for k in ks]
        if tree == "batch":
            return [1.0 + optimal_acceptance_iid(p, q, k) for k in ks], [1] * len(ks), True
        if tree == "chain":
            beta = float(np.minimum(p, q).sum())
            return ([float(k + 1) if beta >= 1 else float((1 - beta ** (k + 1)) / (1 - beta)) for k in ks],
                    list(ks), True)
        return [None] * len(ks), [None] * len(ks), True

    # ------------------------------------------------------------------ logged paths
    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        """:func:`multidraft_path_acceptance` on validated arrays."""
        ry = np.array([multidraft_plan(p[t], q[t], m).selected[y[t]] for t in range(len(y))])
        return np.minimum(1.0, ry / py)

    def verify(self, p, q, drafts, noise: NodeNoise):
        batch, m = drafts.shape
        u = noise.rng.random((batch, 3))                                   # [B, 3]
        accepted = np.full(batch, -1, dtype=np.int64)
        token = np.empty(batch, dtype=np.int64)
        if m == 0:                                                         # leaf: bonus y ~ p
            return accepted, sample_rows(p, u[:, 0])
        if p.shape[0] == 1 and q.shape[0] == 1:
            groups = [(np.arange(batch), p[0], q[0])]
        else:
            vocab = p.shape[-1]
            pq = np.concatenate([np.broadcast_to(p, (batch, vocab)), np.broadcast_to(q, (batch, vocab))], axis=1)
            rows, inverse = np.unique(pq, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            groups = [(np.flatnonzero(inverse == g), row[:vocab], row[vocab:]) for g, row in enumerate(rows)]
        for idx, p_row, q_row in groups:
            plan = multidraft_plan(p_row, q_row, m)
            x = drafts[idx]                                                # [b, m]
            y = sample_rows(plan.rows(x), u[idx, 0])                       # step 1: Y ~ beta(. | A)
            ok = u[idx, 1] * plan.selected[y] < p_row[y]                   # step 2: w.p. min(1, p/r)
            token[idx] = y
            if not ok.all():
                rest = np.maximum(p_row - plan.selected, 0.0)[None, :]     # norm((p - r)+)
                token[idx[~ok]] = sample_rows(rest, u[idx[~ok], 2])
            accepted[idx[ok]] = np.argmax(x[ok] == y[ok, None], axis=1)    # first child holding Y
        return accepted, token


# ----------------------------------------------------------------------------- theory (i.i.d. model)
def multidraft_acceptance(target_probs, draft_probs, m: int) -> float:
    r"""Node acceptance :math:`\sum_y \min(p_y, r_y)` (= the LP optimum α*).

    >>> round(multidraft_acceptance([0.5, 0.5], [0.9, 0.1], 2), 6)   # H = {1}: 0.5 + 1 - 0.9^2
    0.69
    """
    p, q = check_pair(target_probs, draft_probs)
    return float(np.minimum(p, multidraft_plan(p, q, m).selected).sum())


def multidraft_weights(target_probs, draft_probs, m: int) -> np.ndarray:
    r"""Slot weights :math:`w_j` = P(move to child j) of a node with m children, shape ``(m,)``.

    The accepted child is the first one holding Y, so
    :math:`w_j = \sum_{x_{1..m}} \prod_i q_{x_i}\, \beta(x_j \mid A)\,
    \min(1, p(x_j)/r(x_j))\, [x_i \ne x_j\ \forall i < j]` (enumerating the
    :math:`V^m` draft tuples).  They sum to :func:`multidraft_acceptance`.

    >>> multidraft_weights([0.5, 0.5], [0.5, 0.5], 2).round(6).tolist()
    [0.75, 0.25]
    """
    p, q = check_pair(target_probs, draft_probs)
    plan = multidraft_plan(p, q, m)
    vocab = len(p)
    support = np.flatnonzero(q > 0)
    tuples = np.array(np.meshgrid(*([support] * m), indexing="ij")).reshape(m, -1).T   # [N, m]
    prob = np.prod(q[tuples], axis=1)                                                   # [N]
    beta = plan.rows(tuples)                                                            # [N, V]
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(plan.selected > 0, np.minimum(1.0, p / plan.selected), 0.0)     # [V]
    w = np.zeros(m)
    for j in range(m):
        first = np.all(tuples[:, :j] != tuples[:, j:j + 1], axis=1)                     # x_j not seen before
        tok = tuples[:, j]
        w[j] = float((prob * first * beta[np.arange(len(tok)), tok] * keep[tok]).sum())
    del vocab
    return w


def multidraft_tree_tokens(target_probs, draft_probs, tree) -> float:
    r"""Exact expected tokens per call on a sibling-closed tree (i.i.d. model).

    :math:`1 + \sum_{v \ne \text{root}} P(\text{path passes } v)`, where the edge to the
    child in slot j of a node with :math:`m_u` children has weight
    :math:`w_j(m_u)` (:func:`multidraft_weights`; it depends on :math:`m_u`, since
    the selection sees all drafts).

    >>> from chansim.trees import batch
    >>> round(multidraft_tree_tokens([0.5, 0.5], [0.9, 0.1], batch(2)), 6)
    1.69
    """
    tree = as_tree(tree)
    Multidraft().check_tree(tree)
    p, q = check_pair(target_probs, draft_probs)
    cache = {}
    reach = np.zeros(tree.n_nodes)
    reach[0] = 1.0
    for u in np.argsort(tree.depth, kind="stable"):
        kids = tree.children[u]
        if len(kids):
            m = len(kids)
            if m not in cache:
                cache[m] = multidraft_weights(p, q, m)
            reach[kids] = reach[u] * cache[m][tree.ranks[kids] - 1]
    return float(reach.sum())


# ----------------------------------------------------------------------------- logged path
def multidraft_path_acceptance(target_probs, draft_probs, tokens, m: int) -> np.ndarray:
    r""":math:`c_t = P(\text{accept} \wedge \text{out} = y_t)/p_t(y_t) = \min(1, r_t(y_t)/p_t(y_t))`.

    (Accepting outputs Y = y with probability :math:`r(y)\min(1, p(y)/r(y))`.)  Same
    signature as the functions of :data:`chansim.predict.PATH_METHODS`.

    >>> multidraft_path_acceptance([[0.5, 0.5]], [[0.9, 0.1]], [1], 2).round(6).tolist()
    [0.38]
    """
    p, q, y, py = check_path_inputs(target_probs, draft_probs, tokens)
    ry = np.array([multidraft_plan(p[t], q[t], m).selected[y[t]] for t in range(len(y))])
    return np.minimum(1.0, ry / py)
