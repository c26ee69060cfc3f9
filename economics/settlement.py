"""Settlement: cumulative credit (V4), alpha-power revenue shares (V5), payments (V6), a ledger.

The ledger keeps every member's per-step credit ``c_i^t`` and settles a horizon H once:
``C_i(H) = sum_{t in H} omega_t c_i^t`` (V4), ``r_i = C_i^alpha / sum_j C_j^alpha`` (V5),
``p_i = R(H) r_i`` (V6). Each payment is split back onto the steps that earned it (ours):
``p_i^t = p_i * omega_t c_i^t / C_i``, so the per-step parts of a payment sum to it exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from coopsim.errors import InputError, check, check_choice
from economics._checks import as_vector, distinct, finite_scalar

NEGATIVE_MODES = ("clip", "penalty")
ALL_ZERO_MODES = ("equal", "nothing")


def alpha_power_shares(C: np.ndarray, alpha: float, *, negative: str = "clip",
                       all_zero: str = "equal") -> np.ndarray:
    """alpha-power revenue shares (V5): ``r_i = C_i^alpha / sum_j C_j^alpha``, alpha >= 1.

    ``alpha = 1`` is proportional; larger alpha accentuates differences; ``alpha = inf`` is
    winner-take-all (ties split equally). Computed as ``(C_i / max C)^alpha`` so large alpha never
    overflows. Choices that are ours (SPEC §3):

    - ``negative="clip"`` (default): negative credits are set to 0 before the power (no negative
      pay); shares are >= 0 and sum to 1.
    - ``negative="penalty"``: ``r_i = sign(C_i) |C_i|^alpha / sum_j |C_j|^alpha``; members with
      negative credit get a negative share (they pay a penalty), ``sum |r_i| = 1`` and
      ``sum r_i <= 1`` (the cooperative keeps the penalties and the unpaid remainder).
    - ``all_zero="equal"`` (default): if every (clipped) credit is 0, everyone gets ``1/N``;
      ``all_zero="nothing"``: every share is 0 (nothing is paid out).
    """
    c = as_vector("C", C)
    real = isinstance(alpha, int | float | np.integer | np.floating) and not isinstance(alpha, bool)
    check(real and not np.isnan(alpha) and float(alpha) >= 1.0, "alpha", alpha, "a number >= 1 (inf allowed)")
    a = float(alpha)
    check_choice("negative", negative, NEGATIVE_MODES)
    check_choice("all_zero", all_zero, ALL_ZERO_MODES)
    sign = np.sign(c)
    mag = np.abs(c) if negative == "penalty" else np.where(c > 0, c, 0.0)
    top = float(mag.max())
    if top == 0.0:
        n = c.shape[0]
        return np.full(n, 1.0 / n) if all_zero == "equal" else np.zeros(n)
    if np.isinf(a):
        powered = (mag == top).astype(np.float64)
    else:
        rel = mag / top
        with np.errstate(under="ignore"):
            powered = np.power(rel, a)
    shares = powered / powered.sum()
    return shares * sign if negative == "penalty" else shares


def settle(C: np.ndarray, alpha: float, revenue: float, *, negative: str = "clip",
           all_zero: str = "equal") -> np.ndarray:
    """Payments (V6): ``p_i = R * r_i`` with alpha-power shares (V5); sum to R in the default modes."""
    r = finite_scalar("revenue", revenue, low=0.0)
    return r * alpha_power_shares(C, alpha, negative=negative, all_zero=all_zero)


# ----------------------------------------------------------------------------------------- omega


Schedule = Callable[[np.ndarray], np.ndarray]


def uniform_schedule() -> Schedule:
    """``omega_t = 1`` (V4 with no weighting)."""
    return lambda steps: np.ones(len(steps), dtype=np.float64)


def exponential_discount(gamma: float) -> Schedule:
    """``omega_t = gamma^(t - t_first)`` for the settled steps, ``0 < gamma <= 1`` (ours).

    Discounts repeated exposure: later passes over the same data earn less per unit credit.
    """
    g = finite_scalar("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def schedule(steps: np.ndarray) -> np.ndarray:
        s = np.asarray(steps, dtype=np.float64)
        return np.power(g, s - s.min()) if s.size else s

    return schedule


def late_emphasis(power: float = 1.0) -> Schedule:
    """``omega_t = ((t - t_first + 1) / (t_last - t_first + 1))^power``, power >= 0 (ours).

    Emphasises later checkpoints (credit earned near the model that is sold); power 0 is uniform.
    """
    p = finite_scalar("power", power, low=0.0)

    def schedule(steps: np.ndarray) -> np.ndarray:
        s = np.asarray(steps, dtype=np.float64)
        if not s.size:
            return s
        span = s.max() - s.min() + 1.0
        return np.power((s - s.min() + 1.0) / span, p)

    return schedule


def custom_schedule(weights: Callable[[np.ndarray], np.ndarray] | dict[int, float]) -> Schedule:
    """A user schedule: a callable ``steps -> omega`` or a mapping ``step -> omega``."""
    if isinstance(weights, dict):
        table = dict(weights)

        def schedule(steps: np.ndarray) -> np.ndarray:
            missing = [int(t) for t in steps if int(t) not in table]
            check(not missing, "schedule", missing[:5], "a weight for every settled step")
            return np.array([table[int(t)] for t in steps], dtype=np.float64)

        return schedule
    check(callable(weights), "schedule", weights, "a callable steps -> weights or a dict step -> weight")
    return weights


def schedule_weights(schedule: Schedule, steps: Sequence[int] | np.ndarray) -> np.ndarray:
    """Evaluate and check a schedule: one finite weight >= 0 per step."""
    s = np.asarray(steps, dtype=np.int64)
    w = np.asarray(schedule(s), dtype=np.float64).ravel()
    check(w.shape == s.shape, "schedule", f"{w.shape[0]} weights", f"one per step ({s.shape[0]})")
    check(bool(np.all(np.isfinite(w)) and np.all(w >= 0)), "schedule", w.tolist()[:8], "finite weights >= 0")
    return w


def cumulative_credit(credits: np.ndarray, steps: Sequence[int] | np.ndarray,
                      schedule: Schedule | None = None) -> np.ndarray:
    """Cumulative credit (V4): ``C_i = sum_t omega_t c_i^t`` for a ``(T, N)`` credit matrix."""
    c = np.asarray(credits, dtype=np.float64)
    check(c.ndim == 2, "credits", f"shape {c.shape}", "a (T, N) matrix")
    c = as_vector("credits", c.ravel()).reshape(c.shape) if c.size else c
    w = schedule_weights(schedule or uniform_schedule(), steps)
    check(w.shape[0] == c.shape[0], "steps", f"{w.shape[0]} steps", f"one per credit row ({c.shape[0]})")
    return w @ c


# ---------------------------------------------------------------------------------------- revenue


@dataclass(frozen=True)
class LinearAccuracyRevenue:
    """Revenue model (ours): ``R = R0 * max(0, acc - acc0) / (1 - acc0)`` for one period of sales (the
    cooperative sim charges it every round and settles the sum over the horizon, V6).

    A market pays nothing for a model no better than ``acc0`` (e.g. the best free alternative) and
    ``R0`` for a perfect one.
    """

    r0: float = 100.0
    acc0: float = 0.1

    def __post_init__(self) -> None:
        finite_scalar("r0", self.r0, low=0.0)
        finite_scalar("acc0", self.acc0, low=0.0, high=1.0, high_open=True)

    def __call__(self, accuracy: float) -> float:
        acc = finite_scalar("accuracy", accuracy, low=0.0, high=1.0)
        return self.r0 * max(0.0, acc - self.acc0) / (1.0 - self.acc0)


@dataclass(frozen=True)
class FixedRevenue:
    """Revenue model (ours): a fixed amount per horizon, whatever the accuracy."""

    amount: float = 100.0

    def __post_init__(self) -> None:
        finite_scalar("amount", self.amount, low=0.0)

    def __call__(self, accuracy: float) -> float:
        finite_scalar("accuracy", accuracy, low=0.0, high=1.0)
        return self.amount


# ----------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True, eq=False)
class Settlement:
    """One settled horizon: who was paid what, and which steps earned it.

    ``per_step[k, j]`` is the part of ``payments[j]`` earned at ``steps[k]``
    (``payments[j] * omega_k c_j^k / C_j``; 0 for a member with ``C_j = 0`` or no payment).
    """

    steps: np.ndarray
    members: tuple[Hashable, ...]
    omega: np.ndarray
    cumulative: np.ndarray
    shares: np.ndarray
    payments: np.ndarray
    revenue: float
    alpha: float
    per_step: np.ndarray

    def payment_of(self, member: Hashable) -> float:
        """Payment of one member."""
        return float(self.payments[self.members.index(member)])

    def trace(self, member: Hashable) -> dict[int, float]:
        """``{step: part of the member's payment earned at that step}``."""
        j = self.members.index(member)
        return {int(t): float(v) for t, v in zip(self.steps, self.per_step[:, j], strict=True)}


@dataclass
class Ledger:
    """Per-step credit ledger; settles horizons (V4-V6) and keeps every settlement.

    Members are any hashable ids (they may join and leave: a member absent at a step has credit 0
    there). A step can be settled only once. Each step is kept as two aligned arrays (ids, credits);
    integer ids are matched with sorted-array searches, so a step of a million members costs array
    operations, not a loop. ``history=False`` forgets the records of settled steps and keeps only
    the latest settlement: memory stays that of one horizon however long the run (what a
    simulation of a million members needs; the audit trail of earlier horizons is then gone).
    """

    settlements: list[Settlement] = field(default_factory=list)
    history: bool = True
    _records: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _settled: set[int] = field(default_factory=set)
    #: recorded steps not yet settled (kept as they change: a long run settles many small horizons,
    #: and scanning every recorded step each round made settlement quadratic in the rounds)
    _pending: set[int] = field(default_factory=set)

    def record(self, step: int, members: Sequence[Hashable] | np.ndarray, credits: np.ndarray | Sequence[float]
               ) -> None:
        """Record the credits ``c_i^t`` of ``members`` at ``step`` (one record per step)."""
        check(isinstance(step, int | np.integer) and not isinstance(step, bool), "step", step, "an integer")
        step = int(step)
        check(step not in self._records and step not in self._settled, "step", step, "a step not yet recorded")
        c = as_vector("credits", credits, len(members))
        ids = _ids(members)
        unique = distinct(ids) if ids.dtype != object else len(set(ids.tolist())) == len(ids)
        check(unique, "members", list(members)[:10], "distinct member ids")
        self._records[step] = (ids, c.copy())
        self._pending.add(step)

    @property
    def credits(self) -> dict[int, dict[Hashable, float]]:
        """``{step: {member: credit}}`` of every recorded step (a copy, for inspection)."""
        return {t: dict(zip(ids.tolist(), c.tolist(), strict=True)) for t, (ids, c) in sorted(self._records.items())}

    @property
    def steps(self) -> list[int]:
        """Recorded steps, ascending."""
        return sorted(self._records)

    @property
    def unsettled_steps(self) -> list[int]:
        """Recorded steps not yet settled, ascending."""
        return sorted(self._pending)

    def members(self, steps: Sequence[int] | None = None) -> tuple[Hashable, ...]:
        """Members with a record in ``steps`` (all steps by default), in order of first appearance."""
        return tuple(self._member_ids(self.steps if steps is None else steps).tolist())

    def _member_ids(self, steps: Sequence[int]) -> np.ndarray:
        parts = [self._records[t][0] for t in steps]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        if len(parts) == 1:
            return parts[0]
        every = np.concatenate(parts)
        if every.dtype == object:
            return _ids(list(dict.fromkeys(every.tolist())))
        unique, first = np.unique(every, return_index=True)
        return unique[np.argsort(first, kind="stable")]

    def matrix(self, steps: Sequence[int], members: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        """``(T, N)`` credits of ``members`` at ``steps`` (0 where a member has no record)."""
        members = _ids(members)
        if len(steps) == 1:  # one step (a horizon of one round): its record, when it lists exactly ``members``
            ids, c = self._records[steps[0]]
            if ids is members or np.array_equal(ids, members):
                return c[None, :].copy()
        out = np.zeros((len(steps), len(members)), dtype=np.float64)
        if members.dtype != object:
            order = np.argsort(members, kind="stable")
            ordered = members[order]
        else:
            index = {m: j for j, m in enumerate(members.tolist())}
        for k, t in enumerate(steps):
            ids, c = self._records[t]
            if members.dtype != object and ids.dtype != object:
                at = np.minimum(np.searchsorted(ordered, ids), max(len(ordered) - 1, 0))
                known = ordered[at] == ids if len(ordered) else np.zeros(len(ids), dtype=bool)
                out[k, order[at[known]]] = c[known]
            else:
                for m, v in zip(ids.tolist(), c.tolist(), strict=True):
                    j = index.get(m) if members.dtype == object else None
                    if j is not None:
                        out[k, j] = v
        return out

    def cumulative(self, steps: Sequence[int] | None = None, schedule: Schedule | None = None
                   ) -> tuple[tuple[Hashable, ...], np.ndarray]:
        """Cumulative credit (V4) over ``steps`` (default: all recorded) as ``(members, C)``."""
        steps = self._steps_arg(steps, settled_ok=True)
        members = self.members(steps)
        return members, cumulative_credit(self.matrix(steps, members), steps, schedule)

    def settle(self, revenue: float, alpha: float = 1.0, steps: Sequence[int] | None = None,
               schedule: Schedule | None = None, *, negative: str = "clip",
               all_zero: str = "equal") -> Settlement:
        """Settle a horizon (default: every unsettled step) and pay ``revenue`` (V4-V6)."""
        steps = self._steps_arg(steps, settled_ok=False)
        check(len(steps) > 0, "steps", steps, "at least one recorded, unsettled step")
        ids = self._member_ids(steps)
        mat = self.matrix(steps, ids)
        members = tuple(ids.tolist())
        omega = np.ones(len(steps)) if schedule is None else schedule_weights(schedule, steps)  # None: uniform
        weighted = omega[:, None] * mat
        cum = weighted.sum(axis=0)
        shares = alpha_power_shares(cum, alpha, negative=negative, all_zero=all_zero)
        rev = finite_scalar("revenue", revenue, low=0.0)
        pay = rev * shares
        per_step = np.zeros_like(weighted)
        nz = cum != 0
        per_step[:, nz] = (weighted[:, nz] / cum[nz][None, :]) * pay[nz][None, :]
        # members with zero cumulative credit but a payment (equal split): spread evenly over steps
        even = (~nz) & (pay != 0)
        per_step[:, even] = pay[even][None, :] / len(steps)
        result = Settlement(np.array(steps, dtype=np.int64), members, omega, cum, shares, pay, rev,
                            float(alpha), per_step)
        if not self.history:
            self.settlements.clear()
            for t in steps:
                del self._records[t]
        self.settlements.append(result)
        self._settled.update(steps)
        self._pending.difference_update(steps)
        return result

    def _steps_arg(self, steps: Sequence[int] | None, *, settled_ok: bool) -> list[int]:
        if steps is None:
            return self.steps if settled_ok else self.unsettled_steps
        steps = sorted(int(t) for t in steps)
        if len(set(steps)) != len(steps):
            repeated = sorted({a for a, b in itertools.pairwise(steps) if a == b})  # steps are sorted
            raise InputError("steps", repeated[:5], "each step at most once (a repeated step would count twice)")
        unknown = [t for t in steps if t not in self._records]
        if unknown:
            raise InputError("steps", unknown[:5], "recorded steps only")
        if not settled_ok:
            again = [t for t in steps if t in self._settled]
            check(not again, "steps", again[:5], "steps not settled before")
        return steps


def _ids(members: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Member ids as an array: int64 when they are all integers, else objects."""
    if isinstance(members, np.ndarray) and members.dtype.kind in "iu":
        return members.astype(np.int64, copy=False)
    items = list(members)
    if all(isinstance(m, int | np.integer) and not isinstance(m, bool) for m in items):
        return np.array(items, dtype=np.int64)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
