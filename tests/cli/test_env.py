"""``skvault env``, driven as a user would: in-process, and as real subprocesses for exit codes."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from skvault.cli._app import cli
from skvault.format import write_artifact


def captured_environment() -> dict:
    """The running environment in the metadata schema, read here with importlib.metadata."""
    installed = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in installed:
            continue
        requires = sorted(
            {
                canonicalize_name(req.name)
                for req in map(Requirement, dist.requires or [])
                if req.marker is None or req.marker.evaluate({"extra": ""})
            }
        )
        installed[name] = {"version": dist.version, "requires": requires}
        direct = dist.read_text("direct_url.json")
        if direct:
            doc = json.loads(direct)
            installed[name]["source"] = doc["url"]
            installed[name]["editable"] = bool(doc.get("dir_info", {}).get("editable"))
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {"system": "Linux", "release": "6.1", "machine": "x86_64"},
        "skvault": importlib.metadata.version("skvault"),
        "core": {},
        "model": {n: importlib.metadata.version(n) for n in ("scikit-learn", "numpy")},
        "installed": installed,
    }


def iris_model():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(X, y), X


def write(path: Path, environment: dict | None, model=None, **extra) -> Path:
    meta = None
    if environment is not None:
        meta = {
            "skvault_metadata": 1,
            "created_at": "2026-11-29T03:00:00+00:00",
            "environment": environment,
            **extra,
        }
    write_artifact({"w": np.ones(3)} if model is None else model, path, metadata=meta)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def requirement_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("env") / "model.skv", captured_environment())


@pytest.fixture(scope="module")
def drifted_file(tmp_path_factory):
    """Recorded under other versions of scikit-learn, Python and threadpoolctl."""
    env = captured_environment()
    env["python"]["version"] = "3.9.1"
    env["model"]["scikit-learn"] = "1.5.0"
    env["installed"]["threadpoolctl"]["version"] = "0.0.1"
    return write(tmp_path_factory.mktemp("env") / "drifted.skv", env)


def test_env_prints_pinned_requirements(model_file):
    result = run("env", str(model_file))
    assert result.exit_code == 0, result.output
    lines = requirement_lines(result.output)
    pins = dict(line.split("==") for line in lines if "==" in line)
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert pins[name] == importlib.metadata.version(name)
    assert "pytest" not in pins  # installed, but the model does not need it
    assert any(line.startswith(("skvault==", "skvault @ ")) for line in lines)
    assert result.output.startswith("# The training environment of model.skv")


def test_env_full_pins_everything(model_file):
    result = run("env", "--full", str(model_file))
    assert result.exit_code == 0
    lines = requirement_lines(result.output)
    assert f"pytest=={importlib.metadata.version('pytest')}" in lines
    assert f"click=={importlib.metadata.version('click')}" in lines


def test_env_formats(model_file):
    pins = requirement_lines(run("env", str(model_file)).output)

    pylock = run("env", "--format", "pylock", str(model_file))
    assert pylock.exit_code == 0
    doc = tomllib.loads(pylock.output)
    assert doc["lock-version"] == "1.0" and doc["created-by"] == "skvault"
    assert len(doc["packages"]) == len(pins)
    assert {"name": "scipy", "version": importlib.metadata.version("scipy")}.items() <= next(
        p for p in doc["packages"] if p["name"] == "scipy"
    ).items()

    pixi = tomllib.loads(run("env", "--format", "pixi", str(model_file)).output)
    assert pixi["dependencies"]["python"] == f"{platform.python_version()}.*"
    assert pixi["pypi-dependencies"]["numpy"] == f"=={importlib.metadata.version('numpy')}"
    assert pixi["workspace"]["name"] == "model"

    conda = run("env", "--format", "conda", str(model_file)).output.splitlines()
    assert "name: model" in conda
    assert f"  - python={platform.python_version()}" in conda
    start = conda.index("  - pip:") + 1
    items = [line.removeprefix("      - ") for line in conda[start:]]
    assert [json.loads(i) if i.startswith('"') else i for i in items] == pins


def test_check_matching_environment_exits_0(model_file):
    result = run("env", "--check", str(model_file))
    assert result.exit_code == 0, result.output
    assert "matches the recorded one" in result.output


def test_check_drifted_environment_exits_1_with_a_table(drifted_file):
    result = run("env", "--check", str(drifted_file))
    assert result.exit_code == 1, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert rows["package"] == ["package", "recorded", "current", "matters"]
    sk = importlib.metadata.version("scikit-learn")
    assert rows["scikit-learn"] == ["scikit-learn", "1.5.0", sk, "yes"]
    assert rows["python"] == ["python", "3.9.1", platform.python_version(), "yes"]
    tpc = importlib.metadata.version("threadpoolctl")
    assert rows["threadpoolctl"] == ["threadpoolctl", "0.0.1", tpc]  # not a model package
    assert "2 of them matter" in result.output


def test_check_only_dependency_drift_exits_0(tmp_path):
    env = captured_environment()
    env["installed"]["threadpoolctl"]["version"] = "0.0.1"
    result = run("env", "--check", str(write(tmp_path / "m.skv", env)))
    assert result.exit_code == 0, result.output
    assert "threadpoolctl" in result.output and "none of them" in result.output


def test_check_exit_codes_as_real_subprocesses(model_file, drifted_file):
    def code(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "skvault", "env", "--check", str(path)],
            capture_output=True,
            text=True,
        )

    assert code(model_file).returncode == 0
    drifted = code(drifted_file)
    assert drifted.returncode == 1
    assert "scikit-learn" in drifted.stdout and "1.5.0" in drifted.stdout


def test_file_without_metadata(tmp_path):
    result = run("env", str(write(tmp_path / "bare.skv", None)))
    assert result.exit_code == 1
    assert "records no training environment" in result.output


def test_malformed_version_is_a_finding_not_a_requirement(tmp_path):
    env = captured_environment()
    env["installed"]["scipy"]["version"] = "1.0 --index-url https://evil.example/simple"
    result = run("env", str(write(tmp_path / "m.skv", env)))
    assert result.exit_code == 1
    assert "FormatError" in result.stderr and "not a version" in result.stderr
    assert result.stdout == ""  # no requirements file that installs from elsewhere


def test_not_an_artifact(tmp_path):
    path = tmp_path / "junk.skv"
    path.write_bytes(b"not a zip")
    result = run("env", str(path))
    assert result.exit_code == 1 and result.output.startswith("skvault: ")


@pytest.mark.parametrize(
    "args",
    [
        ["--check", "--create", "DIR"],
        ["--format", "pylock", "--check"],
        ["--format", "conda", "--create", "DIR"],
        ["--installer", "pip"],
        ["--trust", "x.Y"],
        ["--format", "poetry"],
    ],
)
def test_usage_errors_exit_2(model_file, args):
    result = run("env", *args, str(model_file))
    assert result.exit_code == 2, result.output


def test_create_refuses_another_python(tmp_path):
    env = captured_environment()
    env["python"]["version"] = "3.9.1"
    path = write(tmp_path / "m.skv", env)
    result = run("env", str(path), "--create", str(tmp_path / "venv"), "--installer", "pip")
    assert result.exit_code == 1
    assert "3.9.1" in result.output and "interpreter" in result.output
    assert not (tmp_path / "venv").exists()


def golden_artifact(path: Path, *, tamper: bool) -> Path:
    model, X = iris_model()
    rows = X[::25]
    proba = model.predict_proba(rows)
    golden = {
        "X": rows,
        "outputs": {
            "predict": model.predict(rows),
            "predict_proba": proba + (0.25 if tamper else 0),
        },
        "rtol": 1e-9,
        "atol": 0.0,
    }
    return write(path, captured_environment(), model=model, golden=golden)


@pytest.mark.slow
def test_create_then_load_in_the_new_environment(tmp_path):
    path = golden_artifact(tmp_path / "iris.skv", tamper=False)
    target = tmp_path / "venv"
    result = run("env", str(path), "--create", str(target))
    assert result.exit_code == 0, result.output
    assert "ok: iris.skv loaded and verified against its golden sample" in result.output
    python = target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    assert f"python: {python}" in result.output
    done = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            "import skvault, sys; print(type(skvault.load(sys.argv[1])))",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "LogisticRegression" in done.stdout


@pytest.mark.slow
def test_create_reports_a_golden_sample_that_no_longer_matches(tmp_path):
    path = golden_artifact(tmp_path / "iris.skv", tamper=True)
    result = run("env", str(path), "--create", str(tmp_path / "venv"))
    assert result.exit_code == 1
    assert "iris.skv fails to load or verify in" in result.output
    assert "VerificationError" in result.output and "predict_proba" in result.output
