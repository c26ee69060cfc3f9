"""The cooperative as a Mesa model (SPEC §6): strategic principals, real (or surrogate) training,
a reward mechanism, and adaptation.

Each round (``step``): on decision rounds every principal chooses its action (``shuffle_do``); the
members' delegates train one round on the chosen substrate with exactly the data their principals
chose and their value filters; the mechanism credits and pays; every principal's payoff
``money + value of the model it ends with − data cost − cleaning effort`` is booked; at the end
of a decision period principals learn from the period's payoff; the ``DataCollector`` records.

A caution the sandbox makes visible rather than hides: the one-step counterfactual (V3) scores each
admissible piece alone, so a delegate that reports a scaled gradient can earn more credit than an
honest one (see ``adversaries``); value filters bound what an honest delegate sends, not what a
dishonest one reports. The coordinator's guard (``training.guard_ratio``, ``learning.guard``) keeps
such pieces from destabilising training, but a clipped piece may still out-earn an honest one.
"""

from __future__ import annotations

from typing import Any

import mesa
import numpy as np

from coopsim.errors import InputError, PluginError
from economics.metrics import fairness, free_rider_profit, gini
from economics.settlement import LinearAccuracyRevenue
from learning.seeding import derive_seed
from sim import mechanisms
from sim.agents import ATTACKERS, Principal
from sim.backends import RealBackend
from sim.config import CooperativeConfig
from sim.mechanisms import Cooperative, Payout, RoundView, payout_of
from sim.quality import label_quality, quality_weight
from sim.strategies import Action, action_grid, make_strategy
from sim.surrogate import SurrogateBackend

MODEL_REPORTERS = ("participation", "accuracy", "val_loss", "revenue", "payments", "mean_quality", "fairness",
                   "gini", "individual_rationality", "budget_balance", "welfare", "free_rider_profit",
                   "free_rider_profit_members",
                   "contract_regret", "contract_realised_ir", "action_changes")
AGENT_REPORTERS = ("credit", "reward", "money", "model_value", "utility", "surplus", "joined", "rows", "quality",
                   "behaviour", "owner")


class CooperativeModel(mesa.Model):
    """A cooperative of strategic principals. ``CooperativeModel(config, rng=seed)``; ``step()`` runs one
    round; ``datacollector`` holds the model and agent reporters."""

    def __init__(self, config: CooperativeConfig | dict | None = None, *, rng: int = 0) -> None:
        if not isinstance(rng, int | np.integer):
            raise InputError("rng", rng, "an integer seed (coopsim derives every random source from it)")
        super().__init__(rng=int(rng))
        if not isinstance(config, CooperativeConfig):
            config = CooperativeConfig.model_validate(config or {})
        self.config = config
        self.seed = int(rng)
        tc = self.config.training
        self.backend: RealBackend | SurrogateBackend = (RealBackend if tc.mode == "real" else SurrogateBackend)(
            self.config, derive_seed(self.seed, 1))
        self.principals: list[Principal] = self._populate()
        self.shared_model = self.backend.shared_model()
        self._ids = frozenset(p.unique_id for p in self.principals)
        pop = self.config.population
        self.mechanism = self._plugin_call("setting up", lambda: mechanisms.build(self.config.mechanism, Cooperative(
            principals=tuple(p.unique_id for p in self.principals),
            pool_rows=np.array([p.pool_size for p in self.principals], dtype=np.int64),
            unit_cost=tuple(pop.unit_cost), valuation=pop.valuation,
            rows_per_unit=self.config.training.surrogate_scale,
            rng=np.random.default_rng(derive_seed(self.seed, 41)), model=self.shared_model)))
        self.market = LinearAccuracyRevenue(self.config.market.revenue_r0, self.config.market.revenue_acc0)
        #: the offers posted this decision period (self-selecting mechanisms), else None
        self.menu = self._plugin_call("posting its menu", self.mechanism.menu)
        self.self_selecting = self.menu is not None
        self.last_revenue = 0.0
        self.last_payments = 0.0
        self.last_payout = Payout()
        self.mechanism_metrics: dict[str, float] = {}
        self.cumulative_revenue = 0.0
        self.cumulative_payments = 0.0
        self.last_accuracy = float("nan")
        self.last_val_loss = float("nan")
        self._members: list[Principal] = []
        self._decided = False
        reporters: dict[str, Any] = {name: f"report_{name}" for name in MODEL_REPORTERS
                                     if not name.startswith("contract_") or self.self_selecting}
        for name in self.mechanism.reporters:
            if name in reporters:
                raise InputError("mechanism.kind", self.config.mechanism.kind,
                                 f"a mechanism whose reporters do not shadow the model's ({name!r} is taken)")
            reporters[name] = _metric(name)
        self.datacollector = mesa.DataCollector(
            model_reporters=reporters,
            agent_reporters={name: name for name in AGENT_REPORTERS} if self.config.agents_collected else None,
        )

    def _plugin_call(self, doing: str, call: Any) -> Any:
        """Call into the mechanism; an exception it raises stops the run under a line naming the
        mechanism and the round (its own traceback is kept as the cause)."""
        try:
            return call()
        except (InputError, PluginError):
            raise
        except Exception as exc:
            where = f"round {self.steps}" if self.steps else "setup"
            raise PluginError(f"mechanism {self.config.mechanism.kind!r} raised while {doing} ({where})",
                              plugin=self.config.mechanism.kind, where=where) from exc

    # ---------------------------------------------------------------------------- population
    def _populate(self) -> list[Principal]:
        pop = self.config.population
        n = pop.n_principals
        behaviours = _apportion(pop.behaviours, n, self.rng)
        profiles = _apportion({k: p.share for k, p in enumerate(pop.value_profiles)}, n, self.rng, fill=None)
        if pop.cost_levels:  # equal shares of each level (a designer's discrete cost types)
            levels = _apportion({c: 1.0 / len(pop.cost_levels) for c in pop.cost_levels}, n, self.rng)
            costs = np.array(levels, dtype=float)
        else:
            costs = self.rng.uniform(*pop.unit_cost, size=n)
        noise = self.rng.uniform(*pop.base_label_noise, size=n)
        pools = self.backend.owner_pools(n)
        spec: dict[str, list] = {k: [] for k in ("index", "owner", "behaviour", "unit_cost", "label_noise",
                                                 "pool_size", "strategy", "profile")}
        for owner in range(n):
            beh = behaviours[owner]
            parts = np.array_split(pools[owner], pop.sybil_identities) if beh == "sybil" else [pools[owner]]
            profile = pop.value_profiles[profiles[owner]].profile if profiles[owner] is not None else None
            for part in parts:
                index = len(spec["index"])
                self.backend.register(index, part, float(noise[owner]), beh, profile)
                actions = action_grid(pop.m_grid, pop.q_grid, clean=beh != "low_quality")
                strategy = make_strategy("fixed" if beh in ATTACKERS else pop.strategy, actions, self.random,
                                         epsilon=pop.epsilon, imitation_rate=pop.imitation_rate)
                for key, value in (("index", index), ("owner", owner), ("behaviour", beh),
                                   ("unit_cost", float(costs[owner])), ("label_noise", float(noise[owner])),
                                   ("pool_size", self.backend.pool_size(index)), ("strategy", strategy),
                                   ("profile", profile)):
                    spec[key].append(value)
        principals = list(Principal.create_agents(self, len(spec["index"]), **spec))
        by_owner: dict[int, list[Principal]] = {}
        for p in principals:
            by_owner.setdefault(p.owner, []).append(p)
        for identities in by_owner.values():  # one outside option per owner, shared by a sybil's identities
            accuracy = self.backend.standalone_accuracy([p.index for p in identities])
            for p in identities:
                p.standalone_accuracy = accuracy
                p.share = 1.0 / len(identities)
        return principals

    def peer_sample(self, principal: Principal, k: int = 3) -> list[tuple[float, Action]]:
        """Payoff and action of the last completed period of ``k`` random other principals (imitation)."""
        others = self.random.sample(self.principals, min(k + 1, len(self.principals)))
        return [(o.last_payoff, o.last_action) for o in others if o is not principal][:k]

    # ---------------------------------------------------------------------------- one round
    def step(self) -> None:
        r = self.steps - 1  # Mesa counts steps from 1
        period = self.config.decision_period
        self._decided = r % period == 0
        if self._decided:
            if self.self_selecting:  # self-selection: each principal takes its best offer or stays out
                self.menu = self._plugin_call("posting its menu", self.mechanism.menu)
                self.agents.shuffle_do("select_offer", self.menu)
            else:
                self.agents.shuffle_do("decide")
        members = list(self.agents.select(lambda a: a.joined))
        self._members = members
        kinds = [p.behaviour if p.behaviour in ("random_gradient", "scaled_gradient") else None for p in members]
        outcome = self.backend.train_round(r, members, kinds)
        self.last_accuracy, self.last_val_loss = outcome.accuracy, outcome.val_loss
        mech = self.mechanism
        self.last_revenue = self.market(outcome.accuracy) if members and mech.sells_model else 0.0
        view = RoundView.frozen(round=r, members=[p.unique_id for p in members], rows=outcome.rows,
                                credit=outcome.credit, accuracy=outcome.accuracy, revenue=self.last_revenue,
                                updates=outcome.deltas if mech.needs_updates else None,
                                offers=[p.offer for p in members] if self.self_selecting else (),
                                model=self.shared_model)
        payout = self._plugin_call("paying", lambda: payout_of(mech.pay(view)))
        self._check_payout(payout, r)
        self.last_payout = payout
        self.mechanism_metrics = self._plugin_call("reporting", mech.metrics) if mech.reporters else {}
        self.last_payments = float(sum(payout.payments.values()))
        self.cumulative_revenue += self.last_revenue
        self.cumulative_payments += self.last_payments
        valuation = self.config.population.valuation
        credit = {p.unique_id: float(c) for p, c in zip(members, outcome.credit, strict=True)}
        for p in self.principals:
            p.credit = credit.get(p.unique_id, 0.0)
            p.money = float(payout.payments.get(p.unique_id, 0.0))
            acc = payout.reward_accuracy.get(p.unique_id)
            if acc is None or not p.joined:
                p.model_value = p.outside_value
            else:  # e.g. CGSV: members keep their own standalone model beside the reward model
                p.model_value = valuation * p.share * (max(acc, p.standalone_accuracy) if mech.keeps_standalone
                                                       else acc)
            # what the cooperative gives: money plus the model's value beyond the outside option
            p.reward = p.money + (p.model_value - p.outside_value if p.joined else 0.0)
            p.utility = p.money + p.model_value - (p.data_cost + p.effort if p.joined else 0.0)
            p.period_payoff += p.utility
        if (r + 1) % period == 0:
            self.agents.do("learn")
        self.datacollector.collect(self)

    def _check_payout(self, payout: Payout, r: int) -> None:
        """A mechanism pays known principals finite amounts and gives reward models to members only."""
        name = self.config.mechanism.kind
        ids = self._ids
        members = {p.unique_id for p in self._members} if payout.reward_accuracy else set()
        for label, values, allowed in (("payments", payout.payments, ids),
                                       ("reward_accuracy", payout.reward_accuracy, members)):
            for key, value in values.items():
                if key not in allowed:
                    who = "principal" if label == "payments" else "member this round"
                    raise PluginError(f"mechanism {name!r} returned {label} for {key!r}, not a {who} (round {r + 1})",
                                      plugin=name, where=f"round {r + 1}")
                if not np.isfinite(value):
                    raise PluginError(f"mechanism {name!r} returned a non-finite {label} value {value!r} for "
                                      f"{key!r} (round {r + 1})", plugin=name, where=f"round {r + 1}")

    # ---------------------------------------------------------------------------- reporters
    @property
    def report_participation(self) -> float:
        return len(self._members) / len(self.principals)

    @property
    def report_accuracy(self) -> float:
        return self.last_accuracy

    @property
    def report_val_loss(self) -> float:
        return self.last_val_loss

    @property
    def report_revenue(self) -> float:
        return self.last_revenue

    @property
    def report_payments(self) -> float:
        return self.last_payments

    @property
    def report_mean_quality(self) -> float:
        """Mean fraction of correct labels in the members' contributed rows (free-rider noise at chance
        level, flipped labels at 0; members bringing no rows are left out)."""
        fr = self.config.population.free_ride
        q = [label_quality(p.behaviour, p.label_noise, p.action.q, fr) for p in self._members]
        q = [v for v in q if np.isfinite(v)]
        return float(np.mean(q)) if q else float("nan")

    @property
    def report_fairness(self) -> float:
        """ρ = 100·Pearson(true contribution, reward) over members (SPEC §4's ρ, applied to the
        cooperative: true contribution = rows × quality weight)."""
        if len(self._members) < 2 or not self.last_payout.settled:
            return float("nan")
        true = [p.rows * quality_weight(p.behaviour, p.label_noise, p.action.q, self.config.population.free_ride)
                for p in self._members]
        return fairness(np.array(true), np.array([p.reward for p in self._members]))

    @property
    def report_gini(self) -> float:
        rewards = np.array([max(p.reward, 0.0) for p in self._members])
        return gini(rewards) if len(rewards) and self.last_payout.settled else float("nan")

    @property
    def report_individual_rationality(self) -> float:
        """Fraction of members whose round utility is at least their outside option (NaN in rounds
        that settle nothing)."""
        if not self._members or not self.last_payout.settled:
            return float("nan")
        return float(np.mean([p.utility >= p.outside_value - 1e-12 for p in self._members]))

    @property
    def report_budget_balance(self) -> float:
        """Cumulative revenue minus cumulative payments (≥ 0: the cooperative never pays out more)."""
        return self.cumulative_revenue - self.cumulative_payments

    @property
    def report_welfare(self) -> float:
        return float(sum(p.utility for p in self.principals))

    @property
    def report_free_rider_profit(self) -> float:
        """Should I free-ride? Mean surplus of *all* free-rider principals minus that of all honest
        principals, members or not (one who left has surplus 0: it lives on its outside option).
        Positive: free-riding pays. Surplus is utility minus the principal's outside value (ours: it
        nets out private differences in standalone models, which no mechanism causes)."""
        return self._rider_gap(self.principals)

    @property
    def report_free_rider_profit_members(self) -> float:
        """The same gap among current members only: what a free-rider who stays in earns over an
        honest member who stays in (NaN without both among the members)."""
        return self._rider_gap(self._members)

    @staticmethod
    def _rider_gap(principals: list[Principal]) -> float:
        group = [p for p in principals if p.behaviour in ("free_rider", "honest")]
        riders = np.array([p.behaviour == "free_rider" for p in group], dtype=bool)
        if not (riders.any() and (~riders).any()):
            return float("nan")
        return free_rider_profit(np.array([p.surplus for p in group]), riders)

    @property
    def report_action_changes(self) -> float:
        """Settling: on a decision round, the share of principals whose deliberate choice (their
        strategy's, or the offer they took) changed since their previous deliberate choice; among
        adaptive principals whose choice counts (not attackers, exploration or mixed strategies).
        NaN on other rounds and when no choice counts."""
        if not self._decided:
            return float("nan")
        counted = [p.changed for p in self.principals if p.counted]
        return float(np.mean(counted)) if counted else float("nan")

    @property
    def report_contract_regret(self) -> float:
        """Self-selecting mechanisms (contracts): the largest expected utility a principal lost against
        its best option among the posted offers and opting out (0 = every choice maximises utility);
        recorded only for mechanisms that post a menu."""
        if self.menu is None:
            return float("nan")
        return float(max((p.selection_regret(self.menu) for p in self.principals), default=0.0))

    @property
    def report_contract_realised_ir(self) -> float:
        """Self-selecting mechanisms (contracts): fraction of members whose realised utility (e.g. the
        proportional copy of the model actually trained, minus their cost) is at least their outside
        option — ex post, unlike the menu's expected IR."""
        if not self._members:
            return float("nan")
        return float(np.mean([p.utility >= p.outside_value - 1e-9 for p in self._members]))

    # ---------------------------------------------------------------------------- helpers
    def run(self, rounds: int | None = None) -> CooperativeModel:
        for _ in range(self.config.rounds if rounds is None else rounds):
            self.step()
        return self

    def frames(self) -> tuple[Any, Any]:
        """The DataCollector's model and agent frames (pandas)."""
        agents = self.datacollector.get_agent_vars_dataframe() if self.config.agents_collected else None
        return self.datacollector.get_model_vars_dataframe(), agents


def _metric(name: str) -> Any:
    """A DataCollector reporter for the mechanism's own metric ``name``."""
    return lambda model: float(model.mechanism_metrics.get(name, float("nan")))


def _apportion(shares: dict, n: int, rng: np.random.Generator, fill: Any = "honest") -> list:
    """Assign labels to ``n`` slots in the given shares (largest remainder), in a seeded random order;
    slots left over (shares summing below 1) get ``fill``."""
    keys = list(shares)
    raw = np.array([shares[k] * n for k in keys], dtype=float)
    counts = np.floor(raw).astype(int)
    total = sum(shares.values())
    target = min(n, round(total * n))
    order = np.argsort(-(raw - counts), kind="stable")
    for k in order[: max(0, target - counts.sum())]:
        counts[k] += 1
    labels = [k for k, c in zip(keys, counts, strict=True) for _ in range(c)]
    labels += [fill] * (n - len(labels))
    return [labels[i] for i in rng.permutation(n)]
