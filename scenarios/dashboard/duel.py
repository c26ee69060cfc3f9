"""The dashboard's model: one population run under two mechanisms at once, stepping together (the
duel, live), built from the flat settings a browser form holds.

:class:`Duel` is a Mesa ``Model`` whose keyword arguments are the dashboard's controls
(:class:`DashboardSettings`); Mesa's SolaraViz rebuilds it from them on reset. Both cooperatives are
``sim.CooperativeModel`` with the same configuration but the mechanism and the same seed,
``derive_seed(seed, 100, 0)``: the seed the ``cooperative`` scenario gives its replicate 0. So the
scenario file :meth:`Duel.document` writes (``coopsim run`` it) reproduces, round for round, what
the dashboard showed. Invalid settings do not raise: the duel holds the validation message
(``error``) and steps nothing, so the page can show it.
"""

from __future__ import annotations

from typing import Any, Literal

import mesa
import pandas as pd
from pydantic import Field

from coopsim.errors import InputError
from learning.seeding import derive_seed
from scenarios.config import Section, validate
from scenarios.library._cooperative import cooperative_document
from sim import CooperativeConfig, CooperativeModel
from sim.config import STRATEGIES

#: the mechanisms the dashboard offers, with the settings each one shows
KINDS: dict[str, tuple[str, ...]] = {
    "revenue_shares": ("alpha", "horizon"),
    "equal_split": ("horizon",),
    "data_size": ("horizon",),
    "cgsv": ("beta",),
    "contracts": ("contract_types",),
}
#: dashboard setting → the mechanism's own setting
MECHANISM_FIELDS = {"alpha": "alpha", "horizon": "horizon", "beta": "beta", "contract_types": "types"}
#: the adversaries a dashboard population can hold (the rest of the mix is honest)
MIX = ("free_rider", "low_quality", "label_flip", "scaled_gradient")


class DashboardSettings(Section):
    """The dashboard's controls, flat (one value per widget)."""

    mechanism_a: Literal[tuple(KINDS)] = Field("revenue_shares", description="mechanism A")
    mechanism_b: Literal[tuple(KINDS)] = Field("equal_split", description="mechanism B")
    alpha: float = Field(1.0, ge=1.0, le=16.0, description="α of α-power revenue shares")
    horizon: int = Field(1, ge=1, le=20, description="settlement horizon (rounds); divides the decision period")
    beta: float = Field(1.0, gt=0.0, le=10.0, description="β of CGSV")
    contract_types: int = Field(3, ge=1, le=5, description="cost types of the contract menu")
    n_principals: int = Field(30, ge=2, le=1000, description="principals")
    free_rider: float = Field(0.2, ge=0.0, le=1.0, description="share of free-riders")
    low_quality: float = Field(0.0, ge=0.0, le=1.0, description="share of low-quality members")
    label_flip: float = Field(0.0, ge=0.0, le=1.0, description="share of label-flip adversaries")
    scaled_gradient: float = Field(0.0, ge=0.0, le=1.0, description="share of scaled-gradient adversaries")
    strategy: Literal[STRATEGIES] = Field("best_response", description="how principals adapt")
    cost_low: float = Field(0.01, ge=0.0, le=1.0, description="lowest unit data cost (per row)")
    cost_high: float = Field(0.05, ge=0.0, le=1.0, description="highest unit data cost (per row)")
    rounds: int = Field(200, ge=1, le=100_000, description="rounds before the run stops")
    decision_period: int = Field(1, ge=1, le=50, description="rounds between principals' decisions")
    mode: Literal["surrogate", "real"] = Field("surrogate", description="surrogate learning curve or real "
                                                                          "training (small sizes)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="root seed")

    def mechanism(self, kind: str) -> dict[str, Any]:
        """``{kind, its own settings}`` for ``kind`` from the flat controls."""
        return {"kind": kind, **{MECHANISM_FIELDS[f]: getattr(self, f) for f in KINDS[kind]}}

    def cooperative(self, kind: str) -> CooperativeConfig:
        """The cooperative of one side of the duel (raises :class:`InputError` naming the field)."""
        mix = {b: getattr(self, b) for b in MIX if getattr(self, b) > 0}
        honest = 1.0 - sum(mix.values())
        if honest < -1e-9:
            raise InputError("behaviours", mix, "shares of free-riders and adversaries that sum to at most 1")
        behaviours = {"honest": max(0.0, honest), **mix} if honest > 1e-9 else mix
        data = {"rounds": self.rounds, "decision_period": self.decision_period, "mechanism": self.mechanism(kind),
                "population": {"n_principals": self.n_principals, "behaviours": behaviours,
                               "strategy": self.strategy, "unit_cost": [self.cost_low, self.cost_high]},
                "training": {"mode": self.mode, **({"standalone_epochs": 5} if self.mode == "real" else {})}}
        return validate(CooperativeConfig, data)


#: the model reporters the dashboard plots
SERIES = ("welfare", "accuracy", "participation", "mean_quality", "payments", "fairness", "free_rider_profit")


def label(kind: str, side: str) -> str:
    return f"{side}: {kind}"


class Duel(mesa.Model):
    """Two cooperatives, one population, two mechanisms, stepping together (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(rng=0)
        self.error: str | None = None
        self.cooperatives: dict[str, CooperativeModel] = {}
        try:
            self.settings = validate(DashboardSettings, kwargs)
            s = self.settings
            seed = derive_seed(s.seed, 100, 0)  # the cooperative scenario's replicate 0
            for side, kind in (("A", s.mechanism_a), ("B", s.mechanism_b)):
                self.cooperatives[label(kind, side)] = CooperativeModel(s.cooperative(kind), rng=seed)
        except InputError as exc:
            self.error = str(exc)
            self.cooperatives = {}
            self.settings = DashboardSettings()
        self.running = not self.error

    def step(self) -> None:
        if self.error or self.steps > self.settings.rounds:
            self.running = False
            return
        for coop in self.cooperatives.values():
            coop.step()
        self.running = self.steps < self.settings.rounds

    @property
    def rounds_done(self) -> int:
        """Rounds every cooperative has run."""
        return min((c.steps for c in self.cooperatives.values()), default=0)

    def series(self) -> pd.DataFrame:
        """Long rows (side, round, variable, value) of the plotted model reporters so far."""
        rows = []
        for side, coop in self.cooperatives.items():
            frame = coop.datacollector.get_model_vars_dataframe()
            if frame.empty:
                continue
            part = frame[[c for c in SERIES if c in frame]].reset_index(names="round")
            part["round"] += 1
            rows.append(part.melt(id_vars="round", var_name="variable", value_name="value").assign(side=side))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["round", "variable", "value", "side"])

    def latest(self) -> dict[str, dict[str, float]]:
        """The last round's welfare, accuracy and participation per side (what the page prints)."""
        out = {}
        for side, coop in self.cooperatives.items():
            frame = coop.datacollector.get_model_vars_dataframe()
            if len(frame):
                out[side] = {k: float(frame[k].iloc[-1]) for k in ("welfare", "accuracy", "participation")}
        return out

    def surplus_by_behaviour(self) -> pd.DataFrame:
        """Mean surplus this round per behaviour and side (does free-riding pay?)."""
        rows = [{"side": side, "behaviour": p.behaviour, "surplus": p.surplus}
                for side, coop in self.cooperatives.items() for p in coop.principals]
        frame = pd.DataFrame(rows, columns=["side", "behaviour", "surplus"])
        return frame.groupby(["side", "behaviour"], as_index=False)["surplus"].mean()

    def principals(self) -> pd.DataFrame:
        """Each principal's current action per side: joined, m (share of its pool), q, offer, behaviour."""
        rows = [{"side": side, "principal": p.unique_id, "behaviour": p.behaviour, "joined": p.joined,
                 "m": p.action.m if p.joined else 0.0, "q": p.action.q if p.joined else 0.0, "offer": p.offer}
                for side, coop in self.cooperatives.items() for p in coop.principals]
        return pd.DataFrame(rows)

    def menus(self) -> dict[str, pd.DataFrame]:
        """Self-selecting mechanisms (contracts): the posted menu and how many principals took each item."""
        out = {}
        for side, coop in self.cooperatives.items():
            if coop.menu is None:
                continue
            taken = pd.Series([p.offer for p in coop.principals]).value_counts()
            out[side] = pd.DataFrame([{"item": j, "rows asked": o.rows, "model value": round(o.value, 3),
                                       "taken by": int(taken.get(j, 0))} for j, o in enumerate(coop.menu)]
                                     + [{"item": "out", "rows asked": 0, "model value": 0.0,
                                         "taken by": int(taken.get(-1, 0))}])
        return out

    def document(self) -> dict[str, Any]:
        """The ``cooperative`` scenario file that reproduces what the dashboard showed, round for
        round: the same population, both mechanisms, the same seed, one replicate, as many rounds
        as have run (at least one)."""
        s = self.settings
        coop = s.cooperative(s.mechanism_a).model_copy(update={"rounds": max(1, self.rounds_done)})
        return cooperative_document(coop, [(label(kind, side), s.mechanism(kind))
                                           for side, kind in (("A", s.mechanism_a), ("B", s.mechanism_b))],
                                    seed=s.seed, replicates=1)
