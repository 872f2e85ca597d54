"""The golden sample: rows of X with the model's outputs, recorded at dump and checked at load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skvault


def _golden(model, **kwargs):
    return skvault.read_metadata(skvault.dumps(model, **kwargs))["golden"]


def test_first_rows_and_every_output(logistic, iris):
    X, y = iris
    golden = _golden(logistic, X=X, y=y)
    np.testing.assert_array_equal(golden["X"], X[:32])
    assert set(golden["outputs"]) == {"predict", "predict_proba", "decision_function"}
    np.testing.assert_array_equal(golden["outputs"]["predict"], logistic.predict(X[:32]))
    np.testing.assert_array_equal(
        golden["outputs"]["predict_proba"], logistic.predict_proba(X[:32])
    )
    np.testing.assert_array_equal(
        golden["outputs"]["decision_function"], logistic.decision_function(X[:32])
    )
    assert (golden["rtol"], golden["atol"]) == (1e-9, 0.0)


def test_golden_rows(logistic, iris):
    X, _ = iris
    assert _golden(logistic, X=X, golden_rows=5)["X"].shape == (5, 4)
    assert _golden(logistic, X=X[:3])["X"].shape == (3, 4)
    assert _golden(logistic, X=X, golden_rows=0) is None
    assert _golden(logistic) is None, "no X, no sample"


@pytest.mark.parametrize("rows", [-1, 2.5, True, "32"])
def test_bad_golden_rows(logistic, iris, rows):
    with pytest.raises(ValueError, match="golden_rows"):
        skvault.dumps(logistic, X=iris[0], golden_rows=rows)


def test_methods_that_fail_are_left_out(iris):
    X, _ = iris
    model = KMeans(n_clusters=3, n_init=1, random_state=0).fit(X)
    golden = _golden(model, X=X)
    assert set(golden["outputs"]) == {"predict", "transform"}
    # a sample the model refuses (wrong width) leaves nothing to record
    assert _golden(model, X=X[:, :2]) is None


def _round_trip_verifies(model, X, **kwargs):
    data = skvault.dumps(model, X=X, **kwargs)
    assert skvault.read_metadata(data)["golden"] is not None
    loaded = skvault.loads(data, verify=True)
    return skvault.read_metadata(data)["golden"], loaded


def test_dataframe_sample_rebuilds_columns_and_dtypes():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 80),
            "plan": pd.Categorical(rng.choice(["basic", "pro"], 80), categories=["pro", "basic"]),
            "region": rng.choice(["north", "south"], 80),
            "visits": pd.array(rng.integers(0, 9, 80), dtype="Int64"),
        }
    )
    frame.loc[2, "visits"] = pd.NA
    y = rng.integers(0, 2, 80)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), ["plan", "region"]), ("passthrough", ["age"]), remainder="drop"
        ),
        LogisticRegression(),
    ).fit(frame, y)
    golden, _ = _round_trip_verifies(model, frame, y=y)
    assert golden["X"]["columns"] == ["age", "plan", "region", "visits"]
    assert golden["X"]["data"]["plan"].tolist() == frame["plan"][:32].astype(str).tolist()
    assert golden["X"]["data"]["visits"][2] is None


def test_sparse_input_and_output(iris):
    X, y = iris
    Xs = sp.csr_matrix(np.where(X > 3, X, 0.0))
    golden, _ = _round_trip_verifies(LogisticRegression(max_iter=500).fit(Xs, y), Xs, y=y)
    assert golden["X"]["sparse"] == "csr"
    encoder = OneHotEncoder().fit(X.round())
    golden, _ = _round_trip_verifies(encoder, X.round())
    assert golden["outputs"]["transform"]["shape"] == [
        32,
        encoder.transform(X[:1].round()).shape[1],
    ]


def test_text_input():
    docs = ["good product", "bad service", "good service", "bad product"] * 10
    y = [1, 0, 1, 0] * 10
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, y)
    golden, _ = _round_trip_verifies(model, docs, y=y)
    assert golden["X"].tolist() == docs[:32]


def test_transformers_and_regressors(iris):
    X, y = iris
    _round_trip_verifies(StandardScaler().fit(X), X)
    _round_trip_verifies(Ridge().fit(X, y), X)


def test_a_sample_that_is_not_plain_data_is_skipped():
    from decimal import Decimal

    frame = pd.DataFrame({"price": [Decimal("1.5"), Decimal("2.5"), Decimal("4.0")]})
    model = StandardScaler().fit(frame)
    meta = skvault.read_metadata(skvault.dumps(model, X=frame))
    assert meta["golden"] is None
    assert meta["data"]["fingerprint"]["X"]["dtypes"] == {"price": "object"}
