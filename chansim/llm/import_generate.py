"""Import a saved transformers ``generate`` output as a full chansim log, the draft scored here.

The file side (reading ``sequences``/``logits``, prompt lengths, padding, EOS) lives in
:func:`chansim.logs.importers.load_generate_output`; this module adds what needs a model:
the draft's teacher-forced log-probs of every continuation token.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..logs.importers import load_generate_output, log_softmax

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


def import_generate(path, out, *, target=None, draft=None, skip_layers=None, temperature: float = 1.0,
                    prompt_length=None, eos_token_id=None, trust_pickle: bool = False, device: str = "cpu",
                    dtype: str = "float32", seed=None, pair=None, metadata: dict | None = None) -> Path:
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
        Softmax temperature applied to both models' logits (the sampling temperature used).
    seed : int, optional
        Recorded as the log's seed (used by ``llm validate``; default 0).
    pair : ModelPair, optional
        An already loaded pair (overrides target/draft/skip_layers).
    """
    from ..logs.format import write_log

    prompts, tokens, logits = load_generate_output(path, prompt_length, eos_token_id, trust_pickle)
    if pair is None:
        from .models import load_pair

        pair = load_pair(target, draft, skip_layers=skip_layers, device=device, dtype=dtype)
    if logits[0].shape[1] != pair.vocab_size:
        raise ValueError(f"the file's logits have V = {logits[0].shape[1]} but the model pair has "
                         f"V = {pair.vocab_size}")
    tlp = [log_softmax(z, temperature) for z in logits]
    dlp = draft_log_probs(pair.draft, prompts, tokens, temperature)
    meta = dict(pair.metadata)
    meta.update({"temperature": float(temperature), "seed": 0 if seed is None else int(seed),
                 "source": {"kind": "transformers-generate", "file": str(path)},
                 "sampling": "transformers generate (the file's sequences); draft scored teacher-forced"})
    meta.update(metadata or {})
    return write_log(out, prompts=prompts, tokens=tokens, target_log_probs=tlp, draft_log_probs=dlp, metadata=meta)
