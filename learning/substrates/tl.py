"""The traversal-learning trainer (SPEC §1, V2): ``θ ← θ − η Σ_i F_i(g_i)``.

For each virtual batch the model visits the members, every member's exact gradient piece g_i is
kept explicit (:func:`learning.traversal.member_gradients`), passes the member's value filter F_i,
and the filtered pieces are summed into one optimiser step on one model (nothing is averaged). A
callback, the credit hook, receives every step's parameters, raw and filtered pieces.

Split mode (TL++ variant, V §5): ``cut_layer`` places the first layers of the (trunk) Sequential at
the member; the activations that cross to the orchestrator can be perturbed by Gaussian noise
(``activation_noise``) and random masking (``activation_mask``), a privacy knob. Training stays exact
(equal to centralised) only when both are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from pydantic import Field

from coopsim.errors import InputError, check
from learning.filters import FilterContext, ValueProfile, ValueReference
from learning.guard import guard_pieces
from learning.models import MultiTaskLoss, cut_sequence, default_loss
from learning.params import ParamLayout, flat_params
from learning.seeding import torch_generator
from learning.substrates.common import MemberData, TrainConfig, make_optimizer, virtual_plan
from learning.traversal import (
    ENGINES,
    GradientFactors,
    GroupedUnsupported,
    LossFn,
    MemberBatch,
    VirtualBatchPlan,
    factored_gradients,
    gather,
    grouped_supported,
    member_gradient_factors,
    member_gradients,
    member_gradients_and_loss,
)


class TLConfig(TrainConfig):
    """TL settings: SGD settings plus the gradient engine and split mode."""

    engine: str = Field("auto", description=f"member-gradient engine, one of {ENGINES}")
    cut_layer: int | None = Field(None, ge=1, description="split mode: layers [0, cut_layer) run at the member")
    activation_noise: float = Field(0.0, ge=0.0, description="std of Gaussian noise on crossing activations")
    activation_mask: float = Field(0.0, ge=0.0, le=1.0, description="fraction of crossing activations zeroed")
    guard_ratio: float | None = Field(None, gt=0.0, description="the coordinator's safeguard on reported pieces "
                                      "(learning.guard): non-finite pieces excluded, norms per row bounded by "
                                      "this × the median; None: off (pure TL)")


class _Lazy:
    """A tensor computed on first use and then kept."""

    __slots__ = ("_fn", "_value")

    def __init__(self, fn: Callable[[], torch.Tensor]) -> None:
        self._fn: Callable[[], torch.Tensor] | None = fn
        self._value: torch.Tensor | None = None

    def get(self) -> torch.Tensor:
        if self._value is None:
            assert self._fn is not None
            self._value, self._fn = self._fn(), None  # drop the factors once built
        return self._value


class StepRecord:
    """One TL step, as the credit hook sees it: θ^t, raw pieces g_i, filtered pieces g̃_i (N, D).

    ``raw`` and ``filtered`` are exact (N, D) tensors. When no value filter or tamper is active the
    trainer steps from the factored pieces (:class:`learning.traversal.GradientFactors`) and builds
    the dense matrix only when ``raw`` or ``filtered`` is first read (then it is kept, and
    ``raw is filtered``); :attr:`pieces_materialised` tells whether that has happened.

    ``factors`` and ``scales``: when the filtered pieces are the raw ones up to a factor per member
    (no value filter or tamper active; the guard only rescales or zeroes whole pieces), ``factors``
    holds the raw pieces factored (:class:`learning.traversal.GradientFactors`) and
    ``filtered[i] = scales[i] · raw[i]``; else both are None. Credit can then work on the low-rank
    factors instead of the dense pieces (:func:`learning.evaluation.counterfactual_losses`).
    """

    __slots__ = ("_filtered", "_raw", "clipped", "epoch", "excluded", "factors", "loss", "lr", "scales", "sizes",
                 "step", "theta")

    def __init__(self, epoch: int, step: int, theta: torch.Tensor, raw: torch.Tensor | _Lazy,
                 filtered: torch.Tensor | _Lazy, lr: float, sizes: np.ndarray, loss: float,
                 excluded: np.ndarray | None = None, clipped: np.ndarray | None = None, *,
                 factors: GradientFactors | None = None, scales: np.ndarray | None = None) -> None:
        self.epoch, self.step, self.theta = epoch, step, theta
        self._raw, self._filtered = raw, filtered
        self.lr, self.sizes, self.loss = lr, sizes, loss
        n = len(sizes)
        #: members whose reported piece was non-finite (replaced by 0) / rescaled by the guard
        self.excluded = np.zeros(n, dtype=bool) if excluded is None else excluded
        self.clipped = np.zeros(n, dtype=bool) if clipped is None else clipped
        check((factors is None) == (scales is None), "scales", scales, "given together with factors")
        self.factors, self.scales = factors, scales

    @property
    def raw(self) -> torch.Tensor:
        return self._raw.get() if isinstance(self._raw, _Lazy) else self._raw

    @property
    def filtered(self) -> torch.Tensor:
        return self._filtered.get() if isinstance(self._filtered, _Lazy) else self._filtered

    @property
    def pieces_materialised(self) -> bool:
        return all(not isinstance(t, _Lazy) or t._value is not None for t in (self._raw, self._filtered))

    @property
    def update(self) -> torch.Tensor:
        """The applied direction ``Σ_i g̃_i`` (before the optimiser)."""
        return self.filtered.sum(0)

    def __repr__(self) -> str:
        return (f"StepRecord(epoch={self.epoch}, step={self.step}, n_members={len(self.sizes)}, "
                f"lr={self.lr}, loss={self.loss:.6g})")


Callback = Callable[[StepRecord], None]
Tamper = Callable[[torch.Tensor], torch.Tensor]


class _CutNoise:
    """Forward pre-hook on the first orchestrator-side layer: perturbs the activations that cross the
    cut. One noise/mask draw per step, reused by every forward pass of that step (so per-task pieces
    see the same crossing activations). Applied to the next layer's input, not as the cut layer's
    output, so the member-side layers' captured outputs and output errors stay those of the layer
    itself (the mask's zeros reach them through autograd)."""

    def __init__(self, std: float, mask: float, generator: torch.Generator) -> None:
        self.std, self.mask, self.generator = std, mask, generator
        self.active = False
        self._cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def new_step(self) -> None:
        self._cache.clear()

    def __call__(self, module, inputs):
        if not self.active:
            return None
        (h, *rest) = inputs
        key = tuple(h.shape)
        if key not in self._cache:
            # drawn on the CPU (the generator's device): the same draws whatever device trains
            noise = (torch.randn(key, generator=self.generator, dtype=h.dtype) * self.std).to(h.device)
            keep = (torch.rand(key, generator=self.generator) >= self.mask).to(device=h.device, dtype=h.dtype)
            self._cache[key] = (noise, keep)
        noise, keep = self._cache[key]
        return ((h + noise) * keep, *rest)


class TraversalTrainer:
    """Trains ``model`` on members' data by traversal learning with per-member value filters."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn | None = None,
        config: TLConfig | dict | None = None,
        *,
        seed: int,
        reference: ValueReference | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = default_loss(model) if loss_fn is None else loss_fn
        self.config = TLConfig.model_validate(config or {})
        self.seed = int(seed)
        self.reference = reference
        self.layout = ParamLayout.of(model)
        cfg = self.config
        self.optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum)
        # p.grad of every parameter is a view into one flat buffer, so Σ_i g̃_i is written once; for
        # plain SGD the parameters are views into one flat vector too, so (V2) is a single in-place add
        self._params = list(model.parameters())
        self._grad = torch.zeros(self.layout.size, dtype=self._params[0].dtype, device=self._params[0].device)
        self._attach_grads()
        self._flat: torch.Tensor | None = None
        if cfg.optimizer == "sgd":
            flat = torch.cat([p.detach().reshape(-1) for p in self._params])
            for p, view in zip(self._params, self.layout.unflatten(flat).values(), strict=True):
                p.data = view
            self._flat = flat
        self._noise: _CutNoise | None = None
        if cfg.cut_layer is not None:
            seq = cut_sequence(model)
            check(cfg.cut_layer < len(seq), "cut_layer", cfg.cut_layer,
                  f"an index in [1, {len(seq) - 1}] of the (trunk) Sequential of {len(seq)} layers")
            if cfg.activation_noise > 0 or cfg.activation_mask > 0:
                # one draw per row of the virtual batch needs the engines that forward the whole batch
                # at once; vmap forwards row by row (no random draws allowed) and loop member by member
                check(cfg.engine == "grouped" or (cfg.engine == "auto" and grouped_supported(model)),
                      "engine", cfg.engine, "'grouped' (or 'auto' on a model of Linear/Conv2d layers) when "
                      "activation_noise or activation_mask is set")
                self._noise = _CutNoise(cfg.activation_noise, cfg.activation_mask, torch_generator(seed, 0xC07))
                seq[cfg.cut_layer].register_forward_pre_hook(self._noise)

    def _attach_grads(self) -> None:
        for p, view in zip(self._params, self.layout.unflatten(self._grad).values(), strict=True):
            p.grad = view

    # ------------------------------------------------------------------ one virtual batch
    def step(
        self,
        member_batches: Sequence[MemberBatch],
        profiles: Sequence[ValueProfile | None] | None = None,
        *,
        epoch: int = 0,
        step: int = 0,
        callback: Callback | None = None,
        tamper: Tamper | None = None,
    ) -> StepRecord:
        """One TL step on one virtual batch (V2). Returns the step's record.

        ``tamper`` (optional) maps the filtered pieces (N, D) to the pieces the delegates report, for
        adversarial delegates (random or scaled gradients); ``raw`` stays the exact pieces and
        ``filtered`` is what was reported and applied.
        """
        n = len(member_batches)
        profiles = list(profiles) if profiles is not None else [None] * n
        check(len(profiles) == n, "profiles", len(profiles), f"one profile (or None) per member ({n})")
        active = [p for p in profiles if p is not None and not p.is_identity]
        if callback is not None or active:
            theta = self._flat.clone() if self._flat is not None else flat_params(self.model)
        else:
            theta = torch.empty(0)
        if self._noise is not None:
            self._noise.new_step()
            self._noise.active = True
        first = self._params[0].grad
        if first is None or first.data_ptr() != self._grad.data_ptr():  # someone reset the grads
            self._attach_grads()
        sizes = np.array([len(b[0]) for b in member_batches])
        # no filter, no tamper, no guard: one ordinary backward writes Σ_i g_i into the flat grad buffer
        # (as centralised SGD does) and the pieces stay factored until the record's raw/filtered is read;
        # with the guard on, the dense pieces are built from the factors, which the record keeps for
        # credit (the guard only rescales whole pieces: filtered[i] = scale[i] · raw[i])
        guard = self.config.guard_ratio
        factorable = (not active and tamper is None and self.config.engine in ("auto", "grouped")
                      and grouped_supported(self.model))
        factored = factorable and guard is None
        factors = None
        try:
            task_pieces = None
            if factored:
                self._grad.zero_()
                factors, loss = factored_gradients(self.model, self.loss_fn, member_batches)
            elif factorable:
                try:
                    factors, loss = member_gradient_factors(self.model, self.loss_fn, member_batches)
                    raw = factors.pieces()
                except GroupedUnsupported:  # seen in the forward pass: the model is now marked for vmap
                    if self.config.engine == "grouped":
                        raise
                    raw, loss = member_gradients_and_loss(self.model, self.loss_fn, member_batches, engine="auto")
            elif any(p.needs_task_pieces for p in active):
                if not isinstance(self.loss_fn, MultiTaskLoss):
                    raise InputError("reject_heads", "(a value profile)",
                                     "task rules need a multi-task model and MultiTaskLoss")
                task_pieces = {t: member_gradients(self.model, self.loss_fn.only(t), member_batches,
                                                   engine=self.config.engine) for t in self.loss_fn.tasks}
                raw = sum(task_pieces.values())
                with torch.no_grad():
                    X = torch.cat([b[0] for b in member_batches])
                    y = torch.cat([b[1] for b in member_batches])
                    loss = self.loss_fn(self.model(X), y)
            else:
                raw, loss = member_gradients_and_loss(self.model, self.loss_fn, member_batches,
                                                      engine=self.config.engine)
        finally:
            if self._noise is not None:
                self._noise.active = False
        if factored:
            raw = filtered = _Lazy(factors.pieces)
        else:
            filtered = self._filter(raw, profiles, task_pieces) if active else raw
            if tamper is not None:
                filtered = tamper(filtered)
            if guard is not None:  # what the coordinator applies: non-finite pieces out, norms bounded
                guarded = guard_pieces(filtered, sizes, max_ratio=guard)
                filtered, excluded, clipped = guarded.pieces, guarded.excluded, guarded.clipped
            torch.sum(filtered, 0, out=self._grad)
        if self._flat is not None and self._params[0].data_ptr() == self._flat.data_ptr():
            self._flat.add_(self._grad, alpha=-self.config.lr)  # θ ← θ − η Σ_i g̃_i (V2)
        else:
            self.optimizer.step()
        if factors is None:
            scales = None
        elif factored:
            scales = np.ones(n)
        else:
            scales = guarded.scale
        record = StepRecord(epoch, step, theta, raw, filtered, self.config.lr, sizes, float(loss),
                            *((excluded, clipped) if guard is not None and not factored else ()),
                            factors=factors, scales=scales)
        if callback is not None:
            callback(record)
        return record

    def _filter(self, raw, profiles, task_pieces) -> torch.Tensor:
        groups = tuple(dict.fromkeys(k for p in profiles if p is not None for k in p.needs_groups))
        group_grads: dict[str, torch.Tensor] = {}
        if groups:
            check(self.reference is not None, "reference", None,
                  f"a ValueReference holding rows for the value groups {list(groups)}")
            assert self.reference is not None
            group_grads = self.reference.gradients(self.model, self.loss_fn, groups)
        rows = []
        for i, p in enumerate(profiles):
            if p is None or p.is_identity:
                rows.append(raw[i])
                continue
            pieces = None if task_pieces is None else {t: v[i] for t, v in task_pieces.items()}
            ctx = FilterContext(self.layout, self.config.lr, group_grads, pieces)
            rows.append(p(raw[i], ctx))
        return torch.stack(rows)

    # ------------------------------------------------------------------ epochs
    def plan(self, members: Sequence[MemberData], round_key: int = 0) -> VirtualBatchPlan:
        """The virtual-batch plan for these members (a pure function of sizes, seed and round_key)."""
        return virtual_plan(members, self.config, self.seed, round_key)

    def fit_epoch(
        self,
        members: Sequence[MemberData],
        epoch: int = 0,
        profiles: Sequence[ValueProfile | None] | None = None,
        *,
        callback: Callback | None = None,
        plan: VirtualBatchPlan | None = None,
        max_steps: int | None = None,
        tamper: Tamper | None = None,
    ) -> float:
        """One pass over the virtual batches of ``epoch`` (at most ``max_steps``); returns the mean
        batch loss."""
        plan = self.plan(members) if plan is None else plan
        losses = []
        for s, batch in enumerate(plan.batches(epoch)):
            if max_steps is not None and s >= max_steps:
                break
            rec = self.step(gather(members, batch), profiles, epoch=epoch, step=s, callback=callback, tamper=tamper)
            losses.append(rec.loss)
        return float(np.mean(losses)) if losses else float("nan")

    def fit(self, members: Sequence[MemberData], epochs: int,
            profiles: Sequence[ValueProfile | None] | None = None, *, callback: Callback | None = None,
            on_epoch: Callable[[int], None] | None = None, tamper: Tamper | None = None) -> list[float]:
        """``epochs`` passes; returns the mean batch loss of each (``tamper``: see :meth:`step`)."""
        plan = self.plan(members)
        out = []
        for e in range(epochs):
            out.append(self.fit_epoch(members, e, profiles, callback=callback, plan=plan, tamper=tamper))
            if on_epoch is not None:
                on_epoch(e)
        return out
