r"""Speculative generation with a real model pair, through the shared tree walk.

Nothing here verifies anything: :func:`generate_real` hands two
:class:`ModelSource` adapters (the :class:`~chansim.sampling.sources.DistributionSource`
protocol over a :class:`~chansim.llm.scoring.TreeScorer`) to
:func:`chansim.verify.speculative_generate`, which drafts level by level, asks the
target for the whole tree in **one** ``tree_probs`` call (one forward pass with a tree
attention mask; the KV trie keeps the accepted path's keys/values for the next call)
and applies the method's node rule.  So every method of :mod:`chansim.verify` runs on
the real pair with exactly the code the Monte Carlo tests check.

Randomness: :class:`~chansim.verify.KeyedNoise` ``(seed)`` for every method.  Its race
noise :math:`E(\text{seed}, t, x)` is keyed by the absolute position t in
``prompt + continuation`` (the first new token sits at ``t = len(prompt)``), so ``ersd``
reproduces plain keyed race sampling of the target (:func:`race_continuation`),
:math:`y_t = \arg\min_x E(\text{seed}, t, x) / p_t(x)`, token for token — and a log made
with the same seed and prompts.  The other methods draw uniforms from
``numpy.random.default_rng(seed)``.

Glossary of the counters in :class:`RealGeneration`:
``target_calls`` = speculative steps = target ``tree_probs`` calls (the first one also
pre-fills the prompt); ``target_forwards`` / ``draft_forwards`` = forward passes actually
run (a call whose nodes are all cached runs none); ``tokens_per_call`` =
``new_tokens / target_calls`` (the last call may overshoot; the overshoot is cut, as in
:func:`chansim.predict.expected_calls`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..inputs.numbers import whole_number
from ..sampling.races import keyed_exponential, race_winner
from ..verify import KeyedNoise, as_tree, get_method, speculative_generate
from .scoring import TreeScorer, tree_depths

__all__ = ["ModelSource", "RealGeneration", "generate_real", "race_continuation"]


class ModelSource:
    r"""A :class:`~chansim.sampling.sources.DistributionSource` over a network: probabilities at temperature T.

    .. math:: p_T(\cdot \mid x) = \mathrm{softmax}(z(x) / T) \quad\text{(float64)}

    Parameters
    ----------
    network : LayerView or TreeScorer
        The network (a fresh :class:`TreeScorer` is made) or a scorer to reuse.
    temperature : float
        ``T > 0``.
    leaf_depth : int, optional
        Rows of nodes at depth ``>= leaf_depth`` are not computed (filled with NaN).
        The walk asks the draft for the tree's deepest level too, but a leaf has no
        children, so no method reads its draft row; with ``leaf_depth = tree.max_depth``
        the draft skips that forward pass (autoregressive: ``leaf_depth = 0``, no draft
        pass at all).

    Attributes
    ----------
    calls : int
        ``tree_probs`` calls.
    seconds : float
        Wall time inside the scorer (forward passes + conversion to float64 numpy; the
        conversion copies to the CPU, which synchronises a GPU).
    """

    def __init__(self, network, temperature: float = 1.0, leaf_depth: int | None = None, settings=None) -> None:
        if settings is not None:                         # SamplingSettings: temperature (0 = greedy), top-k, top-p
            temperature = 1.0
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.scorer = network if isinstance(network, TreeScorer) else TreeScorer(network)
        self.temperature = float(temperature)
        self.settings = settings
        self.leaf_depth = None if leaf_depth is None else int(leaf_depth)
        self.calls = 0
        self.seconds = 0.0

    @property
    def vocab_size(self) -> int:
        return self.scorer.vocab_size

    @property
    def n_forward(self) -> int:
        """Forward passes run by the underlying scorer."""
        return self.scorer.n_forward

    def tree_probs(self, prefix, parents, tokens) -> np.ndarray:
        """Next-token probabilities after ``prefix`` and after every tree node, ``[n_nodes, V]``."""
        parents = np.asarray(parents, dtype=np.int64).reshape(-1)
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        self.calls += 1
        keep = np.ones(parents.size, dtype=bool)
        if self.leaf_depth is not None:
            keep = tree_depths(parents) < self.leaf_depth      # ancestor-closed
        out = np.full((parents.size, self.vocab_size), np.nan)  # [n_nodes, V]
        if not keep.any():
            return out
        idx = np.flatnonzero(keep)
        remap = np.full(parents.size, -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        sub_parents = np.where(parents[idx] >= 0, remap[np.maximum(parents[idx], 0)], -1)
        start = time.perf_counter()
        log_probs = self.scorer.tree_log_probs(prefix, sub_parents, tokens[idx], self.temperature)
        self.seconds += time.perf_counter() - start
        out[idx] = np.exp(log_probs) if self.settings is None else self.settings.apply(log_probs)
        return out

    def reset(self) -> None:
        """Forget cached keys/values (counters are kept)."""
        self.scorer.reset()

    def __repr__(self) -> str:
        law = f"T={self.temperature}" if self.settings is None else self.settings.label()
        return f"ModelSource({law}, forwards={self.n_forward})"


@dataclass
class RealGeneration:
    """Outcome of :func:`generate_real` for one prompt (raw counts, so any statistic can be recomputed).

    ``reached_per_depth[d]`` = calls that verified drafted children at depth d,
    ``accepted_per_depth[d]`` = those that accepted one; ``tokens_histogram[j]`` = calls
    that produced j tokens before the final cut (entry 0 is always 0).
    """

    method: str
    tree: str
    k: int
    seed: int
    temperature: float
    prompt_length: int
    new_tokens: int
    tokens: np.ndarray                       # [new_tokens]
    target_calls: int
    target_forwards: int
    draft_forwards: int
    draft_calls: int
    target_seconds: float
    draft_seconds: float
    wall_seconds: float
    reached_per_depth: list = field(default_factory=list)
    accepted_per_depth: list = field(default_factory=list)
    tokens_histogram: list = field(default_factory=list)

    @property
    def tokens_per_call(self) -> float:
        return self.new_tokens / self.target_calls

    @property
    def acceptance_per_depth(self) -> list:
        return [a / r if r else float("nan") for a, r in zip(self.accepted_per_depth, self.reached_per_depth)]

    def to_dict(self, include_tokens: bool = False) -> dict:
        out = {k: getattr(self, k) for k in (
            "method", "tree", "k", "seed", "temperature", "prompt_length", "new_tokens", "target_calls",
            "target_forwards", "draft_forwards", "draft_calls", "target_seconds", "draft_seconds",
            "wall_seconds", "reached_per_depth", "accepted_per_depth", "tokens_histogram")}
        out["tokens_per_call"] = self.tokens_per_call
        out["acceptance_per_depth"] = [None if math.isnan(a) else a for a in self.acceptance_per_depth]
        if include_tokens:
            out["tokens"] = self.tokens.tolist()
        return out


def _check_prompt(prompt_ids, vocab: int) -> list[int]:
    prompt = [int(t) for t in np.asarray(prompt_ids, dtype=np.int64).reshape(-1)]
    if not prompt:
        raise ValueError("prompt_ids must hold at least one token")
    if min(prompt) < 0 or max(prompt) >= vocab:
        raise ValueError(f"prompt token outside [0, {vocab})")
    return prompt


def generate_real(pair, method, tree, prompt_ids, new_tokens: int, temperature: float = 1.0, seed: int = 0,
                  target_settings=None, draft_settings=None, rng=None, confidence: float | None = None,
                  **method_options) -> RealGeneration:
    """Generate ``new_tokens`` tokens after ``prompt_ids`` with ``method`` on a real model pair.

    Parameters
    ----------
    pair : ModelPair
        From :func:`chansim.llm.models.load_default_pair` or :func:`~chansim.llm.models.load_pair`.
    method : str or Method
        Any method of :mod:`chansim.verify` (``autoregressive`` needs ``chain:0``).
    tree : Tree or str
        Draft tree, e.g. ``"chain:4"``, ``"batch:4"``, ``"branch:2,2"``, ``"seq:2x3"``.
    prompt_ids : sequence of int, shape (L,)
        Prompt token ids, ``L >= 1``.
    new_tokens : int
        Tokens to generate (``>= 1``).
    temperature : float
        Sampling temperature of both models.
    seed : int
        Seed of :class:`~chansim.verify.KeyedNoise` (the race-noise key; also seeds the uniforms
        unless ``rng`` is given).
    rng : numpy.random.Generator, optional
        Uniform stream of the non-race randomness (``validate`` gives each prompt its own,
        :func:`chansim.logs.noise_keys.sequence_rng`).
    target_settings, draft_settings : SamplingSettings, optional
        Separate samplers (:class:`chansim.logs.temperature.SamplingSettings`: temperature,
        0 = greedy, top-k, top-p) of target and draft, applied to the T = 1 log-probs; each
        given one replaces ``temperature`` for its model.  The methods then sample the
        target's *processed* law exactly (greedy target: its argmax path).
    confidence : float, optional
        Adaptive draft length on a chain: stop drafting at the first node whose draft law has
        max q below it (:func:`chansim.verify.speculative_step`; the analogue of transformers'
        ``assistant_confidence_threshold``); exact for every method.
    **method_options
        Passed to :func:`chansim.verify.get_method` (e.g. ``rho`` for spectr).

    Returns
    -------
    RealGeneration
        Exact samples: the continuation is distributed as autoregressive sampling of the
        target at temperature T (for ``ersd``: equal to :func:`race_continuation` with ``seed``).
    """
    method_obj = get_method(method, **method_options)
    tree = as_tree(tree)
    method_obj.check_tree(tree)
    whole_number(new_tokens, "new_tokens")
    target = ModelSource(pair.target, temperature, settings=target_settings)
    draft = ModelSource(pair.draft, temperature, leaf_depth=tree.max_depth, settings=draft_settings)
    prompt = _check_prompt(prompt_ids, target.vocab_size)
    start = time.perf_counter()
    result = speculative_generate(method_obj, tree, target, draft, int(new_tokens), KeyedNoise(seed, rng=rng),
                                  prefix=prompt, confidence=confidence)
    wall = time.perf_counter() - start
    depth = tree.max_depth
    reached, accepted = [0] * depth, [0] * depth
    hist = [0] * (depth + 2)
    for step in result.steps:
        for d, ok in enumerate(step.events):
            reached[d] += 1
            accepted[d] += bool(ok)
        hist[step.n_tokens] += 1
    return RealGeneration(
        method=method_obj.name, tree=tree.name, k=tree.size, seed=int(seed),
        temperature=float(temperature if target_settings is None else target_settings.temperature),
        prompt_length=len(prompt), new_tokens=int(new_tokens), tokens=result.tokens,
        target_calls=len(result.steps), target_forwards=target.n_forward, draft_forwards=draft.n_forward,
        draft_calls=draft.calls, target_seconds=target.seconds, draft_seconds=draft.seconds, wall_seconds=wall,
        reached_per_depth=reached, accepted_per_depth=accepted, tokens_histogram=hist)


def race_continuation(network, prompt_ids, new_tokens: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    r"""Plain keyed race sampling of one network, no speculation (the reference for ``ersd``).

    .. math:: y_t = \arg\min_x E(\text{seed}, t, x) / p_T(x \mid y_{<t}),\qquad
              t = L, L + 1, \dots \text{ (absolute positions, prompt length } L)

    Parameters
    ----------
    network : LayerView or TreeScorer
    prompt_ids : sequence of int, shape (L,)
    new_tokens : int
    temperature : float
    seed : int

    Returns
    -------
    numpy.ndarray of int64, shape (new_tokens,)
    """
    source = ModelSource(network, temperature)
    seq = _check_prompt(prompt_ids, source.vocab_size)
    vocab = source.vocab_size
    for _ in range(int(new_tokens)):
        probs = source.tree_probs(seq, [-1], [-1])[0]                          # [V]
        noise = keyed_exponential(seed, np.int64(len(seq)), np.arange(vocab))  # [V]
        seq.append(int(race_winner(noise, probs)))
    return np.array(seq[len(seq) - int(new_tokens):], dtype=np.int64)
