"""Exceptions raised by skvault, grouped by what the caller can do about them.

::

    SkvaultError                      root of every error skvault raises
    ├── FormatError (ValueError)      the file is bad: malformed, truncated, unsupported version
    │   ├── IntegrityError            a member's bytes do not match the digest in the manifest
    │   │   └── SignatureError        a required signature is missing, invalid or by another key
    │   ├── UnsupportedVersionError   the file's format version is newer than this reader
    │   ├── InvalidStateError         an object's state breaks an invariant its type relies on
    │   └── PickleNotAllowedError     the file is a pickle or joblib file and allow_pickle is off
    ├── UntrustedTypeError (TypeError)    the file needs a type or function that is not trusted
    ├── UnsupportedTypeError (TypeError)  ``dump`` cannot represent an object without pickle
    ├── EnvironmentMismatchError (RuntimeError)
    │                                 the running versions differ from the recorded ones and
    │                                 ``load(..., on_mismatch="error")`` asked to refuse
    └── VerificationError (RuntimeError)  the loaded model no longer reproduces its golden sample

    VersionMismatchWarning (UserWarning)  the running versions differ from the recorded ones
                                          (``load``'s default, ``on_mismatch="warn"``)

Each exception inherits the matching builtin as well, so generic ``except ValueError`` handlers keep
working, as scikit-learn's ``NotFittedError`` does. The two provenance errors are ``RuntimeError``:
the file is sound (it is not a ``ValueError`` like a bad file), it is the running environment that
cannot reproduce what was recorded. ``AssertionError`` would suit a failed check in a test, but
applications do not catch it and test runners report it as a failed test rather than an error.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
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
    "VersionMismatchWarning",
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


class SignatureError(IntegrityError):
    """A signature was required and is missing, does not verify, or was made by another key.

    A valid signature proves who wrote the manifest (and through its digests every member); it
    does not make the content sane, so signed files are validated like any other.
    """


class PickleNotAllowedError(FormatError):
    """The file is a pickle or joblib file, and loading it was not allowed.

    Pickle runs code chosen by the file's author on load. ``load(..., allow_pickle=True)`` reads
    it through skvault's restricted unpickler; ``skvault audit FILE`` lists what it references and
    ``skvault convert FILE OUT.skv`` turns it into a ``.skv`` artifact.

    Attributes
    ----------
    format : str
        The detected format, for example ``"pickle"`` or ``"joblib-zlib"``.
    """

    def __init__(self, message: str, *, format: str) -> None:
        super().__init__(message)
        self.format = format


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


def _version_table(differences: dict[str, tuple[str | None, str | None]]) -> str:
    def show(version: str | None) -> str:
        return "not installed" if version is None else version

    return "\n".join(
        f"  - {name}: recorded {show(rec)}, running {show(cur)}"
        for name, (rec, cur) in differences.items()
    )


def _set_differences(
    target: Exception, differences: dict[str, tuple[str | None, str | None]]
) -> str:
    """Give ``target`` its ``differences``, ``recorded`` and ``current``; return the message head.

    Shared by the version warning and the version error, which carry the same data.
    """
    target.differences = dict(differences)  # type: ignore[attr-defined]
    target.recorded = {name: rec for name, (rec, _) in differences.items()}  # type: ignore[attr-defined]
    target.current = {name: cur for name, (_, cur) in differences.items()}  # type: ignore[attr-defined]
    return (
        "the model was saved with other versions than the ones running now:\n"
        f"{_version_table(target.differences)}\n"  # type: ignore[attr-defined]
    )


class VersionMismatchWarning(UserWarning):
    """The running versions of packages the model needs differ from the ones recorded at dump.

    Like scikit-learn's ``InconsistentVersionWarning``, it carries the versions, so it can be
    caught (``warnings.catch_warnings(record=True)``) or turned into an error
    (``warnings.simplefilter("error", VersionMismatchWarning)``) and inspected.

    Attributes
    ----------
    differences : dict of str to (str or None, str or None)
        ``{name: (recorded, current)}`` for each package that differs; ``"python"`` for Python
        itself. A version of None means not installed.
    recorded : dict of str to str or None
        The recorded version of each package that differs.
    current : dict of str to str or None
        The running version of each package that differs.
    """

    def __init__(self, differences: dict[str, tuple[str | None, str | None]]) -> None:
        super().__init__(
            _set_differences(self, differences)
            + "Its results may differ: rebuild the training environment (skvault env FILE)."
        )


class EnvironmentMismatchError(SkvaultError, RuntimeError):
    """The running versions differ from the recorded ones and the caller asked to refuse.

    Raised by ``load(..., on_mismatch="error")`` before anything is built.

    Attributes
    ----------
    differences : dict of str to (str or None, str or None)
        ``{name: (recorded, current)}`` for each package that differs, as in
        `VersionMismatchWarning`.
    recorded, current : dict of str to str or None
        The two sides of ``differences``.
    """

    def __init__(self, differences: dict[str, tuple[str | None, str | None]]) -> None:
        super().__init__(
            _set_differences(self, differences)
            + "Rebuild the training environment (skvault env FILE --create DIR), or pass "
            'on_mismatch="warn" to load anyway.'
        )


class VerificationError(SkvaultError, RuntimeError):
    """The loaded model's outputs on its golden sample differ from the recorded ones.

    Attributes
    ----------
    output : str or None
        The method whose output differs, for example ``"predict_proba"``; None when the file has
        no golden sample to check.
    index : tuple of int or None
        Where the largest difference is (row, and column for 2-D outputs); None when the output
        is missing or its shape differs.
    expected, actual : object
        The recorded and the recomputed value at ``index`` (None when ``index`` is None).
    difference : float or None
        ``abs(actual - expected)`` at ``index`` for numbers; None for labels that are not
        numbers and when ``index`` is None.
    """

    def __init__(
        self,
        message: str,
        *,
        output: str | None = None,
        index: tuple[int, ...] | None = None,
        expected: object = None,
        actual: object = None,
        difference: float | None = None,
    ) -> None:
        super().__init__(message)
        self.output = output
        self.index = index
        self.expected = expected
        self.actual = actual
        self.difference = difference
