"""Exceptions raised by skvault, grouped by what the caller can do about them.

::

    SkvaultError                      root of every error skvault raises
    ├── FormatError (ValueError)      the file is bad: malformed, truncated, unsupported version
    │   ├── IntegrityError            a member's bytes do not match the digest in the manifest
    │   ├── UnsupportedVersionError   the file's format version is newer than this reader
    │   └── InvalidStateError         an object's state breaks an invariant its type relies on
    ├── UntrustedTypeError (TypeError)    the file needs a type or function that is not trusted
    └── UnsupportedTypeError (TypeError)  ``dump`` cannot represent an object without pickle

Each exception inherits the matching builtin as well, so generic ``except ValueError`` handlers keep
working, as scikit-learn's ``NotFittedError`` does.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "FormatError",
    "IntegrityError",
    "InvalidStateError",
    "SkvaultError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
    "UntrustedTypeError",
]


class SkvaultError(Exception):
    """Root of every exception raised by skvault."""


class FormatError(SkvaultError, ValueError):
    """The file is not a valid ``.skv`` artifact (malformed, truncated, over a limit).

    Attributes
    ----------
    member : str or None
        The zip member the problem was found in, when there is one.
    """

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class IntegrityError(FormatError):
    """A member's SHA-256 digest or size differs from the one recorded in the manifest."""


class UnsupportedVersionError(FormatError):
    """The file was written in a format version this reader cannot read.

    Attributes
    ----------
    version : object
        The version recorded in the file.
    """

    def __init__(self, message: str, *, version: object) -> None:
        super().__init__(message, member="manifest.json")
        self.version = version


class InvalidStateError(FormatError):
    """An object's state breaks an invariant that its type's compiled code relies on.

    Raised before the object is constructed, so a hostile or corrupted file cannot reach code
    that would read out of bounds.

    Attributes
    ----------
    path : str
        Where the object sits in the graph, for example ``estimators_[3].tree_``.
    type_name : str
        Fully qualified name of the object's type.
    rule : str
        The invariant that failed.
    """

    def __init__(self, path: object, type_name: str, rule: str) -> None:
        where = str(path) or "<root>"
        super().__init__(f"invalid state of {type_name} at {where}: {rule}")
        self.path = where
        self.type_name = type_name
        self.rule = rule


class UntrustedTypeError(SkvaultError, TypeError):
    """The file references types or functions that are not trusted.

    Attributes
    ----------
    types : list of str
        Fully qualified names that the loader refused, sorted.
    """

    def __init__(self, types: Iterable[str]) -> None:
        self.types = sorted(set(types))
        listing = "\n".join(f"  - {name}" for name in self.types)
        super().__init__(
            "the file references types that are not trusted by default:\n"
            f"{listing}\n"
            "Review them (skvault inspect FILE), then pass the names you accept as "
            "trusted=[...] to load them."
        )


class UnsupportedTypeError(SkvaultError, TypeError):
    """``dump`` met an object it cannot represent without pickle.

    Attributes
    ----------
    path : str
        Where the object sits inside the dumped object, for example ``steps[1][1].func``.
    type_name : str
        Fully qualified name of the object's type.
    """

    def __init__(self, path: str, type_name: str, reason: str) -> None:
        where = path or "<root>"
        super().__init__(f"cannot save {type_name} at {where}: {reason}")
        self.path = path
        self.type_name = type_name
        self.reason = reason
