"""Prediction of deterministic drafts from a log (chansim.logs.lookup_predict) against runs of the decoder."""
import numpy as np
import pytest

from chansim.drafts import deterministic_generate
from chansim.logs.format import read_log, write_log
from chansim.logs.lookup_predict import (choose_draft, lookup_log_calls, lookup_metrics, lookup_wall_speedup,
                                         predict_lookup)
from chansim.logs.noise_keys import sequence_key
from chansim.sampling.races import keyed_exponential, race_winner
from chansim.sampling.sources import MarkovSource
from chansim.verify import GeneratorNoise, KeyedNoise


def _copy_markov(vocab=4):
    t = np.full((vocab, vocab), 0.1)
    t[np.arange(vocab), (np.arange(vocab) + 1) % vocab] = 0.8
    return t / t.sum(1, keepdims=True)


def _markov_log(path, n_seq, length, seed=3, vocab=4):
    """A log of race-sampled Markov text (keys per sequence, absolute positions), as `llm log` writes it."""
    T = _copy_markov(vocab)
    rng = np.random.default_rng(seed)
    prompts, tokens, lps = [], [], []
    for i in range(n_seq):
        prompt = rng.integers(0, vocab, 6).tolist()
        seq = list(prompt)
        rows = []
        for _ in range(length):
            p = T[seq[-1]]
            rows.append(np.log(p))
            noise = keyed_exponential(sequence_key(seed, i), np.int64(len(seq)), np.arange(vocab))
            seq.append(int(race_winner(noise, p)))
        prompts.append(prompt)
        tokens.append(seq[len(prompt):])
        lps.append(np.array(rows))
    write_log(path, prompts=prompts, tokens=tokens, target_log_probs=lps, draft_log_probs=lps,
              metadata={"seed": seed, "noise_key": "per-sequence", "temperature": 1.0})
    return read_log(path), MarkovSource(T)


@pytest.fixture(scope="module")
def markov_log(tmp_path_factory):
    return _markov_log(tmp_path_factory.mktemp("lookup") / "m.npz", n_seq=120, length=24)


def test_ersd_with_log_seed_reproduces_the_predicted_calls(markov_log):
    run, target = markov_log
    calls = lookup_log_calls(run, "lookup:3")
    for i in range(8):
        out = deterministic_generate("ersd", "lookup:3", target, len(run.tokens[i]),
                                     KeyedNoise(sequence_key(3, i)), prefix=run.prompts[i])
        assert out.tokens.tolist() == run.tokens[i].tolist()
        assert out.proposed.tolist() == calls["proposed"][i].tolist()


@pytest.mark.parametrize("draft", ["lookup:3", "ngram:4:2"])
def test_predicted_tokens_per_call_matches_sd_runs(markov_log, draft):
    """sd draws fresh text: its tokens per call over 120 runs must agree with the log's prediction
    (difference within 4 combined standard errors; both are estimates of the same expectation)."""
    run, target = markov_log
    row = predict_lookup(run, [draft])[0]
    rng = np.random.default_rng(7)
    toks, calls = [], []
    for i in range(run.n_sequences):
        out = deterministic_generate("sd", draft, target, len(run.tokens[i]), GeneratorNoise(rng),
                                     prefix=run.prompts[i])
        toks.append(out.tokens.size)
        calls.append(out.calls)
    measured = sum(toks) / sum(calls)
    pred = row["tokens_per_call"]
    se_pred = (pred["ci_high"] - pred["ci_low"]) / (2 * 1.96)
    c = np.asarray(calls, float)
    se_meas = measured * np.std(c, ddof=1) / c.mean() / np.sqrt(c.size)
    assert abs(measured - pred["mean"]) < 4 * np.hypot(se_pred, se_meas), (measured, pred)
    assert row["tokens_per_call"]["mean"] > 1.5                                # copying pays on this text
    assert abs(row["acceptance_z"]) < 4                                        # logged text is target text
    assert row["reached_nodes"] >= row["realised_accepted"] > 0


def test_acceptance_check_catches_text_that_is_not_target_text(tmp_path):
    """A log whose text always follows the draft's favourite path (not target samples) gives a huge z."""
    T = _copy_markov()
    prompts = [[0, 1, 2, 3, 0, 1]] * 20
    tokens = [[(2 + t) % 4 for t in range(20)]] * 20          # always the cycle: the lookup draft always right
    lps = [np.log(T[[([1] + tk)[t] for t in range(20)]]) for tk in tokens]
    write_log(tmp_path / "bad.npz", prompts=prompts, tokens=tokens, target_log_probs=lps, draft_log_probs=lps,
              metadata={"temperature": 1.0})
    row = predict_lookup(read_log(tmp_path / "bad.npz"), ["lookup:4"])[0]
    assert row["acceptance_z"] > 6


def test_metrics_and_wall_speedup_by_hand():
    calls = {"draft": "lookup:3", "k": 3, "proposed": [np.array([3, 0, 3]), np.array([2])],
             "accepted": [np.array([3, 0, 1]), np.array([0])], "tokens": [7, 1], "propose_seconds": 0.0,
             "proposals": 4}
    m = lookup_metrics(calls)
    assert m["calls"] == 4 and m["drafts"] == 3 and m["proposal_rate"] == 0.75
    assert m["mean_acceptance_length"] == pytest.approx(1 + 4 / 3)
    assert m["per_position_acceptance"] == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert m["conditional_acceptance"] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert m["draft_efficiency"] == pytest.approx(4 / 8)
    costs = {"call": {1: [1.0], 3: [1.5], 4: [2.0]}, "propose": 0.1}
    s = lookup_wall_speedup(calls, costs)
    spent = (2.0 + 1.0 + 2.0) + 1.5 + 4 * 0.1
    assert s["mean"] == pytest.approx(8 * 1.0 / spent)
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]
    with pytest.raises(ValueError, match="no measured cost"):
        lookup_wall_speedup(calls, {"call": {1: [1.0]}})


def test_choose_draft_picks_the_best_predicted(markov_log):
    run, _ = markov_log
    costs = {"call": {n: [1.0 + 0.4 * (n - 1)] for n in range(1, 10)}, "propose": 0.0}
    rows = predict_lookup(run, ["lookup:1", "lookup:4", "lookup:8"], costs=costs)
    best = choose_draft(rows)
    assert best["wall_speedup"]["mean"] == max(r["wall_speedup"]["mean"] for r in rows)
    with pytest.raises(ValueError):
        choose_draft(predict_lookup(run, ["lookup:1"]))


def test_cli_lookup_predicts_from_a_log_with_given_costs(markov_log, tmp_path, capsys):
    import json

    from chansim.cli import main

    run, _ = markov_log
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps({"call": {str(n): [1.0 + 0.3 * (n - 1)] for n in range(1, 6)}, "propose": 0.0}))
    out = tmp_path / "pred.json"
    assert main(["llm", "lookup", "--log", str(run.path), "--costs", str(costs), "--drafts", "lookup:2,lookup:4",
                 "--choose", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["chosen"] in ("lookup:2", "lookup:4") and f"chosen: {saved['chosen']}" in text
    assert [r["draft"] for r in saved["rows"]] == ["lookup:2", "lookup:4"]
    for argv, message in ((["--costs", str(costs), "--out", str(out)], "already exists"),
                          (["--choose"], "needs call costs"), (["--drafts", "lookahead:3"], "unknown draft")):
        assert main(["llm", "lookup", "--log", str(run.path)] + argv) == 2
        assert message in capsys.readouterr().err
