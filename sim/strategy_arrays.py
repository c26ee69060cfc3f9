"""The built-in strategies for many principals at once: the hot path of large populations.

A :class:`StrategyArray` holds the state of every principal that shares one built-in strategy and
one action grid as numpy arrays (one row per principal) and chooses for all of them in one
vectorised call. It applies exactly the per-principal rule of its reference class in
``sim.strategies`` to the same random numbers: each principal's choice reads two uniforms
``(u0, u1)`` — ``u0`` decides exploration (or imitation), ``u1`` picks the ``⌊u1·k⌋``-th of ``k``
candidates in index order — so a group fed ``u`` of shape ``(n, 2)`` chooses what ``n`` reference
objects would, fed the same numbers in order (``tests/sim/test_strategy_arrays.py``).

Plug-in strategies keep the per-principal interface; only the built-ins have an array form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from sim.strategies import BestResponse, EpsilonGreedy, Fixed, Imitation, RegretMatching, Strategy, nearest

#: draws of each principal's choice (u0, u1)
DRAWS = 2


def pick(mask: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise: the index of the ``⌊u·k⌋``-th True of ``mask`` (``k`` Trues in the row, ≥ 1)."""
    k = mask.sum(axis=1)
    j = np.minimum((u * k).astype(np.int64), k - 1)
    return np.argmax(np.cumsum(mask, axis=1) > j[:, None], axis=1)


def pick_any(n_actions: int, u: np.ndarray) -> np.ndarray:
    """A uniform action index from ``u`` (the ``⌊u·A⌋``-th)."""
    return np.minimum((u * n_actions).astype(np.int64), n_actions - 1)


class Peers:
    """What imitators may observe of the whole population: each principal's payoff and action of the
    last completed decision period (``last_action`` indexes ``actions``, the model's table of every
    action any principal can play; −1 for none)."""

    def __init__(self, last_payoff: np.ndarray, last_action: np.ndarray) -> None:
        self.last_payoff = last_payoff
        self.last_action = last_action


class StrategyArray:
    """The state of ``n`` principals sharing one built-in strategy (``reference``) and one action grid.

    ``choose(u, positions, peers)`` returns each principal's action index and whether the choice was
    exploration; ``observe(played, payoff)`` learns from the payoffs of the period just played."""

    reference: ClassVar[type[Strategy]] = Fixed
    draws: ClassVar[int] = DRAWS

    def __init__(self, actions: Sequence, n: int, start: int | None = None) -> None:
        self.actions = list(actions)
        self.n = n
        self.current = np.full(n, len(self.actions) - 1 if start is None else start, dtype=np.int64)

    @property
    def mixed(self) -> bool:
        return self.reference.mixed

    @property
    def adapts(self) -> bool:
        return self.reference.adapts

    def choose(self, u: np.ndarray, positions: np.ndarray, peers: Peers) -> tuple[np.ndarray, np.ndarray]:
        return self.current.copy(), np.zeros(self.n, dtype=bool)

    def observe(self, played: np.ndarray, payoff: np.ndarray) -> None:
        """Learn from the payoff of the actions just played (aligned with the group's rows)."""


class FixedArray(StrategyArray):
    """:class:`sim.strategies.Fixed`: the same action every time (it draws nothing)."""

    reference = Fixed
    draws = 0


class _EstimatesArray(StrategyArray):
    """Running mean payoff of every action played (``mean``, ``count``: n × actions)."""

    def __init__(self, actions: Sequence, n: int, start: int | None = None) -> None:
        super().__init__(actions, n, start)
        self.mean = np.zeros((n, len(self.actions)))
        self.count = np.zeros((n, len(self.actions)), dtype=np.int64)
        self._rows = np.arange(n)

    def observe(self, played: np.ndarray, payoff: np.ndarray) -> None:
        rows = self._rows
        self.count[rows, played] += 1
        self.mean[rows, played] += (payoff - self.mean[rows, played]) / self.count[rows, played]

    def _best(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An untried action (exploration), else one of the highest estimates; and whether untried."""
        untried = self.count == 0
        some = untried.any(axis=1)
        top = self.mean == self.mean.max(axis=1, keepdims=True)
        return pick(np.where(some[:, None], untried, top), u), some


class _ExploringArray(_EstimatesArray):
    """Explore a uniform action when ``u0 < rate``, else the best estimate."""

    rate = 0.0

    def choose(self, u: np.ndarray, positions: np.ndarray, peers: Peers) -> tuple[np.ndarray, np.ndarray]:
        explore = u[:, 0] < self.rate
        best, untried = self._best(u[:, 1])
        self.current = np.where(explore, pick_any(len(self.actions), u[:, 1]), best)
        return self.current.copy(), explore | untried


class BestResponseArray(_ExploringArray):
    """:class:`sim.strategies.BestResponse`: the latest observed payoff of each action counts."""

    reference = BestResponse

    def __init__(self, actions: Sequence, n: int, refresh: float = 0.05, start: int | None = None) -> None:
        super().__init__(actions, n, start)
        self.rate = refresh

    def observe(self, played: np.ndarray, payoff: np.ndarray) -> None:
        self.count[self._rows, played] += 1
        self.mean[self._rows, played] = payoff


class EpsilonGreedyArray(_ExploringArray):
    """:class:`sim.strategies.EpsilonGreedy`."""

    reference = EpsilonGreedy

    def __init__(self, actions: Sequence, n: int, epsilon: float = 0.1, start: int | None = None) -> None:
        super().__init__(actions, n, start)
        self.rate = epsilon


class RegretMatchingArray(_EstimatesArray):
    """:class:`sim.strategies.RegretMatching` (``regret``: n × actions)."""

    reference = RegretMatching

    def __init__(self, actions: Sequence, n: int, start: int | None = None) -> None:
        super().__init__(actions, n, start)
        self.regret = np.zeros((n, len(self.actions)))

    def observe(self, played: np.ndarray, payoff: np.ndarray) -> None:
        super().observe(played, payoff)
        self.regret += np.where(self.count > 0, self.mean - payoff[:, None], 0.0)

    def choose(self, u: np.ndarray, positions: np.ndarray, peers: Peers) -> tuple[np.ndarray, np.ndarray]:
        u1 = u[:, 1]
        untried = self.count == 0
        some = untried.any(axis=1)
        cumulative = np.cumsum(np.maximum(self.regret, 0.0), axis=1)
        total = cumulative[:, -1]
        by_regret = np.argmax(u1[:, None] * total[:, None] < cumulative, axis=1)
        choice = np.where(total > 0, by_regret, pick_any(len(self.actions), u1))
        if some.any():
            choice = np.where(some, pick(np.where(some[:, None], untried, True), u1), choice)
        self.current = choice
        return choice.copy(), np.zeros(self.n, dtype=bool)


class ImitationArray(StrategyArray):
    """:class:`sim.strategies.Imitation`: with probability ``rate`` look at one uniformly drawn other
    principal of the whole population (``u1``) and copy its last action if it earned more."""

    reference = Imitation

    def __init__(self, actions: Sequence, n: int, table: Sequence, rate: float = 0.3,
                 start: int | None = None) -> None:
        super().__init__(actions, n, start)
        self.rate = rate
        self.last = np.full(n, -np.inf)
        #: the nearest own action to every action of the model's table (and −1 → keep)
        self.nearest = np.array([nearest(self.actions, a) for a in table], dtype=np.int64)

    def observe(self, played: np.ndarray, payoff: np.ndarray) -> None:
        self.last = np.asarray(payoff, dtype=float).copy()

    def choose(self, u: np.ndarray, positions: np.ndarray, peers: Peers) -> tuple[np.ndarray, np.ndarray]:
        total = len(peers.last_payoff)
        if total > 1:
            other = np.minimum((u[:, 1] * (total - 1)).astype(np.int64), total - 2)
            other += other >= positions
            seen = peers.last_action[other]
            copy = (u[:, 0] < self.rate) & (peers.last_payoff[other] > self.last) & (seen >= 0)
            self.current = np.where(copy, self.nearest[np.maximum(seen, 0)], self.current)
        return self.current.copy(), np.zeros(self.n, dtype=bool)


#: the array form of each built-in strategy class
ARRAY_FORMS: dict[type[Strategy], type[StrategyArray]] = {
    Fixed: FixedArray, BestResponse: BestResponseArray, EpsilonGreedy: EpsilonGreedyArray,
    RegretMatching: RegretMatchingArray, Imitation: ImitationArray,
}


def make_array(cls: type[Strategy], actions: Sequence, n: int, *, table: Sequence, epsilon: float = 0.1,
               imitation_rate: float = 0.3) -> StrategyArray:
    """The array form of the built-in ``cls`` for ``n`` principals, with the population's knobs as
    :func:`sim.strategies.make_strategy` passes them."""
    if cls is BestResponse:
        return BestResponseArray(actions, n, refresh=epsilon / 2)
    if cls is EpsilonGreedy:
        return EpsilonGreedyArray(actions, n, epsilon)
    if cls is Imitation:
        return ImitationArray(actions, n, table, imitation_rate)
    return ARRAY_FORMS[cls](actions, n)
