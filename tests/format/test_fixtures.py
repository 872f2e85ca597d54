"""Files written by every released format version load forever (tests/fixtures/v<N>/)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import skvault

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import containers  # noqa: E402

V1 = FIXTURES / "v1"
MODELS = ["logistic", "pipeline_hgb", "forest_zlib", "knn_kdtree", "birch"]


def same(a, b) -> bool:
    """Exact, type-preserving equality (NaN equals NaN, arrays bit for bit)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ma.MaskedArray):
        return (
            same(np.asarray(a.data), np.asarray(b.data))
            and same(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            and a.fill_value == b.fill_value
        )
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype == object:
            return all(same(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.random.RandomState):
        return same(a.get_state(legacy=False), b.get_state(legacy=False))
    if isinstance(a, np.random.Generator):
        return a.bit_generator.state == b.bit_generator.state
    if sp.issparse(a):
        return (a != b).nnz == 0 and a.dtype == b.dtype
    return a == b


def test_v1_containers_load_exactly():
    loaded = skvault.load(V1 / "containers.skv")
    expected = containers()
    assert list(loaded) == list(expected)
    for key in expected:
        assert same(loaded[key], expected[key]), key


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_v1_models_predict_as_when_written(name, mmap):
    expected = np.load(V1 / "expected.npz")
    model = skvault.load(V1 / f"{name}.skv", mmap=mmap)
    X = expected[f"{name}__X"]
    np.testing.assert_array_equal(model.predict(X), expected[f"{name}__predict"])
    if f"{name}__predict_proba" in expected:
        np.testing.assert_array_equal(model.predict_proba(X), expected[f"{name}__predict_proba"])


def test_v1_files_need_no_trust():
    for path in sorted(V1.glob("*.skv")):
        assert skvault.get_untrusted_types(path) == [], path.name
