"""The public API, used the way a user would."""

from __future__ import annotations

import collections
import io
import pickle
import subprocess
import sys
import typing

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

import skvault
from conformance._user_estimator import ShrunkCentroidClassifier
from skvault import errors


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def forest(iris):
    X, y = iris
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)


def test_public_names():
    assert sorted(skvault.__all__) == sorted(
        [
            "ArtifactDiff",
            "AuditReport",
            "EnvironmentMismatchError",
            "FormatError",
            "IntegrityError",
            "InvalidStateError",
            "PickleNotAllowedError",
            "SignatureError",
            "SkvaultError",
            "UnsupportedTypeError",
            "UnsupportedVersionError",
            "UntrustedTypeError",
            "VerificationError",
            "VerificationReport",
            "VersionMismatchWarning",
            "__version__",
            "audit",
            "convert",
            "diff",
            "dump",
            "dumps",
            "errors",
            "get_untrusted_types",
            "inspect",
            "keygen",
            "load",
            "loads",
            "read_metadata",
            "report",
            "sign",
            "verify",
        ]
    )
    for name in skvault.__all__:
        assert hasattr(skvault, name)


def test_error_hierarchy():
    assert issubclass(errors.FormatError, errors.SkvaultError)
    assert issubclass(errors.FormatError, ValueError)
    assert issubclass(errors.IntegrityError, errors.FormatError)
    assert issubclass(errors.UnsupportedVersionError, errors.FormatError)
    assert issubclass(errors.InvalidStateError, errors.FormatError)
    assert issubclass(errors.SignatureError, errors.IntegrityError)
    assert issubclass(errors.PickleNotAllowedError, errors.FormatError)
    assert issubclass(errors.UntrustedTypeError, TypeError)
    assert issubclass(errors.UnsupportedTypeError, TypeError)
    exc = errors.UntrustedTypeError(["b.B", "a.A", "a.A"])
    assert exc.types == ["a.A", "b.B"]
    assert "a.A" in str(exc) and "trusted=" in str(exc)


def test_path_round_trip(tmp_path, forest, iris):
    X, _ = iris
    path = tmp_path / "forest.skv"
    skvault.dump(forest, path)
    loaded = skvault.load(path)
    assert type(loaded) is RandomForestClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), forest.predict_proba(X))
    assert skvault.load(str(path)).get_params() == forest.get_params()


def test_file_objects_and_bytes(forest, iris, monkeypatch):
    X, _ = iris
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # the recorded creation time, for equal bytes
    buf = io.BytesIO()
    skvault.dump(forest, buf)
    data = buf.getvalue()
    assert data == skvault.dumps(forest), "the same object gives the same bytes"
    buf.seek(0)
    for source in (skvault.load(buf), skvault.loads(data), skvault.load(data)):
        np.testing.assert_array_equal(source.predict(X), forest.predict(X))


class _ReadSeekOnly:
    """A seekable binary stream with only read, seek and tell (no readinto, not an io class)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buf.seek(offset, whence)

    def tell(self) -> int:
        return self._buf.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_streams_without_readinto_load(forest, iris):
    X, _ = iris
    big = {"ramp": np.arange(300_000.0), "forest": forest}  # an .npy member and a buffer
    for mmap in (False, True):
        stream = _ReadSeekOnly(skvault.dumps(big))
        loaded = skvault.load(stream, mmap=mmap)
        np.testing.assert_array_equal(loaded["ramp"], big["ramp"])
        np.testing.assert_array_equal(loaded["forest"].predict(X), forest.predict(X))
        assert not stream.closed, "the caller's stream is left open"
    assert skvault.get_untrusted_types(_ReadSeekOnly(skvault.dumps(big))) == []
    legacy = pickle.dumps(forest, protocol=5)
    assert skvault.audit(_ReadSeekOnly(legacy)).safe
    np.testing.assert_array_equal(
        skvault.load(_ReadSeekOnly(legacy), allow_pickle=True).predict(X), forest.predict(X)
    )


def test_loads_rejects_non_bytes():
    with pytest.raises(TypeError, match="bytes"):
        skvault.loads("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [None, True, 1, 9, "zlib", "lzma", ("zlib", 3), ("lzma", 0)])
def test_compress_options(compress, forest, iris):
    X, _ = iris
    data = skvault.dumps(forest, compress=compress)
    np.testing.assert_array_equal(skvault.loads(data).predict_proba(X), forest.predict_proba(X))


def test_compression_makes_files_smaller():
    big = {"zeros": np.zeros(200_000), "ramp": np.arange(100_000.0)}
    plain = skvault.dumps(big)
    assert len(skvault.dumps(big, compress="zlib")) < len(plain) / 10
    assert len(skvault.dumps(big, compress="lzma")) < len(plain) / 10


@pytest.mark.parametrize("compress", ["gzip", 10, -1, ("zlib", 12), object()])
def test_bad_compress_argument(compress):
    with pytest.raises(ValueError, match="compress"):
        skvault.dumps([1], compress=compress)


def test_mmap_gives_read_only_views_of_the_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5_000, 20))
    y = rng.integers(0, 3, size=5_000)
    model = KNeighborsClassifier(algorithm="brute").fit(X, y)
    path = tmp_path / "knn.skv"
    skvault.dump(model, path)
    loaded = skvault.load(path, mmap=True)
    fit_x = loaded._fit_X
    assert not fit_x.flags.writeable
    assert not fit_x.flags.owndata, "a view of the mapped file, not a copy"
    assert fit_x.ctypes.data % 64 == 0
    np.testing.assert_array_equal(fit_x, X)
    np.testing.assert_array_equal(loaded.predict(X[:50]), model.predict(X[:50]))
    copied = skvault.load(path)
    assert copied._fit_X.flags.writeable


def test_mmap_of_a_compressed_file_loads_normally(tmp_path):
    arr = np.arange(100_000.0)
    path = tmp_path / "c.skv"
    skvault.dump({"a": arr}, path, compress="zlib")
    out = skvault.load(path, mmap=True)
    np.testing.assert_array_equal(out["a"], arr)


def test_fortran_ordered_arrays_keep_their_layout():
    arr = np.asfortranarray(np.arange(300_000.0).reshape(600, 500))
    small = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    out = skvault.loads(skvault.dumps([arr, small]))
    for original, loaded in zip([arr, small], out, strict=True):
        assert loaded.flags.f_contiguous and not loaded.flags.c_contiguous
        np.testing.assert_array_equal(loaded, original)


def test_non_contiguous_arrays_are_saved_by_value():
    arr = np.arange(100.0).reshape(10, 10)[::2, 1::3]
    out = skvault.loads(skvault.dumps(arr))
    np.testing.assert_array_equal(out, arr)


def test_shared_objects_stay_shared(iris):
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    out = skvault.loads(skvault.dumps({"a": model, "b": model, "arr": [X, X]}))
    assert out["a"] is out["b"]
    assert out["arr"][0] is out["arr"][1]


def test_loaded_arrays_are_independent_and_writable():
    arrays = [np.arange(10.0), np.arange(10.0) * 2]
    out = skvault.loads(skvault.dumps(arrays))
    out[0][:] = -1
    np.testing.assert_array_equal(out[1], np.arange(10.0) * 2)


def test_trusted_must_name_types():
    data = skvault.dumps([1])
    with pytest.raises(TypeError, match="no blanket"):
        skvault.loads(data, trusted=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"module\.name"):
        skvault.loads(data, trusted=["not a name"])
    assert skvault.loads(data, trusted=["pkg.Type"]) == [1]


def test_get_untrusted_types_is_empty_for_sklearn(forest):
    assert skvault.get_untrusted_types(skvault.dumps(forest)) == []


def test_inspect_reports_without_loading(forest):
    report = skvault.inspect(skvault.dumps(forest))
    assert report["format_version"] == 1
    assert report["untrusted"] == []
    assert report["tree"]["type"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert report["tree"]["attributes"]["n_estimators"] == 5
    assert report["packages"]["scikit-learn"]


def test_not_a_pickle_anywhere(forest):
    data = skvault.dumps(forest)
    # pickle opcodes PROTO 2..5 followed by a frame or global would mark an embedded pickle
    for proto in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        assert proto + b"\x95" not in data
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)


def test_unsupported_objects_name_their_place():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    pipe = make_pipeline(StandardScaler(), FunctionTransformer(lambda x: x))
    with pytest.raises(skvault.UnsupportedTypeError, match=r"steps\[1\]\[1\]\.func") as info:
        skvault.dumps(pipe)
    assert info.value.path == "steps[1][1].func"
    assert "lambda" in info.value.reason


def test_cycles_are_refused_with_their_place():
    a: list = [1]
    a.append({"self": a})
    with pytest.raises(skvault.UnsupportedTypeError, match="cycle") as info:
        skvault.dumps(a)
    assert info.value.path == "[1]['self']"


def test_a_class_from_the_saving_script_says_how_to_make_it_loadable(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import numpy as np, skvault\n"
        "from sklearn.base import BaseEstimator\n"
        "class Mine(BaseEstimator):\n"
        "    def fit(self, X, y=None):\n"
        "        self.mean_ = np.mean(X)\n"
        "        return self\n"
        "import pickle\n"
        f"skvault.dump(Mine().fit([[1.0], [2.0]]), {str(tmp_path / 'mine.skv')!r})\n"
        f"pickle.dump(Mine().fit([[1.0], [2.0]]), open({str(tmp_path / 'mine.pkl')!r}, 'wb'))\n"
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=120)
    with pytest.raises(errors.FormatError, match="defined in the script that saved the file"):
        skvault.load(tmp_path / "mine.skv", trusted=["__main__.Mine"])
    with pytest.raises(errors.FormatError, match="defined in the script that saved the file"):
        skvault.load(tmp_path / "mine.pkl", trusted=["__main__.Mine"], allow_pickle=True)


Pair = collections.namedtuple("Pair", ["left", "right"])


class Span(typing.NamedTuple):
    start: int
    stop: float = 1.0


def test_named_tuples_round_trip_when_their_class_is_trusted():
    value = {"pair": Pair(np.arange(3), "b"), "span": Span(2)}
    data = skvault.dumps(value)
    names = sorted(f"{__name__}.{c}" for c in ("Pair", "Span"))
    assert skvault.get_untrusted_types(data) == names
    loaded = skvault.loads(data, trusted=names)
    assert type(loaded["pair"]) is Pair and type(loaded["span"]) is Span
    np.testing.assert_array_equal(loaded["pair"].left, value["pair"].left)
    assert loaded["pair"].right == "b" and loaded["span"] == Span(2, 1.0)


def test_untrusted_types_of_a_skops_file(forest, iris):
    X, y = iris
    mine = ShrunkCentroidClassifier(random_state=0).fit(X, y)
    name = f"{ShrunkCentroidClassifier.__module__}.ShrunkCentroidClassifier"
    data = skops.io.dumps({"forest": forest, "mine": mine})
    assert skvault.get_untrusted_types(data) == [name]  # what load then refuses
    with pytest.raises(errors.UntrustedTypeError):
        skvault.load(data)
    loaded = skvault.load(data, trusted=[name])
    np.testing.assert_array_equal(loaded["mine"].predict(X), mine.predict(X))


@pytest.mark.parametrize("kind", ["pickle", "skops"])
def test_reading_a_legacy_file_as_an_artifact_points_to_audit_and_convert(forest, kind):
    data = pickle.dumps(forest) if kind == "pickle" else skops.io.dumps(forest)
    readers = [skvault.inspect, skvault.read_metadata, skvault.report, skvault.diff]
    if kind == "pickle":
        readers.append(skvault.get_untrusted_types)
    hint = f"{kind}.*skvault audit FILE.*skvault convert"
    for read in readers:
        args = (data, data) if read is skvault.diff else (data,)
        with pytest.raises(errors.FormatError, match=hint):
            read(*args)
