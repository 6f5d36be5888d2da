"""``chansim simulate`` command line."""
import json

import numpy as np
import pytest
from scipy import stats

from chansim.cli import main

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.3, 0.3, 0.4])      # beta = 0.8


@pytest.fixture
def pair(tmp_path):
    np.save(tmp_path / "p.npy", P)
    np.save(tmp_path / "q.npy", Q)
    return str(tmp_path / "p.npy"), str(tmp_path / "q.npy")


def _run(capsys, *argv):
    rc = main(["simulate", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_output_has_required_fields(pair, capsys):
    rc, out, _ = _run(capsys, "--method", "sd", "--p", pair[0], "--q", pair[1], "--tree", "chain:4",
                      "--calls", "20000", "--seed", "3", "--json")
    assert rc == 0
    obj = json.loads(out)
    assert obj["method"] == "sd" and obj["tree"] == "chain:4" and obj["calls"] == 20000 and obj["seed"] == 3
    tpc = obj["tokens_per_call"]
    assert tpc["ci_low"] <= tpc["mean"] <= tpc["ci_high"]
    assert len(obj["acceptance_per_depth"]) == 4
    expected = (1 - 0.8 ** 5) / 0.2
    assert abs(tpc["mean"] - expected) < 6 * tpc["std_error"]


def test_emit_tokens_writes_the_stream(pair, tmp_path, capsys):
    out_file = tmp_path / "tokens.npy"
    rc, out, _ = _run(capsys, "--method", "ersd", "--p", pair[0], "--q", pair[1], "--tree", "branch:2,2",
                      "--calls", "20000", "--emit-tokens", str(out_file), "--json")
    assert rc == 0
    tokens = np.load(out_file)
    obj = json.loads(out)
    assert tokens.ndim == 1 and tokens.dtype.kind == "i"
    assert len(tokens) == round(obj["tokens_per_call"]["mean"] * obj["calls"])
    counts = np.bincount(tokens, minlength=3)
    assert stats.chisquare(counts, P * counts.sum()).pvalue > 1e-7


def test_table_output_and_same_seed_same_numbers(pair, capsys):
    args = ["--method", "specinfer", "--p", pair[0], "--q", pair[1], "--tree", "batch:3", "--calls", "3000"]
    rc, out1, _ = _run(capsys, *args)
    assert rc == 0 and "tokens per call" in out1 and "acceptance per depth" in out1
    rc, out2, _ = _run(capsys, *args, "--json")
    rc, out3, _ = _run(capsys, *args, "--json")
    a, b = json.loads(out2), json.loads(out3)
    assert a["tokens_per_call"]["mean"] == b["tokens_per_call"]["mean"]


def test_logits_and_markov_inputs(tmp_path, capsys):
    np.save(tmp_path / "zp.npy", np.log(P))
    np.save(tmp_path / "zq.npy", np.log(Q))
    rc, out, _ = _run(capsys, "--method", "ersd", "--p", str(tmp_path / "zp.npy"), "--q", str(tmp_path / "zq.npy"),
                      "--logits", "--temperature", "1.0", "--tree", "chain:2", "--calls", "500", "--json")
    assert rc == 0 and json.loads(out)["model"] == "iid"
    np.save(tmp_path / "tp.npy", np.tile(P, (3, 1)))
    np.save(tmp_path / "tq.npy", np.tile(Q, (3, 1)))
    rc, out, _ = _run(capsys, "--method", "spectr", "--p", str(tmp_path / "tp.npy"), "--q", str(tmp_path / "tq.npy"),
                      "--tree", "seq:3x2", "--calls", "500", "--streams", "5", "--json")
    obj = json.loads(out)
    assert rc == 0 and obj["model"] == "markov" and obj["streams"] == 5


@pytest.mark.parametrize("extra,message", [
    (["--tree", "batch:2"], "runs on a chain"),
    (["--tree", "chain:4", "--calls", "0"], "calls must be a positive integer"),
    (["--tree", "tree:4"], "bad tree spec"),
    (["--tree", "chain:2", "--temperature", "2"], "temperature applies to logits only"),
    (["--tree", "chain:2", "--rho", "2"], "--rho applies to --method spectr only"),
])
def test_errors_are_reported_cleanly(pair, capsys, extra, message):
    rc, _, err = _run(capsys, "--method", "sd", "--p", pair[0], "--q", pair[1], *extra)
    assert rc == 2 and message in err


def test_vocabulary_mismatch_and_unknown_method(pair, tmp_path, capsys):
    np.save(tmp_path / "q4.npy", [0.25] * 4)
    rc, _, err = _run(capsys, "--method", "sd", "--p", pair[0], "--q", str(tmp_path / "q4.npy"), "--tree", "chain:1")
    assert rc == 2 and "vocabulary mismatch" in err
    with pytest.raises(SystemExit):
        main(["simulate", "--method", "beam", "--p", pair[0], "--q", pair[1], "--tree", "chain:1"])
    assert "invalid choice: 'beam'" in capsys.readouterr().err
