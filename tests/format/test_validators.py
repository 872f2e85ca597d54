"""State validation: each rule, broken in a real artifact, stops loading with its own message.

Every case dumps a real fitted model (or a real scipy matrix), edits exactly one field of the file
(an array element inside its member, or one value of graph.json) with `_validators_skv.Skv`, which
rewrites the SHA-256 digests so the integrity checks pass, and asserts that ``skvault.loads``
raises `InvalidStateError` naming the broken rule and the object's path.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from _crafting import own_members_from
from _validators_oracle import predictor_valid, tree_valid
from _validators_skv import Skv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.neighbors import KernelDensity, KNeighborsClassifier
from sklearn.preprocessing import SplineTransformer
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.errors import FormatError, IntegrityError, InvalidStateError

TREE = "sklearn.tree._tree.Tree"
PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
BIN_MAPPER = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"
HGB = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"
BALL = "sklearn.neighbors._ball_tree.BallTree"
KD = "sklearn.neighbors._kd_tree.KDTree"
KNN = "sklearn.neighbors._classification.KNeighborsClassifier"
# categorical HistGradientBoosting models carry a preprocessing step built on these
CAT_TRUST = ["functools.partial", "sklearn.utils.validation.check_array"]


def _data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(200, 5, n_informative=3, n_classes=3, random_state=0)


def _categorical() -> tuple[np.ndarray, np.ndarray]:
    X, y = _data()
    X = X.copy()
    X[:, 0] = np.floor(np.abs(X[:, 0]) * 2) % 4  # categories 0..3
    return X, y


def _hgb_cat() -> Any:
    X, y = _categorical()
    return HistGradientBoostingClassifier(max_iter=3, categorical_features=[0], random_state=0).fit(
        X, y
    )


def _lil() -> Any:
    m = sp.lil_matrix((5, 4))
    m[0, 1] = 1.0
    m[0, 3] = 2.0
    m[2, 0] = 3.0
    return m


def _sparse() -> sp.csr_matrix:
    return sp.random(5, 4, density=0.5, format="csr", random_state=0)


def _fit(factory: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and deprecation noise of tiny fits
        return factory()


X, Y = _data()
XR, YR = make_regression(200, 5, random_state=0)
FACTORIES: dict[str, Callable[[], Any]] = {
    "tree": lambda: DecisionTreeClassifier(random_state=0).fit(X, Y),
    "forest": lambda: RandomForestClassifier(3, random_state=0).fit(X, Y),
    "gb": lambda: GradientBoostingClassifier(n_estimators=2, random_state=0).fit(X, Y),
    "iforest": lambda: IsolationForest(n_estimators=3, max_features=0.6, random_state=0).fit(X),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, Y),
    "hgb_cat": _hgb_cat,
    "kd": lambda: KNeighborsClassifier(algorithm="kd_tree", leaf_size=5).fit(X, Y),
    "ball_manhattan": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="manhattan", leaf_size=5
    ).fit(X, Y),
    "ball_mahalanobis": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.eye(5)}
    ).fit(X, Y),
    "ball_seuclidean": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="seuclidean", metric_params={"V": np.ones(5)}
    ).fit(X, Y),
    "ball_minkowski": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="minkowski", p=3, metric_params={"w": np.ones(5)}
    ).fit(X, Y),
    "brute": lambda: KNeighborsClassifier(algorithm="brute").fit(X, Y),
    "kde": lambda: KernelDensity().fit(X),
    "csr": _sparse,
    "csc": lambda: _sparse().tocsc(),
    "coo": lambda: _sparse().tocoo(),
    "bsr": lambda: sp.bsr_matrix(np.arange(16.0).reshape(4, 4), blocksize=(2, 2)),
    "dia": lambda: sp.dia_matrix((np.ones((2, 4)), [0, 1]), shape=(4, 4)),
    "lil": _lil,
    "svc": lambda: SVC(probability=True, random_state=0).fit(X, Y),
    "svc_precomputed": lambda: SVC(kernel="precomputed").fit(X @ X.T, Y),
    "svr": lambda: SVR().fit(XR, YR),
    "logistic": lambda: LogisticRegression().fit(X, Y),
    "linear": lambda: LinearRegression().fit(XR, YR),
    "sgd": lambda: SGDClassifier(average=True, random_state=0).fit(X, Y == 0),
    "kmeans": lambda: KMeans(3, n_init=1, random_state=0).fit(X),
    "spline": lambda: SplineTransformer().fit(X),
}


@functools.cache
def artifact(model: str) -> bytes:
    """The bytes of ``skvault.dumps`` of the named model, fitted once per session."""
    return skvault.dumps(_fit(FACTORIES[model]))


def trusted(model: str) -> list[str]:
    return CAT_TRUST if model == "hgb_cat" else []


# -- helpers that find the field to break --------------------------------------------------------


def tree_state(s: Skv, k: int = 0) -> int:
    return s.state(s.find(TREE)[k])


def tree_nodes(s: Skv, k: int = 0) -> np.ndarray:
    return s.array(s.key(tree_state(s, k), "nodes"))


def predictor_nodes(s: Skv, k: int = 0) -> np.ndarray:
    return s.array(s.attr(s.find(PREDICTOR)[k], "nodes"))


def binary_tree_state(s: Skv) -> int:
    node = (s.find(BALL) or s.find(KD))[0]
    return s.state(node)


def tree_array(s: Skv, i: int) -> np.ndarray:
    return s.array(s.item(binary_tree_state(s), i))


def metric_state(s: Skv) -> int:
    node = next(i for i, n in enumerate(s.nodes) if "_dist_metrics." in n.get("type", ""))
    return s.state(node)


def root(s: Skv) -> int:
    return s.ref(s.graph["root"])


def set_scalar(s: Skv, node: int, name: str, value: Any) -> None:
    """Set attribute ``name`` of object ``node``, which may be stored inline or as a scalar."""
    raw = s.attr(node, name)
    if isinstance(raw, dict):
        s.nodes[s.ref(raw)]["value"] = value
    else:
        s.set_attr(node, name, value)


def reshape(s: Skv, ref: Any, shape: list[int]) -> None:
    """Change the shape an ndarray node declares (to a smaller one that its bytes still hold)."""
    s.nodes[s.ref(ref) if isinstance(ref, dict) else ref]["shape"] = shape


def drop_attr(s: Skv, node: int, name: str) -> None:
    n = s.nodes[node]
    i = n["names"].index(name)
    del n["names"][i]
    del n["values"][i]


# -- the rules -----------------------------------------------------------------------------------


def _tree_left_huge(s: Skv) -> None:
    tree_nodes(s)["left_child"][0] = 10**9


def _tree_right_negative(s: Skv) -> None:
    tree_nodes(s)["right_child"][0] = -5


def _tree_leaf_with_child(s: Skv) -> None:
    nodes = tree_nodes(s)
    nodes["right_child"][int(np.flatnonzero(nodes["left_child"] == -1)[0])] = 1


def _tree_two_parents(s: Skv) -> None:
    nodes = tree_nodes(s)
    nodes["right_child"][0] = nodes["left_child"][0]


def _tree_cycle(s: Skv) -> None:
    # node 1 takes its own left child's place under the root and becomes its own child: every
    # node still has one parent, but node 1 and its right subtree hang off a loop
    nodes = tree_nodes(s)
    child = nodes["left_child"][0]
    grandchild = nodes["left_child"][child]
    assert grandchild != -1
    nodes["left_child"][0] = grandchild
    nodes["left_child"][child] = child


def _tree_orphans(s: Skv) -> None:
    nodes = tree_nodes(s)
    nodes["left_child"][0] = -1
    nodes["right_child"][0] = -1


def _tree_feature(value: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        tree_nodes(s)["feature"][0] = value

    return edit


def _tree_threshold_nan(s: Skv) -> None:
    tree_nodes(s)["threshold"][0] = np.nan


def _tree_missing_flag(s: Skv) -> None:
    tree_nodes(s)["missing_go_to_left"][3] = 2


def _tree_max_depth(delta: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        st = tree_state(s)
        s.set_key(st, "max_depth", s.key(st, "max_depth") + delta)

    return edit


def _tree_node_count(s: Skv) -> None:
    st = tree_state(s)
    s.set_key(st, "node_count", s.key(st, "node_count") + 1)


def _tree_n_classes(value: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.array(s.item(s.find(TREE)[0], 1))[0] = value

    return edit


def _tree_n_outputs(s: Skv) -> None:
    s.set_item(s.find(TREE)[0], 2, 2)


def _tree_n_features(s: Skv) -> None:
    s.set_item(s.find(TREE)[0], 0, 0)


def _tree_dtype(s: Skv) -> None:
    dtype_node = s.nodes[s.ref(s.key(tree_state(s), "nodes"))]["dtype"]
    s.nodes[s.ref(dtype_node)]["descr"][4][0] = "impurity_renamed"


def _tree_values_fortran(s: Skv) -> None:
    s.nodes[s.ref(s.key(tree_state(s), "values"))]["fortran_order"] = True


def _estimator_attr(type_name: str, name: str, value: Any) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        set_scalar(s, s.first(type_name), name, value)

    return edit


def _estimator_drop(type_name: str, name: str) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        drop_attr(s, s.first(type_name), name)

    return edit


DT = "sklearn.tree._classes.DecisionTreeClassifier"
RF = "sklearn.ensemble._forest.RandomForestClassifier"
GB = "sklearn.ensemble._gb.GradientBoostingClassifier"
IF = "sklearn.ensemble._iforest.IsolationForest"


def _iforest_features(s: Skv) -> None:
    features = s.attr(s.first(IF), "estimators_features_")
    s.array(s.item(s.ref(features), 0))[0] = 99


def _predictor_field(field: str, value: Any, which: str = "split") -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        nodes = predictor_nodes(s)
        if which == "split":
            i = int(np.flatnonzero(nodes["is_leaf"] == 0)[0])
        else:
            i = int(np.flatnonzero(nodes["is_leaf"] == 1)[0])
        nodes[field][i] = value

    return edit


def _predictor_two_parents(s: Skv) -> None:
    nodes = predictor_nodes(s)
    nodes["right"][0] = nodes["left"][0]


def _predictor_categorical(field: str, value: Any) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        for k in range(len(s.find(PREDICTOR))):
            nodes = predictor_nodes(s, k)
            cat = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 1))
            if cat.size:
                nodes[field][cat[0]] = value
                return
        raise AssertionError("no categorical split")

    return edit


def _predictor_numeric_as_categorical(s: Skv) -> None:
    for k in range(len(s.find(PREDICTOR))):
        nodes = predictor_nodes(s, k)
        numeric = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["feature_idx"] != 0))
        bitsets = s.nodes[s.ref(s.attr(s.find(PREDICTOR)[k], "raw_left_cat_bitsets"))]["shape"]
        if numeric.size and bitsets[0] > 0:
            nodes["is_categorical"][numeric[0]] = 1
            nodes["bitset_idx"][numeric[0]] = 0
            return
    raise AssertionError("no numeric split next to a bitset")


def _predictor_bitsets_shape(s: Skv) -> None:
    for node in s.find(PREDICTOR):
        raw = s.attr(node, "raw_left_cat_bitsets")
        if s.nodes[s.ref(raw)]["shape"][0] > 0:
            reshape(s, raw, [0, 8])
            return
    raise AssertionError("no predictor with a categorical split")


def _bin_mapper_is_categorical(s: Skv) -> None:
    reshape(s, s.attr(s.first(BIN_MAPPER), "is_categorical_"), [4])


def _bin_mapper_category(s: Skv) -> None:
    thresholds = s.attr(s.first(BIN_MAPPER), "bin_thresholds_")
    s.array(s.item(s.ref(thresholds), 0))[0] = 300.0


def _hgb_baseline(s: Skv) -> None:
    reshape(s, s.attr(s.first(HGB), "_baseline_prediction"), [1, 2])


def _kd_idx(i: int, value: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        tree_array(s, 1)[i] = value

    return edit


def _kd_duplicate(s: Skv) -> None:
    idx = tree_array(s, 1)
    idx[0] = idx[1]


def _kd_leaf(field: str, value: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        data = tree_array(s, 2)
        i = int(np.flatnonzero(data["is_leaf"] == 1)[0])
        data[field][i] = value

    return edit


def _kd_last_level_split(s: Skv) -> None:
    data = tree_array(s, 2)
    data["is_leaf"][data.shape[0] - 1] = 0


def _kd_children(s: Skv) -> None:
    data = tree_array(s, 2)
    data["idx_end"][1] -= 1  # the left child of the root gives up its last point


def _kd_item(i: int, value: Any) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.set_item(binary_tree_state(s), i, value)

    return edit


def _kd_bounds_shape(s: Skv) -> None:
    node = s.ref(s.item(binary_tree_state(s), 3))
    shape = s.nodes[node]["shape"]
    reshape(s, node, [1, *shape[1:]])


def _kd_data_fortran(s: Skv) -> None:
    s.nodes[s.ref(s.item(binary_tree_state(s), 0))]["fortran_order"] = True


def _metric_shape(item: int, shape: list[int]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        reshape(s, s.item(metric_state(s), item), shape)

    return edit


def _metric_p(value: float) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.set_item(metric_state(s), 0, value)

    return edit


def _metric_weight(s: Skv) -> None:
    s.array(s.item(metric_state(s), 1))[0] = -1.0


def _knn_y(s: Skv) -> None:
    s.array(s.attr(s.first(KNN), "_y"))[0] = 7


def _csr(field: str, i: int, value: int) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.array(s.attr(root(s), field))[i] = value

    return edit


def _csr_decreasing(s: Skv) -> None:
    indptr = s.array(s.attr(root(s), "indptr"))
    indptr[2] = indptr[3] + 1


def _csr_unsorted(s: Skv) -> None:
    indptr = s.array(s.attr(root(s), "indptr"))
    indices = s.array(s.attr(root(s), "indices"))
    row = int(np.flatnonzero(np.diff(indptr) >= 2)[0])
    a = indptr[row]
    indices[a], indices[a + 1] = indices[a + 1], indices[a]


def _root_shape(shape: list[int]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.nodes[s.ref(s.attr(root(s), "_shape"))]["items"] = shape

    return edit


def _root_array_shape(field: str, shape: list[int]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        reshape(s, s.attr(root(s), field), shape)

    return edit


def _root_array_dtype(field: str, dtype: str) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.nodes[s.ref(s.attr(root(s), field))]["dtype"] = dtype

    return edit


def _coo_coord(s: Skv) -> None:
    coords = s.ref(s.attr(root(s), "coords"))
    s.array(s.item(coords, 0))[0] = 99


def _coo_canonical(s: Skv) -> None:
    s.set_attr(root(s), "has_canonical_format", True)
    coords = s.ref(s.attr(root(s), "coords"))
    rows = s.array(s.item(coords, 0))
    rows[0], rows[-1] = rows[-1], rows[0]


def _dia_offsets(value: int, i: int = 0) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.array(s.attr(root(s), "offsets"))[i] = value

    return edit


def _lil_rows(row: int, items: list[Any]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        rows = s.nodes[s.ref(s.attr(root(s), "rows"))]
        s.nodes[s.ref(rows["items"][row])]["items"] = items

    return edit


SVC_T = "sklearn.svm._classes.SVC"


def _svc_array(field: str, value: Any, i: int = 0) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.array(s.attr(s.find(SVC_T)[0], field)).reshape(-1)[i] = value

    return edit


def _svc_shape(field: str, shape: list[int]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        reshape(s, s.attr(s.find(SVC_T)[0], field), shape)

    return edit


LOGISTIC = "sklearn.linear_model._logistic.LogisticRegression"
SGD = "sklearn.linear_model._stochastic_gradient.SGDClassifier"


def _attr_shape(type_name: str, field: str, shape: list[int]) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        reshape(s, s.attr(s.first(type_name), field), shape)

    return edit


BSPLINE = "scipy.interpolate._bsplines.BSpline"


def _bspline_knot(i: int, value: float) -> Callable[[Skv], None]:
    def edit(s: Skv) -> None:
        s.array(s.attr(s.first(BSPLINE), "_t"))[i] = value

    return edit


CSR = "scipy.sparse._csr.csr_matrix"
KMEANS = "sklearn.cluster._kmeans.KMeans"
CASES: list[tuple[str, str, str, Callable[[Skv], None], str]] = [
    # (case id, model, type refused, edit, rule pattern)
    ("tree-left-child-huge", "tree", TREE, _tree_left_huge,
     r"nodes\[0\]\.left_child = 1000000000 is outside \[1, \d+\)"),
    ("tree-right-child-negative", "tree", TREE, _tree_right_negative,
     r"nodes\[0\]\.right_child = -5 is outside \[1, \d+\)"),
    ("tree-leaf-with-child", "tree", TREE, _tree_leaf_with_child,
     r"has left_child = -1 and right_child = 1: a leaf has both children -1"),
    ("tree-two-parents", "tree", TREE, _tree_two_parents,
     r"node \d+ is the child of more than one node"),
    ("tree-cycle", "tree", TREE, _tree_cycle,
     r"nodes\[\d+\] has children \d+ and \d+: a child must come after its parent"),
    ("tree-unreachable", "tree", TREE, _tree_orphans,
     r"node \d+ is not reachable from its root: no node has it as a child"),
    ("tree-feature-too-large", "tree", TREE, _tree_feature(5),
     r"nodes\[0\]\.feature = 5 is outside \[0, 5\)"),
    ("tree-feature-negative", "tree", TREE, _tree_feature(-2),
     r"nodes\[0\]\.feature = -2 is outside \[0, 5\)"),
    ("tree-threshold-nan", "tree", TREE, _tree_threshold_nan, r"nodes\[0\]\.threshold is NaN"),
    ("tree-missing-flag", "tree", TREE, _tree_missing_flag,
     r"nodes\[3\]\.missing_go_to_left = 2 is outside \[0, 2\)"),
    ("tree-max-depth-low", "tree", TREE, _tree_max_depth(-1),
     r"max_depth = \d+ but the deepest node is at depth \d+"),
    ("tree-max-depth-high", "tree", TREE, _tree_max_depth(+1),
     r"max_depth = \d+ but the deepest node is at depth \d+"),
    ("tree-node-count", "tree", TREE, _tree_node_count,
     r"nodes holds \d+ records but node_count = \d+"),
    ("tree-n-classes-values", "tree", TREE, _tree_n_classes(5),
     r"values has shape \(\d+, 1, 3\), expected \(\d+, 1, 5\)"),
    ("tree-n-classes-zero", "tree", TREE, _tree_n_classes(0),
     r"n_classes\[0\] = 0 is outside \[1, inf\)"),
    ("tree-n-outputs", "tree", TREE, _tree_n_outputs,
     r"n_classes has shape \(1,\), expected \(2,\)"),
    ("tree-n-features", "tree", TREE, _tree_n_features, r"n_features = 0 is outside \[1, inf\)"),
    ("tree-node-dtype", "tree", TREE, _tree_dtype, r"nodes has dtype .*impurity_renamed.*expected"),
    ("tree-values-layout", "tree", TREE, _tree_values_fortran, r"values is not C-contiguous"),
    # estimators that hand X to their trees
    ("tree-estimator-width", "tree", DT, _estimator_attr(DT, "n_features_in_", 4),
     r"tree_\.n_features = 5 but n_features_in_ = 4"),
    ("tree-estimator-no-width", "tree", DT, _estimator_drop(DT, "n_features_in_"),
     r"n_features_in_ is missing"),
    ("tree-estimator-outputs", "tree", DT, _estimator_attr(DT, "n_outputs_", 2),
     r"tree_\.n_outputs = 1 but n_outputs_ = 2"),
    ("tree-estimator-classes", "tree", DT, _estimator_attr(DT, "n_classes_", 4),
     r"classes_ holds 3 classes but n_classes_ says 4"),
    ("forest-width", "forest", RF, _estimator_attr(RF, "n_features_in_", 4),
     r"estimators_\[0\]\.tree_\.n_features = 5 but n_features_in_ = 4"),
    ("gb-trees-per-iteration", "gb", GB, _estimator_attr(GB, "n_trees_per_iteration_", 1),
     r"estimators_ has 3 columns but n_trees_per_iteration_ = 1"),
    ("iforest-features", "iforest", IF, _iforest_features,
     r"estimators_features_\[0\]\[0\] = 99 is outside \[0, 5\)"),
    # HistGradientBoosting predictors, bin mapper, owner
    ("predictor-left-huge", "hgb", PREDICTOR, _predictor_field("left", 10**9),
     r"nodes\[0\]\.left = 1000000000 is outside \[1, \d+\)"),
    ("predictor-right-root", "hgb", PREDICTOR, _predictor_field("right", 0),
     r"nodes\[0\]\.right = 0 is outside \[1, \d+\)"),
    ("predictor-two-parents", "hgb", PREDICTOR, _predictor_two_parents,
     r"node \d+ is the child of more than one node"),
    ("predictor-leaf-flag", "hgb", PREDICTOR, _predictor_field("is_leaf", 2, "leaf"),
     r"nodes\[\d+\]\.is_leaf = 2 is not 0 or 1"),
    ("predictor-missing-flag", "hgb", PREDICTOR, _predictor_field("missing_go_to_left", 3),
     r"nodes\[0\]\.missing_go_to_left = 3 is not 0 or 1"),
    ("predictor-categorical-flag", "hgb", PREDICTOR, _predictor_field("is_categorical", 9),
     r"nodes\[0\]\.is_categorical = 9 is not 0 or 1"),
    ("predictor-feature-negative", "hgb", PREDICTOR, _predictor_field("feature_idx", -1),
     r"nodes\[0\]\.feature_idx is negative"),
    ("predictor-threshold-nan", "hgb", PREDICTOR, _predictor_field("num_threshold", np.nan),
     r"nodes\[0\]\.num_threshold is NaN"),
    ("predictor-bitset-index", "hgb_cat", PREDICTOR, _predictor_categorical("bitset_idx", 7),
     r"nodes\[\d+\]\.bitset_idx is outside the rows of the categorical bitsets"),
    ("predictor-bitset-shapes", "hgb_cat", PREDICTOR, _predictor_bitsets_shape,
     r"binned_left_cat_bitsets has shape \(\d+, 8\) but raw_left_cat_bitsets has shape \(0, 8\)"),
    ("hgb-feature-too-large", "hgb", HGB, _predictor_field("feature_idx", 5),
     r"_predictors\[0\]\[0\]\.nodes\[0\] splits on feature_idx = 5, outside \[0, 5\)"),
    ("hgb-categorical-on-numeric", "hgb_cat", HGB, _predictor_numeric_as_categorical,
     r"is a categorical split on feature \d+, which _bin_mapper\.is_categorical_ marks numeric"),
    ("hgb-baseline", "hgb", HGB, _hgb_baseline,
     r"_baseline_prediction has shape \(1, 2\), expected \(1, 3\)"),
    ("bin-mapper-width", "hgb", BIN_MAPPER, _bin_mapper_is_categorical,
     r"is_categorical_ has shape \(4,\), expected \(5,\)"),
    ("bin-mapper-missing-bin", "hgb", BIN_MAPPER,
     _estimator_attr(BIN_MAPPER, "missing_values_bin_idx_", 300),
     r"missing_values_bin_idx_ = 300 is outside \[0, 256\)"),
    ("bin-mapper-category", "hgb_cat", BIN_MAPPER, _bin_mapper_category,
     r"bin_thresholds_\[0\] holds category 300\.0, not an integer in \[0, 255\]"),
    # KDTree / BallTree
    ("kd-idx-outside", "kd", KD, _kd_idx(0, 200), r"idx_array\[0\] = 200 is outside \[0, 200\)"),
    ("kd-idx-duplicate", "kd", KD, _kd_duplicate,
     r"idx_array is not a permutation of range\(200\): \d+ is missing"),
    ("kd-leaf-range", "kd", KD, _kd_leaf("idx_end", 201),
     r"node_data\[\d+\] covers \[\d+, 201\), not a range inside \[0, 200\)"),
    ("kd-leaf-flag", "kd", KD, _kd_leaf("is_leaf", 7), r"node_data\[\d+\]\.is_leaf = 7 is outside"),
    ("kd-split-last-level", "kd", KD, _kd_last_level_split,
     r"node_data\[\d+\] is a split node on the last level: its children do not exist"),
    ("kd-children-split", "kd", KD, _kd_children,
     r"the children of node_data\[0\] do not split its range \[0, 200\)"),
    ("kd-n-nodes", "kd", KD, _kd_item(6, 62),
     r"n_nodes = 62 but n_levels = \d+ makes 2\*\*n_levels - 1 nodes"),
    ("kd-leaf-size", "kd", KD, _kd_item(4, 0), r"leaf_size = 0 is outside \[1, inf\)"),
    ("kd-bounds-shape", "kd", KD, _kd_bounds_shape,
     r"node_bounds has shape \(1, \d+, 5\), expected \(2, \d+, 5\)"),
    ("kd-data-layout", "kd", KD, _kd_data_fortran, r"data is not C-contiguous"),
    ("ball-metric-p", "ball_manhattan", "sklearn.metrics._dist_metrics.ManhattanDistance64",
     _metric_p(3.0), r"p = 3\.0 but ManhattanDistance uses p = 1\.0"),
    ("ball-mahalanobis-square", "ball_mahalanobis",
     "sklearn.metrics._dist_metrics.MahalanobisDistance64", _metric_shape(2, [5, 4]),
     r"mat \(VI\) has shape \(5, 4\), expected a non-empty square matrix"),
    ("ball-mahalanobis-width", "ball_mahalanobis", BALL, _metric_shape(2, [4, 4]),
     r"dist_metric has VI of shape \(4, 4\) for 5 features"),
    ("ball-seuclidean-width", "ball_seuclidean", BALL, _metric_shape(1, [4]),
     r"dist_metric has 4 variances V for 5 features"),
    ("ball-minkowski-weight", "ball_minkowski", "sklearn.metrics._dist_metrics.MinkowskiDistance64",
     _metric_weight, r"vec \(the weights w\) holds a negative or non-finite weight"),
    # neighbors estimators
    ("knn-labels", "brute", KNN, _knn_y, r"_y\[0\] = 7 is outside \[0, 3\)"),
    ("knn-n-samples", "brute", KNN, _estimator_attr(KNN, "n_samples_fit_", 201),
     r"_fit_X has 200 rows but n_samples_fit_ = 201"),
    ("knn-width", "kd", KNN, _estimator_attr(KNN, "n_features_in_", 4),
     r"_fit_X has 5 columns but n_features_in_ = 4"),
    ("knn-method", "brute", KNN, _estimator_attr(KNN, "_fit_method", "magic"),
     r"_fit_method = 'magic' is not"),
    ("kde-width", "kde", "sklearn.neighbors._kde.KernelDensity",
     _estimator_attr("sklearn.neighbors._kde.KernelDensity", "n_features_in_", 4),
     r"tree_ holds 5 features but n_features_in_ = 4"),
    # scipy sparse
    ("csr-indptr-start", "csr", CSR, _csr("indptr", 0, 1), r"indptr\[0\] = 1, expected 0"),
    ("csr-indptr-decreasing", "csr", CSR, _csr_decreasing, r"indptr decreases: indptr\[3\]"),
    ("csr-indptr-end", "csr", CSR, _csr("indptr", -1, 11),
     r"indptr\[-1\] = 11 but the index array holds only 10 entries"),
    ("csr-index-outside", "csr", CSR, _csr("indices", 0, 99),
     r"indices\[0\] = 99 is outside \[0, 4\)"),
    ("csr-index-negative", "csr", CSR, _csr("indices", 1, -1), r"indices\[1\] = -1 is outside"),
    ("csr-shape", "csr", CSR, _root_shape([6, 4]),
     r"indptr has 6 entries, expected 7 \(one per row, plus 1\)"),
    ("csr-data-length", "csr", CSR, _root_array_shape("data", [9]),
     r"data holds 9 values but indices holds 10"),
    ("csr-index-dtype", "csr", CSR, _root_array_dtype("indices", "<u4"),
     r"indices has dtype uint32, expected int32 or int64"),
    ("csr-index-dtypes-differ", "csr", CSR, _root_array_dtype("indptr", "<i8"),
     r"indptr has dtype int64 but indices has int32"),
    ("csr-sorted-claim", "csr", CSR, _csr_unsorted,
     r"the state says the indices are sorted.* within rows, but indices\[\d+\] breaks it"),
    ("csc-index-outside", "csc", "scipy.sparse._csc.csc_matrix", _csr("indices", 0, 5),
     r"indices\[0\] = 5 is outside \[0, 5\)"),
    ("coo-coordinate", "coo", "scipy.sparse._coo.coo_matrix", _coo_coord,
     r"coords\[0\]\[0\] = 99 is outside \[0, 5\)"),
    ("coo-lengths", "coo", "scipy.sparse._coo.coo_matrix", _root_array_shape("data", [9]),
     r"coords\[0\] holds 10 indices but data holds 9"),
    ("coo-canonical-claim", "coo", "scipy.sparse._coo.coo_matrix", _coo_canonical,
     r"the state says the entries are canonical, but entry \d+ is out of order"),
    ("bsr-index", "bsr", "scipy.sparse._bsr.bsr_matrix", _csr("indices", 0, 2),
     r"indices\[0\] = 2 is outside \[0, 2\)"),
    ("bsr-blocks", "bsr", "scipy.sparse._bsr.bsr_matrix", _root_shape([5, 4]),
     r"_shape = \(5, 4\) is not a multiple of the block shape \(2, 2\)"),
    ("dia-duplicate", "dia", "scipy.sparse._dia.dia_matrix", _dia_offsets(1),
     r"offsets holds the same diagonal twice"),
    ("dia-lengths", "dia", "scipy.sparse._dia.dia_matrix", _root_array_shape("offsets", [1]),
     r"data holds 2 diagonals but offsets holds 1"),
    ("dia-huge-offset", "dia", "scipy.sparse._dia.dia_matrix", _dia_offsets(-(2**31) + 1),
     r"offsets\[0\] = -2147483647 is outside"),
    ("lil-column", "lil", "scipy.sparse._lil.lil_matrix", _lil_rows(0, [1, 4]),
     r"rows\[0\]\[1\] = 4 is outside \[0, 4\)"),
    ("lil-order", "lil", "scipy.sparse._lil.lil_matrix", _lil_rows(0, [3, 1]),
     r"rows\[0\] is not strictly increasing"),
    ("lil-type", "lil", "scipy.sparse._lil.lil_matrix", _lil_rows(0, [1, 2.5]),
     r"rows must hold lists of int column indices"),
    ("lil-lengths", "lil", "scipy.sparse._lil.lil_matrix", _lil_rows(2, [0, 1]),
     r"rows\[2\] and data\[2\] have different lengths"),
    # libsvm
    ("svc-support-counts", "svc", SVC_T, _svc_array("_n_support", 0),
     r"_n_support adds up to \d+ but support_ holds \d+"),
    ("svc-support-negative", "svc", SVC_T, _svc_array("_n_support", -1),
     r"_n_support\[0\] = -1 is outside \[0, inf\)"),
    ("svc-dual-coef", "svc", SVC_T, _svc_shape("_dual_coef_", [1, 10]),
     r"_dual_coef_ has shape \(1, 10\), expected \(2, \d+\)"),
    ("svc-intercept", "svc", SVC_T, _svc_shape("_intercept_", [2]),
     r"_intercept_ has shape \(2,\), expected \(3,\)"),
    ("svc-probabilities", "svc", SVC_T, _svc_shape("_probA", [0]),
     r"_probA and _probB hold \[0, 3\] values, expected 0 or 3 each"),
    ("svc-width", "svc", SVC_T, _estimator_attr(SVC_T, "n_features_in_", 4),
     r"support_vectors_ has shape \(\d+, 5\), expected \(\d+, 4\)"),
    ("svc-precomputed-support", "svc_precomputed", SVC_T, _svc_array("support_", 10**6),
     r"support_\[0\] = 1000000 is outside \[0, 200\)"),
    ("svr-intercept", "svr", "sklearn.svm._classes.SVR",
     _attr_shape("sklearn.svm._classes.SVR", "_intercept_", [0]),
     r"_intercept_ has shape \(0,\), expected \(1,\)"),
    # linear models
    ("logistic-width", "logistic", LOGISTIC, _estimator_attr(LOGISTIC, "n_features_in_", 4),
     r"coef_ has shape \(3, 5\): 5 columns but n_features_in_ = 4"),
    ("logistic-classes", "logistic", LOGISTIC, _attr_shape(LOGISTIC, "classes_", [4]),
     r"coef_ has shape \(3, 5\) but 4 classes need 4 rows"),
    ("logistic-intercept", "logistic", LOGISTIC, _attr_shape(LOGISTIC, "intercept_", [2]),
     r"intercept_ has shape \(2,\), expected \(3,\) for the rows of coef_"),
    ("linear-width", "linear", "sklearn.linear_model._base.LinearRegression",
     _estimator_attr("sklearn.linear_model._base.LinearRegression", "n_features_in_", 6),
     r"coef_ has shape \(5,\): 5 columns but n_features_in_ = 6"),
    ("sgd-twin", "sgd", SGD, _attr_shape(SGD, "_standard_coef", [4]),
     r"_standard_coef has shape \(4,\) but coef_ has \(1, 5\)"),
    # other compiled readers
    ("kmeans-width", "kmeans", KMEANS, _attr_shape(KMEANS, "cluster_centers_", [3, 4]),
     r"cluster_centers_ has 4 columns but n_features_in_ = 5"),
    ("bspline-degree", "spline", BSPLINE, _estimator_attr(BSPLINE, "k", 10),
     r"_t holds \d+ knots; degree k = 10 needs at least 22"),
    ("bspline-order", "spline", BSPLINE, _bspline_knot(5, -100.0),
     r"_t \(the knots\) is not in non-decreasing order"),
    ("bspline-nan", "spline", BSPLINE, _bspline_knot(0, np.nan),
     r"_t \(the knots\) holds NaN or infinity"),
    ("bspline-coefficients", "spline", BSPLINE, _attr_shape(BSPLINE, "_c", [6, 7]),
     r"_c has 6 coefficients along axis 0; the knots and k need 7"),
    ("bspline-extrapolate", "spline", BSPLINE, _estimator_attr(BSPLINE, "extrapolate", "maybe"),
     r"extrapolate = 'maybe', expected True, False or 'periodic'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "type_name", "edit", "rule"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_broken_rule_is_refused(model: str, type_name: str, edit: Callable, rule: str) -> None:
    original = artifact(model)
    skvault.loads(original, trusted=trusted(model))  # the unedited file loads
    s = Skv(original)
    edit(s)
    with pytest.raises(InvalidStateError, match=rule) as info:
        skvault.loads(s.save(), trusted=trusted(model))
    assert info.value.type_name == type_name
    assert isinstance(info.value, FormatError)


def test_error_names_the_object_path() -> None:
    s = Skv(artifact("forest"))
    tree_nodes(s, 2)["left_child"][0] = 10**9
    with pytest.raises(InvalidStateError) as info:
        skvault.loads(s.save())
    assert info.value.path == "estimators_[2].tree_"
    assert "estimators_[2].tree_" in str(info.value)


@pytest.mark.parametrize("member", ["buffers", "arrays"])
def test_damage_without_matching_digest_is_an_integrity_error(member: str) -> None:
    # digests are checked on a worker thread while the trees are built and validated: the
    # broken tree fails validation first, but the file is damaged, and that is what is said
    if member == "arrays":
        with own_members_from(1):
            original = skvault.dumps(_fit(FACTORIES["forest"]))
    else:
        original = artifact("forest")
    s = Skv(original)
    nodes_ref = s.key(tree_state(s, 1), "nodes")
    assert member in json.dumps(s.nodes[s.ref(nodes_ref)])
    tree_nodes(s, 1)["left_child"][0] = 10**9
    with pytest.raises(IntegrityError, match=rf"{member}/\d+\.(bin|npy): SHA-256"):
        skvault.loads(s.save(fix_digests=False))
    with pytest.raises(InvalidStateError, match="left_child"):
        skvault.loads(s.save())


def test_malformed_state_is_an_invalid_state() -> None:
    # a Tree whose state is a list instead of a dict: the check itself cannot run
    s = Skv(artifact("tree"))
    tree = s.find(TREE)[0]
    s.nodes[tree]["state"] = s.nodes[tree]["args"][1]  # the n_classes array
    with pytest.raises(InvalidStateError, match=r"the state is a numpy\.ndarray, expected a dict"):
        skvault.loads(s.save())


def test_shared_predictor_batch_names_the_broken_predictor() -> None:
    from skvault.format.validators import deferred_validation

    s = Skv(artifact("hgb"))
    predictor_nodes(s, 4)["left"][0] = 10**9
    data = s.save()
    with pytest.raises(InvalidStateError, match=r"nodes\[0\]\.left = 1000000000") as alone:
        skvault.loads(data)
    # the queued checks run when the scope ends, before anything built inside it escapes
    with pytest.raises(InvalidStateError) as batched, deferred_validation():
        skvault.loads(data)
    assert batched.value.path == alone.value.path == "_predictors[1][1]"
    assert batched.value.rule == alone.value.rule


@pytest.mark.parametrize("model", sorted(FACTORIES))
def test_valid_models_load_and_predict_the_same(model: str) -> None:
    original = _fit(FACTORIES[model])
    loaded = skvault.loads(artifact(model), trusted=trusted(model))
    if sp.issparse(original):
        assert (loaded != original).nnz == 0
        return
    X_in = X @ X.T if model == "svc_precomputed" else XR if model in ("svr", "linear") else X
    if model == "hgb_cat":
        X_in = _categorical()[0]
    for method in ("predict", "transform", "score_samples"):
        if hasattr(original, method):
            np.testing.assert_array_equal(
                getattr(loaded, method)(X_in[:20]), getattr(original, method)(X_in[:20])
            )
            return
    raise AssertionError(f"{model} has nothing to compare")


# -- random damage: the validators agree with a plain reference check, and nothing crashes ------

RUNNER = Path(__file__).with_name("_validators_runner.py")
FILES_PER_EXAMPLE = 30


def _run_batch(files: list[bytes], X_in: np.ndarray) -> list[dict[str, Any]]:
    """Load every file in one child process; fail the test if that process dies."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, X=X_in)
        names = []
        for i, data in enumerate(files):
            name = Path(tmp) / f"{i}.skv"
            name.write_bytes(data)
            names.append(str(name))
        result = subprocess.run(
            [sys.executable, str(RUNNER), str(inputs), *names],
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # a negative return code is a signal: the crash the validators exist to prevent
    assert result.returncode == 0, (
        f"the loader died (code {result.returncode}) after {len(lines)} files",
        result.stderr[-2000:],
    )
    assert [line["file"] for line in lines] == names
    return lines


def _check_outcomes(
    files: list[bytes], verdicts: list[bool], expected: list[Any], refusal: str
) -> None:
    """Load ``files`` in a child process: each loads and predicts as expected, or is refused."""
    for line, valid, predictions in zip(_run_batch(files, X), verdicts, expected):
        if valid:
            assert line["outcome"] == "loaded", line
            # NaN leaf values give NaN predictions, equal here as in the original
            assert np.array_equal(line["detail"], predictions, equal_nan=True), line
        else:
            assert line["outcome"] == "refused", line
            assert refusal in line["detail"], line


def _apply(nodes: np.ndarray, edits: list[tuple[str, int, Any]]) -> np.ndarray:
    out = nodes.copy()
    for field, i, value in edits:
        if field == "swap":  # exchange the two children: a different, still valid tree
            a, b = (
                ("left_child", "right_child")
                if "left_child" in out.dtype.names
                else ("left", "right")
            )
            out[a][i], out[b][i] = out[b][i], out[a][i]
        else:
            out[field][i] = value
    return out


def _tree_edits(n: int) -> st.SearchStrategy:
    index = st.integers(0, n - 1)
    link = st.one_of(
        st.sampled_from([-2, -1, 0, 1, n - 1, n, n + 1, 10**9, 2**62, -(2**63)]),
        st.integers(-2, n + 1),
    )
    feature = st.one_of(st.sampled_from([-2, -1, 0, 4, 5, 10**9]), st.integers(-3, 6))
    edit = st.one_of(
        st.tuples(st.sampled_from(["left_child", "right_child"]), index, link),
        st.tuples(st.just("feature"), index, feature),
        st.tuples(st.just("threshold"), index, st.floats(width=64)),
        st.tuples(st.just("missing_go_to_left"), index, st.integers(0, 255)),
        st.tuples(st.just("n_node_samples"), index, st.integers(-(2**63), 2**63 - 1)),
        st.tuples(st.just("swap"), index, st.none()),
    )
    return st.lists(edit, min_size=1, max_size=2)


TREE_MODEL = _fit(FACTORIES["tree"])
TREE_NODES = TREE_MODEL.tree_.__getstate__()["nodes"].copy()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_tree_edits(len(TREE_NODES)), min_size=FILES_PER_EXAMPLE, max_size=FILES_PER_EXAMPLE)
)
def test_random_tree_damage_is_refused_or_loads_faithfully(batch: list) -> None:
    from sklearn.tree._tree import Tree

    files, verdicts, expected = [], [], []
    max_depth = TREE_MODEL.tree_.max_depth
    for edits in batch:
        s = Skv(artifact("tree"))
        nodes = tree_nodes(s)
        nodes[...] = _apply(TREE_NODES, edits)
        files.append(s.save())
        valid = tree_valid(nodes, 5, max_depth)
        verdicts.append(valid)
        if valid:  # safe to hand to scikit-learn: the reference check accepted it
            tree = Tree(*TREE_MODEL.tree_.__reduce__()[1])
            state = TREE_MODEL.tree_.__getstate__()
            tree.__setstate__(dict(state, nodes=nodes.copy()))
            model = copy.deepcopy(TREE_MODEL)
            model.tree_ = tree
            expected.append(model.predict(X).tolist())
        else:
            expected.append(None)
    _check_outcomes(files, verdicts, expected, "invalid state of sklearn.tree._tree.Tree")


HGB_MODEL = _fit(FACTORIES["hgb"])


def _predictor_edits() -> st.SearchStrategy:
    sizes = [len(p.nodes) for it in HGB_MODEL._predictors for p in it]
    which = st.integers(0, len(sizes) - 1)

    def for_predictor(k: int) -> st.SearchStrategy:
        n = sizes[k]
        index = st.integers(0, n - 1)
        link = st.one_of(
            st.sampled_from([0, 1, n - 1, n, n + 1, 10**9, 2**32 - 1]), st.integers(0, n + 1)
        )
        edit = st.one_of(
            st.tuples(st.sampled_from(["left", "right"]), index, link),
            st.tuples(st.just("feature_idx"), index, st.sampled_from([-1, 0, 4, 5, 10**9])),
            st.tuples(
                st.sampled_from(["is_leaf", "missing_go_to_left", "is_categorical"]),
                index,
                st.sampled_from([0, 1, 2, 255]),
            ),
            st.tuples(st.just("bitset_idx"), index, st.sampled_from([0, 1, 10**9])),
            st.tuples(st.sampled_from(["num_threshold", "value"]), index, st.floats(width=64)),
            st.tuples(st.just("bin_threshold"), index, st.integers(0, 255)),
            st.tuples(st.just("swap"), index, st.none()),
        )
        return st.tuples(st.just(k), st.lists(edit, min_size=1, max_size=2))

    return which.flatmap(for_predictor)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_predictor_edits(), min_size=FILES_PER_EXAMPLE, max_size=FILES_PER_EXAMPLE))
def test_random_predictor_damage_is_refused_or_loads_faithfully(batch: list) -> None:
    predictors = [p for it in HGB_MODEL._predictors for p in it]
    files, verdicts, expected = [], [], []
    for k, edits in batch:
        s = Skv(artifact("hgb"))
        nodes = predictor_nodes(s, k)
        nodes[...] = _apply(predictors[k].nodes, edits)
        files.append(s.save())
        valid = predictor_valid(nodes, predictors[k].raw_left_cat_bitsets.shape[0], 5)
        verdicts.append(valid)
        if valid:  # the reference check accepted it: safe to predict with in this process
            model = copy.deepcopy(HGB_MODEL)
            flat = [p for it in model._predictors for p in it]
            flat[k].nodes = nodes.copy()
            expected.append(model.decision_function(X).tolist())
        else:
            expected.append(None)
    _check_outcomes(
        files, verdicts, expected, "invalid state of sklearn.ensemble._hist_gradient_boosting"
    )
