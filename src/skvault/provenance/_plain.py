"""Turn user data (arrays, DataFrames, sparse matrices) into the plain data metadata may hold.

Metadata is read without trusting anything, so it holds builtin containers and scalars and numpy
arrays only. pandas and scipy are recognised by duck typing and never imported here: a user who
passes a DataFrame has pandas already imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "NotPlainError",
    "is_dataframe",
    "is_series",
    "is_sparse",
    "plain_array",
    "plain_scalar",
]

_PLAIN_SCALARS = (str, bytes, int, float, complex, bool, type(None))
_RAW_KINDS = frozenset("biufcSUMm")


class NotPlainError(TypeError):
    """A value that cannot be stored as plain metadata."""


def is_dataframe(x: Any) -> bool:
    """Return whether ``x`` is a pandas DataFrame (without importing pandas)."""
    return type(x).__module__.startswith("pandas") and hasattr(x, "columns") and hasattr(x, "iloc")


def is_series(x: Any) -> bool:
    """Return whether ``x`` is a pandas Series (without importing pandas)."""
    return (
        type(x).__module__.startswith("pandas")
        and hasattr(x, "dtype")
        and hasattr(x, "iloc")
        and not hasattr(x, "columns")
    )


def is_sparse(x: Any) -> bool:
    """Return whether ``x`` is a scipy sparse matrix or array."""
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


def plain_scalar(value: Any) -> Any:
    """Return ``value`` as a builtin scalar: numpy scalars unwrapped, anything else as ``str``."""
    if isinstance(value, np.generic) and value.dtype.kind in "biufcSU":
        value = value.item()
    if isinstance(value, _PLAIN_SCALARS):
        return value
    return str(value)


def _missing(value: Any) -> bool:
    # pandas' NA and NaT, recognised without importing pandas
    return type(value).__name__ in ("NAType", "NaTType") and type(value).__module__.startswith(
        "pandas"
    )


def plain_array(values: Any) -> np.ndarray:
    """Return ``values`` as a numpy array that metadata can store, or raise `NotPlainError`.

    Arrays of numbers, booleans, strings and datetimes are kept as they are; object arrays may
    hold builtin scalars only (pandas' missing values become None).
    """
    if is_series(values):
        # extension dtypes (category, string, nullable integers) go through object
        numpy_dtype = isinstance(values.dtype, np.dtype)
        arr = values.to_numpy() if numpy_dtype else values.to_numpy(dtype=object)
    else:
        arr = np.asarray(values)
    if arr.dtype.kind in _RAW_KINDS and arr.dtype.fields is None:
        return arr
    if arr.dtype.kind != "O":
        raise NotPlainError(f"arrays of dtype {arr.dtype} cannot be stored as metadata")
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(arr.reshape(-1).tolist()):
        if isinstance(item, np.generic) and item.dtype.kind in "biufcSU":
            item = item.item()
        if _missing(item):
            item = None
        if not isinstance(item, _PLAIN_SCALARS):
            raise NotPlainError(
                f"a value of type {type(item).__name__} cannot be stored as metadata"
            )
        flat[i] = item
    return out
