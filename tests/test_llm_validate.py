"""Validation of predicted vs measured tokens per call: interval helpers (no model) and a tiny real run."""
import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.commands.llm_validate import _split_trees
from chansim.figures.fig6_real_models import load_results
from chansim.llm import models as llm_models
from chansim.llm.validate import bootstrap_ratio_interval, format_table, ratio_interval, results_document
from conftest import make_real_log


# ---------------------------------------------------------------- interval helpers (no model)
def test_ratio_interval_point_and_width():
    r = ratio_interval([10, 12, 9, 11, 10], [4, 5, 4, 5, 4])
    assert r["mean"] == pytest.approx(52 / 22)
    assert r["interval"] == "sequences" and r["ci_low"] < r["mean"] < r["ci_high"]
    wide = ratio_interval([10, 12, 9, 11, 10], [4, 5, 4, 5, 4], confidence=0.99)
    assert wide["ci_high"] - wide["ci_low"] > r["ci_high"] - r["ci_low"]


def test_ratio_interval_few_sequences_uses_calls():
    r = ratio_interval([6, 6], [3, 3])
    assert r["interval"] == "none" and r["ci_low"] == r["ci_high"] == 2.0
    r = ratio_interval([6, 6], [3, 3], call_tokens=[1, 3, 2, 2, 3, 1])
    assert r["interval"] == "calls" and r["ci_low"] < 2.0 < r["ci_high"]
    # the call term is a floor also with many sequences that happen to agree exactly
    r = ratio_interval([6] * 5, [3] * 5, call_tokens=[1, 3] * 8)
    assert r["interval"] == "calls" and r["ci_high"] > 2.0
    # every call gave 2 tokens: Clopper-Pearson-style interval instead of a point
    r = ratio_interval([6, 6], [3, 3], call_tokens=[2] * 6, max_call_tokens=3)
    assert r["interval"] == "no-spread" and r["ci_low"] < 2.0 < r["ci_high"] <= 3.0


def test_ratio_interval_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        ratio_interval([1, 2], [1])
    with pytest.raises(ValueError, match="positive"):
        ratio_interval([1, 2], [1, 0])
    with pytest.raises(ValueError, match="confidence"):
        ratio_interval([1, 2], [1, 1], confidence=1.5)


def test_ratio_interval_coverage():
    """95 % intervals over 8 sequences of a two-level model cover the true ratio ~95 % of the time."""
    rng = np.random.default_rng(0)
    hits, reps, true = 0, 400, None
    for _ in range(reps):
        accept = rng.uniform(0.6, 0.9, size=8)                   # per-sequence text difficulty
        calls = np.full(8, 20)
        per_call = 1 + rng.binomial(3, accept[:, None], size=(8, 20))   # tokens of each call
        tokens = per_call.sum(1)
        r = ratio_interval(tokens, calls, 0.95, call_tokens=per_call.ravel())
        true = 1 + 3 * 0.75
        hits += r["ci_low"] <= true <= r["ci_high"]
    assert 0.88 <= hits / reps <= 0.995


def test_bootstrap_ratio_interval():
    r = bootstrap_ratio_interval([10, 12, 9, 11], [4, 5, 4, 5], resamples=500)
    assert r["ci_low"] <= r["mean"] <= r["ci_high"] and r["interval"] == "bootstrap"
    assert bootstrap_ratio_interval([4], [2])["ci_low"] == 2.0


def test_split_trees():
    assert _split_trees("chain:1,batch:4,branch:2,2") == ["chain:1", "batch:4", "branch:2,2"]
    assert _split_trees("branch:3/2,chain:2") == ["branch:3,2", "chain:2"]
    with pytest.raises(ValueError):
        _split_trees(",")


def _row(method, tree, k, pred, meas):
    iv = lambda m: {"mean": m, "ci_low": m - 0.1, "ci_high": m + 0.1}  # noqa: E731
    return {"method": method, "tree": tree, "k": k, "predicted": iv(pred) if pred else None, "measured": iv(meas),
            "target_calls": 10, "target_forwards": 10, "draft_forwards": 20, "wall_seconds": 1.0,
            "ratio": meas / pred if pred else None}


def test_results_document_matches_figure_6(tmp_path):
    result = {"rows": [_row("sd", "chain:2", 2, 2.3, 2.25), _row("spectr", "seq:2x2", 4, None, 2.5)],
              "hf_assisted": [], "skipped": [], "target": "m.gguf", "draft": "target minus layers [15]",
              "device": "cpu", "temperature": 1.0, "seed": 0, "prompts": 2, "positions": 32, "confidence": 0.95,
              "overlap": 1, "compared": 1, "worst_ratio": 2.25 / 2.3, "worst_setting": "sd chain:2"}
    doc = results_document(result)
    assert [r["method"] for r in doc["rows"]] == ["sd"] and len(doc["unpredicted_rows"]) == 1
    f = tmp_path / "llm_validation.json"
    f.write_text(json.dumps(doc))
    loaded = load_results(f)
    assert loaded["rows"][0]["predicted"]["mean"] == 2.3 and loaded["meta"]["target"] == "m.gguf"
    table = format_table(result)
    assert "sd" in table and "1/1 predicted and measured intervals overlap" in table


# ---------------------------------------------------------------- errors (no model loaded)
def test_chansim_gguf_env_overrides(monkeypatch, tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    monkeypatch.setenv("CHANSIM_GGUF", str(f))
    assert llm_models.default_gguf_path() == f.resolve()
    monkeypatch.setenv("CHANSIM_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="CHANSIM_GGUF"):
        llm_models.default_gguf_path()


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        llm_models.load_pair(target=tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_cli_missing_log(tmp_path, capsys):
    assert main(["llm", "validate", "--log", str(tmp_path / "none.npz"), "--out", "-"]) == 2
    assert "none.npz" in capsys.readouterr().err


def test_cli_unknown_method(tmp_path, capsys):
    assert main(["llm", "validate", "--log", str(tmp_path / "x.npz"), "--methods", "beam", "--out", "-"]) == 2
    assert "unknown method 'beam'" in capsys.readouterr().err


# ---------------------------------------------------------------- a tiny real log (SmolLM2, CPU)
@pytest.fixture(scope="module")
def tiny_log(default_pair, tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "tiny.npz"
    return default_pair, make_real_log(default_pair, path, prompts=3, new_tokens=10, temperature=1.0, seed=5)


@pytest.mark.llm
def test_predicted_and_measured_agree_on_tiny_log(tiny_log):
    from chansim.llm.validate import validate

    pair, run = tiny_log
    res = validate(run, pair, ["sd", "specinfer", "ersd"], ["chain:2", "batch:2"], progress=False)
    rows = {(r["method"], r["tree"]): r for r in res["rows"]}
    assert set(rows) == {("sd", "chain:2"), ("specinfer", "batch:2"), ("ersd", "chain:2"), ("ersd", "batch:2")}
    assert {s["method"] for s in res["skipped"]} == {"sd", "specinfer"}   # sd on a batch; specinfer chain = sd
    for r in rows.values():
        assert r["tokens"] == 30 and r["sequences"] == 3
        assert r["overlap"], r                                    # deterministic (fixed seeds)
        assert 0.7 < r["ratio"] < 1.4
    # ERSD with the log's seed regenerates the logged continuations exactly
    assert rows["ersd", "chain:2"]["log_path_matches"] == 3 == rows["ersd", "batch:2"]["log_path_matches"]
    assert res["compared"] == 4 and res["worst_ratio"] is not None


@pytest.mark.llm
def test_cli_validate_json_smoke(tiny_log, tmp_path, capsys):
    _, run = tiny_log
    out = tmp_path / "data" / "llm_validation.json"
    rc = main(["llm", "validate", "--log", str(run.path), "--methods", "ersd", "--trees", "batch:2",
               "--new-tokens", "6", "--json", "--out", str(out), "--quiet"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    for key in ("method", "tree", "k", "predicted", "measured", "target_calls", "wall_seconds"):
        assert key in row
    assert row["method"] == "ersd" and row["tree"] == "batch:2" and row["k"] == 2 and row["tokens"] == 18
    for key in ("predicted", "measured"):
        assert row[key]["ci_low"] <= row[key]["mean"] <= row[key]["ci_high"]
    assert load_results(out)["rows"][0]["method"] == "ersd"      # what figure 6 reads


@pytest.mark.llm
def test_hf_assisted_side_by_side(tiny_log):
    import torch

    from chansim.llm.scoring import TreeScorer
    from chansim.llm.validate import hf_assisted_generate, hf_draft_model

    pair, run = tiny_log
    target = pair.target.model
    draft = hf_draft_model(pair)
    assert len(draft.model.layers) == 29 and len(target.model.layers) == 30      # the target keeps its layers
    assert draft.model.layers[0] is target.model.layers[0]                      # no weight copied
    ids = run.prompts[0]
    with torch.no_grad():
        hf = draft(torch.tensor([ids]), use_cache=False).logits[0, -1].double().numpy()
    ours = TreeScorer(pair.draft).tree_logits(ids, [-1], [-1])[0].double().numpy()
    np.testing.assert_allclose(hf, ours, rtol=0, atol=2e-3)                     # the same draft network
    res = hf_assisted_generate(pair, run.prompts[:2], [6, 6], 1.0, 2, seed=0)
    assert res["method"] == "hf-assisted" and res["tree"] == "chain:2" and res["tokens"] == 12
    assert 2 <= res["target_calls"] <= 12 and 1 <= res["measured"]["mean"] <= 3
    assert res["measured"]["interval"] in ("calls", "no-spread")              # per-call counts were read
    assert not target._forward_pre_hooks and not target._forward_hooks        # hooks removed
    assert target.generation_config.eos_token_id == 2                          # config restored
