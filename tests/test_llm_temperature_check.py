"""Predictions at another temperature from a log (i.i.d. model per context) vs real generation at that temperature."""
import numpy as np
import pytest

from chansim.logs.format import read_log, write_log
from chansim.logs.temperature_check import compare_with_validation, iid_prediction, rescale_settings
from conftest import make_real_log


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _synthetic_log(tmp_path, name, logits_t, logits_d, temperature, n_seq=4):
    """A log of ``n_seq`` sequences whose rows are softmax(logits / temperature)."""
    per = logits_t.shape[0] // n_seq
    split = lambda a: [a[i * per:(i + 1) * per] for i in range(n_seq)]      # noqa: E731
    path = tmp_path / name
    write_log(path, prompts=[[1]] * n_seq, tokens=[[0] * per] * n_seq,
              target_log_probs=split(_log_softmax(logits_t / temperature)),
              draft_log_probs=split(_log_softmax(logits_d / temperature)), metadata={"temperature": temperature})
    return read_log(path)


def test_rescale_settings():
    assert rescale_settings(0.5, 1.0).temperature == 2.0
    assert rescale_settings(1.0, 0.0).greedy
    with pytest.raises(ValueError, match="log's temperature"):
        rescale_settings(0.0, 0.7)
    with pytest.raises(ValueError, match="top_p"):
        rescale_settings(1.0, 0.7, top_p=0.0)


def test_prediction_does_not_depend_on_the_logged_temperature(tmp_path):
    """Same logits logged at T0 = 1 and at T0 = 0.5 give the same prediction at T = 0.7 (float16 rounding aside)."""
    rng = np.random.default_rng(3)
    zt = rng.normal(0, 2, size=(16, 12))
    zd = zt + rng.normal(0, 1, size=zt.shape)
    a = iid_prediction(_synthetic_log(tmp_path, "a.npz", zt, zd, 1.0), 0.7, methods=["sd"], trees=["chain:3"])
    b = iid_prediction(_synthetic_log(tmp_path, "b.npz", zt, zd, 0.5), 0.7, methods=["sd"], trees=["chain:3"])
    assert len(a) == len(b) == 1 and a[0]["exact"]
    for agg in ("mean", "rate"):
        assert a[0][agg]["mean"] == pytest.approx(b[0][agg]["mean"], abs=2e-3)
    # exact value of the i.i.d. chain: E = (1 - β^(K+1)) / (1 - β) at every context
    p, q = (np.exp(_log_softmax(z / 0.7)) for z in (zt, zd))
    beta = np.minimum(p, q).sum(-1)
    e = (1 - beta ** 4) / (1 - beta)
    assert a[0]["mean"]["mean"] == pytest.approx(e.mean(), abs=2e-3)
    rate = [4 / np.sum(1 / e[4 * s:4 * s + 4]) for s in range(4)]
    assert a[0]["rate"]["mean"] == pytest.approx(16 / sum(4 / r for r in rate), abs=2e-3)
    assert a[0]["rate"]["mean"] <= a[0]["mean"]["mean"] + 1e-12           # AM-HM
    assert a[0]["mean"]["ci_low"] <= a[0]["mean"]["mean"] <= a[0]["mean"]["ci_high"]
    # a broken rescaling (forgetting the logged temperature) is caught
    wrong = iid_prediction(_synthetic_log(tmp_path, "c.npz", zt, zd, 0.5), 0.35, methods=["sd"], trees=["chain:3"])
    assert abs(wrong[0]["mean"]["mean"] - a[0]["mean"]["mean"]) > 1e-2


def test_greedy_and_skipped_trees(tmp_path):
    rng = np.random.default_rng(4)
    zt = rng.normal(0, 2, size=(8, 6))
    run = _synthetic_log(tmp_path, "g.npz", zt, zt.copy(), 1.0)
    rows = iid_prediction(run, 0.0, methods=["sd"], trees=["chain:2", "batch:2"])
    assert [r["tree"] for r in rows] == ["chain:2"]                 # sd does not run on a batch
    assert rows[0]["mean"]["mean"] == pytest.approx(3.0)             # same argmax: every draft accepted
    with pytest.raises(ValueError, match="confidence"):
        iid_prediction(run, 0.7, confidence=1.0)


def test_compare_with_validation_joins_rows():
    meas = {"mean": 2.0, "ci_low": 1.8, "ci_high": 2.2}
    result = {"rows": [{"method": "sd", "tree": "chain:2", "measured": meas, "predicted": meas}]}
    pred = [{"method": "sd", "tree": "chain:2", "mean": {"mean": 2.3, "ci_low": 2.25, "ci_high": 2.35},
             "rate": {"mean": 2.1, "ci_low": 2.0, "ci_high": 2.2}}]
    (row,) = compare_with_validation(result, {"T1": pred})
    assert row["T1:rate_overlap"] and row["T1:mean"]["mean"] == 2.3


# ---------------------------------------------------------------- real generation at T = 0.7 (SmolLM2, CPU)
@pytest.mark.slow
@pytest.mark.llm
def test_prediction_from_unit_temperature_log_matches_generation_at_0_7(default_pair, tmp_path):
    """Predict at T = 0.7 from a T = 1 log, measure by generating at T = 0.7; intervals overlap."""
    from chansim.llm.validate import validate

    logs = {t: make_real_log(default_pair, tmp_path / f"t{t}.npz", prompts=4, new_tokens=12, temperature=t, seed=2)
            for t in (1.0, 0.7)}
    res = validate(logs[0.7], default_pair, ["sd"], ["chain:2"], progress=False)
    assert res["temperature"] == 0.7
    pred = iid_prediction(logs[1.0], 0.7, methods=["sd"], trees=["chain:2"])     # exact per context
    rows = compare_with_validation(res, {"T1": pred})
    assert {(r["method"], r["tree"]) for r in rows} == {("sd", "chain:2")}
    for r in rows:
        assert r["T1:rate_overlap"], r                            # deterministic (fixed seeds)
        assert 0.7 < r["T1:rate"]["mean"] / r["measured"]["mean"] < 1.4
