"""CGSV model rewards (C1–C5): reputations from cosine scores of the members' normalised round
updates, download shares ``q_i``, and each member's reward model receives the per-tensor top-``q_i``
part of the shared model's change."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat

from economics.model_rewards import cgsv_round, topk_mask
from sim.mechanisms.base import ByMember, Cooperative, Mechanism, MechanismSettings, Payout, RoundView


class CGSVSettings(MechanismSettings):
    kind: Literal["cgsv"] = "cgsv"
    beta: PositiveFloat = Field(1.0, description="download temperature β (C5): larger rewards high reputations more")
    reputation_alpha: float = Field(0.95, ge=0.0, lt=1.0, description="reputation moving average α (C4)")
    gamma: PositiveFloat = Field(0.5, description="update norm Γ every member's update is scaled to (C1)")
    download: Literal["change", "aggregate"] = Field(
        "change", description="what a member's reward model downloads (C5): the top-q part of the shared model's "
                              "actual change this round (ours, the default), or of the Γ-normalised aggregate u_N "
                              "as in the paper's protocol")


class CGSV(Mechanism):
    """CGSV model rewards (C1–C5) on the round updates of the cooperative's members.

    Ours, where the paper has no open membership: a member's reward model starts from the initial
    parameters when it first joins and accumulates only the downloads of the rounds it is a member
    (it keeps them while away, but values only its standalone model then); reputations start at 0
    (C4) and persist across absences. Aggregation weights are data-size shares in a cohort's first
    round and the previous reputations afterwards (newcomers: the members' mean reputation)."""

    Settings = CGSVSettings
    summary = "gradient-driven model rewards: reputation from cosine scores, top-q downloads (C1–C5)"
    sells_model = False
    needs_updates = True
    keeps_standalone = True
    settings: CGSVSettings

    def __init__(self, settings: MechanismSettings, cooperative: Cooperative) -> None:
        super().__init__(settings, cooperative)
        n = len(cooperative.principals)
        #: reputation by principal position, and whether it has one yet (C4)
        self._reputation = np.zeros(n)
        self._known = np.zeros(n, dtype=bool)
        self.params: dict[int, np.ndarray] = {}
        model = cooperative.model
        self._theta_before = model.current() if model.has_parameters else None
        self.last_shares: ByMember | dict[int, float] = {}

    @property
    def reputation(self) -> dict[int, float]:
        """Reputation of every principal that has one (C4), by id."""
        ids = np.asarray(self.cooperative.principals, dtype=np.int64)[self._known]
        return dict(zip(ids.tolist(), self._reputation[self._known].tolist(), strict=True))

    def pay(self, view: RoundView) -> Payout:
        model = view.model
        real = model.has_parameters
        if not view.members or view.updates is None:
            self._theta_before = model.current() if real else None
            self.last_shares = {}
            return Payout()
        ids = view.member_ids
        at = self.cooperative.positions(ids)
        n = len(ids)
        rows = np.maximum(view.rows.astype(float), 0.0)
        known = self._known[at]
        reputation = np.where(known, self._reputation[at], 0.0)
        if known.any():
            weights = np.where(known, reputation, reputation[known].mean())
        else:
            weights = rows / rows.sum() if rows.sum() > 0 else np.full(n, 1.0 / n)
        weights = weights / weights.sum()
        s = self.settings
        rnd = cgsv_round(view.updates, weights, reputation, gamma=s.gamma, alpha=s.reputation_alpha, beta=s.beta)
        self._reputation[at] = rnd.reputation
        self._known[at] = True
        self.last_shares = ByMember(ids, rnd.shares)
        if real:  # download the top-q part of the shared model's change (ours) or of u_N (the paper's, C1)
            theta = model.current()
            step = theta - self._theta_before if s.download == "change" else rnd.u_n
            change = model.tensors(step)
            self._theta_before = theta
            out = []
            for i, q in zip(ids.tolist(), rnd.shares, strict=True):
                base = self.params.get(i, model.initial())
                self.params[i] = base + np.concatenate([m.ravel() for m in topk_mask(change, float(q))])
                out.append(self.params[i])
            acc = model.evaluate(np.stack(out))
        else:  # the surrogate: a model holding the share q_i of the round's pooled update
            acc = model.share_accuracy(rnd.shares)
        return Payout({}, ByMember(ids, np.asarray(acc, dtype=float)))
