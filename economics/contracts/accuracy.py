"""Accuracy functions ``a(m)`` of the pooled data volume, with exact first and second derivatives.

Default (P, SPEC §5): the generalisation bound ``a(m) = 1 - (sqrt(2k(2 + ln(m/k))) + 4)/sqrt(m)`` for
``m > k e^-2``, else 0, clipped at 0. Pluggable alternatives (ours): a power-law learning curve and
an arctan curve (the latter is the authors' demo ``2/pi arctan(0.05 m)``). Every function is
non-decreasing, bounded by ``a_max`` and defined for all real ``m`` (``m < 0`` is treated as 0, so a
solver probing slightly outside ``m >= 0`` sees a flat function rather than NaN; ours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coopsim.errors import InputError
from economics._checks import finite_scalar


class AccuracyFunction:
    """Base class: ``value``, ``derivative`` and ``second_derivative`` of ``a(m)`` (vectorised)."""

    a_max: float = 1.0

    def value(self, m: np.ndarray) -> np.ndarray:
        """``a(m)``."""
        raise NotImplementedError

    def derivative(self, m: np.ndarray) -> np.ndarray:
        """``a'(m)``."""
        raise NotImplementedError

    def second_derivative(self, m: np.ndarray) -> np.ndarray:
        """``a''(m)``."""
        raise NotImplementedError

    def __call__(self, m: np.ndarray | float) -> np.ndarray:
        """``a(m)`` for a number or an array of data volumes; NaN raises (it is never mapped to 0)."""
        arr = np.asarray(m, dtype=np.float64)
        if np.isnan(arr).any():
            raise InputError("m", m if arr.size <= 8 else "array with NaN", "data volumes that are not NaN")
        return self.value(arr)

    def all(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(a, a', a'')`` at ``m``."""
        m = np.asarray(m, dtype=np.float64)
        return self.value(m), self.derivative(m), self.second_derivative(m)


@dataclass(frozen=True)
class GeneralisationBound(AccuracyFunction):
    """Generalisation-bound accuracy (P): ``a(m) = a_max - (sqrt(2k(2 + ln(m/k))) + 4)/sqrt(m)``.

    Zero for ``m <= k e^-2`` and wherever the bound is negative (clipped at 0, SPEC §5; the authors'
    code does not clip). ``a'`` and ``a''`` are exact on the smooth part and 0 where ``a = 0``.
    """

    k: float = 1.0
    a_max: float = 1.0

    def __post_init__(self) -> None:
        finite_scalar("k", self.k, low=0.0, low_open=True)
        finite_scalar("a_max", self.a_max, low=0.0, low_open=True)

    def _parts(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        m = np.asarray(m, dtype=np.float64)
        dom = m > self.k * math.exp(-2.0)
        mm = np.where(dom, m, 1.0)
        log_term = np.log(mm / self.k)
        s = np.sqrt(2.0 * self.k * np.maximum(2.0 + log_term, 0.0))
        raw = self.a_max - (s + 4.0) / np.sqrt(mm)
        live = dom & (raw > 0)
        return mm, log_term, s, live

    def value(self, m: np.ndarray) -> np.ndarray:
        mm, _, s, live = self._parts(m)
        return np.where(live, self.a_max - (s + 4.0) / np.sqrt(mm), 0.0)

    def derivative(self, m: np.ndarray) -> np.ndarray:
        mm, log_term, s, live = self._parts(m)
        ss = np.where(live, s, 1.0)
        d = (self.k * (1.0 + log_term) + 2.0 * ss) / (ss * mm**1.5)
        return np.where(live, d, 0.0)

    def second_derivative(self, m: np.ndarray) -> np.ndarray:
        mm, log_term, s, live = self._parts(m)
        ss = np.where(live, s, 1.0)
        h = self.k * (1.0 + log_term) / ss + 2.0
        dh = (self.k / (mm * ss)) * (1.0 - self.k * (1.0 + log_term) / ss**2)
        d2 = -1.5 * mm**-2.5 * h + mm**-1.5 * dh
        return np.where(live, d2, 0.0)

    def all(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(a, a', a'')`` from one evaluation of the shared terms (the same formulas as above)."""
        mm, log_term, s, live = self._parts(m)
        ss = np.where(live, s, 1.0)
        a = np.where(live, self.a_max - (s + 4.0) / np.sqrt(mm), 0.0)
        d = np.where(live, (self.k * (1.0 + log_term) + 2.0 * ss) / (ss * mm**1.5), 0.0)
        h = self.k * (1.0 + log_term) / ss + 2.0
        dh = (self.k / (mm * ss)) * (1.0 - self.k * (1.0 + log_term) / ss**2)
        d2 = np.where(live, -1.5 * mm**-2.5 * h + mm**-1.5 * dh, 0.0)
        return a, d, d2


@dataclass(frozen=True)
class PowerLaw(AccuracyFunction):
    """Power-law learning curve (ours): ``a(m) = a_max (1 - (1 + m/scale)^-gamma)``, ``a(0) = 0``."""

    a_max: float = 1.0
    scale: float = 100.0
    gamma: float = 0.5

    def __post_init__(self) -> None:
        finite_scalar("a_max", self.a_max, low=0.0, low_open=True)
        finite_scalar("scale", self.scale, low=0.0, low_open=True)
        finite_scalar("gamma", self.gamma, low=0.0, low_open=True)

    def _base(self, m: np.ndarray) -> np.ndarray:
        return 1.0 + np.maximum(np.asarray(m, dtype=np.float64), 0.0) / self.scale

    def value(self, m: np.ndarray) -> np.ndarray:
        return self.a_max * (1.0 - self._base(m) ** -self.gamma)

    def derivative(self, m: np.ndarray) -> np.ndarray:
        d = self.a_max * self.gamma / self.scale * self._base(m) ** (-self.gamma - 1.0)
        return np.where(np.asarray(m) >= 0, d, 0.0)

    def second_derivative(self, m: np.ndarray) -> np.ndarray:
        g = self.gamma
        d2 = -self.a_max * g * (g + 1.0) / self.scale**2 * self._base(m) ** (-g - 2.0)
        return np.where(np.asarray(m) >= 0, d2, 0.0)


@dataclass(frozen=True)
class Arctan(AccuracyFunction):
    """Arctan curve (ours; the authors' demo uses scale 20): ``a(m) = a_max (2/pi) arctan(m/scale)``."""

    a_max: float = 1.0
    scale: float = 20.0

    def __post_init__(self) -> None:
        finite_scalar("a_max", self.a_max, low=0.0, low_open=True)
        finite_scalar("scale", self.scale, low=0.0, low_open=True)

    def _x(self, m: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(m, dtype=np.float64), 0.0) / self.scale

    def value(self, m: np.ndarray) -> np.ndarray:
        return self.a_max * (2.0 / math.pi) * np.arctan(self._x(m))

    def derivative(self, m: np.ndarray) -> np.ndarray:
        x = self._x(m)
        d = self.a_max * (2.0 / math.pi) / (self.scale * (1.0 + x * x))
        return np.where(np.asarray(m) >= 0, d, 0.0)

    def second_derivative(self, m: np.ndarray) -> np.ndarray:
        x = self._x(m)
        d2 = -self.a_max * (2.0 / math.pi) * 2.0 * x / (self.scale**2 * (1.0 + x * x) ** 2)
        return np.where(np.asarray(m) >= 0, d2, 0.0)
