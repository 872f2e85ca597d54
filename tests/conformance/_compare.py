"""Deep, type-exact comparison of an object with its round-tripped copy.

`assert_same` walks two object graphs side by side: builtin containers item by item, arrays and
floats bit for bit (a NaN equals a NaN with the same bit pattern, ``-0.0`` differs from ``0.0``),
estimators and other plain objects through their ``__dict__``, extension types (the Cython
``Tree``, KD/Ball trees, loss objects) through the state their ``__reduce__`` reports, and random
generators by their state. With ``rtol > 0``, floating-point data may instead differ by that
relative tolerance; everything else stays exact.
"""

from __future__ import annotations

import math
import struct
import types
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch

__all__ = ["assert_same", "first_difference"]

_SCALARS = (type(None), bool, int, str, bytes, bytearray)
# dict subclasses whose own ``__setstate__`` discards the pickled ``__dict__`` on purpose (pickle
# and skvault both call it): only their items are state
_ITEMS_ONLY = (Bunch,)
_NAMED = (type, types.FunctionType, types.BuiltinFunctionType, np.ufunc)


def assert_same(a: Any, b: Any, path: str = "", *, rtol: float = 0.0) -> None:
    """Assert that ``b`` equals ``a`` exactly (or within ``rtol`` for floating-point data).

    Parameters
    ----------
    a, b : object
        The original and the copy.
    path : str
        Where ``a`` sits, shown in failure messages.
    rtol : float
        Relative tolerance for floating-point arrays and scalars; 0 means bit-for-bit equality.
    """
    _same(a, b, path or "<root>", rtol, set())


def first_difference(a: Any, b: Any, *, rtol: float = 0.0) -> str | None:
    """Return the failure message of `assert_same`, or None when the objects are the same."""
    try:
        assert_same(a, b, rtol=rtol)
    except AssertionError as exc:
        return str(exc)
    return None


def _fail(path: str, message: str) -> None:
    raise AssertionError(f"at {path}: {message}")


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _same(a: Any, b: Any, path: str, rtol: float, seen: set[int]) -> None:
    if type(a) is not type(b):
        _fail(path, f"type {type(b).__qualname__} != {type(a).__qualname__}")
    if isinstance(a, _NAMED) or (callable(a) and type(a).__name__ == "_ArrayFunctionDispatcher"):
        if a is not b:
            _fail(path, f"{b!r} is not {a!r}")
        return
    if isinstance(a, _SCALARS):
        if a != b:
            _fail(path, f"{b!r} != {a!r}")
        return
    if isinstance(a, float):
        _same_float(a, b, path, rtol)
        return
    if isinstance(a, complex):
        _same_float(a.real, b.real, path + ".real", rtol)
        _same_float(a.imag, b.imag, path + ".imag", rtol)
        return
    if isinstance(a, np.ndarray):
        _same_array(a, b, path, rtol, seen)
        return
    if isinstance(a, np.generic):
        _same_array(np.asarray(a), np.asarray(b), path, rtol, seen)
        return
    if isinstance(a, np.dtype):
        if a != b:
            _fail(path, f"dtype {b} != {a}")
        return
    # containers and objects can be shared or nested: compare each original only once
    if id(a) in seen:
        return
    seen.add(id(a))
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            _fail(path, f"length {len(b)} != {len(a)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]", rtol, seen)
        return
    if isinstance(a, (set, frozenset)):
        if a != b:
            _fail(path, f"{b!r} != {a!r}")
        return
    if isinstance(a, dict) and type(a) is dict:
        _same_mapping(a, b, path, rtol, seen)
        return
    if isinstance(a, np.random.RandomState):
        _same(a.get_state(legacy=False), b.get_state(legacy=False), path + "<state>", 0.0, seen)
        return
    if isinstance(a, np.random.Generator):
        _same(a.bit_generator.state, b.bit_generator.state, path + "<state>", 0.0, seen)
        return
    if isinstance(a, np.random.BitGenerator):
        _same(a.state, b.state, path + "<state>", 0.0, seen)
        return
    if sp.issparse(a):
        _same_sparse(a, b, path, rtol, seen)
        return
    if isinstance(a, _ITEMS_ONLY):
        _same_mapping(dict(a), dict(b), path, rtol, seen)
        return
    if _plain_state(a):
        _same_mapping(vars(a), vars(b), path, rtol, seen, attrs=True)
        if isinstance(a, dict):  # dict subclasses such as Bunch keep items besides attributes
            _same_mapping(dict(a), dict(b), path, rtol, seen)
        return
    _same_reduced(a, b, path, rtol, seen)


def _same_float(a: float, b: float, path: str, rtol: float) -> None:
    if _float_bits(a) == _float_bits(b):
        return
    if rtol and math.isfinite(a) and math.isclose(a, b, rel_tol=rtol, abs_tol=0.0):
        return
    _fail(path, f"{b!r} != {a!r} (bits differ)")


def _same_array(a: np.ndarray, b: np.ndarray, path: str, rtol: float, seen: set[int]) -> None:
    if a.dtype != b.dtype or a.shape != b.shape:
        _fail(path, f"array {b.dtype}{b.shape} != {a.dtype}{a.shape}")
    if a.dtype.hasobject:
        for index, (x, y) in enumerate(zip(a.ravel(order="K"), b.ravel(order="K"))):
            _same(x, y, f"{path}<item {index}>", rtol, seen)
        return
    # the raw bytes in logical (C) order: bit-for-bit, NaN payloads and signed zeros included
    if np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes():
        return
    if rtol and a.dtype.kind in "fc":
        np.testing.assert_allclose(b, a, rtol=rtol, atol=0, equal_nan=True, err_msg=path)
        return
    np.testing.assert_array_equal(b, a, err_msg=path, strict=True)
    _fail(path, "array bits differ (equal values: NaN payloads or signed zeros)")


def _same_mapping(
    a: dict, b: dict, path: str, rtol: float, seen: set[int], *, attrs: bool = False
) -> None:
    if list(a) != list(b):
        missing = [k for k in a if k not in b]
        extra = [k for k in b if k not in a]
        _fail(path, f"keys differ: missing {missing}, extra {extra}, or in another order")
    for key, value in a.items():
        where = f"{path}.{key}" if attrs and isinstance(key, str) else f"{path}[{key!r}]"
        _same(value, b[key], where, rtol, seen)


def _same_sparse(a: Any, b: Any, path: str, rtol: float, seen: set[int]) -> None:
    if a.format != b.format or a.shape != b.shape:
        _fail(path, f"sparse {b.format}{b.shape} != {a.format}{a.shape}")
    if a.format in ("csr", "csc", "bsr"):
        parts = ("data", "indices", "indptr")
    elif a.format == "coo":
        parts = ("data", "row", "col")
    else:
        parts = ()
        _same(a.toarray(), b.toarray(), path + ".toarray()", rtol, seen)
    for part in parts:
        _same(getattr(a, part), getattr(b, part), f"{path}.{part}", rtol, seen)


def _plain_state(obj: object) -> bool:
    cls = type(obj)
    return (
        hasattr(obj, "__dict__")
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
    )


def _same_reduced(a: Any, b: Any, path: str, rtol: float, seen: set[int]) -> None:
    """Compare extension types by what they hand to pickle: constructor arguments and state."""
    ra, rb = a.__reduce_ex__(2), b.__reduce_ex__(2)
    if not isinstance(ra, tuple):
        if ra != rb:
            _fail(path, f"{rb!r} != {ra!r}")
        return
    if len(ra) != len(rb):
        _fail(path, "__reduce__ results differ in length")
    for i, (x, y) in enumerate(zip(ra[1:], rb[1:]), start=1):
        # a Cython type's pickle helper carries a checksum of its layout: same type, same sum
        _same(x, y, f"{path}<reduce {i}>", rtol, seen)
