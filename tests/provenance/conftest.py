"""Shared models and data for the provenance tests."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@pytest.fixture(scope="package")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="package")
def logistic(iris):
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)
