"""Multinomial type-count outcomes ``n ~ Multinomial(N, p)``, enumerated once with their pmf (P).

The pmf is computed from log-factorials with exactly the given ``p`` (which must sum to 1; it is
never renormalised and its last entry is never replaced, unlike ``scipy.stats.multinomial``, which
silently substitutes ``1 - sum(p[:-1])`` for the last probability).

Enumeration is the reference (the solvers' ``method="enumeration"``, and the complete-information
benchmark, which solves a fixed point per outcome); the solvers' default computes the same
expectations from the distribution of the pooled data (:mod:`economics.contracts.pooled`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, xlogy

from coopsim.errors import check
from economics._checks import positive_int, probabilities

#: Refuse to enumerate more outcomes than this (memory guard).
MAX_OUTCOMES = 5_000_000


def n_outcomes(n_participants: int, n_types: int) -> int:
    """``C(N + I - 1, I - 1)``: number of type-count vectors of N participants over I types."""
    return math.comb(n_participants + n_types - 1, n_types - 1)


def multinomial_outcomes(n_participants: int, n_types: int) -> np.ndarray:
    """All ``(K, I)`` count vectors summing to N, lexicographic (first type's count ascending).

    Built type by type with ``np.repeat`` (no Python loop over outcomes).
    """
    n = positive_int("n_participants", n_participants, minimum=0)
    i_types = positive_int("n_types", n_types)
    total = n_outcomes(n, i_types)
    check(total <= MAX_OUTCOMES, "n_participants", n,
          f"at most {MAX_OUTCOMES} outcomes to enumerate (this N and I = {i_types} give {total}; memory); "
          "only enumeration needs them (method='enumeration', the complete-information benchmark)")
    rows = np.zeros((1, 0), dtype=np.int64)
    remaining = np.array([n], dtype=np.int64)
    for _ in range(i_types - 1):
        counts = remaining + 1
        parent = np.repeat(np.arange(rows.shape[0]), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        value = np.arange(parent.shape[0]) - starts
        rows = np.column_stack([rows[parent], value])
        remaining = remaining[parent] - value
    return np.column_stack([rows, remaining])


def multinomial_pmf(outcomes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Exact multinomial pmf of each row of ``outcomes`` under ``probs`` (log-space, no renormalising)."""
    p = probabilities("probs", probs)
    n = np.asarray(outcomes, dtype=np.float64)
    check(n.ndim == 2 and n.shape[1] == p.shape[0], "outcomes", f"shape {n.shape}", f"(K, {p.shape[0]})")
    big_n = n.sum(axis=1)
    logp = gammaln(big_n + 1.0) - gammaln(n + 1.0).sum(axis=1) + xlogy(n, p[None, :]).sum(axis=1)
    return np.exp(logp)


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Enumerated outcomes ``n`` (K, I), their pmf (K,), and per-type conditional weights.

    ``conditional[:, i] = pmf * [n_i >= 1] / P(n_i >= 1)``: the distribution of outcomes seen by a
    type-i member (conditioned on at least one type-i participant, renormalised).
    """

    n: np.ndarray
    pmf: np.ndarray
    conditional: np.ndarray
    probs: np.ndarray
    n_participants: int

    @classmethod
    def enumerate(cls, n_participants: int, probs: np.ndarray) -> Outcomes:
        """All outcomes of ``Multinomial(n_participants, probs)`` (every ``p_i > 0``, summing to 1)."""
        p = probabilities("probs", probs, strictly_positive=True)
        n_part = positive_int("n_participants", n_participants)
        n = multinomial_outcomes(n_part, p.shape[0])
        pmf = multinomial_pmf(n, p)
        present = (n >= 1).astype(np.float64) * pmf[:, None]
        cond = present / present.sum(axis=0, keepdims=True)
        return cls(n, pmf, cond, p, n_part)

    @property
    def n_types(self) -> int:
        """Number of types I."""
        return int(self.n.shape[1])
