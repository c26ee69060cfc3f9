"""Traversal learning (TL): virtual batches and exact per-member gradient pieces (SPEC §1, V2).

The orchestrator knows every member's row count; a :class:`VirtualBatchPlan` shuffles all (member,
local row) pairs with a seeded generator and cuts them into batches of ``batch_size``, recording for
each batch which local rows each member supplies (grouped by member, members in a fixed order).

:func:`member_gradients` returns the explicit gradient paths: row i is member i's piece
``g_i = ∇θ (1/B) Σ_{rows j of member i} ℓ_j``, so that ``Σ_i g_i`` is the centralised gradient of the
mean loss over the concatenated batch. Three engines compute the same pieces:

- ``grouped`` (default when the model's parameters all live in ``nn.Linear``/``nn.Conv2d``): one
  forward and one backward pass; each layer's weight gradient, a sum over rows of
  (output error)ᵀ·(input activation), is split by member with one batched matmul over rows padded per
  member, which is how TL's nodes compute theirs.
- ``vmap``: per-row gradients with ``torch.func`` then a segment sum; any row-separable model.
- ``loop``: one backward pass per member; the slow reference.

:func:`factored_gradients` is the trainer's fast path for the ``grouped`` engine: one ordinary
``backward`` (the parameters' ``.grad`` receive ``Σ_i g_i`` exactly as in centralised SGD) and the
pieces kept factored as each layer's activations and output errors (:class:`GradientFactors`), from
which the dense (N, D) pieces are built only on demand.

The model must be row-separable (no batch statistics such as BatchNorm in training mode, no random
layers such as Dropout in training mode; :func:`learning.exactness.check_traversable` tests a model), and
``loss_fn`` must be mean-reduced over rows (``torch.nn.functional.cross_entropy``,
:class:`learning.models.MultiTaskLoss`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coopsim.errors import InputError, check, check_choice

LossFn = Callable[..., torch.Tensor]
MemberBatch = tuple[torch.Tensor, torch.Tensor]
ENGINES = ("auto", "grouped", "vmap", "loop")
#: above this many entries (N·D) the grouped engine writes pieces in place instead of concatenating
_DIRECT_WRITE_ENTRIES = 1 << 20


# --------------------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class VirtualBatch:
    """One virtual batch: ``index[i]`` are member i's local rows in it (possibly empty)."""

    index: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(ix) for ix in self.index], dtype=np.int64)

    @property
    def size(self) -> int:
        return int(self.sizes.sum())


class VirtualBatchPlan:
    """Seeded virtual batches over members holding ``member_sizes`` rows.

    ``reshuffle=True`` draws a new permutation every epoch (TL++); ``False`` fixes the batches once (TL).
    Epoch ``e`` uses ``numpy.random.default_rng([seed, e])`` (or ``[seed, 0]`` when fixed), so any
    epoch can be replayed exactly, and centralised training can be given the very same batches.
    """

    def __init__(
        self,
        member_sizes: Sequence[int],
        batch_size: int,
        *,
        seed: int,
        reshuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        sizes = np.asarray(member_sizes, dtype=np.int64)
        check(sizes.ndim == 1 and len(sizes) >= 1 and (sizes >= 0).all(), "member_sizes", list(member_sizes),
              "a non-empty list of row counts ≥ 0")
        check(sizes.sum() >= 1, "member_sizes", list(member_sizes), "at least one row in all")
        check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "an integer ≥ 1")
        check(not drop_last or sizes.sum() >= batch_size, "batch_size", batch_size,
              f"at most the {int(sizes.sum())} rows in all when drop_last is set (else no batch is left)")
        check(isinstance(seed, int | np.integer) and seed >= 0, "seed", seed, "an integer ≥ 0")
        self.member_sizes = sizes
        self.batch_size = batch_size
        self.seed = int(seed)
        self.reshuffle = reshuffle
        self.drop_last = drop_last
        self._owner = np.repeat(np.arange(len(sizes)), sizes)
        self._local = np.concatenate([np.arange(n) for n in sizes])

    @property
    def n_members(self) -> int:
        return len(self.member_sizes)

    @property
    def n_batches(self) -> int:
        total = int(self.member_sizes.sum())
        return total // self.batch_size if self.drop_last else -(-total // self.batch_size)

    def batches(self, epoch: int = 0) -> list[VirtualBatch]:
        """The virtual batches of ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch if self.reshuffle else 0])
        perm = rng.permutation(len(self._owner))
        out = []
        for b in range(self.n_batches):
            chunk = perm[b * self.batch_size:(b + 1) * self.batch_size]
            owner, local = self._owner[chunk], self._local[chunk]
            order = np.argsort(owner, kind="stable")
            owner, local = owner[order], local[order]
            cuts = np.searchsorted(owner, np.arange(1, self.n_members))
            out.append(VirtualBatch(tuple(np.split(local, cuts))))
        return out


def gather(members: Sequence[MemberBatch], batch: VirtualBatch) -> list[MemberBatch]:
    """Each member's rows of ``batch`` as ``(X_i, y_i)`` (the member side of a traversal)."""
    out = []
    for (X, y), ix in zip(members, batch.index, strict=True):
        t = torch.from_numpy(ix).to(X.device)
        out.append((X.index_select(0, t), y.index_select(0, t)))
    return out


# --------------------------------------------------------------------------------------- pieces
def member_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    member_batches: Sequence[MemberBatch],
    *,
    engine: str = "auto",
) -> torch.Tensor:
    """Member i's exact piece of the virtual-batch gradient, as row i of an (N, D) tensor (V1 input).

    Rows are flattened over ``model.parameters()`` in order and sum to the gradient of
    ``loss_fn(model(X), y)`` for the concatenated batch ``X = cat(X_i)``. A member with zero rows gets
    a zero row.
    """
    pieces, _ = member_gradients_and_loss(model, loss_fn, member_batches, engine=engine)
    return pieces


def member_gradients_and_loss(
    model: nn.Module,
    loss_fn: LossFn,
    member_batches: Sequence[MemberBatch],
    *,
    engine: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`member_gradients` plus the batch's mean loss (detached)."""
    check_choice("engine", engine, ENGINES)
    X, y, sizes = _concat(member_batches)
    if engine == "auto":
        if grouped_supported(model):
            try:
                return _grouped(model, loss_fn, X, y, sizes)
            except GroupedUnsupported:  # noticed in the forward pass; the model is now marked for vmap
                pass
        engine = "vmap"
    if engine == "grouped":
        check(grouped_supported(model), "engine", engine,
              "'grouped' needs every parameter in nn.Linear / nn.Conv2d (groups=1, numeric padding); "
              "use 'vmap' or 'loop'")
        return _grouped(model, loss_fn, X, y, sizes)
    if engine == "vmap":
        return _vmap(model, loss_fn, X, y, sizes)
    return _loop(model, loss_fn, member_batches)


def _concat(member_batches: Sequence[MemberBatch]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Concatenate the members' rows; any malformed batch is reported by :func:`_bad_batch`."""
    check(len(member_batches) >= 1, "member_batches", len(member_batches), "at least one (X_i, y_i) pair")
    try:
        xs, ys = zip(*member_batches, strict=True)
        sizes = np.fromiter((x.shape[0] for x in xs), dtype=np.int64, count=len(xs))
        X, y = torch.cat(xs), torch.cat(ys)
        ok = y.shape[0] == X.shape[0] and all(t.shape[0] == n for t, n in zip(ys, sizes, strict=True))
    except (TypeError, ValueError, RuntimeError, AttributeError):
        ok = False
    if not ok:
        _bad_batch(member_batches)
    check(int(sizes.sum()) >= 1, "member_batches", sizes.tolist(), "at least one row in all")
    return X, y, sizes


def _bad_batch(member_batches: Sequence[MemberBatch]) -> None:
    """Find the first malformed member batch and raise an error naming it."""
    ref = None
    for i, mb in enumerate(member_batches):
        field = f"member_batches[{i}]"
        check(isinstance(mb, tuple | list) and len(mb) == 2, field, type(mb).__name__, "a pair (X_i, y_i) of tensors")
        Xi, yi = mb
        check(isinstance(Xi, torch.Tensor) and isinstance(yi, torch.Tensor), field,
              (type(Xi).__name__, type(yi).__name__), "a pair of torch tensors")
        check(Xi.shape[0] == yi.shape[0], field, (tuple(Xi.shape), tuple(yi.shape)),
              "X_i and y_i with the same number of rows")
        shape = (tuple(Xi.shape[1:]), tuple(yi.shape[1:]))
        ref = shape if ref is None else ref
        check(shape == ref, field, (tuple(Xi.shape), tuple(yi.shape)),
              f"rows shaped like member 0's (features {ref[0]}, labels {ref[1]})")
    raise AssertionError("unreachable: a malformed batch was reported but none found")


class GroupedUnsupported(InputError):
    """The ``grouped`` engine cannot follow this model's forward pass (a parameterised layer called
    twice or never, or a layer's output modified in place). Only seen in a forward pass, so the model
    is then marked: :func:`grouped_supported` answers False from then on and ``auto`` uses ``vmap``."""


def grouped_supported(model: nn.Module) -> bool:
    """Whether the one-backward ``grouped`` engine applies: every module that owns parameters is an
    ``nn.Linear`` or an ``nn.Conv2d`` with ``groups=1`` and numeric zero padding, no parameter is
    shared by two modules (tied weights), and no module works in place (``inplace=True`` would
    overwrite the layer outputs whose errors the engine reads). Cached per model; a forward pass that
    the engine cannot follow (see :class:`GroupedUnsupported`) turns it to False."""
    cached = getattr(model, "_coopsim_grouped", None)
    if cached is None:
        cached = _grouped_supported(model)
        object.__setattr__(model, "_coopsim_grouped", cached)
    return cached


def _grouped_supported(model: nn.Module) -> bool:
    seen: set[int] = set()
    for m in model.modules():
        if getattr(m, "inplace", False):
            return False
        own = [id(p) for p in m.parameters(recurse=False)]
        if not own:
            continue
        if seen.intersection(own):
            return False
        seen.update(own)
        if isinstance(m, nn.Linear):
            continue
        if (isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
                and not isinstance(m.padding, str)):
            continue
        return False
    return True


def _owners(model: nn.Module) -> list[nn.Module]:
    """Modules that own parameters, cached per model (the structure never changes in training)."""
    cached = getattr(model, "_coopsim_owners", None)
    if cached is None:
        cached = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
        object.__setattr__(model, "_coopsim_owners", cached)
    return cached


def _param_slices(model: nn.Module) -> list[tuple[int, int]]:
    """(start, stop) of every parameter in the flat vector, cached per model."""
    cached = getattr(model, "_coopsim_slices", None)
    if cached is None:
        cached, at = [], 0
        for p in model.parameters():
            cached.append((at, at + p.numel()))
            at += p.numel()
        object.__setattr__(model, "_coopsim_slices", cached)
    return cached


def padding_index(sizes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Row index (n, width) of each member's rows, padded: ``zero_pad`` points padding slots at row B
    (a zero row appended to the errors), ``any_pad`` at row 0 (their product with zero is zero)."""
    n, B = len(sizes), int(sizes.sum())
    width = int(sizes.max())
    member = np.repeat(np.arange(n), sizes)
    pos = np.arange(B) - (np.cumsum(sizes) - sizes)[member]
    pad = np.full((n, width), B, dtype=np.int64)
    pad[member, pos] = np.arange(B)
    zero_pad = torch.from_numpy(pad)
    return zero_pad, torch.from_numpy(np.where(pad == B, 0, pad)), width


class GradientFactors:
    """Every member's piece of one virtual batch, kept factored (grouped engine).

    For each ``nn.Linear``/``nn.Conv2d`` layer it holds the batch's input activations ``a`` and output
    errors ``δ`` (∂loss/∂output); member i's weight piece is ``δ_iᵀ a_i`` over its own rows (patches for
    a convolution) and its bias piece ``Σ δ_i``. Summed over members these are the ordinary weight
    gradient, so a trainer can step without ever building the (N, D) matrix of pieces;
    :meth:`pieces` builds it exactly as :func:`member_gradients` does.
    """

    def __init__(self, model: nn.Module, layers: list[tuple[nn.Module, torch.Tensor, torch.Tensor | None]],
                 sizes: np.ndarray) -> None:
        self.model = model
        self.layers = layers
        self.sizes = sizes
        self._padding: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self._where: dict[int, slice] | None = None  # id(parameter) → its slice of the flat vector

    def padding(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """:func:`padding_index` of the members' sizes (on the CPU), computed once."""
        if self._padding is None:
            self._padding = padding_index(self.sizes)
        return self._padding

    def pieces(self) -> torch.Tensor:
        """Row i is member i's exact piece (N, D), flattened over ``model.parameters()``."""
        return _pieces_from_factors(self.model, self.layers, self.sizes, self.padding())

    def slices(self, layer: int) -> tuple[slice, slice | None]:
        """Where layer ``layer``'s weight and bias (None without one) sit in the flat parameter vector."""
        mod = self.layers[layer][0]
        if self._where is None:
            self._where = {id(p): slice(lo, hi) for p, (lo, hi) in zip(self.model.parameters(),
                                                                       _param_slices(self.model), strict=True)}
        where = self._where
        return where[id(mod.weight)], None if mod.bias is None else where[id(mod.bias)]


def _capture(model, loss_fn, X, y, *, accumulate: bool):
    """One forward pass recording each parameterised layer's input and output error.

    ``accumulate=False``: the errors come from ``autograd.grad`` w.r.t. the layer outputs (parameter
    gradients untouched). ``accumulate=True``: one ordinary ``backward`` (the parameters' ``.grad``
    accumulate the batch gradient, exactly as centralised SGD), the errors caught by tensor hooks on
    the outputs on the way.
    """
    captured: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
    versions: list[int] = []
    deltas: dict[int, torch.Tensor] = {}

    def keep(mod, inp, out):
        i = len(captured)
        captured.append((mod, inp[0].detach(), out))
        versions.append(out._version)
        if accumulate and out.requires_grad:
            def catch(g, i=i):
                deltas[i] = g
            out.register_hook(catch)

    owners = _owners(model)
    handles = [m.register_forward_hook(keep) for m in owners]
    try:
        loss = loss_fn(model(X), y)
    finally:
        for h in handles:
            h.remove()
    if len(captured) != len(owners) or len({id(c[0]) for c in captured}) != len(owners):
        object.__setattr__(model, "_coopsim_grouped", False)
        raise GroupedUnsupported("model", type(model).__name__,
                                 "a model that calls each parameterised layer exactly once per forward pass "
                                 "(use engine='vmap' for shared weights)")
    if any(c[2]._version != v for c, v in zip(captured, versions, strict=True)):
        object.__setattr__(model, "_coopsim_grouped", False)
        raise GroupedUnsupported("model", type(model).__name__,
                                 "a model whose forward never modifies a layer's output in place "
                                 "(use engine='vmap' for in-place operations)")
    if accumulate:
        loss.backward()
        grads = [deltas.get(i) for i in range(len(captured))]
    else:
        grads = list(torch.autograd.grad(loss, [c[2] for c in captured], allow_unused=True))
    layers = [(mod, a, None if d is None else d.detach()) for (mod, a, _), d in zip(captured, grads, strict=True)]
    return layers, loss.detach()


def factored_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    member_batches: Sequence[MemberBatch],
) -> tuple[GradientFactors, torch.Tensor]:
    """One forward and one ordinary ``backward`` on the concatenated batch (the parameters' ``.grad``
    accumulate ``Σ_i g_i``, the centralised gradient, as in centralised training) and the members'
    pieces kept factored; returns the factors and the batch's mean loss (detached).

    Needs :func:`grouped_supported` models; the caller zeroes (or otherwise owns) ``.grad``.
    """
    check(grouped_supported(model), "model", type(model).__name__,
          "a model whose parameters all live in nn.Linear / nn.Conv2d (groups=1, numeric padding)")
    X, y, sizes = _concat(member_batches)
    layers, loss = _capture(model, loss_fn, X, y, accumulate=True)
    return GradientFactors(model, layers, sizes), loss


def member_gradient_factors(
    model: nn.Module,
    loss_fn: LossFn,
    member_batches: Sequence[MemberBatch],
) -> tuple[GradientFactors, torch.Tensor]:
    """The members' pieces of one virtual batch, factored, and the batch's mean loss (detached): the
    ``grouped`` engine's forward and backward without building the (N, D) pieces, and without touching
    the parameters' ``.grad`` (unlike :func:`factored_gradients`). ``factors.pieces()`` is exactly
    what :func:`member_gradients` returns with ``engine="grouped"``.

    Needs :func:`grouped_supported` models (:class:`GroupedUnsupported` if the forward shows otherwise).
    """
    check(grouped_supported(model), "model", type(model).__name__,
          "a model whose parameters all live in nn.Linear / nn.Conv2d (groups=1, numeric padding)")
    X, y, sizes = _concat(member_batches)
    layers, loss = _capture(model, loss_fn, X, y, accumulate=False)
    return GradientFactors(model, layers, sizes), loss


def _grouped(model, loss_fn, X, y, sizes):
    layers, loss = _capture(model, loss_fn, X, y, accumulate=False)
    return _pieces_from_factors(model, layers, sizes, padding_index(sizes)), loss


def _pieces_from_factors(model, layers, sizes, padding):
    n, B = len(sizes), int(sizes.sum())
    params = list(model.parameters())
    device = params[0].device
    zero_pad, any_pad, width = padding
    zero_pad, any_pad = zero_pad.to(device), any_pad.to(device)
    layout = _param_slices(model)
    size = layout[-1][1] if layout else 0
    # large models: every piece is written straight into its slice of one (N, D) buffer; small ones:
    # temporaries and one concatenation (strided writes cost more than the copy there)
    direct = n * size >= _DIRECT_WRITE_ENTRIES
    pieces = torch.empty(n, size, dtype=params[0].dtype, device=device) if direct else None
    views: dict[int, torch.Tensor] = {}
    for p, (lo, hi) in zip(params, layout, strict=True):
        views[id(p)] = pieces[:, lo:hi] if direct else torch.empty(n, hi - lo, dtype=p.dtype, device=p.device)
    for mod, a, d in layers:
        if d is None:
            for p in mod.parameters(recurse=False):
                views[id(p)].zero_()
            continue
        if isinstance(mod, nn.Conv2d):
            a = F.unfold(a, mod.kernel_size, dilation=mod.dilation, padding=mod.padding, stride=mod.stride)
            a = a.transpose(1, 2)  # (B, P, C·k·k)
            d = d.flatten(2).transpose(1, 2)  # (B, P, O)
        else:
            a = a.reshape(B, -1, a.shape[-1])
            d = d.reshape(B, -1, d.shape[-1])
        n_pos, n_in, n_out = a.shape[1], a.shape[2], d.shape[2]
        a_pad = a[any_pad].reshape(n, width * n_pos, n_in)
        d_pad = torch.cat([d, d.new_zeros(1, n_pos, n_out)])[zero_pad].reshape(n, width * n_pos, n_out)
        if direct:
            torch.bmm(d_pad.transpose(1, 2), a_pad, out=views[id(mod.weight)].view(n, n_out, n_in))
            if mod.bias is not None:
                torch.sum(d_pad, 1, out=views[id(mod.bias)])
        else:
            views[id(mod.weight)] = torch.bmm(d_pad.transpose(1, 2), a_pad).reshape(n, -1)
            if mod.bias is not None:
                views[id(mod.bias)] = d_pad.sum(1)
    if not direct:
        pieces = torch.cat([views[id(p)] for p in params], dim=1)
    return pieces


def _vmap(model, loss_fn, X, y, sizes):
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    B = X.shape[0]

    def row_loss(p, x, t):
        return loss_fn(functional_call(model, p, (x.unsqueeze(0),)), t.unsqueeze(0))

    per_row = vmap(grad(row_loss), in_dims=(None, 0, 0))(params, X, y)
    flat = torch.cat([per_row[k].reshape(B, -1) for k in params], dim=1) / B
    seg = torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes)).to(flat.device)
    pieces = flat.new_zeros(len(sizes), flat.shape[1]).index_add_(0, seg, flat)
    with torch.no_grad():
        loss = loss_fn(model(X), y)
    return pieces, loss


def _loop(model, loss_fn, member_batches):
    params = list(model.parameters())
    B = sum(int(Xi.shape[0]) for Xi, _ in member_batches)
    rows = []
    total = 0.0
    for Xi, yi in member_batches:
        if Xi.shape[0] == 0:
            rows.append(torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device))
            continue
        li = loss_fn(model(Xi), yi) * (Xi.shape[0] / B)
        grads = torch.autograd.grad(li, params, allow_unused=True)
        rows.append(torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)
        ]))
        total += float(li.detach())
    return torch.stack(rows), torch.tensor(total, dtype=params[0].dtype, device=params[0].device)


def batch_gradient(model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The centralised gradient of the mean loss over one batch, flattened (for comparisons)."""
    params = list(model.parameters())
    grads = torch.autograd.grad(loss_fn(model(X), y), params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])
