"""Quality of contributed rows (ours): the weight of a row relative to a clean one and the fraction
of correct labels, by behaviour, for arrays of principals. Ground truth for fairness; the
surrogate learns from the weight."""

from __future__ import annotations

import numpy as np

from sim.population import CODES

#: label noise of free-rider noise rows (90% wrong labels)
FREE_RIDER_NOISE = 0.9


def quality_weight(behaviour: np.ndarray, label_noise: np.ndarray, q: np.ndarray,
                   free_ride: str = "noise") -> np.ndarray:
    """Value of one contributed row relative to a clean one (ours), per principal (``behaviour``:
    codes of ``sim.config.BEHAVIOURS``): ``1 − 2ν`` for label noise ν after cleaning (noise at 0.5 is
    worthless, flipped labels are harmful), −1 for label flips, 0 for copies or nothing, −0.8 for
    free-rider noise, −0.5 for random or scaled gradients. The surrogate learns from it; the real
    mode uses it only as ground truth."""
    rider = 0.0 if free_ride in ("copies", "nothing") else 1.0 - 2.0 * FREE_RIDER_NOISE
    w = 1.0 - 2.0 * np.asarray(label_noise, dtype=float) * (1.0 - np.asarray(q, dtype=float))
    w = np.where(behaviour == CODES["free_rider"], rider, w)
    w = np.where(behaviour == CODES["label_flip"], -1.0, w)
    return np.where(np.isin(behaviour, [CODES["random_gradient"], CODES["scaled_gradient"]]), -0.5, w)


def label_quality(behaviour: np.ndarray, label_noise: np.ndarray, q: np.ndarray, free_ride: str = "noise",
                  n_classes: int = 10) -> np.ndarray:
    """Fraction of correct labels in the rows each delegate brings (NaN when it brings none): label
    noise after cleaning for honest data, chance level for free-rider noise, 0 for flipped labels."""
    noise = np.asarray(label_noise, dtype=float)
    rider = {"noise": np.full_like(noise, 1.0 / n_classes), "copies": 1.0 - noise,
             "nothing": np.full_like(noise, np.nan)}[free_ride]
    out = np.where(behaviour == CODES["free_rider"], rider, 1.0 - noise * (1.0 - np.asarray(q, dtype=float)))
    return np.where(behaviour == CODES["label_flip"], 0.0, out)
