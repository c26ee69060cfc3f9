"""Configuration of a cooperative (pydantic, ``extra="forbid"``): every field has a default and a
description, and a bad value fails at construction with a message naming the field (SPEC §6)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    model_validator,
)

from coopsim.errors import InputError
from learning.data import DATASETS, DataFile, as_data_file, check_rows, load_dataset
from learning.device import DEVICES
from learning.model_names import MODELS, is_model_factory
from learning.partition import PARTITIONS
from learning.profiles import ValueProfileSpec
from sim.mechanisms import BUILTINS, MechanismSettings, RevenueSharesSettings, settings_for
from sim.strategies import BUILTIN_STRATEGIES, strategy_class

BEHAVIOURS = ("honest", "low_quality", "free_rider", "label_flip", "random_gradient", "scaled_gradient", "sybil")
STRATEGIES = tuple(BUILTIN_STRATEGIES)
MECHANISMS = tuple(BUILTINS)
SUBSTRATES = ("tl", "fedavg")
MODES = ("real", "surrogate")
FREE_RIDE = ("noise", "copies", "nothing")
CREDITS = ("exact", "first_order")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_CHECKED: dict[tuple, None] = {}


def _check_factory(name: str, substrate: str, data: Any) -> None:
    """A user's model factory builds a module with the right output (``build_user_model``) and, for
    TL, keeps per-member gradients exact on one batch of the data (``check_traversable``); checked
    once per (factory, data shape, substrate) in a process."""
    key = (name, data.name, data.n_features, data.n_classes, substrate)
    if key in _CHECKED:
        return
    import torch

    from learning.exactness import check_traversable
    from learning.models import build_user_model, default_loss

    model = build_user_model(name, data.n_features, data.n_classes, seed=0, field="model")
    if substrate == "tl":
        rows = min(32, len(data))
        check_traversable(model, default_loss(model), torch.from_numpy(data.X[:rows]),
                          torch.from_numpy(data.y[:rows]), field="model", name=name)
    _CHECKED[key] = None


class ProfileShare(_Strict):
    """A value profile held by a share of the principals."""

    share: float = Field(ge=0.0, le=1.0, description="fraction of principals holding this profile")
    profile: ValueProfileSpec = Field(default_factory=ValueProfileSpec, description="the value profile")


#: upper bounds on counts (overridable only where the field says so); how many principals fit is
#: decided by the machine's memory when the model is built (``CooperativeConfig.estimated_gb``)
MAX_PRINCIPALS = 100_000_000
MAX_ROUNDS = 1_000_000
MAX_HOURS = 12.0
#: populations above this size record no agent-level rows unless collect_agents = true
AUTO_AGENT_ROWS = 1_000
#: measured costs on a 2-core machine (benchmarks/bench_sim.py): seconds per round, per principal-round
#: (surrogate: 1–2 µs at 10,000 principals; real: about 17 ms per 20-member round) and per principal
#: built (surrogate: about 11 s for a million)
SECONDS_PER_ROUND = {"surrogate": 1e-3, "real": 0.0}
SECONDS_PER_AGENT_ROUND = {"surrogate": 3e-6, "real": 1e-3}
SECONDS_PER_PRINCIPAL = {"surrogate": 12e-6, "real": 0.0}
#: measured memory (benchmarks/bench_sim.py): the interpreter with torch and Mesa, each principal (a
#: Mesa agent, its columns, its strategy's estimates and a round's temporaries), and each agent-level
#: row the DataCollector keeps
BASE_GB = 0.35
KB_PER_PRINCIPAL = 2.0
KB_PER_AGENT_ROW = 0.7


class PopulationConfig(_Strict):
    """Who the principals are."""

    n_principals: PositiveInt = Field(20, le=MAX_PRINCIPALS, description="number of principals (sybil identities add "
                                      f"agents); as many as memory holds (about {KB_PER_PRINCIPAL:g} KB each)")
    behaviours: dict[str, float] = Field(default_factory=lambda: {"honest": 1.0},
                                         description=f"share of each behaviour type, from {list(BEHAVIOURS)}")
    strategy: str = Field("best_response", description=f"how adaptive principals choose actions: one of "
                          f"{list(STRATEGIES)}, an installed plug-in's name, or 'module:Class' (a subclass of "
                          "sim.strategies.Strategy)")
    unit_cost: tuple[float, float] = Field((0.01, 0.05), description="range of private unit data costs (per row)")
    cost_levels: list[float] = Field(default_factory=list, description="discrete unit costs instead of draws from "
                                     "the range: each level held by an equal share of the principals (seeded "
                                     "order); levels lie in unit_cost, which contracts still use for their types")
    quality_cost: float = Field(0.01, ge=0.0, description="effort per row for cleaning all noisy labels (q = 1)")
    base_label_noise: tuple[float, float] = Field((0.0, 0.3), description="range of raw label-noise fractions")
    valuation: PositiveFloat = Field(100.0, description="value of a model per unit of accuracy, per round")
    free_ride: Literal[FREE_RIDE] = Field("noise", description="what free-riders contribute")
    gradient_scale: float = Field(10.0, description="factor of scaled-gradient adversaries")
    sybil_identities: int = Field(3, ge=2, description="identities a sybil splits its pool into")
    m_grid: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0],
                                description="contribution fractions of the pool in the action grid")
    q_grid: list[float] = Field(default_factory=lambda: [0.0, 1.0], description="label-cleaning levels in the grid")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="exploration rate (epsilon_greedy)")
    imitation_rate: float = Field(0.3, ge=0.0, le=1.0, description="chance to copy a better-off peer (imitation)")
    value_profiles: list[ProfileShare] = Field(default_factory=list, description="value profiles and their shares")

    @model_validator(mode="after")
    def _check(self) -> PopulationConfig:
        strategy_class(self.strategy, field="population.strategy")
        unknown = sorted(set(self.behaviours) - set(BEHAVIOURS))
        if unknown:
            raise InputError("population.behaviours", unknown, f"behaviour types from {list(BEHAVIOURS)}")
        for name, share in self.behaviours.items():
            if not 0.0 <= share <= 1.0:
                raise InputError(f"population.behaviours.{name}", share, "a share in [0, 1]")
        total = sum(self.behaviours.values())
        if abs(total - 1.0) > 1e-9:
            raise InputError("population.behaviours", self.behaviours, "shares that sum to 1")
        for field in ("unit_cost", "base_label_noise"):
            lo, hi = getattr(self, field)
            if not 0.0 <= lo <= hi:
                raise InputError(f"population.{field}", (lo, hi), "a range 0 ≤ low ≤ high")
        lo, hi = self.unit_cost
        if any(not lo - 1e-12 <= c <= hi + 1e-12 for c in self.cost_levels):
            raise InputError("population.cost_levels", self.cost_levels, f"levels within unit_cost = [{lo}, {hi}]")
        if len(set(self.cost_levels)) != len(self.cost_levels):
            raise InputError("population.cost_levels", self.cost_levels, "distinct levels")
        if self.base_label_noise[1] > 1.0:
            raise InputError("population.base_label_noise", self.base_label_noise, "fractions in [0, 1]")
        for field, values in (("m_grid", self.m_grid), ("q_grid", self.q_grid)):
            if not values or any(not 0.0 <= v <= 1.0 for v in values):
                raise InputError(f"population.{field}", values, "a non-empty list of fractions in [0, 1]")
        if not any(m > 0 for m in self.m_grid):
            raise InputError("population.m_grid", self.m_grid, "at least one contribution fraction > 0")
        if sum(p.share for p in self.value_profiles) > 1.0 + 1e-9:
            raise InputError("population.value_profiles", [p.share for p in self.value_profiles],
                             "shares that sum to at most 1 (the rest admit everything)")
        return self


class TrainingConfig(_Strict):
    """How the cooperative learns."""

    mode: Literal[MODES] = Field("real", description="real torch training or a surrogate learning curve")
    substrate: Literal[SUBSTRATES] = Field("tl", description="traversal learning or FedAvg")
    dataset: str | DataFile = Field("digits", description=f"one of {list(DATASETS)}, or your own file (real mode): "
                                    "{ path = 'members.csv', label = 'target' } (CSV, parquet, or npz with X and y)")
    partition: Literal[PARTITIONS] = Field("uni", description=f"one of {list(PARTITIONS)}")
    model: str = Field("mlp", description=f"one of {list(MODELS)}, or your own factory 'module:function' "
                       "(n_features, n_classes) -> torch.nn.Module (real mode; TL checks it is exact)")
    hidden: list[int] = Field(default_factory=lambda: [64], description="hidden widths (mlp, multitask)")
    lr: PositiveFloat = Field(0.3, description="learning rate η")
    batch_size: PositiveInt = Field(64, description="virtual batch size (TL) / local batch (FedAvg)")
    steps_per_round: PositiveInt = Field(4, description="TL steps per round")
    local_epochs: PositiveInt = Field(1, description="FedAvg local epochs per round")
    guard_ratio: float | None = Field(3.0, ge=0.0, description="the coordinator's safeguard (learning.guard): a "
                                      "member's reported piece/update is excluded when non-finite and its norm "
                                      "(per row, TL) bounded by this × the members' lower quartile; 0 turns it off")
    credit: Literal[CREDITS] = Field("exact", description="real mode: each member's one-step counterfactual "
                                     "credit (V3) 'exact' (the validation loss at θ − η·g̃_i for every member) or "
                                     "'first_order' (its linear term η·⟨g̃_i, ∇L_val(θ)⟩: one validation "
                                     "gradient per step, cheaper at many members; FedAvg: the same term of its "
                                     "V3 analogue); see docs/model.md, credit options")
    device: Literal[DEVICES] = Field("auto", description="real mode: where torch trains and evaluates, 'auto' "
                                     "(CUDA when torch sees one, else the CPU), 'cpu' or 'cuda' ('cuda' without a "
                                     "CUDA device is refused when the model is built); same seed, same draws on "
                                     "either device, but not bit-identical results (docs/model.md)")
    standalone_epochs: PositiveInt = Field(20, description="epochs of each principal's standalone model")
    surrogate_scale: PositiveFloat = Field(50.0, description="surrogate: rows of data per unit of the curve's m")
    surrogate_dim: PositiveInt = Field(16, description="surrogate: dimension of synthetic update vectors")

    @model_validator(mode="before")
    @classmethod
    def _data_file(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("dataset"), Mapping):
            data = {**data, "dataset": as_data_file(data["dataset"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if isinstance(self.dataset, str) and self.dataset not in DATASETS:
            raise InputError("dataset", self.dataset, f"one of {list(DATASETS)}, or a data file: "
                                                      "{ path = 'members.csv', label = 'target' }")
        if self.model not in MODELS and not is_model_factory(self.model):
            raise InputError("model", self.model, f"one of {list(MODELS)}, or a factory 'module:function'")
        if self.mode == "real" and (isinstance(self.dataset, DataFile) or is_model_factory(self.model)):
            data = load_dataset(self.dataset)  # a file is read (and cached) now: a bad one stops before any run
            if is_model_factory(self.model):
                if self.model == "multitask" or data.targets:
                    raise InputError("model", self.model, "a built-in model for multi-task data")
                _check_factory(self.model, self.substrate, data)
        return self


class MarketConfig(_Strict):
    """The market for the shared model: what access to it earns the cooperative each round, under
    mechanisms that sell it (``sells_model``; model-reward mechanisms pay with the model instead)."""

    revenue_r0: float = Field(100.0, ge=0.0, description="revenue per round of a perfect model (R0)")
    revenue_acc0: float = Field(0.1, ge=0.0, lt=1.0, description="accuracy below which the model earns nothing")


#: settings moved between 0.2 and 0.3, for a helpful message
MOVED = {"revenue_r0": "market.revenue_r0", "revenue_acc0": "market.revenue_acc0",
         "contract_types": "mechanism.types (kind = \"contracts\")",
         "contract_cohort": "mechanism.cohort (kind = \"contracts\")",
         "contract_capacity_quantile": "mechanism.capacity_quantile (kind = \"contracts\")",
         "cgsv_download": "mechanism.download (kind = \"cgsv\")"}


def _mechanism_entry(value: Any) -> MechanismSettings:
    if isinstance(value, Mapping):
        for old, new in MOVED.items():
            if old in value:
                raise InputError(f"mechanism.{old}", value[old], f"this setting is now {new}")
    return settings_for(value, field="mechanism")


#: a mechanism's entry: validated by the settings of the class its ``kind`` names (a discriminated
#: union on ``kind`` open to plug-ins); stored and dumped with that mechanism's own fields only
MechanismEntry = Annotated[SerializeAsAny[MechanismSettings], BeforeValidator(_mechanism_entry)]


class CooperativeConfig(_Strict):
    """A whole cooperative: population, training, mechanism and time."""

    population: PopulationConfig = Field(default_factory=PopulationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mechanism: MechanismEntry = Field(default_factory=RevenueSharesSettings,
                                      description="the reward mechanism: { kind = ..., its own settings }")
    market: MarketConfig = Field(default_factory=MarketConfig)
    rounds: PositiveInt = Field(50, le=MAX_ROUNDS, description=f"rounds to run (at most {MAX_ROUNDS:,})")
    decision_period: PositiveInt = Field(1, le=MAX_ROUNDS, description="rounds between principals' decisions")
    collect_agents: bool | None = Field(None, description="record agent-level reporters every round; default "
                                        f"(null): only for populations of at most {AUTO_AGENT_ROWS:,} principals, "
                                        "so a default run never writes more rows than it can read back")
    allow_long_runs: bool = Field(False, description="run even when the estimated time exceeds "
                                                     f"{MAX_HOURS:g} hours on a 2-core machine")

    @model_validator(mode="after")
    def _check(self) -> CooperativeConfig:
        if self.training.mode == "real" and isinstance(self.training.dataset, DataFile):
            check_rows(load_dataset(self.training.dataset), self.population.n_principals,
                       partition=self.training.partition, field="training.dataset.path")
        if any(p.profile.reject_heads or p.profile.admit_heads for p in self.population.value_profiles):
            if self.training.model != "multitask":
                raise InputError("training.model", self.training.model,
                                 "'multitask' when a value profile rejects or admits heads")
        self.mechanism.check_with(self)
        if self.training.substrate == "fedavg" and self.population.value_profiles:
            raise InputError("population.value_profiles", "(set)", "training.substrate='tl' (filters act on TL pieces)")
        if self.training.mode == "surrogate" and self.population.value_profiles:
            raise InputError("population.value_profiles", "(set)",
                             "none in surrogate mode (filters need real gradients)")
        hours = self.estimated_hours()
        if hours > MAX_HOURS and not self.allow_long_runs:
            raise InputError("rounds", self.rounds,
                             f"a run this machine finishes in under {MAX_HOURS:g} hours: {self.rounds:,} rounds × "
                             f"{self.population.n_principals:,} principals in {self.training.mode} mode is about "
                             f"{hours:,.1f} hours (measured: {SECONDS_PER_AGENT_ROUND[self.training.mode] * 1e6:g} µs "
                             f"per principal-round); lower rounds or population.n_principals, or set "
                             f"allow_long_runs = true")
        return self

    @property
    def agents_collected(self) -> bool:
        """Whether agent-level rows are recorded (``collect_agents``, or the population-size default)."""
        if self.collect_agents is not None:
            return self.collect_agents
        return self.population.n_principals <= AUTO_AGENT_ROWS

    @property
    def identities(self) -> int:
        """Agents the population makes: principals, with each sybil owner's identities counted."""
        pop = self.population
        sybils = round(pop.behaviours.get("sybil", 0.0) * pop.n_principals)
        return pop.n_principals + sybils * (pop.sybil_identities - 1)

    def estimated_hours(self) -> float:
        """Wall time of one run on a 2-core machine, from the benchmarks' measured costs per round,
        per principal-round and per principal built (``benchmarks/bench_sim.py``)."""
        mode, n = self.training.mode, self.identities
        seconds = (n * SECONDS_PER_PRINCIPAL[mode]
                   + self.rounds * (SECONDS_PER_ROUND[mode] + n * SECONDS_PER_AGENT_ROUND[mode]))
        return seconds / 3600.0

    def estimated_gb(self) -> float:
        """Peak memory of one run, from the benchmarks' measured costs per principal and per
        agent-level row (``benchmarks/bench_sim.py``)."""
        n = self.identities
        rows = n * self.rounds if self.agents_collected else 0
        return BASE_GB + (n * KB_PER_PRINCIPAL + rows * KB_PER_AGENT_ROW) / 2**20

    def check_memory(self, available_gb: float | None = None) -> None:
        """Refuse a run that cannot fit in memory (``available_gb``: default, what this machine has
        available now), naming the field to lower and the most principals that fit."""
        available = available_memory_gb() if available_gb is None else available_gb
        need = self.estimated_gb()
        if need <= available:
            return
        n = self.population.n_principals
        per = (self.estimated_gb() - BASE_GB) / n  # GB per principal, as configured
        most = max(0, int((available - BASE_GB) / per))
        agents = " with agent-level rows (collect_agents)" if self.agents_collected else ""
        raise InputError("population.n_principals", n,
                         f"a population that fits in this machine's memory: {n:,} principals{agents} need about "
                         f"{need:,.1f} GB and {available:,.1f} GB is available, so at most about {most:,} here "
                         f"(measured: {KB_PER_PRINCIPAL:g} KB per principal, {KB_PER_AGENT_ROW:g} KB per agent-level "
                         f"row)")


def available_memory_gb() -> float:
    """Memory available to a new run on this machine (``MemAvailable`` of ``/proc/meminfo``; the
    physical memory where that is unknown; infinite where neither is)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("inf")
