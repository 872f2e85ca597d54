"""scikit-learn's decision ``Tree`` and the estimators built on it.

``Tree.__setstate__`` copies the node array as it is, and every traversal (``apply``,
``decision_path``, feature importances, partial dependence, gradient boosting's
``predict_stages``) follows ``left_child``/``right_child`` and reads ``X[i, feature]`` without a
bounds check: one bad index reads or writes outside the arrays.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._base import (
    LinkError,
    array,
    first_outside,
    get,
    integer,
    mapping,
    same_dtype,
    sequence,
    tree_links,
    type_name,
)
from ._registry import built_validator, fail, validator

__all__: list[str] = []

TREE = "sklearn.tree._tree.Tree"
_TREE_LEAF = -1
_ROOT = np.zeros(1, dtype=np.intp)


@validator(TREE)
def _tree(args: tuple, state: Any) -> None:
    sequence(args, "the constructor arguments (n_features, n_classes, n_outputs)", 3)
    n_features = integer(args[0], "n_features", lo=1)
    n_outputs = integer(args[2], "n_outputs", lo=1)
    n_classes = array(args[1], "n_classes", ndim=1, kinds="i", shape=(n_outputs,))
    if n_classes.dtype.itemsize not in (4, 8):
        fail(f"n_classes has dtype {n_classes.dtype}, expected 32 or 64-bit integers")
    first_outside(n_classes, 1, None, "n_classes[{}]")
    st = mapping(state)
    node_count = integer(get(st, "node_count"), "node_count", lo=1)
    integer(get(st, "max_depth"), "max_depth", lo=0)  # checked against the nodes once built
    nodes = array(get(st, "nodes"), "nodes", ndim=1, c_contiguous=True)
    if not same_dtype(nodes.dtype, _node_dtype()):
        fail(f"nodes has dtype {nodes.dtype}, expected {_node_dtype()}")
    if nodes.shape[0] != node_count:
        fail(f"nodes holds {nodes.shape[0]} records but node_count = {node_count}")
    expected = (node_count, n_outputs, int(n_classes.max()))
    array(get(st, "values"), "values", dtype=np.float64, shape=expected, c_contiguous=True)

    if not _nodes_fast(nodes, n_features):
        # the fast path is conservative (a NaN threshold on a leaf sends it here too): the
        # explain path checks every rule exactly, and fails on the first broken one
        _nodes_explain(nodes, n_features)


@built_validator(TREE)
def _tree_depth(tree: Any) -> None:
    # scikit-learn's compiled walk, safe and exact on links that passed `_tree`: every child
    # is in range and comes after its parent, which is the order the walk follows
    deepest = int(tree.compute_node_depths().max()) - 1  # it counts the root as depth 1
    if deepest != tree.max_depth:
        fail(f"max_depth = {tree.max_depth} but the deepest node is at depth {deepest}")


@functools.cache
def _node_dtype() -> np.dtype:
    from sklearn.tree._tree import NODE_DTYPE

    return NODE_DTYPE


def _nodes_fast(nodes: np.ndarray, n_features: int) -> bool:
    """Return whether the nodes pass every rule, in as few whole-array passes as possible.

    True means every rule holds. False means `_nodes_explain` must decide, and name the broken
    rule; the tests are ordered so that every array access is in bounds given those before it.
    """
    n = nodes.shape[0]
    columns = _columns(nodes)
    if columns is None:  # a platform whose node layout differs: check field by field
        return False
    links, feature, threshold, missing = columns
    if links.min() < _TREE_LEAF or links.max() >= n:
        return False
    left, right = links
    # with both links in [-1, n): the product is >= 1 exactly when both are -1 (a leaf) or both
    # are >= 1 (a split node whose children are not the root)
    if (left * right).min() < 1:
        return False
    leaf = left == _TREE_LEAF
    n_split = n - np.count_nonzero(leaf)
    if 2 * n_split != n - 1:  # a full binary tree has (n - 1) / 2 split nodes
        return False
    # children come after their parent (a leaf's -1 links never pass this)
    if np.count_nonzero(np.minimum(left, right) > _arange(n)) != n_split:
        return False
    # the n - 1 links of split nodes, all above 0, must reach every node but the root: each
    # exactly once, then (one slot past the end takes the leaves' -1 links)
    reached = np.zeros(n + 1, dtype=bool)
    reached[links.ravel()] = True
    if not reached[1:n].all():
        return False
    # a split node's feature out of range (as unsigned, a negative one is larger than any bound)
    if np.count_nonzero((feature.view(np.uint64) >= n_features) > leaf):
        return False
    # min() is NaN when any threshold is (the explain path then looks at split nodes only)
    return not np.isnan(threshold.min()) and missing.max() <= 1


_ARANGE = np.arange(0)


def _arange(n: int) -> np.ndarray:
    global _ARANGE
    if _ARANGE.shape[0] < n:
        _ARANGE = np.arange(max(n, 2 * _ARANGE.shape[0]))
    return _ARANGE[:n]


_COLUMNS = np.array([0, 1, 2, 3, 7])  # the 8-byte words of left, right, feature, threshold, flag


def _columns(nodes: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Copy the fields the rules read into contiguous arrays, in one pass over the records.

    Returns None unless the node layout is the 64-bit one: five 8-byte words at offsets 0, 8, 16,
    24 and 56 of a 64-byte record, ``missing_go_to_left`` in the first byte of the last word.
    """
    if not _layout_64():
        return None
    words = nodes.view(np.int64).reshape(nodes.shape[0], 8).T[_COLUMNS]
    return words[:2], words[2], words[3].view(np.float64), words[4].view(np.uint8)[::8]


@functools.cache
def _layout_64() -> bool:
    fields: Any = _node_dtype().fields or {}
    return (
        _node_dtype().itemsize == 64
        and np.dtype(np.intp).itemsize == 8
        and fields["left_child"] == (np.dtype(np.intp), 0)
        and fields["right_child"] == (np.dtype(np.intp), 8)
        and fields["feature"] == (np.dtype(np.intp), 16)
        and fields["threshold"] == (np.dtype(np.float64), 24)
        and fields["missing_go_to_left"] == (np.dtype(np.uint8), 56)
    )


def _nodes_explain(nodes: np.ndarray, n_features: int) -> None:
    """Check every rule of a node array one by one, and fail naming the first broken one."""
    n = nodes.shape[0]
    left = nodes["left_child"]
    right = nodes["right_child"]
    leaf = left == _TREE_LEAF
    mismatch = leaf != (right == _TREE_LEAF)
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        fail(
            f"nodes[{i}] has left_child = {left[i]} and right_child = {right[i]}: a leaf has "
            f"both children {_TREE_LEAF}, a split node neither"
        )
    split = np.flatnonzero(~leaf)
    kids_left = left[split]
    kids_right = right[split]
    first_outside(kids_left, 1, n, "nodes[{}].left_child", split)
    first_outside(kids_right, 1, n, "nodes[{}].right_child", split)
    early = np.flatnonzero(np.minimum(kids_left, kids_right) <= split)
    if early.size:
        i = int(split[early[0]])
        fail(
            f"nodes[{i}] has children {left[i]} and {right[i]}: a child must come after its "
            "parent in the node array"
        )
    try:
        tree_links(n, split, kids_left, kids_right, _ROOT, need_depth=False)
    except LinkError as exc:
        fail(str(exc))
    first_outside(nodes["feature"][split], 0, n_features, "nodes[{}].feature", split)
    # +inf is legitimate: the split that sends only the missing values right
    thresholds = nodes["threshold"][split]
    if np.isnan(thresholds).any():
        fail(f"nodes[{int(split[np.flatnonzero(np.isnan(thresholds))[0]])}].threshold is NaN")
    missing = nodes["missing_go_to_left"]
    if missing.max() > 1:
        first_outside(missing, 0, 2, "nodes[{}].missing_go_to_left")


def _fitted_tree(st: Any, what: str = "tree_") -> Any:
    from sklearn.tree._tree import Tree

    tree = get(st, what)
    if not isinstance(tree, Tree):
        fail(f"{what} is a {type_name(tree)}, expected {TREE}")
    return tree


def _classes_match(st: Any, n_classes: np.ndarray, n_outputs: int) -> None:
    classes = get(st, "classes_")
    declared = get(st, "n_classes_")
    per_output: list | tuple
    if n_outputs == 1:
        integer(declared, "n_classes_")
        per_output = [classes]
        declared_list = [int(declared)]
    else:
        per_output = sequence(classes, "classes_", n_outputs)
        declared_arr = array(declared, "n_classes_", ndim=1, kinds="iu", shape=(n_outputs,))
        declared_list = [int(v) for v in declared_arr]
    for k, (cls, count) in enumerate(zip(per_output, declared_list)):
        what = "classes_" if n_outputs == 1 else f"classes_[{k}]"
        arr = array(cls, what, ndim=1)
        if arr.shape[0] != count:
            fail(f"{what} holds {arr.shape[0]} classes but n_classes_ says {count}")
        if count != int(n_classes[k]):
            fail(f"n_classes_ says {count} classes for output {k} but tree_ has {n_classes[k]}")


_TREE_CLASSIFIERS = (
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
)
_TREE_REGRESSORS = (
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeRegressor",
)


@validator(*_TREE_CLASSIFIERS, *_TREE_REGRESSORS)
def _tree_estimator(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "tree_" not in st:
        return  # not fitted
    tree = _fitted_tree(st)
    # predict checks the width of X against n_features_in_ only when it is present, and the
    # tree then reads X[i, feature] for every feature its nodes name
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    if tree.n_features != n_features:
        fail(f"tree_.n_features = {tree.n_features} but n_features_in_ = {n_features}")
    n_outputs = integer(get(st, "n_outputs_"), "n_outputs_", lo=1)
    if tree.n_outputs != n_outputs:
        fail(f"tree_.n_outputs = {tree.n_outputs} but n_outputs_ = {n_outputs}")
    if "classes_" in st:
        _classes_match(st, tree.n_classes, n_outputs)


def _estimator_list(st: Any, key: str = "estimators_") -> list | tuple:
    return sequence(get(st, key), key)


def _check_member_trees(
    estimators: Any, n_features: int, n_outputs: int | None, key: str = "estimators_"
) -> None:
    from sklearn.tree._tree import Tree

    for i, est in enumerate(estimators):
        tree = getattr(est, "tree_", None)
        if not isinstance(tree, Tree):
            fail(f"{key}[{i}] is a {type_name(est)} without a fitted tree_")
        if tree.n_features != n_features:
            fail(
                f"{key}[{i}].tree_.n_features = {tree.n_features} but n_features_in_ = {n_features}"
            )
        if n_outputs is not None and tree.n_outputs != n_outputs:
            fail(f"{key}[{i}].tree_.n_outputs = {tree.n_outputs} but n_outputs_ = {n_outputs}")


@validator(
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomTreesEmbedding",
)
def _forest(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "estimators_" not in st:
        return
    # the forest validates X once, then calls every tree with check_input=False
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    n_outputs = integer(get(st, "n_outputs_"), "n_outputs_", lo=1)
    _check_member_trees(_estimator_list(st), n_features, n_outputs)
    if "classes_" in st and "n_classes_" in st:
        classes = get(st, "classes_")
        if n_outputs == 1:
            count = integer(get(st, "n_classes_"), "n_classes_")
            if array(classes, "classes_", ndim=1).shape[0] != count:
                fail(f"classes_ holds {len(classes)} classes but n_classes_ = {count}")


@validator("sklearn.ensemble._iforest.IsolationForest")
def _isolation_forest(args: tuple, state: Any) -> None:
    from sklearn.tree._tree import Tree

    st = mapping(state)
    if "estimators_" not in st:
        return
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    estimators = _estimator_list(st)
    features = sequence(get(st, "estimators_features_"), "estimators_features_", len(estimators))
    subsample = get(st, "_max_features") != n_features
    # score_samples passes X[:, features] (or X itself) to tree_.apply without checking it
    for i, (est, feats) in enumerate(zip(estimators, features)):
        tree = getattr(est, "tree_", None)
        if not isinstance(tree, Tree):
            fail(f"estimators_[{i}] is a {type_name(est)} without a fitted tree_")
        f = array(feats, f"estimators_features_[{i}]", ndim=1, kinds="iu")
        first_outside(f, 0, n_features, f"estimators_features_[{i}][{{}}]")
        width = f.shape[0] if subsample else n_features
        if tree.n_features != width:
            fail(f"estimators_[{i}].tree_.n_features = {tree.n_features}, not {width}")
    for key in ("_decision_path_lengths", "_average_path_length_per_tree"):
        if key in st:
            values = sequence(get(st, key), key, len(estimators))
            for i, (v, est) in enumerate(zip(values, estimators)):
                arr = array(v, f"{key}[{i}]", ndim=1)
                if arr.shape[0] != est.tree_.node_count:
                    count = est.tree_.node_count
                    fail(f"{key}[{i}] has {arr.shape[0]} entries for a tree of {count} nodes")


@validator(
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
)
def _gradient_boosting(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "estimators_" not in st:
        return
    estimators = array(get(st, "estimators_"), "estimators_", ndim=2, kinds="O")
    k = integer(get(st, "n_trees_per_iteration_"), "n_trees_per_iteration_", lo=1)
    # predict_stages writes out[i, k] for k < estimators_.shape[1] into an array of
    # n_trees_per_iteration_ columns, without a bounds check
    if estimators.shape[1] != k:
        fail(f"estimators_ has {estimators.shape[1]} columns but n_trees_per_iteration_ = {k}")
    if estimators.shape[0] < 1:
        fail("estimators_ is empty")
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    if "n_classes_" in st:
        n_classes = integer(get(st, "n_classes_"), "n_classes_", lo=1)
        expected = 1 if n_classes <= 2 else n_classes
        if k != expected:
            fail(f"n_trees_per_iteration_ = {k} but {n_classes} classes need {expected}")
        init = st.get("init_")
        if k > 1 and init is not None and not isinstance(init, str) and hasattr(init, "classes_"):
            width = len(init.classes_)
            if width != n_classes:
                fail(f"init_ predicts {width} classes but the model has {n_classes}")
    first = estimators[0, 0]
    # X is checked against the first tree only, then given to every tree
    if getattr(first, "n_features_in_", None) != n_features:
        fail(f"estimators_[0, 0].n_features_in_ differs from n_features_in_ = {n_features}")
    _check_member_trees(estimators.ravel(), n_features, 1)
    for i, est in enumerate(estimators.ravel()):
        if est.tree_.max_n_classes != 1:
            fail(f"estimators_ item {i} is not a single-output regression tree")
