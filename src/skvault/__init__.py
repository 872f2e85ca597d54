"""skvault: safe, fast, reproducible persistence for scikit-learn models."""

from . import errors
from ._api import dump, dumps, get_untrusted_types, inspect, load, loads, read_metadata
from ._version import __version__
from .errors import (
    EnvironmentMismatchError,
    FormatError,
    IntegrityError,
    InvalidStateError,
    SkvaultError,
    UnsupportedTypeError,
    UnsupportedVersionError,
    UntrustedTypeError,
    VerificationError,
    VersionMismatchWarning,
)

__all__ = [
    "EnvironmentMismatchError",
    "FormatError",
    "IntegrityError",
    "InvalidStateError",
    "SkvaultError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
    "UntrustedTypeError",
    "VerificationError",
    "VersionMismatchWarning",
    "__version__",
    "dump",
    "dumps",
    "errors",
    "get_untrusted_types",
    "inspect",
    "load",
    "loads",
    "read_metadata",
]
