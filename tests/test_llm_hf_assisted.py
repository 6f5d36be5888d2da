"""transformers' assisted generation beside plain generate: speed-up arithmetic (no model) and a tiny real run."""
import numpy as np
import pytest

from chansim.llm.hf_assisted import _tokens_per_call, format_hf_speedups
from chansim.llm.wallclock import format_wallclock, wallclock_rows
from conftest import ar_and_sd_rows


def _costs():
    return {"draft": {1: [0.010] * 5}, "target": {"chain:0": [0.020] * 5, "chain:2": [0.024] * 5},
            "context": 64, "repeats": 5}


def _rows():
    ar, sd = ar_and_sd_rows((2.2, 2.1, 2.3))
    hf = {"method": "hf-assisted", "tree": "chain:2", "k": 2, "wall_seconds": 3.0, "tokens": 400,
          "measured": {"mean": 2.1}, "predicted": None,
          "wall_speedup": {"mean": 1.25, "ci_low": 1.1, "ci_high": 1.4}}
    return {"rows": [ar, sd], "hf_assisted": [hf]}


def test_hf_row_keeps_its_own_baseline_and_sd_prediction():
    rows = {r["method"]: r for r in wallclock_rows(_rows(), _costs())}
    assert rows["sd"]["baseline"] == "chansim autoregressive"
    assert rows["hf-assisted"]["baseline"] == "transformers generate"
    assert rows["hf-assisted"]["measured"] == {"mean": 1.25, "ci_low": 1.1, "ci_high": 1.4}
    # predicted from sd's predicted tokens per call on the same chain: 2.2 x 20 ms / (2 x 10 + 24 ms)
    assert rows["hf-assisted"]["predicted"]["mean"] == pytest.approx(2.2 * 0.020 / 0.044)
    assert rows["hf-assisted"]["predicted"] == rows["sd"]["predicted"]
    text = format_wallclock(list(rows.values()), _costs())
    assert "transformers' assisted generate over its plain generate" in text


def test_tokens_per_call_from_call_positions():
    assert _tokens_per_call([0, 5, 7], 5, 9).tolist() == [1, 2, 1]
    assert _tokens_per_call([0, 5, 5], 5, 9) is None          # a call that committed nothing: inconsistent
    assert _tokens_per_call([3, 5], 5, 7) is None             # the first call must pre-fill from 0
    assert _tokens_per_call([], 5, 7) is None


def test_format_hf_speedups():
    gen = {"tokens": 40, "wall_seconds": 4.0}
    hf = {"tree": "chain:2", "tokens": 40, "wall_seconds": 2.0, "measured": {"mean": 2.0},
          "wall_speedup": {"mean": 2.0, "ci_low": 1.5, "ci_high": 2.5}}
    text = format_hf_speedups(gen, [hf])
    assert "10.0 tokens/s" in text and "2.000 [1.500, 2.500]" in text
    assert format_hf_speedups(gen, []) == ""


@pytest.fixture(scope="module")
def pair_and_prompts(default_pair):
    from chansim.llm.measure import pydoc_prompts

    return default_pair, pydoc_prompts(default_pair.tokenizer, 3, 16)


@pytest.mark.llm
def test_side_by_side_on_real_pair(pair_and_prompts):
    from chansim.llm.hf_assisted import hf_side_by_side

    pair, prompts = pair_and_prompts
    target = pair.target.model
    config = target.generation_config
    res = hf_side_by_side(pair, prompts, [5, 5, 5], 1.0, [1, 2], seed=0, warmup=False)
    gen = res["generate"]
    assert gen["method"] == "hf-generate" and gen["tokens"] == 15
    assert gen["target_calls"] == 15 and gen["draft_forwards"] == 0          # one target call per token
    assert gen["measured"]["mean"] == 1.0
    assert [r["tree"] for r in res["assisted"]] == ["chain:1", "chain:2"]
    for r, k in zip(res["assisted"], (1, 2)):
        assert r["tokens"] == 15 and 1 <= r["measured"]["mean"] <= k + 1
        assert r["target_calls"] <= 15 and r["draft_forwards"] >= r["target_calls"] - 3
        s = r["wall_speedup"]
        walls = np.array(gen["sequence_wall_seconds"]).sum() / np.array(r["sequence_wall_seconds"]).sum()
        assert s["mean"] == pytest.approx(walls) and s["ci_low"] <= s["mean"] <= s["ci_high"]
    assert not target._forward_pre_hooks and not target._forward_hooks        # hooks removed
    assert target.generation_config is config                                 # config restored


@pytest.mark.llm
def test_side_by_side_bad_input(pair_and_prompts):
    from chansim.llm.hf_assisted import HFGenerator, hf_side_by_side

    pair, prompts = pair_and_prompts
    with pytest.raises(ValueError, match="assistant_tokens"):
        hf_side_by_side(pair, prompts, [5, 5, 5], 1.0, [0])
    with pytest.raises(ValueError, match="one length per prompt"):
        hf_side_by_side(pair, prompts, [5], 1.0, [1])
    with pytest.raises(ValueError, match="temperature"):
        HFGenerator(pair, 0.0)
    with pytest.raises(RuntimeError, match="inside"):
        HFGenerator(pair, 1.0).run(prompts[0], 2, 0)


@pytest.mark.llm
def test_cli_validate_cost_auto_prints_wall_clock_with_hf_beside(default_pair, tmp_path, capsys):
    """`llm validate --cost auto --hf-assisted` adds the autoregressive row and prints both speed-up tables."""
    import json

    from conftest import make_real_log

    from chansim.cli import main

    run = make_real_log(default_pair, tmp_path / "w.npz", prompts=2, new_tokens=6, temperature=1.0, seed=0,
                        prompt_tokens=16)
    out = tmp_path / "w.json"
    assert main(["--quiet", "llm", "validate", "--log", str(run.path), "--methods", "sd", "--trees", "chain:1",
                 "--cost", "auto", "--hf-assisted", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "predicted wall speed-up" in text and "wall speed-up over generate" in text
    doc = json.loads(out.read_text())
    assert doc["hf_generate"]["method"] == "hf-generate"
    rows = {(r["method"], r["baseline"]) for r in doc["wallclock"]["rows"]}
    assert rows == {("sd", "chansim autoregressive"), ("hf-assisted", "transformers generate")}
    assert any(r["method"] == "autoregressive" for r in doc["rows"])     # --cost auto ran it
