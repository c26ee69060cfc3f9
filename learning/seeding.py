"""Explicit seeding: one root seed reaches every random source through these helpers.

Nothing here touches global RNG state. A component receives either a ``numpy.random.Generator`` or an
integer seed, and derives what it needs (child generators, torch generators) deterministically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coopsim.errors import check

if TYPE_CHECKING:  # torch is imported where a generator is made: surrogate runs never load it
    import torch

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def as_generator(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int, a SeedSequence or a Generator (returned as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise TypeError("an explicit seed is required (coopsim never seeds from entropy implicitly)")
    if not isinstance(seed, np.random.SeedSequence):
        check(isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
              "an integer ≥ 0")
    return np.random.default_rng(seed)


def derive_seed(seed: SeedLike, *keys: int) -> int:
    """A 63-bit integer seed derived from ``seed`` and integer ``keys`` (stable across runs).

    With an int seed the derivation is a pure function of (seed, keys); with a Generator it draws
    from it (and so advances it).
    """
    if isinstance(seed, np.random.Generator):
        base = int(seed.integers(0, 2**63 - 1))
    elif isinstance(seed, np.random.SeedSequence):
        base = int(seed.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))
    elif seed is None:
        raise TypeError("an explicit seed is required")
    else:
        base = int(seed)
    ss = np.random.SeedSequence([base & (2**63 - 1), *[int(k) for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: SeedLike, *keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``seed`` and ``keys``."""
    import torch

    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *keys))
    return g
