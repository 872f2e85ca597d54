"""Fuzzing the load and convert paths with mutated legacy files: skvault's errors only.

Every mutation of a real pickle, joblib, skops or ``.npy`` file either loads or is refused with
a `SkvaultError` -- never another exception, a hang, or unbounded memory. (The static audit has
its own fuzz tests in test_audit.py and test_pickle_scan.py.)
"""

from __future__ import annotations

import io
import pickle
import tracemalloc

import joblib
import numpy as np
import pytest
import skops.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.errors import SkvaultError

MEMORY_BOUND = 64 << 20  # the seeds are a few kB: any mutation must stay far below this


def _model():
    X, y = load_iris(return_X_y=True)
    return make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0)
    ).fit(X, y)


def _seeds() -> dict[str, bytes]:
    model = _model()
    seeds = {f"pickle{p}": pickle.dumps(model, protocol=p) for p in (0, 2, 5)}
    for compress in (0, ("zlib", 3), ("lz4", 3)):
        buf = io.BytesIO()
        joblib.dump(model, buf, compress=compress)
        seeds[f"joblib-{compress if compress == 0 else compress[0]}"] = buf.getvalue()
    seeds["skops"] = skops.io.dumps(model)
    buf = io.BytesIO()
    np.save(buf, np.arange(12.0).reshape(3, 4))
    seeds["npy"] = buf.getvalue()
    return seeds


SEEDS = _seeds()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 16)),
)


def _mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        if not out:
            break
        i = where % len(out)
        if kind == "flip":
            out[i] ^= value
        elif kind == "cut":
            del out[i:]
        elif kind == "insert":
            out.insert(i, value)
        else:
            del out[i : i + value]
    return bytes(out)


def _load_or_refuse(data: bytes) -> None:
    try:
        skvault.loads(data, allow_pickle=True)
    except SkvaultError:
        pass
    try:
        skvault.convert(data, io.BytesIO())
    except SkvaultError:
        pass


@pytest.mark.parametrize("seed", sorted(SEEDS))
@settings(
    max_examples=60,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_load_or_are_refused(seed, edits):
    _load_or_refuse(_mutate(SEEDS[seed], edits))


@pytest.mark.parametrize("seed", ["pickle5", "joblib-zlib", "skops"])
@settings(max_examples=15, deadline=None)
@given(edits=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_files_use_bounded_memory(seed, edits):
    data = _mutate(SEEDS[seed], edits)
    tracemalloc.start()
    try:
        _load_or_refuse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


def test_the_seeds_themselves_load():
    # the fuzzing starts from files that work: a refusal of every mutation would prove nothing
    X, _ = load_iris(return_X_y=True)
    expected = _model().predict(X)
    for name, data in SEEDS.items():
        loaded = skvault.loads(data, allow_pickle=True)
        if name == "npy":
            np.testing.assert_array_equal(loaded, np.arange(12.0).reshape(3, 4))
        else:
            np.testing.assert_array_equal(loaded.predict(X), expected)
