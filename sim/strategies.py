"""How principals choose actions (SPEC §6): fixed, myopic best response on observed payoffs,
ε-greedy and regret matching over an action grid, and imitation of better-off peers.

An action is ``(join, m, q)``: stay out (``join=False``), or join contributing the fraction ``m`` of
one's data pool with the fraction ``q`` of noisy labels cleaned.

The classes here are the per-principal form: the interface a plug-in strategy implements, and the
reference the simulation's vectorised built-ins (``sim.strategy_arrays``) are tested against. Each
built-in draws exactly two uniforms from its generator per choice (``u0``: whether to explore or
imitate, ``u1``: which candidate), and picks the ``⌊u1·k⌋``-th of ``k`` candidates in index order —
the rule the vectorised form applies to a whole population at once, so that both make the same
choices from the same numbers. Generators are seeded from the model's seed, never global state.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from coopsim.errors import InputError
from coopsim.plugins import GROUPS, resolve


class Action(NamedTuple):
    """A principal's choice for one decision period."""

    join: bool
    m: float
    q: float


OUT = Action(False, 0.0, 0.0)


def action_grid(m_grid: Sequence[float], q_grid: Sequence[float], *, clean: bool = True) -> list[Action]:
    """Staying out plus joining with every (m, q) of the grids (``clean=False``: q fixed at 0)."""
    qs = list(q_grid) if clean else [0.0]
    return [OUT] + [Action(True, float(m), float(q)) for m in m_grid if m > 0 for q in dict.fromkeys(qs)]


def pick(candidates: Sequence[int], u: float) -> int:
    """The ``⌊u·k⌋``-th of ``k`` candidates (``u`` uniform in [0, 1)): a uniform choice."""
    return candidates[min(int(u * len(candidates)), len(candidates) - 1)]


class Strategy:
    """Base class of every strategy (built-in or plug-in): ``choose(peers)`` an action index, then
    ``observe(index, payoff)`` with the payoff of the decision period it played.

    A plug-in subclasses it; it is built as ``cls(actions, rng)`` with the principal's action grid
    (``actions[i]`` is an :class:`Action`; index 0 is staying out) and a seeded ``random.Random`` it
    must use for every random choice. Set ``uses_peers = True`` to receive, in ``choose``, the last
    period's (payoff, action) of a few random other principals.

    Settling (has the population reached the behaviour the mechanism induces?) counts the principals
    whose *deliberate* choice changed between decisions: a strategy sets ``self.explored = True`` in
    ``choose`` when that choice was exploration (a random try), so it does not count; a strategy that
    randomises every choice (a mixed strategy, e.g. regret matching) sets ``mixed = True`` and is
    judged by the drift of payoffs only; one that never adapts sets ``adapts = False``."""

    uses_peers: ClassVar[bool] = False
    mixed: ClassVar[bool] = False
    adapts: ClassVar[bool] = True

    def __init__(self, actions: Sequence[Action], rng: random.Random, start: int | None = None) -> None:
        self.actions = list(actions)
        self.rng = rng
        self.current = len(self.actions) - 1 if start is None else start
        #: whether the last ``choose`` explored (a random try) rather than chose deliberately
        self.explored = False

    def choose(self, peers: Sequence[tuple[float, Action]] = ()) -> int:
        return self.current

    def observe(self, index: int, payoff: float) -> None:
        """Learn from the payoff of the action just played."""


class Fixed(Strategy):
    """Always the same action (the grid's last one, full contribution, unless ``start`` is given)."""

    adapts = False


class _Estimates(Strategy):
    """Keeps the running mean payoff of every action played."""

    def __init__(self, actions: Sequence[Action], rng: random.Random, start: int | None = None) -> None:
        super().__init__(actions, rng, start)
        self.mean = [0.0] * len(self.actions)
        self.count = [0] * len(self.actions)

    def observe(self, index: int, payoff: float) -> None:
        self.count[index] += 1
        self.mean[index] += (payoff - self.mean[index]) / self.count[index]

    def _best(self, u: float) -> int:
        """The ``⌊u·k⌋``-th untried action (trying every action once is exploration), else of the
        ``k`` actions with the highest estimate."""
        untried = [i for i, c in enumerate(self.count) if c == 0]
        self.explored = bool(untried)
        if untried:
            return pick(untried, u)
        top = max(self.mean)
        return pick([i for i, v in enumerate(self.mean) if v == top], u)


class BestResponse(_Estimates):
    """Myopic best response on observed payoffs: play each action once, then the action whose
    latest observed payoff is highest (payoffs move as others adapt, so only the latest counts).
    Ours: with probability ``refresh`` an action is re-tried at random, so that estimates taken when
    the cooperative was young (a worse model, other members) do not freeze a principal out forever."""

    def __init__(self, actions: Sequence[Action], rng: random.Random, refresh: float = 0.05,
                 start: int | None = None) -> None:
        super().__init__(actions, rng, start)
        self.refresh = refresh

    def observe(self, index: int, payoff: float) -> None:
        self.count[index] += 1
        self.mean[index] = payoff

    def choose(self, peers: Sequence[tuple[float, Action]] = ()) -> int:
        u0, u1 = self.rng.random(), self.rng.random()
        if u0 < self.refresh:
            self.current = pick(range(len(self.actions)), u1)
            self.explored = True
        else:
            self.current = self._best(u1)
        return self.current


class EpsilonGreedy(_Estimates):
    """ε-greedy bandit over the grid: explore a uniformly random action with probability ε,
    otherwise play the best running-mean payoff."""

    def __init__(self, actions: Sequence[Action], rng: random.Random, epsilon: float = 0.1,
                 start: int | None = None) -> None:
        super().__init__(actions, rng, start)
        self.epsilon = epsilon

    def choose(self, peers: Sequence[tuple[float, Action]] = ()) -> int:
        u0, u1 = self.rng.random(), self.rng.random()
        if u0 < self.epsilon:
            self.current = pick(range(len(self.actions)), u1)
            self.explored = True
        else:
            self.current = self._best(u1)
        return self.current


class RegretMatching(_Estimates):
    """Regret matching (Hart & Mas-Colell 2000), bandit form: the payoff an action would have earned
    is estimated by its running mean; cumulative regrets ``R_a += û_a − u_played`` and the next action
    is drawn with probability ∝ max(R_a, 0) (uniform when no regret is positive). A mixed strategy:
    its play keeps changing at equilibrium, so settling judges it by payoff drift only."""

    mixed = True

    def __init__(self, actions: Sequence[Action], rng: random.Random, start: int | None = None) -> None:
        super().__init__(actions, rng, start)
        self.regret = [0.0] * len(self.actions)

    def observe(self, index: int, payoff: float) -> None:
        super().observe(index, payoff)
        for a in range(len(self.actions)):
            if self.count[a]:
                self.regret[a] += self.mean[a] - payoff

    def choose(self, peers: Sequence[tuple[float, Action]] = ()) -> int:
        _, u1 = self.rng.random(), self.rng.random()
        untried = [i for i, c in enumerate(self.count) if c == 0]
        if untried:
            self.current = pick(untried, u1)
            return self.current
        cumulative, acc = [], 0.0
        for r in self.regret:
            acc += max(r, 0.0)
            cumulative.append(acc)
        if acc <= 0:
            self.current = pick(range(len(self.actions)), u1)
        else:  # the first action whose cumulative positive regret exceeds u1 · total
            x = u1 * acc
            self.current = next(i for i, c in enumerate(cumulative) if x < c)
        return self.current


class Imitation(Strategy):
    """Imitation of better-off peers: with probability ``rate``, look at one random peer (its payoff
    and action of the last completed period) and copy its action if it earned more than oneself; the
    action is mapped to the nearest one in one's own grid (peers may have other grids)."""

    uses_peers = True

    def __init__(self, actions: Sequence[Action], rng: random.Random, rate: float = 0.3,
                 start: int | None = None) -> None:
        super().__init__(actions, rng, start)
        self.rate = rate
        self.last = float("-inf")

    def observe(self, index: int, payoff: float) -> None:
        self.last = payoff

    def choose(self, peers: Sequence[tuple[float, Action]] = ()) -> int:
        u0, u1 = self.rng.random(), self.rng.random()
        if peers and u0 < self.rate:
            payoff, action = peers[pick(range(len(peers)), u1)]
            if payoff > self.last:
                self.current = self.nearest(action)
        return self.current

    def nearest(self, action: Action) -> int:
        """Index of the own action closest to ``action`` (see :func:`nearest`)."""
        return nearest(self.actions, action)


def nearest(actions: Sequence[Action], action: Action) -> int:
    """Index of the action of ``actions`` closest to ``action`` (same join decision first, then
    |Δm| + |Δq|; the first of equals)."""
    return min(range(len(actions)), key=lambda i: (actions[i].join != action.join,
                                                   abs(actions[i].m - action.m) + abs(actions[i].q - action.q)))


#: the built-in strategies by name
BUILTIN_STRATEGIES: dict[str, type[Strategy]] = {
    "fixed": Fixed,
    "best_response": BestResponse,
    "epsilon_greedy": EpsilonGreedy,
    "regret_matching": RegretMatching,
    "imitation": Imitation,
}


def strategy_class(name: Any, *, field: str = "population.strategy") -> type[Strategy]:
    """The class a strategy name names: built-in, installed plug-in (entry-point group
    ``coopsim.strategies``) or ``"module:Class"`` — a :class:`Strategy` subclass."""
    cls = resolve(name, field=field, builtins=BUILTIN_STRATEGIES, group=GROUPS["strategy"])
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise InputError(field, name, f"a subclass of sim.strategies.Strategy; {name!r} is {cls!r}")
    return cls


def make_strategy(name: str, actions: Sequence[Action], rng: random.Random, *, epsilon: float = 0.1,
                  imitation_rate: float = 0.3, start: int | None = None) -> Strategy:
    """A strategy by name (see :func:`strategy_class`). Built-ins take the population's knobs; a
    plug-in class is built as ``cls(actions, rng)``."""
    cls = strategy_class(name)
    if cls is BestResponse:
        return BestResponse(actions, rng, refresh=epsilon / 2, start=start)
    if cls is EpsilonGreedy:
        return EpsilonGreedy(actions, rng, epsilon, start)
    if cls is Imitation:
        return Imitation(actions, rng, imitation_rate, start)
    if cls in (Fixed, RegretMatching):
        return cls(actions, rng, start)
    return cls(actions, rng)
