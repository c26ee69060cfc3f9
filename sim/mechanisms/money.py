"""Money mechanisms funded by the model's revenue: α-power revenue shares (V4–V6) and the equal-split
and data-size baselines. Revenue accrues every round and is paid out every ``horizon`` rounds."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from coopsim.errors import InputError
from economics.settlement import Ledger
from sim.mechanisms.base import ByMember, Cooperative, Mechanism, MechanismSettings, Payout, RoundView


class _HorizonSettings(MechanismSettings):
    horizon: PositiveInt = Field(1, description="settlement horizon H in rounds: revenue accrues and is paid "
                                                "out every H rounds")
    members_use_model: bool = Field(False, description="members may also use the shared model (valued beside "
                                                       "their money)")

    def check_with(self, cooperative: Any) -> None:
        if cooperative.decision_period % self.horizon != 0:
            raise InputError("mechanism.horizon", self.horizon,
                             f"a divisor of decision_period={cooperative.decision_period}, so that every "
                             "decision period's payoff holds all the money its rounds earned")


class RevenueSharesSettings(_HorizonSettings):
    kind: Literal["revenue_shares"] = "revenue_shares"
    alpha: float = Field(1.0, ge=1.0, description="α of α-power revenue shares (V5): 1 proportional, larger "
                                                   "favours the top contributors")


class EqualSplitSettings(_HorizonSettings):
    kind: Literal["equal_split"] = "equal_split"


class DataSizeSettings(_HorizonSettings):
    kind: Literal["data_size"] = "data_size"


class _Settled(Mechanism):
    """Accrues revenue and claimed rows over the horizon and pays them out at its end; subclasses
    say how the accrued revenue is divided (:meth:`divide`)."""

    settings: _HorizonSettings

    def __init__(self, settings: MechanismSettings, cooperative: Cooperative) -> None:
        super().__init__(settings, cooperative)
        self.ledger = Ledger(history=False)  # one horizon in memory, however many members and rounds
        self.revenue = 0.0
        #: (ids, claimed rows) of every round of the open horizon
        self.claims: list[tuple[np.ndarray, np.ndarray]] = []

    def pay(self, view: RoundView) -> Payout:
        if view.members:
            self.ledger.record(view.round, view.member_ids, view.credit)
            self.claims.append((view.member_ids, view.rows))
        self.revenue += view.revenue
        settled = (view.round + 1) % self.settings.horizon == 0
        payments: ByMember | dict = {}
        if settled and self.ledger.unsettled_steps:
            payments = self.divide()
            self.revenue = 0.0
            self.claims = []
        shared = (ByMember(view.member_ids, np.full(len(view.members), view.accuracy))
                  if self.settings.members_use_model else {})
        return Payout(payments, shared, settled)

    def horizon(self) -> np.ndarray:
        """Ids of the open horizon's members, in order of first appearance."""
        return np.asarray(self.ledger.members(self.ledger.unsettled_steps), dtype=np.int64)

    def claimed(self, members: np.ndarray) -> np.ndarray:
        """Rows each of ``members`` claimed over the open horizon."""
        ids = np.concatenate([c[0] for c in self.claims])
        rows = np.concatenate([c[1] for c in self.claims]).astype(float)
        order = np.argsort(members, kind="stable")
        at = order[np.searchsorted(members[order], ids)]
        return np.bincount(at, weights=rows, minlength=len(members))

    def divide(self) -> ByMember:
        """Divide the accrued ``self.revenue`` among the horizon's members (closing the horizon)."""
        raise NotImplementedError


class RevenueShares(_Settled):
    """α-power revenue shares of cumulative one-step credit (V4–V6), settled through a ledger."""

    Settings = RevenueSharesSettings
    summary = "α-power shares of cumulative one-step credit, paid from revenue every H rounds (V4–V6)"
    settings: RevenueSharesSettings

    def divide(self) -> ByMember:
        s = self.ledger.settle(self.revenue, self.settings.alpha)
        return ByMember(s.members, s.payments)


class EqualSplit(_Settled):
    """Baseline: the horizon's revenue split equally among its members."""

    Settings = EqualSplitSettings
    summary = "baseline: revenue split equally among the horizon's members"

    def divide(self) -> ByMember:
        horizon = self.horizon()
        self.ledger.settle(0.0)  # close the horizon in the ledger (credits stay on record)
        return ByMember(horizon, np.full(len(horizon), self.revenue / len(horizon)))


class DataSize(_Settled):
    """Baseline: revenue shares proportional to the rows each member claimed over the horizon."""

    Settings = DataSizeSettings
    summary = "baseline: revenue shares proportional to claimed rows"

    def divide(self) -> ByMember:
        horizon = self.horizon()
        claimed = self.claimed(horizon)
        self.ledger.settle(0.0)
        total = claimed.sum()
        paid = self.revenue * claimed / total if total > 0 else np.full(len(horizon), self.revenue / len(horizon))
        return ByMember(horizon, paid)
