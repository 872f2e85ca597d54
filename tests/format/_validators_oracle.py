"""Reference checks written as plain loops, independent of the validators they judge.

Slow and obvious on purpose: they walk the tree from its root the way a reader would, and say
whether a node array satisfies the rules of docs/FORMAT.md. The property tests compare the
validators' verdict with these on randomly damaged trees.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["predictor_valid", "tree_valid"]


def _walk(n: int, children: dict[int, tuple[int, int]]) -> dict[int, int] | None:
    """Depth of every node reached from node 0, or None if a node is reached twice."""
    depth: dict[int, int] = {}
    stack = [(0, 0)]
    while stack:
        node, d = stack.pop()
        if node in depth:
            return None
        depth[node] = d
        if node in children:
            left, right = children[node]
            stack.append((left, d + 1))
            stack.append((right, d + 1))
    return depth


def tree_valid(nodes: np.ndarray, n_features: int, max_depth: int) -> bool:
    """Whether a ``sklearn.tree._tree.Tree`` node array is valid."""
    n = len(nodes)
    children = {}
    for i in range(n):
        left = int(nodes["left_child"][i])
        right = int(nodes["right_child"][i])
        if int(nodes["missing_go_to_left"][i]) not in (0, 1):
            return False
        if left == -1 and right == -1:
            continue
        if not (i < left < n and i < right < n):  # children come after their parent
            return False
        if not 0 <= int(nodes["feature"][i]) < n_features:
            return False
        if math.isnan(float(nodes["threshold"][i])):
            return False
        children[i] = (left, right)
    depth = _walk(n, children)
    return depth is not None and len(depth) == n and max(depth.values()) == max_depth


def predictor_valid(nodes: np.ndarray, n_bitsets: int, n_features: int) -> bool:
    """Whether a HistGradientBoosting predictor's nodes are valid in a model without categories."""
    n = len(nodes)
    children = {}
    for i in range(n):
        for flag in ("is_leaf", "missing_go_to_left", "is_categorical"):
            if int(nodes[flag][i]) not in (0, 1):
                return False
        if nodes["is_leaf"][i]:
            continue
        left, right = int(nodes["left"][i]), int(nodes["right"][i])
        if not (1 <= left < n and 1 <= right < n):
            return False
        if not 0 <= int(nodes["feature_idx"][i]) < n_features:
            return False
        if nodes["is_categorical"][i]:
            # the model has no categorical feature, so any categorical split is refused
            return False
        if math.isnan(float(nodes["num_threshold"][i])):
            return False
        children[i] = (left, right)
    depth = _walk(n, children)
    return depth is not None and len(depth) == n and n_bitsets >= 0
