"""Cosine gradient Shapley value (CGSV, paper C): exact, approximate and sampled.

Game (C2): ``nu(S) = cos(u_S, u_N)`` with ``u_S = sum_{i in S} w_i u_i`` and ``nu(empty) = 0``.
Only the Gram matrix ``G = V V^T`` of the weighted updates ``V = diag(w) U`` is needed:
``||u_S||^2 = x^T G x`` and ``<u_S, u_N> = x^T b`` with ``b = G 1`` and ``x`` the coalition
indicator, so exact values cost ``O(N^2 D + 2^N N)`` instead of ``O(2^N D)``.

Every value is a cosine, so the updates are first divided by their largest entry (one common
scale): updates of 1e200 give the same values as updates of 1, instead of overflowing.

Convention (ours, the paper is silent): the cosine with a zero vector is 0. A coalition whose
aggregate (the grand coalition's ``u_N`` included) has squared norm at or below
``ZERO_REL * N**2 * max_i G_ii`` (rounding level of the Gram sums) counts as the zero vector, so
updates that cancel give 0 in :func:`cgsv_approx`, :func:`cgsv_exact` and :func:`cgsv_sampled` alike.
"""

from __future__ import annotations

import numpy as np

from coopsim.errors import check
from economics._checks import as_matrix, as_vector, nonnegative, positive_int, rng_from
from economics.shapley import (
    marginals_to_shapley,
    n_permutations_for,
    sample_permutations,
    shapley_from_values,
)

#: Relative squared-norm level under which a coalition's aggregate counts as the zero vector.
ZERO_REL = 1e-14

#: Largest N for exact CGSV (2**N coalition values are held in memory).
MAX_EXACT_CGSV = 24


def _updates_and_weights(U: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    U = as_matrix("U", U)
    n = U.shape[0]
    if weights is None:
        w = np.ones(n, dtype=np.float64)
    else:
        w = nonnegative("weights", as_vector("weights", weights, n))
    return U, w


def _unit_scale(U: np.ndarray) -> np.ndarray:
    """``U / max|U|``: every quantity here is a cosine, invariant to one common scale, and updates
    of 1e200 would otherwise overflow their squared norms to inf (and silently score 0)."""
    top = float(np.max(np.abs(U), initial=0.0))
    return U / top if top > 0 else U


def _zero_level(sq_norms: np.ndarray) -> float:
    """Squared norm at or below which an aggregate of these weighted updates counts as zero."""
    n = sq_norms.shape[0]
    return ZERO_REL * n * n * float(np.max(sq_norms, initial=0.0))


def _cos(num: np.ndarray, sq_norm_a: np.ndarray, sq_norm_b: float, zero_level: float) -> np.ndarray:
    """``num / (||a|| ||b||)``, 0 where ``||a||^2`` or ``||b||^2`` is at or below ``zero_level``."""
    out = np.zeros_like(num)
    ok = sq_norm_a > zero_level
    if sq_norm_b > zero_level:
        out[ok] = num[ok] / (np.sqrt(sq_norm_a[ok]) * np.sqrt(sq_norm_b))
    return out


def _grand(G: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``b = G 1`` (``<u_i w_i, u_N>``), ``||u_N||^2`` and the zero level of a Gram matrix."""
    b = G.sum(axis=1)
    return b, float(b.sum()), _zero_level(np.diag(G))


def cgsv_approx(U: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Approximate CGSV (C3): ``psi_i = cos(u_i, u_N)``, ``u_N = sum_i w_i u_i``.

    ``U`` is ``(N, D)`` (one flattened update per row), ``weights`` default to ones. A zero ``u_i``
    or a zero aggregate gives ``psi_i = 0`` (ours); the aggregate counts as zero at the same
    rounding level as in :func:`cgsv_exact` (see the module docstring).
    """
    U, w = _updates_and_weights(U, weights)
    U = _unit_scale(U)
    u_n = w @ U
    num = U @ u_n
    sq = np.einsum("ij,ij->i", U, U)
    if float(u_n @ u_n) <= _zero_level(w * w * sq):  # cancelling updates: u_N = 0 (as in cgsv_exact)
        return np.zeros_like(num)
    return _cos(num, sq, float(u_n @ u_n), 0.0)


def gram_matrix(U: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``G = V V^T`` of the weighted updates ``V = diag(w) U`` (``O(N^2 D)``)."""
    U, w = _updates_and_weights(U, weights)
    V = U * w[:, None]
    return V @ V.T


def cgsv_coalition_values(G: np.ndarray) -> np.ndarray:
    """``nu(S) = cos(u_S, u_N)`` for all ``2**N`` coalitions from the Gram matrix (C2).

    ``values[mask]`` is the value of the coalition whose members are the set bits of ``mask``.
    Subset sums are built by doubling: the masks with highest member ``k`` are the masks below
    ``2**k`` plus ``k``, so ``x^T b`` gains ``b_k`` and ``x^T G x`` gains ``2 (G x)_k + G_kk``,
    where ``(G x)_k`` over the lower masks is itself a subset sum of ``G[:k, k]``.
    """
    G = as_matrix("G", G)
    n = G.shape[0]
    check(G.shape == (n, n), "G", f"shape {G.shape}", "a square matrix")
    check(n <= MAX_EXACT_CGSV, "U", f"{n} members", f"at most {MAX_EXACT_CGSV} for exact CGSV; use cgsv_sampled")
    b, sq_n, zero_level = _grand(G)
    size = 1 << n
    lin = np.zeros(size, dtype=np.float64)
    quad = np.zeros(size, dtype=np.float64)
    cross = np.zeros(1, dtype=np.float64)  # subset sums of G[:k, k] over masks < 2**k
    for k in range(n):
        lo = 1 << k
        if k > 0:
            cross = np.zeros(lo, dtype=np.float64)
            for j in range(k):
                step = 1 << j
                cross[step : 2 * step] = cross[:step] + G[j, k]
        lin[lo : 2 * lo] = lin[:lo] + b[k]
        quad[lo : 2 * lo] = quad[:lo] + 2.0 * cross + G[k, k]
    return _cos(lin, quad, sq_n, zero_level)


def cgsv_exact(U: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Exact CGSV (C2): Shapley values of ``nu(S) = cos(u_S, u_N)``, ``nu(empty) = 0``.

    Cost ``O(N^2 D)`` for the Gram matrix plus ``O(2^N N)`` vectorised passes (the paper's naive
    evaluation is ``O(2^N D)``). Efficiency holds: ``sum(phi) = nu(N) = 1`` unless ``u_N = 0``.
    """
    G = gram_matrix(_unit_scale(as_matrix("U", U)), weights)
    values = cgsv_coalition_values(G)
    return shapley_from_values(values, G.shape[0])


def cgsv_sampled(U: np.ndarray, weights: np.ndarray | None = None, epsilon: float = 0.1, delta: float = 0.1,
                 rng: np.random.Generator | int | None = None, n_permutations: int | None = None) -> np.ndarray:
    """Permutation-sampling (epsilon, delta)-estimate of CGSV (C2; Maleki et al. 2013, as in C Fig. 1).

    ``K = ceil(ln(2/delta)/(2 epsilon**2))`` uniform permutations (150 for the defaults) unless
    ``n_permutations`` is given. Ours: coalition values along each permutation come from the Gram
    matrix (2-d prefix sums of the permuted ``G``), so the cost is ``O(N^2 D + K N^2)``.
    """
    G = gram_matrix(_unit_scale(as_matrix("U", U)), weights)
    n = G.shape[0]
    k = n_permutations_for(epsilon, delta) if n_permutations is None else positive_int(
        "n_permutations", n_permutations)
    perms = sample_permutations(n, k, rng_from(rng))
    b, sq_n, zero_level = _grand(G)
    lin = np.cumsum(b[perms], axis=1)  # (K, N): <u_S, u_N> for the first j+1 members
    gp = G[perms[:, :, None], perms[:, None, :]]  # (K, N, N) permuted Gram matrices
    quad = np.diagonal(gp.cumsum(axis=1).cumsum(axis=2), axis1=1, axis2=2)
    vals = _cos(lin.ravel(), quad.ravel(), sq_n, zero_level).reshape(lin.shape)
    prefix = np.concatenate([np.zeros((k, 1)), vals], axis=1)
    return marginals_to_shapley(perms, prefix)
