"""The columnar agent collector (sim.collect) records exactly what Mesa's stock DataCollector
records from the Principal agents' properties: same rows, order, values (bit for bit) and types."""

from __future__ import annotations

import mesa
import pandas as pd
import pytest

from sim import CooperativeConfig, CooperativeModel
from sim.collect import ColumnDataCollector
from sim.model import AGENT_REPORTERS

POPULATION = {
    "n_principals": 24,
    "strategy": "epsilon_greedy",
    "sybil_identities": 3,
    "behaviours": {"honest": 0.4, "low_quality": 0.1, "free_rider": 0.2, "scaled_gradient": 0.1, "sybil": 0.2},
}


@pytest.mark.parametrize(
    "mechanism", [{"kind": "revenue_shares", "alpha": 2.0}, {"kind": "cgsv"}, {"kind": "contracts"}]
)
def test_column_collector_equals_the_stock_collector(mechanism):
    cfg = CooperativeConfig.model_validate(
        {
            "training": {"mode": "surrogate"},
            "rounds": 7,
            "decision_period": 2,
            "population": POPULATION,
            "mechanism": mechanism,
        }
    )
    model = CooperativeModel(cfg, rng=5)
    assert isinstance(model.datacollector, ColumnDataCollector)
    stock = mesa.DataCollector(agent_reporters={name: name for name in AGENT_REPORTERS})
    for _ in range(cfg.rounds):
        model.step()
        stock.collect(model)
    ours, reference = model.datacollector.get_agent_vars_dataframe(), stock.get_agent_vars_dataframe()
    assert len(ours) == cfg.rounds * len(model.principals) > 0
    pd.testing.assert_frame_equal(ours, reference, check_exact=True)
    # the same Python types in the records (the frames' dtypes follow from them)
    for mine, theirs in zip(model.datacollector._agent_records[3], stock._agent_records[3], strict=True):
        assert [type(v) for v in mine] == [type(v) for v in theirs]
    # not a trivial comparison: principals differ in what they did
    assert ours["joined"].nunique() == 2 and ours["surplus"].nunique() > 10


def test_no_agent_rows_when_agent_collection_is_off():
    cfg = CooperativeConfig.model_validate({"training": {"mode": "surrogate"}, "rounds": 2, "collect_agents": False})
    model = CooperativeModel(cfg, rng=0).run()
    _, agents = model.frames()
    assert agents is None and not model.datacollector._agent_records
