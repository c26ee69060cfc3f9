"""Side-by-side training on one partition: TL, centralised, FedAvg and standalone, with an equal
number of samples processed (TL and centralised run ``epochs`` passes over all members' rows; FedAvg
runs ``epochs / local_epochs`` rounds of ``local_epochs`` local passes; each standalone member makes
``epochs`` passes over its own rows). Returns plain numbers; printing and plotting live in
``scenarios``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from coopsim.errors import check
from learning.data import load_dataset, split
from learning.evaluation import accuracy
from learning.models import build_model
from learning.partition import partition
from learning.seeding import derive_seed
from learning.substrates import (
    CentralisedTrainer,
    FedAvgTrainer,
    TraversalTrainer,
    member_tensors,
    train_standalone,
)
from learning.substrates.common import dataset_tensors


@dataclass
class SubstrateComparison:
    """Test accuracy after each epoch-equivalent of samples processed, per substrate."""

    epochs: list[float]
    curves: dict[str, list[float]] = field(default_factory=dict)
    standalone_members: list[float] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def final(self) -> dict[str, float]:
        return {k: v[-1] for k, v in self.curves.items()}


def compare_substrates(
    *,
    dataset: str = "digits",
    partition_scheme: str = "cla",
    n_members: int = 10,
    model: str = "mlp",
    epochs: int = 20,
    local_epochs: int = 2,
    lr: float = 0.3,
    batch_size: int = 32,
    seed: int = 0,
) -> SubstrateComparison:
    """Train the four substrates on the same data and initial parameters."""
    check(isinstance(local_epochs, int) and local_epochs >= 1, "local_epochs", local_epochs, "an integer ≥ 1")
    check(isinstance(epochs, int) and epochs >= 1, "epochs", epochs, "an integer ≥ 1")
    check(epochs % local_epochs == 0, "epochs", epochs, f"a multiple of local_epochs={local_epochs}")
    data = load_dataset(dataset, seed=derive_seed(seed, 1))
    splits = split(data, seed=derive_seed(seed, 2))
    parts = partition(splits.train.y, n_members, partition_scheme, seed=derive_seed(seed, 3),
                      n_classes=data.n_classes)
    members = member_tensors([splits.train.subset(p) for p in parts])
    X_test, y_test = dataset_tensors(splits.test)

    def fresh(key: int = 0) -> torch.nn.Module:
        return build_model(model, data.n_features, data.n_classes, seed=derive_seed(seed, 4, key),
                           image_shape=data.image_shape)

    cfg = {"lr": lr, "batch_size": batch_size}
    out = SubstrateComparison(epochs=list(range(1, epochs + 1)),
                              settings={"dataset": dataset, "partition": partition_scheme, "n_members": n_members,
                                        "model": model, "epochs": epochs, "local_epochs": local_epochs, "lr": lr,
                                        "batch_size": batch_size, "seed": seed,
                                        "member_sizes": [len(p) for p in parts]})
    for name, trainer in (("traversal (TL)", TraversalTrainer(fresh(), config=cfg, seed=seed)),
                          ("centralised", CentralisedTrainer(fresh(), config=cfg, seed=seed))):
        curve: list[float] = []

        def record(_epoch: int, t=trainer, c=curve) -> None:
            c.append(accuracy(t.model, X_test, y_test))

        trainer.fit(members, epochs, on_epoch=record)
        out.curves[name] = curve

    fed = FedAvgTrainer(fresh(), config={"local_epochs": local_epochs, "batch_size": batch_size, "lr": lr}, seed=seed)
    fed_curve: list[float] = []
    for r in range(epochs // local_epochs):
        fed.round(members, r)
        fed_curve += [float("nan")] * (local_epochs - 1) + [accuracy(fed.model, X_test, y_test)]
    out.curves[f"FedAvg ({local_epochs} local epochs)"] = fed_curve

    solo = train_standalone(lambda i: fresh(), members, epochs, cfg, seed=seed)
    out.standalone_members = [accuracy(m, X_test, y_test) for m in solo]
    out.curves["standalone (mean)"] = [float("nan")] * (epochs - 1) + [float(np.mean(out.standalone_members))]
    return out
