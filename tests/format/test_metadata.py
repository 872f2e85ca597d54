"""The metadata member: plain data beside the model, read without trusting anything."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from _crafting import repack
from sklearn.linear_model import LogisticRegression

import skvault
from skvault.format import open_artifact, write_artifact


def _write(obj, metadata) -> bytes:
    buf = io.BytesIO()
    write_artifact(obj, buf, metadata=metadata)
    return buf.getvalue()


def test_metadata_round_trips_and_lives_in_its_own_members():
    model = LogisticRegression().fit([[0.0], [1.0], [2.0]], [0, 1, 1])
    meta = {"rows": np.arange(400_000.0).reshape(-1, 4), "score": 0.5, "tags": ["a", "b"]}
    data = _write(model, meta)
    with open_artifact(data) as artifact:
        got = artifact.metadata()
        assert artifact._graph is None, "reading metadata does not parse the model's graph"
    assert got["score"] == 0.5 and got["tags"] == ["a", "b"]
    np.testing.assert_array_equal(got["rows"], meta["rows"])
    assert skvault.loads(data).predict([[2.0]]).tolist() == [1]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "metadata.json" in names


def test_no_metadata_reads_as_none():
    with open_artifact(_write([1], None)) as artifact:
        assert artifact.metadata() is None


def test_metadata_must_be_plain_data():
    with pytest.raises(skvault.UnsupportedTypeError, match="plain data"):
        _write([1], {"f": np.log1p})
    with pytest.raises(skvault.UnsupportedTypeError, match="plain data"):
        _write([1], {"model": LogisticRegression()})


def test_a_crafted_metadata_graph_cannot_name_globals():
    data = _write([1], {"x": 1})
    crafted = b'{"nodes":[{"kind":"global","name":"numpy.log1p"}],"root":{"ref":0}}'
    hostile = repack(
        data,
        members=lambda m: m.update({"metadata.json": crafted}),
        manifest=lambda m: m.update(metadata="metadata.json"),  # repack writes a fresh manifest
    )
    with open_artifact(hostile) as artifact, pytest.raises(skvault.UntrustedTypeError):
        artifact.metadata()


def test_metadata_member_name_is_fixed():
    data = _write([1], {"x": 1})
    bad = repack(data, manifest=lambda m: m.update(metadata="graph.json"))
    with open_artifact(bad) as artifact, pytest.raises(skvault.FormatError, match="metadata"):
        artifact.metadata()
