"""The public mechanism API: what a reward mechanism sees each round and what it returns.

A mechanism is a class that subclasses :class:`Mechanism`, declares its settings as a pydantic
:class:`MechanismSettings` subclass (``Settings``) and implements :meth:`Mechanism.pay`. It never
sees the simulation's internals, only what a real coordinator would see:

- at the start, a :class:`Cooperative` — who may join (principal ids and the rows each could bring),
  the coordinator's public beliefs (the range of unit data costs, the value of a model per unit of
  accuracy), a random generator of its own, and, for model rewards, the :class:`SharedModel`;
- every round, a read-only :class:`RoundView` — the round index, the members' ids, their claimed rows,
  their per-member credit (the one-step counterfactual, V3), the shared model's accuracy, the round's
  revenue, and (when ``needs_updates``) the members' update vectors.

It returns a :class:`Payout`: money per principal id and, optionally, the accuracy of each member's
reward model ("paid with models"). Either may be a plain mapping or, for large cooperatives, a
:class:`ByMember` — ids and amounts as two aligned arrays, which the simulation reads without a
per-member loop. A mechanism that lets principals self-select (contracts, P)
posts a :meth:`Mechanism.menu` of :class:`Offer` items instead of leaving the choice to the
principals' learning strategies; each principal then takes the offer that maximises its own utility,
or stays out.

Example (a complete plug-in)::

    from pydantic import Field
    from sim.mechanisms import Mechanism, MechanismSettings, Payout

    class PayPerRowSettings(MechanismSettings):
        rate: float = Field(1.0, gt=0, description="money per claimed row, capped by the round's revenue")

    class PayPerRow(Mechanism):
        Settings = PayPerRowSettings
        summary = "a fixed rate per claimed row, scaled down to the round's revenue"

        def pay(self, view):
            owed = self.settings.rate * view.rows
            scale = min(1.0, view.revenue / owed.sum()) if owed.sum() > 0 else 0.0
            return Payout(payments=dict(zip(view.members, (owed * scale).tolist())))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class MechanismSettings(BaseModel):
    """A mechanism's settings: subclass it and add your own fields (each with a default and a
    ``description``, shown by ``coopsim list``). ``kind`` is the name the scenario used."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    kind: str = Field(description="the mechanism: a built-in name, an installed plug-in's name, or 'module:Class'")

    def check_with(self, cooperative: Any) -> None:
        """Checks against the rest of the cooperative's configuration (``sim.CooperativeConfig``),
        run when it is validated; raise :class:`coopsim.errors.InputError` naming the field
        (e.g. ``"mechanism.horizon"``). Nothing by default."""


class SharedModel(Protocol):
    """Access to the cooperative's shared model, for mechanisms that pay with models.

    In real mode (``has_parameters``) models are flat float64 parameter vectors: ``initial()`` and
    ``current()`` are the shared model's parameters at the start and now, ``tensors(flat)`` splits a
    vector into one array per parameter tensor, and ``evaluate(rows)`` gives the test accuracy of each
    parameter vector (rows of a 2-d array). The surrogate mode has no parameters: there
    ``share_accuracy(q)`` gives the accuracy of a model that holds the fraction ``q_i`` of this round's
    pooled update."""

    has_parameters: bool

    def initial(self) -> np.ndarray: ...

    def current(self) -> np.ndarray: ...

    def tensors(self, flat: np.ndarray) -> list[np.ndarray]: ...

    def evaluate(self, params: np.ndarray) -> np.ndarray: ...

    def share_accuracy(self, shares: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Cooperative:
    """What the coordinator knows when the cooperative starts.

    ``principals``: every principal id that may join (a sybil's identities are separate ids);
    ``pool_rows``: the rows each could bring (aligned with ``principals``); ``unit_cost``: the public
    range of private unit data costs (the coordinator's prior, not anyone's cost); ``valuation``: the
    value of a model per unit of accuracy per round; ``rows_per_unit``: rows per unit of the learning
    curve's data axis (``training.surrogate_scale``); ``rng``: the mechanism's own random generator
    (seeded from the run's seed); ``model``: the shared model (see :class:`SharedModel`)."""

    principals: tuple[int, ...]
    pool_rows: np.ndarray
    unit_cost: tuple[float, float]
    valuation: float
    rows_per_unit: float
    rng: np.random.Generator
    model: SharedModel | None = None

    @cached_property
    def _sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.principals, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        return ids[order], order

    def positions(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions in ``principals`` of the given principal ids (for per-principal state arrays)."""
        ordered, order = self._sorted_ids
        return order[np.searchsorted(ordered, np.asarray(ids, dtype=np.int64))]


@dataclass(frozen=True)
class RoundView:
    """One round as the coordinator sees it (arrays are read-only and aligned with ``members``).

    ``round``: index from 0; ``members``: ids of this round's members; ``rows``: rows each claims to
    bring; ``credit``: each member's one-step counterfactual credit for the round (V3); ``accuracy``:
    the shared model's test accuracy after the round; ``revenue``: money the market paid for the
    model this round (0 when the mechanism does not sell it); ``updates``: each member's update vector
    (rows; only for mechanisms with ``needs_updates``, else None); ``offers``: the menu item each member
    took (mechanisms with a :meth:`Mechanism.menu`, else empty); ``model``: the shared model."""

    round: int
    members: tuple[int, ...]
    rows: np.ndarray
    credit: np.ndarray
    accuracy: float
    revenue: float
    updates: np.ndarray | None = None
    offers: tuple[int, ...] = ()
    model: SharedModel | None = None

    @cached_property
    def member_ids(self) -> np.ndarray:
        """``members`` as a read-only int64 array."""
        ids = np.asarray(self.members, dtype=np.int64)
        ids.setflags(write=False)
        return ids

    @classmethod
    def frozen(cls, **values: Any) -> RoundView:
        """A view whose arrays are read-only copies (what the cooperative hands a mechanism)."""
        for name in ("rows", "credit", "updates"):
            if values.get(name) is not None:
                arr = np.array(values[name], copy=True)
                arr.setflags(write=False)
                values[name] = arr
        for name in ("members", "offers"):
            ids = values.get(name, ())
            values[name] = tuple(ids.tolist() if isinstance(ids, np.ndarray) else (int(i) for i in ids))
        return cls(**values)


class ByMember(Mapping[int, float]):
    """Amounts by principal id held as two aligned arrays (``ids``: distinct ints, ``values``:
    floats): a read-only mapping that a mechanism returns in a :class:`Payout` when it computes for
    all members at once (e.g. ``ByMember(view.members, shares * revenue)``)."""

    __slots__ = ("_lookup", "ids", "values")

    def __init__(self, ids: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(self.ids) != len(self.values):
            raise ValueError(f"ByMember: {len(self.ids)} ids but {len(self.values)} values")
        self._lookup: dict[int, float] | None = None

    def _dict(self) -> dict[int, float]:
        if self._lookup is None:
            self._lookup = dict(zip(self.ids.tolist(), self.values.tolist(), strict=True))
        return self._lookup

    def __getitem__(self, key: int) -> float:
        return self._dict()[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ByMember({len(self)} members)"


def as_arrays(amounts: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, values)`` arrays of a payout's mapping (no copy for a :class:`ByMember`)."""
    if isinstance(amounts, ByMember):
        return amounts.ids, amounts.values
    ids = np.fromiter(amounts.keys(), dtype=np.int64, count=len(amounts))
    return ids, np.fromiter((float(v) for v in amounts.values()), dtype=np.float64, count=len(amounts))


@dataclass
class Payout:
    """What a mechanism gives in one round: ``payments`` (money by principal id; ids not listed get
    nothing), ``reward_accuracy`` (test accuracy of the model each listed member receives; a member
    not listed values only its standalone model), and ``settled`` (False in rounds that only accrue,
    e.g. inside a settlement horizon: fairness and inequality are then not measured)."""

    payments: Mapping[int, float] = field(default_factory=dict)
    reward_accuracy: Mapping[int, float] = field(default_factory=dict)
    settled: bool = True


@dataclass(frozen=True)
class Offer:
    """One item of a posted menu: bring ``rows`` rows and receive what is worth ``value`` per round
    (money units) in expectation."""

    rows: int
    value: float


class Mechanism:
    """Base class of every reward mechanism (built-in or plug-in).

    Subclass it, set ``Settings`` to your :class:`MechanismSettings` subclass and implement
    :meth:`pay`. Class attributes declare what the mechanism needs and how it is funded:

    - ``sells_model`` (True): the cooperative sells access to the shared model and the round's revenue
      is the mechanism's budget (V6); False for mechanisms that pay with models, whose money budget is 0.
    - ``needs_updates`` (False): hand the members' update vectors to :meth:`pay` (model rewards, C1).
    - ``keeps_standalone`` (False): a member keeps its own standalone model beside the reward model
      and values the better of the two (CGSV's reward model starts from scratch).
    - ``reporters`` (()): names of extra per-round values returned by :meth:`metrics`, recorded by the
      simulation's DataCollector beside its own.
    - ``summary``: one line for ``coopsim list``.
    """

    Settings: ClassVar[type[MechanismSettings]] = MechanismSettings
    summary: ClassVar[str] = ""
    sells_model: ClassVar[bool] = True
    needs_updates: ClassVar[bool] = False
    keeps_standalone: ClassVar[bool] = False
    reporters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: MechanismSettings, cooperative: Cooperative) -> None:
        self.settings = settings
        self.cooperative = cooperative

    def pay(self, view: RoundView) -> Payout:
        """The round's payments and reward models (called once per round, members or not)."""
        raise NotImplementedError(f"{type(self).__name__}.pay")

    def menu(self) -> Sequence[Offer] | None:
        """Self-selection hook: the offers posted at the start of every decision period, or None
        (the default) to let principals choose their actions with their strategies."""
        return None

    def funds(self, view: RoundView) -> float:
        """Money this round adds to the mechanism's budget (P-budget, V6): the round's revenue for
        mechanisms that sell the model, 0 for those that pay with models. Cumulative payments never
        exceed cumulative funds (``coopsim check`` verifies it)."""
        return view.revenue if self.sells_model else 0.0

    def metrics(self) -> dict[str, float]:
        """Values of the extra ``reporters`` after the latest round."""
        return {}


def payout_of(result: Payout | Mapping[int, float] | None) -> Payout:
    """A mechanism may return a :class:`Payout` or just the payments (a mapping)."""
    if result is None:
        return Payout()
    if isinstance(result, Payout):
        return result
    return Payout(payments=dict(result))
