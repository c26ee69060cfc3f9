"""Optimal contracts (P, SPEC §5): accuracy, outcomes, reservation, both solvers, benchmark, realisation."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import multinomial

from coopsim.errors import InputError
from economics.contracts import (
    Arctan,
    ContractMenu,
    GeneralisationBound,
    Outcomes,
    PowerLaw,
    complete_information_for,
    expected_information_rent,
    information_cost,
    information_rent,
    multinomial_outcomes,
    multinomial_pmf,
    n_outcomes,
    realise,
    reservation_utilities,
    solve_first_moment,
    solve_full_constraints,
    standalone_optimum,
)

FIVE_TYPE = {
    "big-firm": np.linspace(0.2, 0.04, 5),
    "small-party": np.linspace(1.0, 0.4, 5),
    "mixed": np.array([0.5, 0.4, 0.03, 0.02, 0.001]),
}
TWO_TYPE = [(2, 0.5), (10, 0.1), (10, 0.5), (10, 0.9), (30, 0.3)]


# ---------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("acc", [GeneralisationBound(), GeneralisationBound(k=3.0), PowerLaw(), Arctan()])
def test_accuracy_derivatives_match_finite_differences(acc) -> None:
    m = np.array([80.0, 150.0, 900.0, 5e3, 4e4])
    h = 1e-4 * m
    num1 = (acc(m + h) - acc(m - h)) / (2 * h)
    num2 = (acc.derivative(m + h) - acc.derivative(m - h)) / (2 * h)
    np.testing.assert_allclose(acc.derivative(m), num1, rtol=1e-6)
    np.testing.assert_allclose(acc.second_derivative(m), num2, rtol=1e-5)
    assert np.all(np.diff(acc(m)) > 0) and np.all(acc(m) <= acc.a_max)


def test_generalisation_bound_values_and_clip() -> None:
    a = GeneralisationBound()
    m = 1e4
    assert float(a(m)) == pytest.approx(1 - (math.sqrt(2 * (2 + math.log(m))) + 4) / math.sqrt(m))
    np.testing.assert_array_equal(a(np.array([0.0, 0.1, math.exp(-2), 20.0])), 0.0)  # domain + clip
    np.testing.assert_array_equal(a.derivative(np.array([0.1, 20.0])), 0.0)
    assert float(a(-5.0)) == 0.0


# ---------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(("n", "i"), [(10, 5), (7, 3), (100, 2), (1, 4), (0, 3)])
def test_outcome_enumeration(n: int, i: int) -> None:
    out = multinomial_outcomes(n, i)
    assert out.shape == (math.comb(n + i - 1, i - 1), i) == (n_outcomes(n, i), i)
    assert np.all(out.sum(axis=1) == n) and np.all(out >= 0)
    assert len({tuple(r) for r in out}) == out.shape[0]


def test_pmf_matches_scipy_and_sums_to_one() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    out = multinomial_outcomes(10, 5)
    pmf = multinomial_pmf(out, p)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pmf, multinomial.pmf(out, 10, p), rtol=1e-10)
    assert n_outcomes(10, 5) == 1001


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=12),
       st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=2, max_size=5))
def test_pmf_property_matches_scipy(n: int, raw: list[float]) -> None:
    p = np.array(raw) / np.sum(raw)
    p[-1] = 1.0 - p[:-1].sum()  # exact sum, so scipy's replacement of the last p changes nothing
    out = multinomial_outcomes(n, p.shape[0])
    pmf = multinomial_pmf(out, p)
    assert np.all(pmf >= 0) and pmf.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pmf, multinomial.pmf(out, n, p), rtol=1e-9, atol=1e-300)


def test_pmf_refuses_probabilities_that_do_not_sum_to_one() -> None:
    bad = np.array([0.2, 0.2, 0.2])  # scipy.stats.multinomial would silently use 0.6 for the last
    with pytest.raises(InputError) as err:
        multinomial_pmf(multinomial_outcomes(4, 3), bad)
    assert err.value.field == "probs"


def test_conditional_weights() -> None:
    o = Outcomes.enumerate(6, np.array([0.3, 0.7]))
    np.testing.assert_allclose(o.conditional.sum(axis=0), 1.0)
    assert np.all(o.conditional[o.n[:, 0] == 0, 0] == 0)
    p_present = 1 - 0.7**6
    row = np.flatnonzero((o.n == [1, 5]).all(axis=1))[0]
    assert o.conditional[row, 0] == pytest.approx(o.pmf[row] / p_present)


# ------------------------------------------------------------------------- reservation


def test_reservation_utility_is_standalone_optimum() -> None:
    acc = GeneralisationBound()
    for c in (0.02, 0.01, 0.001):
        m_star, f = standalone_optimum(c, acc)
        grid = np.linspace(1, 20 * m_star, 200_001)
        assert f == pytest.approx(np.max(100 * acc(grid) - c * grid), rel=1e-7)
        assert 100 * float(acc.derivative(m_star)) == pytest.approx(c, rel=1e-4)
    f, m = reservation_utilities(np.array([1.0, 0.5]), acc)
    np.testing.assert_array_equal(f, [0.0, 0.0])  # too expensive to train alone
    np.testing.assert_array_equal(m, [0.0, 0.0])


# ----------------------------------------------------------------------------- solvers


def _assert_valid_menu(menu: ContractMenu) -> None:
    report = menu.check()
    assert menu.success, menu.message
    assert report.ok and report.max_violation <= 1e-5, report.summary()
    assert menu.utility[0] - menu.reservation_utility[0] == pytest.approx(0.0, abs=1e-6)  # type 1's IR binds
    assert np.all(np.diff(menu.m) >= -1e-9)  # monotone contributions
    assert np.all(menu.t <= menu.budget + 1e-5)


def _assert_agree(a: ContractMenu, b: ContractMenu, rtol: float = 5e-4) -> None:
    """Agreement to 3 significant digits."""
    assert b.success, b.message
    assert b.check().ok
    np.testing.assert_allclose(b.m, a.m, rtol=rtol)
    np.testing.assert_allclose(b.t, a.t, rtol=rtol)
    assert b.expected_accuracy == pytest.approx(a.expected_accuracy, rel=rtol)


@pytest.mark.parametrize(("n", "p1"), TWO_TYPE)
def test_two_type_setting(n: int, p1: float) -> None:
    costs, probs = np.array([0.02, 0.01]), np.array([p1, 1 - p1])
    menu = solve_first_moment(costs, probs, n)
    _assert_valid_menu(menu)
    _assert_agree(menu, solve_full_constraints(costs, probs, n))


@pytest.mark.parametrize("name", list(FIVE_TYPE))
def test_five_type_settings(name: str) -> None:
    costs, probs = FIVE_TYPE[name], np.full(5, 0.2)
    menu = solve_first_moment(costs, probs, 10)
    _assert_valid_menu(menu)
    assert menu.outcomes.n.shape[0] == 1001
    _assert_agree(menu, solve_full_constraints(costs, probs, 10))
    # everyone participates voluntarily; cheaper types keep at least as much utility (information rent)
    assert np.all(menu.utility >= menu.reservation_utility - 1e-6)
    assert np.all(np.diff(menu.utility) >= -1e-6)


def test_a_lone_participant_is_offered_its_standalone_optimum() -> None:
    """N = 1, one type: no one to pool with, so the best menu is the type's standalone amount with
    exactly its reservation utility (the pooling start must not fall to m = 0, where a(m) is flat)."""
    costs = np.array([0.02])
    menu = solve_first_moment(costs, np.array([1.0]), 1)
    _assert_valid_menu(menu)
    m_star, _ = standalone_optimum(0.02, GeneralisationBound(), 100.0)
    assert menu.m[0] == pytest.approx(m_star, rel=1e-4)
    assert menu.utility[0] == pytest.approx(menu.reservation_utility[0], abs=1e-6)


@pytest.mark.parametrize(("n", "divisor"), [(1, 1.0), (2, 50.0)])
def test_small_cohorts_solve_in_both_variants(n: int, divisor: float) -> None:
    """Settings where the interior point used to drift to negative m from the pooling start."""
    costs, probs = np.linspace(0.05, 0.01, 3) / divisor, np.full(3, 1 / 3)
    menu = solve_first_moment(costs, probs, n)
    _assert_valid_menu(menu)
    _assert_agree(menu, solve_full_constraints(costs, probs, n))


def test_pluggable_accuracy_functions() -> None:
    costs, probs = np.array([0.02, 0.01]), np.array([0.4, 0.6])
    for acc in (PowerLaw(scale=200.0, gamma=0.7), Arctan(scale=50.0)):
        menu = solve_first_moment(costs, probs, 6, accuracy=acc)
        _assert_valid_menu(menu)
        assert menu.accuracy is acc


def test_check_reports_violations() -> None:
    menu = solve_first_moment(np.array([0.02, 0.01]), np.array([0.5, 0.5]), 5)
    over_budget = dataclasses.replace(menu, t=menu.t + np.array([0.0, 5.0]))
    report = over_budget.check()
    assert not report.ok and report.budget[1] == pytest.approx(5.0, abs=1e-6)
    assert report.ic[0, 1] > 0  # type 1 now prefers type 2's contract
    below_ir = dataclasses.replace(menu, t=menu.t - 1.0)
    assert below_ir.check().ir[0] == pytest.approx(1.0, abs=1e-6)
    negative = dataclasses.replace(menu, m=np.array([-1.0, menu.m[1]]))
    assert negative.check().nonnegative == pytest.approx(1.0)
    assert set(report.summary()) == {"ir", "ic", "budget", "nonnegative", "max"}
    assert len(menu.as_table()) == 2


# ---------------------------------------- independent cross-check (own model, SLSQP, random starts)


def _own_accuracy(m: np.ndarray, k: float = 1.0) -> np.ndarray:
    """SPEC §5 accuracy written out again: 1 - (sqrt(2k(2 + ln(m/k))) + 4)/sqrt(m), m > k e^-2, clip 0."""
    m = np.asarray(m, dtype=np.float64)
    out = np.zeros_like(m)
    live = m > k * math.exp(-2.0)
    ml = m[live]
    out[live] = np.maximum(0.0, 1.0 - (np.sqrt(2 * k * (2 + np.log(ml / k))) + 4) / np.sqrt(ml))
    return out


def _own_first_moment_problem(costs: np.ndarray, probs: np.ndarray, n: int):
    """Outcomes by brute force, pmf from scipy, conditional weights, reservation utilities on a grid."""
    types = len(costs)
    outs = np.array([o for o in itertools.product(range(n + 1), repeat=types) if sum(o) == n])
    pmf = multinomial.pmf(outs, n, probs)
    cond = pmf[:, None] * (outs >= 1)
    cond /= cond.sum(axis=0)
    f = []
    for c in costs:  # f_i = max(0, max_m 100 a(m) - c_i m) on a fine log grid
        grid = np.geomspace(1e-2, 100.0 / c, 400_001)
        f.append(max(0.0, float(np.max(100 * _own_accuracy(grid) - c * grid))))
    return outs, pmf, cond, np.array(f)


def _own_constraints(costs, outs, cond, f, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """All SPEC §5 first-moment constraints as values >= 0 (money units): IR, every IC pair, budget."""
    u = t - costs * m
    ic = [u[i] - (t[j] - costs[i] * m[j]) for i in range(len(costs)) for j in range(len(costs)) if i != j]
    budget = 100 * (cond.T @ _own_accuracy(outs @ m)) - t
    return np.concatenate([u - f, ic, budget])


@pytest.mark.parametrize(
    ("costs", "probs", "n", "starts"),
    [
        ([0.02, 0.01], [0.5, 0.5], 10, 12),
        ([0.02, 0.01], [0.9, 0.1], 5, 12),
        ([0.02, 0.01], [0.3, 0.7], 30, 12),
        ([0.5, 0.4, 0.03, 0.02, 0.001], [0.2] * 5, 10, 6),
    ],
)
def test_solver_beats_independent_slsqp(costs, probs, n: int, starts: int) -> None:
    """No feasible menu found by SLSQP (full constraints, random starts) is better than the solver's.

    Everything here is written again from SPEC §5 (accuracy, outcomes, pmf, reservation utilities,
    constraints); only the menu under test comes from the package.
    """
    costs, probs = np.array(costs), np.array(probs)
    menu = solve_first_moment(costs, probs, n)
    outs, pmf, cond, f = _own_first_moment_problem(costs, probs, n)
    np.testing.assert_allclose(menu.reservation_utility, f, rtol=1e-6, atol=1e-9)
    # the solver's menu is feasible for the independently written constraints ...
    assert _own_constraints(costs, outs, cond, f, menu.m, menu.t).min() >= -1e-5
    assert pmf @ _own_accuracy(outs @ menu.m) == pytest.approx(menu.expected_accuracy, rel=1e-12)
    # ... and SLSQP from random starts finds nothing feasible that is more accurate (tolerance 1e-4)
    types = len(costs)
    scale = 100.0 / costs  # m = scale * x, t = 100 * y: variables of order 1

    def split(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return scale * z[:types], 100.0 * z[types:]

    def constraints(z: np.ndarray) -> np.ndarray:
        return _own_constraints(costs, outs, cond, f, *split(z)) / 100.0

    rng = np.random.default_rng(0)
    found = []
    for _ in range(starts):
        res = minimize(lambda z: -pmf @ _own_accuracy(outs @ split(z)[0]), rng.uniform(0, 1, 2 * types),
                       method="SLSQP", constraints=[{"type": "ineq", "fun": constraints}],
                       bounds=[(0, None)] * (2 * types), options={"maxiter": 1000, "ftol": 1e-13})
        if 100 * constraints(res.x).min() >= -1e-5:
            found.append(-float(res.fun))
    assert found, "SLSQP found no feasible menu: the cross-check is void"
    assert max(found) <= menu.expected_accuracy + 1e-4


def test_check_flags_a_pure_ic_violation() -> None:
    menu = solve_first_moment(np.array([0.02, 0.01]), np.array([0.5, 0.5]), 10)
    assert menu.check().ok
    rent = float(menu.utility[1] - menu.reservation_utility[1])
    assert rent > 1.0  # type 2 keeps an information rent: room to lower t_2 without breaking IR
    cut = dataclasses.replace(menu, t=menu.t - np.array([0.0, 0.5]))  # type 2 now envies type 1
    report = cut.check()
    assert not report.ok and report.max_violation == pytest.approx(0.5, abs=1e-6)
    assert report.ic[1, 0] == pytest.approx(0.5, abs=1e-6)  # local downward IC was binding
    # IR and the budget bind to rounding (~1e-12, the polish's tolerance), nothing else is violated
    assert report.ir.max() <= 1e-12 and report.budget.max() <= 1e-12 and report.nonnegative == 0.0
    # a tolerance is a tolerance: the same menu passes when the caller allows 0.5
    assert cut.check(tol=0.5 + 1e-6).ok


# -------------------------------------------------------------- benchmark and realisation


def test_complete_information_benchmark() -> None:
    menu = solve_first_moment(FIVE_TYPE["big-firm"], np.full(5, 0.2), 10)
    bench = complete_information_for(menu)
    n = menu.outcomes.n
    present = n > 0
    # all surplus extracted: v(a(M)) - c_i m_i = f_i for every present type, and M = n . m
    util = 100 * bench.accuracy[:, None] - menu.costs * bench.m
    np.testing.assert_allclose(util[present], np.broadcast_to(menu.reservation_utility, util.shape)[present],
                               atol=1e-6)
    np.testing.assert_allclose((n * bench.m).sum(axis=1), bench.total_data, rtol=1e-9)
    assert information_cost(menu, bench) >= -1e-12
    rent = information_rent(menu)
    assert np.all(rent >= -1e-6) and rent[0] == pytest.approx(0.0, abs=1e-6)
    assert expected_information_rent(menu) == pytest.approx(10 * 0.2 * rent.sum())


def test_proportional_realisation() -> None:
    menu = solve_first_moment(np.array([0.02, 0.01]), np.array([0.3, 0.7]), 8)
    draws = realise(menu, rng=0, size=40_000)
    assert np.all(draws.reward_accuracy <= draws.model_accuracy[:, None] + 1e-12)
    present = draws.n > 0
    for i in range(2):
        assert draws.reward_value[present[:, i], i].mean() == pytest.approx(menu.t[i], rel=5e-3)
    again = realise(menu, rng=0, size=40_000)
    np.testing.assert_array_equal(again.n, draws.n)
    with pytest.raises(InputError, match="menu"):  # a failed solve may promise more than the model
        realise(dataclasses.replace(menu, success=False), rng=0)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("costs", "probs", "n", "field"),
    [
        ([0.01, 0.02], [0.5, 0.5], 5, "costs"),  # increasing
        ([0.02, 0.02], [0.5, 0.5], 5, "costs"),  # not strict
        ([0.02, -0.01], [0.5, 0.5], 5, "costs"),
        ([0.02, np.nan], [0.5, 0.5], 5, "costs"),
        ([0.02, 0.01], [0.5, 0.6], 5, "probs"),  # does not sum to 1
        ([0.02, 0.01], [1.0, 0.0], 5, "probs"),  # a type that never appears
        ([0.02, 0.01], [0.2, 0.3, 0.5], 5, "probs"),  # shapes disagree
        ([0.02, 0.01], [0.5, np.inf], 5, "probs"),
        ([0.02, 0.01], [0.5, 0.5], 0, "n_participants"),
        ([0.02, 0.01], [0.5, 0.5], 2.5, "n_participants"),
    ],
)
def test_solver_bad_input(costs, probs, n, field: str) -> None:
    for solver in (solve_first_moment, solve_full_constraints):
        with pytest.raises(InputError) as err:
            solver(np.array(costs), np.array(probs), n)
        assert err.value.field == field


def test_accuracy_and_reservation_bad_input() -> None:
    for acc in (GeneralisationBound(), PowerLaw(), Arctan()):
        with pytest.raises(InputError) as err:
            acc(np.array([100.0, np.nan]))  # never mapped to a = 0
        assert err.value.field == "m"
    with pytest.raises(InputError) as err:
        reservation_utilities(np.array([0.02, -0.01]), GeneralisationBound())
    assert err.value.field == "costs"
    with pytest.raises(InputError) as err:
        reservation_utilities(np.array([0.02, np.inf]), GeneralisationBound())
    assert err.value.field == "costs"


def test_solver_bad_scalars() -> None:
    with pytest.raises(InputError, match="value_scale"):
        solve_first_moment(np.array([0.02, 0.01]), np.array([0.5, 0.5]), 3, value_scale=0.0)
    with pytest.raises(InputError, match="k"):
        solve_first_moment(np.array([0.02, 0.01]), np.array([0.5, 0.5]), 3, k=-1.0)
    with pytest.raises(InputError, match="accuracy"):
        solve_first_moment(np.array([0.02, 0.01]), np.array([0.5, 0.5]), 3, accuracy=lambda m: m)


def test_capacity_caps_contributions_and_the_outside_option():
    """m_max (ours): no type contributes more than it holds, the standalone option is capped the
    same way, menus still pass check(), and both solver variants agree."""
    from economics.contracts import GeneralisationBound, reservation_utilities, solve_full_constraints

    costs, probs = np.linspace(0.2, 0.04, 5), np.full(5, 0.2)
    free = solve_first_moment(costs, probs, 10)
    capped = solve_first_moment(costs, probs, 10, m_max=100.0)
    full = solve_full_constraints(costs, probs, 10, m_max=100.0)
    assert free.m.max() > 100.0
    assert capped.success and capped.check().ok and capped.m.max() <= 100.0 + 1e-6
    # the objective depends on m only; with every type pooled at the cap, t is not unique in the
    # full variant (slack IR), so the variants must agree on m and on the expected accuracy
    assert np.allclose(capped.m, full.m, rtol=1e-3)
    assert abs(capped.expected_accuracy - full.expected_accuracy) <= 1e-6 and full.check().ok
    f_cap, m_res = reservation_utilities(costs, GeneralisationBound(), 100.0, m_max=100.0)
    grid = np.linspace(1e-3, 100.0, 200_001)
    brute = [max(0.0, float(np.max(100 * GeneralisationBound()(grid) - c * grid))) for c in costs]
    assert np.allclose(f_cap, brute, atol=1e-3) and (m_res <= 100.0 + 1e-9).all()
    assert capped.expected_accuracy < free.expected_accuracy
