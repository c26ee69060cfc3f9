"""Contribution valuation: one-step counterfactual (V3), Shapley, leave-one-out, CGSV, FedAvg attribution.

Everything works on numpy arrays and on a caller-supplied, *batched* loss oracle
``loss_at(params_batch) -> losses`` mapping a ``(K, D)`` array of flattened parameter vectors to
``K`` validation losses (the caller stacks them into one forward pass, e.g. ``torch.func.vmap``).
Parameter vectors handed to the oracle are float64 numpy arrays.

TL and FedAvg attributions share one coalition game so that the two substrates can be compared:
a member contributes a parameter displacement ``s_i`` (TL: ``-lr * g~_i``; FedAvg: the
client's update ``Delta_i = theta_i - theta``), and ``v(S) = L(theta) - L(theta_S)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coopsim.errors import InputError, check
from economics._checks import as_matrix, as_vector, finite_scalar, nonnegative, positive_int
from economics.cgsv import cgsv_approx, cgsv_coalition_values, cgsv_exact, cgsv_sampled, gram_matrix
from economics.shapley import (
    CoalitionCache,
    coalition_to_mask,
    leave_one_out,
    mask_to_coalition,
    shapley_exact,
    shapley_from_values,
    shapley_permutation,
)

LossOracle = Callable[[np.ndarray], np.ndarray | Sequence[float]]

__all__ = [
    "CoalitionCache",
    "LossOracle",
    "cgsv_approx",
    "cgsv_coalition_values",
    "cgsv_exact",
    "cgsv_sampled",
    "coalition_to_mask",
    "evaluate_losses",
    "fedavg_first_order",
    "fedavg_one_step_counterfactual",
    "fedavg_reconstruction_shapley",
    "gram_matrix",
    "leave_one_out",
    "mask_to_coalition",
    "multi_round_reconstruction",
    "one_step_counterfactual",
    "one_step_first_order",
    "shapley_exact",
    "shapley_from_values",
    "shapley_permutation",
    "update_coalition_game",
]

#: Default cap on the number of parameter entries sent to the oracle in one call (rows x D).
DEFAULT_MAX_BATCH_ENTRIES = 1 << 25


def evaluate_losses(loss_at: LossOracle, params: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Call the batched oracle on ``params`` (``(K, D)``) in chunks; check one finite loss per row."""
    check(callable(loss_at), "loss_at", loss_at, "a callable loss_at(params_batch) -> losses")
    k, d = params.shape
    if batch_size is None:
        batch_size = max(1, DEFAULT_MAX_BATCH_ENTRIES // max(d, 1))
    batch_size = positive_int("batch_size", batch_size)
    out = np.empty(k, dtype=np.float64)
    for start in range(0, k, batch_size):
        chunk = params[start : start + batch_size]
        losses = np.asarray(loss_at(chunk), dtype=np.float64).ravel()
        check(losses.shape[0] == chunk.shape[0], "loss_at", f"{losses.shape[0]} losses",
              f"one loss per parameter vector ({chunk.shape[0]})")
        if not np.all(np.isfinite(losses)):
            raise InputError("loss_at", f"returned {losses[~np.isfinite(losses)][0]}", "finite losses")
        out[start : start + chunk.shape[0]] = losses
    return out


def _theta_and_rows(theta: np.ndarray, rows: np.ndarray, rows_name: str) -> tuple[np.ndarray, np.ndarray]:
    theta = as_vector("theta", theta)
    rows = as_matrix(rows_name, rows)
    check(rows.shape[1] == theta.shape[0], rows_name, f"shape {rows.shape}",
          f"(N, {theta.shape[0]}) to match theta")
    return theta, rows


def one_step_counterfactual(theta: np.ndarray, updates: np.ndarray, lr: float, loss_at: LossOracle,
                            base_loss: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """One-step counterfactual contribution (V3): ``c_i = L(theta) - L(theta - lr * g~_i)``.

    ``theta`` is ``(D,)``, ``updates`` is ``(N, D)`` (row i: member i's admissible gradient
    ``g~_i``), ``lr`` the step size. All members are evaluated in one batched oracle call (chunked
    by ``batch_size`` rows); ``L(theta)`` rides in the same batch unless ``base_loss`` is given.
    A member whose update is all zero gets exactly 0 without being evaluated (inadmissible updates
    earn no credit, V §3.3).
    """
    theta, updates = _theta_and_rows(theta, updates, "updates")
    lr = finite_scalar("lr", lr, low=0.0, low_open=True)
    active = np.flatnonzero(np.any(updates != 0.0, axis=1))
    credit = np.zeros(updates.shape[0], dtype=np.float64)
    if active.size == 0:
        return credit
    params = theta[None, :] - lr * updates[active]
    if base_loss is None:
        losses = evaluate_losses(loss_at, np.vstack([theta[None, :], params]), batch_size)
        base, losses = float(losses[0]), losses[1:]
    else:
        base = finite_scalar("base_loss", base_loss)
        losses = evaluate_losses(loss_at, params, batch_size)
    credit[active] = base - losses
    return credit


def one_step_first_order(updates: np.ndarray, lr: float, gradient: np.ndarray) -> np.ndarray:
    """First-order term of the one-step counterfactual (V3): ``c_i ~ lr * <g~_i, grad L(theta)>``.

    (V3) is ``c_i = L(theta) - L(theta - lr * g~_i)``. Its Taylor expansion about ``theta`` is
    ``c_i = lr <g~_i, grad L(theta)> - (lr**2 / 2) g~_i' H g~_i + O(lr**3)`` (``H`` the Hessian of ``L``
    at ``theta``); this returns the first, linear term only, so a step needs one gradient of the
    validation loss instead of N + 1 loss evaluations. The neglected remainder is second order in
    the step: for a quadratic loss it is exactly ``-(lr**2 / 2) g~_i' H g~_i``, and the ratio of this
    term to (V3) tends to 1 as ``lr -> 0`` wherever ``<g~_i, grad L(theta)> != 0``. Same sign
    convention as :func:`one_step_counterfactual`: a piece along the descent direction earns
    positive credit; an all-zero piece earns exactly 0.

    ``updates`` is ``(N, D)`` (row i: member i's admissible piece ``g~_i``), ``gradient`` is
    ``grad L(theta)`` ``(D,)``; both must be finite. A float32 or float64 ``updates`` array is used
    as it is (no float64 copy): one mat-vec in its own precision (float32: rounding typically of
    order ``sqrt(D) * 2**-24``, at worst ``D * 2**-24``, relative to ``sum_d |g~_id| |grad_d|``; the
    float32 losses of exact (V3) carry more); rows whose float32 products overflow are redone in
    float64. Finiteness is read off the result: with a finite gradient, a NaN or inf entry always
    makes its row's credit non-finite.
    """
    rows = np.asarray(updates)
    if rows.dtype in (np.float32, np.float64):
        check(rows.ndim == 2 and rows.size > 0, "updates", f"array of shape {rows.shape}", "a non-empty 2-d array")
    else:
        rows = as_matrix("updates", rows)
    gradient = as_vector("gradient", gradient, rows.shape[1])
    lr = finite_scalar("lr", lr, low=0.0, low_open=True)
    # einsum, not BLAS: a mat-vec this small costs less than waking BLAS threads, whose spinning would
    # then compete with torch's for the rest of the step
    with np.errstate(over="ignore", invalid="ignore"):
        credit = lr * np.einsum("nd,d->n", rows, gradient.astype(rows.dtype, copy=False)).astype(np.float64)
        redo = np.flatnonzero(~np.isfinite(credit))
        if redo.size and rows.dtype != np.float64:  # overflowed in float32: the same rows in float64
            credit[redo] = lr * np.einsum("nd,d->n", rows[redo], gradient, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(credit))
    if bad.size:
        as_vector("updates", rows[bad[0]])  # names a non-finite entry, if that is the cause
        raise InputError("updates", "pieces whose inner products with the gradient overflow",
                         "pieces and a gradient of representable size")
    return credit


def update_coalition_game(theta: np.ndarray, steps: np.ndarray, loss_at: LossOracle,
                          weights: np.ndarray | None = None, base_loss: float | None = None,
                          batch_size: int | None = None) -> CoalitionCache:
    """Validation-improvement game of parameter displacements: ``v(S) = L(theta) - L(theta_S)``.

    Additive (TL, ``weights=None``): ``theta_S = theta + sum_{i in S} s_i`` with ``s_i = -lr g~_i``,
    so ``v({i})`` is the one-step counterfactual (V3).
    Reconstructed (FedAvg, ``weights`` = aggregation weights, e.g. data sizes):
    ``theta_S = theta + sum_{i in S} w_i Delta_i / sum_{i in S} w_i``, the sub-model FedAvg would
    have produced from the clients in S (the "reconstruct sub-models from stored updates" idea of
    Song et al. 2019); a coalition whose weights sum to 0 keeps ``theta``. ``v(empty) = 0`` always.
    Returns a :class:`CoalitionCache` whose batched utility stacks all requested coalitions into
    oracle calls, so Shapley, leave-one-out and sampling all reuse coalition values.
    """
    theta, steps = _theta_and_rows(theta, steps, "steps")
    n = steps.shape[0]
    w = None if weights is None else nonnegative("weights", as_vector("weights", weights, n))
    state: dict[str, float] = {}
    if base_loss is not None:
        state["base"] = finite_scalar("base_loss", base_loss)

    def batch(coalitions: Sequence[frozenset[int]]) -> np.ndarray:
        x = np.zeros((len(coalitions), n), dtype=np.float64)
        for row, s in enumerate(coalitions):
            x[row, list(s)] = 1.0
        if w is not None:
            x *= w[None, :]
            tot = x.sum(axis=1, keepdims=True)
            x = np.divide(x, tot, out=np.zeros_like(x), where=tot > 0)
        nonempty = np.flatnonzero(x.any(axis=1))
        if "base" not in state:
            state["base"] = float(evaluate_losses(loss_at, theta[None, :], batch_size)[0])
        vals = np.zeros(len(coalitions), dtype=np.float64)
        if nonempty.size:
            params = theta[None, :] + x[nonempty] @ steps
            vals[nonempty] = state["base"] - evaluate_losses(loss_at, params, batch_size)
        return vals

    return CoalitionCache(None, n, batch_utility=batch)


def fedavg_one_step_counterfactual(theta: np.ndarray, deltas: np.ndarray, weights: np.ndarray,
                                   loss_at: LossOracle, base_loss: float | None = None,
                                   batch_size: int | None = None) -> np.ndarray:
    """FedAvg analogue of (V3) (ours): ``c_i = L(theta) - L(theta + wbar_i Delta_i)``.

    FedAvg's global step is ``theta' = theta + sum_i wbar_i Delta_i`` with ``wbar = w / sum(w)``
    and ``Delta_i`` the client's reconstructed update (local model minus global model), so member
    i's piece of the step is ``wbar_i Delta_i``; this is the same one-step counterfactual as TL
    applied to that piece. Unlike TL's ``g~_i`` the pieces carry client drift (several local steps).
    """
    theta, deltas = _theta_and_rows(theta, deltas, "deltas")
    w = nonnegative("weights", as_vector("weights", weights, deltas.shape[0]))
    check(float(w.sum()) > 0, "weights", w.tolist(), "weights with a positive sum")
    pieces = (w / w.sum())[:, None] * deltas
    return one_step_counterfactual(theta, -pieces, 1.0, loss_at, base_loss, batch_size)


def fedavg_first_order(deltas: np.ndarray, weights: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """First-order term of the FedAvg analogue of (V3) (ours): ``c_i ~ -wbar_i <Delta_i, grad L(theta)>``.

    :func:`fedavg_one_step_counterfactual` is (V3) applied to member i's piece ``wbar_i Delta_i`` of
    the global step; this is :func:`one_step_first_order` applied to the same piece, so the two agree
    to first order in the piece. A FedAvg update carries several local steps (client drift), so the
    pieces are larger than a TL step's and the neglected second-order term weighs more.
    """
    deltas = as_matrix("deltas", deltas)
    w = nonnegative("weights", as_vector("weights", weights, deltas.shape[0]))
    check(float(w.sum()) > 0, "weights", w.tolist(), "weights with a positive sum")
    pieces = (w / w.sum())[:, None] * deltas
    return one_step_first_order(-pieces, 1.0, gradient)


def fedavg_reconstruction_shapley(theta: np.ndarray, deltas: np.ndarray, weights: np.ndarray,
                                  loss_at: LossOracle, *, method: str = "exact", epsilon: float = 0.1,
                                  delta: float = 0.1, rng: np.random.Generator | int | None = None,
                                  base_loss: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """Per-round Shapley attribution for FedAvg by sub-model reconstruction (ours, after Song et al. 2019).

    The coalition value is the validation-loss drop of the model FedAvg would have produced from
    the coalition's stored updates, ``theta_S = theta + sum_{S} w_i Delta_i / sum_{S} w_i``
    (:func:`update_coalition_game`). ``method="exact"`` evaluates all ``2**N`` sub-models (small N),
    ``"permutation"`` samples ``K = ceil(ln(2/delta)/(2 eps**2))`` permutations, ``"loo"`` gives
    leave-one-out. Accumulate the per-round values with the ledger (V4) to obtain the multi-round
    attribution.
    """
    theta, deltas = _theta_and_rows(theta, deltas, "deltas")
    game = update_coalition_game(theta, deltas, loss_at, weights, base_loss, batch_size)
    n = deltas.shape[0]
    if method == "exact":
        return shapley_exact(game, n)
    if method == "permutation":
        return shapley_permutation(game, n, epsilon=epsilon, delta=delta, rng=rng)
    if method == "loo":
        return leave_one_out(game, n)
    raise InputError("method", method, "one of ['exact', 'loo', 'permutation']")


def multi_round_reconstruction(rounds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                               loss_at: LossOracle, round_weights: np.ndarray | None = None,
                               **kwargs: object) -> np.ndarray:
    """Multi-round reconstruction attribution: ``phi_i = sum_t lambda_t phi_i^t`` (Song et al. 2019 "MR").

    ``rounds`` holds ``(theta_t, deltas_t, weights_t)`` per round (all rounds with the same
    members); ``round_weights`` (``lambda_t``) default to ones. Keyword arguments go to
    :func:`fedavg_reconstruction_shapley`.
    """
    check(len(rounds) > 0, "rounds", rounds, "at least one (theta, deltas, weights) round")
    lam = np.ones(len(rounds)) if round_weights is None else nonnegative(
        "round_weights", as_vector("round_weights", round_weights, len(rounds)))
    total: np.ndarray | None = None
    for lam_t, (theta, deltas, weights) in zip(lam, rounds, strict=True):
        phi = fedavg_reconstruction_shapley(theta, deltas, weights, loss_at, **kwargs)  # type: ignore[arg-type]
        if total is None:
            total = lam_t * phi
        else:
            check(phi.shape == total.shape, "rounds", f"{phi.shape[0]} members", f"{total.shape[0]} in every round")
            total = total + lam_t * phi
    assert total is not None
    return total
