"""Shapley / leave-one-out on toy games with closed forms; counterfactual (V3); FedAvg reconstruction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from coopsim.errors import InputError
from economics.shapley import CoalitionCache, n_permutations_for
from economics.valuation import (
    fedavg_first_order,
    fedavg_one_step_counterfactual,
    fedavg_reconstruction_shapley,
    leave_one_out,
    multi_round_reconstruction,
    one_step_counterfactual,
    one_step_first_order,
    shapley_exact,
    shapley_permutation,
    update_coalition_game,
)

# ----------------------------------------------------------------------------- toy games


def glove_game(left: set[int], right: set[int]):
    return lambda s: float(min(len(s & left), len(s & right)))


def airport_game(costs: list[float]):
    return lambda s: float(max((costs[i] for i in s), default=0.0))


def weighted_voting(quota: float, weights: list[float]):
    return lambda s: 1.0 if sum(weights[i] for i in s) >= quota else 0.0


def test_glove_game_closed_form() -> None:
    # one left glove, two right gloves: the scarce side gets 2/3
    game = glove_game({0}, {1, 2})
    np.testing.assert_allclose(shapley_exact(game, 3), [2 / 3, 1 / 6, 1 / 6], atol=1e-12)
    # two left, two right: symmetric, v(N) = 2
    np.testing.assert_allclose(shapley_exact(glove_game({0, 1}, {2, 3}), 4), [0.5] * 4, atol=1e-12)
    # leave-one-out: removing the only left glove loses 1, a right glove loses nothing
    np.testing.assert_allclose(leave_one_out(game, 3), [1.0, 0.0, 0.0], atol=1e-12)


def test_airport_game_closed_form() -> None:
    costs = [1.0, 3.0, 4.0, 8.0]
    n = len(costs)
    expected = np.zeros(n)
    prev = 0.0
    for j, c in enumerate(costs):  # each segment is shared equally by the members who need it
        expected[j:] += (c - prev) / (n - j)
        prev = c
    np.testing.assert_allclose(shapley_exact(airport_game(costs), n), expected, atol=1e-12)
    np.testing.assert_allclose(leave_one_out(airport_game(costs), n), [0, 0, 0, 4.0], atol=1e-12)


def test_weighted_voting_closed_form() -> None:
    # [51; 50, 49, 1]: player 0 pivotal unless last... Shapley-Shubik = (2/3, 1/6, 1/6)
    np.testing.assert_allclose(shapley_exact(weighted_voting(51, [50, 49, 1]), 3), [2 / 3, 1 / 6, 1 / 6],
                               atol=1e-12)
    # simple majority of 5 equal voters: 1/5 each; a dummy player gets 0
    np.testing.assert_allclose(shapley_exact(weighted_voting(3, [1] * 5), 5), [0.2] * 5, atol=1e-12)
    np.testing.assert_allclose(shapley_exact(weighted_voting(4, [3, 1, 1, 0]), 4), [2 / 3, 1 / 6, 1 / 6, 0],
                               atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_glove_game_one_left_k_right(k: int) -> None:
    # closed form: the single left glove gets k/(k+1), each right glove 1/(k(k+1)); v(N) = 1
    phi = shapley_exact(glove_game({0}, set(range(1, k + 1))), k + 1)
    expected = np.array([k / (k + 1)] + [1 / (k * (k + 1))] * k)
    np.testing.assert_allclose(phi, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_airport_game_littlechild_owen_unsorted(seed: int) -> None:
    # Littlechild-Owen: sort the costs; segment j (from c_(j-1) to c_(j)) is shared equally by the
    # n - j members who need it. Members are given in shuffled order, with ties.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    costs = list(rng.choice([1.0, 2.5, 4.0, 7.0, 9.5], size=n))
    order = np.argsort(costs, kind="stable")
    expected = np.zeros(n)
    prev = 0.0
    for rank, i in enumerate(order):
        share = (costs[i] - prev) / (n - rank)
        expected[order[rank:]] += share
        prev = costs[i]
    np.testing.assert_allclose(shapley_exact(airport_game(costs), n), expected, atol=1e-12)
    assert expected.sum() == pytest.approx(max(costs))  # efficiency: the runway is paid for


def test_un_security_council_voting_game() -> None:
    # 5 permanent members (weight 7, veto) + 10 others (weight 1), quota 39 (Shapley & Shubik 1954).
    # A non-permanent member is pivotal only after all 5 permanent and exactly 3 of the other 9:
    # phi = C(9, 3) 8! 6! / 15!; the permanent members share the rest equally.
    weights = [7.0] * 5 + [1.0] * 10
    phi = shapley_exact(weighted_voting(39, weights), 15)
    small = math.comb(9, 3) * math.factorial(8) * math.factorial(6) / math.factorial(15)
    big = (1.0 - 10 * small) / 5
    np.testing.assert_allclose(phi, [big] * 5 + [small] * 10, atol=1e-12)
    assert big == pytest.approx(0.19627, abs=1e-5) and small == pytest.approx(0.0018648, abs=1e-7)


def test_unanimity_game() -> None:
    carrier = {1, 3, 4}
    game = lambda s: 1.0 if carrier <= s else 0.0  # noqa: E731
    phi = shapley_exact(game, 6)
    np.testing.assert_allclose(phi, [0, 1 / 3, 0, 1 / 3, 1 / 3, 0], atol=1e-12)


def test_permutation_shapley_on_toy_games() -> None:
    game = glove_game({0}, {1, 2})
    est = shapley_permutation(game, 3, n_permutations=6000, rng=0)
    np.testing.assert_allclose(est, [2 / 3, 1 / 6, 1 / 6], atol=0.02)
    est = shapley_permutation(weighted_voting(51, [50, 49, 1]), 3, epsilon=0.02, delta=0.01, rng=1)
    np.testing.assert_allclose(est, [2 / 3, 1 / 6, 1 / 6], atol=0.03)
    costs = [1.0, 3.0, 4.0, 8.0]
    est = shapley_permutation(airport_game(costs), 4, n_permutations=4000, rng=2)
    assert est.sum() == pytest.approx(8.0)  # efficiency holds exactly per permutation


def test_permutation_count_formula() -> None:
    assert n_permutations_for(0.1, 0.1) == 150  # ceil(ln 20 / 0.02)
    assert n_permutations_for(0.05, 0.05) == int(np.ceil(np.log(40) / (2 * 0.05**2)))


def test_cache_evaluates_each_coalition_once() -> None:
    calls: list[frozenset[int]] = []

    def utility(s: frozenset[int]) -> float:
        calls.append(s)
        return float(len(s)) ** 2

    cache = CoalitionCache(utility, 4)
    shapley_exact(cache, 4)
    assert len(calls) == 16 and cache.n_evaluations == 16
    shapley_permutation(cache, 4, n_permutations=50, rng=0)
    leave_one_out(cache, 4)
    assert len(calls) == 16  # everything reused
    assert cache.value([0, 2]) == 4.0


def test_cache_rejects_nan_utility_and_bad_members() -> None:
    cache = CoalitionCache(lambda s: float("nan"), 2)
    with pytest.raises(InputError, match="utility"):
        cache.value([0])
    with pytest.raises(InputError, match="coalition"):
        CoalitionCache(lambda s: 1.0, 2).value([5])
    with pytest.raises(InputError, match="n_players"):
        shapley_exact(lambda s: 1.0, 30)


# ------------------------------------------------------------------- counterfactual (V3)


def quadratic_oracle(target: np.ndarray, counter: list[int] | None = None):
    def loss_at(params: np.ndarray) -> np.ndarray:
        if counter is not None:
            counter.append(params.shape[0])
        return 0.5 * np.sum((params - target[None, :]) ** 2, axis=1)

    return loss_at


def test_one_step_counterfactual_matches_definition() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=6)
    theta = rng.normal(size=6)
    updates = rng.normal(size=(4, 6))
    updates[2] = 0.0
    calls: list[int] = []
    loss_at = quadratic_oracle(target, calls)
    c = one_step_counterfactual(theta, updates, 0.1, loss_at)
    base = 0.5 * np.sum((theta - target) ** 2)
    for i in range(4):
        expected = base - 0.5 * np.sum((theta - 0.1 * updates[i] - target) ** 2)
        assert c[i] == pytest.approx(expected, abs=1e-12)
    assert c[2] == 0.0
    assert calls == [4]  # one batched call: theta + the three non-zero members


def test_counterfactual_zero_update_not_evaluated_and_base_loss() -> None:
    calls: list[int] = []
    loss_at = quadratic_oracle(np.zeros(3), calls)
    out = one_step_counterfactual(np.ones(3), np.zeros((5, 3)), 0.5, loss_at)
    np.testing.assert_array_equal(out, np.zeros(5))
    assert calls == []
    out = one_step_counterfactual(np.ones(3), np.eye(3), 1.0, loss_at, base_loss=1.5, batch_size=2)
    np.testing.assert_allclose(out, [0.5, 0.5, 0.5])
    assert calls == [2, 1]


def test_gradient_descent_direction_earns_positive_credit() -> None:
    target = np.zeros(4)
    theta = np.ones(4)
    grad = theta - target  # true gradient of the quadratic loss
    c = one_step_counterfactual(theta, np.stack([grad, -grad]), 0.1, quadratic_oracle(target))
    assert c[0] > 0 > c[1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"theta": np.array([0.0, np.nan])}, "theta"),
        ({"updates": np.array([[np.inf, 0.0]])}, "updates"),
        ({"updates": np.ones((2, 3))}, "updates"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"loss_at": lambda p: np.full(p.shape[0], np.nan)}, "loss_at"),
        ({"loss_at": lambda p: np.zeros(p.shape[0] + 1)}, "loss_at"),
        ({"base_loss": float("inf")}, "base_loss"),
    ],
)
def test_counterfactual_errors(kwargs: dict, field: str) -> None:
    args = {"theta": np.zeros(2), "updates": np.ones((2, 2)), "lr": 0.1,
            "loss_at": quadratic_oracle(np.ones(2))}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        one_step_counterfactual(**args)
    assert err.value.field == field


# ------------------------------------------------------------ coalition game / FedAvg


def test_update_game_singletons_are_counterfactuals() -> None:
    rng = np.random.default_rng(4)
    target, theta = rng.normal(size=5), rng.normal(size=5)
    grads = rng.normal(size=(3, 5))
    loss_at = quadratic_oracle(target)
    game = update_coalition_game(theta, -0.2 * grads, loss_at)
    single = one_step_counterfactual(theta, grads, 0.2, loss_at)
    for i in range(3):
        assert game.value([i]) == pytest.approx(single[i], abs=1e-12)
    assert game.value([]) == 0.0
    phi = shapley_exact(game, 3)
    full = 0.5 * np.sum((theta - target) ** 2) - 0.5 * np.sum((theta - 0.2 * grads.sum(0) - target) ** 2)
    assert phi.sum() == pytest.approx(full, abs=1e-12)


def test_fedavg_reconstruction_reweights_submodels() -> None:
    theta = np.zeros(2)
    deltas = np.array([[2.0, 0.0], [0.0, 2.0]])
    target = np.array([1.0, 1.0])
    loss_at = quadratic_oracle(target)
    game = update_coalition_game(theta, deltas, loss_at, weights=np.array([1.0, 3.0]))
    # sub-model of {0} alone is theta + Delta_0 (weights renormalised inside the coalition)
    assert game.value([0]) == pytest.approx(1.0 - 0.5 * (1.0 + 1.0))
    grand = theta + (1 * deltas[0] + 3 * deltas[1]) / 4
    assert game.value([0, 1]) == pytest.approx(1.0 - 0.5 * np.sum((grand - target) ** 2))
    phi = fedavg_reconstruction_shapley(theta, deltas, np.array([1.0, 3.0]), loss_at)
    assert phi.sum() == pytest.approx(game.value([0, 1]))
    loo = fedavg_reconstruction_shapley(theta, deltas, np.array([1.0, 3.0]), loss_at, method="loo")
    assert loo.shape == (2,)
    perm = fedavg_reconstruction_shapley(theta, deltas, np.array([1.0, 3.0]), loss_at,
                                         method="permutation", rng=0)
    np.testing.assert_allclose(perm, phi, atol=0.2)
    with pytest.raises(InputError, match="method"):
        fedavg_reconstruction_shapley(theta, deltas, np.ones(2), loss_at, method="magic")


def test_fedavg_counterfactual_uses_weighted_piece() -> None:
    theta = np.zeros(2)
    deltas = np.array([[2.0, 0.0], [0.0, 2.0]])
    loss_at = quadratic_oracle(np.array([1.0, 1.0]))
    c = fedavg_one_step_counterfactual(theta, deltas, np.array([1.0, 1.0]), loss_at)
    # piece = 0.5 * Delta_i = unit step towards the target along one axis
    np.testing.assert_allclose(c, [0.5, 0.5])
    with pytest.raises(InputError, match="weights"):
        fedavg_one_step_counterfactual(theta, deltas, np.zeros(2), loss_at)


def test_multi_round_reconstruction_sums_rounds() -> None:
    loss_at = quadratic_oracle(np.array([1.0, 1.0]))
    rnd = (np.zeros(2), np.array([[2.0, 0.0], [0.0, 2.0]]), np.ones(2))
    one = fedavg_reconstruction_shapley(*rnd, loss_at)
    total = multi_round_reconstruction([rnd, rnd], loss_at, round_weights=np.array([1.0, 0.5]))
    np.testing.assert_allclose(total, 1.5 * one)


# ------------------------------------------------------------ first-order credit (V3's linear term)


def _spd_quadratic(rng: np.random.Generator, d: int):
    """L(θ) = ½ (θ − t)ᵀ A (θ − t) with A symmetric positive definite: its oracle, gradient and A."""
    M = rng.normal(size=(d, d))
    A = M @ M.T + d * np.eye(d)
    target = rng.normal(size=d)

    def loss_at(params: np.ndarray) -> np.ndarray:
        r = params - target[None, :]
        return 0.5 * np.einsum("kd,de,ke->k", r, A, r)

    return loss_at, (lambda theta: A @ (theta - target)), A


def test_first_order_misses_exactly_the_second_order_term_on_a_quadratic() -> None:
    # on a quadratic, V3 = η⟨g̃, ∇L⟩ − (η²/2) g̃ᵀAg̃ with no higher terms: the remainder is closed-form
    rng = np.random.default_rng(7)
    loss_at, grad_at, A = _spd_quadratic(rng, 6)
    theta = rng.normal(size=6)
    updates = rng.normal(size=(5, 6))
    updates[3] = 0.0
    for lr in (0.5, 0.1, 0.01):
        exact = one_step_counterfactual(theta, updates, lr, loss_at)
        first = one_step_first_order(updates, lr, grad_at(theta))
        second = -0.5 * lr**2 * np.einsum("nd,de,ne->n", updates, A, updates)
        np.testing.assert_allclose(exact - first, second, rtol=1e-9, atol=1e-12)
        assert first[3] == 0.0 == exact[3]


def test_first_order_ratio_tends_to_one_as_the_step_shrinks() -> None:
    # a non-quadratic smooth loss (log-sum-exp of a linear map): |V3 / first-order − 1| = O(η)
    rng = np.random.default_rng(8)
    W = rng.normal(size=(4, 5))

    def loss_at(params: np.ndarray) -> np.ndarray:
        z = params @ W.T
        return np.log(np.exp(z).sum(axis=1))

    theta = rng.normal(size=5)
    z = W @ theta
    grad = W.T @ (np.exp(z) / np.exp(z).sum())
    updates = np.stack([grad + 0.3 * rng.normal(size=5), grad, -grad])
    errors = []
    for lr in (1e-1, 1e-2, 1e-3, 1e-4):
        ratio = one_step_counterfactual(theta, updates, lr, loss_at) / one_step_first_order(updates, lr, grad)
        errors.append(np.max(np.abs(ratio - 1.0)))
    assert errors[-1] < 1e-3  # float64 differences of O(1) losses: still well above rounding at η = 1e-4
    assert all(b < a / 5 for a, b in itertools.pairwise(errors))  # shrinks ~linearly in η


def test_first_order_sign_convention_matches_v3() -> None:
    target, theta = np.zeros(4), np.ones(4)
    grad = theta - target
    first = one_step_first_order(np.stack([grad, -grad, np.zeros(4)]), 0.1, grad)
    exact = one_step_counterfactual(theta, np.stack([grad, -grad, np.zeros(4)]), 0.1, quadratic_oracle(target))
    assert first[0] > 0 > first[1] and first[2] == 0.0
    np.testing.assert_array_equal(np.sign(first), np.sign(exact))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"updates": np.array([[np.nan, 0.0]])}, "updates"),
        ({"updates": np.array([[1.0, 0.0], [np.inf, 1.0]], dtype=np.float32), "gradient": np.array([0.0, 1.0])},
         "updates"),  # inf × 0: a float32 piece is checked through its credit
        ({"updates": np.ones((2, 2), dtype=np.float32)[:, :, None]}, "updates"),
        ({"updates": np.ones((2, 3))}, "gradient"),
        ({"gradient": np.array([np.inf, 0.0])}, "gradient"),
        ({"lr": 0.0}, "lr"),
        ({"updates": np.full((1, 2), 1e300), "gradient": np.full(2, 1e300)}, "updates"),
    ],
)
def test_first_order_errors(kwargs: dict, field: str) -> None:
    args = {"updates": np.ones((2, 2)), "lr": 0.1, "gradient": np.ones(2)}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        one_step_first_order(**args)
    assert err.value.field == field


def test_fedavg_first_order_is_the_linear_term_of_its_counterfactual() -> None:
    rng = np.random.default_rng(9)
    loss_at, grad_at, A = _spd_quadratic(rng, 4)
    theta = rng.normal(size=4)
    deltas = rng.normal(size=(3, 4))
    weights = np.array([1.0, 2.0, 5.0])
    exact = fedavg_one_step_counterfactual(theta, deltas, weights, loss_at)
    first = fedavg_first_order(deltas, weights, grad_at(theta))
    pieces = (weights / weights.sum())[:, None] * deltas
    np.testing.assert_allclose(exact - first, -0.5 * np.einsum("nd,de,ne->n", pieces, A, pieces),
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(InputError, match="weights"):
        fedavg_first_order(deltas, np.zeros(3), grad_at(theta))
