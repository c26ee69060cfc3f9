"""The surrogate learning mode: a learning curve of the pooled effective data instead of training."""

from __future__ import annotations

import numpy as np

from economics.contracts.accuracy import GeneralisationBound
from learning.partition import partition
from learning.seeding import derive_seed
from sim.config import CooperativeConfig
from sim.outcome import RoundOutcome
from sim.quality import quality_weight


class SurrogateSharedModel:
    """The surrogate's shared model: no parameters, a learning curve of the pooled update."""

    has_parameters = False

    def __init__(self, backend: SurrogateBackend) -> None:
        self._backend = backend

    def _none(self, *args: object) -> np.ndarray:
        raise NotImplementedError("the surrogate has no parameters: use share_accuracy(shares)")

    initial = current = tensors = evaluate = _none

    def share_accuracy(self, shares: np.ndarray) -> np.ndarray:
        """Accuracy of a model holding the share ``q_i`` of this round's pooled (effective) update."""
        return self._backend.model_accuracy(np.asarray(shares, dtype=float), self._backend.last_total_eff)


class SurrogateBackend:
    """A learning curve instead of training: ``accuracy = a(scale · max(0, Σ_i rows_i · w_i))``.

    ``a`` is the generalisation bound of SPEC §5 (k = 1); ``scale`` converts rows into the curve's
    data units; ``w`` is :func:`quality_weight`. Credit is leave-one-out on the curve, the surrogate
    of (V3). Update vectors for
    CGSV are ``rows·w·d + √rows·ξ`` in ``surrogate_dim`` dimensions (d a fixed unit direction).
    """

    def __init__(self, config: CooperativeConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.curve = GeneralisationBound()
        self.scale = config.training.surrogate_scale
        rng = np.random.default_rng(derive_seed(seed, 31))
        d = rng.normal(size=config.training.surrogate_dim)
        self.direction = d / np.linalg.norm(d)
        self.rng = np.random.default_rng(derive_seed(seed, 32))
        self._noise: dict[int, float] = {}
        self._behaviour: dict[int, str] = {}
        self._pool: dict[int, int] = {}
        self.last_total_eff = 0.0

    def shared_model(self) -> SurrogateSharedModel:
        """The shared model as mechanisms see it (``sim.mechanisms.SharedModel``)."""
        return SurrogateSharedModel(self)

    def owner_pools(self, n_owners: int) -> list[np.ndarray]:
        y = np.arange(100 * n_owners) % 10
        return partition(y, n_owners, self.config.training.partition, seed=derive_seed(self.seed, 16))

    def register(self, index: int, pool: np.ndarray, label_noise: float, behaviour: str, profile) -> None:
        self._noise[index] = label_noise
        self._behaviour[index] = behaviour
        self._pool[index] = len(pool)

    def pool_size(self, index: int) -> int:
        return self._pool[index]

    def weights(self, indices: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Quality weight of each member's rows (:func:`quality_weight`)."""
        fr = self.config.population.free_ride
        return np.array([quality_weight(self._behaviour[i], self._noise[i], qi, fr)
                         for i, qi in zip(indices.tolist(), q.tolist(), strict=True)])

    def standalone_accuracy(self, indices: list[int]) -> float:
        rows = sum(self._pool[i] * (1.0 - 2.0 * self._noise[i]) for i in indices)
        return float(self.curve(self.scale * max(0.0, rows)))

    def train_round(self, round_index: int, members: list, tamper_kinds: list[str | None]) -> RoundOutcome:
        n = len(members)
        idx = np.fromiter((p.index for p in members), dtype=np.int64, count=n)
        q = np.fromiter((p.action.q for p in members), dtype=np.float64, count=n)
        rows = np.fromiter((p.rows for p in members), dtype=np.int64, count=n)
        if n and self.config.population.free_ride == "nothing":
            rows = rows * np.array([self._behaviour[i] != "free_rider" for i in idx])
        w = self.weights(idx, q) if n else np.zeros(0)
        eff = rows * w
        total = float(eff.sum())
        self.last_total_eff = total
        acc = float(self.curve(self.scale * max(0.0, total)))
        without = self.curve(self.scale * np.maximum(0.0, total - eff))
        credit = acc - without
        deltas = None
        if n:
            noise = self.rng.normal(size=(n, len(self.direction))) * np.sqrt(np.maximum(rows, 1))[:, None]
            deltas = eff[:, None] * self.direction[None, :] + noise
        return RoundOutcome(acc, float("nan"), credit, deltas, rows)

    def model_accuracy(self, share: np.ndarray, total_eff: float) -> np.ndarray:
        """Surrogate accuracy of a model holding the share ``q`` of the pooled update (ours)."""
        return self.curve(self.scale * np.maximum(0.0, share * total_eff))
