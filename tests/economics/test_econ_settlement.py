"""alpha-power shares (V5), payments (V6), cumulative credit (V4), revenue, and the ledger."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopsim.errors import InputError
from economics.settlement import (
    FixedRevenue,
    Ledger,
    LinearAccuracyRevenue,
    alpha_power_shares,
    cumulative_credit,
    custom_schedule,
    exponential_discount,
    late_emphasis,
    settle,
    uniform_schedule,
)

credit = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
pos_credit = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_infinity=False)
credits = st.lists(credit, min_size=1, max_size=12).map(np.array)
pos_credits = st.lists(pos_credit, min_size=1, max_size=12).map(np.array)
alphas = st.floats(min_value=1.0, max_value=50.0, allow_nan=False)


@given(credits, alphas)
def test_shares_sum_to_one_and_nonnegative(c: np.ndarray, alpha: float) -> None:
    r = alpha_power_shares(c, alpha)
    assert r.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(r >= 0)


@given(pos_credits)
def test_alpha_one_is_proportional(c: np.ndarray) -> None:
    np.testing.assert_allclose(alpha_power_shares(c, 1.0), c / c.sum(), rtol=1e-12, atol=1e-15)


@given(credits, alphas)
def test_order_is_kept(c: np.ndarray, alpha: float) -> None:
    r = alpha_power_shares(c, alpha)
    clipped = np.maximum(c, 0)
    for i in range(len(c)):
        for j in range(len(c)):
            if clipped[i] > clipped[j]:
                assert r[i] >= r[j]
            if clipped[i] == clipped[j]:
                assert r[i] == pytest.approx(r[j], abs=1e-15)


@given(pos_credits, alphas, alphas)
def test_larger_alpha_concentrates_on_the_top(c: np.ndarray, a1: float, a2: float) -> None:
    lo, hi = sorted((a1, a2))
    top = c == c.max()
    assert alpha_power_shares(c, hi)[top].sum() >= alpha_power_shares(c, lo)[top].sum() - 1e-12


@given(pos_credits)
def test_large_alpha_tends_to_winner_take_all(c: np.ndarray) -> None:
    c = np.round(c, 3) + 0.001  # separate near-ties
    top = c == c.max()
    r = alpha_power_shares(c, 1e6)
    np.testing.assert_allclose(r[top], 1.0 / top.sum(), atol=1e-9)
    np.testing.assert_allclose(alpha_power_shares(c, float("inf"))[top], 1.0 / top.sum())


@given(credits, alphas, st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
def test_payments_sum_to_revenue(c: np.ndarray, alpha: float, revenue: float) -> None:
    p = settle(c, alpha, revenue)
    assert p.sum() == pytest.approx(revenue, rel=1e-12, abs=1e-9)
    assert np.all(p >= 0)


@given(credits, alphas)
def test_negative_credit_earns_nothing_by_default(c: np.ndarray, alpha: float) -> None:
    r = alpha_power_shares(c, alpha)
    if np.any(c > 0):
        assert np.all(r[c <= 0] == 0)


@given(credits, alphas)
def test_penalty_mode_signs_and_normalisation(c: np.ndarray, alpha: float) -> None:
    r = alpha_power_shares(c, alpha, negative="penalty")
    if np.any(c != 0):
        assert np.abs(r).sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(np.sign(r[np.abs(r) > 0]) == np.sign(c[np.abs(r) > 0]))
        assert r.sum() <= 1.0 + 1e-12


def test_all_zero_options() -> None:
    c = np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(alpha_power_shares(c, 2.0), [1 / 3] * 3)
    np.testing.assert_array_equal(alpha_power_shares(c, 2.0, all_zero="nothing"), [0.0] * 3)
    np.testing.assert_array_equal(settle(c, 1.0, 90.0, all_zero="nothing"), [0.0] * 3)
    np.testing.assert_allclose(settle(c, 1.0, 90.0), [30.0] * 3)


def test_large_alpha_does_not_overflow() -> None:
    r = alpha_power_shares(np.array([1e300, 5e299]), 500.0)
    assert np.all(np.isfinite(r)) and r[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: alpha_power_shares(np.array([1.0, np.nan]), 1.0), "C"),
        (lambda: alpha_power_shares(np.array([1.0, np.inf]), 1.0), "C"),
        (lambda: alpha_power_shares(np.array([]), 1.0), "C"),
        (lambda: alpha_power_shares(np.array([1.0]), 0.5), "alpha"),
        (lambda: alpha_power_shares(np.array([1.0]), float("nan")), "alpha"),
        (lambda: alpha_power_shares(np.array([1.0]), True), "alpha"),  # a bool is not an exponent
        (lambda: alpha_power_shares(np.array([1.0]), "2"), "alpha"),
        (lambda: alpha_power_shares(np.array([1.0]), float("-inf")), "alpha"),
        (lambda: settle(np.array([1.0, 2.0]), 0.99, 10.0), "alpha"),
        (lambda: alpha_power_shares(np.ones((2, 2)), 1.0), "C"),  # shape: one credit per member
        (lambda: alpha_power_shares(np.array([1.0]), 1.0, negative="refund"), "negative"),
        (lambda: alpha_power_shares(np.array([1.0]), 1.0, all_zero="burn"), "all_zero"),
        (lambda: settle(np.array([1.0]), 1.0, -5.0), "revenue"),
        (lambda: settle(np.array([1.0]), 1.0, float("inf")), "revenue"),
    ],
)
def test_share_errors(call, field: str) -> None:
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field


# --------------------------------------------------------------------------- schedules


def test_schedules() -> None:
    steps = np.array([3, 4, 5, 6])
    np.testing.assert_allclose(uniform_schedule()(steps), 1.0)
    np.testing.assert_allclose(exponential_discount(0.5)(steps), [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(late_emphasis(1.0)(steps), [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(late_emphasis(0.0)(steps), 1.0)
    np.testing.assert_allclose(custom_schedule({3: 1, 4: 0, 5: 2, 6: 1})(steps), [1, 0, 2, 1])
    mat = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(cumulative_credit(mat, steps, exponential_discount(0.5)),
                               [1 + 1 + 0.125, 0.5 + 0.25 + 0.125])
    with pytest.raises(InputError, match="gamma"):
        exponential_discount(0.0)
    with pytest.raises(InputError, match="schedule"):
        cumulative_credit(mat, steps, custom_schedule(lambda s: -np.ones(len(s))))
    with pytest.raises(InputError, match="schedule"):
        custom_schedule({3: 1.0})(steps)
    with pytest.raises(InputError, match="credits"):
        cumulative_credit(np.array([[np.nan, 1.0]]), [0])
    with pytest.raises(InputError, match="steps"):
        cumulative_credit(mat, [0, 1])


def test_revenue_models() -> None:
    rev = LinearAccuracyRevenue(r0=200.0, acc0=0.2)
    assert rev(0.1) == 0.0
    assert rev(0.6) == pytest.approx(100.0)
    assert rev(1.0) == pytest.approx(200.0)
    assert FixedRevenue(50.0)(0.3) == 50.0
    with pytest.raises(InputError, match="acc0"):
        LinearAccuracyRevenue(acc0=1.0)
    with pytest.raises(InputError, match="accuracy"):
        rev(float("nan"))
    with pytest.raises(InputError, match="r0"):
        LinearAccuracyRevenue(r0=-1.0)


# ------------------------------------------------------------------------------ ledger


def test_ledger_settles_and_traces_payments() -> None:
    led = Ledger()
    led.record(0, ["a", "b"], [1.0, 3.0])
    led.record(1, ["a", "b", "c"], [1.0, -1.0, 2.0])
    led.record(2, ["a", "c"], [2.0, 0.0])
    members, cum = led.cumulative()
    assert members == ("a", "b", "c")
    np.testing.assert_allclose(cum, [4.0, 2.0, 2.0])
    s = led.settle(revenue=80.0, alpha=1.0)
    np.testing.assert_allclose(s.payments, [40.0, 20.0, 20.0])
    assert s.payments.sum() == pytest.approx(80.0)
    # every payment is the sum of its per-step parts, each proportional to that step's credit
    np.testing.assert_allclose(s.per_step.sum(axis=0), s.payments)
    assert s.trace("a") == pytest.approx({0: 10.0, 1: 10.0, 2: 20.0})
    assert s.trace("b") == pytest.approx({0: 30.0, 1: -10.0, 2: 0.0})
    assert s.payment_of("c") == pytest.approx(20.0)
    assert led.unsettled_steps == []
    with pytest.raises(InputError, match="steps"):
        led.settle(10.0, steps=[1])


def test_ledger_without_history_pays_the_same_and_forgets_settled_steps() -> None:
    """history=False: the same settlements (V4–V6), but only the open horizon stays in memory."""
    kept, lean = Ledger(), Ledger(history=False)
    rng = np.random.default_rng(0)
    for t in range(6):
        ids = np.sort(rng.choice(50, size=20, replace=False))
        credit = rng.normal(size=20)
        for led in (kept, lean):
            led.record(t, ids, credit)
        if t % 2 == 1:
            a, b = kept.settle(10.0, alpha=1.5), lean.settle(10.0, alpha=1.5)
            assert a.members == b.members
            np.testing.assert_array_equal(a.payments, b.payments)
            assert lean.steps == [] and len(lean.settlements) == 1
    assert len(kept.settlements) == 3 and kept.steps == list(range(6))
    with pytest.raises(InputError, match="step"):
        lean.record(3, [1], [1.0])  # a settled step stays settled


def test_ledger_matches_integer_ids_across_steps() -> None:
    """Integer ids take the array path: members in order of first appearance, absent ones at 0."""
    led = Ledger()
    led.record(0, np.array([5, 2, 9]), [1.0, 2.0, 3.0])
    led.record(1, [9, 7], [4.0, 5.0])
    assert led.members() == (5, 2, 9, 7)
    np.testing.assert_array_equal(led.matrix([0, 1], [9, 7, 5, 2]), [[3.0, 0.0, 1.0, 2.0], [4.0, 5.0, 0.0, 0.0]])
    # one step: its own record when the members are exactly its ids (a copy), else the general path
    one = led.matrix([0], [5, 2, 9])
    np.testing.assert_array_equal(one, [[1.0, 2.0, 3.0]])
    one[0, 0] = 99.0
    np.testing.assert_array_equal(led.matrix([0], [5, 2, 9]), [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(led.matrix([0], [9, 5, 2]), [[3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(led.matrix([0], [2, 7]), [[2.0, 0.0]])


def test_ledger_refuses_a_repeated_step() -> None:
    """A step named twice would count its credit twice (V4): refused, naming the step."""
    led = Ledger()
    led.record(0, ["a", "b"], [1.0, 2.0])
    led.record(1, ["a", "b"], [1.0, 1.0])
    for call in (lambda: led.cumulative(steps=[0, 0, 1]), lambda: led.settle(100.0, steps=[0, 0, 1])):
        with pytest.raises(InputError, match=r"steps=\[0\]"):
            call()
    assert led.unsettled_steps == [0, 1]


def test_ledger_horizons_and_schedules() -> None:
    led = Ledger()
    for t in range(4):
        led.record(t, [0, 1], [1.0, float(t)])
    first = led.settle(10.0, alpha=2.0, steps=[0, 1], schedule=late_emphasis(1.0))
    np.testing.assert_allclose(first.cumulative, [0.5 + 1.0, 0.0 + 1.0])
    np.testing.assert_allclose(first.shares, np.array([2.25, 1.0]) / 3.25)
    second = led.settle(10.0)
    np.testing.assert_array_equal(second.steps, [2, 3])
    np.testing.assert_allclose(second.per_step.sum(axis=0), second.payments)
    assert len(led.settlements) == 2


def test_ledger_all_zero_equal_split_is_traced_evenly() -> None:
    led = Ledger()
    led.record(0, ["x", "y"], [0.0, 0.0])
    led.record(1, ["x", "y"], [0.0, -2.0])
    s = led.settle(10.0)
    np.testing.assert_allclose(s.payments, [5.0, 5.0])
    np.testing.assert_allclose(s.per_step.sum(axis=0), s.payments)


def test_ledger_errors() -> None:
    led = Ledger()
    led.record(0, ["a"], [1.0])
    with pytest.raises(InputError, match="step"):
        led.record(0, ["a"], [1.0])
    with pytest.raises(InputError, match="credits"):
        led.record(1, ["a", "b"], [1.0])
    with pytest.raises(InputError, match="credits"):
        led.record(2, ["a"], [np.nan])
    with pytest.raises(InputError, match="members"):
        led.record(3, ["a", "a"], [1.0, 1.0])
    with pytest.raises(InputError, match="steps"):
        led.settle(1.0, steps=[99])
    with pytest.raises(InputError, match="alpha"):
        led.settle(1.0, alpha=0.2)


@settings(max_examples=50)
@given(st.lists(st.lists(credit, min_size=3, max_size=3), min_size=1, max_size=6), alphas,
       st.floats(min_value=0.0, max_value=1e4, allow_nan=False))
def test_ledger_payments_always_traceable(rows: list[list[float]], alpha: float, revenue: float) -> None:
    led = Ledger()
    for t, row in enumerate(rows):
        led.record(t, ["a", "b", "c"], row)
    s = led.settle(revenue, alpha=alpha)
    np.testing.assert_allclose(s.per_step.sum(axis=0), s.payments, atol=1e-9 * max(1.0, revenue))
    assert s.payments.sum() == pytest.approx(revenue, rel=1e-12, abs=1e-9)
