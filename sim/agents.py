"""Principals: data owners with private costs, data, values and a strategy (SPEC §6).

A :class:`Principal` is a Mesa ``Agent``. Each decision period it chooses an action (stay out, or
join contributing a fraction ``m`` of its data pool with a fraction ``q`` of its noisy labels
cleaned); its delegate then trains inside the cooperative with exactly that data and the
principal's value filter, and the mechanism pays it. Its payoff per round is
``money + value of the model it ends with − data cost − cleaning effort``; its ``reward`` is what the
cooperative gives it (money plus the model's value beyond its outside option).

Behaviour types: ``honest``; ``low_quality`` (never cleans labels); ``free_rider`` (joins and claims
its pool while contributing noise, copies or nothing); ``label_flip``; ``random_gradient`` and
``scaled_gradient`` (its delegate reports a random or scaled gradient piece); ``sybil`` (one pool
split across several identities, each an agent with the same ``owner``).

A principal's state lives in its row of the model's :class:`sim.population.Population` (the model
decides, pays and books every row at once); the agent reads and writes that row. Principals with a
plug-in strategy decide one by one through :meth:`Principal.decide` and :meth:`Principal.learn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mesa
import numpy as np

from learning.profiles import ValueProfileSpec
from sim.mechanisms import Offer
from sim.population import Population
from sim.strategies import OUT, Action, Strategy

__all__ = ["Principal"]


def _column(name: str, kind: type, doc: str) -> property:
    def get(self: Principal) -> Any:
        return kind(getattr(self.population, name)[self.index])

    def set_(self: Principal, value: Any) -> None:
        getattr(self.population, name)[self.index] = value

    return property(get, set_, doc=doc)


class Principal(mesa.Agent):
    """A data owner and its delegate (its model is a ``sim.CooperativeModel``); its state is row
    ``index`` of ``population``."""

    def __init__(self, model: mesa.Model, *, index: int, population: Population, strategy: Any,
                 profile: ValueProfileSpec | None = None) -> None:
        super().__init__(model)
        self.index = index
        self.population = population
        #: the principal's strategy: its own object (plug-ins), or the array form its group shares
        self.strategy = strategy
        self.profile = profile

    owner = _column("owner", int, "the data owner (a sybil's identities share one)")
    unit_cost = _column("unit_cost", float, "private cost per contributed row")
    label_noise = _column("label_noise", float, "fraction of noisy labels in the raw pool")
    pool_size = _column("pool_size", int, "rows in the principal's pool")
    share = _column("share", float, "a sybil owner's k identities each count 1/k of its outside option (ours)")
    standalone_accuracy = _column("standalone_accuracy", float, "test accuracy of the standalone model")
    action_index = _column("action_index", int, "index into the strategy's grid (−1: imposed or a menu item)")
    offer = _column("offer", int, "index of the offer taken from a self-selecting mechanism's menu (−1: none)")
    counted = _column("counted", bool, "settling: whether this period's choice counts")
    changed = _column("changed", bool, "settling: whether the counted choice changed")
    explored = _column("explored", bool, "whether this period's choice was exploration")
    last_payoff = _column("last_payoff", float, "payoff of the last completed decision period")
    credit = _column("credit", float, "this round's credit (V3)")
    money = _column("money", float, "this round's payment")
    model_value = _column("model_value", float, "value of the model it ends the round with")
    reward = _column("reward", float, "money plus the model's value beyond the outside option")
    utility = _column("utility", float, "money + model value − data cost − effort (if joined)")
    period_payoff = _column("period_payoff", float, "utility summed over the current decision period")

    # ---------------------------------------------------------------- derived quantities
    @property
    def behaviour(self) -> str:
        return self.population.behaviour_name(self.index)

    @property
    def action(self) -> Action:
        pop, i = self.population, self.index
        return Action(bool(pop.join[i]), float(pop.m[i]), float(pop.q[i])) if pop.join[i] else OUT

    @action.setter
    def action(self, action: Action) -> None:
        pop, i = self.population, self.index
        pop.join[i], pop.m[i], pop.q[i] = action.join, action.m, action.q
        pop.action_id[i] = self.model.action_id(action)

    @property
    def last_action(self) -> Action:
        k = int(self.population.last_action[self.index])
        return self.model.actions[k] if k >= 0 else OUT  # −1: a menu item (self-selection)

    @property
    def joined(self) -> bool:
        return bool(self.population.join[self.index])

    @property
    def quality(self) -> float:
        return self.action.q

    @property
    def is_free_rider(self) -> bool:
        return bool(self.population.free_rider[self.index])

    @property
    def rows(self) -> int:
        """Rows this principal's delegate brings (what it claims, for free-riders)."""
        a = self.action
        return round(a.m * self.pool_size) if a.join else 0

    @property
    def data_cost(self) -> float:
        """Cost of the data actually contributed: free-riders pay nothing for noise or copies."""
        return 0.0 if self.is_free_rider else self.unit_cost * self.rows

    @property
    def effort(self) -> float:
        """Label-cleaning effort ``quality_cost · q · rows``."""
        return self.model.config.population.quality_cost * self.action.q * self.rows

    @property
    def surplus(self) -> float:
        """This round's utility minus the outside value: what the cooperative added (or took)."""
        return self.utility - self.outside_value

    @property
    def outside_value(self) -> float:
        """What the principal has without the cooperative: its standalone model's value per round."""
        return self.model.config.population.valuation * self.standalone_accuracy * self.share

    # ---------------------------------------------------------------- decisions (plug-in strategies)
    def decide(self) -> None:
        """Choose this period's action with the principal's own strategy object (a plug-in's; the
        model imposes attackers' actions and decides for built-in strategies in groups)."""
        strategy: Strategy = self.strategy
        peers = self.model.peer_sample(self) if strategy.uses_peers else ()
        strategy.explored = False
        self.action_index = strategy.choose(peers)
        self.action = strategy.actions[self.action_index]
        self.explored = strategy.explored
        deliberate = strategy.adapts and not (strategy.explored or strategy.mixed)
        self.population.note_choice(np.array([self.index]), np.array([self.action_index]), np.array([deliberate]))

    def learn(self) -> None:
        """At the end of a decision period, learn from the payoff the period brought."""
        if self.action_index >= 0:
            self.strategy.observe(self.action_index, self.period_payoff)

    # ---------------------------------------------------------------- self-selection (P)
    def options(self, menu: Sequence[Offer]) -> tuple[np.ndarray, float]:
        """Expected utility of each offer (−inf where the pool is too small) and of staying out."""
        rows = np.array([o.rows for o in menu], dtype=float)
        value = np.array([o.value for o in menu], dtype=float)
        u, out = self.population.options(rows, value, self.model.config.population.valuation, np.array([self.index]))
        return u[0], float(out[0])

    def selection_regret(self, menu: Sequence[Offer]) -> float:
        """Expected utility lost against the best option among ``menu`` and staying out (P)."""
        rows = np.array([self.index])
        return float(self.model.selection_regret(menu, rows)[0])

