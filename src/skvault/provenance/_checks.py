"""Checks on load: the running environment against the recorded one, and the golden sample."""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import (
    EnvironmentMismatchError,
    FormatError,
    VerificationError,
    VersionMismatchWarning,
)
from ._environment import current_version
from ._golden import verify_golden

__all__ = [
    "ON_MISMATCH",
    "check_environment",
    "check_options",
    "environment_differences",
    "verify_model",
]

ON_MISMATCH = ("warn", "error", "ignore")
_MEMBER = "metadata.json"


def check_options(on_mismatch: object, verify: object) -> None:
    """Raise ValueError for an ``on_mismatch`` or ``verify`` value ``load`` does not accept."""
    if not isinstance(on_mismatch, str) or on_mismatch not in ON_MISMATCH:
        raise ValueError(f'on_mismatch must be "warn", "error" or "ignore", not {on_mismatch!r}')
    if verify is not True and verify is not False and verify != "auto":
        raise ValueError(f'verify must be True, False or "auto", not {verify!r}')


def environment_differences(
    meta: dict[str, Any] | None,
) -> dict[str, tuple[str | None, str | None]]:
    """Return ``{name: (recorded, current)}`` for Python and each distribution the model uses.

    Only what differs is listed; a current version of None means the distribution is not
    installed. A file without provenance metadata has nothing to compare: the result is empty.
    """
    if meta is None:
        return {}
    env = meta.get("environment")
    if not isinstance(env, dict):
        raise FormatError("metadata: 'environment' must be a mapping", member=_MEMBER)
    recorded: dict[str, Any] = {}
    python = env.get("python")
    if isinstance(python, dict) and "version" in python:
        recorded["python"] = python["version"]
    model = env.get("model", {})
    if not isinstance(model, dict):
        raise FormatError("metadata: 'environment.model' must be a mapping", member=_MEMBER)
    recorded.update(sorted(model.items()))
    differences: dict[str, tuple[str | None, str | None]] = {}
    for name, version in recorded.items():
        if not isinstance(name, str) or not isinstance(version, str):
            raise FormatError(
                f"metadata: the recorded version of {name!r} must be a string", member=_MEMBER
            )
        current = current_version(name)
        if current != version:
            differences[name] = (version, current)
    return differences


def check_environment(
    meta: dict[str, Any] | None, on_mismatch: str, *, stacklevel: int
) -> dict[str, tuple[str | None, str | None]]:
    """Compare environments and act on a difference as ``on_mismatch`` says; return the differences.

    ``stacklevel`` is passed to `warnings.warn` (1 is this function).
    """
    differences = environment_differences(meta)
    if differences and on_mismatch == "error":
        raise EnvironmentMismatchError(differences)
    if differences and on_mismatch == "warn":
        warnings.warn(VersionMismatchWarning(differences), stacklevel=stacklevel)
    return differences


def verify_model(model: Any, meta: dict[str, Any] | None) -> None:
    """Recompute the golden sample's outputs on ``model``; raise `VerificationError` if they differ.

    A file without a golden sample cannot be verified: asking for it raises as well, rather than
    pass silently.
    """
    golden = None if meta is None else meta.get("golden")
    if golden is None:
        raise VerificationError(
            "the file has no golden sample to verify the model with: dump it with X=... "
            "(a few rows of input) to record one",
        )
    verify_golden(model, golden, meta.get("schema") if meta is not None else None)
