"""``KDTree``/``BallTree``, the ``DistanceMetric`` classes, and the neighbors estimators.

A binary tree is stored implicitly: node ``i`` has children ``2i+1`` and ``2i+2`` unless
``node_data[i].is_leaf``, and a leaf's points are ``data[idx_array[idx_start:idx_end]]``. The
Cython queries follow all of it without bounds checks. Distance metrics index their weight
vector or matrix up to the number of features of the data they are given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._base import array, first_outside, get, integer, mapping, number, sequence, type_name
from ._registry import fail, validator

__all__: list[str] = []

_DM = "sklearn.metrics._dist_metrics."
_METRICS = (
    "BrayCurtis",
    "Canberra",
    "Chebyshev",
    "Dice",
    "Euclidean",
    "Hamming",
    "Haversine",
    "Jaccard",
    "Kulsinski",
    "Mahalanobis",
    "Manhattan",
    "Matching",
    "Minkowski",
    "PyFunc",
    "RogersTanimoto",
    "RussellRao",
    "SEuclidean",
    "SokalMichener",
    "SokalSneath",
)
# the p each metric sets; Minkowski takes any p in (0, inf)
_FIXED_P = {"Manhattan": 1.0, "Chebyshev": math.inf}


def _metric_family(cls_name: str) -> tuple[str, str]:
    """Split ``"MahalanobisDistance64"`` into ``("Mahalanobis", "64")``."""
    suffix = cls_name[-2:]
    base = cls_name[:-2]
    return base.removesuffix("Distance").removesuffix("DistanceMetric"), suffix


@validator(f"{_DM}DistanceMetric32", f"{_DM}DistanceMetric64")
def _distance_metric(args: tuple, state: Any) -> None:
    items = sequence(state, "the state (p, vec, mat[, func, kwargs])")
    if len(items) not in (3, 5):
        fail(f"the state has {len(items)} items, expected 3 (p, vec, mat) or 5 for PyFunc")
    p = number(items[0], "p")
    if math.isnan(p) or p <= 0:
        fail(f"p = {p} is not a positive number")
    array(items[1], "vec", ndim=1, dtype=np.float64, c_contiguous=True)
    array(items[2], "mat", ndim=2, dtype=np.float64, c_contiguous=True)
    if len(items) == 5:
        if not callable(items[3]):
            fail("func is not callable")
        if items[4] is not None and not isinstance(items[4], dict):
            fail("kwargs is not a dict")


def _register_metric_rules() -> None:
    # validators receive no type name: one closure per class carries its family
    for family in _METRICS:

        def check(args: tuple, state: Any, family: str = family) -> None:
            _distance_metric(args, state)
            _metric_rules(family, state[0], state[1], state[2])

        validator(f"{_DM}{family}Distance32", f"{_DM}{family}Distance64")(check)


def _metric_rules(family: str, p: float, vec: np.ndarray, mat: np.ndarray) -> None:
    p = float(p)
    if family in _FIXED_P and p != _FIXED_P[family]:
        fail(f"p = {p} but {family}Distance uses p = {_FIXED_P[family]}")
    if family == "Minkowski":
        if not math.isfinite(p):
            fail(f"p = {p}: MinkowskiDistance needs a finite p (use Chebyshev for inf)")
        if vec.size and not (np.isfinite(vec).all() and (vec >= 0).all()):
            fail("vec (the weights w) holds a negative or non-finite weight")
    elif family == "SEuclidean" and vec.shape[0] < 1:
        fail("vec (the variances V) is empty")
    elif family == "Mahalanobis" and (mat.shape[0] != mat.shape[1] or mat.shape[0] < 1):
        fail(f"mat (VI) has shape {mat.shape}, expected a non-empty square matrix")
    elif family not in _FIXED_P and family != "Minkowski" and p != 2.0:
        fail(f"p = {p} but {family}Distance uses p = 2")


def metric_width_rule(metric: Any, n_features: int) -> None:
    """Fail unless ``metric`` can measure points of ``n_features`` coordinates."""
    family, _ = _metric_family(type(metric).__name__)
    _, vec, mat = metric.__getstate__()[:3]
    if family == "SEuclidean" and vec.shape[0] != n_features:
        fail(f"dist_metric has {vec.shape[0]} variances V for {n_features} features")
    if family == "Minkowski" and vec.shape[0] not in (0, n_features):
        fail(f"dist_metric has {vec.shape[0]} weights w for {n_features} features")
    if family == "Mahalanobis" and mat.shape != (n_features, n_features):
        fail(f"dist_metric has VI of shape {mat.shape} for {n_features} features")
    if family == "Haversine" and n_features != 2:
        fail(f"dist_metric is haversine, which needs 2 features, not {n_features}")


_KD = "sklearn.neighbors._kd_tree."
_BALL = "sklearn.neighbors._ball_tree."
_TREES = {
    f"{_KD}KDTree": ("kd", "64"),
    f"{_KD}KDTree64": ("kd", "64"),
    f"{_KD}KDTree32": ("kd", "32"),
    f"{_KD}BinaryTree64": ("kd", "64"),
    f"{_KD}BinaryTree32": ("kd", "32"),
    f"{_BALL}BallTree": ("ball", "64"),
    f"{_BALL}BallTree64": ("ball", "64"),
    f"{_BALL}BallTree32": ("ball", "32"),
    f"{_BALL}BinaryTree64": ("ball", "64"),
    f"{_BALL}BinaryTree32": ("ball", "32"),
}


def _binary_tree(kind: str, bits: str, state: Any) -> None:
    import sklearn.metrics._dist_metrics as dm

    module = _kd_module() if kind == "kd" else _ball_module()
    items = sequence(state, "the state", 13)
    float_type = np.float64 if bits == "64" else np.float32
    data = array(items[0], "data", ndim=2, dtype=float_type, c_contiguous=True)
    n_samples, n_features = data.shape
    if n_samples < 1 or n_features < 1:
        fail(f"data has shape {data.shape}: a tree needs at least one point and one feature")
    idx_array = array(
        items[1], "idx_array", ndim=1, dtype=np.intp, shape=(n_samples,), c_contiguous=True
    )
    first_outside(idx_array, 0, n_samples, "idx_array[{}]")
    seen = np.zeros(n_samples, dtype=bool)
    seen[idx_array] = True
    if not seen.all():
        missing = int(np.flatnonzero(~seen)[0])
        fail(f"idx_array is not a permutation of range({n_samples}): {missing} is missing")
    leaf_size = integer(items[4], "leaf_size", lo=1)
    n_levels = integer(items[5], "n_levels", lo=1, hi=63)
    n_nodes = integer(items[6], "n_nodes", lo=1)
    if n_nodes != 2**n_levels - 1:
        fail(f"n_nodes = {n_nodes} but n_levels = {n_levels} makes 2**n_levels - 1 nodes")
    for pos, name in zip(range(7, 11), ("n_trims", "n_leaves", "n_splits", "n_calls")):
        integer(items[pos], name, lo=-(2**31), hi=2**31)
    node_data = array(
        items[2], "node_data", ndim=1, dtype=module.NodeData, shape=(n_nodes,), c_contiguous=True
    )
    rows = 2 if kind == "kd" else 1
    array(
        items[3], "node_bounds", dtype=float_type, shape=(rows, n_nodes, n_features),
        c_contiguous=True,
    )  # fmt: skip
    _node_ranges(node_data, n_samples)
    metric = items[11]
    base = dm.DistanceMetric64 if bits == "64" else dm.DistanceMetric32
    if not isinstance(metric, base):
        fail(f"dist_metric is a {type_name(metric)}, expected a {base.__name__}")
    valid = module.VALID_METRICS64 if bits == "64" else module.VALID_METRICS32
    if type(metric).__name__ not in valid:
        fail(f"dist_metric {type(metric).__name__} is not valid for this tree")
    metric_width_rule(metric, n_features)
    weights = items[12]
    if weights is not None:
        array(weights, "sample_weight", ndim=1, kinds="fiu", shape=(n_samples,))
    del leaf_size


def _node_ranges(node_data: np.ndarray, n_samples: int) -> None:
    """Check the nodes a query can reach: point ranges, leaves, and children that exist."""
    n_nodes = node_data.shape[0]
    start = node_data["idx_start"]
    end = node_data["idx_end"]
    is_leaf = node_data["is_leaf"]
    # a node is reached when all its ancestors are split nodes; nodes below a leaf are unused
    reached = np.zeros(n_nodes, dtype=bool)
    reached[0] = True
    split = is_leaf == 0
    level_start = 0
    while 2 * level_start + 1 < n_nodes:
        level_end = 2 * level_start + 1
        parents = slice(level_start, level_end)
        open_parents = reached[parents] & split[parents]
        reached[level_end : 2 * level_end + 1 : 2] = open_parents
        reached[level_end + 1 : 2 * level_end + 1 : 2] = open_parents
        level_start = level_end
    nodes = np.flatnonzero(reached)
    flags = is_leaf[nodes]
    if flags.min() < 0 or flags.max() > 1:
        first_outside(flags, 0, 2, "node_data[{}].is_leaf", nodes)
    if start[0] != 0 or end[0] != n_samples:
        fail(f"node_data[0] covers [{start[0]}, {end[0]}), expected all points [0, {n_samples})")
    s, e = start[nodes], end[nodes]
    bad = (s < 0) | (s > e) | (e > n_samples)
    if bad.any():
        i = int(nodes[np.flatnonzero(bad)[0]])
        fail(f"node_data[{i}] covers [{start[i]}, {end[i]}), not a range inside [0, {n_samples})")
    inner = nodes[split[nodes]]
    last = n_nodes // 2  # nodes from here on have no children
    if inner.size and inner.max() >= last:
        i = int(inner[inner >= last][0])
        fail(f"node_data[{i}] is a split node on the last level: its children do not exist")
    lo, hi = 2 * inner + 1, 2 * inner + 2
    joined = (start[lo] == start[inner]) & (end[lo] == start[hi]) & (end[hi] == end[inner])
    if not joined.all():
        i = int(inner[np.flatnonzero(~joined)[0]])
        fail(f"the children of node_data[{i}] do not split its range [{start[i]}, {end[i]})")


def _kd_module() -> Any:
    import sklearn.neighbors._kd_tree as module

    return module


def _ball_module() -> Any:
    import sklearn.neighbors._ball_tree as module

    return module


def _register_trees() -> None:
    for name, (kind, bits) in _TREES.items():

        def check(args: tuple, state: Any, kind: str = kind, bits: str = bits) -> None:
            _binary_tree(kind, bits, state)

        validator(name)(check)


_NB = "sklearn.neighbors."
_NEIGHBORS_CLASSIFIERS = (
    f"{_NB}_classification.KNeighborsClassifier",
    f"{_NB}_classification.RadiusNeighborsClassifier",
)
_NEIGHBORS_OTHERS = (
    f"{_NB}_regression.KNeighborsRegressor",
    f"{_NB}_regression.RadiusNeighborsRegressor",
    f"{_NB}_unsupervised.NearestNeighbors",
    f"{_NB}_graph.KNeighborsTransformer",
    f"{_NB}_graph.RadiusNeighborsTransformer",
    f"{_NB}_lof.LocalOutlierFactor",
)


@validator(*_NEIGHBORS_CLASSIFIERS, *_NEIGHBORS_OTHERS)
def _neighbors(args: tuple, state: Any) -> None:
    import scipy.sparse as sp
    from sklearn.neighbors._ball_tree import BinaryTree32 as Ball32
    from sklearn.neighbors._ball_tree import BinaryTree64 as Ball64
    from sklearn.neighbors._kd_tree import BinaryTree32 as KD32
    from sklearn.neighbors._kd_tree import BinaryTree64 as KD64

    st = mapping(state)
    if "_fit_method" not in st:
        return  # not fitted
    method = get(st, "_fit_method")
    if method not in ("brute", "kd_tree", "ball_tree"):
        fail(f"_fit_method = {method!r} is not 'brute', 'kd_tree' or 'ball_tree'")
    fit_x = get(st, "_fit_X")
    if sp.issparse(fit_x):
        shape = fit_x.shape
    else:
        shape = array(fit_x, "_fit_X", ndim=2, kinds="fiub").shape
    n_fit = integer(get(st, "n_samples_fit_"), "n_samples_fit_", lo=1)
    if shape[0] != n_fit:
        fail(f"_fit_X has {shape[0]} rows but n_samples_fit_ = {n_fit}")
    if st.get("metric") != "precomputed":
        # the brute-force kernels read X and _fit_X with the width of X, which is checked
        # against n_features_in_ only when that attribute is present
        n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
        if shape[1] != n_features:
            fail(f"_fit_X has {shape[1]} columns but n_features_in_ = {n_features}")
    tree = st.get("_tree")
    if method == "brute":
        if tree is not None:
            fail("_fit_method is 'brute' but _tree is set")
    else:
        if not isinstance(tree, (KD64, KD32, Ball64, Ball32)):
            fail(f"_fit_method is {method!r} but _tree is a {type_name(tree)}")
        if tree.data.shape != shape:
            fail(f"_tree holds data of shape {tree.data.shape} but _fit_X has shape {shape}")
    if "_y" in st:
        _labels(st, n_fit)


def _labels(st: Any, n_fit: int) -> None:
    y = array(get(st, "_y"), "_y")
    if y.shape[0] != n_fit:
        fail(f"_y has {y.shape[0]} entries but n_samples_fit_ = {n_fit}")
    if "classes_" not in st:
        return
    classes = get(st, "classes_")
    # the classification kernels add votes at class_scores[i, _y[j]] without a bounds check
    if get(st, "outputs_2d_"):
        array(y, "_y", ndim=2, kinds="iu")
        per_output = sequence(classes, "classes_", y.shape[1])
        for k, cls in enumerate(per_output):
            n_classes = len(array(cls, f"classes_[{k}]", ndim=1))
            first_outside(y[:, k], 0, n_classes, f"_y[{{}}, {k}]")
    else:
        array(y, "_y", ndim=1, kinds="iu")
        n_classes = len(array(classes, "classes_", ndim=1))
        first_outside(y, 0, n_classes, "_y[{}]")


@validator(f"{_NB}_kde.KernelDensity")
def _kernel_density(args: tuple, state: Any) -> None:
    from sklearn.neighbors._ball_tree import BinaryTree32 as Ball32
    from sklearn.neighbors._ball_tree import BinaryTree64 as Ball64
    from sklearn.neighbors._kd_tree import BinaryTree32 as KD32
    from sklearn.neighbors._kd_tree import BinaryTree64 as KD64

    st = mapping(state)
    if "tree_" not in st:
        return
    tree = get(st, "tree_")
    if not isinstance(tree, (KD64, KD32, Ball64, Ball32)):
        fail(f"tree_ is a {type_name(tree)}, expected a KDTree or BallTree")
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    if tree.data.shape[1] != n_features:
        fail(f"tree_ holds {tree.data.shape[1]} features but n_features_in_ = {n_features}")


_register_metric_rules()
_register_trees()
