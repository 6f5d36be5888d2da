r"""vLLM and OpenAI-compatible responses (also llama.cpp's ``/v1/chat/completions``).

The list order these readers keep (vLLM v1, ``vllm/v1/engine/logprobs.py``
``_make_logprob_dict`` over the ids that ``vllm/v1/sample/sampler.py`` ``gather_logprobs``
returns: the sampled / scored token *first*, then the top-N by rank, one dict entry per id):

* chat completions (``serving_chat``) keep the first N items of that dict, so when the
  produced token is outside the top-N the N-th ranked token is dropped;
* legacy completions (``serving_completion``) keep all of it (N+1 items);
* ``prompt_logprobs`` and offline ``RequestOutput`` dumps keep the dict with each
  ``Logprob(logprob, rank, decoded_token)``, so ranks are known.

None of these marks the produced entry, so :func:`chansim.logs.truncated.record_head`
takes the floor from the other entries only.  ``-inf`` is written as ``-9999.0``
(``clamp_prompt_logprobs`` and the chat serving code); the door reads it back as ``-inf``.
By default vLLM v1 returns *raw* log-probs (``logprobs_mode="raw_logprobs"``: before
temperature, penalties, top-k/top-p), which is recorded in the log's metadata.
"""
from __future__ import annotations

from ._door import Where
from ._types import Position, Scored

__all__ = ["read_openai_response", "read_chat_choice", "read_completion_choice", "read_prompt_logprobs",
           "read_request_output"]


def _entry(where: Where, e, field: str):
    """One OpenAI-style entry ``{token, logprob, bytes}`` (+ llama.cpp's ``id``, or ``prob`` post-sampling)."""
    e = where.obj(e, field)
    if "id" in e:
        key = where.token_id(e["id"], f"{field}.id")
    else:
        key = where.token_key(where.get(e, "token", f"{field}.token"), f"{field}.token")
    if "logprob" in e:
        lp = where.logprob(e["logprob"], f"{field}.logprob")
    elif "prob" in e:
        lp = where.prob(e["prob"], f"{field}.prob")
    else:
        raise where.error(field, "has neither 'logprob' nor 'prob'")
    return key, lp


def read_chat_choice(where: Where, choice: dict, index: int) -> Scored:
    """Chat completions: ``choices[j].logprobs.content[i] = {token, logprob, bytes, top_logprobs: [...]}``.

    ``token`` is ``"token_id:N"`` with vLLM's ``--return-tokens-as-token-ids``, else the
    decoded string; llama.cpp's OpenAI endpoint adds ``id`` (its list is the top-n only) and,
    with ``post_sampling_probs``, gives ``prob`` / ``top_probs`` instead. The produced
    token's entry is never taken as ranked (vLLM lists it first whether or not it is).
    """
    lpobj = where.obj(choice["logprobs"], f"choices[{index}].logprobs")
    content = lpobj.get("content")
    if content is None:
        raise where.error(f"choices[{index}].logprobs.content", "is null (the server returned no log-probs: "
                                                                 "request logprobs: true, top_logprobs: n)")
    content = where.lst(content, f"choices[{index}].logprobs.content")
    out, post, ids_given = [], False, False
    for t, e in enumerate(content):
        w = where.at(t)
        e = w.obj(e, "content[]")
        key, lp = _entry(w, e, "content[]")
        top_field = "top_probs" if "top_probs" in e else "top_logprobs"
        post |= top_field == "top_probs" or "prob" in e
        top = e.get(top_field) or []
        top = w.lst(top, top_field)
        listed = tuple(_entry(w, d, f"{top_field}[{k}]") for k, d in enumerate(top))
        # llama.cpp's entries (with "id") list the top-n only, vLLM's put the produced token first; nothing in
        # the chat shape itself proves which, so the produced entry never sets the floor (valid for both)
        ids_given |= "id" in e
        out.append(Position(key, lp, listed))
    shape = "llamacpp-oai-chat" if ids_given else "openai-chat"
    return Scored(out, shape, logprobs="post-sampling" if post else "raw", choice=index)


def read_completion_choice(where: Where, choice: dict, index: int, prompt_tokens=None) -> Scored:
    """Legacy completions: ``choices[j].logprobs = {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}``.

    vLLM lists the produced token and the top-N (N+1 items); with ``echo`` the prompt's
    tokens come first, the first one with ``null`` log-prob and ``null`` top list
    (``usage.prompt_tokens`` says how many prompt tokens there are).
    """
    f = f"choices[{index}].logprobs"
    lpobj = where.obj(choice["logprobs"], f)
    tokens = where.lst(where.get(lpobj, "tokens", f + ".tokens"), f + ".tokens")
    lps = where.lst(where.get(lpobj, "token_logprobs", f + ".token_logprobs"), f + ".token_logprobs")
    tops = lpobj.get("top_logprobs")
    tops = [None] * len(tokens) if tops is None else where.lst(tops, f + ".top_logprobs")
    if not (len(tokens) == len(lps) == len(tops)):
        raise where.error(f, f"tokens ({len(tokens)}), token_logprobs ({len(lps)}) and top_logprobs ({len(tops)}) "
                             f"have different lengths")
    out = []
    for t, (tok, lp, top) in enumerate(zip(tokens, lps, tops)):
        w = where.at(t)
        key = w.token_key(tok, "tokens[]")
        if lp is None:
            if top is not None:
                raise w.error("token_logprobs[]", "is null but top_logprobs is not")
            out.append(Position(key, None))                      # echo: the first prompt token is not scored
            continue
        lpv = w.logprob(lp, "token_logprobs[]")
        top = w.obj(top, "top_logprobs[]") if top is not None else {}
        listed = tuple((w.token_key(k, "top_logprobs[] key"), w.logprob(v, f"top_logprobs[][{k!r}]"))
                       for k, v in top.items())
        out.append(Position(key, lpv, listed))
    kind = "prompt" if any(p.logprob is None for p in out) or prompt_tokens else "generated"
    return Scored(out, "openai-completions" + ("-echo" if kind == "prompt" else ""), kind=kind,
                  prompt_length=prompt_tokens, choice=index)


def _logprob_dict(w: Where, d, field: str):
    """vLLM ``dict[int, Logprob]`` as JSON: ``{"id": {logprob, rank, decoded_token}}`` (or ``[logprob, rank, text]``)."""
    d = w.obj(d, field)
    listed, ranks = [], []
    for k, v in d.items():
        key = w.token_id(k, f"{field} key")
        if isinstance(v, list) and len(v) == 3:
            v = {"logprob": v[0], "rank": v[1], "decoded_token": v[2]}
        v = w.obj(v, f"{field}[{k!r}]")
        listed.append((key, w.logprob(w.get(v, "logprob", f"{field}[{k!r}].logprob"), f"{field}[{k!r}].logprob")))
        r = v.get("rank")
        ranks.append(None if r is None else w.rank(r, f"{field}[{k!r}].rank"))
    return listed, ranks


def _positions_from_dicts(where: Where, dicts, token_ids, field: str) -> list:
    out = []
    for t, d in enumerate(dicts):
        w = where.at(t)
        tok = None if token_ids is None else w.token_id(token_ids[t], f"{field} token_ids[{t}]")
        if d is None:                                    # unscored (the first prompt token): a placeholder
            out.append(Position(tok, None))
            continue
        listed, ranks = _logprob_dict(w, d, f"{field}[{t}]")
        if not listed:
            raise w.error(f"{field}[{t}]", "is an empty object (the scored token is missing)")
        if tok is None:
            tok = listed[0][0]                           # vLLM puts the scored token first
        by_key = dict(zip([k for k, _ in listed], zip([v for _, v in listed], ranks)))
        if tok not in by_key:
            raise w.error(f"{field}[{t}]", f"does not list the scored token {tok} (vLLM always includes it)")
        lp, rank = by_key[tok]
        out.append(Position(tok, lp, tuple(listed), ranks=tuple(ranks), token_rank=rank))
    return out


def read_prompt_logprobs(where: Where, plp, token_ids=None, field: str = "prompt_logprobs") -> Scored:
    """``prompt_logprobs`` (vLLM extra parameter; ``clamp_prompt_logprobs``): ``[null, {"id": {logprob, rank, decoded_token}}, ...]``.

    The first entry is ``null`` (nothing scores the first prompt token); each dict lists the
    prompt token first, then the top-n. ``prompt_token_ids`` (when returned) name the tokens.
    """
    plp = where.lst(plp, field)
    if token_ids is not None:
        token_ids = where.lst(token_ids, "prompt_token_ids")
        if len(token_ids) != len(plp):
            raise where.error(field, f"{len(plp)} entries but prompt_token_ids has {len(token_ids)}")
    return Scored(_positions_from_dicts(where, plp, token_ids, field), "vllm-prompt-logprobs", kind="prompt",
                  prompt_length=None)


def read_request_output(where: Where, resp: dict) -> list:
    """An offline ``vllm.RequestOutput`` dumped to JSON: ``{prompt_token_ids, prompt_logprobs, outputs: [...]}``.

    Each ``outputs[j]`` (a ``CompletionOutput``) holds ``token_ids`` and ``logprobs``: one
    ``{id: Logprob(logprob, rank, decoded_token)}`` dict per generated token (the sampled
    token first). Returns one generated :class:`Scored` per output, plus the prompt's when
    ``prompt_logprobs`` is present.
    """
    outs = where.lst(resp["outputs"], "outputs")
    seqs = []
    for j, o in enumerate(outs):
        o = where.obj(o, f"outputs[{j}]")
        ids = where.lst(where.get(o, "token_ids", f"outputs[{j}].token_ids"), f"outputs[{j}].token_ids")
        lps = o.get("logprobs")
        if lps is None:
            raise where.error(f"outputs[{j}].logprobs", "is null (pass SamplingParams(logprobs=n))")
        lps = where.lst(lps, f"outputs[{j}].logprobs")
        if len(lps) != len(ids):
            raise where.error(f"outputs[{j}].logprobs", f"{len(lps)} entries for {len(ids)} token_ids")
        if any(d is None for d in lps):
            raise where.error(f"outputs[{j}].logprobs", "has a null entry for a generated token")
        idx = o.get("index", j)
        seqs.append(Scored(_positions_from_dicts(where, lps, ids, f"outputs[{j}].logprobs"), "vllm-request-output",
                           choice=idx if isinstance(idx, int) else j))
    if resp.get("prompt_logprobs") is not None:
        seqs.append(read_prompt_logprobs(where, resp["prompt_logprobs"], resp.get("prompt_token_ids")))
    return seqs


def read_openai_response(where: Where, resp: dict) -> list:
    """``{choices: [...]}`` of chat or legacy completions, ``n >= 1`` choices (one sequence each, by ``index``).

    ``prompt_logprobs`` (per choice in completions, top level in chat) give a prompt-scored
    sequence as well.
    """
    choices = resp["choices"]
    if not isinstance(choices, list):
        raise where.error("choices", f"must be a JSON list of choices, got {type(choices).__name__}")
    if not choices:
        raise where.error("choices", "is empty")
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else None
    seqs, order = [], []
    for j, ch in enumerate(choices):
        ch = where.obj(ch, f"choices[{j}]")
        idx = ch.get("index", j)
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise where.error(f"choices[{j}].index", f"must be an integer >= 0, got {idx!r}")
        if ch.get("prompt_logprobs") is not None:
            seqs.append(read_prompt_logprobs(where, ch["prompt_logprobs"], ch.get("prompt_token_ids"),
                                             f"choices[{j}].prompt_logprobs"))
        if ch.get("logprobs") is None:
            if ch.get("prompt_logprobs") is None and resp.get("prompt_logprobs") is None:
                raise where.error(f"choices[{j}].logprobs", "is missing or null (request logprobs / top_logprobs, "
                                                            "or prompt_logprobs for a draft)")
            continue
        lpobj = where.obj(ch["logprobs"], f"choices[{j}].logprobs")
        if "content" in lpobj:
            s = read_chat_choice(where, ch, j)
        elif "tokens" in lpobj:
            tlps = lpobj.get("token_logprobs")
            echo = prompt_tokens if isinstance(tlps, list) and any(v is None for v in tlps) else None
            s = read_completion_choice(where, ch, j, echo)
        else:
            raise where.error(f"choices[{j}].logprobs", f"unknown layout (keys {sorted(lpobj)}; expected 'content' "
                                                        f"(chat) or 'tokens'/'token_logprobs' (completions))")
        s.choice = idx
        seqs.append(s)
        order.append(idx)
    if len(set(order)) != len(order):
        raise where.error("choices", f"repeat a choice index ({order})")
    if resp.get("prompt_logprobs") is not None:
        seqs.append(read_prompt_logprobs(where, resp["prompt_logprobs"], resp.get("prompt_token_ids")))
    return sorted(seqs, key=lambda s: (s.kind != "generated", s.choice))
