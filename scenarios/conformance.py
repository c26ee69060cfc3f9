"""Conformance check for a mechanism (built-in or plug-in), in the spirit of scikit-learn's
``check_estimator``: the mechanism runs in small seeded surrogate cooperatives (honest members,
free-riders and a sybil, adapting by ε-greedy) and is judged item by item:

1. **settings validate** — its ``Settings`` is a :class:`~sim.mechanisms.MechanismSettings`; the given
   settings validate, every field has a description, and the dumped settings validate back to
   the same values;
2. **runs** — a cooperative with it runs every round without an exception, paying known principals
   only and giving reward models to members only;
3. **payments finite** — every payment and reward-model accuracy is finite, accuracies in [0, 1];
4. **within budget** — cumulative payments never exceed the mechanism's cumulative funds
   (:meth:`~sim.mechanisms.Mechanism.funds`: the revenue, for mechanisms that sell the model), to
   a tolerance of 1e-9 × (1 + funds);
5. **deterministic** — the same seed gives the same payments and reward models, exactly;
6. **inputs not mutated** — the arrays of every :class:`~sim.mechanisms.RoundView` (rows, credit,
   updates) are unchanged after ``pay`` (they are handed over writable here, to catch it).

``coopsim check KIND [--set name=value ...]`` prints the items; :func:`assert_conforms` raises with
every failure listed (for a plug-in's own test suite).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coopsim.errors import InputError, PluginError
from sim import CooperativeModel
from sim.mechanisms import MechanismSettings, RoundView, mechanism_class, payout_of, settings_for

ITEMS = ("settings validate", "runs", "payments finite", "within budget", "deterministic", "inputs not mutated")
BUDGET_TOL = 1e-9


@dataclass
class Item:
    """One conformance item: its name, whether it passed, and what was found."""

    name: str
    passed: bool | None = None  # None: not reached (an earlier item failed)
    detail: str = ""


@dataclass
class ConformanceReport:
    """Every item's verdict for one mechanism and its settings."""

    kind: str
    settings: dict[str, Any]
    items: list[Item] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(item.passed for item in self.items)

    def failures(self) -> list[Item]:
        return [item for item in self.items if not item.passed]

    def text(self) -> str:
        lines = [f"conformance of {self.kind} with {self.settings}:"]
        for item in self.items:
            mark = {True: "pass", False: "FAIL", None: "skip"}[item.passed]
            lines.append(f"  {mark:4}  {item.name}" + (f": {item.detail}" if item.detail else ""))
        return "\n".join(lines)


@dataclass
class _Record:
    payouts: list[tuple[dict, dict]] = field(default_factory=list)
    cumulative_paid: float = 0.0
    cumulative_funds: float = 0.0
    over_budget: str = ""
    not_finite: str = ""
    mutated: str = ""


def _cooperative(kind: str, settings: MechanismSettings, seed: int, rounds: int) -> dict[str, Any]:
    period = int(getattr(settings, "horizon", 1) or 1)
    return {"rounds": max(rounds, 4 * period), "decision_period": period, "collect_agents": False,
            "training": {"mode": "surrogate"},
            "population": {"n_principals": 12, "strategy": "epsilon_greedy", "epsilon": 0.2,
                           "behaviours": {"honest": 0.6, "free_rider": 0.2, "sybil": 0.2}},
            "mechanism": settings.model_dump()}


def _record(model: CooperativeModel, rec: _Record) -> None:
    """Wrap the mechanism's ``pay`` to hand it writable copies, then check what it did and returned."""
    mech = model.mechanism
    pay = mech.pay

    def recorded(view: RoundView) -> Any:
        arrays = {name: getattr(view, name) for name in ("rows", "credit", "updates")}
        writable = {k: (None if v is None else np.array(v, copy=True)) for k, v in arrays.items()}
        before = {k: (None if v is None else v.copy()) for k, v in writable.items()}
        result = pay(dataclasses.replace(view, **writable))
        for name, arr in writable.items():
            if arr is not None and not rec.mutated and not np.array_equal(arr, before[name], equal_nan=True):
                rec.mutated = f"pay() changed view.{name} in round {view.round + 1}"
        out = payout_of(result)
        payments = {int(k): float(v) for k, v in out.payments.items()}
        accuracy = {int(k): float(v) for k, v in out.reward_accuracy.items()}
        rec.payouts.append((payments, accuracy))
        bad = [v for v in [*payments.values(), *accuracy.values()] if not math.isfinite(v)]
        bad_acc = [v for v in accuracy.values() if math.isfinite(v) and not 0.0 <= v <= 1.0]
        if (bad or bad_acc) and not rec.not_finite:
            rec.not_finite = (f"round {view.round + 1}: non-finite values {bad[:3]}" if bad
                              else f"round {view.round + 1}: reward accuracies outside [0, 1]: {bad_acc[:3]}")
        rec.cumulative_paid += sum(v for v in payments.values() if math.isfinite(v))
        rec.cumulative_funds += float(mech.funds(view))
        if rec.cumulative_paid > rec.cumulative_funds + BUDGET_TOL * (1.0 + abs(rec.cumulative_funds)) \
                and not rec.over_budget:
            rec.over_budget = (f"by round {view.round + 1} paid {rec.cumulative_paid:.6g} against funds of "
                               f"{rec.cumulative_funds:.6g}")
        return out

    mech.pay = recorded  # type: ignore[method-assign]


def _run(config: dict[str, Any], seed: int, rec: _Record | None = None) -> _Record:
    rec = _Record() if rec is None else rec
    model = CooperativeModel(config, rng=seed)
    _record(model, rec)
    model.run()
    return rec


def check_mechanism(kind: str | type, settings: dict[str, Any] | None = None, *, seed: int = 0,
                    rounds: int = 8) -> ConformanceReport:
    """Run the conformance items for the mechanism ``kind`` (a name, a ``module:Class`` path, or the
    class itself) with ``settings`` (its own settings, without ``kind``)."""
    if isinstance(kind, type):
        name = f"{kind.__module__}:{kind.__qualname__}"
    else:
        name = str(kind)
    given = dict(settings or {})
    report = ConformanceReport(name, given, [Item(n) for n in ITEMS])
    items = {item.name: item for item in report.items}
    # 1. settings
    try:
        cls = mechanism_class(name, field="kind")
        parsed = settings_for({**given, "kind": name}, field="mechanism")
        undocumented = [f for f, info in cls.Settings.model_fields.items() if not info.description and f != "kind"]
        again = settings_for(parsed.model_dump(), field="mechanism")
        if undocumented:
            items["settings validate"].passed = False
            items["settings validate"].detail = f"fields without a description: {undocumented}"
        elif again != parsed:
            items["settings validate"].passed = False
            items["settings validate"].detail = f"dumped settings validate to other values: {again!r}"
        else:
            items["settings validate"].passed = True
            items["settings validate"].detail = f"{cls.__name__}.Settings: {parsed.model_dump()}"
    except InputError as exc:
        items["settings validate"].passed = False
        items["settings validate"].detail = str(exc)
        return report
    config = _cooperative(name, parsed, seed, rounds)
    # 2.–4., 6.: one run
    first = _Record()
    try:
        _run(config, seed, first)
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ is not None else None
        items["runs"].passed = False
        items["runs"].detail = f"{exc}" + (f": {type(cause).__name__}: {cause}" if cause else "")
        for name, found in (("payments finite", first.not_finite), ("within budget", first.over_budget),
                            ("inputs not mutated", first.mutated)):
            if found:  # what the recorder saw before the run stopped
                items[name].passed, items[name].detail = False, found
        return report
    items["runs"].passed = True
    items["runs"].detail = f"{len(first.payouts)} rounds, 12 principals (+ sybil identities), surrogate mode"
    items["payments finite"].passed = not first.not_finite
    items["payments finite"].detail = first.not_finite
    items["within budget"].passed = not first.over_budget
    items["within budget"].detail = first.over_budget or (f"paid {first.cumulative_paid:.6g} of funds "
                                                          f"{first.cumulative_funds:.6g}")
    items["inputs not mutated"].passed = not first.mutated
    items["inputs not mutated"].detail = first.mutated
    # 5. the same seed again
    try:
        second = _run(config, seed)
        same = second.payouts == first.payouts
        items["deterministic"].passed = same
        if not same:
            at = next((i for i, (a, b) in enumerate(zip(first.payouts, second.payouts, strict=False)) if a != b),
                      min(len(first.payouts), len(second.payouts)))
            items["deterministic"].detail = (f"the same seed gave other payouts from round {at + 1} (use the "
                                             "Cooperative's rng for every random choice)")
    except Exception as exc:
        items["deterministic"].passed = False
        items["deterministic"].detail = f"the second run raised {type(exc).__name__}: {exc}"
    return report


def assert_conforms(kind: str | type, settings: dict[str, Any] | None = None, **kwargs: Any) -> ConformanceReport:
    """:func:`check_mechanism`, raising ``AssertionError`` with the report when any item fails."""
    report = check_mechanism(kind, settings, **kwargs)
    if not report.ok:
        raise AssertionError(report.text())
    return report
