"""Partitions exactly as SPEC §4 describes, plus Dirichlet label skew."""

import numpy as np
import pytest

from coopsim.errors import InputError
from learning.partition import cla_classes, partition, pow_sizes


def test_pow_sizes_match_the_cgsv_example():
    assert pow_sizes(5, 3000).tolist() == [71, 336, 600, 865, 1130]


def test_pow_partition_is_disjoint_and_increasing():
    y = np.arange(5000) % 10
    parts = partition(y, 5, "pow", seed=0, n_samples=3000)
    assert [len(p) for p in parts] == [71, 336, 600, 865, 1130]
    allrows = np.concatenate(parts)
    assert len(np.unique(allrows)) == len(allrows)


def test_pow_overshoot_is_taken_from_the_largest_member():
    y = np.arange(3000) % 10
    parts = partition(y, 5, "pow", seed=0)
    sizes = pow_sizes(5, 3000)
    assert sum(len(p) for p in parts) == 3000
    assert [len(p) for p in parts] == [*sizes[:-1], sizes[-1] - (sizes.sum() - 3000)]


@pytest.mark.parametrize(("pool", "n"), [(20, 10), (20, 20), (37, 20), (3443, 20), (11, 10)])
def test_pow_overshoot_keeps_every_member_and_the_order(pool, n):
    """Small pools: the ceil-ed sizes' excess never empties a member or reorders the sizes."""
    parts = partition(np.arange(pool) % 3, n, "pow", seed=0)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == min(pool, int(pow_sizes(n, pool).sum()))
    assert min(sizes) >= 1
    assert sizes == sorted(sizes)
    assert len(np.unique(np.concatenate(parts))) == sum(sizes)


def test_uni_is_equal_and_disjoint():
    y = np.arange(1000) % 10
    parts = partition(y, 7, "uni", seed=0)
    assert {len(p) for p in parts} == {1000 // 7}
    allrows = np.concatenate(parts)
    assert len(np.unique(allrows)) == len(allrows)


def test_cla_members_see_only_their_first_classes(digits, cla_parts):
    c = cla_classes(10, 10)
    assert c.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    for ci, p in zip(c, cla_parts, strict=True):
        labels = digits.train.y[p]
        assert labels.max() < ci and len(p) == len(digits.train) // 10


def test_dirichlet_covers_every_row_once():
    y = np.arange(2000) % 10
    parts = partition(y, 8, "dirichlet", seed=0, alpha=0.3)
    allrows = np.concatenate(parts)
    assert sorted(allrows.tolist()) == list(range(2000))
    assert min(len(p) for p in parts) >= 1
    # skew: some member's label distribution is far from uniform
    skew = max(np.bincount(y[p], minlength=10).max() / len(p) for p in parts)
    assert skew > 0.3


def test_partitions_are_seeded():
    y = np.arange(500) % 10
    for scheme in ("uni", "pow", "cla", "dirichlet"):
        a = partition(y, 4, scheme, seed=5)
        b = partition(y, 4, scheme, seed=5)
        assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_members": 3, "scheme": "zipf"}, "partition"),
        ({"n_members": 51, "scheme": "uni", "n_samples": 50}, "n_members"),
        ({"n_members": 3, "scheme": "uni", "n_samples": 10_000}, "n_samples"),
        ({"n_members": 0, "scheme": "uni"}, "n_members"),
        ({"n_members": 3, "scheme": "dirichlet", "alpha": -1.0}, "dirichlet_alpha"),
    ],
)
def test_bad_partition_input(kwargs, field):
    y = np.arange(100) % 10
    with pytest.raises(InputError) as err:
        partition(y, seed=0, **kwargs)
    assert err.value.field == field
