"""The training code: files, modules and functions as text, with their git state."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import skvault

from . import conftest

HERE = Path(__file__).resolve()
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _source(model, **kwargs):
    return skvault.read_metadata(skvault.dumps(model, **kwargs))["source"]


def _training_step(X, y):
    """A function whose source the tests record."""
    return X, y


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A git work tree with one committed script and a remote whose URL holds credentials."""
    root = tmp_path / "project"
    root.mkdir()
    _git(root, "init", "-q", "-b", "trunk")
    script = root / "train.py"
    script.write_text("print('training')\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "first")
    _git(root, "remote", "add", "origin", "https://alice:t0ken@git.example.com/ml/churn.git")
    return root


def test_a_file_is_stored_as_text(logistic):
    record = _source(logistic, source=HERE)
    assert record["kind"] == "file"
    assert record["name"] == str(HERE)
    assert record["text"] == HERE.read_text(encoding="utf-8")
    assert _source(logistic, source=str(HERE))["text"] == record["text"]


@needs_git
def test_git_state_of_a_committed_file(repo, logistic):
    record = _source(logistic, source=repo / "train.py")
    assert record["git"] == {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "branch": "trunk",
        "remote": "https://git.example.com/ml/churn.git",
        "dirty": False,
    }


@needs_git
def test_dirty_when_tracked_files_changed_or_the_file_is_not_committed(repo, logistic):
    (repo / "notes.py").write_text("# not committed\n")
    assert _source(logistic, source=repo / "train.py")["git"]["dirty"] is False
    assert _source(logistic, source=repo / "notes.py")["git"]["dirty"] is True
    (repo / "train.py").write_text("print('changed')\n")
    assert _source(logistic, source=repo / "train.py")["git"]["dirty"] is True


@needs_git
def test_the_upstream_remote_is_preferred(repo, logistic):
    _git(repo, "remote", "add", "fork", "git@example.com:me/churn.git")
    _git(repo, "config", "branch.trunk.remote", "fork")
    _git(repo, "config", "branch.trunk.merge", "refs/heads/trunk")
    _git(repo, "update-ref", "refs/remotes/fork/trunk", "HEAD")
    assert _source(logistic, source=repo / "train.py")["git"]["remote"] == (
        "git@example.com:me/churn.git"
    )


def test_outside_a_work_tree_git_is_none(tmp_path, logistic, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # whatever holds tmp_path
    assert _source(logistic, source=script)["git"] is None


def test_a_module_is_stored_with_its_file_text(logistic):
    record = _source(logistic, source=conftest)
    assert record["kind"] == "module"
    assert record["name"] == conftest.__name__
    assert record["text"] == Path(conftest.__file__).read_text(encoding="utf-8")


def test_a_function_is_stored_with_its_definition(logistic):
    record = _source(logistic, source=_training_step)
    assert record["kind"] == "function"
    assert record["name"] == f"{__name__}._training_step"
    assert record["text"].startswith("def _training_step(X, y):")
    assert record["text"] in HERE.read_text(encoding="utf-8")


def test_a_lambda_is_stored_as_its_line(logistic):
    step = lambda X: X  # noqa: E731 - the test is about lambdas
    record = _source(logistic, source=step)
    assert "step = lambda X: X" in record["text"]


def test_code_without_a_source_file_is_a_clear_error(logistic):
    namespace: dict = {}
    exec("def generated(): pass", namespace)
    with pytest.raises(ValueError, match=r"cannot read the source code of .*generated"):
        skvault.dumps(logistic, source=namespace["generated"])


@pytest.mark.parametrize("bad", [len, skvault.SkvaultError, 42])
def test_other_objects_are_refused(logistic, bad):
    with pytest.raises(TypeError, match="file path, a module or a function"):
        skvault.dumps(logistic, source=bad)


def test_a_missing_file_is_refused(tmp_path, logistic):
    with pytest.raises(FileNotFoundError, match=r"nope\.py"):
        skvault.dumps(logistic, source=tmp_path / "nope.py")


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], input=code, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_default_is_the_main_script(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """\
            import sys
            import skvault
            skvault.dump({"weights": [1.0, 2.0]}, sys.argv[1])
            skvault.dump({"weights": [1.0, 2.0]}, sys.argv[2], source=False)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), "a.skv", "b.skv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    record = skvault.read_metadata(tmp_path / "a.skv")["source"]
    assert record["kind"] == "main"
    assert record["name"] == str(script.resolve())
    assert record["text"] == script.read_text()
    assert skvault.read_metadata(tmp_path / "b.skv")["source"] is None


def test_no_default_without_a_script(tmp_path):
    code = (
        "import json, skvault\n"
        "print(json.dumps(skvault.read_metadata(skvault.dumps([1]))['source']))"
    )
    done = _run("", "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is None
    piped = _run(code, "-", cwd=tmp_path)  # a script read from stdin has no file either
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) is None
