"""Evaluation, including the hot path of the one-step counterfactual (V3): the validation loss of N
candidate parameter vectors in one call.

:func:`batched_loss` evaluates ``L_val(θ_n)`` for a stack of flat parameter vectors (N, D):

- ``stacked``: one stacked forward for models built from ``nn.Linear`` and element-wise layers
  (logreg, MLP, the multi-task net), feature-major (activations (N, features, rows)): every layer
  is one batched matmul (the first against one shared contiguous ``Xᵀ``), every intermediate is
  contiguous, biases ride beside the activations as per-candidate offsets (ReLU keeps them aside as
  ``relu(h + b) = max(h, −b) + b``), and the cross-entropy is written out for class-major logits;
  the model's layer slices are resolved once and cached per model;
- ``vmap``: ``torch.func.functional_call`` under ``torch.func.vmap``, for any model;
- ``loop``: the candidates one after another with ``functional_call`` (fastest for convolutions on
  CPU, where vmap turns them into grouped convolutions).

``auto`` picks ``stacked`` when the model allows it, else ``loop`` for models with convolutions and
``vmap`` otherwise. The choice is static, so results never depend on timing.

:func:`counterfactual_losses` forms V3's candidates ``θ − η g̃_i`` from the trainer's tensors and
evaluates them (with θ) in one :func:`batched_loss` call; :func:`validation_gradient` gives
``∇L_val(θ)`` as a flat vector, for the first-order credit option (the linear term of V3).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coopsim.errors import check, check_choice
from learning.models import MultiTaskLoss, MultiTaskNet
from learning.params import ParamLayout
from learning.traversal import GradientFactors, LossFn

METHODS = ("auto", "stacked", "vmap", "loop")
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Dropout)
_ROW_ALIGN = 16  # stacked forward: validation rows padded to a multiple of this (64-byte float32 rows)


def batched_loss(
    model: nn.Module,
    loss_fn: LossFn,
    params: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "auto",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Mean loss on (X, y) of every candidate parameter vector (rows of ``params``, (N, D)) → (N,)."""
    check_choice("method", method, METHODS)
    plan = _stacked_plan(model)
    size = plan.size if plan is not None else ParamLayout.of(model).size
    check(params.ndim == 2 and params.shape[1] == size, "params", tuple(params.shape),
          f"an (N, {size}) stack of flat parameter vectors")
    check(X.shape[0] >= 1 and X.shape[0] == y.shape[0], "X, y", (tuple(X.shape), tuple(y.shape)),
          "at least one row, and as many labels as rows")
    if method == "auto":
        if plan is not None:
            method = "stacked"
        else:
            method = "loop" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "vmap"
    first = next(model.parameters())
    params = params.to(device=first.device, dtype=first.dtype)
    with torch.no_grad():
        if method == "stacked":
            check(plan is not None, "method", method,
                  "'stacked' needs an nn.Sequential (or MultiTaskNet) of Linear and element-wise layers")
            assert plan is not None
            return plan.loss(loss_fn, params, X, y)
        from torch.func import functional_call, vmap

        layout = ParamLayout.of(model)
        if method == "loop":
            return torch.stack([loss_fn(functional_call(model, layout.unflatten(p), (X,)), y) for p in params])

        def one(flat: torch.Tensor) -> torch.Tensor:
            return loss_fn(functional_call(model, layout.unflatten(flat), (X,)), y)

        return vmap(one, chunk_size=chunk_size)(params)


def stacked_supported(model: nn.Module) -> bool:
    """Whether :func:`batched_loss` can use one stacked forward for this model."""
    return _stacked_plan(model) is not None


def counterfactual_losses(
    model: nn.Module,
    loss_fn: LossFn,
    theta: torch.Tensor,
    pieces: torch.Tensor,
    lr: float,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "auto",
    max_entries: int = 1 << 25,
    factors: GradientFactors | None = None,
    scales: np.ndarray | None = None,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The evaluations of the one-step counterfactual (V3) straight from the trainer's tensors:
    ``L(θ)`` and ``L(θ − lr·p_i)`` for every row ``p_i`` of ``pieces`` (N, D) that is not all zero.

    ``factors`` and ``scales`` (optional, from a :class:`learning.substrates.tl.StepRecord`): the
    pieces as ``pieces[i] = scales[i] · (member i's piece in factors)``. Then, for a model with the
    stacked forward whose first layer is a Linear, that layer's outputs for all candidates come from
    the pieces' low rank (:class:`_LowRankFirst`): member i's weight piece there is ``Δ_iᵀ A_i`` over
    its few rows of the batch, so ``(W − lr·s_i Δ_iᵀA_i) Xᵀ = W Xᵀ − lr·s_i Δ_iᵀ (A_i Xᵀ)`` costs
    a shared product plus one of the member's rows, not a dense layer per candidate. Same losses to
    float rounding; the caller vouches that the factors match ``pieces``.

    Returns ``(base, rows, losses)``: ``base = L(θ)``, ``rows`` the indices of the non-zero rows and
    ``losses[j] = L(θ − lr·p_rows[j])``, so member i's credit is ``base − losses`` on its row and 0 for
    a zero row (as :func:`economics.valuation.one_step_counterfactual`, which takes float64 numpy
    arrays and a loss oracle). The candidates are formed once, in the model's dtype and on the
    pieces' device (no numpy or float64 copy of the (N, D) pieces), and θ rides as row 0 of the
    same :func:`batched_loss` call; calls are chunked to at most ``max_entries`` parameter entries.
    A row with a non-finite entry gets a NaN loss (even where the forward would absorb it, as ReLU
    does −inf); non-finite losses are returned as they are (the caller decides what divergence means)."""
    dtype = next(model.parameters()).dtype
    check(pieces.ndim == 2 and theta.shape == pieces.shape[1:], "pieces", tuple(pieces.shape),
          f"an (N, {theta.shape[0]}) stack of pieces matching theta")
    # per-row max and min (cheaper than torch.any, and here than torch.aminmax), then on the CPU as N
    # numbers, where the masks cost numpy's microseconds rather than torch operations: a row is non-zero
    # where either is (a NaN propagates through both, so it counts), and holds only finite entries where
    # both are
    hi, lo = pieces.amax(1).cpu().numpy(), pieces.amin(1).cpu().numpy()
    chosen_rows = np.flatnonzero((hi != 0) | (lo != 0))
    rows = torch.from_numpy(chosen_rows).to(pieces.device)
    k = len(chosen_rows)
    if k == 0:
        return float(batched_loss(model, loss_fn, theta.to(dtype)[None], X, y, method=method)[0]), rows, \
            torch.zeros(0, dtype=dtype)
    plan = _stacked_plan(model) if factors is not None and method in ("auto", "stacked") else None
    device = next(model.parameters()).device  # where batched_loss would evaluate
    low_rank = None if plan is None else _LowRankFirst.of(plan, factors, scales, chosen_rows, lr,
                                                           theta.to(device=device, dtype=dtype))
    # the candidates' parameters; with the first layer from the factors, only the columns after it
    start = 0 if low_rank is None else low_rank.end
    chosen = pieces[:, start:] if k == len(pieces) else pieces[:, start:].index_select(0, rows)
    P = torch.empty(k + 1, theta.shape[0], dtype=dtype, device=pieces.device)
    P[0, start:].copy_(theta[start:])
    torch.sub(theta[start:].to(dtype), chosen.to(dtype), alpha=lr, out=P[1:, start:])
    chunk = max(1, max_entries // max(theta.shape[0], 1))
    if low_rank is not None:
        assert plan is not None
        with torch.no_grad():
            parts = [plan.loss(loss_fn, P[s:s + chunk].to(device), X, y, low_rank.rows(s, s + chunk))
                     for s in range(0, k + 1, chunk)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
    elif chunk > k:
        out = batched_loss(model, loss_fn, P, X, y, method=method)
    else:
        out = torch.cat([batched_loss(model, loss_fn, P[s:s + chunk], X, y, method=method)
                         for s in range(0, k + 1, chunk)])
    losses = out[1:]
    finite = np.isfinite(hi[chosen_rows]) & np.isfinite(lo[chosen_rows])
    if not finite.all():
        losses = losses.masked_fill(~torch.from_numpy(finite).to(losses.device), float("nan"))
    return float(out[0]), rows, losses


class _LowRankFirst:
    """The first Linear layer's outputs for V3's candidates ``θ − lr·s_i g_i`` from the factored pieces.

    With ``A`` (rows, in) the layer's inputs over the training batch and ``Δ`` (rows, out) its output
    errors, member i's piece of that layer is ``Δ_iᵀ A_i`` (weight) and ``Σ_r δ_r`` (bias) over its rows.
    For a validation input ``x``, candidate i's output is ``W x + b − lr·s_i Σ_r δ_r (a_r·x + 1)``, so
    all candidates share ``W Xᵀ + b`` and differ by one (out × rows_i) × (rows_i × B) product with
    ``C = A Xᵀ + 1``, computed once. Candidate 0 is θ itself (no correction)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, A: torch.Tensor, Dt: torch.Tensor,
                 index: torch.Tensor, end: int) -> None:
        self.weight, self.bias, self.A = weight, bias, A
        self.Dt, self.index = Dt, index  # per candidate: lr·s_i·Δ_iᵀ (out, width); its rows of A (width,)
        self.end = end  # the layer's parameters are entries [0, end) of the flat vector
        self._shared: tuple[torch.Tensor, torch.Tensor] | None = None  # (W Xᵀ + b, C), for every chunk

    @classmethod
    def of(cls, plan: _StackedPlan, factors: GradientFactors, scales: np.ndarray | None, rows: np.ndarray,
           lr: float, theta: torch.Tensor) -> _LowRankFirst | None:
        """For the candidates θ, then θ − lr·pieces[rows[j]]; None when the model or factors don't allow it
        (a first layer that is not a Linear on 2-d inputs, whose parameters do not lead the flat
        vector, or that no error reached)."""
        op = plan.trunk[0] if plan.trunk else None
        if not isinstance(op, _Linear) or scales is None or op.weight.start != 0:
            return None
        end = op.weight.stop
        if op.bias is not None:
            if op.bias.start != end:
                return None
            end = op.bias.stop
        j = next((j for j in range(len(factors.layers)) if factors.slices(j) == (op.weight, op.bias)), None)
        if j is None:
            return None
        _, A, D = factors.layers[j]
        if D is None or A.ndim != 2 or D.ndim != 2 or A.shape[0] != D.shape[0]:
            return None
        zero_pad, _, width = factors.padding()
        # candidate 0 (θ) points every slot at the zero row appended to Δ and to C = A Xᵀ + 1
        index = np.vstack([np.full((1, width), A.shape[0]), zero_pad.numpy()[rows]])
        coef = np.concatenate([[0.0], lr * np.asarray(scales, dtype=np.float64)[rows]])
        device, dtype = theta.device, theta.dtype
        index_t = torch.from_numpy(index).to(device)
        D = D.to(device=device, dtype=dtype)
        Dk = torch.cat([D, D.new_zeros(1, D.shape[1])]).index_select(0, index_t.view(-1))
        Dk = Dk.view(*index.shape, D.shape[1])  # (k + 1, width, out)
        Dk.mul_(torch.from_numpy(coef).to(device=device, dtype=dtype)[:, None, None])
        return cls(theta[op.weight].view(op.shape), None if op.bias is None else theta[op.bias],
                   A.to(device=device, dtype=dtype), Dk.transpose(1, 2), index_t, end)

    def rows(self, lo: int, hi: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The outputs (hi − lo, out, B) of candidates lo..hi−1, as a function of the padded ``Xᵀ``."""

        def first(Xt: torch.Tensor) -> torch.Tensor:
            if self._shared is None:  # the same validation rows in every chunk: computed once
                base = self.weight @ Xt if self.bias is None else torch.addmm(self.bias[:, None], self.weight, Xt)
                C = Xt.new_empty(self.A.shape[0] + 1, Xt.shape[1])
                torch.mm(self.A, Xt, out=C[:-1])
                if self.bias is not None:
                    C[:-1] += 1.0  # the bias piece Σ_r δ_r rides as a constant input 1
                C[-1] = 0.0
                self._shared = (base, C)
            base, C = self._shared
            index = self.index[lo:hi]
            return torch.baddbmm(base.expand(len(index), *base.shape), self.Dt[lo:hi], C[index], alpha=-1.0)

        return first


def validation_gradient(model: nn.Module, loss_fn: LossFn, theta: torch.Tensor, X: torch.Tensor,
                        y: torch.Tensor) -> torch.Tensor:
    """``∇L(θ)``, the gradient of the mean loss on (X, y) at the flat parameters ``theta`` (D,) —
    not necessarily the model's current ones — as a flat vector (D,) in the model's dtype. One call
    of a :class:`ValidationGradient` (build one to call it every step)."""
    return ValidationGradient(model, loss_fn, X, y)(theta)


class ValidationGradient:
    """``θ ↦ ∇L(θ)`` on fixed rows (X, y) for one model: the first-order credit option (the linear
    term of V3) needs one such gradient per step; :meth:`many` takes the gradients at T parameter
    vectors in one call (a round's steps, once the round has run).

    One forward and one backward: by hand for the models and losses :func:`batched_loss` stacks
    (Linear and ReLU/Tanh/Sigmoid layers; cross-entropy, or the multi-task loss for the multi-task
    net), feature-major like the stacked forward and batched over the T vectors (every layer one
    batched matmul), with the layer slices, ``Xᵀ`` and the one-hot targets resolved once; else
    through ``functional_call`` and autograd, one vector after another. The model's parameters
    and their ``.grad`` are left untouched; it is evaluated in eval mode (dropout off, batch
    statistics frozen), as :func:`batched_loss` evaluates candidates. Build a new one if the model's
    layers are replaced."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.loss_fn, self.X, self.y = model, loss_fn, X, y
        self.dtype = next(model.parameters()).dtype
        plan = _stacked_plan(model)
        self.size = plan.size if plan is not None else ParamLayout.of(model).size
        self._manual = plan if plan is not None and plan.differentiable(loss_fn) else None
        if self._manual is not None:
            rows = X.shape[0]
            self._Xt = X.reshape(rows, -1).T.contiguous().to(self.dtype)

            def target(ops: tuple[_Op, ...], labels: torch.Tensor, weight: float) -> torch.Tensor:
                """weight · onehotᵀ / B, (C, B), C the width of the last Linear of ``ops``"""
                classes = next(op.shape[0] for op in reversed(ops) if isinstance(op, _Linear))
                onehot = torch.zeros(rows, classes, dtype=self.dtype, device=X.device)
                onehot[torch.arange(rows, device=X.device), labels] = weight / rows
                return onehot.T.contiguous()

            if plan.heads is None:
                self._targets = [(None, target(plan.trunk, y, 1.0), 1.0 / rows)]
            else:
                heads = dict(plan.heads)
                self._targets = [(task, target(heads[task], y[:, k], w), w / rows)
                                 for k, (task, w) in enumerate(zip(loss_fn.tasks, loss_fn.weights, strict=True))]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """``∇L(θ)`` (D,) at one flat parameter vector (D,)."""
        check(theta.shape == (self.size,), "theta", tuple(theta.shape), f"a flat parameter vector ({self.size},)")
        return self.many(theta[None])[0]

    def many(self, thetas: torch.Tensor) -> torch.Tensor:
        """``∇L(θ_t)`` (T, D) at T flat parameter vectors (T, D), one row each."""
        check(thetas.ndim == 2 and thetas.shape[1] == self.size and thetas.shape[0] > 0, "thetas",
              tuple(thetas.shape), f"T ≥ 1 flat parameter vectors (T, {self.size})")
        flat = thetas.detach().to(self.dtype)
        if self._manual is not None:
            return self._manual.gradients(flat, self._Xt, self._targets)
        from torch.func import functional_call

        model = self.model
        layout = ParamLayout.of(model)
        training = model.training
        if training:
            model.eval()
        out = []
        try:
            with torch.enable_grad():
                for theta in flat:
                    p = theta.clone().requires_grad_(True)
                    loss = self.loss_fn(functional_call(model, layout.unflatten(p), (self.X,)), self.y)
                    out.append(torch.autograd.grad(loss, p)[0])
        finally:
            if training:
                model.train()
        return torch.stack(out)


class _Linear(NamedTuple):
    """An ``nn.Linear`` as slices of the flat parameter vector."""

    weight: slice
    shape: tuple[int, int]  # (out, in)
    bias: slice | None


_Op = _Linear | nn.Module  # a Linear layer, or an element-wise module applied as it is


@dataclass(frozen=True)
class _StackedPlan:
    """The stacked forward of one model, resolved once: its layers as slices of the flat vector."""

    size: int
    trunk: tuple[_Op, ...]
    heads: tuple[tuple[str, tuple[_Op, ...]], ...] | None  # MultiTaskNet heads, else None

    def loss(self, loss_fn: LossFn, P: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
             first: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Mean loss of every candidate (rows of ``P``). ``first`` (optional) maps ``Xᵀ`` (padded) to
        the first Linear layer's outputs for all candidates (N, F, B), computed some cheaper way
        (:class:`_LowRankFirst`); the rest of the forward then runs as usual."""
        n, rows = P.shape[0], X.shape[0]
        Xt = _padded_transpose(X)
        z = self._forward(self.trunk, P, Xt, n) if first is None else self._forward(self.trunk[1:], P, first(Xt), n)
        if self.heads is None:
            if loss_fn is F.cross_entropy:
                return _cross_entropy_per_candidate(z, y)
            out = z[:, :, :rows].transpose(1, 2)  # (N, B, C) for the loss
        else:
            logits = {k: self._forward(ops, P, z, n) for k, ops in self.heads}
            if isinstance(loss_fn, MultiTaskLoss):
                return sum(w * _cross_entropy_per_candidate(logits[t], y[:, k])
                           for k, (t, w) in enumerate(zip(loss_fn.tasks, loss_fn.weights, strict=True)))
            out = {k: v[:, :, :rows].transpose(1, 2) for k, v in logits.items()}
        from torch.func import vmap

        return vmap(loss_fn, in_dims=(0, None))(out, y)

    @staticmethod
    def _forward(ops: tuple[_Op, ...], P: torch.Tensor, h: torch.Tensor, n: int) -> torch.Tensor:
        """All N candidates at once, feature-major: ``h`` is the shared (I, B) input (``Xᵀ``) until the
        first Linear, then (N, F, B), so every layer's output is one contiguous batched-GEMM result.

        Biases ride beside the activations as a per-candidate offset ``off`` (N, F) — the layer's true
        output is ``h + off`` — so no (N, F, B) tensor is ever filled with broadcast biases: a Linear
        after an offset takes ``W·off + b`` as its own offset, and ReLU keeps the offset aside with
        ``relu(h + off) = max(h, −off) + off``. Other element-wise layers add the offset first."""
        off: torch.Tensor | None = None
        for i, op in enumerate(ops):
            if isinstance(op, _Linear):
                W = P[:, op.weight].view(n, *op.shape)
                b = None if op.bias is None else P[:, op.bias]
                if off is not None:
                    shifted = torch.bmm(W, off[:, :, None]).squeeze(2)
                    off = shifted if b is None else shifted.add_(b)
                else:
                    off = b
                # a shared input: every candidate's weights against the same Xᵀ (stride-0 batch)
                h = h.expand(n, *h.shape) if h.ndim == 2 else h
                if off is None or (i + 1 < len(ops) and isinstance(ops[i + 1], nn.ReLU)):
                    h = torch.bmm(W, h)  # the offset stays aside for the ReLU
                else:
                    h, off = torch.baddbmm(off[:, :, None], W, h), None
            elif isinstance(op, nn.ReLU) and off is not None:
                h = h.clamp_min_(off.neg()[:, :, None])
            else:
                if off is not None:
                    h, off = h.add_(off[:, :, None]), None
                h = (torch.relu_(h) if h.ndim == 3 else torch.relu(h)) if isinstance(op, nn.ReLU) else op(h)
        if off is not None:
            h = h.add_(off[:, :, None])
        return h if h.ndim == 3 else h.expand(n, *h.shape)


    def differentiable(self, loss_fn: LossFn) -> bool:
        """Whether :meth:`gradient` has the closed form: the loss is ``F.cross_entropy`` (the
        ``MultiTaskLoss`` of its heads for a multi-task net) and every element-wise layer has a
        derivative in ``_DERIVATIVES``."""
        if self.heads is None:
            if loss_fn is not F.cross_entropy:
                return False
        elif not isinstance(loss_fn, MultiTaskLoss) or any(t not in dict(self.heads) for t in loss_fn.tasks):
            return False
        ops = [*self.trunk, *(op for _, h in self.heads or () for op in h)]
        return all(isinstance(op, _Linear) or type(op) in _DERIVATIVES for op in ops)

    def gradients(self, thetas: torch.Tensor, Xt: torch.Tensor,
                  targets: list[tuple[str | None, torch.Tensor, float]]) -> torch.Tensor:
        """``∇L(θ_t)`` (T, D) at T flat vectors (T, D) by hand (no autograd), feature-major
        (activations (T, features, rows)): a forward that keeps each Linear's input and each
        activation's output, then the chain rule back, starting from ``w·(softmax − onehot)/B`` per
        cross-entropy term. ``Xt`` is ``Xᵀ`` (features, B); ``targets`` holds per loss term (head or
        None, its ``w·onehotᵀ/B`` (C, B), ``w/B``). Only for a plan whose :meth:`differentiable`
        holds."""
        grads = torch.zeros_like(thetas)
        z, tape = _forward_many(self.trunk, thetas, Xt)
        if self.heads is None:
            ((_, onehot, scale),) = targets
            _backward_many(self.trunk, thetas, tape, _cross_entropy_gradient(z, onehot, scale), grads)
            return grads
        heads = dict(self.heads)
        dz = None
        for task, onehot, scale in targets:
            logits, head_tape = _forward_many(heads[task], thetas, z)
            d = _backward_many(heads[task], thetas, head_tape, _cross_entropy_gradient(logits, onehot, scale), grads,
                               input_grad=True)
            dz = d if dz is None else dz.add_(d)
        if dz is not None:
            _backward_many(self.trunk, thetas, tape, dz, grads)
        return grads


#: element-wise layers the hand-written gradient knows: (forward, the same in place, dL/dinput from
#: dL/doutput and the output). The derivatives are aten's own backward kernels (the ones autograd
#: runs for these layers): one pass each, where ``d * (out > 0)`` or ``d * (1 − out²)`` took two or three.
_DERIVATIVES = {
    nn.ReLU: (torch.relu, torch.relu_, lambda d, out: torch.ops.aten.threshold_backward(d, out, 0)),
    nn.Tanh: (torch.tanh, torch.tanh_, torch.ops.aten.tanh_backward),
    nn.Sigmoid: (torch.sigmoid, torch.sigmoid_, torch.ops.aten.sigmoid_backward),
}


def _forward_many(ops: tuple[_Op, ...], thetas: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, list]:
    """T parameter vectors' forward at once, feature-major: ``h`` is the shared (I, B) input (``Xᵀ``)
    or (T, I, B), every Linear one batched matmul giving (T, F, B). Keeps what the backward needs:
    each Linear's input (as given) and each activation's output."""
    tape = []
    n = thetas.shape[0]
    fresh = False  # whether ``h`` is this forward's own Linear output (an activation may then run in place)
    for op in ops:
        if isinstance(op, _Linear):
            tape.append(h)
            W = thetas[:, op.weight].view(n, *op.shape)
            shared = h.expand(n, *h.shape) if h.ndim == 2 else h  # stride-0 batch: one Xᵀ for every vector
            h = torch.bmm(W, shared) if op.bias is None else torch.baddbmm(thetas[:, op.bias, None], W, shared)
            fresh = True
        else:
            h = _DERIVATIVES[type(op)][1 if fresh else 0](h)
            tape.append(h)
    return h, tape


def _backward_many(ops: tuple[_Op, ...], thetas: torch.Tensor, tape: list, d: torch.Tensor, grads: torch.Tensor,
                   *, input_grad: bool = False) -> torch.Tensor | None:
    """The chain rule back through ``ops`` from ``d`` = dL/d(output) (T, features, rows): writes each
    Linear's weight and bias gradients into their slices of ``grads`` (T, D); returns dL/d(input)
    when ``input_grad``."""
    n = thetas.shape[0]
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        if isinstance(op, _Linear):
            out = grads[:, op.weight].view(n, *op.shape)
            if tape[i].ndim == 2:  # the shared Xᵀ: every vector's (F, B) rows against it in one matmul
                out.copy_(torch.mm(d.view(-1, d.shape[2]), tape[i].T).view(out.shape))
            else:
                torch.bmm(d, tape[i].transpose(1, 2), out=out)
            if op.bias is not None:
                torch.sum(d, 2, out=grads[:, op.bias])
            if i == 0 and not input_grad:
                return None
            d = torch.bmm(thetas[:, op.weight].view(n, *op.shape).transpose(1, 2), d)
        else:
            d = _DERIVATIVES[type(op)][2](d, tape[i])
    return d


def _cross_entropy_gradient(logits: torch.Tensor, onehot: torch.Tensor, scale: float) -> torch.Tensor:
    """d/dlogits of ``w ·`` the mean cross-entropy, class-major logits (T, C, B):
    ``w·(softmax − onehot)/B`` with ``onehot`` = ``w·onehotᵀ/B`` (C, B, the same for every vector) and
    ``scale`` = ``w/B``."""
    return torch.softmax(logits, 1).mul_(scale).sub_(onehot)


_PLANS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, _StackedPlan | None]] = weakref.WeakKeyDictionary()


def _stacked_plan(model: nn.Module) -> _StackedPlan | None:
    """The model's stacked forward (cached per model and its module structure), or None when the model is
    not an ``nn.Sequential`` (or :class:`MultiTaskNet`) of Linear and element-wise layers."""
    key = (tuple((name, id(m)) for name, m in model.named_modules()),
           tuple((name, id(p), tuple(p.shape)) for name, p in model.named_parameters()))
    hit = _PLANS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    layout = ParamLayout.of(model)
    plan = None
    if isinstance(model, MultiTaskNet):
        trunk = _ops(model.trunk, "trunk.", layout)
        heads = tuple((k, _head(h, f"heads.{k}.", layout)) for k, h in model.heads.items())
        if trunk is not None and all(ops is not None for _, ops in heads):
            plan = _StackedPlan(layout.size, trunk, heads)  # type: ignore[arg-type]
    elif isinstance(model, nn.Sequential):
        trunk = _ops(model, "", layout)
        plan = None if trunk is None else _StackedPlan(layout.size, trunk, None)
    _PLANS[model] = (key, plan)
    return plan


def _linear(m: nn.Linear, path: str, layout: ParamLayout) -> _Linear | None:
    """The layer's slices, or None when its parameters are not its own entries of the flat vector
    (tied weights: ``named_parameters`` lists a shared parameter once, under its first owner)."""
    names = [path + "weight"] + ([] if m.bias is None else [path + "bias"])
    if any(n not in layout.names for n in names):
        return None
    return _Linear(layout.slice_of(names[0]), (m.out_features, m.in_features),
                   None if m.bias is None else layout.slice_of(names[1]))


def _head(head: nn.Module, path: str, layout: ParamLayout) -> tuple[_Op, ...] | None:
    """A multi-task head: one Linear layer, else no stacked plan."""
    op = _linear(head, path, layout) if isinstance(head, nn.Linear) else None
    return None if op is None else (op,)


def _ops(seq: nn.Sequential, prefix: str, layout: ParamLayout) -> tuple[_Op, ...] | None:
    """A Sequential's layers as stacked-forward ops, or None if it holds anything but Linear and
    element-wise layers (or no Linear at all)."""
    ops: list[_Op] = []
    for name, m in seq._modules.items():  # every slot, in order (named_children skips a reused module)
        if isinstance(m, nn.Linear):
            op = _linear(m, f"{prefix}{name}.", layout)
            if op is None:
                return None
            ops.append(op)
        elif isinstance(m, _ELEMENTWISE):
            if not isinstance(m, nn.Dropout | nn.Identity):  # evaluation: dropout is the identity
                ops.append(m)
        else:
            return None
    return tuple(ops) if any(isinstance(op, _Linear) for op in ops) else None


#: id(X) → (a weak reference to X, X's version then, its padded Xᵀ); an entry leaves with its tensor
_PADDED: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}


def _padded_transpose(X: torch.Tensor) -> torch.Tensor:
    """``Xᵀ`` (features, columns) with zero columns up to a multiple of ``_ROW_ALIGN``: every row of
    every activation then fills whole vector registers (≈10% faster here); the padded columns are
    dropped before any mean. Kept per tensor while it is unchanged (``X._version``): the validation
    rows are the same at every step. Do not modify the result."""
    kept = _PADDED.get(id(X))
    if kept is not None and kept[0]() is X and kept[1] == X._version:
        return kept[2]
    rows = X.shape[0]
    Xt = X.new_zeros(X[0].numel(), -(-rows // _ROW_ALIGN) * _ROW_ALIGN)
    Xt[:, :rows] = X.reshape(rows, -1).T
    if not X.requires_grad:
        if kept is None or kept[0]() is not X:  # a new tensor: its entry goes when it does
            weakref.finalize(X, _PADDED.pop, id(X), None)
        _PADDED[id(X)] = (weakref.ref(X), X._version, Xt)
    return Xt


def _cross_entropy_per_candidate(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each candidate's class-major logits (N, C, ≥B) over the B = len(y) rows
    (columns beyond B are padding and ignored), as ``mean(logsumexp) − mean(logit of the label)``:
    the same value as ``F.cross_entropy``, whose log-softmax kernel is slow on CPU for few classes.
    The log-sum-exp is written out (max, exp, sum, log)."""
    rows = y.shape[0]
    top = logits.amax(1)
    lse = (logits - top[:, None]).exp_().sum(1).log_().add_(top)[:, :rows].mean(1)
    picked = logits[:, :, :rows].gather(1, y.view(1, 1, -1).expand(logits.shape[0], 1, -1))
    return lse.sub_(picked.mean((1, 2)))


def batched_accuracy(model: nn.Module, params: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                     task: str = "digit") -> torch.Tensor:
    """Accuracy on (X, y) of every candidate parameter vector (rows of ``params``) → (N,)."""
    from torch.func import functional_call

    layout = ParamLayout.of(model)
    check(params.ndim == 2 and params.shape[1] == layout.size, "params", tuple(params.shape),
          f"an (N, {layout.size}) stack of flat parameter vectors")
    if isinstance(model, MultiTaskNet):
        check(task in model.heads, "task", task, f"one of the heads {list(model.heads)}")
    first = next(model.parameters())
    params = params.to(device=first.device, dtype=first.dtype)
    out = []
    with torch.no_grad():
        for p in params:
            logits = functional_call(model, layout.unflatten(p), (X,))
            labels = y
            if isinstance(model, MultiTaskNet):
                logits, labels = logits[task], y[:, list(model.heads).index(task)]
            out.append((logits.argmax(dim=1) == labels).double().mean())
    return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)


def loss_value(model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor) -> float:
    """Mean loss of the model's current parameters on (X, y)."""
    with torch.no_grad():
        return float(loss_fn(model(X), y))


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "digit") -> float:
    """Fraction of correct predictions; for a multi-task model, of head ``task`` (column order as the
    model's heads)."""
    with torch.no_grad():
        out = model(X)
        if isinstance(model, MultiTaskNet):
            check(task in model.heads, "task", task, f"one of the heads {list(model.heads)}")
            column = list(model.heads).index(task)
            logits, labels = out[task], y[:, column]
        else:
            logits, labels = out, y
        return float((logits.argmax(dim=1) == labels).double().mean())
