"""The input and output schema read from the estimator (and from X for DataFrame dtypes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import make_column_transformer
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skvault


def _schema(model, **kwargs):
    return skvault.read_metadata(skvault.dumps(model, **kwargs))["schema"]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, 120),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], 120)),
            "visits": rng.integers(0, 20, 120),
        }
    )


def test_classifier_on_arrays(logistic, iris):
    assert _schema(logistic) == {
        "input": {"n_features": 4, "feature_names": None, "dtypes": None, "categories": None},
        "output": {
            "task": "classification",
            "classes": logistic.classes_.tolist(),
            "n_outputs": 1,
            "methods": [
                "predict",
                "predict_proba",
                "predict_log_proba",
                "decision_function",
                "score",
            ],
        },
    }


def test_pipeline_on_a_dataframe(frame):
    y = (frame["age"] > 40).map({True: "churn", False: "stay"}).to_numpy()
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["plan"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, y)
    schema = _schema(model, X=frame, y=y)
    assert schema["input"] == {
        "n_features": 3,
        "feature_names": ["age", "plan", "visits"],
        "dtypes": {"age": "float64", "plan": "category", "visits": str(frame["visits"].dtype)},
        "categories": {"plan": ["basic", "pro", "team"]},
    }
    assert schema["output"]["classes"] == ["churn", "stay"]
    assert schema["output"]["task"] == "classification"


def test_multi_output_classifier(iris):
    X, y = iris
    Y = np.column_stack([y, y % 2])
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y)
    output = _schema(model)["output"]
    assert output["n_outputs"] == 2
    assert output["classes"] == [[0, 1, 2], [0, 1]]


@pytest.mark.parametrize(
    ("model", "task", "n_outputs"),
    [
        (LinearRegression(), "regression", 1),
        (KMeans(n_clusters=2, n_init=1, random_state=0), "clustering", 1),
        (IsolationForest(n_estimators=3, random_state=0), "outlier_detection", 1),
        (StandardScaler(), "transformation", None),
    ],
)
def test_task_kinds(iris, model, task, n_outputs):
    X, y = iris
    model.fit(X, y.astype(float))
    output = _schema(model)["output"]
    assert (output["task"], output["n_outputs"], output["classes"]) == (task, n_outputs, None)


def test_multi_target_regression(iris):
    X, y = iris
    model = LinearRegression().fit(X, np.column_stack([y, -y]))
    assert _schema(model)["output"]["n_outputs"] == 2


def test_objects_that_are_not_estimators():
    assert _schema({"weights": [1.0]}) == {
        "input": {"n_features": None, "feature_names": None, "dtypes": None, "categories": None},
        "output": {"task": None, "classes": None, "n_outputs": None, "methods": []},
    }
