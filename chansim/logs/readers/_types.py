"""What every reader returns: scored positions of one sequence, in the tools' own order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

Key = Union[int, str]


@dataclass(frozen=True)
class Position:
    """One scored position of one sequence, as a tool reported it (before any head model).

    Attributes
    ----------
    token : int or str
        The produced (sampled, or teacher-forced scored) token: an id, or the tool's string.
    logprob : float or None
        Its log-probability (``-inf`` for probability 0); None when the shape does not give
        it (llama.cpp's old shape for a token outside ``probs``; the unscored first prompt
        token of ``echo`` / ``prompt_logprobs``).
    listed : tuple of (key, logprob)
        The alternatives in the tool's order (vLLM: the produced token first, then by rank).
    ranks : tuple of (int or None), optional
        The rank of each listed entry when the tool says it (vLLM ``Logprob.rank``), else None.
    token_rank : int, optional
        The produced token's rank when the tool says it.
    ranked_only : bool
        True when every listed entry is a ranked entry (the tool lists the top-n of the
        distribution and nothing else: llama.cpp, TGI ``top_tokens``, SGLang ``*_top_logprobs``).
        False (vLLM, OpenAI): the produced token may sit in the list without being in the top-n.
    """

    token: Key
    logprob: Optional[float]
    listed: tuple = ()
    ranks: Optional[tuple] = None
    token_rank: Optional[int] = None
    ranked_only: bool = False

    @property
    def scored(self) -> bool:
        return self.logprob is not None or bool(self.listed)


@dataclass
class Scored:
    """One sequence's positions from one response (one choice).

    ``shape`` names the reader (e.g. ``"vllm-chat"``); ``kind`` is ``"generated"`` (the
    tool sampled these tokens) or ``"prompt"`` (scored teacher-forced on given text:
    ``prompt_logprobs``, ``echo``, TGI ``prefill``, SGLang ``input_*``); ``prompt_length``
    is the number of leading prompt positions when the record says it (``usage``);
    ``logprobs`` says what the values are (raw model log-probs or after sampling processors).
    """

    positions: list
    shape: str
    kind: str = "generated"
    logprobs: str = "raw"
    prompt_length: Optional[int] = None
    response: int = 0
    choice: int = 0
    notes: list = field(default_factory=list)
    #: sampling settings the tool echoed (llama.cpp ``generation_settings``) that change the
    #: sampled distribution away from the listed raw values: ``{name: value}``; empty if none or unknown
    processors: dict = field(default_factory=dict)
