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
from scenarios import stats
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, estimate_band, estimate_bars, figure, forest, interval_caption, save
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult
from sim import MODEL_REPORTERS, CooperativeConfig, CooperativeModel
from sim.config import MAX_HOURS, MechanismEntry
from sim.mechanisms import RevenueSharesSettings

#: model reporters compared across mechanisms (time series and end-of-run means)
SERIES = ("participation", "accuracy", "welfare", "fairness", "gini", "free_rider_profit", "free_rider_profit_members",
          "mean_quality", "individual_rationality", "revenue", "payments", "action_changes")
#: settling measures summarised per mechanism beside SERIES (see :class:`SettleConfig`)
SETTLING = ("welfare_drift", "participation_drift")
HEADLINE = ("participation", "accuracy", "welfare", "fairness", "gini", "free_rider_profit")


class MechanismVariant(Section):
    """One mechanism to compare: a label and its settings (``{ kind = ..., its own settings }``)."""

    label: str = Field("mechanism", min_length=1, description="name in tables and figures")
    mechanism: MechanismEntry = Field(default_factory=RevenueSharesSettings,
                                      description="the mechanism: a built-in kind, an installed plug-in's name or "
                                                  "'module:Class', with its own settings")


class SettleConfig(Section):
    """When has a population settled, i.e. reached the (possibly noisy) behaviour the mechanism
    induces rather than a transient? Judged per mechanism over the final window, from the replicates:
    principals are no longer searching (the mean share of deliberate changes of choice per decision
    is within ``max_changes``), and neither welfare nor participation drifts between the window's two
    halves (a drift fails only when it is both material — its mean beyond the limit — and certain —
    its interval over replicates excludes 0; with one replicate, the value alone decides). A
    mechanism that did not settle is flagged: its numbers describe a transient."""

    max_changes: float = Field(0.2, ge=0.0, le=1.0,
                               description="largest mean share of principals whose deliberate choice changed per "
                                           "decision in the final window (exploration, attackers, fixed and mixed "
                                           "strategies do not count); above it the population is still searching")
    max_drift: float = Field(0.01, ge=0.0,
                             description="largest |welfare change| between the two halves of the final window, "
                                         "per principal, as a share of the valuation (0.01: one accuracy point's "
                                         "worth of model per principal)")
    max_participation_drift: float = Field(0.05, ge=0.0, le=1.0,
                                           description="largest |participation change| between the two halves of "
                                                       "the final window")


class CooperativeScenarioConfig(ScenarioConfig):
    """A population (``cooperative``, everything but the mechanism) and the mechanisms to compare."""

    cooperative: CooperativeConfig = Field(default_factory=CooperativeConfig,
                                           description="population, training and time (sim.CooperativeConfig); "
                                                       "its mechanism block is replaced by each variant's")
    mechanisms: list[MechanismVariant] = Field(min_length=1, max_length=16,
                                               description="the mechanisms run in turn on the same population")
    replicates: int = Field(1, ge=1, le=50, description="independent seeds per mechanism (the same for each)")
    final_window: float = Field(0.25, gt=0, le=1, description="share of last rounds averaged for the summary")
    baseline: str | None = Field(None, description="label of the mechanism every other is compared with, paired "
                                                   "per replicate (default: the equal split if listed, else the "
                                                   "first)")
    settle: SettleConfig = Field(default_factory=SettleConfig,
                                 description="when a mechanism's population counts as settled (flagged in the "
                                             "summary otherwise)")

    @model_validator(mode="after")
    def _mechanism_set_per_variant(self) -> CooperativeScenarioConfig:
        # each variant replaces cooperative.mechanism: a value set there would be silently ignored
        if "mechanism" in self.cooperative.model_fields_set:
            set_here = self.cooperative.mechanism.model_dump(exclude_unset=True)
            raise InputError("cooperative.mechanism", set_here,
                             "not set in this scenario: every entry of `mechanisms` has its own (e.g. --set "
                             "'mechanisms=[{label=\"a2\", mechanism={kind=\"revenue_shares\", alpha=2.0}}]')")
        for i, variant in enumerate(self.mechanisms):  # each arm's checks against the shared population
            try:
                variant.mechanism.check_with(self.cooperative)
            except InputError as exc:
                where = f"mechanisms.{i}." if exc.field.startswith("mechanism.") else "cooperative."
                raise InputError(where + exc.field, exc.value, exc.allowed) from None
        labels = [v.label for v in self.mechanisms]
        if len(set(labels)) != len(labels):
            raise InputError("mechanisms", labels, "distinct labels (each names one arm of the comparison)")
        if self.baseline is not None and self.baseline not in labels:
            raise InputError("baseline", self.baseline, f"one of the mechanisms' labels: {labels}")
        runs = len(self.mechanisms) * self.replicates
        hours = self.cooperative.estimated_hours() * runs
        if hours > MAX_HOURS and not self.cooperative.allow_long_runs:
            raise InputError("replicates", self.replicates,
                             f"a scenario this machine finishes in under {MAX_HOURS:g} hours: {runs} runs "
                             f"({len(self.mechanisms)} mechanisms × {self.replicates} replicates) of "
                             f"{self.cooperative.rounds:,} rounds × {self.cooperative.population.n_principals:,} "
                             f"principals is about {hours:,.1f} hours; lower replicates, rounds or principals, or "
                             f"set cooperative.allow_long_runs = true")
        return self

    @field_serializer("cooperative")
    def _without_mechanism(self, coop: CooperativeConfig, info: SerializationInfo) -> dict[str, Any]:
        """Stored parameters and summaries leave out the ignored ``cooperative.mechanism`` block: each
        row carries its variant's label, and ``mechanisms`` holds every variant's settings."""
        out = coop.model_dump(mode=info.mode)
        out.pop("mechanism", None)
        return out


def cooperative_document(cooperative: CooperativeConfig, mechanisms: list[tuple[str, dict[str, Any]]], *,
                         seed: int, replicates: int, scenario: str = "cooperative", **fields: Any) -> dict[str, Any]:
    """A scenario document (what a scenario TOML holds) that runs ``cooperative`` under each
    ``(label, mechanism settings)``: every field of the cooperative written out, so that no library
    default changes what it means. ``fields`` are further top-level settings (e.g. ``final_window``).
    A field set to null cannot be written (TOML has none) unless null is its default."""
    dumped = cooperative.model_dump(mode="json", exclude_none=True)
    if type(cooperative).model_validate(dumped) != cooperative:
        nulls = sorted(k for k, v in cooperative.model_dump().items() if v is None)
        raise InputError("cooperative", nulls, "values TOML can write: leave these fields unset (their default)")
    dumped.pop("mechanism", None)
    return {"scenario": scenario, "seed": seed, "replicates": replicates, **fields, "cooperative": dumped,
            "mechanisms": [{"label": label, "mechanism": m} for label, m in mechanisms]}


def run_cooperatives(cfg: CooperativeScenarioConfig, seed: int) -> ScenarioResult:
    """Run every mechanism on every replicate; long rows of model and agent reporters."""
    rows: list[pd.DataFrame] = []
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
                numeric = [c for c in ("credit", "reward", "money", "model_value", "utility", "surplus", "rows",
                                       "quality", "joined") if c in a]
                a = a[["round", "agent", "behaviour", *numeric]].astype({"joined": float}).melt(
                    id_vars=["round", "agent", "behaviour"], var_name="variable", value_name="value")
                a["agent"] = a["agent"].astype(str)
                parts.append(a)
            frame = pd.concat(parts, ignore_index=True)
            frame["mechanism"] = variant.label
            frame["replicate"] = k
            rows.append(frame)
    frame = pd.concat(rows, ignore_index=True)
    if "behaviour" in frame:
        frame["behaviour"] = frame["behaviour"].fillna("")
    summary = summarise(frame, cfg)
    return ScenarioResult(frame, summary, summary_tables(summary))


#: why a reporter has no value (all its rounds NaN in a replicate's final window)
UNDEFINED = {
    "fairness": "equal rewards or < 2 members",
    "gini": "no paid round with members",
    "free_rider_profit": "no free-rider or no honest principal",
    "free_rider_profit_members": "no free-rider or no honest member among members",
    "individual_rationality": "no paid round with members",
    "mean_quality": "no member brought rows",
    "accuracy": "no round trained a model",
    "contract_regret": "not a contract mechanism",
    "contract_realised_ir": "not a contract mechanism",
    "action_changes": "no deliberate choice in the final window (mixed or fixed strategies, or no decision round)",
    "welfare_drift": "a final window of one round",
    "participation_drift": "a final window of one round",
}
#: the range of the bounded reporters (intervals are clipped to it)
BOUNDS = {"participation": (0.0, 1.0), "accuracy": (0.0, 1.0), "mean_quality": (0.0, 1.0), "gini": (0.0, 1.0),
          "individual_rationality": (0.0, 1.0), "fairness": (-100.0, 100.0), "contract_realised_ir": (0.0, 1.0)}
#: metrics whose sign answers a question (a verdict is attached)
SIGNED = ("free_rider_profit", "free_rider_profit_members")
#: metrics compared between mechanisms, paired per replicate (same seeds and principals)
COMPARED = {"welfare": ("Δ welfare (money per round)", 1.0), "accuracy": ("Δ accuracy (percentage points)", 100.0),
            "participation": ("Δ participation (percentage points)", 100.0),
            "free_rider_profit": ("Δ free-rider profit (money)", 1.0)}
#: of those, the ones printed in the terminal (all are in summary.json and the figure)
TABLED = ("welfare", "accuracy", "free_rider_profit")


def final_window(frame: pd.DataFrame, cfg: CooperativeScenarioConfig) -> tuple[pd.DataFrame, list[int]]:
    """Per (mechanism, replicate, variable): the mean of a model reporter over the final rounds
    (NaN where it is undefined in every one of them), and the window ``[start, rounds]``."""
    rounds = cfg.cooperative.rounds
    start = rounds - max(1, round(cfg.final_window * rounds)) + 1
    coop = frame[(frame.agent == "") & (frame["round"] >= start)]
    per = coop.groupby(["mechanism", "replicate", "variable"], sort=False)["value"].mean().unstack("variable")
    return per, [start, rounds]


def baseline_of(cfg: CooperativeScenarioConfig) -> str:
    """The arm every other mechanism is compared with: ``baseline`` if set, else the equal split if
    present, else the first mechanism."""
    if cfg.baseline is not None:
        return cfg.baseline
    for variant in cfg.mechanisms:
        if variant.mechanism.kind == "equal_split":
            return variant.label
    return cfg.mechanisms[0].label


def summarise(frame: pd.DataFrame, cfg: CooperativeScenarioConfig) -> dict[str, Any]:
    """Per mechanism: every reporter's final-window mean per replicate, aggregated over replicates
    with its interval (``scenarios.stats``); paired differences against the baseline mechanism."""
    level = cfg.ci_level
    per, window = final_window(frame, cfg)
    labels = [str(m) for m in frame["mechanism"].unique()]  # in order of appearance
    base = baseline_of(cfg)
    out: dict[str, Any] = {"intervals": stats.describe(level), "replicates": cfg.replicates,
                           "final_rounds": window, "baseline": base, "mechanisms": {},
                           "agent_rows": ("recorded" if cfg.cooperative.agents_collected else
                                          "not recorded (set cooperative.collect_agents = true to keep them; by "
                                          "default they are kept only for populations of at most 1,000)")}

    def column(label: str, metric: str) -> list[float]:
        part = per.loc[label] if label in per.index.get_level_values(0) else None
        if part is None or metric not in part:
            return [np.nan] * cfg.replicates
        return part[metric].reindex(range(cfg.replicates)).tolist()

    for label in labels:
        values: dict[str, Any] = {}
        settling = _settling(frame, label, cfg, window)
        for metric in SERIES:
            est = stats.estimate(column(label, metric), level=level, verdict=metric in SIGNED,
                                 undefined_reason=UNDEFINED.get(metric, "undefined in every replicate"),
                                 bounds=BOUNDS.get(metric))
            values[metric] = est.as_dict()
        own = per.loc[label] if label in per.index.get_level_values(0) else pd.DataFrame()
        for metric in own.columns:  # a mechanism's own reporters (Mechanism.reporters), e.g. a plug-in's
            if metric not in MODEL_REPORTERS and own[metric].notna().any():
                values[metric] = stats.estimate(column(label, metric), level=level).as_dict()
        for key in ("welfare_drift", "participation_drift"):
            values[key] = stats.estimate(settling[key], level=level, undefined_reason=UNDEFINED[key]).as_dict()
        out.setdefault("settling", {})[label] = settled_verdict(values, cfg.settle)
        per_behaviour = _surplus_by_behaviour(frame, label, cfg, window[0])
        values["surplus_by_behaviour"] = {beh: stats.estimate(v, level=level).as_dict()
                                          for beh, v in per_behaviour.items()}
        out["mechanisms"][label] = values
        if "honest" in per_behaviour:  # does any other behaviour out-earn honest principals? (paired)
            out.setdefault("robustness", {})[label] = {
                beh: stats.paired(v, per_behaviour["honest"], level=level).as_dict()
                for beh, v in per_behaviour.items() if beh != "honest"}
    out["free_rider_profit"] = {label: out["mechanisms"][label]["free_rider_profit"] for label in labels}
    out["comparisons"] = {
        f"{label} − {base}": {metric: stats.paired(column(label, metric), column(base, metric), level=level,
                                                   bounds=BOUNDS.get(metric)).as_dict()
                             for metric in COMPARED}
        for label in labels if label != base}
    out["settling_warnings"] = _settling_verdicts(out, cfg)
    out["verdicts"] = _verdicts(out) + out["settling_warnings"]
    out["unsettled"] = [label for label, s in out["settling"].items() if not s["settled"]]
    return out


def settled_verdict(values: dict[str, Any], settle: SettleConfig) -> dict[str, Any]:
    """Has a mechanism's population settled (see :class:`SettleConfig`)? ``settled`` and, when not,
    the ``reasons`` (one per failed measure)."""
    reasons = []
    changes = values["action_changes"]
    if changes["mean"] is not None and changes["mean"] > settle.max_changes:
        reasons.append(f"still searching: {stats.Estimate(**changes).text()} of principals change their deliberate "
                       f"choice per decision (limit {settle.max_changes:g})")
    for key, limit, what in (("welfare_drift", settle.max_drift, "welfare drifts"),
                             ("participation_drift", settle.max_participation_drift, "participation drifts")):
        est = values[key]
        if est["mean"] is None or abs(est["mean"]) <= limit:
            continue
        certain = est["ci_low"] is None or est["ci_low"] > 0 or est["ci_high"] < 0
        if certain:
            reasons.append(f"{what} between the halves of the final window: {stats.Estimate(**est).text()} "
                           f"(limit ±{limit:g})")
    return {"settled": not reasons, "reasons": reasons}


def _settling_verdicts(summary: dict[str, Any], cfg: CooperativeScenarioConfig) -> list[str]:
    """A warning per mechanism whose population did not settle."""
    return [f"{label}: NOT SETTLED — {'; '.join(s['reasons'])}; its numbers describe a transient: raise rounds"
            for label, s in summary["settling"].items() if not s["settled"]]


def _settling(frame: pd.DataFrame, label: str, cfg: CooperativeScenarioConfig,
              window: list[int]) -> dict[str, list[float]]:
    """Per replicate: ``welfare_drift`` (mean welfare over the second half of the final window minus
    the first, per principal, in units of the valuation) and ``participation_drift`` (the same for
    participation)."""
    start, end = window
    mid = start + (end - start + 1) // 2  # second half: rounds mid..end
    rows = frame[(frame.mechanism == label) & (frame.agent == "") & (frame["round"] >= start)]
    scale = cfg.cooperative.population.valuation * cfg.cooperative.population.n_principals
    out: dict[str, list[float]] = {"welfare_drift": [], "participation_drift": []}
    for k in range(cfg.replicates):
        rep = rows[rows.replicate == k]

        def drift(variable: str, rep: pd.DataFrame = rep) -> float:
            v = rep[rep.variable == variable]
            if end <= start:
                return float("nan")
            return float(v[v["round"] >= mid]["value"].mean() - v[v["round"] < mid]["value"].mean())

        values = {"welfare_drift": drift("welfare") / scale, "participation_drift": drift("participation")}
        for key, value in values.items():
            out[key].append(value)
    return out


def _surplus_by_behaviour(frame: pd.DataFrame, label: str, cfg: CooperativeScenarioConfig,
                          start: int) -> dict[str, list[float]]:
    """Per behaviour, per replicate: the mean surplus over the outside option of all principals of
    that behaviour (members or not) over the final rounds (from ``start``)."""
    if "behaviour" not in frame:
        return {}
    final = frame[(frame.mechanism == label) & (frame.variable == "surplus")
                  & (frame["round"] >= start) & (frame.agent != "")]
    per = final.groupby(["behaviour", "replicate"])["value"].mean().unstack("replicate")
    return {str(beh): row.reindex(range(cfg.replicates)).tolist() for beh, row in per.iterrows()}


def _verdicts(summary: dict[str, Any]) -> list[str]:
    """One sentence per mechanism on whether free-riding pays, at the stated level."""
    lines = []
    for label, est in summary["free_rider_profit"].items():
        if est["mean"] is None:
            lines.append(f"{label}: free-rider profit undefined ({est.get('reason')})")
            continue
        word = {"positive": "free-riding pays", "negative": "free-riding costs",
                "inconclusive": "undecided whether free-riding pays"}[est["verdict"]]
        members = summary["mechanisms"][label]["free_rider_profit_members"]
        lines.append(f"{label}: {word} — free-rider minus honest surplus over all principals "
                     f"{stats.Estimate(**est).text()}, among members only {stats.Estimate(**members).text()} "
                     f"({members.get('verdict')}) (n = {est['n']}, {100 * est['level']:.0f}% CI)")
    return lines


def summary_tables(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Terminal tables: every headline metric as ``mean [low, high]`` per mechanism, and the paired
    differences against the baseline with their verdicts."""
    settling = summary.get("settling", {})
    mech = pd.DataFrame([{"mechanism": label, **{k: stats.Estimate(**v).text() for k, v in values.items()
                                                 if k in HEADLINE},
                          **({"settled": "yes" if settling[label]["settled"] else "NO"} if label in settling
                             else {})}
                         for label, values in summary["mechanisms"].items()])
    comp = pd.DataFrame([{"comparison (paired per replicate)": name, "metric": metric,
                          "difference [CI]": stats.Estimate(**est).text(), "verdict": est["verdict"]}
                         for name, metrics in summary["comparisons"].items()
                         for metric, est in metrics.items() if metric in TABLED])
    robust = pd.DataFrame([{"mechanism": label, "behaviour − honest": f"{beh} − honest",
                            "surplus difference [CI]": stats.Estimate(**est).text(), "verdict": est["verdict"]}
                           for label, rows in summary.get("robustness", {}).items() for beh, est in rows.items()])
    tables = {"mechanisms": mech}
    if len(comp):
        tables["paired_vs_baseline"] = comp
    if len(robust):
        tables["robustness"] = robust
    return tables


# ------------------------------------------------------------------------------------- figures
def setting_text(summary: dict[str, Any]) -> str:
    """The population and training in a few words, for figure titles."""
    coop = summary.get("config", {}).get("cooperative", {})
    pop, tr = coop.get("population", {}), coop.get("training", {})
    mix = ", ".join(f"{k} {100 * v:.0f}%" for k, v in pop.get("behaviours", {}).items())
    data = tr.get("dataset")
    data = Path(str(data.get("path"))).name if isinstance(data, dict) else data  # a user's file: its name
    learning = (f"real {tr.get('substrate', 'tl').upper()} training ({data}, {tr.get('model')})"
                if tr.get("mode") == "real" else "surrogate learning curve")
    return (f"{pop.get('n_principals')} principals ({mix}), {pop.get('strategy')}, {learning}, "
            f"{coop.get('rounds')} rounds")


def comparison_figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Participation and accuracy over time (bands over replicates), headline metrics and surplus by
    behaviour per mechanism (intervals), paired differences against the baseline."""
    folder = Path(folder)
    coop = frame[frame.agent == ""]
    labels = list(dict.fromkeys(coop.mechanism))
    level = summary["intervals"]["level"]
    n = summary["replicates"]
    caption = interval_caption(n, level)
    setting = setting_text(summary)
    paths = []
    fig, axes = figure(1, 2, width=11.0)
    for ax, var, unit in ((axes[0, 0], "participation", "members / principals (%)"),
                          (axes[0, 1], "accuracy", "test accuracy of the shared model (%)")):
        for j, label in enumerate(labels):
            s = coop[(coop.mechanism == label) & (coop.variable == var)].pivot_table(
                index="round", columns="replicate", values="value", aggfunc="first")
            ests = [stats.estimate(row.tolist(), level=level) for _, row in s.iterrows()]
            estimate_band(ax, list(s.index), ests, color=OKABE_ITO[j % 8], label=label, scale=100.0,
                          bounds=(0.0, 100.0))
        ax.set_xlabel("round")
        ax.set_ylabel(unit)
        ax.set_title(f"{var} ({caption})", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(setting, fontsize=9)
    fig.tight_layout()
    paths.append(save(fig, folder / "participation_accuracy.png"))

    metrics = [("welfare", "Σ utility per round (money)"), ("fairness", "ρ = 100·Pearson(contribution, reward)"),
               ("gini", "Gini of members' rewards"),
               ("free_rider_profit", "free-rider − honest surplus,\nall principals (money)"),
               ("free_rider_profit_members", "free-rider − honest surplus,\nmembers only (money)")]
    fig, axes = figure(1, len(metrics), width=18.0, height=4.2)
    for ax, (key, unit) in zip(axes[0], metrics, strict=True):
        estimate_bars(ax, labels, [summary["mechanisms"][label].get(key) for label in labels])
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title({"free_rider_profit": "free-rider profit\n(should I free-ride?)",
                      "free_rider_profit_members": "free-rider profit\namong members"}.get(key, key.replace("_", " ")),
                     fontsize=10)
        ax.set_ylabel(unit, fontsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
    w = summary["final_rounds"]
    fig.suptitle(f"{setting}\nmean of rounds {w[0]}–{w[1]} per mechanism; {caption}", fontsize=9)
    fig.tight_layout()
    paths.append(save(fig, folder / "mechanisms.png"))

    behaviours = sorted({b for v in summary["mechanisms"].values() for b in v.get("surplus_by_behaviour", {})})
    if behaviours:
        fig, axes = figure(width=max(6.4, 1.3 * len(labels) + 2))
        ax = axes[0, 0]
        width = 0.8 / len(behaviours)
        for k, beh in enumerate(behaviours):
            ests = [summary["mechanisms"][label]["surplus_by_behaviour"].get(beh) for label in labels]
            estimate_bars(ax, labels, ests, colors=[OKABE_ITO[k % 8]] * len(labels), width=width,
                          offset=(k - (len(behaviours) - 1) / 2) * width, label=beh)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("surplus over outside option,\nmean of the final rounds (money)")
        ax.set_title(f"who gains from the cooperative, by behaviour\n{setting}\n{caption}", fontsize=8)
        ax.legend(fontsize=7)
        paths.append(save(fig, folder / "surplus_by_behaviour.png"))

    robust = summary.get("robustness", {})
    if robust and any(robust.values()):
        behaviours = sorted({b for v in robust.values() for b in v})
        fig, axes = figure(1, len(labels), width=3.2 * len(labels) + 1.5, height=1.2 + 0.45 * len(behaviours),
                           sharex=False)
        for k, (ax, label) in enumerate(zip(axes[0], labels, strict=True)):
            forest(ax, [f"{b} − honest" for b in behaviours] if k == 0 else [""] * len(behaviours),
                   [robust.get(label, {}).get(b) or {"mean": None, "reason": "absent"} for b in behaviours],
                   xlabel="surplus difference (money)")
            ax.set_title(label, fontsize=8)
        fig.suptitle(f"{setting}\ndoes a behaviour out-earn honest principals? paired per replicate, final rounds; "
                     f"{caption}; blue: out-earns honest, vermillion: earns less", fontsize=9)
        fig.tight_layout()
        paths.append(save(fig, folder / "robustness.png"))

    comparisons = summary.get("comparisons", {})
    if comparisons:
        names = list(comparisons)
        fig, axes = figure(1, len(COMPARED), width=3.3 * len(COMPARED), height=1.2 + 0.45 * len(names))
        for ax, (metric, (unit, scale)) in zip(axes[0], COMPARED.items(), strict=True):
            forest(ax, names if ax is axes[0, 0] else [""] * len(names), [comparisons[c][metric] for c in names],
                   xlabel=unit, scale=scale)
        fig.suptitle(f"{setting}\npaired differences against {summary['baseline']} (same seeds and principals); "
                     f"{caption}; blue/vermillion: interval excludes 0", fontsize=9)
        fig.tight_layout()
        paths.append(save(fig, folder / "paired_differences.png"))
    return paths


# ------------------------------------------------------------------------------------- factory
def cooperative_scenario(name: str, description: str, *, cooperative: dict[str, Any],
                         mechanisms: list[tuple[str, dict[str, Any]]], replicates: int = 1) -> Scenario:
    """A sim-based library scenario: its configuration class (defaults: this ``cooperative`` and
    these ``(label, mechanism settings)``) with :func:`run_cooperatives` and :func:`comparison_figures`."""

    def default_cooperative() -> CooperativeConfig:
        return CooperativeConfig.model_validate(cooperative)

    def default_mechanisms() -> list[MechanismVariant]:
        return [MechanismVariant(label=label, mechanism=m) for label, m in mechanisms]

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
                    figures=comparison_figures, headline=("free_rider_profit.*", "mechanisms.*.participation"))
