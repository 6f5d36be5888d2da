"""``autoregressive`` — the baseline: one token per target call, y ~ p (nothing drafted)."""
from __future__ import annotations

import numpy as np

from .base import Method, NodeNoise, sample_rows

__all__ = ["Autoregressive"]


class Autoregressive(Method):
    """Sample y ~ p at the root and stop (runs on the empty tree ``chain:0``).

    Tokens per call = 1, by definition; the reference point of every speed-up.
    """

    name = "autoregressive"
    label = "autoregressive"
    colour = "0.4"
    marker = "o"
    min_drafts = 0
    has_path_prediction = True

    def path_acceptance(self, p, q, y, py, m: int) -> np.ndarray:   # never called: no drafted depth
        raise ValueError("autoregressive decoding drafts nothing")

    def draft(self, q, slots, noise: NodeNoise) -> np.ndarray:
        """Nothing: ``[B, 0]``."""
        return np.empty((noise.batch, 0), dtype=np.int64)                 # [B, 0]

    def verify(self, p, q, drafts, noise: NodeNoise):
        """y ~ p: ``p`` ``[R, V]`` → ``(accepted [B] = -1, token [B])``."""
        token = sample_rows(p, noise.rng.random(noise.batch))             # [B]
        return np.full(noise.batch, -1, dtype=np.int64), token
