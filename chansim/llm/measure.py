"""How close is a draft to the target on real text? Σ min(p, q), α_ER and KL along sampled paths.

Prompts come from text nobody here wrote: the Python documentation topics shipped
with the standard library (:mod:`pydoc_data.topics`), cut deterministically.
Continuations are sampled from the *target* at temperature ``T`` (the text the
speculative decoder would produce), and at every sampled position the target
and each draft distribution are compared.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..logs.statistics import pair_statistics
from .scoring import TreeScorer, _log_softmax64

__all__ = ["pydoc_prompts", "pydoc_prompt_keys", "sample_target_paths", "pair_statistics", "measure_skip_sets",
           "DEFAULT_SKIP_SETS", "format_table"]

#: Skip sets reported by :func:`measure_skip_sets` (0-based layers of the 30-layer SmolLM2).
DEFAULT_SKIP_SETS: tuple[tuple[int, ...], ...] = (
    (15,), (5,), (25,), (10, 20), (14, 15, 16), (12, 13, 14, 15), (29,), (25, 26, 27, 28, 29))


def pydoc_prompts(tokenizer, n_prompts: int = 8, n_tokens: int = 64) -> list[list[int]]:
    """Deterministic prompts: the first ``n_tokens`` tokens of evenly spaced pydoc topics.

    Topic keys of :data:`pydoc_data.topics.topics` are sorted and ``n_prompts`` of them
    taken at evenly spaced indices (first and last included).

    Returns
    -------
    list of list of int
        ``n_prompts`` token-id lists, each of length ``n_tokens``.
    """
    from pydoc_data.topics import topics

    out = []
    for key in pydoc_prompt_keys(n_prompts, n_tokens):
        ids = tokenizer(topics[key], add_special_tokens=False)["input_ids"][:n_tokens]
        out.append([int(t) for t in ids])
    return out


def pydoc_prompt_keys(n_prompts: int = 8, n_tokens: int = 64) -> list[str]:
    """The :data:`pydoc_data.topics.topics` keys :func:`pydoc_prompts` uses, in order.

    >>> pydoc_prompt_keys(2, 64) == pydoc_prompt_keys(2, 64) and len(pydoc_prompt_keys(2, 64)) == 2
    True
    """
    from pydoc_data.topics import topics

    keys = sorted(k for k in topics if len(topics[k]) > 8 * n_tokens)
    if n_prompts < 1 or n_prompts > len(keys):
        raise ValueError(f"n_prompts must be in [1, {len(keys)}], got {n_prompts}")
    picks = np.unique(np.round(np.linspace(0, len(keys) - 1, n_prompts)).astype(int))
    return [keys[i] for i in picks]


def _sample(log_probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(np.exp(log_probs))
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), cdf.size - 1))


def sample_target_paths(network, prompts: Sequence[Sequence[int]], new_tokens: int,
                        temperature: float = 1.0, seed: int = 0) -> list[list[int]]:
    """Sample ``new_tokens`` continuation tokens per prompt from ``network`` (KV-cached).

    Returns the continuations only (``len(prompts)`` lists of ``new_tokens`` ids).
    """
    rng = np.random.default_rng(seed)
    scorer = TreeScorer(network)
    out = []
    for prompt in prompts:
        seq = list(prompt)
        for _ in range(new_tokens):
            seq.append(_sample(scorer.next_log_probs(seq, temperature), rng))
        out.append(seq[len(prompt):])
        scorer.reset()
    return out


def _path_log_probs(network, seq: Sequence[int], start: int, temperature: float) -> np.ndarray:
    """Log-probs after tokens ``seq[start-1:-1]`` (predicting ``seq[start:]``), shape (len-start, V)."""
    import torch

    L = len(seq)
    visible = torch.tril(torch.ones(L, L, dtype=torch.bool))
    logits = network.forward(torch.tensor(seq), torch.arange(L), visible, None)  # [L, V]
    return _log_softmax64(logits[start - 1:L - 1], temperature)


def measure_skip_sets(skip_sets: Iterable[Sequence[int]] = DEFAULT_SKIP_SETS, *, path=None,
                      device: str = "cpu", dtype="float32", n_prompts: int = 8, prompt_tokens: int = 64, new_tokens: int = 32,
                      temperature: float = 1.0, seed: int = 0) -> list[dict]:
    """Acceptance and KL of layer-skipping drafts against the full network on real text.

    Parameters
    ----------
    skip_sets : iterable of sequences of int
        Decoder layers each draft skips.
    path : str or Path, optional
        Model (see :func:`chansim.llm.models.load_model`); default the SmolLM2 GGUF.
    device, dtype
        See :func:`chansim.llm.models.load_model`.
    n_prompts, prompt_tokens : int
        See :func:`pydoc_prompts`.
    new_tokens : int
        Target-sampled tokens per prompt; statistics are averaged over these
        ``n_prompts * new_tokens`` positions.
    temperature : float
    seed : int
        Seed of the target sampling.

    Returns
    -------
    list of dict
        One row per skip set: ``skip``, ``n_layers`` (kept), ``positions``, and for
        ``sd_acceptance``, ``er_acceptance``, ``kl_nats`` the mean and its standard error
        (``*_se``).
    """
    from .models import _skip_view, load_model
    from .network import LayerView

    model, tokenizer = load_model(path, device=device, dtype=dtype)
    target = LayerView(model)
    prompts = pydoc_prompts(tokenizer, n_prompts, prompt_tokens)
    paths = sample_target_paths(target, prompts, new_tokens, temperature, seed)
    seqs = [list(p) + c for p, c in zip(prompts, paths)]
    starts = [len(p) for p in prompts]
    target_lp = [_path_log_probs(target, s, st, temperature) for s, st in zip(seqs, starts)]
    rows = []
    for skip in skip_sets:
        draft = _skip_view(model, skip)
        stats = [pair_statistics(tl, _path_log_probs(draft, s, st, temperature))
                 for tl, s, st in zip(target_lp, seqs, starts)]
        row = {"skip": list(skip), "n_layers": len(draft.layers)}
        for key in ("sd_acceptance", "er_acceptance", "kl_nats"):
            v = np.concatenate([s[key] for s in stats])
            row[key] = float(v.mean())
            row[key + "_se"] = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
        row["positions"] = int(sum(len(s["kl_nats"]) for s in stats))
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`measure_skip_sets` rows."""
    lines = [f"{'skipped layers':<22}{'kept':>5}{'Σmin(p,q)':>16}{'α_ER':>16}{'KL(p‖q) nats':>18}"]
    for r in rows:
        lines.append(f"{str(r['skip']):<22}{r['n_layers']:>5}"
                     f"{r['sd_acceptance']:>10.3f} ±{r['sd_acceptance_se']:.3f}"
                     f"{r['er_acceptance']:>10.3f} ±{r['er_acceptance_se']:.3f}"
                     f"{r['kl_nats']:>12.3f} ±{r['kl_nats_se']:.3f}")
    return "\n".join(lines)
