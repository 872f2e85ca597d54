"""Resolve the ``file`` argument of the public API: a path, or a binary file object."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TypeGuard, Union

from ..errors import FormatError

FileLike = Union[str, "os.PathLike[str]", IO[bytes], bytes]

__all__ = ["FileLike", "atomic_output", "is_output_error", "is_path", "open_input"]


def is_path(file: object) -> TypeGuard[str | os.PathLike[str]]:
    """Return whether ``file`` names a path rather than being an open file object."""
    return isinstance(file, (str, os.PathLike))


@contextlib.contextmanager
def open_input(file: FileLike, *, limit: int | None = None) -> Iterator[IO[bytes]]:
    """Yield a readable, seekable binary file for a path, file object or bytes.

    A file opened here is closed on exit; a caller's file object is left open. A pipe is read
    into memory, at most ``limit`` bytes when given (more is a `FormatError`).
    """
    if is_path(file):
        with open(file, "rb") as opened:
            yield opened
        return
    if isinstance(file, (bytes, bytearray, memoryview)):
        yield io.BytesIO(file)
        return
    if not hasattr(file, "read"):
        raise TypeError(f"file must be a path or a binary file object, not {type(file).__name__}")
    if isinstance(file, io.TextIOBase):
        raise TypeError("file must be opened in binary mode ('rb'), not text mode")
    fh: IO[bytes] = file  # type: ignore[assignment]
    if not _seekable(fh):
        # zip needs random access: spool a pipe or socket into memory first
        data = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise FormatError(f"the file is over the size limit of {limit:,} bytes")
        fh = io.BytesIO(data)
    elif not hasattr(fh, "readinto"):
        fh = _ReadintoFromRead(fh)  # type: ignore[assignment]
    yield fh


class _ReadintoFromRead(io.BufferedIOBase):
    """A caller's seekable stream that has ``read`` but no ``readinto`` (which the readers use to
    fill arrays in place): io's default ``readinto`` is built on ``read``. Closing this wrapper
    leaves the caller's stream open."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._fh.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def is_output_error(exc: OSError) -> bool:
    """Whether ``exc`` is `atomic_output` failing to create the output file."""
    return getattr(exc, "skvault_output", False) is True


def _seekable(fh: object) -> bool:
    try:
        return bool(fh.seekable())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def atomic_output(file: FileLike) -> Iterator[IO[bytes]]:
    """Yield a writable binary file; for a path, replace the target only once all is written.

    The data goes to a temporary file in the target's folder, is flushed and fsynced, then renamed
    over the target, so an error or a crash never leaves a partial file in place of a good one.
    """
    if not is_path(file):
        if not hasattr(file, "write"):
            raise TypeError(
                f"file must be a path or a binary file object, not {type(file).__name__}"
            )
        if isinstance(file, io.TextIOBase):
            raise TypeError("file must be opened in binary mode ('wb'), not text mode")
        yield file  # type: ignore[misc]
        return
    target = os.fspath(file)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".skv-", suffix=".tmp", dir=folder)
    except OSError as exc:
        # the same error, named after the target: the temporary name means nothing to callers
        error = type(exc)(exc.errno, exc.strerror, target)
        error.skvault_output = True  # type: ignore[attr-defined]
        raise error from None
    try:
        # mkstemp makes the file private (0600); give it the mode the target has or a plain one
        try:
            mode = os.stat(target).st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w+b") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    # makes the rename itself durable; not every platform lets a folder be opened
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
