"""Wall-clock speed-up: cost model arithmetic (no model) and cost measurement on the real pair."""
import numpy as np
import pytest

from chansim.llm.wallclock import level_sizes, predict_wall_speedup, wallclock_rows
from conftest import ar_and_sd_rows


def _costs():
    return {"draft": {1: [0.010] * 5, 2: [0.012] * 5},
            "target": {"chain:0": [0.020] * 5, "chain:2": [0.024] * 5, "batch:2": [0.022] * 5},
            "context": 64, "repeats": 5}


def test_level_sizes():
    assert level_sizes("chain:0") == [] and level_sizes("branch:2,3") == [1, 2]


def test_predicted_speedup_formula():
    pred = predict_wall_speedup({"mean": 2.0, "ci_low": 1.8, "ci_high": 2.2}, "chain:2", _costs())
    # two draft forwards of one token (20 ms) + one target call on the chain (24 ms); AR call 20 ms
    assert pred["mean"] == pytest.approx(2.0 * 0.020 / 0.044)
    assert pred["ci_low"] == pytest.approx(1.8 * 0.020 / 0.044) and pred["ci_high"] == pytest.approx(2.2 * 0.020 / 0.044)
    batch = predict_wall_speedup({"mean": 1.5, "ci_low": 1.5, "ci_high": 1.5}, "batch:2", _costs())
    assert batch["mean"] == pytest.approx(1.5 * 0.020 / 0.032)
    spread = _costs()
    spread["target"]["chain:0"] = [0.018, 0.019, 0.020, 0.021, 0.022]
    wide = predict_wall_speedup({"mean": 2.0, "ci_low": 2.0, "ci_high": 2.0}, "chain:2", spread)
    assert wide["ci_low"] < wide["mean"] < wide["ci_high"]
    with pytest.raises(ValueError, match="no measured target cost"):
        predict_wall_speedup({"mean": 2.0, "ci_low": 2.0, "ci_high": 2.0}, "chain:4", _costs())


def test_measured_speedup_from_rows():
    ar, sd = ar_and_sd_rows((2.0, 1.9, 2.1))
    rows = wallclock_rows({"rows": [ar, sd]}, _costs())
    assert len(rows) == 1 and rows[0]["measured"]["mean"] == pytest.approx(2.0)
    assert rows[0]["measured"]["ci_low"] < 2.0 < rows[0]["measured"]["ci_high"]
    assert rows[0]["predicted"]["mean"] == pytest.approx(2.0 * 0.020 / 0.044)
    with pytest.raises(ValueError, match="autoregressive row"):
        wallclock_rows({"rows": [sd]}, _costs())


@pytest.mark.llm
@pytest.mark.slow
def test_measure_costs_on_real_pair(default_pair):
    from chansim.llm.wallclock import measure_costs

    pair = default_pair
    costs = measure_costs(pair, list(range(10, 40)), ["chain:2", "batch:4"], repeats=2, context=32)
    assert set(costs["target"]) == {"chain:0", "chain:2", "batch:4"} and set(costs["draft"]) == {1}
    assert all(np.all(np.asarray(v) > 0) for v in list(costs["target"].values()) + list(costs["draft"].values()))
