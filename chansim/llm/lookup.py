r"""Deterministic drafts on the real target: chansim's decoder, transformers' prompt lookup, and interleaved timing.

* :func:`lookup_generate` -- any chain method of :mod:`chansim.verify` with a deterministic draft
  (:mod:`chansim.drafts`) on the target (:class:`~chansim.llm.generate.ModelSource`, KV cache kept
  between calls): per call one proposal, one target forward over the last token + the proposal.
* :class:`HFLookup` -- transformers' own ``generate(prompt_lookup_num_tokens=K,
  max_matching_ngram_size=N, do_sample=...)`` and plain ``generate`` on the same prompts, EOS off
  (exactly n tokens, as chansim), target forwards counted with a hook.  transformers verifies a
  lookup draft by sampling the target at every drafted position and accepting while the samples
  equal the draft -- the same law as sd with a point-mass draft (:mod:`chansim.drafts.proposers`).
* :func:`measure_lookup_speedups` -- per prompt, in this order: chansim autoregressive, every
  (method, draft) setting, transformers plain ``generate``, every transformers lookup K; so a
  change of machine load hits baseline and speculative runs alike.  Speed-up of a setting =
  :math:`\sum_i w^{\text{base}}_i / \sum_i w_i` (same tokens per prompt), percentile bootstrap
  over prompts (paired: both sums resample the same prompts); chansim's rows against chansim's
  autoregressive decoding, transformers' against its plain ``generate``.

Randomness: prompt i uses the race key :func:`chansim.logs.noise_keys.sequence_key` ``(seed, i)``
and the uniform stream ``sequence_rng(seed, i)`` -- the keys of a log made with the same seed, so
``ersd`` regenerates that log's text and its calls are exactly the ones predicted from it.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..drafts import deterministic_generate, parse_draft
from ..logs.noise_keys import sequence_key, sequence_rng
from ..common.stats import format_interval, bootstrap_ratio_interval
from ..verify import KeyedNoise
from ..verify.registry import baseline
from .generate import ModelSource, generate_real

__all__ = ["lookup_generate", "greedy_log", "HFLookup", "measure_lookup_speedups", "format_speedups"]


def _settings(temperature: float):
    from ..logs.temperature import SamplingSettings

    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    return SamplingSettings(float(temperature))


def lookup_generate(pair, method, draft, prompt, new_tokens: int, temperature: float = 1.0, seed: int = 0,
                    index: int = 0) -> dict:
    """``new_tokens`` tokens after ``prompt`` with ``method`` and the deterministic ``draft`` on ``pair.target``.

    ``temperature`` 0 is greedy.  Returns ``tokens``, ``calls``, ``proposed`` / ``accepted`` per call,
    ``wall_seconds`` (whole generation, prompt pre-fill included), ``target_seconds``,
    ``propose_seconds``.
    """
    target = ModelSource(pair.target, settings=_settings(temperature))
    noise = KeyedNoise(sequence_key(seed, index), rng=sequence_rng(seed, index))
    start = time.perf_counter()
    out = deterministic_generate(method, parse_draft(draft), target, int(new_tokens), noise, prefix=list(prompt))
    wall = time.perf_counter() - start
    return {"tokens": out.tokens.tolist(), "n_tokens": int(out.tokens.size), "calls": out.calls,
            "proposed": out.proposed.tolist(), "accepted": out.accepted.tolist(), "wall_seconds": wall,
            "target_seconds": target.seconds, "propose_seconds": out.draft_seconds}


def greedy_log(pair, prompts: Sequence[Sequence[int]], new_tokens: int, prompt_source: dict | None = None) -> dict:
    r"""A log of the target's *greedy* continuations, :math:`y_t = \arg\max_x p_t(x)`, for :func:`write_log`.

    Greedy decoding has no randomness, so the text -- and with it every deterministic draft's calls
    (:func:`chansim.drafts.call_lengths`) -- is fixed: the prediction from this log is the exact
    number of calls a greedy run makes (up to argmax near-ties between the incremental and the
    tree-attention forward).  Rows: the target's T = 1 log-probs; ``draft_log_probs`` repeat them
    (no draft model is run; ``metadata["draft"] = "none"``), ``metadata["decoding"] = "greedy"``.
    """
    import datetime as _dt

    from .scoring import TreeScorer

    prompts = [[int(t) for t in p] for p in prompts]
    if not prompts or any(not p for p in prompts):
        raise ValueError("need at least one prompt, each with at least one token")
    if isinstance(new_tokens, bool) or int(new_tokens) != new_tokens or new_tokens < 1:
        raise ValueError(f"new_tokens must be a positive integer, got {new_tokens!r}")
    scorer = TreeScorer(pair.target)
    tokens, rows = [], []
    for prompt in prompts:
        seq, lp_rows = list(prompt), []
        for _ in range(int(new_tokens)):
            lp = scorer.next_log_probs(seq, 1.0)                       # [V] float64
            lp_rows.append(lp)
            seq.append(int(np.argmax(lp)))
        tokens.append(np.array(seq[len(prompt):], dtype=np.int64))
        rows.append(np.stack(lp_rows))
        scorer.reset()
    meta = dict(pair.metadata)
    meta.update({"temperature": 1.0, "decoding": "greedy", "draft": "none",
                 "sampling": "greedy: token = argmax_x p(x) (rows: T = 1 log-probs; draft rows repeat the target's)",
                 "new_tokens": int(new_tokens), "prompts": dict(prompt_source or {"source": "given token ids"}),
                 "prompt_lengths": [len(p) for p in prompts],
                 "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return {"prompts": prompts, "tokens": tokens, "target_log_probs": rows, "draft_log_probs": rows, "metadata": meta}


def _autoregressive(pair, prompt, new_tokens, temperature, seed, index) -> dict:
    settings = _settings(temperature)
    res = generate_real(pair, baseline(), "chain:0", list(prompt), int(new_tokens),
                        seed=sequence_key(seed, index),
                        target_settings=settings, draft_settings=settings, rng=sequence_rng(seed, index))
    return {"tokens": res.tokens.tolist(), "n_tokens": int(res.new_tokens), "calls": res.target_calls,
            "wall_seconds": res.wall_seconds, "target_seconds": res.target_seconds}


class HFLookup:
    """transformers' ``generate`` with and without prompt lookup on ``pair.target`` (context manager).

    On entry the target's generation config is replaced by one with EOS off and a forward pre-hook
    counts target calls; on exit both are restored.  ``temperature`` 0: greedy, else full-vocabulary
    sampling (``top_k=0``, ``top_p=1``).
    """

    def __init__(self, pair, temperature: float = 1.0) -> None:
        _settings(temperature)
        self.pair = pair
        self.temperature = float(temperature)
        self.model = pair.target.model
        self.calls = 0
        self._hook = None
        self._saved = None

    def __enter__(self):
        from transformers import GenerationConfig

        self._saved = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            bos_token_id=self._saved.bos_token_id, eos_token_id=None,
            pad_token_id=self._saved.pad_token_id if self._saved.pad_token_id is not None else 0)

        def count(*_):
            self.calls += 1

        self._hook = self.model.register_forward_pre_hook(count)
        return self

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.remove()
        self._hook = None
        self.model.generation_config = self._saved

    def run(self, prompt: Sequence[int], new_tokens: int, seed: int, lookup_tokens: int | None = None,
            max_ngram: int = 2) -> dict:
        """One ``generate``; ``lookup_tokens=K`` turns on prompt lookup (``prompt_lookup_num_tokens=K``)."""
        import torch

        if self._hook is None:
            raise RuntimeError("HFLookup.run must be called inside 'with HFLookup(...) as hf:'")
        kw = {}
        if lookup_tokens is not None:
            kw = {"prompt_lookup_num_tokens": int(lookup_tokens), "max_matching_ngram_size": int(max_ngram)}
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0)
        else:
            kw.update(do_sample=False)
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.pair.device)      # [1, L]
        torch.manual_seed(int(seed))
        before = self.calls
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(new_tokens), **kw)
        wall = time.perf_counter() - start
        return {"tokens": out[0, ids.shape[1]:].tolist(), "n_tokens": int(out.shape[1] - ids.shape[1]),
                "calls": self.calls - before, "wall_seconds": wall}


def _hf_name(k, max_ngram) -> str:
    return parse_draft(f"lookup:{int(k)}:{int(max_ngram)}").name


def _summary(runs: list[dict], confidence: float) -> dict:
    tokens = [r["n_tokens"] for r in runs]
    calls = [r["calls"] for r in runs]
    tpc = bootstrap_ratio_interval(tokens, calls, confidence)
    return {"tokens": int(sum(tokens)), "calls": int(sum(calls)),
            "wall_seconds": float(sum(r["wall_seconds"] for r in runs)),
            "tokens_per_call": {k: float(tpc[k]) for k in ("mean", "ci_low", "ci_high")},
            "sequence_tokens": tokens, "sequence_calls": calls,
            "sequence_wall_seconds": [float(r["wall_seconds"]) for r in runs]}


def measure_lookup_speedups(pair, prompts: Sequence[Sequence[int]], new_tokens: int, settings: Sequence[tuple],
                            hf_lookup: Sequence[int] = (), temperature: float = 1.0, seed: int = 0,
                            max_ngram: int = 2, confidence: float = 0.95, warmup: bool = True, progress=None) -> dict:
    """Interleaved wall-clock measurement of deterministic drafts (module docstring).

    Parameters
    ----------
    pair : ModelPair
    prompts : sequences of int
    new_tokens : int
        Tokens generated per prompt in every run.
    settings : sequence of (method, draft)
        chansim settings (registered method name, draft name), e.g. a method with ``"lookup:2"``.
    hf_lookup : sequence of int
        transformers' ``prompt_lookup_num_tokens`` values (with ``max_matching_ngram_size=max_ngram``);
        empty: no transformers rows.
    temperature : float
        0 = greedy.

    Returns
    -------
    dict
        ``rows``: one per setting (``method``, ``draft``, ``baseline``, ``tokens_per_call``,
        ``wall_speedup`` ``{mean, ci_low, ci_high}``, per-prompt lists, ``tokens_per_second``), the
        baselines first (``autoregressive`` and ``hf-generate``); ``runs``: every run's counts.
    """
    prompts = [list(p) for p in prompts]
    if not prompts:
        raise ValueError("need at least one prompt")
    settings = [(str(m), parse_draft(d).name) for m, d in settings]
    runs: dict = {(baseline(), "-"): []}
    for s in settings:
        runs[s] = []
    if hf_lookup:
        runs[("hf-generate", "-")] = []
        for k in hf_lookup:
            runs[("hf-lookup", _hf_name(k, max_ngram))] = []
    with HFLookup(pair, temperature) as hf:
        if warmup:
            _autoregressive(pair, prompts[0], 4, temperature, seed, 0)
            for m, d in settings[:1]:
                lookup_generate(pair, m, d, prompts[0], 4, temperature, seed, 0)
            if hf_lookup:
                hf.run(prompts[0], 4, seed)
                hf.run(prompts[0], 4, seed, int(hf_lookup[0]), max_ngram)
        for i, prompt in enumerate(prompts):
            runs[(baseline(), "-")].append(_autoregressive(pair, prompt, new_tokens, temperature, seed, i))
            for m, d in settings:
                runs[(m, d)].append(lookup_generate(pair, m, d, prompt, new_tokens, temperature, seed, i))
            if hf_lookup:
                runs[("hf-generate", "-")].append(hf.run(prompt, new_tokens, seed + i))
                for k in hf_lookup:
                    runs[("hf-lookup", _hf_name(k, max_ngram))].append(
                        hf.run(prompt, new_tokens, seed + i, int(k), max_ngram))
            if progress is not None:
                progress(i)
    rows = []
    for (method, draft), rs in runs.items():
        row = {"method": method, "draft": draft, **_summary(rs, confidence)}
        base = "hf-generate" if method.startswith("hf-") else baseline()
        row["baseline"] = base
        if method not in (baseline(), "hf-generate"):
            b = runs[(base, "-")]
            iv = bootstrap_ratio_interval([r["wall_seconds"] for r in b], row["sequence_wall_seconds"], confidence)
            row["wall_speedup"] = {k: float(iv[k]) for k in ("mean", "ci_low", "ci_high")}
        row["tokens_per_second"] = row["tokens"] / row["wall_seconds"]
        if method not in (baseline(), "hf-generate", "hf-lookup"):
            row["proposed"] = int(sum(sum(r["proposed"]) for r in rs))
            row["accepted"] = int(sum(sum(r["accepted"]) for r in rs))
        rows.append(row)
    return {"rows": rows, "runs": [{"method": m, "draft": d, "runs": rs} for (m, d), rs in runs.items()],
            "temperature": float(temperature), "seed": int(seed), "new_tokens": int(new_tokens),
            "prompts": len(prompts), "prompt_lengths": [len(p) for p in prompts]}


def format_speedups(result: dict, predictions: dict | None = None) -> str:
    """Table of :func:`measure_lookup_speedups` rows; ``predictions`` maps a draft name to its predicted row."""
    iv = format_interval
    lines = [f"{'method':<16}{'draft':<14}{'tokens/call [95% CI]':<26}{'tok/s':>7}  {'measured speed-up [95% CI]':<28}"
             f"{'predicted speed-up [95% CI]':<28}{'predicted tokens/call':<26}"]
    for r in result["rows"]:
        pred = (predictions or {}).get(r["draft"]) if r["method"] not in (baseline(), "hf-generate") else None
        lines.append(f"{r['method']:<16}{r['draft']:<14}{iv(r['tokens_per_call']):<26}{r['tokens_per_second']:>7.2f}  "
                     f"{iv(r.get('wall_speedup')):<28}{iv(pred.get('wall_speedup') if pred else None):<28}"
                     f"{iv(pred['tokens_per_call'] if pred else None):<26}")
    return "\n".join(lines)
