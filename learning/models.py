"""Models: logistic regression, MLP, a small CNN and a multi-task net (shared trunk + named heads).

Every model is row-separable (no batch statistics), so a batch's mean loss decomposes exactly into
per-member pieces (SPEC §1). Single-task models are ``nn.Sequential``; the multi-task model has a
``trunk`` (``nn.Sequential``) and ``heads`` (``nn.ModuleDict``) and returns a dict of logits. Split
mode cuts a Sequential (the trunk for the multi-task model) after layer ``cut_layer``.
Initialisation is deterministic: every weight is drawn from a ``torch.Generator`` derived from the
run's seed, never from the global RNG.

A user's own model: ``build_model("my_pkg.nets:make_net", …)`` imports the factory
``make_net(n_features, n_classes) -> torch.nn.Module`` (:func:`coopsim.plugins.import_path`) and
calls it under ``torch.random.fork_rng`` after ``torch.manual_seed`` with a seed derived from the
run's, so the same seed gives the same initial parameters and the global RNG is left as it was. The
factory's model is checked at once (a module with trainable parameters, giving ``(rows, n_classes)``
logits); whether traversal learning is exact for it is :func:`learning.exactness.check_traversable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coopsim.errors import InputError, check
from learning.model_names import _FACTORY, MODEL_FIELD, MODELS, is_model_factory
from learning.seeding import SeedLike, derive_seed, torch_generator


class MultiTaskNet(nn.Module):
    """Shared trunk feeding named heads; ``forward`` returns ``{head: logits}``."""

    def __init__(self, trunk: nn.Sequential, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict(heads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.trunk(x)
        return {name: head(z) for name, head in self.heads.items()}


class MultiTaskLoss:
    """Sum over tasks of each head's mean cross-entropy: ``Σ_k w_k CE(out[k], y[:, k])``.

    ``y`` is (B, T) with one column per task in ``tasks`` order. A sum of row-mean losses is still a
    mean over rows, so the TL decomposition into member pieces holds. ``only(task)`` gives the loss of
    one task (its gradient path), used by rule-based filters.
    """

    def __init__(self, tasks: Sequence[str], weights: Sequence[float] | None = None) -> None:
        self.tasks = tuple(tasks)
        self.weights = tuple(1.0 for _ in self.tasks) if weights is None else tuple(weights)
        check(len(self.weights) == len(self.tasks), "weights", weights, f"one weight per task {self.tasks}")

    def __call__(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return sum(
            w * F.cross_entropy(out[t], y[:, k]) for k, (t, w) in enumerate(zip(self.tasks, self.weights, strict=True))
        )

    def only(self, task: str) -> TaskLoss:
        check(task in self.tasks, "task", task, f"one of {list(self.tasks)}")
        k = self.tasks.index(task)
        return TaskLoss(task, k, self.weights[k])


class TaskLoss:
    """The loss of one head of a multi-task model (one term of :class:`MultiTaskLoss`)."""

    def __init__(self, task: str, column: int, weight: float) -> None:
        self.task, self.column, self.weight = task, column, weight

    def __call__(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return self.weight * F.cross_entropy(out[self.task], y[:, self.column])


def build_model(
    name: str,
    n_features: int,
    n_classes: int,
    *,
    seed: SeedLike,
    hidden: Sequence[int] = (128,),
    image_shape: tuple[int, int, int] | None = None,
    task_classes: dict[str, int] | None = None,
    dtype: torch.dtype = torch.float32,
    field: str = MODEL_FIELD,
) -> nn.Module:
    """Build a model by name with deterministic initialisation from ``seed``.

    ``name`` is a built-in (:data:`MODELS`) or a ``"module:function"`` path to a user's factory
    ``(n_features, n_classes) -> nn.Module`` (see :func:`build_user_model`; ``hidden``,
    ``image_shape`` and ``task_classes`` are then ignored). An unknown name or a bad factory is an
    ``InputError`` on ``field``. ``task_classes`` (multitask only) maps extra heads to their class
    counts; the ``digit`` head with ``n_classes`` always comes first. ``image_shape`` is required for
    ``cnn``.
    """
    check(n_features >= 1, "n_features", n_features, "an integer ≥ 1")
    check(n_classes >= 2, "n_classes", n_classes, "an integer ≥ 2")
    if is_model_factory(name):
        return build_user_model(name, n_features, n_classes, seed=seed, dtype=dtype, field=field)
    check(name in MODELS, field, name, f"a built-in model, one of {sorted(MODELS)}, or {_FACTORY}")
    check(all(int(h) >= 1 for h in hidden), "hidden", list(hidden), "positive layer widths")
    if name == "logreg":
        model: nn.Module = nn.Sequential(nn.Linear(n_features, n_classes))
    elif name == "mlp":
        model = nn.Sequential(*_mlp_layers(n_features, hidden), nn.Linear(_last(n_features, hidden), n_classes))
    elif name == "cnn":
        check(image_shape is not None and math.prod(image_shape) == n_features, "image_shape", image_shape,
              f"(channels, height, width) with product n_features={n_features}")
        assert image_shape is not None
        c, h, w = image_shape
        flat = 32 * (h // 2) * (w // 2)
        model = nn.Sequential(
            nn.Unflatten(1, (c, h, w)),
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(flat, n_classes),
        )
    else:
        heads = {"digit": n_classes, **(task_classes or {"risk": 2})}
        trunk = nn.Sequential(*_mlp_layers(n_features, hidden))
        width = _last(n_features, hidden)
        model = MultiTaskNet(trunk, {t: nn.Linear(width, k) for t, k in heads.items()})
    init_parameters(model, seed)
    return model.to(dtype)


def load_model_factory(name: str, *, field: str = MODEL_FIELD):
    """The factory at ``"module:function"`` (imported, not called); an ``InputError`` on ``field`` if it
    cannot be imported or is not callable."""
    from coopsim.plugins import import_path

    factory = import_path(name, field=field)
    if not callable(factory):
        raise InputError(field, name, f"{_FACTORY}; {name!r} is a {type(factory).__name__}, not callable")
    return factory


def build_user_model(
    name: str,
    n_features: int,
    n_classes: int,
    *,
    seed: SeedLike,
    dtype: torch.dtype = torch.float32,
    field: str = MODEL_FIELD,
) -> nn.Module:
    """A user's model: ``factory(n_features, n_classes)`` for the factory at ``name``, built reproducibly.

    The factory runs under ``torch.random.fork_rng`` after ``torch.manual_seed(derive_seed(seed, …))``:
    the same seed gives the same initial parameters, and the global torch RNG state is untouched. The
    model is then cast to ``dtype`` and checked: an ``nn.Module`` whose parameters are all trainable
    (at least one), and whose forward pass on a ``(2, n_features)`` batch of zeros gives a
    ``(2, n_classes)`` tensor of logits (run in the model's own mode, under ``no_grad``; buffers such as
    running statistics are restored afterwards). Every failure is an ``InputError`` on ``field``.
    """
    factory = load_model_factory(name, field=field)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, 0xFAC7))
        try:
            model = factory(n_features, n_classes)
        except Exception as exc:
            raise InputError(field, name, f"{_FACTORY}; calling it as {_call(name, n_features, n_classes)} raised "
                                          f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise InputError(field, name, f"{_FACTORY}; {_call(name, n_features, n_classes)} returned "
                                          f"{_describe(model)}, not an nn.Module")
        params = list(model.parameters())
        if not params:
            raise InputError(field, name, f"a factory whose model has trainable parameters; the "
                                          f"{type(model).__name__} from {_call(name, n_features, n_classes)} has "
                                          f"none")
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        if frozen:
            raise InputError(field, name, f"a model whose parameters are all trainable (coopsim trains every one "
                                          f"of model.parameters(); register fixed tensors as buffers); "
                                          f"requires_grad is False for {', '.join(frozen[:5])}"
                                          f"{' …' if len(frozen) > 5 else ''}")
        try:
            model = model.to(dtype)
        except Exception as exc:
            raise InputError(field, name, f"a model that can be cast to {dtype}; .to({dtype}) raised "
                                          f"{type(exc).__name__}: {exc}") from exc
        _probe_forward(model, name, n_features, n_classes, dtype, field)
    return model


def _probe_forward(model: nn.Module, name: str, n_features: int, n_classes: int, dtype: torch.dtype,
                   field: str) -> None:
    """One forward pass on zeros ``(2, n_features)``: it must give a ``(2, n_classes)`` tensor."""
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, n_features, dtype=dtype))
    except Exception as exc:
        raise InputError(field, name, f"a model whose forward pass takes a (rows, n_features={n_features}) batch; "
                                      f"on zeros of shape (2, {n_features}) it raised {type(exc).__name__}: "
                                      f"{exc}") from exc
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers and b.shape == buffers[k].shape:
                    b.copy_(buffers[k])
    expected = f"an output of n_classes={n_classes} logits per row, shape (2, {n_classes}) for 2 rows"
    if not isinstance(out, torch.Tensor):
        raise InputError(field, name, f"{expected}; got {_describe(out)}")
    if tuple(out.shape) != (2, n_classes):
        raise InputError(field, name, f"{expected}; got shape {tuple(out.shape)}")
    if not out.is_floating_point():
        raise InputError(field, name, f"{expected}, floating point; got dtype {out.dtype}")


def _call(name: str, n_features: int, n_classes: int) -> str:
    return f"{name.partition(':')[2]}({n_features}, {n_classes})"


def _describe(obj: object) -> str:
    if obj is None:
        return "None"
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, dict):
        return f"a dict (keys {list(obj)[:5]})"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}" if type(obj).__module__ != "builtins" \
        else f"a {type(obj).__name__}"


def _mlp_layers(n_features: int, hidden: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    return layers


def _last(n_features: int, hidden: Sequence[int]) -> int:
    return int(hidden[-1]) if len(hidden) else n_features


def init_parameters(model: nn.Module, seed: SeedLike) -> None:
    """Re-draw every Linear/Conv2d weight and bias from a generator derived from ``seed``, with
    PyTorch's default scheme (Kaiming-uniform weights, uniform biases in ±1/√fan_in)."""
    g = torch_generator(seed, 0x1A17)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
                if m.bias is not None:
                    fan_in = m.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(m.bias, -bound, bound, generator=g)


def cut_sequence(model: nn.Module) -> nn.Sequential:
    """The Sequential that split mode cuts: the model itself, or the multi-task trunk.

    Works for a user's model only when the factory returns an ``nn.Sequential`` (its layers are cut in
    order); any other module is refused with an ``InputError`` on ``cut_layer``."""
    if isinstance(model, MultiTaskNet):
        return model.trunk
    if not isinstance(model, nn.Sequential):
        raise InputError("cut_layer", type(model).__name__,
                         "split mode only for a model that is an nn.Sequential (its layers are cut in order: the "
                         "built-ins, or a factory returning nn.Sequential) or the built-in multitask net; this "
                         f"model is a {type(model).__name__} (leave cut_layer unset)")
    return model


def default_loss(model: nn.Module):
    """Mean cross-entropy for single-task models (any user's model included), :class:`MultiTaskLoss`
    for the multi-task net."""
    if isinstance(model, MultiTaskNet):
        return MultiTaskLoss(tuple(model.heads.keys()))
    return F.cross_entropy
