"""``skvault inspect``, driven as a user would: in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.cli._app import cli
from skvault.format import write_artifact

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "format"))
from _crafting import repack


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


@pytest.fixture(scope="module")
def provenance_file(tmp_path_factory):
    """An artifact with every kind of provenance: data file, source, cv, notes, golden sample."""
    X, y = load_iris(return_X_y=True)
    folder = tmp_path_factory.mktemp("provenance")
    rows = ["a,b,c,d,species"] + [",".join(map(repr, [*r, int(t)])) for r, t in zip(X, y)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    script = folder / "train.py"
    script.write_text("# trains the model\nprint('training')\n")
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    path = folder / "model.skv"
    skvault.dump(
        model,
        path,
        data=folder / "train.csv",
        target="species",
        source=script,
        cv=3,
        X=X,
        y=y,
        golden_rows=5,
        description="iris tree",
        tags=["iris", "demo"],
        metrics={"holdout": 0.93, "odd": float("nan")},
    )
    return path


def test_inspect_shows_all_metadata(provenance_file):
    result = run("inspect", str(provenance_file))
    assert result.exit_code == 0, result.output
    out = result.output
    meta = skvault.read_metadata(provenance_file)
    assert f"created: {meta['created_at']}" in out
    assert "environment: Python " in out and "model uses: " in out and "scikit-learn" in out
    assert "installed: " in out
    assert "schema: input 4 features" in out and "output: classification" in out
    assert str(provenance_file.with_name("train.csv")) in out and "target 'species'" in out
    assert meta["data"]["sha256"] in out
    assert "source: file " in out and "2 lines" in out
    assert "cross-validation: StratifiedKFold(n_splits=3" in out
    assert "score: mean" in out and "over 3 folds" in out
    assert "golden sample: 5 rows" in out and "predict_proba (5, 3)" in out
    assert "description: iris tree" in out and "tags: iris, demo" in out
    assert "holdout=0.93" in out
    assert out.index("created:") < out.index("sklearn.tree._classes.DecisionTreeClassifier")


def test_inspect_json_has_all_metadata(provenance_file):
    result = run("inspect", "--json", str(provenance_file))
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    report = json.loads(result.output, parse_constant=refuse)
    meta = report["metadata"]
    recorded = skvault.read_metadata(provenance_file)
    for key in ("created_at", "description", "tags", "data", "schema"):
        assert meta[key] == json.loads(json.dumps(recorded[key])), key
    assert meta["source"]["text"] == recorded["source"]["text"]
    assert meta["environment"]["installed"].keys() == recorded["environment"]["installed"].keys()
    assert meta["scores"]["cv"]["folds"] == recorded["scores"]["cv"]["folds"]
    assert meta["metrics"] == {"holdout": 0.93, "odd": "nan"}
    assert meta["golden"]["rows"] == 5
    assert meta["golden"]["outputs"]["predict_proba"]["shape"] == [5, 3]
    assert report["params"]["max_depth"] == 2 and report["params"]["random_state"] == 0


def test_inspect_file_without_metadata(tmp_path):
    path = tmp_path / "bare.skv"
    write_artifact([1, 2, 3], path)
    result = run("inspect", str(path))
    assert result.exit_code == 0, result.output
    assert "provenance: none recorded" in result.output
    report = json.loads(run("inspect", "--json", str(path)).output)
    assert report["metadata"] is None and report["params"] == {}


def test_inspect_broken_metadata_shows_the_model_and_exits_1(model_file, tmp_path):
    def members(parts):
        parts["metadata.json"] = b'{"nodes": 5, "root": null}'

    data = skvault.dumps(skvault.load(model_file), source=False)
    path = tmp_path / "bad-metadata.skv"
    path.write_bytes(
        repack(data, members=members, manifest=lambda m: m.update(metadata="metadata.json"))
    )
    result = run("inspect", str(path))
    assert result.exit_code == 1
    assert "provenance: unreadable (FormatError" in result.stdout
    assert "sklearn.pipeline.Pipeline" in result.stdout
    assert result.stderr.startswith("skvault: FormatError")
    report = json.loads(run("inspect", "--json", str(path)).stdout)
    assert report["metadata"] is None and report["metadata_error"].startswith("FormatError")
