"""The real learning mode of the cooperative (SPEC §6): torch training through ``learning/``.

:class:`RealBackend`: members' contributed rows, their value filters, TL (or FedAvg) rounds,
one-step counterfactual credit (V3) per TL step with batched evaluation (or its first-order term,
``training.credit``), and each round's per-member updates for model-reward mechanisms. Its sibling
``sim.surrogate.SurrogateBackend`` replaces training with a learning curve; both return a
:class:`sim.outcome.RoundOutcome`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coopsim.errors import InputError
from economics.valuation import fedavg_first_order, fedavg_one_step_counterfactual, one_step_first_order
from learning.data import load_dataset, split, with_risk_task
from learning.device import resolve_device
from learning.evaluation import (
    ValidationGradient,
    accuracy,
    batched_accuracy,
    batched_loss,
    counterfactual_losses,
    loss_value,
    validation_gradient,
)
from learning.exactness import check_traversable
from learning.filters import ValueProfile, ValueReference
from learning.models import build_model, default_loss, is_model_factory
from learning.params import ParamLayout, flat_params
from learning.partition import partition
from learning.seeding import derive_seed, torch_generator
from learning.substrates import FedAvgTrainer, TraversalTrainer, train_standalone
from learning.substrates.common import dataset_tensors
from learning.traversal import VirtualBatchPlan, gather
from sim.config import CooperativeConfig
from sim.outcome import RoundOutcome
from sim.population import Population

#: the first-order credit option holds a round's steps to take their validation gradients in one
#: call; it credits them early once their pieces exceed this many bytes (a long round of a big model)
FIRST_ORDER_HOLD_BYTES = 64 * 2**20


class RealBackend:
    """Real torch training of one shared model on the members' contributed data."""

    def __init__(self, config: CooperativeConfig, seed: int) -> None:
        self.config = config
        tc = config.training
        self.seed = seed
        self.device = resolve_device(tc.device)  # "cuda" without a CUDA device: InputError on training.device
        data = load_dataset(tc.dataset, seed=derive_seed(seed, 11))
        self.multitask = tc.model == "multitask"
        if self.multitask:
            data = with_risk_task(data)
        self.splits = split(data, seed=derive_seed(seed, 12))
        self.n_classes = data.n_classes
        self.train = self.splits.train
        self.X_val, self.y_val = (t.to(self.device) for t in dataset_tensors(self.splits.val))
        self.X_test, self.y_test = (t.to(self.device) for t in dataset_tensors(self.splits.test))
        # initialised on the CPU from a CPU generator (the same weights on any device), then moved
        self._make = lambda key: build_model(tc.model, data.n_features, data.n_classes,
                                             seed=derive_seed(seed, 13, key), hidden=tc.hidden,
                                             image_shape=data.image_shape,
                                             task_classes=data.task_classes or None).to(self.device)
        self.model = self._make(0)
        self.loss_fn = default_loss(self.model)
        if tc.substrate == "tl" and is_model_factory(tc.model):  # a user's model: TL must stay exact for it
            check_traversable(self.model, self.loss_fn, self.X_val, self.y_val, field="training.model", name=tc.model)
        self.layout = ParamLayout.of(self.model)
        self.theta0 = flat_params(self.model)
        self.reference = ValueReference.from_classes(self.X_val, self.y_val) if config.population.value_profiles \
            else None
        cfg = {"lr": tc.lr, "batch_size": tc.batch_size, "guard_ratio": tc.guard_ratio or None}  # 0: off
        if tc.substrate == "tl":
            self.trainer: TraversalTrainer | FedAvgTrainer = TraversalTrainer(
                self.model, self.loss_fn, cfg, seed=derive_seed(seed, 14), reference=self.reference)
        else:
            self.trainer = FedAvgTrainer(self.model, self.loss_fn, {**cfg, "local_epochs": tc.local_epochs},
                                         seed=derive_seed(seed, 14))
        self._noise_gen = torch_generator(seed, 15)
        self._pools: dict[int, dict] = {}
        self._cache: dict[tuple[int, float, float], tuple[torch.Tensor, torch.Tensor]] = {}
        self._profiles: dict[int, ValueProfile | None] = {}

    # ------------------------------------------------------------------ population data
    def owner_pools(self, n_owners: int) -> list[np.ndarray]:
        """Partition the training split among the owners (indices into it)."""
        return partition(self.train.y, n_owners, self.config.training.partition, seed=derive_seed(self.seed, 16),
                         n_classes=self.n_classes)

    def register(self, index: int, pool: np.ndarray, label_noise: float, behaviour: str, profile) -> None:
        """Prepare principal ``index``'s rows: a fixed order, and which labels are noisy."""
        rng = np.random.default_rng(derive_seed(self.seed, 17, index))
        part = self.train.subset(rng.permutation(pool))
        X, Y = dataset_tensors(part)
        y = Y if Y.ndim == 1 else Y[:, 0]
        n = len(y)
        noisy = rng.permutation(n)[: round(label_noise * n)]
        wrong = (y[noisy] + torch.from_numpy(rng.integers(1, self.n_classes, len(noisy)))) % self.n_classes
        dev = self.device  # drawn on the CPU, kept where training runs
        self._pools[index] = {"X": X.to(dev), "Y": Y.to(dev), "noisy": torch.from_numpy(noisy).to(dev),
                              "wrong": wrong.to(dev), "behaviour": behaviour}
        self._profiles[index] = (ValueProfile.from_spec(profile, self.layout, seed=derive_seed(self.seed, 18, index),
                                                        n_classes=self.n_classes)
                                 if profile is not None and not profile.is_empty else None)

    def pool_size(self, index: int) -> int:
        return len(self._pools[index]["X"])

    def setup_population(self, population: Population, n_owners: int, profiles: list) -> None:
        """Partition the training split among the owners, give each identity its rows (a sybil's
        pool split with ``np.array_split``), and train every owner's standalone model (its outside
        option, shared by its identities)."""
        pools = self.owner_pools(n_owners)
        owner = population.owner
        for owner_id in range(n_owners):
            identities = np.flatnonzero(owner == owner_id)
            for index, part in zip(identities.tolist(), np.array_split(pools[owner_id], len(identities)),
                                   strict=True):
                self.register(index, part, float(population.label_noise[index]), population.behaviour_name(index),
                              profiles[index])
                population.pool_size[index] = self.pool_size(index)
            population.standalone_accuracy[identities] = self.standalone_accuracy(identities.tolist())

    def contribution(self, index: int, m: float, q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows principal ``index``'s delegate brings for action (m, q), given its behaviour."""
        key = (index, m, q)
        if key in self._cache:
            return self._cache[key]
        pool = self._pools[index]
        X, Y = pool["X"], pool["Y"].clone()
        n = round(m * len(X))
        labels = Y if Y.ndim == 1 else Y[:, 0]
        k_noisy = len(pool["noisy"])
        still = pool["noisy"][round(q * k_noisy):]  # the first q-fraction of noisy labels are cleaned
        labels[still] = pool["wrong"][round(q * k_noisy):]
        behaviour = pool["behaviour"]
        gen = torch_generator(self.seed, 19, index)
        if behaviour == "label_flip":
            labels[:] = self.n_classes - 1 - labels
        if behaviour == "free_rider":
            mode = self.config.population.free_ride
            if mode == "nothing":
                n = 0
            elif mode == "copies":
                X = X[:1].expand(len(X), -1).clone()
                Y = Y[:1].expand(len(Y), *Y.shape[1:]).clone()
            else:
                X = torch.rand(X.shape, generator=gen).to(X.device)  # CPU draws: the same rows on any device
                labels[:] = torch.randint(0, self.n_classes, (len(labels),), generator=gen).to(labels.device)
        out = (X[:n], Y[:n])
        self._cache[key] = out
        return out

    def standalone_accuracy(self, indices: list[int]) -> float:
        """Test accuracy of a model trained on an owner's own raw rows only (its outside option);
        ``indices`` are the owner's identities (several for a sybil)."""
        parts = [self._raw(i) for i in indices]
        X, Y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        tc = self.config.training
        (model,) = train_standalone(lambda i: self._make(1), [(X, Y)], tc.standalone_epochs,
                                    {"lr": tc.lr, "batch_size": tc.batch_size},
                                    seed=derive_seed(self.seed, 20, indices[0]), loss_fn=self.loss_fn)
        return accuracy(model, self.X_test, self.y_test)

    def _raw(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pool = self._pools[index]
        Y = pool["Y"].clone()
        labels = Y if Y.ndim == 1 else Y[:, 0]
        labels[pool["noisy"]] = pool["wrong"]
        return pool["X"], Y

    # ------------------------------------------------------------------ one round
    def _loss_at(self, params: np.ndarray) -> np.ndarray:
        P = torch.from_numpy(params).to(device=self.device, dtype=self.theta0.dtype)
        return batched_loss(self.model, self.loss_fn, P, self.X_val, self.y_val).double().cpu().numpy()

    def train_round(self, round_index: int, members: list, tamper_kinds: list[str | None]) -> RoundOutcome:
        """Train one round on the members' contributions; credit each member (V3)."""
        data = [self.contribution(p.index, p.action.m, p.action.q) for p in members]
        rows = np.array([len(d[1]) for d in data], dtype=np.int64)
        n = len(members)
        credit = np.zeros(n)
        deltas = np.zeros((n, self.layout.size)) if n else None
        tamper = self._tamper(tamper_kinds, round_index) if any(tamper_kinds) else None
        excluded = np.zeros(n, dtype=bool)  # a member that reported a non-finite piece earns no credit this round
        if n and rows.sum() > 0:
            tc = self.config.training
            if isinstance(self.trainer, TraversalTrainer):
                profiles = [self._profiles.get(p.index) for p in members]
                plan = VirtualBatchPlan(rows, tc.batch_size, seed=derive_seed(self.seed, 21, round_index))

                deltas_t = torch.from_numpy(deltas)  # shares deltas' memory: accumulated in place
                held: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # first-order steps not yet credited

                def credit_hook(rec) -> None:
                    self._credit_step(rec, credit, round_index, held)
                    deltas_t.add_(rec.filtered.cpu(), alpha=-rec.lr)  # the round's displacements −η g̃_i
                    excluded[:] |= rec.excluded

                done, epoch = 0, 0
                while done < tc.steps_per_round:
                    for batch in plan.batches(epoch):
                        self.trainer.step(gather(data, batch), profiles, epoch=epoch, step=done,
                                          callback=credit_hook, tamper=tamper)
                        done += 1
                        if done >= tc.steps_per_round:
                            break
                    epoch += 1
                self._first_order_credit(held, credit, round_index)
            else:
                keep = rows > 0
                sub = [d for d, k in zip(data, keep, strict=True) if k]
                rec = self.trainer.round(sub, round_index, tamper=self._subset_tamper(tamper, keep))
                if not np.all(np.isfinite(rec.theta_after.double().cpu().numpy())):
                    self._diverged(round_index)
                try:
                    if tc.credit == "first_order":  # the linear term of the V3 analogue (docs/model.md)
                        grad = validation_gradient(self.model, self.loss_fn, rec.theta, self.X_val, self.y_val)
                        credit[keep] = fedavg_first_order(rec.updates.double().cpu().numpy(), rec.weights,
                                                          grad.double().cpu().numpy())
                    else:
                        credit[keep] = fedavg_one_step_counterfactual(rec.theta.double().cpu().numpy(),
                                                                      rec.updates.double().cpu().numpy(),
                                                                      rec.weights, self._loss_at)
                except InputError:
                    self._diverged(round_index)
                deltas[keep] = rec.updates.double().cpu().numpy()
                if rec.excluded is not None:
                    excluded[np.flatnonzero(keep)[rec.excluded]] = True
            credit[excluded] = 0.0
        acc = accuracy(self.model, self.X_test, self.y_test)
        return RoundOutcome(acc, loss_value(self.model, self.loss_fn, self.X_val, self.y_val), credit, deltas, rows)

    def _credit_step(self, rec, credit: np.ndarray, round_index: int,
                     held: list[tuple[torch.Tensor, torch.Tensor, float]]) -> None:
        """One TL step's credit. ``training.credit``: "exact" adds (V3) for every member with a
        non-zero piece to ``credit``, from one batched evaluation built from the trainer's tensors
        (``counterfactual_losses``: no numpy or float64 copy of the (N, D) pieces; the first layer
        from the pieces' factors when the step kept them); "first_order" holds the step (θ_t, its
        filtered pieces, η) in ``held`` for :meth:`_first_order_credit`, which credits the held steps
        together at the end of the round, or as soon as they hold more than
        ``FIRST_ORDER_HOLD_BYTES`` of pieces. The trainer's record tensors are fresh each step, so
        holding them copies nothing."""
        pieces = rec.filtered
        if self.config.training.credit == "first_order":  # θ_t is checked with the held steps' θ
            held.append((rec.theta, pieces, rec.lr))
            if sum(p.numel() * p.element_size() for _, p, _ in held) > FIRST_ORDER_HOLD_BYTES:
                self._first_order_credit(held, credit, round_index)
        else:
            if not _all_finite(rec.theta):
                self._diverged(round_index)
            base, rows, losses = counterfactual_losses(self.model, self.loss_fn, rec.theta, pieces, rec.lr,
                                                       self.X_val, self.y_val, factors=rec.factors,
                                                       scales=rec.scales)
            values = losses.double().cpu().numpy()
            # a non-finite piece (its loss is NaN) or counterfactual models that overflowed
            if not (np.isfinite(base) and np.all(np.isfinite(values))):
                self._diverged(round_index)
            credit[rows.cpu().numpy()] += base - values

    def _first_order_credit(self, held: list[tuple[torch.Tensor, torch.Tensor, float]], credit: np.ndarray,
                            round_index: int) -> None:
        """The first-order credit option: adds V3's linear term η·⟨g̃_i, ∇L_val(θ_t)⟩
        (``economics.valuation.one_step_first_order``) of every held step to ``credit``, step after
        step, and empties ``held``. The validation gradients at the steps' θ_t come from one batched
        call (``ValidationGradient.many``: a round's steps cost about two single gradients, not one
        each); each product g̃·∇L is a torch mat-vec where the pieces are (no numpy copy of them).
        Any non-finite value (a non-finite piece or gradient, or a float32 overflow) sends that step
        to the reference, which redoes overflowing rows in float64."""
        if not held:
            return
        grad_at = getattr(self, "_grad_at", None)  # built on first use: layers, Xᵀ and targets resolved once
        if grad_at is None:
            grad_at = self._grad_at = ValidationGradient(self.model, self.loss_fn, self.X_val, self.y_val)
        thetas = torch.stack([theta for theta, _, _ in held])
        if not _all_finite(thetas):
            self._diverged(round_index)
        grads = grad_at.many(thetas)
        steps = torch.stack([torch.mv(pieces, grad.to(pieces.dtype)) for (_, pieces, _), grad in zip(held, grads,
                                                                                                     strict=True)])
        lrs = torch.tensor([lr for _, _, lr in held], dtype=steps.dtype, device=steps.device)
        values = steps.mul_(lrs[:, None]).double().cpu().numpy()  # (T, N): η_t·⟨g̃_i, ∇L_val(θ_t)⟩
        finite = np.isfinite(values).all(axis=1)
        for t, ((_, pieces, lr), grad) in enumerate(zip(held, grads, strict=True)):
            if not finite[t]:
                try:  # checks that the pieces and the gradient are finite
                    values[t] = one_step_first_order(pieces.cpu().numpy(), lr, grad.cpu().numpy())
                except InputError:  # non-finite pieces or gradient, or overflowing products: name the settings
                    self._diverged(round_index)
            credit += values[t]
        held.clear()

    def _diverged(self, round_index: int) -> None:
        """The shared model or a reported piece became non-finite (with the guard off): the error names
        the settings that allow it, not internal variables."""
        guard = self.config.training.guard_ratio or None
        raise InputError("training.guard_ratio", self.config.training.guard_ratio,
                         f"a positive bound: training diverged in round {round_index + 1} (non-finite parameters "
                         f"or pieces) with population.gradient_scale = {self.config.population.gradient_scale} "
                         f"and the coordinator's guard {'off' if guard is None else f'at {guard}'}; turn the "
                         f"guard on (e.g. 5.0) or lower population.gradient_scale")

    def _tamper(self, kinds: list[str | None], round_index: int):
        scale = self.config.population.gradient_scale

        def tamper(pieces: torch.Tensor) -> torch.Tensor:
            out = pieces.clone()
            for i, kind in enumerate(kinds):
                if kind == "random_gradient":
                    noise = torch.randn(pieces.shape[1], generator=self._noise_gen, dtype=pieces.dtype)
                    noise = noise.to(pieces.device)  # drawn on the CPU: the same draws on any device
                    out[i] = noise * (pieces[i].norm() / noise.norm().clamp_min(1e-12))
                elif kind == "scaled_gradient":
                    out[i] = pieces[i] * scale
            return out

        return tamper

    @staticmethod
    def _subset_tamper(tamper, keep: np.ndarray):
        if tamper is None:
            return None
        where = torch.from_numpy(np.flatnonzero(keep))

        def sub(updates: torch.Tensor) -> torch.Tensor:
            idx = where.to(updates.device)
            full = torch.zeros(len(keep), updates.shape[1], dtype=updates.dtype, device=updates.device)
            full[idx] = updates
            return tamper(full)[idx]

        return sub

    # ------------------------------------------------------------------ model rewards
    def shared_model(self) -> RealSharedModel:
        """The shared model as mechanisms see it (``sim.mechanisms.SharedModel``)."""
        return RealSharedModel(self)

    @property
    def theta(self) -> np.ndarray:
        return flat_params(self.model).double().cpu().numpy()

    def split_tensors(self, flat: np.ndarray) -> list[np.ndarray]:
        """A flat vector as one array per parameter tensor (for per-tensor top-k, C5)."""
        return [flat[self.layout.slice_of(n)].reshape(s) for n, s in zip(self.layout.names, self.layout.shapes,
                                                                          strict=True)]

    def accuracies(self, params: np.ndarray) -> np.ndarray:
        """Test accuracy of each parameter vector (rows)."""
        if len(params) == 0:
            return np.zeros(0)
        P = torch.from_numpy(np.asarray(params)).to(device=self.device, dtype=self.theta0.dtype)
        return batched_accuracy(self.model, P, self.X_test, self.y_test).cpu().numpy()


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite, from one float64 sum (a NaN or ±inf entry makes it non-finite;
    finite float32 entries cannot overflow it): cheaper than an elementwise test of (N, D) pieces."""
    return math.isfinite(t.sum(dtype=torch.float64).item())


class RealSharedModel:
    """The shared model of real training, for model-reward mechanisms: flat float64 parameters."""

    has_parameters = True

    def __init__(self, backend: RealBackend) -> None:
        self._backend = backend

    def initial(self) -> np.ndarray:
        return self._backend.theta0.double().cpu().numpy().copy()

    def current(self) -> np.ndarray:
        return self._backend.theta

    def tensors(self, flat: np.ndarray) -> list[np.ndarray]:
        return self._backend.split_tensors(np.asarray(flat, dtype=np.float64))

    def evaluate(self, params: np.ndarray) -> np.ndarray:
        return self._backend.accuracies(np.atleast_2d(np.asarray(params, dtype=np.float64)))

    def share_accuracy(self, shares: np.ndarray) -> np.ndarray:
        raise NotImplementedError("real training has parameters: use current(), tensors() and evaluate()")
