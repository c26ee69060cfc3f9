"""The surrogate learning mode: a learning curve of the pooled effective data instead of training."""

from __future__ import annotations

import numpy as np

from economics.contracts.accuracy import GeneralisationBound
from learning.partition import partition_sizes
from learning.seeding import derive_seed
from sim.config import CooperativeConfig
from sim.outcome import RoundOutcome
from sim.population import Population
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
    data units; ``w`` is :func:`sim.quality.quality_weight`. Credit is leave-one-out on the curve,
    the surrogate of (V3). Update vectors for CGSV are ``rows·w·d + √rows·ξ`` in ``surrogate_dim``
    dimensions (d a fixed unit direction). Everything is computed for all members at once from the
    population's columns: a million principals cost array operations, not a loop.
    """

    #: rows of each owner's pool: a 10-class pool of 100 rows per owner, partitioned as configured
    ROWS_PER_OWNER = 100
    N_CLASSES = 10

    def __init__(self, config: CooperativeConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.curve = GeneralisationBound()
        self.scale = config.training.surrogate_scale
        rng = np.random.default_rng(derive_seed(seed, 31))
        d = rng.normal(size=config.training.surrogate_dim)
        self.direction = d / np.linalg.norm(d)
        self.rng = np.random.default_rng(derive_seed(seed, 32))
        self.population: Population | None = None
        self.last_total_eff = 0.0

    def shared_model(self) -> SurrogateSharedModel:
        """The shared model as mechanisms see it (``sim.mechanisms.SharedModel``)."""
        return SurrogateSharedModel(self)

    def setup_population(self, population: Population, n_owners: int, profiles: list) -> None:
        """Pool sizes of every identity (a sybil's pool split as evenly as ``np.array_split`` does)
        and every owner's standalone accuracy, shared by its identities."""
        self.population = population
        counts = np.full(self.N_CLASSES, self.ROWS_PER_OWNER * n_owners // self.N_CLASSES)
        sizes = partition_sizes(counts, n_owners, self.config.training.partition, seed=derive_seed(self.seed, 16))
        owner = population.owner
        k = np.bincount(owner, minlength=n_owners)  # identities per owner
        first = np.concatenate([[0], np.cumsum(k)[:-1]])
        j = np.arange(len(owner)) - first[owner]  # the identity's place among its owner's
        s, kk = sizes[owner], k[owner]
        population.pool_size[:] = s // kk + (j < s % kk)
        rows = np.bincount(owner, weights=population.pool_size * (1.0 - 2.0 * population.label_noise),
                           minlength=n_owners)
        population.standalone_accuracy[:] = self.curve(self.scale * np.maximum(0.0, rows))[owner]

    def train(self, round_index: int, members: np.ndarray, rows: np.ndarray, updates: bool = True) -> RoundOutcome:
        """One round of the members (population rows) bringing ``rows`` rows each: accuracy of the
        pooled effective data, leave-one-out credit on the curve, and (``updates``) synthetic
        update vectors."""
        pop = self.population
        n = len(members)
        if n and self.config.population.free_ride == "nothing":
            rows = rows * ~pop.free_rider[members]
        w = quality_weight(pop.behaviour[members], pop.label_noise[members], pop.q[members],
                           self.config.population.free_ride)
        eff = rows * w
        total = float(eff.sum())
        self.last_total_eff = total
        acc = float(self.curve(self.scale * max(0.0, total)))
        credit = acc - self.curve(self.scale * np.maximum(0.0, total - eff))
        deltas = None
        if n and updates:
            noise = self.rng.normal(size=(n, len(self.direction))) * np.sqrt(np.maximum(rows, 1))[:, None]
            deltas = eff[:, None] * self.direction[None, :] + noise
        return RoundOutcome(acc, float("nan"), np.asarray(credit, dtype=float), deltas, rows)

    def model_accuracy(self, share: np.ndarray, total_eff: float) -> np.ndarray:
        """Surrogate accuracy of a model holding the share ``q`` of the pooled update (ours)."""
        return self.curve(self.scale * np.maximum(0.0, share * total_eff))
