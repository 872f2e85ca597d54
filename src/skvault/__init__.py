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
from .legacy._audit import AuditReport, audit
from .legacy._convert import convert
from .provenance._diff import ArtifactDiff, diff
from .provenance._report import report
from .provenance._verify import VerificationReport, verify

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
