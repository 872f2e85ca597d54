"""The public functions: dump, dumps, load, loads, get_untrusted_types."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from .format import TrustPolicy, open_artifact, write_artifact
from .format._files import FileLike

__all__ = ["dump", "dumps", "get_untrusted_types", "inspect", "load", "loads"]


def dump(obj: Any, file: FileLike, *, compress: object = None) -> None:
    """Save ``obj`` as a ``.skv`` artifact.

    Parameters
    ----------
    obj : object
        A fitted estimator, or any graph of builtin containers, scalars, numpy and scipy data,
        importable functions and classes, and objects whose state is a plain ``__dict__``.
    file : str, os.PathLike or binary file object
        Where to write. A path is written atomically: the old file stays until the new one is
        complete and synced.
    compress : None, bool, int, {"zlib", "lzma"} or (str, int), default=None
        Compress members. Smaller files, but arrays then cannot be memory-mapped.

    Raises
    ------
    UnsupportedTypeError
        If part of ``obj`` cannot be represented without pickle; the message says where.

    Examples
    --------
    >>> import skvault
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> skvault.loads(skvault.dumps(model)).predict([[0.9]]).tolist()
    [1]
    """
    write_artifact(obj, file, compress=compress)


def dumps(obj: Any, *, compress: object = None) -> bytes:
    """Return ``obj`` as the bytes of a ``.skv`` artifact; see `dump`."""
    buf = io.BytesIO()
    write_artifact(obj, buf, compress=compress)
    return buf.getvalue()


def load(file: FileLike, *, trusted: Iterable[str] | None = None, mmap: bool = False) -> Any:
    """Load an object from a ``.skv`` artifact, building only trusted types.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.
    trusted : list of str, optional
        Fully qualified names to trust beyond the default allow-list, for example your own
        estimator class ``["mypackage.models.MyEstimator"]``. Review them first with
        `get_untrusted_types`.
    mmap : bool, default=False
        Memory-map uncompressed arrays instead of reading them: loading is near instant and
        the arrays are read-only views of the file. Their digests are then not checked at load
        (that would read every page); the graph and every other member still are.

    Returns
    -------
    object
        The rebuilt object.

    Raises
    ------
    UntrustedTypeError
        If the file references names that are not trusted; nothing has been imported then.
    FormatError
        If the file is malformed, truncated, or from a newer format version.
    IntegrityError
        If a member's digest differs from the manifest.
    InvalidStateError
        If an object's state breaks an invariant its type relies on.
    """
    policy = TrustPolicy(trusted)
    with open_artifact(file) as artifact:
        return artifact.construct(policy, mmap=mmap)


def loads(data: bytes, *, trusted: Iterable[str] | None = None) -> Any:
    """Load an object from the bytes of a ``.skv`` artifact; see `load`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads expects bytes, not {type(data).__name__}")
    return load(io.BytesIO(data), trusted=trusted)


def get_untrusted_types(file: FileLike) -> list[str]:
    """Return the fully qualified names in an artifact that default trust would refuse.

    Reads the file without importing or constructing anything from it.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.

    Returns
    -------
    list of str
        Sorted names; empty when the file loads with default trust.
    """
    with open_artifact(file) as artifact:
        return artifact.untrusted(TrustPolicy())


def inspect(file: FileLike) -> dict[str, Any]:
    """Describe an artifact without loading it: object tree, arrays, manifest, untrusted names.

    Safe on any file: nothing named by the file is imported or constructed.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.

    Returns
    -------
    dict
        JSON-serialisable report with keys ``file_size``, ``format_version``, ``created_by``,
        ``packages``, ``members``, ``member_bytes``, ``globals``, ``untrusted`` and ``tree``.
    """
    with open_artifact(file) as artifact:
        return artifact.describe()
