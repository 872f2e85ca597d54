"""The static pickle scanner against references that do not share its code.

These tests reach into the private scanner on purpose: its fast loop must leave exactly the state
its careful one-opcode-at-a-time step leaves (``_fast=False`` turns the fast loop off), and its
list of globals must be the list a real unpickler asks for (a recording ``find_class``).
Everything a user sees is tested through ``skvault.audit`` in ``test_audit.py``.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import io
import pickle
import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skvault.legacy._pickle_scan import ScanResult, scan

# -- a tiny pickle assembler ---------------------------------------------------------------------


def sbu(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: the scanner must keep memoized strings itself."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), 7919))  # odd chunk sizes on purpose
        buffer[: len(data)] = data
        return len(data)


def findings(result: ScanResult) -> tuple[list[Any], list[Any]]:
    return list(result.references), list(result.problems)


def scan_all_ways(data: bytes) -> list[tuple[list[Any], list[Any]]]:
    """Scan with and without the fast loop, seekable (lazy memo) and not (arena memo)."""
    return [
        findings(scan(io.BytesIO(data), _fast=True)),
        findings(scan(io.BytesIO(data), _fast=False)),
        findings(scan(io.BufferedReader(_Unseekable(data)), _fast=True)),
        findings(scan(io.BufferedReader(_Unseekable(data)), _fast=False)),
    ]


# -- 1. the globals are the ones an unpickler asks for ------------------------------------------


class _StandIn(dict):
    """What the recording unpickler returns for every global: harmless, accepts any use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass


class _Recording(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.seen: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.seen.append((module, name))
        return _StandIn


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.fractions(max_denominator=100),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=6),
        st.tuples(children, children),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=3).map(collections.OrderedDict),
        st.frozensets(st.integers(-5, 5), max_size=4),
        st.sets(st.text(max_size=3), max_size=4),
    )


plain_data = st.recursive(_leaves, _containers, max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_data, st.integers(0, 5), st.booleans())
def test_references_match_find_class(obj: Any, protocol: int, shared: bool):
    if shared:  # the same objects twice: memo references (BINGET) for globals and strings
        obj = [obj, obj, (obj,)]
    data = pickle.dumps(obj, protocol=protocol)
    recorder = _Recording(data)
    recorder.load()
    for references, problems in scan_all_ways(data):
        assert problems == []
        counted: collections.Counter[tuple[str, str]] = collections.Counter()
        for ref in references:
            counted[(ref.module, ref.name)] += ref.count
        assert counted == collections.Counter(recorder.seen)


def test_references_match_find_class_for_the_python_pickler():
    # pickle._Pickler frames and memoizes in its own way (and writes large bytes outside frames)
    obj = [b"x" * 70000, "y" * 70000, fractions.Fraction(1, 3), decimal.Decimal("1.5")]
    for protocol in range(6):
        out = io.BytesIO()
        pickle._Pickler(out, protocol).dump([obj, datetime.date(2020, 1, 1), obj])
        data = out.getvalue()
        recorder = _Recording(data)
        recorder.load()
        for references, problems in scan_all_ways(data):
            assert problems == []
            assert sorted((r.module, r.name) for r in references) == sorted(set(recorder.seen))


# -- 2. the fast loop leaves what the careful step leaves ----------------------------------------

_NAMES = ["os", "system", "numpy", "dtype", "joblib.numpy_pickle", "NumpyArrayWrapper", "a.b", ""]
_SNIPPETS = [
    b"(",
    b")",
    b"]",
    b"}",
    b"N",
    b"\x88",
    b"\x89",
    b"K\x07",
    b"M\x01\x02",
    b"J\xff\xff\xff\xff",
    b"G" + struct.pack(">d", 1.5),
    b"C\x02ab",
    b"B\x01\x00\x00\x00z",
    b"\x85",
    b"\x86",
    b"\x87",
    b"t",
    b"l",
    b"a",
    b"e",
    b"s",
    b"u",
    b"0",
    b"2",
    b"1",
    b"\x94",
    b"q\x00",
    b"q\x01",
    b"q\x05",
    b"r\x02\x00\x00\x00",
    b"h\x00",
    b"h\x01",
    b"h\x03",
    b"j\x00\x00\x00\x00",
    b"j\x02\x00\x00\x00",
    b"\x93",
    b"R",
    b"b",
    b"\x81",
    b"cos\nsystem\n",
    b"(K\x01K\x02M\x00\x01e",
    b"(K\x01K\x02u",
    b"(K\x01G\x00\x00\x00\x00\x00\x00\x00\x00Nl",
    b"\x95\x05\x00\x00\x00\x00\x00\x00\x00",
    b"\x95\x40\x00\x00\x00\x00\x00\x00\x00",
    b".",
    *(sbu(n) for n in _NAMES),
    *(sbu(n) + b"\x94" for n in _NAMES),
    *(sbu(n) + b"q\x04" for n in _NAMES),
    *(binunicode(n) + b"\x94" for n in _NAMES[:3]),
    *(binunicode(n) + b"r\x03\x00\x00\x00" for n in _NAMES[:3]),
    b"U\x02os",
    binunicode("x" * 300),
    # batches of strings and numbers, as vocabularies are pickled (walked in one pass)
    b"(" + sbu("os") + b"\x94K\x01" + sbu("system") + b"\x94M\x00\x01u",
    b"(" + sbu("a") + b"J\x00\x00\x00\x01" + sbu("b") + b"\x94K\x02u",
    b"(" + binunicode("os") + b"q\x02K\x01" + binunicode("x") + b"r\x03\x00\x00\x00K\x02u",
    b"(" + sbu("os") + b"\x94" + sbu("system") + b"\x94e",
    b"(" + sbu("k") + b"\x94N" + sbu("j") + b"G" + struct.pack(">d", 2.0) + b"u",
    b"(" + sbu("odd") + b"u",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]),
    st.lists(st.sampled_from(_SNIPPETS), max_size=80),
    st.booleans(),
)
def test_fast_loop_matches_careful_step(proto: bytes, snippets: list[bytes], stop: bool):
    data = proto + b"".join(snippets) + (b"." if stop else b"")
    results = scan_all_ways(data)
    assert all(result == results[0] for result in results[1:])


@settings(max_examples=60, deadline=None)
@given(plain_data, st.integers(0, 5), st.integers(1, 200))
def test_fast_loop_matches_careful_step_on_truncated_pickles(obj: Any, protocol: int, cut: int):
    data = pickle.dumps([obj, obj], protocol=protocol)
    results = scan_all_ways(data[: max(0, len(data) - cut)])
    assert all(result == results[0] for result in results[1:])


def test_vocabularies_take_the_batch_path_and_agree():
    # a big str -> int dict spans several frames; its keys are memoized and fetched back later
    vocabulary = {f"w{i}": i * 37 for i in range(20000)}
    for protocol in range(6):
        data = pickle.dumps([vocabulary, list(vocabulary)[::997]], protocol=protocol)
        results = scan_all_ways(data)
        assert results[0] == ([], [])
        assert all(result == results[0] for result in results[1:])
    # a name assembled from a memoized vocabulary word, fetched after the batch
    data = pickle.dumps({"os": 1, "system": 2}, protocol=4)[:-1]
    data += b"h\x01h\x02\x93."  # memo 0 is the dict, 1 and 2 the keys
    for references, _problems in scan_all_ways(data):
        assert [(r.module, r.name) for r in references] == [("os", "system")]


def test_numbers_between_marks_take_the_regex_path_and_agree():
    # long runs of fixed-width numbers are skipped by one regular expression
    obj = {
        "floats": [0.5] * 3000,
        "ints": list(range(-300, 3000)),
        "pairs": dict.fromkeys(range(2000)),
    }
    for protocol in range(1, 6):
        data = pickle.dumps(obj, protocol=protocol)
        results = scan_all_ways(data)
        assert results[0] == ([], [])
        assert all(result == results[0] for result in results[1:])


# -- 3. memory stays bounded on hostile streams ---------------------------------------------------


def _peak(data: bytes) -> tuple[int, ScanResult]:
    tracemalloc.start()
    try:
        result = scan(io.BytesIO(data))
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        # a memoized string fetched 200 000 times: one shared copy (copies would take 50 MB)
        ("fetch-amplification", sbu("s" * 200) + b"\x94" + b"h\x00" * 200_000 + b"\x85.", None),
        # nesting MARKs without end
        ("mark-bomb", b"(" * 150_000 + b".", "limit"),
        # a memo index far away: sparse storage, not a huge array
        ("sparse-memo", b"N" + b"r\xff\xff\xff\x7f" + b"j\xff\xff\xff\x7f" + b".", None),
        # a string announced as 4 GiB long, in a small file
        ("huge-length", b"\x8d" + struct.pack("<Q", 4 << 30) + b"abc", "truncated"),
        # a line-based name with no newline
        ("endless-line", b"c" + b"o" * 3_000_000, "truncated"),
    ],
)
def test_memory_stays_bounded(name: str, data: bytes, kind: str | None):
    peak, result = _peak(data)
    assert peak < 32 << 20, f"{name}: {peak / 2**20:.0f} MiB"
    assert [p.kind for p in result.problems if p.kind == kind] == ([kind] if kind else [])
