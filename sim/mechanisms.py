"""Reward mechanisms inside the cooperative, all built on ``economics/`` (SPEC §3–§5).

Every mechanism turns one round's :class:`~sim.backends.RoundOutcome` into money paid to
principals (by id) and, for model rewards, the accuracy of the model each member ends with:

- :class:`MoneyMechanism` — ``revenue_shares`` (α-power shares of cumulative one-step credit, V4–V6,
  settled every H rounds through an :class:`economics.settlement.Ledger`), and the baselines
  ``equal_split`` and ``data_size`` (shares ∝ claimed rows). Revenue per round comes from a market
  for the model: ``R0 · max(0, acc − acc0)/(1 − acc0)``.
- :class:`CGSVMechanism` — gradient-driven model rewards (C1–C5): reputations from cosine scores of
  normalised round updates, download shares ``q_i``, and each member's reward model receives the
  per-tensor top-``q_i`` part of the shared model's change.
- :class:`ContractMechanism` — budget-constrained contracts (P): the coordinator posts a menu solved
  for its belief about cost types; each principal self-selects the item that maximises its utility or
  opts out; realised rewards are proportional copies of the trained model, never better than it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coopsim.errors import check
from economics.contracts import solve_first_moment
from economics.model_rewards import cgsv_round, topk_mask
from economics.settlement import Ledger, LinearAccuracyRevenue
from sim.strategies import OUT, Action

if TYPE_CHECKING:
    from sim.agents import Principal
    from sim.backends import RoundOutcome
    from sim.model import CooperativeModel


class Mechanism:
    """Base class. ``reward`` returns ``(payments by principal id, reward-model accuracy by member id)``;
    an id missing from the second dict means the member keeps only its standalone model (or uses the
    shared model when ``members_use_model``)."""

    selects_actions = False

    def __init__(self, model: CooperativeModel) -> None:
        self.model = model
        self.config = model.config.mechanism
        self.revenue_model = LinearAccuracyRevenue(self.config.revenue_r0, self.config.revenue_acc0)
        self.last_revenue = 0.0
        self.last_payments = 0.0
        #: whether this round's rewards are complete (money mechanisms pay only at settlement rounds)
        self.paid_this_round = True

    def reward(self, round_index: int, members: list[Principal], outcome: RoundOutcome
               ) -> tuple[dict[int, float], dict[int, float]]:
        raise NotImplementedError

    def choose(self, principal: Principal) -> Action:  # pragma: no cover - only for self-selection
        raise NotImplementedError


class MoneyMechanism(Mechanism):
    """Revenue shares (V5, V6) and the equal-split / data-size baselines."""

    def __init__(self, model: CooperativeModel) -> None:
        super().__init__(model)
        self.ledger = Ledger()
        self.revenue = 0.0
        self.claimed: dict[int, float] = {}

    def reward(self, round_index, members, outcome):
        ids = [p.unique_id for p in members]
        if ids:
            self.ledger.record(round_index, ids, outcome.credit)
            for p in members:
                self.claimed[p.unique_id] = self.claimed.get(p.unique_id, 0.0) + p.rows
        self.last_revenue = self.revenue_model(outcome.accuracy) if ids else 0.0
        self.revenue += self.last_revenue
        payments: dict[int, float] = {}
        self.last_payments = 0.0
        self.paid_this_round = (round_index + 1) % self.config.horizon == 0
        if self.paid_this_round and self.ledger.unsettled_steps:
            kind = self.config.kind
            if kind == "revenue_shares":
                s = self.ledger.settle(self.revenue, self.config.alpha)
                payments = dict(zip(s.members, s.payments.tolist(), strict=True))
            else:
                horizon = self.ledger.members(self.ledger.unsettled_steps)
                self.ledger.settle(0.0)  # close the horizon in the ledger (credits stay on record)
                if kind == "equal_split":
                    payments = {m: self.revenue / len(horizon) for m in horizon}
                else:
                    total = sum(self.claimed.get(m, 0.0) for m in horizon)
                    payments = {m: (self.revenue * self.claimed.get(m, 0.0) / total if total > 0
                                    else self.revenue / len(horizon)) for m in horizon}
            self.last_payments = float(sum(payments.values()))
            self.revenue = 0.0
            self.claimed = {}
        shared = {p.unique_id: outcome.accuracy for p in members} if self.config.members_use_model else {}
        return payments, shared


class CGSVMechanism(Mechanism):
    """CGSV model rewards (C1–C5) on the round updates of the cooperative's members.

    Ours, where the paper has no open membership: a member's reward model starts from the initial
    parameters when it first joins and accumulates only the downloads of the rounds it is a member
    (it keeps them while away, but values only its standalone model then); reputations start at 0
    (C4) and persist across absences."""

    def __init__(self, model: CooperativeModel) -> None:
        super().__init__(model)
        self.reputation: dict[int, float] = {}
        self.params: dict[int, np.ndarray] = {}
        self._theta_before = getattr(model.backend, "theta", None)
        self.last_shares: dict[int, float] = {}

    def reward(self, round_index, members, outcome):
        backend = self.model.backend
        if not members or outcome.deltas is None:
            self._theta_before = getattr(backend, "theta", None)
            return {}, {}
        ids = [p.unique_id for p in members]
        n = len(ids)
        rows = np.maximum(outcome.rows.astype(float), 0.0)
        known = [i for i in ids if i in self.reputation]
        # reputations start at 0 (C4, the paper); aggregation weights are data-size shares in a
        # cohort's first round and the previous reputations afterwards (newcomers: their mean; ours)
        reputation = np.array([self.reputation.get(i, 0.0) for i in ids])
        if known:
            default = float(np.mean([self.reputation[i] for i in known]))
            weights = np.array([self.reputation.get(i, default) for i in ids])
        else:
            weights = rows / rows.sum() if rows.sum() > 0 else np.full(n, 1.0 / n)
        weights = weights / weights.sum()
        rnd = cgsv_round(outcome.deltas, weights, reputation, gamma=self.config.gamma,
                         alpha=self.config.reputation_alpha, beta=self.config.beta)
        for i, r in zip(ids, rnd.reputation, strict=True):
            self.reputation[i] = float(r)
        self.last_shares = dict(zip(ids, rnd.shares.tolist(), strict=True))
        if hasattr(backend, "theta"):  # real training: download the top-q part of the shared model's change
            theta = backend.theta
            # ours: the model's actual change (TL trains the shared model); the paper's protocol: u_N (C1)
            step = theta - self._theta_before if self.config.cgsv_download == "change" else rnd.u_n
            change = backend.split_tensors(step)
            self._theta_before = theta
            rows_out = []
            for i, q in zip(ids, rnd.shares, strict=True):
                base = self.params.get(i, backend.theta0.double().numpy())
                masked = topk_mask(change, float(q))
                self.params[i] = base + np.concatenate([m.ravel() for m in masked])
                rows_out.append(self.params[i])
            acc = backend.accuracies(np.stack(rows_out))
        else:
            eff = float(np.sum(outcome.rows * backend.weights(np.array([p.index for p in members]),
                                                               np.array([p.action.q for p in members]))))
            acc = backend.model_accuracy(rnd.shares, eff)
        return {}, dict(zip(ids, np.asarray(acc, dtype=float).tolist(), strict=True))


class ContractMechanism(Mechanism):
    """Budget-constrained contracts (P) posted by the coordinator; principals self-select."""

    selects_actions = True

    def __init__(self, model: CooperativeModel) -> None:
        super().__init__(model)
        pop = model.config.population
        lo, hi = pop.unit_cost
        n_types = self.config.contract_types
        type_costs = np.linspace(hi, lo, n_types) if n_types > 1 else np.array([hi])
        if n_types > 1 and not np.all(np.diff(type_costs) < 0):
            type_costs = np.linspace(max(hi, lo + 1e-6), lo, n_types)
        self.scale = model.config.training.surrogate_scale
        # the coordinator's belief: cost types spread over the population's range, equally likely; a
        # row is worth `scale` data points of the accuracy curve; no one holds more than the
        # smallest pool (ours: P has no capacity, finite pools make it necessary)
        pools = np.array([p.pool_size for p in model.principals], dtype=float)
        capacity = self.scale * max(1.0, float(np.quantile(pools, self.config.contract_capacity_quantile)))
        cohort = min(len(model.principals), self.config.contract_cohort)
        self.menu = solve_first_moment(type_costs / self.scale, np.full(n_types, 1.0 / n_types), cohort,
                                       value_scale=pop.valuation, m_max=capacity)
        # a failed solve can ask for negative data or promise more than the trained model: never post it
        check(self.menu.success, "mechanism.kind", "contracts",
              f"settings whose contract menu solves (cohort N={cohort}, {n_types} cost types in "
              f"[{lo}, {hi}] per row, capacity {capacity / self.scale:.0f} rows): {self.menu.message}")
        self.ratio = np.minimum(1.0, np.divide(self.menu.t, self.menu.budget, out=np.zeros(n_types),
                                               where=self.menu.budget > 0))
        self.choice: dict[int, int] = {}
        self.regret: list[float] = []

    def item_rows(self, principal: Principal) -> np.ndarray:
        return np.ceil(self.menu.m / self.scale - 1e-6).astype(int)

    def options(self, principal: Principal) -> tuple[np.ndarray, float]:
        """Expected utility of each item (−inf where the pool is too small) and of opting out."""
        rows = self.item_rows(principal)
        cost = 0.0 if principal.is_free_rider else principal.unit_cost
        u = principal.share * self.menu.t - cost * rows  # a sybil identity receives its share of the model
        u = np.where(rows <= principal.pool_size, u, -np.inf)
        return u, principal.outside_value

    def choose(self, principal: Principal) -> Action:
        """Self-selection: the item with the highest expected utility, or opting out."""
        u, out = self.options(principal)
        j = int(np.argmax(u))
        if not np.isfinite(u[j]) or (u[j] <= out and not principal.is_free_rider):  # nothing fits, or out is better
            self.choice.pop(principal.unique_id, None)
            return OUT
        self.choice[principal.unique_id] = j
        rows = int(self.item_rows(principal)[j])
        return Action(True, rows / principal.pool_size, 0.0)

    def chosen_regret(self, principal: Principal) -> float:
        """Expected utility lost against the best option, read off the action the principal actually
        took (its rows identify the item): 0 when self-selection maximised utility (P)."""
        u, out = self.options(principal)
        # a free-rider always takes an item that fits its pool; opting out is its option only when none does
        fits = bool(np.isfinite(u).any())
        best = float(np.max(u)) if principal.is_free_rider and fits else max(float(np.max(u)), out)
        if not principal.joined:
            return best - out
        items = np.flatnonzero(self.item_rows(principal) == principal.rows)
        return best - (float(np.max(u[items])) if items.size else -np.inf)

    def reward(self, round_index, members, outcome):
        acc = outcome.accuracy
        rewards = {}
        for p in members:
            j = self.choice.get(p.unique_id)
            if j is not None:
                rewards[p.unique_id] = acc * float(self.ratio[j])  # proportional copy: never above acc
        return {}, rewards


def make_mechanism(model: CooperativeModel) -> Mechanism:
    kind = model.config.mechanism.kind
    if kind == "cgsv":
        return CGSVMechanism(model)
    if kind == "contracts":
        return ContractMechanism(model)
    return MoneyMechanism(model)
