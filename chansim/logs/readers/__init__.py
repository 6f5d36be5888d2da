r"""Readers of the log-prob records that real tools write, one small function per shape.

Each reader maps one tool's JSON onto :class:`Position` / :class:`Scored` through the
input door (:mod:`._door`: types, ranges, one-line errors naming file, response,
position and field).  What the listed values *mean* (which entries are ranked, what
bounds the unlisted tokens) is decided once, in :func:`chansim.logs.truncated.record_head`.

========================== ================================== ====================================
module                     shapes                             produced token / list
========================== ================================== ====================================
:mod:`.vllm`               chat, legacy completions (+echo),  produced first, then top-N (vLLM);
                           ``prompt_logprobs``, offline       ranks in ``prompt_logprobs`` and
                           ``RequestOutput``, ``n > 1``;      ``RequestOutput``; any chat list:
                           llama.cpp's OpenAI endpoint        the produced entry is not ranked
:mod:`.llamacpp`           ``/completion`` new, post-sampling top-n only, produced separately
                           (``top_probs``) and old (``probs``)
:mod:`.tgi`                ``details`` (``tokens``,           top-n only (ties kept)
                           ``top_tokens``, ``prefill``)
:mod:`.sglang`             ``meta_info`` (``output_*``,       top-n only
                           ``input_*``)
========================== ================================== ====================================
"""
from __future__ import annotations

from ._door import Where, load_json_records
from ._types import Position, Scored
from .llamacpp import read_completion
from .sglang import read_meta_info
from .tgi import read_details
from .vllm import read_openai_response, read_request_output

__all__ = ["Position", "Scored", "read_response", "read_records"]


#: a response's shape by its keys, tried in this order: llama.cpp, vLLM/OpenAI, vLLM RequestOutput, SGLang, TGI
_SHAPES = ((("completion_probabilities",), read_completion), (("choices",), read_openai_response),
           (("outputs",), read_request_output), (("meta_info",), read_meta_info),
           (("details", "generated_text"), read_details))


def read_response(where: Where, resp: dict) -> list:
    """One response object -> its :class:`Scored` sequences (generated ones first, then prompt-scored ones)."""
    for keys, reader in _SHAPES:
        if any(key in resp for key in keys):
            return reader(where, resp)
    raise where.error("response", f"unknown shape (keys {sorted(resp)[:8]}): expected 'choices' (vLLM/OpenAI), "
                                  f"'outputs' (vLLM RequestOutput), 'completion_probabilities' (llama.cpp), "
                                  f"'details' (TGI) or 'meta_info' (SGLang)")


def read_records(path, vocab_size=None) -> list:
    """A records file -> one list of :class:`Scored` per response (``load_json_records`` + :func:`read_response`)."""
    return [read_response(Where(path, i, vocab_size=vocab_size), r) for i, r in enumerate(load_json_records(path))]
