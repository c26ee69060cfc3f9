"""Metrics: fairness, Gini, individual rationality, budget balance, welfare, free-rider profit."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import pearsonr

from coopsim.errors import InputError
from economics.metrics import (
    budget_balance,
    fairness,
    free_rider_profit,
    gini,
    individual_rationality_rate,
    welfare,
)

vec = st.lists(st.floats(min_value=-100, max_value=100, allow_nan=False), min_size=3, max_size=10)


def test_fairness_matches_scaled_pearson() -> None:
    x = np.array([0.5, 0.7, 0.9, 0.6])
    y = np.array([0.8, 0.85, 0.97, 0.8])
    assert fairness(x, y) == pytest.approx(100 * pearsonr(x, y)[0])
    assert fairness(x, 2 * x + 1) == pytest.approx(100.0)
    assert fairness(x, -x) == pytest.approx(-100.0)


def test_fairness_constant_vector_is_undefined() -> None:
    # a correlation over a constant vector is undefined: NaN by default (reported as null + reason), never 0
    x = np.array([0.9, 0.9, 0.9])
    y = np.array([0.1, 0.5, 0.7])
    assert np.isnan(fairness(x, y))
    assert np.isnan(fairness(y, x))
    assert np.isnan(fairness(x, x))
    assert fairness(x, y, if_constant=100.0) == 100.0


@given(vec, vec)
def test_fairness_is_scaled_pearson_or_the_constant_fallback(xs: list[float], ys: list[float]) -> None:
    n = min(len(xs), len(ys))
    x, y = np.array(xs[:n]), np.array(ys[:n])
    rho = fairness(x, y)
    if np.ptp(x) <= 1e-12 * max(1.0, np.abs(x).max()) or np.ptp(y) <= 1e-12 * max(1.0, np.abs(y).max()):
        assert np.isnan(rho)  # undefined for a constant vector (documented), never a number
        return
    assert -100.0 <= rho <= 100.0
    if min(np.std(x), np.std(y)) > 1e-6:  # well-conditioned: must agree with scipy
        assert rho == pytest.approx(100 * pearsonr(x, y)[0], abs=1e-9)
        assert fairness(2 * x + 3, y) == pytest.approx(rho, abs=1e-9)  # invariant to affine rescaling
        assert fairness(x, -y) == pytest.approx(-rho, abs=1e-9)


def test_fairness_errors() -> None:
    with pytest.raises(InputError, match="y"):
        fairness(np.ones(3), np.ones(4))
    with pytest.raises(InputError, match="x"):
        fairness(np.array([1.0]), np.array([1.0]))
    with pytest.raises(InputError, match="x"):
        fairness(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_gini() -> None:
    assert gini(np.array([5.0, 5.0, 5.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 12.0])) == pytest.approx(0.75)  # (n-1)/n for one holder
    assert gini(np.zeros(3)) == 0.0
    x = np.array([1.0, 2.0, 3.0, 10.0])
    brute = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert gini(x) == pytest.approx(brute)
    with pytest.raises(InputError, match="x"):
        gini(np.array([1.0, -1.0]))


def test_ir_rate_budget_welfare() -> None:
    u = np.array([1.0, 2.0, -0.5, 3.0])
    assert individual_rationality_rate(u) == 0.75
    assert individual_rationality_rate(u, np.array([1.0, 3.0, -1.0, 3.0])) == 0.75
    assert individual_rationality_rate(u, 2.0, tol=1.0) == 0.75
    assert budget_balance(np.array([30.0, 50.0]), 100.0) == 20.0
    assert budget_balance(np.array([30.0, 80.0]), 100.0) == -10.0
    assert welfare(u) == 5.5
    with pytest.raises(InputError, match="reservation"):
        individual_rationality_rate(u, np.ones(3))


def test_free_rider_profit() -> None:
    u = np.array([5.0, 7.0, 1.0, 3.0])
    fr = np.array([True, True, False, False])
    assert free_rider_profit(u, fr) == pytest.approx(4.0)
    assert math.isnan(free_rider_profit(u, np.zeros(4, dtype=bool)))
    assert math.isnan(free_rider_profit(u, np.ones(4, dtype=bool)))
    with pytest.raises(InputError, match="is_free_rider"):
        free_rider_profit(u, np.array([1, 0, 1, 0]))


def test_economics_imports_no_other_layer() -> None:
    root = Path(__file__).resolve().parents[2] / "economics"
    forbidden = {"learning", "sim", "scenarios", "torch"}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
