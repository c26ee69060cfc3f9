"""The vectorised built-in strategies make exactly the choices of their per-principal references
when both read the same random numbers (sim.strategy_arrays' contract), and the simulation's
array hot path gives the same bytes for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from sim import CooperativeModel
from sim.strategies import BestResponse, EpsilonGreedy, Fixed, Imitation, RegretMatching, action_grid
from sim.strategy_arrays import Peers, make_array

GRID = action_grid([0.25, 0.5, 1.0], [0.0, 1.0])


def _payoffs(rng: np.random.Generator, n: int, played: np.ndarray, ties: bool) -> np.ndarray:
    """Payoffs that depend on the action (so learning matters), with noise; rounded to make ties."""
    base = np.array([0.0, 1.0, 1.5, 2.0, 1.2, 2.5, 0.5])[played % 7]
    x = base + rng.normal(scale=1.0, size=n)
    return np.round(x) if ties else x


@pytest.mark.parametrize("cls", [Fixed, BestResponse, EpsilonGreedy, RegretMatching, Imitation])
@pytest.mark.parametrize("ties", [False, True])
def test_array_form_chooses_what_the_references_choose(cls, ties):
    n, periods, seed = 9, 60, 7
    knobs = {"epsilon": 0.3, "imitation_rate": 0.5}
    group = make_array(cls, GRID, n, table=GRID, **knobs)
    if cls is BestResponse:
        refs = [BestResponse(GRID, None, refresh=0.15) for _ in range(n)]
    elif cls is EpsilonGreedy:
        refs = [EpsilonGreedy(GRID, None, 0.3) for _ in range(n)]
    elif cls is Imitation:
        refs = [Imitation(GRID, None, 0.5) for _ in range(n)]
    else:
        refs = [cls(GRID, None) for _ in range(n)]
    draws_a, draws_r = np.random.default_rng(seed), np.random.default_rng(seed)
    for ref in refs:
        ref.rng = draws_r
    pay_a, pay_r = np.random.default_rng(1), np.random.default_rng(1)
    last_payoff, last_action = np.full(n, -np.inf), np.full(n, len(GRID) - 1)
    positions = np.arange(n)
    for _ in range(periods):
        u = draws_a.random((n, group.draws)) if group.draws else np.zeros((n, 0))
        chosen, explored = group.choose(u, positions, Peers(last_payoff, last_action))
        expected, expected_explored = [], []
        for i, ref in enumerate(refs):
            ref.explored = False
            peers = [(float(last_payoff[j]), GRID[last_action[j]]) for j in range(n) if j != i]
            expected.append(ref.choose(peers))
            expected_explored.append(ref.explored)
        assert chosen.tolist() == expected
        assert explored.tolist() == expected_explored
        payoff_a = _payoffs(pay_a, n, chosen, ties)
        payoff_r = _payoffs(pay_r, n, np.array(expected), ties)
        group.observe(chosen, payoff_a)
        for ref, j, x in zip(refs, expected, payoff_r.tolist(), strict=True):
            ref.observe(j, x)
        last_payoff, last_action = payoff_a, chosen


@pytest.mark.parametrize("strategy", ["best_response", "epsilon_greedy", "regret_matching", "imitation"])
def test_same_seed_same_bytes(strategy):
    cfg = {"rounds": 12, "decision_period": 2, "training": {"mode": "surrogate"},
           "population": {"n_principals": 300, "strategy": strategy,
                          "behaviours": {"honest": 0.6, "low_quality": 0.1, "free_rider": 0.1, "sybil": 0.1,
                                         "label_flip": 0.1}}}
    a = CooperativeModel(cfg, rng=3).run().frames()
    b = CooperativeModel(cfg, rng=3).run().frames()
    c = CooperativeModel(cfg, rng=4).run().frames()
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert not a[1].equals(c[1])
