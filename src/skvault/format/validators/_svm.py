"""libsvm-based estimators: SVC, NuSVC, SVR, NuSVR, OneClassSVM.

Every prediction rebuilds a C ``svm_model`` from the fitted arrays (``set_model`` in
``libsvm_helper.c``): it takes the number of classes from ``len(_n_support)``, the number of
support vectors from ``len(support_)``, and then reads ``_intercept_``, ``_dual_coef_``,
``_probA``/``_probB`` and the support vectors with those counts, unchecked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import array, first_outside, get, integer, mapping, sequence
from ._registry import fail, validator
from ._sparse import issparse_shape

__all__: list[str] = []


@validator(
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.NuSVC",
    "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.NuSVR",
    "sklearn.svm._classes.OneClassSVM",
)
def _libsvm(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "support_" not in st:
        return  # not fitted
    support = array(get(st, "support_"), "support_", ndim=1, dtype=np.int32, c_contiguous=True)
    n_sv = support.shape[0]
    n_support = array(
        get(st, "_n_support"), "_n_support", ndim=1, dtype=np.int32, c_contiguous=True
    )
    n_class = n_support.shape[0]
    if n_class < 2:
        fail(f"_n_support has {n_class} entries, expected at least 2")
    pairs = n_class * (n_class - 1) // 2
    first_outside(n_support, 0, None, "_n_support[{}]")
    classifier = "classes_" in st
    if classifier:
        classes = array(get(st, "classes_"), "classes_", ndim=1)
        if classes.shape[0] != n_class:
            fail(f"_n_support counts {n_class} classes but classes_ holds {classes.shape[0]}")
        # libsvm walks the support vectors class by class, nSV[i] at a time
        if int(n_support.sum()) != n_sv:
            fail(f"_n_support adds up to {int(n_support.sum())} but support_ holds {n_sv}")
    array(
        get(st, "_intercept_"), "_intercept_", ndim=1, dtype=np.float64, shape=(pairs,),
        c_contiguous=True,
    )  # fmt: skip
    # predict_proba runs when probability is set (not "deprecated"); the sparse kernels also
    # read _probA/_probB whenever _effective_probability is set
    requested = st.get("probability")
    probability = (requested != "deprecated" and bool(requested)) or bool(
        st.get("_effective_probability")
    )
    lengths = []
    for key in ("_probA", "_probB"):
        p = array(get(st, key), key, ndim=1, dtype=np.float64, c_contiguous=True)
        lengths.append(p.shape[0])
    if lengths[0] != lengths[1] or lengths[0] not in (0, pairs):
        fail(f"_probA and _probB hold {lengths} values, expected 0 or {pairs} each")
    if probability and lengths[0] != pairs:
        fail(f"probability is on but _probA holds {lengths[0]} values, expected {pairs}")
    kernel = get(st, "kernel")
    precomputed = kernel == "precomputed" or callable(kernel)
    shape_fit = sequence(get(st, "shape_fit_"), "shape_fit_")
    if get(st, "_sparse"):
        _sparse_model(st, n_class, n_sv)
    else:
        coef = array(get(st, "_dual_coef_"), "_dual_coef_", ndim=2, dtype=np.float64)
        if coef.shape != (n_class - 1, n_sv) or not coef.flags.c_contiguous:
            fail(f"_dual_coef_ has shape {coef.shape}, expected {(n_class - 1, n_sv)}, C-ordered")
        sv = array(
            get(st, "support_vectors_"), "support_vectors_", ndim=2, dtype=np.float64,
            c_contiguous=True,
        )  # fmt: skip
        if not precomputed:
            n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
            if sv.shape != (n_sv, n_features):
                fail(
                    f"support_vectors_ has shape {sv.shape}, expected {(n_sv, n_features)} "
                    "(len(support_), n_features_in_)"
                )
    if precomputed:
        # with a precomputed kernel, support_ indexes the columns of the kernel matrix
        n_fit = integer(shape_fit[0], "shape_fit_[0]", lo=0)
        first_outside(support, 0, n_fit, "support_[{}]")


def _sparse_model(st: Any, n_class: int, n_sv: int) -> None:
    coef = get(st, "_dual_coef_")
    shape = issparse_shape(coef, "_dual_coef_")
    if shape != (n_class - 1, n_sv):
        fail(f"_dual_coef_ has shape {shape}, expected {(n_class - 1, n_sv)}")
    # the sparse kernel copies (n_class - 1) * n_SV coefficients from _dual_coef_.data
    if coef.data.shape != ((n_class - 1) * n_sv,) or coef.data.dtype != np.float64:
        fail(f"_dual_coef_.data must hold {(n_class - 1) * n_sv} float64 values")
    sv = get(st, "support_vectors_")
    sv_shape = issparse_shape(sv, "support_vectors_")
    if sv.format != "csr":
        fail(f"support_vectors_ is {sv.format}, expected csr")
    n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
    if sv_shape != (n_sv, n_features):
        fail(f"support_vectors_ has shape {sv_shape}, expected {(n_sv, n_features)}")
