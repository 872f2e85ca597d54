"""Rebuilding the training environment: pins, the four output formats, checks, a real venv.

The artifacts are written with ``skvault.format.write_artifact`` and a metadata section built
here: the realistic one from ``importlib.metadata`` and ``packaging`` (the test's own reading of
the environment, independent of skvault's recorder), the edge cases by hand.
"""

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
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from skvault import FormatError
from skvault.format import write_artifact
from skvault.provenance._replicate import (
    check,
    create,
    pinned_requirements,
    read_environment_metadata,
    render,
)

SKLEARN_DEPS = {"numpy", "scipy", "joblib", "threadpoolctl"}


def captured_environment(model_names=("scikit-learn", "numpy")) -> dict:
    """The running environment in the metadata schema, read with importlib.metadata."""
    installed = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in installed:
            continue
        requires = set()
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                requires.add(canonicalize_name(req.name))
        entry = {"version": dist.version, "requires": sorted(requires)}
        direct = dist.read_text("direct_url.json")
        if direct:
            doc = json.loads(direct)
            entry["source"] = doc["url"]
            entry["editable"] = bool(doc.get("dir_info", {}).get("editable"))
        installed[name] = entry
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {"system": "Linux", "release": "6.1", "machine": "x86_64"},
        "skvault": importlib.metadata.version("skvault"),
        "core": {n: installed[n]["version"] for n in ("scikit-learn", "numpy") if n in installed},
        "model": {n: importlib.metadata.version(n) for n in model_names},
        "installed": installed,
    }


def hand_environment() -> dict:
    """A small environment whose closure is known: a -> b -> c; d -> e unrelated; f -> g absent."""
    return {
        "python": {"version": "3.11.4", "implementation": "CPython"},
        "platform": {"system": "Darwin", "release": "23.0", "machine": "arm64"},
        "skvault": "0.1.0",
        "model": {"pkg-a": "2.0", "pkg-f": "1.1"},
        "installed": {
            "pkg-a": {"version": "1.0", "requires": ["pkg-b"]},
            "pkg-b": {"version": "1.2.3", "requires": ["pkg-c"]},
            "pkg-c": {"version": "0.9", "requires": []},
            "pkg-d": {"version": "4.0", "requires": ["pkg-e"]},
            "pkg-e": {"version": "5.0", "requires": []},
            "pkg-f": {"version": "1.1", "requires": ["pkg-g"]},
            "skvault": {"version": "0.1.0", "requires": ["pkg-c"]},
        },
    }


def metadata(environment: dict, **extra) -> dict:
    return {
        "skvault_metadata": 1,
        "created_at": "2026-11-29T03:00:00+00:00",
        "environment": environment,
        **extra,
    }


def write(path: Path, environment: dict | None, **extra) -> Path:
    model = {"coef": np.arange(4.0)}  # plain data is enough where nothing is loaded
    write_artifact(
        model, path, metadata=None if environment is None else metadata(environment, **extra)
    )
    return path


def read(path: Path) -> dict:
    return read_environment_metadata(path)


def requirement_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def parse_pins(text: str) -> dict[str, str]:
    """``name==version`` lines as {name: version}; ``name @ url`` lines as {name: "@ url"}."""
    pins = {}
    for line in requirement_lines(text):
        name, sep, version = line.partition("==")
        if not sep:
            name, sep, url = line.partition(" @ ")
            assert sep, line
            version = f"@ {url}"
        assert name not in pins, line
        pins[name] = version
    return pins


@pytest.fixture(scope="module")
def real_meta(tmp_path_factory) -> dict:
    path = write(tmp_path_factory.mktemp("env") / "real.skv", captured_environment())
    return read(path)


# --- the pinned set -------------------------------------------------------------------------


def test_default_pins_the_model_packages_and_their_closure_at_recorded_versions(real_meta):
    pins = parse_pins(render(real_meta, "requirements"))
    assert {"scikit-learn", "numpy", "skvault"} | SKLEARN_DEPS <= set(pins)
    for tool in ("pytest", "hypothesis", "ruff", "mypy"):
        assert tool not in pins  # installed, but nothing the model needs depends on them
    installed = real_meta["environment"]["installed"]
    for name, version in pins.items():
        if version.startswith("@ "):
            assert version == f"@ {installed[name]['source']}"
        else:
            assert version == importlib.metadata.version(name)
        for dep in installed[name]["requires"]:
            assert dep in pins or dep not in installed, (name, dep)


def test_skvault_editable_install_is_pinned_to_its_recorded_source(tmp_path):
    env = captured_environment()
    env["installed"]["skvault"].update(source="file:///srv/checkout/skvault", editable=True)
    text = render(read(write(tmp_path / "m.skv", env)), "requirements")
    assert "skvault @ file:///srv/checkout/skvault" in requirement_lines(text)
    assert "# skvault: an editable install at training time" in text.splitlines()


def test_closure_follows_requires_only_and_model_versions_win(tmp_path):
    meta = read(write(tmp_path / "m.skv", hand_environment()))
    pins = pinned_requirements(meta)
    assert [(p.name, p.version) for p in pins] == [
        ("pkg-a", "2.0"),  # the model section wins over the installed entry's 1.0
        ("pkg-b", "1.2.3"),
        ("pkg-c", "0.9"),
        ("pkg-f", "1.1"),
        ("skvault", "0.1.0"),
    ]
    assert dict((p.name, p.requires) for p in pins)["pkg-a"] == ("pkg-b",)
    text = render(meta, "requirements")
    assert "# Required but not installed at training time (not pinned): pkg-g" in text


def test_full_pins_everything_installed(tmp_path, real_meta):
    pins = parse_pins(render(real_meta, "requirements", full=True))
    assert set(pins) == set(real_meta["environment"]["installed"])
    assert pins["pytest"] == importlib.metadata.version("pytest")
    hand = pinned_requirements(read(write(tmp_path / "m.skv", hand_environment())), full=True)
    assert [p.name for p in hand] == [
        "pkg-a",
        "pkg-b",
        "pkg-c",
        "pkg-d",
        "pkg-e",
        "pkg-f",
        "skvault",
    ]


def test_without_installed_section_the_model_packages_are_pinned(tmp_path):
    env = {"python": {"version": "3.11.4"}, "skvault": "0.1.0", "model": {"numpy": "2.0.0"}}
    pins = parse_pins(render(read(write(tmp_path / "m.skv", env)), "requirements"))
    assert pins == {"numpy": "2.0.0", "skvault": "0.1.0"}


# --- the four formats -------------------------------------------------------------------------

SOURCES = {
    "vcs-pkg": ("git+https://example.org/team/repo.git@0123456789abcdef", False),
    "dir-pkg": ("file:///home/me/proj", True),
    "wheel-pkg": ("https://example.org/files/wheel_pkg-1.0-py3-none-any.whl", False),
}


def sources_environment() -> dict:
    env = hand_environment()
    for name, (url, editable) in SOURCES.items():
        env["installed"][name] = {
            "version": "1.0",
            "requires": [],
            "source": url,
            "editable": editable,
        }
        env["model"][name] = "1.0"
    return env


def test_requirements_name_direct_sources(tmp_path):
    lines = requirement_lines(render(read(write(tmp_path / "m.skv", sources_environment()))))
    for name, (url, _) in SOURCES.items():
        assert f"{name} @ {url}" in lines
    assert "pkg-a==2.0" in lines


def test_pylock_is_valid_toml_with_the_pins(tmp_path, real_meta):
    doc = tomllib.loads(render(real_meta, "pylock"))
    assert doc["lock-version"] == "1.0"
    assert doc["created-by"] == "skvault"
    assert doc["requires-python"] == f"=={platform.python_version()}"
    assert doc["environments"] == ["platform_system == 'Linux' and platform_machine == 'x86_64'"]
    locked = {pkg["name"]: pkg for pkg in doc["packages"]}
    pins = parse_pins(render(real_meta, "requirements"))
    assert {n: p["version"] for n, p in locked.items()} == {
        name: pins[name] if not pins[name].startswith("@") else importlib.metadata.version(name)
        for name in pins
    }
    sklearn_deps = {dep["name"] for dep in locked["scikit-learn"]["dependencies"]}
    assert SKLEARN_DEPS <= sklearn_deps <= set(locked)


def test_pylock_direct_sources(tmp_path):
    doc = tomllib.loads(render(read(write(tmp_path / "m.skv", sources_environment())), "pylock"))
    locked = {pkg["name"]: pkg for pkg in doc["packages"]}
    assert locked["vcs-pkg"]["vcs"] == {
        "type": "git",
        "url": "https://example.org/team/repo.git",
        "commit-id": "0123456789abcdef",
    }
    assert locked["dir-pkg"]["directory"] == {"path": "/home/me/proj", "editable": True}
    assert locked["wheel-pkg"]["archive"] == {"url": SOURCES["wheel-pkg"][0]}
    assert locked["pkg-b"] == {
        "name": "pkg-b",
        "version": "1.2.3",
        "dependencies": [{"name": "pkg-c"}],
    }


def test_conda_environment_yml(tmp_path):
    env = sources_environment()
    meta = read(write(tmp_path / "m.skv", env))
    lines = render(meta, "conda", name="my model.skv").splitlines()
    body = [line for line in lines if not line.startswith("#")]
    assert body[:7] == [
        "name: my-model",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11.4",
        "  - pip",
        "  - pip:",
    ]
    items = [line.removeprefix("      - ") for line in body[7:]]
    assert all(line.startswith("      - ") for line in body[7:])
    # direct sources hold ':' and '@': YAML needs them quoted (a JSON string is valid YAML)
    values = [json.loads(item) if item.startswith('"') else item for item in items]
    assert values == requirement_lines(render(meta, "requirements"))
    assert '"vcs-pkg @ git+https://example.org/team/repo.git@0123456789abcdef"' in items


def test_pixi_toml(tmp_path):
    doc = tomllib.loads(render(read(write(tmp_path / "m.skv", sources_environment())), "pixi"))
    assert doc["workspace"]["platforms"] == ["osx-arm64"]
    assert doc["workspace"]["channels"] == ["conda-forge"]
    assert doc["dependencies"] == {"python": "3.11.4.*"}
    pypi = doc["pypi-dependencies"]
    assert pypi["pkg-a"] == "==2.0"
    assert pypi["pkg-c"] == "==0.9"
    assert pypi["vcs-pkg"] == {
        "git": "https://example.org/team/repo.git",
        "rev": "0123456789abcdef",
    }
    assert pypi["dir-pkg"] == {"path": "/home/me/proj", "editable": True}
    assert pypi["wheel-pkg"] == {"url": SOURCES["wheel-pkg"][0]}
    assert "pkg-d" not in pypi


def test_unknown_format_is_refused(real_meta):
    with pytest.raises(ValueError, match="format must be one of"):
        render(real_meta, "poetry")


# --- what the file holds cannot break out of the output ----------------------------------------


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("version", "1.0 --index-url https://evil.example/simple"),
        ("version", "1.0\nevil==6.6.6"),
        ("name", "numpy\n-e /tmp/evil"),
        ("name", "--extra-index-url=https://evil.example"),
        ("source", "https://evil.example/x.whl --trusted-host evil.example"),
        ("source", "ftp://evil.example/x.whl"),
        ("requires", "bad name"),
    ],
)
def test_malformed_names_versions_and_sources_are_refused(tmp_path, where, value):
    env = hand_environment()
    entry = env["installed"]["pkg-b"]
    if where == "name":
        env["installed"][value] = env["installed"].pop("pkg-b")
    elif where == "requires":
        entry["requires"] = [value]
    else:
        entry[where] = value
    meta = read(write(tmp_path / "m.skv", env))
    for fmt in ("requirements", "pylock"):
        with pytest.raises(FormatError, match="metadata"):
            render(meta, fmt)


def test_text_fields_cannot_add_lines_or_keys(tmp_path):
    env = hand_environment()
    env["platform"] = {"system": "Linux' or '1' == '1", "machine": "x86_64"}
    meta = read(write(tmp_path / "m.skv", env))
    meta["created_at"] = 'x"\n[[packages]]\nname = "evil"\nversion = "6"'
    doc = tomllib.loads(render(meta, "pylock", name='odd\n"name".skv'))
    assert "environments" not in doc  # an odd platform name is left out, not quoted in
    assert [p["name"] for p in doc["packages"]] == [p.name for p in pinned_requirements(meta)]
    assert "evil" not in requirement_lines(render(meta, "requirements", name="a\nevil==1"))
    pixi = tomllib.loads(render(meta, "pixi", name='a"b\n[x]'))
    assert set(pixi) == {"workspace", "dependencies", "pypi-dependencies"}


def test_percent_escapes_in_a_source_path_stay_inside_toml_strings(tmp_path):
    env = hand_environment()
    env["installed"]["pkg-c"].update(source="file:///home/me/a%22b%5Cc%0A%5Bx%5D", editable=True)
    meta = read(write(tmp_path / "m.skv", env))
    expected = '/home/me/a"b\\c\n[x]'
    pylock = tomllib.loads(render(meta, "pylock"))
    (pkg_c,) = [p for p in pylock["packages"] if p["name"] == "pkg-c"]
    assert pkg_c["directory"] == {"path": expected, "editable": True}
    assert tomllib.loads(render(meta, "pixi"))["pypi-dependencies"]["pkg-c"]["path"] == expected


def test_file_without_metadata_says_so(tmp_path):
    meta = read(write(tmp_path / "bare.skv", None))
    with pytest.raises(FormatError, match="records no training environment"):
        render(meta)
    with pytest.raises(FormatError, match="records no training environment"):
        check(meta)


# --- check --------------------------------------------------------------------------------------


def test_check_finds_no_difference_in_the_recording_environment(real_meta):
    assert check(real_meta) == []
    assert check(real_meta, full=True) == []


def test_check_lists_differences_and_which_matter(tmp_path):
    env = captured_environment()
    env["python"]["version"] = "3.9.1"
    env["model"]["scikit-learn"] = "1.5.0"
    env["model"]["not-installed-here"] = "2.0"
    env["installed"]["threadpoolctl"]["version"] = "0.0.1"  # a dependency, not a model package
    del env["installed"]["pytest"]
    meta = read(write(tmp_path / "m.skv", env))
    found = {d.name: (d.recorded, d.current, d.matters) for d in check(meta)}
    assert found == {
        "python": ("3.9.1", platform.python_version(), True),
        "scikit-learn": ("1.5.0", importlib.metadata.version("scikit-learn"), True),
        "not-installed-here": ("2.0", None, True),
        "threadpoolctl": ("0.0.1", importlib.metadata.version("threadpoolctl"), False),
    }
    # Python first, then by name
    assert [d.name for d in check(meta)] == [
        "python",
        "not-installed-here",
        "scikit-learn",
        "threadpoolctl",
    ]
    full = {d.name: (d.recorded, d.current, d.matters) for d in check(meta, full=True)}
    assert full["pytest"] == (None, importlib.metadata.version("pytest"), False)


def test_check_reports_another_implementation(tmp_path):
    env = captured_environment()
    env["python"]["implementation"] = "PyPy"
    (diff,) = check(read(write(tmp_path / "m.skv", env)))
    assert diff.name == "python" and diff.matters
    assert diff.recorded == f"PyPy {platform.python_version()}"
    assert diff.current == f"{platform.python_implementation()} {platform.python_version()}"


# --- create -------------------------------------------------------------------------------------


def test_create_refuses_another_python_minor_without_uv(tmp_path):
    env = captured_environment()
    env["python"]["version"] = "3.9.1"
    path = write(tmp_path / "m.skv", env)
    result = create(path, tmp_path / "venv", installer="pip")
    assert not result.ok
    assert "3.9.1" in result.message and "3.9 interpreter" in result.message
    assert not (tmp_path / "venv").exists()


def test_create_refuses_a_folder_in_use(tmp_path):
    path = write(tmp_path / "m.skv", captured_environment())
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "keep.txt").write_text("mine")
    result = create(path, tmp_path / "venv", installer="pip")
    assert not result.ok and "not an empty folder" in result.message
    assert (tmp_path / "venv" / "keep.txt").read_text() == "mine"


def iris_artifact(
    path: Path, *, tamper: bool = False
) -> tuple[Path, LogisticRegression, np.ndarray]:
    """A LogisticRegression on iris with a realistic environment and a golden sample."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    rows = X[::15]
    outputs = {"predict": model.predict(rows), "predict_proba": model.predict_proba(rows)}
    if tamper:
        outputs["predict_proba"] = outputs["predict_proba"][:, ::-1].copy()
    golden = {"X": rows, "outputs": outputs, "rtol": 1e-9, "atol": 0.0}
    schema = {
        "input": {"n_features": 4, "feature_names": None, "dtypes": None, "categories": None},
        "output": {
            "task": "classification",
            "classes": [0, 1, 2],
            "n_outputs": 1,
            "methods": sorted(outputs),
        },
    }
    env = captured_environment(("scikit-learn", "numpy"))
    meta = metadata(env, schema=schema, golden=golden)
    write_artifact(model, path, metadata=meta)
    return path, model, X


def uv_available() -> bool:
    from shutil import which

    beside = Path(sys.executable).parent / "uv"
    return which("uv") is not None or beside.is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "installer",
    [
        pytest.param("uv", marks=pytest.mark.skipif(not uv_available(), reason="uv not installed")),
        "pip",
    ],
)
def test_create_builds_an_environment_that_loads_and_verifies(tmp_path, installer):
    path, model, X = iris_artifact(tmp_path / "iris.skv")
    target = tmp_path / "venv"
    steps: list[str] = []
    result = create(path, target, installer=installer, log=steps.append)
    assert result.ok, (result.message, result.output)
    assert result.installer == installer
    assert result.loaded["verified"] is True
    assert result.loaded["type"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert len(steps) == 3

    # the environment on its own: its skvault, its scikit-learn, the same predictions
    code = (
        "import json, sys, numpy, sklearn, skvault\n"
        "m = skvault.load(sys.argv[1])\n"
        "X = numpy.array(json.loads(sys.argv[2]))\n"
        "print(json.dumps([sklearn.__version__, numpy.__version__, skvault.__file__,"
        " m.predict_proba(X).tolist()]))\n"
    )
    done = subprocess.run(
        [str(result.python), "-I", "-c", code, str(path), json.dumps(X.tolist())],
        capture_output=True,
        text=True,
        check=True,
    )
    sk, npv, where, proba = json.loads(done.stdout)
    assert sk == importlib.metadata.version("scikit-learn")
    assert npv == importlib.metadata.version("numpy")
    assert Path(where).resolve().is_relative_to(target.resolve())
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-12, atol=0)
    pins = parse_pins((target / "skvault-requirements.txt").read_text())
    assert pins["scikit-learn"] == sk and "skvault" not in pins
