"""Write the committed fixture files of the current .skv format version.

Run once per released format version, never again for that version: the files must keep
loading in every later skvault (tests/format/test_fixtures.py). Expected outputs are computed by
scikit-learn on the in-memory models at generation time and stored beside the files.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]


def containers() -> dict:
    """A graph touching every node kind that is not an estimator; rebuilt by the test."""
    structured = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "<U3")])
    structured["a"] = [1, 2, 3]
    structured["c"] = ["x", "yy", "zzz"]
    return {
        "none": None,
        "bools": (True, False),
        "ints": [0, -1, 2**62, 2**64 + 1, -(2**70)],
        "floats": [0.1, -0.0, float("nan"), float("inf"), float("-inf"), 1e300],
        "complex": complex(1.5, -2.0),
        "text": "héllo\u2603",
        "bytes": b"\x00\x01\xff",
        "bytearray": bytearray(b"abc"),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        (1, "tuple", None): "non-string key",
        3.5: "float key",
        "slice": slice(1, None, 2),
        "f8": np.arange(12.0).reshape(3, 4),
        "f_order": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "big": np.linspace(0.0, 1.0, 20_000),
        "int_empty": np.zeros((0, 3), dtype=np.int64),
        "bool": np.array([True, False]),
        "complex128": np.array([1 + 2j, -3j]),
        "unicode": np.array(["a", "bcd"]),
        "bytes_arr": np.array([b"ab", b"c"]),
        "datetime": np.array(["2020-01-01", "2021-06-30"], dtype="M8[D]"),
        "structured": structured,
        "objects": np.array(["x", 1, None, (2, 3)], dtype=object),
        "masked": np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0),
        "scalars": [np.float32(1.5), np.int16(-7), np.bool_(True), np.str_("s"), np.uint64(2**63)],
        "dtype": np.dtype("<f4"),
        "random_state": np.random.RandomState(42),
        "generator": np.random.default_rng(7),
        "ufunc": np.log1p,
        "type": np.float64,
        "csr": sp.csr_matrix(np.eye(4)),
        "date_scalar": np.datetime64(datetime.date(2024, 2, 29)),
    }


def models() -> dict:
    from sklearn.cluster import Birch
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X, y = load_iris(return_X_y=True)
    rng = np.random.RandomState(0)
    Xk = rng.normal(size=(2_000, 5))
    yk = (Xk[:, 0] > 0).astype(int)
    return {
        "logistic": (LogisticRegression(max_iter=1000).fit(X, y), X, None),
        "pipeline_hgb": (
            make_pipeline(
                FunctionTransformer(np.log1p),
                StandardScaler(),
                HistGradientBoostingClassifier(max_iter=20, random_state=0),
            ).fit(X, y),
            X,
            None,
        ),
        "forest_zlib": (RandomForestClassifier(8, random_state=0).fit(X, y), X, "zlib"),
        "knn_kdtree": (KNeighborsClassifier(algorithm="kd_tree").fit(Xk, yk), Xk[:100], None),
        # its leaves link both ways: cycles closed by forward references to object nodes
        "birch": (Birch(n_clusters=3).fit(X), X, None),
    }


def main() -> None:
    import skvault
    from skvault.format import FORMAT_VERSION

    out = ROOT / "tests" / "fixtures" / f"v{FORMAT_VERSION}"
    if out.exists() and any(out.glob("*.skv")) and "--force" not in sys.argv:
        sys.exit(f"{out} already has fixtures: released files are never rewritten")
    out.mkdir(parents=True, exist_ok=True)
    skvault.dump(containers(), out / "containers.skv")
    expected = {}
    for name, (model, X, compress) in models().items():
        skvault.dump(model, out / f"{name}.skv", compress=compress)
        expected[f"{name}__X"] = X
        expected[f"{name}__predict"] = model.predict(X)
        if hasattr(model, "predict_proba"):
            expected[f"{name}__predict_proba"] = model.predict_proba(X)
    np.savez(out / "expected.npz", **expected)
    print(f"wrote fixtures to {out}")


if __name__ == "__main__":
    main()
