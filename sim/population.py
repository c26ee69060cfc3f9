"""The principals' state as numpy columns: the per-round hot path works on whole arrays.

Each principal (a Mesa ``Agent``, ``sim.agents.Principal``) is a row: its agent object reads and
writes its row, while the model computes decisions, payments and payoffs for every row at once.
Row ``i`` is the principal with ``index == i`` (sybil identities are separate rows sharing an
``owner``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.config import BEHAVIOURS
from sim.strategies import Action

#: behaviours whose action is imposed: they always join with their whole pool and clean nothing
ATTACKERS = ("free_rider", "label_flip", "random_gradient", "scaled_gradient")
ATTACK = Action(True, 1.0, 0.0)
#: behaviour names by code (``Population.behaviour`` holds codes)
CODES = {name: k for k, name in enumerate(BEHAVIOURS)}

#: behaviour names by code, as an array (indexed by ``Population.behaviour``)
_NAMES = np.array(BEHAVIOURS, dtype=object)
#: per-round outcome columns (reset or overwritten every round)
OUTCOMES = ("credit", "money", "model_value", "reward", "utility", "period_payoff")


class Population:
    """Columns of ``n`` principals. Fixed at creation: ``owner``, ``behaviour`` (codes of
    :data:`sim.config.BEHAVIOURS`), ``unit_cost``, ``label_noise``, ``pool_size``, ``share`` (1/k for
    a sybil's k identities) and ``standalone_accuracy``. Decisions: ``join``, ``m``, ``q``,
    ``action_index`` (into the principal's grid; −1 when imposed or taken from a menu), ``action_id``
    (into the model's action table; −1 for a menu item), ``offer`` (−1: none). Settling: ``counted``,
    ``changed``, ``explored``, ``deliberate`` (the last deliberate choice, −1: none). Outcomes of the
    round: :data:`OUTCOMES`. Memory: the last completed period's ``last_payoff`` and ``last_action``."""

    def __init__(self, owner: np.ndarray, behaviour: Sequence[str], unit_cost: np.ndarray,
                 label_noise: np.ndarray) -> None:
        n = len(owner)
        self.n = n
        self.owner = np.asarray(owner, dtype=np.int64)
        codes = np.fromiter((CODES[b] for b in behaviour), dtype=np.int8, count=n)
        self.behaviour = codes
        self.unit_cost = np.asarray(unit_cost, dtype=float)
        self.label_noise = np.asarray(label_noise, dtype=float)
        self.pool_size = np.zeros(n, dtype=np.int64)
        self.share = np.ones(n)
        self.standalone_accuracy = np.zeros(n)
        self.free_rider = codes == CODES["free_rider"]
        self.attacker = np.isin(codes, [CODES[b] for b in ATTACKERS])
        self.join = np.zeros(n, dtype=bool)
        self.m = np.zeros(n)
        self.q = np.zeros(n)
        self.action_index = np.zeros(n, dtype=np.int64)
        self.action_id = np.zeros(n, dtype=np.int64)
        self.offer = np.full(n, -1, dtype=np.int64)
        self.counted = np.zeros(n, dtype=bool)
        self.changed = np.zeros(n, dtype=bool)
        self.explored = np.zeros(n, dtype=bool)
        self.deliberate = np.full(n, -1, dtype=np.int64)
        for name in OUTCOMES:
            setattr(self, name, np.zeros(n))
        self.last_payoff = np.full(n, -np.inf)
        self.last_action = np.zeros(n, dtype=np.int64)

    def is_behaviour(self, *names: str) -> np.ndarray:
        """Rows whose behaviour is one of ``names``."""
        return np.isin(self.behaviour, [CODES[b] for b in names])

    def behaviour_name(self, i: int) -> str:
        return BEHAVIOURS[int(self.behaviour[i])]

    def behaviour_names(self) -> np.ndarray:
        """Every row's behaviour name (an object array of str)."""
        return _NAMES[self.behaviour]

    # ------------------------------------------------------------------ derived columns
    def rows(self) -> np.ndarray:
        """Rows each delegate brings (what it claims, for free-riders): ``round(m · pool)`` when joined."""
        return np.where(self.join, np.round(self.m * self.pool_size), 0.0).astype(np.int64)

    def data_cost(self, rows: np.ndarray) -> np.ndarray:
        """Cost of the data actually contributed: free-riders pay nothing for noise or copies."""
        return np.where(self.free_rider, 0.0, self.unit_cost * rows)

    def effort(self, rows: np.ndarray, quality_cost: float) -> np.ndarray:
        """Label-cleaning effort ``quality_cost · q · rows``."""
        return quality_cost * self.q * rows

    def outside_value(self, valuation: float) -> np.ndarray:
        """What each principal has without the cooperative: its standalone model's value per round."""
        return valuation * self.standalone_accuracy * self.share

    # ------------------------------------------------------------------ decisions
    def note_choice(self, rows: np.ndarray, choice: np.ndarray, deliberate: np.ndarray) -> None:
        """Settling: a deliberate choice counts once there is an earlier one to compare with; it
        changed when it differs from that one (exploratory and mixed choices do not count)."""
        before = self.deliberate[rows]
        counted = deliberate & (before >= 0)
        self.counted[rows] = counted
        self.changed[rows] = counted & (choice != before)
        self.deliberate[rows] = np.where(deliberate, choice, before)

    def options(self, menu_rows: np.ndarray, menu_value: np.ndarray, valuation: float,
                rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Expected utility of every offer for every principal (``len(rows) × offers``; −inf where the
        pool is too small) and of staying out (P): the offer's value (a sybil identity receives its
        share) minus the cost of its rows (free-riders contribute noise and pay nothing)."""
        rows = np.arange(self.n) if rows is None else rows
        cost = np.where(self.free_rider[rows], 0.0, self.unit_cost[rows])
        u = self.share[rows, None] * menu_value[None, :] - cost[:, None] * menu_rows[None, :]
        u = np.where(menu_rows[None, :] <= self.pool_size[rows, None], u, -np.inf)
        return u, self.outside_value(valuation)[rows]
