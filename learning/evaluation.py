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
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from coopsim.errors import check, check_choice
from learning.models import MultiTaskLoss, MultiTaskNet
from learning.params import ParamLayout
from learning.traversal import LossFn

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
    params = params.to(next(model.parameters()).dtype)
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

    def loss(self, loss_fn: LossFn, P: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, rows = P.shape[0], X.shape[0]
        # Xᵀ with zero columns up to a multiple of _ROW_ALIGN: every row of every activation then fills
        # whole vector registers (≈10% faster here); the padded columns are dropped before any mean
        Xt = X.new_zeros(X[0].numel(), -(-rows // _ROW_ALIGN) * _ROW_ALIGN)
        Xt[:, :rows] = X.reshape(rows, -1).T
        z = self._forward(self.trunk, P, Xt, n)
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
    params = params.to(next(model.parameters()).dtype)
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
