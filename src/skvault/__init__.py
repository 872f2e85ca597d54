"""skvault: safe, fast, reproducible persistence for scikit-learn models."""

from . import errors
from ._api import dump, dumps, get_untrusted_types, inspect, load, loads
from ._version import __version__
from .errors import (
    FormatError,
    IntegrityError,
    InvalidStateError,
    SkvaultError,
    UnsupportedTypeError,
    UnsupportedVersionError,
    UntrustedTypeError,
)

__all__ = [
    "FormatError",
    "IntegrityError",
    "InvalidStateError",
    "SkvaultError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
    "UntrustedTypeError",
    "__version__",
    "dump",
    "dumps",
    "errors",
    "get_untrusted_types",
    "inspect",
    "load",
    "loads",
]
