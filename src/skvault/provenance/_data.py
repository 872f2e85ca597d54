"""The training data reference: a file or URI with its digest, or a fingerprint of X and y."""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ._environment import without_credentials
from ._plain import is_dataframe, is_series, is_sparse, plain_scalar

__all__ = ["check_target", "data_reference", "fingerprint", "path_digest"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def data_reference(data: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``data`` section for a path or URI.

    A local file (or ``file://`` URI) is recorded with its absolute path, the SHA-256 of its bytes
    (of its files, for a folder), its size and modification time; any other URI is recorded as
    given, with no digest: skvault does not download it.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a path or a URI string, not {type(data).__name__}")
    text = os.fsdecode(os.fspath(data))
    if _URI.match(text):
        parts = urlsplit(text)
        if parts.scheme.lower() != "file":
            return {"uri": without_credentials(text), "sha256": None, "size": None, "mtime": None}
        from urllib.request import url2pathname  # slow to import, rarely needed

        text = url2pathname(parts.path)
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(
            errno.ENOENT,
            "data= names a file that does not exist (pass a URI for remote data)",
            text,
        )
    digest, size, mtime = path_digest(path)
    return {
        "uri": str(path.resolve()),
        "sha256": digest,
        "size": size,
        "mtime": datetime.datetime.fromtimestamp(mtime, datetime.UTC).isoformat(),
    }


def check_target(data: Any, target: Any) -> None:
    """Check dump's ``target=``: the label column (or ``.npz`` array) of the ``data=`` file.

    Recorded as the data section's ``"target"`` so that ``verify`` can split the file into X
    and y. The header of a local ``.csv``/``.tsv`` file and the array names of a ``.npz`` are
    checked now, while the mistake is cheap to fix.
    """
    if not isinstance(target, str) or not target:
        raise TypeError(f"target must be a column name (a string), not {target!r}")
    if data is None:
        raise ValueError("target= names the label column of the data= file: pass data= as well")
    if not isinstance(data, (str, os.PathLike)):
        return  # data_reference reports the wrong type
    path = Path(os.fsdecode(os.fspath(data)))
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".csv", ".tsv", ".npz"):
        return
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
    else:
        import csv

        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            names = next(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","), [])
    if target not in names:
        raise ValueError(f"target={target!r} is not a column of {path} (it has {names[:20]})")


def path_digest(path: str | os.PathLike[str]) -> tuple[str, int, float]:
    """Return the SHA-256 (hex), size in bytes and modification time (POSIX) of a file or folder.

    A file's digest is that of its bytes, read in chunks. A folder's is the SHA-256 of one line
    ``<relative/posix/path>\\0<sha256 of the file>\\n`` per file, sorted by path; its size is the
    total of its files and its time the latest of the folder's and its files'.
    """
    path = Path(path)
    if not path.is_dir():
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            stat = os.fstat(fh.fileno())
        return digest, stat.st_size, stat.st_mtime
    lines = []
    size, mtime = 0, path.stat().st_mtime
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in files:
            child = Path(root, name)
            child_digest, child_size, child_mtime = path_digest(child)
            lines.append(f"{child.relative_to(path).as_posix()}\0{child_digest}\n")
            size += child_size
            mtime = max(mtime, child_mtime)
    folder = hashlib.sha256("".join(sorted(lines)).encode("utf-8", "surrogateescape"))
    return folder.hexdigest(), size, mtime


def fingerprint(X: Any, y: Any = None) -> dict[str, Any]:
    """Return the ``data`` section for in-memory training data: digest, shape, dtypes, columns."""
    return {"fingerprint": {"X": _describe(X), "y": None if y is None else _describe(y)}}


def _describe(values: Any) -> dict[str, Any]:
    """Digest, shape, dtypes and column names of an array, DataFrame, Series or sparse matrix.

    The digest covers each part's dtype and shape as well as its bytes, so equal numbers stored
    as another dtype give another digest. Object arrays are hashed through each item's ``repr``.
    """
    h = hashlib.sha256()
    if is_dataframe(values):
        columns = [plain_scalar(c) for c in values.columns]
        dtypes = {plain_scalar(c): str(values[c].dtype) for c in values.columns}
        h.update(b"DataFrame\0")
        for c in values.columns:
            column = values[c]
            h.update(f"{c!r}\0{column.dtype}\0".encode("utf-8", "surrogateescape"))
            _update(h, _series_values(column))
        return {
            "sha256": h.hexdigest(),
            "shape": [int(n) for n in values.shape],
            "dtypes": dtypes,
            "columns": columns,
        }
    if is_series(values):
        h.update(f"Series\0{values.name!r}\0{values.dtype}\0".encode("utf-8", "surrogateescape"))
        _update(h, _series_values(values))
        return {
            "sha256": h.hexdigest(),
            "shape": [int(values.shape[0])],
            "dtypes": str(values.dtype),
            "columns": None if values.name is None else [plain_scalar(values.name)],
        }
    if is_sparse(values):
        csr = values.tocsr()
        h.update(b"csr\0")
        for part in (np.asarray(csr.shape), csr.data, csr.indices, csr.indptr):
            _update(h, part)
        return {
            "sha256": h.hexdigest(),
            "shape": [int(n) for n in csr.shape],
            "dtypes": str(csr.dtype),
            "columns": None,
        }
    arr = np.asarray(values)
    _update(h, arr)
    return {
        "sha256": h.hexdigest(),
        "shape": [int(n) for n in arr.shape],
        "dtypes": str(arr.dtype),
        "columns": None,
    }


def _series_values(column: Any) -> np.ndarray:
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()
    return column.to_numpy(dtype=object)


def _update(h: Any, arr: np.ndarray) -> None:
    h.update(f"{arr.dtype.str}\0{list(arr.shape)}\0".encode())
    if arr.dtype.hasobject:
        text = "\x1f".join(repr(item) for item in arr.reshape(-1).tolist())
        h.update(text.encode("utf-8", "surrogateescape"))
    else:
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
