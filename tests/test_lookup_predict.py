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


def _synthetic_measured(costs, drafts, o, v, seed=0, prompts=8, tokens=40):
    """Runs as measure_lookup_speedups writes them, timed by the cost model with overheads (o, v) x c(1)
    and a per-prompt load factor lambda_i (both runs of prompt i slowed alike)."""
    rng = np.random.default_rng(seed)
    c = {n: float(np.median(x)) for n, x in costs["call"].items()}
    ar, groups = [], {d: [] for d in drafts}
    for i in range(prompts):
        lam = float(rng.uniform(0.6, 1.8))
        ar.append({"wall_seconds": lam * tokens * c[1], "n_tokens": tokens, "calls": tokens})
        for d, k in drafts.items():
            proposed = rng.integers(0, k + 1, size=int(rng.integers(tokens // (k + 1), tokens)))
            wall = lam * sum(c[int(m) + 1] + (o + v * m) * c[1] for m in proposed)
            groups[d].append({"wall_seconds": wall, "n_tokens": tokens, "proposed": proposed.tolist()})
    runs = [{"method": "autoregressive", "draft": "-", "runs": ar}]
    runs += [{"method": "sd", "draft": d, "runs": rs} for d, rs in groups.items()]
    return {"runs": runs}


def test_calibrated_overheads_are_recovered_and_change_the_choice():
    from chansim.logs.lookup_predict import calibrate_overheads

    costs = {"call": {n: [0.1 * (1 + 0.15 * (n - 1))] for n in range(1, 10)}, "propose": 0.0}
    measured = _synthetic_measured(costs, {"lookup:2": 2, "lookup:8": 8}, o=0.25, v=0.03)
    cal = calibrate_overheads(costs, measured)
    assert cal["call_overhead"] == pytest.approx(0.25, abs=1e-9)
    assert cal["token_overhead"] == pytest.approx(0.03, abs=1e-9)
    assert cal["calibration"]["median_abs_rel_error_after"] < 1e-9 < cal["calibration"]["median_abs_rel_error_before"]
    # no overhead in the runs: nothing is invented
    flat = calibrate_overheads(costs, _synthetic_measured(costs, {"lookup:2": 2}, o=0.0, v=0.0))
    assert flat["call_overhead"] == pytest.approx(0, abs=1e-9) and flat["token_overhead"] == pytest.approx(0, abs=1e-9)
    # the rule: a short draft making many calls wins on c(n) alone (30 x 0.115 s < 16 x 0.22 s); with a
    # per-call overhead of 0.25 c(1) the long draft making fewer calls is faster, and the prediction says so
    short = {"proposed": [np.array([1] * 30)], "tokens": [45], "propose_seconds": 0.0, "proposals": 30}
    long = {"proposed": [np.array([8] * 16)], "tokens": [45], "propose_seconds": 0.0, "proposals": 16}
    rows = lambda cst: [{"draft": "short", "wall_speedup": lookup_wall_speedup(short, cst), "proposed_tokens": 30},
                        {"draft": "long", "wall_speedup": lookup_wall_speedup(long, cst), "proposed_tokens": 128}]
    overhead = calibrate_overheads(costs, _synthetic_measured(costs, {"lookup:2": 2, "lookup:8": 8}, o=0.25, v=0.0))
    assert overhead["call_overhead"] == pytest.approx(0.25) and overhead["token_overhead"] == pytest.approx(0, abs=1e-9)
    assert choose_draft(rows(costs))["draft"] == "short"
    assert choose_draft(rows(overhead))["draft"] == "long"
    assert lookup_wall_speedup(short, costs)["mean"] == pytest.approx(45 * 0.1 / (30 * 0.115))
    assert lookup_wall_speedup(short, cal)["mean"] == pytest.approx(45 * 0.1 / (30 * (0.115 + (0.25 + 0.03) * 0.1)))
    assert lookup_wall_speedup(long, overhead)["mean"] == pytest.approx(45 * 0.1 / (16 * (0.22 + 0.025)))
    with pytest.raises(ValueError, match="autoregressive baseline"):
        calibrate_overheads(costs, {"runs": measured["runs"][1:]})
    with pytest.raises(ValueError, match="must be a number >= 0"):
        lookup_wall_speedup(short, dict(costs, call_overhead=-1.0))


def test_choose_by_low_end_prefers_the_safer_of_two_close_predictions():
    rows = [{"draft": "a", "proposed_tokens": 400, "wall_speedup": {"mean": 1.56, "ci_low": 1.05, "ci_high": 2.1}},
            {"draft": "b", "proposed_tokens": 240, "wall_speedup": {"mean": 1.50, "ci_low": 1.30, "ci_high": 1.7}},
            {"draft": "c", "proposed_tokens": 100, "wall_speedup": None}]
    assert choose_draft(rows)["draft"] == "a"
    assert choose_draft(rows, by="low")["draft"] == "b"
    tie = [dict(rows[0], wall_speedup=rows[1]["wall_speedup"]), rows[1]]
    assert choose_draft(tie)["draft"] == "b"                     # equal predictions: fewer proposed tokens
    with pytest.raises(ValueError, match="'mean' or 'low'"):
        choose_draft(rows, by="median")


def test_cli_bound_log_predicts_and_chooses_drafts_as_llm_lookup(markov_log, tmp_path, capsys):
    import json

    from chansim.cli import main

    run, _ = markov_log
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps({"call": {str(n): [1.0 + 0.3 * (n - 1)] for n in range(1, 6)}, "propose": 0.0}))
    common = ["--costs", str(costs), "--drafts", "lookup:1,lookup:2,lookup:4", "--choose"]
    assert main(["llm", "lookup", "--log", str(run.path)] + common) == 0
    lookup_text = capsys.readouterr().out
    argv = ["bound", "--log", str(run.path), "--k", "1,2", "--method", "sd", "--jobs", "1", "--trials", "50"]
    assert main(argv + common) == 0
    text = capsys.readouterr().out
    chosen = [line for line in lookup_text.splitlines() if line.startswith("chosen: ")]
    assert chosen and chosen[0] in text                          # the same choice, the same predicted speed-up
    assert "sd" in text.split("deterministic drafts")[0]         # the usual log report is printed beside it
    for line in lookup_text.splitlines()[2:6]:                   # the same table rows
        assert line in text
    assert main(argv + common + ["--json", "--choose-by", "low"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["choose_by"] == "low" and [r["draft"] for r in out["drafts"]] == ["lookup:1", "lookup:2", "lookup:4"]
    best_low = max(out["drafts"], key=lambda r: r["wall_speedup"]["ci_low"])["draft"]
    assert out["chosen"] == best_low and out["log_report"]["sequences"] == run.n_sequences
    # clear errors, before any log work
    bad = {"notjson.json": "nope", "nocall.json": "[1, 2]", "badsize.json": '{"call": {"x": [1.0]}}',
           "negative.json": '{"call": {"1": [-1.0]}}', "noc1.json": '{"call": {"2": [0.1]}}'}
    messages = {"notjson.json": "not JSON", "nocall.json": "holds no 'call' costs", "badsize.json": "positive integers",
                "negative.json": "positive seconds", "noc1.json": "no cost c(1)"}
    for name, body in bad.items():
        (tmp_path / name).write_text(body)
        assert main(argv + ["--costs", str(tmp_path / name), "--choose"]) == 2
        assert messages[name] in capsys.readouterr().err
    p = tmp_path / "p.npy"
    np.save(p, np.array([0.5, 0.5]))
    for extra, message in ((["--choose"], "needs call costs"), (["--drafts", " "], "--drafts is empty"),
                           (["--cost", "0.5"], "do not apply to --log"), (["--drafts", "lookahead:2"], "unknown draft"),
                           (["--drafts", "lookup:2", "--top-n", "2"], "do not combine")):
        assert main(argv + extra) == 2
        assert message in capsys.readouterr().err
    for extra, message in ((["--drafts", "lookup:2"], "--drafts applies to --log only"),
                           (["--cost", "auto"], "--cost auto applies to --log only"),
                           (["--costs", str(costs), "--choose"], "--costs, --choose apply to --log only")):
        assert main(["bound", "--p", str(p), "--q", str(p)] + extra) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bound", "--p", str(p), "--q", str(p), "--cost", "fast"])
    assert "must be a number or 'auto'" in capsys.readouterr().err
    assert main(argv + ["--drafts", "lookup:2", "--threads", "1"]) == 2
    assert "--threads applies with --cost auto only" in capsys.readouterr().err


def test_cli_bound_refuses_drafts_on_a_top_n_log(markov_log, monkeypatch, capsys):
    import chansim.logs.truncated as truncated
    from chansim.cli import main

    run, _ = markov_log
    monkeypatch.setattr(truncated, "is_truncated_log", lambda path: True)
    assert main(["bound", "--log", str(run.path), "--drafts", "lookup:2"]) == 2
    assert "need a full log" in capsys.readouterr().err
