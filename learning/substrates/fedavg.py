"""FedAvg (McMahan et al. 2017), the aggregation-centric baseline that TL is compared with.

Each round every client starts from the global θ, runs ``local_epochs`` of mini-batch SGD on its own
rows, and the server sets ``θ ← θ + Σ_i w_i Δ_i`` with ``Δ_i = θ_i − θ`` and data-size weights
``w_i = n_i / Σ_j n_j`` (or uniform). The per-client updates Δ_i are exposed in a
:class:`RoundRecord`, which is all that FedAvg-side attribution can reconstruct from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from learning.guard import guard_pieces
from learning.models import default_loss
from learning.params import flat_params, set_flat_params
from learning.seeding import derive_seed
from learning.substrates.common import MemberData
from learning.traversal import LossFn


class FedAvgConfig(BaseModel):
    """FedAvg settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    local_epochs: PositiveInt = Field(2, description="local passes over a client's rows per round")
    batch_size: PositiveInt = Field(32, description="local mini-batch size")
    lr: PositiveFloat = Field(0.1, description="local SGD learning rate")
    weighting: Literal["size", "uniform"] = Field("size", description="aggregation weights w_i")
    guard_ratio: float | None = Field(None, gt=0.0, description="the coordinator's safeguard on reported updates "
                                      "(learning.guard): non-finite updates excluded (weight 0), norms bounded by "
                                      "this × the median; None: off")


@dataclass
class RoundRecord:
    """One FedAvg round: θ before, client updates Δ_i (N, D), weights w (N,), θ after."""

    round: int
    theta: torch.Tensor
    updates: torch.Tensor
    weights: np.ndarray
    theta_after: torch.Tensor
    sizes: np.ndarray
    excluded: np.ndarray | None = None
    clipped: np.ndarray | None = None


class FedAvgTrainer:
    """Federated averaging over members' data; ``round()`` runs one communication round."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn | None = None,
                 config: FedAvgConfig | dict | None = None, *, seed: int) -> None:
        self.model = model
        self.loss_fn = default_loss(model) if loss_fn is None else loss_fn
        self.config = FedAvgConfig.model_validate(config or {})
        self.seed = int(seed)
        self._local = copy.deepcopy(model)

    def local_update(self, theta: torch.Tensor, data: MemberData, round_index: int, client: int) -> torch.Tensor:
        """Δ_i: ``local_epochs`` of SGD on one client's rows, starting from θ."""
        X, y = data
        n = len(y)
        if n == 0:
            return torch.zeros_like(theta)
        set_flat_params(self._local, theta)
        opt = torch.optim.SGD(self._local.parameters(), lr=self.config.lr)
        rng = np.random.default_rng(derive_seed(self.seed, 0xFEDA, round_index, client))
        bs = self.config.batch_size
        for _ in range(self.config.local_epochs):
            perm = torch.from_numpy(rng.permutation(n)).to(X.device)
            for s in range(0, n, bs):
                ix = perm[s:s + bs]
                opt.zero_grad(set_to_none=False)
                self.loss_fn(self._local(X[ix]), y[ix]).backward()
                opt.step()
        return flat_params(self._local) - theta

    def round(self, members: Sequence[MemberData], round_index: int = 0,
              tamper: Callable[[torch.Tensor], torch.Tensor] | None = None) -> RoundRecord:
        """One round: local training on every client, then weighted averaging. ``tamper`` (optional)
        maps the true client updates (N, D) to the ones clients report (adversarial clients)."""
        theta = flat_params(self.model)
        updates = torch.stack([self.local_update(theta, m, round_index, i) for i, m in enumerate(members)])
        if tamper is not None:
            updates = tamper(updates)
        sizes = np.array([len(m[1]) for m in members], dtype=np.int64)
        w = sizes / sizes.sum() if self.config.weighting == "size" else np.full(len(members), 1 / len(members))
        excluded = clipped = None
        if self.config.guard_ratio is not None:  # excluded clients get weight 0; the others renormalised
            guarded = guard_pieces(updates, None, max_ratio=self.config.guard_ratio)
            updates, excluded, clipped = guarded.pieces, guarded.excluded, guarded.clipped
            w = np.where(excluded, 0.0, w)
            w = w / w.sum() if w.sum() > 0 else w
        after = theta + (torch.from_numpy(w).to(device=theta.device, dtype=theta.dtype)[:, None] * updates).sum(0)
        set_flat_params(self.model, after)
        return RoundRecord(round_index, theta, updates, w, after, sizes, excluded, clipped)

    def fit(self, members: Sequence[MemberData], rounds: int,
            on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        out = []
        for r in range(rounds):
            rec = self.round(members, r)
            out.append(rec)
            if on_round is not None:
                on_round(rec)
        return out
