"""``skvault.audit`` and ``skvault audit``: every global a model file names, nothing imported.

Benign files written by pickle, joblib (every compression), numpy, skops and skvault must audit
safe; hostile streams assembled opcode by opcode below must be flagged with the right name,
classification and byte offset. The expected offsets are computed from how the tests assemble
the bytes, never by the scanner.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import skvault
from skvault.cli._app import cli
from skvault.errors import SkvaultError

COMPRESSIONS = [None, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"]

# -- a tiny pickle assembler ---------------------------------------------------------------------

PROTO2 = b"\x80\x02"
PROTO4 = b"\x80\x04"
MEMOIZE, POP, STOP, STACK_GLOBAL, TUPLE1, REDUCE = b"\x94", b"0", b".", b"\x93", b"\x85", b"R"


def sbu(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def frame(body: bytes, size: int | None = None) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body) if size is None else size) + body


def stack_global(module: str, name: str) -> bytes:
    return sbu(module) + sbu(name) + STACK_GLOBAL


def call(func: bytes, arg: bytes) -> bytes:
    return func + arg + TUPLE1 + REDUCE


def names(report: skvault.AuditReport) -> dict[str, set[str]]:
    listed: dict[str, set[str]] = {}
    for ref in report.references:
        listed.setdefault(ref.qualified, set()).add(ref.classification)
    return listed


def only(report: skvault.AuditReport, qualified: str) -> Any:
    (ref,) = [r for r in report.references if r.qualified == qualified]
    return ref


def kinds(report: skvault.AuditReport) -> list[str]:
    return [p.kind for p in report.problems]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    return X, (X[:, 0] > 0.5).astype(int)


ESTIMATORS = {
    "logistic": lambda X, y: LogisticRegression().fit(X, y),
    "forest": lambda X, y: RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y),
    "pipeline": lambda X, y: make_pipeline(StandardScaler(), SVC()).fit(X, y),
    "hgb": lambda X, y: HistGradientBoostingClassifier(max_iter=2).fit(X, y),
    "kmeans": lambda X, y: KMeans(2, n_init=1, random_state=0).fit(X),
    "vectorizer": lambda X, y: CountVectorizer().fit(["alpha beta", "beta gamma"]),
}


# -- 1. benign files audit safe ------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_pickles_audit_safe(name: str, protocol: int, data: Any):
    model = ESTIMATORS[name](*data)
    report = skvault.audit(io.BytesIO(pickle.dumps(model, protocol=protocol)))
    assert report.problems == []
    assert report.safe, str(report)
    assert report.format == "pickle"
    assert type(model).__name__ in {r.name for r in report.references}


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_joblib_files_audit_safe(compression: str | None, data: Any, tmp_path: Path):
    model = {
        "forest": ESTIMATORS["forest"](*data),
        "arrays": [np.arange(1000.0), np.ones((30, 40), order="F"), np.array(["a", None])],
        "structured": np.zeros(3, dtype=[("a", "<f4"), ("b", "U3"), ("c", "<i8", (2,))]),
    }
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=(compression, 3) if compression else 0)
    report = skvault.audit(path)
    assert report.safe, str(report)
    assert (report.format, report.compression) == ("joblib", compression)
    assert report.details["arrays_skipped"] >= 4
    # the object array is a nested pickle: its names are listed from pickle section 1
    assert {r.pickle for r in report.references} == {0, 1}


def test_joblib_legacy_zfile(tmp_path: Path):
    from joblib.numpy_pickle_compat import write_zfile

    path = tmp_path / "old.pkl"
    with open(path, "wb") as fh:
        write_zfile(fh, pickle.dumps({"coef": [1.0, 2.0], "model": LogisticRegression()}, 2))
    report = skvault.audit(path)
    assert (report.format, report.compression, report.safe) == ("joblib", "zfile", True)


def test_npy_files(tmp_path: Path):
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(12.0).reshape(3, 4))
    report = skvault.audit(plain)
    assert (report.format, report.safe, report.references) == ("npy", True, [])

    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(plain.read_bytes()[:-8])
    assert kinds(skvault.audit(truncated)) == ["truncated"]

    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([os.system, 1], dtype=object), allow_pickle=True)
    report = skvault.audit(objects)
    assert report.format == "npy"
    assert names(report)["posix.system"] == {"dangerous"}
    # the embedded pickle starts after the header: offsets are offsets in the file (here the
    # offset of the STACK_GLOBAL after the two names)
    raw = objects.read_bytes()
    names_at = raw.index(sbu("posix") + MEMOIZE + sbu("system") + MEMOIZE)
    assert only(report, "posix.system").offset == names_at + 7 + 1 + 8 + 1


def test_skv_files(data: Any, tmp_path: Path):
    path = tmp_path / "model.skv"
    skvault.dump(ESTIMATORS["pipeline"](*data), path)
    report = skvault.audit(path)
    assert (report.format, report.safe, report.problems) == ("skv", True, [])
    ref = only(report, "sklearn.svm._classes.SVC")
    assert ref.location.startswith("graph.json node ")

    # one flipped byte in a member breaks its digest: a problem, not a crash
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x20
    broken = tmp_path / "broken.skv"
    broken.write_bytes(bytes(raw))
    report = skvault.audit(broken)
    assert report.format == "skv"
    assert not report.safe and report.problems


def test_skops_files(data: Any, tmp_path: Path):
    skops_io = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    skops_io.dump(ESTIMATORS["logistic"](*data), path)
    report = skvault.audit(path)
    assert report.format == "skops"
    assert names(report)["sklearn.linear_model._logistic.LogisticRegression"] == {"safe"}
    assert report.safe, str(report)


def test_file_objects_and_pipes_give_the_same_report(data: Any, tmp_path: Path):
    path = tmp_path / "model.joblib"
    joblib.dump(ESTIMATORS["forest"](*data), path, compress=("gzip", 3))

    class Pipe(io.RawIOBase):  # readable, not seekable
        def __init__(self, raw: bytes) -> None:
            self._raw = io.BytesIO(raw)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._raw.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    by_path = skvault.audit(path).to_dict()
    with open(path, "rb") as fh:
        by_file = skvault.audit(fh).to_dict()
    by_pipe = skvault.audit(Pipe(path.read_bytes())).to_dict()
    by_bytes = skvault.audit(path.read_bytes()).to_dict()
    for report in (by_file, by_pipe, by_bytes):
        report["file"] = by_path["file"]
    assert by_path == by_file == by_pipe == by_bytes
    assert by_path["safe"] is True


def test_trusted_names(tmp_path: Path):
    import collections

    raw = pickle.dumps(collections.UserDict(a=1), protocol=4)
    report = skvault.audit(io.BytesIO(raw))
    assert names(report)["collections.UserDict"] == {"unknown"}
    assert not report.safe
    report = skvault.audit(io.BytesIO(raw), trusted=["collections.UserDict"])
    assert report.safe
    # trusting a gadget by name does not make it safe
    hostile = PROTO4 + call(stack_global("os", "system"), sbu("true")) + STOP
    report = skvault.audit(io.BytesIO(hostile), trusted=["os.system"])
    assert names(report)["os.system"] == {"dangerous"}
    with pytest.raises(TypeError):
        skvault.audit(io.BytesIO(raw), trusted=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"", "empty"),
        (b"\x00\x01garbage", "unknown"),
        (b"%PDF-1.4 not a model", "unknown"),
        (b"\x80\x09.", "unknown"),  # a pickle protocol that does not exist
    ],
)
def test_empty_and_unknown_files_are_not_safe(content: bytes, fmt: str):
    report = skvault.audit(io.BytesIO(content))
    assert (report.format, report.safe) == (fmt, False)
    assert report.problems


def test_missing_file_raises(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        skvault.audit(tmp_path / "nope.pkl")


def test_pickle_inside_a_foreign_zip(tmp_path: Path):
    path = tmp_path / "archive.zip"
    payload = PROTO4 + call(stack_global("os", "system"), sbu("true")) + STOP
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("archive/data.pkl", payload)
    report = skvault.audit(path)
    assert report.format == "zip"
    assert names(report)["os.system"] == {"dangerous"}
    assert "archive/data.pkl" in only(report, "os.system").location


# -- 2. hostile pickles, assembled by hand ------------------------------------------------------

_PAYLOAD = sbu("touch /tmp/x") + TUPLE1 + REDUCE


def _memo_names() -> tuple[bytes, int]:
    # the two names are memoized, dropped, and fetched back for STACK_GLOBAL with BINGET
    head = PROTO4 + sbu("os") + MEMOIZE + sbu("system") + MEMOIZE + POP + POP
    head += b"h\x00h\x01"
    return head + STACK_GLOBAL + _PAYLOAD + STOP, len(head)


def _pushed_long_before() -> tuple[bytes, int]:
    # "os" is pushed 1000 opcodes before the STACK_GLOBAL that uses it
    head = PROTO4 + sbu("os") + (b"K\x07" + POP) * 500 + sbu("system")
    return head + STACK_GLOBAL + _PAYLOAD + STOP, len(head)


def _framed_memo() -> tuple[bytes, int]:
    # protocol 2 opcodes (BINUNICODE, BINPUT, LONG_BINGET) inside a frame
    body = binunicode("subprocess") + b"q\x00" + binunicode("check_call") + b"q\x01" + POP + POP
    body += b"j\x00\x00\x00\x00j\x01\x00\x00\x00"
    at = len(PROTO4) + 9 + len(body)
    body += STACK_GLOBAL + _PAYLOAD + STOP
    return PROTO4 + frame(body), at


def _dotted() -> tuple[bytes, int]:
    head = PROTO4 + sbu("numpy") + sbu("os.system")
    return head + STACK_GLOBAL + _PAYLOAD + STOP, len(head)


def _global_protocol0() -> tuple[bytes, int]:
    return b"cos\nsystem\n(S'true'\ntR.", 0


def _python2_names() -> tuple[bytes, int]:
    # protocol 2 maps Python 2 names: __builtin__.eval is builtins.eval
    return PROTO2 + b"c__builtin__\neval\n" + _PAYLOAD + STOP, 2


@pytest.mark.parametrize(
    ("build", "qualified"),
    [
        (_memo_names, "os.system"),
        (_pushed_long_before, "os.system"),
        (_framed_memo, "subprocess.check_call"),
        (_dotted, "numpy.os.system"),
        (_global_protocol0, "os.system"),
        (_python2_names, "builtins.eval"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_hostile_names_are_flagged_where_they_are(build: Any, qualified: str):
    raw, offset = build()
    report = skvault.audit(io.BytesIO(raw))
    assert not report.safe
    ref = only(report, qualified)
    assert (ref.classification, ref.offset, ref.pickle) == ("dangerous", offset, 0)
    assert report.problems == []


def test_dynamic_stack_global_is_dangerous():
    # the module name is the result of a call: the audit cannot know it, so it is dangerous
    head = PROTO4 + call(stack_global("builtins", "str"), sbu("os")) + sbu("system")
    raw = head + STACK_GLOBAL + _PAYLOAD + STOP
    report = skvault.audit(io.BytesIO(raw))
    (dynamic,) = [r for r in report.references if r.module == "<dynamic>"]
    assert (dynamic.classification, dynamic.offset) == ("dangerous", len(head))
    assert "computed at load time" in dynamic.reason


@pytest.mark.parametrize(
    ("raw", "qualified", "kind"),
    [
        (b"(S'true'\nios\nsystem\n.", "os.system", "inst-obj"),
        (b"(cos\nsystem\nS'true'\no.", "os.system", "inst-obj"),
        (PROTO2 + b"\x82\x01)R.", None, "extension"),
        (PROTO2 + b"\x83\x01\x02)R.", None, "extension"),
        (b"Pmy-object\n.", None, "persistent-id"),
        (PROTO2 + sbu("id") + b"Q.", None, "persistent-id"),
        (b"\x80\x05\x97.", None, "buffer"),
    ],
    ids=["INST", "OBJ", "EXT1", "EXT2", "PERSID", "BINPERSID", "NEXT_BUFFER"],
)
def test_opcodes_that_are_never_clean(raw: bytes, qualified: str | None, kind: str):
    report = skvault.audit(io.BytesIO(raw))
    assert not report.safe
    assert kind in kinds(report)
    if qualified:
        assert names(report)[qualified] == {"dangerous"}


def test_data_after_stop_is_scanned_as_a_second_pickle():
    first = pickle.dumps({"a": 1}, protocol=4)
    second = PROTO4 + call(stack_global("os", "system"), sbu("true")) + STOP
    report = skvault.audit(io.BytesIO(first + second))
    assert kinds(report) == ["data-after-stop"]
    assert report.problems[0].offset == len(first)
    ref = only(report, "os.system")
    assert (ref.pickle, ref.offset) == (
        1,
        len(first) + len(PROTO4) + len(sbu("os") + sbu("system")),
    )


def test_truncated_stream_reports_the_payload_and_the_truncation():
    raw = PROTO4 + call(stack_global("os", "system"), sbu("true"))  # no STOP
    report = skvault.audit(io.BytesIO(raw))
    assert names(report)["os.system"] == {"dangerous"}
    assert kinds(report) == ["truncated"]
    assert report.problems[0].offset == len(raw)


@pytest.mark.parametrize("declared", [2, 40, 4000])
def test_frame_length_mismatch(declared: int):
    body = b"]" + POP + call(stack_global("os", "system"), sbu("true")) + STOP
    report = skvault.audit(io.BytesIO(PROTO4 + frame(body, declared)))
    assert names(report)["os.system"] == {"dangerous"}
    assert "frame" in kinds(report)


def test_frame_mismatch_alone_is_a_problem():
    # a harmless pickle whose frame announces fewer bytes than it holds
    body = b"]" + POP + b"K\x01" * 10 + b"0" * 9 + STOP
    report = skvault.audit(io.BytesIO(PROTO4 + frame(body, 2)))
    assert report.references == []
    assert kinds(report) == ["frame"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (PROTO4 + b"\xff.", "invalid opcode"),
        (PROTO4 + b"h\x05.", "memo"),
        (PROTO4 + b"K\x01e.", "MARK"),
        (PROTO4 + b"R.", "underflow"),
        (PROTO4 + b"\x80\x09.", "protocol"),
    ],
)
def test_invalid_streams(raw: bytes, message: str):
    report = skvault.audit(io.BytesIO(raw))
    assert kinds(report) == ["invalid"]
    assert message in report.problems[0].message


# -- 3. joblib: the pickle sections around and inside arrays -----------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_payload_after_the_first_joblib_array(compression: str | None, tmp_path: Path):
    # scanners that stop at the first array never see what follows its raw bytes
    path = tmp_path / "model.joblib"
    joblib.dump(
        [np.arange(5000.0), os.system], path, compress=(compression, 3) if compression else 0
    )
    report = skvault.audit(path)
    assert report.format == "joblib"
    ref = only(report, "posix.system")
    assert ref.classification == "dangerous"
    assert ref.offset > 5000 * 8  # after the array data
    assert report.details["array_bytes_skipped"] == 5000 * 8


@pytest.mark.parametrize("compression", [None, "zlib", "lz4"])
def test_payload_inside_a_joblib_object_array(compression: str | None, tmp_path: Path):
    path = tmp_path / "model.joblib"
    joblib.dump(
        {"x": np.arange(10), "o": np.array(["a", os.system], dtype=object)},
        path,
        compress=(compression, 3) if compression else 0,
    )
    report = skvault.audit(path)
    ref = only(report, "posix.system")
    assert (ref.classification, ref.pickle) == ("dangerous", 1)


def _wrapper(shape: bytes, dtype_code: str = "f8", state: bytes | None = None) -> bytes:
    """A NumpyArrayWrapper as joblib >= 1.2 pickles it (protocol 4 opcodes, no frames)."""
    dtype = (
        b"cnumpy\ndtype\n"
        + sbu(dtype_code)
        + b"\x89\x88\x87R"
        + (state or b"(K\x03" + sbu("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t")
        + b"b"
    )
    return (
        b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}("
        + sbu("subclass")
        + b"cnumpy\nndarray\n"
        + sbu("shape")
        + shape
        + sbu("order")
        + sbu("C")
        + sbu("dtype")
        + dtype
        + sbu("allow_mmap")
        + b"\x88"
        + sbu("numpy_array_alignment_bytes")
        + b"K\x10ub"
    )


def test_handmade_joblib_array_is_skipped_exactly(tmp_path: Path):
    # shape (3, 2) of float64: a padding-length byte, the padding, then 48 bytes of data
    head = PROTO4 + b"]" + _wrapper(b"K\x03K\x02\x86")
    array = bytes([5]) + b"\xff" * 5 + b"\x2e" * 48  # the data is all STOP opcodes on purpose
    tail = b"a" + call(stack_global("os", "system"), sbu("true")) + b"a" + STOP
    report = skvault.audit(io.BytesIO(head + array + tail))
    assert report.format == "joblib"
    assert report.details["array_bytes_skipped"] == 48
    assert only(report, "os.system").offset == len(head) + len(array) + len(
        b"a" + sbu("os") + sbu("system")
    )
    assert report.problems == []


@pytest.mark.parametrize(
    ("shape", "dtype", "state"),
    [
        (b"J\xff\xff\xff\xff\x85", "f8", None),  # negative dimension
        (
            b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x86",
            "f8",
            None,
        ),  # the element count overflows 64 bits
        (b"K\x03\x85", "weird", None),  # a dtype code the audit does not know
        (b"K\x03\x85", "U3", None),  # a flexible dtype whose state gives no item size
        (b"]\x85", "f8", None),  # a list as a dimension
        (b"K\x03\x85", "f8", b"N"),  # a dtype whose state is not a tuple
    ],
    ids=["negative", "overflow", "unknown-code", "no-item-size", "list-dimension", "bad-state"],
)
def test_joblib_array_state_not_understood(shape: bytes, dtype: str, state: bytes | None):
    raw = PROTO4 + _wrapper(shape, dtype, state) + b"\x00" * 64 + STOP
    report = skvault.audit(io.BytesIO(raw))
    assert kinds(report) == ["joblib-array"]
    assert not report.safe


@pytest.mark.parametrize("wrapper", ["NDArrayWrapper", "ZNDArrayWrapper"])
def test_legacy_joblib_wrappers_name_other_files(wrapper: str):
    # joblib < 0.10 kept each array in a file of its own, which joblib.load reads (the .npy with
    # allow_pickle=True): the audit of one file cannot vouch for the others
    raw = (
        PROTO2
        + f"cjoblib.numpy_pickle_compat\n{wrapper}\n".encode()
        + b")\x81}("
        + binunicode("filename")
        + binunicode("model.pkl_01.npy")
        + binunicode("subclass")
        + b"cnumpy\nndarray\n"
        + b"ub"
        + STOP
    )
    report = skvault.audit(io.BytesIO(raw))
    assert kinds(report) == ["joblib-array"]
    assert "'model.pkl_01.npy'" in report.problems[0].message
    assert report.format == "joblib"


def test_joblib_wrapper_in_a_plain_pickle_is_ambiguous():
    # numpy.load unpickles a .npy object array with pickle.load, which reads no array bytes
    # after a wrapper; a joblib-aware reader would: the audit says the file is ambiguous
    out = io.BytesIO()
    np.save(out, np.array([None], dtype=object), allow_pickle=True)
    header = out.getvalue()[: out.getvalue().index(b"\x80")]
    report = skvault.audit(io.BytesIO(header + PROTO4 + _wrapper(b"K\x02\x85") + STOP))
    assert report.format == "npy"
    assert kinds(report) == ["joblib-array"]


def test_joblib_wrapper_used_elsewhere_is_flagged():
    # the wrapper class reaches the stack but is never built in place: the audit cannot know
    # where joblib would read array data, so it says so
    raw = PROTO4 + b"]cjoblib.numpy_pickle\nNumpyArrayWrapper\na" + STOP
    report = skvault.audit(io.BytesIO(raw))
    assert "joblib-array" in kinds(report)


def test_joblib_frame_trick(tmp_path: Path):
    # a wrapper built in the middle of a frame: joblib reads the array from after the frame,
    # then runs the rest of the frame; the audit follows it and says it is a trick
    head = _wrapper(b"K\x02\x85")
    rest = call(stack_global("os", "system"), sbu("true")) + b"\x86" + STOP
    body = b"]" + head + rest
    array = bytes([1]) + b"\xff" + b"\x00" * 16
    report = skvault.audit(io.BytesIO(PROTO4 + frame(body) + array))
    assert names(report)["os.system"] == {"dangerous"}
    assert "frame" in kinds(report)


# -- 4. fuzzing: mutated and truncated real files -------------------------------------------------


@pytest.fixture(scope="module")
def seeds(data: Any, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    model = ESTIMATORS["forest"](*data)
    out = [pickle.dumps(model, protocol=2), pickle.dumps(model, protocol=5)]
    folder = tmp_path_factory.mktemp("seeds")
    for compression in (None, "zlib", "lz4"):
        path = folder / f"m-{compression}"
        joblib.dump(
            {"m": model, "o": np.array([1, "a"], dtype=object)},
            path,
            compress=(compression, 1) if compression else 0,
        )
        out.append(path.read_bytes())
    npy = io.BytesIO()
    np.save(npy, np.array([1, "a"], dtype=object), allow_pickle=True)
    out.append(npy.getvalue())
    skv = io.BytesIO()
    skvault.dump(ESTIMATORS["logistic"](*data), skv)
    out.append(skv.getvalue())
    return out


@settings(
    max_examples=150,
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.integers(0, 6),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    st.floats(0, 1),
)
def test_fuzz_mutated_files(seeds: list[bytes], which: int, edits: list[Any], keep: float):
    raw = bytearray(seeds[which])
    for where, value in edits:
        raw[int(where * len(raw))] = value
    raw = raw[: max(1, int(keep * len(raw)))] if keep < 0.98 else raw
    try:
        report = skvault.audit(io.BytesIO(bytes(raw)))
    except SkvaultError:
        return
    json.dumps(report.to_dict())
    str(report)
    if report.safe:
        assert report.problems == []


def test_compression_bomb_costs_bounded_memory(tmp_path: Path):
    # a joblib file whose one array is 256 MiB of zeros, 256 KiB compressed: skipped in chunks
    head = PROTO4 + b"]" + _wrapper(b"J\x00\x00\x00\x02\x85", "f8")  # 32 Mi float64
    body = head + bytes([7]) + b"\xff" * 7
    compressor = zlib.compressobj(1)
    chunks = [compressor.compress(body)]
    zeros = bytes(1 << 20)
    for _ in range(256):
        chunks.append(compressor.compress(zeros))
    chunks.append(compressor.compress(b"a" + STOP) + compressor.flush())
    path = tmp_path / "bomb.joblib"
    path.write_bytes(b"".join(chunks))
    tracemalloc.start()
    try:
        report = skvault.audit(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.safe, str(report)
    assert report.details["array_bytes_skipped"] == 256 << 20
    assert peak < 64 << 20


# -- 5. the command line --------------------------------------------------------------------------


@pytest.fixture
def files(data: Any, tmp_path: Path) -> dict[str, Path]:
    safe = tmp_path / "safe.pkl"
    safe.write_bytes(pickle.dumps(ESTIMATORS["logistic"](*data), protocol=5))
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(_memo_names()[0])
    return {"safe": safe, "hostile": hostile}


def test_cli_safe_file(files: dict[str, Path]):
    result = CliRunner().invoke(cli, ["audit", str(files["safe"])])
    assert result.exit_code == 0, result.output
    assert "sklearn.linear_model._logistic" in result.output
    assert "SAFE" in result.output
    assert "1 file audited: 1 safe, 0 not safe" in result.output


def test_cli_hostile_file(files: dict[str, Path]):
    result = CliRunner().invoke(cli, ["audit", str(files["safe"]), str(files["hostile"])])
    assert result.exit_code == 1
    assert "dangerous" in result.output and "system" in result.output
    assert "2 files audited: 1 safe, 1 not safe" in result.output


def test_cli_json(files: dict[str, Path]):
    result = CliRunner().invoke(cli, ["audit", "--json", str(files["safe"]), str(files["hostile"])])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["safe"] is False
    by_file = {Path(r["file"]).name: r for r in doc["files"]}
    assert by_file["safe.pkl"]["safe"] is True
    hostile = by_file["hostile.pkl"]
    assert hostile["safe"] is False
    assert {"module": "os", "name": "system", "classification": "dangerous"}.items() <= (
        hostile["references"][0].items()
    )


def test_cli_trust(tmp_path: Path):
    import collections

    path = tmp_path / "userdict.pkl"
    path.write_bytes(pickle.dumps(collections.UserDict(a=1)))
    assert CliRunner().invoke(cli, ["audit", str(path)]).exit_code == 1
    result = CliRunner().invoke(cli, ["audit", str(path), "--trust", "collections.UserDict"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["audit", str(path), "--trust", "not a name"])
    assert result.exit_code == 2


def test_cli_unreadable_file(files: dict[str, Path], tmp_path: Path):
    missing = tmp_path / "missing.pkl"
    result = CliRunner().invoke(cli, ["audit", str(files["safe"]), str(missing)])
    assert result.exit_code == 1
    assert "cannot read" in result.output
    result = CliRunner().invoke(cli, ["audit", "--json", str(missing)])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["files"][0]["safe"] is False


def test_cli_as_a_subprocess(files: dict[str, Path]):
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "skvault", "audit", "--json", str(files["hostile"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["references"][0]["name"] == "system"
