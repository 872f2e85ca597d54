"""Composite models, special inputs and user classes round-trip; unsafe objects are refused.

Every round trip uses the default trust (no ``trusted=``) unless the test is about trust, and
compares the fitted state recursively and the outputs bit for bit (see ``_compare``).
"""

from __future__ import annotations

import builtins
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.metrics import fbeta_score, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

import skvault

from ._compare import assert_same
from ._user_estimator import ReducesToFunction, ShrunkCentroidClassifier, SlotsOnly

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "format"))
from _crafting import craft

METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "score",
)


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # convergence warnings on tiny data are scikit-learn's business; dumps/loads are not wrapped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def round_trip(model: Any, X: Any, y: Any = None, **load_kwargs: Any) -> Any:
    """Dump and load ``model``, compare state and outputs on ``X`` (``y`` for score)."""
    loaded = skvault.loads(skvault.dumps(model), **load_kwargs)
    assert type(loaded) is type(model)
    assert_same(vars(model), vars(loaded), type(model).__name__)
    compared = 0
    for method in METHODS:
        if not hasattr(model, method):
            continue
        if method == "inverse_transform":
            args: tuple = (_quiet(model.transform, X),)
        elif method == "score":
            if y is None:
                continue
            args = (X, y)
        else:
            args = (X,)
        try:
            expected = _quiet(getattr(model, method), *args)
        except (AttributeError, ValueError, NotImplementedError) as exc:
            with pytest.raises(type(exc)):
                _quiet(getattr(loaded, method), *args)
            continue
        assert_same(expected, _quiet(getattr(loaded, method), *args), f"{method}()")
        compared += 1
    assert compared, "no output method could be compared"
    return loaded


@pytest.fixture(scope="module")
def clf_data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0
    )


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric columns with NaN; object strings with None; a pandas category with NaN."""
    rng = np.random.RandomState(0)
    n = 90
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "city": pd.Series(rng.choice(["paris", "london", "rome"], n), dtype=object),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
        }
    )
    df.loc[::9, "age"] = np.nan
    df.loc[::7, "city"] = None
    df.loc[::11, "colour"] = np.nan
    y = (df["income"] > df["income"].median()).to_numpy().astype(int)
    return df, y


# -- compositions -----------------------------------------------------------------------------


def test_pipeline(clf_data):
    X, y = clf_data
    model = make_pipeline(StandardScaler(), PCA(n_components=3), LogisticRegression())
    loaded = round_trip(model.fit(X, y), X, y)
    assert [name for name, _ in loaded.steps] == [name for name, _ in model.steps]


def _column_transformer() -> ColumnTransformer:
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", categorical, ["city", "colour"]),
        ]
    )


def test_column_transformer_on_a_dataframe(frame):
    df, y = frame
    model = make_pipeline(_column_transformer(), LogisticRegression()).fit(df, y)
    loaded = round_trip(model, df, y)
    encoder = loaded[0].named_transformers_["cat"][-1]
    assert [list(c) for c in encoder.categories_] == [
        list(c) for c in model[0].named_transformers_["cat"][-1].categories_
    ]
    # unseen categories and missing values at predict time behave as before
    unseen = df.head(5).assign(city="oslo", colour=pd.Categorical([np.nan] * 5))
    assert_same(model.predict_proba(unseen), loaded.predict_proba(unseen))
    np.testing.assert_array_equal(loaded.feature_names_in_, df.columns.to_numpy(dtype=object))


def test_column_transformer_with_selector_and_pandas_output(frame):
    df, _ = frame
    model = ColumnTransformer(
        [
            ("num", SimpleImputer(), make_column_selector(dtype_include=np.number)),
            ("cat", OneHotEncoder(sparse_output=False), make_column_selector(pattern="^col")),
        ],
        remainder="drop",
    ).set_output(transform="pandas")
    model.fit(df)
    loaded = skvault.loads(skvault.dumps(model))
    assert_same(vars(model), vars(loaded), "ColumnTransformer")
    pd.testing.assert_frame_equal(model.transform(df), loaded.transform(df))


def test_feature_union(clf_data):
    X, y = clf_data
    union = FeatureUnion(
        [("pca", PCA(n_components=2)), ("scaled", StandardScaler())],
        transformer_weights={"pca": 2.0, "scaled": 0.5},
    )
    round_trip(make_pipeline(union, LogisticRegression()).fit(X, y), X, y)
    round_trip(union.fit(X), X)


def test_grid_search_with_scorers(clf_data):
    X, y = clf_data
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression()),
        {"logisticregression__C": [0.1, 1.0, 10.0]},
        scoring={"accuracy": "accuracy", "f2": make_scorer(fbeta_score, beta=2, average="macro")},
        refit="accuracy",
        cv=KFold(3, shuffle=True, random_state=0),
    )
    loaded = round_trip(_quiet(search.fit, X, y), X, y)
    assert loaded.best_params_ == search.best_params_
    assert set(loaded.scorer_) == {"accuracy", "f2"}
    # the stored scorers still work, with their keyword arguments
    for name, scorer in search.scorer_.items():
        assert loaded.scorer_[name](loaded, X, y) == scorer(search, X, y)
    assert isinstance(loaded.cv_results_["param_logisticregression__C"], np.ma.MaskedArray)


def test_searches_over_ranges(clf_data):
    # range(...) is how most people write an integer grid; it loads with default trust
    X, y = clf_data
    grid = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": range(1, 4)}, cv=3)
    loaded = round_trip(grid.fit(X, y), X, y)
    assert loaded.param_grid == {"max_depth": range(1, 4)}
    assert loaded.best_params_ == grid.best_params_
    randomized = RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"min_samples_leaf": range(1, 30, 3)},
        n_iter=3,
        cv=3,
        random_state=0,
    )
    loaded = round_trip(randomized.fit(X, y), X, y)
    assert loaded.param_distributions == {"min_samples_leaf": range(1, 30, 3)}


def test_randomized_search_with_lists(clf_data):
    X, y = clf_data
    search = RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0),
        [
            {"max_depth": [2, 3, None], "criterion": ["gini", "entropy"]},
            {"min_samples_leaf": [1, 5, 10]},
        ],
        n_iter=5,
        scoring="balanced_accuracy",
        refit=True,
        cv=3,
        random_state=0,
    )
    loaded = round_trip(search.fit(X, y), X, y)
    assert loaded.scorer_(loaded, X, y) == search.scorer_(search, X, y)
    assert loaded.param_distributions == search.param_distributions


def test_randomized_search_with_scipy_distributions_is_refused(clf_data):
    """scipy.stats distributions run exec() when restored: no safe form, refused at dump."""
    X, y = clf_data
    search = RandomizedSearchCV(
        LogisticRegression(),
        {"C": stats.loguniform(1e-2, 1e2), "fit_intercept": [True, False]},
        n_iter=3,
        cv=3,
        random_state=0,
    )
    _quiet(search.fit, X, y)
    with pytest.raises(skvault.UnsupportedTypeError, match="exec") as info:
        skvault.dumps(search)
    assert info.value.path == "param_distributions['C']"
    assert info.value.type_name == "scipy.stats._distn_infrastructure.rv_continuous_frozen"
    with pytest.raises(skvault.UnsupportedTypeError, match=r"scipy\.stats distribution"):
        skvault.dumps({"dist": stats.randint(1, 5)})
    # what the message suggests works: the refitted best estimator alone
    round_trip(search.best_estimator_, X, y)


@pytest.mark.parametrize("kind", ["object", "ext"])
def test_scipy_distribution_is_refused_even_when_trusted(kind):
    """A hostile file cannot reach scipy's exec() by having the user trust a distribution."""
    name = "scipy.stats._continuous_distns.norm_gen"
    payload = "import builtins\nbuiltins.SKVAULT_PAYLOAD_RAN = True\n"
    state = {"_parse_arg_template": payload, "shapes": None}
    if kind == "object":
        node = {"kind": kind, "type": name, "names": list(state), "values": list(state.values())}
    else:
        node = {"kind": kind, "type": name, "construct": "new", "args": [], "state": {"ref": 0}}
    nodes = [node] if kind == "object" else [_dict_node(state), node]
    data = craft({"nodes": nodes, "root": {"ref": len(nodes) - 1}})
    assert skvault.get_untrusted_types(data) == [name]
    with pytest.raises(skvault.FormatError, match="can never be loaded safely"):
        skvault.loads(data, trusted=[name])
    assert not hasattr(builtins, "SKVAULT_PAYLOAD_RAN")


def _dict_node(state: dict) -> dict:
    return {"kind": "dict", "keys": list(state), "values": list(state.values())}


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_classifier(clf_data, method):
    X, y = clf_data
    model = CalibratedClassifierCV(make_pipeline(StandardScaler(), LinearSVC()), method=method)
    round_trip(model.fit(X, y), X, y)


def test_stacking_classifier(clf_data):
    X, y = clf_data
    model = StackingClassifier(
        [
            ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
            ("forest", RandomForestClassifier(n_estimators=5, random_state=0)),
            ("svc", SVC()),  # stacked through its decision_function
        ],
        final_estimator=LogisticRegression(),
        passthrough=True,
        cv=3,
    )
    loaded = round_trip(model.fit(X, y), X, y)
    assert list(loaded.named_estimators_) == list(model.named_estimators_)


def test_function_transformer_with_ufuncs(clf_data):
    X, _ = clf_data
    X = np.abs(X)
    target = X @ np.arange(1.0, 7.0)
    transformer = FunctionTransformer(np.log1p, inverse_func=np.expm1, check_inverse=True)
    model = make_pipeline(transformer, Ridge()).fit(X, target)
    loaded = round_trip(model, X, target)
    assert loaded[0].func is np.log1p and loaded[0].inverse_func is np.expm1
    round_trip(transformer.fit(X), X)
    regressor = TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1)
    round_trip(regressor.fit(X, target), X, target)


def test_tfidf_and_sgd_on_text():
    docs = [
        "cheap pills buy now",
        "meeting moved to monday",
        "win money now click",
        "lunch on friday with the team",
        "buy cheap watches online",
        "project report due monday",
        "click here to win a prize",
        "notes from the team meeting",
    ] * 3
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0] * 3)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        SGDClassifier(loss="log_loss", random_state=0),
    ).fit(docs, y)
    loaded = round_trip(model, docs, y)
    assert loaded[0].vocabulary_ == model[0].vocabulary_
    new = ["win a cheap prize now", "team meeting on friday"]
    assert_same(model.predict_proba(new), loaded.predict_proba(new))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize(
    "make_model",
    [
        lambda: LogisticRegression(),
        lambda: LinearSVC(),
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: SVC(),  # keeps its support vectors as a sparse matrix
        lambda: KNeighborsClassifier(algorithm="brute"),  # keeps the sparse training data
    ],
    ids=["LogisticRegression", "LinearSVC", "DecisionTreeClassifier", "SVC", "KNeighbors"],
)
def test_models_fitted_on_sparse_input(clf_data, fmt, make_model):
    X, y = clf_data
    Xs = sp.csr_matrix(np.where(X > 0.5, X, 0.0)).asformat(fmt)
    model = _quiet(make_model().fit, Xs, y)
    round_trip(model, Xs, y)
    round_trip(model, Xs.toarray(), y)


def test_random_state_instances(clf_data):
    X, y = clf_data
    shared = np.random.RandomState(7)
    forest = RandomForestClassifier(n_estimators=4, random_state=shared)
    sgd = SGDClassifier(random_state=shared)
    model = Pipeline([("scale", StandardScaler()), ("forest", forest)]).fit(X, y)
    loaded = round_trip(model, X, y)
    assert isinstance(loaded[-1].random_state, np.random.RandomState)
    # the generator's state after fitting, not just its seed
    assert loaded[-1].random_state.randint(1 << 30) == shared.randint(1 << 30)
    # one RandomState shared by two estimators stays one object
    both = skvault.loads(skvault.dumps([forest, _quiet(sgd.fit, X, y)]))
    assert both[0].random_state is both[1].random_state


def test_generator_random_state(clf_data):
    """scikit-learn refuses Generators as random_state; a user estimator may accept one."""
    X, y = clf_data
    rng = np.random.default_rng(3)
    model = ShrunkCentroidClassifier(random_state=rng).fit(X, y)
    name = f"{ShrunkCentroidClassifier.__module__}.{ShrunkCentroidClassifier.__qualname__}"
    loaded = round_trip(model, X, y, trusted=[name])
    assert isinstance(loaded.random_state, np.random.Generator)
    assert loaded.rng_ is loaded.random_state  # default_rng returns the Generator it is given
    assert loaded.rng_.integers(1 << 40) == rng.integers(1 << 40)
    with pytest.raises(ValueError, match="Generator"):
        RandomForestClassifier(n_estimators=2, random_state=np.random.default_rng(0)).fit(X, y)


# -- a user's estimator class -------------------------------------------------------------------


def test_user_estimator_needs_explicit_trust(clf_data, tmp_path):
    X, y = clf_data
    name = f"{ShrunkCentroidClassifier.__module__}.{ShrunkCentroidClassifier.__qualname__}"
    model = make_pipeline(StandardScaler(), ShrunkCentroidClassifier(0.2, random_state=0))
    model.fit(X, y)
    path = tmp_path / "user.skv"
    skvault.dump(model, path)
    assert skvault.get_untrusted_types(path) == [name]
    with pytest.raises(skvault.UntrustedTypeError) as info:
        skvault.load(path)
    assert info.value.types == [name]
    assert name in str(info.value)
    loaded = skvault.load(path, trusted=[name])
    assert isinstance(loaded[-1], ShrunkCentroidClassifier)
    assert_same(vars(model), vars(loaded), "Pipeline")
    assert_same(model.predict(X), loaded.predict(X))
    assert_same(model.decision_function(X), loaded.decision_function(X))


# -- what dump refuses --------------------------------------------------------------------------


def _closure() -> Callable[[np.ndarray], np.ndarray]:
    scale = 3.0

    def times_scale(x: np.ndarray) -> np.ndarray:
        return x * scale

    return times_scale


@pytest.mark.parametrize(
    ("func", "reason"),
    [(lambda x: x + 1, "lambda"), (_closure(), "closure")],
    ids=["lambda", "closure"],
)
def test_function_transformer_with_local_function_is_refused(clf_data, func, reason):
    X, y = clf_data
    model = make_pipeline(StandardScaler(), FunctionTransformer(func), LogisticRegression())
    model.fit(X, y)
    with pytest.raises(skvault.UnsupportedTypeError, match=reason) as info:
        skvault.dumps(model)
    assert info.value.path == "steps[1][1].func"
    assert "steps[1][1].func" in str(info.value)


def test_open_file_inside_an_object_is_refused(clf_data, tmp_path):
    X, y = clf_data
    model = LogisticRegression().fit(X, y)
    with open(tmp_path / "log.txt", "w") as log:
        model.log_ = log
        with pytest.raises(skvault.UnsupportedTypeError, match="open files") as info:
            skvault.dumps({"model": model})
    assert info.value.path == "['model'].log_"


def test_slots_only_instance_is_refused(clf_data):
    X, y = clf_data
    model = LogisticRegression().fit(X, y)
    model.extra_ = SlotsOnly(np.ones(3))
    with pytest.raises(skvault.UnsupportedTypeError, match="no safe representation") as info:
        skvault.dumps(model)
    assert info.value.path == "extra_"
    assert info.value.type_name == f"{SlotsOnly.__module__}.SlotsOnly"


def test_custom_reduce_to_a_function_is_refused():
    with pytest.raises(skvault.UnsupportedTypeError, match="no safe representation") as info:
        skvault.dumps({"steps": [ReducesToFunction()]})
    assert info.value.path == "['steps'][0]"
    assert info.value.type_name == f"{ReducesToFunction.__module__}.ReducesToFunction"
