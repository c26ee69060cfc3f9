"""Datasets read from the user's own files: CSV, parquet and .npz (learning.data.DataFile)."""

import numpy as np
import pandas as pd
import pytest

from coopsim.errors import InputError
from learning.data import (
    DataFile,
    Dataset,
    check_rows,
    dataset_summary,
    load_dataset,
    min_rows,
    read_data_file,
    split,
)
from learning.partition import PARTITIONS, partition

N = 40
LABELS = ["cat", "ant", "bee", "dog"] * (N // 4)


def frame(n: int = N) -> pd.DataFrame:
    """Four string classes, a large-valued column, a boolean column and a constant column."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "size": rng.normal(1000.0, 300.0, size=n),
        "count": rng.integers(0, 50, size=n),
        "flag": rng.random(n) < 0.5,
        "const": 7.5,
        "species": (LABELS * (n // len(LABELS) + 1))[:n],
    })


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "animals.csv"
    frame().to_csv(path, index=False)
    return path


def write_csv(tmp_path, df: pd.DataFrame, name: str = "rows.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def balanced(n: int, n_classes: int) -> list[int]:
    return [k for k in range(n_classes) for _ in range(n // n_classes + (k < n % n_classes))]


def test_csv_string_labels_become_sorted_classes(csv_file):
    d = read_data_file(DataFile(path=str(csv_file), label="species"))
    assert d.name == "animals" and d.n_classes == 4 and d.X.shape == (N, 4) and d.X.dtype == np.float32
    assert d.class_names == ("ant", "bee", "cat", "dog")
    assert d.y.dtype == np.int64
    assert [d.class_names[k] for k in d.y] == frame()["species"].tolist()


def test_parquet_and_npz_give_the_same_data(tmp_path, csv_file):
    df = frame()
    from_csv = read_data_file(DataFile(path=str(csv_file), label="species"))
    for name in ("animals.parquet", "animals.pq"):
        df.to_parquet(tmp_path / name)
        d = read_data_file(DataFile(path=str(tmp_path / name), label="species"))
        assert np.array_equal(d.X, from_csv.X) and np.array_equal(d.y, from_csv.y)
        assert d.class_names == from_csv.class_names
    features = df.drop(columns="species").to_numpy(dtype=float)
    np.savez(tmp_path / "animals.npz", X=features, y=df["species"].to_numpy(str))
    d = read_data_file(DataFile(path=str(tmp_path / "animals.npz")))
    assert np.allclose(d.X, from_csv.X, atol=1e-6) and np.array_equal(d.y, from_csv.y)
    assert d.class_names == from_csv.class_names


def test_integer_and_whole_float_labels(tmp_path):
    df = frame().assign(species=[3, 10, 7, 10] * (N // 4))
    d = read_data_file(DataFile(path=write_csv(tmp_path, df), label="species"))
    assert d.class_names == (3, 7, 10) and d.y[:4].tolist() == [0, 2, 1, 2]
    np.savez(tmp_path / "f.npz", X=np.ones((N, 1)) * np.arange(N)[:, None], y=df["species"].to_numpy(float))
    assert read_data_file(DataFile(path=str(tmp_path / "f.npz"))).class_names == (3, 7, 10)


def test_features_are_standardised(csv_file):
    d = read_data_file(DataFile(path=str(csv_file), label="species"))
    X = d.X.astype(np.float64)
    assert np.abs(X.mean(axis=0)).max() < 1e-5
    assert np.allclose(X[:, :3].std(axis=0), 1.0, atol=1e-5)
    assert np.all(X[:, 3] == 0.0)  # the constant column


def test_repeated_loads_are_cached_until_the_file_changes(tmp_path, csv_file):
    spec = DataFile(path=str(csv_file), label="species")
    first = read_data_file(spec)
    assert read_data_file(spec) is first
    assert load_dataset({"path": str(csv_file), "label": "species"}) is first
    frame(N + 4).to_csv(csv_file, index=False)
    assert len(read_data_file(spec)) == N + 4


def test_relative_paths_are_relative_to_the_working_directory(tmp_path, csv_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset(DataFile(path="animals.csv", label="species"))) == N


def test_a_file_through_load_dataset_splits_the_same_way_twice(csv_file):
    spec = DataFile(path=str(csv_file), label="species")
    data = load_dataset(spec, difficulty=0.9, n_classes=3)  # synthetic knobs are ignored for files
    assert data.n_classes == 4
    a, b = split(load_dataset(spec), seed=0), split(load_dataset(spec), seed=0)
    for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert np.array_equal(x.X, y.X) and np.array_equal(x.y, y.y)
    assert a.train.class_names == ("ant", "bee", "cat", "dog")
    assert len(a.train) + len(a.val) + len(a.test) == N


def test_summary(csv_file):
    assert dataset_summary({"path": str(csv_file), "label": "species"}) == {
        "n_rows": N, "n_features": 4, "n_classes": 4, "class_names": ["ant", "bee", "cat", "dog"]}


def bad_inputs(tmp_path):
    """(spec, field, words the message must contain) for each kind of bad file."""
    df = frame()
    cases = [({"path": str(tmp_path / "missing.csv")}, "dataset.path", [str(tmp_path / "missing.csv")])]
    (tmp_path / "rows.txt").write_text("a,label\n1,2\n")
    cases.append(({"path": str(tmp_path / "rows.txt")}, "dataset.path", [".csv", ".parquet", ".pq", ".npz"]))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    cases.append(({"path": str(tmp_path / "broken.parquet")}, "dataset.path", ["parquet", "ArrowInvalid"]))
    (tmp_path / "quote.csv").write_text('a,label\n1,"x\n')
    cases.append(({"path": str(tmp_path / "quote.csv")}, "dataset.path", ["ParserError"]))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    cases.append(({"path": str(tmp_path / "broken.npz")}, "dataset.path", ["npz"]))
    (tmp_path / "empty.csv").write_text("")
    cases.append(({"path": str(tmp_path / "empty.csv")}, "dataset.path", ["empty"]))
    (tmp_path / "header.csv").write_text("size,species\n")
    cases.append(({"path": str(tmp_path / "header.csv"), "label": "species"}, "dataset.path", ["no", "data row"]))
    cases.append(({"path": write_csv(tmp_path, df, "nolabel.csv"), "label": "kind"}, "dataset.label",
                  ["'kind'", "'size'", "'species'"]))
    np.savez(tmp_path / "noy.npz", X=np.zeros((N, 2)))
    cases.append(({"path": str(tmp_path / "noy.npz")}, "dataset.path", ["'y'"]))
    np.savez(tmp_path / "nox.npz", y=np.zeros(N))
    cases.append(({"path": str(tmp_path / "nox.npz")}, "dataset.path", ["'X'"]))
    np.savez(tmp_path / "x3d.npz", X=np.zeros((N, 2, 2)), y=np.arange(N) % 2)
    cases.append(({"path": str(tmp_path / "x3d.npz")}, "dataset.path", ["2-d", "(40, 2, 2)"]))
    np.savez(tmp_path / "lengths.npz", X=np.zeros((N, 2)), y=np.arange(N - 1) % 2)
    cases.append(({"path": str(tmp_path / "lengths.npz")}, "dataset.path", ["40 rows", "39 labels"]))
    text = df.assign(colour=["red" if i == 5 else str(i) for i in range(N)])
    cases.append(({"path": write_csv(tmp_path, text, "text.csv"), "label": "species"}, "dataset.path",
                  ["'colour'", "'red'", "data row 6"]))
    holes = df.assign(size=[np.nan if i == 11 else 1.0 for i in range(N)])
    cases.append(({"path": write_csv(tmp_path, holes, "nan.csv"), "label": "species"}, "dataset.path",
                  ["data row 12", "'size'"]))
    infinite = df.assign(count=[np.inf if i == 2 else 1.0 for i in range(N)])
    infinite.to_parquet(tmp_path / "inf.parquet")
    cases.append(({"path": str(tmp_path / "inf.parquet"), "label": "species"}, "dataset.path",
                  ["data row 3", "'count'", "inf"]))
    cases.append(({"path": write_csv(tmp_path, df.assign(species="ant"), "one.csv"), "label": "species"},
                  "dataset.label", ["two classes", "'ant'"]))
    cases.append(({"path": write_csv(tmp_path, df.head(10), "few.csv"), "label": "species"}, "dataset.path",
                  ["has 10 rows", f"need at least {min_rows(1, n_classes=4)} rows", "[3, 2, 3, 2]"]))
    cases.append(({"path": write_csv(tmp_path, df.assign(species=np.arange(N) / 2), "fractional.csv"),
                   "label": "species"}, "dataset.label", ["0.5", "data row 2"]))
    return cases


def test_each_bad_file_names_the_problem(tmp_path):
    for spec, field, words in bad_inputs(tmp_path):
        with pytest.raises(InputError) as err:
            load_dataset(spec)
        assert err.value.field == field, (spec, str(err.value))
        for word in words:
            assert word in str(err.value), (spec, word, str(err.value))


def test_bad_specs_are_input_errors(tmp_path):
    with pytest.raises(InputError) as err:
        load_dataset({"path": str(tmp_path / "a.csv"), "lable": "x"})
    assert err.value.field == "dataset" and "lable" in str(err.value)
    with pytest.raises(InputError) as err:
        load_dataset({"label": "x"})
    assert err.value.field == "dataset.path"
    with pytest.raises(InputError) as err:
        load_dataset("rows.csv")
    assert err.value.field == "dataset" and "path" in str(err.value)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("n_members", [1, 3, 10])
def test_min_rows_is_the_boundary(tmp_path, n_members, n_classes):
    """Exactly ``min_rows`` rows load, split and partition among the members under every scheme (many
    seeds); one row fewer is refused with the counts in the message."""
    for scheme in PARTITIONS:
        need = min_rows(n_members, n_classes=n_classes, partition=scheme)
        rng = np.random.default_rng(need)
        labels = rng.permutation(balanced(need, n_classes))
        df = pd.DataFrame({"x": rng.normal(size=need), "label": labels})
        data = load_dataset(DataFile(path=write_csv(tmp_path, df, f"{scheme}.csv")))
        check_rows(data, n_members, partition=scheme)
        for seed in range(25):
            parts = partition(split(data, seed=seed).train.y, n_members, scheme, seed=seed, n_classes=n_classes)
            assert len(parts) == n_members and all(len(p) > 0 for p in parts)
        fewer = Dataset("fewer", np.zeros((need - 1, 1), np.float32), np.array(balanced(need - 1, n_classes)),
                        n_classes)
        with pytest.raises(InputError) as err:
            check_rows(fewer, n_members, partition=scheme, field="training.dataset.path")
        assert err.value.field == "training.dataset.path"
        assert f"has {need - 1} rows" in str(err.value) and f"at least {need} rows" in str(err.value)


def test_min_rows_values():
    assert [min_rows(n) for n in (1, 5, 10, 20)] == [8, 9, 17, 32]
    assert min_rows(1, n_classes=10) == 62
    assert min_rows(10, partition="dirichlet") > min_rows(10)  # floor-cut Dirichlet shares need more rows
    assert min_rows(10, partition="dirichlet", alpha=5.0) < min_rows(10, partition="dirichlet")
    with pytest.raises(InputError):
        min_rows(0)
    with pytest.raises(InputError):
        min_rows(3, partition="zipf")


def test_too_few_rows_of_one_class_is_refused_even_with_many_rows():
    """92 rows are plenty, but the stratified test split can leave class 2 a single row, which the
    validation split then refuses; check_rows sees it from the class counts."""
    y = np.array([0] * 60 + [1] * 30 + [2] * 2)
    data = Dataset("skewed", np.zeros((92, 1), np.float32), y, 3)
    with pytest.raises(InputError) as err:
        check_rows(data, 3)
    assert "per class: [60, 30, 2]" in str(err.value) and "class 2 may keep only 1" in str(err.value)
    with pytest.raises(InputError):
        split(data, seed=0)
