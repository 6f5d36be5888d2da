r"""llama.cpp server ``/completion`` responses (its OpenAI endpoint is read by :mod:`.vllm`).

Field names follow ``tools/server`` (``completion_token_output::to_json``,
``probs_vector_to_json``, ``populate_token_probs``):

* new shape, ``completion_probabilities[i] = {id, token, bytes, logprob, top_logprobs: [{id, token, bytes, logprob}]}``:
  the produced token with its log-prob, and the top ``n_probs`` of the distribution
  (sorted, the produced token listed again only if it is among them); ``log 0`` is written
  as the lowest float, read as ``-inf``;
* ``post_sampling_probs: true``: ``{id, token, bytes, prob, top_probs: [{id, token, bytes, prob}]}``,
  probabilities *after* the sampler chain (temperature, top-k, top-p, min-p), i.e. the
  distribution actually sampled from;
* old shape (before ``logprob`` existed), ``{content, probs: [{tok_str, prob}]}``: strings
  only, and the produced token's probability is given only when it is in ``probs``.

The response's ``generation_settings`` (``temperature``, ``top_k``, ``top_p``, ``min_p``,
penalties, ...; the server's defaults are 0.8, 40, 0.95, 0.05) say how the token was
sampled; with raw ``logprob`` values and non-neutral settings the listed law is not the
sampled one, which :func:`chansim.logs.importers.import_topn_records` refuses for the target.
"""
from __future__ import annotations

from ._door import Where
from ._types import Position, Scored

__all__ = ["read_completion"]


def _new_entry(w: Where, e: dict, field: str):
    key = w.token_id(w.get(e, "id", field + ".id"), field + ".id")
    if "logprob" in e:
        return key, w.logprob(e["logprob"], field + ".logprob")
    if "prob" in e:
        return key, w.prob(e["prob"], field + ".prob")
    raise w.error(field, "has neither 'logprob' nor 'prob'")


def _old_entry(w: Where, e: dict, field: str):
    return w.text(w.get(e, "tok_str", field + ".tok_str"), field + ".tok_str"), w.prob(
        w.get(e, "prob", field + ".prob"), field + ".prob")


#: llama.cpp ``generation_settings`` values that leave the raw distribution unchanged
_NEUTRAL = {"temperature": lambda v: v == 1, "top_k": lambda v: v <= 0, "top_p": lambda v: v >= 1,
            "min_p": lambda v: v <= 0, "typical_p": lambda v: v >= 1, "repeat_penalty": lambda v: v == 1,
            "presence_penalty": lambda v: v == 0, "frequency_penalty": lambda v: v == 0, "mirostat": lambda v: v == 0,
            "xtc_probability": lambda v: v <= 0, "dry_multiplier": lambda v: v <= 0}


def _processors(resp: dict) -> dict:
    """The echoed ``generation_settings`` that make the sampled law differ from raw ``softmax(logits)``."""
    gs = resp.get("generation_settings")
    if not isinstance(gs, dict):
        return {}
    out = {}
    for name, neutral in _NEUTRAL.items():
        v = gs.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not neutral(v):
            out[name] = v
    return out


def read_completion(where: Where, resp: dict) -> list:
    """``/completion`` response -> one generated :class:`Scored` (new, post-sampling or old shape)."""
    cps = where.lst(resp["completion_probabilities"], "completion_probabilities")
    out, shapes = [], set()
    for t, e in enumerate(cps):
        w = where.at(t)
        e = w.obj(e, "completion_probabilities[]")
        if "probs" in e and "id" not in e:                            # old shape
            shapes.add("llamacpp-old")
            tok = w.text(w.get(e, "content", "content"), "content")
            listed = tuple(_old_entry(w, w.obj(d, f"probs[{k}]"), f"probs[{k}]")
                           for k, d in enumerate(w.lst(e["probs"], "probs")))
            lp = dict(listed).get(tok)                                # None: outside the list, not given
            out.append(Position(tok, lp, listed, ranked_only=True))
            continue
        post = "top_probs" in e or "prob" in e
        shapes.add("llamacpp-post-sampling" if post else "llamacpp-completion")
        key, lp = _new_entry(w, e, "completion_probabilities[]")
        field = "top_probs" if post else "top_logprobs"
        top = e.get(field)
        top = [] if top is None else w.lst(top, field)
        listed = tuple(_new_entry(w, w.obj(d, f"{field}[{k}]"), f"{field}[{k}]") for k, d in enumerate(top))
        out.append(Position(key, lp, listed, ranked_only=True))
    if len(shapes) > 1:
        raise where.error("completion_probabilities", f"mixes shapes {sorted(shapes)}")
    shape = shapes.pop() if shapes else "llamacpp-completion"
    return [Scored(out, shape, logprobs={"llamacpp-post-sampling": "post-sampling",
                                         "llamacpp-old": "unstated (old llama.cpp)"}.get(shape, "raw"),
                   processors=_processors(resp) if shape == "llamacpp-completion" else {})]
