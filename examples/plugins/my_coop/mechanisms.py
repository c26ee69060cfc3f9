"""Audited row shares: the round's revenue is split in proportion to *admitted* rows, and random
audits keep rows that hurt the shared model out.

Each round the coordinator audits a random fraction ``audit_rate`` of the members (with its own
seeded generator). An audited member passes when its one-step credit per claimed row is at least
``min_credit_per_row`` (its data did not worsen the validation loss, V3); a member that fails is
paid nothing for ``ban_rounds`` rounds. Unaudited members are trusted. Rows claimed by members in
good standing are admitted, and the revenue of the round is divided in proportion to them.

Free-riders who claim a whole pool of noise are paid like honest members until an audit catches
them; the higher ``audit_rate``, the sooner.
"""

from __future__ import annotations

from pydantic import Field

from sim.mechanisms import Cooperative, Mechanism, MechanismSettings, Payout, RoundView


class AuditedRowSharesSettings(MechanismSettings):
    audit_rate: float = Field(0.5, ge=0.0, le=1.0, description="fraction of members audited each round")
    min_credit_per_row: float = Field(0.0, description="credit per claimed row an audited member must earn (V3)")
    ban_rounds: int = Field(5, ge=1, description="rounds a member that failed an audit is paid nothing")


class AuditedRowShares(Mechanism):
    """Revenue shares proportional to admitted rows, with random quality audits on one-step credit."""

    Settings = AuditedRowSharesSettings
    summary = "revenue ∝ admitted rows; random audits on credit per row ban harmful members for a while"
    reporters = ("audit_failures",)
    settings: AuditedRowSharesSettings

    def __init__(self, settings: AuditedRowSharesSettings, cooperative: Cooperative) -> None:
        super().__init__(settings, cooperative)
        self.banned_until: dict[int, int] = {}
        self.failures = 0

    def pay(self, view: RoundView) -> Payout:
        s = self.settings
        rng = self.cooperative.rng
        admitted = {}
        self.failures = 0
        for member, rows, credit in zip(view.members, view.rows.tolist(), view.credit.tolist(), strict=True):
            audited = rng.random() < s.audit_rate
            if audited and rows > 0 and credit / rows < s.min_credit_per_row:
                self.banned_until[member] = view.round + s.ban_rounds
                self.failures += 1
            if self.banned_until.get(member, -1) < view.round:
                admitted[member] = float(rows)
        total = sum(admitted.values())
        if total <= 0:
            return Payout()
        return Payout(payments={m: view.revenue * rows / total for m, rows in admitted.items()})

    def metrics(self) -> dict[str, float]:
        """``audit_failures``: members caught by an audit this round."""
        return {"audit_failures": float(self.failures)}
