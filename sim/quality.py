"""Quality of contributed rows (ours): the weight of a row relative to a clean one and the fraction
of correct labels, by behaviour. Ground truth for fairness; the surrogate learns from the weight."""

from __future__ import annotations


def quality_weight(behaviour: str, label_noise: float, q: float, free_ride: str = "noise") -> float:
    """Value of one contributed row relative to a clean one (ours): ``1 − 2ν`` for label noise ν after
    cleaning (noise at 0.5 is worthless, flipped labels are harmful), −1 for label flips, 0 for
    copies or nothing, −0.8 for free-rider noise (90% wrong labels), −0.5 for random or scaled
    gradients. The surrogate learns from it; the real mode uses it only as ground truth."""
    if behaviour == "free_rider":
        return 0.0 if free_ride in ("copies", "nothing") else 1.0 - 2.0 * 0.9
    if behaviour == "label_flip":
        return -1.0
    if behaviour in ("random_gradient", "scaled_gradient"):
        return -0.5
    return 1.0 - 2.0 * label_noise * (1.0 - q)


def label_quality(behaviour: str, label_noise: float, q: float, free_ride: str = "noise",
                  n_classes: int = 10) -> float:
    """Fraction of correct labels in the rows a delegate brings (NaN when it brings none): label noise
    after cleaning for honest data, chance level for free-rider noise, 0 for flipped labels."""
    if behaviour == "free_rider":
        return {"noise": 1.0 / n_classes, "copies": 1.0 - label_noise, "nothing": float("nan")}[free_ride]
    if behaviour == "label_flip":
        return 0.0
    return 1.0 - label_noise * (1.0 - q)
