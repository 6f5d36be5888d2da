r"""Speculative decoding with a deterministic draft, through the shared tree walk.

Each target call asks the draft (:mod:`chansim.drafts.proposers`) for a proposal
:math:`d = (d_1..d_m)` after the text so far and verifies the chain ``chain:m`` with the
method's own node rules (:func:`chansim.verify.speculative_step`), the draft source being the
point masses :math:`q_j = \delta_{d_j}` (:class:`PointMassSource`).  An empty proposal
(:math:`m = 0`) is a call that drafts nothing: the method's ``verify`` at the root with no
drafted children, whose output is an exact target sample (for ``ersd``: the target's race
winner, so ERSD still reproduces race sampling of the target token for token).

Exactness: every node rule of :mod:`chansim.verify` is exact for any draft law q, point masses
(q with zeros everywhere but one token) included, and the walk's exactness argument does not
depend on how q was chosen as long as it is a function of the context -- which a deterministic
draft is.  ``tests/test_cheap_drafts.py`` checks it statistically (chi-square on the n-gram law
of generated text from a Markov target, with broken verifiers caught).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sampling.sources import check_sources
from ..verify import StepResult, get_method, speculative_step
from ..verify.base import NodeNoise
from ..verify.walk import _rows
from .proposers import parse_draft

__all__ = ["PointMassSource", "deterministic_step", "deterministic_generate", "DeterministicGeneration"]


class PointMassSource:
    """A draft source whose law at depth j of the tree is the point mass on ``proposal[j]``.

    Rows of nodes at depth ``>= len(proposal)`` (leaves: never read by any method) are NaN.

    >>> PointMassSource([2, 0], 3).tree_probs([1], [-1, 0, 1], [-1, 2, 0])[:2].tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def __init__(self, proposal, vocab_size: int) -> None:
        self.proposal = np.asarray(proposal, dtype=np.int64).reshape(-1)
        self.vocab_size = int(vocab_size)
        if self.proposal.size and (self.proposal.min() < 0 or self.proposal.max() >= self.vocab_size):
            raise ValueError(f"proposal token outside [0, {self.vocab_size})")

    def tree_probs(self, prefix, parents, tokens) -> np.ndarray:
        parents = np.asarray(parents, dtype=np.int64).reshape(-1)
        depth = np.zeros(parents.size, dtype=np.int64)
        for i in range(1, parents.size):
            depth[i] = depth[parents[i]] + 1
        out = np.full((parents.size, self.vocab_size), np.nan)     # [n_nodes, V]
        inner = np.flatnonzero(depth < self.proposal.size)
        out[inner] = 0.0
        out[inner, self.proposal[depth[inner]]] = 1.0
        return out


def deterministic_step(method, proposal, prefix, target_source, randomness, position=None) -> StepResult:
    """One target call verifying the chain ``proposal`` (possibly empty) with ``method``.

    Parameters
    ----------
    method : str or Method
        Any method that runs on chains (``sd``, ``specinfer``, ``rsd``, ``spectr``, ``ersd``,
        ``block``, ...).
    proposal : sequence of int, shape (m,)
        The deterministic draft; ``m = 0``: nothing drafted.
    prefix : sequence of int
        Context (prompt + text so far).
    target_source : DistributionSource
    randomness : KeyedNoise or GeneratorNoise
    position : int, optional
        Absolute position of the first generated token (default ``len(prefix)``).
    """
    method = get_method(method)
    proposal = np.asarray(proposal, dtype=np.int64).reshape(-1)
    vocab = int(target_source.vocab_size)
    if proposal.size:
        return speculative_step(method, f"chain:{proposal.size}", prefix, target_source,
                                PointMassSource(proposal, vocab), randomness, position)
    prefix = np.asarray(prefix, dtype=np.int64).reshape(-1)
    position = len(prefix) if position is None else int(position)
    p = _rows(target_source, prefix, np.array([-1]), np.array([-1]), vocab, "target")    # [1, V]
    race = randomness.race_noise(np.array([position]), vocab) if method.uses_race else None
    acc, tok = method.verify(p, p, np.empty((1, 0), dtype=np.int64), NodeNoise(randomness.rng, 1, race))
    return StepResult(np.array([int(tok[0])], dtype=np.int64), np.empty(0, dtype=np.int64),
                      np.empty(0, dtype=bool), np.array([-1], dtype=np.int64), position)


@dataclass(frozen=True)
class DeterministicGeneration:
    """Tokens and per-call counts of :func:`deterministic_generate`.

    ``proposed[c]`` = tokens drafted by call c, ``accepted[c]`` = drafted tokens it accepted;
    ``draft_seconds`` = time spent proposing.
    """

    tokens: np.ndarray
    proposed: np.ndarray
    accepted: np.ndarray
    draft_seconds: float = 0.0

    @property
    def calls(self) -> int:
        return int(self.proposed.size)

    @property
    def tokens_per_call(self) -> float:
        return self.tokens.size / max(1, self.calls)


def deterministic_generate(method, draft, target_source, n_tokens: int, randomness,
                           prefix=()) -> DeterministicGeneration:
    """Generate ``n_tokens`` tokens after ``prefix`` with ``method`` and a deterministic ``draft``.

    The draft proposes after ``prefix + text so far`` at the start of each call
    (:meth:`~chansim.drafts.PromptLookup.propose`); the last call's overshoot is cut.

    >>> from chansim.sampling.sources import MarkovSource
    >>> from chansim.verify import GeneratorNoise
    >>> src = MarkovSource([[0.1, 0.9], [0.9, 0.1]])
    >>> from chansim.verify.registry import role
    >>> out = deterministic_generate(role("chain-reference"), "lookup:4", src, 12, GeneratorNoise(0), prefix=[0, 1, 0, 1])
    >>> out.tokens.shape, int(out.accepted.sum() + out.calls) >= 12
    ((12,), True)
    """
    import time

    if isinstance(n_tokens, bool) or int(n_tokens) != n_tokens or n_tokens < 1:
        raise ValueError(f"n_tokens must be a positive integer, got {n_tokens!r}")
    method, draft = get_method(method), parse_draft(draft)
    check_sources(target_source, target_source)
    text = [int(t) for t in np.asarray(prefix, dtype=np.int64).reshape(-1)]
    start = len(text)
    proposed, accepted = [], []
    seconds = 0.0
    while len(text) - start < n_tokens:
        t0 = time.perf_counter()
        d = draft.propose(text)
        seconds += time.perf_counter() - t0
        step = deterministic_step(method, d, text, target_source, randomness)
        proposed.append(d.size)
        accepted.append(step.accepted)
        text.extend(step.tokens.tolist())
    return DeterministicGeneration(np.array(text[start:start + n_tokens], dtype=np.int64),
                                   np.array(proposed, dtype=np.int64), np.array(accepted, dtype=np.int64), seconds)
