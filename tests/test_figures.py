"""Every figure at a tiny scale: outputs exist, data are sane, runs are reproducible, dask works."""
from __future__ import annotations

import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.figures import FIGURES, Settings, run_figure, run_figures

TINY = dict(scale=0.02, jobs=1)
EXTS = ("png", "pdf", "json", "txt")


def _data(out, name):
    return json.loads((out / f"{name}.json").read_text())["data"]


def _monotone(values, tol=1e-9):
    v = np.asarray(values, dtype=float)
    return bool(np.all(np.diff(v) >= -tol))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    results = run_figures(None, Settings(**TINY), out)
    return out, results


def test_every_figure_writes_its_files(tiny):
    out, results = tiny
    assert set(results) == set(FIGURES)
    for name in FIGURES:
        if name == "fig6_real_models":
            assert results[name] is None                       # no real-model results: not drawn
            assert not any((out / f"{name}.{e}").exists() for e in EXTS)
            continue
        for ext in EXTS:
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 0, path
        record = json.loads((out / f"{name}.json").read_text())
        assert record["figure"] == name and record["settings"]["scale"] == TINY["scale"]
        caption = (out / f"{name}.txt").read_text()
        assert "V=" in caption and "seed" in caption


def test_fig1_trees_are_the_builders(tiny):
    out, _ = tiny
    panels = _data(out, "fig1_trees")["panels"]
    assert [p["k"] for p in panels] == [0, 1, 4, 4, 6]
    assert panels[2]["parents"] == [-1, 0, 1, 2, 3] and panels[3]["parents"] == [-1, 0, 0, 0, 0]


def test_fig2_channel_cost_respects_bounds(tiny):
    out, _ = tiny
    data = _data(out, "fig2_channel_cost")
    s = data["summary"]
    assert s["bound_violations"] == 0 and s["sfrl_violations"] == 0
    for r in data["rows"]:
        assert r["expected_log2_k"] <= r["entropy_k"] + 1e-9 <= r["zipf_bits"] + 2e-9   # E log2 K <= H(K) <= Zipf
        assert r["entropy_k"] <= r["delta_bits"] + 1e-9
    assert s["mc_pairs"] >= 1


def test_fig3_acceptance_monotone_and_below_the_lp(tiny):
    out, _ = tiny
    for pnl in _data(out, "fig3_acceptance_vs_k")["panels"]:
        ex = pnl["exact"]
        for name in ("pfr", "ersd", "specinfer", "spectr", "rsd", "lp-iid", "lp-without"):
            assert _monotone(ex[name]), name
        for name in ("pfr", "specinfer", "spectr"):             # i.i.d. drafts
            assert np.all(np.array(ex[name]) <= np.array(ex["lp-iid"]) + 1e-7), name
        n = len(ex["rsd"])
        assert np.all(np.array(ex["ersd"]) <= np.array(ex["lp-without"]) + 1e-7)
        assert np.all(np.array(ex["rsd"]) <= np.array(ex["lp-without"][:n]) + 1e-7)
        assert ex["pfr"][0] == pytest.approx(ex["ersd"][0])      # one candidate: both are alpha_ER
        assert ex["specinfer"][0] == pytest.approx(ex["lp-iid"][0])   # k = 1: 1 - TV is optimal


def test_fig3_simulation_agrees_with_exact(tiny):
    out, _ = tiny
    data = _data(out, "fig3_acceptance_vs_k")
    assert data["mc_checks_inside"] >= 0.85 * data["mc_checks"]


def test_fig4_tokens_per_call_sane(tiny):
    out, _ = tiny
    data = _data(out, "fig4_tokens_per_call")
    cur, th = data["curves"], data["theory"]
    for shape, methods in cur.items():
        for name, c in methods.items():
            assert _monotone(c["value"]), (shape, name)
            assert c["value"][0] >= 1.0
    # the optimal tree is at least as good as the chain and the batch of the same size
    for name in ("specinfer", "ersd"):
        opt = dict(zip(cur["optimal"][name]["k"], cur["optimal"][name]["value"]))
        for shape in ("chain", "batch"):
            for k, v in zip(cur[shape][name]["k"], cur[shape][name]["value"]):
                assert opt[k] >= v - 1e-9, (name, shape, k)
    # ERSD never beats the guaranteed all-k bound, on any tree; that bound is never above the paper's form
    bound = dict(zip(th["k"], th["all_k_bound"]))
    assert all(b <= pp + 1e-9 for b, pp in zip(th["all_k_bound"], th["all_k_bound_paper"]))
    for shape in cur:
        c = cur[shape].get("ersd")
        if c:
            assert all(v <= bound[k] + 1e-9 for k, v in zip(c["k"], c["value"])), shape
    assert data["mc_checks_inside"] >= 0.85 * data["mc_checks"]


def test_fig5_slope_matches_rank_entropy(tiny):
    out, _ = tiny
    data = _data(out, "fig5_rank_bits")
    for ex in data["examples"]:
        assert sum(ex["a"]) == pytest.approx(1.0, abs=1e-6)
    s = data["summary"]
    assert 0.9 < s["slope_times_entropy_median"] < 1.1
    assert s["sim_inside_ci"] >= s["sim_pairs"] - 1


def test_without_replacement_lp_matches_enumeration():
    from chansim.inputs.distributions import synthetic_pair
    from chansim.theory import mincut_without_replacement
    from chansim.theory import optimal_acceptance_lp

    p, q = synthetic_pair("dirichlet", 6, 1.0, seed=4)
    fast = mincut_without_replacement(p, q)
    for m in (1, 2, 3):
        assert fast[m - 1] == pytest.approx(optimal_acceptance_lp(p, q, m, draws="without"), abs=1e-8)


def test_same_seed_same_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for name in ("fig2_channel_cost", "fig3_acceptance_vs_k"):
        run_figure(name, Settings(**TINY), a)
        run_figure(name, Settings(**TINY), b)
        assert (a / f"{name}.json").read_bytes() == (b / f"{name}.json").read_bytes()
        run_figure(name, Settings(scale=TINY["scale"], jobs=2), c)        # worker count does not matter
        assert _data(a, name) == _data(c, name)
    run_figure("fig2_channel_cost", Settings(scale=TINY["scale"], jobs=1, seed=1), c)
    assert _data(a, "fig2_channel_cost") != _data(c, "fig2_channel_cost")


def test_dask_backend_gives_the_same_data(tmp_path):
    pytest.importorskip("dask.distributed")
    seq, dsk = tmp_path / "seq", tmp_path / "dask"
    run_figure("fig2_channel_cost", Settings(**TINY), seq)
    run_figures(["fig2_channel_cost"], Settings(scale=TINY["scale"], jobs=2, backend="dask"), dsk)
    assert _data(seq, "fig2_channel_cost") == _data(dsk, "fig2_channel_cost")
    assert json.loads((dsk / "fig2_channel_cost.json").read_text())["settings"]["backend"] == "dask"


def _fake_validation_rows():
    rows = []
    for method, pred in (("sd", 2.1), ("ersd", 2.4)):
        for k in (1, 2, 4):
            m = pred + 0.1 * np.log2(k)
            rows.append({"method": method, "tree": f"chain:{k}", "k": k,
                         "predicted": {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05},
                         "measured": {"mean": m + 0.01, "ci_low": m - 0.08, "ci_high": m + 0.1},
                         "target_calls": 200, "wall_seconds": 1.5})
    return rows


def test_cli_only_and_real_model_contract(tmp_path, capsys):
    out = tmp_path / "figs"
    rc = main(["figures", "--only", "fig1_trees,fig6_real_models", "--out", str(out), "--jobs", "1"])
    assert rc == 0
    assert all((out / f"fig1_trees.{e}").exists() for e in EXTS)
    assert not (out / "fig6_real_models.png").exists()
    assert "skipped" in capsys.readouterr().err
    # the contract: <out>/data/llm_validation.json, written by `chansim llm validate`
    (out / "data").mkdir()
    (out / "data" / "llm_validation.json").write_text(json.dumps({"target": "t", "draft": "d",
                                                                  "rows": _fake_validation_rows()}))
    assert main(["figures", "--only", "fig6_real_models", "--out", str(out)]) == 0
    assert all((out / f"fig6_real_models.{e}").exists() for e in EXTS)
    assert _data(out, "fig6_real_models")["overlap"] == 6
    (out / "data" / "llm_validation.json").write_text(json.dumps([{"method": "sd", "tree": "chain:1", "k": 1,
                                                                   "predicted": {"mean": 2.0}}]))
    assert main(["figures", "--only", "fig6_real_models", "--out", str(out)]) == 2
    assert "predicted" in capsys.readouterr().err
    assert main(["figures", "--only", "fig9", "--out", str(out)]) == 2
