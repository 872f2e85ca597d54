"""skvault.load on legacy files: the format comes from the content, pickle needs allow_pickle."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.errors import (
    InvalidStateError,
    PickleNotAllowedError,
    SignatureError,
    UntrustedTypeError,
)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def forest(iris):
    X, y = iris
    return RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)


def _same(a, b, X):
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("name", ["model.skv", "model.bin"])
def test_pickle_is_refused_by_default_and_says_what_to_do(tmp_path, forest, name):
    # the name does not matter: a pickle called model.skv is still a pickle
    path = tmp_path / name
    path.write_bytes(pickle.dumps(forest, protocol=5))
    with pytest.raises(PickleNotAllowedError) as info:
        skvault.load(path)
    assert info.value.format == "pickle"
    assert "skvault audit" in str(info.value) and "skvault convert" in str(info.value)
    with pytest.raises(PickleNotAllowedError):
        skvault.loads(path.read_bytes())


@pytest.mark.parametrize("protocol", [2, 5])
def test_pickle_loads_with_allow_pickle(tmp_path, forest, iris, protocol):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(forest, protocol=protocol))
    _same(skvault.load(path, allow_pickle=True), forest, iris[0])
    _same(skvault.loads(path.read_bytes(), allow_pickle=True), forest, iris[0])
    with open(path, "rb") as fh:
        _same(skvault.load(fh, allow_pickle=True), forest, iris[0])


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("xz", 3), ("lz4", 3)])
def test_joblib_loads_with_allow_pickle(tmp_path, forest, iris, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path, compress=compress)
    with pytest.raises(PickleNotAllowedError):
        skvault.load(path)
    _same(skvault.load(path, allow_pickle=True), forest, iris[0])


def test_skops_loads_without_any_flag(tmp_path, forest, iris):
    path = tmp_path / "model.skops"
    skops.io.dump(forest, path)
    _same(skvault.load(path), forest, iris[0])


def test_untrusted_class_in_a_pickle_is_refused_even_with_allow_pickle(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(io.StringIO("x")))
    with pytest.raises(UntrustedTypeError) as info:
        skvault.load(path, allow_pickle=True)
    assert "_io.StringIO" in str(info.value)


def test_legacy_files_cannot_meet_a_signature_requirement(tmp_path, forest):
    _, public = skvault.keygen(tmp_path / "key")
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(forest))
    with pytest.raises(SignatureError, match="cannot carry a signature"):
        skvault.load(path, allow_pickle=True, require_signature=public)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage", b"hello world"])
def test_unknown_content_is_a_format_error(tmp_path, content):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(skvault.FormatError):
        skvault.load(path, allow_pickle=True)


def _object_array_holding_a_joblib_wrapper() -> np.ndarray:
    from joblib.numpy_pickle import NumpyArrayWrapper

    items = np.empty(1, dtype=object)
    items[0] = NumpyArrayWrapper(np.ndarray, (4,), "C", np.dtype("<f8"))
    return items


@pytest.mark.parametrize("container", ["npy", "joblib"])
def test_array_wrappers_outside_joblib_top_level_pickle_are_refused(tmp_path, container):
    # joblib reads raw array data only after wrappers of its top-level pickle: one inside an
    # object array's pickle (or a .npy file's) would make a reader take file bytes for data
    path = tmp_path / f"wrapper.{container}"
    if container == "npy":
        np.save(path, _object_array_holding_a_joblib_wrapper(), allow_pickle=True)
    else:
        joblib.dump({"items": _object_array_holding_a_joblib_wrapper()}, path)
    with pytest.raises(skvault.FormatError, match="joblib array wrapper inside"):
        skvault.load(path, allow_pickle=True)
    assert not skvault.audit(path).safe


class _RangeOf:
    """Pickles as a call of builtins.range with whatever arguments it is given."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (range, self.args)


def test_ranges_load_from_pickle_and_skops(iris):
    X, y = iris
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": range(1, 4)}, cv=3)
    search.fit(X, y)
    for data in (pickle.dumps(search, protocol=5), skops.io.dumps(search)):
        loaded = skvault.load(data, allow_pickle=True)
        assert loaded.param_grid == {"max_depth": range(1, 4)}
        _same(loaded, search, X)


@pytest.mark.parametrize(
    ("args", "match"), [((1.5,), "one to three integers"), ((1, 5, 0), "step is 0"), ((), "one")]
)
def test_range_from_a_pickle_takes_integers_only(args, match):
    with pytest.raises(InvalidStateError, match=match):
        skvault.load(pickle.dumps(_RangeOf(*args)), allow_pickle=True)


def test_iterative_imputer_and_its_named_tuples_load_from_pickle_and_joblib():
    from sklearn.impute._iterative import _ImputerTriplet

    rng = np.random.default_rng(0)
    X = np.where(rng.random((30, 3)) > 0.8, np.nan, rng.random((30, 3)))
    imputer = IterativeImputer(max_iter=3, random_state=0).fit(X)
    buf = io.BytesIO()
    joblib.dump(imputer, buf)
    for data in (pickle.dumps(imputer, protocol=5), buf.getvalue()):
        loaded = skvault.load(data, allow_pickle=True)
        assert type(loaded.imputation_sequence_[0]) is _ImputerTriplet
        np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    # NEWOBJ of the named tuple with two of its three fields
    two_fields = b"\x80\x02csklearn.impute._iterative\n_ImputerTriplet\nK\x01K\x02\x86\x81."
    with pytest.raises(InvalidStateError, match="_ImputerTriplet"):
        skvault.load(two_fields, allow_pickle=True)
