"""Every scikit-learn estimator that can be fitted generically survives a round trip exactly.

Each estimator that scikit-learn's own test-instance generator builds is fitted on small data
chosen from its tags, saved with `skvault.dumps`, loaded back with the default trust (no
``trusted=``), and compared with the original: first all fitted attributes, recursively (arrays
and floats bit for bit, see ``_compare``), then the output of every public output method it has.
Estimators that only offer ``fit_predict`` / ``fit_transform`` are compared by their attributes.
"""

from __future__ import annotations

import mmap
import pickle
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.cluster import Birch
from sklearn.datasets import make_blobs
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.experimental import (  # noqa: F401 - all_estimators() then lists these too
    enable_halving_search_cv,
    enable_iterative_imputer,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import linear_kernel, pairwise_distances
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import all_estimators, get_tags
from sklearn.utils._test_common.instance_generator import _construct_instances
from sklearn.utils._testing import set_random_state
from sklearn.utils.estimator_checks import _is_pairwise_metric

import skvault

from ._compare import assert_same, first_difference

# Output methods compared between the original and the loaded estimator, in this order. A method
# that raises on the original must raise the same exception type on the copy.
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "predict_joint_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",  # applied to the output of transform
    "score_samples",
    "score",
    "kneighbors",
    "apply",
    "decision_path",
)

# Estimators that all_estimators() lists but test_round_trip does not fit, with the reason.
EXCLUDED: dict[str, str] = {}

# Cases whose floating-point results may differ from the original by 1e-12 relative, with the
# reason. An entry is allowed only while a pickle round trip differs from the original as well
# (test_round_trip checks that); none needs it with the installed versions.
TOLERANCE: dict[str, str] = {}


# Hyper-parameters that only make a slow fit faster (the generator's instances are for
# scikit-learn's checks, some of which need the full run)
FAST_PARAMS: dict[str, dict[str, Any]] = {"TSNE": {"max_iter": 250}}


def _quiet(fn: Callable[..., Any], *args: Any) -> Any:
    # warnings while building, fitting or predicting on tiny data (convergence, deprecations)
    # are scikit-learn's, not skvault's; dumps and loads run outside this
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


# -- data -----------------------------------------------------------------------------------


def _blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    centers = [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [-2.0, 2.0, 0.0]]
    return make_blobs(n_samples=n, centers=centers, cluster_std=0.6, random_state=seed)


_DOCS = [
    "the quick brown fox jumps over the lazy dog",
    "never jump over the lazy dog quickly",
    "a brown dog and a quick fox are friends",
    "the dog sleeps while the fox runs",
    "quick thinking saves the lazy brown fox",
    "foxes and dogs do not often share a den",
]

# supervised transformers that select or encode by class (the rest get a continuous target)
_LABEL_TARGETS = {
    "GenericUnivariateSelect",
    "NeighborhoodComponentsAnalysis",
    "SelectFdr",
    "SelectFpr",
    "SelectFwe",
    "TargetEncoder",
}


class Data:
    """Inputs for one estimator, chosen from its tags: fit's, and the output methods'."""

    def __init__(self, est: Any) -> None:
        tags = get_tags(est)
        X, labels = _blobs(60, seed=0)
        # test points near training points: radius-based models then find neighbours
        noise = np.random.RandomState(1).normal(scale=0.05, size=(20, X.shape[1]))
        X_test, labels_test = X[::3] + noise, labels[::3]
        self.score_args: tuple = ()
        if tags.target_tags.one_d_labels:  # LabelEncoder, LabelBinarizer: fit(y), transform(y)
            self.fit_args: tuple = (labels,)
            self.eval_args: tuple = (labels_test,)
        elif tags.target_tags.two_d_labels:  # MultiLabelBinarizer: sets of labels
            self.fit_args = ([{int(a), int(a + 1) % 3} for a in labels],)
            self.eval_args = ([{int(a)} for a in labels_test],)
        elif tags.input_tags.string and not tags.input_tags.two_d_array:  # text vectorizers
            self.fit_args = (_DOCS,)
            self.eval_args = (_DOCS[::-1],)
        elif tags.input_tags.dict:  # DictVectorizer, FeatureHasher
            records = [{"colour": c, "size": float(s)} for c, s in zip("rgbrgb", range(6))]
            self.fit_args = (records,)
            self.eval_args = ([*records[::2], {"colour": "y", "weight": 2.0}],)
        elif tags.input_tags.three_d_array:  # PatchExtractor: a stack of images
            images = np.random.RandomState(0).uniform(size=(3, 20, 20))
            self.fit_args = (images,)
            self.eval_args = (images[:2],)
        else:
            y, y_test = self._targets(est, tags, X, labels, X_test, labels_test)
            X, X_test = self._features(est, tags, X, X_test)
            self.fit_args = (X, y)
            self.eval_args = (X_test,)
            self.score_args = (X_test, y_test)

    @staticmethod
    def _targets(
        est: Any, tags: Any, X: np.ndarray, labels: np.ndarray, X_test: np.ndarray, labels_test
    ) -> tuple[np.ndarray, np.ndarray]:
        y, y_test = labels, labels_test
        classifier = is_classifier(est)
        if is_regressor(est) or (
            not classifier
            and tags.target_tags.required
            and type(est).__name__ not in _LABEL_TARGETS
        ):
            coef = np.array([1.5, -2.0, 0.5])
            y, y_test = X @ coef + 0.1 * labels, X_test @ coef + 0.1 * labels_test
            if tags.target_tags.positive_only:
                y, y_test = y - y.min() + 1.0, y_test - y.min() + 1.0
        elif tags.classifier_tags is not None and not tags.classifier_tags.multi_class:
            y, y_test = (labels == 0).astype(int), (labels_test == 0).astype(int)
        if tags.target_tags.multi_output and not tags.target_tags.single_output:
            if classifier:  # multilabel: one binary column per class
                y, y_test = np.eye(3, dtype=int)[labels], np.eye(3, dtype=int)[labels_test]
            else:
                y, y_test = np.c_[y, 2 * y], np.c_[y_test, 2 * y_test]
        return y, y_test

    @staticmethod
    def _features(
        est: Any, tags: Any, X: np.ndarray, X_test: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        inputs = tags.input_tags
        if inputs.one_d_array:
            X, X_test = X[:, 0], X_test[:, 0]
        if inputs.positive_only or type(est).__name__ == "SkewedChi2Sampler":
            low = min(X.min(), X_test.min())
            X, X_test = X - low, X_test - low
        if inputs.categorical:
            dtype = np.float64 if inputs.allow_nan else np.int32
            low = min(X.min(), X_test.min())
            X, X_test = np.round(X - low).astype(dtype), np.round(X_test - low).astype(dtype)
        if inputs.allow_nan and X.ndim == 2:
            # missing values exercise the estimators' missing-value state (bins, masks, ...)
            X, X_test = X.copy(), X_test.copy()
            X[::7, 1] = np.nan
            X_test[::5, 1] = np.nan
        if _is_pairwise_metric(est):
            X, X_test = pairwise_distances(X), pairwise_distances(X_test, X)
        elif inputs.pairwise:
            X, X_test = linear_kernel(X), linear_kernel(X_test, X)
        return X, X_test


def fit(est: Any) -> tuple[Any, Data]:
    """Fit a fresh clone of ``est`` on data that suits its tags."""
    if isinstance(est, FrozenEstimator):  # fitted already; fit() is a no-op
        return est, Data(est)
    est = _quiet(clone, est)
    est.set_params(**FAST_PARAMS.get(type(est).__name__, {}))
    set_random_state(est)
    data = Data(est)
    _quiet(est.fit, *data.fit_args)
    return est, data


# -- cases ----------------------------------------------------------------------------------


def _short(value: Any) -> str:
    """A compact label for a hyper-parameter value, used in test ids."""
    if hasattr(value, "get_params"):
        steps = getattr(value, "steps", None)
        if steps is not None:
            return f"{type(value).__name__}({'+'.join(_short(s) for _, s in steps)})"
        return type(value).__name__
    if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return "+".join(_short(v[1]) for v in value)
    return str(value)


def _frozen() -> FrozenEstimator:
    # the generator cannot build it: it wraps an estimator that is fitted already
    X, y = _blobs()
    return FrozenEstimator(LogisticRegression().fit(X, y))


def _instances(name: str, cls: type) -> list[Any]:
    if name == "FrozenEstimator":
        return [_frozen()]
    return _quiet(lambda: list(_construct_instances(cls)))


def _cases() -> Iterator[Any]:
    """One pytest param per instance; a class with several gets its differing params in the id."""
    for name, cls in all_estimators():
        if name in EXCLUDED:
            continue
        instances = _instances(name, cls)
        params = [est.get_params(deep=False) for est in instances]
        differing = [k for k in params[0] if len({_short(p.get(k)) for p in params}) > 1]
        # search estimators differ in their grid too; the wrapped estimator names them enough
        differing = [k for k in differing if k in ("estimator", "steps")] or differing
        for est, p in zip(instances, params):
            label = name
            if len(instances) > 1:
                label += "-" + ",".join(
                    _short(p[k]) if k in ("estimator", "steps") else f"{k}={_short(p[k])}"
                    for k in differing
                )
            yield pytest.param(est, id=label)


CASES = list(_cases())


def test_case_ids_are_unique():
    counts = Counter(case.id for case in CASES)
    assert [name for name, n in counts.items() if n > 1] == []


def test_every_estimator_is_covered():
    """Each class all_estimators() lists is fitted here or excluded with a reason."""
    covered = {type(case.values[0]).__name__ for case in CASES}
    names = {name for name, _ in all_estimators()}
    assert names - covered == set(EXCLUDED)
    assert len(covered) >= 200
    assert set(TOLERANCE) <= {case.id for case in CASES}


# -- the round trip ---------------------------------------------------------------------------


def _outputs(est: Any, data: Data) -> dict[str, Any]:
    """Call every output method ``est`` has; an exception is recorded by its type."""
    out: dict[str, Any] = {}
    for method in OUTPUT_METHODS:
        if not hasattr(est, method):
            continue
        if method == "inverse_transform":
            if isinstance(out.get("transform", type), type):
                continue
            args: tuple = (out["transform"],)
        elif method == "score":
            args = data.score_args or data.eval_args
        else:
            args = data.eval_args
        try:
            out[method] = _quiet(getattr(est, method), *args)
        except Exception as exc:
            out[method] = type(exc)
    return out


def check_round_trip(est: Any, data: Data, loaded: Any, *, rtol: float = 0.0) -> None:
    """Compare the fitted state, then the outputs, of ``est`` and its loaded copy."""
    assert type(loaded) is type(est)
    # state first: an output method may advance a stored random generator
    assert_same(vars(est), vars(loaded), type(est).__name__, rtol=rtol)
    expected = _outputs(est, data)
    got = _outputs(loaded, data)
    assert list(got) == list(expected)
    for method, value in expected.items():
        assert_same(value, got[method], f"{method}()", rtol=rtol)


def _warnings_of(fn: Callable[[], Any]) -> tuple[Any, list[tuple[type, str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("est", CASES)
def test_round_trip(est: Any, request: pytest.FixtureRequest) -> None:
    case_id = request.node.callspec.id
    est, data = fit(est)
    blob = skvault.dumps(est)
    loaded, warned = _warnings_of(lambda: skvault.loads(blob))
    pickled, pickle_warned = _warnings_of(lambda: pickle.loads(pickle.dumps(est)))
    # loading warns exactly when unpickling does (deprecated classes warn when constructed)
    assert warned == pickle_warned
    if case_id in TOLERANCE:
        # the entry is justified only while pickle cannot reproduce the outputs either
        differs = first_difference(_outputs(est, data), _outputs(pickled, data))
        assert differs is not None, f"pickle round-trips {case_id} exactly: drop the entry"
        check_round_trip(est, data, loaded, rtol=1e-12)
    else:
        check_round_trip(est, data, loaded)


def test_birch_keeps_its_linked_leaves():
    # the CF-tree leaves form a doubly linked list (prev_leaf_ <-> next_leaf_): a cycle, which
    # the graph closes with forward references to object nodes
    X = _blobs()[0]
    birch = _quiet(Birch(n_clusters=None).fit, X)
    loaded = skvault.loads(skvault.dumps(birch))
    leaf, count = loaded.dummy_leaf_.next_leaf_, 0
    while leaf is not None:
        assert leaf.prev_leaf_.next_leaf_ is leaf
        leaf, count = leaf.next_leaf_, count + 1
    assert count == len(birch._get_leaves())
    np.testing.assert_array_equal(loaded.predict(X), birch.predict(X))


# -- memory-mapped loading --------------------------------------------------------------------


def _mmap_cases() -> Iterator[Any]:
    X, y = _blobs(3000, seed=2)  # 3000 x 3 float64: large enough for .npy members of their own
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0))
    models = {
        "tree": (DecisionTreeClassifier(random_state=0), X),
        "forest": (RandomForestClassifier(n_estimators=5, random_state=0), X),
        "hist_gradient_boosting": (HistGradientBoostingClassifier(max_iter=5), X[:600]),
        "knn_kd_tree": (KNeighborsClassifier(algorithm="kd_tree"), X),
        "knn_ball_tree": (KNeighborsClassifier(algorithm="ball_tree"), X),
        "knn_brute_sparse": (KNeighborsClassifier(algorithm="brute"), Xs),
        "logistic_sparse": (LogisticRegression(), Xs),
        "linear_svc_sparse": (LinearSVC(), Xs),
    }
    for label, (model, inputs) in models.items():
        yield pytest.param(model, inputs, y, id=label)


@pytest.mark.parametrize(("model", "X", "y"), list(_mmap_cases()))
def test_mmap_load(model: Any, X: Any, y: np.ndarray, tmp_path: Any) -> None:
    model = model.fit(X, y[: X.shape[0]])
    path = tmp_path / "model.skv"
    skvault.dump(model, path)
    loaded = skvault.load(path, mmap=True)
    assert_same(vars(model), vars(loaded), type(model).__name__)
    for method in ("predict", "predict_proba", "decision_function", "kneighbors"):
        if hasattr(model, method):
            assert_same(getattr(model, method)(X[:200]), getattr(loaded, method)(X[:200]))
    mapped = [a for a in _arrays(loaded) if _maps_the_file(a)]
    assert mapped, "no array of the loaded model is a view of the mapped file"
    assert not any(a.flags.writeable for a in mapped)
    # and an ordinary load copies: nothing refers to the file afterwards
    assert not any(_maps_the_file(a) for a in _arrays(skvault.load(path)))


def _maps_the_file(a: np.ndarray) -> bool:
    base: Any = a
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return False


def _arrays(obj: Any, seen: set[int] | None = None) -> Iterator[np.ndarray]:
    """The ndarrays reachable from ``obj`` through attributes, containers and pickled state."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
        return
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif sp.issparse(obj):
        children = [obj.data, obj.indices, obj.indptr]
    elif hasattr(obj, "__dict__"):
        children = vars(obj).values()
    elif hasattr(obj, "__getstate__") and type(obj).__module__.startswith("sklearn."):
        children = [obj.__getstate__()]
    else:
        return
    for child in children:
        yield from _arrays(child, seen)


def test_comparison_sees_a_one_bit_change():
    """The comparison itself: a single flipped bit deep in a tree's nodes is a difference."""
    X, y = _blobs()
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    assert first_difference(vars(tree), vars(pickle.loads(pickle.dumps(tree)))) is None
    bumped = pickle.loads(pickle.dumps(tree))
    state = bumped.tree_.__getstate__()
    state["nodes"]["threshold"][0] = np.nextafter(state["nodes"]["threshold"][0], np.inf)
    bumped.tree_.__setstate__(state)
    assert first_difference(vars(tree), vars(bumped)) is not None
    assert first_difference(0.0, -0.0) is not None
    assert first_difference(np.float32(1), np.float64(1)) is not None
    assert first_difference((1,), [1]) is not None
