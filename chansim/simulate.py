r"""Monte Carlo engine: many speculative target calls at once, for the i.i.d. and Markov models.

The **batched engine** runs the node rules of :mod:`chansim.verify` (written over a
leading batch axis) on a batch of calls at once: a Python loop over depths and tree
nodes, numpy over trials — no per-trial Python.  Children are drafted lazily at the
visited node only (the drafts of unvisited subtrees never influence the output, so
the law of every call is that of :func:`chansim.verify.speculative_step`).  Race
noise is fresh Exp(1) per (call, depth) — i.e. per absolute position — shared by the
draft and the target at the visited node.

The **reference engine** (``engine="reference"``) drives the shared tree walk
:func:`~chansim.verify.speculative_step` one call at a time; it is the cross-check and
the benchmark baseline.

Models and token streams
------------------------
* **i.i.d.** (two 1-D vectors or :class:`~chansim.sampling.sources.IIDSource`): calls are
  independent; ``tokens`` is the concatenated output of all calls in call order (an
  i.i.d. sequence ~ p when the method is exact).
* **Markov** (:class:`~chansim.sampling.sources.MarkovSource` pair): ``streams`` independent
  generations, each starting from the empty prefix and chaining its calls (each call
  continues after the previous call's last token); calls are dealt round-robin, so the
  streams get ``calls // streams`` or one more call each.  ``tokens`` is the
  concatenation of the streams, stream after stream (``stream_lengths`` gives the
  boundaries).  ``streams=1`` is one long generation.

Confidence interval of tokens per call: normal interval at level ``confidence``
(default 95%).  i.i.d.: mean ± z·s/√n from the sample std of the per-call token
counts.  Markov: calls within a stream are dependent, so the standard error is that
of the ratio estimator Σ tokens / Σ calls over the independent streams (cluster /
delta method); with a single stream it falls back to the i.i.d. formula, which then
ignores the serial correlation.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .sampling.race_sampling import RaceTable
from .sampling.sources import IIDSource, MarkovSource, as_source, check_sources
from .common.logconfig import progress_bar
from .common.stats import no_spread_fraction, normal_quantile, ratio_standard_error, student_quantile
from .inputs.trees import Tree
from .verify import GeneratorNoise, NodeNoise, as_tree, get_method, speculative_step

__all__ = ["Estimate", "SimulationResult", "simulate", "generate", "sweep", "grid"]


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean with a two-sided normal confidence interval."""

    mean: float
    ci_low: float
    ci_high: float
    std_error: float
    confidence: float
    small_sample: bool = False       # fewer than SMALL_CALLS calls (or SMALL_SEQUENCES Markov streams)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "std_error": self.std_error, "confidence": self.confidence, "small_sample": self.small_sample}

    def contains(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate` (raw counts included, so any statistic can be recomputed).

    ``acceptance_per_depth[d]`` = accepted_per_depth[d] / reached_per_depth[d]: among the
    calls that verified drafted children at depth d, the fraction that accepted one
    (NaN when no call got there).  ``tokens_histogram[j]`` = number of calls that
    produced j tokens (j = 0 .. max_depth + 1; entry 0 is always 0).
    """

    method: str
    tree: str
    k: int
    calls: int
    seed: int
    model: str
    engine: str
    streams: int
    tokens_per_call: Estimate
    acceptance_per_depth: list
    reached_per_depth: list
    accepted_per_depth: list
    tokens_histogram: list
    seconds: float
    tokens: np.ndarray | None = field(default=None, repr=False)
    stream_lengths: np.ndarray | None = field(default=None, repr=False)

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self, include_tokens: bool = False) -> dict:
        """JSON-ready dict (NaN acceptances become ``None``)."""
        out = {
            "method": self.method, "tree": self.tree, "k": self.k, "calls": self.calls,
            "seed": self.seed, "model": self.model, "engine": self.engine, "streams": self.streams,
            "tokens_per_call": self.tokens_per_call.to_dict(),
            "acceptance_per_depth": [None if math.isnan(a) else a for a in self.acceptance_per_depth],
            "reached_per_depth": list(self.reached_per_depth),
            "accepted_per_depth": list(self.accepted_per_depth),
            "tokens_histogram": list(self.tokens_histogram),
            "seconds": self.seconds,
        }
        if include_tokens and self.tokens is not None:
            out["tokens"] = self.tokens.tolist()
        return out

    def to_records(self) -> list:
        """One flat record (list of one dict): the setting and tokens per call with its interval.

        Records of many runs concatenate into a table (``pandas.DataFrame(sum(..., []))``).
        """
        est = self.tokens_per_call.to_dict()
        return [{"method": self.method, "tree": self.tree, "k": self.k, "calls": self.calls, "seed": self.seed,
                 "model": self.model, "engine": self.engine,
                 **{f"tokens_per_call_{key}" if key != "mean" else "tokens_per_call": value
                    for key, value in est.items()},
                 "seconds": self.seconds}]


# ----------------------------------------------------------------------------- engine
class _Plan:
    """Per-tree lookup tables for the batched walk."""

    def __init__(self, tree: Tree, merges: bool):
        self.max_depth = tree.max_depth
        self.depth_nodes = [np.flatnonzero(tree.depth == d) for d in range(self.max_depth + 1)]
        self.children = tree.children
        self.slots = [tree.ranks[c] for c in tree.children]
        if merges:   # disjoint chains below the root: chain_nodes[c, d] = node at depth d + 1
            roots = tree.children[0]
            self.chain_nodes = np.full((len(roots), max(1, self.max_depth)), -1, dtype=np.int64)
            for c, u in enumerate(roots):
                d = 0
                while True:
                    self.chain_nodes[c, d] = u
                    if not len(tree.children[u]):
                        break
                    u, d = tree.children[u][0], d + 1
            self.chain_len = (self.chain_nodes >= 0).sum(axis=1)        # [C]


#: largest (contexts x V) table the engine precomputes for the O(m log V) samplers (8 arrays: ~130 MiB)
_MAX_TABLE_ELEMENTS = 2**21


def _race_table(method, target, draft, vocab, race_tables="auto"):
    """``(RaceTable, rows_of_context)`` for methods with ``uses_table`` (None: full-V sampling).

    i.i.d.: one row.  Markov: one row per context (V + 1 rows, the last = empty prefix),
    when (V + 1) V <= ``_MAX_TABLE_ELEMENTS``.  ``race_tables="auto"`` skips the table where
    the method's full-V sampler is cheaper (V below ``Method.table_min_vocab``).
    """
    if not getattr(method, "uses_table", False) or race_tables is False:
        return None
    if race_tables == "auto" and vocab < getattr(method, "table_min_vocab", 0):
        return None
    if isinstance(target, IIDSource) and isinstance(draft, IIDSource):
        return RaceTable(target.probs[None, :], draft.probs[None, :]), lambda ctx: np.zeros(len(ctx), dtype=np.int64)
    if isinstance(target, MarkovSource) and isinstance(draft, MarkovSource) and (vocab + 1) * vocab <= _MAX_TABLE_ELEMENTS:
        contexts = np.arange(vocab + 1)                                 # row V = empty prefix (context -1)
        table = RaceTable(target.next_probs(contexts), draft.next_probs(contexts))
        return table, lambda ctx: np.where(np.asarray(ctx) < 0, vocab, ctx).astype(np.int64)
    return None


def _visit(method, target, draft, ctx, slots, rng, vocab, table=None):
    """Draft the children of a batch of nodes and apply the node rule: ``(accepted [B], token [B], drafts [B, m])``.

    ``ctx`` ``[B]`` last tokens (-1: empty prefix), ``slots`` ``[m]`` the children's slots; the
    sources give the checked rows ``[B or 1, V]`` (validated once, when they were built).
    """
    batch = len(ctx)
    p = target.next_probs(ctx)                                          # [B or 1, V]
    q = draft.next_probs(ctx)                                           # [B or 1, V]
    if table is not None:                                               # exact O(m log V) samplers
        noise = NodeNoise(rng, batch, None, table=table[0], table_rows=table[1](ctx))
    else:
        race = rng.standard_exponential((batch, vocab)) if method.uses_race else None   # [B, V]
        noise = NodeNoise(rng, batch, race)
    drafts = method.draft(q, slots, noise) if len(slots) else np.empty((batch, 0), dtype=np.int64)
    accepted, token = method.verify(p, q, drafts, noise)
    return accepted, token, drafts


def _batched_calls(method, plan: _Plan, target, draft, ctx, rng, vocab, table=None):
    """One target call for each of S trials; ctx ``[S]`` = last token (-1: empty prefix).

    Returns out ``[S, D+1]`` (tokens, -1 padded), n_tokens ``[S]``, reached ``[D+1]``,
    accepted ``[D+1]`` and the new last tokens ``[S]``.
    """
    if method.verifies_chain:
        return _chain_calls(method, plan, target, draft, ctx, rng, table)
    n = len(ctx)
    depth_max = plan.max_depth
    out = np.full((n, depth_max + 1), -1, dtype=np.int64)              # [S, D+1]
    n_tok = np.zeros(n, dtype=np.int64)                                # [S]
    reached = np.zeros(depth_max + 1, dtype=np.int64)
    accepted = np.zeros(depth_max + 1, dtype=np.int64)
    ctx = np.array(ctx, dtype=np.int64)
    running = np.ones(n, dtype=bool)
    if method.merges_duplicates:
        alive = np.ones((n, len(plan.chain_len)), dtype=bool)          # [S, C] chains matching the output
    else:
        node = np.zeros(n, dtype=np.int64)                             # [S] current tree node
    for d in range(depth_max + 1):
        if not running.any():
            break
        if method.merges_duplicates:
            cand = alive & (plan.chain_len > d)[None, :]               # [S, C] chains with a depth-(d+1) draft
            count = cand.sum(axis=1)
            groups = [(c, running & (count == c)) for c in np.unique(count[running])]
        else:
            groups = [(u, running & (node == u)) for u in plan.depth_nodes[d]]
        for key, mask in groups:
            idx = np.flatnonzero(mask)
            if not idx.size:
                continue
            slots = np.arange(1, key + 1) if method.merges_duplicates else plan.slots[key]
            acc, tok, drafts = _visit(method, target, draft, ctx[idx], slots, rng, vocab, table)
            out[idx, d] = tok
            n_tok[idx] += 1
            ctx[idx] = tok
            moved = acc >= 0
            if len(slots):
                reached[d] += idx.size
                accepted[d] += int(moved.sum())
            running[idx[~moved]] = False
            if method.merges_duplicates:
                chains = np.argsort(~cand[idx], axis=1, kind="stable")[:, :key]   # [B, c] candidate chain ids
                new_alive = np.zeros((idx.size, alive.shape[1]), dtype=bool)
                np.put_along_axis(new_alive, chains, drafts == tok[:, None], axis=1)
                alive[idx] = new_alive
            else:
                node[idx[moved]] = plan.children[key][acc[moved]]
    return out, n_tok, reached, accepted, ctx


def _chain_calls(method, plan: _Plan, target, draft, ctx, rng, table=None):
    """:func:`_batched_calls` for a whole-chain verifier (block): draft the chain, verify it at once.

    With a table the verifier gets its rows per depth, ``table_rows`` ``[γ+1, S]``.  ``ctx`` ``[S]``;
    returns as :func:`_batched_calls`.
    """
    n, gamma = len(ctx), plan.max_depth
    noise = NodeNoise(rng, n, None)
    last = np.array(ctx, dtype=np.int64)
    drafts = np.empty((n, gamma), dtype=np.int64)                      # [S, γ]
    p_rows, q_rows, contexts = [], [], [last]
    for d in range(gamma):
        p_rows.append(target.next_probs(last))                          # [S or 1, V]
        q_rows.append(draft.next_probs(last))
        drafts[:, d] = last = method.draft(q_rows[-1], plan.slots[plan.depth_nodes[d][0]], noise)[:, 0]
        contexts.append(last)
    p_rows.append(target.next_probs(last))
    if table is not None:
        noise.table, noise.table_rows = table[0], np.stack([table[1](c) for c in contexts])   # [γ+1, S]
    tau, token = method.verify_chain(np.stack(p_rows), np.stack(q_rows), drafts, noise)
    out = np.full((n, gamma + 1), -1, dtype=np.int64)                  # [S, γ+1]
    out[:, :gamma] = np.where(np.arange(gamma)[None, :] < tau[:, None], drafts, -1)
    out[np.arange(n), tau] = token
    depths = np.arange(gamma + 1)
    reached = (tau[:, None] >= depths[None, :]).sum(axis=0)            # calls that verified depth d
    reached[gamma] = 0
    accepted = (tau[:, None] > depths[None, :]).sum(axis=0)
    return out, tau + 1, reached, accepted, token


def _reference_call(method, tree, target, draft, last, rng):
    """One call through the shared walk (order-1 sources: the prefix is the last token ``last``, -1: empty).

    Returns out ``[D+1]`` (tokens, -1 padded), n_tokens, reached ``[D+1]``, accepted ``[D+1]``, the new last token.
    """
    prefix = [] if last < 0 else [int(last)]
    step = speculative_step(method, tree, prefix, target, draft, GeneratorNoise(rng))
    depth_max = tree.max_depth
    reached = np.zeros(depth_max + 1, dtype=np.int64)
    accepted = np.zeros(depth_max + 1, dtype=np.int64)
    reached[:len(step.events)] = 1
    accepted[:len(step.events)] = step.events
    out = np.full(depth_max + 1, -1, dtype=np.int64)
    out[:step.n_tokens] = step.tokens
    return out, step.n_tokens, reached, accepted, int(step.tokens[-1])


# ----------------------------------------------------------------------------- helpers
#: per-trial elements of a node visit for a method that draws no V-wide noise per trial (i.i.d. model:
#: the rows are shared, so a visit costs O(V) once plus O(m log V) per trial)
_NARROW_WIDTH = 64


def _trial_width(method, table, vocab: int) -> int:
    """Memory per trial of one node visit, in array elements, in the i.i.d. model.

    V for a race method on full-V noise (``[B, V]`` exponentials per visit) or a whole-chain
    verifier without its table (``[B, V]`` residual rows); else :data:`_NARROW_WIDTH` —
    sd, specinfer, spectr, multidraft and autoregressive touch only the shared ``[1, V]``
    rows and ``[B, m]`` draws, and the table samplers are O(m log V) per trial.
    """
    if table is None and (method.uses_race or method.verifies_chain):
        return vocab
    return _NARROW_WIDTH


def _check_race_tables(value) -> None:
    if value not in (True, False, "auto"):
        raise ValueError(f"race_tables must be True, False or 'auto', got {value!r}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _setup(method, tree, target_probs, draft_probs, method_options):
    method = get_method(method, **method_options)
    tree = as_tree(tree)
    method.check_tree(tree)
    target = as_source(target_probs, "target_probs")
    draft = as_source(draft_probs, "draft_probs")
    vocab = check_sources(target, draft)
    for role, src in (("target", target), ("draft", draft)):
        if not hasattr(src, "next_probs"):
            raise ValueError(f"the Monte Carlo engine needs order-1 sources (IIDSource, MarkovSource); the {role} "
                             f"source {src!r} has no next_probs — use chansim.verify.speculative_generate")
    model = "iid" if isinstance(target, IIDSource) and isinstance(draft, IIDSource) else "markov"
    return method, tree, target, draft, vocab, model


#: below these sizes an interval is flagged ``small_sample`` (normal/t intervals are then unreliable)
SMALL_CALLS = 30
SMALL_SEQUENCES = 4


def _feasible(mean, low, high, max_tokens, se, confidence, small) -> Estimate:
    """Clip an interval to what is possible: every call yields between 1 and ``max_tokens`` tokens."""
    return Estimate(mean, max(1.0, low), min(float(max_tokens), high), se, confidence, small)


def _estimate(hist, stream_tokens, stream_calls, model, confidence) -> Estimate:
    """Tokens per call with its interval from ``hist`` ``[D+2]`` (calls by tokens) and, Markov, the
    per-stream totals ``stream_tokens``, ``stream_calls`` ``[S]`` (module docstring)."""
    counts = np.arange(len(hist))
    max_tokens = len(hist) - 1                               # depth + 1: the most one call can yield
    small = bool(int(hist.sum()) < SMALL_CALLS or (model == "markov" and len(stream_calls) < SMALL_SEQUENCES))
    n = int(hist.sum())
    mean = float((counts * hist).sum() / n)
    z = normal_quantile(confidence)
    if model == "markov" and len(stream_calls) > 1:
        # ratio estimator over independent streams; its spread is estimated from s
        # streams, so the quantile is Student's t with s - 1 degrees of freedom
        se = ratio_standard_error(stream_tokens, stream_calls, mean)
        z = student_quantile(confidence, len(stream_calls) - 1)
    else:
        var = float(((counts - mean) ** 2 * hist).sum() / max(1, n - 1))
        se = math.sqrt(var / n)
    if se == 0.0 and model != "markov":
        # Every call gave the same count c, so the normal interval would collapse.  With
        # no call observed outside c, the fraction of calls that differ is at most
        # u = 1 - ((1 - confidence) / 2)^(1/n) (Clopper-Pearson for 0 events), and each
        # differs by at most c - 1 below or (max tokens - c) above.
        u = no_spread_fraction(confidence, n)
        return _feasible(mean, mean - (mean - 1.0) * u, mean + (max_tokens - mean) * u, max_tokens, 0.0, confidence,
                         small)
    return _feasible(mean, mean - z * se, mean + z * se, max_tokens, se, confidence, small)


# ----------------------------------------------------------------------------- public
def simulate(method, tree, target_probs, draft_probs, calls: int, seed: int = 0, *, streams: int | None = None,
             emit_tokens: bool = False, engine: str = "batched", confidence: float = 0.95,
             max_batch_elements: int = 2**22, progress: bool = False, race_tables="auto",
             **method_options) -> SimulationResult:
    r"""Simulate ``calls`` target calls of ``method`` on ``tree``; tokens per call with a CI.

    Parameters
    ----------
    method : str or Method
        A registered name (:data:`chansim.verify.METHODS`: every method and variant) or an instance.
    tree : Tree or str
        Draft tree or spec (``chain:4``, ``batch:4``, ``branch:4,2,1``, ``seq:3x4``).
    target_probs, draft_probs : array of shape (V,), or a source
        1-D vectors ``[V]`` (i.i.d. model) or :class:`~chansim.sampling.sources.IIDSource` /
        :class:`~chansim.sampling.sources.MarkovSource` objects (transition ``[V, V]``); checked once here,
        when the sources are built.
    calls : int
        Number of target calls.
    seed : int
        Seed of the ``numpy.random.Generator``; same seed, same result.
    streams : int, optional
        Markov: number of independent generations (default ``min(calls, 1024)``).
        i.i.d.: batch size (default ``max_batch_elements`` divided by the memory one call
        needs per node visit: V for methods that draw V-wide noise per call — ersd/rsd on
        full-V races, block without its table — else 64, since sd, specinfer, spectr,
        multidraft, block and the table samplers only touch the shared rows; at least 16).
    emit_tokens : bool
        Keep the output token stream (see the module docstring).
    engine : {"batched", "reference"}
    confidence : float
        Level of the normal confidence interval of tokens per call.
    race_tables : {"auto", True, False}
        Batched engine, ``ersd``, ``rsd`` and ``block``: sample races and residuals exactly in
        O(m log V) per node from tables sorted once per context
        (:class:`chansim.sampling.race_sampling.RaceTable`, docs/theory.md §2.4) instead of V
        fresh draws per node.  ``False`` keeps the full-V samplers (same law, other random
        stream); ``"auto"`` (default) uses the tables except where the full-V sampler is
        cheaper (V below the method's ``table_min_vocab``: 32 for ersd/rsd).
    **method_options
        Passed to the method (e.g. ``rho`` for spectr).

    Returns
    -------
    SimulationResult

    Examples
    --------
    Known answer for sd on a chain of :math:`\gamma` in the i.i.d. model,
    :math:`(1-\beta^{\gamma+1})/(1-\beta)`, :math:`\beta = \sum_x \min(p_x, q_x)`:

    >>> p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])   # beta = 0.8
    >>> from chansim.verify import SD
    >>> res = simulate(SD(), "chain:2", p, q, calls=20_000, seed=1)
    >>> res.tokens_per_call.contains((1 - 0.8**3) / (1 - 0.8))
    True
    """
    method, tree, target, draft, vocab, model = _setup(method, tree, target_probs, draft_probs, method_options)
    calls = _positive_int(calls, "calls")
    _check_run_options(seed, engine, confidence, race_tables)
    table = _race_table(method, target, draft, vocab, race_tables) if engine == "batched" else None
    streams = _stream_count(streams, calls, model, max_batch_elements, _trial_width(method, table, vocab))
    rng = np.random.default_rng(seed)
    per_stream = np.full(streams, calls // streams, dtype=np.int64)     # [S] calls of each stream
    per_stream[: calls % streams] += 1
    tally = _Tally.empty(streams, tree.max_depth)
    start = time.perf_counter()
    if engine == "batched":
        _run_batched(method, tree, target, draft, vocab, table, per_stream, rng, tally, emit_tokens, progress)
    else:   # reference: the same calls, one at a time, stream after stream
        _run_reference(method, tree, target, draft, per_stream, rng, tally, emit_tokens)
    seconds = time.perf_counter() - start
    tokens = lengths = None
    if emit_tokens:
        tokens, lengths = _assemble(tally.blocks, streams, int(per_stream.max()), tree.max_depth, model)
    return SimulationResult(
        method=method.name, tree=tree.name, k=tree.size, calls=calls, seed=int(seed), model=model, engine=engine,
        streams=streams,
        tokens_per_call=_estimate(tally.hist, tally.stream_tokens, tally.stream_calls, model, confidence),
        **_depth_counts(tally, tree.max_depth),
        tokens_histogram=tally.hist.tolist(), seconds=seconds, tokens=tokens, stream_lengths=lengths)


def _depth_counts(tally, depth_max: int) -> dict:
    """Per depth 0..depth_max-1: acceptance (NaN where never reached), nodes reached and accepted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = (tally.accepted / np.where(tally.reached > 0, tally.reached, 1)).astype(float)
    acceptance[tally.reached == 0] = np.nan
    return {"acceptance_per_depth": acceptance[:depth_max].tolist(),
            "reached_per_depth": tally.reached[:depth_max].tolist(),
            "accepted_per_depth": tally.accepted[:depth_max].tolist()}


def _check_run_options(seed, engine, confidence, race_tables) -> None:
    """:func:`simulate`'s scalar options, checked at the door (one-line ``ValueError`` each)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if engine not in ("batched", "reference"):
        raise ValueError(f"engine must be 'batched' or 'reference', got {engine!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    _check_race_tables(race_tables)


def _stream_count(streams, calls: int, model: str, max_batch_elements: int, trial_width: int) -> int:
    """Streams S (Markov: independent generations; i.i.d.: the batch size), at most ``calls``.

    Default: ``min(calls, 1024)`` Markov streams, or as many i.i.d. trials as fit
    ``max_batch_elements`` at ``trial_width`` elements each (at least 16).
    """
    if streams is None:
        streams = min(calls, 1024) if model == "markov" else max(16, max_batch_elements // trial_width)
    return min(_positive_int(streams, "streams"), calls)


@dataclass
class _Tally:
    """Running counts of one :func:`simulate` run (D = the tree's depth, S = streams)."""

    hist: np.ndarray               # [D+2] calls by the number of tokens they produced
    reached: np.ndarray            # [D+1] calls that verified drafted children at depth d
    accepted: np.ndarray           # [D+1] ... and accepted one of them
    stream_tokens: np.ndarray      # [S] tokens per stream
    stream_calls: np.ndarray       # [S] calls per stream
    blocks: list = field(default_factory=list)   # per round: (streams [A], tokens [A, D+1] int32), if emitted

    @classmethod
    def empty(cls, streams: int, depth_max: int) -> "_Tally":
        return cls(np.zeros(depth_max + 2, dtype=np.int64), np.zeros(depth_max + 1, dtype=np.int64),
                   np.zeros(depth_max + 1, dtype=np.int64), np.zeros(streams, dtype=np.int64),
                   np.zeros(streams, dtype=np.int64))

    def add(self, streams, n_tok, reached, accepted) -> None:
        """Count one call per stream in ``streams`` (``n_tok`` tokens each; per-depth counts summed)."""
        self.reached += reached
        self.accepted += accepted
        self.stream_tokens[streams] += n_tok
        self.stream_calls[streams] += 1


def _run_batched(method, tree: Tree, target, draft, vocab: int, table, per_stream: np.ndarray, rng,
                 tally: _Tally, emit_tokens: bool, progress: bool) -> None:
    """The batched engine: round r runs one call of every stream with more than r calls, numpy over streams."""
    plan = _Plan(tree, method.merges_duplicates)
    depth_max = tree.max_depth
    ctx = np.full(len(per_stream), -1, dtype=np.int64)                 # [S] last token per stream
    rounds = int(per_stream.max())
    bar = progress_bar(rounds, f"{method.name} {tree.name}", progress)
    for r in range(rounds):
        active = np.flatnonzero(per_stream > r)
        out, n_tok, rch, acc, ctx[active] = _batched_calls(method, plan, target, draft, ctx[active], rng, vocab, table)
        tally.hist += np.bincount(n_tok, minlength=depth_max + 2)
        tally.add(active, n_tok, rch, acc)
        if emit_tokens:
            tally.blocks.append((active, out.astype(np.int32)))
        bar.update(1)
    bar.close()


def _run_reference(method, tree: Tree, target, draft, per_stream: np.ndarray, rng, tally: _Tally,
                   emit_tokens: bool) -> None:
    """The reference engine: the same calls through the shared walk, one at a time, stream after stream."""
    ctx = np.full(len(per_stream), -1, dtype=np.int64)                 # [S] last token per stream
    outs = {}
    for s in range(len(per_stream)):
        for r in range(int(per_stream[s])):
            out, n_tok, rch, acc, ctx[s] = _reference_call(method, tree, target, draft, ctx[s], rng)
            tally.hist[n_tok] += 1
            tally.add(s, n_tok, rch, acc)
            if emit_tokens:
                outs.setdefault(r, []).append((s, out))
    for r in sorted(outs):                                             # blocks by round, as the batched engine
        tally.blocks.append((np.array([s for s, _ in outs[r]]), np.array([o for _, o in outs[r]], dtype=np.int32)))


def _assemble(blocks, streams, rounds, depth_max, model):
    """Token stream from per-round output blocks: call order (i.i.d.) or stream after stream (Markov).

    ``blocks``: per round ``(streams [A], tokens [A, D+1])``; returns ``(tokens [N], stream_lengths [S or 1])``.
    """
    if model == "iid":
        parts = [out[out >= 0] for _, out in blocks]                      # round-major = call order
        tokens = np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
        return tokens, np.array([len(tokens)])
    grid_ = np.full((streams, rounds, depth_max + 1), -1, dtype=np.int32)   # [S, rounds, D+1]
    for r, (active, out) in enumerate(blocks):
        grid_[active, r] = out
    flat = grid_.reshape(streams, -1)
    lengths = (flat >= 0).sum(axis=1)
    return flat[flat >= 0].astype(np.int64), lengths


def generate(method, tree, target_probs, draft_probs, streams: int, length: int, seed: int = 0,
             race_tables="auto", **method_options) -> np.ndarray:
    """``streams`` independent generations of ``length`` tokens each, batched; shape ``[streams, length]``.

    Every generation starts from the empty prefix and chains target calls until it has
    at least ``length`` tokens (the overshoot of the last call is cut, which leaves the
    law of the kept tokens unchanged).  With an exact method each row is distributed as
    the target's own autoregressive sample.  ``race_tables`` as in :func:`simulate`.

    >>> from chansim.sampling.sources import MarkovSource
    >>> src = MarkovSource([[0.5, 0.5], [0.1, 0.9]])
    >>> from chansim.verify import ERSD
    >>> generate(ERSD(), "batch:2", src, src, streams=4, length=3).shape
    (4, 3)
    """
    method, tree, target, draft, vocab, _ = _setup(method, tree, target_probs, draft_probs, method_options)
    streams, length = _positive_int(streams, "streams"), _positive_int(length, "length")
    _check_race_tables(race_tables)
    table = _race_table(method, target, draft, vocab, race_tables)
    rng = np.random.default_rng(seed)
    plan = _Plan(tree, method.merges_duplicates)
    buf = np.full((streams, length + tree.max_depth + 1), -1, dtype=np.int64)
    filled = np.zeros(streams, dtype=np.int64)
    ctx = np.full(streams, -1, dtype=np.int64)
    while True:
        active = np.flatnonzero(filled < length)
        if not active.size:
            return buf[:, :length]
        out, n_tok, _, _, ctx[active] = _batched_calls(method, plan, target, draft, ctx[active], rng, vocab, table)
        cols = filled[active, None] + np.arange(out.shape[1])[None, :]  # [A, D+1]
        keep = out >= 0
        buf[np.broadcast_to(active[:, None], out.shape)[keep], cols[keep]] = out[keep]
        filled[active] += n_tok


def grid(**axes) -> list[dict]:
    """Cartesian product of keyword axes as a list of config dicts for :func:`sweep`.

    A scalar is a single value; a list (or tuple for ``pair`` lists) is an axis.

    >>> [(c["method"], c["tree"]) for c in grid(method="m", tree=["chain:1", "chain:2"], calls=10)]
    [('m', 'chain:1'), ('m', 'chain:2')]
    """
    names, values = [], []
    for name, value in axes.items():
        names.append(name)
        values.append(value if isinstance(value, list) else [value])
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _run_config(config: dict) -> SimulationResult:
    config = dict(config)
    if "pair" in config:                       # pair = (target_probs, draft_probs)
        config["target_probs"], config["draft_probs"] = config.pop("pair")
    if "k" in config:                          # tree family + k, e.g. tree="chain", k=4
        k = config.pop("k")
        family = config.get("tree")
        if not isinstance(family, str) or ":" in family:
            raise ValueError(f"config key k needs tree to be a family name (chain, batch), got {family!r}")
        config["tree"] = f"{family}:{k}"
    config.pop("label", None)
    return simulate(**config)


def sweep(configs, n_jobs: int = 1, backend: str | None = None, progress: bool = True) -> list[SimulationResult]:
    """Run :func:`simulate` for each config dict, in parallel with joblib; results in config order.

    Config keys are :func:`simulate`'s arguments, plus ``pair=(p, q)`` for the two
    distributions, ``k`` with a tree family (``tree="chain", k=4`` → ``chain:4``) and an
    ignored ``label``.  ``backend`` is a joblib backend name (e.g.
    ``"loky"``, ``"threading"`` or ``"dask"``), see :func:`chansim.common.parallel.parallel_map`.
    A tqdm bar tracks finished configs.

    >>> from chansim.verify import ERSD, SD
    >>> p, q = [0.6, 0.4], [0.5, 0.5]
    >>> res = sweep(grid(method=[SD(), ERSD()], tree="chain", k=[1, 2], pair=(p, q), calls=100), progress=False)
    >>> [(r.method, r.tree) for r in res] == [(m, t) for m in (SD.name, ERSD.name) for t in ("chain:1", "chain:2")]
    True
    """
    from .common.parallel import parallel_map

    return parallel_map(_run_config, [(c,) for c in configs], jobs=n_jobs, backend=backend, desc="sweep",
                        progress=None if progress else False)
