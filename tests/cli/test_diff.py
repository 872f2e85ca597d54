"""``skvault diff`` and ``skvault.diff``: what differs between two artifacts, nothing built."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.ensemble import BaggingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.cli._app import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "format"))
from _crafting import craft


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _pipeline(C: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=200))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, iris):
    """Two artifacts of the same model and data, dumped separately, and variants."""
    X, y = iris
    path = tmp_path_factory.mktemp("diff")
    np.savez(path / "train.npz", X=X, y=y)
    np.savez(path / "other.npz", X=X[:100], y=y[:100])
    model = _pipeline(1.0).fit(X, y)
    common = {"X": X, "source": False, "scores": {"accuracy": 0.97}, "tags": ["iris"]}
    skvault.dump(model, path / "a.skv", data=path / "train.npz", **common)
    skvault.dump(model, path / "same.skv", data=path / "train.npz", **common)
    changed = _pipeline(0.5).fit(X, y)
    skvault.dump(
        changed,
        path / "b.skv",
        data=path / "other.npz",
        X=X,
        source=False,
        scores={"accuracy": 0.91},
        tags=["iris"],
    )
    return path


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_identical_artifacts_exit_0(folder):
    result = run("diff", folder / "a.skv", folder / "same.skv")
    assert result.exit_code == 0, result.output
    assert "do not differ" in result.stdout
    assert skvault.diff(folder / "a.skv", folder / "same.skv").identical
    assert run("diff", folder / "a.skv", folder / "a.skv").exit_code == 0


def test_different_params_data_and_scores_are_listed(folder):
    result = run("diff", folder / "a.skv", folder / "b.skv")
    assert result.exit_code == 1
    out = result.stdout
    assert "logisticregression__C:" in out and "- 1.0" in out and "+ 0.5" in out
    assert "given.accuracy:" in out and "- 0.97" in out and "+ 0.91" in out
    assert "sha256:" in out  # the data reference
    result = run("diff", "--json", folder / "a.skv", folder / "b.skv")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["identical"] is False
    sections = report["sections"]
    params = {c["key"]: (c["a"], c["b"]) for c in sections["params"]}
    assert params == {"logisticregression__C": (1.0, 0.5)}
    data = {c["key"] for c in sections["data"]}
    assert {"uri", "sha256", "size"} <= data
    assert [c["key"] for c in sections["scores"]] == ["given.accuracy"]
    assert sections["environment"] == [] and sections["schema"] == []
    assert sections["description"] == []


def test_api_diff(folder):
    result = skvault.diff(folder / "a.skv", (folder / "b.skv").read_bytes())
    assert not result.identical
    assert result.b == "b"  # bytes have no name
    changes = {c.key: c for c in result.sections["params"]}
    assert changes["logisticregression__C"].a == 1.0
    assert "logisticregression__C" in str(result)


def test_static_params_match_get_params(iris):
    X, y = iris
    model = BaggingClassifier(
        DecisionTreeClassifier(max_depth=3, random_state=1), n_estimators=3, random_state=0
    ).fit(X, y)
    params = skvault.inspect(skvault.dumps(model))["params"]
    expected = {
        k: v
        for k, v in model.get_params(deep=True).items()
        if v is None or isinstance(v, (bool, int, float, str))
    }
    assert {k: params[k] for k in expected} == expected
    assert params["estimator"] == "sklearn.tree._classes.DecisionTreeClassifier"


def test_absent_sections_and_types(tmp_path, iris):
    X, y = iris
    a, b = tmp_path / "a.skv", tmp_path / "b.skv"
    skvault.dump(DecisionTreeClassifier(max_depth=2).fit(X, y), a, source=False)
    skvault.dump(LogisticRegression(max_iter=200).fit(X, y), b, source=False, description="linear")
    report = skvault.diff(a, b)
    assert [c.key for c in report.sections["model"]] == ["type"]
    description = report.sections["description"]
    assert [(c.key, c.in_a, c.b) for c in description] == [("description", False, "linear")]
    assert "(absent)" in str(report)


def test_unreadable_file_exits_2(folder, tmp_path):
    broken = tmp_path / "broken.skv"
    broken.write_bytes(b"not a zip")
    for args in ((folder / "a.skv", broken), (tmp_path / "nope.skv", folder / "a.skv")):
        result = run("diff", *args)
        assert result.exit_code == 2
        assert result.stderr.startswith("skvault: ")
        assert "Traceback" not in result.output


def test_params_of_a_graph_sharing_one_node_everywhere_are_cut_short():
    # each list holds 50 references to the one before: shown in full, 50**6 values
    nodes = [{"kind": "list", "items": [1, 2, 3]}]
    for i in range(1, 7):
        nodes.append({"kind": "list", "items": [{"ref": i - 1}] * 50})
    names = [f"p{i}" for i in range(3000)]
    nodes.append(
        {
            "kind": "object",
            "type": "sklearn.linear_model._base.LinearRegression",
            "names": names,
            "values": [{"ref": len(nodes) - 1}] * len(names),
        }
    )
    data = craft({"nodes": nodes, "root": {"ref": len(nodes) - 1}})
    params = skvault.inspect(data)["params"]
    assert params["..."] == "more parameters than inspection shows"
    assert len(params) < len(names)
