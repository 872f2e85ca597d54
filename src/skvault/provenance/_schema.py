"""The model's input and output schema, read from the fitted estimator (and ``X`` for dtypes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._plain import is_dataframe, plain_scalar

__all__ = ["OUTPUT_METHODS", "derive_schema"]

# the methods a user calls on a fitted model to get results, in the order they are listed
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "score_samples",
    "transform",
    "inverse_transform",
    "score",
)

_TASKS = {
    "classifier": "classification",
    "regressor": "regression",
    "clusterer": "clustering",
    "outlier_detector": "outlier_detection",
    "density_estimator": "density_estimation",
}


def derive_schema(obj: Any, X: Any = None) -> dict[str, Any]:
    """Return the ``schema`` section: what the model takes and what it gives.

    Everything comes from the fitted estimator except column dtypes and categories, which an
    estimator does not keep: they are read from ``X`` when it is a DataFrame.
    """
    feature_names = _attribute(obj, "feature_names_in_")
    n_features = _attribute(obj, "n_features_in_")
    dtypes = categories = None
    if is_dataframe(X):
        dtypes = {plain_scalar(c): str(X[c].dtype) for c in X.columns}
        categories = {
            plain_scalar(c): [plain_scalar(v) for v in X[c].cat.categories.tolist()]
            for c in X.columns
            if str(X[c].dtype) == "category"
        }
    methods = [m for m in OUTPUT_METHODS if _has(obj, m)]
    return {
        "input": {
            "n_features": int(n_features) if isinstance(n_features, (int, np.integer)) else None,
            "feature_names": _names(feature_names),
            "dtypes": dtypes,
            "categories": categories,
        },
        "output": {
            "task": _task(obj, methods),
            "classes": _classes(_attribute(obj, "classes_")),
            "n_outputs": _n_outputs(obj, methods),
            "methods": methods,
        },
    }


def _attribute(obj: Any, name: str) -> Any:
    # fitted attributes may be properties that raise anything on an unfitted or odd object
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _has(obj: Any, name: str) -> bool:
    try:
        return callable(getattr(obj, name, None))
    except Exception:
        return False


def _names(names: Any) -> list[Any] | None:
    if names is None:
        return None
    try:
        return [plain_scalar(n) for n in np.asarray(names).tolist()]
    except (TypeError, ValueError):
        return None


def _task(obj: Any, methods: list[str]) -> str | None:
    estimator_type = None
    if hasattr(obj, "get_params") and hasattr(obj, "fit"):  # importing sklearn otherwise is waste
        try:
            from sklearn.utils import get_tags
        except ImportError:  # scikit-learn < 1.6
            estimator_type = _attribute(obj, "_estimator_type")
        else:
            try:
                estimator_type = get_tags(obj).estimator_type
            except Exception:
                estimator_type = _attribute(obj, "_estimator_type")
    if isinstance(estimator_type, str) and estimator_type in _TASKS:
        return _TASKS[estimator_type]
    if "transform" in methods:
        return "transformation"
    return None


def _classes(classes: Any) -> list[Any] | None:
    if classes is None:
        return None
    if isinstance(classes, list):  # multi-output classifiers keep one array per output
        return [_classes(c) for c in classes]
    try:
        return [plain_scalar(c) for c in np.asarray(classes).tolist()]
    except (TypeError, ValueError):
        return None


def _n_outputs(obj: Any, methods: list[str]) -> int | None:
    n = _attribute(obj, "n_outputs_")
    if isinstance(n, (int, np.integer)):
        return int(n)
    classes = _attribute(obj, "classes_")
    if isinstance(classes, list):
        return len(classes)
    if classes is not None:
        return 1
    coef = _attribute(obj, "coef_")
    if isinstance(coef, np.ndarray) and "predict" in methods:
        return 1 if coef.ndim == 1 else int(coef.shape[0])
    return 1 if "predict" in methods else None
