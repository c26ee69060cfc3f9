"""Input checks on arrays shared by the economics modules.

Every check raises :class:`coopsim.errors.InputError` naming the argument; nothing is clipped or
repaired silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coopsim.errors import InputError, check


def as_array(name: str, value: Any, ndim: int | None = None, *, allow_empty: bool = False) -> np.ndarray:
    """A finite float64 array with ``ndim`` dimensions (NaN or inf raise)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(name, value, "an array of real numbers") from exc
    if ndim is not None:
        check(arr.ndim == ndim, name, f"array of shape {arr.shape}", f"a {ndim}-d array")
    if not allow_empty:
        check(arr.size > 0, name, f"array of shape {arr.shape}", "a non-empty array")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, _first_bad(arr), "finite numbers only (no NaN or inf)")
    return arr


def _first_bad(arr: np.ndarray) -> str:
    idx = np.argwhere(~np.isfinite(arr))[0]
    return f"{arr[tuple(idx)]} at index {tuple(int(i) for i in idx)}"


def as_vector(name: str, value: Any, length: int | None = None) -> np.ndarray:
    """A finite 1-d float64 array, optionally of a given length."""
    arr = as_array(name, value, 1)
    if length is not None:
        check(arr.shape[0] == length, name, f"length {arr.shape[0]}", f"length {length}")
    return arr


def as_matrix(name: str, value: Any, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """A finite 2-d float64 array, optionally with given numbers of rows/columns."""
    arr = as_array(name, value, 2)
    if rows is not None:
        check(arr.shape[0] == rows, name, f"shape {arr.shape}", f"{rows} rows")
    if cols is not None:
        check(arr.shape[1] == cols, name, f"shape {arr.shape}", f"{cols} columns")
    return arr


def nonnegative(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` unchanged if every entry is >= 0."""
    check(bool(np.all(arr >= 0)), name, arr.tolist() if arr.size <= 8 else "array", "values >= 0")
    return arr


def finite_scalar(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number, optionally within bounds (closed unless ``*_open``)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    check(ok and bool(np.isfinite(value)), name, value, "a finite real number")
    x = float(value)
    if low is not None:
        check(x > low if low_open else x >= low, name, value, f"a number {'>' if low_open else '>='} {low}")
    if high is not None:
        check(x < high if high_open else x <= high, name, value,
              f"a number {'<' if high_open else '<='} {high}")
    return x


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= minimum
    check(ok, name, value, f"an integer >= {minimum}")
    return int(value)


def probabilities(name: str, value: Any, *, strictly_positive: bool = False, atol: float = 1e-9) -> np.ndarray:
    """A probability vector: finite, >= 0 (or > 0), summing to 1 within ``atol`` (not renormalised)."""
    p = as_vector(name, value)
    if strictly_positive:
        check(bool(np.all(p > 0)), name, p.tolist(), "every probability > 0")
    else:
        check(bool(np.all(p >= 0)), name, p.tolist(), "every probability >= 0")
    check(abs(float(p.sum()) - 1.0) <= atol, name, p.tolist(), f"probabilities summing to 1 (within {atol})")
    return p


def rng_from(rng: Any) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, a SeedSequence or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer | np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise InputError("rng", rng, "a numpy Generator, an integer seed, a SeedSequence or None")


def distinct(ids: np.ndarray) -> bool:
    """Whether an array of integer ids holds no repeats (O(n) when already increasing)."""
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return True
    ordered = np.sort(ids)
    return bool(np.all(ordered[1:] != ordered[:-1]))
