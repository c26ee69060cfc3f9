"""The sim-based scenarios (quickstart, free-riding, mechanism-duel) in reduced ``--set`` forms:
files, figures, summary keys, and that every mechanism met the same principals."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

REDUCED = {
    "quickstart": ["--set", "cooperative.rounds=3", "--set", "cooperative.training.standalone_epochs=2",
                   "--set", "replicates=2"],
    "free-riding": ["--set", "cooperative.rounds=3", "--set", "replicates=1",
                    "--set", "cooperative.training.mode=surrogate"],
    "adversaries": ["--set", "cooperative.rounds=3", "--set", "replicates=2",
                    "--set", "cooperative.population.n_principals=10",
                    "--set", "cooperative.training.standalone_epochs=2"],
    "mechanism-duel": ["--set", "cooperative.rounds=3", "--set", "replicates=1",
                       "--set", "cooperative.population.n_principals=8",
                       "--set", "cooperative.training.standalone_epochs=2"],
}


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_sim_scenario_runs_writes_and_redraws(cli, pngs, tmp_path, name):
    out = tmp_path / name
    result = cli("run", name, *REDUCED[name], "--out", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out / "results.parquet")
    summary = json.loads((out / "summary.json").read_text())
    labels = list(summary["mechanisms"])
    assert len(labels) >= 3 and set(frame.mechanism) == set(labels)
    n = summary["replicates"]
    for label, values in summary["mechanisms"].items():
        part = values["participation"]
        assert 0 <= part["mean"] <= 1 and part["n"] == n and part["level"] == 0.95, label
        if n == 1:  # one replicate: the interval is undefined and says why (never zero-width)
            assert part["ci_low"] is None and part["ci_high"] is None and "one replicate" in part["reason"]
        assert values["accuracy"]["mean"] is None or 0 <= values["accuracy"]["mean"] <= 1
    assert set(summary["free_rider_profit"]) == set(labels)
    assert all(v["verdict"] in ("positive", "negative", "inconclusive") for v in summary["free_rider_profit"].values())
    # same principals under every mechanism: identical outside options (the agents' standalone models)
    agents = frame[(frame.agent != "") & (frame.variable == "utility") & (frame["round"] == 1)]
    assert agents.groupby("mechanism").agent.nunique().nunique() == 1
    first = pngs(out / "figures", minimum=3)
    shutil.rmtree(out / "figures")
    result = cli("figures", out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in pngs(out / "figures", minimum=3)] == [p.name for p in first]


def test_free_riding_summary_orders_mechanisms_as_the_sim_tests_do(cli, tmp_path):
    """Surrogate, fixed strategies, 5 seeds: free-riding pays under equal split, not under α-power
    shares of counterfactual credit nor under CGSV (the property tests/sim asserts, here end to end)."""
    out = tmp_path / "fr"
    result = cli("run", "free-riding", "--set", "cooperative.training.mode=surrogate", "--set", "replicates=5",
                 "--set", "cooperative.rounds=30", "--set", "cooperative.population.strategy=fixed",
                 "--set", 'mechanisms=[{label = "equal split", mechanism = {kind = "equal_split"}}, '
                          '{label = "revenue shares", mechanism = {kind = "revenue_shares"}}, '
                          '{label = "CGSV", mechanism = {kind = "cgsv"}}]',
                 "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    profit = summary["free_rider_profit"]
    assert profit["equal split"]["mean"] > 0 > profit["revenue shares"]["mean"] and profit["CGSV"]["mean"] < 0
    # 5 replicates decide each sign at 95%: the verdicts say so in words
    assert [profit[k]["verdict"] for k in ("equal split", "revenue shares", "CGSV")] == \
        ["positive", "negative", "negative"]
    # paired against the equal split (the baseline): free-riders earn less than there under both others
    comp = summary["comparisons"]
    assert summary["baseline"] == "equal split" and set(comp) == {"revenue shares − equal split", "CGSV − equal split"}
    assert comp["revenue shares − equal split"]["free_rider_profit"]["verdict"] == "negative"


def test_must_show_free_rider_profit_is_an_interval_object_with_a_verdict(cli, tmp_path):
    """The acceptance run of the statistics issue: every mechanism's free_rider_profit is
    {mean, ci_low ≤ mean ≤ ci_high, n = 4, level, verdict}; the terminal shows mean [low, high]."""
    out = tmp_path / "x"
    result = cli("run", "free-riding", "--set", "cooperative.rounds=6", "--set", "replicates=4",
                 "--set", "cooperative.training.mode=surrogate", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["free_rider_profit"]) == 6
    for label, est in summary["free_rider_profit"].items():
        assert est["n"] == 4 and est["level"] == 0.95, label
        if est["mean"] is not None:
            assert est["ci_low"] <= est["mean"] <= est["ci_high"], label
        assert est["verdict"] in ("positive", "negative", "inconclusive")
        assert summary["mechanisms"][label]["free_rider_profit"] == est
    assert "95% confidence interval over 4 replicates" in result.output
    assert "[" in result.output and "verdict" in result.output


def test_the_shared_mechanism_block_is_refused_and_never_recorded(cli, tmp_path):
    """Each variant replaces cooperative.mechanism: a value set there would be silently ignored (exit 2),
    and stored parameters leave the unused block out."""
    result = cli("run", "quickstart", "--set", "cooperative.mechanism.alpha=3", "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "cooperative.mechanism" in result.output, result.output
    out = tmp_path / "ok"
    assert cli("run", "quickstart", *REDUCED["quickstart"], "--set", "cooperative.training.mode=surrogate",
               "--out", out).exit_code == 0
    frame = pd.read_parquet(out / "results.parquet")
    assert not [c for c in frame.columns if c.startswith("param.cooperative.mechanism")]
    assert "mechanism" not in json.loads((out / "summary.json").read_text())["config"]["cooperative"]
