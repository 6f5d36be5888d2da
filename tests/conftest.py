"""Shared test helpers."""
import numpy as np
import pytest


@pytest.fixture
def markov_tables():
    """``markov_tables(vocab, seed) -> (target, draft)`` transition tables [V, V]:
    Dirichlet target rows, draft rows = half target, half an independent Dirichlet row."""

    def make(vocab, seed):
        rng = np.random.default_rng(seed)
        target = rng.dirichlet(np.ones(vocab), size=vocab)
        draft = 0.5 * target + 0.5 * rng.dirichlet(np.ones(vocab), size=vocab)
        return target, draft

    return make
