"""Read skops files with skvault's own reader, under skvault's allow-list.

A skops file (``skops.io.dump``, protocols 0 to 2) is a zip archive holding ``schema.json`` and
one member per array (``<id>.npy``), sparse matrix (``<id>.npz``) or bytes object (``<uuid>.bin``).
``schema.json`` is a tree of nodes; each node is a JSON object with ``__loader__`` (the skops class
that rebuilds it), ``__module__`` and ``__class__`` (the type it describes), usually an ``__id__``
(the ``id()`` of the object when it was saved: nodes with the same ``__id__`` are one object), and
loader-specific fields (``content``, ``file``, ``__reduce__``...). The root node also carries
``protocol``.

skvault never calls skops. It reads a file in two phases:

1. `read_skops` checks the zip (size and member-count limits, names, duplicates, overlapping
   members, compression ratio and absolute size caps) and parses ``schema.json`` (size and
   nesting limits) into a tree of records, importing nothing. Each record that will import or call
   a global holds a `Reference`; `SkopsDocument.names` lists them all, with the JSON path of the
   node. An unknown ``__loader__``, a missing or mistyped field, a name that is not a plain
   identifier, is a `FormatError`.
2. `SkopsDocument.construct` checks every name against a `TrustPolicy` *before* anything is
   imported, then builds the objects from the same records, resolving only the names of their
   References (never a string read anew from the file). Arrays come from ``.npy`` headers parsed
   by numpy with object dtypes refused (no pickle); sparse matrices from their ``.npz`` members,
   read by the same code. Objects are rebuilt as skvault's own object nodes rebuild them
   (``cls.__new__(cls)`` then ``__setstate__`` or a ``__dict__`` update), and the state of every
   type that has a validator (trees, KD/Ball trees, sparse matrices, estimators built on them...)
   is checked by that validator before the object is built.

skops itself audited one name and then constructed another (CVE-2025-54412/54413: an ``operator``
function through ``OperatorFuncNode``, a ``getattr`` chain through ``MethodNode``). Here every
loader that implies a type names it in a Reference, and building uses exactly that Reference:

* ``TreeNode``, ``DTypeNode``, ``MaskedArrayNode``, ``RandomStateNode``, ``RandomGeneratorNode``,
  ``PartialNode``, ``DefaultDictNode``, ``SliceNode``, ``BytesNode``, ``BytearrayNode``,
  ``QuantileForestNode`` and ``OperatorFuncNode`` build one fixed type (or family); a node whose
  ``__module__``/``__class__`` names any other type is refused, so the audited name and the built
  type cannot differ. A sparse matrix's class must agree with the format recorded inside its
  ``.npz``; a numpy scalar's class with the dtype of its ``.npy``.
* Built-in references (``Reference.builtin``) are the types that skvault's own ``.skv`` node kinds
  build without the allow-list: exact builtin containers, ``numpy.ndarray``, numpy scalars,
  ``numpy.dtype``, masked arrays, ``RandomState``, ``Generator``, ``SeedSequence`` and the five
  numpy bit generators. They are recognised from fixed tables, never imported by name; a name
  outside those tables is an ordinary reference that the policy decides on.
* ``ObjectNode``, ``ConstructorFromReduceNode``, ``LossNode``, ``TreeNode`` and
  ``QuantileForestNode`` build only classes: a function named there (``os.system``, ``len``) is
  refused even when trusted, as are classes that have a node kind of their own and the classes
  whose restoring code runs code (scipy.stats distributions). ``ConstructorFromReduceNode`` and
  the reduce loaders call the trusted class with the file's arguments, as skvault's extension
  nodes do, after its validator has seen them; of the builtins only ``frozenset`` and ``complex``
  may be built that way.
* ``FunctionNode`` and ``TypeNode`` return the resolved object itself; nothing is called.
* Dictionary keys are converted by fixed code (str, int, float, bool and numpy number types),
  never by calling the key type the file names.
* ``MethodNode`` (a bound method): allowed only when the exact ``module.Class.method`` name is
  trusted (no method is on the default allow-list, so such files need ``trusted=``), the instance
  node names that same class, and the method is a plain Python function defined in that class's
  own namespace whose ``__module__`` and ``__qualname__`` are exactly the trusted name. Inherited
  methods, static and class methods, properties, dunder names and attribute chains are refused:
  the name audited is then not the function bound.
* ``OperatorFuncNode`` (``operator.attrgetter`` / ``itemgetter`` / ``methodcaller``) and
  ``PartialNode`` (``functools.partial``) build call gadgets. They are not on the allow-list, so
  the policy refuses them unless the caller trusts them by name.

Nodes with the same ``__id__`` are one object: skops builds the first and reuses it wherever the
``__id__`` occurs again (or a ``CachedNode`` names it), and so does this reader. A genuine file
repeats such a node identically but for the ``__id__`` and ``file`` fields inside it (temporary
objects get new ones), so any other difference is refused; a node may not contain its own
``__id__``. Every ``.npy``/``.npz``/``.bin`` member is used by one node at most, so a small
``schema.json`` cannot make the reader decompress one large member many times.

Old protocols are read as skops reads them: protocol 0 ``FunctionNode`` keeps its name in
``content``; a protocol 0 ``Generator`` cannot be rebuilt (skops cannot either); protocol 1
``Generator`` has no seed sequence.
"""

from __future__ import annotations

import bz2
import contextlib
import copy
import io
import json
import lzma
import os
import re
import struct
import sys
import types
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ..errors import FormatError, InvalidStateError, SkvaultError, UntrustedTypeError
from ..format import TrustPolicy
from ..format._container import _parse_npy_header, parse_json
from ..format._trust import resolve
from ..format.reducers._numpy import BIT_GENERATORS as _BIT_GENERATORS
from ..format.reducers._objects import has_own_kind, refusal_reason
from ..format.validators import deferred_validation, validate, validate_built

__all__ = ["SCHEMA", "Reference", "SkopsDocument", "SkopsLimits", "read_skops"]

SCHEMA = "schema.json"
PROTOCOL = 2  # the newest skops protocol this reader knows (skops 0.16)


@dataclass(frozen=True)
class SkopsLimits:
    """Bounds the reader enforces before it allocates (bytes unless said otherwise).

    ``member`` and ``total`` are absolute caps on what decompression may produce (one member,
    and everything read from one file, nested ``.npz`` members included); the ratios cap how far
    a compressed member may expand relative to its compressed size (deflate cannot pass about
    1032:1, so its cap never refuses an honest member; bzip2 and LZMA can, on constant data).
    ``depth`` bounds the nesting of ``schema.json`` (scikit-learn models nest about 20 deep).
    """

    members: int = 1_000_000
    name: int = 255
    schema: int = 1 << 30
    depth: int = 200
    nodes: int = 20_000_000
    member: int = 8 << 30
    total: int = 32 << 30
    ratio_deflate: int = 1100
    ratio_other: int = 20_000
    # schema.json becomes Python objects many times its size; skops' own JSON, with its repeated
    # key-type nodes, compresses about 30-60:1
    ratio_schema: int = 500


DEFAULT_LIMITS = SkopsLimits()


@dataclass(frozen=True)
class Reference:
    """A global that building the document imports or calls.

    Attributes
    ----------
    module : str
        The module the name is looked up in.
    name : str
        The name in that module; ``Class.method`` for a bound method.
    kind : str
        What the loader does with it: ``object`` (instance rebuilt from its state), ``reduce``
        (class called with the file's arguments, then given its state), ``constructor`` (class
        called with the file's arguments), ``function`` and ``type`` (the object itself is the
        value), ``method`` (a bound method), ``operator``, ``partial``, ``container``, ``array``,
        ``scalar``, ``dtype``, ``masked_array``, ``sparse``, ``random_state``, ``generator``,
        ``bit_generator`` or ``seed_sequence``.
    where : str
        The JSON path of the node in ``schema.json``, for example
        ``content.content.steps.content[0].content[1]`` (``<root>`` for the root node).
    builtin : bool
        Whether the type is recognised from a fixed table, as skvault's own node kinds build it
        (never imported by name, not subject to the allow-list).
    """

    module: str
    name: str
    kind: str
    where: str
    builtin: bool = False

    @property
    def full_name(self) -> str:
        """``module.name``, the form allow-lists and ``trusted=`` use."""
        return f"{self.module}.{self.name}"

    def __str__(self) -> str:
        return f"{self.full_name} ({self.kind} at {self.where})"


# -- names ----------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MAX_NAME = 200


def _is_ident(v: object) -> bool:
    return type(v) is str and len(v) <= _MAX_NAME and _IDENT.fullmatch(v) is not None


def _is_module(v: object) -> bool:
    return type(v) is str and len(v) <= _MAX_NAME and _MODULE.fullmatch(v) is not None


def _scalar_types() -> dict[str, type]:
    found: dict[str, type] = {}
    for t in set(np.sctypeDict.values()):
        if isinstance(t, type) and issubclass(t, np.generic) and t is not np.object_:
            found[f"{t.__module__}.{t.__name__}"] = t
    return found


_SCALARS = _scalar_types()
# exact builtin containers, as skvault's builtin node kinds build them
_CONTAINERS: dict[str, dict[str, type]] = {
    "DictNode": {"builtins.dict": dict},
    "ListNode": {"builtins.list": list},
    "SetNode": {"builtins.set": set},
    "TupleNode": {"builtins.tuple": tuple},
}
# loaders that always build one type: the node must name it
_FIXED: dict[str, tuple[str, ...]] = {
    "TreeNode": ("sklearn.tree._tree.Tree",),
    "QuantileForestNode": ("quantile_forest._quantile_forest_fast.QuantileForest",),
    "DefaultDictNode": ("collections.defaultdict",),
    "PartialNode": ("functools.partial",),
    "SliceNode": ("builtins.slice",),
    "BytesNode": ("builtins.bytes",),
    "BytearrayNode": ("builtins.bytearray",),
    "DTypeNode": ("numpy.dtype",),
    # the class's __module__, which differs between numpy versions
    "MaskedArrayNode": ("numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray"),
    "RandomStateNode": ("numpy.random.mtrand.RandomState", "numpy.random.RandomState"),
    "RandomGeneratorNode": ("numpy.random._generator.Generator", "numpy.random.Generator"),
}
_OPERATORS = ("attrgetter", "itemgetter", "methodcaller")
# JsonNode's __class__ is a label only: skops wrote the type of the JSON value (old versions) or str
_JSON_CLASSES = {"str", "int", "float", "bool", "NoneType", "list", "dict"}
_SEED_SEQUENCE = "numpy.random.bit_generator.SeedSequence"
_MAX_NPY_HEADER = 1 << 20
_MAX_DIMS = 64


# -- paths and small checks ---------------------------------------------------------------


def _show(where: str) -> str:
    return where or "<root>"


def _key_path(where: str, key: str) -> str:
    segment = f".{key}" if _IDENT.fullmatch(key) else f"[{json.dumps(key)}]"
    return (where + segment).lstrip(".")


def _jtype(v: object) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(v), "an array" if isinstance(v, list) else "an object"
    )


def _bad(where: str, message: str) -> FormatError:
    return FormatError(f"schema.json at {_show(where)}: {message}", member=SCHEMA)


def _field(
    state: dict[str, Any], key: str, where: str, check: Callable[[Any], bool], what: str
) -> Any:
    if key not in state:
        raise _bad(where, f"the node has no '{key}'")
    value = state[key]
    if not check(value):
        raise _bad(where, f"'{key}' must be {what}, not {_jtype(value)}")
    return value


def _is_dict(v: object) -> bool:
    return type(v) is dict


def _is_list(v: object) -> bool:
    return type(v) is list


def _is_str(v: object) -> bool:
    return type(v) is str


# -- the zip archive --------------------------------------------------------------------------


class _Budget:
    """Counts the bytes decompression hands out for one file, against the absolute cap."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, n: int, what: str) -> None:
        if n > self.left:
            raise FormatError(f"{what}: reading it would pass the cap on decompressed data")
        self.left -= n


class _Source:
    """Random access to the file's bytes: a path (opened for each read), a file object, bytes."""

    def __init__(self, file: Any) -> None:
        self._path: str | None = None
        self._fh: IO[bytes] | None = None
        if isinstance(file, (str, os.PathLike)):
            self._path = os.fspath(file)
            with open(self._path, "rb") as fh:
                fh.seek(0, 2)
                self.size = fh.tell()
            return
        if isinstance(file, (bytes, bytearray, memoryview)):
            self._fh = io.BytesIO(bytes(file))
        elif not hasattr(file, "read"):
            raise TypeError(
                f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
            )
        elif isinstance(file, io.TextIOBase):
            raise TypeError("file must be opened in binary mode ('rb'), not text mode")
        else:
            try:
                seekable = bool(file.seekable())
            except (AttributeError, ValueError, OSError):
                seekable = False
            self._fh = file if seekable else io.BytesIO(file.read())
        assert self._fh is not None
        self._fh.seek(0, 2)
        self.size = self._fh.tell()

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self._path is not None:
            with open(self._path, "rb") as fh:
                yield fh
        else:
            assert self._fh is not None
            yield self._fh

    def read_at(self, offset: int, n: int) -> bytearray:
        data = bytearray(n)
        view = memoryview(data)
        got = 0
        with self.open() as fh:
            fh.seek(offset)
            while got < n:
                chunk = fh.read(min(n - got, 1 << 24))
                if not chunk:
                    break
                view[got : got + len(chunk)] = chunk
                got += len(chunk)
        if got != n:
            raise FormatError("the file is truncated (a member's data is cut short)")
        return data


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


@dataclass
class _Member:
    info: zipfile.ZipInfo
    offset: int  # where its (compressed) data starts in the file


def _valid_member_name(name: str, limit: int) -> bool:
    if not name or len(name) > limit or name.startswith("/") or "\\" in name:
        return False
    return all(p and p not in (".", "..") and p.isprintable() for p in name.split("/"))


class _Archive:
    """A zip archive whose structure is checked before any member is read.

    Members may not overlap, run past the central directory, share a name, be encrypted or
    declare a size beyond the caps; a member's data is decompressed in bounded steps to exactly
    its declared size and checked against its CRC.
    """

    def __init__(self, source: _Source, label: str, limits: SkopsLimits, budget: _Budget) -> None:
        self.source = source
        self.label = label
        self.limits = limits
        self.budget = budget
        try:
            with source.open() as fh:
                fh.seek(0)
                zf = zipfile.ZipFile(fh, "r")
                infos = zf.infolist()
                directory = int(getattr(zf, "start_dir", source.size))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise FormatError(f"{label} is not a readable zip archive ({exc})") from None
        except (ValueError, struct.error, OverflowError, IndexError, NotImplementedError) as exc:
            raise FormatError(f"{label} has a corrupt zip structure ({exc})") from None
        if len(infos) > limits.members:
            raise FormatError(f"{label} has {len(infos)} members, over the limit")
        self.members: dict[str, _Member] = {}
        declared = 0
        for info in infos:
            self._check_info(info, directory)
            declared += info.file_size
        if declared > limits.total:
            raise FormatError(
                f"{label}: its members declare {declared} bytes in all, over the cap of "
                f"{limits.total} (zip bomb?)"
            )
        ordered = sorted(infos, key=lambda i: i.header_offset)
        bounds = [i.header_offset for i in ordered[1:]] + [directory]
        for info, bound in zip(ordered, bounds):
            self.members[info.filename] = _Member(info, self._data_offset(info, bound))

    def _check_info(self, info: zipfile.ZipInfo, directory: int) -> None:
        name = info.filename
        where = f"{self.label}: member {name!r}"
        if not _valid_member_name(name, self.limits.name):
            raise FormatError(f"{self.label}: forbidden member name {name!r}", member=name)
        if name in self.members:
            raise FormatError(f"{self.label}: duplicate member name {name!r}", member=name)
        self.members[name] = _Member(info, -1)
        if not 0 <= info.header_offset < directory:
            raise FormatError(f"{where} starts outside the archive (truncated?)", member=name)
        if info.flag_bits & 0x1:
            raise FormatError(f"{where} is encrypted", member=name)
        if info.compress_type not in _METHODS:
            raise FormatError(
                f"{where} uses unsupported compression method {info.compress_type}", member=name
            )
        if info.file_size > self.limits.member:
            raise FormatError(
                f"{where} declares {info.file_size} bytes, over the cap of {self.limits.member}",
                member=name,
            )
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise FormatError(f"{where} is stored with inconsistent sizes", member=name)
        else:
            ratio = (
                self.limits.ratio_deflate
                if info.compress_type == zipfile.ZIP_DEFLATED
                else self.limits.ratio_other
            )
            if info.file_size > max(info.compress_size, 1024) * ratio:
                raise FormatError(
                    f"{where} expands {info.compress_size} compressed bytes to {info.file_size}, "
                    "beyond the allowed ratio (zip bomb?)",
                    member=name,
                )

    def _data_offset(self, info: zipfile.ZipInfo, bound: int) -> int:
        name = info.filename
        if info.header_offset + _LOCAL_HEADER.size > bound:
            raise FormatError(f"{self.label}: member {name!r} overlaps the next one", member=name)
        fields = _LOCAL_HEADER.unpack(self.source.read_at(info.header_offset, _LOCAL_HEADER.size))
        if fields[0] != b"PK\x03\x04":
            raise FormatError(f"{self.label}: bad local header for {name!r}", member=name)
        name_len, extra_len = fields[10], fields[11]
        raw = self.source.read_at(info.header_offset + _LOCAL_HEADER.size, name_len)
        if raw.decode("utf-8", "replace") != name and raw.decode("cp437", "replace") != name:
            raise FormatError(
                f"{self.label}: the local header of {name!r} names another member", member=name
            )
        offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if offset + info.compress_size > bound:
            raise FormatError(
                f"{self.label}: member {name!r} overlaps the next one or is truncated", member=name
            )
        return offset

    def has(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str) -> bytearray:
        """Return the uncompressed bytes of member ``name``, checked against its size and CRC.

        The bytes are a fresh writable buffer: arrays are views of it, not copies.
        """
        member = self.members.get(name)
        if member is None:
            raise FormatError(f"{self.label} has no member {name!r}", member=name)
        info = member.info
        what = f"{self.label}: member {name!r}"
        self.budget.spend(info.file_size, what)
        raw = self.source.read_at(member.offset, info.compress_size)
        if info.compress_type == zipfile.ZIP_STORED:
            data = raw
        else:
            data = bytearray(_decompress(info.compress_type, raw, info.file_size, what))
        if len(data) != info.file_size:
            raise FormatError(
                f"{what} holds {len(data)} bytes, not the {info.file_size} it declares",
                member=name,
            )
        if zlib.crc32(data) != info.CRC:
            raise FormatError(f"{what} fails its CRC check (corrupt file)", member=name)
        return data


def _decompress(method: int, raw: bytes | bytearray, size: int, what: str) -> bytes:
    """Decompress ``raw`` to at most ``size + 1`` bytes: a member cannot expand past its claim."""
    try:
        if method == zipfile.ZIP_DEFLATED:
            return zlib.decompressobj(-15).decompress(raw, size + 1)
        if method == zipfile.ZIP_BZIP2:
            return bz2.BZ2Decompressor().decompress(raw, size + 1)
        # zip's LZMA: version (2 bytes), properties size (2 bytes), properties, raw LZMA1 stream
        if len(raw) < 4:
            raise ValueError("truncated LZMA header")
        (psize,) = struct.unpack("<H", raw[2:4])
        props = raw[4 : 4 + psize]
        filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(
            raw[4 + psize :], size + 1
        )
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError, struct.error) as exc:
        raise FormatError(f"{what} cannot be decompressed ({exc})") from None


# -- .npy and .npz members ------------------------------------------------------------------------


def _parse_npy(data: bytearray, what: str) -> np.ndarray:
    """Return the array a ``.npy`` file holds; object dtypes (pickled data) are refused.

    The array is a writable view of ``data`` (which the caller must not reuse).
    """
    start, dtype, shape, fortran = _parse_npy_header(bytes(data[: _MAX_NPY_HEADER + 16]), what)
    if dtype.hasobject:
        raise FormatError(
            f"{what}: the .npy data has an object dtype, which numpy stores as a pickle; "
            "refused (skops itself stores object arrays in schema.json)"
        )
    if not isinstance(shape, tuple) or len(shape) > _MAX_DIMS:
        raise FormatError(f"{what}: invalid .npy shape {shape!r}")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0 or dim > sys.maxsize:
            raise FormatError(f"{what}: invalid .npy shape {shape!r}")
        count *= dim
    if count * dtype.itemsize != len(data) - start:
        raise FormatError(
            f"{what}: holds {len(data) - start} data bytes, but an array of shape {shape} and "
            f"dtype {dtype} needs {count * dtype.itemsize}"
        )
    order: Any = "F" if fortran else "C"
    if count == 0 or dtype.itemsize == 0:
        return np.zeros(shape, dtype=dtype, order=order)
    # a view of the raw bytes, not a numpy copy: copying a structured array skips the padding
    # between fields, which would leave it uninitialised
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order=order)


# the members save_npz writes for each format, besides format, shape, data and _is_array
_SPARSE_INDEX = {
    "csr": ("indices", "indptr"),
    "csc": ("indices", "indptr"),
    "bsr": ("indices", "indptr"),
    "dia": ("offsets",),
    "coo": ("row", "col"),
}


def _sparse_classes() -> dict[type, tuple[str, bool]]:
    import scipy.sparse as sp

    table: dict[type, tuple[str, bool]] = {}
    for fmt in _SPARSE_INDEX:
        table[getattr(sp, f"{fmt}_matrix")] = (fmt, False)
        table[getattr(sp, f"{fmt}_array")] = (fmt, True)
    return table


def _sparse_state(arrays: dict[str, np.ndarray], fmt: str, is_array: bool, what: str) -> dict:
    """Return the ``__dict__`` a sparse matrix of format ``fmt`` has, from its ``.npz`` arrays."""
    shape_arr = arrays["shape"]
    if shape_arr.ndim != 1 or shape_arr.dtype.kind not in "iu" or not 1 <= shape_arr.size <= 64:
        raise FormatError(f"{what}: shape.npy must hold a list of integers")
    shape = tuple(int(d) for d in shape_arr)
    state: dict[str, Any] = {"_shape": shape, "maxprint": 50}
    if fmt in ("csr", "csc", "bsr"):
        state.update(indptr=arrays["indptr"], indices=arrays["indices"], data=arrays["data"])
    elif fmt == "dia":
        state.update(data=arrays["data"], offsets=arrays["offsets"])
    else:
        if "coords" in arrays:
            coords = tuple(arrays["coords"])
        else:
            coords = (arrays["row"], arrays["col"])
        state.update(coords=coords, data=arrays["data"], has_canonical_format=False)
    return state


# -- the parsed tree ---------------------------------------------------------------------------


class _Node:
    """One parsed node: its loader, where it is, the global it names (if any), its fields."""

    __slots__ = ("fields", "loader", "ref", "where")

    def __init__(self, loader: str, where: str, ref: Reference | None, **fields: Any) -> None:
        self.loader = loader
        self.where = where
        self.ref = ref
        self.fields = fields


class _Parser:
    """Turns ``schema.json`` into `_Node` records, importing nothing."""

    def __init__(self, archive: _Archive, protocol: int, limits: SkopsLimits) -> None:
        self.archive = archive
        self.protocol = protocol
        self.limits = limits
        self.refs: list[Reference] = []
        self.claimed: dict[str, str] = {SCHEMA: "<schema>"}
        self._memo: dict[int, tuple[dict[str, Any], _Node]] = {}
        self._count = 0

    # helpers
    def ref(
        self, module: str, name: str, kind: str, where: str, *, builtin: bool = False
    ) -> Reference:
        ref = Reference(module, name, kind, _show(where), builtin)
        self.refs.append(ref)
        return ref

    def type_name(self, state: dict[str, Any], where: str) -> tuple[str, str]:
        module = _field(state, "__module__", where, _is_module, "a dotted module name")
        name = _field(state, "__class__", where, _is_ident, "a plain identifier (no dots)")
        return module, name

    def fixed(self, loader: str, state: dict[str, Any], where: str) -> tuple[str, str]:
        module, name = self.type_name(state, where)
        expected = _FIXED[loader]
        if f"{module}.{name}" not in expected:
            raise _bad(
                where, f"a {loader} builds {expected[0]}, but the node names {module}.{name}"
            )
        return module, name

    def member(self, state: dict[str, Any], where: str, key: str = "file") -> str:
        name = _field(state, key, where, _is_str, "a member name")
        if not self.archive.has(name):
            raise _bad(where, f"it refers to member {name!r}, which the archive does not have")
        if name in self.claimed:
            raise _bad(where, f"member {name!r} is already used by {_show(self.claimed[name])}")
        self.claimed[name] = where
        return name

    def child(self, state: dict[str, Any], key: str, where: str) -> _Node:
        if key not in state:
            raise _bad(where, f"the node has no '{key}'")
        return self.node(state[key], _key_path(where, key))

    def content(self, state: dict[str, Any], where: str) -> dict[str, Any]:
        return _field(state, "content", where, _is_dict, "an object")

    def children(self, state: dict[str, Any], key: str, where: str) -> list[_Node]:
        items = _field(state, key, where, _is_list, "a list of nodes")
        base = _key_path(where, key)
        return [self.node(item, f"{base}[{i}]") for i, item in enumerate(items)]

    # the walk
    def node(self, state: Any, where: str) -> _Node:
        if type(state) is not dict:
            raise _bad(where, f"expected a node (a JSON object), found {_jtype(state)}")
        saved = state.get("__id__")
        if saved is not None and type(saved) is not int:
            raise _bad(where, f"'__id__' must be an integer, not {_jtype(saved)}")
        loader = state.get("__loader__")
        if loader == "CachedNode":
            hit = self._memo.get(saved)  # type: ignore[arg-type]
            if hit is None:
                raise _bad(where, f"a CachedNode refers to __id__ {saved!r}, not seen before")
            return hit[1]
        if saved is not None and saved in self._memo:
            first, node = self._memo[saved]
            # skops builds the first node with an __id__ and reuses it for the later ones. A
            # genuine file repeats the same object the same way, but for the __id__s inside it
            # and the members its arrays went to (temporary objects such as state dicts get new
            # ones), so any other difference is tampering. The later copy is never built.
            if first is not state and not _same_but_ids(first, state):
                raise _bad(
                    where,
                    f"it shares __id__ {saved} with the node at {_show(node.where)} but differs "
                    "from it",
                )
            return node
        if type(loader) is not str:
            raise _bad(where, f"'__loader__' must be a string, not {_jtype(loader)}")
        parse = _PARSERS.get(loader)
        if parse is None:
            raise _bad(where, f"unknown skops loader {loader[:100]!r}")
        self._count += 1
        if self._count > self.limits.nodes:
            raise FormatError(f"schema.json has over {self.limits.nodes} nodes", member=SCHEMA)
        node = parse(self, state, where)
        if saved is not None:
            if saved in self._memo:
                raise _bad(where, f"the node contains another node with its own __id__ {saved}")
            self._memo[saved] = (state, node)
        return node

    # loaders
    def json_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        if module != "builtins" or name not in _JSON_CLASSES:
            raise _bad(where, f"a JsonNode holds plain JSON, but the node names {module}.{name}")
        text = _field(state, "content", where, _is_str, "a JSON text")
        try:
            value = json.loads(text)
        except RecursionError:
            raise _bad(where, "its JSON content is nested too deeply") from None
        except ValueError as exc:
            raise _bad(where, f"its content is not valid JSON ({exc})") from None
        return _Node("JsonNode", where, None, value=value)

    def container_node(self, state: dict[str, Any], where: str, loader: str) -> _Node:
        module, name = self.type_name(state, where)
        full = f"{module}.{name}"
        builtin = full in _CONTAINERS[loader]
        ref = self.ref(module, name, "container", where, builtin=builtin)
        if loader == "DictNode":
            content = self.content(state, where)
            base = _key_path(where, "content")
            values = {k: self.node(v, _key_path(base, k)) for k, v in content.items()}
            key_types = self.child(state, "key_types", where)
            types_ = key_types.fields.get("items")
            if key_types.loader != "ListNode" or key_types.ref is None or not key_types.ref.builtin:
                raise _bad(where, "'key_types' must be a list node")
            assert types_ is not None
            if len(types_) != len(values):
                raise _bad(where, f"{len(types_)} key types for {len(values)} keys")
            for t in types_:
                if t.loader != "TypeNode":
                    raise _bad(t.where, "a dictionary key type must be a TypeNode")
            return _Node(loader, where, ref, values=values, key_types=types_)
        items = self.children(state, "content", where)
        return _Node(loader, where, ref, items=items)

    def default_dict_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("DefaultDictNode", state, where)
        ref = self.ref(module, name, "container", where)
        content = self.content(state, where)
        base = _key_path(where, "content")
        main = self.child(content, "main", base)
        factory = self.child(content, "default_factory", base)
        if main.loader != "DictNode":
            raise _bad(main.where, "a defaultdict's 'main' must be a dict node")
        return _Node("DefaultDictNode", where, ref, main=main, factory=factory)

    def bytes_node(self, state: dict[str, Any], where: str, loader: str) -> _Node:
        module, name = self.fixed(loader, state, where)
        ref = self.ref(module, name, "container", where, builtin=True)
        return _Node(loader, where, ref, member=self.member(state, where))

    def slice_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("SliceNode", state, where)
        ref = self.ref(module, name, "container", where, builtin=True)
        content = self.content(state, where)
        parts = []
        for key in ("start", "stop", "step"):
            value = content.get(key)
            if value is not None and type(value) is not int:
                raise _bad(where, f"slice '{key}' must be an integer or null")
            parts.append(value)
        return _Node("SliceNode", where, ref, parts=tuple(parts))

    def function_node(self, state: dict[str, Any], where: str) -> _Node:
        if self.protocol == 0:
            # protocol 0 kept the function's name in 'content' (skops.io.old._general_v0)
            self.type_name(state, where)
            content = self.content(state, where)
            base = _key_path(where, "content")
            module = _field(content, "module_path", base, _is_module, "a dotted module name")
            name = _field(content, "function", base, _is_ident, "a plain identifier (no dots)")
        else:
            module, name = self.type_name(state, where)
        return _Node("FunctionNode", where, self.ref(module, name, "function", where))

    def type_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        return _Node("TypeNode", where, self.ref(module, name, "type", where))

    def method_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        content = self.content(state, where)
        base = _key_path(where, "content")
        func = _field(content, "func", base, _is_ident, "a plain method name (no dots)")
        if func.startswith("__") and func.endswith("__"):
            raise _bad(where, f"method {func!r}: special methods are not rebuilt")
        obj = self.child(content, "obj", base)
        if obj.loader != "ObjectNode" or obj.ref is None:
            raise _bad(where, "a method must be bound to an object node")
        if (obj.ref.module, obj.ref.name) != (module, name):
            raise _bad(
                where,
                f"the method node names {module}.{name}, but its object is a {obj.ref.full_name}",
            )
        ref = self.ref(module, f"{name}.{func}", "method", where)
        return _Node("MethodNode", where, ref, obj=obj, func=func)

    def partial_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("PartialNode", state, where)
        ref = self.ref(module, name, "partial", where)
        content = self.content(state, where)
        base = _key_path(where, "content")
        parts = {key: self.child(content, key, base) for key in ("func", "args", "kwds")}
        parts["namespace"] = self.child(content, "namespace", base)
        return _Node("PartialNode", where, ref, **parts)

    def constructor_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        ref = self.ref(module, name, "constructor", where)
        args = self.child(state, "content", where)
        return _Node("ConstructorFromReduceNode", where, ref, args=args)

    def object_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        ref = self.ref(module, name, "object", where)
        content = state.get("content")
        attrs = None if content is None else self.node(content, _key_path(where, "content"))
        return _Node("ObjectNode", where, ref, attrs=attrs)

    def operator_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        if module != "operator" or name not in _OPERATORS:
            raise _bad(
                where,
                f"an OperatorFuncNode builds operator.{'/'.join(_OPERATORS)}, not {module}.{name}",
            )
        ref = self.ref(module, name, "operator", where)
        return _Node("OperatorFuncNode", where, ref, args=self.child(state, "attrs", where))

    def array_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        full = f"{module}.{name}"
        kind = _field(state, "type", where, lambda v: v in ("numpy", "json"), "numpy or json")
        if kind == "json":
            if full != "numpy.ndarray":
                raise _bad(where, f"an object array must be a numpy.ndarray, not {full}")
            ref = self.ref(module, name, "array", where, builtin=True)
            items = self.children(state, "content", where)
            shape = self.child(state, "shape", where)
            return _Node("NdArrayNode", where, ref, items=items, shape=shape)
        if full == "numpy.ndarray":
            ref = self.ref(module, name, "array", where, builtin=True)
        elif full in _SCALARS:
            ref = self.ref(module, name, "scalar", where, builtin=True)
        else:
            ref = self.ref(module, name, "array", where)
        return _Node("NdArrayNode", where, ref, member=self.member(state, where))

    def masked_array_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("MaskedArrayNode", state, where)
        ref = self.ref(module, name, "masked_array", where, builtin=True)
        content = self.content(state, where)
        base = _key_path(where, "content")
        data, mask = self.child(content, "data", base), self.child(content, "mask", base)
        return _Node("MaskedArrayNode", where, ref, data=data, mask=mask)

    def dtype_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("DTypeNode", state, where)
        ref = self.ref(module, name, "dtype", where, builtin=True)
        array = self.child(state, "content", where)
        if array.loader != "NdArrayNode" or "member" not in array.fields:
            raise _bad(where, "a dtype node must hold an array stored in a .npy member")
        return _Node("DTypeNode", where, ref, array=array)

    def _bit_generator(self, state_node: _Node, where: str) -> Reference:
        """The bit generator a generator's state names, as a built-in reference."""
        value = None
        if state_node.loader == "DictNode":
            entry = state_node.fields["values"].get("bit_generator")
            if entry is not None and entry.loader == "JsonNode":
                value = entry.fields["value"]
        if type(value) is not str:
            raise _bad(where, "the generator state does not name its bit generator")
        if value not in _BIT_GENERATORS:
            raise _bad(where, f"unknown bit generator {value[:100]!r}")
        return self.ref("numpy.random", value, "bit_generator", state_node.where, builtin=True)

    def random_state_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("RandomStateNode", state, where)
        ref = self.ref(module, name, "random_state", where, builtin=True)
        content = self.child(state, "content", where)
        bit_generator = self._bit_generator(content, where)
        return _Node("RandomStateNode", where, ref, state=content, bit_generator=bit_generator)

    def generator_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.fixed("RandomGeneratorNode", state, where)
        if self.protocol == 0:
            raise _bad(
                where,
                "a protocol 0 numpy Generator keeps a raw state that cannot be rebuilt "
                "safely (skops refuses it too)",
            )
        ref = self.ref(module, name, "generator", where, builtin=True)
        content = self.content(state, where)
        base = _key_path(where, "content")
        bg_state = self.child(content, "bit_generator", base)
        bit_generator = self._bit_generator(bg_state, where)
        seed_seq = None
        if self.protocol >= 2:
            seed_seq = self.child(content, "seed_seq", base)
            home, _, attr = _SEED_SEQUENCE.rpartition(".")
            self.ref(home, attr, "seed_sequence", seed_seq.where, builtin=True)
        return _Node(
            "RandomGeneratorNode",
            where,
            ref,
            state=bg_state,
            bit_generator=bit_generator,
            seed_seq=seed_seq,
        )

    def sparse_node(self, state: dict[str, Any], where: str) -> _Node:
        module, name = self.type_name(state, where)
        _field(state, "type", where, lambda v: v == "scipy", "'scipy'")
        ref = self.ref(module, name, "sparse", where)
        return _Node("SparseMatrixNode", where, ref, member=self.member(state, where))

    def reduce_node(self, state: dict[str, Any], where: str, loader: str) -> _Node:
        if loader in _FIXED:
            module, name = self.fixed(loader, state, where)
        else:
            module, name = self.type_name(state, where)
        ref = self.ref(module, name, "reduce", where)
        reduce = _field(state, "__reduce__", where, _is_dict, "an object")
        args = self.child(reduce, "args", _key_path(where, "__reduce__"))
        attrs = self.child(state, "content", where)
        return _Node(loader, where, ref, args=args, attrs=attrs)

    def refused_node(self, state: dict[str, Any], where: str) -> _Node:
        raise _bad(
            where,
            "_DictWithDeprecatedKeysNode is only written with scikit-learn < 1.2, whose classes "
            "this environment does not have; it cannot be rebuilt",
        )


_PARSERS: dict[str, Callable[[_Parser, dict[str, Any], str], _Node]] = {
    "JsonNode": _Parser.json_node,
    "DictNode": lambda p, s, w: p.container_node(s, w, "DictNode"),
    "ListNode": lambda p, s, w: p.container_node(s, w, "ListNode"),
    "SetNode": lambda p, s, w: p.container_node(s, w, "SetNode"),
    "TupleNode": lambda p, s, w: p.container_node(s, w, "TupleNode"),
    "DefaultDictNode": _Parser.default_dict_node,
    "BytesNode": lambda p, s, w: p.bytes_node(s, w, "BytesNode"),
    "BytearrayNode": lambda p, s, w: p.bytes_node(s, w, "BytearrayNode"),
    "SliceNode": _Parser.slice_node,
    "FunctionNode": _Parser.function_node,
    "TypeNode": _Parser.type_node,
    "MethodNode": _Parser.method_node,
    "PartialNode": _Parser.partial_node,
    "ConstructorFromReduceNode": _Parser.constructor_node,
    "ObjectNode": _Parser.object_node,
    "OperatorFuncNode": _Parser.operator_node,
    "NdArrayNode": _Parser.array_node,
    "MaskedArrayNode": _Parser.masked_array_node,
    "DTypeNode": _Parser.dtype_node,
    "RandomStateNode": _Parser.random_state_node,
    "RandomGeneratorNode": _Parser.generator_node,
    "SparseMatrixNode": _Parser.sparse_node,
    "TreeNode": lambda p, s, w: p.reduce_node(s, w, "TreeNode"),
    "LossNode": lambda p, s, w: p.reduce_node(s, w, "LossNode"),
    "QuantileForestNode": lambda p, s, w: p.reduce_node(s, w, "QuantileForestNode"),
    "_DictWithDeprecatedKeysNode": _Parser.refused_node,
}
# every loader skops 0.16 registers (CachedNode is resolved by the walk itself)
LOADERS = frozenset([*_PARSERS, "CachedNode"])


# fields a genuine file may write differently each time it writes the same object again
_PER_COPY = frozenset(["__id__", "file"])


def _same_but_ids(a: Any, b: Any) -> bool:
    """Whether two JSON nodes are equal but for the ``__id__`` and ``file`` of nodes inside."""
    if a == b:
        return True
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if type(x) is dict:
            if x.keys() != y.keys():
                return False
            stack.extend((v, y[k]) for k, v in x.items() if k not in _PER_COPY)
        elif type(x) is list:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif x != y:
            return False
    return True


def _json_depth(doc: Any, limit: int) -> int:
    """Return the nesting depth of a parsed JSON document, stopping past ``limit``."""
    deepest = 0
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if type(value) is dict:
            stack.extend((v, depth + 1) for v in value.values() if type(v) in (dict, list))
        elif type(value) is list:
            stack.extend((v, depth + 1) for v in value if type(v) in (dict, list))
    return deepest


# -- building ------------------------------------------------------------------------------------


def _class_to_build(obj: Any, ref: Reference, where: str, *, call: bool = False) -> Any:
    """Check that a resolved name is a class these loaders may instantiate.

    ``call`` says the node calls the class with its arguments (a reduce node).
    """
    if not isinstance(obj, type):
        raise _bad(
            where,
            f"{ref.full_name} is not a class: a {ref.kind} node only builds classes, it never "
            "calls a function with arguments from the file",
        )
    if has_own_kind(obj, call=call):
        raise _bad(where, f"{ref.full_name} has a node kind of its own and cannot be built here")
    reason = refusal_reason(obj)
    if reason is not None:
        raise _bad(where, f"{ref.full_name} is {reason}")
    return obj


def _set_state(obj: Any, state: Any, name: str, where: str) -> None:
    if type(state) is dict and not state:
        return  # pickle, and skvault's object nodes, restore no state from an empty dict
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    elif isinstance(state, dict):
        obj.__dict__.update(state)
    else:
        raise InvalidStateError(_show(where), name, "a state that is not a dict needs __setstate__")


def _construct(
    ref: Reference,
    where: str,
    args: tuple,
    state: Any,
    create: Callable[[], Any],
    *,
    restore: bool,
) -> Any:
    """Validate ``state`` for ``ref``'s type, then create the object and restore its state.

    The validator runs before anything is created; any other failure while creating or
    restoring is an `InvalidStateError` naming the node.
    """
    validate(ref.full_name, _show(where), args, state)
    try:
        obj = create()
        if restore:
            _set_state(obj, state, ref.full_name, where)
    except SkvaultError:
        raise
    except Exception as exc:
        raise InvalidStateError(
            _show(where), ref.full_name, f"restoring its state failed: {exc!r}"
        ) from None
    validate_built(ref.full_name, _show(where), obj)
    return obj


def _convert_key(key: str, key_type: Any, where: str) -> Any:
    """Turn a JSON object key back into a key of ``key_type``, by fixed code only."""
    try:
        if key_type is str:
            return key
        if key_type is bool or key_type is np.bool_:
            if key not in ("true", "false", "True", "False"):
                raise ValueError(key)
            return key_type(key in ("true", "True"))
        if key_type is int or (isinstance(key_type, type) and issubclass(key_type, np.integer)):
            if not re.fullmatch(r"-?\d{1,40}", key):
                raise ValueError(key)
            return key_type(int(key))
        if key_type is float or (isinstance(key_type, type) and issubclass(key_type, np.floating)):
            return key_type(float(key))
    except (ValueError, OverflowError):
        raise _bad(where, f"dictionary key {key[:50]!r} is not a {key_type.__name__}") from None
    raise _bad(
        where,
        f"dictionary keys of type {getattr(key_type, '__qualname__', key_type)!r} are not "
        "supported (str, int, float, bool and numpy numbers are)",
    )


def _fill_object_array(items: list[Any], shape: tuple[int, ...], where: str) -> np.ndarray:
    """Build an object array from skops' ``tolist()`` form: nested lists, one per dimension."""
    # walk the nesting before allocating: the shape is the file's claim, the items are what it has
    leaves: list[tuple[tuple[int, ...], Any]] = []
    stack: list[tuple[tuple[int, ...], Any]] = [((), items)]
    while stack:
        index, value = stack.pop()
        depth = len(index)
        if depth == len(shape):
            leaves.append((index, value))
            continue
        if (depth and type(value) is not list) or len(value) != shape[depth]:
            raise _bad(where, f"the items do not match the object array's shape {shape}")
        stack.extend(((*index, i), v) for i, v in enumerate(value))
    out = np.empty(shape, dtype=object)
    for index, value in leaves:
        out[index] = value
    return out


class _Builder:
    """Builds the objects of a parsed document; resolves names only through its policy."""

    def __init__(self, doc: SkopsDocument, policy: TrustPolicy) -> None:
        self.doc = doc
        self.policy = policy
        self._built: dict[int, Any] = {}
        self._resolved: dict[str, Any] = {}

    def resolve(self, ref: Reference) -> Any:
        assert not ref.builtin and ref.kind != "method"
        name = ref.full_name
        if name not in self._resolved:
            self._resolved[name] = resolve(name, self.policy)
        return self._resolved[name]

    def build(self, node: _Node) -> Any:
        key = id(node)
        if key in self._built:
            return self._built[key]
        obj = _BUILDERS[node.loader](self, node)
        self._built[key] = obj
        return obj

    # containers and plain data
    def json_value(self, node: _Node) -> Any:
        value = node.fields["value"]
        return copy.deepcopy(value) if type(value) in (dict, list) else value

    def container(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        loader = node.loader
        cls: Any = _CONTAINERS[loader][ref.full_name] if ref.builtin else self.resolve(ref)
        base = {"DictNode": dict, "ListNode": list, "SetNode": (set, frozenset), "TupleNode": tuple}
        if not isinstance(cls, type) or not issubclass(cls, base[loader]):  # type: ignore[arg-type]
            raise _bad(node.where, f"{ref.full_name} is not a {loader[:-4].lower()} type")
        make: Any = cls
        if loader == "DictNode":
            items = {}
            for (key, value), key_node in zip(
                node.fields["values"].items(), node.fields["key_types"]
            ):
                key_type = self.build(key_node)
                items[_convert_key(key, key_type, key_node.where)] = self.build(value)
            if cls is dict:
                return items
            return self._call(ref, node.where, lambda: self._fill_mapping(cls, items))
        values = [self.build(item) for item in node.fields["items"]]
        if ref.builtin:
            return make(values)
        if loader == "TupleNode":
            fields = getattr(cls, "_fields", None)
            if not (isinstance(fields, tuple) and all(isinstance(f, str) for f in fields)):
                raise _bad(node.where, f"{ref.full_name} is a tuple type but not a namedtuple")
            return self._call(ref, node.where, lambda: make(*values))
        return self._call(ref, node.where, lambda: make(values))

    @staticmethod
    def _fill_mapping(cls: Any, items: dict[Any, Any]) -> Any:
        obj = cls()
        for key, value in items.items():
            obj[key] = value
        return obj

    def _call(self, ref: Reference, where: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SkvaultError:
            raise
        except Exception as exc:
            raise InvalidStateError(
                _show(where), ref.full_name, f"building it failed: {exc!r}"
            ) from None

    def default_dict(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        cls = self.resolve(ref)
        factory = self.build(node.fields["factory"])
        if factory is not None and not callable(factory):
            raise _bad(node.where, "a defaultdict's default_factory must be callable or null")
        items = self.build(node.fields["main"])
        return self._call(ref, node.where, lambda: self._default_dict(cls, factory, items))

    @staticmethod
    def _default_dict(cls: Any, factory: Any, items: dict[Any, Any]) -> Any:
        obj = cls(factory)
        obj.update(items)
        return obj

    def bytes_value(self, node: _Node) -> Any:
        data = self.doc.archive.read(node.fields["member"])
        return data if node.loader == "BytearrayNode" else bytes(data)

    def slice_value(self, node: _Node) -> slice:
        return slice(*node.fields["parts"])

    # names as values
    def named(self, node: _Node) -> Any:
        assert node.ref is not None
        return self.resolve(node.ref)

    def method(self, node: _Node) -> Any:
        ref = node.ref
        obj_node = node.fields["obj"]
        assert ref is not None and obj_node.ref is not None
        if ref.full_name not in self.policy:  # checked already; kept next to the binding
            raise UntrustedTypeError([ref.full_name])
        instance = self.build(obj_node)
        cls = self.resolve(obj_node.ref)
        func = vars(cls).get(node.fields["func"])
        if type(func) is not types.FunctionType:
            raise _bad(
                node.where,
                f"{ref.full_name} is not a plain function defined in the class itself "
                "(inherited methods, static and class methods and properties are refused)",
            )
        actual = f"{func.__module__}.{func.__qualname__}"
        if actual != ref.full_name:
            raise _bad(node.where, f"{ref.full_name} is really {actual}; refused")
        if type(instance) is not cls:
            raise _bad(node.where, f"the method's object is not a {ref.module}.{obj_node.ref.name}")
        return types.MethodType(func, instance)

    def partial(self, node: _Node) -> Any:
        import functools

        ref = node.ref
        assert ref is not None
        cls = self.resolve(ref)
        if cls is not functools.partial:
            raise _bad(node.where, f"{ref.full_name} is not functools.partial")
        func = self.build(node.fields["func"])
        args = self.build(node.fields["args"])
        kwds = self.build(node.fields["kwds"])
        namespace = self.build(node.fields["namespace"])
        if not callable(func):
            raise _bad(node.where, "a partial's func must be callable")
        if type(args) is not tuple:
            raise _bad(node.where, "a partial's args must be a tuple")
        if type(kwds) is not dict or not all(type(k) is str for k in kwds):
            raise _bad(node.where, "a partial's kwds must be a dict with string keys")
        if namespace is not None and (
            type(namespace) is not dict or not all(type(k) is str for k in namespace)
        ):
            raise _bad(node.where, "a partial's namespace must be null or a dict of attributes")
        obj = cls(func, *args, **kwds)
        if namespace:
            obj.__dict__.update(namespace)
        return obj

    def operator(self, node: _Node) -> Any:
        import operator

        ref = node.ref
        assert ref is not None
        fn: Any = self.resolve(ref)
        if fn is not getattr(operator, ref.name, None):
            raise _bad(node.where, f"{ref.full_name} is not the operator function it names")
        args = self.build(node.fields["args"])
        if type(args) is not tuple or not args:
            raise _bad(node.where, f"{ref.full_name} needs a non-empty tuple of arguments")
        if ref.name == "attrgetter" and not all(
            type(a) is str and all(_IDENT.fullmatch(p) for p in a.split(".")) for a in args
        ):
            raise _bad(node.where, "attrgetter takes attribute names")
        if ref.name == "methodcaller" and not _is_ident(args[0]):
            raise _bad(node.where, "methodcaller takes a method name first")
        call: Any = fn
        return self._call(ref, node.where, lambda: call(*args))

    def constructor(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        obj = self.resolve(ref)
        args = self.build(node.fields["args"])
        if type(args) is not tuple:
            raise _bad(node.where, f"the arguments of {ref.full_name} must be a tuple")
        if obj is frozenset:
            if len(args) > 1 or (args and type(args[0]) not in (list, tuple, set, frozenset)):
                raise _bad(node.where, "frozenset takes one list of items")
            return frozenset(*args)
        if obj is complex:
            if len(args) > 2 or not all(type(a) in (int, float) for a in args):
                raise _bad(node.where, "complex takes two real numbers")
            return complex(*args)
        cls = _class_to_build(obj, ref, node.where, call=True)
        validate(ref.full_name, _show(node.where), args, None)
        obj = self._call(ref, node.where, lambda: cls(*args))
        validate_built(ref.full_name, _show(node.where), obj)
        return obj

    def object_(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        cls = _class_to_build(self.resolve(ref), ref, node.where)
        attrs_node = node.fields["attrs"]
        state = None if attrs_node is None else self.build(attrs_node)
        return _construct(
            ref, node.where, (), state, lambda: cls.__new__(cls), restore=state is not None
        )

    def reduce(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        cls = _class_to_build(self.resolve(ref), ref, node.where, call=True)
        args = self.build(node.fields["args"])
        if type(args) is not tuple:
            raise _bad(node.where, f"the constructor arguments of {ref.full_name} must be a tuple")
        state = self.build(node.fields["attrs"])
        return _construct(ref, node.where, args, state, lambda: cls(*args), restore=bool(state))

    # numpy
    def array(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        if "items" in node.fields:
            shape = self.build(node.fields["shape"])
            if (
                type(shape) is not tuple
                or not 1 <= len(shape) <= _MAX_DIMS
                or not all(type(d) is int and d >= 0 for d in shape)
            ):
                raise _bad(node.where, "an object array's shape must be a tuple of sizes")
            if len(node.fields["items"]) != shape[0]:
                raise _bad(node.where, f"the items do not match the object array's shape {shape}")
            items = [self.build(item) for item in node.fields["items"]]
            return _fill_object_array(items, shape, node.where)
        arr = self.npy(node.fields["member"], node.where)
        if ref.kind == "array" and ref.builtin:
            return arr
        if ref.kind == "scalar":
            cls = _SCALARS[ref.full_name]
            if arr.ndim != 0 or arr.dtype.type is not cls:
                raise _bad(
                    node.where,
                    f"the node names a {ref.full_name} scalar but its .npy holds a "
                    f"{arr.dtype} array of shape {arr.shape}",
                )
            return arr[()]
        raise _bad(node.where, f"arrays of class {ref.full_name} are not supported")

    def npy(self, member: str, where: str) -> np.ndarray:
        return _parse_npy(self.doc.archive.read(member), f"member {member!r} ({_show(where)})")

    def masked_array(self, node: _Node) -> Any:
        data = self.build(node.fields["data"])
        mask = self.build(node.fields["mask"])
        name = "numpy.ma.MaskedArray"
        if not isinstance(data, np.ndarray):
            raise _bad(node.where, "a masked array's data must be an array")
        if isinstance(mask, np.bool_):
            mask = bool(mask)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == data.shape):
            raise InvalidStateError(_show(node.where), name, "mask must be bool, shaped like data")
        try:
            return np.ma.MaskedArray(data, mask=mask)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidStateError(_show(node.where), name, str(exc)) from None

    def dtype(self, node: _Node) -> np.dtype:
        return self.build(node.fields["array"]).dtype

    def _generator_state(self, node: _Node, ref: Reference) -> dict[str, Any]:
        state = self.build(node.fields["state"])
        if type(state) is not dict or state.get("bit_generator") != ref.name:
            raise _bad(node.where, f"the state must be a dict for bit generator {ref.name}")
        return state

    def random_state(self, node: _Node) -> np.random.RandomState:
        bg_ref = node.fields["bit_generator"]
        state = self._generator_state(node, bg_ref)
        name = "numpy.random.RandomState"
        try:
            rs = np.random.RandomState(_BIT_GENERATORS[bg_ref.name]())
            rs.set_state(state)
        except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
            raise InvalidStateError(_show(node.where), name, f"bad state: {exc}") from None
        return rs

    def generator(self, node: _Node) -> np.random.Generator:
        bg_ref = node.fields["bit_generator"]
        state = self._generator_state(node, bg_ref)
        name = "numpy.random.Generator"
        seed_seq = None
        if node.fields["seed_seq"] is not None:
            seed_seq = self._seed_sequence(self.build(node.fields["seed_seq"]), node.where)
        try:
            cls = _BIT_GENERATORS[bg_ref.name]
            bg = cls() if seed_seq is None else cls(seed_seq)
            bg.state = state
        except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
            raise InvalidStateError(_show(node.where), name, f"bad state: {exc}") from None
        return np.random.Generator(bg)

    @staticmethod
    def _seed_sequence(kwargs: Any, where: str) -> np.random.SeedSequence:
        name = _SEED_SEQUENCE

        def small_int(v: Any, hi: int) -> bool:
            return (type(v) is int or isinstance(v, np.integer)) and 0 <= int(v) < hi

        def ints(v: Any) -> bool:
            if isinstance(v, np.ndarray):
                return v.dtype.kind in "iu" and v.ndim == 1 and v.size <= 1024
            return (
                type(v) in (list, tuple) and len(v) <= 1024 and all(small_int(x, 2**64) for x in v)
            )

        ok = (
            type(kwargs) is dict
            and set(kwargs) <= {"entropy", "spawn_key", "pool_size", "n_children_spawned"}
            and (
                kwargs.get("entropy") is None
                or small_int(kwargs["entropy"], 2**4096)
                or ints(kwargs["entropy"])
            )
            and ints(kwargs.get("spawn_key", ()))
            and small_int(kwargs.get("pool_size", 4), 1025)
            and small_int(kwargs.get("n_children_spawned", 0), 2**63)
        )
        if not ok:
            raise InvalidStateError(_show(where), name, "malformed seed sequence state")
        try:
            return np.random.SeedSequence(**kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidStateError(_show(where), name, str(exc)) from None

    # scipy
    def sparse(self, node: _Node) -> Any:
        ref = node.ref
        assert ref is not None
        cls = self.resolve(ref)
        table = _sparse_classes()
        if cls not in table:
            raise _bad(node.where, f"{ref.full_name} is not a sparse class skops can store")
        fmt, is_array = table[cls]
        member = node.fields["member"]
        what = f"member {member!r} ({_show(node.where)})"
        arrays = self._npz(member, what)
        expected = {"format", "shape", "data", *_SPARSE_INDEX[fmt]}
        if fmt == "coo" and "coords" in arrays:
            expected = {"format", "shape", "data", "coords"}
        if not expected <= set(arrays) or set(arrays) - expected - {"_is_array"}:
            raise FormatError(f"{what}: a {fmt} matrix needs exactly {sorted(expected)} arrays")
        stored: Any = arrays["format"]
        if stored.ndim != 0 or stored.dtype.kind not in "SU":
            raise FormatError(f"{what}: format.npy must hold a string")
        stored_fmt = (
            stored[()].decode("ascii", "replace") if stored.dtype.kind == "S" else stored[()]
        )
        flag = arrays.get("_is_array")
        stored_is_array = False
        if flag is not None:
            if flag.ndim != 0 or flag.dtype != bool:
                raise FormatError(f"{what}: _is_array.npy must hold a boolean")
            stored_is_array = bool(flag)
        if (str(stored_fmt), stored_is_array) != (fmt, is_array):
            kind = "array" if stored_is_array else "matrix"
            raise FormatError(
                f"{what}: the node names {ref.full_name}, but the .npz holds a "
                f"{str(stored_fmt)[:10]} {kind}"
            )
        state = _sparse_state(arrays, fmt, is_array, what)
        return _construct(ref, node.where, (), state, lambda: cls.__new__(cls), restore=True)

    def _npz(self, member: str, what: str) -> dict[str, np.ndarray]:
        data = self.doc.archive.read(member)
        inner = _Archive(_Source(data), what, self.doc.limits, self.doc.archive.budget)
        arrays = {}
        for name in inner.members:
            if not name.endswith(".npy") or not _IDENT.fullmatch(name[:-4]):
                raise FormatError(f"{what}: unexpected member {name!r} in the .npz")
            arrays[name[:-4]] = _parse_npy(inner.read(name), f"{what}, {name}")
        return arrays


_BUILDERS: dict[str, Callable[[_Builder, _Node], Any]] = {
    "JsonNode": _Builder.json_value,
    "DictNode": _Builder.container,
    "ListNode": _Builder.container,
    "SetNode": _Builder.container,
    "TupleNode": _Builder.container,
    "DefaultDictNode": _Builder.default_dict,
    "BytesNode": _Builder.bytes_value,
    "BytearrayNode": _Builder.bytes_value,
    "SliceNode": _Builder.slice_value,
    "FunctionNode": _Builder.named,
    "TypeNode": _Builder.named,
    "MethodNode": _Builder.method,
    "PartialNode": _Builder.partial,
    "ConstructorFromReduceNode": _Builder.constructor,
    "ObjectNode": _Builder.object_,
    "OperatorFuncNode": _Builder.operator,
    "NdArrayNode": _Builder.array,
    "MaskedArrayNode": _Builder.masked_array,
    "DTypeNode": _Builder.dtype,
    "RandomStateNode": _Builder.random_state,
    "RandomGeneratorNode": _Builder.generator,
    "SparseMatrixNode": _Builder.sparse,
    "TreeNode": _Builder.reduce,
    "LossNode": _Builder.reduce,
    "QuantileForestNode": _Builder.reduce,
}


@contextlib.contextmanager
def _bad_file_errors(what: str) -> Iterator[None]:
    """Report any other error that a malformed file provokes as a `FormatError`."""
    try:
        yield
    except (SkvaultError, OSError, MemoryError):
        raise
    except RecursionError:
        raise FormatError(f"{what}: the skops document is nested too deeply") from None
    except Exception as exc:
        raise FormatError(f"{what}: malformed skops file ({exc!r})") from exc


# -- the public entry points ---------------------------------------------------------------


class SkopsDocument:
    """A skops file whose zip structure and ``schema.json`` are checked; nothing is built yet.

    Attributes
    ----------
    protocol : int
        The skops protocol the file was written with (0 to 2).
    skops_version : str or None
        The skops version recorded in the file, if any.
    members : list of str
        The zip members, in the archive's order.
    unreferenced_members : list of str
        Members that no node uses (never read; an audit may want to report them).
    """

    def __init__(
        self, archive: _Archive, root: _Node, parser: _Parser, doc: dict, limits: SkopsLimits
    ) -> None:
        self.archive = archive
        self.limits = limits
        self._root = root
        self._refs = list(parser.refs)
        self.protocol: int = doc["protocol"]
        version = doc.get("_skops_version")
        self.skops_version: str | None = version if type(version) is str else None
        self.members = list(archive.members)
        self.unreferenced_members = [m for m in self.members if m not in parser.claimed]
        self._array_members = [
            (m, w)
            for m, w in parser.claimed.items()
            if m != SCHEMA and m.endswith((".npy", ".npz"))
        ]

    def names(self) -> list[Reference]:
        """Return every global that building the document imports or calls, in file order.

        A node shared by several places (same ``__id__``) is listed once, where it first occurs.
        """
        return list(self._refs)

    def required_globals(self) -> list[str]:
        """Return the sorted, unique names the trust policy must accept (built-ins excluded)."""
        return sorted({r.full_name for r in self._refs if not r.builtin})

    def untrusted(self, policy: TrustPolicy | None = None) -> list[str]:
        """Return the names ``policy`` (default: the default allow-list) refuses, sorted."""
        return (policy or TrustPolicy()).untrusted(self.required_globals())

    def construct(self, policy: TrustPolicy | None = None) -> Any:
        """Audit every name against ``policy``, then build and return the root object.

        Parameters
        ----------
        policy : TrustPolicy, optional
            The names that may be resolved; default: skvault's default allow-list.

        Raises
        ------
        UntrustedTypeError
            If the file names a global the policy does not trust (nothing is imported then).
        FormatError
            If the file is malformed; `InvalidStateError` if an object's state breaks the
            invariants its type relies on.
        """
        policy = policy or TrustPolicy()
        policy.check(self.required_globals())
        self.archive.budget.left = self.limits.total
        builder = _Builder(self, policy)
        with _bad_file_errors("skops file"), deferred_validation():
            return builder.build(self._root)

    def check_members(self) -> None:
        """Read every array member and check its ``.npy`` header, building nothing.

        Raises `FormatError` for a malformed member, or one that holds a pickled object array.
        """
        self.archive.budget.left = self.limits.total
        with _bad_file_errors("skops file"):
            for member, where in self._array_members:
                data = self.archive.read(member)
                what = f"member {member!r} ({_show(where)})"
                if member.endswith(".npy"):
                    _parse_npy(data, what)
                else:
                    inner = _Archive(_Source(data), what, self.limits, self.archive.budget)
                    for name in inner.members:
                        _parse_npy(inner.read(name), f"{what}, {name}")


def read_skops(file: Any, *, limits: SkopsLimits = DEFAULT_LIMITS) -> SkopsDocument:
    """Open a skops file and parse it into a `SkopsDocument`, importing nothing.

    Parameters
    ----------
    file : str, os.PathLike, bytes or binary file object
        The skops file. A file object must stay open until the document has been built.
    limits : SkopsLimits, optional
        Size, count and nesting bounds.

    Returns
    -------
    SkopsDocument
        The checked document; `SkopsDocument.names` lists what it would import,
        `SkopsDocument.construct` builds it under a trust policy.

    Raises
    ------
    FormatError
        If the file is not a well-formed skops file (or is over a limit).
    """
    source = _Source(file)
    budget = _Budget(limits.total)
    with _bad_file_errors("skops file"):
        archive = _Archive(source, "skops file", limits, budget)
        if not archive.has(SCHEMA):
            raise FormatError(f"not a skops file: the zip archive has no {SCHEMA}")
        info = archive.members[SCHEMA].info
        if info.file_size > limits.schema:
            raise FormatError(f"{SCHEMA} is over the size limit", member=SCHEMA)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > limits.ratio_schema * max(
            info.compress_size, 1024
        ):
            raise FormatError(f"{SCHEMA} expands beyond the allowed ratio", member=SCHEMA)
        doc = parse_json(bytes(archive.read(SCHEMA)), SCHEMA)
        if _json_depth(doc, limits.depth) > limits.depth:
            raise FormatError(f"{SCHEMA} is nested too deeply", member=SCHEMA)
        if type(doc) is not dict:
            raise FormatError(f"{SCHEMA} must hold a node (a JSON object)", member=SCHEMA)
        protocol = doc.get("protocol")
        if type(protocol) is not int:
            raise FormatError(f"{SCHEMA} has no integer 'protocol'", member=SCHEMA)
        if not 0 <= protocol <= PROTOCOL:
            raise FormatError(
                f"{SCHEMA} declares skops protocol {protocol}; this reader knows protocols 0 to "
                f"{PROTOCOL} (skops 0.16)",
                member=SCHEMA,
            )
        parser = _Parser(archive, protocol, limits)
        root = parser.node(doc, "")
        return SkopsDocument(archive, root, parser, doc, limits)
