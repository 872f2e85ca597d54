"""``skvault keygen`` and ``skvault sign``, driven as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import skvault
from skvault.cli._app import cli
from skvault.errors import SignatureError


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture()
def model_file(tmp_path):
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.skv"
    skvault.dump(DecisionTreeClassifier(random_state=0).fit(X, y), path)
    return path


def test_keygen_then_sign_then_load_with_the_public_key(tmp_path, model_file):
    result = run("keygen", str(tmp_path / "team"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "team").exists() and (tmp_path / "team.pub").exists()
    # a real process, as in a release pipeline
    done = subprocess.run(
        [sys.executable, "-m", "skvault", "sign", str(model_file), "--key", str(tmp_path / "team")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "signed by key" in done.stdout
    skvault.load(model_file, require_signature=tmp_path / "team.pub")


def test_keygen_refuses_to_overwrite_without_force(tmp_path):
    assert run("keygen", str(tmp_path / "k")).exit_code == 0
    before = (tmp_path / "k").read_bytes()
    result = run("keygen", str(tmp_path / "k"))
    assert result.exit_code == 1 and "--force" in result.output
    assert (tmp_path / "k").read_bytes() == before
    assert run("keygen", "--force", str(tmp_path / "k")).exit_code == 0
    assert (tmp_path / "k").read_bytes() != before


def test_sign_with_a_public_key_or_garbage_fails_cleanly(tmp_path, model_file):
    run("keygen", str(tmp_path / "k"))
    before = model_file.read_bytes()
    for key in (tmp_path / "k.pub", model_file):
        result = run("sign", str(model_file), "--key", str(key))
        assert result.exit_code == 1
        assert "skvault: SignatureError" in result.output and "Traceback" not in result.output
    assert model_file.read_bytes() == before
    with pytest.raises(SignatureError, match="not signed"):
        skvault.load(model_file, require_signature=tmp_path / "k.pub")


def test_sign_a_broken_file_exits_1(tmp_path):
    run("keygen", str(tmp_path / "k"))
    path = tmp_path / "broken.skv"
    path.write_bytes(b"PK\x03\x04 truncated")
    result = run("sign", str(path), "--key", str(tmp_path / "k"))
    assert result.exit_code == 1
    assert "skvault: FormatError" in result.output
    assert path.read_bytes() == b"PK\x03\x04 truncated"


def test_inspect_names_the_signer_without_checking(tmp_path, model_file):
    assert "signature: none" in run("inspect", str(model_file)).output
    private, _ = skvault.keygen(tmp_path / "k")
    key_id = skvault.sign(model_file, private)
    result = run("inspect", str(model_file))
    assert result.exit_code == 0
    assert f"signature: ed25519 by key {key_id}" in result.output
    assert skvault.inspect(model_file)["signature"] == {"algorithm": "ed25519", "key_id": key_id}
