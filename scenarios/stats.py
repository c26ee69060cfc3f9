"""Statistics over replicates: one place that turns per-replicate numbers into what may be claimed.

Every headline number that a scenario or sweep aggregates over replicates (independent seeds) is
reported as an :class:`Estimate`: the mean, a confidence interval at ``level`` (95% by default),
``n`` (replicates with a defined value) and the method. Where a sign matters (does free-riding
pay? is TL's rank correlation higher than FedAvg's?) it carries a verdict in words:

- ``positive``: the whole interval lies above 0;
- ``negative``: the whole interval lies below 0;
- ``inconclusive``: the interval contains 0, or it is undefined (one replicate).

Methods (all from :mod:`scipy.stats`):

- ``n ≥ 6``: the *expanded percentile bootstrap* (Hesterberg 2015, "What teachers should know about
  the bootstrap"): :func:`scipy.stats.bootstrap` of the mean, percentile method, 9,999 resamples,
  at the widened level ``2Φ(√(n/(n−1))·t_{n−1, 1−a/2}) − 1``. The plain percentile bootstrap
  under-covers at small n (about 90% for a nominal 95% at n = 10); the widening corrects for the
  n−1 in the variance and the t quantile, and keeps the bootstrap's robustness to skewed data.
- ``2 ≤ n < 6``: Student's t interval. A bootstrap interval cannot reach beyond the range of the
  replicates, which at n ≤ 5 covers the mean with probability at most 1 − 2·2⁻ⁿ (94% at n = 5).
- ``n = 1``: no interval (``ci_low = ci_high = None``) with the reason; never a zero-width interval.
- All values equal (n ≥ 2): the interval is that value, with a note saying so.

**Paired** comparisons (:func:`paired`) apply the same to the per-replicate differences ``a_k − b_k``
of two arms that share seeds and principals; they are narrower than the **unpaired** interval
(:func:`unpaired`, a two-sample bootstrap of the difference of means, Welch's t for small samples)
whenever the arms are positively correlated, which is what sharing seeds buys.

Undefined quantities (a correlation over constant values, a ratio with a zero denominator) are
``None`` with a ``reason`` (:func:`undefined`), never 0: a replicate where a quantity is undefined
(``NaN``) is left out of its interval, and the estimate says in how many replicates that happened.

The bootstrap is seeded (``seed``, default 0), so the same numbers always give the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from coopsim.errors import InputError

DEFAULT_LEVEL = 0.95
#: Below this many replicates the interval is Student's t (see the module docstring).
MIN_BOOTSTRAP_N = 6
N_RESAMPLES = 9_999
Verdict = Literal["positive", "negative", "inconclusive"]
ESTIMATE_KEYS = ("mean", "ci_low", "ci_high", "n", "level")


def check_level(level: float, field: str = "ci_level") -> float:
    """A confidence level must lie strictly between 0.5 and 1 (e.g. 0.9, 0.95, 0.99)."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise InputError(field, level, "a confidence level in (0.5, 1), e.g. 0.95") from None
    if not 0.5 < value < 1.0:
        raise InputError(field, level, "a confidence level in (0.5, 1), e.g. 0.95")
    return value


@dataclass(frozen=True)
class Estimate:
    """A mean over replicates with its interval. ``ci_low``/``ci_high`` are None when the interval is
    undefined (``reason`` says why); ``mean`` is None when no replicate has a defined value."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    level: float
    method: str | None = None
    reason: str | None = None
    note: str | None = None
    verdict: Verdict | None = None

    @property
    def defined(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    def with_verdict(self) -> Estimate:
        """This estimate with its verdict on the sign (see the module docstring)."""
        return Estimate(**{**self.__dict__, "verdict": verdict_of(self)})

    def as_dict(self) -> dict[str, Any]:
        """``{"mean", "ci_low", "ci_high", "n", "level", "method"}`` plus ``reason``, ``note`` and
        ``verdict`` when set: the schema of every aggregated number in ``summary.json``."""
        out: dict[str, Any] = {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                               "level": self.level, "method": self.method}
        for key in ("reason", "note", "verdict"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def text(self, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
        """``mean [low, high]`` for terminal tables; ``n/a (reason)`` when undefined."""
        if self.mean is None:
            return f"n/a ({self.reason})" if self.reason else "n/a"

        def num(v: float) -> str:  # round-off (e.g. a difference of two equal sums) prints as 0
            return "0" if abs(v) < 1e-9 else fmt.format(scale * v)

        if not self.defined:
            return f"{num(self.mean)} [n/a: n={self.n}]"
        return f"{num(self.mean)} [{num(self.ci_low)}, {num(self.ci_high)}]"


def verdict_of(est: Estimate) -> Verdict:
    """``positive`` / ``negative`` when the interval excludes 0 on that side, else ``inconclusive``."""
    if not est.defined:
        return "inconclusive"
    if est.ci_low > 0:
        return "positive"
    if est.ci_high < 0:
        return "negative"
    return "inconclusive"


def undefined(reason: str, *, n: int = 0, level: float = DEFAULT_LEVEL) -> Estimate:
    """A quantity that has no value (``mean = None``), with the reason."""
    return Estimate(None, None, None, n, level, None, reason)


def expanded_level(n: int, level: float) -> float:
    """Hesterberg's widened level for the percentile bootstrap of a mean of ``n`` values."""
    a = (1.0 - level) / 2.0
    return float(2.0 * stats.norm.cdf(math.sqrt(n / (n - 1)) * stats.t.ppf(1.0 - a, n - 1)) - 1.0)


def _clean(values: Iterable[float | None]) -> tuple[np.ndarray, int]:
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    return x[np.isfinite(x)], int((~np.isfinite(x)).sum())


def estimate(values: Iterable[float | None], *, level: float = DEFAULT_LEVEL, verdict: bool = False,
             seed: int = 0, undefined_reason: str = "undefined in every replicate",
             bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean of ``values`` over replicates with its confidence interval (see the module docstring).

    Non-finite values (a quantity undefined in that replicate) are left out and counted in the note;
    when every value is undefined the estimate is undefined with ``undefined_reason``. ``bounds``
    is the quantity's range (e.g. (0, 1) for a share, (−1, 1) for a correlation): a t interval that
    passes it is clipped to it."""
    level = check_level(level, "level")
    x, dropped = _clean(values)
    n = x.size
    note = f"undefined in {dropped} of {n + dropped} replicates (left out)" if dropped else None
    if n == 0:
        est = Estimate(None, None, None, 0, level, None, undefined_reason)
    elif n == 1:
        est = Estimate(float(x[0]), None, None, 1, level, None,
                       "one replicate: no interval (needs at least 2; raise replicates)", note)
    elif np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):  # equal up to round-off
        est = Estimate(float(x[0]), float(x[0]), float(x[0]), n, level, "all replicates equal", None,
                       _join(note, f"all {n} replicates gave the same value"))
    elif n < MIN_BOOTSTRAP_N:
        with warnings.catch_warnings():  # scipy warns on nearly equal values; the interval stays valid
            warnings.simplefilter("ignore")
            low, high = stats.ttest_1samp(x, 0.0).confidence_interval(level)
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        est = Estimate(float(x.mean()), float(low), float(high), n, level, "student t", None,
                       _join(note, f"n = {n} < {MIN_BOOTSTRAP_N}: Student's t interval (assumes roughly normal "
                                   f"replicates)"))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((x,), np.mean, confidence_level=expanded_level(n, level), method="percentile",
                                  n_resamples=N_RESAMPLES, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        est = Estimate(float(x.mean()), float(min(low, x.mean())), float(max(high, x.mean())), n, level,
                       "expanded percentile bootstrap", None, note)
    return est.with_verdict() if verdict else est


def paired(a: Iterable[float | None], b: Iterable[float | None], *, level: float = DEFAULT_LEVEL,
           seed: int = 0, bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean of the per-replicate differences ``a_k − b_k`` of two arms sharing seeds, with its
    interval and verdict (a replicate where either arm is undefined is left out). ``bounds`` is the
    range of the compared quantity; the difference's interval is clipped to ``[lo − hi, hi − lo]``."""
    xa = np.array([np.nan if v is None else v for v in a], dtype=float)
    xb = np.array([np.nan if v is None else v for v in b], dtype=float)
    if xa.shape != xb.shape:
        raise InputError("paired", f"{xa.size} vs {xb.size} replicates", "two arms with the same replicates")
    diff_bounds = None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])
    return estimate(xa - xb, level=level, verdict=True, seed=seed, bounds=diff_bounds,
                    undefined_reason="undefined in every replicate of one of the arms")


def unpaired(a: Iterable[float | None], b: Iterable[float | None], *, level: float = DEFAULT_LEVEL,
             seed: int = 0) -> Estimate:
    """Difference of the means of two independent samples, with its interval and verdict: a
    two-sample percentile bootstrap (Welch's t interval when either sample has fewer than
    ``MIN_BOOTSTRAP_N`` values)."""
    level = check_level(level, "level")
    xa, _ = _clean(a)
    xb, _ = _clean(b)
    n = min(xa.size, xb.size)
    if n < 2:
        return undefined("needs at least 2 values in each sample", n=n, level=level).with_verdict()
    diff = float(xa.mean() - xb.mean())
    if n < MIN_BOOTSTRAP_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low, high = stats.ttest_ind(xa, xb, equal_var=False).confidence_interval(level)
        method = "welch t"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((xa, xb), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis),
                                  confidence_level=expanded_level(n, level), method="percentile",
                                  n_resamples=N_RESAMPLES, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        method = "expanded percentile bootstrap (two-sample)"
    return Estimate(diff, float(low), float(high), n, level, method).with_verdict()


def _join(*notes: str | None) -> str | None:
    parts = [n for n in notes if n]
    return "; ".join(parts) if parts else None


def is_estimate(value: Any) -> bool:
    """Whether a ``summary.json`` value is an aggregated number (an :meth:`Estimate.as_dict`)."""
    return isinstance(value, Mapping) and all(k in value for k in ESTIMATE_KEYS)


def describe(level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """What every interval in a summary means (stored once per ``summary.json`` as ``intervals``)."""
    return {"level": level,
            "method": f"expanded percentile bootstrap of the mean over replicates (scipy.stats.bootstrap, "
                      f"{N_RESAMPLES} resamples, seeded) for n ≥ {MIN_BOOTSTRAP_N}; Student's t for 2 ≤ n < "
                      f"{MIN_BOOTSTRAP_N}; none for n = 1",
            "paired": "differences between arms are taken per replicate (same seeds and principals), then "
                      "the interval of their mean",
            "verdict": "positive / negative when the whole interval lies above / below 0, else inconclusive",
            "undefined": "null with a reason, never 0"}
