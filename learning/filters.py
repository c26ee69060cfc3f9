"""Value filters: the admissible part of a member's gradient, ``g̃_i = F_i(g_i, v_i)`` (V1, SPEC §2).

Four families behind one interface (:class:`ValueFilter`), composed into a member's
:class:`ValueProfile`, which :meth:`ValueProfile.from_spec` builds from configuration
(:class:`learning.profiles.ValueProfileSpec`, re-exported here) such as
``{"reject_heads": ["risk"], "protect_classes": [3, 8], "max_norm": 1.0}``:

1. rule-based checks over named parameter groups or tasks (:class:`RuleFilter`);
2. feasible-set projections: half-spaces, norm ball, box (:class:`HalfSpaceProjection`,
   :class:`NormBall`, :class:`Box`);
3. gradient surgery, PCGrad-style (:class:`GradientSurgery`);
4. a learned admissibility model trained from a principal's pairwise preferences
   (:class:`LearnedAdmissibility`, with the principal's :class:`PreferenceModel`).

Each filter's docstring states its guarantee; ``tests/learning/test_filters.py`` checks them. An
inadmissible update becomes the zero vector, so it earns zero one-step credit (V3).
Value gradients ``a_k = ∇L_k(θ)`` of protected groups k ("class:3": the loss on reference rows of
class 3) are computed once per step by :class:`ValueReference` and shared by all members.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from coopsim.errors import check
from learning.params import ParamLayout
from learning.profiles import AdmissibilitySpec as AdmissibilitySpec  # re-exported: configuration lives there
from learning.profiles import PreferenceModel, ValueProfileSpec
from learning.seeding import SeedLike, as_generator
from learning.traversal import LossFn, member_gradients


@dataclass
class FilterContext:
    """What a filter may look at besides the raw piece: the parameter layout, the step size, the
    value gradients of named groups at the current θ, and (for rule filters on multi-task models)
    this member's gradient split by task (the pieces sum to the raw gradient)."""

    layout: ParamLayout
    lr: float = 1.0
    group_grads: dict[str, torch.Tensor] = field(default_factory=dict)
    task_pieces: dict[str, torch.Tensor] | None = None


class ValueFilter(ABC):
    """One value filter ``g ↦ g̃`` (V1). Subclasses declare the value gradients they need."""

    needs_groups: tuple[str, ...] = ()
    needs_task_pieces: bool = False

    def bind(self, layout: ParamLayout) -> None:  # noqa: B027 - optional hook
        """Check the filter against the model it will filter (e.g. that named heads exist)."""

    @abstractmethod
    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor: ...


# ---------------------------------------------------------------------------------- 1. rules
class RuleFilter(ValueFilter):
    """Constitutional rules over tasks (heads) and named parameter groups (SPEC §2, family 1).

    ``reject_heads``: the member's update keeps only the gradient paths of admitted tasks, i.e.
    ``g̃ = Σ_{t admitted} g^{(t)}`` where ``g^{(t)}`` is the member's piece of task t's loss. This
    zeroes each rejected head's gradient and removes from the trunk gradient the component that flows
    from the rejected heads. With ``neutral_trunk`` the trunk part is further projected orthogonal to
    every rejected task's trunk gradient, so the update is first-order neutral for those tasks on the
    member's data. ``reject_params``: glob patterns over parameter names whose coordinates are zeroed.

    Guarantee: coordinates of rejected heads and parameters are exactly 0; with ``neutral_trunk``,
    ``⟨g̃_trunk, g^{(t)}_trunk⟩ = 0`` (to round-off) for every rejected task t; rejecting every head or
    every parameter gives the zero vector.
    """

    def __init__(self, reject_heads: Sequence[str] = (), reject_params: Sequence[str] = (),
                 neutral_trunk: bool = False) -> None:
        self.reject_heads = tuple(dict.fromkeys(reject_heads))  # a head named twice is rejected once
        self.reject_params = tuple(dict.fromkeys(reject_params))
        self.neutral_trunk = neutral_trunk
        self.needs_task_pieces = bool(self.reject_heads)
        self._zero: torch.Tensor | None = None
        self._trunk: torch.Tensor | None = None

    def bind(self, layout: ParamLayout) -> None:
        heads = layout.head_names()
        for h in self.reject_heads:
            check(h in heads, "reject_heads", list(self.reject_heads),
                  f"heads of the model ({list(heads) or 'it has none: use a multitask model'})")
        zero = torch.zeros(layout.size, dtype=torch.bool)
        for h in self.reject_heads:
            zero |= layout.head_mask(h)
        if self.reject_params:
            zero |= layout.mask(self.reject_params)
        self._zero = zero
        self._trunk = layout.trunk_mask()

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        if self._zero is None:
            self.bind(ctx.layout)
        assert self._zero is not None and self._trunk is not None
        if self._zero.device != g.device:  # masks are built on the CPU; kept where the pieces are
            self._zero, self._trunk = self._zero.to(g.device), self._trunk.to(g.device)
        out = g
        if self.reject_heads:
            pieces = ctx.task_pieces
            check(pieces is not None, "task_pieces", None, "per-task pieces (the trainer provides them)")
            assert pieces is not None
            out = sum((p for t, p in pieces.items() if t not in self.reject_heads), torch.zeros_like(g))
            if self.neutral_trunk:
                rejected = torch.stack([pieces[t][self._trunk] for t in self.reject_heads], dim=1)
                q, r = torch.linalg.qr(rejected)
                # numerical rank as numpy's matrix_rank: collinear rejected gradients span one direction
                tol = torch.finfo(r.dtype).eps * max(rejected.shape) * float(r.abs().max())
                keep = r.diagonal().abs() > tol
                q = q[:, keep]
                trunk = out[self._trunk]
                out = out.clone()
                out[self._trunk] = trunk - q @ (q.T @ trunk)
        return out.masked_fill(self._zero, 0.0)


# ----------------------------------------------------------------------------- 2. projections
class HalfSpaceProjection(ValueFilter):
    """Euclidean projection onto ``{g : ⟨g, a_k⟩ ≥ 0 for every group k}`` (SPEC §2, family 2).

    ``a_k = ∇L_k(θ)``: "this update must not increase protected group k's loss" (to first order, for
    the step ``θ − η g̃``). One half-space is projected in closed form; several by solving the dual
    ``min_{λ≥0} ‖g + Aᵀλ‖`` with ``scipy.optimize.nnls`` and setting ``g̃ = g + Aᵀλ``.

    Guarantee: ``⟨g̃, a_k⟩ ≥ 0`` for every k (to round-off, relative 1e-6), ``g̃`` is the closest such
    vector to ``g``, and ``g̃ = g`` when ``g`` already satisfies every constraint.
    """

    def __init__(self, groups: Sequence[str]) -> None:
        check(len(groups) >= 1, "protect_classes", list(groups), "at least one group")
        self.needs_groups = tuple(groups)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        A = torch.stack([ctx.group_grads[k] for k in self.needs_groups]).to(g.dtype)
        dots = A @ g
        if bool((dots >= 0).all()):
            return g
        if A.shape[0] == 1:
            a = A[0]
            return g - (dots[0] / (a @ a)) * a
        from scipy.optimize import nnls

        A64 = A.double().cpu().numpy()
        lam, _ = nnls(A64.T, -g.double().cpu().numpy(), maxiter=50 * A.shape[0])
        out = g.double() + torch.from_numpy(A64.T @ lam).to(g.device)
        # one Newton-free clean-up pass: remove residual round-off violations one constraint at a time
        for a in A.double():
            d = out @ a
            if d < 0:
                out = out - (d / (a @ a)) * a
        return out.to(g.dtype)


class NormBall(ValueFilter):
    """Clip to the ball ``‖g̃‖ ≤ max_norm`` (SPEC §2, family 2).

    Guarantee: ``‖g̃‖ ≤ max_norm``; ``g̃ = s·g`` with ``s ∈ (0, 1]`` (direction kept), so every
    half-space constraint that ``g`` satisfies still holds after clipping.
    """

    def __init__(self, max_norm: float) -> None:
        check(max_norm > 0 and np.isfinite(max_norm), "max_norm", max_norm, "a finite number > 0")
        self.max_norm = float(max_norm)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        n = float(torch.linalg.vector_norm(g))
        return g if n <= self.max_norm else g * (self.max_norm / n)


class Box(ValueFilter):
    """Projection onto the box ``|g̃_j| ≤ bound`` for every coordinate (SPEC §2, family 2).

    Guarantee: every coordinate lies in [−bound, bound], keeps its sign, and is unchanged when inside.
    """

    def __init__(self, bound: float) -> None:
        check(bound > 0 and np.isfinite(bound), "box", bound, "a finite number > 0")
        self.bound = float(bound)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        return g.clamp(-self.bound, self.bound)


# --------------------------------------------------------------------------------- 3. surgery
class GradientSurgery(ValueFilter):
    """PCGrad-style surgery against value gradients (SPEC §2, family 3): for each group k in order,
    when ``⟨g, a_k⟩ < 0``, ``g ← g − (⟨g, a_k⟩/‖a_k‖²) a_k``.

    Guarantee: with one group, ``⟨g̃, a⟩ = 0`` when g conflicted and ``g̃ = g`` otherwise; the norm
    never grows. With several groups the last group's constraint holds exactly; earlier ones may be
    re-violated (PCGrad's known property; use :class:`HalfSpaceProjection` to satisfy all at once).
    """

    def __init__(self, groups: Sequence[str]) -> None:
        check(len(groups) >= 1, "surgery_classes", list(groups), "at least one group")
        self.needs_groups = tuple(groups)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        for k in self.needs_groups:
            a = ctx.group_grads[k].to(g.dtype)
            d = g @ a
            if d < 0:
                g = g - (d / (a @ a)) * a
        return g


# ------------------------------------------------------------------- 4. learned admissibility
def _features(delta: np.ndarray | torch.Tensor):
    """Reward-model features of outcomes: ``[Δ, max(Δ, 0)]`` (a kink lets it learn vetoes)."""
    if isinstance(delta, torch.Tensor):
        return torch.cat([delta, delta.clamp_min(0.0)], dim=-1)
    return np.concatenate([delta, np.maximum(delta, 0.0)], axis=-1)


class LearnedAdmissibility(ValueFilter):
    """A learned admissibility model (SPEC §2, family 4).

    A Bradley–Terry reward model ``r̂(Δ) = ŵᵀ[Δ, max(Δ, 0)]`` is fitted (logistic regression on feature
    differences, scikit-learn) to ``n_pairs`` pairwise choices generated by the principal's
    :class:`PreferenceModel`. An update's outcome is its first-order loss change per group,
    ``Δ_k = −η⟨g, a_k⟩``; its admissibility probability is ``p = σ(r̂(Δ) − r̂(0))``, the chance the
    principal prefers applying it to doing nothing. ``mode="reject"`` keeps g when ``p ≥ threshold``
    and zeroes it otherwise; ``mode="scale"`` returns ``p·g``.

    Guarantee: ``g̃ = s·g`` with ``s ∈ [0, 1]`` (``s ∈ {0, 1}`` in reject mode): the filter never adds
    or turns a direction, and a rejected update is exactly the zero vector.
    """

    def __init__(self, preference: PreferenceModel, *, seed: SeedLike, n_pairs: int = 2000,
                 mode: Literal["reject", "scale"] = "reject", threshold: float = 0.5) -> None:
        from sklearn.linear_model import LogisticRegression

        check(mode in ("reject", "scale"), "admissibility.mode", mode, "'reject' or 'scale'")
        check(0.0 < threshold < 1.0, "admissibility.threshold", threshold, "a probability in (0, 1)")
        self.preference, self.mode, self.threshold = preference, mode, threshold
        self.needs_groups = tuple(f"class:{k}" for k in preference.classes)
        A, B, choice = preference.sample_pairs(n_pairs, as_generator(seed))
        X = (_features(A) - _features(B)) / preference.outcome_scale
        clf = LogisticRegression(fit_intercept=False, C=10.0, max_iter=1000).fit(X, choice)
        self.weights = torch.from_numpy(clf.coef_[0] / preference.outcome_scale)
        self.train_agreement = float(clf.score(X, choice))

    def outcome(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        """First-order loss change per group of the step ``θ − η g``."""
        A = torch.stack([ctx.group_grads[k] for k in self.needs_groups]).to(g.dtype)
        return -ctx.lr * (A @ g)

    def probability(self, delta: torch.Tensor) -> torch.Tensor:
        """Admissibility probability ``σ(r̂(Δ) − r̂(0))`` of outcomes Δ (…, K)."""
        if self.weights.device != delta.device:
            self.weights = self.weights.to(delta.device)
        return torch.sigmoid(_features(delta.double()) @ self.weights)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        p = float(self.probability(self.outcome(g, ctx)))
        if self.mode == "scale":
            return g * p
        return g if p >= self.threshold else torch.zeros_like(g)


# -------------------------------------------------------------------------------- profiles
class ValueProfile:
    """A member's composed filter (V1): filters applied in order.

    :meth:`from_spec` orders them rule → surgery → learned admissibility → box → half-spaces → norm
    ball. Scaling by the norm ball keeps every half-space constraint, so both hold at the end; a box
    applied before the half-space projection may be re-violated by it (documented, not silent).
    """

    def __init__(self, filters: Sequence[ValueFilter] = ()) -> None:
        self.filters = list(filters)

    @classmethod
    def from_spec(cls, spec: ValueProfileSpec | dict, layout: ParamLayout, *, seed: SeedLike,
                  n_classes: int | None = None) -> ValueProfile:
        spec = spec if isinstance(spec, ValueProfileSpec) else ValueProfileSpec.model_validate(spec)
        heads = layout.head_names()
        reject = list(spec.reject_heads)
        if spec.admit_heads is not None:
            for h in spec.admit_heads:
                check(h in heads, "admit_heads", spec.admit_heads, f"heads of the model {list(heads)}")
            reject += [h for h in heads if h not in spec.admit_heads and h not in reject]
        if n_classes is not None:
            classes = [*spec.protect_classes, *spec.surgery_classes,
                       *(spec.admissibility.classes if spec.admissibility else [])]
            for c in classes:
                check(0 <= c < n_classes, "class", c, f"a class label in [0, {n_classes})")
        filters: list[ValueFilter] = []
        if reject or spec.reject_params:
            filters.append(RuleFilter(reject, spec.reject_params, spec.neutral_trunk))
        if spec.surgery_classes:
            filters.append(GradientSurgery([f"class:{k}" for k in spec.surgery_classes]))
        if spec.admissibility is not None:
            a = spec.admissibility
            filters.append(LearnedAdmissibility(a.preference(), seed=seed, n_pairs=a.n_pairs, mode=a.mode,
                                                threshold=a.threshold))
        if spec.box is not None:
            filters.append(Box(spec.box))
        if spec.protect_classes:
            filters.append(HalfSpaceProjection([f"class:{k}" for k in spec.protect_classes]))
        if spec.max_norm is not None:
            filters.append(NormBall(spec.max_norm))
        profile = cls(filters)
        profile.bind(layout)
        return profile

    def bind(self, layout: ParamLayout) -> None:
        for f in self.filters:
            f.bind(layout)

    @property
    def is_identity(self) -> bool:
        return not self.filters

    @property
    def needs_groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for f in self.filters for k in f.needs_groups))

    @property
    def needs_task_pieces(self) -> bool:
        return any(f.needs_task_pieces for f in self.filters)

    def __call__(self, g: torch.Tensor, ctx: FilterContext) -> torch.Tensor:
        for f in self.filters:
            g = f(g, ctx)
        return g


# ------------------------------------------------------------------------- value gradients
class ValueReference:
    """Reference rows per named group (e.g. ``"class:3"``: validation rows of class 3) and the value
    gradients ``a_k = ∇L_k(θ)`` of their mean losses, all groups in one grouped backward pass."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, groups: dict[str, torch.Tensor]) -> None:
        self.X, self.y = X, y
        self.groups = {k: torch.as_tensor(ix, dtype=torch.long).to(X.device) for k, ix in groups.items()}
        for k, ix in self.groups.items():
            check(len(ix) > 0, "value reference group", k, "a group with at least one reference row")

    @classmethod
    def from_classes(cls, X: torch.Tensor, y: torch.Tensor, classes: Sequence[int] | None = None) -> ValueReference:
        """Groups ``class:k`` of the rows whose (first-task) label is k."""
        labels = y if y.ndim == 1 else y[:, 0]
        classes = sorted({int(c) for c in labels.tolist()}) if classes is None else classes
        return cls(X, y, {f"class:{k}": torch.nonzero(labels == k).flatten() for k in classes})

    def gradients(self, model: torch.nn.Module, loss_fn: LossFn, names: Sequence[str]) -> dict[str, torch.Tensor]:
        names = list(dict.fromkeys(names))
        missing = [k for k in names if k not in self.groups]
        check(not missing, "value groups", missing, f"groups with reference rows {sorted(self.groups)}")
        if not names:
            return {}
        batches = [(self.X[self.groups[k]], self.y[self.groups[k]]) for k in names]
        total = sum(len(self.groups[k]) for k in names)
        pieces = member_gradients(model, loss_fn, batches)
        return {k: pieces[i] * (total / len(self.groups[k])) for i, k in enumerate(names)}
