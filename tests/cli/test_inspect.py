"""``skvault inspect``, driven as a user would: in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.cli._app import cli


class UserThing:
    """A class default trust does not know."""

    def __init__(self) -> None:
        self.value = 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)).fit(X, y)
    path = tmp_path_factory.mktemp("cli") / "model.skv"
    skvault.dump(model, path)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_inspect_shows_tree_arrays_and_manifest(model_file):
    result = run("inspect", str(model_file))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "sklearn.pipeline.Pipeline" in out
    assert "sklearn.tree._classes.DecisionTreeClassifier" in out
    assert "sklearn.tree._tree.Tree" in out
    assert "scikit-learn" in out and "format 1" in out
    assert "array (4,) <f8" in out  # StandardScaler.mean_
    assert "trusted by default" in out


def test_inspect_json(model_file):
    result = run("inspect", "--json", str(model_file))
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["untrusted"] == []
    assert report["tree"]["type"] == "sklearn.pipeline.Pipeline"
    assert report["members"] >= 2


def test_inspect_untrusted_exits_1(tmp_path):
    path = tmp_path / "user.skv"
    skvault.dump({"thing": UserThing()}, path)
    result = run("inspect", str(path))
    assert result.exit_code == 1
    assert f"{__name__}.UserThing" in result.output
    assert "UNTRUSTED" in result.output


@pytest.mark.parametrize(
    "content", [b"", b"not a zip at all", b"PK\x05\x06" + b"\0" * 18], ids=["empty", "text", "eocd"]
)
def test_inspect_broken_file_exits_1(tmp_path, content):
    path = tmp_path / "broken.skv"
    path.write_bytes(content)
    result = run("inspect", str(path))
    assert result.exit_code == 1
    assert "skvault: FormatError" in result.output
    assert "Traceback" not in result.output


def test_inspect_missing_file(tmp_path):
    result = run("inspect", str(tmp_path / "nope.skv"))
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_help_and_version():
    assert "inspect" in run("--help").output
    result = run("--version")
    assert result.exit_code == 0 and skvault.__version__ in result.output


def test_real_subprocess(model_file):
    done = subprocess.run(
        [sys.executable, "-m", "skvault", "inspect", "--json", str(model_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tree"]["type"] == "sklearn.pipeline.Pipeline"
    broken = model_file.with_name("broken.skv")
    broken.write_bytes(model_file.read_bytes()[:-40])
    done = subprocess.run(
        [sys.executable, "-m", "skvault", "inspect", str(broken)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("skvault: ")
    assert "Traceback" not in done.stderr
    version = subprocess.run(
        [sys.executable, "-m", "skvault", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and skvault.__version__ in version.stdout
