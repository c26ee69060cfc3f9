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
"""

from __future__ import annotations

from collections.abc import Sequence

import mesa
import numpy as np

from learning.filters import ValueProfileSpec
from sim.mechanisms import Offer
from sim.strategies import OUT, Action, Strategy

#: behaviours whose action is imposed: they always join with their whole pool and clean nothing
ATTACKERS = ("free_rider", "label_flip", "random_gradient", "scaled_gradient")
ATTACK = Action(True, 1.0, 0.0)


class Principal(mesa.Agent):
    """A data owner and its delegate (its model is a ``sim.CooperativeModel``)."""

    def __init__(self, model: mesa.Model, *, index: int, owner: int, behaviour: str, unit_cost: float,
                 label_noise: float, pool_size: int, strategy: Strategy,
                 profile: ValueProfileSpec | None = None) -> None:
        super().__init__(model)
        self.index = index
        self.owner = owner
        self.behaviour = behaviour
        self.unit_cost = unit_cost
        self.label_noise = label_noise
        self.pool_size = pool_size
        self.strategy = strategy
        self.profile = profile
        self.action: Action = OUT
        self.action_index = 0
        #: index of the offer taken from a self-selecting mechanism's menu (-1: none)
        self.offer = -1
        self.standalone_accuracy = 0.0
        #: a sybil owner's k identities each count 1/k of its outside option and model value (ours)
        self.share = 1.0
        # per-round outcomes (the agent reporters)
        self.credit = 0.0
        self.money = 0.0
        self.model_value = 0.0
        self.reward = 0.0
        self.utility = 0.0
        self.period_payoff = 0.0
        #: settling: whether this period's choice counts (deliberate, by an adaptive principal) and
        #: whether it changed from the previous deliberate choice (action index, or offer taken)
        self.counted = False
        self.changed = False
        self._deliberate: int | None = None
        #: payoff and action of the last completed decision period (what peers can observe)
        self.last_payoff = float("-inf")
        self.last_action: Action = OUT

    # ---------------------------------------------------------------- derived quantities
    @property
    def joined(self) -> bool:
        return self.action.join

    @property
    def quality(self) -> float:
        return self.action.q

    @property
    def is_free_rider(self) -> bool:
        return self.behaviour == "free_rider"

    @property
    def rows(self) -> int:
        """Rows this principal's delegate brings (what it claims, for free-riders)."""
        return round(self.action.m * self.pool_size) if self.action.join else 0

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

    # ---------------------------------------------------------------- decisions
    def decide(self) -> None:
        """Choose this period's action (attackers always join with their whole pool and clean nothing)."""
        if self.behaviour in ATTACKERS:
            self.action_index = -1
            self.action = ATTACK
            self.counted = self.changed = False
        else:
            peers = self.model.peer_sample(self) if self.strategy.uses_peers else ()
            self.strategy.explored = False
            self.action_index = self.strategy.choose(peers)
            self.action = self.strategy.actions[self.action_index]
            deliberate = self.strategy.adapts and not (self.strategy.explored or self.strategy.mixed)
            self._note_choice(self.action_index if deliberate else None)
        self.period_payoff = 0.0

    def _note_choice(self, choice: int | None) -> None:
        """Settling: a deliberate ``choice`` counts once there is an earlier one to compare with
        (``None``: an exploratory or mixed choice, which does not count)."""
        self.counted = choice is not None and self._deliberate is not None
        self.changed = self.counted and choice != self._deliberate
        if choice is not None:
            self._deliberate = choice

    def options(self, menu: Sequence[Offer]) -> tuple[np.ndarray, float]:
        """Expected utility of each offer (−inf where the pool is too small) and of staying out: the
        offer's value (a sybil identity receives its share) minus the cost of its rows (free-riders
        contribute noise and pay nothing)."""
        rows = np.array([o.rows for o in menu], dtype=float)
        value = np.array([o.value for o in menu], dtype=float)
        cost = 0.0 if self.is_free_rider else self.unit_cost
        u = self.share * value - cost * rows
        return np.where(rows <= self.pool_size, u, -np.inf), self.outside_value

    def select_offer(self, menu: Sequence[Offer]) -> None:
        """Self-selection (P): take the offer with the highest expected utility, or stay out when
        nothing fits or staying out is better (a free-rider takes any offer that fits)."""
        self.action_index = -1
        self.period_payoff = 0.0
        u, out = self.options(menu) if len(menu) else (np.full(1, -np.inf), self.outside_value)
        j = int(np.argmax(u))
        if not np.isfinite(u[j]) or (u[j] <= out and not self.is_free_rider):
            self.offer, self.action = -1, OUT
        else:
            self.offer = j
            self.action = Action(True, menu[j].rows / self.pool_size, 0.0)
        self._note_choice(self.offer)

    def selection_regret(self, menu: Sequence[Offer]) -> float:
        """Expected utility lost against the best option among ``menu`` and staying out (0 when the
        choice maximised utility, P)."""
        u, out = self.options(menu) if len(menu) else (np.full(1, -np.inf), self.outside_value)
        fits = bool(np.isfinite(u).any())
        # a free-rider always takes an offer that fits its pool; staying out is its option only when none does
        best = float(np.max(u)) if self.is_free_rider and fits else max(float(np.max(u)), out)
        if not self.joined:
            return best - out
        return best - (float(u[self.offer]) if self.offer >= 0 else -np.inf)

    def learn(self) -> None:
        """At the end of a decision period, learn from the payoff the period brought."""
        if self.action_index >= 0:
            self.strategy.observe(self.action_index, self.period_payoff)
        self.last_payoff = self.period_payoff
        self.last_action = self.action
