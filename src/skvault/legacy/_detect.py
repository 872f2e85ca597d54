"""Tell legacy file formats apart by their content, and read compressed pickles with a size cap.

The format of a file is decided by its first bytes, never by its name: a ``model.pkl`` may be a
gzip-compressed joblib file, and a ``model.skv`` may be a pickle. The magic numbers are the ones
joblib checks, in joblib's order (``joblib/compressor.py``, ``numpy_pickle_utils.py``), so a file
is read the way joblib itself would read it. A plain (uncompressed) joblib file is a pickle; the
audit tells it apart later from what the pickle references.

:func:`open_stream` decompresses as it reads and counts what it hands out: a compression bomb
costs at most the cap, never the whole expansion.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from ..errors import FormatError
from ..format._files import open_input

__all__ = [
    "COMPRESSED",
    "HEAD_SIZE",
    "PICKLE_OPCODES",
    "detect",
    "detect_file",
    "open_stream",
    "peekable",
]

#: Bytes :func:`detect` needs to see (the longest magic number checked).
HEAD_SIZE = 64

#: Formats that :func:`open_stream` decompresses (joblib's compressors and its legacy zfile).
COMPRESSED = frozenset({"zlib", "gzip", "bz2", "lzma", "xz", "lz4", "ZF"})

#: First bytes a pickle can start with: every opcode of protocols 0-5.
PICKLE_OPCODES = frozenset(b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}") | frozenset(
    range(0x80, 0x99)
)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# joblib's order: the legacy zfile first, then its compressors as registered
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"ZF", "ZF"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
# joblib's zfile header: "ZF", then the decompressed length in hex padded to len(hex(2**64))
_ZF_LENGTH_FIELD = len(hex(2**64))
_CHUNK = 1 << 16


def detect(head: bytes) -> str:
    """Return the format of a file from its first bytes.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (:data:`HEAD_SIZE` are enough; fewer when the file is
        shorter).

    Returns
    -------
    str
        ``"npy"``, ``"zip"`` (any zip file: :func:`detect_file` tells ``.skv`` and skops files
        apart, which needs the zip's central directory at the end of the file), one of joblib's
        compressions ``"ZF"``, ``"zlib"``, ``"gzip"``, ``"bz2"``, ``"lzma"``, ``"xz"``, ``"lz4"``,
        ``"pickle"`` (including plain joblib files), ``"empty"``, or ``"unknown"``.
    """
    if not head:
        return "empty"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    if head[0] == 0x80:
        # PROTO: only the protocols pickle defines; anything else is not a pickle we can read
        return "pickle" if len(head) < 2 or head[1] <= 5 else "unknown"
    if head[0] in PICKLE_OPCODES:
        return "pickle"
    return "unknown"


def detect_file(file: str | os.PathLike[str] | IO[bytes] | bytes) -> str:
    """Return the format of a file, telling zip files apart (``"skv"``, ``"skops"``, ``"zip"``).

    Parameters
    ----------
    file : path, bytes or binary file object
        A file object is read from its current position and left there; bytes are the content.

    Returns
    -------
    str
        What :func:`detect` returns, except that a zip file is ``"skv"`` when it has a
        ``manifest.json`` member, ``"skops"`` when it has a ``schema.json`` member, and
        ``"zip"`` otherwise (also when its central directory cannot be read).
    """
    with _opened(file) as fh:
        kind = detect(_peek(fh))
        if kind != "zip" or isinstance(fh, _Rewindable):
            return kind
        start = fh.tell()
        try:
            with zipfile.ZipFile(_Window(fh, start)) as zf:
                names = set(zf.namelist())
        except Exception:  # BadZipFile, NotImplementedError (a bad version field), ...
            return "zip"
        finally:
            fh.seek(start)
    if "manifest.json" in names:
        return "skv"
    if "schema.json" in names:
        return "skops"
    return "zip"


@contextlib.contextmanager
def open_stream(
    file: str | os.PathLike[str] | IO[bytes] | bytes, *, max_bytes: int
) -> Iterator[IO[bytes]]:
    """Open a pickle, joblib or ``.npy`` file for reading, decompressing it as it is read.

    Parameters
    ----------
    file : path, bytes or binary file object
        A file object is read from its current position; it is not closed. Bytes are the
        content.
    max_bytes : int
        The most decompressed bytes a compressed file may produce. Reading past it raises
        :class:`~skvault.errors.FormatError` ("decompressed size over limit"). An uncompressed
        file is handed out as it is (its size is already known).

    Yields
    ------
    binary file object
        The pickle bytes: the file itself when it is not compressed (seekable when the file is),
        else a non-seekable stream of the decompressed bytes. Corrupt compressed data raises
        :class:`~skvault.errors.FormatError` while reading.

    Raises
    ------
    FormatError
        The file is a zip file, empty or of an unknown format, or a compression library is
        missing.
    """
    with _opened(file) as fh:
        head = _peek(fh)
        kind = detect(head)
        if kind in ("pickle", "npy"):
            yield fh
            return
        if kind not in COMPRESSED:
            raise FormatError(f"not a pickle or joblib file (format: {kind})")
        inner = _decompressor(kind, fh, max_bytes)
        capped = _Capped(inner, max_bytes)
        try:
            yield io.BufferedReader(capped, buffer_size=_CHUNK)
        finally:
            with contextlib.suppress(Exception):
                inner.close()


def peekable(file: Any) -> Any:
    """Return ``file`` itself, or for a non-seekable file object one whose head can be re-read.

    :func:`detect_file` and :func:`open_stream` both look at the first bytes of the file; give
    them the object this returns, so a pipe is not consumed by the first look.
    """
    if isinstance(file, (str, bytes, bytearray, memoryview, os.PathLike, _Rewindable)):
        return file
    if not hasattr(file, "read"):
        return file
    try:
        seekable = bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        seekable = False
    return file if seekable else _Rewindable(file)


@contextlib.contextmanager
def _opened(file: str | os.PathLike[str] | IO[bytes] | bytes) -> Iterator[Any]:
    if hasattr(file, "read"):
        # a caller's stream is peeked at, never spooled: a pickle is read front to back
        yield peekable(file)
        return
    with open_input(file) as fh:  # a path, or the content itself; TypeError for anything else
        yield fh


def _peek(fh: Any) -> bytes:
    if isinstance(fh, _Rewindable):
        return fh.peek_head(HEAD_SIZE)
    start = fh.tell()
    head = fh.read(HEAD_SIZE)
    fh.seek(start)
    if not isinstance(head, bytes):
        raise TypeError("the file must be opened in binary mode")
    return head


def _decompressor(kind: str, fh: Any, max_bytes: int) -> Any:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(fh, "rb")
    if kind == "lzma":
        return lzma.LZMAFile(fh, "rb", format=lzma.FORMAT_ALONE)
    if kind == "xz":
        return lzma.LZMAFile(fh, "rb", format=lzma.FORMAT_XZ)
    if kind == "lz4":
        try:
            import lz4.frame  # type: ignore[import-untyped]
        except ImportError:
            raise FormatError(
                "install lz4 to read this lz4-compressed joblib file (pip install lz4)"
            ) from None
        return lz4.frame.LZ4FrameFile(fh, "rb")
    if kind == "zlib":
        return _ZlibReader(fh)
    # "ZF": joblib < 0.9.3 wrote "ZF", the length in hex padded with spaces, then zlib data
    header = fh.read(2 + _ZF_LENGTH_FIELD)
    try:
        length = int(header[2:].decode("ascii").strip(), 16)
    except (UnicodeDecodeError, ValueError):
        raise FormatError("joblib zfile: the length field is not a hexadecimal number") from None
    if length > max_bytes:
        raise FormatError("decompressed size over limit")
    return _ZlibReader(fh, skip_space=True)


class _ZlibReader(io.RawIOBase):
    """A zlib stream (joblib's ``BinaryZlibFile`` format) read with bounded output per call."""

    def __init__(self, fh: Any, *, skip_space: bool = False) -> None:
        self._fh = fh
        self._dec = zlib.decompressobj(zlib.MAX_WBITS)
        self._pending = b""
        self._eof = False
        self._skip_space = skip_space

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        while not self._eof and want:
            if not self._pending:
                self._pending = self._fh.read(_CHUNK)
                if self._skip_space:
                    # python 2 joblib <= 0.8.4 put one more space before the data
                    self._skip_space = False
                    if self._pending[:1] == b" ":
                        self._pending = self._pending[1:]
                if not self._pending:
                    if self._dec.eof:
                        self._eof = True
                        break
                    raise FormatError("compressed stream ended before its end marker")
            out = self._dec.decompress(self._pending, want)
            self._pending = self._dec.unconsumed_tail
            if self._dec.eof:
                # joblib writes one zlib stream; what follows it is not read by joblib either
                self._eof = True
                self._pending = b""
            if out:
                view[: len(out)] = out
                return len(out)
        return 0


class _Capped(io.RawIOBase):
    """Counts the bytes a decompressor produces and stops at the cap; maps its errors."""

    def __init__(self, inner: Any, max_bytes: int) -> None:
        self._inner = inner
        self._left = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # ask for one byte more than allowed, so reaching exactly the cap is not an error
        want = min(len(view), self._left + 1)
        if want <= 0:
            return 0
        try:
            n = self._inner.readinto(view[:want])
        except FormatError:
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, RuntimeError) as exc:
            raise FormatError(f"corrupt compressed data: {exc}") from None
        n = n or 0
        self._left -= n
        if self._left < 0:
            raise FormatError("decompressed size over limit")
        return n


class _Rewindable(io.RawIOBase):
    """A non-seekable binary stream whose first bytes can be looked at and read again."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._head = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def peek_head(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._raw.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos < len(self._head):
            part = self._head[self._pos : self._pos + len(view)]
            view[: len(part)] = part
            self._pos += len(part)
            return len(part)
        data = self._raw.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")


class _Window(io.RawIOBase):
    """A seekable view of a file from an offset on, so zipfile sees the zip at offset 0."""

    def __init__(self, fh: Any, start: int) -> None:
        self._fh = fh
        self._start = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            return self._fh.seek(self._start + offset) - self._start
        return self._fh.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._fh.tell() - self._start

    def readinto(self, buffer: Any) -> int:
        return self._fh.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)
