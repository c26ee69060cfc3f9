"""Contract menus and their feasibility check (P: IR, IC, budget)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from economics.contracts.accuracy import AccuracyFunction
from economics.contracts.outcomes import Outcomes
from economics.contracts.pooled import EnumeratedDraws, FirstMoments, TypeDraws

#: Violation above which a menu is flagged as failed (the authors' threshold).
VIOLATION_TOL = 1e-5


def expected_budgets(draws: TypeDraws | Outcomes, accuracy: AccuracyFunction, m: np.ndarray,
                     value_scale: float) -> np.ndarray:
    """``t_bar_i(m) = E_{n | n_i >= 1}[v(a(n . m))]``: most a type-i member can be promised (P-budget).

    ``draws`` is the solver's :class:`~economics.contracts.pooled.TypeDraws` (convolution or
    enumeration) or enumerated :class:`Outcomes` (summed directly).
    """
    if isinstance(draws, Outcomes):
        acc = accuracy(draws.n @ m)
        return value_scale * (draws.conditional.T @ acc)
    return value_scale * draws.first_moments(accuracy, np.asarray(m, dtype=np.float64)).budget


@dataclass(frozen=True, eq=False)
class ContractCheck:
    """Constraint violations of a menu (all >= 0; 0 means satisfied). Money units.

    ``ir[i] = max(0, f_i - u_i)``; ``ic[i, j] = max(0, (t_j - c_i m_j) - u_i)`` (type i prefers j's
    contract); ``budget[i] = max(0, t_i - t_bar_i(m))`` (P-budget, first moment);
    ``nonnegative = max(0, -min(m), -min(t))``.
    """

    ir: np.ndarray
    ic: np.ndarray
    budget: np.ndarray
    nonnegative: float
    tol: float = VIOLATION_TOL

    @property
    def max_violation(self) -> float:
        """Largest violation over IR, IC, budget and non-negativity (money units)."""
        return float(max(self.ir.max(initial=0.0), self.ic.max(initial=0.0), self.budget.max(initial=0.0),
                         self.nonnegative))

    @property
    def ok(self) -> bool:
        """True when no violation exceeds ``tol``."""
        return self.max_violation <= self.tol

    def summary(self) -> dict[str, float]:
        """Largest violation of each kind, and the overall maximum."""
        return {"ir": float(self.ir.max(initial=0.0)), "ic": float(self.ic.max(initial=0.0)),
                "budget": float(self.budget.max(initial=0.0)), "nonnegative": self.nonnegative,
                "max": self.max_violation}


@dataclass(frozen=True, eq=False)
class ContractMenu:
    """A menu ``{(m_i, t_i)}``: type i contributes ``m_i`` data points for a model worth ``t_i`` in expectation.

    ``utility = t - c m``; ``reservation_utility`` is ``f``; ``budget`` is ``t_bar(m)``;
    ``expected_accuracy = E_n[a(n . m)]`` of the pooled model; ``success`` is False when the solver
    failed or a constraint is violated by more than ``VIOLATION_TOL``. ``draws`` computes the
    expectations the way the solver did (convolution or enumeration); ``outcomes`` enumerates every
    outcome on first use (refused beyond ``MAX_OUTCOMES``; the complete-information benchmark needs it).
    """

    costs: np.ndarray
    probs: np.ndarray
    n_participants: int
    m: np.ndarray
    t: np.ndarray
    reservation_utility: np.ndarray
    reservation_m: np.ndarray
    value_scale: float
    accuracy: AccuracyFunction
    draws: TypeDraws = field(repr=False)
    success: bool = True
    message: str = ""
    solve_time: float = 0.0
    variant: str = "first_moment"
    iterations: int = 0

    @property
    def utility(self) -> np.ndarray:
        """Per-type utility ``u_i = t_i - c_i m_i`` (money units)."""
        return self.t - self.costs * self.m

    @cached_property
    def _moments(self) -> FirstMoments:
        return self.draws.first_moments(self.accuracy, self.m)

    @cached_property
    def outcomes(self) -> Outcomes:
        """Every outcome ``n`` with its pmf (enumerated on first use; refused beyond ``MAX_OUTCOMES``)."""
        if isinstance(self.draws, EnumeratedDraws):
            return self.draws.outcomes
        return Outcomes.enumerate(self.n_participants, self.probs)

    @property
    def budget(self) -> np.ndarray:
        """Per-type first-moment budget ``t_bar_i(m) = E_{n|n_i>=1}[v(a(n . m))]`` (P-budget)."""
        return self.value_scale * self._moments.budget

    @property
    def expected_accuracy(self) -> float:
        """``E_n[a(n . m)]``: the coordinator's objective."""
        return self._moments.value

    @property
    def expected_model_accuracy(self) -> np.ndarray:
        """Expected accuracy of the model each type receives, ``t_i / value_scale``."""
        return self.t / self.value_scale

    def check(self, tol: float = VIOLATION_TOL) -> ContractCheck:
        """IR, IC (all pairs) and budget violations of this menu."""
        u = self.utility
        ir = np.maximum(0.0, self.reservation_utility - u)
        alt = self.t[None, :] - self.costs[:, None] * self.m[None, :]  # alt[i, j]: type i taking j's
        ic = np.maximum(0.0, alt - u[:, None])
        np.fill_diagonal(ic, 0.0)
        budget = np.maximum(0.0, self.t - self.budget)
        nonneg = float(max(0.0, -float(self.m.min()), -float(self.t.min())))
        return ContractCheck(ir, ic, budget, nonneg, tol)

    def as_table(self) -> list[dict[str, float]]:
        """One row per type: cost, m, t, utility, reservation utility (for summaries)."""
        u = self.utility
        return [{"type": i + 1, "cost": float(self.costs[i]), "prob": float(self.probs[i]),
                 "m": float(self.m[i]), "t": float(self.t[i]), "utility": float(u[i]),
                 "reservation_utility": float(self.reservation_utility[i])}
                for i in range(self.costs.shape[0])]
