"""Sampling settings (temperature, top-k, top-p, greedy) and predictions at other temperatures vs simulate."""
import json

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs.format import write_log
from chansim.logs.temperature import SamplingSettings, temperature_sweep
from chansim.simulate import simulate

METHODS = ("sd", "specinfer", "ersd", "rsd", "spectr")
CONF = 1 - 1e-7                     # a correct prediction leaves the interval less than once in 10^7 runs


def _pair(seed, vocab=6):
    rng = np.random.default_rng(seed)
    zt = rng.normal(size=vocab) * 1.5
    zd = zt + rng.normal(size=vocab) * 0.8
    zd[np.argmax(zt)] = zd.max() + 0.1          # same argmax: greedy/greedy accepts everything
    return zt, zd


def test_settings_rules():
    lp = np.log(np.array([[0.1, 0.4, 0.4, 0.1]]))
    assert SamplingSettings(0).apply(lp).tolist() == [[0, 1, 0, 0]]         # tie: smallest id
    assert np.allclose(SamplingSettings(1, top_k=1).apply(lp), [[0, 1, 0, 0]])
    assert np.allclose(SamplingSettings(1, top_p=0.5).apply(lp), [[0, 0.5, 0.5, 0]])
    assert np.allclose(SamplingSettings(1, top_p=0.4).apply(lp), [[0, 1, 0, 0]])
    hot = SamplingSettings(2.0).apply(lp)
    assert np.allclose(hot, np.sqrt(np.exp(lp)) / np.sqrt(np.exp(lp)).sum())          # softmax(ℓ/2) ∝ √p
    for bad in (dict(temperature=-1), dict(top_k=-2), dict(top_p=0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            SamplingSettings(**{"temperature": 1.0, **bad})


@pytest.mark.parametrize("t_target,t_draft,extra", [
    (0.0, 0.0, {}),                      # greedy target and draft
    (0.0, 0.8, {}),                      # greedy target, sampled draft: acceptance q(argmax p)
    (0.5, 0.7, {}),                      # two non-unit temperatures, different per model
    (1.7, 1.3, {}),
    (0.9, 1.0, {"target_top_k": 3, "draft_top_p": 0.8}),     # support mismatches
])
def test_sweep_agrees_with_simulate(t_target, t_draft, extra):
    zt, zd = _pair(3)
    rows = temperature_sweep(zt[None], zd[None], [t_target], [t_draft], methods=METHODS,
                             trees=("chain:3", "batch:3"), **extra)
    assert len(rows) == 9                    # sd drafts chains only
    p = SamplingSettings(t_target, extra.get("target_top_k", 0), extra.get("target_top_p", 1.0)).apply(zt)
    q = SamplingSettings(t_draft, extra.get("draft_top_k", 0), extra.get("draft_top_p", 1.0)).apply(zd)
    for r in rows:
        sim = simulate(r["method"], r["tree"], p, q, calls=20_000, seed=7, confidence=CONF)
        est = sim.tokens_per_call
        assert est.ci_low - 1e-9 <= r["tokens_per_call"] <= est.ci_high + 1e-9, (r, est)
    if t_target == t_draft == 0:
        assert all(r["tokens_per_call"] == pytest.approx(4.0 if r["tree"] == "chain:3" else 2.0) for r in rows)


def test_broken_temperature_is_caught():
    """Multiplying instead of dividing by T is a different law, and the simulate check sees it."""
    zt, zd = _pair(3)
    right = temperature_sweep(zt[None], zd[None], [0.5], methods=("sd",), trees=("chain:3",))[0]
    wrong = temperature_sweep((zt * 0.25)[None], (zd * 0.25)[None], [1.0], methods=("sd",), trees=("chain:3",))[0]
    p, q = SamplingSettings(0.5).apply(zt), SamplingSettings(0.5).apply(zd)
    est = simulate("sd", "chain:3", p, q, calls=20_000, seed=7, confidence=CONF).tokens_per_call
    assert est.contains(right["tokens_per_call"]) and not est.contains(wrong["tokens_per_call"])


def test_bound_log_temperatures_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lp = [np.log(rng.dirichlet(np.ones(8), size=4)) for _ in range(2)]
    lq = [np.log(rng.dirichlet(np.ones(8), size=4)) for _ in range(2)]
    f = write_log(tmp_path / "r.npz", prompts=[[1], [2]], tokens=[[0, 1, 2, 3]] * 2, target_log_probs=lp,
                  draft_log_probs=lq, metadata={"temperature": 1.0})
    png = tmp_path / "t.png"
    assert main(["bound", "--log", str(f), "--temperatures", "0,0.7,1", "--draft-temperatures", "0.5,0.7,1",
                 "--method", "sd,ersd", "--k", "1,2", "--json", "--plot", str(png)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["temperature"], r["draft_temperature"]) for r in rows} == {(0, 0.5), (0.7, 0.7), (1, 1)}
    assert png.stat().st_size > 1000
    # at T = 1 the sd chain:1 value is 1 + mean Σmin(p, q)
    r1 = next(r for r in rows if r["temperature"] == 1 and r["method"] == "sd" and r["tree"] == "chain:1")
    assert r1["tokens_per_call"] == pytest.approx(1 + r1["sd_acceptance"], rel=1e-9)
