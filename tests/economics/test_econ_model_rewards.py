"""CGSV mechanism (C1, C4, C5) and the baselines of C §4.1."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coopsim.errors import InputError
from economics.model_rewards import (
    aggregate,
    cffl_reputation,
    cffl_shares,
    cgsv_round,
    download_rewards,
    download_shares,
    dw_shares,
    eci_shares,
    eu_scores,
    eu_shares,
    fedavg_shares,
    fedavg_weights,
    normalise_updates,
    qffl_update,
    rr_shares,
    standalone_shares,
    topk_count,
    topk_mask,
    update_reputation,
)


def test_normalise_and_aggregate() -> None:
    d = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    u = normalise_updates(d, gamma=0.5)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(aggregate(u, np.array([1.0, 1.0, 2.0])), [0.3, 0.4 - 1.0])


def test_reputation_update_clamps_and_normalises() -> None:
    r = update_reputation(np.zeros(3), np.array([0.8, -0.5, 0.2]), alpha=0.95, floor=1e-3)
    raw = np.maximum(0.05 * np.array([0.8, -0.5, 0.2]), 1e-3)
    np.testing.assert_allclose(r, raw / raw.sum())
    assert r.sum() == pytest.approx(1.0)
    assert np.all(r > 0)


def test_download_shares_tanh_rule() -> None:
    r = np.array([0.1, 0.3, 0.6])
    q = download_shares(r, beta=2.0)
    np.testing.assert_allclose(q, np.tanh(2 * r) / np.tanh(1.2))
    assert q.max() == 1.0
    # larger beta: everyone closer to 1
    assert np.all(download_shares(r, beta=50.0) >= q - 1e-12)
    with pytest.raises(InputError, match="reputation"):
        download_shares(np.array([-0.1, 0.0]))
    with pytest.raises(InputError, match="beta"):
        download_shares(r, beta=0.0)


def test_topk_mask_per_tensor() -> None:
    w = np.array([[0.1, -5.0, 0.3], [2.0, -0.2, 0.0]])
    b = np.array([1.0, -3.0])
    masked = topk_mask([w, b], 0.5)
    # k = ceil(0.5 * 6) = 3 for w, ceil(0.5 * 2) = 1 for b
    np.testing.assert_array_equal(masked[0], [[0.0, -5.0, 0.3], [2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(masked[1], [0.0, -3.0])
    full = topk_mask([w, b], 1.0)
    assert np.count_nonzero(full[0]) == 5  # at most size - 1 (authors' code)
    assert np.count_nonzero(full[1]) == 1
    uncapped = topk_mask([w, b], 1.0, cap_below_size=False)
    np.testing.assert_array_equal(uncapped[0], w)
    np.testing.assert_array_equal(topk_mask([w], 0.0)[0], np.zeros_like(w))
    np.testing.assert_array_equal(topk_mask([w], -0.3)[0], np.zeros_like(w))
    assert w[0, 1] == -5.0  # input untouched


@given(st.integers(min_value=1, max_value=500), st.floats(min_value=-1.0, max_value=1.0))
def test_topk_count_bounds(size: int, q: float) -> None:
    k = topk_count(size, q)
    assert 0 <= k <= size - 1
    if q > 0:
        assert k == min(math.ceil(q * size), size - 1)


@given(st.integers(min_value=2, max_value=200), st.floats(min_value=0.0, max_value=1.0))
def test_topk_mask_keeps_largest(size: int, q: float) -> None:
    x = np.random.default_rng(size).normal(size=size)
    out = topk_mask([x], q)[0]
    kept = out != 0
    assert kept.sum() == topk_count(size, q)
    if 0 < kept.sum() < size:
        assert np.abs(x[kept]).min() >= np.abs(x[~kept]).max()


def test_download_rewards_and_cgsv_round() -> None:
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=(3, 10))
    deltas[0] = -deltas[1] - deltas[2]  # an agent opposing the others
    first = cgsv_round(deltas, np.array([0.2, 0.3, 0.5]), np.zeros(3), beta=1.0)
    np.testing.assert_allclose(np.linalg.norm(first.u, axis=1), 0.5)
    assert first.psi[0] < 0 < first.psi[1]
    assert first.reputation.sum() == pytest.approx(1.0)
    assert first.shares.argmin() == 0
    downloads = download_rewards([first.u_n[:6].reshape(2, 3), first.u_n[6:]], first.shares)
    assert len(downloads) == 3 and len(downloads[0]) == 2
    assert np.count_nonzero(downloads[0][0]) <= np.count_nonzero(downloads[2][0])


def test_baseline_shares() -> None:
    np.testing.assert_array_equal(standalone_shares(3), [0, 0, 0])
    np.testing.assert_array_equal(fedavg_shares(2), [1, 1])
    np.testing.assert_allclose(fedavg_weights(np.array([1.0, 3.0])), [0.25, 0.75])
    np.testing.assert_allclose(dw_shares(np.array([100.0, 400.0, 200.0])), [0.25, 1.0, 0.5])
    np.testing.assert_allclose(eci_shares(np.array([0.1, 0.4, -0.1])), [0.25, 1.0, -0.25])
    np.testing.assert_array_equal(rr_shares(4, 0), [1, 0, 0, 0])
    np.testing.assert_array_equal(rr_shares(4, 5), [0, 1, 0, 0])
    np.testing.assert_array_equal(rr_shares(5, 1, per_round=2), [0, 0, 1, 1, 0])
    assert sum(rr_shares(4, t).sum() for t in range(4)) == 4


def test_cffl() -> None:
    r = cffl_reputation(np.array([0.5, 0.5]), np.array([0.9, 0.3]), momentum=0.5)
    np.testing.assert_allclose(r, [0.25 + 0.375, 0.25 + 0.125])
    np.testing.assert_allclose(cffl_shares(r), [1.0, 0.375 / 0.625])
    np.testing.assert_allclose(cffl_shares(r, threshold=0.5), [1.0, 0.0])


def test_eu() -> None:
    d = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    s = eu_scores(d, np.ones(3) / 3)
    agg = d.mean(axis=0)
    np.testing.assert_allclose(s, -np.linalg.norm(d - agg, axis=1))
    q = eu_shares(s)
    assert q.max() == 1.0 and q[2] < q[0]
    np.testing.assert_allclose(eu_shares(np.array([0.0, -2.0])), [1.0, 0.0])
    with pytest.raises(InputError, match="scores"):
        eu_shares(np.array([1.0, -1.0]))


def test_qffl_update_matches_formula() -> None:
    rng = np.random.default_rng(2)
    theta = rng.normal(size=4)
    models = theta[None, :] - 0.1 * rng.normal(size=(3, 4))
    losses = np.array([0.5, 1.0, 2.0])
    q, lr = 1.0, 0.1
    big_l = 1 / lr
    delta = [losses[k] ** q * big_l * (theta - models[k]) for k in range(3)]
    h = [q * losses[k] ** (q - 1) * np.sum((big_l * (theta - models[k])) ** 2) + big_l * losses[k] ** q
         for k in range(3)]
    expected = theta - np.sum(delta, axis=0) / np.sum(h)
    np.testing.assert_allclose(qffl_update(theta, models, losses, q, lr), expected)
    # q = 0: plain average of the local models
    np.testing.assert_allclose(qffl_update(theta, models, losses, 0.0, lr), models.mean(axis=0))
    with pytest.raises(InputError, match="local_losses"):
        qffl_update(theta, models, np.array([0.0, 1.0, 1.0]), 0.5, lr)
    with pytest.raises(InputError, match="local_models"):
        qffl_update(theta, models[:, :3], losses, 1.0, lr)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: normalise_updates(np.array([[np.nan, 1.0]])), "deltas"),
        (lambda: normalise_updates(np.ones((2, 2)), gamma=0.0), "gamma"),
        (lambda: update_reputation(np.zeros(2), np.zeros(3)), "psi"),
        (lambda: update_reputation(np.zeros(2), np.array([np.inf, 0.0])), "psi"),
        (lambda: update_reputation(np.zeros(2), np.zeros(2), alpha=1.5), "alpha"),
        (lambda: topk_mask([np.array([1.0, np.nan])], 0.5), "tensors[0]"),
        (lambda: topk_mask([np.ones(2)], float("nan")), "q"),
        (lambda: topk_mask([np.ones(2)], 1.5), "q"),  # refused, not clipped to 1
        (lambda: download_rewards([np.ones(3)], np.array([0.5, 1.2])), "shares"),
        (lambda: aggregate(np.ones((2, 2)), np.ones(3)), "weights"),
        (lambda: dw_shares(np.array([-1.0, 2.0])), "sizes"),
        (lambda: rr_shares(3, 0, per_round=4), "per_round"),
        (lambda: cgsv_round(np.ones((2, 3)), np.ones(3), np.zeros(2)), "weights"),
    ],
)
def test_errors(call, field: str) -> None:
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field


def test_cgsv_round_against_a_hand_computed_three_member_example():
    """C1–C5 by hand. Δ = (3,4), (0,2), (−1,0); Γ = 0.5 → u = (0.3,0.4), (0,0.5), (−0.5,0) (C1).
    Round-1 weights (data sizes) w = (0.5, 0.3, 0.2): u_N = (0.05, 0.35), ‖u_N‖ = √0.125 (C1).
    ψ = cos(u_i, u_N) = 0.155/(0.5√0.125), 0.175/(0.5√0.125), −0.025/(0.5√0.125)
      = 0.876812, 0.989949, −0.141421 (C3).
    r = 0.95·0 + 0.05·ψ = 0.0438406, 0.0494975, −0.0070711 → clamp at 1e-3 → normalise by 0.0943381:
      0.464716, 0.524680, 0.010600 (C4).
    q_i = tanh(β r_i)/max_j tanh(β r_j) (C5), here for β = 1 and β = 2."""
    import math

    from economics.model_rewards import cgsv_round, topk_mask

    deltas = np.array([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]])
    rep = np.array([0.0, 0.0, 0.0])
    w = np.array([0.5, 0.3, 0.2])
    hand_u = np.array([[0.3, 0.4], [0.0, 0.5], [-0.5, 0.0]])
    hand_un = np.array([0.05, 0.35])
    hand_psi = np.array([0.876812, 0.989949, -0.141421])
    hand_r = np.array([0.464716, 0.524680, 0.010600])
    for beta in (1.0, 2.0):
        rnd = cgsv_round(deltas, w, rep, gamma=0.5, alpha=0.95, beta=beta)
        assert np.allclose(rnd.u, hand_u, atol=1e-12)
        assert np.allclose(rnd.u_n, hand_un, atol=1e-12)
        assert np.allclose(rnd.psi, hand_psi, atol=1e-6)
        assert np.allclose(rnd.reputation, hand_r, atol=1e-6)
        top = math.tanh(beta * 0.524680)
        hand_q = [math.tanh(beta * 0.464716) / top, 1.0, math.tanh(beta * 0.010600) / top]
        assert np.allclose(rnd.shares, hand_q, atol=1e-5)
    # β = 1: q ≈ (0.9016, 1, 0.0220); β = 2: q ≈ (0.9345, 1, 0.0271) — β acts only at second order
    # while β·r stays below 1 (tanh is nearly linear there), which is why β = 1 and 2 barely differ
    q1 = cgsv_round(deltas, w, rep, beta=1.0).shares
    q2 = cgsv_round(deltas, w, rep, beta=2.0).shares
    assert np.allclose(q1, [0.9016, 1.0, 0.0220], atol=1e-4) and np.allclose(q2, [0.9345, 1.0, 0.0271], atol=1e-4)
    # the download (C5): per tensor, the ⌈q·size⌉ largest-|value| entries of u_N, at most size − 1
    agg = [np.array([0.05, 0.35, -0.2, 0.1]), np.array([[1.0, -3.0], [2.0, 0.5]])]
    kept = topk_mask(agg, 0.5)  # k = 2 of 4 in each tensor
    assert kept[0].tolist() == [0.0, 0.35, -0.2, 0.0]
    assert kept[1].tolist() == [[0.0, -3.0], [2.0, 0.0]]
    assert [np.count_nonzero(t) for t in topk_mask(agg, 1.0)] == [3, 3]  # q = 1 still drops one (authors' code)
