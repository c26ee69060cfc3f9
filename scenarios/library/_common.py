"""Pieces shared by the learning-based scenarios: seeded data preparation and the batched loss oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from learning.data import Dataset, Quality, degrade, load_dataset, split, with_risk_task
from learning.evaluation import batched_loss
from learning.partition import partition
from learning.seeding import derive_seed
from learning.substrates import FedAvgTrainer, member_tensors
from learning.substrates.common import MemberData, dataset_tensors
from learning.traversal import LossFn


@dataclass
class Prepared:
    """Members' (possibly degraded) rows, clean validation and test rows, and the dataset's shape."""

    members: list[MemberData]
    val: MemberData
    test: MemberData
    data: Dataset
    sizes: np.ndarray
    corrupted: list[np.ndarray]


def prepare(seed: int, *, dataset: str, scheme: str, n_members: int, n_samples: int | None = None,
            label_noise: Sequence[float] | None = None, risk_task: bool = False,
            qualities: Sequence[Quality] | None = None,
            dirichlet_alpha: float = 0.5) -> Prepared:
    """Load, split, partition and degrade, every step seeded from ``seed`` (keys 1–4).

    ``label_noise[i]`` is member i's fraction of replaced labels (``learning.data.Quality``), or
    ``qualities[i]`` its full quality knobs; the validation and test rows stay clean.
    """
    data = load_dataset(dataset, seed=derive_seed(seed, 1))
    if risk_task:
        data = with_risk_task(data)
    splits = split(data, seed=derive_seed(seed, 2))
    pool = splits.train
    if n_samples is not None:
        n_samples = min(n_samples, len(pool))
    parts = partition(pool.y, n_members, scheme, seed=derive_seed(seed, 3), n_samples=n_samples,
                      n_classes=data.n_classes, alpha=dirichlet_alpha)
    rows, corrupted = [], []
    for i, part in enumerate(parts):
        member = pool.subset(part)
        if qualities is not None:
            quality = qualities[i]
        else:
            quality = Quality(label_noise=0.0 if label_noise is None else float(label_noise[i]))
        member, bad = degrade(member, quality, seed=derive_seed(seed, 4, i))
        rows.append(member)
        corrupted.append(bad)
    return Prepared(member_tensors(rows), dataset_tensors(splits.val), dataset_tensors(splits.test), data,
                    np.array([len(p) for p in parts]), corrupted)


def loss_oracle(model: torch.nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor
                ) -> Callable[[np.ndarray], np.ndarray]:
    """``loss_at(params (K, D) float64) -> (K,)`` validation losses in one stacked forward: the oracle
    that ``economics.valuation`` takes (V3's hot path)."""
    dtype = next(model.parameters()).dtype

    def loss_at(params: np.ndarray) -> np.ndarray:
        stack = torch.from_numpy(np.ascontiguousarray(params)).to(dtype)
        return batched_loss(model, loss_fn, stack, X, y).double().numpy()

    return loss_at


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def local_sgd(model: torch.nn.Module, loss_fn: LossFn, *, lr: float, batch_size: int, epochs: int,
              seed: int) -> FedAvgTrainer:
    """Local mini-batch SGD of FedAvg clients and CGSV agents: ``.local_update(θ, rows, round, member)``
    returns Δ_i = θ_i − θ after ``epochs`` local passes (batches seeded by (round, member)); the
    trainer works on its own copy of the model and never touches θ."""
    return FedAvgTrainer(model, loss_fn, {"lr": lr, "batch_size": batch_size, "local_epochs": epochs}, seed=seed)
