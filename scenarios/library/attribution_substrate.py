"""``attribution-substrate`` (V): does traversal learning attribute credit better than FedAvg?

Members hold equal-sized shares of the data with *known* noise levels (``data.noise``: random labels,
feature noise or duplicated rows, ``learning.data.Quality``;
true quality = 1 − noise). The same data and initial model are trained twice with an equal number of
samples processed:

- **TL** (V2): at every virtual batch the trainer's callback receives θ^t and the members' exact
  pieces g̃_i; credit is the one-step counterfactual (V3) ``c_i^t = L_val(θ^t) − L_val(θ^t − η g̃_i)``,
  all members in one batched validation forward (``learning.evaluation.batched_loss``), cumulated
  uniformly (V4).
- **FedAvg**: every round keeps the client updates Δ_i (what a ``RoundRecord`` holds); credit is
  (a) the FedAvg one-step counterfactual ``L(θ) − L(θ + w̄_i Δ_i)`` and (b) exact per-round Shapley
  values of the reconstructed sub-models ``θ_S = θ + Σ_S w_i Δ_i / Σ_S w_i`` (Song et al. 2019),
  both cumulated over rounds.

Measured: Spearman's rank correlation between each member's cumulative credit and its true quality,
for several independent replicates (data split, partition, noise draws, initialisation, batches).
TL minus each FedAvg method is taken per replicate (paired: same data, noise and initial model), with
its interval and a verdict (``scenarios.stats``); whatever the sign, the summary reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from economics.valuation import fedavg_one_step_counterfactual, fedavg_reconstruction_shapley, one_step_counterfactual
from learning.data import DataFile, Quality, dataset_spec
from learning.evaluation import accuracy
from learning.models import build_model
from learning.params import flat_params, set_flat_params
from learning.seeding import derive_seed
from learning.substrates import StepRecord, TraversalTrainer
from scenarios import stats
from scenarios.config import ScenarioConfig, Section
from scenarios.figures import OKABE_ITO, estimate_bars, figure, forest, interval_caption, save
from scenarios.library._common import local_sgd, loss_oracle, prepare, spearman
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult

TL = "TL one-step (V3)"
FED_ONE = "FedAvg one-step"
FED_SHAP = "FedAvg reconstruction Shapley"


#: how a member's level degrades its rows (``learning.data.Quality``); true quality = 1 − level
NOISE_KINDS = {"labels": "fraction of labels replaced by a different random label",
               "features": "Gaussian feature noise with standard deviation 2 × level (features are standardised)",
               "duplicates": "fraction of rows replaced by duplicates of the member's other rows"}


def quality_of(kind: str, level: float) -> Quality:
    """The data-quality knobs of one member at ``level`` of noise ``kind``."""
    return {"labels": Quality(label_noise=level), "features": Quality(feature_noise=2.0 * level),
            "duplicates": Quality(duplicates=level)}[kind]


class DataSection(Section):
    """Data, partition and the members' known noise levels."""

    dataset: str | DataFile = Field("digits", description="offline dataset: digits, mnist5k or synthetic, or your "
                                                          "own file { path = 'rows.csv', label = 'target' }")
    partition: Literal["uni", "pow", "cla", "dirichlet"] = Field("uni", description="how rows are shared")
    noise: Literal["labels", "features", "duplicates"] = Field(
        "labels", description="how each member's level degrades its rows: " + "; ".join(
            f"{k}: {v}" for k, v in NOISE_KINDS.items()))
    levels: list[float] = Field([0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5], min_length=2, max_length=12,
                                description="one noise level in [0, 1] per member (true quality = 1 − level; "
                                            "called label_noise before coopsim 0.2)")

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, value: Any) -> str | DataFile:
        return dataset_spec(value, names=("digits", "mnist5k", "synthetic"))

    @field_validator("levels")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError("every noise level must be a fraction in [0, 1]")
        return values


class TrainingSection(Section):
    """Equal samples processed: TL makes ``epochs`` passes; FedAvg runs ``epochs / local_epochs`` rounds."""

    model: Literal["logreg", "mlp"] = Field("logreg", description="model (stacked batched evaluation)")
    hidden: int = Field(64, ge=1, le=1024, description="MLP hidden width")
    epochs: int = Field(6, ge=1, le=200, description="TL passes over the pooled data")
    local_epochs: int = Field(2, ge=1, le=50, description="FedAvg local passes per round")
    lr: float = Field(0.3, gt=0, le=10, description="SGD learning rate η (TL and FedAvg local steps)")
    batch_size: int = Field(64, ge=1, le=4096, description="TL virtual batch and FedAvg local batch size")


class AttributionConfig(ScenarioConfig):
    """Configuration of the ``attribution-substrate`` scenario."""

    data: DataSection = Field(default_factory=DataSection, description="data and label noise")
    training: TrainingSection = Field(default_factory=TrainingSection, description="substrate training")
    replicates: int = Field(12, ge=1, le=100, description="independent replicates (each its own derived seed)")
    fedavg_shapley: bool = Field(True, description="also compute exact reconstruction Shapley per FedAvg round")

    @model_validator(mode="after")
    def _equal_samples(self) -> AttributionConfig:
        if self.training.epochs % self.training.local_epochs:
            raise ValueError("training.epochs must be a multiple of training.local_epochs (equal samples processed)")
        if self.fedavg_shapley and len(self.data.levels) > 12:
            raise ValueError("exact Shapley needs at most 12 members")
        return self


def _replicate(cfg: AttributionConfig, seed: int, k: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One replicate: train TL and FedAvg on the same data, credit members, correlate with quality."""
    noise = cfg.data.levels
    n = len(noise)
    quality = 1.0 - np.asarray(noise)
    prep = prepare(seed, dataset=cfg.data.dataset, scheme=cfg.data.partition, n_members=n,
                   qualities=[quality_of(cfg.data.noise, v) for v in noise])
    tr = cfg.training
    hidden = (tr.hidden,) if tr.model == "mlp" else ()

    def fresh():
        return build_model(tr.model, prep.data.n_features, prep.data.n_classes, seed=derive_seed(seed, 5),
                           hidden=hidden)

    rows: list[dict[str, Any]] = [{"replicate": k, "agent": f"member {i}", "variable": "quality", "value": q}
                                  for i, q in enumerate(quality)]
    credits: dict[str, np.ndarray] = {}

    # --- TL with the one-step counterfactual (V3) at every step
    tl = TraversalTrainer(fresh(), config={"lr": tr.lr, "batch_size": tr.batch_size}, seed=derive_seed(seed, 6))
    loss_at = loss_oracle(tl.model, F.cross_entropy, *prep.val)
    tl_credit = np.zeros(n)

    def credit_step(rec: StepRecord) -> None:
        theta, pieces = rec.theta.detach().double().numpy(), rec.filtered.detach().double().numpy()
        tl_credit[:] += one_step_counterfactual(theta, pieces, rec.lr, loss_at)

    def tl_epoch(e: int) -> None:
        rows.extend({"replicate": k, "method": TL, "round": e + 1, "agent": f"member {i}", "variable": "credit",
                     "value": c} for i, c in enumerate(tl_credit))

    tl.fit(prep.members, tr.epochs, callback=credit_step, on_epoch=tl_epoch)
    credits[TL] = tl_credit.copy()

    # --- FedAvg with reconstruction from the per-client updates (θ ← θ + Σ w_i Δ_i, w = data shares)
    fed_model = fresh()
    client = local_sgd(fed_model, F.cross_entropy, lr=tr.lr, batch_size=tr.batch_size, epochs=tr.local_epochs,
                      seed=derive_seed(seed, 7))
    fed_loss_at = loss_oracle(fed_model, F.cross_entropy, *prep.val)
    weights = prep.sizes / prep.sizes.sum()
    methods = [FED_ONE] + ([FED_SHAP] if cfg.fedavg_shapley else [])
    fed_credit = {m: np.zeros(n) for m in methods}
    theta_t = flat_params(fed_model)
    for r in range(tr.epochs // tr.local_epochs):
        updates = torch.stack([client.local_update(theta_t, m, r, i) for i, m in enumerate(prep.members)])
        theta, deltas = theta_t.double().numpy(), updates.double().numpy()
        fed_credit[FED_ONE] += fedavg_one_step_counterfactual(theta, deltas, weights, fed_loss_at)
        if cfg.fedavg_shapley:
            fed_credit[FED_SHAP] += fedavg_reconstruction_shapley(theta, deltas, weights, fed_loss_at)
        theta_t = theta_t + (torch.from_numpy(weights).to(theta_t.dtype)[:, None] * updates).sum(0)
        for m in methods:
            rows.extend({"replicate": k, "method": m, "round": (r + 1) * tr.local_epochs, "agent": f"member {i}",
                         "variable": "credit", "value": c} for i, c in enumerate(fed_credit[m]))
    set_flat_params(fed_model, theta_t)
    credits.update({m: v.copy() for m, v in fed_credit.items()})

    out = {"spearman": {m: spearman(c, quality) for m, c in credits.items()},
           "test_accuracy": {"TL": accuracy(tl.model, *prep.test), "FedAvg": accuracy(fed_model, *prep.test)},
           "final_credit": {m: c.tolist() for m, c in credits.items()}}
    rows += [{"replicate": k, "method": m, "variable": "spearman", "value": v} for m, v in out["spearman"].items()]
    rows += [{"replicate": k, "method": s, "variable": "test_accuracy", "value": v}
             for s, v in out["test_accuracy"].items()]
    return out, rows


def run(cfg: AttributionConfig, seed: int) -> ScenarioResult:
    """Every replicate, then per attribution method the mean rank correlation with its interval, and
    TL minus each FedAvg method paired per replicate (same data, noise and initial model)."""
    reps, rows = [], []
    for k in range(cfg.replicates):
        out, more = _replicate(cfg, derive_seed(seed, 0xA77, k), k)
        reps.append(out)
        rows += more
    level = cfg.ci_level
    methods = list(reps[0]["spearman"])
    spear = {m: [r["spearman"][m] for r in reps] for m in methods}
    undefined = "credit or quality constant across members in every replicate"
    estimates = {m: stats.estimate(v, level=level, undefined_reason=undefined, bounds=(-1.0, 1.0))
                 for m, v in spear.items()}
    diffs = {m: stats.paired(spear[TL], spear[m], level=level, bounds=(-1.0, 1.0)) for m in methods if m != TL}
    accuracy_est = {s: stats.estimate([r["test_accuracy"][s] for r in reps], level=level, bounds=(0.0, 1.0))
                    for s in ("TL", "FedAvg")}
    words = {"positive": "higher than", "negative": "lower than", "inconclusive": "not distinguishable from"}
    finding = "; ".join(f"TL's rank correlation is {words[d.verdict]} {m}'s (paired difference {d.text('{:+.3f}')}, "
                        f"n = {d.n}, {100 * level:.0f}% CI)" for m, d in diffs.items())
    summary = {
        "intervals": stats.describe(level), "noise": cfg.data.noise, "levels": cfg.data.levels,
        "replicates": cfg.replicates,
        "spearman": {m: e.as_dict() for m, e in estimates.items()},
        "spearman_values": spear,
        "tl_minus_fedavg": {m: d.as_dict() for m, d in diffs.items()},
        "test_accuracy": {s: e.as_dict() for s, e in accuracy_est.items()},
        "finding": finding,
    }
    table = pd.DataFrame([{"method": m, f"Spearman [{100 * level:.0f}% CI]": estimates[m].text("{:.3f}"),
                           "TL − method (paired)": diffs[m].text("{:+.3f}") if m in diffs else "",
                           "verdict": diffs[m].verdict if m in diffs else ""} for m in methods])
    return ScenarioResult(pd.DataFrame(rows), summary, {"rank_correlation": table})


# ------------------------------------------------------------------------------------ figures
def figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Rank correlation per method, credit against true quality, credit over training."""
    folder = Path(folder)
    paths = []
    sp = frame[frame.variable == "spearman"]
    methods = list(dict.fromkeys(sp.method))
    level = summary["intervals"]["level"]
    fig, axes = figure(1, 2, width=11.0, height=4.2, gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0, 0]
    estimate_bars(ax, [m.replace(" ", "\n", 1) for m in methods], [summary["spearman"].get(m) for m in methods],
                  colors=[OKABE_ITO[j] for j in range(len(methods))])
    for j, m in enumerate(methods):
        vals = sp[sp.method == m].value.to_numpy()
        ax.plot(np.full(len(vals), j) + np.linspace(-0.15, 0.15, len(vals)), vals, "o", color="black",
                markersize=3, alpha=0.6)
    ax.set_ylabel("Spearman ρ(cumulative credit, true quality)")
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0, color="black", linewidth=0.8)
    n = summary["replicates"]
    ax.set_title(f"credit ranks members by data quality\n{interval_caption(n, level)}; dots: replicates", fontsize=9)
    diffs = summary.get("tl_minus_fedavg", {})
    forest(axes[0, 1], [f"TL − {m}" for m in diffs], list(diffs.values()), xlabel="paired difference in Spearman ρ")
    axes[0, 1].set_title("TL minus FedAvg, paired per replicate\nblue/vermillion: interval excludes 0", fontsize=9)
    fig.tight_layout()
    paths.append(save(fig, folder / "rank_correlation.png"))

    quality = frame[frame.variable == "quality"].groupby("agent").value.first()
    credit = frame[frame.variable == "credit"]
    last = credit[credit.groupby(["replicate", "method"])["round"].transform("max") == credit["round"]]
    fig, axes = figure(1, len(methods), width=3.4 * len(methods), height=3.4)
    for ax, m in zip(axes[0], methods, strict=True):
        part = last[last.method == m]
        for j, (rep, grp) in enumerate(part.groupby("replicate")):
            share = grp.value.to_numpy() / max(np.abs(grp.value.to_numpy()).sum(), 1e-12)
            ax.plot(quality.reindex(grp.agent).to_numpy(), share, "o", color=OKABE_ITO[j % 8], label=f"replicate {rep}")
        ax.set_xlabel("true quality (1 − label noise)")
        ax.set_title(m, fontsize=9)
    axes[0, 0].set_ylabel("credit share C_i / Σ|C_j|")
    axes[0, -1].legend(fontsize=7)
    paths.append(save(fig, folder / "credit_vs_quality.png"))

    first = credit[credit.replicate == credit.replicate.min()]
    fig, axes = figure(1, len(methods), width=3.4 * len(methods), height=3.4)
    for ax, m in zip(axes[0], methods, strict=True):
        part = first[first.method == m]
        for j, (agent, grp) in enumerate(part.groupby("agent", sort=True)):
            ax.plot(grp["round"], grp.value, marker=".", color=OKABE_ITO[j % 8],
                    label=f"{agent} (q={quality.get(agent, np.nan):.2f})")
        ax.set_xlabel("samples processed (epochs of pooled data)")
        ax.set_title(m, fontsize=9)
    axes[0, 0].set_ylabel("cumulative credit (validation-loss units)")
    axes[0, -1].legend(fontsize=6)
    paths.append(save(fig, folder / "credit_over_training.png"))
    return paths


SCENARIO = Scenario(
    name="attribution-substrate",
    description="V: rank correlation of credit with known data quality, TL one-step (V3) vs FedAvg reconstruction",
    config=AttributionConfig,
    run=run,
    figures=figures,
    headline=("spearman.*", "tl_minus_fedavg.*"),
)
