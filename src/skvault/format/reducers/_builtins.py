"""Reducers for Python's builtin containers and the scalars JSON cannot hold directly."""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Collection, Iterator
from typing import Any, ClassVar

import numpy as np

from ...errors import FormatError
from .._graph import (
    INT_LIMIT,
    GraphReader,
    GraphWriter,
    Reducer,
    child_path,
    display_path,
    expect,
)

__all__ = [
    "REDUCERS",
    "decode_dict",
    "dict_children",
    "encode_dict",
    "encode_items",
    "float_in",
    "float_out",
    "is_list",
    "nan_bits_in",
    "nan_bits_out",
]

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_NAN_BITS = struct.pack(">d", math.nan).hex()


def float_out(x: float) -> float | str:
    """Encode a float as JSON: the number itself, or "nan" / "inf" / "-inf"."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def float_in(v: object) -> float:
    """Decode a float written by `float_out`; integers are accepted as exact floats."""
    if isinstance(v, bool):
        raise FormatError(f"expected a float, got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in _NON_FINITE:
        return _NON_FINITE[v]
    raise FormatError(f"expected a float, got {v!r}")


def nan_bits_out(x: float) -> str | None:
    """Return the IEEE 754 bits of ``x`` as 16 hex digits if it is a NaN other than ``nan``.

    A NaN's sign and payload survive pickle; ``"nan"`` alone would make every NaN the default.
    """
    if not math.isnan(x):
        return None
    bits = struct.pack(">d", x).hex()
    return None if bits == _NAN_BITS else bits


def nan_bits_in(v: object, path: str) -> float:
    """Decode bits written by `nan_bits_out`; they must encode a NaN."""
    if isinstance(v, str) and len(v) == 16:
        try:
            x = struct.unpack(">d", bytes.fromhex(v))[0]
        except ValueError:
            pass
        else:
            if math.isnan(x):
                return x
    raise FormatError(f"float at {display_path(path)}: 'bits' must be 16 hex digits of a NaN")


def is_list(v: object) -> bool:
    return isinstance(v, list)


def encode_items(items: Any, w: GraphWriter, path: str) -> list[Any]:
    """Encode an iterable's items as values, located as ``path[i]``."""
    return [w.value(x, child_path(path, i)) for i, x in enumerate(items)]


def _decode_items(node: dict[str, Any], r: GraphReader, path: str, key: str = "items") -> list:
    return list(map(r.value, expect(node, key, is_list, "a list")))


class ListReducer(Reducer):
    kind = "list"
    types: ClassVar[tuple[type, ...]] = (list,)

    def reduce(self, obj: Collection[Any], w: GraphWriter, path: str) -> dict[str, Any]:
        return {"items": encode_items(obj, w, path)}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Collection[Any]:
        return _decode_items(node, r, path)


class TupleReducer(ListReducer):
    kind = "tuple"
    types = (tuple,)

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> tuple:
        return tuple(_decode_items(node, r, path))


def _hashable(items: list, path: str, what: str) -> None:
    for item in items:
        try:
            hash(item)
        except TypeError:
            raise FormatError(f"{what} at {display_path(path)} holds an unhashable item") from None


def _stable_order(items: Collection[Any]) -> list:
    """The items sorted, so that equal sets give equal files, when they can be compared.

    Mixed items fall back to their type and repr; items whose comparison or repr fails (numpy
    scalars against tuples raise ValueError, not TypeError) keep the set's own order.
    """
    out = list(items)
    try:
        # numpy scalars warn when compared with integers beyond their range
        with np.errstate(all="ignore"):
            out.sort()
    except Exception:
        try:
            out.sort(key=lambda x: (type(x).__module__, type(x).__qualname__, repr(x)))
        except Exception:
            pass
    return out


class SetReducer(ListReducer):
    kind = "set"
    types: ClassVar[tuple[type, ...]] = (set,)

    def reduce(self, obj: Collection[Any], w: GraphWriter, path: str) -> dict[str, Any]:
        return {"items": encode_items(_stable_order(obj), w, path)}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Collection[Any]:
        items = _decode_items(node, r, path)
        _hashable(items, path, "set")
        return set(items)


class FrozenSetReducer(SetReducer):
    kind = "frozenset"
    types = (frozenset,)

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> frozenset:
        return frozenset(super().construct(node, r, path))


class DictReducer(Reducer):
    kind = "dict"
    types = (dict,)

    def reduce(self, obj: dict, w: GraphWriter, path: str) -> dict[str, Any]:
        return encode_dict(obj, w, path)

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> dict:
        return decode_dict(node, r, path)

    def children(self, node: dict[str, Any]) -> Iterator[tuple[int, str]]:
        yield from dict_children(node.get("keys"), node.get("values"))


def dict_children(keys: Any, values: Any) -> Iterator[tuple[int, str]]:
    """Yield the references among a mapping's keys and values, labelled by key."""
    for i, (k, v) in enumerate(zip(keys or (), values or ())):
        if isinstance(k, dict):
            yield k["ref"], f"<key {i}>"
        if isinstance(v, dict):
            yield v["ref"], f"[{k!r}]" if not isinstance(k, dict) else f"[<key {i}>]"


def encode_dict(obj: dict, w: GraphWriter, path: str, *, attr: bool = False) -> dict[str, Any]:
    """Encode a mapping as parallel ``keys`` and ``values`` lists (keys need not be strings)."""
    keys = [w.value(k, f"{path}<key {i}>") for i, k in enumerate(obj)]
    values = [w.value(v, child_path(path, k, attr=attr)) for k, v in obj.items()]
    return {"keys": keys, "values": values}


def decode_dict(node: dict[str, Any], r: GraphReader, path: str, *, attr: bool = False) -> dict:
    """Decode the ``keys`` and ``values`` lists of ``node`` into a dict."""
    keys, values = node.get("keys"), node.get("values")
    if not isinstance(keys, list) or not isinstance(values, list):
        raise FormatError(f"mapping at {display_path(path)}: 'keys' and 'values' must be lists")
    if len(keys) != len(values):
        raise FormatError(f"dict at {display_path(path)}: 'keys' and 'values' differ in length")
    out: dict = {}
    for k, v in zip(keys, values):
        key = r.value(k)
        try:
            hash(key)
        except TypeError:
            raise FormatError(f"dict at {display_path(path)} has an unhashable key") from None
        if key in out:
            raise FormatError(f"dict at {display_path(path)} repeats the key {key!r}")
        out[key] = r.value(v)
    return out


class FloatReducer(Reducer):
    """Non-finite floats (finite ones are inline JSON numbers)."""

    kind = "float"
    types = (float,)

    def reduce(self, obj: float, w: GraphWriter, path: str) -> dict[str, Any]:
        node: dict[str, Any] = {"value": float_out(obj)}
        bits = nan_bits_out(obj)
        if bits is not None:  # a NaN with its sign bit or a payload set
            node["bits"] = bits
        return node

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> float:
        value = float_in(node.get("value"))
        if "bits" in node:
            if not math.isnan(value):
                raise FormatError(f"float at {display_path(path)}: 'bits' is only for NaNs")
            return nan_bits_in(node["bits"], path)
        return value


class IntReducer(Reducer):
    """Integers of 64 bits and more, as decimal strings (smaller ones are inline)."""

    kind = "int"
    types = (int,)

    def reduce(self, obj: int, w: GraphWriter, path: str) -> dict[str, Any]:
        return {"value": str(obj)}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> int:
        text = expect(
            node, "value", lambda v: isinstance(v, str) and 0 < len(v) <= 4000, "a string"
        )
        try:
            value = int(text, 10)
        except ValueError:
            raise FormatError(f"int node: {text[:40]!r} is not a decimal integer") from None
        if -INT_LIMIT < value < INT_LIMIT:
            raise FormatError("int node holds a value that must be written inline")
        return value


class ComplexReducer(Reducer):
    kind = "complex"
    types = (complex,)

    def reduce(self, obj: complex, w: GraphWriter, path: str) -> dict[str, Any]:
        node: dict[str, Any] = {"real": float_out(obj.real), "imag": float_out(obj.imag)}
        bits = [nan_bits_out(obj.real), nan_bits_out(obj.imag)]
        if bits != [None, None]:  # a part is a NaN with its sign bit or a payload set
            node["bits"] = bits
        return node

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> complex:
        parts = [float_in(node.get("real")), float_in(node.get("imag"))]
        if "bits" in node:
            bits = node["bits"]
            if not isinstance(bits, list) or len(bits) != 2:
                raise FormatError(f"complex at {display_path(path)}: 'bits' must be a pair")
            for i, b in enumerate(bits):
                if b is not None:
                    if not math.isnan(parts[i]):
                        raise FormatError(f"complex at {display_path(path)}: bits of a non-NaN")
                    parts[i] = nan_bits_in(b, path)
        return complex(parts[0], parts[1])


class BytesReducer(Reducer):
    kind = "bytes"
    types: ClassVar[tuple[type, ...]] = (bytes,)

    def reduce(self, obj: bytes, w: GraphWriter, path: str) -> dict[str, Any]:
        return {"base64": base64.b64encode(obj).decode("ascii")}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> bytes | bytearray:
        return decode_base64(node)


def decode_base64(node: dict[str, Any]) -> bytes:
    text = expect(node, "base64", lambda v: isinstance(v, str), "a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{node['kind']} node: invalid base64") from None


class ByteArrayReducer(BytesReducer):
    kind = "bytearray"
    types = (bytearray,)

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> bytearray:
        return bytearray(decode_base64(node))


class SliceReducer(Reducer):
    kind = "slice"
    types = (slice,)

    def reduce(self, obj: slice, w: GraphWriter, path: str) -> dict[str, Any]:
        return {
            "start": w.value(obj.start, path + ".start"),
            "stop": w.value(obj.stop, path + ".stop"),
            "step": w.value(obj.step, path + ".step"),
        }

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> slice:
        parts = []
        for key in ("start", "stop", "step"):
            v = r.value(node.get(key))
            if v is not None and type(v) is not int:
                raise FormatError(
                    f"slice at {display_path(path)}: {key} must be an integer or null"
                )
            parts.append(v)
        return slice(*parts)


REDUCERS: tuple[Reducer, ...] = (
    ListReducer(),
    TupleReducer(),
    SetReducer(),
    FrozenSetReducer(),
    DictReducer(),
    FloatReducer(),
    IntReducer(),
    ComplexReducer(),
    BytesReducer(),
    ByteArrayReducer(),
    SliceReducer(),
)
