"""Hostile object graphs, names and arguments: refused with skvault's errors, nothing imported.

The container tests (``test_container.py``) attack the zip; these attack what is inside it: the
graph's references and node fields, the names it asks to import, array layouts that would make
numpy allocate without bound, and the public functions' arguments. Every file is built by hand
(``_crafting``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from _crafting import (
    DEFLATED,
    assert_refused,
    craft,
    npy,
    repack,
    run_cli,
)
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.cli import main as cli_main
from skvault.errors import (
    FormatError,
    InvalidStateError,
    SkvaultError,
    UntrustedTypeError,
)

BUFFER = {"buffers/0.bin": bytes(256)}


def G(nodes: list, root: object) -> dict:
    return {"nodes": nodes, "root": root}


def LIST(*items: object) -> dict:
    return {"kind": "list", "items": list(items)}


def ARRAY(shape: object, dtype: object = "<f8", **where: object) -> dict:
    where = where or {"buffer": "buffers/0.bin", "offset": 0}
    return {"kind": "ndarray", "dtype": dtype, "shape": shape, "fortran_order": False, **where}


def assert_load_refused(
    data: bytes, error: type[Exception], match: str | None = None, *, cli: bool = True
) -> None:
    """``load`` refuses ``data``; describing it works or fails cleanly, never with a raw error.

    For files whose structure is sound but whose content cannot be built: the audit and
    ``inspect`` build nothing, so they may succeed.
    """
    for call in (lambda: skvault.loads(data), lambda: skvault.load(io.BytesIO(data), mmap=True)):
        with pytest.raises(error, match=match) as info:
            call()
        assert isinstance(info.value, SkvaultError)
    for call in (skvault.get_untrusted_types, skvault.inspect):
        try:
            call(io.BytesIO(data))
        except SkvaultError:
            pass
    if cli:
        code, _, err = run_cli(data)
        assert code in (0, 1) and "Traceback" not in err, err


# -- references: cycles, forward, missing, malformed ------------------------------------------

_BAD_REFERENCES = {
    "self-reference": G([LIST({"ref": 0})], {"ref": 0}),
    "forward-reference": G([LIST({"ref": 1}), LIST()], {"ref": 0}),
    "two-node-cycle": G([LIST({"ref": 1}), LIST({"ref": 0})], {"ref": 1}),
    "root-missing-node": G([LIST()], {"ref": 1}),
    "root-negative": G([LIST()], {"ref": -1}),
    "root-huge": G([LIST()], {"ref": 10**30}),
    "node-missing-node": G([LIST(), LIST({"ref": 7})], {"ref": 1}),
    "node-negative": G([LIST(), LIST({"ref": -1})], {"ref": 1}),
    "ref-string": G([LIST(), LIST({"ref": "0"})], {"ref": 1}),
    "ref-float": G([LIST(), LIST({"ref": 0.0})], {"ref": 1}),
    "ref-bool": G([LIST(), LIST({"ref": False})], {"ref": 1}),
    "ref-null": G([LIST(), LIST({"ref": None})], {"ref": 1}),
    "ref-nested": G([LIST(), LIST({"ref": {"ref": 0}})], {"ref": 1}),
    "ref-extra-key": G([LIST(), LIST({"ref": 0, "type": "os.system"})], {"ref": 1}),
    "root-extra-key": G([LIST()], {"ref": 0, "extra": 1}),
    "object-not-ref": G([LIST({"a": 1})], {"ref": 0}),
    "empty-object": G([LIST({})], {"ref": 0}),
    "ref-in-nested-list": G([LIST([[{"ref": 5}]])], {"ref": 0}),
    "ref-in-field": G([{"kind": "slice", "start": {"ref": 0}}], {"ref": 0}),
}


@pytest.mark.parametrize("case", list(_BAD_REFERENCES))
def test_bad_references_are_refused_before_anything_is_built(case):
    assert_refused(craft(_BAD_REFERENCES[case]), FormatError, "ref|refer|JSON list")


def test_long_reference_chains_load_without_recursion():
    # 30,000 nested lists (30 times Python's recursion limit), each node referring to the one
    # before: built in list order, with no recursion in the reader (and inspect stops
    # descending at its own depth limit)
    n = 30_000
    nodes = [LIST()] + [LIST({"ref": i}) for i in range(n - 1)]
    data = craft(G(nodes, {"ref": n - 1}))
    obj = skvault.loads(data)
    depth = 0
    while obj:
        obj, depth = obj[0], depth + 1
    assert depth == n - 1
    assert skvault.get_untrusted_types(io.BytesIO(data)) == []
    assert skvault.inspect(io.BytesIO(data))["tree"]["type"] == "list"


# -- nodes and values of the wrong shape ------------------------------------------------------

_BAD_DOCUMENTS = {
    "graph-array": [],
    "graph-string": "graph",
    "nodes-object": {"nodes": {}, "root": None},
    "nodes-missing": {"root": None},
    "root-missing": {"nodes": []},
    "extra-key": {"nodes": [], "root": None, "code": "os.system('x')"},
    "node-array": G([[1, 2]], None),
    "node-string": G(["list"], None),
    "node-null": G([None], None),
    "kind-missing": G([{"items": []}], None),
    "kind-unknown": G([{"kind": "pickle", "data": "gASV"}], None),
    "kind-reduce": G([{"kind": "reduce", "callable": "os.system"}], None),
    "kind-number": G([{"kind": 1}], None),
    "kind-list": G([{"kind": ["list"]}], None),
    "root-list": G([], [1, 2]),
}


@pytest.mark.parametrize("case", list(_BAD_DOCUMENTS))
def test_malformed_graph_documents(case):
    assert_refused(craft(_BAD_DOCUMENTS[case]), FormatError, "graph")


_BAD_FIELDS = {
    "list-in-list": G([LIST([1, 2])], {"ref": 0}),
    "list-deeply-nested": G([LIST(json.loads("[" * 300 + "]" * 300))], {"ref": 0}),
    "items-number": G([{"kind": "list", "items": 5}], {"ref": 0}),
    "items-object": G([LIST(), {"kind": "tuple", "items": {"ref": 0}}], {"ref": 1}),
    "items-missing": G([{"kind": "set"}], {"ref": 0}),
    "dict-keys-number": G([{"kind": "dict", "keys": 5, "values": []}], {"ref": 0}),
    "dict-lengths": G([{"kind": "dict", "keys": ["a", "b"], "values": [1]}], {"ref": 0}),
    "dict-unhashable-key": G([LIST(), {"kind": "dict", "keys": [{"ref": 0}], "values": [1]}], None),
    "dict-repeated-key": G([{"kind": "dict", "keys": ["a", "a"], "values": [1, 2]}], {"ref": 0}),
    "set-unhashable": G([LIST(), {"kind": "set", "items": [{"ref": 0}]}], {"ref": 1}),
    "int-not-string": G([{"kind": "int", "value": 5}], {"ref": 0}),
    "int-small": G([{"kind": "int", "value": "5"}], {"ref": 0}),
    "int-not-decimal": G([{"kind": "int", "value": "0x" + "f" * 20}], {"ref": 0}),
    "int-huge": G([{"kind": "int", "value": "9" * 100_000}], {"ref": 0}),
    "float-word": G([{"kind": "float", "value": "nan()"}], {"ref": 0}),
    "float-bits-bad": G([{"kind": "float", "value": "nan", "bits": "zz" * 8}], {"ref": 0}),
    "complex-list": G([{"kind": "complex", "real": [1], "imag": 0}], {"ref": 0}),
    "bytes-not-base64": G([{"kind": "bytes", "base64": "@@@"}], {"ref": 0}),
    "bytes-number": G([{"kind": "bytearray", "base64": 5}], {"ref": 0}),
    "slice-float": G([{"kind": "slice", "start": 1.5, "stop": None, "step": None}], {"ref": 0}),
    "scalar-overflow": G([{"kind": "scalar", "dtype": "|i1", "value": 1000}], {"ref": 0}),
    "scalar-wrong-bytes": G([{"kind": "scalar", "dtype": "<f8", "base64": "AAAA"}], {"ref": 0}),
    "scalar-object": G([{"kind": "scalar", "dtype": "|O", "value": 1}], {"ref": 0}),
    "dtype-object": G([{"kind": "dtype", "descr": [["a", "|O"]]}], {"ref": 0}),
    "dtype-number": G([{"kind": "dtype", "descr": 8}], {"ref": 0}),
    "dtype-pickle-word": G([{"kind": "dtype", "descr": "object"}], {"ref": 0}),
    "dtype-deep": G(
        [{"kind": "dtype", "descr": json.loads('[["a",' * 200 + '"<f8"' + "]]" * 200)}], {"ref": 0}
    ),
    "masked-not-arrays": G([{"kind": "masked_array", "data": 1, "mask": 0}], {"ref": 0}),
    "generator-no-bits": G([{"kind": "generator", "bit_generator": "PCG64"}], {"ref": 0}),
    "random-state-number": G([{"kind": "random_state", "state": 5}], {"ref": 0}),
    "bit-generator-unknown": G(
        [
            {"kind": "dict", "keys": ["bit_generator"], "values": ["os.urandom"]},
            {"kind": "bit_generator", "state": {"ref": 0}},
        ],
        {"ref": 1},
    ),
    "random-state-garbage": G(
        [
            {"kind": "dict", "keys": ["bit_generator", "state"], "values": ["MT19937", "x"]},
            {"kind": "random_state", "state": {"ref": 0}},
        ],
        {"ref": 1},
    ),
}


@pytest.mark.parametrize("case", list(_BAD_FIELDS))
def test_malformed_node_fields(case):
    assert_load_refused(craft(_BAD_FIELDS[case], BUFFER), FormatError)


# -- names: audited as strings, never imported unless trusted --------------------------------


def _naming(name: object, kind: str) -> dict:
    node = {
        "global": {"kind": "global", "name": name},
        "object": {"kind": "object", "type": name, "names": [], "values": []},
        "ext": {"kind": "ext", "type": name, "construct": "new", "args": []},
    }[kind]
    return G([node], {"ref": 0})


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "posix.system",
        "numpy.os.system",
        "numpy.__builtins__",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "subprocess.Popen",
        "pickle.loads",
        "numpy.load",
        "sklearn.base.os",
        "sklearn.utils._joblib.joblib",
    ],
)
@pytest.mark.parametrize("kind", ["global", "object", "ext"])
def test_untrusted_names_are_refused(name, kind):
    data = craft(_naming(name, kind))
    assert skvault.get_untrusted_types(io.BytesIO(data)) == [name]
    assert skvault.inspect(io.BytesIO(data))["untrusted"] == [name]
    with pytest.raises(UntrustedTypeError) as info:
        skvault.loads(data)
    assert info.value.types == [name]
    code, out, _ = run_cli(data)
    assert code == 1 and "UNTRUSTED" in out


@pytest.mark.parametrize(
    "name",
    [
        5,
        None,
        True,
        ["os", "system"],
        "",
        "os",
        ".os.system",
        "os..system",
        "os.system()",
        "os.sys-tem",
        "os system.x",
        "x" * 300 + ".y",
        "numpy.\u0430rray",
    ],
)
@pytest.mark.parametrize("kind", ["global", "object", "ext"])
def test_malformed_names_are_refused(name, kind):
    assert_refused(craft(_naming(name, kind)), FormatError, "malformed global")


@pytest.mark.parametrize("name", ["os.system\n", "numpy.float64\n", "numpy.float64 "])
def test_names_with_trailing_whitespace_are_not_allow_listed_names(name):
    # "numpy.float64" is trusted; with a trailing newline it must not be (refused as untrusted
    # or as malformed, never resolved)
    data = craft(_naming(name, "global"))
    with pytest.raises((UntrustedTypeError, FormatError)):
        skvault.loads(data)
    try:
        assert skvault.get_untrusted_types(io.BytesIO(data)) == [name]
    except FormatError:
        pass


def _unimported_modules() -> list[str]:
    candidates = ["xml.dom.minidom", "wsgiref.simple_server", "http.server", "smtplib", "ftplib"]
    return [m for m in candidates if m not in sys.modules]


def test_refused_names_are_never_imported():
    modules = _unimported_modules()
    assert modules, "every candidate module is already imported: extend the list"
    names = [f"{m}.{attr}" for m in modules for attr in ("system", "Thing")]
    # as a global, an object's class and an extension type, in one file
    nodes = [{"kind": "global", "name": names[0]}]
    nodes += [{"kind": "object", "type": n, "names": [], "values": []} for n in names[1::2]]
    nodes += [{"kind": "ext", "type": n, "construct": "new", "args": []} for n in names[2::2]]
    data = craft(G([*nodes, LIST(*({"ref": i} for i in range(len(nodes))))], {"ref": len(nodes)}))
    assert skvault.get_untrusted_types(io.BytesIO(data)) == sorted(names)
    assert skvault.inspect(io.BytesIO(data))["untrusted"] == sorted(names)
    with pytest.raises(UntrustedTypeError) as info:
        skvault.load(io.BytesIO(data))
    assert info.value.types == sorted(names)
    assert run_cli(data)[0] == 1
    assert [m for m in modules if m in sys.modules] == []


def test_trusting_an_attribute_chain_does_not_reach_the_attribute():
    # trusted= is exact: "numpy.os.system" names a module numpy.os, which does not exist; the
    # loader never walks attributes (numpy.os would be the os module)
    data = craft(_naming("numpy.os.system", "global"))
    with pytest.raises(FormatError, match="cannot be found"):
        skvault.loads(data, trusted=["numpy.os.system"])


# -- allowed types with garbage state -------------------------------------------------------


def _object(type_name: str, **state: object) -> dict:
    return {
        "kind": "object",
        "type": type_name,
        "names": list(state),
        "values": list(state.values()),
    }


_GARBAGE_STATE = {
    "object-with-attributes": G([_object("builtins.object", x=1)], {"ref": 0}),
    "ndarray-as-object": G([_object("numpy.ndarray", shape=3)], {"ref": 0}),
    "tree-not-a-tree": G(
        [_object("sklearn.tree._classes.DecisionTreeClassifier", tree_=5, n_outputs_="x")],
        {"ref": 0},
    ),
    "names-not-strings": G(
        [{"kind": "object", "type": "builtins.object", "names": [1], "values": [1]}], {"ref": 0}
    ),
    "names-values-lengths": G(
        [{"kind": "object", "type": "builtins.object", "names": ["a", "b"], "values": [1]}],
        {"ref": 0},
    ),
    "names-repeated": G(
        [{"kind": "object", "type": "builtins.object", "names": ["a", "a"], "values": [1, 2]}],
        {"ref": 0},
    ),
    "names-missing": G([{"kind": "object", "type": "builtins.object"}], {"ref": 0}),
    "items-on-a-non-mapping": G(
        [{**_object("builtins.object"), "item_keys": ["a"], "item_values": [1]}], {"ref": 0}
    ),
    "function-as-class": G([_object("numpy.sqrt", x=1)], {"ref": 0}),
    "ext-function-as-class": G(
        [{"kind": "ext", "type": "numpy.sqrt", "construct": "call", "args": [4.0]}], {"ref": 0}
    ),
    "ext-call-wrong-args": G(
        [{"kind": "ext", "type": "sklearn.tree._tree.Tree", "construct": "call", "args": ["a"]}],
        {"ref": 0},
    ),
    "ext-call-no-args": G(
        [{"kind": "ext", "type": "sklearn.tree._tree.Tree", "construct": "call", "args": []}],
        {"ref": 0},
    ),
    "ext-call-object-args": G(
        [{"kind": "ext", "type": "builtins.object", "construct": "call", "args": [1, 2]}],
        {"ref": 0},
    ),
    "ext-new-with-args": G(
        [{"kind": "ext", "type": "sklearn.tree._tree.Tree", "construct": "new", "args": [1]}],
        {"ref": 0},
    ),
    "ext-unknown-construct": G(
        [{"kind": "ext", "type": "sklearn.tree._tree.Tree", "construct": "eval", "args": []}],
        {"ref": 0},
    ),
    "ext-args-not-list": G(
        [{"kind": "ext", "type": "sklearn.tree._tree.Tree", "construct": "call", "args": 3}],
        {"ref": 0},
    ),
    "ext-state-garbage": G(
        [
            {
                "kind": "ext",
                "type": "sklearn.neighbors._kd_tree.KDTree",
                "construct": "new",
                "args": [],
                "state": "garbage",
            }
        ],
        {"ref": 0},
    ),
}


@pytest.mark.parametrize("case", list(_GARBAGE_STATE))
def test_allowed_types_with_garbage_state(case):
    assert_load_refused(craft(_GARBAGE_STATE[case], BUFFER), FormatError)


def test_sparse_matrix_with_out_of_bounds_indices():
    good = skvault.dumps(sp.csr_matrix(np.eye(3)))
    assert (skvault.loads(good) != sp.csr_matrix(np.eye(3))).nnz == 0

    def corrupt(members):
        # indices [0, 1, 2] -> [0, 1, 99], digests recomputed: only the state is wrong
        raw = bytearray(members["buffers/0.bin"])
        at = raw.find(np.array([0, 1, 2], np.int32).tobytes())
        raw[at + 8 : at + 12] = np.int32(99).tobytes()
        members["buffers/0.bin"] = bytes(raw)

    assert_load_refused(repack(good, members=corrupt), InvalidStateError, "csr_matrix")


def test_ext_call_cannot_allocate_at_the_files_request():
    data = craft(
        G(
            [{"kind": "ext", "type": "builtins.bytearray", "construct": "call", "args": [10**6]}],
            {"ref": 0},
        )
    )
    with pytest.raises(FormatError):
        skvault.loads(data)


def _range_node(args: list, construct: str = "call", **extra: object) -> bytes:
    node = {"kind": "ext", "type": "builtins.range", "construct": construct, "args": args, **extra}
    return craft(G([node], {"ref": 0}))


def test_range_is_the_one_builtin_an_ext_node_calls():
    assert skvault.loads(_range_node([1, 30, 3])) == range(1, 30, 3)
    huge = {"kind": "int", "value": str(10**40)}
    node = {"kind": "ext", "type": "builtins.range", "construct": "call", "args": [{"ref": 0}]}
    big = craft(G([huge, node], {"ref": 1}))
    assert skvault.loads(big) == range(10**40)  # three integers: no allocation, whatever they say


@pytest.mark.parametrize(
    ("args", "construct", "extra", "error", "match"),
    [
        ([1.5], "call", {}, InvalidStateError, "one to three integers"),
        ([True], "call", {}, InvalidStateError, "one to three integers"),
        (["3"], "call", {}, InvalidStateError, "one to three integers"),
        ([], "call", {}, InvalidStateError, "one to three integers"),
        ([1, 2, 3, 4], "call", {}, InvalidStateError, "one to three integers"),
        ([1, 5, 0], "call", {}, InvalidStateError, "step is 0"),
        ([1, 5], "call", {"state": 3}, InvalidStateError, "no state"),
        ([], "new", {}, FormatError, "node kind of its own"),
        ([], "cython", {}, FormatError, "node kind of its own"),
    ],
)
def test_range_with_anything_but_integers_is_refused(args, construct, extra, error, match):
    data = _range_node(args, construct, **extra)
    assert_load_refused(data, error, match)


# -- arrays: sizes, offsets, overlaps, headers ------------------------------------------------


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _npy_header(shape: tuple, descr: str = "<f8", fortran: bool = False) -> bytes:
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


@pytest.mark.parametrize("where", ["buffer", "member", "compressed-member", "object-items"])
def test_array_claiming_10_to_the_12_elements_fails_before_allocating(where):
    shape = [10**12]
    if where == "buffer":
        data = craft(G([ARRAY(shape)], {"ref": 0}), BUFFER)
    elif where == "object-items":
        node = {"kind": "ndarray", "dtype": "|O", "shape": shape, "items": [1, 2]}
        data = craft(G([node], {"ref": 0}))
    else:
        member = _npy_header(tuple(shape)) + bytes(64)
        data = craft(
            G([ARRAY(shape, member="arrays/0.npy")], {"ref": 0}),
            {"arrays/0.npy": member},
            methods={"arrays/0.npy": DEFLATED} if where == "compressed-member" else None,
        )
    skvault.loads(craft(G([ARRAY([2])], {"ref": 0}), BUFFER))  # warm up lazy imports

    def attempt():
        with pytest.raises(FormatError):
            skvault.loads(data)

    assert _peak_while(attempt) < 8 << 20


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ([10**12, 10**12], "|V0"),  # zero bytes, but more elements than numpy can count
        ([2**63], "|V0"),
        ([0, 10**30], "<f8"),
        ([0, 2**62, 2**62], "<f8"),
        ([10**40], "<f8"),
    ],
)
def test_array_shapes_numpy_cannot_represent(shape, dtype):
    assert_load_refused(craft(G([ARRAY(shape, dtype)], {"ref": 0}), BUFFER), FormatError, "large")


@pytest.mark.parametrize(
    "shape", [[-1], [1.5], [True], ["3"], None, 3, [1] * 65, [[2]], {"ref": 0}]
)
def test_malformed_array_shapes(shape):
    nodes = [LIST(), ARRAY(shape)] if shape == {"ref": 0} else [ARRAY(shape)]
    data = craft(G(nodes, {"ref": len(nodes) - 1}), BUFFER)
    assert_load_refused(data, FormatError)


@pytest.mark.parametrize("field", ["shape", "dtype"])
def test_cli_inspect_of_an_array_node_with_a_scalar_shape_or_dtype(field):
    node = ARRAY([2])
    node[field] = 3
    code, _, err = run_cli(craft(G([node], {"ref": 0}), BUFFER))
    assert code in (0, 1) and "Traceback" not in err


def test_empty_array_with_huge_zero_shape_of_objects():
    node = {"kind": "ndarray", "dtype": "|O", "shape": [0, 10**30], "items": []}
    assert_load_refused(craft(G([node], {"ref": 0})), FormatError)


@pytest.mark.parametrize("offset", [-64, -1, 8, 256, 2**70, 1.0, True, "0", None, [0]], ids=repr)
def test_bad_buffer_offsets(offset):
    node = ARRAY([4], buffer="buffers/0.bin", offset=offset)
    assert_load_refused(craft(G([node], {"ref": 0}), BUFFER), FormatError)


def test_buffer_offsets_at_the_edge_are_fine():
    # control for the test above: the last aligned slot that fits loads
    data = craft(G([ARRAY([8], buffer="buffers/0.bin", offset=192)], {"ref": 0}), BUFFER)
    assert skvault.loads(data).tolist() == [0.0] * 8


@pytest.mark.parametrize(("second", "overlap"), [(0, True), (64, True), (128, False)])
def test_overlapping_arrays_in_a_buffer(second, overlap):
    a = ARRAY([16], buffer="buffers/0.bin", offset=0)  # bytes 0-127
    b = ARRAY([8], buffer="buffers/0.bin", offset=second)
    data = craft(G([a, b, LIST({"ref": 0}, {"ref": 1})], {"ref": 2}), BUFFER)
    if overlap:
        assert_load_refused(data, FormatError, "overlap")
    else:
        assert len(skvault.loads(data)) == 2


def test_one_array_node_used_twice_is_one_shared_array():
    # sharing a node is fine (it is one object); only two nodes over the same bytes are not
    data = craft(G([ARRAY([4]), LIST({"ref": 0}, {"ref": 0})], {"ref": 1}), BUFFER)
    a, b = skvault.loads(data)
    assert a is b


def _npy_member(header: bytes, body: bytes, node_shape: list, dtype: str = "<f8") -> bytes:
    return craft(
        G([ARRAY(node_shape, dtype, member="arrays/0.npy")], {"ref": 0}),
        {"arrays/0.npy": header + body},
    )


@pytest.mark.parametrize(
    "case",
    [
        "dtype-differs",
        "shape-differs",
        "fortran-differs",
        "object-dtype",
        "too-short",
        "too-long",
        "no-magic",
        "bad-version",
        "header-not-dict",
        "header-nested",
        "header-length-huge",
        "header-call",
    ],
)
def test_npy_members_that_do_not_match_the_graph(case):
    body = np.arange(4.0).tobytes()
    good = _npy_header((4,))

    def raw_header(text: bytes) -> bytes:
        # a header as a hostile writer would put it, in .npy format 1.0, or 2.0 when long
        v2 = len(text) > 60_000
        text += b" " * (-(len(text) + (13 if v2 else 11)) % 64) + b"\n"
        if v2:
            return b"\x93NUMPY\x02\x00" + len(text).to_bytes(4, "little") + text
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text

    header, shape = {
        "dtype-differs": (_npy_header((4,), "<i8"), [4]),
        "shape-differs": (_npy_header((2, 2)), [4]),
        "fortran-differs": (_npy_header((4,), fortran=True), [4]),
        "object-dtype": (_npy_header((4,), "|O"), [4]),
        "too-short": (good, [5]),
        "too-long": (good, [3]),
        "no-magic": (b"\x00" * len(good), [4]),
        "bad-version": (b"\x93NUMPY\x09\x00" + good[8:], [4]),
        "header-not-dict": (raw_header(b"[1, 2, 3]"), [4]),
        "header-nested": (raw_header(b"(" * 50_000 + b")" * 50_000), [4]),
        "header-length-huge": (b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little"), [4]),
        "header-call": (raw_header(b"{'descr': __import__('os').system('x')}"), [4]),
    }[case]
    assert_load_refused(_npy_member(header, body, shape), FormatError)
    # control: the same member with a matching header loads
    assert skvault.loads(_npy_member(good, body, [4])).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_npy_member_written_by_numpy_itself_loads():
    arr = np.arange(12.0).reshape(3, 4)
    data = craft(G([ARRAY([3, 4], member="arrays/0.npy")], {"ref": 0}), {"arrays/0.npy": npy(arr)})
    assert skvault.loads(data).tolist() == arr.tolist()


# -- the public functions' arguments ----------------------------------------------------------


@pytest.fixture(scope="module")
def good():
    return skvault.dumps({"a": np.arange(3), "b": [1, "x"]})


@pytest.mark.parametrize("trusted", [True, False, 1, [1], ["not a name"], [None], "x"])
def test_trusted_must_be_a_list_of_names(good, trusted):
    with pytest.raises(TypeError, match="trusted"):
        skvault.load(io.BytesIO(good), trusted=trusted)
    with pytest.raises(TypeError, match="trusted"):
        skvault.loads(good, trusted=trusted)


def test_trusted_true_explains_there_is_no_blanket_trust(good):
    with pytest.raises(TypeError, match="no blanket"):
        skvault.load(io.BytesIO(good), trusted=True)


@pytest.mark.parametrize("file", [123, None, 1.5, ["a.skv"], object()], ids=repr)
def test_file_must_be_a_path_file_object_or_bytes(file):
    for fn in (skvault.load, skvault.get_untrusted_types, skvault.inspect):
        with pytest.raises(TypeError, match="path or a binary file object"):
            fn(file)
    with pytest.raises(TypeError, match="path or a binary file object"):
        skvault.dump([1], file)


def test_loads_takes_bytes_only(good):
    with pytest.raises(TypeError, match="bytes"):
        skvault.loads(good.decode("latin-1"))


def test_text_mode_files_are_refused(tmp_path, good):
    path = tmp_path / "a.skv"
    path.write_bytes(good)
    with open(path, encoding="latin-1") as fh, pytest.raises(TypeError, match="binary mode"):
        skvault.load(fh)
    with open(tmp_path / "b.skv", "w") as fh, pytest.raises(TypeError, match="binary mode"):
        skvault.dump([1], fh)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_objects_load(good, kind):
    obj = skvault.load(kind(good))
    assert obj["a"].tolist() == [0, 1, 2] and obj["b"] == [1, "x"]


def test_directory_and_missing_paths_raise_os_errors(tmp_path):
    # as open() does: these are about the file system, not about a file's content (the CLI
    # prints them as one line and exits with 1 or 2)
    for fn in (skvault.load, skvault.get_untrusted_types, skvault.inspect):
        with pytest.raises(IsADirectoryError):
            fn(tmp_path)
        with pytest.raises(FileNotFoundError):
            fn(tmp_path / "missing.skv")
    for path in (tmp_path, tmp_path / "missing.skv"):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli_main(["inspect", str(path)])
        assert code in (1, 2), err.getvalue()
        assert err.getvalue().strip() and "Traceback" not in err.getvalue()


class _NotSeekable(io.RawIOBase):
    """A readable stream with no seek (like a socket), that hands out a few bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        chunk = self._data.read(min(len(buf), 1000))
        buf[: len(chunk)] = chunk
        return len(chunk)


def test_pipes_are_spooled(good):
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as fh:
            fh.write(good)

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(read_end, "rb") as fh:
        assert not fh.seekable()
        obj = skvault.load(fh, mmap=True)
    thread.join()
    assert obj["a"].tolist() == [0, 1, 2]
    assert skvault.get_untrusted_types(_NotSeekable(good)) == []
    assert skvault.inspect(io.BufferedReader(_NotSeekable(good)))["untrusted"] == []


def test_hostile_data_through_a_pipe_is_refused():
    data = craft(_BAD_REFERENCES["self-reference"])
    with pytest.raises(FormatError):
        skvault.load(_NotSeekable(data))
    with pytest.raises(FormatError):
        skvault.load(_NotSeekable(data[:-10]))


# -- audit before import: a subprocess in which importing is impossible ----------------------

_AUDIT = textwrap.dedent(
    """
    import json, sys
    import skvault

    assert not any(m == "sklearn" or m.startswith("sklearn.") for m in sys.modules)
    attempts = []

    class Blocked(ImportError):
        pass

    class NoImports:
        def find_spec(self, name, path=None, target=None):
            attempts.append(name)
            raise Blocked(f"importing {name} is blocked")

    sys.meta_path.insert(0, NoImports())
    untrusted = skvault.get_untrusted_types(sys.argv[1])
    report = skvault.inspect(sys.argv[1])
    audit_attempts = list(attempts)
    try:
        skvault.load(sys.argv[1])
        outcome = None
    except Exception as exc:
        outcome = [type(exc).__name__, str(exc)]
    print(json.dumps({
        "untrusted": untrusted,
        "root": report["tree"]["type"],
        "globals": report["globals"],
        "audit_attempts": audit_attempts,
        "load": outcome,
        "load_attempts": attempts[len(audit_attempts):],
        "sklearn_imported": sorted(m for m in sys.modules if m.startswith("sklearn")),
    }))
    """
)


def test_audit_and_inspect_work_when_no_import_is_possible(tmp_path):
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
    path = tmp_path / "pipeline.skv"
    skvault.dump(model, path)
    proc = subprocess.run(
        [sys.executable, "-c", _AUDIT, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["untrusted"] == []
    assert result["root"] == "sklearn.pipeline.Pipeline"
    assert "sklearn.linear_model._logistic.LogisticRegression" in result["globals"]
    assert result["audit_attempts"] == []  # reading and auditing imported nothing
    # construction is the first thing that imports, and it fails cleanly when it cannot
    assert result["load"][0] == "FormatError"
    assert "cannot be found" in result["load"][1] and "blocked" in result["load"][1]
    assert result["load_attempts"] and result["load_attempts"][0].startswith("sklearn")
    assert result["sklearn_imported"] == []


# -- the attack scripts in tools/attacks ------------------------------------------------------

ATTACKS = Path(__file__).resolve().parents[2] / "tools" / "attacks"


@pytest.mark.parametrize(
    "script", sorted(p.name for p in ATTACKS.glob("*.py") if not p.name.startswith("_"))
)
def test_attack_scripts_make_files_that_are_refused(tmp_path, script):
    out = tmp_path / "attack.skv"
    proc = subprocess.run(
        [sys.executable, str(ATTACKS / script), str(out)], capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    skvault.loads(craft(G([ARRAY([2])], {"ref": 0}), BUFFER))  # warm up lazy imports

    def attempt():
        with pytest.raises((FormatError, UntrustedTypeError)):
            skvault.load(out)
        for fn in (skvault.get_untrusted_types, skvault.inspect):
            try:
                fn(out)
            except SkvaultError:
                pass

    assert _peak_while(attempt) < 16 << 20
    code, _, err = run_cli(data)  # exit 0 when only building fails: inspect builds nothing
    assert code in (0, 1) and "Traceback" not in err
