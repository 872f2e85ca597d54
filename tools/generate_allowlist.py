"""Regenerate ``src/skvault/format/allowlist.txt`` from the installed scikit-learn, numpy, scipy.

The output is data, reviewed like code: run this after changing the pinned versions, read the diff,
and commit it. ``tests/format/test_trust.py`` fails while the committed list is out of date.

The rules are deliberately narrow: a class is listed when it is a scikit-learn estimator, or is
defined in one of the named modules that hold estimators' internal state; a function is listed
when it is a pure computation (numpy ufuncs and a reviewed list of numpy, scipy.special and
scikit-learn metric and scoring functions). Nothing that performs I/O, imports, or calls back into
user-provided code is listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.base import BaseEstimator

OUT = Path(__file__).resolve().parents[1] / "src" / "skvault" / "format" / "allowlist.txt"

BUILTIN_TYPES = (
    "bool int float complex str bytes bytearray object list tuple dict set frozenset slice range"
)
BUILTIN_FUNCTIONS = "abs len max min round sum"
MATH_FUNCTIONS = "ceil exp expm1 fabs floor log log10 log1p log2 sqrt"

# numpy functions beyond the ufuncs: pure, array in, array out (aggregations for pooling_func,
# shape helpers commonly given to FunctionTransformer)
NUMPY_FUNCTIONS = """
    amax amin around atleast_1d atleast_2d average clip column_stack concatenate cumsum diff
    hstack max mean median min nan_to_num nanmax nanmean nanmedian nanmin nanpercentile
    nanquantile nanstd nansum nanvar percentile prod ptp quantile ravel round squeeze std sum
    transpose var vstack where
"""
SCIPY_SPECIAL = """
    boxcox boxcox1p digamma erf erfc erfinv expit gammaln inv_boxcox inv_boxcox1p log_expit
    log_ndtr log_softmax logit logsumexp ndtr ndtri softmax xlog1py xlogy
"""
SCIPY_CLASSES = {
    "scipy.sparse": [
        f"{fmt}_{kind}"
        for fmt in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
        for kind in ("matrix", "array")
    ],
    "scipy.interpolate": ["BSpline"],
}
# functions scipy objects keep as state: a BSpline keeps its array namespace's ``asarray`` (a
# pure wrapper of numpy.array). Private paths that move between scipy versions: a name is listed
# only when it is found in the installed version.
SCIPY_STATE_FUNCTIONS = ["scipy._lib.array_api_compat.numpy._aliases.asarray"]
# modules whose classes hold fitted state of scikit-learn estimators
SKLEARN_STATE_MODULES = [
    "sklearn._loss._loss",
    "sklearn._loss.link",
    "sklearn._loss.loss",
    "sklearn.cluster._birch",
    "sklearn.cluster._bisect_k_means",
    "sklearn.ensemble._hist_gradient_boosting.predictor",
    "sklearn.gaussian_process.kernels",
    "sklearn.linear_model._sgd_fast",
    "sklearn.metrics._dist_metrics",
    "sklearn.metrics._scorer",
    "sklearn.model_selection._split",
    "sklearn.neighbors._ball_tree",
    "sklearn.neighbors._kd_tree",
    "sklearn.neural_network._stochastic_optimizers",
    "sklearn.utils._bunch",
    "sklearn.utils._metadata_requests",
]
SKLEARN_EXTRA_CLASSES = [
    "sklearn.tree._tree.Tree",
    # CalibratedClassifierCV.calibrated_classifiers_: a plain holder of an estimator and its
    # calibrators (not an estimator itself, in a module that also holds plotting classes)
    "sklearn.calibration._CalibratedClassifier",
    # a ColumnTransformer's column choice: selects columns by dtype and name pattern
    "sklearn.compose._column_transformer.make_column_selector",
    # IterativeImputer.imputation_sequence_: named tuples (feature, its predictors, estimator)
    "sklearn.impute._iterative._ImputerTriplet",
]
# private pure functions that estimators keep as fitted state: BisectingKMeans keeps the k-means
# solver it ran (`_kmeans_single`); numeric computations on arrays, no I/O, no callbacks
SKLEARN_STATE_FUNCTIONS = [
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
]
# pure functions scikit-learn stores as hyper-parameters or in scorers
SKLEARN_FUNCTION_MODULES = [
    "sklearn.feature_selection",
    "sklearn.metrics",
    "sklearn.metrics.pairwise",
    "sklearn.metrics.cluster",
]
SKIP_PACKAGES = ("tests", "externals", "_build_utils", "datasets", "experimental", "conftest")


def _name(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]


def _findable(name: str, obj: object) -> bool:
    module, _, attr = name.rpartition(".")
    try:
        return vars(importlib.import_module(module)).get(attr) is obj
    except ImportError:
        return False


def sklearn_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
        if any(part in SKIP_PACKAGES for part in info.name.split(".")):
            continue
        names.append(info.name)
    return names


def sklearn_classes() -> set[str]:
    found = set(SKLEARN_EXTRA_CLASSES)
    for modname in sklearn_modules():
        try:
            module = importlib.import_module(modname)
        except Exception:  # optional dependencies of a few modules
            continue
        in_state_module = modname in SKLEARN_STATE_MODULES
        for obj in vars(module).values():
            if not inspect.isclass(obj) or obj.__module__ != modname:
                continue
            if issubclass(obj, Exception) or issubclass(obj, Warning):
                continue
            if in_state_module or issubclass(obj, BaseEstimator):
                found.add(_name(obj))
    return found


def sklearn_functions() -> set[str]:
    found = set()
    for modname in SKLEARN_FUNCTION_MODULES:
        module = importlib.import_module(modname)
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public)
            if inspect.isfunction(obj) and obj.__module__.startswith("sklearn."):
                name = _name(obj)
                if "<" not in name and _findable(name, obj):
                    found.add(name)
    # not pure computations: they build objects that call other code
    found = {n for n in found if not n.rsplit(".", 1)[1].startswith(("make_", "get_", "check_"))}
    for name in SKLEARN_STATE_FUNCTIONS:
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        assert inspect.isfunction(obj) and _findable(name, obj), name
        found.add(name)
    return found


def numpy_names() -> tuple[set[str], set[str]]:
    types = set()
    for obj in vars(np).values():
        if inspect.isclass(obj) and issubclass(obj, np.generic) and _findable(_name(obj), obj):
            types.add(_name(obj))
    types.add("numpy.ndarray")
    functions = {
        f"numpy.{n}" for n, v in vars(np).items() if isinstance(v, np.ufunc) and v.__name__ == n
    }
    for n in NUMPY_FUNCTIONS.split():
        obj = getattr(np, n)
        name = f"numpy.{n}" if isinstance(obj, np.ufunc) else _name(obj)
        assert _findable(name, obj), name
        functions.add(name)
    return types, functions


def scipy_names() -> set[str]:
    import scipy.special

    out = set()
    for n in SCIPY_SPECIAL.split():
        obj = getattr(scipy.special, n)
        name = f"scipy.special.{n}" if isinstance(obj, np.ufunc) else _name(obj)
        assert _findable(name, obj), name
        out.add(name)
    for name in SCIPY_STATE_FUNCTIONS:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        if inspect.isfunction(obj) and _findable(name, obj):
            out.add(name)
    for package, classes in SCIPY_CLASSES.items():
        module = importlib.import_module(package)
        for n in classes:
            out.add(_name(getattr(module, n)))
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    np_types, np_functions = numpy_names()
    sections = [
        (
            "Python builtin types (as values, e.g. dtype=float) and pure builtin functions",
            {f"builtins.{n}" for n in (BUILTIN_TYPES + " " + BUILTIN_FUNCTIONS).split()}
            | {f"math.{n}" for n in MATH_FUNCTIONS.split()},
        ),
        ("numpy scalar types", np_types),
        ("numpy ufuncs and reviewed pure numpy functions", np_functions),
        ("scipy: sparse containers, B-splines, pure scipy.special functions", scipy_names()),
        ("scikit-learn estimators and the internal types of their fitted state", sklearn_classes()),
        ("scikit-learn pure functions: metrics, kernels, feature scores", sklearn_functions()),
    ]
    lines = [
        "# skvault's default allow-list: exact 'module.name' entries, one a line.",
        f"# Generated by tools/generate_allowlist.py for scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}.",
        "# Reviewed like code: read the diff of every regeneration.",
    ]
    for title, names in sections:
        lines += ["", f"# {title}", *sorted(names)]
    text = "\n".join(lines) + "\n"
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {sum(len(n) for _, n in sections)} names to {OUT}")


if __name__ == "__main__":
    main()
