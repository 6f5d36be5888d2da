"""``chansim bound`` end to end: JSON keys, batch files, and clear errors on bad files."""
import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.inputs.distributions import synthetic_pair
from chansim.theory import speedup_report


@pytest.fixture()
def files(tmp_path):
    p, q = synthetic_pair("noisy", 10, 1.0, n=4, seed=1)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "p1.npy", p[0])
    np.save(tmp_path / "q1.npy", q[0])
    return tmp_path, p, q


def _run(capsys, *argv):
    rc = main(["bound", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_keys_single_pair(files, capsys):
    d, p, q = files
    rc, out, _ = _run(capsys, "--p", str(d / "p1.npy"), "--q", str(d / "q1.npy"), "--k", "1,2,8", "--json",
                      "--cost", "0.1")
    assert rc == 0
    obj = json.loads(out)
    for key in ("kl_nats", "kl_bits", "tv", "alpha_sd", "alpha_er", "rank_entropy_nats", "methods", "ersd_bound",
                "asymptote"):
        assert key in obj
    assert obj["ersd_bound"]["k"] == [1, 2, 8] and len(obj["ersd_bound"]["value"]) == 3
    assert "bound" not in obj                       # the bound is named for what it bounds (issue 21)
    assert np.isclose(obj["alpha_sd"], np.minimum(p[0], q[0]).sum())
    for name, entry in obj["methods"].items():
        assert entry["k"] == [1, 2, 8] and len(entry["tokens_per_call"]) == 3
        assert "speedup" in entry
    ersd = obj["methods"]["ersd"]["tokens_per_call"]
    assert all(t <= b + 1e-9 for t, b in zip(ersd, obj["ersd_bound"]["value"]))
    for name, entry in obj["methods"].items():          # every value sits in its interval
        for v, iv in zip(entry["tokens_per_call"], entry["interval"]):
            assert v is None or iv is None or iv[0] - 1e-12 <= v <= iv[1] + 1e-12


def test_batch_average_and_per_position(files, capsys):
    d, p, q = files
    rc, out, _ = _run(capsys, "--p", str(d / "p.npy"), "--q", str(d / "q.npy"), "--k", "1,4", "--json",
                      "--per-position", "--method", "sd,ersd", "--jobs", "1")
    obj = json.loads(out)
    assert rc == 0 and obj["positions"] == 4 and len(obj["per_position"]) == 4
    assert set(obj["methods"]) == {"sd", "ersd"}
    mean_tv = np.mean([r["tv"] for r in obj["per_position"]])
    assert np.isclose(obj["tv"], mean_tv)
    single = speedup_report(p[2], q[2], k=[1, 4], methods=["sd", "ersd"])
    assert np.isclose(obj["per_position"][2]["methods"]["ersd"]["tokens_per_call"][1],
                      single.methods["ersd"]["tokens_per_call"][1])


def test_table_and_plot(files, capsys, tmp_path):
    d, _, _ = files
    out_png = tmp_path / "b.png"
    rc, out, _ = _run(capsys, "--p", str(d / "p1.npy"), "--q", str(d / "q1.npy"), "--tree", "batch",
                      "--k", "1,2", "--plot", str(out_png))
    assert rc == 0 and "tokens per target call" in out and out_png.stat().st_size > 0


def test_logits_and_temperature(tmp_path, capsys):
    z = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    np.save(tmp_path / "zp.npy", z)
    np.save(tmp_path / "zq.npy", z[::-1])
    rc, out, _ = _run(capsys, "--p", str(tmp_path / "zp.npy"), "--q", str(tmp_path / "zq.npy"), "--logits",
                      "--temperature", "0.7", "--json", "--k", "1")
    assert rc == 0 and json.loads(out)["positions"] == 2


@pytest.mark.parametrize("problem,match", [
    ("vocab", "vocabulary mismatch"),
    ("nan", "NaN"),
    ("unnormalised", "not normalised"),
    ("shape", "shape"),
    ("missing", "(?i)no such file|not found|does not exist"),
    ("k", "--k"),
])
def test_bad_files(tmp_path, capsys, problem, match):
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.3, 0.3, 0.4])
    argv_k = "1,2"
    if problem == "vocab":
        q = np.array([0.5, 0.5])
    elif problem == "nan":
        p = np.array([0.2, np.nan, 0.8])
    elif problem == "unnormalised":
        p = np.array([0.2, 0.3, 0.6])
    elif problem == "shape":
        p = np.tile(p, (2, 1))
    elif problem == "k":
        argv_k = "0,x"
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    ppath = tmp_path / ("absent.npy" if problem == "missing" else "p.npy")
    rc, _, err = _run(capsys, "--p", str(ppath), "--q", str(tmp_path / "q.npy"), "--k", argv_k)
    assert rc == 2
    assert "chansim bound: error:" in err
    import re
    assert re.search(match, err), err


def test_report_object_prints_and_converts():
    rep = speedup_report([0.5, 0.3, 0.2], [0.3, 0.3, 0.4], k=[1, 3])
    text = str(rep)
    assert "alpha_SD" in text and "ersd bound" in text
    d = rep.to_dict()
    assert d["methods"]["sd"]["tokens_per_call"][0] == pytest.approx(1.8)
