"""Other types whose code trusts their fields: k-means centers, scipy's B-splines; and the
arguments of ``range``, the one builtin type a file may call (with integers only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import array, get, integer, mapping
from ._registry import fail, validator

__all__: list[str] = []


@validator(
    "sklearn.cluster._kmeans.KMeans",
    "sklearn.cluster._kmeans.MiniBatchKMeans",
    "sklearn.cluster._bisect_k_means.BisectingKMeans",
)
def _kmeans(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "cluster_centers_" not in st:
        return  # not fitted
    centers = array(get(st, "cluster_centers_"), "cluster_centers_", ndim=2, kinds="f")
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    # the Cython label assignment reads centers[j, k] for the k < X.shape[1] features of X
    if centers.shape[1] != n_features:
        fail(f"cluster_centers_ has {centers.shape[1]} columns but n_features_in_ = {n_features}")
    if centers.shape[0] < 1:
        fail("cluster_centers_ is empty")


@validator("scipy.interpolate._bsplines.BSpline")
def _bspline(args: tuple, state: Any) -> None:
    # BSpline.__init__ checks these before its C evaluator may rely on them; loading skips it
    st = mapping(state)
    k = integer(get(st, "k"), "k", lo=0)
    t = array(get(st, "_t"), "_t", ndim=1, dtype=np.float64, c_contiguous=True)
    c = array(get(st, "_c"), "_c")
    if c.dtype not in (np.float64, np.complex128):
        fail(f"_c has dtype {c.dtype}, expected float64 or complex128")
    if c.ndim < 1:
        fail("_c (the coefficients) must have at least one dimension")
    n = t.shape[0] - k - 1
    if n < k + 1:
        fail(f"_t holds {t.shape[0]} knots; degree k = {k} needs at least {2 * k + 2}")
    if not np.isfinite(t).all():
        fail("_t (the knots) holds NaN or infinity")
    if (np.diff(t) < 0).any():
        fail("_t (the knots) is not in non-decreasing order")
    if np.unique(t[k : n + 1]).shape[0] < 2:
        fail("_t needs at least two distinct internal knots")
    if c.shape[0] < n:
        fail(f"_c has {c.shape[0]} coefficients along axis 0; the knots and k need {n}")
    extrapolate = get(st, "extrapolate")
    if not (isinstance(extrapolate, bool) or extrapolate == "periodic"):
        fail(f"extrapolate = {extrapolate!r}, expected True, False or 'periodic'")
    integer(get(st, "axis"), "axis", lo=0, hi=c.ndim)


@validator("builtins.range")
def _range(args: tuple, state: Any) -> None:
    # range() itself refuses most else; the rule is stated here so that every reader (the .skv
    # ext node, skops, the restricted unpickler) refuses the same things with the same message
    if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
        fail(
            f"range takes one to three integers, not {len(args)} values of types "
            f"{sorted({type(a).__name__ for a in args})}"
        )
    if len(args) == 3 and args[2] == 0:
        fail("range's step is 0")
    if state is not None and state != {}:
        fail("range has no state to restore")
