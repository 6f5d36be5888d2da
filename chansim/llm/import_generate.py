"""Import a saved transformers ``generate`` output as a full chansim log, the draft scored here.

The file side (reading ``sequences``/``logits``, prompt lengths, padding, EOS) lives in
:func:`chansim.logs.importers.load_generate_output`; this module adds what needs a model:
the draft's teacher-forced log-probs of every continuation token.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..logs.importers import load_generate_output

__all__ = ["draft_log_probs", "import_generate"]


def draft_log_probs(network, prompts, tokens, temperature: float = 1.0) -> list[np.ndarray]:
    """Teacher-forced draft log-probs of every continuation token, one (T_i, V) array per sequence.

    One causal forward of ``network`` (a :class:`~chansim.llm.network.LayerView`) over
    prompt + continuation; row t is :math:`\\log q(\\cdot\\mid \\text{prompt}, y_{<t})`.
    """
    import torch

    from .measure import _path_log_probs

    out = []
    with torch.no_grad():
        for pr, tok in zip(prompts, tokens):
            seq = [int(t) for t in pr] + [int(t) for t in tok]
            out.append(_path_log_probs(network, seq, len(pr), temperature))
    return out


def _config_ids(pair) -> tuple[list, int | None, str]:
    """EOS ids and pad id of the loaded target (generation config, then model config, then tokenizer)."""
    model = getattr(pair.target, "model", None)
    sources = [getattr(model, "generation_config", None), getattr(model, "config", None), pair.tokenizer]
    eos, pad, where = None, None, "none"
    for src in sources:
        if src is None:
            continue
        if eos is None and getattr(src, "eos_token_id", None) is not None:
            eos, where = getattr(src, "eos_token_id"), type(src).__name__
        if pad is None and getattr(src, "pad_token_id", None) is not None:
            pad = getattr(src, "pad_token_id")
    eos_list = [] if eos is None else [int(e) for e in np.atleast_1d(eos)]
    return eos_list, (None if pad is None else int(pad)), where


def import_generate(path, out, *, target=None, draft=None, skip_layers=None, temperature: float = 1.0,
                    prompt_length=None, eos_token_id=None, trust_pickle: bool = False, device: str = "cpu",
                    dtype: str = "float32", seed=None, pair=None, metadata: dict | None = None,
                    strip_pads: bool = False) -> Path:
    """``generate`` output file -> full chansim log (the draft scored teacher-forced).

    Parameters
    ----------
    path, out : str or Path
        Saved generate output (:func:`load_generate_output`) and the ``.npz`` log to write.
    target, draft, skip_layers
        The model pair, as :func:`chansim.llm.models.load_pair` (default: SmolLM2 and the
        same network minus layer 15). ``target`` is only recorded (for ``llm validate``) and
        its vocabulary checked; the target distributions come from the file.
    temperature : float
        Softmax temperature applied to both models' logits (the sampling temperature used),
        recorded in the metadata. Refused with a file of processed ``scores``.
    eos_token_id : int, optional
        Continuations end at their first EOS; default: the loaded target's config
        (generation config, model config, tokenizer), recorded with its source; -1 keeps
        them whole (a file generated with EOS disabled).
    strip_pads : bool
        Without an ``attention_mask`` in the file, drop pad runs (the config's pad id) at the
        prompts' edges instead of refusing the file.
    seed : int, optional
        Recorded as the log's seed (used by ``llm validate``; default 0).
    pair : ModelPair, optional
        An already loaded pair (overrides target/draft/skip_layers).

    The metadata states what the rows are (``log_probs``: raw logits / T or processed
    scores), the file's logits dtype and, for bf16/fp16, the rounding bound (``notes``).
    """
    from ..logs.format import write_log

    if pair is None:
        from .models import load_pair

        pair = load_pair(target, draft, skip_layers=skip_layers, device=device, dtype=dtype)
    cfg_eos, pad, eos_source = _config_ids(pair)
    eos = cfg_eos if eos_token_id is None else [int(e) for e in np.atleast_1d(eos_token_id) if int(e) != -1]
    eos_source = eos_source if eos_token_id is None else "--eos-token-id"
    if any(e < 0 or e >= pair.vocab_size for e in eos):
        raise ValueError(f"--eos-token-id {eos} is outside [0, {pair.vocab_size}) (-1: keep continuations whole)")
    prompts, tokens, tlp, info = load_generate_output(path, prompt_length, eos or None, trust_pickle,
                                                      pad_token_id=pad, strip_pads=strip_pads,
                                                      temperature=temperature)
    if tlp[0].shape[1] != pair.vocab_size:
        raise ValueError(f"the file's logits have V = {tlp[0].shape[1]} but the model pair has "
                         f"V = {pair.vocab_size}")
    dlp = draft_log_probs(pair.draft, prompts, tokens, temperature)
    notes = [f"target rows: {info['log_probs']}; draft rows: log_softmax(draft logits / T), T = {temperature}"]
    if info["rounding"]:
        notes.append(info["rounding"]["note"])
    if info["padding"] != "none":
        notes.append(f"padding: {info['padding']}")
    notes.append(f"continuations end at the first EOS {eos} (from {eos_source})" if eos else
                 "no EOS id known: continuations kept whole")
    meta = dict(pair.metadata)
    meta.update({"temperature": float(temperature), "seed": 0 if seed is None else int(seed),
                 "source": {"kind": "transformers-generate", "file": str(path), "logits_key": info["logits_key"],
                            "logits_dtype": info["logits_dtype"], "rounding": info["rounding"],
                            "padding": info["padding"], "eos_token_id": eos or None, "eos_source": eos_source,
                            "pad_token_id": pad},
                 "log_probs": info["log_probs"], "notes": notes,
                 "sampling": "transformers generate (the file's sequences); draft scored teacher-forced"})
    meta.update(metadata or {})
    return write_log(out, prompts=prompts, tokens=tokens, target_log_probs=tlp, draft_log_probs=dlp, metadata=meta)
