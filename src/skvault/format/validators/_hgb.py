"""HistGradientBoosting: predictor trees, the bin mapper, and the estimators that own them.

The Cython predictors walk ``nodes[left]``/``nodes[right]`` and read ``X[row, feature_idx]``,
``raw_left_cat_bitsets[bitset_idx]`` and ``known_cat_bitsets[f_idx_map[feature_idx]]`` with no
bounds check. A model holds hundreds of small predictors, so their node arrays are checked as a
batch: concatenated once, then every rule runs as a few whole-array operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import (
    LinkError,
    array,
    get,
    integer,
    mapping,
    same_dtype,
    sequence,
    tree_links,
    type_name,
)
from ._registry import Broken, batch_validator, fail, flush_pending, validator

__all__: list[str] = []

PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
BIN_MAPPER = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"
_FLAGS = ("is_leaf", "missing_go_to_left", "is_categorical")
_BITSETS = ("binned_left_cat_bitsets", "raw_left_cat_bitsets")


_UINT32 = np.dtype(np.uint32)


def _predictor_arrays(state: Any, record: np.dtype) -> tuple[np.ndarray, int]:
    """Check one predictor's arrays; return its nodes and its number of bitset rows."""
    if type(state) is dict:  # the common case, checked without a call per rule
        nodes = state.get("nodes")
        binned = state.get(_BITSETS[0])
        raw = state.get(_BITSETS[1])
        if (
            type(nodes) is np.ndarray
            and nodes.ndim == 1
            and nodes.shape[0] >= 1
            and same_dtype(nodes.dtype, record)
            and type(binned) is np.ndarray
            and type(raw) is np.ndarray
            and binned.dtype == _UINT32
            and raw.dtype == _UINT32
            and binned.ndim == 2
            and binned.shape[1] == 8
            and binned.shape == raw.shape
            and binned.flags.c_contiguous
            and raw.flags.c_contiguous
        ):
            return nodes, binned.shape[0]
    # something is off: the rules one by one, failing on the first broken one
    st = mapping(state)
    nodes = array(get(st, "nodes"), "nodes", ndim=1)
    if nodes.dtype != record:
        fail(f"nodes has dtype {nodes.dtype}, expected {record}")
    if nodes.shape[0] < 1:
        fail("nodes is empty: a tree has at least its root")
    shapes = []
    for key in _BITSETS:
        bits = array(get(st, key), key, ndim=2, dtype=np.uint32, c_contiguous=True)
        if bits.shape[1] != 8:  # a bitset of the 256 values of a uint8 bin
            fail(f"{key} has shape {bits.shape}, expected (n_bitsets, 8)")
        shapes.append(bits.shape)
    if shapes[0] != shapes[1]:
        fail(f"{_BITSETS[0]} has shape {shapes[0]} but {_BITSETS[1]} has shape {shapes[1]}")
    return nodes, shapes[0][0]


@batch_validator(PREDICTOR)
def _predictors(entries: list[tuple[tuple, Any]]) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    parts = []
    n_bitsets = np.empty(len(entries), dtype=np.int64)
    for item, (_, state) in enumerate(entries):
        try:
            nodes, n_bitsets[item] = _predictor_arrays(state, PREDICTOR_RECORD_DTYPE)
        except Broken as exc:
            exc.item = item
            raise
        parts.append(nodes)
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    nodes = parts[0] if len(parts) == 1 else concatenate_records(parts)
    _check_records(nodes, sizes, starts, n_bitsets)


def concatenate_records(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate 1-D record arrays of one dtype through their bytes.

    ``np.concatenate`` on structured arrays promotes their dtypes field by field in Python,
    which costs more than the whole check on hundreds of small predictors.
    """
    try:  # the buffer protocol of contiguous arrays: one copy, no numpy call per part
        raw = b"".join(parts)  # type: ignore[arg-type]  # (ndarray is a buffer)
    except (BufferError, TypeError):  # a strided part
        raw = b"".join([np.ascontiguousarray(p) for p in parts])  # type: ignore[misc]
    return np.frombuffer(raw, dtype=parts[0].dtype)


class _Records:
    """Concatenated predictor records, mapping positions back to (predictor, local index)."""

    def __init__(self, nodes: np.ndarray, sizes: np.ndarray, starts: np.ndarray) -> None:
        self.nodes = nodes
        self.sizes = sizes
        self.starts = starts

    def fail(self, position: int, template: str) -> None:
        """Fail naming node ``position`` by its index in its own predictor."""
        item = int(np.searchsorted(self.starts, position, side="right")) - 1
        fail(template.format(position - int(self.starts[item]), item=item), item)

    def first(self, bad: np.ndarray, positions: np.ndarray | None, template: str) -> None:
        """Fail on the first true entry of ``bad`` (at ``positions``), if there is one."""
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            self.fail(int(positions[j]) if positions is not None else j, template)


def _check_records(
    nodes: np.ndarray, sizes: np.ndarray, starts: np.ndarray, n_bitsets: np.ndarray
) -> None:
    rec = _Records(nodes, sizes, starts)
    flags = [nodes[name] for name in _FLAGS]
    for name, values in zip(_FLAGS, flags):
        if values.max() > 1:
            pos = int(np.flatnonzero(values > 1)[0])
            rec.fail(pos, f"nodes[{{}}].{name} = {values[pos]} is not 0 or 1")
    leaf = flags[0].view(bool)
    split = np.flatnonzero(~leaf)
    single = sizes.shape[0] == 1
    if single:
        owner_of = None
        offset: Any = 0
        bound: Any = int(sizes[0])
    else:
        owner_of = np.repeat(np.arange(sizes.shape[0]), sizes)
        owner = owner_of[split]
        offset = starts[owner]
        bound = sizes[owner]
    kids = []
    for field in ("left", "right"):
        local = nodes[field][split].astype(np.intp)
        bad = (local < 1) | (local >= bound)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            pos = int(split[j])
            limit = bound if single else int(bound[j])
            rec.fail(pos, f"nodes[{{}}].{field} = {local[j]} is outside [1, {limit})")
        kids.append(local + offset)
    try:
        tree_links(nodes.shape[0], split, kids[0], kids[1], starts, need_depth=False)
    except LinkError as exc:
        rec.fail(exc.node, exc.template)
    features = nodes["feature_idx"][split]
    rec.first(features < 0, split, "nodes[{}].feature_idx is negative")
    categorical = flags[2].view(bool)[split]
    cat = split[categorical]
    if cat.size:
        idx = nodes["bitset_idx"][cat].astype(np.int64)
        rows = n_bitsets[0] if owner_of is None else n_bitsets[owner_of[cat]]
        rec.first(
            idx >= rows, cat, "nodes[{}].bitset_idx is outside the rows of the categorical bitsets"
        )
    numeric = split[~categorical]
    rec.first(np.isnan(nodes["num_threshold"][numeric]), numeric, "nodes[{}].num_threshold is NaN")


@validator(BIN_MAPPER)
def _bin_mapper(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "bin_thresholds_" not in st:
        return  # not fitted
    thresholds = sequence(get(st, "bin_thresholds_"), "bin_thresholds_")
    if not isinstance(thresholds, list):
        fail("bin_thresholds_ is not a list")  # the Cython binning code takes a list
    n_features = len(thresholds)
    array(
        get(st, "n_bins_non_missing_"), "n_bins_non_missing_", ndim=1, kinds="iu",
        shape=(n_features,),
    )  # fmt: skip
    is_cat = array(
        get(st, "is_categorical_"), "is_categorical_", ndim=1, dtype=np.uint8,
        shape=(n_features,), c_contiguous=True,
    )  # fmt: skip
    if n_features and is_cat.max() > 1:
        fail(f"is_categorical_[{int(np.flatnonzero(is_cat > 1)[0])}] is not 0 or 1")
    integer(get(st, "missing_values_bin_idx_"), "missing_values_bin_idx_", lo=0, hi=256)
    for f, t in enumerate(thresholds):
        arr = array(t, f"bin_thresholds_[{f}]", ndim=1, dtype=np.float64)
        if is_cat[f] and arr.size:
            # known categories are set as bits of a 256-bit set
            ok = np.isfinite(arr) & (arr >= 0) & (arr <= 255) & (arr == np.floor(arr))
            if not ok.all():
                v = arr[np.flatnonzero(~ok)[0]]
                fail(f"bin_thresholds_[{f}] holds category {v}, not an integer in [0, 255]")


_HGB = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
)


@validator(*_HGB)
def _hgb(args: tuple, state: Any) -> None:
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    # the checks below read the predictors' node records: let their own (queued, batched)
    # checks run first, so a broken record is reported by the rule it breaks
    flush_pending()

    st = mapping(state)
    if "_predictors" not in st:
        return  # not fitted
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    k = integer(get(st, "n_trees_per_iteration_"), "n_trees_per_iteration_", lo=1)
    mapper = get(st, "_bin_mapper")
    if not isinstance(mapper, _BinMapper):
        fail(f"_bin_mapper is a {type_name(mapper)}, expected {BIN_MAPPER}")
    # predict builds f_idx_map (indexed by feature_idx) from is_categorical_
    is_cat = getattr(mapper, "is_categorical_", None)
    if not isinstance(is_cat, np.ndarray) or is_cat.shape != (n_features,):
        fail(f"_bin_mapper.is_categorical_ does not hold {n_features} flags (n_features_in_)")
    baseline = array(get(st, "_baseline_prediction"), "_baseline_prediction", ndim=2)
    if baseline.shape != (1, k):
        fail(f"_baseline_prediction has shape {baseline.shape}, expected (1, {k})")
    predictors = sequence(get(st, "_predictors"), "_predictors")
    parts = []
    for i, iteration in enumerate(predictors):
        sequence(iteration, f"_predictors[{i}]", k)
        for j, p in enumerate(iteration):
            if not isinstance(p, TreePredictor):
                fail(f"_predictors[{i}][{j}] is a {type_name(p)}, expected {PREDICTOR}")
            nodes = p.nodes
            if not isinstance(nodes, np.ndarray) or nodes.dtype.names is None:
                fail(f"_predictors[{i}][{j}].nodes is not a record array")
            parts.append(nodes)
    if not parts:
        return
    if not all(same_dtype(part.dtype, parts[0].dtype) for part in parts):
        fail("the predictors' node arrays have different dtypes")
    nodes = concatenate_records(parts) if len(parts) > 1 else parts[0]
    split = nodes["is_leaf"] == 0
    features = nodes["feature_idx"][split]
    if features.size and (features.min() < 0 or features.max() >= n_features):
        pos = int(
            np.flatnonzero(split)[np.flatnonzero((features < 0) | (features >= n_features))[0]]
        )
        fail(
            f"{_locate(parts, pos, k)} splits on feature_idx = {nodes['feature_idx'][pos]}, "
            f"outside [0, {n_features}) (n_features_in_)"
        )
    cat = split & (nodes["is_categorical"] != 0)
    if cat.any():
        cat_features = nodes["feature_idx"][cat]
        wrong = is_cat[cat_features] == 0
        if wrong.any():
            pos = int(np.flatnonzero(cat)[np.flatnonzero(wrong)[0]])
            fail(
                f"{_locate(parts, pos, k)} is a categorical split on feature "
                f"{nodes['feature_idx'][pos]}, which _bin_mapper.is_categorical_ marks numeric"
            )


def _locate(parts: list[np.ndarray], position: int, k: int) -> str:
    for n, part in enumerate(parts):
        if position < part.shape[0]:
            return f"_predictors[{n // k}][{n % k}].nodes[{position}]"
        position -= part.shape[0]
    return f"node {position}"  # pragma: no cover - position is always inside parts
