"""The training data reference: files, folders and URIs, or a fingerprint of X and y."""

from __future__ import annotations

import datetime
import hashlib
import os

import numpy as np
import pandas as pd
import pytest

import skvault


def _data(model, **kwargs):
    return skvault.read_metadata(skvault.dumps(model, **kwargs))["data"]


def _mtime(path) -> str:
    return datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.UTC).isoformat()


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"a,b\n" + b"1.5,2\n" * 50_000)
    return path


def test_a_file_is_recorded_with_its_digest_size_and_time(csv, logistic):
    expected = {
        "uri": str(csv.resolve()),
        "sha256": hashlib.sha256(csv.read_bytes()).hexdigest(),
        "size": csv.stat().st_size,
        "mtime": _mtime(csv),
    }
    assert _data(logistic, data=csv) == expected
    assert _data(logistic, data=str(csv)) == expected
    assert _data(logistic, data=csv.resolve().as_uri()) == expected


def test_a_changed_file_has_another_digest(csv, logistic):
    before = _data(logistic, data=csv)["sha256"]
    csv.write_bytes(csv.read_bytes().replace(b"1.5", b"1.6", 1))
    assert _data(logistic, data=csv)["sha256"] != before


def test_a_folder_is_digested_file_by_file(tmp_path, logistic):
    folder = tmp_path / "dataset"
    (folder / "part").mkdir(parents=True)
    files = {"a.parquet": b"first", "part/b.parquet": b"second" * 1000}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    # the documented rule: one "<path>\0<sha256>\n" line per file, sorted by path
    lines = sorted(
        f"{name}\0{hashlib.sha256(content).hexdigest()}\n" for name, content in files.items()
    )
    record = _data(logistic, data=folder)
    assert record["sha256"] == hashlib.sha256("".join(lines).encode()).hexdigest()
    assert record["size"] == sum(len(c) for c in files.values())
    latest = max(os.path.getmtime(p) for p in [folder, *(folder / n for n in files)])
    assert record["mtime"] == datetime.datetime.fromtimestamp(latest, datetime.UTC).isoformat()


def test_a_remote_uri_is_recorded_as_given_without_credentials(logistic):
    uri = "s3://bucket/churn/train.parquet"
    assert _data(logistic, data=uri) == {"uri": uri, "sha256": None, "size": None, "mtime": None}
    secret = "https://user:s3cret@data.example.com:8443/train.csv"
    assert _data(logistic, data=secret)["uri"] == "https://data.example.com:8443/train.csv"


def test_a_missing_file_is_a_clear_error(tmp_path, logistic):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        skvault.dumps(logistic, data=missing)
    assert info.value.filename == str(missing)


def test_data_must_be_a_path_or_uri(logistic, iris):
    with pytest.raises(TypeError, match="path or a URI"):
        skvault.dumps(logistic, data=iris[0])  # type: ignore[arg-type]


def _array_digest(arr: np.ndarray) -> str:
    """The documented digest of an array: dtype, shape, then the C-order bytes."""
    h = hashlib.sha256(f"{arr.dtype.str}\0{list(arr.shape)}\0".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def test_in_memory_arrays_are_fingerprinted(logistic, iris):
    X, y = iris
    record = _data(logistic, X=X, y=y, golden_rows=0)
    assert record == {
        "fingerprint": {
            "X": {
                "sha256": _array_digest(X),
                "shape": [150, 4],
                "dtypes": "float64",
                "columns": None,
            },
            "y": {
                "sha256": _array_digest(y),
                "shape": [150],
                "dtypes": str(y.dtype),
                "columns": None,
            },
        }
    }
    assert _data(logistic, X=X)["fingerprint"]["y"] is None


def test_the_fingerprint_sees_values_dtype_and_layout(logistic, iris):
    X, _ = iris

    def digest(values):
        return _data(logistic, X=values, golden_rows=0)["fingerprint"]["X"]["sha256"]

    changed = X.copy()
    changed[70, 2] += 1e-12
    assert digest(changed) != digest(X)
    assert digest(X.astype(np.float32)) != digest(X)
    assert digest(X.reshape(300, 2)) != digest(X)
    assert digest(np.asfortranarray(X)) == digest(X), "the values, not the memory layout"


def test_a_dataframe_fingerprint_records_columns_and_dtypes(logistic, iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    frame["kind"] = pd.Categorical(np.where(y > 0, "b", "a"))
    target = pd.Series(y, name="species")
    record = _data(logistic, X=frame, y=target, golden_rows=0)["fingerprint"]
    assert record["X"]["columns"] == ["sl", "sw", "pl", "pw", "kind"]
    assert record["X"]["dtypes"] == {
        "sl": "float64",
        "sw": "float64",
        "pl": "float64",
        "pw": "float64",
        "kind": "category",
    }
    assert record["X"]["shape"] == [150, 5]
    assert record["y"]["shape"] == [150] and record["y"]["columns"] == ["species"]
    renamed = frame.rename(columns={"sl": "sepal_length"})
    again = _data(logistic, X=renamed, golden_rows=0)["fingerprint"]["X"]["sha256"]
    assert again != record["X"]["sha256"], "column names are part of the digest"


def test_data_takes_precedence_over_the_fingerprint(csv, logistic, iris):
    X, y = iris
    assert "uri" in _data(logistic, data=csv, X=X, y=y, golden_rows=0)


def test_no_data_records_none(logistic):
    assert _data(logistic) is None
