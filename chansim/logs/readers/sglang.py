r"""SGLang ``/generate`` responses with ``return_logprob: true``.

Field names follow SGLang's ``meta_info`` (``tokenizer_manager``):
``output_token_logprobs = [[logprob, token_id, text|null], ...]``,
``output_top_logprobs = [[[logprob, token_id, text|null], ...] | null, ...]`` (the top
``top_logprobs_num``, ranked), and for the prompt (from ``logprob_start_len``)
``input_token_logprobs`` (the first ``[null, id, null]``) and ``input_top_logprobs``.
"""
from __future__ import annotations

from ._door import Where
from ._types import Position, Scored

__all__ = ["read_meta_info"]


def _triple(w: Where, e, field: str, allow_null: bool = False):
    e = w.lst(e, field)
    if len(e) not in (2, 3):
        raise w.error(field, f"must be [logprob, token_id, text], got {len(e)} items")
    if e[0] is None and allow_null:
        return None, w.token_id(e[1], field + "[1]")
    return w.logprob(e[0], field + "[0]"), w.token_id(e[1], field + "[1]")


def _positions(w0: Where, toks, tops, prefix: str, prompt: bool) -> list:
    toks = w0.lst(toks, f"meta_info.{prefix}_token_logprobs")
    tops = [None] * len(toks) if tops is None else w0.lst(tops, f"meta_info.{prefix}_top_logprobs")
    if len(tops) != len(toks):
        raise w0.error(f"meta_info.{prefix}_top_logprobs", f"{len(tops)} lists for {len(toks)} tokens")
    out = []
    for t, (e, top) in enumerate(zip(toks, tops)):
        w = w0.at(t)
        lp, key = _triple(w, e, f"{prefix}_token_logprobs[{t}]", allow_null=prompt)
        listed = ()
        if top is not None and lp is not None:
            listed = tuple(_triple(w, d, f"{prefix}_top_logprobs[{t}][{k}]")[::-1]
                           for k, d in enumerate(w.lst(top, f"{prefix}_top_logprobs[{t}]")))
        out.append(Position(key, lp, listed, ranked_only=True))
    return out


def read_meta_info(where: Where, resp: dict) -> list:
    """``{text, meta_info}`` -> the generated :class:`Scored` and, with ``input_token_logprobs``, the prompt's."""
    meta = where.obj(resp["meta_info"], "meta_info")
    if meta.get("output_token_logprobs") is None:
        raise where.error("meta_info.output_token_logprobs", "is missing (request return_logprob: true, "
                                                             "top_logprobs_num: n)")
    seqs = [Scored(_positions(where, meta["output_token_logprobs"], meta.get("output_top_logprobs"), "output", False),
                   "sglang-meta-info", logprobs="unstated (SGLang)")]
    if meta.get("input_token_logprobs"):
        seqs.append(Scored(_positions(where, meta["input_token_logprobs"], meta.get("input_top_logprobs"), "input",
                                      True), "sglang-input", kind="prompt", logprobs="unstated (SGLang)"))
    return seqs
