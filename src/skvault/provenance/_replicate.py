"""Rebuild the training environment an artifact records: pinned requirements, checks, a venv.

Everything here reads the ``environment`` section of the metadata (see docs/PROVENANCE.md):

- `pinned_requirements` computes what to pin: by default the distributions the model uses plus
  their dependencies, followed through the recorded ``requires`` lists; with ``full=True`` every
  distribution that was installed. Each is pinned to its recorded version, or to its recorded
  source when it was installed from a direct URL (a VCS commit, an archive, a local folder).
- `render` writes those pins as ``requirements.txt``, a PEP 751 ``pylock.toml``, a conda
  ``environment.yml`` or a ``pixi.toml``.
- `check` compares the recorded environment with the running one.
- `create` builds a virtual environment from the pins (with uv when there is one, else with
  ``venv`` and pip), installs skvault into it and loads the artifact there.

The metadata comes from a file that may not be trusted: every name, version and source is checked
before it is written into a requirements file or handed to an installer, so a crafted artifact
cannot smuggle installer options (``--index-url ...``) or extra lines into the output.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from .._version import __version__
from ..errors import FormatError
from ..format import open_artifact
from ..format._files import FileLike
from ._markers import canonical_name

__all__ = [
    "FORMATS",
    "INSTALLERS",
    "CreateResult",
    "Difference",
    "Pin",
    "check",
    "create",
    "pinned_requirements",
    "read_environment_metadata",
    "render",
]

FORMATS = ("requirements", "pylock", "conda", "pixi")
INSTALLERS = ("auto", "uv", "pip")
SKVAULT = "skvault"
_MEMBER = "metadata.json"

# What a recorded name, version or source may look like before it is written anywhere: PEP 508
# names, PEP 440 version characters, and URLs without spaces or control characters.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_URL = re.compile(r"^(?:file|https?|(?:git|hg|svn|bzr)\+[a-z+]+)://[^\s\"'\\]+$")
_VCS = ("git", "hg", "svn", "bzr")
_MARKER_VALUE = re.compile(r"^[A-Za-z0-9._-]+$")
_ENV_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_PIXI_PLATFORMS = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "amd64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("linux", "arm64"): "linux-aarch64",
    ("linux", "ppc64le"): "linux-ppc64le",
    ("darwin", "x86_64"): "osx-64",
    ("darwin", "arm64"): "osx-arm64",
    ("windows", "amd64"): "win-64",
    ("windows", "x86_64"): "win-64",
    ("windows", "arm64"): "win-arm64",
}


@dataclass(frozen=True)
class Pin:
    """One pinned distribution of the recorded environment.

    Attributes
    ----------
    name : str
        Canonical (PEP 503) distribution name.
    version : str or None
        The recorded version; None only when a direct-URL source was recorded without one.
    source : str or None
        Where it was installed from when that was a direct URL (PEP 610): ``git+https://...@commit``,
        an archive URL, or a ``file://`` folder. None for an index install.
    editable : bool
        Whether it was an editable install.
    requires : tuple of str
        Canonical names of its dependencies that are pinned as well.
    """

    name: str
    version: str | None
    source: str | None = None
    editable: bool = False
    requires: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        """The PEP 508 requirement: ``name==version``, or ``name @ source`` for a direct URL."""
        if self.source is not None:
            return f"{self.name} @ {self.source}"
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Difference:
    """A package whose running version differs from the recorded one.

    Attributes
    ----------
    name : str
        Canonical distribution name, or ``"python"`` for the interpreter.
    recorded : str or None
        The recorded version; None when the training environment did not have it.
    current : str or None
        The running version; None when it is not installed here.
    matters : bool
        True for Python and for the distributions the model uses: a difference there can change
        what the model computes, or stop it from loading.
    """

    name: str
    recorded: str | None
    current: str | None
    matters: bool


@dataclass
class CreateResult:
    """What `create` did and whether the artifact loads in the new environment.

    Attributes
    ----------
    ok : bool
        True when the environment was built and the artifact loaded there (and matched its
        golden sample, when it has one).
    directory : Path
        The environment's folder.
    message : str
        One line: what succeeded, or what failed and why.
    python : Path or None
        The environment's interpreter, once created.
    installer : str or None
        ``"uv"`` or ``"pip"``.
    notes : list of str
        Things worth knowing that did not make it fail (another Python patch release, ...).
    output : str
        The end of the failing tool's output, when a step failed.
    loaded : dict
        What the check inside the environment reported: ``type``, ``verified``, ``skvault``
        (where skvault was imported from), ``python``, ``mismatches``.
    """

    ok: bool
    directory: Path
    message: str
    python: Path | None = None
    installer: str | None = None
    notes: list[str] = field(default_factory=list)
    output: str = ""
    loaded: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# reading and validating the recorded environment


def read_environment_metadata(file: FileLike) -> Any:
    """Return the artifact's metadata (plain data, or None), without loading or trusting the model.

    The one place this module reads a file, so that it can move to the public reader.
    """
    with open_artifact(file) as artifact:
        return artifact.metadata()


@dataclass(frozen=True)
class _Environment:
    python: str | None
    implementation: str | None
    system: str | None
    machine: str | None
    skvault: str | None
    model: dict[str, str]
    installed: dict[str, dict[str, Any]]


def _bad(message: str) -> FormatError:
    return FormatError(f"metadata: {message}", member=_MEMBER)


def _environment(meta: Any) -> _Environment:
    """Validate the ``environment`` section: every value that reaches an output is checked here."""
    if meta is None:
        raise FormatError(
            "the file records no training environment: it has no provenance metadata "
            "(written by skvault.format.write_artifact without metadata, or by an older skvault)"
        )
    if not isinstance(meta, Mapping):
        raise _bad("the metadata must be a mapping")
    env = meta.get("environment")
    if not isinstance(env, Mapping):
        raise _bad("'environment' must be a mapping")
    python = env.get("python") or {}
    plat = env.get("platform") or {}
    if not isinstance(python, Mapping) or not isinstance(plat, Mapping):
        raise _bad("'environment.python' and 'environment.platform' must be mappings")
    py_version = _optional_version(python.get("version"), "environment.python.version")
    implementation = _optional_word(python.get("implementation"))
    skvault_version = _optional_version(env.get("skvault"), "environment.skvault")

    model_raw = env.get("model") or {}
    if not isinstance(model_raw, Mapping):
        raise _bad("'environment.model' must be a mapping")
    model = {
        _name(name, "environment.model"): _version(version, f"environment.model[{name!r}]")
        for name, version in model_raw.items()
    }

    installed_raw = env.get("installed") or {}
    if not isinstance(installed_raw, Mapping):
        raise _bad("'environment.installed' must be a mapping")
    installed: dict[str, dict[str, Any]] = {}
    for raw_name, info in installed_raw.items():
        name = _name(raw_name, "environment.installed")
        where = f"environment.installed[{raw_name!r}]"
        if not isinstance(info, Mapping):
            raise _bad(f"{where} must be a mapping")
        requires = info.get("requires") or []
        if not isinstance(requires, (list, tuple)):
            raise _bad(f"{where}.requires must be a list")
        source = info.get("source")
        if source is not None and (not isinstance(source, str) or not _URL.match(source)):
            raise _bad(f"{where}.source is not a URL skvault installs from: {source!r:.200}")
        version = info.get("version")
        if version is not None or source is None:  # a direct-URL install may lack a version
            version = _version(version, f"{where}.version")
        installed[name] = {
            "version": version,
            "requires": sorted({_name(r, f"{where}.requires") for r in requires}),
            "source": source,
            "editable": info.get("editable") is True,
        }
    return _Environment(
        python=py_version,
        implementation=implementation,
        system=_optional_word(plat.get("system")),
        machine=_optional_word(plat.get("machine")),
        skvault=skvault_version,
        model=model,
        installed=installed,
    )


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _bad(f"{where} holds a name that is not a distribution name: {value!r:.200}")
    return canonical_name(value)


def _version(value: object, where: str) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        raise _bad(f"{where} is not a version: {value!r:.200}")
    return value


def _optional_version(value: object, where: str) -> str | None:
    return None if value is None else _version(value, where)


def _optional_word(value: object) -> str | None:
    """A platform or implementation name, or None when it is missing or holds odd characters."""
    return value if isinstance(value, str) and _MARKER_VALUE.match(value) else None


# ----------------------------------------------------------------------------------------------
# the pinned set


def pinned_requirements(meta: Any, *, full: bool = False) -> list[Pin]:
    """Return the pins that rebuild the training environment, sorted by name.

    Parameters
    ----------
    meta : dict
        The artifact's metadata (as `read_environment_metadata` returns it).
    full : bool, default=False
        Pin every distribution that was installed, rather than the ones the model uses (the
        ``environment.model`` section) with their dependencies, followed through the recorded
        ``requires`` lists. skvault itself is always part of the default set: it reads the file.

    Returns
    -------
    list of Pin

    Raises
    ------
    FormatError
        If the file has no environment section, or a recorded name, version or source is
        malformed.
    """
    env = _environment(meta)
    return _pins(env, full)[0]


def _pins(env: _Environment, full: bool) -> tuple[list[Pin], list[str]]:
    """The pins, and the names some pinned distribution required but that were not installed."""
    installed = env.installed
    if full:
        names = set(installed) | set(env.model)
        missing: set[str] = set()
    else:
        roots = set(env.model)
        if SKVAULT in installed or env.skvault is not None:
            roots.add(SKVAULT)
        names, missing = set(), set()
        stack = sorted(roots)
        while stack:
            name = stack.pop()
            if name in names:
                continue
            names.add(name)
            for dep in installed.get(name, {}).get("requires", ()):
                if dep in installed:
                    stack.append(dep)
                else:
                    # its marker was true at training time, yet it was not installed: an
                    # environment installed with --no-deps. Pinning a guess would be wrong.
                    missing.add(dep)
    pins = []
    for name in sorted(names):
        info = installed.get(name, {})
        # the model section is what the load check compares: it wins over the installed entry
        version = env.model.get(name) or info.get("version")
        if version is None and name == SKVAULT:
            version = env.skvault
        source = info.get("source")
        if version is None and source is None:
            continue  # named by nothing but a bare "skvault" with no version: nothing to pin
        requires = tuple(dep for dep in info.get("requires", ()) if dep in names)
        pins.append(Pin(name, version, source, bool(info.get("editable")), requires))
    return pins, sorted(missing - names)


# ----------------------------------------------------------------------------------------------
# rendering


def render(meta: Any, fmt: str = "requirements", *, full: bool = False, name: str = "") -> str:
    """Return the pinned environment as the text of a requirements file, lock file or manifest.

    Parameters
    ----------
    meta : dict
        The artifact's metadata.
    fmt : {"requirements", "pylock", "conda", "pixi"}, default="requirements"
        ``requirements.txt`` (one requirement a line), a PEP 751 ``pylock.toml``, a conda
        ``environment.yml`` (Python from conda, the pins in its ``pip:`` section) or a
        ``pixi.toml`` (Python in ``[dependencies]``, the pins in ``[pypi-dependencies]``).
    full : bool, default=False
        Pin everything that was installed (see `pinned_requirements`).
    name : str, optional
        The artifact's name, for comments and the conda or pixi environment name.

    Returns
    -------
    str
        The text, ending with a newline.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    env = _environment(meta)
    pins, missing = _pins(env, full)
    created = meta.get("created_at") if isinstance(meta, Mapping) else None
    header = _header(env, name, created if isinstance(created, str) else None, full, missing)
    writer = {
        "requirements": _requirements,
        "pylock": _pylock,
        "conda": _conda,
        "pixi": _pixi,
    }[fmt]
    return writer(env, pins, header, name)


def _printable(text: str, limit: int = 120) -> str:
    """Text from the file made safe for a comment: one line, no control characters."""
    out = "".join(ch if ch.isprintable() else "?" for ch in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _header(
    env: _Environment, name: str, created: str | None, full: bool, missing: list[str]
) -> list[str]:
    what = "everything installed" if full else "the packages the model uses and their dependencies"
    title = f"The training environment of {_printable(name)}" if name else "A training environment"
    lines = [f"{title}, written by skvault {__version__} (skvault env)."]
    if created:
        lines.append(f"Recorded {_printable(created, 40)}")
    python = f"Python {env.python or '?'}"
    if env.implementation:
        python += f" ({env.implementation})"
    if env.system or env.machine:
        python += f" on {env.system or '?'} {env.machine or '?'}"
    lines.append(python + f"; pinned: {what}.")
    if missing:
        lines.append(
            "Required but not installed at training time (not pinned): " + ", ".join(missing)
        )
    return lines


def _requirements(env: _Environment, pins: list[Pin], header: list[str], name: str) -> str:
    lines = [f"# {line}" for line in header]
    for pin in pins:
        if pin.editable:
            lines.append(f"# {pin.name}: an editable install at training time")
        lines.append(pin.requirement)
    return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    """A TOML basic string: escape what TOML forbids raw (quotes, backslash, control chars)."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _inline(table: Mapping[str, object]) -> str:
    items = []
    for key, value in table.items():
        text = ("true" if value else "false") if isinstance(value, bool) else _toml_str(str(value))
        items.append(f"{key} = {text}")
    return "{ " + ", ".join(items) + " }"


@dataclass(frozen=True)
class _Source:
    kind: str  # "vcs", "directory" or "archive"
    url: str  # without the vcs prefix and commit
    vcs: str | None = None
    commit: str | None = None
    path: str | None = None  # for file:// URLs


def _source(url: str) -> _Source:
    scheme, _, rest = url.partition("://")
    vcs = None
    if "+" in scheme and scheme.split("+", 1)[0] in _VCS:
        vcs, scheme = scheme.split("+", 1)
    plain = f"{scheme}://{rest}"
    commit = None
    if vcs is not None:
        head, at, tail = plain.rpartition("@")
        if at and "/" not in tail and head.count("://") == 1:
            plain, commit = head, tail
    parts = urlsplit(plain)
    path = url2pathname(unquote(parts.path)) if parts.scheme == "file" else None
    if vcs is not None:
        return _Source("vcs", plain, vcs, commit, path)
    if path is not None and Path(path).suffix not in (".whl", ".gz", ".zip", ".bz2", ".xz"):
        return _Source("directory", plain, path=path)
    return _Source("archive", plain, path=path)


def _pylock(env: _Environment, pins: list[Pin], header: list[str], name: str) -> str:
    lines = [f"# {line}" for line in header]
    lines.append(
        "# No file hashes are recorded at dump: a locker (pip lock, uv) can add wheels and hashes."
    )
    lines.append('lock-version = "1.0"')
    if env.system and env.machine:
        marker = f"platform_system == '{env.system}' and platform_machine == '{env.machine}'"
        lines.append(f"environments = [{_toml_str(marker)}]")
    if env.python:
        lines.append(f"requires-python = {_toml_str('==' + env.python)}")
    lines.append('created-by = "skvault"')
    for pin in pins:
        lines += ["", "[[packages]]", f"name = {_toml_str(pin.name)}"]
        if pin.version is not None:
            lines.append(f"version = {_toml_str(pin.version)}")
        if pin.requires:
            deps = ", ".join(_inline({"name": dep}) for dep in pin.requires)
            lines.append(f"dependencies = [{deps}]")
        if pin.source is not None:
            src = _source(pin.source)
            if src.kind == "vcs":
                table: dict[str, object] = {"type": src.vcs or "git"}
                table.update({"path": src.path} if src.path is not None else {"url": src.url})
                if src.commit:
                    table["commit-id"] = src.commit
                lines.append(f"vcs = {_inline(table)}")
            elif src.kind == "directory":
                table = {"path": src.path or src.url}
                if pin.editable:
                    table["editable"] = True
                lines.append(f"directory = {_inline(table)}")
            else:
                key = {"path": src.path} if src.path is not None else {"url": src.url}
                lines.append(f"archive = {_inline(key)}")
    return "\n".join(lines) + "\n"


def _env_name(name: str) -> str:
    stem = Path(name).name.removesuffix(".skv") if name else ""
    return _ENV_NAME.sub("-", stem).strip("-.") or "skvault-model"


def _yaml_item(text: str) -> str:
    """A YAML scalar: plain when it is a simple pin, else double-quoted (JSON is valid YAML)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+!-]*", text):
        return text
    return json.dumps(text)


def _conda(env: _Environment, pins: list[Pin], header: list[str], name: str) -> str:
    lines = [f"# {line}" for line in header]
    if env.implementation and env.implementation != "CPython":
        lines.append(f"# The training interpreter was {env.implementation}, not CPython.")
    lines += [
        f"name: {_env_name(name)}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
    ]
    if env.python:
        lines.append(f"  - python={env.python}")
    lines.append("  - pip")
    if pins:
        lines.append("  - pip:")
        lines += [f"      - {_yaml_item(pin.requirement)}" for pin in pins]
    return "\n".join(lines) + "\n"


def _pixi(env: _Environment, pins: list[Pin], header: list[str], name: str) -> str:
    lines = [f"# {line}" for line in header]
    platform_name = _PIXI_PLATFORMS.get(((env.system or "").lower(), (env.machine or "").lower()))
    if platform_name is None:
        lines.append("# The training platform has no pixi name: the common ones are listed.")
        platforms = ["linux-64", "osx-64", "osx-arm64", "win-64"]
    else:
        platforms = [platform_name]
    lines += [
        "[workspace]",
        f"name = {_toml_str(_env_name(name))}",
        'channels = ["conda-forge"]',
        "platforms = [" + ", ".join(_toml_str(p) for p in platforms) + "]",
        "",
        "[dependencies]",
    ]
    if env.python:
        lines.append(f"python = {_toml_str(env.python + '.*')}")
    lines += ["", "[pypi-dependencies]"]
    for pin in pins:
        if pin.source is None:
            lines.append(f"{pin.name} = {_toml_str('==' + str(pin.version))}")
            continue
        src = _source(pin.source)
        table: dict[str, object]
        if src.kind == "vcs":
            table = {src.vcs or "git": src.url}
            if src.commit:
                table["rev"] = src.commit
        elif src.path is not None:
            table = {"path": src.path}
            if pin.editable:
                table["editable"] = True
        else:
            table = {"url": src.url}
        lines.append(f"{pin.name} = {_inline(table)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# comparing with the running environment


def _running_distributions() -> dict[str, str]:
    """The running distributions, canonical name to version (the first on sys.path wins)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        raw = dist.metadata["Name"]
        if raw:
            found.setdefault(canonical_name(raw), dist.version)
    return found


def check(meta: Any, *, full: bool = False) -> list[Difference]:
    """Compare the recorded environment with the running one.

    Parameters
    ----------
    meta : dict
        The artifact's metadata.
    full : bool, default=False
        Compare every distribution installed on either side, rather than Python and the pinned
        set of `pinned_requirements` (the model's distributions, their dependencies, skvault).

    Returns
    -------
    list of Difference
        Only what differs: Python first, then by name. ``matters`` is True for Python and for
        the distributions the model uses.
    """
    env = _environment(meta)
    running = _running_distributions()
    out: list[Difference] = []
    if env.python is not None:
        recorded, current = env.python, platform.python_version()
        impl = platform.python_implementation()
        if env.implementation is not None and env.implementation != impl:
            recorded, current = f"{env.implementation} {recorded}", f"{impl} {current}"
        if recorded != current:
            out.append(Difference("python", recorded, current, True))
    pins, _ = _pins(env, full)
    recorded_versions = {pin.name: pin.version for pin in pins}
    names = set(recorded_versions)
    if full:
        names |= set(running)
    for name in sorted(names):
        recorded_version = recorded_versions.get(name)
        current_version = running.get(name)
        if recorded_version != current_version:
            out.append(Difference(name, recorded_version, current_version, name in env.model))
    return out


# ----------------------------------------------------------------------------------------------
# building a virtual environment


def create(
    file: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    full: bool = False,
    installer: str = "auto",
    trusted: Iterable[str] = (),
    log: Callable[[str], None] | None = None,
) -> CreateResult:
    """Build a virtual environment with the recorded pins and check that the artifact loads in it.

    The environment gets the pins of `pinned_requirements` and skvault: from the running
    skvault's source tree when it runs from a checkout (an editable or local install), else
    ``skvault==<recorded version>``. Then its interpreter loads the artifact with skvault and,
    when the file has a golden sample, verifies the model's outputs against it.

    Parameters
    ----------
    file : str or os.PathLike
        The artifact.
    directory : str or os.PathLike
        Where to create the environment; it must not exist or be empty.
    full : bool, default=False
        Pin everything that was installed rather than what the model needs.
    installer : {"auto", "uv", "pip"}, default="auto"
        ``"auto"`` uses uv when it is on PATH or beside the running interpreter, else the
        running interpreter's ``venv`` and pip.
    trusted : list of str, optional
        Names to trust when loading, as in `skvault.load`.
    log : callable, optional
        Called with a line for each step.

    Returns
    -------
    CreateResult
        ``ok`` is False, with the reason in ``message``, when Python's version cannot be
        matched, an installation fails, or the artifact does not load or verify in the new
        environment.

    Raises
    ------
    FormatError
        If the file is malformed or records no environment.
    """
    if installer not in INSTALLERS:
        raise ValueError(f"installer must be one of {', '.join(INSTALLERS)}, not {installer!r}")
    say = log or (lambda line: None)
    target = Path(directory).absolute()
    artifact = Path(file).absolute()
    meta = read_environment_metadata(artifact)
    env = _environment(meta)
    all_pins, missing = _pins(env, full)
    # skvault is installed on its own below: from this checkout, or as recorded
    pins = [pin for pin in all_pins if pin.name != SKVAULT]
    result = CreateResult(ok=False, directory=target, message="")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        result.message = f"{target} exists and is not an empty folder: choose a new one"
        return result
    uv = _find_uv() if installer in ("auto", "uv") else None
    if installer == "uv" and uv is None:
        result.message = "uv was asked for but is not on PATH nor beside the running Python"
        return result
    result.installer = "uv" if uv is not None else "pip"

    interpreter = _choose_python(env, uv, result)
    if interpreter is None:
        return result

    say(f"creating a virtual environment in {target} with {result.installer}")
    if uv is not None:
        command = [uv, "venv", "--no-project", "--python", interpreter, str(target)]
    else:
        command = [interpreter, "-m", "venv", str(target)]
    if _run(command, result, "creating the virtual environment failed") is None:
        return result
    python = _venv_python(target)
    result.python = python
    info = _interpreter(python, result)
    if info is None:
        return result
    if env.python is not None and info["version"] != env.python:
        result.notes.append(
            f"Python {info['version']} runs the environment; the model was saved under "
            f"Python {env.python}"
        )

    requirements = target / "skvault-requirements.txt"
    header = _header(env, artifact.name, None, full, missing)
    requirements.write_text(_requirements(env, pins, header, artifact.name), "utf-8")
    with tempfile.TemporaryDirectory(prefix="skvault-src-") as scratch:
        skvault_spec, how = _skvault_spec(env, Path(scratch))
        say(f"installing {len(pins)} pinned packages and skvault ({how})")
        if uv is not None:
            command = [uv, "pip", "install", "--python", str(python), "-r", str(requirements)]
        else:
            command = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
            command += ["-r", str(requirements)]
        if _run([*command, skvault_spec], result, "installing the pinned packages failed") is None:
            return result

    say(f"loading {artifact.name} in the new environment")
    golden = isinstance(meta, Mapping) and meta.get("golden") is not None
    _check_inside(python, artifact, golden, list(trusted), env, result)
    return result


def _find_uv() -> str | None:
    """uv on PATH, or installed beside the running interpreter (``pip install uv`` in a venv)."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _choose_python(env: _Environment, uv: str | None, result: CreateResult) -> str | None:
    """The interpreter to build on: this one when its major.minor matches the recorded one."""
    impl = platform.python_implementation()
    recorded_impl = env.implementation or impl
    if env.python is None:
        result.notes.append("the file records no Python version: using the running one")
        return sys.executable
    same_minor = env.python.split(".")[:2] == platform.python_version().split(".")[:2]
    if same_minor and recorded_impl == impl:
        return sys.executable
    wanted = f"{recorded_impl} {env.python}"
    if uv is not None and recorded_impl in ("CPython", "PyPy"):
        # uv finds (or downloads, where it may) a matching interpreter
        return f"{recorded_impl.lower()}@{env.python}"
    result.message = (
        f"the model was saved under {wanted} and this is {impl} {platform.python_version()}: "
        f"run skvault env --create with a {recorded_impl} "
        f"{'.'.join(env.python.split('.')[:2])} interpreter (or install uv, which can fetch one)"
    )
    return None


def _venv_python(target: Path) -> Path:
    if os.name == "nt":
        return target / "Scripts" / "python.exe"
    return target / "bin" / "python"


def _child_env() -> dict[str, str]:
    # the new environment must see its own packages only, never this process's paths
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(
    command: list[str], result: CreateResult, failure: str
) -> subprocess.CompletedProcess[str] | None:
    """Run ``command``; on failure, fill in ``result`` and return None."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", env=_child_env()
        )
    except OSError as exc:
        result.message = f"{failure}: cannot run {command[0]}: {exc.strerror or exc}"
        return None
    if done.returncode != 0:
        result.message = f"{failure} (exit code {done.returncode})"
        result.output = _tail(done.stdout + done.stderr)
        return None
    return done


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _interpreter(python: Path, result: CreateResult) -> dict[str, str] | None:
    code = (
        "import json, platform; print(json.dumps({'version': platform.python_version(), "
        "'implementation': platform.python_implementation()}))"
    )
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", code], capture_output=True, text=True, env=_child_env()
        )
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, ValueError, IndexError) as exc:
        result.message = f"the new environment's Python does not run: {exc}"
        return None


def _skvault_spec(env: _Environment, scratch: Path) -> tuple[str, str]:
    """What to install skvault from, and a few words saying which it is."""
    tree = _source_tree()
    if tree is not None:
        # build from a copy: building in place would leave build/ and egg-info in the checkout
        copy = scratch / "skvault"
        _copy_project(tree, copy)
        return str(copy), f"from the source tree {tree}"
    recorded = env.installed.get(SKVAULT, {})
    source = recorded.get("source")
    if source is not None and not source.startswith("file:"):
        return f"{SKVAULT} @ {source}", f"from {source}"
    version = recorded.get("version") or env.skvault or __version__
    return f"{SKVAULT}=={version}", f"skvault=={version}"


def _source_tree() -> Path | None:
    """The running skvault's project folder when it runs from a checkout, else None."""
    candidates = []
    try:
        text = importlib.metadata.distribution(SKVAULT).read_text("direct_url.json")
        url = json.loads(text)["url"] if text else ""
        if isinstance(url, str) and url.startswith("file:"):
            candidates.append(Path(url2pathname(unquote(urlsplit(url).path))))
    except (importlib.metadata.PackageNotFoundError, ValueError, KeyError, TypeError, OSError):
        pass
    package = Path(__file__).resolve().parents[1]  # .../skvault
    candidates += [package.parent.parent, package.parent]  # src layout, then flat layout
    for folder in candidates:
        if _is_skvault_project(folder) and (folder / "src" / SKVAULT).is_dir():
            return folder
    return None


def _is_skvault_project(folder: Path) -> bool:
    try:
        with open(folder / "pyproject.toml", "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(project, dict) and project.get("name") == SKVAULT


def _copy_project(tree: Path, dest: Path) -> None:
    """Copy what building skvault needs: its metadata files and ``src/``, without build debris."""
    dest.mkdir()
    for entry in tree.iterdir():
        if entry.is_file() and (
            entry.name in ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in")
            or entry.name.upper().startswith(("README", "LICENSE", "LICENCE", "COPYING"))
        ):
            shutil.copy2(entry, dest / entry.name)
    shutil.copytree(
        tree / "src",
        dest / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )


# Runs inside the new environment: load the artifact with the installed skvault, verify it when
# it has a golden sample, and report on one JSON line. Written for any skvault version: the
# on_mismatch and verify keywords are used only when that skvault's load has them.
_CHECK_SCRIPT = r"""
import inspect, json, sys, warnings
import skvault
path, golden, trusted = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
params = inspect.signature(skvault.load).parameters
kwargs = {}
verified = False
if "verify" in params:
    kwargs["verify"] = golden
    verified = golden
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = skvault.load(path, trusted=trusted or None, **kwargs)
mismatches = {}
for w in caught:
    mismatches.update(getattr(w.message, "differences", None) or {})
kind = type(model)
print(json.dumps({
    "type": kind.__module__ + "." + kind.__qualname__,
    "verified": verified,
    "skvault": skvault.__file__,
    "skvault_version": skvault.__version__,
    "python": sys.version.split()[0],
    "mismatches": {k: list(v) for k, v in mismatches.items()},
}))
"""


def _check_inside(
    python: Path,
    file: Path,
    golden: bool,
    trusted: list[str],
    env: _Environment,
    result: CreateResult,
) -> None:
    command = [str(python), "-I", "-c", _CHECK_SCRIPT, str(file), "1" if golden else "0"]
    command.append(json.dumps(trusted))
    done = _run(command, result, f"{file.name} fails to load or verify in {result.directory}")
    if done is None:
        # the last line of a traceback says what failed: put it in the one-line message
        last = result.output.strip().splitlines()[-1:] if result.output else []
        if last:
            result.message += f": {last[0]}"
        return
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result.message = "the check in the new environment printed no report"
        return
    result.loaded = report
    mismatches = {k: v for k, v in report.get("mismatches", {}).items() if k != "python"}
    if mismatches:
        listing = ", ".join(f"{k} {v[1]} (recorded {v[0]})" for k, v in sorted(mismatches.items()))
        result.message = f"the new environment still differs from the recorded one: {listing}"
        return
    result.ok = True
    what = "loaded and verified against its golden sample" if report["verified"] else "loaded"
    if golden and not report["verified"]:
        result.notes.append("this skvault's load cannot verify golden samples")
    elif not golden:
        result.notes.append("the file has no golden sample: its outputs were not verified")
    result.message = f"{file.name} {what} in {result.directory} ({report['type']})"
