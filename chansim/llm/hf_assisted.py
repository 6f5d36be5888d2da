r"""transformers' own assisted generation on the pair, and its wall-clock speed-up over plain ``generate``.

The reference users compare against: ``target.generate(..., assistant_model=draft,
do_sample=True)`` (speculative sampling on a chain of ``K`` drafted tokens, i.e. ``sd`` on
``chain:K``) against ``target.generate(..., do_sample=True)`` with the same prompts, lengths
and sampling settings.  The draft is a real ``transformers`` model object
(:func:`hf_draft_model`: the layer-skipped network as its own module sharing every weight).

Measured wall-clock speed-up of assisted generation over plain generation, with the same
tokens :math:`n_i` per prompt i in both runs (tokens per second ratio):

.. math:: \hat S_{HF} = \frac{\sum_i n_i / \sum_i w^{A}_i}{\sum_i n_i / \sum_i w^{G}_i}
          = \frac{\sum_i w^{G}_i}{\sum_i w^{A}_i},

:math:`w^{G}_i, w^{A}_i` the seconds of plain and assisted generation of prompt i; its
interval is the paired percentile bootstrap over prompts
(:func:`chansim.common.stats.bootstrap_ratio_interval`).  Plain and assisted runs of one prompt are
interleaved (plain, then each K), so a change of machine load hits both sides alike, and one
untimed warm-up of each precedes the measurements.  The same cost model as
:mod:`chansim.llm.wallclock` (docs/theory.md, ``--cost``) applies: speed-up = tokens per call
:math:`\times c_p(1) / (K c_q(1) + c_p(K + 1))`.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..common.stats import bootstrap_ratio_interval, ratio_interval

__all__ = ["hf_draft_model", "HFGenerator", "hf_assisted_generate", "hf_side_by_side", "format_hf_speedups"]

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs")


def hf_draft_model(pair):
    """The draft as a Hugging Face model, for ``generate(assistant_model=...)``.

    For a layer-skipping draft: a *shallow* copy of the target whose backbone's layer
    list holds only the kept layers (no weight is copied).  Each attention module keeps
    its original ``layer_idx``, so its keys/values go to the same slot of a cache sized
    by the (shared) config; skipped slots stay empty.  The copy gets its own generation
    config and hook registries (so hooks on the target do not fire for the draft).
    A separate draft model with no skipped layers is returned as is.

    Raises
    ------
    NotImplementedError
        When layer 0 is skipped (transformers reads the cache length from layer 0).
    """
    import copy

    import torch

    view = pair.draft
    model = view.model
    if not view.skipped_layers:
        return model
    if 0 not in view.layers:
        raise NotImplementedError("HF assisted generation with a draft that skips layer 0 is not supported "
                                  "(transformers reads the cache length from layer 0)")
    backbone = copy.copy(model.model)
    backbone._modules = dict(backbone._modules)          # the original keeps its layer list
    backbone.layers = torch.nn.ModuleList([model.model.layers[i] for i in view.layers])
    clone = copy.copy(model)
    clone._modules = dict(clone._modules)
    clone.model = backbone
    for mod in (clone, backbone):
        for name in _HOOK_DICTS:
            if hasattr(mod, name):
                setattr(mod, name, OrderedDict())
    clone.generation_config = copy.deepcopy(model.generation_config)
    return clone


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _tokens_per_call(starts, prompt_length: int, final_length: int):
    """Tokens committed by each target call of one ``generate``, from the calls' first positions.

    Call j > 0 starts at position C_j - 1 (it re-feeds the last committed token), where
    C_j tokens were committed before it; call 0 pre-fills from position 0 with C_0 = the
    prompt length.  Returns ``None`` unless the counts are consistent (each in
    ``1..``, summing to the tokens generated).

    >>> _tokens_per_call([0, 5, 7], 5, 9).tolist()      # prompt of 5; calls commit 1, 2, 1 tokens
    [1, 2, 1]
    """
    if not starts or any(s is None for s in starts) or starts[0] != 0:
        return None
    committed = [prompt_length] + [s + 1 for s in starts[1:]] + [final_length]
    per_call = np.diff(committed)
    if np.any(per_call < 1) or per_call.sum() != final_length - prompt_length:
        return None
    return per_call


class HFGenerator:
    """Plain and assisted ``generate`` on a pair, with target/draft forward counts and timing.

    A context manager: on entry the target's generation config is replaced by one with EOS
    off (exactly ``n`` tokens are made, as chansim never stops at EOS either), the draft
    (:func:`hf_draft_model`) gets a constant draft length and no confidence cut-off, and
    forward hooks count the calls; on exit everything is restored.

    Parameters
    ----------
    pair : ModelPair
        The target must run all its layers.
    temperature : float
        Full-vocabulary sampling (``top_k=0``, ``top_p=1``) at this temperature (> 0).
    """

    def __init__(self, pair, temperature: float = 1.0) -> None:
        if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.pair = pair
        self.temperature = float(temperature)
        self.target = pair.target.model
        if len(pair.target.layers) != pair.target.n_model_layers:
            raise NotImplementedError("HF assisted generation needs a target that runs all its layers")
        self.draft = hf_draft_model(pair)
        if self.draft is self.target:
            raise NotImplementedError("the draft runs every layer of the target: nothing to compare")
        self.counts = {"target": 0, "draft": 0}
        self.starts: list = []     # per target call: position of its first input token (None if unknown)
        self._hooks: list = []
        self._saved = None

    def __enter__(self):
        from transformers import GenerationConfig

        target, draft = self.target, self.draft
        self._saved = (target.generation_config, draft.generation_config)
        target.generation_config = GenerationConfig(
            bos_token_id=self._saved[0].bos_token_id, eos_token_id=None,
            pad_token_id=self._saved[0].pad_token_id if self._saved[0].pad_token_id is not None else 0)
        draft.generation_config = GenerationConfig(num_assistant_tokens=1, num_assistant_tokens_schedule="constant",
                                                   assistant_confidence_threshold=0.0, eos_token_id=None)

        def on_target(module, args, kwargs):
            self.counts["target"] += 1
            pos = kwargs.get("position_ids")
            self.starts.append(int(pos.reshape(-1)[0]) if pos is not None and pos.numel() else None)

        def on_draft(*_):
            self.counts["draft"] += 1

        self._hooks = [target.register_forward_pre_hook(on_target, with_kwargs=True),
                       draft.register_forward_hook(on_draft)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.target.generation_config, self.draft.generation_config = self._saved

    def run(self, prompt: Sequence[int], new_tokens: int, seed: int, assistant_tokens: int | None = None,
            assistant_confidence: float = 0.0) -> dict:
        """One ``generate`` of ``new_tokens`` tokens; ``assistant_tokens=K`` drafts K tokens per call.

        ``assistant_confidence=c > 0`` sets transformers' ``assistant_confidence_threshold``: the
        draft stops after a drafted token whose probability is below c (transformers adapts c from
        an ROC curve between calls when scikit-learn is installed).

        Returns ``tokens``, ``calls`` (target forwards, the first pre-fills), ``draft_forwards``,
        ``call_tokens`` (tokens per target call, or ``None``) and ``wall_seconds``.
        """
        import torch

        if self._saved is None or not self._hooks:
            raise RuntimeError("HFGenerator.run must be called inside 'with HFGenerator(...) as gen:'")
        kw = {}
        if assistant_tokens is not None:
            if int(assistant_tokens) < 1:
                raise ValueError(f"assistant_tokens must be >= 1, got {assistant_tokens}")
            self.draft.generation_config.num_assistant_tokens = int(assistant_tokens)
            self.draft.generation_config.assistant_confidence_threshold = float(assistant_confidence)
            kw["assistant_model"] = self.draft
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.pair.device)   # [1, L]
        torch.manual_seed(int(seed))
        before, before_draft = self.counts["target"], self.counts["draft"]
        self.starts.clear()
        _sync(self.pair.device)
        start = time.perf_counter()
        with torch.no_grad():
            out = self.target.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                       temperature=self.temperature, top_k=0, top_p=1.0,
                                       max_new_tokens=int(new_tokens), **kw)
        _sync(self.pair.device)
        wall = time.perf_counter() - start
        return {"tokens": int(out.shape[1] - ids.shape[1]), "calls": self.counts["target"] - before,
                "draft_forwards": self.counts["draft"] - before_draft,
                "call_tokens": _tokens_per_call(list(self.starts), ids.shape[1], int(out.shape[1])),
                "wall_seconds": wall}


def _row(runs: list[dict], k: int, confidence: float) -> dict:
    tokens = [r["tokens"] for r in runs]
    calls = [r["calls"] for r in runs]
    per_call = None if any(r["call_tokens"] is None for r in runs) else np.concatenate([r["call_tokens"] for r in runs])
    meas = ratio_interval(tokens, calls, confidence, per_call, max_call_tokens=k + 1)
    walls = [r["wall_seconds"] for r in runs]
    return {"method": "hf-assisted" if k else "hf-generate", "tree": f"chain:{k}", "k": k, "predicted": None,
            "measured": meas, "tokens": int(sum(tokens)), "target_calls": int(sum(calls)),
            "draft_forwards": int(sum(r["draft_forwards"] for r in runs)), "wall_seconds": float(sum(walls)),
            "sequence_tokens": tokens, "sequence_calls": calls, "sequence_wall_seconds": walls}


def _check_lengths(prompts, lengths) -> None:
    if len(prompts) == 0 or len(prompts) != len(lengths):
        raise ValueError(f"need one length per prompt (got {len(prompts)} prompts, {len(lengths)} lengths)")
    if any(int(n) != n or n < 1 for n in lengths):
        raise ValueError(f"lengths must be positive integers, got {list(lengths)}")


def hf_assisted_generate(pair, prompts: Sequence[Sequence[int]], lengths: Sequence[int], temperature: float,
                         num_assistant_tokens: int, seed: int = 0, confidence: float = 0.95) -> dict:
    """transformers' assisted generation with sampling (``do_sample=True``) on the pair, one draft length.

    Full-vocabulary sampling at ``temperature``, a constant draft length
    ``num_assistant_tokens`` (schedule ``constant``, no confidence cut-off), EOS ignored.
    transformers verifies a chain with speculative sampling, i.e. ``sd`` on ``chain:K``.
    Prompt i is seeded with ``seed + i``.

    Returns
    -------
    dict
        ``method`` (``"hf-assisted"``), ``tree`` (``chain:K``), ``k``, ``measured`` tokens per
        target call (:func:`chansim.common.stats.ratio_interval`), ``tokens``, ``target_calls``,
        ``draft_forwards``, ``wall_seconds`` and the per-prompt ``sequence_*`` lists.
    """
    k = int(num_assistant_tokens)
    if k < 1:
        raise ValueError(f"num_assistant_tokens must be >= 1, got {k}")
    _check_lengths(prompts, lengths)
    with HFGenerator(pair, temperature) as gen:
        runs = [gen.run(p, n, int(seed) + i, k) for i, (p, n) in enumerate(zip(prompts, lengths))]
    return _row(runs, k, confidence)


def hf_side_by_side(pair, prompts: Sequence[Sequence[int]], lengths: Sequence[int], temperature: float,
                    assistant_tokens: Sequence[int], seed: int = 0, confidence: float = 0.95,
                    warmup: bool = True, progress=None) -> dict:
    """Plain ``generate`` and assisted generation for each K, interleaved per prompt, with wall speed-ups.

    Parameters
    ----------
    pair : ModelPair
    prompts : sequence of sequences of int
    lengths : sequence of int
        New tokens per prompt (the same in every run).
    temperature : float
    assistant_tokens : sequence of int
        Draft lengths K (one assisted row per K).
    seed : int
        Prompt i is seeded with ``seed + i`` in every run.
    confidence : float
    warmup : bool
        One untimed plain and assisted run on the first prompt (4 tokens) first.
    progress : callable, optional
        Called after each prompt.

    Returns
    -------
    dict
        ``generate``: the plain row (``tree`` ``chain:0``); ``assisted``: one row per K as
        :func:`hf_assisted_generate`, each with ``wall_speedup`` = module formula
        ``{mean, ci_low, ci_high}`` (paired bootstrap over prompts, needs >= 2 prompts for a
        spread).
    """
    ks = [int(k) for k in assistant_tokens]
    if not ks or min(ks) < 1:
        raise ValueError(f"assistant_tokens must be positive integers, got {list(assistant_tokens)}")
    _check_lengths(prompts, lengths)
    plain, assisted = [], {k: [] for k in ks}
    with HFGenerator(pair, temperature) as gen:
        if warmup:
            gen.run(prompts[0], 4, int(seed))
            gen.run(prompts[0], 4, int(seed), ks[0])
        for i, (p, n) in enumerate(zip(prompts, lengths)):
            plain.append(gen.run(p, n, int(seed) + i))
            for k in ks:
                assisted[k].append(gen.run(p, n, int(seed) + i, k))
            if progress is not None:
                progress()
    base = _row(plain, 0, confidence)
    rows = []
    for k in ks:
        row = _row(assisted[k], k, confidence)
        iv = bootstrap_ratio_interval(base["sequence_wall_seconds"], row["sequence_wall_seconds"], confidence)
        row["wall_speedup"] = {key: float(iv[key]) for key in ("mean", "ci_low", "ci_high")}
        row["baseline"] = "transformers generate (no assistant)"
        rows.append(row)
    return {"generate": base, "assisted": rows}


def format_hf_speedups(generate_row: dict, assisted_rows: Sequence[dict]) -> str:
    """Lines: tokens per call and wall-clock speed-up over plain ``generate`` of each assisted row."""
    conf_rows = [r for r in assisted_rows if r.get("wall_speedup")]
    if not conf_rows:
        return ""
    tps = generate_row["tokens"] / generate_row["wall_seconds"]
    lines = [f"transformers generate (no assistant): {generate_row['tokens']} tokens in "
             f"{generate_row['wall_seconds']:.1f} s ({tps:.1f} tokens/s)",
             f"{'hf-assisted':<12}{'tree':<10}{'tokens/call':>12}  {'tokens/s':>9}  {'wall speed-up over generate':<30}"]
    for r in conf_rows:
        s = r["wall_speedup"]
        lines.append(f"{'hf-assisted':<12}{r['tree']:<10}{r['measured']['mean']:>12.3f}  "
                     f"{r['tokens'] / r['wall_seconds']:>9.1f}  "
                     f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
    return "\n".join(lines)
