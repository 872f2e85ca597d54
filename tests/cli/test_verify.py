"""``skvault verify``, driven as a user would: in-process and as a real subprocess."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.cli._app import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "format"))
from _crafting import VERIFY_ALL_OK as ALL_OK
from _crafting import VERIFY_CHECKS as CHECKS
from _crafting import repack

SKLEARN = md.version("scikit-learn")


class UserThing:
    """A class default trust does not know."""

    def __init__(self) -> None:
        self.value = 3


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, iris):
    path = tmp_path_factory.mktemp("verify")
    np.savez(path / "train.npz", X=iris[0], y=iris[1])
    return path


@pytest.fixture(scope="module")
def model_file(folder, iris):
    X, y = iris
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    path = folder / "model.skv"
    skvault.dump(model, path, data=folder / "train.npz", cv=5, X=X, y=y, source=False)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _with_recorded_mean(path: Path, value: float) -> Path:
    """Write a copy of ``path`` whose recorded CV mean is ``value`` (digests recomputed)."""

    def members(parts):
        doc = json.loads(parts["metadata.json"])
        for node in doc["nodes"]:
            if node["kind"] == "dict" and node["keys"][:3] == ["scoring", "folds", "mean"]:
                mean = doc["nodes"][node["values"][2]["ref"]]
                mean["values"][0] = value
        parts["metadata.json"] = json.dumps(doc).encode()

    out = path.with_name(f"mean-{value}.skv")
    out.write_bytes(
        repack(
            path.read_bytes(),
            members=members,
            manifest=lambda doc: doc.update(metadata="metadata.json"),
        )
    )
    return out


def test_verify_passes_on_a_fresh_artifact(model_file):
    result = run("verify", model_file)
    assert result.exit_code == 0, result.output
    assert "result: ok" in result.stdout
    for name in CHECKS:
        assert name in result.stdout
    assert result.stderr == ""


def test_verify_json(model_file):
    result = run("verify", "--json", model_file)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert {c["name"]: c["status"] for c in report["checks"]} == ALL_OK


def test_tampered_data_exits_1(model_file, folder, tmp_path):
    tampered = tmp_path / "train.npz"
    content = bytearray((folder / "train.npz").read_bytes())
    content[len(content) // 2] ^= 0xFF
    tampered.write_bytes(bytes(content))
    result = run("verify", model_file, "--data", tampered)
    assert result.exit_code == 1
    assert "data differs: recorded sha256" in result.stdout
    assert "failed verification (data)" in result.stderr
    report = json.loads(run("verify", model_file, "--data", tampered, "--json").stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["data"] == "failed" and statuses["cross_validation"] == "skipped"


def test_score_outside_the_range_exits_1(model_file):
    result = run("verify", _with_recorded_mean(model_file, 0.25))
    assert result.exit_code == 1
    assert "OUTSIDE" in result.stdout
    assert "failed verification (cross_validation)" in result.stderr
    assert "result: FAILED (1 of 7 checks failed)" in result.stdout


def test_version_mismatch_exits_1(folder, iris):
    X, y = iris
    path = folder / "old.skv"
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    skvault.dump(model, path, X=X, environment={"model": {"scikit-learn": "0.24.2"}}, source=False)
    result = run("verify", path)
    assert result.exit_code == 1
    assert f"scikit-learn: recorded 0.24.2, running {SKLEARN}" in result.stdout
    assert "failed verification (environment)" in result.stderr


def test_untrusted_type_needs_trust(tmp_path):
    path = tmp_path / "user.skv"
    skvault.dump({"thing": UserThing()}, path, source=False)
    name = f"{__name__}.UserThing"
    result = run("verify", path)
    assert result.exit_code == 1
    assert name in result.stdout and "failed verification (load)" in result.stderr
    assert run("verify", path, "--trust", name).exit_code == 0


@pytest.mark.parametrize(
    "content", [b"", b"not a zip at all", None], ids=["empty", "text", "truncated"]
)
def test_malformed_file_exits_1(model_file, tmp_path, content):
    path = tmp_path / "broken.skv"
    path.write_bytes(model_file.read_bytes()[:-100] if content is None else content)
    result = run("verify", path)
    assert result.exit_code == 1
    assert "integrity" in result.stdout and "FormatError" in result.stdout
    assert result.stderr.startswith("skvault: ") and "failed verification (integrity)" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_missing_file_exits_1(tmp_path):
    result = run("verify", tmp_path / "nope.skv")
    assert result.exit_code == 1
    assert result.stderr.startswith("skvault: cannot read")
    assert "Traceback" not in result.output


def test_real_subprocess(model_file):
    done = subprocess.run(
        [sys.executable, "-m", "skvault", "verify", "--json", str(model_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    broken = model_file.with_name("cut.skv")
    broken.write_bytes(model_file.read_bytes()[:-40])
    done = subprocess.run(
        [sys.executable, "-m", "skvault", "verify", str(broken)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("skvault: ")
    assert "Traceback" not in done.stderr


def test_verify_with_a_public_key(tmp_path):
    # issue 4: skvault verify --public-key; a signature by another key, or none, fails
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    path = tmp_path / "signed.skv"
    skvault.dump(DecisionTreeClassifier(random_state=0).fit(X, y), path, X=X)
    private, public = skvault.keygen(tmp_path / "team")
    _, other = skvault.keygen(tmp_path / "other")

    unsigned = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(public)])
    assert unsigned.exit_code == 1 and "not signed" in unsigned.output
    assert "not run: the file failed the integrity or signature check" in unsigned.output

    skvault.sign(path, private)
    good = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(public), "--json"])
    assert good.exit_code == 0, good.output
    statuses = {c["name"]: c["status"] for c in json.loads(good.stdout)["checks"]}
    assert statuses["signature"] == "ok" and statuses["golden_sample"] == "ok"

    wrong = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(other)])
    assert wrong.exit_code == 1 and "another key" in wrong.output

    no_key = skvault.verify(path)
    assert no_key.ok and no_key["signature"].status == "skipped"
    assert "signed by key" in no_key["signature"].message

    data = bytearray(path.read_bytes())
    data[40] ^= 1  # a byte of the first local header: the signature no longer matches
    tampered = tmp_path / "tampered.skv"
    tampered.write_bytes(bytes(data))
    report = skvault.verify(tampered, public_key=public)
    assert not report.ok
