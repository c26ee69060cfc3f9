"""A study file: what ``coopsim tune`` searches, for what, under which constraints.

::

    name = "alpha-for-welfare"      # the study's name in its store (default: the file's stem)
    seed = 0                        # root seed: every trial runs the same replicate seeds
    trials = 24                     # trials that finish (an interrupted one does not count)
    repeats = 4                     # replicates (seeds) per trial; objectives are means with intervals
    sampler = "auto"                # auto (TPE for one objective, NSGA-II for several), tpe, nsga2, random
    constraints_on = "interval"     # a constraint holds when the interval's pessimistic end meets it
    unsettled = "infeasible"        # a trial whose population did not settle is infeasible (or "allowed")

    [cooperative]                   # the cooperative (sim.CooperativeConfig) with its mechanism
    rounds = 120
    mechanism = { kind = "revenue_shares", alpha = 1.0 }

    [space]                         # dotted paths into [cooperative]
    "mechanism.alpha" = { low = 1.0, high = 8.0 }            # a float range (log = true for a log scale)
    "mechanism.horizon" = [1, 2, 5]                            # choices
    "population.n_principals" = { low = 10, high = 40, step = 10 }   # integer bounds: an integer range

    [objectives]                    # metrics of the run's summary → "maximize" / "minimize"
    welfare = "maximize"

    [constraints]                   # metric → "<= bound" or ">= bound"
    free_rider_profit = "<= 0"
    participation = ">= 0.8"

Everything is checked before any trial runs; a problem is an :class:`~coopsim.errors.InputError`
naming the field, the value and what is allowed (exit code 2 on the CLI).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from coopsim.errors import InputError
from scenarios.config import Section, read_toml, section_type, set_path, validate
from scenarios.library._cooperative import SERIES, SETTLING, SettleConfig
from sim import CooperativeConfig
from sim.config import MAX_HOURS
from sim.mechanisms import mechanism_class

SAMPLERS = ("auto", "tpe", "nsga2", "random")
#: metrics every trial's summary holds for its mechanism (besides the mechanism's own reporters)
METRICS = (*SERIES, *SETTLING)


class StudyFile(Section):
    """The top level of a study file (see the module docstring)."""

    name: str | None = Field(None, min_length=1, max_length=200, description="the study's name in its store "
                                                                               "(default: the file's stem)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="root seed: every trial runs replicate k with the seed "
                                                         "derive_seed(seed, 100, k) (common random numbers)")
    trials: int = Field(20, ge=1, le=100_000, description="trials that finish (an interrupted trial is re-run)")
    repeats: int = Field(3, ge=1, le=50, description="replicates per trial; objectives are means over them "
                                                     "with an interval")
    sampler: Literal[SAMPLERS] = Field("auto", description="auto: TPE for one objective, NSGA-II for several")
    constraints_on: Literal["interval", "mean"] = Field(
        "interval", description="interval: a constraint holds only when the interval's pessimistic end meets it; "
                                "mean: when the mean does")
    unsettled: Literal["infeasible", "allowed"] = Field(
        "infeasible", description="infeasible: a trial whose population did not settle "
                                  "violates the implicit constraint 'settled'; allowed: it counts like any other")
    final_window: float = Field(0.25, gt=0, le=1, description="share of last rounds averaged in each replicate")
    ci_level: float = Field(0.95, gt=0.5, lt=1.0, description="confidence level of the intervals")
    settle: SettleConfig = Field(default_factory=SettleConfig, description="when a population counts as settled")
    cooperative: dict[str, Any] = Field(default_factory=dict, description="the cooperative with its mechanism "
                                                                           "(sim.CooperativeConfig)")
    space: dict[str, Any] = Field(description="dotted path → { low, high[, log][, step] } or a list of choices")
    objectives: dict[str, str] = Field(description="metric → 'maximize' or 'minimize'")
    constraints: dict[str, str] = Field(default_factory=dict, description="metric → '<= bound' or '>= bound'")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a float or integer range, or choices."""

    path: str
    kind: Literal["float", "int", "choice"]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def corners(self) -> list[Any]:
        """Values checked against the cooperative before any trial runs."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` or ``metric >= bound``, evaluated on the interval's pessimistic end (or the mean)."""

    metric: str
    op: Literal["<=", ">="]
    bound: float

    def end(self, estimate: dict[str, Any], on: str) -> float | None:
        """The value judged: the interval's high end for ``<=`` and low end for ``>=`` (``on =
        "interval"``), or the mean; ``None`` when undefined."""
        if on == "mean":
            return estimate.get("mean")
        return estimate.get("ci_high" if self.op == "<=" else "ci_low")

    def violation(self, value: float | None) -> float:
        """≤ 0 when met (Optuna's convention), the amount by which it is missed otherwise; +inf when
        the metric is undefined."""
        if value is None:
            return float("inf")
        return value - self.bound if self.op == "<=" else self.bound - value

    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Study:
    """A validated study: the file's settings, the cooperative, the space, objectives and constraints."""

    file: StudyFile
    name: str
    cooperative: CooperativeConfig
    params: tuple[Param, ...]
    objectives: tuple[tuple[str, Literal["maximize", "minimize"]], ...]
    constraints: tuple[Constraint, ...]
    source: Path | None = None

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.objectives]

    def definition(self) -> dict[str, Any]:
        """Everything that makes two stores the same study (not ``trials``: a budget may be raised)."""
        f = self.file
        return {"cooperative": self.cooperative.model_dump(mode="json"),
                "space": {p.path: _param_json(p) for p in self.params},
                "objectives": dict(self.objectives), "constraints": {c.metric: f"{c.op} {c.bound!r}"
                                                                     for c in self.constraints},
                "seed": f.seed, "repeats": f.repeats, "sampler": f.sampler, "constraints_on": f.constraints_on,
                "unsettled": f.unsettled, "final_window": f.final_window, "ci_level": f.ci_level,
                "settle": f.settle.model_dump(mode="json")}

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()[:16]


def _param_json(p: Param) -> dict[str, Any]:
    if p.kind == "choice":
        return {"choices": list(p.choices)}
    return {"kind": p.kind, "low": p.low, "high": p.high, "log": p.log, "step": p.step}


def load_study(path: Path) -> Study:
    """Read and check a study file (every problem is bad input, found before any trial runs)."""
    path = Path(path)
    raw = read_toml(path)
    file = validate(StudyFile, raw)
    return build_study(file, name=file.name or path.stem, source=path)


def build_study(file: StudyFile, *, name: str, source: Path | None = None) -> Study:
    coop = validate(CooperativeConfig, file.cooperative, prefix="cooperative.")
    base = coop.model_dump(mode="json")
    params = tuple(_param(path, spec, coop) for path, spec in _leaves(file.space).items())
    if not params:
        raise InputError("space", file.space, "at least one dotted path with a range or choices, e.g. "
                                              "\"mechanism.alpha\" = { low = 1.0, high = 4.0 }")
    for p in params:  # every end of every range (and every choice) must make a valid cooperative
        for value in p.corners():
            try:
                assign(base, {p.path: value})
            except InputError as exc:
                raise InputError(f"space.{p.path}", value, f"values the cooperative accepts: {exc}") from None
    produced = metrics_of(coop, params)
    objectives = []
    if not file.objectives:
        raise InputError("objectives", {}, f"at least one metric → 'maximize' or 'minimize'; metrics: "
                                           f"{', '.join(produced)}")
    for metric, direction in file.objectives.items():
        _check_metric(f"objectives.{metric}", metric, produced)
        if direction not in ("maximize", "minimize"):
            raise InputError(f"objectives.{metric}", direction, "'maximize' or 'minimize'")
        objectives.append((metric, direction))
    constraints = []
    for metric, text in file.constraints.items():
        _check_metric(f"constraints.{metric}", metric, produced)
        constraints.append(parse_constraint(metric, text))
    if constraints and file.constraints_on == "interval" and file.repeats < 2:
        raise InputError("repeats", file.repeats, "at least 2 when a constraint is judged on the interval "
                                                  "(constraints_on = 'interval'; or set constraints_on = 'mean')")
    hours = coop.estimated_hours() * file.repeats * file.trials
    if hours > MAX_HOURS and not coop.allow_long_runs:
        raise InputError("trials", file.trials, f"a study this machine finishes in under {MAX_HOURS:g} hours: "
                         f"{file.trials} trials × {file.repeats} repeats is about {hours:,.1f} hours; lower "
                         f"trials, repeats or cooperative.rounds, or set cooperative.allow_long_runs = true")
    return Study(file, name, coop, params, tuple(objectives), tuple(constraints), source)


_CONSTRAINT = re.compile(r"^\s*(<=|>=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_constraint(metric: str, text: Any) -> Constraint:
    """``"<= 0"`` / ``">= 0.8"`` → :class:`Constraint`."""
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if match is None:
        raise InputError(f"constraints.{metric}", text, "'<= number' or '>= number', e.g. \"<= 0\" or \">= 0.8\"")
    return Constraint(metric, match.group(1), float(match.group(2)))  # type: ignore[arg-type]


def metrics_of(coop: CooperativeConfig, params: tuple[Param, ...] = ()) -> list[str]:
    """Metrics a trial's summary holds: the cooperative reporters, settling, and the own reporters of
    every mechanism a trial may run (the base one and any ``mechanism.kind`` choice)."""
    kinds = [coop.mechanism.kind] + [c for p in params if p.path == "mechanism.kind" for c in p.choices]
    own = [r for kind in dict.fromkeys(kinds) for r in mechanism_class(kind, field="mechanism.kind").reporters]
    return list(dict.fromkeys([*METRICS, *own]))


def _check_metric(field: str, metric: str, produced: list[str]) -> None:
    if metric not in produced:
        near = difflib.get_close_matches(metric, produced, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise InputError(field, metric, f"a metric the cooperative produces{hint}: {', '.join(produced)}")


def _leaves(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``[space]`` with nested tables flattened to dotted paths; a table with ``low``/``high`` (or a
    list) is a leaf."""
    out: dict[str, Any] = {}
    for key, value in space.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"low", "high"} & set(value)) and value:
            out.update(_leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


def valid_paths(coop: CooperativeConfig) -> list[str]:
    """Every dotted path a study may search: the leaf fields of the cooperative's sections and of its
    mechanism's settings."""
    paths: list[str] = []

    def walk(model: Any, prefix: str) -> None:
        for name, field in model.model_fields.items():
            sub = section_type(field.annotation)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")
            elif name != "mechanism" or prefix:
                paths.append(prefix + name)

    walk(type(coop), "")
    paths += [f"mechanism.{name}" for name in type(coop.mechanism).model_fields]
    return paths


def _param(path: str, spec: Any, coop: CooperativeConfig) -> Param:
    field = f"space.{path}"
    valid = valid_paths(coop)
    if path not in valid:
        near = difflib.get_close_matches(path, valid, n=1, cutoff=0.5)
        hint = f"; nearest: {near[0]!r}" if near else ""
        raise InputError(field, spec, f"a dotted path into [cooperative]{hint}; valid paths: {', '.join(valid)}")
    if isinstance(spec, list):
        if not spec:
            raise InputError(field, spec, "a non-empty list of choices")
        if any(not isinstance(c, str | int | float | bool) for c in spec):
            raise InputError(field, spec, "choices that are numbers, strings or booleans")
        if len(set(map(repr, spec))) != len(spec):
            raise InputError(field, spec, "distinct choices")
        return Param(path, "choice", choices=tuple(spec))
    if not isinstance(spec, dict):
        raise InputError(field, spec, "{ low = …, high = … } (optionally log = true, step = …) or a list of choices")
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown:
        raise InputError(f"{field}.{unknown[0]}", spec[unknown[0]], "unknown key; allowed: low, high, log, step")
    for key in ("low", "high"):
        value = spec.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InputError(f"{field}.{key}", value, "a number")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise InputError(f"{field}.log", log, "true or false")
    if not low < high:
        raise InputError(field, spec, f"a range with low < high ({'empty' if low == high else 'inverted'}: "
                                      f"low = {low}, high = {high})")
    if log and low <= 0:
        raise InputError(f"{field}.low", low, "a number > 0 on a log range (log = true)")
    kind: Literal["float", "int"] = "int" if isinstance(low, int) and isinstance(high, int) and (
        step is None or isinstance(step, int)) else "float"
    if step is not None:
        if not isinstance(step, int | float) or isinstance(step, bool) or not 0 < step <= high - low:
            raise InputError(f"{field}.step", step, f"a number in (0, high − low = {high - low}]")
        if log:
            raise InputError(f"{field}.step", step, "no step on a log range")
    return Param(path, kind, low, high, log, step)


def assign(base: dict[str, Any], params: dict[str, Any]) -> CooperativeConfig:
    """The cooperative ``base`` (a dump) with ``params`` (dotted path → value) set, validated. A
    ``mechanism.kind`` change keeps only the settings the new kind has."""
    import copy

    data = copy.deepcopy(base)
    kind = params.get("mechanism.kind")
    if kind is not None and kind != data.get("mechanism", {}).get("kind"):
        fields = mechanism_class(kind, field="mechanism.kind").Settings.model_fields
        data["mechanism"] = {k: v for k, v in data["mechanism"].items() if k in fields}
        data["mechanism"]["kind"] = kind
    for path, value in params.items():
        set_path(data, path.split("."), value, label=path)
    return validate(CooperativeConfig, data)
