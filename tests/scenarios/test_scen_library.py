"""Every scenario of the library in a reduced ``--set`` form: files, summary keys, figures, and the
property each one is about."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from scenarios.registry import registry
from scenarios.result import KEY_COLUMNS

REDUCED = {
    "contracts": ["--set", "two_type.surface_p1=[0.3, 0.7]", "--set", "two_type.surface_n=[2, 6]",
                  "--set", "realisation_draws=300", "--set", "full_constraints=true"],
    "attribution-substrate": ["--set", "replicates=2", "--set", "training.epochs=2", "--set", "training.local_epochs=1",
                              "--set", "data.levels=[0.0, 0.3, 0.6, 0.9]"],
    "value-pluralism": ["--set", "training.epochs=1"],
    "cgsv-fairness": ["--set", 'datasets=["digits"]', "--set", 'partitions=["pow", "cla"]', "--set", "rounds=2",
                      "--set", "betas=[1.0, 2.0]", "--set", "n_samples=400", "--set", "hidden=16",
                      "--set", "replicates=2"],
    "equilibrium": ["--set", "replicates=2", "--set", "equal_split.rounds=60",
                    "--set", "equal_split.n_principals=[2, 4]", "--set", "alpha.rounds=30",
                    "--set", "alpha.alphas=[1.0, 16.0]", "--set", "contracts.n_principals=9"],
    "cooperative": ["--set", "replicates=2", "--set", "cooperative.rounds=20"],
}


def test_every_listed_scenario_has_a_reduced_form_here():
    # a scenario added to the library must be added here (sim-based ones included)
    missing = set(registry()) - set(REDUCED) - {"quickstart", "free-riding", "mechanism-duel",
                                                                         "adversaries"}
    assert not missing, f"add a reduced form for {sorted(missing)}"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """``stored(name)``: the scenario's reduced run, executed once per module through the CLI."""
    from typer.testing import CliRunner

    from scenarios.cli import app

    cache: dict[str, tuple] = {}
    base = tmp_path_factory.mktemp("scenarios")

    def get(name: str):
        if name not in cache:
            out = base / name
            result = CliRunner().invoke(app, ["run", name, *REDUCED.get(name, []), "--out", str(out)])
            assert result.exit_code == 0, result.output
            cache[name] = _check(out, name)
        return cache[name]

    return get


def _check(out, name: str):
    frame = pd.read_parquet(out / "results.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert list(frame.columns[:len(KEY_COLUMNS)]) == list(KEY_COLUMNS)
    assert len(frame) > 0 and frame["run_id"].nunique() == 1
    assert any(c.startswith("param.") for c in frame.columns)
    assert summary["scenario"] == name and "config" in summary and "seconds" in summary
    return out, frame, summary


@pytest.mark.parametrize("name", sorted(set(REDUCED) & {"contracts", "attribution-substrate", "value-pluralism",
                                                        "cgsv-fairness"}))
def test_reduced_run_writes_results_summary_and_figures_and_redraws(cli, stored, pngs, name):
    out, _, _ = stored(name)
    first = pngs(out / "figures", minimum=3)
    shutil.rmtree(out / "figures")
    result = cli("figures", out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in pngs(out / "figures", minimum=3)] == [p.name for p in first]


def test_contracts_menus_satisfy_ir_ic_budget_and_realise_to_t(stored):
    _, frame, summary = stored("contracts")
    assert set(summary["settings"]) == {"two_type", "big_firm", "small_party", "mixed"}
    for name, s in summary["settings"].items():
        assert s["success"] and s["violations"]["max"] <= 1e-5, name
        for row in s["menu"]:
            assert set(row) >= {"cost", "m", "t", "utility", "reservation_utility"}
            assert row["utility"] >= row["reservation_utility"] - 1e-6           # IR
            assert row["t"] <= row["budget"] + 1e-6                              # P-budget
            assert row["realised_mean_value"] == pytest.approx(row["t"], rel=0.03)  # proportional assignment
        assert s["realised_over_budget"] == 0
        assert s["information_cost"] >= -1e-9 and s["expected_information_rent"] >= -1e-6
        assert s["full_constraints_relative_gap"] < 5e-3  # SPEC §5: same optimum to ~3 digits
    m = [r["m"] for r in summary["settings"]["mixed"]["menu"]]
    assert np.all(np.diff(m) >= -1e-6)  # monotone contributions
    surf = frame[frame.setting == "two_type_surface"]
    assert surf.groupby(["p1", "n_participants"]).ngroups == 4


def test_attribution_reports_rank_correlations_for_both_substrates(stored):
    _, frame, summary = stored("attribution-substrate")
    stats = summary["spearman"]
    assert set(stats) == {"TL one-step (V3)", "FedAvg one-step", "FedAvg reconstruction Shapley"}
    for m, s in stats.items():
        values = summary["spearman_values"][m]
        assert len(values) == 2 and all(-1 <= v <= 1 for v in values), m
        assert s["n"] == 2 and s["mean"] == pytest.approx(np.mean(values))
        assert -1 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 1  # clipped to a correlation's range
    # TL minus each FedAvg method, paired per replicate
    diffs = summary["tl_minus_fedavg"]
    assert set(diffs) == {"FedAvg one-step", "FedAvg reconstruction Shapley"}
    for m, d in diffs.items():
        expected = np.mean(np.subtract(summary["spearman_values"]["TL one-step (V3)"], summary["spearman_values"][m]))
        assert d["mean"] == pytest.approx(expected) and d["verdict"] in ("positive", "negative", "inconclusive")
    # the noisiest member (90% random labels) never earns the most TL credit
    credit = frame[(frame.variable == "credit") & (frame.method == "TL one-step (V3)")]
    last = credit[credit["round"] == credit["round"].max()]
    for _, rep in last.groupby("replicate"):
        assert rep.set_index("agent").value.idxmax() != "member 3"
    assert summary["finding"].startswith("TL's rank correlation is")


def test_value_pluralism_credits_only_admissible_updates(stored):
    _, _, summary = stored("value-pluralism")
    members = summary["members"]
    refuse, open_ = members["refuses all"], members["open"]
    assert refuse["norm_kept"] == 0 and refuse["credit"] == 0 and refuse["payment"] == 0
    assert refuse["credit_raw"] != 0  # its data could have earned credit; its values forbid it
    assert open_["norm_kept"] == pytest.approx(1.0) and open_["credit"] == pytest.approx(open_["credit_raw"])
    assert 0 < members["no-risk"]["norm_kept"] < 1
    assert sum(m["payment"] for m in members.values()) == pytest.approx(summary["revenue"])
    assert 0 <= summary["accuracy_digit"] <= 1 and 0 <= summary["accuracy_risk"] <= 1


def test_cgsv_fairness_tables_and_reference_cells(stored):
    _, _, summary = stored("cgsv-fairness")
    assert set(summary["tables"]) == {"table1_fairness", "table2_average_accuracy_pct", "table3_time_overhead"}
    for cell in ("digits/pow", "digits/cla"):
        res = summary["cells"][cell]
        assert set(res) == {"standalone", "FedAvg", "q-FFL", "CFFL", "ECI", "DW", "RR", "EU", "CGSV β=1", "CGSV β=2"}
        # standalone against itself: ρ = 100 in every replicate, so the interval is that value
        assert res["standalone"]["fairness"]["mean"] == pytest.approx(100.0) and res["standalone"]["fairness"]["n"] == 2
        # everyone gets the global model: ρ is undefined (null with the reason), never 0
        fed = res["FedAvg"]["fairness"]
        assert fed["mean"] is None and fed["ci_low"] is None and "identical models" in fed["reason"]
        assert res["FedAvg"]["spread_test_samples"]["mean"] == 0
        for v in res.values():
            avg, best = v["average_accuracy"], v["best_accuracy"]
            assert avg["n"] == 2 and 0 <= avg["mean"] <= best["mean"] + 1e-12 <= 1 + 1e-12
            assert v["time_overhead"]["mean"] >= 0
        comp = summary["beta_comparisons"][cell]["CGSV β=2 − CGSV β=1"]
        assert set(comp) == {"average_accuracy", "fairness", "spread_test_samples"}


def test_attribution_noise_patterns_map_levels_to_quality_knobs(cli, tmp_path):
    from learning.data import Quality
    from scenarios.library.attribution_substrate import quality_of

    assert quality_of("labels", 0.3) == Quality(label_noise=0.3)
    assert quality_of("features", 0.3) == Quality(feature_noise=0.6)
    assert quality_of("duplicates", 0.3) == Quality(duplicates=0.3)
    result = cli("run", "attribution-substrate", "--set", "data.noise=blur", "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "data.noise" in result.output and not (tmp_path / "bad").exists()
    out = tmp_path / "dup"
    result = cli("run", "attribution-substrate", *REDUCED["attribution-substrate"], "--set", "data.noise=duplicates",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["noise"] == "duplicates"
