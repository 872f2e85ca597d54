"""Building blocks shared by the validators: typed look-ups that fail with a precise rule.

Every helper either returns the checked value or raises `Broken` through `fail`. Array checks are
vectorised: the offending position is searched for only once a cheap reduction has shown that
one exists, so a valid state costs a handful of numpy reductions.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._registry import fail

__all__ = [
    "LinkError",
    "array",
    "first_outside",
    "get",
    "integer",
    "mapping",
    "number",
    "same_dtype",
    "sequence",
    "tree_links",
    "type_name",
]

_INT_KINDS = "iu"


def type_name(obj: object) -> str:
    """Return ``module.qualname`` of the type of ``obj``."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def mapping(state: Any, what: str = "the state") -> Mapping[str, Any]:
    """Return ``state`` if it is a dict."""
    if not isinstance(state, dict):
        fail(f"{what} is a {type_name(state)}, expected a dict")
    return state


def get(state: Mapping[str, Any], key: str) -> Any:
    """Return ``state[key]``; a missing key breaks the rule that the key is present."""
    try:
        return state[key]
    except KeyError:
        fail(f"{key} is missing")


def sequence(value: Any, what: str, length: int | None = None) -> list | tuple:
    """Return ``value`` if it is a list or tuple (of ``length`` items when given)."""
    if not isinstance(value, (list, tuple)):
        fail(f"{what} is a {type_name(value)}, expected a list or tuple")
    if length is not None and len(value) != length:
        fail(f"{what} has {len(value)} items, expected {length}")
    return value


def integer(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``[lo, hi)``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        fail(f"{what} = {value!r} is not an integer")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v >= hi):
        fail(f"{what} = {v} is outside {_interval(lo, hi)}")
    return v


def number(value: Any, what: str) -> float:
    """Return ``value`` as a float if it is a real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        fail(f"{what} = {value!r} is not a real number")
    return float(value)


def _interval(lo: Any, hi: Any) -> str:
    left = "(-inf" if lo is None else f"[{lo}"
    right = "inf)" if hi is None else f"{hi})"
    return f"{left}, {right}"


def array(
    value: Any,
    what: str,
    *,
    ndim: int | None = None,
    kinds: str | None = None,
    dtype: np.dtype | type | None = None,
    shape: tuple[int, ...] | None = None,
    c_contiguous: bool = False,
) -> np.ndarray:
    """Return ``value`` if it is a numpy array with the required layout.

    Parameters
    ----------
    value : object
        The candidate.
    what : str
        Its name in the rule text.
    ndim, kinds, dtype, shape : optional
        Number of dimensions, allowed ``dtype.kind`` letters, exact dtype, exact shape.
    c_contiguous : bool, default=False
        Whether compiled code reads it as one C-ordered block.
    """
    if not isinstance(value, np.ndarray) or isinstance(value, np.ma.MaskedArray):
        fail(f"{what} is a {type_name(value)}, expected a numpy array")
    if ndim is not None and value.ndim != ndim:
        fail(f"{what} has {value.ndim} dimensions, expected {ndim}")
    if dtype is not None and value.dtype != dtype:
        fail(f"{what} has dtype {value.dtype}, expected {np.dtype(dtype)}")
    if kinds is not None and value.dtype.kind not in kinds:
        fail(f"{what} has dtype {value.dtype}, expected {_kinds(kinds)}")
    if shape is not None and value.shape != shape:
        fail(f"{what} has shape {value.shape}, expected {shape}")
    if c_contiguous and not value.flags.c_contiguous:
        fail(f"{what} is not C-contiguous")
    return value


# per expected dtype (by identity): the last other dtype object found equal to it
_EQUAL: dict[int, tuple[np.dtype, np.dtype]] = {}


def same_dtype(dtype: np.dtype, expected: np.dtype) -> bool:
    """Return ``dtype == expected``, remembering the last equal dtype object found.

    Comparing structured dtypes costs about a microsecond; the hundreds of trees of one file
    share one dtype object, so each comparison after the first is an identity check.
    """
    if dtype is expected:
        return True
    seen = _EQUAL.get(id(expected))
    if seen is not None and seen[0] is expected and seen[1] is dtype:
        return True
    if dtype != expected:
        return False
    _EQUAL[id(expected)] = (expected, dtype)  # both held, so neither id can be reused
    return True


def _kinds(kinds: str) -> str:
    names = {"i": "signed integer", "u": "unsigned integer", "f": "floating", "b": "boolean"}
    return " or ".join(names.get(k, k) for k in kinds) + " values"


def first_outside(
    values: np.ndarray, lo: Any, hi: Any, label: str, where: np.ndarray | None = None
) -> None:
    """Fail if an element of ``values`` lies outside ``[lo, hi)`` (either bound may be None).

    ``label`` names one element with ``{}`` standing for its index, such as
    ``"nodes[{}].left_child"``; ``where`` maps positions in ``values`` to the indices shown.
    """
    if values.size == 0:
        return
    low = lo is not None and values.min() < lo
    high = hi is not None and values.max() >= hi
    if not (low or high):
        return
    bad = np.zeros(values.shape, dtype=bool)
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values >= hi
    pos = int(np.flatnonzero(bad.ravel())[0])
    index = int(where[pos]) if where is not None else pos
    fail(f"{label.format(index)} = {values.ravel()[pos]} is outside {_interval(lo, hi)}")


class LinkError(Exception):
    """The child links of node ``node`` break ``template`` (``{}`` stands for the node)."""

    def __init__(self, node: int, template: str) -> None:
        super().__init__(template.format(node))
        self.node = node
        self.template = template


def tree_links(
    n: int,
    split: np.ndarray,
    kids_left: np.ndarray,
    kids_right: np.ndarray,
    roots: np.ndarray,
    *,
    need_depth: bool,
) -> np.ndarray | None:
    """Check that child links form trees, one per root; return every node's depth.

    ``split`` lists the split nodes and ``kids_left``/``kids_right`` their children, already
    known to lie inside the split node's own tree and never to be a root (callers check the
    ranges, which they can name precisely). Every node that is not a root must then be the child
    of exactly one node, and following parents from any node must end at a root (no cycle).

    Depths are found by pointer jumping: each round doubles how far every node's ancestor
    pointer reaches, so ``ceil(log2(n))`` rounds of whole-array numpy operations settle any
    tree, and a pointer that never reaches a root proves a cycle. When ``need_depth`` is false
    and every child has a larger index than its parent (true of every tree scikit-learn builds),
    the rounds are skipped: parents then strictly decrease along any path, which already rules
    out cycles, and None is returned.

    Raises
    ------
    LinkError
        Naming the first node found with no parent, two parents, or on a cycle.
    """
    n_roots = roots.shape[0]
    kids = np.concatenate((kids_left, kids_right))
    has_parent = np.zeros(n, dtype=bool)
    has_parent[kids] = True
    if n_roots == 1:
        complete = bool(has_parent[1:].all())
    else:
        has_parent[roots] = True
        complete = bool(has_parent.all())
    if kids.shape[0] != n - n_roots or not complete:
        _explain_parents(n, split, kids, has_parent)
    if not need_depth and bool((kids_left > split).all()) and bool((kids_right > split).all()):
        return None
    parent = np.arange(n, dtype=np.intp) if n_roots > 1 else np.zeros(n, dtype=np.intp)
    parent[kids_left] = split
    parent[kids_right] = split
    depth = np.ones(n, dtype=np.intp)
    depth[roots] = 0
    ancestor = parent
    if n_roots == 1:
        for _ in range(n.bit_length() + 1):
            if not ancestor.any():
                return depth
            depth += depth[ancestor]
            ancestor = ancestor[ancestor]
        settled = ancestor == 0
    else:
        is_root = np.zeros(n, dtype=bool)
        is_root[roots] = True
        for _ in range(n.bit_length() + 1):
            if is_root[ancestor].all():
                return depth
            depth += depth[ancestor]
            ancestor = ancestor[ancestor]
        settled = is_root[ancestor]
    raise LinkError(
        int(np.flatnonzero(~settled)[0]),
        "node {} is not reachable from its root: its ancestors form a cycle",
    )


def _explain_parents(n: int, split: np.ndarray, kids: np.ndarray, has_parent: np.ndarray) -> None:
    counts = np.bincount(kids, minlength=n)
    shared = np.flatnonzero(counts > 1)
    if shared.size:
        raise LinkError(int(shared[0]), "node {} is the child of more than one node")
    raise LinkError(
        int(np.flatnonzero(~has_parent)[0]),
        "node {} is not reachable from its root: no node has it as a child",
    )
