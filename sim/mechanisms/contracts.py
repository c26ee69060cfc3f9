"""Budget-constrained contracts (P) posted by the coordinator: a menu solved for its belief about
cost types; each principal self-selects the item that maximises its utility or opts out; realised
rewards are proportional copies of the trained model, never better than it."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from coopsim.errors import InputError, check
from economics.contracts import solve_first_moment
from sim.mechanisms.base import ByMember, Cooperative, Mechanism, MechanismSettings, Offer, Payout, RoundView


class ContractSettings(MechanismSettings):
    kind: Literal["contracts"] = "contracts"
    types: PositiveInt = Field(3, description="cost types the coordinator believes in, evenly spaced over the "
                                              "population's unit-cost range and equally likely")
    capacity_quantile: float = Field(0.5, ge=0.0, le=1.0, description="no item asks for more rows than this "
                                                                      "quantile of the principals' pools")
    cohort: PositiveInt = Field(100, description="the menu is solved for at most this many participants "
                                                 "(the pooled-data distribution is convolved, not enumerated: "
                                                 "a thousand participants solve in seconds)")

    def check_with(self, cooperative: Any) -> None:
        if cooperative.population.unit_cost[0] <= 0:
            raise InputError("population.unit_cost", cooperative.population.unit_cost,
                             "a range with low > 0 under contracts (cost types are divided by)")


class Contracts(Mechanism):
    """The coordinator's menu (P): cost types spread over the population's range, equally likely; a
    row is worth ``rows_per_unit`` data points of the accuracy curve; no item asks for more than the
    ``capacity_quantile`` of the pools (ours: P has no capacity, finite pools make it necessary). A
    member that took item j receives a copy of the trained model scaled to ``t_j / budget_j`` of its
    accuracy (never above the shared model's)."""

    Settings = ContractSettings
    summary = "budget-constrained optimal contracts: a menu of (rows, model copy) items, self-selected (P)"
    sells_model = False
    settings: ContractSettings

    def __init__(self, settings: MechanismSettings, cooperative: Cooperative) -> None:
        super().__init__(settings, cooperative)
        s = self.settings
        lo, hi = cooperative.unit_cost
        n_types = s.types
        type_costs = np.linspace(hi, lo, n_types) if n_types > 1 else np.array([hi])
        if n_types > 1 and not np.all(np.diff(type_costs) < 0):
            type_costs = np.linspace(max(hi, lo + 1e-6), lo, n_types)
        scale = cooperative.rows_per_unit
        pools = np.asarray(cooperative.pool_rows, dtype=float)
        capacity = scale * max(1.0, float(np.quantile(pools, s.capacity_quantile)))
        cohort = min(len(cooperative.principals), s.cohort)
        self.menu_solution = solve_first_moment(type_costs / scale, np.full(n_types, 1.0 / n_types), cohort,
                                                value_scale=cooperative.valuation, m_max=capacity)
        sol = self.menu_solution
        # a failed solve can ask for negative data or promise more than the trained model: never post it
        check(sol.success, "mechanism.kind", "contracts",
              f"settings whose contract menu solves (cohort N={cohort}, {n_types} cost types in "
              f"[{lo}, {hi}] per row, capacity {capacity / scale:.0f} rows): {sol.message}")
        self.ratio = np.minimum(1.0, np.divide(sol.t, sol.budget, out=np.zeros(n_types), where=sol.budget > 0))
        rows = np.ceil(sol.m / scale - 1e-6).astype(int)
        self.offers = tuple(Offer(int(r), float(t)) for r, t in zip(rows, sol.t, strict=True))

    def menu(self) -> tuple[Offer, ...]:
        return self.offers

    def pay(self, view: RoundView) -> Payout:
        offers = np.asarray(view.offers, dtype=np.int64)
        took = offers >= 0  # a proportional copy of the trained model: never above the shared model
        return Payout({}, ByMember(view.member_ids[took], view.accuracy * self.ratio[offers[took]]))
