"""Reducers for numpy: arrays, masked arrays, dtypes, scalars and random number generators."""

from __future__ import annotations

import base64
import functools
import math
import re
from typing import Any

import numpy as np

from ...errors import FormatError, InvalidStateError, UnsupportedTypeError
from .._graph import GraphReader, GraphWriter, Reducer, display_path, expect, qualified_name
from ._builtins import decode_base64, encode_items, float_in, float_out, is_list

__all__ = ["REDUCERS", "dtype_from_json", "dtype_to_json"]

# a plain (non-structured) dtype string as numpy's .npy headers write it
_SIMPLE_DTYPE = re.compile(r"^[<>|=]?([biufcSUVMm])(\d{1,9})(\[[a-zA-Z0-9]{1,8}\])?$")
_STORED_KINDS = set("biufcSUVMm")
_MAX_FIELDS = 4096
_MAX_DIMS = 64


def dtype_to_json(dtype: np.dtype) -> Any:
    """Return numpy's ``.npy`` description of ``dtype`` as JSON (tuples become lists)."""
    descr = np.lib.format.dtype_to_descr(dtype)
    return _lists(descr)


def _lists(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    return v


def _descr(v: Any, depth: int = 0) -> Any:
    """Turn a JSON dtype description back into numpy's form: fields and shapes as tuples."""
    if depth > 8:
        raise FormatError("dtype description is nested too deeply")
    if isinstance(v, str):
        return v
    return [_field(f, depth) for f in v]


def _field(f: list, depth: int) -> tuple:
    name = tuple(f[0]) if isinstance(f[0], list) else f[0]
    sub = _descr(f[1], depth + 1)
    return (name, sub) if len(f) == 2 else (name, sub, tuple(f[2]))


@functools.lru_cache(maxsize=256)
def _simple_dtype(descr: str) -> np.dtype:
    if not _SIMPLE_DTYPE.match(descr):
        raise FormatError(f"unsupported dtype {descr!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(descr)  # type: ignore[arg-type]  # (stub too narrow)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"invalid dtype {descr!r}: {exc}") from None
    if dtype.hasobject:  # pragma: no cover - the pattern admits no object kind
        raise FormatError("object dtypes cannot be stored as raw array data")
    return dtype


def dtype_from_json(descr: Any, *, allow_object: bool = False) -> np.dtype:
    """Parse a dtype description without evaluating anything; refuse object fields.

    Only numpy's own description grammar is accepted: a type string such as ``"<f8"``, or a
    list of ``[name, descr]`` / ``[name, descr, shape]`` fields.
    """
    if isinstance(descr, str):
        if allow_object and descr == "|O":
            return np.dtype(object)
        return _simple_dtype(descr)
    if isinstance(descr, list):
        if not 0 < len(descr) <= _MAX_FIELDS or not all(_valid_field(f) for f in descr):
            raise FormatError("malformed structured dtype description")
    else:
        raise FormatError(f"malformed dtype description {descr!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(_descr(descr))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise FormatError(f"invalid dtype {descr!r}: {exc}") from None
    if dtype.hasobject:
        raise FormatError("object dtypes cannot be stored as raw array data")
    return dtype


def _valid_field(field: Any) -> bool:
    if not isinstance(field, list) or len(field) not in (2, 3):
        return False
    name, sub = field[0], field[1]
    if not isinstance(name, str) and not (
        isinstance(name, list) and len(name) == 2 and all(isinstance(x, str) for x in name)
    ):
        return False
    if len(field) == 3 and not _valid_shape(field[2]):
        return False
    if isinstance(sub, list):
        return 0 < len(sub) <= _MAX_FIELDS and all(_valid_field(f) for f in sub)
    return isinstance(sub, str) and _SIMPLE_DTYPE.match(sub) is not None


def _valid_shape(shape: Any) -> bool:
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS:
        return False
    for d in shape:
        if type(d) is not int or d < 0:
            return False
    return True


def _storable(dtype: np.dtype) -> bool:
    if dtype.fields is not None:
        return all(_storable(dtype.fields[name][0]) for name in dtype.names or ())
    if dtype.subdtype is not None:
        return _storable(dtype.subdtype[0])
    return dtype.kind in _STORED_KINDS


class ArrayReducer(Reducer):
    """Arrays: raw data in a ``.npy`` member; object arrays element by element in the graph."""

    kind = "ndarray"
    types = (np.ndarray,)

    def reduce(self, obj: np.ndarray, w: GraphWriter, path: str) -> dict[str, Any]:
        shape = list(obj.shape)
        if obj.dtype == object:
            return {
                "dtype": "|O",
                "shape": shape,
                "items": encode_items(obj.ravel(order="C"), w, path),
            }
        if not _storable(obj.dtype):
            raise UnsupportedTypeError(
                display_path(path), "numpy.ndarray", f"dtype {obj.dtype} cannot be stored safely"
            )
        return {"dtype": _dtype_field(obj.dtype, w), "shape": shape, **w.container.add_array(obj)}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.ndarray:
        # the hot path of loading: plain dict access and type checks, no helpers
        shape = node.get("shape")
        if type(shape) is not list or not _valid_shape(shape):
            raise FormatError(f"array at {display_path(path)}: bad 'shape'")
        shape = tuple(shape)
        descr = node.get("dtype")
        if descr == "|O":
            return self._object_array(node, r, path, shape)
        if type(descr) is str:
            dtype = _simple_dtype(descr)
        else:
            dtype = r.value(descr)
            if not isinstance(dtype, np.dtype) or dtype.hasobject:
                raise FormatError(f"array at {display_path(path)}: bad 'dtype'")
        fortran = node.get("fortran_order")
        if type(fortran) is not bool:
            raise FormatError(f"array at {display_path(path)}: 'fortran_order' must be a boolean")
        member = node.get("member")
        if type(member) is str:
            return r.array(member, dtype, shape, fortran)
        buffer, offset = node.get("buffer"), node.get("offset")
        if type(buffer) is not str or type(offset) is not int or offset < 0:
            raise FormatError(f"array at {display_path(path)}: needs 'member' or 'buffer'/'offset'")
        return r.buffer_array(buffer, offset, dtype, shape, fortran)

    def _object_array(
        self, node: dict[str, Any], r: GraphReader, path: str, shape: tuple[int, ...]
    ) -> np.ndarray:
        items = expect(node, "items", is_list, "a list")
        if len(items) != math.prod(shape):
            raise FormatError(
                f"object array at {display_path(path)}: {len(items)} items for shape {shape}"
            )
        out = np.empty(len(items), dtype=object)
        for i, v in enumerate(items):
            out[i] = r.value(v)
        return out.reshape(shape)

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.ndarray"


def _dtype_field(dtype: np.dtype, w: GraphWriter) -> Any:
    """A simple dtype inline; a structured one as a shared dtype node, written once per file."""
    descr = dtype_to_json(dtype)
    if isinstance(descr, str):
        return descr
    return w.shared(("dtype", repr(descr)), dtype)


class MaskedArrayReducer(Reducer):
    kind = "masked_array"
    types = (np.ma.MaskedArray,)

    def reduce(self, obj: np.ma.MaskedArray, w: GraphWriter, path: str) -> dict[str, Any]:
        return {
            "data": w.value(np.asarray(obj.data), path + ".data"),
            "mask": w.value(np.ma.getmaskarray(obj), path + ".mask"),
            "fill_value": w.value(obj.fill_value, path + ".fill_value"),
        }

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.ma.MaskedArray:
        data = r.value(node.get("data"))
        mask = r.value(node.get("mask"))
        fill = r.value(node.get("fill_value"))
        if not isinstance(data, np.ndarray) or not isinstance(mask, np.ndarray):
            raise FormatError(f"masked array at {display_path(path)}: data and mask must be arrays")
        if mask.dtype != bool or mask.shape != data.shape:
            raise InvalidStateError(path, "numpy.ma.MaskedArray", "mask must be bool, like data")
        try:
            return np.ma.MaskedArray(data, mask=mask, fill_value=fill)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidStateError(path, "numpy.ma.MaskedArray", str(exc)) from None

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.ma.MaskedArray"


class DtypeReducer(Reducer):
    kind = "dtype"

    def accepts(self, obj: object) -> bool:
        return isinstance(obj, np.dtype)

    def reduce(self, obj: np.dtype, w: GraphWriter, path: str) -> dict[str, Any]:
        if obj.hasobject:
            if obj != np.dtype(object):
                raise UnsupportedTypeError(display_path(path), "numpy.dtype", "object fields")
            return {"descr": "|O"}
        return {"descr": dtype_to_json(obj)}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.dtype:
        return dtype_from_json(node.get("descr"), allow_object=True)

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.dtype"


def _utf8(text: str) -> bool:
    """Whether JSON can hold ``text``: unpaired surrogates have no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _odd_nan(obj: np.generic) -> bool:
    """Whether ``obj`` holds a NaN that ``"nan"`` would not restore bit for bit.

    Such scalars (a NaN with its sign bit or a payload set) are written as raw bytes instead.
    """
    if not np.isnan(obj):
        return False
    parts = (obj.real, obj.imag) if obj.dtype.kind == "c" else (obj,)
    for part in parts:
        if np.isnan(part) and part.tobytes() != np.array(np.nan, part.dtype).tobytes():
            return True
    return False


class ScalarReducer(Reducer):
    """numpy scalars: a JSON value when exact, else their raw bytes."""

    kind = "scalar"

    def accepts(self, obj: object) -> bool:
        return isinstance(obj, np.generic) and type(obj) is obj.dtype.type

    def reduce(self, obj: np.generic, w: GraphWriter, path: str) -> dict[str, Any]:
        dtype = obj.dtype
        if dtype.hasobject or not _storable(dtype):
            raise UnsupportedTypeError(
                display_path(path), qualified_name(type(obj)), "unsupported numpy scalar"
            )
        node: dict[str, Any] = {"dtype": dtype_to_json(dtype)}
        kind, size = dtype.kind, dtype.itemsize
        if kind == "b":
            node["value"] = bool(obj)
        elif kind in "iu":
            node["value"] = int(obj)
        elif kind == "f" and size <= 8 and not _odd_nan(obj):
            node["value"] = float_out(float(obj))
        elif kind == "c" and size <= 16 and not _odd_nan(obj):
            node["value"] = [float_out(obj.real.item()), float_out(obj.imag.item())]
        elif kind == "U" and _utf8(str(obj)):
            node["value"] = str(obj)
        else:
            # (an empty bytes or void scalar has itemsize 0, but np.asarray makes it S1 / V1)
            raw = np.asarray(obj).tobytes() if size else b""
            node["base64"] = base64.b64encode(raw).decode("ascii")
        return node

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.generic:
        dtype = dtype_from_json(node.get("dtype"))
        if "base64" in node:
            raw = decode_base64(node)
            if len(raw) != dtype.itemsize:
                raise FormatError(f"scalar at {display_path(path)}: wrong number of bytes")
            if not raw and dtype.kind in "SV" and dtype.fields is None:
                return dtype.type(b"")  # frombuffer refuses itemsize 0
            try:
                return np.frombuffer(raw, dtype=dtype)[0]
            except ValueError as exc:
                raise FormatError(f"scalar at {display_path(path)}: {exc}") from None
        value = node.get("value")
        kind = dtype.kind
        try:
            if kind == "b" and isinstance(value, bool):
                return dtype.type(value)
            if kind in "iu" and type(value) is int:
                info = np.iinfo(dtype)
                if not info.min <= value <= info.max:
                    raise FormatError(f"scalar at {display_path(path)} is out of range")
                return dtype.type(value)
            if kind == "f":
                return dtype.type(float_in(value))
            if kind == "c" and isinstance(value, list) and len(value) == 2:
                return dtype.type(complex(float_in(value[0]), float_in(value[1])))
            if kind == "U" and isinstance(value, str) and len(value) <= dtype.itemsize // 4:
                return dtype.type(value)
        except (TypeError, ValueError, OverflowError):
            pass
        raise FormatError(f"scalar at {display_path(path)}: value does not fit dtype {dtype}")

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy scalar"


# numpy's bit generators, by class name: the only ones a file may ask for (here and in the
# legacy readers)
BIT_GENERATORS: dict[str, type] = {
    c.__name__: c
    for c in (
        np.random.MT19937,
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.Philox,
        np.random.SFC64,
    )
}


def _bit_generator_class(state: object, path: str) -> type:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = BIT_GENERATORS.get(name)  # type: ignore[arg-type]
    if cls is None:
        raise InvalidStateError(
            path, "numpy.random.BitGenerator", f"unknown bit generator {name!r}"
        )
    return cls


def _set_state(target: Any, setter: str, state: Any, path: str, what: str) -> None:
    try:
        if setter == "state":
            target.state = state
        else:
            target.set_state(state)
    except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
        raise InvalidStateError(path, what, f"bad generator state: {exc}") from None


class BitGeneratorReducer(Reducer):
    """A bit generator by its state (its seed sequence, used only for spawning, is not kept)."""

    kind = "bit_generator"

    def accepts(self, obj: object) -> bool:
        return type(obj) in BIT_GENERATORS.values()

    def reduce(self, obj: Any, w: GraphWriter, path: str) -> dict[str, Any]:
        state = obj.state
        w.keep(state)
        return {"state": w.value(state, path + ".state")}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Any:
        state = r.value(node.get("state"))
        bg = _bit_generator_class(state, path)()
        _set_state(bg, "state", state, path, "numpy.random.BitGenerator")
        return bg

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.random.BitGenerator"


class GeneratorReducer(Reducer):
    kind = "generator"
    types = (np.random.Generator,)

    def reduce(self, obj: np.random.Generator, w: GraphWriter, path: str) -> dict[str, Any]:
        return {"bit_generator": w.value(obj.bit_generator, path + ".bit_generator")}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.random.Generator:
        bg = r.value(node.get("bit_generator"))
        if type(bg) not in BIT_GENERATORS.values():
            raise FormatError(f"generator at {display_path(path)} needs a bit generator")
        return np.random.Generator(bg)

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.random.Generator"


class RandomStateReducer(Reducer):
    kind = "random_state"
    types = (np.random.RandomState,)

    def reduce(self, obj: np.random.RandomState, w: GraphWriter, path: str) -> dict[str, Any]:
        state = obj.get_state(legacy=False)
        w.keep(state)
        return {"state": w.value(state, path + ".state")}

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> np.random.RandomState:
        state = r.value(node.get("state"))
        rs = np.random.RandomState(_bit_generator_class(state, path)())
        _set_state(rs, "set_state", state, path, "numpy.random.RandomState")
        return rs

    def describe(self, node: dict[str, Any]) -> str:
        return "numpy.random.RandomState"


REDUCERS: tuple[Reducer, ...] = (
    ArrayReducer(),
    MaskedArrayReducer(),
    GeneratorReducer(),
    RandomStateReducer(),
    DtypeReducer(),
    ScalarReducer(),
    BitGeneratorReducer(),
)
