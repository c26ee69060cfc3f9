"""``contracts`` (P): budget-constrained optimal contracts in the settings of SPEC §5.

For the two-type setting and the three five-type settings the first-moment problem is solved with
:func:`economics.contracts.solve_first_moment` (binding local IC, monotone m, IR, the P-budget
``t_i ≤ E_{n|n_i≥1}[v(a(n·m))]``), checked against every IR/IC pair and the budget
(:meth:`ContractMenu.check`), against the full-constraint variant (all IC pairs, no simplification),
and against the complete-information benchmark (information rent ``u_i − f_i`` and information cost
``E[a_CI] − E[a(n·m)]``). Proportional assignment is simulated (``realise``) to show that each type's
realised model is worth ``t_i`` on average and never more than the trained model. The two-type menu
is also solved over a grid of (p_1, N) for the surfaces of P §6.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from economics.contracts import (
    ContractMenu,
    complete_information_for,
    expected_information_rent,
    information_cost,
    information_rent,
    realise,
    solve_first_moment,
    solve_full_constraints,
)
from learning.seeding import derive_seed
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, figure, grouped_bars, save
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult


def _decreasing_costs(costs: list[float]) -> list[float]:
    if any(c <= 0 for c in costs) or any(b >= a for a, b in itertools.pairwise(costs)):
        raise ValueError("unit data costs must be > 0 and strictly decreasing (type 1 most expensive)")
    return costs


class ModelSection(Section):
    """The accuracy bound and the valuation of SPEC §5."""

    k: float = Field(1.0, gt=0, description="k of the bound a(m) = 1 − (√(2k(2 + ln(m/k))) + 4)/√m")
    value_scale: float = Field(100.0, gt=0, description="v(r) = value_scale · r (money units per unit accuracy)")


class TwoTypeSection(Section):
    """Two types (P §6): the menu at one (p_1, N) and surfaces over a (p_1, N) grid."""

    costs: list[float] = Field([0.02, 0.01], min_length=2, max_length=2,
                               description="unit data costs (c_1, c_2), money per data point, c_1 > c_2")
    p1: float = Field(0.5, gt=0, lt=1, description="probability of type 1 for the menu table")
    n_participants: int = Field(10, ge=1, le=1000, description="N for the menu table")
    surface_p1: list[float] = Field([0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99], min_length=1,
                                    description="p_1 values of the surfaces (each in (0, 1))")
    surface_n: list[int] = Field([2, 3, 5, 10, 20, 30, 50, 75, 100], min_length=1,
                                 description="N values of the surfaces (each ≥ 1)")

    @field_validator("costs")
    @classmethod
    def _costs(cls, costs: list[float]) -> list[float]:
        return _decreasing_costs(costs)

    @field_validator("surface_p1")
    @classmethod
    def _probabilities(cls, values: list[float]) -> list[float]:
        if any(not 0 < v < 1 for v in values):
            raise ValueError("every p_1 must lie in (0, 1)")
        return values

    @field_validator("surface_n")
    @classmethod
    def _counts(cls, values: list[int]) -> list[int]:
        if any(v < 1 or v > 1000 for v in values):
            raise ValueError("every N must lie in [1, 1000]")
        return values


class FiveTypeSection(Section):
    """Five types (P §6): N = 10, p = 0.2 each, three cost vectors."""

    n_participants: int = Field(10, ge=1, le=60, description="N (the menu solves for any N; the complete-information "
                                "benchmark beside it solves one problem per outcome, ~N^(I−1))")
    probs: list[float] = Field([0.2] * 5, min_length=2, description="type probabilities (sum to 1)")
    settings: dict[str, list[float]] = Field(
        {"big_firm": [0.2, 0.16, 0.12, 0.08, 0.04], "small_party": [1.0, 0.85, 0.7, 0.55, 0.4],
         "mixed": [0.5, 0.4, 0.03, 0.02, 0.001]},
        description="name → unit data costs (one per type, strictly decreasing): big_firm = linspace(0.2, 0.04, "
                    "5), every type could train alone; small_party = linspace(1, 0.4, 5), none could; mixed = "
                    "big-and-small")

    @field_validator("probs")
    @classmethod
    def _simplex(cls, p: list[float]) -> list[float]:
        if any(v <= 0 for v in p) or abs(sum(p) - 1.0) > 1e-9:
            raise ValueError("probabilities must be > 0 and sum to 1")
        return p

    @field_validator("settings")
    @classmethod
    def _settings(cls, settings: dict[str, list[float]], info) -> dict[str, list[float]]:
        for name, costs in settings.items():
            try:
                _decreasing_costs(costs)
            except ValueError as exc:
                raise ValueError(f"settings.{name}: {exc}") from None
            probs = info.data.get("probs")
            if probs is not None and len(costs) != len(probs):
                raise ValueError(f"settings.{name}: one cost per type ({len(probs)} probabilities)")
        return settings


class ContractsConfig(ScenarioConfig):
    """Configuration of the ``contracts`` scenario."""

    model: ModelSection = Field(default_factory=ModelSection, description="accuracy bound and valuation")
    two_type: TwoTypeSection = Field(default_factory=TwoTypeSection, description="the two-type setting")
    five_type: FiveTypeSection = Field(default_factory=FiveTypeSection, description="the five-type settings")
    realisation_draws: int = Field(2000, ge=0, le=1_000_000,
                                   description="outcomes drawn to simulate proportional assignment (0: skip)")
    full_constraints: bool = Field(True, description="also solve the full-constraint variant and compare")


# ---------------------------------------------------------------------------------------- run
def _solve(costs: list[float], probs: list[float], n: int, cfg: ContractsConfig) -> tuple[ContractMenu, float]:
    started = time.perf_counter()
    menu = solve_first_moment(costs, probs, n, k=cfg.model.k, value_scale=cfg.model.value_scale)
    return menu, time.perf_counter() - started


def _setting(name: str, costs: list[float], probs: list[float], n: int, cfg: ContractsConfig,
             seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Solve, check, benchmark and realise one setting; returns its summary and long rows."""
    menu, seconds = _solve(costs, probs, n, cfg)
    bench = complete_information_for(menu)
    rent = information_rent(menu)
    budget = menu.budget
    table = menu.as_table()
    realised = np.full(len(costs), np.nan)
    over_budget = 0
    if cfg.realisation_draws and menu.success:  # a failed menu is reported (success, violations), not realised
        draws = realise(menu, rng=derive_seed(seed, 0xC0, len(name), *map(ord, name)), size=cfg.realisation_draws)
        present = draws.n > 0
        with np.errstate(invalid="ignore"):
            realised = np.where(present.any(0), (draws.reward_value * present).sum(0) / present.sum(0), np.nan)
        over_budget = int((draws.reward_accuracy > draws.model_accuracy[:, None] + 1e-12).sum())
    for i, row in enumerate(table):
        row.update(information_rent=float(rent[i]), budget=float(budget[i]), realised_mean_value=float(realised[i]))
    summary: dict[str, Any] = {
        "costs": list(costs), "probs": list(probs), "n_participants": n, "menu": table,
        "expected_accuracy": menu.expected_accuracy, "complete_information_accuracy": bench.expected_accuracy,
        "information_cost": information_cost(menu, bench), "expected_information_rent": expected_information_rent(menu),
        "success": bool(menu.success), "violations": menu.check().summary(), "solve_seconds": seconds,
        "realised_over_budget": over_budget,
    }
    if cfg.full_constraints:
        full = solve_full_constraints(costs, probs, n, k=cfg.model.k, value_scale=cfg.model.value_scale)
        summary["full_constraints_expected_accuracy"] = full.expected_accuracy
        summary["full_constraints_relative_gap"] = abs(full.expected_accuracy - menu.expected_accuracy) / max(
            menu.expected_accuracy, 1e-12)
    rows = [{"setting": name, "agent": f"type {r['type']}", "variable": var, "value": float(r[var])}
            for r in table for var in ("cost", "prob", "m", "t", "utility", "reservation_utility",
                                       "information_rent", "budget", "realised_mean_value")]
    for var in ("expected_accuracy", "complete_information_accuracy", "information_cost",
                "expected_information_rent", "solve_seconds"):
        rows.append({"setting": name, "variable": var, "value": float(summary[var])})
    rows.append({"setting": name, "variable": "max_violation", "value": summary["violations"]["max"]})
    return summary, rows


def _surface(cfg: ContractsConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The two-type menu over the (p_1, N) grid."""
    rows, failures = [], 0
    tt = cfg.two_type
    for p1 in tt.surface_p1:
        for n in tt.surface_n:
            menu, _ = _solve(tt.costs, [p1, 1.0 - p1], n, cfg)
            failures += not menu.success
            values = {"m_1": menu.m[0], "m_2": menu.m[1], "t_1": menu.t[0], "t_2": menu.t[1],
                      "expected_accuracy": menu.expected_accuracy, "information_cost": information_cost(menu),
                      "expected_information_rent": expected_information_rent(menu), "success": float(menu.success)}
            rows += [{"setting": "two_type_surface", "p1": p1, "n_participants": n, "variable": k, "value": float(v)}
                     for k, v in values.items()]
    frame = pd.DataFrame(rows)
    cost = frame[frame.variable == "information_cost"].value
    return {"p1": tt.surface_p1, "n_participants": tt.surface_n, "solver_failures": failures,
            "information_cost_max": float(cost.max()), "information_cost_mean": float(cost.mean())}, rows


def run(cfg: ContractsConfig, seed: int) -> ScenarioResult:
    """Solve every setting and the two-type surfaces (P)."""
    tt, ft = cfg.two_type, cfg.five_type
    settings = {"two_type": (tt.costs, [tt.p1, 1.0 - tt.p1], tt.n_participants)}
    settings.update({name: (costs, ft.probs, ft.n_participants) for name, costs in ft.settings.items()})
    summary: dict[str, Any] = {"settings": {}}
    rows: list[dict[str, Any]] = []
    for name, (costs, probs, n) in settings.items():
        summary["settings"][name], more = _setting(name, costs, probs, n, cfg, seed)
        rows += more
    summary["surface"], more = _surface(cfg)
    rows += more
    summary["all_solved"] = bool(all(s["success"] for s in summary["settings"].values())
                                 and summary["surface"]["solver_failures"] == 0)
    frame = pd.DataFrame(rows)
    menus = pd.DataFrame([{"setting": name, **row} for name, s in summary["settings"].items() for row in s["menu"]])
    overview = pd.DataFrame([{"setting": name, "E[a]": s["expected_accuracy"],
                              "E[a] complete info": s["complete_information_accuracy"],
                              "information cost": s["information_cost"],
                              "information rent": s["expected_information_rent"],
                              "max violation": s["violations"]["max"], "solve s": s["solve_seconds"]}
                             for name, s in summary["settings"].items()])
    menus = menus[["setting", "type", "cost", "m", "t", "utility", "reservation_utility", "information_rent",
                   "realised_mean_value"]]
    return ScenarioResult(frame, summary, {"menus": menus, "settings": overview})


# ------------------------------------------------------------------------------------ figures
DETERMINISTIC = ("exact solutions of the contract problem (deterministic: no replicates, no interval); "
                 "realised values: mean over the simulated draws of n")


def figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """m and t by type per setting, information rent and cost, the two-type surfaces."""
    folder = Path(folder)
    per_type = frame[frame.agent.str.startswith("type")]
    names = list(dict.fromkeys(per_type.setting))
    paths = []
    for var, label, fname in (("m", "data contributed m_i (data points)", "menu_m.png"),
                              ("t", "promised model value t_i (money)", "menu_t.png")):
        fig, axes = figure(1, len(names), width=3.2 * len(names), height=3.6)
        for ax, name in zip(axes[0], names, strict=True):
            part = per_type[per_type.setting == name]
            pivot = part.pivot_table(index="agent", columns="variable", values="value", sort=False)
            types = list(pivot.index)
            x = np.arange(len(types))
            ax.bar(x, pivot[var], color=OKABE_ITO[0], label=var)
            if var == "t":
                ax.plot(x, pivot["utility"], "o", color=OKABE_ITO[1], label="utility t − c·m")
                ax.plot(x, pivot["reservation_utility"], "_", markersize=14, mew=2, color=OKABE_ITO[3],
                        label="reservation utility f")
                if "realised_mean_value" in pivot and pivot["realised_mean_value"].notna().any():  # NaN: not drawn
                    ax.plot(x, pivot["realised_mean_value"], "x", color=OKABE_ITO[2], label="realised mean value")
            ax.set_xticks(x, [t.replace("type ", "") for t in types])
            ax.set_xlabel("type (1 = most expensive data)")
            ax.set_title(name.replace("_", " "))
            if var == "m" and pivot["m"].max() > 20 * max(pivot["m"].min(), 1e-9):
                ax.set_yscale("log")
        axes[0, 0].set_ylabel(label)
        handles, labels = axes[0, -1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8)
        fig.suptitle(DETERMINISTIC, fontsize=8, y=1.02)
        paths.append(save(fig, folder / fname))

    level = frame[(frame.agent == "") & frame.setting.isin(names)]
    fig, axes = figure(1, 2, width=9.0, height=3.6)
    cost = level[level.variable == "information_cost"].set_index("setting").value.reindex(names)
    rent = level[level.variable == "expected_information_rent"].set_index("setting").value.reindex(names)
    grouped_bars(axes[0, 0], [n.replace("_", " ") for n in names], {"information cost": list(100 * cost)})
    axes[0, 0].set_ylabel("expected accuracy lost (percentage points)")
    grouped_bars(axes[0, 1], [n.replace("_", " ") for n in names], {"information rent": list(rent)})
    axes[0, 1].set_ylabel("participants' expected rent (money)")
    for ax in axes[0]:
        ax.tick_params(axis="x", rotation=20)
    axes[0, 0].set_title("cost of private information")
    axes[0, 1].set_title("rent left to participants")
    fig.suptitle(DETERMINISTIC, fontsize=8)
    paths.append(save(fig, folder / "information.png"))

    surf = frame[frame.setting == "two_type_surface"]
    if not surf.empty:
        panels = (("expected_accuracy", "E[a] of the pooled model", 1.0),
                  ("information_cost", "information cost (accuracy pts)", 100.0),
                  ("expected_information_rent", "expected information rent (money)", 1.0),
                  ("m_1", "type-1 contribution m_1 (data points)", 1.0))
        fig, axes = figure(2, 2, width=9.5, height=7.0)
        for ax, (var, title, scale) in zip(axes.ravel(), panels, strict=True):
            grid = surf[surf.variable == var].pivot_table(index="n_participants", columns="p1", values="value")
            mesh = ax.pcolormesh(np.arange(grid.shape[1] + 1), np.arange(grid.shape[0] + 1), scale * grid.values,
                                 cmap="cividis", shading="flat")
            ax.set_xticks(np.arange(grid.shape[1]) + 0.5, [f"{p:g}" for p in grid.columns], fontsize=7)
            ax.set_yticks(np.arange(grid.shape[0]) + 0.5, [str(int(n)) for n in grid.index], fontsize=7)
            ax.set_xlabel("p_1 (share of expensive-data type)")
            ax.set_ylabel("N (participants)")
            ax.set_title(title, fontsize=9)
            ax.grid(False)
            fig.colorbar(mesh, ax=ax)
        fig.suptitle(DETERMINISTIC, fontsize=8)
        fig.tight_layout()
        paths.append(save(fig, folder / "two_type_surfaces.png"))
    return paths


SCENARIO = Scenario(
    name="contracts",
    description="P: optimal data-for-model menus (two types, three five-type settings), rent, cost, surfaces",
    config=ContractsConfig,
    run=run,
    figures=figures,
    headline=("settings.two_type.expected_accuracy", "settings.two_type.information_cost",
              "settings.mixed.expected_accuracy", "settings.mixed.information_cost"),
)
