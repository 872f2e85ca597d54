"""Convert a legacy pickle, joblib or skops file into a ``.skv`` artifact.

The legacy file is read by skvault's restricted readers (the unpickler of ``_unpickler``, the
skops reader of ``_skops``) under the trust policy, then written like any ``dump``: the model
with its provenance metadata, plus ``converted_from``, the record of the source file (its
format, SHA-256 and size, its name), which ``skvault.read_metadata`` returns.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import IO, Any

from .. import provenance
from ..format import TrustPolicy, write_artifact
from ..format._files import FileLike, is_path, open_input
from ._unpickler import _CHUNK, DEFAULT_MAX_BYTES, _read

__all__ = ["convert"]

# dump's provenance keywords (everything build_metadata takes besides the object)
_PROVENANCE = frozenset(
    {
        "data",
        "target",
        "source",
        "scores",
        "cv",
        "scoring",
        "X",
        "y",
        "description",
        "tags",
        "metrics",
        "golden_rows",
        "environment",
    }
)


def convert(
    src: FileLike,
    dst: FileLike,
    *,
    trusted: Iterable[str] | None = None,
    compress: object = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    **provenance_args: Any,
) -> dict[str, Any]:
    """Convert a pickle, joblib or skops file into a ``.skv`` artifact, running no code from it.

    The source is read with skvault's restricted unpickler (or its own skops reader): only
    allow-listed names are resolved, nothing from the file is called but checked
    reconstruction paths, and every object's state is validated. Converting a pickle is the
    explicit request to read it that way, so no ``allow_pickle`` flag is needed.

    Parameters
    ----------
    src : str, os.PathLike, binary file object or bytes
        The legacy file; its format (pickle, plain or compressed joblib, skops, ``.npy``) is
        detected from its content.
    dst : str, os.PathLike or binary file object
        Where to write the artifact (a path is written atomically).
    trusted : list of str, optional
        Names to accept beyond the default allow-list, for example your own estimator class.
        Review them first with ``skvault audit``; dangerous names are refused whatever this
        says.
    compress : None, bool, int, {"zlib", "lzma"} or (str, int), default=None
        As for `skvault.dump`.
    max_bytes : int, optional
        The most bytes the source, decompressed, may hold.
    **provenance_args
        `skvault.dump`'s provenance keywords (``X``, ``y``, ``data``, ``scores``,
        ``description``, ``tags``, ``metrics``, ``golden_rows``, ``source``...). ``source``
        defaults to False here: the running script is the converter, not the training code.

    Returns
    -------
    dict
        ``source`` and ``destination`` (paths, or None for file objects), ``format`` (for
        example ``"joblib-gzip"``), ``protocol``, ``sha256`` and ``size`` of the source file,
        and ``trusted``: the names of ``trusted`` the file actually used.

    Raises
    ------
    UntrustedTypeError
        If the file references names that are not trusted (all are listed); nothing is written.
    InvalidStateError
        If an object's state breaks an invariant its type relies on.
    FormatError
        If the file is malformed or truncated, has data after its pickle, uses an unsupported
        construct, or needs classes that the running versions no longer have.
    UnsupportedTypeError
        If the loaded object holds something ``.skv`` cannot represent.
    ValueError
        If ``dst`` is the source file itself.

    Examples
    --------
    >>> import io, pickle, skvault
    >>> from sklearn.linear_model import LogisticRegression
    >>> legacy = pickle.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    >>> out = io.BytesIO()
    >>> skvault.convert(legacy, out)["format"]
    'pickle'
    >>> skvault.read_metadata(out.getvalue())["converted_from"]["format"]
    'pickle'
    """
    unknown = set(provenance_args) - _PROVENANCE
    if unknown:
        raise TypeError(f"convert() got unexpected keyword arguments: {sorted(unknown)}")
    provenance_args.setdefault("source", False)
    if is_path(src) and is_path(dst) and _same_file(src, dst):
        raise ValueError("the destination is the source file itself: choose another path")
    policy = TrustPolicy(trusted)
    with open_input(src, limit=max_bytes) as fh:
        sha256, size = _digest(fh)
        legacy = _read(fh, src, policy, allow_pickle=True, max_bytes=max_bytes)
    source_name = os.path.basename(os.fspath(src)) if is_path(src) else _name_of(src)
    record = {
        "format": legacy.format,
        "protocol": legacy.protocol,
        "sha256": sha256,
        "size": size,
        "name": source_name,
        "trusted": legacy.trusted,
    }
    metadata = provenance.build_metadata(legacy.obj, converted_from=record, **provenance_args)
    write_artifact(legacy.obj, dst, compress=compress, metadata=metadata)
    return {
        "source": os.fspath(src) if is_path(src) else None,
        "destination": os.fspath(dst) if is_path(dst) else None,
        "format": legacy.format,
        "protocol": legacy.protocol,
        "sha256": sha256,
        "size": size,
        "trusted": legacy.trusted,
    }


def _digest(fh: IO[bytes]) -> tuple[str, int]:
    """SHA-256 and size of the file from its current position, which is restored."""
    start = fh.tell()
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    fh.seek(start)
    return digest.hexdigest(), size


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _name_of(file: object) -> str | None:
    name = getattr(file, "name", None)
    return os.path.basename(name) if isinstance(name, str) else None
