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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from coopsim.errors import InputError, PluginError
from economics._checks import distinct
from economics.metrics import fairness, free_rider_profit, gini
from economics.settlement import LinearAccuracyRevenue
from learning.seeding import derive_seed
from sim import mechanisms
from sim.agents import Principal
from sim.collect import ColumnDataCollector
from sim.config import CooperativeConfig
from sim.mechanisms import Cooperative, Offer, Payout, RoundView, as_arrays, payout_of
from sim.population import ATTACK, Population
from sim.quality import label_quality, quality_weight
from sim.strategies import OUT, Action, action_grid, make_strategy, strategy_class
from sim.strategy_arrays import ARRAY_FORMS, Peers, StrategyArray, make_array
from sim.surrogate import SurrogateBackend

if TYPE_CHECKING:  # imported where a real run starts (see __init__)
    from sim.backends import RealBackend

MODEL_REPORTERS = ("participation", "accuracy", "val_loss", "revenue", "payments", "mean_quality", "fairness",
                   "gini", "individual_rationality", "budget_balance", "welfare", "free_rider_profit",
                   "free_rider_profit_members",
                   "contract_regret", "contract_realised_ir", "action_changes")
AGENT_REPORTERS = ("credit", "reward", "money", "model_value", "utility", "surplus", "joined", "rows", "quality",
                   "behaviour", "owner")


class CooperativeModel(mesa.Model):
    """A cooperative of strategic principals. ``CooperativeModel(config, rng=seed)``; ``step()`` runs one
    round; ``datacollector`` holds the model and agent reporters.

    Principals are Mesa agents (``self.agents``, ``self.principals``) whose state is a row of
    ``self.population`` (numpy columns): decisions of built-in strategies, training of the surrogate,
    payments and payoffs are computed for every row at once, so a million principals fit on one
    machine; principals with a plug-in strategy decide one by one."""

    def __init__(self, config: CooperativeConfig | dict | None = None, *, rng: int = 0) -> None:
        if not isinstance(rng, int | np.integer):
            raise InputError("rng", rng, "an integer seed (coopsim derives every random source from it)")
        super().__init__(rng=int(rng))
        if not isinstance(config, CooperativeConfig):
            config = CooperativeConfig.model_validate(config or {})
        config.check_memory()  # refuse, naming the limit, before allocating what cannot fit
        self.config = config
        self.seed = int(rng)
        tc = self.config.training
        self.surrogate = tc.mode != "real"
        if self.surrogate:
            backend: type[RealBackend | SurrogateBackend] = SurrogateBackend
        else:  # torch and the learning stack load only here: a surrogate run never imports them
            from sim.backends import RealBackend as backend
        self.backend: RealBackend | SurrogateBackend = backend(self.config, derive_seed(self.seed, 1))
        #: the random numbers of the built-in strategies' choices (two per principal and choice)
        self._draws = np.random.default_rng(derive_seed(self.seed, 43))
        self.population, self.principals = self._populate()
        self.shared_model = self.backend.shared_model()
        self._ids = np.array([p.unique_id for p in self.principals], dtype=np.int64)
        pop = self.config.population
        self.mechanism = self._plugin_call("setting up", lambda: mechanisms.build(self.config.mechanism, Cooperative(
            principals=tuple(self._ids.tolist()), pool_rows=self.population.pool_size.copy(),
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
        self._members = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros(self.population.n, dtype=np.int64)
        self._decided = False
        reporters: dict[str, Any] = {name: f"report_{name}" for name in MODEL_REPORTERS
                                     if not name.startswith("contract_") or self.self_selecting}
        for name in self.mechanism.reporters:
            if name in reporters:
                raise InputError("mechanism.kind", self.config.mechanism.kind,
                                 f"a mechanism whose reporters do not shadow the model's ({name!r} is taken)")
            reporters[name] = _metric(name)
        # agent reporters read from the population's columns in one pass per round (sim.collect)
        self.datacollector = ColumnDataCollector(
            model_reporters=reporters,
            agent_reporters={name: name for name in AGENT_REPORTERS} if self.config.agents_collected else None,
            columns=self.agent_columns, ids=self._ids,
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
    def _populate(self) -> tuple[Population, list[Principal]]:
        cfg = self.config.population
        n = cfg.n_principals
        behaviours = _apportion(cfg.behaviours, n, self.rng)
        profiles = _apportion({k: p.share for k, p in enumerate(cfg.value_profiles)}, n, self.rng, fill=None)
        if cfg.cost_levels:  # equal shares of each level (a designer's discrete cost types)
            levels = _apportion({c: 1.0 / len(cfg.cost_levels) for c in cfg.cost_levels}, n, self.rng)
            costs = np.array(levels, dtype=float)
        else:
            costs = self.rng.uniform(*cfg.unit_cost, size=n)
        noise = self.rng.uniform(*cfg.base_label_noise, size=n)
        names = np.array(behaviours, dtype=object)
        identities = np.where(names == "sybil", cfg.sybil_identities, 1)
        owner = np.repeat(np.arange(n), identities)
        population = Population(owner, names[owner].tolist(), costs[owner], noise[owner])
        population.share[:] = 1.0 / identities[owner]
        specs = [cfg.value_profiles[k].profile if k is not None else None for k in profiles]
        profile = [specs[o] for o in owner.tolist()] if cfg.value_profiles else [None] * len(owner)
        self.backend.setup_population(population, n, profile)
        strategies = self._strategies(population)
        principals = list(Principal.create_agents(self, population.n, index=list(range(population.n)),
                                                  population=population, strategy=strategies, profile=profile))
        return population, principals

    def _strategies(self, population: Population) -> list[Any]:
        """The action table, the built-in strategy's array groups (one per action grid) and the
        plug-in strategies' own objects; returns every principal's strategy (None for attackers,
        whose action is imposed)."""
        cfg = self.config.population
        grids = {clean: action_grid(cfg.m_grid, cfg.q_grid, clean=clean) for clean in (True, False)}
        #: every action any principal can play (imitators observe each other's through it)
        self.actions: list[Action] = list(dict.fromkeys([OUT, *grids[True], *grids[False], ATTACK]))
        self._action_ids = {a: i for i, a in enumerate(self.actions)}
        self._join = np.array([a.join for a in self.actions])
        self._m = np.array([a.m for a in self.actions])
        self._q = np.array([a.q for a in self.actions])
        self._attack = self._action_ids[ATTACK]
        population.action_id[:] = population.last_action[:] = self._action_ids[OUT]
        self._attackers = np.flatnonzero(population.attacker)
        self._peers = Peers(population.last_payoff, population.last_action)
        self._groups: list[tuple[np.ndarray, StrategyArray, np.ndarray]] = []
        self._own: list[Principal] = []
        cls = strategy_class(cfg.strategy)
        out: list[Any] = [None] * population.n
        clean = ~population.is_behaviour("low_quality")
        for grid_clean, actions in grids.items():
            rows = np.flatnonzero(~population.attacker & (clean == grid_clean))
            if not len(rows):
                continue
            if cls in ARRAY_FORMS:
                group = make_array(cls, actions, len(rows), table=self.actions, epsilon=cfg.epsilon,
                                   imitation_rate=cfg.imitation_rate)
                self._groups.append((rows, group, np.array([self._action_ids[a] for a in actions])))
                for i in rows.tolist():
                    out[i] = group
            else:
                for i in rows.tolist():
                    out[i] = make_strategy(cfg.strategy, actions, self.random, epsilon=cfg.epsilon,
                                           imitation_rate=cfg.imitation_rate)
        return out

    def action_id(self, action: Action) -> int:
        """Index of ``action`` in the model's action table (−1: not in it, e.g. a menu item)."""
        return self._action_ids.get(action, -1)

    def peer_sample(self, principal: Principal, k: int = 3) -> list[tuple[float, Action]]:
        """Payoff and action of the last completed period of ``k`` random other principals (plug-in
        strategies that use peers)."""
        others = self.random.sample(self.principals, min(k + 1, len(self.principals)))
        return [(o.last_payoff, o.last_action) for o in others if o is not principal][:k]

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Population rows of principal ids (unique ids increase with the rows)."""
        return np.searchsorted(self._ids, ids)

    # ---------------------------------------------------------------------------- decisions
    def _set_actions(self, rows: np.ndarray, action_ids: np.ndarray) -> None:
        pop = self.population
        pop.action_id[rows] = action_ids
        pop.join[rows], pop.m[rows], pop.q[rows] = self._join[action_ids], self._m[action_ids], self._q[action_ids]

    def _decide(self) -> None:
        """Every principal chooses this period's action: the built-in strategies' groups in one call
        each, attackers their imposed action, plug-in strategies one by one (in random order)."""
        pop = self.population
        for rows, group, table in self._groups:
            u = self._draws.random((len(rows), group.draws))
            choice, explored = group.choose(u, rows, self._peers)
            self._set_actions(rows, table[choice])
            pop.action_index[rows] = choice
            pop.explored[rows] = explored
            pop.note_choice(rows, choice, ~explored & group.adapts & (not group.mixed))
        att = self._attackers
        self._set_actions(att, np.full(len(att), self._attack))
        pop.action_index[att] = -1
        pop.counted[att] = pop.changed[att] = pop.explored[att] = False
        if self._own:
            for i in self.random.sample(range(len(self._own)), len(self._own)):
                self._own[i].decide()

    def _select_offers(self, menu: Sequence[Offer]) -> None:
        """Self-selection (P): each principal takes the offer with the highest expected utility, or
        stays out when nothing fits or staying out is better (a free-rider takes any offer that fits)."""
        pop = self.population
        pop.action_index[:] = -1
        take = np.zeros(pop.n, dtype=bool)
        best = np.zeros(pop.n, dtype=np.int64)
        rows = np.array([o.rows for o in menu], dtype=float)
        if len(menu):
            u, out = pop.options(rows, np.array([o.value for o in menu], dtype=float), self.config.population.valuation)
            best = np.argmax(u, axis=1)
            top = u[np.arange(pop.n), best]
            take = np.isfinite(top) & ((top > out) | pop.free_rider)
        offer = np.where(take, best, -1)
        pop.offer[:] = offer
        pop.join[:] = take
        pop.m[:] = np.where(take, rows[best] / pop.pool_size if len(menu) else 0.0, 0.0)
        pop.q[:] = 0.0
        pop.action_id[:] = np.where(take, -1, self._action_ids[OUT])
        pop.note_choice(np.arange(pop.n), offer, np.ones(pop.n, dtype=bool))

    def selection_regret(self, menu: Sequence[Offer], rows: np.ndarray | None = None) -> np.ndarray:
        """Expected utility each principal (``rows``: all) lost against its best option among ``menu``
        and staying out (0 when its choice maximised utility, P)."""
        pop = self.population
        rows = np.arange(pop.n) if rows is None else rows
        if len(menu):
            u, out = pop.options(np.array([o.rows for o in menu], dtype=float),
                                 np.array([o.value for o in menu], dtype=float), self.config.population.valuation,
                                 rows)
        else:
            u, out = np.full((len(rows), 1), -np.inf), pop.outside_value(self.config.population.valuation)[rows]
        top = u.max(axis=1)
        # a free-rider always takes an offer that fits its pool; staying out is its option only when none does
        best = np.where(pop.free_rider[rows] & np.isfinite(u).any(axis=1), top, np.maximum(top, out))
        offer = pop.offer[rows]
        taken = np.where(offer >= 0, u[np.arange(len(rows)), np.maximum(offer, 0)], -np.inf)
        return best - np.where(pop.join[rows], taken, out)

    def _learn(self) -> None:
        """At the end of a decision period, strategies learn from the payoff the period brought."""
        pop = self.population
        if not self.self_selecting:
            for rows, group, _ in self._groups:
                group.observe(pop.action_index[rows], pop.period_payoff[rows])
            for p in self._own:
                p.learn()
        pop.last_payoff[:] = pop.period_payoff
        pop.last_action[:] = pop.action_id

    # ---------------------------------------------------------------------------- one round
    def step(self) -> None:
        r = self.steps - 1  # Mesa counts steps from 1
        period = self.config.decision_period
        pop = self.population
        self._decided = r % period == 0
        if self._decided:
            if self.self_selecting:
                self.menu = self._plugin_call("posting its menu", self.mechanism.menu)
                self._select_offers(self.menu)
            else:
                self._decide()
            pop.period_payoff[:] = 0.0
        members = np.flatnonzero(pop.join)
        self._members = members
        self._rows = pop.rows()
        if self.surrogate:
            outcome = self.backend.train(r, members, self._rows[members], updates=self.mechanism.needs_updates)
        else:
            kinds = [pop.behaviour_name(i) for i in members.tolist()]
            kinds = [k if k in ("random_gradient", "scaled_gradient") else None for k in kinds]
            outcome = self.backend.train_round(r, [self.principals[i] for i in members.tolist()], kinds)
        self.last_accuracy, self.last_val_loss = outcome.accuracy, outcome.val_loss
        mech = self.mechanism
        self.last_revenue = self.market(outcome.accuracy) if len(members) and mech.sells_model else 0.0
        view = RoundView.frozen(round=r, members=self._ids[members], rows=outcome.rows, credit=outcome.credit,
                                accuracy=outcome.accuracy, revenue=self.last_revenue,
                                updates=outcome.deltas if mech.needs_updates else None,
                                offers=pop.offer[members] if self.self_selecting else (), model=self.shared_model)
        payout = self._plugin_call("paying", lambda: payout_of(mech.pay(view)))
        payments, rewards = self._check_payout(payout, r)
        self.last_payout = payout
        self.mechanism_metrics = self._plugin_call("reporting", mech.metrics) if mech.reporters else {}
        self.last_payments = float(payments[1].sum())
        self.cumulative_revenue += self.last_revenue
        self.cumulative_payments += self.last_payments
        self._book(outcome.credit, payments, rewards)
        if (r + 1) % period == 0:
            self._learn()
        self.datacollector.collect(self)

    def _book(self, credit: np.ndarray, payments: tuple[np.ndarray, np.ndarray],
              rewards: tuple[np.ndarray, np.ndarray]) -> None:
        """Every principal's round: credit, money, the value of the model it ends with, reward,
        utility ``money + model value − data cost − effort`` (members) and the period's payoff."""
        pop = self.population
        cfg = self.config.population
        outside = pop.outside_value(cfg.valuation)
        pop.credit[:] = 0.0
        pop.credit[self._members] = credit
        pop.money[:] = 0.0
        pop.money[self._positions(payments[0])] = payments[1]
        accuracy = np.full(pop.n, np.nan)
        accuracy[self._positions(rewards[0])] = rewards[1]
        if self.mechanism.keeps_standalone:  # e.g. CGSV: members keep their own standalone model beside it
            accuracy = np.maximum(accuracy, pop.standalone_accuracy)
        valued = pop.join & ~np.isnan(accuracy)
        pop.model_value[:] = np.where(valued, cfg.valuation * pop.share * np.nan_to_num(accuracy), outside)
        # what the cooperative gives: money plus the model's value beyond the outside option
        pop.reward[:] = pop.money + np.where(pop.join, pop.model_value - outside, 0.0)
        cost = pop.data_cost(self._rows) + pop.effort(self._rows, cfg.quality_cost)
        pop.utility[:] = pop.money + pop.model_value - np.where(pop.join, cost, 0.0)
        pop.period_payoff += pop.utility

    def _check_payout(self, payout: Payout, r: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """A mechanism pays known principals finite amounts and gives reward models to members only;
        returns the payments and reward accuracies as (ids, values) arrays."""
        name = self.config.mechanism.kind
        out = []
        members = self._ids[self._members]
        for label, values, allowed in (("payments", payout.payments, self._ids),
                                       ("reward_accuracy", payout.reward_accuracy, members)):
            ids, amounts = as_arrays(values)
            at = np.minimum(np.searchsorted(allowed, ids), max(len(allowed) - 1, 0))
            bad = ~(allowed[at] == ids) if len(allowed) else np.ones(len(ids), dtype=bool)
            if bad.any():
                who = "principal" if label == "payments" else "member this round"
                raise PluginError(f"mechanism {name!r} returned {label} for {int(ids[bad][0])!r}, not a {who} "
                                  f"(round {r + 1})", plugin=name, where=f"round {r + 1}")
            if not distinct(ids):
                raise PluginError(f"mechanism {name!r} returned {label} for the same principal twice (round {r + 1})",
                                  plugin=name, where=f"round {r + 1}")
            if not np.all(np.isfinite(amounts)):
                k = int(np.flatnonzero(~np.isfinite(amounts))[0])
                raise PluginError(f"mechanism {name!r} returned a non-finite {label} value {float(amounts[k])!r} "
                                  f"for {int(ids[k])!r} (round {r + 1})", plugin=name, where=f"round {r + 1}")
            out.append((ids, amounts))
        return tuple(out)

    # ---------------------------------------------------------------------------- reporters
    @property
    def report_participation(self) -> float:
        return len(self._members) / self.population.n

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
        pop, m = self.population, self._members
        q = label_quality(pop.behaviour[m], pop.label_noise[m], pop.q[m], self.config.population.free_ride)
        q = q[np.isfinite(q)]
        return float(np.mean(q)) if len(q) else float("nan")

    @property
    def report_fairness(self) -> float:
        """ρ = 100·Pearson(true contribution, reward) over members (SPEC §4's ρ, applied to the
        cooperative: true contribution = rows × quality weight)."""
        pop, m = self.population, self._members
        if len(m) < 2 or not self.last_payout.settled:
            return float("nan")
        true = self._rows[m] * quality_weight(pop.behaviour[m], pop.label_noise[m], pop.q[m],
                                              self.config.population.free_ride)
        return fairness(true, pop.reward[m])

    @property
    def report_gini(self) -> float:
        rewards = np.maximum(self.population.reward[self._members], 0.0)
        return gini(rewards) if len(rewards) and self.last_payout.settled else float("nan")

    def _members_at_outside(self, tol: float) -> float:
        pop, m = self.population, self._members
        outside = pop.outside_value(self.config.population.valuation)[m]
        return float(np.mean(pop.utility[m] >= outside - tol))

    @property
    def report_individual_rationality(self) -> float:
        """Fraction of members whose round utility is at least their outside option (NaN in rounds
        that settle nothing)."""
        if not len(self._members) or not self.last_payout.settled:
            return float("nan")
        return self._members_at_outside(1e-12)

    @property
    def report_budget_balance(self) -> float:
        """Cumulative revenue minus cumulative payments (≥ 0: the cooperative never pays out more)."""
        return self.cumulative_revenue - self.cumulative_payments

    @property
    def report_welfare(self) -> float:
        return float(self.population.utility.sum())

    @property
    def report_free_rider_profit(self) -> float:
        """Should I free-ride? Mean surplus of *all* free-rider principals minus that of all honest
        principals, members or not (one who left has surplus 0: it lives on its outside option).
        Positive: free-riding pays. Surplus is utility minus the principal's outside value (ours: it
        nets out private differences in standalone models, which no mechanism causes)."""
        return self._rider_gap(np.arange(self.population.n))

    @property
    def report_free_rider_profit_members(self) -> float:
        """The same gap among current members only: what a free-rider who stays in earns over an
        honest member who stays in (NaN without both among the members)."""
        return self._rider_gap(self._members)

    def _rider_gap(self, rows: np.ndarray) -> float:
        pop = self.population
        rows = rows[pop.is_behaviour("free_rider", "honest")[rows]]
        riders = pop.free_rider[rows]
        if not (riders.any() and (~riders).any()):
            return float("nan")
        surplus = pop.utility[rows] - pop.outside_value(self.config.population.valuation)[rows]
        return free_rider_profit(surplus, riders)

    @property
    def report_action_changes(self) -> float:
        """Settling: on a decision round, the share of principals whose deliberate choice (their
        strategy's, or the offer they took) changed since their previous deliberate choice; among
        adaptive principals whose choice counts (not attackers, exploration or mixed strategies).
        NaN on other rounds and when no choice counts."""
        pop = self.population
        if not self._decided or not pop.counted.any():
            return float("nan")
        return float(np.mean(pop.changed[pop.counted]))

    @property
    def report_contract_regret(self) -> float:
        """Self-selecting mechanisms (contracts): the largest expected utility a principal lost against
        its best option among the posted offers and opting out (0 = every choice maximises utility);
        recorded only for mechanisms that post a menu."""
        if self.menu is None:
            return float("nan")
        return float(np.max(self.selection_regret(self.menu), initial=0.0))

    @property
    def report_contract_realised_ir(self) -> float:
        """Self-selecting mechanisms (contracts): fraction of members whose realised utility (e.g. the
        proportional copy of the model actually trained, minus their cost) is at least their outside
        option — ex post, unlike the menu's expected IR."""
        if not len(self._members):
            return float("nan")
        return self._members_at_outside(1e-9)

    # ---------------------------------------------------------------------------- helpers
    def run(self, rounds: int | None = None) -> CooperativeModel:
        for _ in range(self.config.rounds if rounds is None else rounds):
            self.step()
        return self

    def agent_columns(self) -> dict[str, np.ndarray]:
        """Every principal's agent reporters (:data:`AGENT_REPORTERS`) as columns in row order: what
        the ``Principal`` properties of the same names return, for all principals at once."""
        pop = self.population
        surplus = pop.utility - pop.outside_value(self.config.population.valuation)
        return {"credit": pop.credit, "reward": pop.reward, "money": pop.money, "model_value": pop.model_value,
                "utility": pop.utility, "surplus": surplus, "joined": pop.join, "rows": pop.rows(),
                "quality": np.where(pop.join, pop.q, OUT.q), "behaviour": pop.behaviour_names(), "owner": pop.owner}

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
