"""The restricted unpickler: benign pickles of every protocol load, hostile ones are refused.

Hostile samples carry a harmless payload that would create a marker file; each test checks that
the load raises one of skvault's exceptions and that the marker never appears.
"""

from __future__ import annotations

import copy
import copyreg
import io
import os
import pickle
import shlex
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from conformance._compare import assert_same
from conformance._user_estimator import ShrunkCentroidClassifier
from skvault.errors import (
    FormatError,
    InvalidStateError,
    PickleNotAllowedError,
    UntrustedTypeError,
)
from skvault.legacy._unpickler import load_legacy, read_legacy

SYSTEM = f"{os.system.__module__}.system"  # posix.system here, nt.system on Windows


class _Call:
    """Pickles as a call of ``fn(*args)``: how a hostile file makes the unpickler run code."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple]:
        return self.fn, self.args


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran"


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _u(text: str) -> bytes:
    """BINUNICODE: a str pushed on the stack."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _loads(data: bytes, **kwargs: Any) -> Any:
    return load_legacy(data, allow_pickle=True, **kwargs)


@pytest.fixture(scope="module")
def tree() -> DecisionTreeClassifier:
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    return DecisionTreeClassifier(random_state=0).fit(X, y)


# -- benign -----------------------------------------------------------------------------------


def _benign() -> dict[str, Any]:
    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    return {
        "f8": rng.rand(3, 4),
        "fortran": np.asfortranarray(rng.rand(3, 4)),
        "transposed": np.arange(120.0).reshape(2, 3, 4, 5).transpose(1, 3, 0, 2),
        "big_endian": np.arange(5, dtype=">i4"),
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", ">f8", (2,))]),
        "datetime": np.array(["2024-01-01", "NaT"], dtype="M8[D]"),
        "unicode": np.array(["ab", "cde"]),
        "objects": np.array([1, "two", None], dtype=object),
        "empty": np.empty((0, 3)),
        "zero_d": np.array(2.5),
        "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.str_("x")],
        "builtins": (
            {1, 2},
            frozenset({"a"}),
            complex(1, -2),
            slice(1, None, 2),
            b"\x00\xff",
            bytearray(b"ab"),
            b"",
            10**30,
            -0.0,
        ),
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "random_state": np.random.RandomState(3),
        "generator": np.random.default_rng(4),
        "dtype": np.dtype([("x", "<u2"), ("y", "S3")]),
        "model": LogisticRegression().fit(X, y),
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_loads(protocol: int) -> None:
    # the reference is what pickle itself rebuilds (protocols 0-4 turn big-endian arrays into
    # native ones, for example)
    data = pickle.dumps(_benign(), protocol=protocol)
    expected, loaded = pickle.loads(data), _loads(data)
    assert_same(expected, loaded)
    assert loaded["generator"].random() == expected["generator"].random()
    assert loaded["random_state"].rand() == expected["random_state"].rand()
    assert loaded["fortran"].flags.f_contiguous


def test_masked_arrays_load() -> None:
    original = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0)
    for protocol in (2, 5):
        loaded = _loads(pickle.dumps(original, protocol=protocol))
        assert type(loaded) is np.ma.MaskedArray
        np.testing.assert_array_equal(loaded.mask, original.mask)
        np.testing.assert_array_equal(loaded.data, original.data)
        assert loaded.fill_value == original.fill_value


def test_numpy_1_names_load() -> None:
    # numpy 1.x wrote numpy.core.multiarray._reconstruct and numpy.core.multiarray.scalar
    original = {"a": np.arange(6.0).reshape(2, 3), "s": np.float64(0.25), "i": np.int32(7)}
    data = pickle.dumps(original, protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in data
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy._core" not in old
    assert_same(original, _loads(old))


def test_old_scikit_learn_module_names_load(tree: DecisionTreeClassifier) -> None:
    # scikit-learn < 0.22 had the trees in sklearn.tree.tree
    data = pickle.dumps(tree, protocol=2).replace(
        b"sklearn.tree._classes\n", b"sklearn.tree.tree\n"
    )
    assert b"sklearn.tree.tree\n" in data
    loaded = _loads(data)
    assert type(loaded) is DecisionTreeClassifier
    X = np.random.RandomState(1).rand(10, 4)
    np.testing.assert_array_equal(loaded.predict_proba(X), tree.predict_proba(X))


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_joblib_files_load(compress: Any) -> None:
    buf = io.BytesIO()
    joblib.dump(_benign(), buf, compress=compress)
    result = read_legacy(buf.getvalue())
    assert_same(joblib.load(io.BytesIO(buf.getvalue())), result.obj)  # benign: joblib may load it
    assert result.format == ("joblib" if compress == 0 else f"joblib-{compress[0]}")


def test_pickle_needs_allow_pickle(marker: Path) -> None:
    data = pickle.dumps(_Call(os.system, _touch(marker)))
    with pytest.raises(PickleNotAllowedError) as info:
        load_legacy(data)
    assert info.value.format == "pickle"
    assert "skvault audit" in str(info.value)
    assert "skvault convert" in str(info.value)
    buf = io.BytesIO()
    joblib.dump([1, 2], buf, compress=("gzip", 3))
    with pytest.raises(PickleNotAllowedError) as info:
        load_legacy(buf.getvalue())
    assert info.value.format == "joblib-gzip"


def test_user_class_needs_trust() -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    model = ShrunkCentroidClassifier(random_state=0).fit(X, y)
    data = pickle.dumps(model)
    name = f"{ShrunkCentroidClassifier.__module__}.ShrunkCentroidClassifier"
    with pytest.raises(UntrustedTypeError) as info:
        _loads(data)
    assert info.value.types == [name]
    result = read_legacy(data, trusted=[name])
    assert result.trusted == [name]
    np.testing.assert_array_equal(result.obj.predict(X), model.predict(X))


def test_removed_class_is_a_version_problem() -> None:
    data = b"\x80\x02" + _global("sklearn.ensemble._gb_losses", "BinomialDeviance") + b")\x81."
    with pytest.raises(FormatError, match="version problem") as info:
        _loads(data)
    assert not isinstance(info.value, UntrustedTypeError)


def test_plain_npy_loads_without_allow_pickle() -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(10.0).reshape(2, 5).T)
    np.testing.assert_array_equal(load_legacy(buf.getvalue()), np.arange(10.0).reshape(2, 5).T)


def test_object_npy_goes_through_the_unpickler(marker: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(PickleNotAllowedError):
        load_legacy(buf.getvalue())
    assert load_legacy(buf.getvalue(), allow_pickle=True).tolist() == [1, "a"]
    hostile = io.BytesIO()
    payload = np.array([_Call(os.system, _touch(marker))], dtype=object)
    np.save(hostile, payload, allow_pickle=True)
    with pytest.raises(UntrustedTypeError):
        load_legacy(hostile.getvalue(), allow_pickle=True)


# -- hostile ----------------------------------------------------------------------------------


def _system(marker: Path, protocol: int) -> bytes:
    return pickle.dumps(_Call(os.system, _touch(marker)), protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_os_system_is_refused(marker: Path, protocol: int) -> None:
    with pytest.raises(UntrustedTypeError) as info:
        _loads(_system(marker, protocol))
    assert info.value.types == [SYSTEM]
    assert "DANGEROUS" in str(info.value)


def test_dangerous_names_stay_refused_when_trusted(marker: Path) -> None:
    with pytest.raises(UntrustedTypeError):
        _loads(_system(marker, 2), trusted=[SYSTEM])


def test_dotted_name_under_numpy_is_refused(marker: Path) -> None:
    # protocol 4 resolves "testing.os.system" attribute by attribute from numpy
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    data = b"\x80\x04" + short("numpy") + short("testing.os.system") + b"\x93"
    data += short(_touch(marker)) + b"\x85R."
    with pytest.raises(UntrustedTypeError) as info:
        _loads(data)
    assert info.value.types == ["numpy.testing.os.system"]


def test_getattr_chain_is_refused_and_every_name_listed(marker: Path) -> None:
    # getattr(__import__("os"), "system")("touch MARKER")
    imported = _global("builtins", "__import__") + b"(" + _u("os") + b"tR"
    system = _global("builtins", "getattr") + b"(" + imported + _u("system") + b"tR"
    data = b"\x80\x02" + system + b"(" + _u(_touch(marker)) + b"tR."
    with pytest.raises(UntrustedTypeError) as info:
        _loads(data)
    assert info.value.types == ["builtins.__import__", "builtins.getattr"]


def test_huge_bytearray_is_not_allocated() -> None:
    with pytest.raises(FormatError, match="bytearray is rebuilt from bytes"):
        _loads(pickle.dumps(_Call(bytearray, 10**12), protocol=2))


def test_functions_are_values_never_called() -> None:
    # broadcasting (100000, 1) + (1, 100000) would allocate 80 GB
    bomb = _Call(np.add, np.zeros((100_000, 1)), np.zeros((1, 100_000)))
    for protocol in (2, 5):
        with pytest.raises(FormatError, match=r"calls numpy\.add while loading"):
            _loads(pickle.dumps(bomb, protocol=protocol))
    # the same function as a value is fine
    assert _loads(pickle.dumps({"func": np.log1p}))["func"] is np.log1p


def test_tree_with_out_of_range_child_is_refused(tree: DecisionTreeClassifier) -> None:
    broken = copy.deepcopy(tree)
    state = broken.tree_.__getstate__()
    state["nodes"]["left_child"][0] = 10**9
    broken.tree_.__setstate__(state)  # never used for predictions: it would read out of bounds
    for protocol in (2, 5):
        with pytest.raises(InvalidStateError) as info:
            _loads(pickle.dumps(broken, protocol=protocol))
        assert info.value.type_name == "sklearn.tree._tree.Tree"
        assert "left_child" in info.value.rule


@pytest.mark.parametrize(
    "args",
    [(4, np.array([2]), 2), (0, np.array([2]), 1), (4, np.array([0]), 1), (4, [2], 1)],
    ids=["n_outputs", "n_features", "n_classes", "list"],
)
def test_tree_constructor_arguments_are_checked(tree: DecisionTreeClassifier, args: tuple) -> None:
    with pytest.raises(FormatError, match="bad constructor arguments"):
        _loads(pickle.dumps(_Call(type(tree.tree_), *args), protocol=2))


def test_data_after_stop_is_refused(marker: Path, tree: DecisionTreeClassifier) -> None:
    first = pickle.dumps(tree)
    with pytest.raises(FormatError, match=f"data after the end of the pickle at byte {len(first)}"):
        _loads(first + _system(marker, 5))


def test_truncated_stream_is_refused(tree: DecisionTreeClassifier) -> None:
    data = pickle.dumps(tree)
    for end in (1, len(data) // 3, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            _loads(data[:end])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Pevil\n.", "persistent ids"),
        (b"\x80\x02" + _u("evil") + b"Q.", "persistent ids"),
        (b"\x80\x05\x97.", "out-of-band buffers"),
        (b"\x80\x04\x95" + struct.pack("<Q", 2**32) + b"N.", "truncated"),
        (b"\x80\x05\x96" + struct.pack("<Q", 10**15) + b"xx", "truncated"),
        (b"\x80\x02\xff", "unknown opcode"),
        (b"\x80\x02]}b.", "BUILD on a list"),
    ],
    ids=[
        "PERSID",
        "BINPERSID",
        "NEXT_BUFFER",
        "frame-length",
        "BYTEARRAY8-length",
        "opcode",
        "build",
    ],
)
def test_unsupported_or_malformed_streams(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _loads(data)


def test_extension_registry_is_not_consulted(marker: Path) -> None:
    copyreg.add_extension(os.system.__module__, "system", 0xF1)
    try:
        data = b"\x80\x02\x82\xf1(" + _u(_touch(marker)) + b"tR."
        with pytest.raises(FormatError, match="extension registry"):
            _loads(data)
    finally:
        copyreg.remove_extension(os.system.__module__, "system", 0xF1)


def test_build_cannot_patch_an_allowed_class() -> None:
    # BUILD on a class would set attributes on it (pickle's slot-state path)
    cls = _global("sklearn.tree._classes", "DecisionTreeClassifier")
    data = b"\x80\x02" + cls + b"N}" + _u("predict") + b"Ns\x86b."
    with pytest.raises(FormatError, match="BUILD on a"):
        _loads(data)
    assert "predict" not in vars(DecisionTreeClassifier)


def test_build_applies_once() -> None:
    cls = _global("sklearn.model_selection._split", "KFold")
    state = b"}" + _u("n_splits") + b"K\x03s"
    assert _loads(b"\x80\x02" + cls + b")\x81" + state + b"b.").n_splits == 3
    data = b"\x80\x02" + cls + b")\x81" + state + b"b}" + _u("n_splits") + b"K\x01sb."
    with pytest.raises(FormatError, match="built already"):
        _loads(data)


@pytest.mark.parametrize(
    ("module", "name"),
    [("numpy", "ndarray"), ("builtins", "bytearray"), ("numpy.random.mtrand", "RandomState")],
)
def test_helper_made_types_are_not_created_directly(module: str, name: str) -> None:
    data = b"\x80\x02" + _global(module, name) + b")\x81."
    with pytest.raises(FormatError, match="only created by their own helpers"):
        _loads(data)


def test_allowed_class_is_not_called_with_arguments() -> None:
    data = b"\x80\x02" + _global("sklearn.pipeline", "Pipeline") + b"(]tR."
    with pytest.raises(FormatError, match=r"calls the class sklearn\.pipeline\.Pipeline"):
        _loads(data)


def test_array_state_must_match_its_shape() -> None:
    data = pickle.dumps(np.zeros(2), protocol=2)
    forged = data.replace(b"K\x02\x85", b"J\x00\x00\x00\x10\x85")  # shape (2,) -> (2**28,)
    assert forged != data
    with pytest.raises(FormatError, match="needs 2,147,483,648 bytes, got 16"):
        _loads(forged)


def test_dtype_with_object_fields_is_refused() -> None:
    data = pickle.dumps(np.zeros(1, dtype=[("a", "<f8"), ("b", "O")]), protocol=2)
    with pytest.raises(FormatError, match="object fields"):
        _loads(data)


def test_validated_state_cannot_change_afterwards() -> None:
    # a list memoised in a forest's state, appended to after the forest was validated: here
    # a tree fitted on 10 features joins a forest checked for 3
    rng = np.random.RandomState(0)
    forest = RandomForestClassifier(n_estimators=2, random_state=0)
    forest.fit(rng.rand(40, 3), np.arange(40) % 2)
    other = DecisionTreeClassifier(random_state=0).fit(rng.rand(40, 10), np.arange(40) % 2)
    trees: list[Any] = []
    hostile = copy.deepcopy(forest)
    hostile.estimators_ = trees
    trees += [hostile, other]
    with pytest.raises(FormatError, match="validated object's state already holds"):
        _loads(pickle.dumps(trees, protocol=2))


def test_joblib_object_array_payload_is_refused(marker: Path) -> None:
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(3), "b": np.array([_Call(os.system, _touch(marker))])}, buf)
    with pytest.raises(UntrustedTypeError) as info:
        read_legacy(buf.getvalue())
    assert info.value.types == [SYSTEM]


def test_joblib_truncated_array_is_refused() -> None:
    buf = io.BytesIO()
    joblib.dump(np.arange(1000.0), buf)
    data = buf.getvalue()
    with pytest.raises(FormatError, match="truncated"):
        read_legacy(data[: len(data) - 200])


def test_old_joblib_layout_is_reported() -> None:
    wrapper = _global("joblib.numpy_pickle_compat", "NDArrayWrapper")
    with pytest.raises(FormatError, match="unsupported legacy joblib layout"):
        _loads(b"\x80\x02" + wrapper + b")\x81.")


def test_decompressed_size_is_capped() -> None:
    buf = io.BytesIO()
    joblib.dump(np.zeros(100_000), buf, compress=("gzip", 3))
    with pytest.raises(FormatError, match="limit"):
        read_legacy(buf.getvalue(), max_bytes=10_000)


def test_every_refused_name_is_listed_across_joblib_arrays(marker: Path) -> None:
    # names after the first refusal, after raw array bytes and inside object arrays still count
    hostile = {
        "first": _Call(os.system, _touch(marker)),
        "array": np.arange(1000.0),
        "objects": np.array([_Call(eval, "1")], dtype=object),
        "last": _Call(os.getcwd),
    }
    expected = sorted(["builtins.eval", f"{os.getcwd.__module__}.getcwd", SYSTEM])
    for compress in (0, ("zlib", 3)):
        buf = io.BytesIO()
        joblib.dump(hostile, buf, compress=compress)
        with pytest.raises(UntrustedTypeError) as info:
            read_legacy(buf.getvalue())
        assert info.value.types == expected


def test_truncated_hostile_stream_is_refused(marker: Path) -> None:
    data = _system(marker, 2)
    for end in range(1, len(data)):
        with pytest.raises((FormatError, UntrustedTypeError)):
            _loads(data[:end])


def test_dtype_cannot_be_used_before_its_state() -> None:
    # a dtype's BUILD may still change it: a scalar made from it before would read past its data
    dtype = _global("numpy", "dtype") + b"(" + _u("V8") + b"\x89\x88tR"
    data = b"\x80\x02" + _global("numpy._core.multiarray", "scalar") + b"(" + dtype
    data += b"C\x08" + bytes(8) + b"tR."
    with pytest.raises(FormatError, match="used before its state"):
        _loads(data)
