"""``value-pluralism`` (V): members with different value profiles train one multi-task model.

The model has a shared trunk and two heads (``digit`` and a stand-in ``risk`` score,
``learning.data.with_risk_task``). Each member's delegate filters its exact TL gradient piece
through its profile (V1: rule-based head rejection, optionally trunk-neutral; half-space protection
of classes; "refuse everything"), the cooperative applies ``θ ← θ − η Σ_i g̃_i`` (V2), and every
step credits each member with the one-step counterfactual of its *admissible* update (V3):
``c_i^t = L_val(θ^t) − L_val(θ^t − η g̃_i)`` (a rejected update is 0 and earns exactly 0). For
contrast the same counterfactual of the raw piece g_i is recorded (what the member's data could have
earned without its values). Credit is cumulated in a :class:`economics.settlement.Ledger` (V4) and
settled with α-power shares (V5) of the revenue ``R = R0·max(0, acc − acc0)/(1 − acc0)`` earned by
the digit head (V6), for several α.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from economics.settlement import Ledger, LinearAccuracyRevenue, settle
from economics.valuation import one_step_counterfactual
from learning.evaluation import accuracy
from learning.filters import ValueProfile, ValueProfileSpec, ValueReference
from learning.models import build_model
from learning.seeding import derive_seed
from learning.substrates import StepRecord, TraversalTrainer
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, figure, grouped_bars, save
from scenarios.library._common import loss_oracle, prepare
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult

ONE_RUN = "\n(one seeded run: a demonstration of filter guarantees, no replicates, so no interval)"


class MemberSpec(Section):
    """One member: a name, a value profile (``learning.filters.ValueProfileSpec``) and data quality."""

    name: str = Field("member", min_length=1, description="label in tables and figures")
    profile: ValueProfileSpec = Field(default_factory=ValueProfileSpec,
                                      description="value filters, e.g. {reject_heads = ['risk']}; empty = admit all")
    label_noise: float = Field(0.0, ge=0.0, le=1.0, description="fraction of the member's digit labels randomised")


def _default_members() -> list[MemberSpec]:
    return [MemberSpec(name="open"),
            MemberSpec(name="no-risk", profile=ValueProfileSpec(reject_heads=["risk"])),
            MemberSpec(name="no-risk (neutral trunk)", profile=ValueProfileSpec(reject_heads=["risk"],
                                                                                neutral_trunk=True)),
            MemberSpec(name="protect 3 and 8", profile=ValueProfileSpec(protect_classes=[3, 8])),
            MemberSpec(name="refuses all", profile=ValueProfileSpec(admit_heads=[]))]


class TrainingSection(Section):
    """TL training of the multi-task model."""

    dataset: Literal["digits", "mnist5k"] = Field("digits", description="offline image dataset")
    partition: Literal["uni", "pow", "cla", "dirichlet"] = Field("uni", description="how rows are shared")
    hidden: int = Field(64, ge=1, le=1024, description="trunk width (one hidden layer)")
    epochs: int = Field(10, ge=1, le=200, description="TL passes over the pooled data")
    lr: float = Field(0.3, gt=0, le=10, description="SGD learning rate η")
    batch_size: int = Field(64, ge=1, le=4096, description="rows per virtual batch")


class SettlementSection(Section):
    """Settlement of the cumulative credit (V4–V6)."""

    alpha: float = Field(1.0, ge=1.0, description="α of the ledger's settlement (V5)")
    alpha_values: list[float] = Field([1.0, 2.0, 4.0], min_length=1, description="α values compared in the figure")
    r0: float = Field(100.0, ge=0, description="revenue R0 of a perfect digit model (money)")
    acc0: float = Field(0.1, ge=0, lt=1, description="accuracy the market pays nothing for (chance level)")

    @field_validator("alpha_values")
    @classmethod
    def _at_least_one(cls, values: list[float]) -> list[float]:
        if any(a < 1 for a in values):
            raise ValueError("every α must be ≥ 1")
        return values


class PluralismConfig(ScenarioConfig):
    """Configuration of the ``value-pluralism`` scenario."""

    members: list[MemberSpec] = Field(default_factory=_default_members, min_length=2, max_length=32,
                                      description="the members and their value profiles")
    training: TrainingSection = Field(default_factory=TrainingSection, description="TL training")
    settlement: SettlementSection = Field(default_factory=SettlementSection, description="credit to payments")


def run(cfg: PluralismConfig, seed: int) -> ScenarioResult:
    """Train with per-member filters, credit admissible updates, settle."""
    tr, n = cfg.training, len(cfg.members)
    names = [m.name for m in cfg.members]
    prep = prepare(seed, dataset=tr.dataset, scheme=tr.partition, n_members=n, risk_task=True,
                   label_noise=[m.label_noise for m in cfg.members])
    model = build_model("multitask", prep.data.n_features, prep.data.n_classes, seed=derive_seed(seed, 5),
                        hidden=(tr.hidden,), task_classes={"risk": 2})
    reference = ValueReference.from_classes(*prep.val)
    trainer = TraversalTrainer(model, config={"lr": tr.lr, "batch_size": tr.batch_size}, seed=derive_seed(seed, 6),
                               reference=reference)
    profiles = [ValueProfile.from_spec(m.profile, trainer.layout, seed=derive_seed(seed, 8, i),
                                       n_classes=prep.data.n_classes) for i, m in enumerate(cfg.members)]
    loss_at = loss_oracle(model, trainer.loss_fn, *prep.val)
    ledger = Ledger()
    raw_credit, norms = np.zeros(n), np.zeros((2, n))
    rows: list[dict[str, Any]] = []

    def on_step(rec: StepRecord) -> None:
        theta = rec.theta.detach().double().numpy()
        filtered, raw = rec.filtered.detach().double().numpy(), rec.raw.detach().double().numpy()
        credit = one_step_counterfactual(theta, filtered, rec.lr, loss_at)
        raw_credit[:] += one_step_counterfactual(theta, raw, rec.lr, loss_at)
        ledger.record(len(ledger.credits), names, credit)
        norms[0] += np.linalg.norm(raw, axis=1)
        norms[1] += np.linalg.norm(filtered, axis=1)

    def on_epoch(e: int) -> None:
        _, cum = ledger.cumulative()
        kept = np.divide(norms[1], norms[0], out=np.zeros(n), where=norms[0] > 0)
        for i, name in enumerate(names):
            rows.extend([{"round": e + 1, "agent": name, "variable": "credit", "value": cum[i]},
                         {"round": e + 1, "agent": name, "variable": "credit_raw", "value": raw_credit[i]},
                         {"round": e + 1, "agent": name, "variable": "norm_kept", "value": kept[i]}])
        for head in ("digit", "risk"):
            acc_head = accuracy(model, *prep.test, task=head)
            rows.append({"round": e + 1, "variable": f"accuracy_{head}", "value": acc_head})
        norms[:] = 0.0

    trainer.fit(prep.members, tr.epochs, profiles, callback=on_step, on_epoch=on_epoch)
    st = cfg.settlement
    acc = {head: accuracy(model, *prep.test, task=head) for head in ("digit", "risk")}
    revenue = LinearAccuracyRevenue(st.r0, st.acc0)(acc["digit"])
    settled = ledger.settle(revenue, st.alpha)
    members, cum = settled.members, settled.cumulative
    payments = {a: settle(cum, a, revenue) for a in st.alpha_values}
    frame = pd.DataFrame(rows)
    kept_mean = frame[frame.variable == "norm_kept"].groupby("agent", sort=False).value.mean()
    for i, name in enumerate(members):
        rows += [{"agent": name, "variable": f"payment_alpha_{a:g}", "value": p[i]} for a, p in payments.items()]
        rows += [{"agent": name, "variable": "share", "value": settled.shares[i]}]
    summary = {
        "accuracy": acc, "revenue": revenue, "alpha": st.alpha,
        "members": {name: {"profile": cfg.members[i].profile.model_dump(exclude_defaults=True),
                           "norm_kept": float(kept_mean[name]), "credit": float(cum[i]),
                           "credit_raw": float(raw_credit[i]), "share": float(settled.shares[i]),
                           "payment": float(settled.payments[i]),
                           "payments_by_alpha": {f"{a:g}": float(p[i]) for a, p in payments.items()}}
                    for i, name in enumerate(members)},
        "accuracy_digit": acc["digit"], "accuracy_risk": acc["risk"],
    }
    table = pd.DataFrame([{"member": name, "norm kept": m["norm_kept"], "credit (admissible)": m["credit"],
                           "credit (raw)": m["credit_raw"], "share": m["share"], "payment": m["payment"]}
                          for name, m in summary["members"].items()])
    return ScenarioResult(pd.DataFrame(rows), summary, {"members": table})


# ------------------------------------------------------------------------------------ figures
def figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """What each filter admits, credit over training, accuracy per head, payments per α."""
    folder = Path(folder)
    paths = []
    per = frame[frame["round"] >= 1]
    names = list(dict.fromkeys(per[per.agent != ""].agent))

    fig, axes = figure()
    ax = axes[0, 0]
    kept = per[per.variable == "norm_kept"]
    for j, name in enumerate(names):
        part = kept[kept.agent == name]
        ax.plot(part["round"], 100 * part.value, marker="o", color=OKABE_ITO[j % 8], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("admitted share of raw gradient norm (%)")
    ax.set_ylim(-5, 105)
    ax.set_title("what each value filter admits (Σ‖g̃_i‖ / Σ‖g_i‖ per epoch)"
                 f"{ONE_RUN}", fontsize=9)
    ax.legend(fontsize=7)
    paths.append(save(fig, folder / "admitted.png"))

    fig, axes = figure()
    ax = axes[0, 0]
    for j, name in enumerate(names):
        for var, style in (("credit", "-"), ("credit_raw", ":")):
            part = per[(per.variable == var) & (per.agent == name)]
            ax.plot(part["round"], part.value, style, marker="o" if var == "credit" else None, color=OKABE_ITO[j % 8],
                    label=name if var == "credit" else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cumulative credit (validation-loss units)")
    ax.set_title("credit for admissible updates (solid) vs raw pieces (dotted)"
                 f"{ONE_RUN}", fontsize=9)
    ax.legend(fontsize=7)
    paths.append(save(fig, folder / "credit.png"))

    fig, axes = figure()
    ax = axes[0, 0]
    for j, head in enumerate(("digit", "risk")):
        part = per[per.variable == f"accuracy_{head}"]
        ax.plot(part["round"], 100 * part.value, marker="o", color=OKABE_ITO[j], label=f"{head} head")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy per head of the shared model"
                 f"{ONE_RUN}", fontsize=9)
    ax.legend()
    paths.append(save(fig, folder / "accuracy.png"))

    pay = frame[frame.variable.str.startswith("payment_alpha_")]
    fig, axes = figure(width=7.5)
    ax = axes[0, 0]
    series = {f"α = {v[len('payment_alpha_'):]}": [float(pay[(pay.variable == v) & (pay.agent == a)].value.sum())
                                                  for a in names] for v in dict.fromkeys(pay.variable)}
    grouped_bars(ax, names, series)
    ax.tick_params(axis="x", rotation=20)
    ax.set_ylabel("payment (money)")
    ax.set_title(f"settlement of revenue {summary.get('revenue', float('nan')):.1f} by α-power shares (V5–V6)"
                 f""
                 f"{ONE_RUN}", fontsize=9)
    ax.legend()
    paths.append(save(fig, folder / "payments.png"))
    return paths


SCENARIO = Scenario(
    name="value-pluralism",
    description="V: heterogeneous value filters on a multi-task model: what each admits, credit, accuracy, pay",
    config=PluralismConfig,
    run=run,
    figures=figures,
    headline=("accuracy_digit", "accuracy_risk", "revenue"),
)
