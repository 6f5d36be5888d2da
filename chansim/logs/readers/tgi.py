r"""Text Generation Inference ``/generate`` responses with ``details: true``.

Field names follow TGI's ``router`` (``Details``, ``Token``, ``PrefillToken``):
``details = {finish_reason, generated_tokens, seed, prefill: [{id, text, logprob}],
tokens: [{id, text, logprob, special}], top_tokens: [[{id, text, logprob, special}]], best_of_sequences}``.
``top_tokens`` (``top_n_tokens`` in the request; ``batch_top_tokens`` keeps every token
tied with the n-th) are ranked entries; ``prefill`` (``decoder_input_details: true``) gives
each prompt token's own log-prob but no alternatives, the first one ``null``.  TGI's
log-probs are taken after its logits warpers (temperature, top-k, top-p), i.e. from the
distribution it sampled.  ``best_of > 1`` returns the best-scored of several samples,
which is not a sample of the target, and is refused.
"""
from __future__ import annotations

from ._door import Where
from ._types import Position, Scored

__all__ = ["read_details"]


def _tok(w: Where, e, field: str):
    e = w.obj(e, field)
    return w.token_id(w.get(e, "id", field + ".id"), field + ".id"), e


def read_details(where: Where, resp: dict) -> list:
    """``{generated_text, details}`` -> the generated :class:`Scored` and, with ``prefill``, the prompt's."""
    det = resp.get("details")
    if det is None:
        raise where.error("details", "is missing (request parameters.details: true, top_n_tokens: n)")
    det = where.obj(det, "details")
    if det.get("best_of_sequences"):
        raise where.error("details.best_of_sequences", "best_of > 1 returns the best-scored of several samples, "
                                                        "which is not a path sampled from the target; use best_of 1")
    toks = where.lst(where.get(det, "tokens", "details.tokens"), "details.tokens")
    tops = det.get("top_tokens")
    tops = [] if tops is None else where.lst(tops, "details.top_tokens")
    if tops and len(tops) != len(toks):
        raise where.error("details.top_tokens", f"{len(tops)} lists for {len(toks)} tokens")
    out = []
    for t, e in enumerate(toks):
        w = where.at(t)
        key, e = _tok(w, e, "tokens[]")
        lp = w.logprob(w.get(e, "logprob", "tokens[].logprob"), "tokens[].logprob")
        listed = ()
        if tops:
            lst = w.lst(tops[t], f"top_tokens[{t}]")
            listed = tuple((_tok(w, d, f"top_tokens[{t}][{k}]")[0],
                            w.logprob(w.get(d, "logprob", f"top_tokens[{t}][{k}].logprob"),
                                      f"top_tokens[{t}][{k}].logprob")) for k, d in enumerate(lst))
        out.append(Position(key, lp, listed, ranked_only=True))
    seqs = [Scored(out, "tgi-details", logprobs="processed (after TGI's warpers)")]
    if det.get("prefill"):
        pre = []
        for t, e in enumerate(where.lst(det["prefill"], "details.prefill")):
            w = where.at(t)
            key, e = _tok(w, e, "prefill[]")
            lp = e.get("logprob")
            pre.append(Position(key, None if lp is None else w.logprob(lp, "prefill[].logprob"), ranked_only=True))
        seqs.append(Scored(pre, "tgi-prefill", kind="prompt", logprobs="processed (after TGI's warpers)"))
    return seqs
