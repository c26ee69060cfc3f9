"""The coordinator's safeguard on what members report (ours; in the spirit of CGSV's normalisation to Γ).

A delegate may report anything as its gradient piece (TL) or update (FedAvg): NaN, inf, or a piece
scaled by 10³⁰. Value filters bound what an *honest* delegate sends; nothing in the papers bounds a
dishonest one. Before a step is applied the coordinator passes the reported pieces through
:func:`guard_pieces`:

1. **Non-finite pieces are excluded**: a piece with any NaN or ±inf entry (or whose norm overflows)
   is replaced by 0 and the member is flagged ``excluded`` (its credit for the round is 0).
2. **Norm bound relative to the others**: each remaining piece's norm is compared with the lower
   quartile over the members (per contributed row for TL pieces, whose norm grows with the member's
   rows in the batch; plain norms for FedAvg updates). A piece above ``max_ratio`` × that reference
   is rescaled to the bound (``clipped``); its direction is kept. The lower quartile stays an honest
   scale while fewer than three quarters of the members inflate their pieces — members leave, so
   30% attackers among principals can become a majority among members (the median failed there:
   measured in ``adversaries``).

Guarantee: the guarded pieces are finite and each has norm ≤ ``max_ratio`` · reference (· rows), so
their sum — the applied update — is bounded by the honest members' scale whatever the others send.
A guard with a large enough ``max_ratio`` leaves honest pieces untouched, so TL stays exactly
centralised SGD on honest data (the tests check both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from coopsim.errors import check


@dataclass(frozen=True)
class Guarded:
    """Guarded pieces (N, D), which members were excluded (non-finite) or clipped, and the factor each
    piece was multiplied by: ``pieces[i] = scale[i] · reported[i]`` (0 excluded, < 1 clipped, else 1)."""

    pieces: torch.Tensor
    excluded: np.ndarray
    clipped: np.ndarray
    scale: np.ndarray


#: the quantile of the members' (per-row) piece norms that sets the guard's reference scale
REFERENCE_QUANTILE = 0.25


def guard_pieces(pieces: torch.Tensor, sizes: np.ndarray | None = None, *, max_ratio: float = 3.0) -> Guarded:
    """Exclude non-finite pieces and bound each piece's norm by ``max_ratio`` × the lower quartile of
    the members' norms (see the module docstring). ``sizes`` (rows per member in the batch) makes the
    bound per row; None compares plain norms. Returns new tensors; ``pieces`` is not modified."""
    check(max_ratio > 0 and np.isfinite(max_ratio), "max_ratio", max_ratio, "a finite number > 0")
    n = pieces.shape[0]
    norms = pieces.detach().double().norm(dim=1).cpu().numpy() if n else np.zeros(0)
    finite_rows = torch.isfinite(pieces).all(dim=1).cpu().numpy() if n else np.zeros(0, bool)
    excluded = ~(finite_rows & np.isfinite(norms))
    rows = np.ones(n) if sizes is None else np.maximum(np.asarray(sizes, dtype=float), 1.0)
    check(rows.shape == (n,), "sizes", rows.shape, f"one size per piece ({n})")
    per_row = np.where(excluded, np.nan, norms / rows)
    live = per_row[~excluded & (norms > 0)]
    clipped = np.zeros(n, dtype=bool)
    scale = np.where(excluded, 0.0, 1.0)
    out = pieces.clone()
    if excluded.any():
        out[torch.from_numpy(excluded).to(out.device)] = 0.0
    if live.size:
        bound = max_ratio * float(np.quantile(live, REFERENCE_QUANTILE)) * rows
        with np.errstate(invalid="ignore"):
            clipped = ~excluded & (norms > bound)
        if clipped.any():
            scale = np.where(clipped, bound / np.where(clipped, norms, 1.0), scale)
            # scale in float64: a piece of 1e30 × D entries in float32 must not overflow on the way
            out = (out.double() * torch.from_numpy(scale).to(out.device)[:, None]).to(pieces.dtype)
    return Guarded(out, excluded, clipped, scale)
