"""Classes a user might write, for the composition tests.

`ShrunkCentroidClassifier` follows scikit-learn's conventions (hyper-parameters set in
``__init__``, fitted state in attributes ending in ``_``, plain ``__dict__`` state): skvault saves
it and loads it once its name is trusted. The other classes have no safe representation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data


class ShrunkCentroidClassifier(ClassifierMixin, BaseEstimator):
    """Nearest class centroid after scaling, with centroids shrunk towards the overall mean.

    Parameters
    ----------
    shrinkage : float, default=0.1
        Fraction of the way each centroid moves towards the mean of all samples.
    random_state : None, int, numpy.random.Generator, default=None
        Seeds the random tie-breaking jitter; a Generator is used as is.
    """

    def __init__(self, shrinkage: float = 0.1, random_state: Any = None) -> None:
        self.shrinkage = shrinkage
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> ShrunkCentroidClassifier:
        X, y = validate_data(self, X, y)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        centroids = np.stack([Z[codes == k].mean(axis=0) for k in range(len(self.classes_))])
        self.centroids_ = (1 - self.shrinkage) * centroids + self.shrinkage * Z.mean(axis=0)
        self.rng_ = np.random.default_rng(self.random_state)
        self.jitter_ = self.rng_.normal(scale=1e-9, size=len(self.classes_))
        self.class_counts_ = {label: int(n) for label, n in zip(self.classes_, np.bincount(codes))}
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        Z = self.scaler_.transform(validate_data(self, X, reset=False))
        distances = ((Z[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return -distances + self.jitter_

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


class SlotsOnly:
    """State in ``__slots__`` and no ``__dict__``: nothing skvault can read generically."""

    __slots__ = ("weights",)

    def __init__(self, weights: Any) -> None:
        self.weights = weights


def _rebuild(*args: Any) -> Any:  # pragma: no cover - must never be called by skvault
    raise AssertionError("skvault called a function named by __reduce__")


class ReducesToFunction:
    """Pickles itself as a call of an arbitrary function, which skvault must refuse to store."""

    def __init__(self) -> None:
        self.value = 1

    def __reduce__(self) -> tuple:
        return (_rebuild, ("argument",))
