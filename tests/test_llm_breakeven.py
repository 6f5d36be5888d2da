"""Break-even acceptance of an sd chain from measured costs (arithmetic only, no model)."""
import numpy as np
import pytest

from chansim.logs.breakeven import breakeven_acceptance, breakeven_table, chain_speedup, cost_ratio
from chansim.llm.wallclock import predict_wall_speedup
from chansim.verify.sd import sd_chain_tokens


def _costs(cq=0.6, cp1=1.0, growth=0.05):
    return {"draft": {1: [cq] * 3}, "target": {"chain:0": [cp1] * 3, **{f"chain:{k}": [cp1 + growth * k] * 3
                                                                       for k in range(1, 5)}}}


def test_breakeven_is_the_root_of_unit_speedup():
    costs = _costs()
    for k in (1, 2, 3, 4):
        b = breakeven_acceptance(costs, k)
        assert b is not None and 0 < b < 1
        assert float(chain_speedup(b, k, costs)) == pytest.approx(1.0, abs=1e-9)
        assert float(chain_speedup(b - 1e-3, k, costs)) < 1 < float(chain_speedup(b + 1e-3, k, costs))


def test_speedup_agrees_with_the_wallclock_prediction():
    """The i.i.d. chain value through predict_wall_speedup (the --cost auto formula) gives the same number."""
    costs = _costs()
    for k, beta in ((1, 0.3), (3, 0.8)):
        tpc = float(sd_chain_tokens(beta, k))
        pred = predict_wall_speedup({"mean": tpc, "ci_low": tpc, "ci_high": tpc}, f"chain:{k}", costs)
        assert pred["mean"] == pytest.approx(float(chain_speedup(beta, k, costs)))


def test_expensive_draft_never_breaks_even():
    costs = _costs(cq=1.0, growth=0.1)          # the draft costs a full target call
    assert breakeven_acceptance(costs, 1) is None            # rho = 2.1 > 2 tokens a chain of 1 can give
    assert breakeven_acceptance(_costs(cq=0.0, growth=0.0), 2) == 0.0
    rows = breakeven_table(costs, 0.5)
    assert [r["depth"] for r in rows] == [1, 2, 3, 4]
    assert all(r["speedup_perfect_draft"] < 1 for r in rows)
    assert rows[0]["cost_ratio"] == pytest.approx(2.1)


def test_missing_cost_is_named():
    with pytest.raises(ValueError, match="chain:5"):
        cost_ratio(_costs(), 5)
    with pytest.raises(ValueError, match="depth"):
        cost_ratio(_costs(), 0)
    assert np.isfinite(cost_ratio({"draft": {"1": [0.5]}, "target": {"chain:0": [1], "chain:1": [1]}}, 1))
