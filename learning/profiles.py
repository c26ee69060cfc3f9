"""Value profiles as configuration (SPEC §2): what a principal's filter should do, validated by
pydantic, and the hidden preference model a learned admissibility filter is trained from.

Pure configuration (pydantic and numpy, no torch): a cooperative's config validates value profiles
without loading torch, so surrogate runs never import it. :mod:`learning.filters` builds the
filters (:meth:`learning.filters.ValueProfile.from_spec`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from coopsim.errors import InputError


class PreferenceModel(BaseModel):
    """A principal's (hidden) preferences over update outcomes, used to generate pairwise choices.

    An outcome is the vector Δ of loss changes of the groups ``classes``. Utility (ours):
    ``u(Δ) = −Σ_k w_k Δ_k − λ Σ_{k ∈ veto} max(Δ_k, 0)``; the principal prefers A to B with
    probability ``σ((u(A) − u(B)) / temperature)`` (Bradley–Terry). Outcomes for the training pairs are
    drawn as ``N(0, outcome_scale²)`` per group; ``temperature`` is in units of ``outcome_scale``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    classes: list[int] = Field(min_length=1, description="groups the principal looks at")
    weights: list[float] | None = Field(None, description="weight per class (default 1 each)")
    veto_classes: list[int] = Field(default_factory=list, description="classes whose loss must not rise")
    veto_penalty: float = Field(10.0, ge=0, description="λ: extra dislike per unit of vetoed loss increase")
    temperature: PositiveFloat = Field(0.1, description="choice noise, in units of outcome_scale")
    outcome_scale: PositiveFloat = Field(0.01, description="std of loss changes in the training pairs")

    @model_validator(mode="after")
    def _consistent(self) -> PreferenceModel:
        if self.weights is not None and len(self.weights) != len(self.classes):
            raise InputError("admissibility.weights", self.weights, f"one weight per class ({len(self.classes)})")
        extra = sorted(set(self.veto_classes) - set(self.classes))
        if extra:
            raise InputError("admissibility.veto_classes", self.veto_classes,
                             f"a subset of admissibility.classes {self.classes}")
        return self

    def utility(self, delta: np.ndarray) -> np.ndarray:
        w = np.ones(len(self.classes)) if self.weights is None else np.asarray(self.weights, dtype=float)
        veto = np.isin(self.classes, self.veto_classes).astype(float)
        return -(delta @ w) - self.veto_penalty * (np.maximum(delta, 0.0) @ veto)

    def sample_pairs(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` pairs of outcomes and the principal's choices (1 when A is preferred)."""
        K = len(self.classes)
        A = rng.normal(scale=self.outcome_scale, size=(n, K))
        B = rng.normal(scale=self.outcome_scale, size=(n, K))
        z = (self.utility(A) - self.utility(B)) / (self.temperature * self.outcome_scale)
        choice = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(int)
        return A, B, choice


class AdmissibilitySpec(PreferenceModel):
    """Configuration of a learned admissibility filter: the principal's preference model plus how
    many pairs to learn from and how the score is used."""

    n_pairs: PositiveInt = 2000
    mode: Literal["reject", "scale"] = "reject"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)

    def preference(self) -> PreferenceModel:
        return PreferenceModel(**{k: getattr(self, k) for k in PreferenceModel.model_fields})


class ValueProfileSpec(BaseModel):
    """A principal's value profile as configuration (every field optional; empty = admit all)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    reject_heads: list[str] = Field(default_factory=list, description="tasks whose gradient paths are rejected")
    admit_heads: list[str] | None = Field(None, description="if set, every other head is rejected")
    reject_params: list[str] = Field(default_factory=list, description="glob patterns of parameter names to freeze")
    neutral_trunk: bool = Field(False, description="also make the trunk update neutral for rejected tasks")
    protect_classes: list[int] = Field(default_factory=list, description="half-space: these losses must not rise")
    surgery_classes: list[int] = Field(default_factory=list, description="PCGrad surgery against these classes")
    box: PositiveFloat | None = Field(None, description="per-coordinate bound |g_j| ≤ box")
    max_norm: PositiveFloat | None = Field(None, description="clip the update's norm")
    admissibility: AdmissibilitySpec | None = Field(None, description="learned admissibility model")

    @model_validator(mode="after")
    def _not_contradictory(self) -> ValueProfileSpec:
        if self.admit_heads is not None:
            both = sorted(set(self.admit_heads) & set(self.reject_heads))
            if both:
                raise InputError("reject_heads", self.reject_heads,
                                 f"heads not also listed in admit_heads (both list {both})")
        for name in ("protect_classes", "surgery_classes"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise InputError(name, values, "distinct class labels")
            if any(v < 0 for v in values):
                raise InputError(name, values, "class labels ≥ 0")
        return self

    @property
    def is_empty(self) -> bool:
        return self == ValueProfileSpec()
