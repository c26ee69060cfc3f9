"""Shared machinery of the sim-based scenarios (``quickstart``, ``free-riding``, ``mechanism-duel``):
one strategic population of principals (``sim.CooperativeModel``) run under each mechanism in turn,
with the same seeds, and the comparison figures.

Every replicate ``k`` uses the seed ``derive_seed(seed, 100, k)`` for every mechanism, so mechanisms
meet exactly the same principals (costs, data, noise, strategies' random streams).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, SerializationInfo, create_model, field_serializer, model_validator

from coopsim.errors import InputError
from learning.seeding import derive_seed
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, figure, grouped_bars, save
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult
from sim import CooperativeConfig, CooperativeModel, MechanismConfig

#: model reporters compared across mechanisms (time series and end-of-run means)
SERIES = ("participation", "accuracy", "welfare", "fairness", "gini", "free_rider_profit", "mean_quality",
          "individual_rationality", "revenue", "payments")
HEADLINE = ("participation", "accuracy", "welfare", "fairness", "gini", "free_rider_profit")


class MechanismVariant(Section):
    """One mechanism to compare: a label and its settings (``sim.MechanismConfig``)."""

    label: str = Field("mechanism", min_length=1, description="name in tables and figures")
    mechanism: MechanismConfig = Field(default_factory=MechanismConfig, description="the mechanism's settings")


class CooperativeScenarioConfig(ScenarioConfig):
    """A population (``cooperative``, everything but the mechanism) and the mechanisms to compare."""

    cooperative: CooperativeConfig = Field(default_factory=CooperativeConfig,
                                           description="population, training and time (sim.CooperativeConfig); "
                                                       "its mechanism block is replaced by each variant's")
    mechanisms: list[MechanismVariant] = Field(min_length=1, max_length=16,
                                               description="the mechanisms run in turn on the same population")
    replicates: int = Field(1, ge=1, le=50, description="independent seeds per mechanism (the same for each)")
    final_window: float = Field(0.25, gt=0, le=1, description="share of last rounds averaged for the summary")

    @model_validator(mode="after")
    def _mechanism_set_per_variant(self) -> CooperativeScenarioConfig:
        # each variant replaces cooperative.mechanism: a value set there would be silently ignored
        if "mechanism" in self.cooperative.model_fields_set:
            set_here = self.cooperative.mechanism.model_dump(exclude_unset=True)
            raise InputError("cooperative.mechanism", set_here,
                             "not set in this scenario: every entry of `mechanisms` has its own (e.g. --set "
                             "'mechanisms=[{label=\"a2\", mechanism={kind=\"revenue_shares\", alpha=2.0}}]')")
        return self

    @field_serializer("cooperative")
    def _without_mechanism(self, coop: CooperativeConfig, info: SerializationInfo) -> dict[str, Any]:
        """Stored parameters and summaries leave out the ignored ``cooperative.mechanism`` block: each
        row carries its variant's label, and ``mechanisms`` holds every variant's settings."""
        out = coop.model_dump(mode=info.mode)
        out.pop("mechanism", None)
        return out


def run_cooperatives(cfg: CooperativeScenarioConfig, seed: int) -> ScenarioResult:
    """Run every mechanism on every replicate; long rows of model and agent reporters."""
    rows: list[pd.DataFrame] = []
    behaviours: dict[str, dict[str, float]] = {}
    for variant in cfg.mechanisms:
        coop = cfg.cooperative.model_copy(update={"mechanism": variant.mechanism})
        coop = CooperativeConfig.model_validate(coop.model_dump())
        for k in range(cfg.replicates):
            model = CooperativeModel(coop, rng=derive_seed(seed, 100, k)).run()
            model_df, agent_df = model.frames()
            m = model_df.reset_index(names="round").melt(id_vars="round", var_name="variable", value_name="value")
            m["round"] += 1
            m["agent"] = ""
            parts = [m]
            if agent_df is not None:
                a = agent_df.reset_index().rename(columns={"Step": "round", "AgentID": "agent"})
                behaviour = a.set_index("agent")["behaviour"].to_dict()
                numeric = [c for c in ("credit", "reward", "money", "model_value", "utility", "surplus", "rows",
                                       "quality", "joined") if c in a]
                a = a[["round", "agent", *numeric]].astype({"joined": float}).melt(
                    id_vars=["round", "agent"], var_name="variable", value_name="value")
                a["behaviour"] = a["agent"].map(behaviour)
                a["agent"] = a["agent"].astype(str)
                parts.append(a)
                last = agent_df.xs(agent_df.index.get_level_values(0).max(), level=0)
                means = last.groupby("behaviour")["surplus"].mean()
                for beh, value in means.items():
                    behaviours.setdefault(variant.label, {}).setdefault(beh, 0.0)
                    behaviours[variant.label][beh] += float(value) / cfg.replicates
            frame = pd.concat(parts, ignore_index=True)
            frame["mechanism"] = variant.label
            frame["replicate"] = k
            rows.append(frame)
    frame = pd.concat(rows, ignore_index=True)
    if "behaviour" in frame:
        frame["behaviour"] = frame["behaviour"].fillna("")
    summary = summarise(frame, cfg, behaviours)
    table = pd.DataFrame([{"mechanism": label, **{k: v for k, v in values.items() if k in HEADLINE}}
                          for label, values in summary["mechanisms"].items()])
    return ScenarioResult(frame, summary, {"mechanisms": table})


def summarise(frame: pd.DataFrame, cfg: CooperativeScenarioConfig,
              behaviours: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per mechanism: the mean of every series over the final window and the replicates."""
    rounds = cfg.cooperative.rounds
    start = rounds - max(1, round(cfg.final_window * rounds)) + 1
    coop = frame[(frame.agent == "") & (frame["round"] >= start)]
    out: dict[str, Any] = {"mechanisms": {}, "final_rounds": [start, rounds], "replicates": cfg.replicates}
    for label in dict.fromkeys(frame.mechanism):
        part = coop[coop.mechanism == label]
        means = part.groupby("variable")["value"].mean()
        values = {k: (float(means[k]) if k in means and np.isfinite(means[k]) else None) for k in SERIES}
        values["surplus_by_behaviour"] = behaviours.get(label, {})
        out["mechanisms"][label] = values
    out["free_rider_profit"] = {label: v["free_rider_profit"] for label, v in out["mechanisms"].items()}
    for label, values in out["mechanisms"].items():  # flat numbers, so that sweeps can compare them
        for key in ("free_rider_profit", "participation"):
            if values[key] is not None:
                out[f"{key} | {label}"] = values[key]
    return out


# ------------------------------------------------------------------------------------- figures
def comparison_figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Participation and accuracy over time, headline metrics and surplus by behaviour per mechanism."""
    folder = Path(folder)
    coop = frame[frame.agent == ""]
    labels = list(dict.fromkeys(coop.mechanism))
    paths = []
    fig, axes = figure(1, 2, width=11.0)
    for ax, var, unit in ((axes[0, 0], "participation", "members / principals (%)"),
                          (axes[0, 1], "accuracy", "test accuracy of the shared model (%)")):
        for j, label in enumerate(labels):
            s = coop[(coop.mechanism == label) & (coop.variable == var)].groupby("round")["value"].mean()
            ax.plot(s.index, 100 * s.values, color=OKABE_ITO[j % 8], label=label, marker="o", markersize=3)
        ax.set_xlabel("round")
        ax.set_ylabel(unit)
        ax.set_title(var)
    axes[0, 0].legend(fontsize=7)
    paths.append(save(fig, folder / "participation_accuracy.png"))

    metrics = [("welfare", "Σ utility per round (money)"), ("fairness", "ρ = 100·Pearson(contribution, reward)"),
               ("gini", "Gini of members' rewards"), ("free_rider_profit", "free-rider − honest surplus (money)")]
    fig, axes = figure(1, 4, width=15.0, height=3.8)
    for ax, (key, unit) in zip(axes[0], metrics, strict=True):
        vals = [summary["mechanisms"][label].get(key) for label in labels]
        ax.bar(range(len(labels)), [np.nan if v is None else v for v in vals],
               color=[OKABE_ITO[j % 8] for j in range(len(labels))])
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(key.replace("_", " "))
        ax.set_ylabel(unit, fontsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
    paths.append(save(fig, folder / "mechanisms.png"))

    behaviours = sorted({b for v in summary["mechanisms"].values() for b in v.get("surplus_by_behaviour", {})})
    if behaviours:
        fig, axes = figure(width=max(6.4, 1.3 * len(labels) + 2))
        series = {b: [summary["mechanisms"][label]["surplus_by_behaviour"].get(b, np.nan) for label in labels]
                  for b in behaviours}
        grouped_bars(axes[0, 0], labels, series)
        axes[0, 0].set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        axes[0, 0].axhline(0, color="black", linewidth=0.6)
        axes[0, 0].set_ylabel("surplus over outside option, last round (money)")
        axes[0, 0].set_title("who gains from the cooperative, by behaviour")
        axes[0, 0].legend(fontsize=7)
        paths.append(save(fig, folder / "surplus_by_behaviour.png"))
    return paths


# ------------------------------------------------------------------------------------- factory
def cooperative_scenario(name: str, description: str, *, cooperative: dict[str, Any],
                         mechanisms: list[tuple[str, dict[str, Any]]], replicates: int = 1) -> Scenario:
    """A sim-based library scenario: its configuration class (defaults: this ``cooperative`` and
    these ``(label, mechanism settings)``) with :func:`run_cooperatives` and :func:`comparison_figures`."""

    def default_cooperative() -> CooperativeConfig:
        return CooperativeConfig.model_validate(cooperative)

    def default_mechanisms() -> list[MechanismVariant]:
        return [MechanismVariant(label=label, mechanism=MechanismConfig.model_validate(m)) for label, m in mechanisms]

    title = "".join(part.capitalize() for part in name.split("-"))
    config = create_model(
        f"{title}Config",
        __base__=CooperativeScenarioConfig,
        __doc__=f"Configuration of ``{name}``.",
        cooperative=(CooperativeConfig, Field(default_factory=default_cooperative,
                                              description="population, training and time (sim.CooperativeConfig)")),
        mechanisms=(list[MechanismVariant], Field(default_factory=default_mechanisms, min_length=1, max_length=16,
                                                  description="the mechanisms run in turn on the same population")),
        replicates=(int, Field(replicates, ge=1, le=50,
                               description="independent seeds per mechanism (the same for each)")),
    )
    return Scenario(name=name, description=description, config=config, run=run_cooperatives,
                    figures=comparison_figures)
