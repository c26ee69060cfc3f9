"""Outcome metrics: fairness, inequality, individual rationality, budget balance, welfare, free-riding."""

from __future__ import annotations

import numpy as np

from coopsim.errors import check
from economics._checks import as_vector, finite_scalar, nonnegative

#: Relative spread below which a vector counts as constant in :func:`fairness`.
CONSTANT_REL = 1e-12


def is_constant(x: np.ndarray) -> bool:
    return float(np.ptp(x)) <= CONSTANT_REL * max(1.0, float(np.max(np.abs(x))))


def fairness(x: np.ndarray, y: np.ndarray, *, if_constant: float = float("nan")) -> float:
    """Fairness ``rho = 100 * Pearson(x, y)`` in [-100, 100] (C §4.1).

    E.g. ``x`` standalone accuracies and ``y`` final collaborative accuracies, or reputations and
    accuracies. Pearson is undefined when a vector is constant (e.g. FedAvg: every agent gets the
    same model); then ``rho = if_constant``, by default NaN (undefined, as the paper's ``pearsonr``
    returns; callers report it as undefined with the reason, never as 0). A vector counts as
    constant when its spread is below ``1e-12`` relative to its magnitude. Needs at least 2 agents.
    """
    a = as_vector("x", x)
    b = as_vector("y", y, a.shape[0])
    check(a.shape[0] >= 2, "x", a.tolist(), "at least 2 agents")
    fallback = float("nan") if np.isnan(if_constant) else finite_scalar("if_constant", if_constant, low=-100.0,
                                                                        high=100.0)
    if is_constant(a) or is_constant(b):
        return fallback
    da, db = a - a.mean(), b - b.mean()
    r = float(da @ db / (np.linalg.norm(da) * np.linalg.norm(db)))
    return 100.0 * float(np.clip(r, -1.0, 1.0))


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (payments, data, accuracy): 0 equal, ->1 concentrated.

    ``G = sum_ij |x_i - x_j| / (2 n^2 mean)``; 0 when all amounts are 0 (ours). Negative amounts
    raise (the Gini coefficient is not meaningful for them).
    """
    a = nonnegative("x", as_vector("x", x))
    total = float(a.sum())
    if total == 0.0:
        return 0.0
    s = np.sort(a)
    n = s.shape[0]
    ranks = np.arange(1, n + 1)
    return float(2.0 * (ranks @ s) / (n * total) - (n + 1.0) / n)


def individual_rationality_rate(utilities: np.ndarray, reservation: np.ndarray | float = 0.0,
                                tol: float = 0.0) -> float:
    """Share of agents whose utility is at least their outside option: ``mean(u_i >= f_i - tol)``."""
    u = as_vector("utilities", utilities)
    if np.ndim(reservation) == 0:
        f = np.full(u.shape, finite_scalar("reservation", reservation))
    else:
        f = as_vector("reservation", reservation, u.shape[0])
    t = finite_scalar("tol", tol, low=0.0)
    return float(np.mean(u >= f - t))


def budget_balance(payments: np.ndarray, revenue: float) -> float:
    """Revenue minus total payments: 0 balanced, > 0 surplus retained, < 0 deficit."""
    p = as_vector("payments", payments)
    return finite_scalar("revenue", revenue) - float(p.sum())


def welfare(utilities: np.ndarray) -> float:
    """Utilitarian welfare: the sum of agents' utilities."""
    return float(as_vector("utilities", utilities).sum())


def free_rider_profit(utilities: np.ndarray, is_free_rider: np.ndarray) -> float:
    """Mean utility of free-riders minus mean utility of honest members (SPEC §6).

    Positive means free-riding pays. NaN (a documented, defined result) when either group is empty.
    """
    u = as_vector("utilities", utilities)
    mask = np.asarray(is_free_rider)
    check(mask.shape == u.shape and mask.dtype == bool, "is_free_rider", f"{mask.dtype} {mask.shape}",
          f"a boolean mask of shape {u.shape}")
    if mask.all() or not mask.any():
        return float("nan")
    return float(u[mask].mean() - u[~mask].mean())
