"""Model rewards: the CGSV gradient-reward mechanism (C1, C3-C5) and the baselines of C §4.1.

Pure functions on numpy arrays. A *download share* ``q_i`` is the fraction of the aggregate update
agent i may download (its largest-magnitude entries, per parameter tensor); ``q_i = 1`` is the full
aggregate, ``q_i <= 0`` nothing. Each function's docstring says whether it follows the paper's
definition or is ours where the paper is vague.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coopsim.errors import InputError, check
from economics._checks import as_array, as_matrix, as_vector, finite_scalar, nonnegative, positive_int
from economics.cgsv import cgsv_approx

# ------------------------------------------------------------------------------- CGSV mechanism


def normalise_updates(deltas: np.ndarray, gamma: float = 0.5) -> np.ndarray:
    """Normalised updates (C1): ``u_i = Gamma * Delta_i / ||Delta_i||`` (rows of a ``(N, D)`` array).

    A zero update stays zero (ours; the paper divides by its norm). Each row is first divided by its
    largest entry, so an update of 1e200 is normalised like any other instead of overflowing its norm.
    """
    d = as_matrix("deltas", deltas)
    g = finite_scalar("gamma", gamma, low=0.0, low_open=True)
    top = np.max(np.abs(d), axis=1, keepdims=True) if d.shape[1] else np.zeros((d.shape[0], 1))
    d = np.divide(d, top, out=np.zeros_like(d), where=top > 0)
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    return np.divide(g * d, norms, out=np.zeros_like(d), where=norms > 0)


def aggregate(U: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Aggregate update (C1): ``u_N = sum_i w_i u_i``."""
    u = as_matrix("U", U)
    w = nonnegative("weights", as_vector("weights", weights, u.shape[0]))
    return w @ u


def update_reputation(reputation: np.ndarray, psi: np.ndarray, alpha: float = 0.95,
                      floor: float = 1e-3) -> np.ndarray:
    """Reputation update (C4): ``r <- alpha r + (1 - alpha) psi``, clamp at ``floor``, normalise to 1.

    As in the authors' code: the clamp (default 1e-3) is applied before normalising, so every agent
    keeps a small positive weight. The paper starts from ``r_0 = 0``.
    """
    r = as_vector("reputation", reputation)
    p = as_vector("psi", psi, r.shape[0])
    a = finite_scalar("alpha", alpha, low=0.0, high=1.0)
    fl = finite_scalar("floor", floor, low=0.0, low_open=True)
    new = np.maximum(a * r + (1.0 - a) * p, fl)
    return new / new.sum()


def download_shares(reputation: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Download shares (C5): ``q_i = tanh(beta r_i) / max_j tanh(beta r_j)``, beta > 0.

    Larger beta (altruism) pushes every ``q_i`` towards 1. Requires at least one positive
    reputation (after the C4 clamp all are positive); a negative ``r_i`` gives ``q_i < 0``, which
    the mask treats as "download nothing" (the paper's ``max(0, q)``).
    """
    r = as_vector("reputation", reputation)
    b = finite_scalar("beta", beta, low=0.0, low_open=True)
    t = np.tanh(b * r)
    top = float(t.max())
    check(top > 0, "reputation", r.tolist()[:8], "at least one positive reputation")
    return t / top


def topk_count(size: int, q: float, *, cap_below_size: bool = True) -> int:
    """Entries kept from a tensor of ``size`` entries at share ``q``: ``k = ceil(q * size)``.

    Clipped to ``[0, size - 1]`` as in the authors' code (``cap_below_size=True``, so even
    ``q = 1`` drops the smallest entry; a 1-entry tensor is never downloaded), or to ``[0, size]``.
    """
    k = math.ceil(q * size) if q > 0 else 0
    upper = size - 1 if cap_below_size else size
    return max(0, min(k, upper))


def topk_mask(tensors: Sequence[np.ndarray], q: float, *, cap_below_size: bool = True) -> list[np.ndarray]:
    """Per-tensor top-k sparsification (C5): keep each tensor's ``k`` largest-|value| entries.

    ``tensors`` is the aggregate update as a list of arrays (one per parameter tensor);
    ``k = ceil(q * size)`` per tensor, see :func:`topk_count`. Ties are broken by position
    (``argpartition``), so exactly ``k`` entries are kept. Returns new arrays, same shapes.
    ``q <= 0`` downloads nothing (the paper's ``max(0, q)``); ``q > 1`` is refused (no share rule
    of this module produces it, and clipping it to 1 would hide a caller's error).
    """
    qv = finite_scalar("q", q, high=1.0)
    check(len(tensors) > 0, "tensors", tensors, "a non-empty list of arrays")
    out: list[np.ndarray] = []
    for idx, t in enumerate(tensors):
        arr = as_array(f"tensors[{idx}]", t)
        flat = arr.ravel()
        k = topk_count(flat.size, qv, cap_below_size=cap_below_size)
        masked = np.zeros_like(flat)
        if k > 0:
            keep = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]
            masked[keep] = flat[keep]
        out.append(masked.reshape(arr.shape))
    return out


def download_rewards(tensors: Sequence[np.ndarray], shares: np.ndarray, *,
                     cap_below_size: bool = True) -> list[list[np.ndarray]]:
    """Each agent's sparsified download (C5): ``[topk_mask(tensors, q_i) for q_i in shares]``, ``q_i <= 1``."""
    q = as_vector("shares", shares)
    check(bool(np.all(q <= 1.0)), "shares", q.tolist()[:8], "download shares <= 1")
    return [topk_mask(tensors, float(qi), cap_below_size=cap_below_size) for qi in q]


@dataclass(frozen=True, eq=False)
class CGSVRound:
    """One round of the CGSV mechanism: normalised updates, aggregate, scores, reputations, shares."""

    u: np.ndarray
    u_n: np.ndarray
    psi: np.ndarray
    reputation: np.ndarray
    shares: np.ndarray


def cgsv_round(deltas: np.ndarray, weights: np.ndarray, reputation: np.ndarray, *, gamma: float = 0.5,
               alpha: float = 0.95, beta: float = 1.0, floor: float = 1e-3) -> CGSVRound:
    """One server round of the CGSV mechanism (C1, C3, C4, C5).

    ``weights`` are the aggregation weights of this round: data-size shares in round 1, the previous
    reputations afterwards (authors' code). Returns the new reputation and download shares; apply
    :func:`topk_mask` per agent to the aggregate (split into tensors) to build downloads.
    """
    u = normalise_updates(deltas, gamma)
    w = nonnegative("weights", as_vector("weights", weights, u.shape[0]))
    u_n = w @ u
    psi = cgsv_approx(u, w)
    rep = update_reputation(reputation, psi, alpha, floor)
    return CGSVRound(u, u_n, psi, rep, download_shares(rep, beta))


# ------------------------------------------------------------------------------------- baselines


def standalone_shares(n_agents: int) -> np.ndarray:
    """Standalone (C §4.1, the paper's definition): no collaboration, every ``q_i = 0``."""
    return np.zeros(positive_int("n_agents", n_agents))


def fedavg_weights(sizes: np.ndarray) -> np.ndarray:
    """FedAvg (McMahan et al. 2017, the paper's baseline): aggregation weights ``n_i / sum n``.

    Every agent downloads the full aggregate: use :func:`fedavg_shares`.
    """
    s = nonnegative("sizes", as_vector("sizes", sizes))
    check(float(s.sum()) > 0, "sizes", s.tolist()[:8], "sizes with a positive sum")
    return s / s.sum()


def fedavg_shares(n_agents: int) -> np.ndarray:
    """FedAvg (the paper's definition): everyone downloads everything, ``q_i = 1``."""
    return np.ones(positive_int("n_agents", n_agents))


def qffl_update(theta: np.ndarray, local_models: np.ndarray, local_losses: np.ndarray, q: float,
                lr: float) -> np.ndarray:
    """q-FFL server step (Li et al. 2020, the paper's definition; C §4.1 baseline).

    ``Delta_k = F_k^q L (theta - theta_k)``, ``h_k = q F_k^(q-1) ||L (theta - theta_k)||^2 + L F_k^q``,
    ``theta <- theta - sum_k Delta_k / sum_k h_k`` with ``L = 1/lr``; ``F_k`` are the local losses at
    ``theta`` (> 0 required when ``0 < q < 1``, since ``F^(q-1)`` diverges at 0). ``q = 0`` is
    FedAvg-like with equal weights.
    """
    th = as_vector("theta", theta)
    models = as_matrix("local_models", local_models, cols=th.shape[0])
    f = nonnegative("local_losses", as_vector("local_losses", local_losses, models.shape[0]))
    qv = finite_scalar("q", q, low=0.0)
    big_l = 1.0 / finite_scalar("lr", lr, low=0.0, low_open=True)
    if 0 < qv < 1:
        check(bool(np.all(f > 0)), "local_losses", f.tolist()[:8], "losses > 0 when 0 < q < 1")
    grads = big_l * (th[None, :] - models)
    fq = np.power(f, qv)
    delta = fq[:, None] * grads
    sq = np.einsum("ij,ij->i", grads, grads)
    h = big_l * fq + (qv * np.power(f, qv - 1.0) * sq if qv > 0 else 0.0)
    denom = float(np.sum(h))
    check(denom > 0, "local_losses", f.tolist()[:8], "losses giving a positive q-FFL normaliser")
    return th - delta.sum(axis=0) / denom


def cffl_reputation(reputation: np.ndarray, val_scores: np.ndarray, momentum: float = 0.5) -> np.ndarray:
    """CFFL reputation (after Lyu et al. 2020; simplified, ours).

    ``r <- momentum r + (1 - momentum) s / sum(s)``, then normalised to sum 1, where ``s_i >= 0`` is
    agent i's validation score this round (e.g. validation accuracy of the model updated with its
    upload, or its leave-one-out accuracy drop). Lyu et al.'s sinh transform and removal threshold
    are omitted; see :func:`cffl_shares`.
    """
    r = nonnegative("reputation", as_vector("reputation", reputation))
    s = nonnegative("val_scores", as_vector("val_scores", val_scores, r.shape[0]))
    m = finite_scalar("momentum", momentum, low=0.0, high=1.0)
    check(float(s.sum()) > 0, "val_scores", s.tolist()[:8], "scores with a positive sum")
    new = m * r + (1.0 - m) * s / s.sum()
    check(float(new.sum()) > 0, "reputation", r.tolist()[:8], "a reputation with a positive sum")
    return new / new.sum()


def cffl_shares(reputation: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """CFFL downloads (ours): reputation-proportional ``q_i = r_i / max_j r_j``; ``r_i < threshold`` gets 0."""
    r = nonnegative("reputation", as_vector("reputation", reputation))
    th = finite_scalar("threshold", threshold, low=0.0)
    check(float(r.max()) > 0, "reputation", r.tolist()[:8], "at least one positive reputation")
    return np.where(r >= th, r / r.max(), 0.0)


def eci_shares(contribution_index: np.ndarray) -> np.ndarray:
    """ECI downloads (C §4.1): ``q_i`` proportional to the validation-accuracy Shapley contribution index.

    Paper: "proportional to the agents' CIs". Ours: scaled so the top agent gets ``q = 1``
    (``q_i = phi_i / max phi``); a non-positive CI gives ``q_i <= 0`` (no download).
    Compute the CI with :func:`economics.shapley.shapley_exact` / ``shapley_permutation``.
    """
    phi = as_vector("contribution_index", contribution_index)
    top = float(phi.max())
    check(top > 0, "contribution_index", phi.tolist()[:8], "at least one positive contribution")
    return phi / top


def dw_shares(sizes: np.ndarray) -> np.ndarray:
    """DW, dataset-weighted downloads (C §4.1): ``q_i`` proportional to data size; ours: ``n_i / max n``."""
    s = nonnegative("sizes", as_vector("sizes", sizes))
    check(float(s.max()) > 0, "sizes", s.tolist()[:8], "at least one positive size")
    return s / s.max()


def rr_shares(n_agents: int, round_index: int, per_round: int = 1) -> np.ndarray:
    """RR, round-robin downloads (ours; the paper only names it).

    In round t, the ``per_round`` agents ``(t * per_round + j) mod N`` download the full aggregate
    (``q = 1``) and the others nothing, so every agent is served equally often.
    """
    n = positive_int("n_agents", n_agents)
    t = positive_int("round_index", round_index, minimum=0)
    k = positive_int("per_round", per_round)
    check(k <= n, "per_round", k, f"at most n_agents ({n})")
    q = np.zeros(n)
    q[(t * k + np.arange(k)) % n] = 1.0
    return q


def eu_scores(deltas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """EU score (C §4.1): negative Euclidean distance of each *unnormalised* update to the aggregate.

    ``s_i = -||Delta_i - sum_j w_j Delta_j||`` (the paper's definition).
    """
    d = as_matrix("deltas", deltas)
    w = nonnegative("weights", as_vector("weights", weights, d.shape[0]))
    agg = w @ d
    return -np.linalg.norm(d - agg[None, :], axis=1)


def eu_shares(scores: np.ndarray) -> np.ndarray:
    """EU downloads (ours): ``q_i = d_min / d_i`` with ``d_i = -s_i`` the distance to the aggregate.

    The paper sets ``q`` "proportional to negative Euclidean distance", which is negative; we use
    the inverse distance scaled so the closest agent gets 1 (an agent at distance 0 gets 1).
    """
    s = as_vector("scores", scores)
    if np.any(s > 0):
        raise InputError("scores", s.tolist()[:8], "negative distances (values <= 0)")
    d = -s
    return np.where(d == 0, 1.0, d.min() / np.where(d == 0, 1.0, d))
