"""Linear models: the shapes of ``coef_`` and ``intercept_`` against what they are used with.

Prediction is ``X @ coef_.T + intercept_`` in numpy, so a bad shape cannot reach memory it should
not; it would fail at predict with a broadcasting error far from its cause. The rule makes it a
load error that names the attribute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import array, get, integer, mapping
from ._registry import fail, validator
from ._sparse import issparse_shape

__all__: list[str] = []

_LM = "sklearn.linear_model."
LINEAR_CLASSIFIERS = (
    f"{_LM}_logistic.LogisticRegression",
    f"{_LM}_logistic.LogisticRegressionCV",
    f"{_LM}_ridge.RidgeClassifier",
    f"{_LM}_ridge.RidgeClassifierCV",
    f"{_LM}_stochastic_gradient.SGDClassifier",
    f"{_LM}_perceptron.Perceptron",
    f"{_LM}_passive_aggressive.PassiveAggressiveClassifier",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
)
LINEAR_REGRESSORS = (
    f"{_LM}_base.LinearRegression",
    f"{_LM}_bayes.ARDRegression",
    f"{_LM}_bayes.BayesianRidge",
    f"{_LM}_coordinate_descent.ElasticNet",
    f"{_LM}_coordinate_descent.ElasticNetCV",
    f"{_LM}_coordinate_descent.Lasso",
    f"{_LM}_coordinate_descent.LassoCV",
    f"{_LM}_coordinate_descent.MultiTaskElasticNet",
    f"{_LM}_coordinate_descent.MultiTaskElasticNetCV",
    f"{_LM}_coordinate_descent.MultiTaskLasso",
    f"{_LM}_coordinate_descent.MultiTaskLassoCV",
    f"{_LM}_glm.glm.GammaRegressor",
    f"{_LM}_glm.glm.PoissonRegressor",
    f"{_LM}_glm.glm.TweedieRegressor",
    f"{_LM}_huber.HuberRegressor",
    f"{_LM}_least_angle.Lars",
    f"{_LM}_least_angle.LarsCV",
    f"{_LM}_least_angle.LassoLars",
    f"{_LM}_least_angle.LassoLarsCV",
    f"{_LM}_least_angle.LassoLarsIC",
    f"{_LM}_omp.OrthogonalMatchingPursuit",
    f"{_LM}_omp.OrthogonalMatchingPursuitCV",
    f"{_LM}_passive_aggressive.PassiveAggressiveRegressor",
    f"{_LM}_quantile.QuantileRegressor",
    f"{_LM}_ridge.Ridge",
    f"{_LM}_ridge.RidgeCV",
    f"{_LM}_stochastic_gradient.SGDRegressor",
    f"{_LM}_stochastic_gradient.SGDOneClassSVM",
    f"{_LM}_theil_sen.TheilSenRegressor",
    "sklearn.svm._classes.LinearSVR",
)


def _coef_shape(coef: Any) -> tuple[int, ...]:
    if isinstance(coef, np.ndarray):
        return array(coef, "coef_", kinds="fiu").shape
    return issparse_shape(coef, "coef_")  # after sparsify()


@validator(*LINEAR_CLASSIFIERS, *LINEAR_REGRESSORS)
def _linear(args: tuple, state: Any) -> None:
    st = mapping(state)
    if "coef_" not in st:
        return  # not fitted
    shape = _coef_shape(get(st, "coef_"))
    if len(shape) not in (1, 2):
        fail(f"coef_ has {len(shape)} dimensions, expected 1 or 2")
    if "n_features_in_" in st:
        n_features = integer(get(st, "n_features_in_"), "n_features_in_", lo=1)
        if shape[-1] != n_features:
            fail(f"coef_ has shape {shape}: {shape[-1]} columns but n_features_in_ = {n_features}")
    if "classes_" in st:
        classes = get(st, "classes_")
        n_classes = len(classes) if isinstance(classes, (np.ndarray, list)) else -1
        rows = shape[0] if len(shape) == 2 else 1
        expected = (1, n_classes) if n_classes == 2 else (n_classes,)
        if len(shape) != 2 or rows not in expected:
            fail(
                f"coef_ has shape {shape} but {n_classes} classes need "
                f"{' or '.join(str(e) for e in expected)} rows"
            )
    outputs = shape[0] if len(shape) == 2 else 1
    if "intercept_" in st:
        _intercept(get(st, "intercept_"), outputs, "intercept_")
    # SGD keeps twins of coef_ (1-D for a binary problem) that partial_fit hands to Cython,
    # which reads them with the width of X
    size = int(np.prod(shape))
    for key in ("_standard_coef", "_average_coef"):
        twin = st.get(key)
        if isinstance(twin, np.ndarray) and (twin.size != size or twin.shape[-1] != shape[-1]):
            fail(f"{key} has shape {twin.shape} but coef_ has {shape}")
    for key in ("_standard_intercept", "_average_intercept"):
        if isinstance(st.get(key), np.ndarray):
            _intercept(st[key], outputs, key)


def _intercept(value: Any, outputs: int, what: str) -> None:
    if isinstance(value, np.ndarray):
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != outputs):
            fail(f"{what} has shape {value.shape}, expected ({outputs},) for the rows of coef_")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        fail(f"{what} = {value!r} is neither a number nor an array")
