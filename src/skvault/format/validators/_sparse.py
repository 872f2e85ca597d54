"""scipy sparse matrices and arrays.

Their arithmetic and conversions run in C++ (``scipy.sparse._sparsetools``), which trusts
``indptr`` to be monotone and every index to lie inside the shape. The reducer rebuilds them from
their ``__dict__`` without calling the constructor, so none of scipy's own checks ran.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._base import array, first_outside, get, integer, mapping, sequence, type_name
from ._registry import fail, validator

__all__: list[str] = []

_SP = "scipy.sparse."
_DATA_KINDS = "biufc"
_INDEX_TYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _shape(st: Any, ndims: tuple[int, ...]) -> tuple[int, ...]:
    shape = sequence(get(st, "_shape"), "_shape")
    if len(shape) not in ndims:
        fail(f"_shape = {tuple(shape)} has {len(shape)} dimensions, expected {ndims}")
    return tuple(integer(d, f"_shape[{i}]", lo=0, hi=2**63) for i, d in enumerate(shape))


def _index(value: Any, what: str) -> np.ndarray:
    arr = array(value, what, ndim=1)
    if arr.dtype not in _INDEX_TYPES:
        fail(f"{what} has dtype {arr.dtype}, expected int32 or int64")
    return arr


def _data(value: Any, what: str = "data", ndim: int = 1) -> np.ndarray:
    return array(value, what, ndim=ndim, kinds=_DATA_KINDS)


def _fits(dtype: np.dtype, shape: tuple[int, ...], what: str) -> None:
    if max(shape, default=0) > np.iinfo(dtype).max:
        fail(f"{what} has dtype {dtype}, too narrow for the shape {shape}")


def _compressed(st: Any, major_axis: int, ndims: tuple[int, ...]) -> None:
    shape = _shape(st, ndims)
    if len(shape) == 1:  # a 1-D csr_array is one row
        major, minor = 1, shape[0]
    else:
        major, minor = shape[major_axis], shape[1 - major_axis]
    indptr = _index(get(st, "indptr"), "indptr")
    indices = _index(get(st, "indices"), "indices")
    if indptr.dtype != indices.dtype:
        fail(f"indptr has dtype {indptr.dtype} but indices has {indices.dtype}")
    _fits(indices.dtype, shape, "indices")
    data = _data(get(st, "data"))
    _pointers(indptr, major, indices.shape[0], "indptr")
    if data.shape[0] != indices.shape[0]:
        fail(f"data holds {data.shape[0]} values but indices holds {indices.shape[0]}")
    first_outside(indices, 0, minor, "indices[{}]")
    nnz = int(indptr[-1])
    sorted_claim = st.get("_has_sorted_indices")
    canonical_claim = st.get("_has_canonical_format")
    if sorted_claim or canonical_claim:
        _sorted_rows(indptr, indices[:nnz], strict=bool(canonical_claim))


def _pointers(indptr: np.ndarray, major: int, length: int, what: str) -> None:
    """Check a compressed index pointer: ``major + 1`` entries, 0 first, monotone, in range."""
    if indptr.shape[0] != major + 1:
        fail(f"{what} has {indptr.shape[0]} entries, expected {major + 1} (one per row, plus 1)")
    if indptr[0] != 0:
        fail(f"{what}[0] = {indptr[0]}, expected 0")
    steps = np.diff(indptr)
    if steps.size and steps.min() < 0:
        i = int(np.flatnonzero(steps < 0)[0])
        fail(f"{what} decreases: {what}[{i + 1}] = {indptr[i + 1]} < {what}[{i}] = {indptr[i]}")
    if indptr[-1] > length:
        fail(f"{what}[-1] = {indptr[-1]} but the index array holds only {length} entries")


def _sorted_rows(indptr: np.ndarray, indices: np.ndarray, *, strict: bool) -> None:
    if indices.shape[0] < 2:
        return
    steps = np.diff(indices)
    bad = steps <= 0 if strict else steps < 0
    # a step into the next row may go down
    starts = indptr[1:-1]
    starts = starts[(starts > 0) & (starts < indices.shape[0])]
    bad[starts - 1] = False
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        what = "sorted without duplicates" if strict else "sorted"
        fail(f"the state says the indices are {what} within rows, but indices[{i}] breaks it")


@validator(f"{_SP}_csr.csr_matrix", f"{_SP}_csr.csr_array")
def _csr(args: tuple, state: Any) -> None:
    _compressed(mapping(state), 0, (1, 2))


@validator(f"{_SP}_csc.csc_matrix", f"{_SP}_csc.csc_array")
def _csc(args: tuple, state: Any) -> None:
    _compressed(mapping(state), 1, (2,))


@validator(f"{_SP}_coo.coo_matrix", f"{_SP}_coo.coo_array")
def _coo(args: tuple, state: Any) -> None:
    st = mapping(state)
    shape = _shape(st, tuple(range(1, 65)))
    coords = sequence(get(st, "coords"), "coords", len(shape))
    data = _data(get(st, "data"))
    dtypes = set()
    for k, (c, size) in enumerate(zip(coords, shape)):
        idx = _index(c, f"coords[{k}]")
        dtypes.add(idx.dtype)
        if idx.shape != data.shape:
            fail(f"coords[{k}] holds {idx.shape[0]} indices but data holds {data.shape[0]}")
        first_outside(idx, 0, size, f"coords[{k}][{{}}]")
    if len(dtypes) > 1:
        fail("the coords arrays have different dtypes")
    for dtype in dtypes:
        _fits(dtype, shape, "coords")
    if st.get("has_canonical_format") and data.shape[0] > 1:
        # canonical: sorted in row-major order with no duplicate position
        before = np.zeros(data.shape[0] - 1, dtype=bool)
        equal = np.ones(data.shape[0] - 1, dtype=bool)
        for c in coords:
            a, b = c[:-1], c[1:]
            before |= equal & (a < b)
            equal &= a == b
        if not before.all():
            i = int(np.flatnonzero(~before)[0]) + 1
            fail(f"the state says the entries are canonical, but entry {i} is out of order")


@validator(f"{_SP}_bsr.bsr_matrix", f"{_SP}_bsr.bsr_array")
def _bsr(args: tuple, state: Any) -> None:
    st = mapping(state)
    shape = _shape(st, (2,))
    data = _data(get(st, "data"), ndim=3)
    r, c = data.shape[1:]
    if r < 1 or c < 1:
        fail(f"data has blocks of shape {(r, c)}, expected at least (1, 1)")
    if shape[0] % r or shape[1] % c:
        fail(f"_shape = {shape} is not a multiple of the block shape {(r, c)}")
    indptr = _index(get(st, "indptr"), "indptr")
    indices = _index(get(st, "indices"), "indices")
    if indptr.dtype != indices.dtype:
        fail(f"indptr has dtype {indptr.dtype} but indices has {indices.dtype}")
    _fits(indices.dtype, shape, "indices")
    if indices.shape[0] != data.shape[0]:
        fail(f"data holds {data.shape[0]} blocks but indices holds {indices.shape[0]}")
    _pointers(indptr, shape[0] // r, indices.shape[0], "indptr")
    first_outside(indices, 0, shape[1] // c, "indices[{}]")


@validator(f"{_SP}_dia.dia_matrix", f"{_SP}_dia.dia_array")
def _dia(args: tuple, state: Any) -> None:
    st = mapping(state)
    shape = _shape(st, (2,))
    data = _data(get(st, "data"), ndim=2)
    offsets = _index(get(st, "offsets"), "offsets")
    # the kernels compute n_row + offset and -offset in the index type: keep both (and the
    # shape) within half its range, clear of overflow; diagonals outside the shape are allowed
    half = 2 ** (8 * offsets.dtype.itemsize - 2)
    if max(shape) >= half:
        fail(f"offsets has dtype {offsets.dtype}, too narrow for the shape {shape}")
    if offsets.shape[0] != data.shape[0]:
        fail(f"data holds {data.shape[0]} diagonals but offsets holds {offsets.shape[0]}")
    first_outside(offsets, -half + 1, half, "offsets[{}]")
    if np.unique(offsets).shape[0] != offsets.shape[0]:
        fail("offsets holds the same diagonal twice")


@validator(f"{_SP}_lil.lil_matrix", f"{_SP}_lil.lil_array")
def _lil(args: tuple, state: Any) -> None:
    st = mapping(state)
    shape = _shape(st, (1, 2))
    n_rows, n_cols = (1, shape[0]) if len(shape) == 1 else shape
    rows = array(get(st, "rows"), "rows", ndim=1, kinds="O", shape=(n_rows,))
    data = array(get(st, "data"), "data", ndim=1, kinds="O", shape=(n_rows,))
    if n_rows and (set(map(type, rows)) != {list} or set(map(type, data)) != {list}):
        fail("rows and data must hold one list per row")
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=n_rows)
    data_lengths = np.fromiter(map(len, data), dtype=np.int64, count=n_rows)
    if not np.array_equal(lengths, data_lengths):
        i = int(np.flatnonzero(lengths != data_lengths)[0])
        fail(f"rows[{i}] and data[{i}] have different lengths")
    flat = list(itertools.chain.from_iterable(rows))
    if not set(map(type, flat)) <= {int}:
        fail("rows must hold lists of int column indices")
    try:
        cols = np.array(flat, dtype=np.int64)
    except OverflowError:
        fail("a column index in rows does not fit in 64 bits")
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    bad = (cols < 0) | (cols >= n_cols)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        r = int(np.searchsorted(starts, pos, side="right")) - 1
        fail(f"rows[{r}][{pos - starts[r]}] = {cols[pos]} is outside [0, {n_cols})")
    # the Cython lookups bisect each row: it must be strictly increasing
    if cols.shape[0] > 1:
        down = np.diff(cols) <= 0
        inner = starts[1:-1]
        down[inner[(inner > 0) & (inner < cols.shape[0])] - 1] = False
        if down.any():
            pos = int(np.flatnonzero(down)[0]) + 1
            r = int(np.searchsorted(starts, pos, side="right")) - 1
            fail(f"rows[{r}] is not strictly increasing")


@validator(f"{_SP}_dok.dok_matrix", f"{_SP}_dok.dok_array")
def _dok(args: tuple, state: Any) -> None:
    # the entries are dict items, which validators do not see; dok reads them in Python and
    # converts through coo_array's constructor, which checks them
    _shape(mapping(state), (1, 2))


def issparse_shape(value: Any, what: str) -> tuple[int, ...]:
    """Return the shape of a sparse matrix or array ``value``, failing if it is not one."""
    import scipy.sparse as sp

    if not sp.issparse(value):
        fail(f"{what} is a {type_name(value)}, expected a scipy sparse matrix")
    return tuple(value.shape)
