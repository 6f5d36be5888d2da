"""Command-line conventions: ``python -m chansim``, --quiet/--verbose, --confidence, --markov, records."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chansim import __version__
from chansim.cli import build_parser, main
from chansim.commands import DEFAULT_CONFIDENCE
from chansim.common.logconfig import configure_logging

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    configure_logging()                                  # undo --quiet for the other tests


@pytest.fixture()
def pair_files(tmp_path):
    np.save(tmp_path / "p.npy", np.array([0.5, 0.3, 0.2]))
    np.save(tmp_path / "q.npy", np.array([0.3, 0.3, 0.4]))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "P.npy", rng.dirichlet(np.ones(3), size=3))      # square: Markov with --markov
    np.save(tmp_path / "Q.npy", rng.dirichlet(np.ones(3), size=3))
    np.save(tmp_path / "P4.npy", rng.dirichlet(np.ones(3), size=4))     # 4 positions x V = 3
    np.save(tmp_path / "Q4.npy", rng.dirichlet(np.ones(3), size=4))
    return tmp_path


def test_python_dash_m_chansim():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "chansim", "--version"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"chansim {__version__}"
    out = subprocess.run([sys.executable, "-m", "chansim"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 2 and "simulate" in out.stdout


def test_quiet_and_verbose_anywhere(pair_files, capsys):
    d = pair_files
    argv = ["bound", "--p", str(d / "p.npy"), "--q", str(d / "q.npy"), "--k", "1,2", "--plot", str(d / "b.png"),
            "--force"]                                           # the plot is rewritten below
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "chansim: plot written to" in err                     # diagnostics go to stderr through logging
    for flags in (["--quiet"], ["-q"]):
        assert main(flags + argv) == 0                           # before the sub-command ...
        out = capsys.readouterr()
        assert out.err == "" and out.out.startswith("chansim bound:")
    assert main(argv + ["--quiet"]) == 0                         # ... or after it
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "--verbose"] + argv)
    assert exc.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_quiet_silences_library_progress_bars():
    prior = os.environ.get("TQDM_DISABLE")
    configure_logging(quiet=True)
    assert os.environ.get("TQDM_DISABLE") == "1" and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1"
    from chansim.common.logconfig import progress_bar            # every bar of chansim (log, validate, simulate)
    from chansim.llm.validate import _setting_bar

    assert type(progress_bar(10, "logging", True)).__name__ == "_NoBar"
    assert type(_setting_bar("sd chain:1", 3, True)).__name__ == "_NoBar"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        assert not hf_logging.is_progress_bar_enabled()
    configure_logging()                                          # verbosity back: the environment restored
    assert os.environ.get("TQDM_DISABLE") == prior
    bar = _setting_bar("sd chain:1", 3, True)
    assert type(bar).__name__ != "_NoBar"
    bar.close()


def test_one_confidence_default_on_every_interval_command():
    parser = build_parser()
    argvs = {
        "simulate": ["simulate", "--method", "sd", "--p", "p", "--q", "q", "--tree", "chain:1"],
        "bound": ["bound", "--p", "p", "--q", "q"],
        "channel": ["channel", "--p", "p", "--q", "q"],
        "llm validate": ["llm", "validate", "--log", "run.npz"],
    }
    for name, argv in argvs.items():
        args = parser.parse_args(argv)
        assert args.confidence == DEFAULT_CONFIDENCE == 0.95, name
        assert parser.parse_args(argv + ["--confidence", "0.9"]).confidence == 0.9
        with pytest.raises(SystemExit):
            parser.parse_args(argv + ["--confidence", "1.5"])
    assert parser.parse_args(argvs["llm validate"]).out is None        # nothing written unless --out says


def test_simulate_confidence_reaches_the_interval(pair_files, capsys):
    d = pair_files
    base = ["simulate", "--method", "sd", "--p", str(d / "p.npy"), "--q", str(d / "q.npy"), "--tree", "chain:2",
            "--calls", "2000", "--json"]
    assert main(base) == 0
    est = json.loads(capsys.readouterr().out)["tokens_per_call"]
    assert est["confidence"] == 0.95
    assert main(base + ["--confidence", "0.5"]) == 0
    narrow = json.loads(capsys.readouterr().out)["tokens_per_call"]
    assert narrow["ci_high"] - narrow["ci_low"] < est["ci_high"] - est["ci_low"]


def test_array_shapes_have_one_meaning(pair_files, capsys):
    d = pair_files
    sim = ["simulate", "--method", "sd", "--tree", "chain:1", "--calls", "500", "--json"]
    assert main(sim + ["--p", str(d / "P.npy"), "--q", str(d / "Q.npy"), "--markov"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["model"] == "markov" and out.err == ""
    # backward compatible: a square array without --markov still runs, with a warning naming the flag
    assert main(sim + ["--p", str(d / "P.npy"), "--q", str(d / "Q.npy")]) == 0
    assert "--markov" in capsys.readouterr().err
    # (positions, V) is positions: simulate refuses it clearly, bound takes it
    assert main(sim + ["--p", str(d / "P4.npy"), "--q", str(d / "Q4.npy")]) == 2
    assert "one distribution per position" in capsys.readouterr().err
    assert main(sim + ["--p", str(d / "p.npy"), "--q", str(d / "q.npy"), "--markov"]) == 2
    assert "--markov needs square" in capsys.readouterr().err
    assert main(["bound", "--p", str(d / "P4.npy"), "--q", str(d / "Q4.npy"), "--k", "1", "--json",
                 "--jobs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["positions"] == 4
    assert main(["bound", "--p", str(d / "P.npy"), "--q", str(d / "Q.npy"), "--markov"]) == 2
    assert "chansim simulate" in capsys.readouterr().err
    for cmd in ("simulate", "bound"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "Array shapes mean the same in every command" in " ".join(capsys.readouterr().out.split())


def test_results_convert_to_dicts_and_records():
    from chansim.channel import channel_summary
    from chansim.predict import predict_path
    from chansim.simulate import simulate
    from chansim.theory import speedup_report

    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    rep = speedup_report(p, q, k=[1, 4], methods=["sd", "ersd"])
    recs = rep.to_records()
    assert len(recs) == 4 and {r["method"] for r in recs} == {"sd", "ersd"}
    sd1 = next(r for r in recs if r["method"] == "sd" and r["k"] == 1)
    assert sd1["tokens_per_call"] == pytest.approx(1 + np.minimum(p, q).sum())
    assert all(r["ersd_bound"] is not None for r in recs)
    res = simulate("sd", "chain:2", p, q, calls=500, seed=0)
    (row,) = res.to_records()
    assert row["tokens_per_call"] == res.tokens_per_call.mean and row["tokens_per_call_confidence"] == 0.95
    ch = channel_summary(p, q, ks=(1, 2), trials=200)
    assert [r["k"] for r in ch.to_records()] == [1, 2] and ch.to_dict()["ks"] == [1, 2]
    assert ch.to_records()[0]["mc_ci_low"] <= ch.to_records()[0]["mc_ci_high"]
    seqs = [(np.tile(p, (5, 1)), np.tile(q, (5, 1)), np.array([0, 1, 2, 0, 1]))] * 2
    pred = predict_path("sd", [1, 1], seqs)
    assert len(pred.to_records()) == 2 and pred.to_dict()["tokens"] == [5.0, 5.0]
    for obj in (rep.to_dict(), recs, res.to_dict(), res.to_records(), ch.to_dict(), ch.to_records(),
                pred.to_dict(), pred.to_records()):
        json.dumps(obj, allow_nan=False)                          # plain data
