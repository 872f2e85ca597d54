"""The training environment: interpreter, platform, and installed distributions.

Scanning the installed distributions reads one metadata file per distribution; the result is
cached for the life of the process (``functools.lru_cache``), so only the first dump pays for it.
A process that installs packages after its first dump records the environment as it was then.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import platform
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .._version import __version__
from ._markers import MarkerError, canonical_name, evaluate_marker, requirement_name

__all__ = [
    "CORE",
    "capture_environment",
    "current_version",
    "installed_distributions",
    "merge",
    "model_distributions",
    "without_credentials",
]

CORE = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")
# the import name at the start of a RECORD line: a package folder, a module or an extension
_RECORD_TOP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?=[/.])", re.MULTILINE)


def capture_environment(obj: Any, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the ``environment`` section for a dump of ``obj``, ``override`` merged over it."""
    installed = installed_distributions()
    env: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "skvault": __version__,
        "core": {name: installed[name]["version"] for name in CORE if name in installed},
        "model": {
            name: installed[name]["version"]
            for name in model_distributions(obj)
            if name in installed
        },
        # a fresh copy: the override and the caller may change what they get
        "installed": {
            name: {**info, "requires": list(info["requires"])} for name, info in installed.items()
        },
    }
    if override is not None:
        if not isinstance(override, Mapping):
            raise TypeError(f"environment must be a dict, not {type(override).__name__}")
        env = merge(env, override)
    return env


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in: nested dicts merge, other values replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge({}, value)
        else:
            out[key] = value
    return out


def installed_distributions() -> dict[str, dict[str, Any]]:
    """Every installed distribution, by canonical name: version, requires, and direct-URL source.

    Treat the result as read-only: it is cached for the process.
    """
    return _scan()[0]


@functools.lru_cache(maxsize=1)
def _scan() -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Read every installed distribution once: its metadata, and the top-level modules it provides.

    ``Distribution.metadata`` parses the whole METADATA file with the email package, long
    description included, and ``packages_distributions`` builds a path object for every line of
    every RECORD; reading the header block and matching the raw RECORD text is several times
    faster, and a dump must stay quick.
    """
    installed: dict[str, dict[str, Any]] = {}
    owners: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        headers = _headers(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        raw_name = next(iter(headers.get("name", ())), None)
        if not raw_name:
            continue
        name = canonical_name(raw_name)
        if name in installed:  # a later entry on sys.path is shadowed by the first, as for imports
            continue
        requirements = headers.get("requires-dist")
        if requirements is None and dist.read_text("requires.txt") is not None:
            requirements = dist.requires or []  # egg-info: requires.txt has its own syntax
        info: dict[str, Any] = {
            "version": next(iter(headers.get("version", ())), ""),
            "requires": _active_requirements(requirements or ()),
        }
        info.update(_direct_url(dist))
        installed[name] = info
        top = dist.read_text("top_level.txt")
        if top is not None:
            modules = set(top.split())
        else:
            modules = set(_RECORD_TOP.findall(dist.read_text("RECORD") or ""))
        modules.discard("__pycache__")
        for module in modules:
            owners.setdefault(module, []).append(name)
    return installed, owners


def _headers(text: str) -> dict[str, list[str]]:
    """Parse the header block of a core metadata file (RFC 822 style, continuation lines)."""
    end = min((i for i in (text.find("\n\n"), text.find("\n\r\n")) if i >= 0), default=len(text))
    head = text[:end]
    fields: list[list[str]] = []
    for line in head.splitlines():
        if line[:1] in (" ", "\t"):
            if fields:
                fields[-1][1] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.append([key.strip().lower(), value.strip()])
    out: dict[str, list[str]] = {}
    for key, value in fields:
        out.setdefault(key, []).append(value)
    return out


def _active_requirements(requirements: Iterable[str]) -> list[str]:
    names = set()
    for requirement in requirements:
        try:
            name, marker = requirement_name(requirement)
        except MarkerError:
            continue
        if marker is not None:
            try:
                active = evaluate_marker(marker)
            except MarkerError:
                # unreadable without packaging: keep it, the caller sees it is not installed
                active = True
            if not active:
                continue
        names.add(name)
    return sorted(names)


def _direct_url(dist: metadata.Distribution) -> dict[str, Any]:
    """Return ``source`` and ``editable`` from PEP 610's ``direct_url.json``, when there is one."""
    try:
        text = dist.read_text("direct_url.json")
    except OSError:
        return {}
    if not text:
        return {}
    try:
        doc = json.loads(text)
        url = without_credentials(str(doc["url"]))
    except (ValueError, KeyError, TypeError):
        return {}
    vcs = doc.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):
        source = f"{vcs['vcs']}+{url}"
        if vcs.get("commit_id"):
            source += f"@{vcs['commit_id']}"
    else:
        source = url
    dir_info = doc.get("dir_info")
    editable = bool(isinstance(dir_info, dict) and dir_info.get("editable"))
    return {"source": source, "editable": editable}


def without_credentials(url: str) -> str:
    """Drop any ``user:password@`` from a URL: an artifact is shared, a token must not travel."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


def model_distributions(obj: Any) -> list[str]:
    """Return the canonical names of the distributions providing the modules ``obj`` uses.

    The modules are those of every type, class and function reachable from ``obj`` the way the
    writer walks it (containers, object arrays, instance ``__dict__``), so numpy is included as
    soon as there is an array. Modules that no distribution provides (the standard library,
    ``__main__``) are left out.
    """
    owners = _scan()[1]
    names: set[str] = set()
    for module in _top_modules(obj):
        names.update(owners.get(module, ()))
    return sorted(names)


def _top_modules(obj: Any) -> set[str]:
    modules: set[str] = set()
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        cls = type(item)
        modules.add(_top(cls.__module__))
        if isinstance(item, (type, *_CALLABLES)):
            modules.add(_top(getattr(item, "__module__", None)))
            continue
        if isinstance(item, (str, bytes, bytearray, int, float, complex, bool)) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                stack.extend(item.ravel().tolist())
        else:
            try:
                state = vars(item)
            except TypeError:  # no __dict__: a Cython type, or slots
                continue
            if isinstance(state, dict):
                stack.extend(state.values())
    modules.discard("")
    return modules


_CALLABLES: tuple[type, ...] = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    np.ufunc,
)


def _top(module: object) -> str:
    return module.partition(".")[0] if isinstance(module, str) else ""


@functools.lru_cache(maxsize=256)
def current_version(name: str) -> str | None:
    """Return the installed version of distribution ``name``, or None when it is not installed.

    Reads the metadata file's header directly: ``importlib.metadata.version`` would import the
    email package on first use, and ``load`` imports nothing before the trust audit but what
    the model needs.
    """
    if name == "python":
        return platform.python_version()
    try:
        dist = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    headers = _headers(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
    return next(iter(headers.get("version", ())), None)
