"""``equilibrium``: the library file, a reduced run (summary sections with intervals, figures redrawn
from the stored results) and what theory guarantees, with stated tolerances."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from economics.settlement import LinearAccuracyRevenue, alpha_power_shares
from scenarios import stats
from scenarios.config import undocumented_fields
from scenarios.library.equilibrium import (
    EqualSplitGame,
    EquilibriumConfig,
    contract_type_costs,
    theoretical_top_share,
)
from scenarios.registry import registry, resolve
from sim import CooperativeConfig, CooperativeModel

#: a few seconds: two replicates, short runs, two N and two α; every contract design of the library
REDUCED = ["--set", "replicates=2", "--set", "equal_split.rounds=60", "--set", "equal_split.n_principals=[2, 4]",
           "--set", "alpha.rounds=30", "--set", "alpha.alphas=[1.0, 16.0]", "--set", "contracts.n_principals=9"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The reduced run, through the CLI, once for the module."""
    from typer.testing import CliRunner

    from scenarios.cli import app

    out = tmp_path_factory.mktemp("equilibrium") / "run"
    result = CliRunner().invoke(app, ["run", "equilibrium", *REDUCED, "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out / "results.parquet")
    summary = json.loads((out / "summary.json").read_text())
    return out, frame, summary


def test_library_file_validates_and_states_the_class_defaults():
    scen = registry()["equilibrium"]
    assert undocumented_fields(scen.config) == []
    resolved = resolve("equilibrium")
    assert resolved.config == EquilibriumConfig()
    cfg = resolved.config
    assert cfg.replicates >= 6
    assert cfg.equal_split.m_grid[0] == pytest.approx(0.05) and cfg.equal_split.m_grid[-1] == 1.0


@pytest.mark.parametrize(("args", "field"), [
    (["--set", "equal_split.m_step=0.03"], "equal_split.m_step"),
    (["--set", "alpha.alphas=[2.0, 1.0]"], "alpha.alphas"),
    (["--set", "equal_split.n_principals=[4, 2]"], "equal_split.n_principals"),
    (["--set", "contracts.settings=[{label=\"x\", unit_cost=[0.05, 0.01]}]"], "contracts.settings"),
    (["--set", "equal_split.strategy=nope"], "equal_split.strategy"),
    (["--set", "contracts.n_principals=2"], "contracts.n_principals"),
    (["--set", "alpha.label_noise=[0.0, 1.5]"], "alpha.label_noise"),
])
def test_bad_values_exit_2_and_name_the_field(cli, tmp_path, args, field):
    result = cli("run", "equilibrium", *args, "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert not (tmp_path / "o").exists()


def test_reduced_run_has_every_section_with_intervals_and_three_verdicts(stored):
    _, frame, summary = stored
    assert summary["scenario"] == "equilibrium" and summary["replicates"] == 2
    for label, s in summary["contracts"]["settings"].items():
        for t in s["per_type"]:
            for key in ("on_item", "opted_out", "pool_fits", "outside_beats_offers"):
                assert stats.is_estimate(t["observed"][key]), (label, key)
                assert t["observed"][key]["n"] == 2
            assert stats.is_estimate(t["distance_on_item"]) and stats.is_estimate(t["distance_opted_out"])
    assert set(summary["equal_split"]["per_n"]) == {"2", "4"}
    for e in summary["equal_split"]["per_n"].values():
        for key in ("rows_deliberate", "rows", "participation", "nash_gap", "participation_drift"):
            assert stats.is_estimate(e["observed"][key])
        assert stats.is_estimate(e["distance_grid"]) and e["reaches"] in ("reaches", "does not", "undecided")
    assert set(summary["alpha"]["per_alpha"]) == {"1", "16"}
    for e in summary["alpha"]["per_alpha"].values():
        for key in ("top_share", "top_share_theory", "gini", "gini_limit", "participation", "credit_ratio"):
            assert stats.is_estimate(e["observed"][key])
    assert stats.is_estimate(summary["alpha"]["per_alpha"]["16"]["participation_vs_reference"])
    verdicts = summary["verdicts"]
    assert [v.split(":")[0] for v in verdicts] == ["contracts", "equal split", "α → large"]
    assert all(("reaches" in v) or ("does not" in v) for v in verdicts)
    assert {"part", "variable", "value", "replicate"} <= set(frame.columns)


def test_contract_shares_are_shares_and_ic_holds_exactly_where_every_pool_fits(stored):
    _, frame, summary = stored
    rows = frame[frame.part == "contracts"].pivot_table(index=["arm", "agent", "replicate"], columns="variable",
                                                         values="value")
    for var in ("on_item", "opted_out", "other_item", "pool_fits", "outside_beats_offers"):
        assert rows[var].between(0.0, 1.0).all(), var
    # every principal is on its item, on another item or out
    assert np.allclose(rows.on_item + rows.other_item + rows.opted_out, 1.0, atol=1e-12)
    clean = summary["contracts"]["settings"]["narrow costs"]
    assert clean["partition"] == "uni"
    for t in clean["per_type"]:
        assert t["observed"]["pool_fits"]["mean"] == 1.0  # every pool holds every item
        ic = t["observed"]["ic_among_joiners"]
        if ic["mean"] is not None:  # IC: every type that joins takes its own item (or an identical one)
            assert ic["mean"] == 1.0 and ic["ci_low"] == 1.0
    # a principal opts out exactly when no item fits its pool or its outside option beats every item that fits
    assert np.allclose(rows.opted_out, rows.fits_no_item + rows.outside_beats_offers, atol=1e-12)
    fits = rows[rows.pool_fits == 1.0]
    assert (fits.fits_no_item == 0).all()
    # the design excludes no type here: the prediction is "own item" for all
    assert all(not t["excluded"] and t["predicted_on_item"] == 1.0 for t in clean["per_type"])


def test_population_holds_exactly_the_menus_type_costs():
    for unit_cost, types in (((0.01, 0.05), 3), ((0.05, 1.0), 5), ((0.02, 0.03), 2)):
        costs = contract_type_costs(unit_cost, types)
        cfg = CooperativeConfig.model_validate({
            "population": {"n_principals": 2 * types, "unit_cost": unit_cost, "cost_levels": costs.tolist()},
            "training": {"mode": "surrogate"}, "mechanism": {"kind": "contracts", "types": types}, "rounds": 1})
        model = CooperativeModel(cfg, rng=0)
        designed = model.mechanism.menu_solution.costs * cfg.training.surrogate_scale
        assert np.allclose(designed, costs, rtol=1e-12, atol=0)
        assert sorted({p.unit_cost for p in model.principals}) == sorted(costs.tolist())


def _game(members_use_model: bool = False) -> EqualSplitGame:
    return EqualSplitGame(pool=100, cost=0.003, scale=50.0, r0=100.0, acc0=0.1, valuation=100.0,
                          members_use_model=members_use_model, grid=tuple(round(0.05 * k, 10) for k in range(1, 21)))


@pytest.mark.parametrize("use_model", [False, True])
def test_equal_split_prediction_falls_with_n_and_under_provides(use_model):
    game = _game(use_model)
    ns = [2, 4, 8, 16, 32]
    nash = [game.nash(n) for n in ns]
    rows = [e["rows"] for e in nash]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(rows))  # decreases in N
    assert rows[-1] < rows[0]
    for n, e in zip(ns, nash, strict=True):
        planner = game.planner(n)["rows"]
        assert planner >= e["rows"] - 1e-9  # the planner asks at least as much: under-provision
        assert e["joins"] and e["global_best_response"]
        if e["kind"] == "interior":  # the first-order condition holds at the root (tolerance 1e-9)
            assert float(game.marginal(n * e["rows"], 1.0 / n)) == pytest.approx(game.cost, abs=1e-9)


def test_grid_equilibria_admit_no_profitable_unilateral_deviation():
    game = _game()
    levels = game.levels
    for n in (2, 4, 8):
        eqs = game.grid_equilibria(n)
        assert eqs, n
        for eq in eqs:
            lower, k = eq["levels"][0], eq["members_at_lower"]
            upper = eq["levels"][-1]
            profile = np.array([lower] * k + [upper] * (n - k), dtype=float)
            assert game.gains(profile, np.ones(n, dtype=bool)).max() <= 1e-9
            assert eq["mean_rows"] == pytest.approx(profile.mean())
        # a level one grid step away from every equilibrium is not one
        off = min(levels, key=lambda r: -min(abs(r - e["mean_rows"]) for e in eqs))
        assert game.gains(np.full(n, off), np.ones(n, dtype=bool)).max() > 0


def test_the_games_revenue_is_the_markets_and_its_payoff_the_sims_surplus(stored):
    game = _game()
    market = LinearAccuracyRevenue(100.0, 0.1)
    for total in (0.0, 3.0, 40.0, 400.0, 1600.0):
        acc = float(game.curve(game.scale * total))
        assert float(game.revenue(total)) == pytest.approx(market(acc), abs=1e-12)
    _, _, summary = stored
    for e in summary["equal_split"]["per_n"].values():
        assert e["observed"]["surplus_error"]["mean"] <= 1e-9  # the predicted utility is the agents' own


def test_top_share_from_credits_is_the_alpha_power_identity_and_grows_with_alpha(stored):
    rng = np.random.default_rng(0)
    for _ in range(50):
        credits = rng.exponential(size=int(rng.integers(2, 12))) * rng.choice([1e-6, 1.0, 1e3])
        previous = 0.0
        for alpha in (1.0, 2.0, 4.0, 8.0, 16.0, 64.0):
            logs = alpha * np.log(credits)  # c_top^α / Σ c^α in logs (no overflow at large α)
            expected = float(np.exp(logs.max() - logsumexp(logs)))
            share = theoretical_top_share(credits, alpha)
            assert share == pytest.approx(expected, abs=1e-9)
            assert share == pytest.approx(alpha_power_shares(credits, alpha).max(), abs=1e-9)
            assert share >= previous - 1e-12  # non-decreasing in α for fixed credits
            previous = share
    _, _, summary = stored
    al = summary["alpha"]
    assert al["identity_max_abs_error"] <= 1e-9  # the run's payments obey c_top^α / Σ c^α
    low, high = al["per_alpha"]["1"]["observed"]["top_share"], al["per_alpha"]["16"]["observed"]["top_share"]
    assert high["mean"] > low["mean"]
    for e in al["per_alpha"].values():
        assert 0.0 <= e["observed"]["gini"]["mean"] <= e["observed"]["gini_limit"]["mean"] + 1e-9


def test_figures_redraw_from_the_stored_results(stored, cli, pngs):
    out, frame, summary = stored
    first = [p.name for p in pngs(out / "figures", minimum=3)]
    shutil.rmtree(out / "figures")
    result = cli("figures", out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in pngs(out / "figures", minimum=3)] == first
    again = registry()["equilibrium"].figures(frame, summary, out / "redrawn")
    assert sorted(p.name for p in again) == sorted(first)
