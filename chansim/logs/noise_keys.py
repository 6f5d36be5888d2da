r"""Independent randomness per sequence: race-noise keys and uniform streams of sequence i.

Why: with one key for every sequence, the keyed race noise :math:`E(\text{seed}, n, x)` at
absolute position n is the *same* for all sequences of a log (prompts of equal length put their
tokens at the same positions), and a ``numpy.random.default_rng(seed)`` made afresh for every
prompt hands every prompt the same uniforms.  Each sequence is still an exact sample, but the
sequences are no longer independent, while every interval here treats them as independent units
(:func:`chansim.common.stats.ratio_interval`, the bootstrap of :mod:`chansim.predict`).  On a synthetic
Markov pair (docs/llm_validation.md) the spread of the measured tokens per call over seeds is
then 3 times the reported standard error, and the spread of the predicted value 8 times its
bootstrap one; with independent sequences both ratios are about 1.

So sequence i gets its own race key :math:`s + i\cdot 2^{32}` (:func:`sequence_key`; the key's
high 32 bits enter :func:`chansim.sampling.races.keyed_uniform` separately, so keys of different
sequences never coincide) and its own uniform stream ``default_rng([s, i])``
(:func:`sequence_rng`).  Logs record ``metadata["noise_key"] = "per-sequence"``; older logs,
without it, used :math:`s` for every sequence and are still read and reproduced that way
(:func:`race_keys`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["PER_SEQUENCE", "sequence_key", "sequence_rng", "race_keys", "keyed_rows", "keyed_markov_paths"]

#: ``metadata["noise_key"]`` of logs whose sequence i is keyed by :func:`sequence_key`
PER_SEQUENCE = "per-sequence"


def sequence_key(seed: int, index: int) -> int:
    """Race-noise key of sequence ``index``: ``seed + index * 2**32``.

    >>> sequence_key(5, 0), sequence_key(5, 2)
    (5, 8589934597)
    """
    seed, index = int(seed), int(index)
    if not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must lie in [0, 2**32) for per-sequence keys, got {seed}")
    if not 0 <= index < 2 ** 31:
        raise ValueError(f"sequence index must lie in [0, 2**31), got {index}")
    return seed + index * 2 ** 32


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """Uniform stream of sequence ``index``: ``numpy.random.default_rng([seed, index])``.

    >>> float(sequence_rng(0, 1).random()) != float(sequence_rng(0, 2).random())
    True
    """
    return np.random.default_rng([int(seed), int(index)])


def race_keys(metadata: dict, n_sequences: int, seed: int | None = None) -> list[int]:
    """Race key of every sequence of a log: per sequence if the log says so, else its one seed.

    ``seed`` overrides the logged seed (the keying rule stays the log's).

    >>> race_keys({"seed": 3, "noise_key": "per-sequence"}, 2), race_keys({"seed": 3}, 2)
    ([3, 4294967299], [3, 3])
    """
    seed = int(metadata.get("seed", 0) if seed is None else seed)
    if metadata.get("noise_key") == PER_SEQUENCE:
        return [sequence_key(seed, i) for i in range(int(n_sequences))]
    return [seed] * int(n_sequences)


def keyed_rows(keys, sequence, position, vocab) -> np.ndarray:
    r""":math:`E(\text{key}_{s_j}, n_j, x)` for rows j (sequence :math:`s_j`, absolute position :math:`n_j`), shape ``[n, V]``.

    >>> keyed_rows([0, 2 ** 32], [0, 1], [5, 5], np.arange(3)).shape
    (2, 3)
    """
    from ..sampling.races import keyed_exponential

    seq = np.asarray(sequence, dtype=np.int64).reshape(-1)
    pos = np.asarray(position, dtype=np.int64).reshape(-1)
    vocab = np.asarray(vocab)
    out = np.empty((seq.size, vocab.size))
    for s in np.unique(seq):
        rows = np.flatnonzero(seq == s)
        out[rows] = keyed_exponential(int(keys[int(s)]), pos[rows][:, None], vocab)
    return out


def keyed_markov_paths(target, draft, seed: int, n_sequences: int, length: int, per_sequence: bool = True):
    r"""Race-sampled paths of a Markov pair, as logged paths ``(p_rows, q_rows, tokens)`` for :func:`chansim.predict.predict_path`.

    ``target[i]`` / ``draft[i]`` are the next-token laws after token i.  Sequence i starts
    from token ``i % V`` and its token at position n (1-based) is the race winner
    :math:`\arg\min_x E(\text{key}, n, x)/p(x)`, keyed by :func:`sequence_key` (or by ``seed``
    for every sequence when ``per_sequence`` is False: the shared-noise keying of old logs).

    >>> rows = keyed_markov_paths(np.full((2, 2), 0.5), np.full((2, 2), 0.5), 0, 2, 3)
    >>> [r[2].shape for r in rows]
    [(3,), (3,)]
    """
    from ..sampling.races import keyed_exponential, race_winner

    target, draft = np.asarray(target, dtype=float), np.asarray(draft, dtype=float)
    vocab = target.shape[0]
    paths = []
    for i in range(int(n_sequences)):
        key = sequence_key(seed, i) if per_sequence else int(seed)
        prev, ys = i % vocab, []
        for t in range(int(length)):
            ys.append(int(race_winner(keyed_exponential(key, 1 + t, np.arange(vocab)), target[prev])))
            prev = ys[-1]
        ctx = [i % vocab] + ys[:-1]
        paths.append((target[ctx], draft[ctx], np.array(ys)))
    return paths
