"""Budget-constrained optimal contracts: the first-moment problem (P, SPEC §5), two variants.

Both maximise the expected accuracy of the pooled model ``E_n[a(n . m)]`` over the multinomial
type counts, with exact gradients and Hessians and ``scipy.optimize.minimize(method="trust-constr")``
started from the pooling contract. The expectations (objective, P-budgets and their derivatives)
come from the distribution of the pooled data computed by convolution
(:mod:`economics.contracts.pooled`, ours: any N, within ~1e-12 of enumeration where that is
feasible), or, with ``method="enumeration"``, from every outcome (the reference).

* :func:`solve_first_moment` imposes what the authors' solver imposes: binding local downward IC
  ``t_{i+1} - c_{i+1} m_{i+1} = t_i - c_{i+1} m_i``, monotone ``m_1 <= ... <= m_I``, IR for every
  type, the first-moment budget ``t_i <= E_{n|n_i>=1}[v(a(n . m))]`` (P-budget), ``m, t >= 0``.
  Ours: the binding IC equalities are eliminated, ``t = u_1 + A m`` (``u_1`` type 1's utility), so
  the variables are ``(m, u_1)``; that is the same feasible set.
* :func:`solve_full_constraints` imposes IR, IC for all ordered pairs, the budget and ``m, t >= 0``
  with variables ``(m, t)`` and no simplification.

Numerics (ours): the solver works in ``X_i = c_i m_i / V`` (data cost in units of the value scale)
and ``t / V``, so every variable and constraint is of order 1; the objective is rescaled so its
gradient at the start is of order 1. The interior point stops with binding constraints only nearly
binding (slack ~ barrier / multiplier), so its solution is polished by Newton's method on the KKT
system of its active set (accepted only when non-negative multipliers exist, found by NNLS when
the active constraints are degenerate, every constraint holds and the objective is no worse);
binding constraints (type 1's IR, the budgets) then hold to ~1e-12. A polished point counts as
converged. Fallbacks (ours), for degenerate problems where the interior point finds no interior:
when it fails, its start is polished the same way (e.g. every type at the capacity); the
first-moment variant then restarts from the full-constraint solution, which restarts from the
standalone menu (always feasible); with one participant both return the standalone menu, the only
feasible menu.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import LinearConstraint, NonlinearConstraint, brentq, minimize, nnls

from coopsim.errors import check
from economics._checks import as_vector, finite_scalar, positive_int, probabilities
from economics.contracts.accuracy import AccuracyFunction, GeneralisationBound
from economics.contracts.menu import VIOLATION_TOL, ContractMenu
from economics.contracts.pooled import FirstMoments, TypeDraws, type_draws
from economics.contracts.reservation import reservation_utilities


def validate_types(costs: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Costs: finite, > 0, strictly decreasing (type 1 most expensive). Probs: > 0, sum to 1, same length."""
    c = as_vector("costs", costs)
    check(bool(np.all(c > 0)), "costs", c.tolist(), "unit data costs > 0")
    check(bool(np.all(np.diff(c) < 0)), "costs", c.tolist(), "strictly decreasing costs c_1 > c_2 > ... > c_I")
    p = as_vector("probs", probs)
    check(p.shape == c.shape, "probs", f"length {p.shape[0]}", f"one probability per cost ({c.shape[0]})")
    probabilities("probs", p, strictly_positive=True)
    return c, p


class _Model:
    """Expected accuracy and budgets as functions of the scaled contributions ``X`` (memoised).

    Every quantity comes from one :meth:`TypeDraws.first_moments` call per point (``order=2``):
    by convolution of the pooled-data distribution, or by enumerating outcomes (the reference).
    """

    def __init__(self, draws: TypeDraws, accuracy: AccuracyFunction, costs: np.ndarray, value_scale: float) -> None:
        self.draws = draws
        self.accuracy = accuracy
        self.scale = value_scale / costs  # m = scale * X
        self._outer = np.outer(self.scale, self.scale)
        self._key: bytes | None = None
        self._vals: FirstMoments | None = None

    def _eval(self, x: np.ndarray) -> FirstMoments:
        key = x.tobytes()
        if key != self._key or self._vals is None:
            self._vals = self.draws.first_moments(self.accuracy, self.scale * x, order=2)
            self._key = key
        return self._vals

    def objective(self, x: np.ndarray) -> float:
        return -self._eval(x).value

    def objective_grad(self, x: np.ndarray) -> np.ndarray:
        return -self.scale * self._eval(x).grad

    def objective_hess(self, x: np.ndarray) -> np.ndarray:
        return -self._eval(x).hess * self._outer

    def budgets(self, x: np.ndarray) -> np.ndarray:
        """``t_bar(m) / V`` per type."""
        return self._eval(x).budget

    def budgets_jac(self, x: np.ndarray) -> np.ndarray:
        return self._eval(x).budget_jac * self.scale[None, :]

    def budgets_hess(self, x: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return self._eval(x).budget_hess(lam) * self._outer


def _pooling_level(accuracy: AccuracyFunction, c1: float, f1: float, n_participants: int,
                   value_scale: float) -> float:
    """Largest pooled contribution ``m0`` with ``v(a(N m0)) - c_1 m0 = f_1`` (0 if none)."""
    hi = value_scale * accuracy.a_max / c1
    grid = np.geomspace(hi * 1e-9, hi, 2001)

    def h(m: float | np.ndarray) -> np.ndarray:
        return value_scale * accuracy(n_participants * np.asarray(m)) - c1 * np.asarray(m) - f1

    vals = h(grid)
    ok = np.flatnonzero(vals >= 0)
    if ok.size == 0:
        return 0.0
    j = int(ok[-1])
    if j == grid.size - 1:
        return float(grid[j])
    return float(brentq(lambda m: float(h(m)), grid[j], grid[j + 1], xtol=1e-12 * grid[j + 1]))


def _pooling_start(acc: AccuracyFunction, c: np.ndarray, f: np.ndarray, m_res: np.ndarray, n_part: int,
                   v: float, m_max: float | None) -> float:
    """The pooled contribution both solvers start from: the largest level type 1 (the costliest) still
    accepts, never below its standalone amount ``m_res[0]`` (which it always accepts when pooled with
    N ≥ 1 participants, since accuracy grows with data), capped at ``m_max``."""
    m0 = max(_pooling_level(acc, float(c[0]), float(f[0]), n_part, v), float(m_res[0]))
    return m0 if m_max is None else min(m0, m_max)


_Setup = tuple[np.ndarray, np.ndarray, int, float, AccuracyFunction, TypeDraws, np.ndarray, np.ndarray]


def _setup(costs: np.ndarray, probs: np.ndarray, n_participants: int, k: float, value_scale: float,
           accuracy: AccuracyFunction | None, m_max: float | None = None, method: str = "auto") -> _Setup:
    c, p = validate_types(costs, probs)
    n_part = positive_int("n_participants", n_participants)
    v = finite_scalar("value_scale", value_scale, low=0.0, low_open=True)
    acc = GeneralisationBound(k=finite_scalar("k", k, low=0.0, low_open=True)) if accuracy is None else accuracy
    check(isinstance(acc, AccuracyFunction), "accuracy", acc, "an AccuracyFunction")
    draws = type_draws(n_part, p, method)
    if m_max is not None:
        finite_scalar("m_max", m_max, low=0.0, low_open=True)
    f, m_res = reservation_utilities(c, acc, v, m_max)
    return c, p, n_part, v, acc, draws, f, m_res


def _capacity_rows(c: np.ndarray, v: float, m_max: float | None, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``m_i <= m_max`` as ``-X_i >= -c_i m_max / V`` over the first ``len(c)`` variables (ours)."""
    n_t = c.shape[0]
    if m_max is None:
        return np.zeros((0, width)), np.zeros(0)
    rows = np.zeros((n_t, width))
    rows[:, :n_t] = -np.eye(n_t)
    return rows, -c * m_max / v


class _Inequalities:
    """All constraints as ``G(z) >= 0``: linear rows ``A z - b`` (bounds included), then the budget
    ``t_bar(m)/V - t/V`` (P-budget) with ``t/V = T z`` affine."""

    def __init__(self, model: _Model, a: np.ndarray, b: np.ndarray, t_of_z: np.ndarray) -> None:
        self.model, self.a, self.b, self.t_of_z = model, a, b, t_of_z
        self.n_x = model.scale.shape[0]
        self.n_lin = a.shape[0]

    def budget(self, z: np.ndarray) -> np.ndarray:
        return self.model.budgets(z[: self.n_x]) - self.t_of_z @ z

    def budget_jac(self, z: np.ndarray) -> np.ndarray:
        j = -self.t_of_z.copy()
        j[:, : self.n_x] += self.model.budgets_jac(z[: self.n_x])
        return j

    def budget_hess(self, z: np.ndarray, lam: np.ndarray) -> np.ndarray:
        out = np.zeros((z.shape[0], z.shape[0]))
        out[: self.n_x, : self.n_x] = self.model.budgets_hess(z[: self.n_x], np.asarray(lam))
        return out

    def values(self, z: np.ndarray) -> np.ndarray:
        return np.concatenate([self.a @ z - self.b, self.budget(z)])

    def jac(self, z: np.ndarray) -> np.ndarray:
        return np.vstack([self.a, self.budget_jac(z)])

    def hess(self, z: np.ndarray, lam_all: np.ndarray) -> np.ndarray:
        return self.budget_hess(z, lam_all[self.n_lin :])

    def scipy_constraints(self) -> list[LinearConstraint | NonlinearConstraint]:
        return [LinearConstraint(self.a, self.b, np.inf),
                NonlinearConstraint(self.budget, 0.0, np.inf, jac=self.budget_jac, hess=self.budget_hess)]


class _Objective:
    """``scale * (-E_n[a(n . m)])`` as a function of ``z`` (only its first ``n_x`` entries matter)."""

    def __init__(self, model: _Model, n_z: int, scale: float = 1.0) -> None:
        self.model, self.n_x, self.n_z, self.scale = model, model.scale.shape[0], n_z, scale

    def fun(self, z: np.ndarray) -> float:
        return self.scale * self.model.objective(z[: self.n_x])

    def grad(self, z: np.ndarray) -> np.ndarray:
        g = np.zeros(self.n_z)
        g[: self.n_x] = self.scale * self.model.objective_grad(z[: self.n_x])
        return g

    def hess(self, z: np.ndarray) -> np.ndarray:
        h = np.zeros((self.n_z, self.n_z))
        h[: self.n_x, : self.n_x] = self.scale * self.model.objective_hess(z[: self.n_x])
        return h


#: Slack thresholds (scaled units) tried in turn to guess the active set for the polish.
ACTIVE_TOLS = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2)


def _interior_point(obj: _Objective, cons: _Inequalities, x0: np.ndarray, maxiter: int
                    ) -> tuple[np.ndarray, bool, str, int]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*delta_grad == 0.0.*")
        # degenerate starts (e.g. every type at the capacity): scipy falls back to SVD and says so
        warnings.filterwarnings("ignore", message="Singular Jacobian matrix.*")
        res = minimize(obj.fun, x0, jac=obj.grad, hess=obj.hess, method="trust-constr",
                       constraints=cons.scipy_constraints(),
                       options={"maxiter": maxiter, "gtol": 1e-12, "xtol": 1e-14, "barrier_tol": 1e-12})
    return np.asarray(res.x, dtype=np.float64), res.status in (1, 2), str(res.message), int(res.nit)


def _newton_kkt(obj: _Objective, cons: _Inequalities, z0: np.ndarray, idx: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Newton's method on ``grad f - J_A^T lam = 0, g_A(z) = 0``; returns ``(z, lam, residual)``."""
    z, lam = z0.copy(), np.zeros(idx.size)
    n_z, n_all = z.shape[0], cons.n_lin + cons.t_of_z.shape[0]

    def residual(z: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        jac = cons.jac(z)[idx]
        return np.concatenate([obj.grad(z) - jac.T @ lam, cons.values(z)[idx]]), jac

    for _ in range(50):
        res, jac = residual(z, lam)
        full = np.zeros(n_all)
        full[idx] = lam
        hess = obj.hess(z) - cons.hess(z, full)
        kkt = np.block([[hess, -jac.T], [jac, np.zeros((idx.size, idx.size))]])
        step = np.linalg.lstsq(kkt, -res, rcond=None)[0]
        z, lam = z + step[:n_z], lam + step[n_z:]
        if not np.all(np.isfinite(step)) or np.max(np.abs(step), initial=0.0) < 1e-15:
            break
    res, _ = residual(z, lam)
    return z, lam, float(np.max(np.abs(res), initial=0.0))


def _polish_with(obj: _Objective, cons: _Inequalities, z0: np.ndarray, active: np.ndarray
                 ) -> np.ndarray | None:
    base = obj.fun(z0)
    for _ in range(4):
        idx = np.flatnonzero(active)
        z, lam, resid = _newton_kkt(obj, cons, z0, idx)
        if not np.all(np.isfinite(z)) or resid > 1e-9:
            return None
        negative = idx[lam < -1e-10]
        if negative.size and idx.size:  # degenerate constraints: multipliers are not unique
            grad = obj.grad(z)
            _, nn_resid = nnls(cons.jac(z)[idx].T, grad)
            if nn_resid <= 1e-9 * max(1.0, float(np.linalg.norm(grad))):
                negative = negative[:0]
        if negative.size:
            active = active.copy()
            active[negative] = False
            continue
        feasible = bool(np.all(cons.values(z) >= -1e-12))
        no_worse = obj.fun(z) <= base + 1e-12 * max(1.0, abs(base))
        return z if feasible and no_worse else None
    return None


def _polish(obj: _Objective, cons: _Inequalities, z0: np.ndarray) -> np.ndarray | None:
    """Active-set polish of an interior-point solution (ours; see the module docstring).

    The active set is guessed from the slacks with growing thresholds (a constraint with a small
    multiplier keeps a larger slack); the first guess whose Newton-KKT point is a verified KKT
    point (multipliers >= 0, feasible, objective no worse) is returned, else None.
    """
    slack = cons.values(z0)
    tried: set[bytes] = set()
    for tol in ACTIVE_TOLS:
        active = slack <= tol
        key = active.tobytes()
        if key in tried:
            continue
        tried.add(key)
        z = _polish_with(obj, cons, z0, active)
        if z is not None:
            return z
    return None


def _solve(model: _Model, cons: _Inequalities, x0: np.ndarray, maxiter: int
           ) -> tuple[np.ndarray, bool, str, int]:
    """Interior point (trust-constr, exact derivatives) from ``x0``, then the active-set polish."""
    n_z = x0.shape[0]
    g0 = float(np.abs(_Objective(model, n_z).grad(x0)).max())
    scale = float(np.clip(1.0 / g0, 1.0, 1e6)) if g0 > 0 else 1e3
    obj = _Objective(model, n_z, scale)
    z, converged, message, nit = _interior_point(obj, cons, x0, maxiter)
    polished = _polish(obj, cons, z)
    if polished is not None:  # a verified KKT point (feasible, multipliers >= 0)
        return polished, True, message + " Active set polished (Newton on KKT).", nit
    if not converged:
        # degenerate optima at a vertex (e.g. every type at the capacity) leave the interior point no
        # interior to walk in; the start itself may be the verified KKT point
        polished = _polish(obj, cons, x0)
        if polished is not None:
            return polished, True, message + " The start polished to a verified KKT point (Newton on KKT).", nit
    return z, converged, message, nit


def _solve_menu(variant: str, setup: _Setup, model: _Model, cons: _Inequalities, t_of_z: np.ndarray,
                x0: np.ndarray, maxiter: int, t0: float, note: str = "") -> ContractMenu:
    """Solve from ``x0`` and check the menu; ``z[:I]`` are the scaled data costs, ``t / V = t_of_z z``."""
    c, p, n_part, v, acc, draws, f, m_res = setup
    z, converged, message, nit = _solve(model, cons, x0, maxiter)
    return _finish(variant, c, p, n_part, v, acc, draws, f, m_res, model.scale * z[:c.shape[0]], v * (t_of_z @ z),
                   converged, note + message, nit, t0)


def _finish(variant: str, c: np.ndarray, p: np.ndarray, n_part: int, v: float, acc: AccuracyFunction,
            draws: TypeDraws, f: np.ndarray, m_res: np.ndarray, m: np.ndarray, t: np.ndarray,
            converged: bool, message: str, nit: int, t0: float) -> ContractMenu:
    menu = ContractMenu(c, p, n_part, m, t, f, m_res, v, acc, draws, True, message, 0.0, variant, nit)
    report = menu.check(VIOLATION_TOL)
    ok = converged and report.ok
    msg = message if report.ok else f"{message} Constraint violation {report.max_violation:.3g} > {VIOLATION_TOL}."
    return ContractMenu(c, p, n_part, m, t, f, m_res, v, acc, draws, ok, msg,
                        time.perf_counter() - t0, variant, nit)


def _standalone_menu(variant: str, c: np.ndarray, p: np.ndarray, n_part: int, v: float, acc: AccuracyFunction,
                     draws: TypeDraws, f: np.ndarray, m_res: np.ndarray, t0: float) -> ContractMenu:
    """N = 1: the only feasible menu is every type's standalone optimum ``(m_res_i, v a(m_res_i))``.

    Alone, a type's model is trained on its own data: the budget ``t_i <= v a(m_i)`` and IR
    ``t_i - c_i m_i >= f_i = max_m v a(m) - c_i m`` force ``m_i = m_res_i`` and ``t_i = v a(m_res_i)``
    (the feasible set is one point, which interior-point methods cannot enter). The first-moment
    variant's binding local IC does not hold there, so both variants return this menu.
    """
    return _finish(variant, c, p, n_part, v, acc, draws, f, m_res, m_res.copy(), v * acc(m_res), True,
                   "One participant: the standalone menu is the only feasible menu.", 0, t0)


def solve_first_moment(costs: np.ndarray, probs: np.ndarray, n_participants: int, k: float = 1.0,
                       value_scale: float = 100.0, accuracy: AccuracyFunction | None = None, *,
                       maxiter: int = 3000, m_max: float | None = None, method: str = "auto") -> ContractMenu:
    """Optimal menu of the first-moment problem (P, SPEC §5) as solved by the authors.

    Maximise ``E_n[a(n . m)]`` s.t. binding local IC, monotone m, IR (all types), first-moment
    budget (P-budget) and ``m, t >= 0``. ``k`` parameterises the default generalisation-bound
    accuracy (ignored when ``accuracy`` is given); ``v(r) = value_scale * r``. Starts from the
    pooling contract; when that fails, restarts once from the full-constraint solution. The result
    is flagged (``success=False``) when trust-constr fails or ``check()`` finds a violation above
    1e-5. ``m_max`` (ours) caps every type's contribution (and its standalone option) at the data a
    participant holds. ``method`` (ours): how the expectations over the type draws are computed,
    ``"convolution"`` (the pooled-data distribution, :mod:`economics.contracts.pooled`, any N),
    ``"enumeration"`` (every outcome, the reference; at most ``MAX_OUTCOMES`` outcomes) or
    ``"auto"`` (default: enumeration for small problems, where it is faster, convolution beyond).
    """
    t0 = time.perf_counter()
    setup = _setup(costs, probs, n_participants, k, value_scale, accuracy, m_max, method)
    c, p, n_part, v, acc, draws, f, m_res = setup
    n_t = c.shape[0]
    if n_part == 1:
        return _standalone_menu("first_moment", c, p, n_part, v, acc, draws, f, m_res, t0)
    model = _Model(draws, acc, c, v)
    # z = (X, Y): X_i = c_i m_i / V, Y = u_1 / V; t / V = Y + A_hat X (binding local IC), where
    # A_hat[i, j] = (c_j - c_{j+1}) / c_j for j < i and A_hat[i, i] = 1.
    a_hat = np.eye(n_t)
    for i in range(n_t):
        for j in range(i):
            a_hat[i, j] = (c[j] - c[j + 1]) / c[j]
    t_of_z = np.hstack([a_hat, np.ones((n_t, 1))])
    rows = [np.hstack([a_hat - np.eye(n_t), np.ones((n_t, 1))])]  # IR: u / V >= f / V
    rhs = [f / v]
    if n_t > 1:  # monotone: m_{i+1} >= m_i  <=>  X_{i+1} - (c_{i+1}/c_i) X_i >= 0
        mono = np.zeros((n_t - 1, n_t + 1))
        for i in range(n_t - 1):
            mono[i, i], mono[i, i + 1] = -c[i + 1] / c[i], 1.0
        rows.append(mono)
        rhs.append(np.zeros(n_t - 1))
    rows.append(np.eye(n_t + 1))  # m >= 0, u_1 >= 0
    rhs.append(np.zeros(n_t + 1))
    cap, cap_rhs = _capacity_rows(c, v, m_max, n_t + 1)
    rows.append(cap)
    rhs.append(cap_rhs)
    cons = _Inequalities(model, np.vstack(rows), np.concatenate(rhs), t_of_z)
    m0 = _pooling_start(acc, c, f, m_res, n_part, v, m_max)
    menu = _solve_menu("first_moment", setup, model, cons, t_of_z, np.concatenate([c * m0 / v, [f[0] / v]]),
                       maxiter, t0)
    if not menu.success:
        # the interior point can drift out of the feasible set from the pooling start (steep accuracy
        # at small m, large scales): restart from the full-constraint problem's solution, which is
        # feasible here whenever it succeeded (its menu satisfies every first-moment constraint)
        full = solve_full_constraints(c, p, n_part, k, v, accuracy, maxiter=maxiter, m_max=m_max, method=method)
        if full.success:
            x0 = np.concatenate([c * full.m / v, [(full.t[0] - c[0] * full.m[0]) / v]])
            again = _solve_menu("first_moment", setup, model, cons, t_of_z, x0, maxiter, t0,
                                "Restarted from the full-constraint solution. ")
            if again.success:
                return again
    return menu


def solve_full_constraints(costs: np.ndarray, probs: np.ndarray, n_participants: int, k: float = 1.0,
                           value_scale: float = 100.0, accuracy: AccuracyFunction | None = None, *,
                           maxiter: int = 5000, m_max: float | None = None,
                           method: str = "auto") -> ContractMenu:
    """First-moment problem with every constraint and no simplification (P, SPEC §5 "full-constraint").

    Variables ``(m, t)``; IR for all types, IC for all ordered pairs ``i != j``, P-budget per type,
    ``m, t >= 0``; no monotonicity or binding IC imposed. Starts from the pooling contract; when that
    fails, restarts once from the standalone menu. Should match :func:`solve_first_moment` to about 3
    significant digits. ``method`` as in :func:`solve_first_moment`.
    """
    t0 = time.perf_counter()
    setup = _setup(costs, probs, n_participants, k, value_scale, accuracy, m_max, method)
    c, p, n_part, v, acc, draws, f, m_res = setup
    n_t = c.shape[0]
    if n_part == 1:
        return _standalone_menu("full", c, p, n_part, v, acc, draws, f, m_res, t0)
    model = _Model(draws, acc, c, v)
    eye = np.eye(n_t)
    t_of_z = np.hstack([np.zeros((n_t, n_t)), eye])  # z = (X, T), T = t / V
    rows = [np.hstack([-eye, eye])]  # IR: T_i - X_i >= f_i / V
    rhs = [f / v]
    for i in range(n_t):
        for j in range(n_t):
            if i != j:  # IC: (T_i - X_i) - (T_j - (c_i / c_j) X_j) >= 0
                r = np.zeros(2 * n_t)
                r[i], r[n_t + i] = -1.0, 1.0
                r[j], r[n_t + j] = c[i] / c[j], -1.0
                rows.append(r[None, :])
                rhs.append(np.zeros(1))
    rows.append(np.eye(2 * n_t))  # m, t >= 0
    rhs.append(np.zeros(2 * n_t))
    cap, cap_rhs = _capacity_rows(c, v, m_max, 2 * n_t)
    rows.append(cap)
    rhs.append(cap_rhs)
    cons = _Inequalities(model, np.vstack(rows), np.concatenate(rhs), t_of_z)
    m0 = _pooling_start(acc, c, f, m_res, n_part, v, m_max)
    x0 = np.concatenate([c * m0 / v, np.full(n_t, (f[0] + c[0] * m0) / v)])
    menu = _solve_menu("full", setup, model, cons, t_of_z, x0, maxiter, t0)
    if not menu.success:
        # restart from the standalone menu (m_i = m_res_i, t_i = v a(m_res_i)): always feasible here,
        # as IR binds, no type gains from another's standalone item (f_i is its best), and pooled
        # accuracy is at least standalone accuracy, so the budget holds
        again = _solve_menu("full", setup, model, cons, t_of_z, np.concatenate([c * m_res / v, acc(m_res)]), maxiter,
                            t0, "Restarted from the standalone menu. ")
        if again.success:
            return again
    return menu
