"""CGSV: exact (Gram form) against brute-force permutations, efficiency, approximation, sampling."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from coopsim.errors import InputError
from economics.valuation import cgsv_approx, cgsv_coalition_values, cgsv_exact, cgsv_sampled, gram_matrix


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def brute_force_cgsv(U: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Definition 1 of C: average marginal of cos(u_S, u_N) over all N! permutations, vectors summed."""
    n = U.shape[0]
    u_n = (w[:, None] * U).sum(axis=0)

    def nu(members: list[int]) -> float:
        if not members:
            return 0.0
        return _cos((w[members, None] * U[members]).sum(axis=0), u_n)

    phi = np.zeros(n)
    for perm in itertools.permutations(range(n)):
        before: list[int] = []
        for i in perm:
            phi[i] += nu([*before, i]) - nu(before)
            before.append(i)
    return phi / math.factorial(n)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_exact_equals_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    U = rng.normal(size=(n, 23))
    w = rng.uniform(0.1, 2.0, size=n)
    np.testing.assert_allclose(cgsv_exact(U, w), brute_force_cgsv(U, w), atol=1e-9, rtol=0)
    np.testing.assert_allclose(cgsv_exact(U), brute_force_cgsv(U, np.ones(n)), atol=1e-9, rtol=0)


def test_exact_brute_force_with_opposed_and_zero_updates() -> None:
    rng = np.random.default_rng(7)
    U = rng.normal(size=(5, 11))
    U[1] = -U[0] * 0.5  # partly cancelling
    U[3] = 0.0  # a member that sends nothing
    w = np.ones(5)
    phi = cgsv_exact(U, w)
    np.testing.assert_allclose(phi, brute_force_cgsv(U, w), atol=1e-9, rtol=0)
    assert phi[3] == pytest.approx(0.0, abs=1e-12)  # null player


@pytest.mark.parametrize("n", [2, 5, 9, 12])
def test_efficiency(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    U = rng.normal(size=(n, 50))
    w = rng.uniform(0.2, 1.0, size=n)
    phi = cgsv_exact(U, w)
    values = cgsv_coalition_values(gram_matrix(U, w))
    assert values[0] == 0.0
    assert phi.sum() == pytest.approx(values[-1] - values[0], abs=1e-12)
    assert values[-1] == pytest.approx(1.0, abs=1e-12)


def test_coalition_values_match_vectors() -> None:
    rng = np.random.default_rng(3)
    U = rng.normal(size=(6, 17))
    w = rng.uniform(0.5, 1.5, size=6)
    vals = cgsv_coalition_values(gram_matrix(U, w))
    u_n = w @ U
    for mask in range(1 << 6):
        members = [i for i in range(6) if mask >> i & 1]
        expected = _cos((w[members, None] * U[members]).sum(axis=0), u_n) if members else 0.0
        assert vals[mask] == pytest.approx(expected, abs=1e-12)


def test_symmetry_identical_members() -> None:
    rng = np.random.default_rng(11)
    U = rng.normal(size=(4, 30))
    U[2] = U[1]
    phi = cgsv_exact(U)
    assert phi[1] == pytest.approx(phi[2], abs=1e-12)


def test_approx_is_cosine_to_aggregate() -> None:
    rng = np.random.default_rng(5)
    U = rng.normal(size=(6, 40))
    w = rng.uniform(0.1, 1.0, size=6)
    u_n = w @ U
    expected = [_cos(u, u_n) for u in U]
    np.testing.assert_allclose(cgsv_approx(U, w), expected, atol=1e-12)
    U[2] = 0.0
    assert cgsv_approx(U, w)[2] == 0.0


def test_approx_all_zero_aggregate_gives_zero() -> None:
    U = np.array([[1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(cgsv_approx(U), [0.0, 0.0])
    np.testing.assert_allclose(cgsv_exact(U), [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_cancelling_updates_give_zero_everywhere(seed: int) -> None:
    # u_N = 0 in the vectors (up to rounding): the cosine with a zero vector is 0 (module convention)
    # in all three estimators, instead of rounding noise divided by a rounding-level norm.
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(3, 9))
    U = np.vstack([V, -V.sum(axis=0)])
    assert np.abs(U.sum(axis=0)).max() <= 1e-14
    np.testing.assert_array_equal(cgsv_approx(U), 0.0)
    np.testing.assert_array_equal(cgsv_exact(U), 0.0)
    np.testing.assert_array_equal(cgsv_sampled(U, rng=0), 0.0)
    # efficiency: sum(phi) = nu(N) - nu(empty) = 0
    values = cgsv_coalition_values(gram_matrix(U))
    assert values[-1] == 0.0 == cgsv_exact(U).sum()


def test_nearly_cancelling_updates_still_match_brute_force() -> None:
    # an aggregate 1e-3 times smaller than the updates is resolvable: not treated as zero
    rng = np.random.default_rng(21)
    V = rng.normal(size=(4, 15))
    U = np.vstack([V, -V.sum(axis=0) + 1e-3 * rng.normal(size=15)])
    w = np.ones(5)
    phi = cgsv_exact(U)
    np.testing.assert_allclose(phi, brute_force_cgsv(U, w), atol=1e-9, rtol=0)
    assert phi.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(cgsv_approx(U), [_cos(u, U.sum(axis=0)) for u in U], atol=1e-12)


def test_sampled_converges_to_exact() -> None:
    rng = np.random.default_rng(9)
    U = rng.normal(size=(8, 64))
    exact = cgsv_exact(U)
    est = cgsv_sampled(U, rng=np.random.default_rng(0), n_permutations=4000)
    np.testing.assert_allclose(est, exact, atol=0.02)
    # sampled estimates are efficient too (every permutation telescopes to nu(N))
    assert est.sum() == pytest.approx(1.0, abs=1e-12)


def test_sampled_error_shrinks_like_one_over_sqrt_k() -> None:
    rng = np.random.default_rng(17)
    U = rng.normal(size=(6, 32))
    exact = cgsv_exact(U)

    def mean_error(k: int) -> float:
        return float(np.mean([np.abs(cgsv_sampled(U, rng=s, n_permutations=k) - exact).max() for s in range(12)]))

    coarse, fine = mean_error(50), mean_error(3200)
    # 64x the permutations: the error should fall by about 8x; ask for at least 4x
    assert fine < coarse / 4


def test_sampled_default_permutation_count_and_reproducibility() -> None:
    U = np.random.default_rng(1).normal(size=(5, 20))
    a = cgsv_sampled(U, epsilon=0.1, delta=0.1, rng=42)
    b = cgsv_sampled(U, epsilon=0.1, delta=0.1, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    # the defaults draw K = ceil(ln(2/delta)/(2 eps^2)) permutations, not some other number
    k = math.ceil(math.log(2 / 0.1) / (2 * 0.1**2))
    np.testing.assert_array_equal(cgsv_sampled(U, rng=42), cgsv_sampled(U, rng=42, n_permutations=k))
    assert not np.array_equal(a, cgsv_sampled(U, rng=42, n_permutations=k - 1))
    k2 = math.ceil(math.log(2 / 0.05) / (2 * 0.2**2))
    np.testing.assert_array_equal(cgsv_sampled(U, epsilon=0.2, delta=0.05, rng=3),
                                  cgsv_sampled(U, rng=3, n_permutations=k2))


@pytest.mark.parametrize(
    ("U", "weights", "field"),
    [
        (np.array([[1.0, np.nan]]), None, "U"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), None, "U"),
        (np.ones(3), None, "U"),
        (np.ones((2, 3)), np.ones(3), "weights"),
        (np.ones((2, 3)), np.array([1.0, -1.0]), "weights"),
        (np.ones((2, 3)), np.array([1.0, np.nan]), "weights"),
    ],
)
def test_bad_input_names_argument(U: np.ndarray, weights: np.ndarray | None, field: str) -> None:
    for fn in (cgsv_approx, cgsv_exact, cgsv_sampled):
        with pytest.raises(InputError) as err:
            fn(U, weights)
        assert err.value.field == field


def test_sampled_bad_epsilon_delta() -> None:
    U = np.ones((2, 3))
    with pytest.raises(InputError, match="epsilon"):
        cgsv_sampled(U, epsilon=0.0)
    with pytest.raises(InputError, match="delta"):
        cgsv_sampled(U, delta=1.5)


def test_exact_refuses_too_many_members() -> None:
    with pytest.raises(InputError) as err:
        cgsv_exact(np.ones((25, 2)))
    assert err.value.field == "U"


def test_gram_path_matches_generic_shapley_on_the_cgsv_game() -> None:
    from economics.shapley import shapley_exact

    rng = np.random.default_rng(12)
    U = rng.normal(size=(10, 40))
    w = rng.uniform(0.2, 1.0, size=10)
    u_n = w @ U

    def nu(s: frozenset[int]) -> float:
        members = sorted(s)
        return _cos((w[members, None] * U[members]).sum(axis=0), u_n) if members else 0.0

    np.testing.assert_allclose(cgsv_exact(U, w), shapley_exact(nu, 10), atol=1e-10)


def test_huge_updates_give_the_same_cgsv_as_unit_ones_not_silent_zeros():
    # updates of 1e200 overflow a squared norm; every CGSV quantity is a cosine, invariant to one scale
    from economics.model_rewards import normalise_updates
    from economics.valuation import cgsv_approx, cgsv_exact, cgsv_sampled

    U = np.random.default_rng(4).normal(size=(4, 9))
    for big in (1e150, 1e200, 1e300):
        assert np.allclose(cgsv_approx(U * big), cgsv_approx(U), atol=1e-12)
        assert np.allclose(cgsv_exact(U * big), cgsv_exact(U), atol=1e-12)
        assert np.allclose(cgsv_sampled(U * big, rng=1), cgsv_sampled(U, rng=1), atol=1e-12)
        assert np.allclose(np.linalg.norm(normalise_updates(U * big, 0.5), axis=1), 0.5)
    with pytest.raises(InputError):
        cgsv_approx(np.array([[1.0, np.inf], [1.0, 2.0]]))  # non-finite input is named, not scored
