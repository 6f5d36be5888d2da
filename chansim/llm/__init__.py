"""Real language models: model pairs, tree scoring with KV caches, generation, logging runs,
validation, wall clock, transformers' assisted generation, prompt lookup on a pair.

Everything here loads or runs a model (or, ``workloads``, builds prompts with its tokenizer)
and needs the ``llm`` extra (torch, transformers, gguf, accelerate); torch is imported
lazily, so importing :mod:`chansim.llm` alone is cheap.  What works on a logged run without
a model -- reading, importing, truncating, predicting, temperature re-weighting, statistics
-- lives in :mod:`chansim.logs`, which never imports this package.

>>> from chansim.llm import DEFAULT_SKIP_LAYERS
>>> DEFAULT_SKIP_LAYERS
(15,)
"""
from __future__ import annotations

from importlib import import_module

__all__ = [
    "GGUF_FILENAME", "DEFAULT_SKIP_LAYERS", "default_gguf_path", "load_model", "ModelPair",
    "load_default_pair", "load_pair", "check_vocab_match",
    "LayerView", "KVStore", "TreeScorer", "check_tree", "tree_depths",
    "pydoc_prompts", "measure_skip_sets", "pair_statistics",
    "ModelSource", "RealGeneration", "generate_real", "race_continuation",
]

_HOME = {
    "GGUF_FILENAME": "models", "DEFAULT_SKIP_LAYERS": "models", "default_gguf_path": "models",
    "load_model": "models", "ModelPair": "models", "load_default_pair": "models",
    "load_pair": "models", "check_vocab_match": "models",
    "LayerView": "network", "KVStore": "network",
    "TreeScorer": "scoring", "check_tree": "scoring", "tree_depths": "scoring",
    "pydoc_prompts": "measure", "measure_skip_sets": "measure", "pair_statistics": "measure",
    "ModelSource": "generate", "RealGeneration": "generate", "generate_real": "generate",
    "race_continuation": "generate",
}


def __getattr__(name):
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
