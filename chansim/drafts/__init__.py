"""Deterministic, model-free drafts (prompt lookup, an n-gram model) and decoding with them.

:mod:`~chansim.drafts.proposers` holds the drafts (no model, no randomness: a proposal is a
function of the text so far), :mod:`~chansim.drafts.decode` runs any verifier of
:mod:`chansim.verify` with them (point-mass draft laws, empty proposals allowed).
Prediction from a log: :mod:`chansim.logs.lookup_predict`; real models: :mod:`chansim.llm.lookup`.
"""
from .decode import DeterministicGeneration, PointMassSource, deterministic_generate, deterministic_step
from .proposers import NGramModel, PromptLookup, call_lengths, draft_label, parse_draft

__all__ = ["PromptLookup", "NGramModel", "parse_draft", "draft_label", "call_lengths",
           "PointMassSource", "deterministic_step", "deterministic_generate", "DeterministicGeneration"]
