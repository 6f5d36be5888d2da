"""Per-position statistics of logged distributions: Σ min(p, q), α_ER and KL(p‖q)."""
from __future__ import annotations

import numpy as np

from ..inputs.distributions import kl_divergence, sd_acceptance

__all__ = ["pair_statistics", "probability_statistics"]


def pair_statistics(target_log_probs: np.ndarray, draft_log_probs: np.ndarray) -> dict:
    """Per-position Σ min(p, q), α_ER and KL(p‖q) (nats) for rows of log-probs, shape (n, V).

    Returns
    -------
    dict of numpy.ndarray, each shape (n,)
        ``sd_acceptance``, ``er_acceptance``, ``kl_nats``.
    """
    p, q = np.exp(target_log_probs), np.exp(draft_log_probs)
    p /= p.sum(-1, keepdims=True)  # float64 round-off only
    q /= q.sum(-1, keepdims=True)
    return probability_statistics(p, q)


def probability_statistics(target_probs: np.ndarray, draft_probs: np.ndarray, validate: bool = True) -> dict:
    """Σ min(p, q), α_ER and KL(p‖q) (nats) of probability rows, shape (n, V) -> dict of (n,) arrays."""
    from ..sampling.races import er_acceptance

    return {"sd_acceptance": sd_acceptance(target_probs, draft_probs, validate=validate),
            "er_acceptance": er_acceptance(target_probs, draft_probs, validate=validate),
            "kl_nats": kl_divergence(target_probs, draft_probs, validate=validate)}
