r"""``block`` — block verification of a drafted chain (Sun et al., ICLR 2025, arXiv 2403.10444).

Everything about the method lives here: the sampling rule (draft a chain from q, then
verify the whole chain jointly), its exact expected tokens per call in the i.i.d.
model, and its conditional acceptance along a logged path.  Derivation:
docs/methods_block_multidraft.md §1.

Rule.  Draft :math:`X_1..X_\gamma` autoregressively from q; write
:math:`p_i = p(\cdot \mid X_{<i})`, :math:`q_i = q(\cdot \mid X_{<i})` (i = 1..γ+1 for p).
With :math:`w_0 = 1`,

.. math::
    w_i = \min\Big(1,\; w_{i-1}\,\frac{p_i(X_i)}{q_i(X_i)}\Big), \qquad
    R_i = \sum_x \big(w_i\, p_{i+1}(x) - q_{i+1}(x)\big)_+,

    h_i = \frac{R_i}{R_i + 1 - w_i} \;(i < \gamma), \qquad h_\gamma = w_\gamma .

Draw :math:`\eta_i \sim U(0,1)` and keep the **longest** prefix that passes:
:math:`\tau = \max\{i \ge 1 : \eta_i < h_i\}` (0 if none).  Output :math:`X_{\le\tau}`
and then :math:`Y \sim p_{\gamma+1}` if :math:`\tau = \gamma`, else
:math:`Y \sim \mathrm{norm}\big((w_\tau p_{\tau+1} - q_{\tau+1})_+\big)`.

Key identity (docs/methods_block_multidraft.md §1.2):
:math:`P(\tau \ge i \mid X_{\le i}) = w_i`, so a call yields
:math:`1 + \sum_{i=1}^{\gamma} E_q[w_i]` tokens on average, never fewer than sd's
:math:`1 + \sum_i E_q[\prod_{j \le i} \min(1, p_j/q_j)]` since
:math:`w_i \ge \prod_{j\le i} \min(1, p_j(X_j)/q_j(X_j))`.

The decision at depth i looks at drafts below i, so the method is not a node rule: it
sets ``verifies_chain`` and the shared walk and the batched engine hand it the whole
chain (:meth:`Block.verify_chain`).
"""
from __future__ import annotations

import numpy as np

from ..inputs.numbers import whole_number
from ..inputs.distributions import check_pair_1d
from ..inputs.paths import check_path_inputs, expected_calls_from_lengths
from ..common.stats import normal_quantile
from .base import IIDDrafting, Method, NodeNoise, sample_rows, take_rows
from .block_exact import cached_block_tokens
from .specinfer import SpecInfer

__all__ = ["Block", "block_weights", "block_mean_weights", "block_chain_tokens", "block_chain_tokens_mc",
           "block_call_lengths", "block_path_calls"]


#: guaranteed half-width aimed at by the bound report's block values (docs/methods_block_multidraft.md §1.5)
REPORT_TOL = 1e-5


def block_weights(p_rows, q_rows, drafts) -> np.ndarray:
    r"""The weights :math:`w_0..w_\gamma` of a batch of drafted chains, shape ``[B, γ+1]``.

    ``p_rows`` / ``q_rows`` ``[γ, R, V]`` (R = 1 or B; row i is the law of :math:`X_{i+1}`),
    ``drafts`` ``[B, γ]``.  A draft with q = 0 never occurs; p = 0 gives w = 0.

    >>> block_weights(np.array([[[1/3, 2/3]]] * 2), np.array([[[2/3, 1/3]]] * 2), np.array([[0, 1]])).tolist()
    [[1.0, 0.5, 1.0]]
    """
    batch, gamma = drafts.shape
    w = np.ones((batch, gamma + 1))
    for i in range(gamma):
        x = drafts[:, i]
        w[:, i + 1] = np.minimum(1.0, w[:, i] * take_rows(p_rows[i], x) / take_rows(q_rows[i], x))
    return w


class Block(IIDDrafting, Method):
    """Block verification on a chain (see the module docstring)."""

    name = "block"
    label = "block verification"
    colour = "#8c564b"
    marker = "X"
    #: not slot-based: the theory asks :meth:`tree_tokens`, the bound report :meth:`report_tokens`
    tree_family = "block-chain"
    chains_only = True
    verifies_chain = True
    #: the batched engine hands ``verify_chain`` sorted tables (``noise.table``, rows ``[γ+1, B]`` per depth)
    uses_table = True
    #: a logged path gives the law of a call's length (:meth:`path_call_lengths`), not per-node acceptances
    has_path_prediction = True

    # ------------------------------------------------------------------ theory (i.i.d. model)
    def node_acceptance(self, p, q, m: int, **opts) -> float:
        r"""The first node of a chain accepts with :math:`\beta = \sum_x \min(p_x, q_x)` (= sd).

        ``p``, ``q``: a checked pair ``[V]``.
        """
        if m != 1:
            raise ValueError(f"block verifies a chain: one draft per node, got m={m}")
        return float(np.minimum(p, q).sum())

    def tree_tokens(self, tree, p, q):
        """E[tokens per call] on ``chain:γ`` at any V (Spitzer's identity).

        ``p``, ``q``: a checked pair ``[V]`` (:func:`~chansim.verify.block_exact.block_tokens` behind its door).

        Exact (enumerated overlaps) on small V, else the midpoint of a guaranteed interval of
        half-width at most 1e-6 (wider only where the grid budget runs out: very long chains on
        nearly equal p and q; :func:`~chansim.verify.block_exact.block_tokens` gives the interval).
        """
        return cached_block_tokens(p, q, int(tree.size)).at(int(tree.size))[0]

    def report_tokens(self, p, q, ks, tree: str, ctx=None):
        """Tokens per call at each k for the bound report: the chain (optimal and ``chain``), batch only at k = 1.

        ``p``, ``q``: a checked pair ``[V]``; returns ``(values [len(ks)], budgets [len(ks)], exact)``.

        :func:`~chansim.verify.block_exact.block_tokens` (Spitzer's identity; exact on small V,
        else a guaranteed interval of half-width <= :data:`REPORT_TOL`); ``exact`` when every
        half-width is at most 1e-4 (the report's convention).
        """
        ks = [int(k) for k in ks]
        beta = float(np.minimum(p, q).sum())
        if tree == "batch":
            return [1 + beta if k == 1 else None for k in ks], [1 if k == 1 else None for k in ks], True
        bt = cached_block_tokens(p, q, max(ks), tol=REPORT_TOL)
        vals = [bt.at(k) for k in ks]
        exact = bt.exact or all((hi - lo) / 2 <= 1e-4 for _, lo, hi in vals)
        return [v for v, _, _ in vals], list(ks), exact

    def verify_chain(self, p, q, drafts, noise: NodeNoise):
        r"""Verify a batch of chains jointly.

        Parameters
        ----------
        p : ndarray, shape (γ+1, R, V)
            Target rows along the chain (row i: after :math:`X_{\le i}`); R = 1 or B.
        q : ndarray, shape (γ, R, V)
            Draft rows along the chain.
        drafts : ndarray of int, shape (B, γ)
        noise : NodeNoise
            ``rng`` (γ + 1 uniforms per chain) and, from the batched engine, ``table`` (a
            :class:`~chansim.sampling.race_sampling.RaceTable` of the rows) with ``table_rows``
            ``[γ+1, B]`` (the table row after :math:`X_{\le i}`): then R_i and the output
            token cost O(log V) per chain (:meth:`~chansim.sampling.race_sampling.RaceTable.scaled_residual_mass`,
            :meth:`~chansim.sampling.race_sampling.RaceTable.scaled_residual_sample`), no V-wide work per chain.

        Returns
        -------
        accepted : ndarray, shape (B,)
            τ, the number of accepted drafts.
        token : ndarray, shape (B,)
            The token after the accepted prefix (bonus at τ = γ, else residual sample).
        """
        batch, gamma = drafts.shape
        u = noise.rng.random((batch, gamma + 1))                           # [B, γ+1]
        w = block_weights(p, q, drafts)                                    # [B, γ+1]
        table = noise.table                                                # sorted tables: O(log V) per chain
        h = np.zeros((batch, gamma + 1))                                   # h[:, 0] unused
        for i in range(1, gamma):
            mass = self._residual_mass(p[i], q[i], w[:, i], table, None if table is None else noise.table_rows[i])
            den = mass + 1.0 - w[:, i]
            h[:, i] = np.where(den > 0, mass / np.where(den > 0, den, 1.0), 0.0)
        h[:, gamma] = w[:, gamma]
        passed = u[:, 1:] < h[:, 1:]                                       # [B, γ]
        last = gamma - np.argmax(passed[:, ::-1], axis=1)                  # longest passing prefix
        tau = np.where(passed.any(axis=1), last, 0).astype(np.int64)       # [B]
        rows = np.arange(batch)
        if table is not None:                                              # y ~ (w_τ p_{τ+1} - q_{τ+1})+ or p_{γ+1}
            t_rows = noise.table_rows[tau, rows]                           # [B] table row after X_{≤τ}
            w_tau = np.where(tau < gamma, w[rows, tau], np.inf)            # w = inf: the whole of p (bonus)
            return tau, table.scaled_residual_sample(t_rows, w_tau, u[:, 0], noise.rng)
        p_tau = _pick(p, tau, rows)                                        # [B, V] p_{τ+1}
        q_tau = _pick(q, np.minimum(tau, gamma - 1), rows) if gamma else np.zeros_like(p_tau)
        w_tau = w[rows, tau][:, None]
        weights = np.where((tau < gamma)[:, None], np.maximum(w_tau * p_tau - q_tau, 0.0), p_tau)
        token = sample_rows(weights, u[:, 0])                              # [B]
        return tau, token

    @staticmethod
    def _residual_mass(p_row, q_row, w, table, table_rows):
        r""":math:`R = \sum_x (w\,p_x - q_x)_+` per chain ``[B]``: from the sorted table (O(log V)) or the rows ``[R, V]``."""
        if table is not None:
            return table.scaled_residual_mass(table_rows, w)[0]
        return np.maximum(w[:, None] * p_row - q_row, 0.0).sum(-1)

    #: one node seen alone (γ = 1 from its root) is sd's node rule: accept w.p. min(1, p/q)
    verify = SpecInfer.verify

    # ------------------------------------------------------------------ logged paths
    def check_widths(self, widths) -> None:
        if any(w != 1 for w in widths):
            raise ValueError(f"block verifies a chain (one child per node), got widths {list(widths)}")

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:
        raise ValueError("block verification does not accept node by node along a path: its prediction is the "
                         "law of a call's length (chansim.predict.predict_path, Block.path_call_lengths)")

    def path_call_lengths(self, p, q, y, py, widths):
        """:func:`block_call_lengths` on checked arrays, γ = ``len(widths)``.

        ``q`` ``[T, V]``, ``y``, ``py`` ``[T]`` → ``[T, γ+2]``.
        """
        return _call_lengths(q, y, py, len(widths))


def _pick(rows, depth, batch_rows):
    """``rows[depth[b], b or 0]`` for rows ``[D, R, V]`` → ``[B, V]``."""
    return rows[depth, 0] if rows.shape[1] == 1 else rows[depth, batch_rows]


# ----------------------------------------------------------------------------- theory (i.i.d. model)
def block_mean_weights(target_probs, draft_probs, gamma: int, max_states: int = 2_000_000) -> np.ndarray:
    r""":math:`E[w_1], \dots, E[w_\gamma]` = P(τ >= i) on a chain, exactly (i.i.d. model; pair ``[V]``), ``(γ,)``.

    :math:`w_i = \min(1, w_{i-1}\,p(X_i)/q(X_i))` with :math:`X_i` i.i.d. ~ q; the law of
    :math:`w_i` is propagated on its finite support (equal values merged); raises
    ``ValueError`` when that support outgrows ``max_states``.

    >>> (block_mean_weights([1/3, 2/3], [2/3, 1/3], 2) * 9).round(9).tolist()
    [6.0, 5.0]
    """
    p, q = check_pair_1d(target_probs, draft_probs, "block theory")
    whole_number(gamma, "gamma", minimum=0)
    drafted = q > 0
    ratio = p[drafted] / q[drafted]                       # [V'] p/q on the draft's support
    prob = q[drafted]                                     # [V']
    values, weights = np.ones(1), np.ones(1)              # law of w_i: support and masses
    out = np.empty(int(gamma))
    for i in range(int(gamma)):
        if len(values) * len(ratio) > max_states:
            raise ValueError(f"the law of w has {len(values)} support points at depth {i}; "
                             f"γ={gamma} on V={len(p)} exceeds max_states={max_states}")
        values = np.minimum(1.0, values[:, None] * ratio[None, :]).ravel()   # [S V']
        weights = (weights[:, None] * prob[None, :]).ravel()
        _, first, inverse = np.unique(np.round(values, 12), return_index=True, return_inverse=True)
        values = values[first]                            # one representative per (rounded) value
        weights = np.bincount(inverse.ravel(), weights=weights, minlength=len(values))
        out[i] = float(values @ weights)
    return out


def block_chain_tokens(target_probs, draft_probs, gamma: int, max_states: int = 2_000_000) -> float:
    r"""Exact expected tokens per call of block verification on ``chain:γ`` (i.i.d. model; pair ``[V]``).

    :math:`1 + \sum_{i=1}^{\gamma} E[w_i]` (:func:`block_mean_weights`;
    docs/methods_block_multidraft.md §1.3).

    Examples
    --------
    The paper's motivating example (p = (1/3, 2/3), q = (2/3, 1/3), γ = 2): 11/9 accepted
    drafts per call, against 10/9 for token-by-token sd.

    >>> round(block_chain_tokens([1/3, 2/3], [2/3, 1/3], 2) - 1, 12) == round(11 / 9, 12)
    True
    """
    return 1.0 + float(block_mean_weights(target_probs, draft_probs, gamma, max_states).sum())


def _mc_mean_weights(p, q, gamma, trials, seed):
    """Monte Carlo E[w_1..w_γ] ``[γ]`` and the per-chain sums Σ_i w_i ``[N]``; p, q checked ``[V]``."""
    rng = np.random.default_rng(seed)
    drafts = sample_rows(q[None, :], rng.random((int(trials), int(gamma))))           # [N, γ] i.i.d. ~ q
    rows = np.broadcast_to(np.stack([p, q])[:, None, None, :], (2, int(gamma), 1, len(p)))
    w = block_weights(rows[0], rows[1], drafts)[:, 1:]                                 # [N, γ]
    return w.mean(axis=0), w.sum(axis=1)


def block_chain_tokens_mc(target_probs, draft_probs, gamma: int, trials: int = 200_000, seed: int = 0,
                          confidence: float = 0.99) -> tuple[float, float, float]:
    r"""Monte Carlo :math:`1 + \sum_i E[w_i]` for large V (pair ``[V]``): ``(estimate, ci_low, ci_high)``.

    Rao–Blackwellised (the weights replace the accept coins); normal interval on the
    per-chain sums :math:`\sum_i w_i`.  For the exact value use :func:`block_chain_tokens`.

    >>> est, lo, hi = block_chain_tokens_mc([1/3, 2/3], [2/3, 1/3], 2, trials=20_000)
    >>> lo <= 20 / 9 <= hi
    True
    """

    p, q = check_pair_1d(target_probs, draft_probs, "block_chain_tokens_mc")
    whole_number(gamma, "gamma")
    whole_number(trials, "trials", minimum=2)
    sums = _mc_mean_weights(p, q, gamma, trials, seed)[1]                               # [N]
    mean, se = float(sums.mean()), float(sums.std(ddof=1) / np.sqrt(len(sums)))
    z = normal_quantile(confidence)
    return 1.0 + mean, 1.0 + mean - z * se, 1.0 + mean + z * se


# ----------------------------------------------------------------------------- logged path
def block_call_lengths(target_probs, draft_probs, tokens, gamma: int) -> np.ndarray:
    r"""P(a call starting at t yields exactly j tokens | the output is the logged path), ``[T, γ+2]``.

    Column j (1..γ+1; column 0 is 0) for a call starting at position t, with
    :math:`a_s = q_s(y_s)/p_s(y_s)`, :math:`A_j = \prod_{s<j} a_{t+s}` and the on-path
    weights :math:`w_0 = 1`, :math:`w_s = \min(1, w_{s-1}/a_{t+s-1})`:

    .. math::
        P_t(j) = A_{j-1}\,\big(w_{j-1} - a_{t+j-1}\big)_+ \;(j \le \gamma), \qquad
        P_t(\gamma+1) = A_\gamma\, w_\gamma

    (docs/methods_block_multidraft.md §1.4; it uses only on-path distributions, like
    :mod:`chansim.predict`).  Positions past the end of the path count as a = 1; the
    caller cuts calls that run past the end.

    >>> block_call_lengths([[0.5, 0.5]] * 2, [[0.25, 0.75]] * 2, [0, 0], 1)[0].round(6).tolist()
    [0.0, 0.5, 0.5]
    """
    p, q, y, py = check_path_inputs(target_probs, draft_probs, tokens)
    whole_number(gamma, "gamma")
    return _call_lengths(q, y, py, int(gamma))


def _call_lengths(q, y, py, gamma: int) -> np.ndarray:
    """:func:`block_call_lengths` on validated arrays ``q [T, V]``, ``y [T]``, ``py [T]``."""
    length = len(y)
    a = np.ones(length + gamma + 1)
    a[:length] = q[np.arange(length), y] / py                             # [T + γ + 1]
    out = np.zeros((length, gamma + 2))
    starts = np.arange(length)
    reach = np.ones(length)                                                # A_{j-1}
    w = np.ones(length)                                                    # w_{j-1}
    for j in range(1, gamma + 1):
        a_j = a[starts + j - 1]
        out[:, j] = reach * np.maximum(w - a_j, 0.0)
        reach = reach * a_j
        with np.errstate(divide="ignore"):
            w = np.minimum(1.0, w / a_j)                                   # a = 0: w = 1 (and reach = 0)
    out[:, gamma + 1] = reach * w
    return out


def block_path_calls(target_probs, draft_probs, tokens, gamma: int) -> float:
    r"""Expected target calls of block verification (``chain:γ``) to produce the logged path.

    ``target_probs``, ``draft_probs`` ``[T, V]``, ``tokens`` ``[T]``.

    Backward recursion :math:`f(t) = 1 + \sum_j P_t(j)\, f(\min(t + j, T))`, f(T) = 0
    (:func:`chansim.predict.expected_calls_from_lengths`), with :math:`P_t(j)` from
    :func:`block_call_lengths`.

    >>> block_path_calls([[0.5, 0.5]] * 4, [[0.5, 0.5]] * 4, [0, 1, 0, 1], 1)   # q = p: 2 tokens a call
    2.0
    """
    return float(expected_calls_from_lengths(block_call_lengths(target_probs, draft_probs, tokens, gamma))[0])
