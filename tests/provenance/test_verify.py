"""``skvault.verify``: every check, passing and failing, through the public API.

Damaged artifacts are made by editing the metadata graph of a good file and repacking it with
the test suite's own zip writer (tests/format/_crafting.py), which recomputes the digests: the
file is then sound, only what it records has changed. Version mismatches go through dump's
documented ``environment=`` override.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import (
    KFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.format import write_artifact

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "format"))
from _crafting import VERIFY_ALL_OK as ALL_OK
from _crafting import VERIFY_CHECKS as CHECKS
from _crafting import layout, repack

SKLEARN = md.version("scikit-learn")


class Unlisted:
    """A type no allow-list trusts."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture(scope="module")
def files(tmp_path_factory, iris):
    """The iris training data as .npz and .csv (target column "species")."""
    X, y = iris
    folder = tmp_path_factory.mktemp("data")
    np.savez(folder / "train.npz", X=X, y=y)
    with open(folder / "train.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["f0", "f1", "f2", "f3", "species"])
        for row, label in zip(X.tolist(), y.tolist()):
            out.writerow([repr(v) for v in row] + [label])
    return folder


def _model():
    # a tree fits in milliseconds, and cross-validation refits it many times here
    return DecisionTreeClassifier(max_depth=3, random_state=0)


@pytest.fixture(scope="module")
def tree(iris):
    return _model().fit(*iris)


@pytest.fixture(scope="module")
def expected_mean(iris):
    """The 5-fold score of the model's configuration, computed by scikit-learn alone."""
    X, y = iris
    return cross_val_score(_model(), X, y, cv=StratifiedKFold(5)).mean()


@pytest.fixture(scope="module")
def with_data(tree, iris, files):
    X, y = iris
    return skvault.dumps(tree, data=files / "train.npz", cv=5, X=X, y=y, source=False)


def _statuses(report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


# -- editing a good artifact's metadata, with the digests fixed -----------------------------------


def _edit_metadata(data: bytes, edit) -> bytes:
    """Return ``data`` with ``edit(graph, members)`` applied to its metadata.json graph."""

    def members(parts):
        doc = json.loads(parts["metadata.json"])
        edit(doc, parts)
        parts["metadata.json"] = json.dumps(doc).encode()

    def manifest(doc):
        doc["metadata"] = "metadata.json"

    return repack(data, members=members, manifest=manifest)


def _dict_node(doc, *keys):
    """Return the metadata graph's dict node that has all of ``keys``."""
    for node in doc["nodes"]:
        if node["kind"] == "dict" and all(k in node["keys"] for k in keys):
            return node
    raise AssertionError(f"no dict with keys {keys}")


def _value_node(doc, node, key):
    return doc["nodes"][node["values"][node["keys"].index(key)]["ref"]]


def _set_recorded_mean(data: bytes, value: float) -> bytes:
    def edit(doc, parts):
        cv = _dict_node(doc, "scoring", "folds", "mean", "std", "splitter")
        mean = _value_node(doc, cv, "mean")
        mean["values"][0] = value

    return _edit_metadata(data, edit)


def _shift_golden_proba(data: bytes, delta: float) -> bytes:
    """Add ``delta`` to the first recorded predict_proba value, in the buffer holding it."""

    def edit(doc, parts):
        outputs = _dict_node(doc, "predict", "predict_proba")
        node = _value_node(doc, outputs, "predict_proba")
        assert node["kind"] == "ndarray" and node["dtype"] == "<f8", node
        buffer, offset = node["buffer"], node["offset"]
        raw = bytearray(parts[buffer])
        value = np.frombuffer(bytes(raw[offset : offset + 8]), "<f8")[0] + delta
        raw[offset : offset + 8] = np.array([value], "<f8").tobytes()
        parts[buffer] = bytes(raw)

    return _edit_metadata(data, edit)


# -- a sound artifact ---------------------------------------------------------------------------


def test_fresh_artifact_passes_every_check(with_data, files, expected_mean):
    report = skvault.verify(with_data)
    assert [c.name for c in report.checks] == CHECKS
    assert _statuses(report) == ALL_OK, str(report)
    assert report.ok and report.failed == []
    cv = report["cross_validation"].details["scores"]["score"]
    assert cv["mean"] == pytest.approx(expected_mean, abs=1e-12)
    assert len(cv["folds"]) == 5
    data = report["data"].details
    npz = (files / "train.npz").read_bytes()
    assert data["sha256"] == data["recorded_sha256"] == hashlib.sha256(npz).hexdigest()
    assert report["golden_sample"].details["rows"] == 32
    assert report["golden_sample"].details["largest_difference"] == 0.0
    text = str(report)
    assert "result: ok" in text and all(name in text for name in CHECKS)
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON


def test_paths_and_file_objects_verify_alike(with_data, tmp_path):
    path = tmp_path / "m.skv"
    path.write_bytes(with_data)
    for file in (path, str(path), io.BytesIO(with_data)):
        assert skvault.verify(file).ok


def test_csv_data_with_a_recorded_target(tree, iris, files, expected_mean):
    X, y = iris
    data = skvault.dumps(
        tree, data=files / "train.csv", target="species", cv=5, X=X, y=y, source=False
    )
    assert skvault.read_metadata(data)["data"]["target"] == "species"
    report = skvault.verify(data)
    assert report.ok, str(report)
    assert report["data"].status == "ok"
    mean = report["cross_validation"].details["scores"]["score"]["mean"]
    assert mean == pytest.approx(expected_mean, abs=1e-12)


def test_target_is_checked_at_dump(tree, files):
    with pytest.raises(ValueError, match="not a column"):
        skvault.dumps(tree, data=files / "train.csv", target="label", source=False)
    with pytest.raises(ValueError, match="pass data="):
        skvault.dumps(tree, target="species", source=False)
    with pytest.raises(TypeError):
        skvault.dumps(tree, data=files / "train.csv", target=4, source=False)


def test_in_memory_data_is_checked_through_its_fingerprint(tree, iris, files, tmp_path):
    X, y = iris
    data = skvault.dumps(tree, cv=5, X=X, y=y, source=False)
    report = skvault.verify(data)
    assert report.ok
    assert report["data"].status == report["cross_validation"].status == "skipped"
    report = skvault.verify(data, data=files / "train.npz")
    assert _statuses(report) == ALL_OK, str(report)
    other = X.copy()
    other[10, 2] += 0.1
    np.savez(tmp_path / "other.npz", X=other, y=y)
    report = skvault.verify(data, data=tmp_path / "other.npz")
    assert report["data"].status == "failed"
    assert report["data"].message.startswith("data differs")
    assert report["cross_validation"].status == "skipped"
    assert not report.ok


def test_dataframe_training_data_is_read_back_from_csv(files, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(files / "train.csv")
    X, y = frame.drop(columns=["species"]), frame["species"]
    model = _model().fit(X, y)
    data = skvault.dumps(model, cv=4, X=X, y=y, source=False)
    report = skvault.verify(data, data=files / "train.csv")
    assert _statuses(report) == ALL_OK, str(report)
    expected = cross_val_score(_model(), X, y, cv=StratifiedKFold(4)).mean()
    assert report["cross_validation"].details["scores"]["score"]["mean"] == expected
    # the same numbers as arrays are other data: the fingerprint covers dtypes and columns
    np.savez(tmp_path / "as-arrays.npz", X=X.to_numpy(), y=y.to_numpy())
    report = skvault.verify(data, data=tmp_path / "as-arrays.npz")
    assert report["data"].status == "failed"


def test_several_scorers_and_a_repeated_splitter(tree, iris, files):
    X, y = iris
    splitter = RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)
    data = skvault.dumps(
        tree,
        data=files / "train.npz",
        cv=splitter,
        scoring=["accuracy", "f1_macro"],
        X=X,
        y=y,
        source=False,
    )
    report = skvault.verify(data)
    assert report["cross_validation"].status == "ok", str(report)
    scores = report["cross_validation"].details["scores"]
    expected = cross_val_score(_model(), X, y, cv=splitter)
    assert len(scores["accuracy"]["folds"]) == 6
    assert scores["accuracy"]["mean"] == pytest.approx(expected.mean(), abs=1e-12)
    assert set(scores) == {"accuracy", "f1_macro"}
    recorded = skvault.read_metadata(data)["scores"]["cv"]["splitter"]["params"]
    assert (recorded["n_splits"], recorded["n_repeats"]) == (3, 2)  # not 6 splits


def test_shuffled_folds_without_a_seed_are_skipped(tree, iris, files):
    X, y = iris
    data = skvault.dumps(
        tree, data=files / "train.npz", cv=KFold(3, shuffle=True), X=X, y=y, source=False
    )
    report = skvault.verify(data)
    assert report.ok
    assert report["cross_validation"].status == "skipped"
    assert "random_state" in report["cross_validation"].message
    seeded = skvault.dumps(
        tree,
        data=files / "train.npz",
        cv=KFold(3, shuffle=True, random_state=0),
        X=X,
        y=y,
        source=False,
    )
    assert skvault.verify(seeded)["cross_validation"].status == "ok"


def test_group_splitters_are_skipped(with_data):
    # dump cannot pass groups to cross_validate: the record of a group splitter is crafted
    def edit(doc, parts):
        splitter = _dict_node(doc, "type", "params")
        splitter["values"][0] = "sklearn.model_selection._split.GroupKFold"

    report = skvault.verify(_edit_metadata(with_data, edit))
    assert report["cross_validation"].status == "skipped"
    assert "groups" in report["cross_validation"].message
    assert report.ok


# -- what verify must catch -----------------------------------------------------------------------


def test_changed_golden_sample_fails(with_data):
    report = skvault.verify(_shift_golden_proba(with_data, 0.25))
    check = report["golden_sample"]
    assert check.status == "failed"
    assert check.details["output"] == "predict_proba"
    assert check.details["index"] == (0, 0)
    assert check.details["difference"] == pytest.approx(0.25)
    assert "predict_proba" in check.message
    assert report["integrity"].status == "ok"  # the digests were fixed: only the record changed
    assert not report.ok


def test_tampered_data_file_is_reported_and_not_used(tree, iris, files, tmp_path):
    X, y = iris
    path = tmp_path / "train.csv"
    path.write_bytes((files / "train.csv").read_bytes())
    original = hashlib.sha256(path.read_bytes()).hexdigest()
    data = skvault.dumps(tree, data=path, target="species", cv=5, X=X, y=y, source=False)
    assert skvault.verify(data).ok
    content = path.read_bytes()
    at = content.index(b"5.1")
    path.write_bytes(content[:at] + b"9" + content[at + 1 :])  # one byte changed
    tampered = hashlib.sha256(path.read_bytes()).hexdigest()
    for report in (skvault.verify(data), skvault.verify(data, data=path)):
        check = report["data"]
        assert check.status == "failed"
        assert check.message.startswith(f"data differs: recorded sha256 {original}")
        assert tampered in check.message and "not used" in check.message
        assert report["cross_validation"].status == "skipped"
        assert "differs" in report["cross_validation"].message
        assert not report.ok
    # the untouched copy still verifies the same record
    assert skvault.verify(data, data=files / "train.csv").ok


def test_score_outside_the_recorded_range_fails(with_data, expected_mean):
    report = skvault.verify(_set_recorded_mean(with_data, 0.5))
    check = report["cross_validation"]
    assert check.status == "failed"
    score = check.details["scores"]["score"]
    assert score["recorded_mean"] == 0.5
    assert score["mean"] == pytest.approx(expected_mean, abs=1e-12)
    assert not score["ok"] and "OUTSIDE" in check.message
    assert [c.name for c in report.failed] == ["cross_validation"]


def test_a_score_within_three_std_passes(with_data, expected_mean):
    std = skvault.read_metadata(with_data)["scores"]["cv"]["std"]["score"]
    assert std > 0
    nudged = skvault.verify(_set_recorded_mean(with_data, expected_mean + 2.5 * std))
    assert nudged["cross_validation"].status == "ok"
    beyond = skvault.verify(_set_recorded_mean(with_data, expected_mean + 3.5 * std))
    assert beyond["cross_validation"].status == "failed"


def test_version_mismatch_is_reported(tree, iris):
    data = skvault.dumps(
        tree, X=iris[0], environment={"model": {"scikit-learn": "0.24.2"}}, source=False
    )
    report = skvault.verify(data)
    check = report["environment"]
    assert check.status == "failed"
    assert check.details["differences"] == {
        "scikit-learn": {"recorded": "0.24.2", "current": SKLEARN}
    }
    assert f"scikit-learn: recorded 0.24.2, running {SKLEARN}" in check.message
    assert report["golden_sample"].status == "ok"  # the model itself still reproduces
    assert not report.ok


def test_untrusted_model_fails_to_load_and_lists_names():
    data = skvault.dumps(Unlisted(), source=False)
    report = skvault.verify(data)
    name = f"{__name__}.Unlisted"
    assert report["load"].status == "failed"
    assert report["load"].details["untrusted"] == [name]
    assert name in report["load"].message
    assert report["golden_sample"].status == "skipped"
    assert skvault.verify(data, trusted=[name])["load"].status == "ok"


def test_missing_or_remote_data_is_skipped(tree, iris, files, tmp_path):
    X, y = iris
    gone = tmp_path / "gone.npz"
    gone.write_bytes((files / "train.npz").read_bytes())
    data = skvault.dumps(tree, data=gone, cv=3, X=X, y=y, source=False)
    gone.unlink()
    report = skvault.verify(data)
    assert report["data"].status == "skipped" and "no longer exists" in report["data"].message
    assert report.ok
    assert skvault.verify(data, data=files / "train.npz")["cross_validation"].status == "ok"
    remote = skvault.dumps(tree, data="s3://bucket/train.npz", source=False)
    report = skvault.verify(remote, data=files / "train.npz")
    assert report["data"].status == "skipped" and "not used" in report["data"].message
    report = skvault.verify(data, data=tmp_path / "nowhere.npz")
    assert report["data"].status == "failed" and "cannot read" in report["data"].message


def test_file_without_metadata_is_sound_but_unchecked(tree):
    buf = io.BytesIO()
    write_artifact(tree, buf)
    report = skvault.verify(buf.getvalue())
    assert report.ok
    assert _statuses(report) == {
        "integrity": "ok",
        "signature": "skipped",
        "environment": "skipped",
        "load": "ok",
        "golden_sample": "skipped",
        "data": "skipped",
        "cross_validation": "skipped",
    }


# -- malformed files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b"not a zip at all", lambda b: b""],
    ids=["truncated", "text", "empty"],
)
def test_malformed_file_fails_integrity_and_stops(with_data, damage):
    report = skvault.verify(damage(with_data))
    assert report["integrity"].status == "failed"
    assert "FormatError" in report["integrity"].message
    assert all(c.status == "skipped" for c in report.checks[1:])
    assert not report.ok


def test_changed_member_byte_fails_integrity(with_data):
    field = next(f for f in layout(with_data) if f.name == "data[buffers/0.bin]")
    at = field.start + 70
    damaged = with_data[:at] + bytes([with_data[at] ^ 1]) + with_data[at + 1 :]
    report = skvault.verify(damaged)
    assert report["integrity"].status == "failed"
    assert "IntegrityError" in report["integrity"].message
    assert "buffers/0.bin" in report["integrity"].message


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        skvault.verify(tmp_path / "nope.skv")
