"""What a learning mode returns for one round (real or surrogate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RoundOutcome:
    """One training round: the shared model's accuracy and validation loss, each member's credit
    for the round and its update vector (rows in member order; ``deltas`` is None when empty)."""

    accuracy: float
    val_loss: float
    credit: np.ndarray
    deltas: np.ndarray | None
    rows: np.ndarray
