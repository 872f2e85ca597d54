"""Compare two artifacts: model type and hyper-parameters, schema, scores, environment, data,
source and notes, all read without building either model."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..format import open_artifact
from ..format._files import FileLike
from ._metadata import provenance_of

__all__ = ["SECTIONS", "ArtifactDiff", "Change", "diff", "json_ready"]

# the sections compared, in the order they are shown; created_at, the golden sample and the
# manifest's member table are left out: they differ between any two dumps
SECTIONS = (
    "model",
    "params",
    "schema",
    "scores",
    "environment",
    "data",
    "source",
    "description",
)


@dataclass(frozen=True)
class Change:
    """One value that differs: ``key`` inside a section, and its value in each file.

    A value of None with ``in_a`` (or ``in_b``) False means the key is absent from that file.
    """

    key: str
    a: Any
    b: Any
    in_a: bool = True
    in_b: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the change as JSON-ready data."""
        return {
            "key": self.key,
            "a": json_ready(self.a),
            "b": json_ready(self.b),
            "in_a": self.in_a,
            "in_b": self.in_b,
        }


@dataclass
class ArtifactDiff:
    """The differences between two artifacts, section by section (see `diff`).

    Attributes
    ----------
    a, b : str
        The two files, as named by the caller.
    sections : dict of str to list of Change
        For each compared section (`SECTIONS`, in that order), what differs; an empty list
        when the section is the same in both files.
    """

    a: str
    b: str
    sections: dict[str, list[Change]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        """True when no compared section differs."""
        return not any(self.sections.values())

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-ready data."""
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "sections": {
                name: [c.to_dict() for c in changes] for name, changes in self.sections.items()
            },
        }

    def __str__(self) -> str:
        if self.identical:
            return (
                f"{self.a} and {self.b} do not differ in: {', '.join(self.sections)} "
                "(creation time and golden sample not compared)"
            )
        lines = [f"--- {self.a}", f"+++ {self.b}"]
        for name, changes in self.sections.items():
            if not changes:
                continue
            lines.append(f"{name}: {len(changes)} difference{'s' if len(changes) > 1 else ''}")
            for change in changes:
                lines.append(f"  {change.key}:")
                lines.append(f"    - {_shown(change.a, change.in_a)}")
                lines.append(f"    + {_shown(change.b, change.in_b)}")
        same = [name for name, changes in self.sections.items() if not changes]
        if same:
            lines.append(f"same: {', '.join(same)}")
        return "\n".join(lines)


def _shown(value: Any, present: bool) -> str:
    if not present:
        return "(absent)"
    text = repr(json_ready(value))
    return text if len(text) <= 200 else text[:197] + "..."


def diff(a: FileLike, b: FileLike) -> ArtifactDiff:
    """Return what differs between two artifacts, without building either model.

    Hyper-parameters are read from the object graphs (see `skvault.inspect`), everything else
    from the recorded metadata (see `skvault.read_metadata`); nothing named by either file is
    imported, so no trust is needed. The creation time and the golden sample are not compared.

    Parameters
    ----------
    a, b : str, os.PathLike, binary file object or bytes
        The two artifacts.

    Returns
    -------
    ArtifactDiff
        ``sections`` maps each of ``model``, ``params``, ``schema``, ``scores``,
        ``environment``, ``data``, ``source`` and ``description`` to its list of `Change`;
        ``identical`` is True when every list is empty.

    Raises
    ------
    FormatError
        If either file is malformed.
    OSError
        If either file cannot be read.

    Examples
    --------
    >>> import skvault
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    >>> a = skvault.dumps(LogisticRegression(C=1.0).fit(X, y), source=False)
    >>> b = skvault.dumps(LogisticRegression(C=0.5).fit(X, y), source=False)
    >>> [(c.key, c.a, c.b) for c in skvault.diff(a, b).sections["params"]]
    [('C', 1.0, 0.5)]
    """
    left, right = _summary(a), _summary(b)
    result = ArtifactDiff(_name(a, "a"), _name(b, "b"))
    for section in SECTIONS:
        result.sections[section] = _compare(left[section], right[section])
    return result


def _name(file: FileLike, default: str) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fsdecode(os.fspath(file))
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else default


def _summary(file: FileLike) -> dict[str, dict[str, Any]]:
    """Return each compared section of ``file`` as a flat ``{key: value}`` dict."""
    with open_artifact(file) as artifact:
        report = artifact.describe()
        meta = provenance_of(artifact.metadata()) or {}
    tree = report.get("tree")
    root_type = tree.get("type") if isinstance(tree, dict) else type(tree).__name__
    out: dict[str, dict[str, Any]] = {
        "model": {"type": root_type},
        "params": dict(report.get("params") or {}),
        "schema": _flat(meta.get("schema")),
        "scores": _flat(meta.get("scores")),
        "environment": _environment(meta.get("environment")),
        "data": _flat(meta.get("data")),
        "source": _source(meta.get("source")),
        "description": {
            **({"description": meta["description"]} if meta.get("description") else {}),
            **({"tags": list(meta["tags"])} if meta.get("tags") else {}),
            **_flat(meta.get("metrics"), "metrics"),
        },
    }
    return out


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys; lists, arrays and scalars are leaf values.

    An empty dict adds nothing, like None: both mean "nothing recorded".
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    elif prefix:
        out[prefix] = value
    return out


def _environment(env: Any) -> dict[str, Any]:
    if not isinstance(env, dict):
        return {}
    out = _flat({k: env.get(k) for k in ("python", "platform", "skvault", "core", "model")})
    installed = env.get("installed")
    if isinstance(installed, dict):
        for name, entry in installed.items():
            if isinstance(entry, dict):
                version = entry.get("version")
                source = entry.get("source")
                out[f"installed.{name}"] = f"{version} ({source})" if source else version
    return {k: v for k, v in out.items() if v is not None}


def _source(source: Any) -> dict[str, Any]:
    if not isinstance(source, dict):
        return {}
    out = _flat({k: v for k, v in source.items() if k != "text"})
    text = source.get("text")
    if isinstance(text, str):
        # the text itself would drown the comparison: its digest and length tell a change
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        out["text"] = f"sha256 {digest[:16]}..., {len(text.splitlines())} lines"
    return out


def _compare(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    changes = []
    for key in list(a) + [k for k in b if k not in a]:
        if key not in b:
            changes.append(Change(key, a[key], None, in_b=False))
        elif key not in a:
            changes.append(Change(key, None, b[key], in_a=False))
        elif not _same(json_ready(a[key]), json_ready(b[key])):
            changes.append(Change(key, a[key], b[key]))
    return changes


def _same(x: Any, y: Any) -> bool:
    """Equality of JSON-ready values (NaN is already "nan"); True is not 1, but 1 is 1.0."""
    if isinstance(x, list) or isinstance(y, list):
        return (
            isinstance(x, list)
            and isinstance(y, list)
            and len(x) == len(y)
            and all(_same(i, j) for i, j in zip(x, y))
        )
    if isinstance(x, dict) or isinstance(y, dict):
        return (
            isinstance(x, dict)
            and isinstance(y, dict)
            and x.keys() == y.keys()
            and all(_same(x[k], y[k]) for k in x)
        )
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    return bool(x == y)


def json_ready(value: Any) -> Any:
    """Return ``value`` as data `json.dumps` writes as strict JSON.

    Arrays become lists, numpy scalars Python scalars, tuples lists, non-string keys strings;
    NaN and infinities become the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, complex):
        return [json_ready(value.real), json_ready(value.imag)]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
