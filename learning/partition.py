"""Partitions of a training pool among members (SPEC §4, plus Dirichlet label skew).

- ``uni``: equal random split without replacement (CGSV's UNI).
- ``pow``: sizes increasing linearly across members between the 1% and 99% quantiles of
  ``scipy.stats.powerlaw(a=1.65911332899)``, normalised, ``ceil``-ed (CGSV's POW; e.g. N = 5 of 3,000
  gives 71, 336, 600, 865, 1130), rows drawn without replacement. Ours: when the ceil-ed sizes add up
  to more than the pool holds, the overshoot is taken from the largest member.
- ``cla``: equal sizes; member i sees only classes {0, …, c_i − 1} with
  ``c = linspace(1, n_classes, N).astype(int)``, rows sampled with replacement (CGSV's CLA).
- ``dirichlet``: for each class, shares drawn from Dir(α·1_N) (label skew; smaller α is more skewed);
  redrawn until every member holds at least one row.

Every partition returns one index array per member into the pool, in member order.
"""

from __future__ import annotations

import math

import numpy as np

from coopsim.errors import check, check_choice
from learning.seeding import SeedLike, as_generator

PARTITIONS = ("uni", "pow", "cla", "dirichlet")
POWERLAW_A = 1.65911332899


def pow_sizes(n_members: int, total: int) -> np.ndarray:
    """CGSV's POW member sizes (ceil of the normalised linear powerlaw quantiles)."""
    from scipy.stats import powerlaw

    lo, hi = powerlaw.ppf([0.01, 0.99], POWERLAW_A)
    shares = np.linspace(lo, hi, n_members)
    shares /= shares.sum()
    return np.ceil(shares * total - 1e-9).astype(np.int64)


def fit_to_pool(sizes: np.ndarray, pool: int) -> np.ndarray:
    """Ceil-ed POW sizes may overshoot the pool: take the excess a row at a time from the largest
    member (the first of equals, so sizes stay non-decreasing)."""
    sizes = sizes.copy()
    for _ in range(int(sizes.sum()) - pool):
        sizes[int(np.argmax(sizes))] -= 1
    return sizes


def partition_sizes(class_counts: np.ndarray, n_members: int, scheme: str = "uni", *, seed: SeedLike,
                    alpha: float = 0.5) -> np.ndarray:
    """The members' pool sizes that :func:`partition` gives a pool holding ``class_counts[c]`` rows of
    each class, without the rows themselves (the same sizes for ``uni``, ``pow`` and ``cla``; the
    same distribution for ``dirichlet``): what a learning curve needs, in O(members) memory."""
    check_choice("partition", scheme, PARTITIONS)
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    check(isinstance(n_members, int | np.integer) and 1 <= n_members <= total, "n_members", n_members,
          f"an integer in [1, {total}] (every member holds a row)")
    if scheme in ("uni", "cla"):
        return np.full(n_members, total // n_members, dtype=np.int64)
    if scheme == "pow":
        return fit_to_pool(pow_sizes(n_members, total), total)
    check(alpha > 0 and math.isfinite(alpha), "dirichlet_alpha", alpha, "a finite concentration > 0")
    rng = as_generator(seed)
    for _ in range(100):
        sizes = np.zeros(n_members, dtype=np.int64)
        for rows in counts.tolist():
            shares = rng.dirichlet(np.full(n_members, alpha))
            cuts = (np.cumsum(shares)[:-1] * rows).astype(np.int64)
            sizes += np.diff(np.concatenate([[0], cuts, [rows]]))
        if sizes.min() > 0:
            return sizes
    check(False, "dirichlet_alpha", alpha, "a concentration large enough that every member gets a row")
    raise AssertionError  # unreachable


def cla_classes(n_members: int, n_classes: int) -> np.ndarray:
    """CGSV's CLA class counts: member i sees classes {0, …, c_i − 1}."""
    return np.linspace(1, n_classes, n_members).astype(int)


def partition(
    y: np.ndarray,
    n_members: int,
    scheme: str = "uni",
    *,
    seed: SeedLike,
    n_samples: int | None = None,
    alpha: float = 0.5,
    n_classes: int | None = None,
) -> list[np.ndarray]:
    """Split a pool with labels ``y`` among ``n_members``; ``n_samples`` rows in all (default: the
    whole pool). Returns index arrays into the pool, one per member."""
    check_choice("partition", scheme, PARTITIONS)
    y = np.asarray(y)
    pool = len(y)
    check(isinstance(n_members, int | np.integer) and n_members >= 1, "n_members", n_members, "an integer ≥ 1")
    total = pool if n_samples is None else n_samples
    check(isinstance(total, int | np.integer) and 1 <= total <= pool, "n_samples", n_samples,
          f"an integer in [1, {pool}] (the pool's size)")
    check(n_members <= total, "n_members", n_members,
          f"at most the number of samples to share ({total}), so every member holds a row")
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    rng = as_generator(seed)

    if scheme == "uni":
        order = rng.permutation(pool)[:total]
        size = total // n_members
        return [np.sort(order[i * size:(i + 1) * size]) for i in range(n_members)]

    if scheme == "pow":
        sizes = fit_to_pool(pow_sizes(n_members, total), pool)  # n_members ≤ pool keeps all ≥ 1
        order = rng.permutation(pool)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [np.sort(order[bounds[i]:bounds[i + 1]]) for i in range(n_members)]

    if scheme == "cla":
        size = total // n_members
        parts = []
        for c in cla_classes(n_members, n_classes):
            allowed = np.flatnonzero(y < c)
            check(len(allowed) > 0, "partition", scheme, f"a pool holding rows of classes < {c}")
            parts.append(np.sort(rng.choice(allowed, size=size, replace=True)))
        return parts

    check(alpha > 0 and math.isfinite(alpha), "dirichlet_alpha", alpha, "a finite concentration > 0")
    order = rng.permutation(pool)[:total]
    labels = y[order]
    for _ in range(100):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_members)]
        for c in range(n_classes):
            rows = order[labels == c]
            shares = rng.dirichlet(np.full(n_members, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for i, chunk in enumerate(np.split(rows, cuts)):
                parts[i].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) > 0:
            return out
    check(False, "dirichlet_alpha", alpha, "a concentration large enough that every member gets a row")
    raise AssertionError  # unreachable
