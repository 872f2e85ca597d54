"""The environment every artifact records, checked against what importlib and platform report."""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import platform
import re

import numpy as np
import pytest
import scipy.sparse as sp

import skvault


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _first_distributions() -> dict[str, md.Distribution]:
    """Installed distributions by canonical name, the first on sys.path winning as for imports."""
    found: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        found.setdefault(_canonical(dist.metadata["Name"]), dist)
    return found


@pytest.fixture(scope="module")
def env(logistic):
    return skvault.read_metadata(skvault.dumps(logistic))["environment"]


def test_interpreter_platform_and_skvault(env):
    assert env["python"] == {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    assert env["platform"] == {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
    }
    assert env["skvault"] == skvault.__version__


def test_core_versions(env):
    expected = {}
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):
        try:
            expected[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    assert env["core"] == expected


def test_model_lists_the_distributions_the_object_uses(env, logistic):
    # a fitted LogisticRegression is scikit-learn classes holding numpy arrays
    assert env["model"] == {
        "numpy": md.version("numpy"),
        "scikit-learn": md.version("scikit-learn"),
    }
    with_sparse = {"model": logistic, "matrix": sp.csr_matrix(np.eye(3))}
    model = skvault.read_metadata(skvault.dumps(with_sparse))["environment"]["model"]
    assert model["scipy"] == md.version("scipy")
    plain = skvault.read_metadata(skvault.dumps([1, "a", {"b": 2.0}]))["environment"]["model"]
    assert plain == {}, "builtins come from no distribution"


def test_every_installed_distribution_with_its_version(env):
    installed = env["installed"]
    distributions = _first_distributions()
    assert set(installed) == set(distributions)
    for name, dist in distributions.items():
        assert installed[name]["version"] == dist.version, name


def test_requires_are_the_active_requirements_without_extras(env):
    packaging = pytest.importorskip("packaging.requirements")
    for name, dist in _first_distributions().items():
        expected = set()
        for text in dist.requires or ():
            req = packaging.Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                expected.add(_canonical(req.name))
        assert env["installed"][name]["requires"] == sorted(expected), name
    assert {"numpy", "scipy"} <= set(env["installed"]["scikit-learn"]["requires"])


def test_direct_url_installs_record_their_source(env):
    distributions = _first_distributions()
    direct = {}
    for name, dist in distributions.items():
        text = dist.read_text("direct_url.json")
        if text:
            direct[name] = json.loads(text)
    for name, info in env["installed"].items():
        if name not in direct:
            assert "source" not in info and "editable" not in info, name
            continue
        doc = direct[name]
        assert info["editable"] is bool(doc.get("dir_info", {}).get("editable", False))
        assert doc["url"].split("://", 1)[1].rsplit("@", 1)[-1] in info["source"]


def test_created_at_is_utc_now(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    meta = skvault.read_metadata(skvault.dumps([1]))
    after = datetime.datetime.now(datetime.UTC)
    created = datetime.datetime.fromisoformat(meta["created_at"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert before <= created <= after


def test_source_date_epoch_pins_the_time_and_makes_files_reproducible(monkeypatch, logistic):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data = skvault.dumps(logistic)
    assert skvault.read_metadata(data)["created_at"] == "2023-11-14T22:13:20+00:00"
    assert skvault.dumps(logistic) == data


def test_environment_override_merges_over_the_captured_one(logistic):
    env = skvault.read_metadata(
        skvault.dumps(
            logistic,
            environment={"core": {"scikit-learn": "0.24.2"}, "python": {"version": "3.8.0"}},
        )
    )["environment"]
    assert env["core"]["scikit-learn"] == "0.24.2"
    assert env["core"]["numpy"] == md.version("numpy"), "nested dicts merge"
    assert env["python"] == {
        "version": "3.8.0",
        "implementation": platform.python_implementation(),
    }
    assert env["model"]["scikit-learn"] == md.version("scikit-learn"), "only what is named"


def test_environment_override_must_be_a_dict(logistic):
    with pytest.raises(TypeError, match="environment"):
        skvault.dumps(logistic, environment=[("core", {})])  # type: ignore[arg-type]
