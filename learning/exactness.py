"""Is traversal learning exact for this model? A check run once at the start of a TL run.

TL keeps every member's piece of the gradient explicit (:mod:`learning.traversal`); the pieces must sum
to the centralised gradient of the batch's mean loss, and each must depend on that member's rows
alone. Both hold for a row-separable, deterministic model — every built-in model — and fail for layers
that mix the rows of a batch (BatchNorm in training mode) or draw random numbers (Dropout in training
mode). A user's model (``build_model("my_pkg.nets:make_net", …)``) can hold any layer, so
:func:`check_traversable` tests it on one real batch before training starts:

1. a forward probe with hooks on every module: two identical passes must agree (no random layer), and
   perturbing row 0 of the input must leave every other row of every layer's output unchanged (no
   layer mixes rows). The first module that breaks this, with inputs that were still fine, is named;
2. the identity itself: the batch split among 3 members, each member's piece computed by the TL
   trainer's own code (:func:`learning.traversal.member_gradients_and_loss` with the trainer's engine
   and, when the trainer would use it, its one-backward fast path
   :func:`learning.traversal.factored_gradients`), summed, against plain autograd of the batch's
   mean loss (:func:`learning.traversal.batch_gradient`).

A failure is an :class:`~coopsim.errors.InputError` on ``field`` naming the layer responsible (or, when
the probe found none, the batch-statistics / random layers by type, else the error or the deviation).
The check leaves the model as it was: buffers (running statistics), ``.grad`` and the global torch RNG
are restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from coopsim.errors import InputError
from learning.models import MODEL_FIELD, default_loss
from learning.traversal import (
    ENGINES,
    LossFn,
    batch_gradient,
    factored_gradients,
    grouped_supported,
    member_gradients_and_loss,
)

#: the identity holds when |Σ_i g_i − g| ≤ ATOL · max(1, ‖g‖_∞) + RTOL · |g| for every coordinate
ATOL = 1e-5
RTOL = 1e-4
#: rows of the batch the check uses (the first ones given)
ROWS = 32
_WHAT = "a model whose per-member gradients sum to the batch gradient (TL is exact only then)"
_SAME = 1e-6  # probe: two activations agree when max |a − b| ≤ _SAME · (1 + max |a|)


@dataclass(frozen=True)
class ExactnessReport:
    """What :func:`check_traversable` measured: the engine the TL trainer will use, the largest
    deviation ``max |Σ_i g_i − g|`` over the paths checked, and ``‖g‖_∞``."""

    engine: str
    max_abs_error: float
    grad_scale: float


def check_traversable(
    model: nn.Module,
    loss_fn: LossFn | None,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    field: str = MODEL_FIELD,
    name: str | None = None,
    engine: str = "auto",
    rows: int = ROWS,
    n_members: int = 3,
) -> ExactnessReport:
    """Raise an ``InputError`` on ``field`` unless TL is exact for ``model`` and ``loss_fn``.

    ``X``, ``Y``: one batch of real rows as the trainer sees them (e.g. the validation tensors; the
    first ``rows`` are used, at least 2), ``Y`` shaped for ``loss_fn`` ((B,) labels, (B, T) for
    :class:`learning.models.MultiTaskLoss`). ``loss_fn=None``: :func:`learning.models.default_loss`.
    ``engine``: the trainer's ``TLConfig.engine``. ``name``: the model's name in the scenario (the
    error's value; default the class name).

    Tolerance: the pieces' sum ``s`` and the batch gradient ``g`` (flat over ``model.parameters()``)
    must satisfy ``|s − g| ≤ 1e-5 · max(1, ‖g‖_∞) + 1e-4 · |g|`` in every coordinate (float32
    rounding of a 32-row batch is ~1e-7 of the gradient's scale; any real failure is far above).
    Also refused, before the identity is tested: a layer whose output rows depend on other rows of
    the batch, or that is random between two identical forward passes (found with forward hooks).

    Returns an :class:`ExactnessReport`. The model's buffers, ``.grad`` and the global torch RNG
    state are left as they were. A model that the ``grouped`` engine cannot follow (a layer called
    twice, an in-place change of a layer's output) is marked so that ``engine='auto'`` uses ``vmap``.
    """
    value = type(model).__name__ if name is None else name
    loss_fn = default_loss(model) if loss_fn is None else loss_fn
    if engine not in ENGINES:
        raise InputError("engine", engine, f"one of {sorted(ENGINES)}")
    n = min(int(rows), int(X.shape[0]))
    if n < 2 or Y.shape[0] != X.shape[0]:
        raise InputError("X, Y", (tuple(X.shape), tuple(Y.shape)),
                         "a batch of at least 2 rows with as many labels as rows, to check the model on")
    X, Y = X[:n], Y[:n]
    params = list(model.parameters())
    if not params:
        raise InputError(field, value, "a model with trainable parameters; this one has none")
    frozen = [k for k, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        raise InputError(field, value, f"a model whose parameters are all trainable (TL trains every one of "
                                       f"model.parameters(); register fixed tensors as buffers); requires_grad "
                                       f"is False for {', '.join(frozen[:5])}")
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    grads = [p.grad for p in params]
    try:
        # the global RNGs the probe touches: the CPU's and, when the model runs on CUDA, that device's
        with torch.random.fork_rng(devices=[X.device.index or 0] if X.device.type == "cuda" else []):
            torch.manual_seed(0x7E57)
            culprit = _probe(model, X, field, value)
            if culprit is not None:
                raise InputError(field, value, _blame(*culprit))
            return _identity(model, loss_fn, X, Y, engine, n_members, field, value)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers and b.shape == buffers[k].shape:
                    b.copy_(buffers[k])
        for p, g in zip(params, grads, strict=True):
            p.grad = g


# ------------------------------------------------------------------------------ the identity
def _identity(model, loss_fn, X, Y, engine, n_members, field, value) -> ExactnessReport:
    B = X.shape[0]
    k = max(2, min(int(n_members), B))
    cuts = [B // 2, B // 2 + B // 3] if k >= 3 else [B // 2]  # unequal members: 16, 10, 6 of 32 rows
    index = np.split(np.arange(B), cuts)
    batches = [(X[torch.from_numpy(ix).to(X.device)], Y[torch.from_numpy(ix).to(Y.device)]) for ix in index]
    used = engine
    try:
        full = batch_gradient(model, loss_fn, X, Y)
        pieces, _ = member_gradients_and_loss(model, loss_fn, batches, engine=engine)
        sums = {f"engine '{engine}'": pieces.sum(0)}
        if engine == "auto":
            used = "grouped" if grouped_supported(model) else "vmap"
        if used == "grouped":  # the trainer's fast path when no filter is active: one ordinary backward
            for p in model.parameters():
                p.grad = None
            factors, _ = factored_gradients(model, loss_fn, batches)
            sums["the factored pieces"] = factors.pieces().sum(0)
            sums["the one-backward .grad"] = torch.cat([
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in model.parameters()])
    except InputError as exc:
        if exc.field in ("model", "engine"):  # the engines' own refusals: pass them on, on our field
            raise InputError(field, value, f"{_WHAT}: {exc.allowed}") from exc
        raise
    except Exception as exc:
        raise InputError(field, value, _fallback(model, f"computing the per-member pieces as the TL trainer does "
                                                        f"raised {type(exc).__name__}: {_first_line(exc)}")) from exc
    scale = float(full.abs().max()) if full.numel() else 0.0
    if not torch.isfinite(full).all():
        raise InputError(field, value, f"{_WHAT}: the batch gradient on the check's {B} rows is not finite "
                                       f"(NaN or inf); check the model's forward pass")
    bound = ATOL * max(1.0, scale) + RTOL * full.abs()
    worst = 0.0
    for what, s in sums.items():
        err = (s.to(full.dtype) - full).abs()
        if not bool((err <= bound).all()):
            i = int((err - bound).argmax())
            raise InputError(field, value, _fallback(
                model, f"the {len(batches)} members' pieces ({what}) sum to a gradient that differs from the "
                       f"batch gradient by {float(err[i]):.3g} at coordinate {i} (allowed "
                       f"{float(bound[i]):.3g}: {ATOL:g}·max(1, ‖g‖∞) + {RTOL:g}·|g|)"))
        worst = max(worst, float(err.max()) if err.numel() else 0.0)
    return ExactnessReport(used, worst, scale)


# ------------------------------------------------------------------------------ the probe
@dataclass
class _Call:
    name: str
    module: nn.Module
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]


def _probe(model: nn.Module, X: torch.Tensor, field: str, value: str) -> tuple[str, str, nn.Module] | None:
    """The first module (in the order calls finish) that is random or mixes rows, as
    ``(kind, qualified name, module)``; None when every module is deterministic and row-separable."""
    a = _trace(model, X, field, value)
    b = _trace(model, X, field, value)
    for ca, cb in _paired(a, b):
        if _all_same(ca.inputs, cb.inputs) and not _all_same(ca.outputs, cb.outputs):
            return "random", ca.name, ca.module
    Xp = X.clone()
    if X.is_floating_point():  # row 0 moved by about (1 + the data's spread) in every feature
        noise = torch.randn(X[0].shape, generator=torch.Generator().manual_seed(0x0E0), dtype=X.dtype).to(X.device)
        Xp[0] = X[0] + (1.0 + float(X.std())) * noise
    else:
        Xp[0] = X[1]
    c = _trace(model, Xp, field, value)
    for ca, cc in _paired(a, c):
        if _all_same(ca.inputs, cc.inputs, skip_first=True) and not _all_same(ca.outputs, cc.outputs,
                                                                                skip_first=True):
            return "mixes", ca.name, ca.module
    return None


def _trace(model: nn.Module, X: torch.Tensor, field: str, value: str) -> list[_Call]:
    """One forward pass (no grad) recording every module call's batch-shaped inputs and outputs."""
    B = X.shape[0]
    names = {id(m): k for k, m in model.named_modules()}
    pending: dict[int, list[list[torch.Tensor]]] = {}
    calls: list[_Call] = []

    def pre(mod, args):
        pending.setdefault(id(mod), []).append(_rows(args, B))

    def post(mod, args, out):
        stack = pending.get(id(mod))
        inputs = stack.pop() if stack else []
        calls.append(_Call(names.get(id(mod), "?"), mod, inputs, _rows(out, B)))

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad():
            model(X)
    except Exception as exc:
        raise InputError(field, value, f"a model whose forward pass runs on a batch of the data "
                                       f"{tuple(X.shape)}: it raised {type(exc).__name__}: "
                                       f"{_first_line(exc)}") from exc
    finally:
        for h in handles:
            h.remove()
    return calls


def _rows(obj: Any, B: int) -> list[torch.Tensor]:
    """Copies of the tensors in ``obj`` (nested tuples, lists, dicts) that carry the batch's B rows."""
    out: list[torch.Tensor] = []
    if isinstance(obj, torch.Tensor):
        if obj.ndim >= 1 and obj.shape[0] == B:
            out.append(obj.detach().clone())
    elif isinstance(obj, tuple | list):
        for o in obj:
            out += _rows(o, B)
    elif isinstance(obj, dict):
        for o in obj.values():
            out += _rows(o, B)
    return out


def _paired(a: Sequence[_Call], b: Sequence[_Call]):
    """The two passes' calls side by side, up to the first that differs in module or shapes."""
    for ca, cb in zip(a, b, strict=False):
        if (ca.module is not cb.module or [t.shape for t in ca.inputs] != [t.shape for t in cb.inputs]
                or [t.shape for t in ca.outputs] != [t.shape for t in cb.outputs]):
            return
        yield ca, cb


def _all_same(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, skip_first: bool = False) -> bool:
    for x, y in zip(xs, ys, strict=True):
        if skip_first:
            x, y = x[1:], y[1:]
        if x.numel() == 0:
            continue
        x, y = x.double(), y.double()
        both_nan = torch.isnan(x) & torch.isnan(y)
        diff = torch.where(both_nan, 0.0, (x - y).abs())
        if not bool(diff.max() <= _SAME * (1.0 + float(torch.nan_to_num(x).abs().max()))):
            return False
    return True


# ------------------------------------------------------------------------------ messages
_BATCH_STATS = (nn.modules.batchnorm._BatchNorm,)
_RANDOM = (nn.modules.dropout._DropoutNd, nn.RReLU)


def _layer(name: str, module: nn.Module) -> str:
    return f"layer '{name}' ({type(module).__name__})" if name else f"the model's own forward ({type(module).__name__})"


def _blame(kind: str, name: str, module: nn.Module) -> str:
    if kind == "random":
        return (f"{_WHAT}: {_layer(name, module)} gives different outputs on two identical forward passes "
                f"(random in training mode, like dropout), so a member's piece is not a function of its rows; "
                f"remove it")
    if isinstance(module, _BATCH_STATS) or "norm" in type(module).__name__.lower():
        advice = "use LayerNorm or GroupNorm, or no normalisation"
    else:
        advice = "make every row's output depend on that row alone"
    return (f"{_WHAT}: {_layer(name, module)} mixes rows of a batch (changing row 0 of the input changes "
            f"other rows of its output); {advice}")


def _fallback(model: nn.Module, problem: str) -> str:
    """``problem``, with the layers known to break TL (batch statistics, randomness in training mode)
    listed by type when the model has any."""
    suspects = [(k, m) for k, m in model.named_modules()
                if m.training and isinstance(m, _BATCH_STATS + _RANDOM)]
    if suspects:
        listed = ", ".join(f"'{k}' ({type(m).__name__})" for k, m in suspects[:5])
        return (f"{_WHAT}: {problem}; layers using batch statistics or random numbers in training mode: "
                f"{listed} — use LayerNorm or GroupNorm instead of batch norm, and no dropout")
    return f"{_WHAT}: {problem}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
