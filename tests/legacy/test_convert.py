"""``skvault.convert`` and ``skvault convert``: legacy files become ``.skv`` artifacts.

Every estimator of the conformance suite (``conformance/test_estimators.py``: same instances,
same data, same comparison of fitted state and outputs) is saved as a pickle of protocols 2 to 5
and as a joblib file, plain and compressed; each file is audited safe, converted, loaded back
from the ``.skv`` with default trust, and compared with the original. Protocols 0 and 1 and
every other joblib compression run on a few.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shlex
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

import skvault
from conformance.test_estimators import CASES, check_round_trip, fit
from skvault.cli._app import cli
from skvault.errors import FormatError, UntrustedTypeError

# every compression and the oldest protocols for a few: trees, boosting, neighbors, searches
FEW = {
    "RandomForestRegressor",
    "HistGradientBoostingClassifier",
    "KNeighborsClassifier-metric=minkowski,n_neighbors=2",
    "GridSearchCV-Pipeline(PCA+LogisticRegression)",
}
COMPRESSIONS = ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")


def _write(est: Any, fmt: str, path: Path) -> None:
    if fmt.startswith("pickle"):
        path.write_bytes(pickle.dumps(est, protocol=int(fmt.removeprefix("pickle"))))
    elif fmt == "joblib":
        joblib.dump(est, path)
    else:
        joblib.dump(est, path, compress=(fmt.removeprefix("joblib-"), 3))


def _convert_and_compare(est: Any, data: Any, fmt: str, folder: Path) -> None:
    src, dst = folder / f"model-{fmt}.bin", folder / f"model-{fmt}.skv"
    _write(est, fmt, src)
    audit = skvault.audit(src)
    assert audit.safe, str(audit)
    # warnings are scikit-learn's (deprecated classes warn when created, as with pickle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = skvault.convert(src, dst)
        loaded = skvault.load(dst)
    # a joblib file without arrays is a plain pickle
    expected = "pickle" if fmt.startswith("pickle") else fmt
    assert report["format"] in ({"joblib", "pickle"} if fmt == "joblib" else {expected}), fmt
    check_round_trip(est, data, loaded)


@pytest.mark.parametrize("est", CASES)
def test_convert_every_estimator(est: Any, tmp_path: Path) -> None:
    est, data = fit(est)
    for fmt in ("pickle2", "pickle3", "pickle4", "pickle5", "joblib", "joblib-zlib"):
        _convert_and_compare(est, data, fmt, tmp_path)


@pytest.mark.parametrize("est", [case for case in CASES if case.id in FEW])
def test_convert_oldest_protocols_and_every_compression(est: Any, tmp_path: Path) -> None:
    est, data = fit(est)
    for fmt in ["pickle0", "pickle1", *(f"joblib-{c}" for c in COMPRESSIONS[1:])]:
        _convert_and_compare(est, data, fmt, tmp_path)


def test_subset_names_exist() -> None:
    assert {case.id for case in CASES} >= FEW


# -- provenance and report ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def forest() -> tuple[RandomForestClassifier, np.ndarray]:
    X, y = make_classification(n_samples=100, n_features=5, random_state=0)
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X


def test_converted_from_is_recorded(forest: Any, tmp_path: Path) -> None:
    model, X = forest
    src = tmp_path / "forest.joblib.gz"
    joblib.dump(model, src, compress=("gzip", 3))
    raw = src.read_bytes()
    report = skvault.convert(src, tmp_path / "forest.skv", description="from the archive")
    meta = skvault.read_metadata(tmp_path / "forest.skv")
    assert meta["converted_from"] == {
        "format": "joblib-gzip",
        "protocol": pickle.DEFAULT_PROTOCOL,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "name": "forest.joblib.gz",
        "trusted": [],
    }
    assert meta["description"] == "from the archive"
    assert meta["source"] is None  # the converting script is not the training code
    assert report == {
        "source": str(src),
        "destination": str(tmp_path / "forest.skv"),
        "format": "joblib-gzip",
        "protocol": pickle.DEFAULT_PROTOCOL,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "trusted": [],
    }
    np.testing.assert_array_equal(
        skvault.load(tmp_path / "forest.skv").predict(X), model.predict(X)
    )


def test_convert_file_objects_and_bytes(forest: Any) -> None:
    model, X = forest
    data = pickle.dumps(model, protocol=4)
    for src in (data, io.BytesIO(data)):
        out = io.BytesIO()
        report = skvault.convert(src, out)
        assert report["source"] is None and report["destination"] is None
        assert report["sha256"] == hashlib.sha256(data).hexdigest()
        np.testing.assert_array_equal(skvault.loads(out.getvalue()).predict(X), model.predict(X))


def test_convert_with_provenance_keywords(forest: Any, tmp_path: Path) -> None:
    model, X = forest
    src = tmp_path / "forest.pkl"
    src.write_bytes(pickle.dumps(model))
    skvault.convert(src, tmp_path / "forest.skv", X=X[:10], tags=["legacy"], compress="zlib")
    meta = skvault.read_metadata(tmp_path / "forest.skv")
    assert meta["tags"] == ["legacy"]
    assert meta["golden"] is not None
    assert skvault.load(tmp_path / "forest.skv", verify=True).n_estimators == 5
    with pytest.raises(TypeError, match="unexpected keyword"):
        skvault.convert(src, tmp_path / "other.skv", allow_pickle=True)
    # the training data reference takes its label column as dump does
    np.savez(tmp_path / "train.npz", X=X, label=model.predict(X))
    skvault.convert(src, tmp_path / "data.skv", data=tmp_path / "train.npz", target="label")
    assert skvault.read_metadata(tmp_path / "data.skv")["data"]["target"] == "label"
    with pytest.raises(ValueError, match="is not a column"):
        skvault.convert(src, tmp_path / "bad.skv", data=tmp_path / "train.npz", target="nope")
    assert not (tmp_path / "bad.skv").exists()


def test_convert_refuses_to_overwrite_its_source(forest: Any, tmp_path: Path) -> None:
    src = tmp_path / "forest.pkl"
    src.write_bytes(pickle.dumps(forest[0]))
    with pytest.raises(ValueError, match="source file itself"):
        skvault.convert(src, src)
    assert src.read_bytes() == pickle.dumps(forest[0])


# -- refusals ----------------------------------------------------------------------------------


class _System:
    def __init__(self, marker: Path) -> None:
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self) -> tuple[Any, tuple]:
        return os.system, (self.command,)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran"


def test_convert_refuses_hostile_files_and_writes_nothing(tmp_path: Path, marker: Path) -> None:
    src, dst = tmp_path / "evil.pkl", tmp_path / "evil.skv"
    src.write_bytes(pickle.dumps({"model": _System(marker)}))
    with pytest.raises(UntrustedTypeError) as info:
        skvault.convert(src, dst)
    assert info.value.types == [f"{os.system.__module__}.system"]
    with pytest.raises(UntrustedTypeError):
        skvault.convert(src, dst, trusted=[f"{os.system.__module__}.system"])
    assert not dst.exists()


def test_convert_refuses_skv_and_unknown_files(forest: Any, tmp_path: Path) -> None:
    skvault.dump(forest[0], tmp_path / "a.skv")
    with pytest.raises(FormatError, match=r"already a \.skv artifact"):
        skvault.convert(tmp_path / "a.skv", tmp_path / "b.skv")
    with pytest.raises(FormatError, match="not a pickle"):
        skvault.convert(b"\x00hello", io.BytesIO())


def test_convert_skops_file(forest: Any, tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    model, X = forest
    skops_io.dump(model, tmp_path / "forest.skops")
    report = skvault.convert(tmp_path / "forest.skops", tmp_path / "forest.skv")
    assert report["format"] == "skops"
    assert report["protocol"] is None
    np.testing.assert_array_equal(
        skvault.load(tmp_path / "forest.skv").predict(X), model.predict(X)
    )


# -- the command line -----------------------------------------------------------------------------


def test_cli_convert(forest: Any, tmp_path: Path) -> None:
    model, X = forest
    src = tmp_path / "forest.joblib"
    joblib.dump(model, src, compress=("xz", 3))
    result = CliRunner().invoke(
        cli, ["convert", str(src), str(tmp_path / "f.skv"), "--compress", "zlib:6"]
    )
    assert result.exit_code == 0, result.output
    assert "joblib-xz" in result.output
    assert hashlib.sha256(src.read_bytes()).hexdigest() in result.output
    np.testing.assert_array_equal(skvault.load(tmp_path / "f.skv").predict(X), model.predict(X))


def test_output_in_a_missing_folder_is_named_in_the_error(forest: Any, tmp_path: Path) -> None:
    model, _ = forest
    src = tmp_path / "forest.pkl"
    src.write_bytes(pickle.dumps(model))
    target = tmp_path / "missing" / "f.skv"
    with pytest.raises(FileNotFoundError) as info:  # the API keeps the error's own type
        skvault.dump(model, target)
    assert info.value.filename == str(target)
    result = CliRunner().invoke(cli, ["convert", str(src), str(target)])
    assert result.exit_code == 1
    assert f"cannot write {target}: No such file or directory" in result.output
    assert sorted(os.listdir(tmp_path)) == ["forest.pkl"]


def test_cli_convert_refusal_lists_names(tmp_path: Path, marker: Path) -> None:
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps([_System(marker)]))
    result = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "evil.skv")])
    assert result.exit_code == 1
    assert f"{os.system.__module__}.system" in result.output
    assert not (tmp_path / "evil.skv").exists()


def test_cli_convert_trust(tmp_path: Path) -> None:
    from conformance._user_estimator import ShrunkCentroidClassifier

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    model = ShrunkCentroidClassifier(random_state=0).fit(X, y)
    name = f"{ShrunkCentroidClassifier.__module__}.ShrunkCentroidClassifier"
    src = tmp_path / "user.pkl"
    src.write_bytes(pickle.dumps(model))
    out = str(tmp_path / "user.skv")
    refused = CliRunner().invoke(cli, ["convert", str(src), out])
    assert refused.exit_code == 1
    assert name in refused.output
    result = CliRunner().invoke(cli, ["convert", str(src), out, "--trust", name])
    assert result.exit_code == 0, result.output
    assert name in result.output
    loaded = skvault.load(out, trusted=[name])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_cli_convert_bad_compression(forest: Any, tmp_path: Path) -> None:
    src = tmp_path / "forest.pkl"
    src.write_bytes(pickle.dumps(forest[0]))
    result = CliRunner().invoke(
        cli, ["convert", str(src), str(tmp_path / "f.skv"), "--compress", "brotli"]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "f.skv").exists()
