"""Scores: given as a dict, or computed by cross-validation at dump time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.naive_bayes import GaussianNB

import skvault


@pytest.fixture(scope="module")
def nb(iris):
    """A classifier quick to cross-validate."""
    return GaussianNB().fit(*iris)


def _scores(model, **kwargs):
    return skvault.read_metadata(skvault.dumps(model, golden_rows=0, **kwargs))["scores"]


def test_given_scores_are_kept(logistic):
    assert _scores(logistic, scores={"accuracy": 0.97, "auc": [0.9, 0.95]}) == {
        "given": {"accuracy": 0.97, "auc": [0.9, 0.95]}
    }
    assert _scores(logistic) is None


def test_cv_default_scoring_matches_cross_validate(nb, iris):
    X, y = iris
    expected = cross_validate(clone(nb), X, y, cv=StratifiedKFold(5))["test_score"]
    record = _scores(nb, cv=5, X=X, y=y)["cv"]
    assert record["scoring"] == ["score"]
    assert record["folds"] == {"score": expected.tolist()}
    assert record["mean"] == {"score": float(np.mean(expected))}
    assert record["std"] == {"score": float(np.std(expected))}
    assert record["splitter"] == {
        "type": "sklearn.model_selection._split.StratifiedKFold",
        "params": {"n_splits": 5, "shuffle": False, "random_state": None},
    }


def test_cv_with_a_splitter_and_named_scorers(nb, iris):
    X, y = iris
    splitter = KFold(3, shuffle=True, random_state=7)
    expected = cross_validate(clone(nb), X, y, cv=splitter, scoring=["accuracy", "f1_macro"])
    record = _scores(nb, cv=splitter, scoring=["accuracy", "f1_macro"], X=X, y=y)["cv"]
    assert record["scoring"] == ["accuracy", "f1_macro"]
    for name in ("accuracy", "f1_macro"):
        assert record["folds"][name] == expected[f"test_{name}"].tolist()
        assert record["mean"][name] == pytest.approx(np.mean(expected[f"test_{name}"]), abs=0)
    assert record["splitter"] == {
        "type": "sklearn.model_selection._split.KFold",
        "params": {"n_splits": 3, "shuffle": True, "random_state": 7},
    }


def test_cv_of_a_regressor_uses_kfold_and_does_not_refit_the_model(iris):
    X, y = iris
    model = Ridge().fit(X, y)
    coef = model.coef_.copy()
    record = _scores(model, cv=4, scoring="neg_mean_absolute_error", X=X, y=y)["cv"]
    assert record["splitter"]["type"] == "sklearn.model_selection._split.KFold"
    expected = cross_validate(Ridge(), X, y, cv=KFold(4), scoring="neg_mean_absolute_error")
    assert record["folds"]["neg_mean_absolute_error"] == expected["test_score"].tolist()
    np.testing.assert_array_equal(model.coef_, coef)


def test_given_and_cv_scores_together(nb, iris):
    X, y = iris
    record = _scores(nb, scores={"holdout": 0.9}, cv=3, X=X, y=y)
    assert record["given"] == {"holdout": 0.9}
    assert len(record["cv"]["folds"]["score"]) == 3


def test_cv_needs_x(logistic):
    with pytest.raises(ValueError, match="cv= needs the training data"):
        skvault.dumps(logistic, cv=5)


def test_scoring_needs_cv(logistic, iris):
    with pytest.raises(ValueError, match="pass cv="):
        skvault.dumps(logistic, scoring="accuracy", X=iris[0])


def test_scoring_must_be_names(logistic, iris):
    X, y = iris
    with pytest.raises(TypeError, match="cannot be recorded"):
        skvault.dumps(logistic, cv=3, scoring=lambda est, X, y: 1.0, X=X, y=y)


def test_scores_must_be_a_dict_of_plain_values(logistic):
    with pytest.raises(TypeError, match="dict"):
        skvault.dumps(logistic, scores=[0.9])  # type: ignore[arg-type]
    with pytest.raises(skvault.UnsupportedTypeError, match="plain data"):
        skvault.dumps(logistic, scores={"model": logistic})


def test_description_tags_and_metrics(logistic):
    meta = skvault.read_metadata(
        skvault.dumps(
            logistic,
            description="churn model, weekly retrain",
            tags=["churn", "weekly"],
            metrics={"latency_ms": 1.5, "confusion": np.eye(2)},
        )
    )
    assert meta["description"] == "churn model, weekly retrain"
    assert meta["tags"] == ["churn", "weekly"]
    assert meta["metrics"]["latency_ms"] == 1.5
    np.testing.assert_array_equal(meta["metrics"]["confusion"], np.eye(2))
    plain = skvault.read_metadata(skvault.dumps(logistic))
    assert (plain["description"], plain["tags"], plain["metrics"]) == (None, [], {})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tags": "churn"}, TypeError),
        ({"tags": [1]}, TypeError),
        ({"description": 3}, TypeError),
        ({"metrics": [1.0]}, TypeError),
    ],
)
def test_bad_descriptive_arguments(logistic, kwargs, error):
    with pytest.raises(error):
        skvault.dumps(logistic, **kwargs)
