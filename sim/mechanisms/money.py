"""Money mechanisms funded by the model's revenue: α-power revenue shares (V4–V6) and the equal-split
and data-size baselines. Revenue accrues every round and is paid out every ``horizon`` rounds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from coopsim.errors import InputError
from economics.settlement import Ledger
from sim.mechanisms.base import Cooperative, Mechanism, MechanismSettings, Payout, RoundView


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
        self.ledger = Ledger()
        self.revenue = 0.0
        self.claimed: dict[int, float] = {}

    def pay(self, view: RoundView) -> Payout:
        if view.members:
            self.ledger.record(view.round, list(view.members), view.credit)
            for i, rows in zip(view.members, view.rows.tolist(), strict=True):
                self.claimed[i] = self.claimed.get(i, 0.0) + rows
        self.revenue += view.revenue
        settled = (view.round + 1) % self.settings.horizon == 0
        payments: dict[int, float] = {}
        if settled and self.ledger.unsettled_steps:
            payments = self.divide()
            self.revenue = 0.0
            self.claimed = {}
        shared = {i: view.accuracy for i in view.members} if self.settings.members_use_model else {}
        return Payout(payments, shared, settled)

    def divide(self) -> dict[int, float]:
        """Divide the accrued ``self.revenue`` among the horizon's members (closing the horizon)."""
        raise NotImplementedError


class RevenueShares(_Settled):
    """α-power revenue shares of cumulative one-step credit (V4–V6), settled through a ledger."""

    Settings = RevenueSharesSettings
    summary = "α-power shares of cumulative one-step credit, paid from revenue every H rounds (V4–V6)"
    settings: RevenueSharesSettings

    def divide(self) -> dict[int, float]:
        s = self.ledger.settle(self.revenue, self.settings.alpha)
        return dict(zip(s.members, s.payments.tolist(), strict=True))


class EqualSplit(_Settled):
    """Baseline: the horizon's revenue split equally among its members."""

    Settings = EqualSplitSettings
    summary = "baseline: revenue split equally among the horizon's members"

    def divide(self) -> dict[int, float]:
        horizon = self.ledger.members(self.ledger.unsettled_steps)
        self.ledger.settle(0.0)  # close the horizon in the ledger (credits stay on record)
        return {m: self.revenue / len(horizon) for m in horizon}


class DataSize(_Settled):
    """Baseline: revenue shares proportional to the rows each member claimed over the horizon."""

    Settings = DataSizeSettings
    summary = "baseline: revenue shares proportional to claimed rows"

    def divide(self) -> dict[int, float]:
        horizon = self.ledger.members(self.ledger.unsettled_steps)
        self.ledger.settle(0.0)
        total = sum(self.claimed.get(m, 0.0) for m in horizon)
        return {m: (self.revenue * self.claimed.get(m, 0.0) / total if total > 0 else self.revenue / len(horizon))
                for m in horizon}
