r"""Sample target paths with keyed exponential races and log target and draft distributions along them.

For each prompt, ``new_tokens`` tokens are sampled from the **target** by plain race
sampling with the shared keyed noise of :mod:`chansim.sampling.races`:

.. math:: y_t = \arg\min_x E(k_i, n, x) / p_t(x), \qquad n = \text{len(prompt)} + t,

with :math:`E = ` :func:`chansim.sampling.races.keyed_exponential`, :math:`p_t` the target's
float64 ``softmax(logits / T)`` on ``prompt + y_{<t}``, n the *absolute* position of
:math:`y_t` in the sequence (0-based, prompt included) and :math:`k_i = \text{seed} + i\cdot 2^{32}`
the key of sequence i (:func:`chansim.logs.noise_keys.sequence_key`: sequences get independent
noise; ``metadata["noise_key"] = "per-sequence"``). This is exactly the output
rule of ERSD (docs/algorithms.md): the target's token at every node is its own race winner
under the same keyed noise. Hence ERSD run on the same pair with the same seed, the
same prompts and positions keyed the same way reproduces the logged continuation
token for token, whatever its tree (up to floating-point near-ties between the
model's incremental and tree-attention forwards, which change :math:`p_t` in the
last bits).

At every position the draft is evaluated on the same prefix (``prompt + y_{<t}``),
so row t of the log holds :math:`(p_t, q_t)` of the distribution :math:`y_t` was drawn
from. Target and draft each keep a :class:`~chansim.llm.scoring.TreeScorer` whose KV
cache follows the growing sequence, so each position costs one incremental forward
of each network (the prompt costs one forward of its length). The continuation does
not stop at an end-of-sequence token: every sequence has exactly ``new_tokens``
tokens.
"""
from __future__ import annotations

import datetime as _dt
from typing import Sequence

import numpy as np

from ..common.logconfig import progress_bar
from ..inputs.numbers import whole_number
from ..sampling.races import keyed_exponential, race_winner

__all__ = ["log_run", "race_sample", "stored_race_mismatches"]


def race_sample(log_probs: np.ndarray, seed: int, position: int) -> int:
    r"""Race winner :math:`\arg\min_x E(\text{seed}, \text{position}, x) / e^{\ell_x}` of one row of log-probs.

    >>> lp = np.log([0.1, 0.2, 0.7])
    >>> race_sample(lp, 0, 5) == race_sample(lp, 0, 5)
    True
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    noise = keyed_exponential(int(seed), int(position), np.arange(lp.shape[-1]))
    return int(race_winner(noise, np.exp(lp)))


def stored_race_mismatches(run, seed: int | None = None) -> list[tuple[int, int]]:
    """Positions ``(sequence, t)`` where race sampling from the *stored* target distributions disagrees with the log.

    The log was sampled from the model's float64 distributions; the stored ones are
    float16-rounded, so a disagreement is possible only at a near-tie of the race
    (relative gap between the two earliest arrival times below ~0.1 %). ``seed``
    defaults to ``run.metadata["seed"]``; sequence i uses the log's key rule
    (:func:`chansim.logs.noise_keys.race_keys`).
    """
    from ..logs.noise_keys import race_keys

    keys = race_keys(run.metadata, run.n_sequences, seed)
    out = []
    for i in range(run.n_sequences):
        p, _, y = run.sequence(i)
        pos = run.positions(i)
        noise = keyed_exponential(keys[i], pos[:, None], np.arange(run.vocab_size))
        won = race_winner(noise, p)
        out += [(i, int(t)) for t in np.flatnonzero(won != y)]
    return out


def log_run(pair, prompts: Sequence[Sequence[int]], new_tokens: int, temperature: float, seed: int,
            progress: bool = True, prompt_source: dict | None = None,
            draft_temperature: float | None = None) -> dict:
    """Sample continuations from ``pair.target`` by keyed races and record target/draft log-probs.

    Parameters
    ----------
    pair : chansim.llm.models.ModelPair
    prompts : list of list of int
        Prompt token ids (each at least one token).
    new_tokens : int
        Tokens sampled per prompt (``>= 1``).
    temperature : float
        Softmax temperature of the target (and of the draft unless ``draft_temperature``; ``> 0``).
    seed : int
        Key of the race noise (module docstring).
    progress : bool
        Show a progress bar on stderr.
    prompt_source : dict, optional
        Stored under ``metadata["prompts"]`` (e.g. pydoc topic keys, or a file and its hash).
    draft_temperature : float, optional
        The draft's own softmax temperature (``> 0``; default ``temperature``); stored as
        ``metadata["draft_temperature"]``, and ``chansim llm validate`` generates with it.

    Returns
    -------
    dict
        Keyword arguments of :func:`chansim.logs.format.write_log`: ``prompts``, ``tokens``,
        ``target_log_probs``, ``draft_log_probs`` (lists of float64 arrays [T, V]) and
        ``metadata``.
    """
    from .scoring import TreeScorer

    whole_number(new_tokens, "new_tokens")
    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    draft_temperature = temperature if draft_temperature is None else draft_temperature
    if not (isinstance(draft_temperature, (int, float)) and np.isfinite(draft_temperature) and draft_temperature > 0):
        raise ValueError(f"draft_temperature must be a finite number > 0, got {draft_temperature!r}")
    prompts = [[int(t) for t in p] for p in prompts]
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("need at least one prompt, each with at least one token")
    new_tokens = int(new_tokens)
    target, draft = TreeScorer(pair.target), TreeScorer(pair.draft)
    bar = progress_bar(len(prompts) * new_tokens, "logging", progress, unit="tok")
    tokens, tlp, dlp = [], [], []
    from ..logs.noise_keys import PER_SEQUENCE, sequence_key

    try:
        for index, prompt in enumerate(prompts):
            key = sequence_key(seed, index)                              # independent noise per sequence
            toks, t_rows, d_rows = _log_sequence(target, draft, prompt, new_tokens, temperature,
                                                 draft_temperature, key, bar)
            tokens.append(toks)
            tlp.append(t_rows)
            dlp.append(d_rows)
    finally:
        bar.close()
    meta = dict(pair.metadata)
    meta.update({
        "temperature": float(temperature),
        "draft_temperature": float(draft_temperature),
        "seed": int(seed),
        "noise_key": PER_SEQUENCE,
        "new_tokens": new_tokens,
        "sampling": "keyed race on the target: token at absolute position n of sequence i = argmin_x "
                    "keyed_exponential(seed + i * 2**32, n, x) / p(x); n counts prompt tokens from 0",
        "prompts": dict(prompt_source or {"source": "given token ids"}),
        "prompt_lengths": [len(p) for p in prompts],
        "target_forwards": target.n_forward,
        "draft_forwards": draft.n_forward,
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return {"prompts": prompts, "tokens": tokens, "target_log_probs": tlp, "draft_log_probs": dlp,
            "metadata": meta}


def _log_sequence(target, draft, prompt: list, new_tokens: int, temperature: float, draft_temperature: float,
                  key: int, bar) -> tuple:
    """Sample ``new_tokens`` tokens after ``prompt`` from the target by the keyed race ``key``:
    ``(tokens [T], target rows [T, V], draft rows [T, V])``; the scorers' caches are reset after."""
    seq = list(prompt)
    t_rows, d_rows = [], []
    for _ in range(new_tokens):
        lp = target.next_log_probs(seq, temperature)            # [V] float64
        t_rows.append(lp)
        d_rows.append(draft.next_log_probs(seq, draft_temperature))
        seq.append(race_sample(lp, key, len(seq)))
        bar.update(1)
    target.reset()
    draft.reset()
    return np.array(seq[len(prompt):], dtype=np.int64), np.stack(t_rows), np.stack(d_rows)


def _versions() -> dict:
    import platform

    from .. import __version__

    out = {"chansim": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "transformers", "gguf", "accelerate"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001  (optional libraries: record what is there)
            out[mod] = None
    return out
