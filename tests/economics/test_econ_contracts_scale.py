"""Contracts at scale (P, SPEC §5; issue 17): the expectations over the type draws by convolution of
the pooled-data distribution (``economics.contracts.pooled``) against enumeration of every outcome.

Tolerances: expectations (value, budgets, gradients, Hessians) agree with enumeration within
``RTOL = 1e-8`` relative (to the largest entry of each quantity); solver results (m, t, expected
accuracy) within ``RTOL`` too. Moments of the pooled total up to the third are kept by every
reduction, so they match the exact ones within ``MOMENT_RTOL = 1e-10``. No timing is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from coopsim.errors import InputError
from economics.contracts import (
    Arctan,
    ConvolvedDraws,
    EnumeratedDraws,
    GeneralisationBound,
    Outcomes,
    PowerLaw,
    complete_information_for,
    expected_budgets,
    solve_first_moment,
    solve_full_constraints,
    sum_distribution,
    type_draws,
)

RTOL = 1e-8
MOMENT_RTOL = 1e-10

FAMILIES = {
    "bound": GeneralisationBound(),
    "bound-k3": GeneralisationBound(k=3.0, a_max=0.9),
    "power": PowerLaw(),
    "power-steep": PowerLaw(scale=50.0, gamma=1.5),
    "arctan": Arctan(),
    "arctan-wide": Arctan(scale=200.0, a_max=0.8),
}
# (N, probabilities): two to five types, uniform, skewed, with a rare type, and a sum off 1 by 5e-10
DRAWS = [
    (1, [0.3, 0.7]),
    (2, [0.2, 0.5, 0.3]),
    (3, [0.2] * 5),
    (7, [0.05, 0.1, 0.15, 0.3, 0.4]),
    (15, [0.3, 0.7 + 5e-10]),
    (16, [0.01, 0.3, 0.3, 0.39]),
    (25, [0.2] * 5),
    (40, [0.2, 0.5, 0.3]),
    (40, [0.1, 0.15, 0.2, 0.25, 0.3]),
]


def _menus(k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Spread menus, a pooling menu, ties, an unsorted one (full-constraint iterates) and a zero."""
    spread = np.sort(rng.uniform(20.0, 600.0, k))
    ties = np.repeat(rng.uniform(100.0, 500.0), k) + np.r_[np.zeros(k - 1), 7.5]
    unsorted = rng.permutation(rng.uniform(50.0, 900.0, k))
    zero = np.r_[0.0, np.sort(rng.uniform(80.0, 400.0, k - 1))]
    return [spread, np.full(k, 321.0), ties, unsorted, zero]


def _close(got, want, what: str) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want))) / scale
    assert err <= RTOL, f"{what}: relative difference {err:.3g} > {RTOL}"


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(("n", "probs"), DRAWS, ids=[f"N{n}-I{len(p)}" for n, p in DRAWS])
def test_convolution_matches_enumeration(family: str, n: int, probs: list[float]) -> None:
    acc = FAMILIES[family]
    p = np.array(probs)
    rng = np.random.default_rng(n * 31 + len(probs))
    fast, exact = ConvolvedDraws(n, p), EnumeratedDraws.create(n, p)
    for m in _menus(len(p), rng):
        a, b = exact.first_moments(acc, m, order=2), fast.first_moments(acc, m, order=2)
        lam = rng.uniform(0.0, 1.0, len(p))
        for what, got, want in (
            ("value", b.value, a.value),
            ("budget", b.budget, a.budget),
            ("grad", b.grad, a.grad),
            ("budget_jac", b.budget_jac, a.budget_jac),
            ("hess", b.hess, a.hess),
            ("budget_hess", b.budget_hess(lam), a.budget_hess(lam)),
        ):
            _close(got, want, f"{what} at m={np.round(m, 2).tolist()}")
        low = fast.first_moments(acc, m)  # order 0: the same value and budgets, no derivatives
        assert low.grad is None and low.value == b.value
        np.testing.assert_array_equal(low.budget, b.budget)


@pytest.mark.parametrize(("n", "k"), [(1024, 3), (1024, 2), (200, 4)])
def test_convolution_matches_enumeration_at_large_n(n: int, k: int) -> None:
    """Large N where enumeration is still feasible (C(N+I−1, I−1) outcomes <= 5e6)."""
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.ones(k))
    fast, exact = ConvolvedDraws(n, p), EnumeratedDraws.create(n, p)
    for acc in (GeneralisationBound(), PowerLaw(), Arctan()):
        m = np.sort(rng.uniform(5.0, 500.0, k))
        a, b = exact.first_moments(acc, m, order=2), fast.first_moments(acc, m, order=2)
        _close(b.value, a.value, "value")
        _close(b.budget, a.budget, "budget")
        _close(b.grad, a.grad, "grad")
        _close(b.hess, a.hess, "hess")


@pytest.mark.parametrize("n", [2, 5, 64, 1024, 5000])
def test_pooled_total_keeps_three_moments(n: int) -> None:
    """Every reduction keeps each cell's mass, mean, variance and third moment, so the total's first
    three moments are exact (up to rounding and trimmed tails of 1e-16)."""
    values = np.array([0.0, 37.5, 120.0, 121.0, 900.0])
    q = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    x, w = sum_distribution(values, q, n)
    mu = q @ values
    k2 = q @ (values - mu) ** 2
    k3 = q @ (values - mu) ** 3
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert x @ w == pytest.approx(n * mu, rel=MOMENT_RTOL)
    assert ((x - n * mu) ** 2) @ w == pytest.approx(n * k2, rel=MOMENT_RTOL)
    assert ((x - n * mu) ** 3) @ w == pytest.approx(n * k3, rel=1e3 * MOMENT_RTOL, abs=1e-6 * (n * k2) ** 1.5)
    assert x.min() >= -1e-9 and x.max() <= n * values.max() + 1e-6


def test_pooled_total_is_exact_for_few_distinct_totals() -> None:
    """Two participants: the atoms are the distinct pair totals with their probabilities."""
    values, q = np.array([1.0, 2.5, 4.0]), np.array([0.2, 0.3, 0.5])
    x, w = sum_distribution(values, q, 2)
    order = np.argsort(x)
    totals = (values[:, None] + values[None, :]).ravel()
    probs = (q[:, None] * q[None, :]).ravel()
    want_x, inverse = np.unique(totals, return_inverse=True)
    want_w = np.bincount(inverse, weights=probs)
    np.testing.assert_allclose(x[order], want_x, rtol=1e-14)
    np.testing.assert_allclose(w[order], want_w, rtol=1e-14)
    x1, w1 = sum_distribution(np.full(3, 7.0), q, 9)  # equal contributions: one atom
    np.testing.assert_array_equal(x1, [63.0])
    assert w1[0] == pytest.approx(1.0)


SOLVER_CASES = [
    ("two-type", [0.02, 0.01], [0.5, 0.5], 10, None),
    ("two-type-skewed", [0.02, 0.01], [0.9, 0.1], 5, None),
    ("big-firm", list(np.linspace(0.2, 0.04, 5)), [0.2] * 5, 10, None),
    ("mixed", [0.5, 0.4, 0.03, 0.02, 0.001], [0.2] * 5, 10, None),
    ("big-firm-20", list(np.linspace(0.2, 0.04, 5)), [0.2] * 5, 20, None),
    ("big-firm-40", list(np.linspace(0.2, 0.04, 5)), [0.2] * 5, 40, None),
    ("three-power", [0.05, 0.03, 0.01], [0.5, 0.3, 0.2], 12, PowerLaw(scale=200.0, gamma=0.7)),
    ("two-arctan", [0.02, 0.01], [0.4, 0.6], 6, Arctan(scale=50.0)),
]


def _agree(a, b) -> None:
    assert a.success and b.success, (a.message, b.message)
    _close(b.m, a.m, "m")
    _close(b.t, a.t, "t")
    _close(b.expected_accuracy, a.expected_accuracy, "expected accuracy")
    _close(b.budget, a.budget, "budget")


@pytest.mark.parametrize(("name", "costs", "probs", "n", "acc"), SOLVER_CASES, ids=[c[0] for c in SOLVER_CASES])
def test_solver_by_convolution_equals_solver_by_enumeration(name, costs, probs, n, acc) -> None:
    costs, probs = np.array(costs), np.array(probs)
    exact = solve_first_moment(costs, probs, n, accuracy=acc, method="enumeration")
    fast = solve_first_moment(costs, probs, n, accuracy=acc, method="convolution")
    assert fast.draws.method == "convolution" and exact.draws.method == "enumeration"
    _agree(exact, fast)
    # the fast menu's budgets and accuracy, recomputed from enumerated outcomes
    outcomes = Outcomes.enumerate(n, probs)
    _close(expected_budgets(outcomes, fast.accuracy, fast.m, fast.value_scale), fast.budget, "budget vs outcomes")
    _close(outcomes.pmf @ fast.accuracy(outcomes.n @ fast.m), fast.expected_accuracy, "accuracy vs outcomes")


def test_full_constraint_solver_by_convolution_equals_enumeration() -> None:
    costs, probs = np.array([0.5, 0.4, 0.03, 0.02, 0.001]), np.full(5, 0.2)
    _agree(solve_full_constraints(costs, probs, 10, method="enumeration"), solve_full_constraints(costs, probs, 10))


def test_a_thousand_participants_and_five_types() -> None:
    """K = 5, N = 1024 (the authors' scaling study; C(1028, 4) = 4.6e10 outcomes): a valid menu."""
    costs, probs = np.linspace(0.2, 0.04, 5), np.full(5, 0.2)
    menu = solve_first_moment(costs, probs, 1024)
    assert menu.success, menu.message
    assert menu.check().ok and np.all(np.diff(menu.m) >= -1e-9)
    assert menu.utility[0] - menu.reservation_utility[0] == pytest.approx(0.0, abs=1e-6)
    smaller = solve_first_moment(costs, probs, 256)
    assert menu.expected_accuracy > smaller.expected_accuracy  # more participants, a better model
    # P(n_i = 0) = 0.8^1024 is negligible: each budget is the unconditional expected accuracy
    np.testing.assert_allclose(menu.budget, menu.value_scale * menu.expected_accuracy, rtol=1e-12)


def test_enumeration_is_refused_with_the_limit_named_where_it_does_not_fit() -> None:
    costs, probs = np.linspace(0.2, 0.04, 5), np.full(5, 0.2)
    with pytest.raises(InputError) as err:
        solve_first_moment(costs, probs, 256, method="enumeration")  # 1.9e8 outcomes
    assert err.value.field == "n_participants" and err.value.value == 256
    assert "at most 5000000 outcomes" in str(err.value)
    menu = solve_first_moment(costs, probs, 256)  # the default needs no outcomes
    assert menu.success and menu.draws.method == "convolution"
    small = solve_first_moment(costs, probs, 10)  # where enumeration is cheaper, the default enumerates
    assert small.draws.method == "enumeration"
    with pytest.raises(InputError) as err:  # the complete-information benchmark solves per outcome
        complete_information_for(menu)
    assert err.value.field == "n_participants"
    with pytest.raises(InputError) as err:
        type_draws(10, probs, method="sampling")
    assert err.value.field == "method" and "convolution" in str(err.value)
    with pytest.raises(InputError) as err:
        ConvolvedDraws.create(10, np.array([0.5, 0.6]))
    assert err.value.field == "probs"
    with pytest.raises(InputError) as err:
        ConvolvedDraws.create(3, probs).first_moments(GeneralisationBound(), np.ones(4))
    assert err.value.field == "m"
