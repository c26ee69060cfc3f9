"""Pieces shared by the substrates: member tensors, optimisers and the common configuration."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from learning.data import Dataset

MemberData = tuple[torch.Tensor, torch.Tensor]


class TrainConfig(BaseModel):
    """Mini-batch SGD settings shared by TL and centralised training."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    batch_size: PositiveInt = Field(64, description="rows per virtual batch")
    lr: PositiveFloat = Field(0.1, description="learning rate η")
    optimizer: Literal["sgd", "momentum", "adam"] = Field("sgd", description="plain SGD applies θ − ηΣg̃ (V2)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="used by optimizer='momentum'")
    reshuffle: bool = Field(True, description="new virtual batches every epoch (TL++) or fixed once (TL)")
    drop_last: bool = Field(False, description="drop the last, smaller virtual batch")


def virtual_plan(members: Sequence[MemberData], config: TrainConfig, seed: int, round_key: int = 0):
    """The virtual batches of these members: a pure function of their sizes, the batch settings, the
    seed and ``round_key`` — so TL and centralised training given the same ones see the same batches."""
    from learning.seeding import derive_seed
    from learning.traversal import VirtualBatchPlan

    return VirtualBatchPlan([len(m[1]) for m in members], config.batch_size,
                            seed=derive_seed(seed, 0xBA7C, round_key),
                            reshuffle=config.reshuffle, drop_last=config.drop_last)


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, momentum: float):
    """A torch optimizer: plain SGD, SGD with momentum, or Adam."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.Adam(params, lr=lr)


def member_tensors(parts: Sequence[Dataset], dtype: torch.dtype = torch.float32) -> list[MemberData]:
    """Each member's rows as ``(X_i, y_i)`` tensors (``y_i`` is (n, T) for multi-task data)."""
    return [(torch.from_numpy(d.X).to(dtype), torch.from_numpy(d.target_matrix())) for d in parts]


def dataset_tensors(data: Dataset, dtype: torch.dtype = torch.float32) -> MemberData:
    """One dataset as ``(X, y)`` tensors."""
    return member_tensors([data], dtype)[0]
