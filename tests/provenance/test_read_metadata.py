"""read_metadata: everything recorded, without loading the model or trusting anything."""

from __future__ import annotations

import importlib.abc
import io
import sys

import pytest

import skvault
from skvault.format import open_artifact, write_artifact


def test_metadata_and_manifest(logistic, iris, tmp_path):
    X, y = iris
    path = tmp_path / "m.skv"
    skvault.dump(logistic, path, X=X, y=y, tags=["t"])
    meta = skvault.read_metadata(path)
    assert set(meta) == {
        "skvault_metadata",
        "created_at",
        "environment",
        "schema",
        "data",
        "source",
        "scores",
        "description",
        "tags",
        "metrics",
        "golden",
        "manifest",
    }
    assert meta["skvault_metadata"] == 1
    assert meta["manifest"]["metadata"] == "metadata.json"
    assert "metadata.json" in meta["manifest"]["members"]
    with open(path, "rb") as fh:
        assert skvault.read_metadata(fh)["tags"] == ["t"]
    assert skvault.read_metadata(path.read_bytes())["tags"] == ["t"]


def test_a_file_without_metadata_gives_only_the_manifest(logistic):
    buf = io.BytesIO()
    write_artifact(logistic, buf)
    meta = skvault.read_metadata(buf.getvalue())
    assert list(meta) == ["manifest"]
    with open_artifact(buf.getvalue()) as artifact:
        assert meta["manifest"] == artifact.manifest


class _Blocker(importlib.abc.MetaPathFinder):
    """Fails any import of the named module, as if it were absent or hostile."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] == self.name:
            raise ImportError(f"blocked import of {fullname}")
        return None


def test_untrusted_and_unimportable_types_need_no_trust(tmp_path, monkeypatch):
    module = tmp_path / "vault_user_model.py"
    module.write_text("class Model:\n    def __init__(self):\n        self.weights = [1.0, 2.0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vault_user_model

    data = skvault.dumps(vault_user_model.Model(), description="user model")
    monkeypatch.delitem(sys.modules, "vault_user_model")
    blocker = _Blocker("vault_user_model")
    monkeypatch.setattr(sys, "meta_path", [blocker, *sys.meta_path])
    meta = skvault.read_metadata(data)
    assert meta["description"] == "user model"
    assert "vault_user_model" not in sys.modules
    with pytest.raises(skvault.UntrustedTypeError):
        skvault.loads(data)
    with pytest.raises(skvault.FormatError, match="blocked import"):
        skvault.loads(data, trusted=["vault_user_model.Model"])  # the blocker works


def test_a_bad_file_is_a_format_error():
    with pytest.raises(skvault.FormatError):
        skvault.read_metadata(b"not a zip file at all")
