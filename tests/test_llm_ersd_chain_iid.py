"""ERSD on a chain in the i.i.d. model: its closed form (``ERSD.chain_tokens_batch``, used by iid_prediction) equals the exact rank-law value."""
import numpy as np
import pytest

from chansim.sampling.races import er_acceptance
from chansim.theory.expectations import expected_tokens
from chansim.inputs.trees import chain
from chansim.verify.registry import get_method
from chansim.verify.sd import sd_chain_tokens


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_closed_form_equals_exact_small_vocabulary(depth):
    rng = np.random.default_rng(depth)
    p = rng.dirichlet(np.full(6, 0.6), size=5) ** (1 / 0.7)          # a law at T = 0.7
    p /= p.sum(-1, keepdims=True)
    q = 0.5 * p + 0.5 * rng.dirichlet(np.full(6, 0.6), size=5)
    fast = get_method("ersd").chain_tokens_batch(p, q, depth)
    for j in range(5):
        ref = expected_tokens("ersd", chain(depth), p[j], q[j])
        assert ref.exact and fast[j] == pytest.approx(ref.value, abs=1e-9)
    # the broken variant (sd's acceptance in place of alpha_ER) is not the ERSD value
    wrong = sd_chain_tokens(np.minimum(p, q).sum(-1), depth)
    assert np.all(np.abs(wrong - fast) > 1e-3)
    assert np.all(er_acceptance(p, q) < np.minimum(p, q).sum(-1))


def test_closed_form_only_where_it_holds():
    p = np.full((2, 4), 0.25)
    assert get_method("sd").chain_tokens_batch(p, p, 2) is None              # no batched closed form
    assert get_method("ersd").chain_tokens_batch(p, p, 0) is None            # nothing drafted
    greedy = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    assert get_method("ersd").chain_tokens_batch(greedy, p, 2) is None       # zeros: the rank law decides
