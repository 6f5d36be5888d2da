r"""Deterministic, model-free drafts: prompt lookup and an n-gram model over the text so far.

A *deterministic draft* maps the context :math:`x_{<t}` (prompt + text generated so far) to a
proposal :math:`d = (d_1, \dots, d_m)`, :math:`0 \le m \le k`; :math:`m = 0` ("no proposal")
is a valid outcome, and the call then verifies nothing (one target token, as autoregressive
decoding).  Its draft law at depth j is the point mass :math:`q_j = \delta_{d_j}`, so for every
method of :mod:`chansim.verify` the drafted token is :math:`d_j` and sd's node acceptance is

.. math:: \beta_j = \sum_x \min(p_j(x), \delta_{d_j}(x)) = p_j(d_j),

the residual on rejection is :math:`p_j` with :math:`d_j` removed and renormalised -- the same
law as "sample :math:`y \sim p_j`, accept iff :math:`y = d_j`", which is how transformers
verifies a prompt-lookup draft.  Hence the generated text is a target sample and the calls are a
*function of that text* (:func:`call_lengths`): the basis of the prediction from a log
(:mod:`chansim.logs.lookup_predict`).

Drafts here (no model, no randomness):

* :class:`PromptLookup` -- transformers' ``prompt_lookup_num_tokens`` rule: the longest suffix
  n-gram (``max_ngram`` down to ``min_ngram``) that occurs earlier in the context, its *first*
  (leftmost) occurrence with a non-empty continuation, and up to ``num_tokens`` tokens of that
  continuation (``occurrence="last"``: the most recent occurrence instead).
* :class:`NGramModel` -- an n-gram language model fitted on the context itself (counts of the
  token after every occurrence of the last n tokens, backing off from ``max_order`` to
  ``min_order``), drafting greedily up to ``num_tokens`` tokens; its confidence at each drafted
  token is the count share of that token, and ``threshold`` stops the draft when it falls below
  (adaptive draft length).

>>> PromptLookup(max_ngram=2, num_tokens=3).propose([5, 6, 7, 8, 9, 5, 6]).tolist()
[7, 8, 9]
>>> PromptLookup(max_ngram=2, num_tokens=3).propose([1, 2, 3]).tolist()     # no match: no proposal
[]
>>> NGramModel(max_order=1, num_tokens=4).propose([1, 2, 1, 2, 1]).tolist()
[2, 1, 2, 1]
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["PromptLookup", "NGramModel", "parse_draft", "call_lengths", "draft_label"]


def _context(context) -> np.ndarray:
    ctx = np.asarray(context, dtype=np.int64).reshape(-1)
    if ctx.size and ctx.min() < 0:
        raise ValueError("context token ids must be >= 0")
    return ctx


def _positive(value, name: str, zero: bool = False) -> int:
    if isinstance(value, bool) or int(value) != value or value < (0 if zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} integer, got {value!r}")
    return int(value)


def _occurrences(ctx: np.ndarray, n: int) -> np.ndarray:
    """Start indices i < L - n of earlier occurrences of the last n tokens (continuation non-empty)."""
    L = ctx.size
    if n < 1 or L <= n:
        return np.empty(0, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ctx[:L - 1], n)     # [L - n, n]; window i ends before L - 1
    return np.flatnonzero((windows == ctx[L - n:]).all(axis=1))


@dataclass(frozen=True)
class PromptLookup:
    """Prompt lookup decoding: copy the continuation of an earlier occurrence of the suffix n-gram.

    Parameters
    ----------
    max_ngram : int
        Longest suffix n-gram tried (transformers' ``max_matching_ngram_size``, default 2).
    num_tokens : int
        Draft length k: at most this many tokens are proposed (``prompt_lookup_num_tokens``).
    min_ngram : int
        Shortest n-gram tried (transformers: 1).
    occurrence : {"first", "last"}
        Which occurrence of the n-gram is copied: the leftmost with a non-empty continuation
        (transformers) or the most recent.

    The proposal is ``context[i + n : i + n + num_tokens]`` (cut at the end of the context) for
    the longest n in ``max_ngram .. min_ngram`` with an occurrence ``i`` of the suffix n-gram
    ``context[-n:]`` at ``i < len(context) - n``; empty if there is none.
    """

    max_ngram: int = 2
    num_tokens: int = 10
    min_ngram: int = 1
    occurrence: str = "first"

    def __post_init__(self):
        _positive(self.max_ngram, "max_ngram")
        _positive(self.num_tokens, "num_tokens")
        _positive(self.min_ngram, "min_ngram")
        if self.min_ngram > self.max_ngram:
            raise ValueError(f"min_ngram ({self.min_ngram}) must be <= max_ngram ({self.max_ngram})")
        if self.occurrence not in ("first", "last"):
            raise ValueError(f"occurrence must be 'first' or 'last', got {self.occurrence!r}")

    @property
    def name(self) -> str:
        occ = "" if self.occurrence == "first" else ",last"
        return f"lookup:{self.num_tokens}" + (f":{self.max_ngram}" if self.max_ngram != 2 or occ else "") + occ

    def propose(self, context) -> np.ndarray:
        """The proposal after ``context`` (int64 array of length 0..num_tokens)."""
        ctx = _context(context)
        for n in range(min(self.max_ngram, ctx.size - 1), self.min_ngram - 1, -1):
            hits = _occurrences(ctx, n)
            if hits.size:
                i = int(hits[0] if self.occurrence == "first" else hits[-1])
                return ctx[i + n:i + n + self.num_tokens].copy()
        return np.empty(0, dtype=np.int64)

    def confidences(self, context, proposal) -> np.ndarray:
        """Lookup has no confidence of its own: ones (the adaptive rule never cuts it)."""
        return np.ones(len(proposal))


@dataclass(frozen=True)
class NGramModel:
    r"""A greedy n-gram model of the context itself, with an optional confidence cut-off.

    At each drafted position, with :math:`s` the last n tokens of context + drafted tokens, for
    the largest n in ``max_order .. min_order`` such that :math:`s` occurs earlier in the
    *context* (not in the draft), the counts :math:`c(s, x)` of the tokens x that followed it give

    .. math:: d = \arg\max_x c(s, x) \text{ (ties: the most recent)}, \qquad
              \text{conf}(d) = c(s, d) / \textstyle\sum_x c(s, x).

    Drafting stops at ``num_tokens`` tokens, when no order has a match, or (``threshold > 0``)
    before the first token whose confidence is below ``threshold``.
    """

    max_order: int = 3
    num_tokens: int = 8
    min_order: int = 1
    threshold: float = 0.0

    def __post_init__(self):
        _positive(self.max_order, "max_order")
        _positive(self.num_tokens, "num_tokens")
        _positive(self.min_order, "min_order")
        if self.min_order > self.max_order:
            raise ValueError(f"min_order ({self.min_order}) must be <= max_order ({self.max_order})")
        if not (0.0 <= float(self.threshold) <= 1.0):
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")

    @property
    def name(self) -> str:
        return f"ngram:{self.num_tokens}" + (f":{self.max_order}" if self.max_order != 3 else "") + \
            (f"@{self.threshold:g}" if self.threshold > 0 else "")

    def _next(self, ctx: np.ndarray, seq: np.ndarray):
        L = ctx.size
        for n in range(min(self.max_order, seq.size), self.min_order - 1, -1):
            if L <= n:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(ctx[:L - 1], n)   # occurrences followed by a token
            hits = np.flatnonzero((windows == seq[seq.size - n:]).all(axis=1))
            if hits.size:
                nxt = ctx[hits + n]                                              # [hits]
                vals, counts = np.unique(nxt, return_counts=True)
                best = vals[counts == counts.max()]
                tok = next(int(t) for t in nxt[::-1] if t in best)               # most recent among the ties
                return tok, float(counts.max() / nxt.size)
        return None, 0.0

    def propose_with_confidence(self, context) -> tuple[np.ndarray, np.ndarray]:
        """``(proposal, confidences)``, both of length 0..num_tokens (before the threshold cut)."""
        ctx = _context(context)
        seq, conf = ctx, []
        out: list[int] = []
        for _ in range(self.num_tokens):
            tok, c = self._next(ctx, seq)
            if tok is None or c < self.threshold:
                break
            out.append(tok)
            conf.append(c)
            seq = np.append(seq, tok)
        return np.asarray(out, dtype=np.int64), np.asarray(conf, dtype=float)

    def propose(self, context) -> np.ndarray:
        """The proposal after ``context`` (int64 array of length 0..num_tokens)."""
        return self.propose_with_confidence(context)[0]


_SPEC = re.compile(r"^(lookup|ngram):(\d+)(?::(\d+))?(?:,(first|last))?(?:@([0-9.]+))?$")


def parse_draft(spec):
    """A draft from its name: ``lookup:K[:N][,first|last]`` or ``ngram:K[:N][@threshold]``.

    K = draft length (tokens per proposal), N = longest n-gram (lookup, default 2) or highest
    order (ngram, default 3).

    >>> parse_draft("lookup:8:3")
    PromptLookup(max_ngram=3, num_tokens=8, min_ngram=1, occurrence='first')
    >>> parse_draft("ngram:4@0.5").threshold
    0.5
    """
    if isinstance(spec, (PromptLookup, NGramModel)):
        return spec
    m = _SPEC.match(str(spec).strip())
    if not m:
        raise ValueError(f"unknown draft {spec!r}: use lookup:K[:N][,first|last] or ngram:K[:N][@threshold]")
    kind, k, n, occ, thr = m.groups()
    if kind == "lookup":
        if thr is not None:
            raise ValueError(f"draft {spec!r}: prompt lookup has no confidence threshold")
        return PromptLookup(max_ngram=int(n or 2), num_tokens=int(k), occurrence=occ or "first")
    if occ is not None:
        raise ValueError(f"draft {spec!r}: an n-gram model has no occurrence choice")
    return NGramModel(max_order=int(n or 3), num_tokens=int(k), threshold=float(thr or 0.0))


def draft_label(draft) -> str:
    """The canonical name of a draft (round-trips through :func:`parse_draft`)."""
    return parse_draft(draft).name


def call_lengths(draft, prompt, text) -> tuple[np.ndarray, np.ndarray]:
    r"""Calls of speculative decoding with a deterministic draft when the target's text is ``text``.

    With a point-mass draft every method accepts drafted token :math:`d_j` exactly when the
    target's token there equals it (module docstring), so a call starting after
    ``prompt + text[:t]`` proposes :math:`d = ` ``draft.propose(prompt + text[:t])``, accepts the
    longest prefix of d that agrees with ``text[t:]`` (a accepted tokens) and adds one target
    token: it covers ``a + 1`` tokens.  The last call is cut at the end of ``text``.

    Returns
    -------
    proposed, accepted : ndarray of int64, shape (calls,)
        Proposal length m and accepted drafted tokens a (``a <= m``) of each call; the call
        produced ``min(a + 1, tokens left)`` tokens.

    >>> proposed, accepted = call_lengths(PromptLookup(2, 4), [1, 2, 3, 1], [2, 3, 9, 9])
    >>> proposed.tolist(), accepted.tolist()     # call 1 drafts [2, 3, 1], keeps 2, 3 and adds 9
    ([3, 0], [2, 0])
    """
    draft = parse_draft(draft)
    prompt = _context(prompt)
    text = _context(text)
    seq = np.concatenate([prompt, text])
    P, T = prompt.size, text.size
    t = 0
    proposed, accepted = [], []
    while t < T:
        d = draft.propose(seq[:P + t])
        ahead = text[t:t + d.size]
        agree = ahead == d[:ahead.size]
        a = int(agree.size if agree.all() else np.argmin(agree))
        proposed.append(d.size)
        accepted.append(a)
        t += a + 1
    return np.asarray(proposed, dtype=np.int64), np.asarray(accepted, dtype=np.int64)
