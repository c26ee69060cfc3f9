"""``equilibrium``: does the agent-based cooperative reach what theory predicts? Three parts, each
run on ``sim.CooperativeModel`` in surrogate mode and compared with a prediction computed here:

1. **contracts (IC / IR)**: principals hold exactly the cost types the contract menu was designed
   for (``population.cost_levels`` = the mechanism's type costs). Theory: each type takes the item
   designed for it (IC) and opts out exactly when the design excludes it (IR). Measured per type:
   the share on its item, the share that opted out, and the causes of any gap (pools too small for
   the item, the sim's outside option against the design's reservation utility, rounding of rows).
2. **equal split, under-provision vs N**: symmetric members under an equal split of the model's
   revenue. Theory: at the symmetric Nash equilibrium each member contributes where its 1/N share of
   the marginal revenue equals its unit cost, ``(1/N) R'(a) a'(S·N·r) S = c``; the planner equates
   the whole marginal revenue with c. Predicted per N: the continuous equilibrium (brentq on the
   first-order condition, bounded by the pool), the pure equilibria on the agents' own action grid,
   and the planner's level; observed: mean contributed rows per member in the final window.
3. **α → large**: α-power revenue shares of one-step credit. Theory: the top member's share of the
   payments is ``c_top^α / Σ c^α`` of the round's credits and tends to 1 (winner-take-all), the Gini
   of members' payments tends to (n−1)/n. Observed per α: the top share, its value from the run's own
   credits, the Gini, the credit ratio c₂/c₁ that keeps the limit away, and participation (the
   contest effect: no closed form, reported).

Every number aggregated over replicates is an estimate with its interval (``scenarios.stats``); each
part ends in one verdict line in ``summary["verdicts"]``. Seeds: ``derive_seed(seed, 100, setting,
k)`` (contracts), ``derive_seed(seed, 200, N, k)`` (equal split), ``derive_seed(seed, 300, k)`` for
every α (the same principals meet every α, so participation is compared paired).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator
from scipy.optimize import brentq

from coopsim.errors import InputError
from economics.contracts.accuracy import GeneralisationBound
from economics.metrics import gini
from learning.partition import PARTITIONS
from learning.seeding import derive_seed
from scenarios import stats
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, estimate_band, figure, interval_caption, save
from scenarios.library._cooperative import SettleConfig, settled_verdict
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult
from sim import CooperativeConfig, CooperativeModel
from sim.strategies import strategy_class

#: two floats differ by round-off only (items of a pooled menu, payoffs of equal profiles)
ROUNDOFF = 1e-9


# ------------------------------------------------------------------------------------ configuration
def _known_strategy(name: str) -> str:
    """A strategy name the population accepts (built-in, installed or ``module:Class``)."""
    strategy_class(name, field="strategy")
    return name


class WorldSection(Section):
    """The surrogate world the three parts share: learning curve scale, valuation and market."""

    surrogate_scale: float = Field(50.0, gt=0, le=1e4,
                                   description="rows → data units of the accuracy curve: accuracy = a(scale · "
                                               "effective rows), a the generalisation bound with k = 1")
    valuation: float = Field(100.0, gt=0, le=1e6, description="value of a model per unit of accuracy, per round "
                                                              "(the principals' and the contract menu's v)")
    revenue_r0: float = Field(100.0, gt=0, le=1e6, description="market revenue per round of a perfect model (R0)")
    revenue_acc0: float = Field(0.1, ge=0, lt=1, description="accuracy below which the model earns nothing")


class ContractSetting(Section):
    """One contract design: the population's unit-cost range (the menu's types are spread over it)
    and the number of types; principals hold exactly the designed type costs."""

    label: str = Field("narrow costs", min_length=1, max_length=40, description="name in tables and figures")
    unit_cost: tuple[float, float] = Field((0.01, 0.05), description="range [low, high] of unit data costs per "
                                           "row; the menu's types are evenly spaced over it, high to low")
    types: int = Field(3, ge=1, le=6, description="cost types of the menu (mechanism.types); the population holds "
                                                  "each type's cost in equal shares")
    partition: Literal[PARTITIONS] = Field("uni", description="how the surrogate's rows are split among principals: "
                                           "'uni' gives every principal 100 rows (every pool fits every item), "
                                           "'pow' unequal pools (some too small for an item)")

    @field_validator("unit_cost")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0 < lo < hi:
            raise ValueError("a range 0 < low < high (the types must differ)")
        return value


def _default_contract_settings() -> list[ContractSetting]:
    return [ContractSetting(label="narrow costs", unit_cost=(0.01, 0.05), types=3, partition="uni"),
            ContractSetting(label="wide costs", unit_cost=(0.05, 1.0), types=3, partition="uni"),
            ContractSetting(label="wide costs, unequal pools", unit_cost=(0.05, 1.0), types=3, partition="pow")]


class ContractsPart(Section):
    """Part 1: self-selection from a contract menu (P) by principals of exactly the designed types."""

    n_principals: int = Field(30, ge=2, le=1000, description="principals per run (equal shares of each type)")
    rounds: int = Field(3, ge=1, le=1000, description="rounds per run (the menu is fixed, so choices are made in "
                                                      "round 1 and repeated)")
    capacity_quantile: float = Field(0.5, ge=0, le=1, description="mechanism.capacity_quantile: no item asks for "
                                                                  "more rows than this quantile of the pools")
    cohort: int = Field(100, ge=2, le=1000, description="mechanism.cohort: participants the menu is solved for "
                                                        "(at most n_principals)")
    tolerance: float = Field(0.05, gt=0, le=1, description="a share reaches its prediction when its whole interval "
                                                           "lies within ± this of it")
    settings: list[ContractSetting] = Field(default_factory=_default_contract_settings, min_length=1, max_length=8,
                                            description="the contract designs to test")

    @field_validator("settings")
    @classmethod
    def _labels(cls, settings: list[ContractSetting]) -> list[ContractSetting]:
        labels = [s.label for s in settings]
        if len(set(labels)) != len(labels):
            raise ValueError(f"distinct labels (got {labels})")
        return settings


class EqualSplitPart(Section):
    """Part 2: symmetric members under an equal split; contribution against N."""

    n_principals: list[int] = Field([2, 4, 8, 16], min_length=1, max_length=8,
                                    description="population sizes N compared (each 2–64, increasing)")
    unit_cost: float = Field(0.003, gt=0, le=10, description="the members' common unit data cost c per row")
    m_step: float = Field(0.05, gt=0, le=0.5, description="step of the contribution grid: m ∈ {step, 2·step, …, 1} "
                                                          "of the pool (1/step must be a whole number)")
    rounds: int = Field(800, ge=20, le=5000, description="rounds per run (one decision per round)")
    strategy: str = Field("epsilon_greedy", description="how members learn (population.strategy); epsilon_greedy's "
                          "running means average out the others' moves, best_response reacts to the latest payoff")
    epsilon: float = Field(0.05, ge=0, le=1, description="exploration rate of the strategy (population.epsilon)")
    members_use_model: bool = Field(False, description="members also use the shared model (valued beside their "
                                                      "money); false: the clean prediction, money only")
    tolerance_steps: float = Field(1.0, gt=0, le=20, description="contribution reaches its prediction when its whole "
                                                                 "interval lies within ± this many grid steps of it")

    @field_validator("n_principals")
    @classmethod
    def _sizes(cls, values: list[int]) -> list[int]:
        if any(not 2 <= v <= 64 for v in values) or any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError("sizes between 2 and 64, strictly increasing")
        return values

    @field_validator("m_step")
    @classmethod
    def _step(cls, step: float) -> float:
        if abs(1.0 / step - round(1.0 / step)) > 1e-9:
            raise ValueError("a step that divides 1 (e.g. 0.05, 0.1, 0.25)")
        return step

    _strategy = field_validator("strategy")(classmethod(lambda cls, name: _known_strategy(name)))

    @property
    def m_grid(self) -> list[float]:
        return [round(k * self.m_step, 10) for k in range(1, round(1.0 / self.m_step) + 1)]


class AlphaPart(Section):
    """Part 3: α-power revenue shares of one-step credit for growing α."""

    alphas: list[float] = Field([1.0, 2.0, 4.0, 8.0, 16.0], min_length=2, max_length=10,
                                description="α values (each ≥ 1, increasing; the first is the reference of the "
                                            "paired participation comparison)")
    n_principals: int = Field(10, ge=2, le=1000, description="principals per run")
    unit_cost: tuple[float, float] = Field((0.01, 0.05), description="range of private unit data costs per row")
    label_noise: tuple[float, float] = Field((0.0, 0.3), description="range of raw label-noise fractions (they make "
                                                                     "credits differ: members cannot clean)")
    m_grid: list[float] = Field([0.25, 0.5, 1.0], min_length=1, description="contribution fractions of the pool")
    rounds: int = Field(200, ge=10, le=5000, description="rounds per run (one decision per round)")
    strategy: str = Field("epsilon_greedy", description="how principals learn (population.strategy)")
    epsilon: float = Field(0.05, ge=0, le=1, description="exploration rate (population.epsilon)")
    tolerance: float = Field(0.05, gt=0, le=1, description="the top share reaches its limit when its whole interval "
                                                           "lies within this of 1")

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, values: list[float]) -> list[float]:
        if any(v < 1 for v in values) or any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError("α values ≥ 1, strictly increasing")
        return values

    @field_validator("unit_cost", "label_noise")
    @classmethod
    def _ranges(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError("a range 0 ≤ low ≤ high")
        return value

    @field_validator("m_grid")
    @classmethod
    def _grid(cls, values: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in values):
            raise ValueError("fractions in (0, 1]")
        return values

    _strategy = field_validator("strategy")(classmethod(lambda cls, name: _known_strategy(name)))


class EquilibriumConfig(ScenarioConfig):
    """Configuration of the ``equilibrium`` scenario."""

    replicates: int = Field(6, ge=2, le=50, description="independent seeds per arm (setting, N or α)")
    final_window: float = Field(0.25, gt=0, le=1, description="share of last rounds averaged per replicate")
    settle: SettleConfig = Field(default_factory=SettleConfig,
                                 description="when an equal-split population counts as settled (flagged otherwise)")
    world: WorldSection = Field(default_factory=WorldSection, description="learning curve, valuation and market")
    contracts: ContractsPart = Field(default_factory=ContractsPart, description="part 1: contracts, IC and IR")
    equal_split: EqualSplitPart = Field(default_factory=EqualSplitPart,
                                        description="part 2: equal split, contribution against N")
    alpha: AlphaPart = Field(default_factory=AlphaPart, description="part 3: α-power revenue shares, α → large")

    @model_validator(mode="after")
    def _consistent(self) -> EquilibriumConfig:
        if self.alpha.label_noise[1] > 1:
            raise InputError("alpha.label_noise", list(self.alpha.label_noise), "fractions in [0, 1]")
        most = max(s.types for s in self.contracts.settings)
        if self.contracts.n_principals < most:
            raise InputError("contracts.n_principals", self.contracts.n_principals,
                             f"at least the largest number of types ({most}), so that every designed type is held "
                             f"by a principal")
        return self


# ------------------------------------------------------------------------------------------- helpers
def _world(cfg: EquilibriumConfig) -> dict[str, Any]:
    w = cfg.world
    return {"training": {"mode": "surrogate", "surrogate_scale": w.surrogate_scale},
            "market": {"revenue_r0": w.revenue_r0, "revenue_acc0": w.revenue_acc0}}


def _window(rounds: int, share: float) -> int:
    """First round (1-based) of the final window."""
    return rounds - max(1, round(share * rounds)) + 1


def _est(values: list[float], cfg: EquilibriumConfig, **kw: Any) -> dict[str, Any]:
    return stats.estimate(values, level=cfg.ci_level, **kw).as_dict()


def _text(est: dict[str, Any] | None, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
    return stats.Estimate(**est).text(fmt, scale) if est else "n/a"


def _within(est: dict[str, Any], tol: float) -> str:
    """``reaches`` when the whole interval of a distance lies within ±tol, ``does not`` when it lies
    wholly outside, else ``undecided`` (also when there is no interval)."""
    if est.get("mean") is None or est.get("ci_low") is None:
        return "undecided"
    if -tol <= est["ci_low"] and est["ci_high"] <= tol:
        return "reaches"
    if est["ci_low"] > tol or est["ci_high"] < -tol:
        return "does not"
    return "undecided"


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN when there is none (no warning)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _finite_max(values: list[float | None]) -> float | None:
    """Largest finite value; None (JSON null) when there is none (e.g. no paid round)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else None


def _nanstd(values: list[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.std()) if x.size else float("nan")


def contract_type_costs(unit_cost: tuple[float, float], types: int) -> np.ndarray:
    """The unit costs (per row) of the types a contract menu is designed for: evenly spaced over the
    population's range, most expensive first — exactly as ``sim.mechanisms.contracts.Contracts``."""
    lo, hi = unit_cost
    costs = np.linspace(hi, lo, types) if types > 1 else np.array([hi])
    if types > 1 and not np.all(np.diff(costs) < 0):
        costs = np.linspace(max(hi, lo + 1e-6), lo, types)
    return costs


# ------------------------------------------------------------------------------- part 1: contracts
def _contract_run(cfg: EquilibriumConfig, setting: ContractSetting, seed: int
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One replicate of one design: the menu, and per type the measured choices and their causes."""
    part = cfg.contracts
    costs = contract_type_costs(setting.unit_cost, setting.types)
    coop = CooperativeConfig.model_validate({
        **_world(cfg),
        "training": {**_world(cfg)["training"], "partition": setting.partition},
        "population": {"n_principals": part.n_principals, "unit_cost": setting.unit_cost,
                       "cost_levels": costs.tolist(), "base_label_noise": (0.0, 0.0),
                       "valuation": cfg.world.valuation},
        "mechanism": {"kind": "contracts", "types": setting.types, "capacity_quantile": part.capacity_quantile,
                      "cohort": part.cohort},
        "rounds": part.rounds, "collect_agents": False})
    model = CooperativeModel(coop, rng=seed).run()
    mech = model.mechanism
    sol = mech.menu_solution
    scale = cfg.world.surrogate_scale
    designed = sol.costs * scale
    if not np.allclose(designed, costs, rtol=1e-12, atol=0):  # the population must hold the designed types
        raise RuntimeError(f"type costs {costs.tolist()} differ from the menu's {designed.tolist()}")
    offers = list(mech.offers)
    rows = np.array([o.rows for o in offers], dtype=float)
    value = np.array([o.value for o in offers], dtype=float)
    same = np.array([[rows[i] == rows[j] and abs(value[i] - value[j]) <= ROUNDOFF * max(1.0, abs(value[i]))
                      for j in range(len(offers))] for i in range(len(offers))])
    menu = {"costs": costs.tolist(), "m_rows": (sol.m / scale).tolist(), "rows": rows.astype(int).tolist(),
            "t": value.tolist(), "budget": sol.budget.tolist(), "reservation_utility": sol.reservation_utility.tolist(),
            "reservation_rows": (sol.reservation_m / scale).tolist(), "solved": bool(sol.success)}
    out = []
    for j, cost in enumerate(costs):
        group = [p for p in model.principals if abs(p.unit_cost - cost) <= 1e-12]
        took = np.array([p.offer for p in group])
        own_ok = np.array([t >= 0 and same[j, t] for t in took])
        util, outside = [], []
        for p in group:
            u, o = p.options(offers)
            util.append(u)
            outside.append(o)
        util, outside = np.array(util), np.array(outside)
        others = ~same[j]
        best_other = util[:, others].max(axis=1) if others.any() else np.full(len(group), -np.inf)
        best_other = np.where(np.isfinite(best_other), best_other, np.nan)  # no other item fits: no margin
        joined = took >= 0
        fits = np.array([p.pool_size >= rows[j] for p in group])
        best = util.max(axis=1)
        out.append({
            "type": j + 1, "principals": len(group),
            "on_item": float(own_ok.mean()), "on_own_index": float((took == j).mean()),
            "opted_out": float((~joined).mean()), "other_item": float((joined & ~own_ok).mean()),
            "ic_among_joiners": float(own_ok[joined].mean()) if joined.any() else float("nan"),
            # causes, measured in the sim's own terms
            "pool_fits": float(fits.mean()),
            "other_item_pool_too_small": float((joined & ~own_ok & ~fits).mean()),
            "other_item_by_choice": float((joined & ~own_ok & fits).mean()),
            # why a principal stays out: no item fits its pool, or its outside option beats the best that fits
            "fits_no_item": float(np.mean(~np.isfinite(best))),
            "outside_beats_offers": float(np.mean(np.isfinite(best) & (best <= outside))),
            "outside_beats_own_item": float(np.mean(util[:, j] <= outside)),
            "ic_margin": _nanmean(np.where(np.isfinite(util[:, j]), util[:, j], np.nan) - best_other),
            "own_item_surplus": _nanmean(np.where(np.isfinite(util[:, j]), util[:, j], np.nan) - outside),
            "sim_outside_value": float(outside.mean()),
        })
    return menu, out


CONTRACT_MEASURES = ("on_item", "on_own_index", "opted_out", "other_item", "ic_among_joiners", "pool_fits",
                     "other_item_pool_too_small", "other_item_by_choice", "fits_no_item", "outside_beats_offers",
                     "outside_beats_own_item", "ic_margin", "own_item_surplus", "sim_outside_value")
SHARE = (0.0, 1.0)


def run_contracts(cfg: EquilibriumConfig, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Part 1 over every design and replicate: per type, observed shares with intervals against
    the prediction (own item when included, opt out when excluded) and the measured causes."""
    part = cfg.contracts
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"prediction": "each type takes the item designed for it (IC) and opts out exactly when "
                                         "the design excludes it (item with 0 rows or 0 value: IR)",
                           "settings": {}}
    for s_index, setting in enumerate(part.settings):
        per_rep, menus = [], []
        for k in range(cfg.replicates):
            menu, types = _contract_run(cfg, setting, derive_seed(seed, 100, s_index, k))
            menus.append(menu)
            per_rep.append(types)
            for t in types:
                rows += [{"part": "contracts", "arm": setting.label, "agent": f"type {t['type']}", "replicate": k,
                          "variable": var, "value": float(t[var])} for var in CONTRACT_MEASURES]
        menu = menus[0]  # identical pools give identical menus; unequal pools: the first replicate's, flagged
        varies = any(m["rows"] != menu["rows"] or not np.allclose(m["t"], menu["t"]) for m in menus)
        types_out = []
        for j in range(setting.types):
            excluded = menu["rows"][j] == 0 or menu["t"][j] <= ROUNDOFF
            pred_on, pred_out = (0.0, 1.0) if excluded else (1.0, 0.0)
            col = {var: [rep[j][var] for rep in per_rep] for var in CONTRACT_MEASURES}
            entry: dict[str, Any] = {
                "type": j + 1, "cost": menu["costs"][j], "design_rows": menu["m_rows"][j], "item_rows": menu["rows"][j],
                "item_value": menu["t"][j], "budget": menu["budget"][j],
                "design_reservation_utility": menu["reservation_utility"][j],
                "design_utility": menu["t"][j] - menu["costs"][j] * menu["m_rows"][j],
                "excluded": bool(excluded), "predicted_on_item": pred_on, "predicted_opted_out": pred_out,
                "observed": {var: _est(col[var], cfg, bounds=SHARE if var not in ("ic_margin", "own_item_surplus",
                                                                                 "sim_outside_value") else None,
                                       undefined_reason="no principal of this type joined"
                                       if var == "ic_among_joiners" else "undefined in every replicate")
                             for var in CONTRACT_MEASURES},
                "distance_on_item": _est([v - pred_on for v in col["on_item"]], cfg, bounds=(-1.0, 1.0)),
                "distance_opted_out": _est([v - pred_out for v in col["opted_out"]], cfg, bounds=(-1.0, 1.0)),
            }
            entry["reaches"] = (_within(entry["distance_on_item"], part.tolerance) == "reaches"
                                and _within(entry["distance_opted_out"], part.tolerance) == "reaches")
            types_out.append(entry)
        summary = {"unit_cost": list(setting.unit_cost), "types": setting.types, "partition": setting.partition,
                   "menu": menu, "menu_varies_across_replicates": varies, "per_type": types_out,
                   "excluded_types": [t["type"] for t in types_out if t["excluded"]]}
        summary["verdict"] = _contract_verdict(setting, summary, part.tolerance)
        out["settings"][setting.label] = summary
    bad = [label for label, s in out["settings"].items() if not all(t["reaches"] for t in s["per_type"])]
    out["reaches"] = not bad
    out["verdict"] = ("contracts: reaches the prediction in every design — each type on its item, opting out "
                      "exactly when excluded" if not bad else
                      "contracts: " + " | ".join(out["settings"][label]["verdict"] for label in out["settings"]))
    return out, rows


def _contract_verdict(setting: ContractSetting, s: dict[str, Any], tol: float) -> str:
    """One line per design: reaches, or the worst type's distance and the measured causes."""
    per = s["per_type"]
    if all(t["reaches"] for t in per):
        return f"{setting.label}: reaches the prediction (every type within ±{tol:g} of its item / opt-out)"
    worst = max(per, key=lambda t: abs(t["distance_on_item"]["mean"] or 0.0))
    causes = []
    for t in per:
        if t["reaches"]:
            continue
        o = t["observed"]
        why = []
        if (o["opted_out"]["mean"] or 0) > tol and not t["excluded"]:
            if (o["outside_beats_offers"]["mean"] or 0) > tol:
                why.append(f"outside option {o['sim_outside_value']['mean']:.2f} (own standalone model, no data "
                           f"cost) ≥ every offer for {100 * o['outside_beats_offers']['mean']:.0f}%, where the design "
                           f"assumed {t['design_reservation_utility']:.2f} (training alone, paying c·m)")
            if (o["fits_no_item"]["mean"] or 0) > tol:
                why.append(f"{100 * o['fits_no_item']['mean']:.0f}% have a pool too small for any item")
        if (o["other_item_pool_too_small"]["mean"] or 0) > tol:
            why.append(f"{100 * o['other_item_pool_too_small']['mean']:.0f}% on a smaller item (pool too small)")
        if (o["other_item_by_choice"]["mean"] or 0) > tol:
            why.append(f"{100 * o['other_item_by_choice']['mean']:.0f}% prefer another item although the pool fits "
                       f"(own item's IC margin {_text(o['ic_margin'])} money: whole-row rounding breaks the "
                       f"binding local IC)")
        if t["excluded"] and (o["opted_out"]["mean"] or 0) < 1 - tol:
            why.append("an excluded type joins")
        causes.append(f"type {t['type']} (c = {t['cost']:.3g}): " + ("; ".join(why) or "see the table"))
    return (f"{setting.label}: does not: distance {_text(worst['distance_on_item'])} on item for type "
            f"{worst['type']}, because " + " / ".join(causes))


# ----------------------------------------------------------------------------- part 2: equal split
@dataclass(frozen=True)
class EqualSplitGame:
    """The stage game the equal split induces among ``n`` symmetric members (ours, from the sim's
    utilities): a member contributing ``r`` rows while the others contribute ``T_o`` earns, over its
    outside option, ``R(a(S (T_o + r))) / n − c r`` (+ ``v (a(S (T_o + r)) − a_sa)`` when members use
    the model); staying out earns 0. ``R(acc) = R0 max(0, acc − acc0) / (1 − acc0)``."""

    pool: int
    cost: float
    scale: float
    r0: float
    acc0: float
    valuation: float
    members_use_model: bool
    grid: tuple[float, ...]

    @property
    def curve(self) -> GeneralisationBound:
        return GeneralisationBound()

    @property
    def levels(self) -> np.ndarray:
        """Rows a member brings at each grid level (``round(m · pool)``, as ``Principal.rows``)."""
        return np.array([round(m * self.pool) for m in self.grid], dtype=float)

    @property
    def standalone(self) -> float:
        return float(self.curve(self.scale * self.pool))

    def revenue(self, total_rows: np.ndarray | float) -> np.ndarray:
        acc = self.curve(self.scale * np.maximum(0.0, np.asarray(total_rows, dtype=float)))
        return self.r0 * np.maximum(0.0, acc - self.acc0) / (1.0 - self.acc0)

    def payoff(self, rows: np.ndarray | float, others: float, members: int) -> np.ndarray:
        """Per-round surplus over the outside option of a member bringing ``rows`` among ``members``."""
        r = np.asarray(rows, dtype=float)
        total = others + r
        u = self.revenue(total) / members - self.cost * r
        if self.members_use_model:
            u = u + self.valuation * (self.curve(self.scale * total) - self.standalone)
        return u

    def marginal(self, total_rows: np.ndarray | float, share: float) -> np.ndarray:
        """d/d row of ``share · R(a(S T))`` (+ the member's own model value): the FOC's left side."""
        m = self.scale * np.maximum(0.0, np.asarray(total_rows, dtype=float))
        live = self.curve(m) > self.acc0
        slope = self.curve.derivative(m) * self.scale
        out = share * self.r0 / (1.0 - self.acc0) * slope * live
        if self.members_use_model:
            out = out + self.valuation * slope
        return out

    def _solve(self, n: int, share: float) -> tuple[float, str]:
        """Largest symmetric r in [0, pool] with ``marginal(n r, share) = c`` on the curve's concave
        branch (brentq); the pool bound or 0 where the condition has no interior root."""
        def g(r: float) -> float:
            return float(self.marginal(n * r, share)) - self.cost

        if g(self.pool) >= 0:
            return float(self.pool), "pool bound"
        rs = np.geomspace(1e-6 * self.pool, self.pool, 4001)
        gs = self.marginal(n * rs, share) - self.cost
        pos = np.flatnonzero(gs >= 0)
        if pos.size == 0:
            return 0.0, "no contribution pays"
        j = int(pos[-1])
        return float(brentq(g, rs[j], rs[j + 1], xtol=1e-12, rtol=1e-12)), "interior"

    def nash(self, n: int) -> dict[str, Any]:
        """The continuous symmetric Nash equilibrium: ``(1/n) R' a'(S n r) S (+ v a' S) = c``."""
        r, kind = self._solve(n, 1.0 / n)
        fine = np.linspace(0.0, self.pool, 20001)
        best = float(fine[np.argmax(self.payoff(fine, (n - 1) * r, n))])
        return {"rows": r, "kind": kind, "joins": bool(self.payoff(r, (n - 1) * r, n) >= -ROUNDOFF),
                "global_best_response": bool(abs(best - r) <= self.pool / 20000 + 1e-9 * self.pool
                                             or self.payoff(r, (n - 1) * r, n) >= self.payoff(best, (n - 1) * r, n)
                                             - ROUNDOFF)}

    def planner(self, n: int) -> dict[str, Any]:
        """The planner's symmetric level: the whole marginal revenue (+ n members' model value) = c."""
        r, kind = self._solve(n, 1.0)

        def welfare(x: float) -> float:
            return float(n * self.payoff(x, (n - 1) * x, n))

        r = max((r, 0.0, float(self.pool)), key=welfare)
        return {"rows": r, "kind": kind}

    def grid_equilibria(self, n: int) -> list[dict[str, Any]]:
        """Pure Nash equilibria on the agents' grid with every member joined, at one grid level or two
        adjacent ones: from no profile can a member gain by another grid level or by staying out."""
        levels = self.levels
        found: dict[float, dict[str, Any]] = {}
        for i in range(len(levels)):
            for j in (i, i + 1):
                if j >= len(levels):
                    continue
                for k in ([n] if j == i else range(1, n)):
                    profile = [levels[i]] * k + [levels[j]] * (n - k)
                    total = float(sum(profile))
                    ok = True
                    for r in set(profile):
                        base = float(self.payoff(r, total - r, n))
                        best = max(float(self.payoff(levels, total - r, n).max()), 0.0)
                        if best > base + ROUNDOFF * max(1.0, abs(base)):
                            ok = False
                            break
                    if ok:
                        mean = total / n
                        found.setdefault(round(mean, 9), {"mean_rows": mean, "levels": sorted(set(profile)),
                                                          "members_at_lower": k})
        return [found[key] for key in sorted(found)]

    def gains(self, rows: np.ndarray, joined: np.ndarray) -> np.ndarray:
        """Per principal: the most it gains per round by a unilateral change of grid level (or by
        joining / leaving), given the others' current rows (0 at an equilibrium)."""
        members = int(joined.sum())
        total = float(rows[joined].sum())
        out = np.zeros(len(rows))
        for i in range(len(rows)):
            if joined[i]:
                others, size = total - rows[i], members
                current = float(self.payoff(rows[i], others, size))
            else:
                others, size, current = total, members + 1, 0.0
            best = max(float(self.payoff(self.levels, others, size).max()), 0.0)
            out[i] = best - current
        return out


def _game(cfg: EquilibriumConfig, pool: int) -> EqualSplitGame:
    es, w = cfg.equal_split, cfg.world
    return EqualSplitGame(pool=pool, cost=es.unit_cost, scale=w.surrogate_scale, r0=w.revenue_r0,
                          acc0=w.revenue_acc0, valuation=w.valuation, members_use_model=es.members_use_model,
                          grid=tuple(es.m_grid))


def _equal_split_config(cfg: EquilibriumConfig, n: int) -> CooperativeConfig:
    es = cfg.equal_split
    return CooperativeConfig.model_validate({
        **_world(cfg),
        "population": {"n_principals": n, "unit_cost": (es.unit_cost, es.unit_cost), "base_label_noise": (0.0, 0.0),
                       "m_grid": es.m_grid, "q_grid": [0.0], "strategy": es.strategy, "epsilon": es.epsilon,
                       "valuation": cfg.world.valuation},
        "mechanism": {"kind": "equal_split", "members_use_model": es.members_use_model},
        "rounds": es.rounds, "decision_period": 1, "collect_agents": False})


def _equal_split_run(cfg: EquilibriumConfig, n: int, seed: int) -> tuple[dict[str, float], list[dict[str, Any]], int]:
    """One replicate at one N: per-round series and the final-window measures."""
    es = cfg.equal_split
    model = CooperativeModel(_equal_split_config(cfg, n), rng=seed)
    pools = {p.pool_size for p in model.principals}
    if len(pools) != 1:
        raise RuntimeError(f"symmetric members need equal pools; got {sorted(pools)}")
    pool = pools.pop()
    game = _game(cfg, pool)
    start = _window(es.rounds, cfg.final_window)
    series: dict[str, list[float]] = {"rows": [], "rows_deliberate": [], "participation": []}
    gains, money, surplus_error = [], [], 0.0
    for r in range(1, es.rounds + 1):
        model.step()
        ps = model.principals
        joined = np.array([p.joined for p in ps])
        rows = np.array([p.rows for p in ps], dtype=float)
        deliberate = np.array([p.joined and not p.explored for p in ps])
        series["rows"].append(float(rows[joined].mean()) if joined.any() else float("nan"))
        series["rows_deliberate"].append(float(rows[deliberate].mean()) if deliberate.any() else float("nan"))
        series["participation"].append(float(joined.mean()))
        if r >= start:
            gains.append(float(game.gains(rows, joined).mean()))
            money.append(float(np.mean([p.money for p in ps if p.joined])) if joined.any() else float("nan"))
            if joined.any():  # the game's payoff is the sim's surplus (a check of the derivation)
                own = np.array([float(game.payoff(p.rows, rows[joined].sum() - p.rows, int(joined.sum())))
                                for p in ps if p.joined])
                surplus_error = max(surplus_error, float(np.max(np.abs(own - [p.surplus for p in ps if p.joined]))))
    model_df, _ = model.frames()
    window = slice(start - 1, es.rounds)
    changes = float(model_df["action_changes"].iloc[window].mean())

    def drift(variable: str) -> float:  # second half of the final window minus the first
        v = model_df[variable].iloc[window].to_numpy()
        half = len(v) // 2
        return float(v[half:].mean() - v[:half].mean()) if len(v) > 1 else float("nan")
    final = {"rows_deliberate": float(np.nanmean(series["rows_deliberate"][start - 1:])),
             "rows": float(np.nanmean(series["rows"][start - 1:])),
             "participation": float(np.mean(series["participation"][start - 1:])),
             "nash_gap": float(np.mean(gains)), "money_noise": _nanstd(money),
             "action_changes": changes, "welfare_drift": drift("welfare") / (cfg.world.valuation * n),
             "participation_drift": drift("participation"),
             "surplus_error": surplus_error}
    rows_out = [{"part": "equal_split", "arm": f"N={n}", "n": n, "round": r + 1, "variable": var, "value": v}
                for var, values in series.items() for r, v in enumerate(values)]
    return final, rows_out, pool


ES_MEASURES = ("rows_deliberate", "rows", "participation", "nash_gap", "money_noise", "action_changes",
               "welfare_drift", "participation_drift", "surplus_error")


def run_equal_split(cfg: EquilibriumConfig, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Part 2: per N, the predictions and the observed contribution with its interval."""
    es = cfg.equal_split
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {
        "prediction": "symmetric Nash: (1/N)·R'(a)·a'(S·N·r)·S = c per member (pool-bounded); grid: pure equilibria "
                      "on the agents' own grid; planner: R'(a)·a'(S·N·r)·S = c",
        "unit_cost": es.unit_cost, "m_grid": es.m_grid, "strategy": es.strategy, "epsilon": es.epsilon,
        "members_use_model": es.members_use_model, "per_n": {}}
    for n in es.n_principals:
        finals, pool = [], 0
        for k in range(cfg.replicates):
            final, more, pool = _equal_split_run(cfg, n, derive_seed(seed, 200, n, k))
            finals.append(final)
            for r in more:
                r["replicate"] = k
            rows += more
            rows += [{"part": "equal_split", "arm": f"N={n}", "n": n, "replicate": k, "variable": f"final.{var}",
                      "value": float(final[var])} for var in ES_MEASURES]
        game = _game(cfg, pool)
        nash, planner, grid = game.nash(n), game.planner(n), game.grid_equilibria(n)
        grid_means = [g["mean_rows"] for g in grid]
        observed = [f["rows_deliberate"] for f in finals]
        # distance to the nearest grid equilibrium (to the continuous one when the grid has none)
        targets = grid_means or [nash["rows"]]
        nearest = [min(targets, key=lambda t, o=o: abs(o - t)) for o in observed]
        entry = {
            "pool_rows": pool, "grid_rows": game.levels.astype(int).tolist(),
            "predicted_rows": nash["rows"], "predicted_kind": nash["kind"], "predicted_joins": nash["joins"],
            "predicted_global_best_response": nash["global_best_response"],
            "predicted_grid_rows": grid_means, "grid_equilibria": grid,
            "planner_rows": planner["rows"], "planner_kind": planner["kind"],
            "under_provision": planner["rows"] - nash["rows"],
            "predicted_participation": 1.0 if nash["joins"] else 0.0,
            "observed": {var: _est([f[var] for f in finals], cfg,
                                   bounds=SHARE if var == "participation" else
                                   (0.0, float("inf")) if var in ("nash_gap", "money_noise") else None)
                         for var in ES_MEASURES},
            "distance_grid": _est([o - t for o, t in zip(observed, nearest, strict=True)], cfg),
            "distance_continuous": _est([o - nash["rows"] for o in observed], cfg),
            "distance_planner": _est([o - planner["rows"] for o in observed], cfg, verdict=True),
        }
        entry["settling"] = settled_verdict(entry["observed"], cfg.settle)
        tol = es.tolerance_steps * es.m_step * pool
        entry["tolerance_rows"] = tol
        entry["reaches"] = _within(entry["distance_grid"], tol)
        out["per_n"][str(n)] = entry
    per = out["per_n"]
    ns = es.n_principals
    predicted = [per[str(n)]["predicted_rows"] for n in ns]
    out["predicted_decreasing"] = bool(all(b <= a + ROUNDOFF for a, b in itertools.pairwise(predicted)))
    out["observed_decreasing"] = {
        f"N={b} − N={a}": stats.unpaired(_obs_of(rows, b), _obs_of(rows, a), level=cfg.ci_level).as_dict()
        for a, b in itertools.pairwise(ns)}
    out["verdict"] = _equal_split_verdict(out, cfg)
    out["settling_warnings"] = [
        f"equal split N={n}: NOT SETTLED — {'; '.join(e['settling']['reasons'])}; its contribution may describe a "
        f"transient (raise equal_split.rounds to check)"
        for n, e in ((n, per[str(n)]) for n in ns) if not e["settling"]["settled"]]
    return out, rows


def _obs_of(rows: list[dict[str, Any]], n: int) -> list[float]:
    return [r["value"] for r in rows if r["variable"] == "final.rows_deliberate" and r.get("n") == n]


def _equal_split_verdict(out: dict[str, Any], cfg: EquilibriumConfig) -> str:
    per = out["per_n"]
    distances = ", ".join(f"N={n} {_text(e['distance_grid'])}" for n, e in per.items())
    falls = all(d["verdict"] == "negative" for d in out["observed_decreasing"].values())
    trend = ("The comparative static holds: contribution falls with N at every step (unpaired, interval below 0)"
             if falls else "Contribution does not fall significantly at every step of N")
    # under-provision: where theory puts the planner above the equilibrium, is the ABM below the planner?
    under = {n: e for n, e in per.items() if e["planner_rows"] > e["predicted_rows"] + e["tolerance_rows"]}
    below = [n for n, e in under.items() if e["distance_planner"].get("verdict") == "negative"]
    provision = (f"it stays below the planner's level wherever theory predicts under-provision "
                 f"(N = {', '.join(below)})" if under and len(below) == len(under) else
                 f"it stays below the planner's level at N = {', '.join(below) or 'none'} of "
                 f"{', '.join(under) or 'none'} where theory predicts under-provision")
    if all(e["reaches"] == "reaches" for e in per.values()):
        return (f"equal split: reaches the prediction for every N (within ±{cfg.equal_split.tolerance_steps:g} grid "
                f"step of the grid equilibrium: {distances} rows). {trend}; {provision}")
    worst_n, worst = max(per.items(), key=lambda kv: abs(kv[1]["distance_grid"]["mean"] or 0.0))
    grid = worst["predicted_grid_rows"]
    grid_text = ("grid equilibrium " + ", ".join(f"{g:.3g}" for g in grid)) if grid else "no grid equilibrium"
    return (f"equal split: does not: distance to the grid equilibrium {distances} rows per member (tolerance "
            f"±{worst['tolerance_rows']:.3g}); worst N={worst_n}: observed "
            f"{_text(worst['observed']['rows_deliberate'])} vs {grid_text} (continuous {worst['predicted_rows']:.3g}, "
            f"planner {worst['planner_rows']:.3g}), because the equilibrium is flat: a member would gain only "
            f"{_text(worst['observed']['nash_gap'])} money per round by its best grid deviation, while its money "
            f"share moves by {_text(worst['observed']['money_noise'])} per round (s.d.) with the others' moves, so "
            f"payoff-based learning ({out['strategy']}, ε = {out['epsilon']:g}) cannot tell the levels apart; "
            f"population settled: {'yes' if worst['settling']['settled'] else 'no'}. {trend}; {provision}")


# ---------------------------------------------------------------------------------- part 3: α shares
def theoretical_top_share(credits: np.ndarray, alpha: float) -> float:
    """Top share of α-power revenue shares (V5) for these credits: ``max c^α / Σ c^α`` with negative
    credits clipped to 0 and an equal split when all are 0 (the mechanism's defaults)."""
    c = np.clip(np.asarray(credits, dtype=float), 0.0, None)
    if c.size == 0:
        return float("nan")
    top = float(c.max())
    if top == 0.0:
        return 1.0 / c.size
    with np.errstate(under="ignore"):
        powered = np.power(c / top, alpha)
    return float(1.0 / powered.sum())


def _alpha_run(cfg: EquilibriumConfig, alpha: float, seed: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    part = cfg.alpha
    coop = CooperativeConfig.model_validate({
        **_world(cfg),
        "population": {"n_principals": part.n_principals, "unit_cost": part.unit_cost,
                       "base_label_noise": part.label_noise, "m_grid": part.m_grid, "q_grid": [0.0],
                       "strategy": part.strategy, "epsilon": part.epsilon, "valuation": cfg.world.valuation},
        "mechanism": {"kind": "revenue_shares", "alpha": alpha},
        "rounds": part.rounds, "decision_period": 1, "collect_agents": False})
    model = CooperativeModel(coop, rng=seed)
    start = _window(part.rounds, cfg.final_window)
    names = ("top_share", "top_share_theory", "top_share_limit", "gini", "gini_limit", "credit_ratio",
             "credit_ratio_power", "participation")
    series: dict[str, list[float]] = {k: [] for k in names}
    error = 0.0
    for _ in range(part.rounds):
        model.step()
        members = [p for p in model.principals if p.joined]
        series["participation"].append(len(members) / len(model.principals))
        pay = np.array([p.money for p in members])
        credit = np.clip(np.array([p.credit for p in members]), 0.0, None)
        paid = bool(members) and pay.sum() > 0
        top = float(pay.max() / pay.sum()) if paid else float("nan")
        theory = theoretical_top_share(credit, alpha) if paid else float("nan")
        if paid:
            error = max(error, abs(top - theory))
        ordered = np.sort(credit)[::-1]
        series["top_share"].append(top)
        series["top_share_theory"].append(theory)
        # α → ∞ with these credits: winner-take-all, a tie at the top split equally
        series["top_share_limit"].append(1.0 / int(np.sum(credit == ordered[0])) if paid and ordered[0] > 0
                                         else float("nan"))
        series["gini"].append(gini(pay) if paid else float("nan"))
        series["gini_limit"].append((len(members) - 1) / len(members) if paid else float("nan"))
        ratio = float(ordered[1] / ordered[0]) if len(ordered) > 1 and ordered[0] > 0 else float("nan")
        series["credit_ratio"].append(ratio)
        series["credit_ratio_power"].append(ratio ** alpha)
    final = {k: float(np.nanmean(v[start - 1:])) if np.isfinite(v[start - 1:]).any() else float("nan")
             for k, v in series.items()}
    final["identity_error"] = error
    rows = [{"part": "alpha", "arm": f"α={alpha:g}", "alpha": alpha, "round": r + 1, "variable": k, "value": v}
            for k in ("top_share", "top_share_theory", "gini", "participation") for r, v in enumerate(series[k])]
    return final, rows


ALPHA_MEASURES = ("top_share", "top_share_theory", "top_share_limit", "gini", "gini_limit", "credit_ratio",
                  "credit_ratio_power", "participation", "identity_error")


def run_alpha(cfg: EquilibriumConfig, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Part 3: per α, top share and Gini against their values from the run's own credits and their
    limits; participation paired against the first α."""
    part = cfg.alpha
    rows: list[dict[str, Any]] = []
    finals: dict[float, list[dict[str, float]]] = {}
    for alpha in part.alphas:
        finals[alpha] = []
        for k in range(cfg.replicates):
            final, more = _alpha_run(cfg, alpha, derive_seed(seed, 300, k))
            finals[alpha].append(final)
            for r in more:
                r["replicate"] = k
            rows += more
            rows += [{"part": "alpha", "arm": f"α={alpha:g}", "alpha": alpha, "replicate": k,
                      "variable": f"final.{var}", "value": float(final[var])} for var in ALPHA_MEASURES]
    ref = part.alphas[0]
    out: dict[str, Any] = {
        "prediction": "top share of payments = c_top^α / Σ c^α of the round's credits (an identity of V5), → 1 as "
                      "α → ∞ (winner-take-all; ties split); Gini of members' payments → (n−1)/n; participation: no "
                      "closed form (the contest effect), reported",
        "alphas": part.alphas, "reference_alpha": ref, "per_alpha": {}}
    for alpha in part.alphas:
        col = {var: [f[var] for f in finals[alpha]] for var in ALPHA_MEASURES}
        entry: dict[str, Any] = {
            "observed": {var: _est(col[var], cfg, bounds=None if var == "identity_error" else SHARE,
                                   undefined_reason="no paid round with members in the final window")
                         for var in ALPHA_MEASURES},
            "identity_max_abs_error": _finite_max(col["identity_error"]),
            "limit": 1.0,
            "distance_to_limit": _est([v - 1.0 for v in col["top_share"]], cfg, bounds=(-1.0, 0.0)),
            "gini_distance_to_limit": _est([g - lim for g, lim in zip(col["gini"], col["gini_limit"], strict=True)],
                                           cfg, bounds=(-1.0, 1.0)),
        }
        if alpha != ref:
            entry["participation_vs_reference"] = stats.paired(
                col["participation"], [f["participation"] for f in finals[ref]], level=cfg.ci_level,
                bounds=SHARE).as_dict()
            entry["top_share_vs_reference"] = stats.paired(
                col["top_share"], [f["top_share"] for f in finals[ref]], level=cfg.ci_level, bounds=SHARE).as_dict()
        entry["reaches_limit"] = _within(entry["distance_to_limit"], part.tolerance)
        out["per_alpha"][f"{alpha:g}"] = entry
    out["identity_max_abs_error"] = _finite_max([e["identity_max_abs_error"] for e in out["per_alpha"].values()])
    out["verdict"] = _alpha_verdict(out, cfg)
    return out, rows


def _alpha_verdict(out: dict[str, Any], cfg: EquilibriumConfig) -> str:
    per = out["per_alpha"]
    first, last = per[f"{out['alphas'][0]:g}"], per[f"{out['alphas'][-1]:g}"]
    a_max = f"{out['alphas'][-1]:g}"
    o = last["observed"]
    part_delta = last.get("participation_vs_reference", {})
    contest = (f"participation {_text(first['observed']['participation'])} at α={out['alphas'][0]:g} → "
               f"{_text(o['participation'])} at α={a_max} (paired Δ {_text(part_delta)}, {part_delta.get('verdict')}:"
               f" the contest effect)")
    err = out["identity_max_abs_error"]
    identity = (f"the payments' top share equals c_top^α/Σc^α of the run's own credits in every paid round (max "
                f"|error| {err:.1e})" if err is not None else "no paid round: the identity is untested")
    if last["reaches_limit"] == "reaches":
        return (f"α → large: reaches the prediction: top share {_text(o['top_share'])} at α={a_max} (limit 1), Gini "
                f"{_text(o['gini'])} vs (n−1)/n {_text(o['gini_limit'])}; {identity}; {contest}")
    return (f"α → large: does not (yet) at α={a_max}: top share {_text(o['top_share'])} (from "
            f"{_text(first['observed']['top_share'])} at α={out['alphas'][0]:g}), distance to the limit 1 "
            f"{_text(last['distance_to_limit'])}, because the top two credits are close: c₂/c₁ = "
            f"{_text(o['credit_ratio'])}, so (c₂/c₁)^α = {_text(o['credit_ratio_power'])} still splits the pay; "
            f"Gini "
            f"{_text(o['gini'])} vs its limit (n−1)/n = {_text(o['gini_limit'])}; {identity}; {contest}")


# ---------------------------------------------------------------------------------------------- run
def run(cfg: EquilibriumConfig, seed: int) -> ScenarioResult:
    """The three parts, each against its prediction."""
    contracts, rows_c = run_contracts(cfg, seed)
    equal_split, rows_e = run_equal_split(cfg, seed)
    alpha, rows_a = run_alpha(cfg, seed)
    frame = pd.DataFrame(rows_c + rows_e + rows_a)
    for col, fill in (("round", -1), ("agent", ""), ("n", -1), ("alpha", float("nan"))):
        frame[col] = frame[col].fillna(fill) if col in frame else fill
    frame["n"] = frame["n"].astype("int64")
    summary: dict[str, Any] = {
        "intervals": stats.describe(cfg.ci_level), "replicates": cfg.replicates,
        "contracts": contracts, "equal_split": equal_split, "alpha": alpha,
        "settling_warnings": equal_split.pop("settling_warnings"),
    }
    summary["verdicts"] = [contracts["verdict"], equal_split["verdict"], alpha["verdict"]]
    return ScenarioResult(frame, summary, summary_tables(summary))


def summary_tables(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Terminal tables: one per part, and the verdicts."""
    c_rows = []
    for label, s in summary["contracts"]["settings"].items():
        for t in s["per_type"]:
            o = t["observed"]
            c_rows.append({"design": label, "type": t["type"], "cost": f"{t['cost']:.3g}",
                           "item (rows, value)": f"{t['item_rows']}, {t['item_value']:.2f}",
                           "predicted": "opt out" if t["excluded"] else "own item",
                           "on own item": _text(o["on_item"]), "opted out": _text(o["opted_out"]),
                           "pool fits": _text(o["pool_fits"]), "no item fits": _text(o["fits_no_item"]),
                           "outside beats offers": _text(o["outside_beats_offers"]),
                           "outside vs design f": f"{o['sim_outside_value']['mean']:.2f} vs "
                                                  f"{t['design_reservation_utility']:.2f}",
                           "reaches": "yes" if t["reaches"] else "no"})
    e_rows = []
    for n, e in summary["equal_split"]["per_n"].items():
        o = e["observed"]
        e_rows.append({"N": int(n), "Nash (continuous)": f"{e['predicted_rows']:.3g}",
                       "Nash (grid)": ", ".join(f"{g:.3g}" for g in e["predicted_grid_rows"]) or "none",
                       "planner": f"{e['planner_rows']:.3g}", "observed rows/member": _text(o["rows_deliberate"]),
                       "incl. exploration": _text(o["rows"]), "distance to grid eq.": _text(e["distance_grid"]),
                       "participation": _text(o["participation"]), "Nash gap (money)": _text(o["nash_gap"]),
                       "settled": "yes" if e["settling"]["settled"] else "NO",
                       "reaches": e["reaches"]})
    a_rows = []
    for a, e in summary["alpha"]["per_alpha"].items():
        o = e["observed"]
        a_rows.append({"α": a, "top share": _text(o["top_share"]), "from credits": _text(o["top_share_theory"]),
                       "limit": "1", "Gini": _text(o["gini"]), "Gini limit (n−1)/n": _text(o["gini_limit"]),
                       "c₂/c₁": _text(o["credit_ratio"]), "participation": _text(o["participation"]),
                       "Δ participation vs first α": _text(e.get("participation_vs_reference"))})
    verdicts = pd.DataFrame({"part": ["contracts", "equal split", "α → large"], "verdict": summary["verdicts"]})
    return {"contracts": pd.DataFrame(c_rows), "equal_split": pd.DataFrame(e_rows), "alpha": pd.DataFrame(a_rows),
            "verdicts": verdicts}


# ------------------------------------------------------------------------------------------ figures
def figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """One figure per part, from the stored results: observed with intervals against predicted."""
    folder = Path(folder)
    level = summary["intervals"]["level"]
    caption = interval_caption(summary["replicates"], level)
    return [_contracts_figure(summary, folder, caption), _equal_split_figure(frame, summary, folder, caption),
            _alpha_figure(summary, folder, caption)]


def _bar(ax: Any, x: float, est: dict[str, Any] | None, color: str, width: float, label: str | None) -> None:
    if not est or est.get("mean") is None:
        ax.annotate("n/a", (x, 0), ha="center", va="bottom", fontsize=7, color="dimgrey")
        return
    mean = 100 * est["mean"]
    err = None
    if est.get("ci_low") is not None:
        err = [[mean - 100 * est["ci_low"]], [100 * est["ci_high"] - mean]]
    ax.bar(x, mean, width, color=color, yerr=err, capsize=3, label=label, error_kw={"linewidth": 1.0})


def _contracts_figure(summary: dict[str, Any], folder: Path, caption: str) -> Path:
    settings = summary["contracts"]["settings"]
    fig, axes = figure(1, len(settings), width=4.6 * len(settings) + 0.6, height=4.6, sharey=True)
    width = 0.27
    bars = (("on_item", "predicted_on_item", OKABE_ITO[0], "on its own item (or an identical one)"),
            ("other_item", None, "grey", "on another item"),
            ("opted_out", "predicted_opted_out", OKABE_ITO[3], "opted out"))
    for ax, (label, s) in zip(axes[0], settings.items(), strict=True):
        for j, t in enumerate(s["per_type"]):
            o = t["observed"]
            for b, (key, pred, colour, name) in enumerate(bars):
                x = j + (b - 1) * width
                _bar(ax, x, o[key], colour, width, name if j == 0 else None)
                predicted = 100 * t[pred] if pred else 0.0
                ax.plot([x], [predicted], marker="_", markersize=13, mew=2.5, color="black", linestyle="",
                        label="predicted by the design" if j == 0 and b == 0 else None)
            ax.plot([j + width], [100 * o["outside_beats_offers"]["mean"]], marker="x", color=OKABE_ITO[1],
                    markersize=8, mew=2, linestyle="",
                    label="outside option beats every offer that fits" if j == 0 else None)
            if (o["fits_no_item"]["mean"] or 0) > 0:
                ax.plot([j + width], [100 * o["fits_no_item"]["mean"]], marker="P", color=OKABE_ITO[4], markersize=7,
                        linestyle="", label="pool holds no item at all")
            if o["pool_fits"]["mean"] is not None and o["pool_fits"]["mean"] < 1:
                ax.plot([j - width], [100 * o["pool_fits"]["mean"]], marker="v", color=OKABE_ITO[2], markersize=7,
                        linestyle="", label="pool holds its own item" if j == 0 else None)
        ax.set_xticks(range(len(s["per_type"])),
                      [f"type {t['type']}: c = {t['cost']:.3g}\nitem {t['item_rows']} rows, {t['item_value']:.1f}"
                       for t in s["per_type"]], fontsize=7)
        lo, hi = s["unit_cost"]
        ax.set_title(f"{label}\ncosts [{lo:g}, {hi:g}] per row, '{s['partition']}' pools", fontsize=9)
        ax.set_ylim(0, 110)
    axes[0, 0].set_ylabel("principals of the type (%)")
    handles, labels = [], []
    for ax in axes[0]:  # one legend for all panels (a marker may appear only in some)
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8)
    fig.suptitle("contracts: does each designed type take its own item (IC) and opt out only when excluded (IR)?\n"
                 f"item = (rows asked, model value promised); final round of each replicate; {caption}", fontsize=9)
    fig.tight_layout()
    return save(fig, folder / "equilibrium_contracts.png")


def _equal_split_figure(frame: pd.DataFrame, summary: dict[str, Any], folder: Path, caption: str) -> Path:
    es = summary["equal_split"]
    per = es["per_n"]
    ns = [int(n) for n in per]
    fig, axes = figure(1, 2, width=12.0, height=4.6)
    ax = axes[0, 0]
    x = np.arange(len(ns))
    estimate_band(ax, list(x), [per[str(n)]["observed"]["rows_deliberate"] for n in ns], color=OKABE_ITO[0],
                  label="observed (ABM), deliberate choices", marker="o")
    ax.plot(x, [per[str(n)]["predicted_rows"] for n in ns], "--", color="black", label="Nash, continuous (FOC)")
    for i, n in enumerate(ns):
        grid = per[str(n)]["predicted_grid_rows"]
        ax.plot([i] * len(grid), grid, "D", color=OKABE_ITO[1], markersize=6, linestyle="",
                label="Nash on the agents' grid" if i == 0 else None)
    ax.plot(x, [per[str(n)]["planner_rows"] for n in ns], ":", color=OKABE_ITO[2], marker="s", markersize=4,
            label="planner (social optimum)")
    ax.set_xticks(x, [str(n) for n in ns])
    ax.set_xlabel("members N")
    ax.set_ylabel("rows contributed per member\n(mean of the final rounds)")
    _log_rows(ax)
    ax.legend(fontsize=7)
    ax.set_title(f"under-provision: equal split of revenue, c = {es['unit_cost']:g} per row\n{caption}", fontsize=9)
    ax = axes[0, 1]
    series = frame[(frame.get("part") == "equal_split") & (frame.variable == "rows_deliberate")] \
        if "part" in frame else frame.iloc[0:0]
    for j, n in enumerate(ns):
        s = series[series.n == n].pivot_table(index="round", columns="replicate", values="value", aggfunc="first")
        step = max(1, len(s) // 100)  # about 100 points per line
        s = s.iloc[::step]
        ests = [stats.estimate(row.tolist(), level=summary["intervals"]["level"]) for _, row in s.iterrows()]
        estimate_band(ax, list(s.index), ests, color=OKABE_ITO[j % 8], label=f"N = {n}", marker=None)
        ax.axhline(per[str(n)]["predicted_rows"], color=OKABE_ITO[j % 8], linestyle="--", linewidth=0.9)
    rounds = summary.get("config", {}).get("equal_split", {}).get("rounds")
    if rounds:
        start = _window(int(rounds), float(summary["config"].get("final_window", 0.25)))
        ax.axvspan(start, rounds, color="grey", alpha=0.1, linewidth=0, label="final window (averaged)")
    ax.set_xlabel("round (the first rounds try every action once: exploration, not shown)")
    ax.set_ylabel("rows per member (deliberate choices)")
    _log_rows(ax)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.set_title(f"learning ({es['strategy']}, ε = {es['epsilon']:g}); dashed: continuous Nash\n{caption}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, folder / "equilibrium_equal_split.png")


def _log_rows(ax: Any) -> None:
    """A log axis of rows with plain tick labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_yscale("log")
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)]
    lo, hi = ax.get_ylim()
    shown = [t for t in ticks if lo <= t <= hi]
    ax.set_yticks(shown, [str(t) for t in shown])
    ax.yaxis.set_minor_formatter(NullFormatter())


def _alpha_figure(summary: dict[str, Any], folder: Path, caption: str) -> Path:
    al = summary["alpha"]
    per = al["per_alpha"]
    keys = list(per)
    alphas = [float(a) for a in keys]
    fig, axes = figure(1, 4, width=17.0, height=4.3)
    ax = axes[0, 0]
    estimate_band(ax, alphas, [per[a]["observed"]["top_share"] for a in keys], color=OKABE_ITO[0],
                  label="observed: top payment / all payments", scale=100.0, bounds=(0.0, 100.0))
    ax.plot(alphas, [100 * (per[a]["observed"]["top_share_theory"]["mean"] or np.nan) for a in keys], "x",
            color="black", markersize=8, label="c_top^α / Σ c^α of the run's credits")
    ax.axhline(100, color=OKABE_ITO[3], linestyle="--", linewidth=1, label="limit α → ∞ (winner-take-all)")
    ax.set_ylim(0, 105)
    ax.set_ylabel("top member's share of payments (%)")
    ax.set_title("top share → 1?", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[0, 1]
    estimate_band(ax, alphas, [per[a]["observed"]["gini"] for a in keys], color=OKABE_ITO[0],
                  label="observed Gini of members' payments", bounds=(0.0, 1.0))
    estimate_band(ax, alphas, [per[a]["observed"]["gini_limit"] for a in keys], color=OKABE_ITO[3],
                  label="its limit (n−1)/n, n = members present", linestyle="--", bounds=(0.0, 1.0))
    ax.set_ylim(0, 1)
    ax.set_ylabel("Gini")
    ax.set_title("Gini → (n−1)/n?", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[0, 2]
    estimate_band(ax, alphas, [per[a]["observed"]["credit_ratio"] for a in keys], color=OKABE_ITO[4],
                  label="c₂/c₁: second / top credit", bounds=(0.0, 1.0))
    estimate_band(ax, alphas, [per[a]["observed"]["credit_ratio_power"] for a in keys], color=OKABE_ITO[5],
                  label="(c₂/c₁)^α: the runner-up's weight", bounds=(0.0, 1.0), linestyle="--")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("ratio")
    ax.set_title("why the limit is not reached: close credits", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[0, 3]
    estimate_band(ax, alphas, [per[a]["observed"]["participation"] for a in keys], color=OKABE_ITO[2],
                  label="members / principals", scale=100.0, bounds=(0.0, 100.0))
    ax.set_ylim(0, 105)
    ax.set_ylabel("participation (%)")
    ax.set_title("the contest effect: who stays", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    for ax in axes[0]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
        ax.minorticks_off()
        ax.set_xlabel("α")
    fig.suptitle(f"α-power revenue shares of one-step credit: mean of the final rounds per replicate; {caption}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, folder / "equilibrium_alpha.png")


SCENARIO = Scenario(
    name="equilibrium",
    description="equilibrium vs theory: contracts IC/IR, equal-split under-provision vs N, α-power shares as α grows",
    config=EquilibriumConfig,
    run=run,
    figures=figures,
    headline=("equal_split.per_n.*.observed.rows_deliberate", "equal_split.per_n.*.predicted_rows",
              "alpha.per_alpha.*.observed.top_share", "alpha.per_alpha.*.observed.participation",
              "contracts.reaches"),
)
