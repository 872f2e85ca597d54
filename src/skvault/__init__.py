"""skvault: safe, fast, reproducible persistence for scikit-learn models."""

from . import errors
from ._api import dump, dumps, get_untrusted_types, inspect, load, loads, read_metadata
from ._version import __version__
from .errors import (
    EnvironmentMismatchError,
    FormatError,
    IntegrityError,
    InvalidStateError,
    PickleNotAllowedError,
    SignatureError,
    SkvaultError,
    UnsupportedTypeError,
    UnsupportedVersionError,
    UntrustedTypeError,
    VerificationError,
    VersionMismatchWarning,
)
from .format._signing import keygen, sign

# Tools beyond dump and load are imported on first use (PEP 562): `import skvault` stays as
# light as the core needs, and each name is still a plain attribute of the package.
_LAZY = {
    "ArtifactDiff": ".provenance._diff",
    "AuditReport": ".legacy._audit",
    "VerificationReport": ".provenance._verify",
    "audit": ".legacy._audit",
    "convert": ".legacy._convert",
    "diff": ".provenance._diff",
    "report": ".provenance._report",
    "verify": ".provenance._verify",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ArtifactDiff",
    "AuditReport",
    "EnvironmentMismatchError",
    "FormatError",
    "IntegrityError",
    "InvalidStateError",
    "PickleNotAllowedError",
    "SignatureError",
    "SkvaultError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
    "UntrustedTypeError",
    "VerificationError",
    "VerificationReport",
    "VersionMismatchWarning",
    "__version__",
    "audit",
    "convert",
    "diff",
    "dump",
    "dumps",
    "errors",
    "get_untrusted_types",
    "inspect",
    "keygen",
    "load",
    "loads",
    "read_metadata",
    "report",
    "sign",
    "verify",
]
