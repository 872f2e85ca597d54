"""The ``.skv`` container: a zip file whose members are hashed in a manifest.

Writing streams members into the zip as the object graph is walked; array members are stored
uncompressed with their data 64-byte aligned in the file, so a reader can memory-map them.
Reading checks the zip's structure, sizes and digests before anything reaches numpy or json.
"""

from __future__ import annotations

import contextlib
import encodings.cp437  # noqa: F401  (zipfile decodes names with it: load it before any file)
import functools
import hashlib
import io
import json
import math
import mmap as _mmap
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Literal

import numpy as np

from .._version import __version__
from ..errors import FormatError, IntegrityError, UnsupportedVersionError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ContainerReader",
    "ContainerWriter",
    "Limits",
    "parse_compress",
]

FORMAT_NAME = "skvault"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GRAPH = "graph.json"
METADATA = "metadata.json"
SIGNATURE_LIMIT = 4096  # the archive comment, where a signature lives
_END_RECORD = 22  # zip end-of-central-directory record, without its comment
ALIGN = 64
LARGE_ARRAY = 1 << 20  # arrays this large or larger get a .npy member of their own
BUFFER_LIMIT = 64 << 20  # a shared buffer member is closed when it would grow past this
_CHUNK = 8 << 20
_BACKGROUND_HASH = 16 << 20  # members this large are hashed on a worker thread
_DEFER_HASH = 1 << 20  # smaller members are hashed at once even when digests are deferred
# Extra-field header id used for alignment padding (the id Android's zipalign uses).
_PAD_ID = 0xD935
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_METHODS = {"zlib": zipfile.ZIP_DEFLATED, "deflate": zipfile.ZIP_DEFLATED, "lzma": zipfile.ZIP_LZMA}
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class Limits:
    """Bounds a reader enforces before it allocates anything (bytes unless said otherwise)."""

    manifest: int = 16 << 20
    graph: int = 1 << 30
    members: int = 1_000_000
    nodes: int = 20_000_000
    depth: int = 400
    name: int = 255
    # how far a compressed member may expand: deflate cannot pass about 1032:1, so its cap never
    # refuses an honest member; LZMA reaches about 7000:1 on constant data
    ratio_deflate: int = 1100
    ratio_lzma: int = 20_000
    # graph.json (and metadata.json) become Python objects several times their size
    ratio_graph: int = 100

    def ratio(self, method: int, name: str = "") -> int:
        """Return the expansion cap for a member compressed with zip method ``method``."""
        if name in (GRAPH, METADATA):
            return self.ratio_graph
        return self.ratio_deflate if method == zipfile.ZIP_DEFLATED else self.ratio_lzma


DEFAULT_LIMITS = Limits()


def parse_compress(compress: object) -> tuple[int, int | None]:
    """Turn the public ``compress=`` argument into a zip method and level.

    Accepts ``None``/``False``/``0`` (store), ``True`` (zlib level 6), an int 1-9 (zlib at that
    level), ``"zlib"`` or ``"lzma"``, or a ``(method, level)`` pair.
    """
    if compress is None or compress is False or compress == 0:
        return zipfile.ZIP_STORED, None
    if compress is True:
        return zipfile.ZIP_DEFLATED, 6
    if isinstance(compress, int) and 1 <= compress <= 9:
        return zipfile.ZIP_DEFLATED, compress
    if isinstance(compress, str) and compress in _METHODS:
        return _METHODS[compress], 6 if _METHODS[compress] == zipfile.ZIP_DEFLATED else None
    if (
        isinstance(compress, tuple)
        and len(compress) == 2
        and compress[0] in _METHODS
        and isinstance(compress[1], int)
        and 0 <= compress[1] <= 9
    ):
        return _METHODS[compress[0]], compress[1]
    raise ValueError(
        f"compress must be None, True, a level 1-9, 'zlib', 'lzma' or (method, level); "
        f"got {compress!r}"
    )


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> bytes:
    """Return the .npy header numpy itself writes for this layout (format 1.0, else 2.0).

    Built here rather than by numpy's writer, which costs tens of microseconds per header (a
    reader compares every array's header with this one). A test keeps the two byte-identical.
    """
    text = f"{{'descr': {_descr_repr(dtype)}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    if shape:  # numpy leaves room to grow the first (last, in Fortran order) axis in place
        text += " " * (_GROWTH_DIGITS - len(repr(shape[-1 if fortran else 0])))
    try:
        raw = text.encode("latin1")
        versions: tuple[tuple[bytes, str], ...] = ((b"\x01\x00", "<H"), (b"\x02\x00", "<I"))
    except UnicodeEncodeError:  # field names outside latin-1: format 3.0 is format 2.0 in UTF-8
        raw = text.encode("utf-8")
        versions = ((b"\x03\x00", "<I"),)
    hlen = len(raw) + 1
    for version, size_format in versions:
        width = struct.calcsize(size_format)
        total = hlen + ALIGN - (8 + width + hlen) % ALIGN
        if total < 1 << (8 * width):
            padding = b" " * (total - hlen)
            return b"\x93NUMPY" + version + struct.pack(size_format, total) + raw + padding + b"\n"
    raise ValueError("npy header too large")  # pragma: no cover - 4 GiB of field names


_GROWTH_DIGITS = 21


@functools.lru_cache(maxsize=1024)
def _descr_repr(dtype: np.dtype) -> str:
    return repr(np.lib.format.dtype_to_descr(dtype))


_MAX_NPY_HEADER = 1 << 20
_HEAD = 4096  # what is read first of a .npy member: its whole header, nearly always


def _npy_header_length(head: memoryview) -> int:
    """Return the total header length a .npy prefix declares (capped), or 0 if it is too short."""
    if len(head) < 12 or bytes(head[:6]) != b"\x93NUMPY":
        return 0
    if head[6] == 1:
        length = 10 + int.from_bytes(head[8:10], "little")
    else:
        length = 12 + int.from_bytes(head[8:12], "little")
    return min(length, _MAX_NPY_HEADER + 16)


def _read_npy_header(
    head: bytes, name: str, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
) -> tuple[int, np.dtype, tuple[int, ...], bool]:
    """Return (header length, dtype, shape, fortran_order) of the .npy data starting ``head``.

    When the header is byte for byte the one this numpy writes for the expected layout, that
    is the answer; otherwise (another writer) it is parsed. Parsing costs a Python ``compile``
    per header, several times the cost of reading a small array.
    """
    expected = _npy_header(dtype, shape, fortran)
    if head.startswith(expected):
        return len(expected), dtype, shape, fortran
    return _parse_npy_header(head, name)


def _parse_npy_header(head: bytes, name: str) -> tuple[int, np.dtype, tuple[int, ...], bool]:
    """Parse a .npy header safely (numpy's literal parser, bounded); return its length too."""
    fp = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            read = np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            read = np.lib.format.read_array_header_2_0
        else:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read(fp, max_header_size=_MAX_NPY_HEADER)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, TypeError... on bad headers
        raise FormatError(f"{name}: invalid .npy header ({exc})", member=name) from None
    return fp.tell(), dtype, tuple(shape), bool(fortran)


def array_bytes(arr: np.ndarray) -> tuple[memoryview, bool]:
    """Return the array's raw bytes in memory order and whether that order is Fortran's."""
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    flat = arr.T if fortran else np.ascontiguousarray(arr)
    return flat.reshape(-1).view(np.uint8).data, fortran


class ContainerWriter:
    """Writes members into a ``.skv`` zip and, on `close`, the manifest that hashes them."""

    def __init__(self, fh: IO[bytes], compress: object = None) -> None:
        self._method, self._level = parse_compress(compress)
        self._zip = zipfile.ZipFile(fh, "w", allowZip64=True)
        self._members: dict[str, dict[str, Any]] = {}
        self._arrays = 0
        self._buffers = 0
        self._buffer = bytearray()
        self._buffer_named = False

    def add_array(self, arr: np.ndarray) -> dict[str, Any]:
        """Store ``arr``'s data and return where it went, as ndarray node fields.

        Arrays of `LARGE_ARRAY` bytes or more get a ``.npy`` member of their own; smaller ones
        are packed, 64-byte aligned, into a shared buffer member, which saves a member's
        overhead (about half a kilobyte and a seek) per array.
        """
        data, fortran = array_bytes(arr)
        if len(data) >= LARGE_ARRAY:
            header = _npy_header(arr.dtype, arr.shape, fortran)
            name = f"arrays/{self._arrays}.npy"
            self._arrays += 1
            self._write(name, (header, data), aligned=True)
            return {"fortran_order": fortran, "member": name}
        if len(self._buffer) + len(data) > BUFFER_LIMIT:
            self._flush_buffer()
        offset = len(self._buffer)
        self._buffer_named = True
        self._buffer += data
        self._buffer += bytes(-len(self._buffer) % ALIGN)
        return {"fortran_order": fortran, "buffer": self._buffer_name(), "offset": offset}

    def _buffer_name(self) -> str:
        return f"buffers/{self._buffers}.bin"

    def _flush_buffer(self) -> None:
        # a buffer named by the graph is written even when it holds only empty arrays
        if self._buffer_named:
            self._write(self._buffer_name(), (self._buffer,), aligned=True)
            self._buffers += 1
            self._buffer = bytearray()
            self._buffer_named = False

    def add_bytes(self, name: str, data: bytes, *, deflate: bool = False) -> None:
        """Store ``data`` as member ``name`` (pending array buffers are written first).

        ``deflate=True`` compresses it with deflate whatever the file's own compression: the graph
        is text that shrinks several-fold for a negligible cost, and is never memory-mapped. It
        is stored instead when it would expand past a reader's cap for it (a graph of a million
        identical values).
        """
        self._flush_buffer()
        if deflate and len(zlib.compress(data, 1)) * DEFAULT_LIMITS.ratio_graph < len(data):
            self._write(name, (data,), aligned=False, method=zipfile.ZIP_STORED)
        else:
            self._write(name, (data,), aligned=False, deflate=deflate)

    def _write(
        self,
        name: str,
        parts: tuple[bytes | bytearray | memoryview, ...],
        *,
        aligned: bool,
        deflate: bool = False,
        method: int | None = None,
    ) -> None:
        size = sum(len(p) for p in parts)
        info = zipfile.ZipInfo(name)
        info.file_size = size
        level = self._level
        if method is None:
            method = self._method
            if deflate:
                method, level = zipfile.ZIP_DEFLATED, 1
        if name == MANIFEST:
            method = zipfile.ZIP_STORED
        info.compress_type = method
        if method != zipfile.ZIP_STORED:
            # the private spelling is the one zipfile reads on 3.11 and still honours later
            info._compresslevel = level  # type: ignore[attr-defined]
        elif aligned:
            zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
            start = self._zip.start_dir + 30 + len(name.encode()) + (20 if zip64 else 0)
            pad = -(start + 6) % ALIGN
            info.extra = struct.pack("<HHH", _PAD_ID, 2 + pad, ALIGN) + bytes(pad)
        # array data is hashed on the worker thread while the graph goes on being written; the
        # digests are collected when the manifest is written
        digest = _Digest(background=aligned and size >= LARGE_ARRAY)
        with self._zip.open(info, "w") as out:
            fp = self._zip.fp
            assert fp is not None  # the zip is open for writing
            if method == zipfile.ZIP_STORED and aligned and fp.tell() % ALIGN:
                raise RuntimeError("internal error: member data is not aligned")  # pragma: no cover
            for part in parts:
                view = memoryview(part)
                for i in range(0, len(view), _CHUNK):
                    chunk = view[i : i + _CHUNK]
                    digest.update(chunk)
                    out.write(chunk)
        if method != zipfile.ZIP_STORED and size > _expansion_bound(info, DEFAULT_LIMITS):
            # a reader would take this member for a zip bomb (the caps are set so that real data
            # does not reach them: constant data under LZMA stays near 7000:1)
            raise RuntimeError(f"member {name} compresses beyond the allowed ratio")
        # the padding is only needed in the local header, which is already written
        info.extra = b""
        self._members[name] = {"size": size, "sha256": digest}

    def close(self, extra: dict[str, Any] | None = None) -> None:
        """Write the manifest, which records the digest of every member, and finish the zip."""
        for entry in self._members.values():
            entry["sha256"] = entry["sha256"].hexdigest()
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_by": {"library": "skvault", "version": __version__},
            "packages": _package_versions(),
            "graph": GRAPH,
            "members": self._members,
        }
        if extra:
            manifest.update(extra)
        data = json.dumps(manifest, indent=1, sort_keys=False).encode("utf-8")
        self._write(MANIFEST, (data,), aligned=False)
        del self._members[MANIFEST]
        self._zip.close()

    def abort(self) -> None:
        """Release the zip after a failure; the output is incomplete and must be discarded."""
        try:
            self._zip.close()
        except Exception:  # the error that led here is the one worth reporting
            pass


def _package_versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


@dataclass
class _Member:
    info: zipfile.ZipInfo
    end_bound: int  # where the next member or the central directory begins
    size: int
    sha256: str


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r}")
    return out


def _reject_constant(token: str) -> None:
    raise ValueError(f"non-standard JSON token {token}")


def parse_json(data: bytes, member: str, *, strict_keys: bool = True) -> Any:
    """Parse strict JSON, raising `FormatError` when bad.

    NaN and Infinity tokens are refused. Duplicate keys are refused when ``strict_keys`` (the
    graph skips that check for speed: it is parsed once, and the same parse serves the audit and
    the construction, so a duplicate cannot make them disagree).
    """
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys if strict_keys else None,
            parse_constant=_reject_constant,
        )
    except RecursionError:
        raise FormatError(f"{member} is nested too deeply", member=member) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{member} is not valid JSON: {exc}", member=member) from None


def _valid_member_name(name: str, limit: int) -> bool:
    if not name or len(name) > limit or name.startswith("/") or "\\" in name:
        return False
    parts = name.split("/")
    return all(p and p not in (".", "..") and p.isprintable() for p in parts)


class ContainerReader:
    """Opens a ``.skv`` zip, checks its structure and manifest, and serves verified members.

    Nothing here imports or constructs anything named by the file.
    """

    def __init__(self, fh: IO[bytes], *, limits: Limits = DEFAULT_LIMITS) -> None:
        self._fh = fh
        self.limits = limits
        fh.seek(0, 2)
        self._file_size = fh.tell()
        fh.seek(0)
        try:
            self._zip = zipfile.ZipFile(fh, "r")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise FormatError(
                f"not a .skv file (not a readable zip archive: {exc}){_legacy_hint(fh)}"
            ) from None
        except (ValueError, struct.error, OverflowError, IndexError) as exc:
            raise FormatError(f"not a .skv file (corrupt zip structure: {exc})") from None
        self._mmap: _mmap.mmap | None = None
        self._buffers: dict[str, memoryview] = {}
        self._regions: dict[str, list[tuple[int, int]]] = {}
        self._claimed: set[str] = set()
        # digests being computed on the worker thread: (member, expected, result getter)
        self._deferred: list[tuple[str, str, Callable[[], str]]] | None = None
        infos = self._zip.infolist()
        if len(infos) > limits.members:
            raise FormatError(f"the archive has {len(infos)} members, over the limit")
        self.manifest = self._read_manifest(infos)
        self._members = self._index_members(infos)

    # -- structure -------------------------------------------------------------------------
    def _read_manifest(self, infos: list[zipfile.ZipInfo]) -> dict[str, Any]:
        infos_by_name: dict[str, zipfile.ZipInfo] = {}
        directory = self._central_directory_start()
        for info in infos:
            if not 0 <= info.header_offset < directory:
                # zipfile shifts offsets by any bytes it finds before the archive, so a cut or
                # spliced file can place a member outside the file
                raise FormatError(
                    f"member {info.filename!r} starts outside the archive (truncated file?)",
                    member=info.filename,
                )
            if not _valid_member_name(info.filename, self.limits.name):
                raise FormatError(f"forbidden member name {info.filename!r}", member=info.filename)
            if info.filename in infos_by_name:
                raise FormatError(f"duplicate member name {info.filename!r}", member=info.filename)
            infos_by_name[info.filename] = info
        manifest_info = infos_by_name.get(MANIFEST)
        if manifest_info is None:
            hint = ""
            if "schema.json" in infos_by_name:
                hint = f" (it is a skops file, which skvault.load reads: {_LEGACY_TOOLS})"
            raise FormatError(f"not a .skv file: it has no manifest.json{hint}")
        if manifest_info.compress_type != zipfile.ZIP_STORED:
            raise FormatError("manifest.json must be stored uncompressed", member=MANIFEST)
        if manifest_info.file_size > self.limits.manifest:
            raise FormatError("manifest.json is over the size limit", member=MANIFEST)
        self._infos_by_name = infos_by_name
        bound = self._bound_for(manifest_info, infos)
        raw = self._read_raw(manifest_info, bound, manifest_info.file_size)
        manifest = parse_json(raw, MANIFEST)
        _check_manifest(manifest)
        self.manifest_bytes = raw
        return manifest

    def _bound_for(self, info: zipfile.ZipInfo, infos: list[zipfile.ZipInfo]) -> int:
        later = [i.header_offset for i in infos if i.header_offset > info.header_offset]
        return min(later, default=self._central_directory_start())

    def _central_directory_start(self) -> int:
        return int(getattr(self._zip, "start_dir", self._file_size))

    def _index_members(self, infos: list[zipfile.ZipInfo]) -> dict[str, _Member]:
        listed: dict[str, Any] = self.manifest["members"]
        names = set(self._infos_by_name) - {MANIFEST}
        if names != set(listed):
            missing = sorted(set(listed) - names)
            extra = sorted(names - set(listed))
            raise FormatError(
                f"the archive's members do not match the manifest (missing: {missing[:5]}, "
                f"not listed: {extra[:5]})"
            )
        ordered = sorted(infos, key=lambda i: i.header_offset)
        bounds = [i.header_offset for i in ordered[1:]] + [self._central_directory_start()]
        members: dict[str, _Member] = {}
        for info, bound in zip(ordered, bounds):
            if info.filename == MANIFEST:
                continue
            entry = listed[info.filename]
            if info.flag_bits & 0x1:
                raise FormatError("encrypted members are not supported", member=info.filename)
            if info.compress_type not in _READABLE_METHODS:
                raise FormatError(
                    f"unsupported compression method {info.compress_type}", member=info.filename
                )
            if info.file_size != entry["size"]:
                raise IntegrityError(
                    f"{info.filename}: size {info.file_size} differs from the manifest's "
                    f"{entry['size']}",
                    member=info.filename,
                )
            if info.compress_size > bound - info.header_offset:
                raise FormatError("member overlaps the next one", member=info.filename)
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > _expansion_bound(
                info, self.limits
            ):
                raise FormatError(
                    "compressed member expands beyond the allowed ratio (zip bomb?)",
                    member=info.filename,
                )
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise FormatError("stored member with inconsistent sizes", member=info.filename)
            members[info.filename] = _Member(info, bound, entry["size"], entry["sha256"])
        return members

    def _data_offset(self, info: zipfile.ZipInfo, bound: int) -> int:
        if info.header_offset + _LOCAL_HEADER.size > bound:
            raise FormatError("truncated local header", member=info.filename)
        self._fh.seek(info.header_offset)
        raw = self._fh.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size:
            raise FormatError("truncated local header", member=info.filename)
        fields = _LOCAL_HEADER.unpack(raw)
        if fields[0] != b"PK\x03\x04":
            raise FormatError("bad local header signature", member=info.filename)
        name_len, extra_len = fields[10], fields[11]
        name = self._fh.read(name_len)
        if (
            name.decode("utf-8", "replace") != info.filename
            and name.decode("cp437", "replace") != info.filename
        ):
            raise FormatError("local header names another member", member=info.filename)
        offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if offset + info.compress_size > bound:
            raise FormatError("member data runs past its bounds (truncated?)", member=info.filename)
        return offset

    # -- reading -----------------------------------------------------------------------------
    @property
    def file_size(self) -> int:
        """Size of the whole file in bytes."""
        return self._file_size

    def names(self) -> list[str]:
        """Return the names of the hashed members (every member but the manifest)."""
        return list(self._members)

    def archive_comment(self) -> bytes:
        """Return the zip archive comment (empty when there is none); a signature lives there."""
        comment = self._zip.comment
        if len(comment) > SIGNATURE_LIMIT:
            raise FormatError("the archive comment is over the size limit")
        return comment

    def structure_digest(self) -> bytes:
        """SHA-256 of every byte of the file but stored members' data, up to the archive comment.

        That is the local headers (with their alignment padding), compressed members' raw bytes
        (a deflate stream has bits its output does not depend on), the central directory and
        the end record without its comment length. Stored members are exactly their content,
        which the manifest's digests cover: a signature over this digest and the manifest
        covers every byte of the file but its own.
        """
        end = self._file_size - len(self._zip.comment) - _END_RECORD
        self._fh.seek(end)
        record = self._fh.read(_END_RECORD)
        if record[:4] != b"PK\x05\x06" or int.from_bytes(record[20:22], "little") != len(
            self._zip.comment
        ):
            raise FormatError("the zip end record is not at the end of the file")
        ordered = sorted(self._infos_by_name.values(), key=lambda i: i.header_offset)
        bounds = [i.header_offset for i in ordered[1:]] + [self._central_directory_start()]
        digest = hashlib.sha256()
        pos = 0
        for info, bound in zip(ordered, bounds):
            if info.compress_type == zipfile.ZIP_STORED:
                start = self._data_offset(info, bound)
                self._hash_range(digest, pos, start)
                pos = start + info.compress_size
        self._hash_range(digest, pos, end + _END_RECORD - 2)
        return digest.digest()

    def _hash_range(self, digest: Any, start: int, stop: int) -> None:
        if stop < start:
            raise FormatError("the zip structure is malformed (members overlap)")
        self._fh.seek(start)
        while start < stop:
            chunk = self._fh.read(min(_CHUNK, stop - start))
            if not chunk:
                raise FormatError("the file is truncated")
            digest.update(chunk)
            start += len(chunk)

    def check_all_digests(self) -> None:
        """Read every member and check its size and SHA-256 against the manifest.

        Streams each member in chunks, so memory stays bounded whatever the member sizes.
        """
        for name, member in self._members.items():
            digest = hashlib.sha256()
            size = 0
            try:
                with self._zip.open(member.info) as src:
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        if size > member.size:
                            break
                        digest.update(chunk)
            except Exception as exc:  # zlib.error, lzma.LZMAError, BadZipFile, EOFError, ...
                kind = IntegrityError if "CRC" in str(exc) else FormatError
                raise kind(f"cannot read member: {exc}", member=name) from None
            if size != member.size:
                raise IntegrityError(
                    f"{name}: {size} bytes read, the manifest records {member.size}", member=name
                )
            _verify(name, digest.hexdigest(), member.sha256)

    def member_size(self, name: str) -> int:
        """Return the uncompressed size of member ``name``."""
        return self._member(name).size

    def _member(self, name: str) -> _Member:
        try:
            return self._members[name]
        except KeyError:
            raise FormatError(f"the graph references a missing member {name!r}") from None

    def _read_raw(self, info: zipfile.ZipInfo, bound: int, size: int) -> bytes:
        if info.compress_type == zipfile.ZIP_STORED:
            offset = self._data_offset(info, bound)
            self._fh.seek(offset)
            data = self._fh.read(size)
        else:
            buf = bytearray(size)
            self._decompress_into(info, memoryview(buf))
            data = bytes(buf)
        if len(data) != size:
            raise FormatError("member is truncated", member=info.filename)
        return data

    def _decompress_into(self, info: zipfile.ZipInfo, out: memoryview) -> None:
        try:
            with self._zip.open(info) as src:
                pos = 0
                while pos < len(out):
                    chunk = src.read(min(_CHUNK, len(out) - pos))
                    if not chunk:
                        break
                    out[pos : pos + len(chunk)] = chunk
                    pos += len(chunk)
                if pos != len(out) or src.read(1):
                    raise FormatError("compressed member has the wrong size", member=info.filename)
        except FormatError:
            raise
        except Exception as exc:  # zlib.error, lzma.LZMAError, BadZipFile, EOFError, ...
            raise FormatError(f"cannot decompress member: {exc}", member=info.filename) from None

    def read_bytes(self, name: str, limit: int) -> bytes:
        """Return member ``name`` after checking its size against ``limit`` and its digest."""
        member = self._member(name)
        if member.size > limit:
            raise FormatError(f"{name} is over the size limit ({member.size} bytes)", member=name)
        data = self._read_raw(member.info, member.end_bound, member.size)
        _verify(name, hashlib.sha256(data).hexdigest(), member.sha256)
        return data

    def read_array(
        self,
        name: str,
        dtype: np.dtype,
        shape: tuple[int, ...],
        fortran: bool,
        *,
        mmap: bool = False,
    ) -> np.ndarray:
        """Return the array stored in member ``name``, checked against the expected layout.

        With ``mmap=True`` a stored member becomes a read-only view of the memory-mapped file
        (no copy; its digest is not computed, as that would read every page).
        """
        nbytes = _check_layout(name, dtype, shape)
        member = self._claim(name)
        order: Literal["C", "F"] = "F" if fortran else "C"
        info = member.info
        stored = info.compress_type == zipfile.ZIP_STORED
        if stored:
            offset = self._data_offset(info, member.end_bound)
            self._fh.seek(offset)
            # the header only: the data is read once, straight into the array, below
            data = memoryview(self._fh.read(min(member.size, _HEAD)))
            need = _npy_header_length(data)
            if need > len(data):
                self._fh.seek(offset)
                data = memoryview(self._fh.read(min(member.size, need)))
        else:
            data = _aligned_bytes(member.size)
            self._decompress_into(info, data)
            self._check_digest(name, member.sha256, data)
        head = bytes(data[: max(_npy_header_length(data), 12)])
        header_len, got_dtype, got_shape, got_fortran = _read_npy_header(
            head, name, dtype, shape, fortran
        )
        if (got_dtype, got_shape, got_fortran) != (dtype, shape, fortran):
            raise FormatError(
                f"{name}: its .npy header ({got_dtype}, {got_shape}, fortran_order="
                f"{got_fortran}) does not match the graph ({dtype}, {shape}, {fortran})",
                member=name,
            )
        if member.size != header_len + nbytes:
            raise FormatError(
                f"{name}: member holds {member.size} bytes but an array of shape {shape} "
                f"and dtype {dtype} needs {header_len + nbytes}",
                member=name,
            )
        if not stored:
            if header_len % ALIGN:
                raise self._misaligned("array", name)
            return np.ndarray(shape, dtype, buffer=data, offset=header_len, order=order)
        data_offset = offset + header_len
        if data_offset % ALIGN:
            raise self._misaligned("array", name)
        if mmap and self._can_mmap():
            assert self._mmap is not None
            return np.ndarray(shape, dtype, buffer=self._mmap, offset=data_offset, order=order)
        arr = np.empty(shape, dtype, order=order)
        digest = _Digest(background=nbytes >= _BACKGROUND_HASH or self._deferred is not None)
        digest.update(bytes(data[:header_len]))
        view, _ = array_bytes(arr)  # a fresh array: a view of its memory, no copy
        self._fh.seek(data_offset)
        pos = 0
        while pos < nbytes:
            # open_input hands every reader a stream with readinto (IO[bytes] does not say so)
            n = self._fh.readinto(view[pos : pos + _CHUNK])  # type: ignore[attr-defined]
            if not n:
                raise FormatError(f"{name} is truncated", member=name)
            digest.update(view[pos : pos + n])
            pos += n
        self._check_digest(name, member.sha256, digest)
        return arr

    def buffer_array(
        self,
        name: str,
        offset: int,
        dtype: np.dtype,
        shape: tuple[int, ...],
        fortran: bool,
        *,
        mmap: bool = False,
    ) -> np.ndarray:
        """Return the array stored at ``offset`` in the shared buffer member ``name``.

        The buffer is read and verified once; arrays are views of it (read-only views of the
        memory-mapped file with ``mmap=True``). Regions must be aligned and must not overlap.
        """
        buffer = self._buffer(name, mmap)
        nbytes = dtype.itemsize * math.prod(shape)
        outside = offset % ALIGN or offset + nbytes > len(buffer)
        if outside or not nbytes:
            # the buffer's size bounds every dimension of an array that fits in it: numpy's own
            # limits need a look only for one of no bytes (shape (0, 10**30)) or one that does
            # not fit (an impossible shape gets the precise complaint)
            _check_layout(name, dtype, shape)
        if outside:
            raise FormatError(
                f"array at offset {offset} ({nbytes} bytes) is misaligned or outside {name}",
                member=name,
            )
        if nbytes:
            # overlaps are looked for once, by check_regions(), before the load returns
            self._regions.setdefault(name, []).append((offset, offset + nbytes))
        order: Literal["C", "F"] = "F" if fortran else "C"
        return np.ndarray(shape, dtype, buffer=buffer, offset=offset, order=order)

    def check_regions(self) -> None:
        """Refuse buffers in which two arrays share bytes (each array owns its region)."""
        for name, claimed in self._regions.items():
            if len(claimed) > 1:
                spans = np.array(claimed, dtype=np.int64)
                spans = spans[np.argsort(spans[:, 0], kind="stable")]
                if (spans[1:, 0] < spans[:-1, 1]).any():
                    raise FormatError(f"arrays overlap in {name}", member=name)

    def _buffer(self, name: str, mmap: bool) -> memoryview:
        cached = self._buffers.get(name)
        if cached is not None:
            return cached
        member = self._claim(name)
        info = member.info
        if info.compress_type == zipfile.ZIP_STORED:
            offset = self._data_offset(info, member.end_bound)
            if offset % ALIGN:
                raise self._misaligned("buffer", name)
            if mmap and self._can_mmap():
                assert self._mmap is not None
                # small arrays are mapped too, but their digest is still checked: unlike large
                # .npy members, reading them all costs little
                view = memoryview(self._mmap)[offset : offset + member.size]
                self._check_digest(name, member.sha256, view)
                self._buffers[name] = view
                return view
            data = _aligned_bytes(member.size)
            self._fh.seek(offset)
            got = self._fh.readinto(data)  # type: ignore[attr-defined]
            if got != member.size:
                raise FormatError(f"{name} is truncated", member=name)
        else:
            data = _aligned_bytes(member.size)
            self._decompress_into(info, data)
        self._check_digest(name, member.sha256, data)
        self._buffers[name] = data
        return data

    @contextlib.contextmanager
    def deferred_digests(self) -> Iterator[None]:
        """Check the digests of array data on a worker thread while the caller goes on.

        Inside the scope an array is returned as soon as its bytes are read; its SHA-256 is
        computed on the worker thread, in parallel with whatever the caller builds from it. The
        scope's exit waits for every digest and raises `IntegrityError` on a mismatch, also when
        the body raised (a damaged file is reported as damaged, whatever else broke on it).
        Objects built inside the scope must not reach the caller before it has exited: until
        then nothing proves their bytes are the file's.
        """
        pending: list[tuple[str, str, Callable[[], str]]] = []
        outer, self._deferred = self._deferred, pending
        try:
            yield
        except BaseException:
            self._deferred = outer
            broken = _first_mismatch(pending)
            if broken is not None:
                raise broken from None
            raise
        self._deferred = outer
        broken = _first_mismatch(pending)
        if broken is not None:
            raise broken

    def _check_digest(self, name: str, expected: str, data: memoryview | _Digest) -> None:
        """Check that ``data`` (bytes, or a digest being computed) hashes to ``expected``.

        Inside `deferred_digests` the check is queued (``data`` must then not change).
        """
        if self._deferred is None:
            actual = data.hexdigest() if isinstance(data, _Digest) else _sha256(data)
            _verify(name, actual, expected)
        elif isinstance(data, _Digest):
            self._deferred.append((name, expected, data.hexdigest))
        elif len(data) < _DEFER_HASH:  # not worth a trip to the worker
            _verify(name, _sha256(data), expected)
        else:
            self._deferred.append((name, expected, _hash_pool().submit(_sha256, data).result))

    def _misaligned(self, what: str, name: str) -> FormatError:
        message = f"{what} data is not 64-byte aligned in the file"
        start = min(info.header_offset for info in self._infos_by_name.values())
        if start % ALIGN:
            # an artifact appended to other data: its offsets are right, its alignment is not
            message += (
                f" (the archive starts at byte {start} of this input, not at a multiple of 64: "
                "load the artifact from its own file or bytes)"
            )
        return FormatError(message, member=name)

    def _claim(self, name: str) -> _Member:
        """Return member ``name`` for use by one array node; a second use is refused."""
        member = self._member(name)
        if name in self._claimed:
            raise FormatError(f"two arrays claim member {name}", member=name)
        self._claimed.add(name)
        return member

    def _can_mmap(self) -> bool:
        if self._mmap is None:
            try:
                fileno = self._fh.fileno()
                self._mmap = _mmap.mmap(fileno, 0, access=_mmap.ACCESS_READ)
            except (AttributeError, OSError, ValueError):
                return False
        return True

    def close(self) -> None:
        """Close the zip; memory-mapped arrays already handed out stay valid."""
        self._zip.close()


class _Digest:
    """SHA-256 of a stream of chunks; large streams are hashed on a worker thread.

    Hashing (about 1.5 GB/s) costs as much as reading or writing the bytes; hashlib and file I/O
    both release the GIL, so overlapping them nearly halves the time for large arrays.
    """

    def __init__(self, background: bool) -> None:
        self._hash = hashlib.sha256()
        self._pending: Future[None] | None = None
        self._pool = _hash_pool() if background else None

    def update(self, chunk: bytes | memoryview) -> None:
        """Add ``chunk``, which must not change until `hexdigest` returns."""
        if self._pool is None:
            self._hash.update(chunk)
            return
        # one worker thread takes the chunks in submission order
        self._pending = self._pool.submit(self._hash.update, chunk)

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
        return self._hash.hexdigest()


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _hash_pool() -> ThreadPoolExecutor:
    """Return the one worker thread that hashes; hashlib releases the GIL while it works."""
    global _POOL
    # a forked child inherits the executor but not its thread: it needs one of its own
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="skvault-sha256"))
    return _POOL[1]


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_mismatch(pending: list[tuple[str, str, Callable[[], str]]]) -> IntegrityError | None:
    """Wait for every queued digest; return the error for the first that differs, if any."""
    broken = None
    for name, expected, result in pending:
        broken = broken or _mismatch(name, result(), expected)
    return broken


def _expansion_bound(info: zipfile.ZipInfo, limits: Limits) -> int:
    """The largest uncompressed size a compressed member of this size may declare."""
    return max(info.compress_size, 1024) * limits.ratio(info.compress_type, info.filename)


_LEGACY_TOOLS = (
    "`skvault audit FILE` lists what it references and `skvault convert FILE OUT.skv` turns it "
    "into a .skv"
)


def _legacy_hint(fh: IO[bytes]) -> str:
    """A pointer to the legacy tools for a file that starts like a pickle (protocol 2 or later)."""
    try:
        fh.seek(0)
        first = fh.read(1)
    except (OSError, ValueError):
        return ""
    if first != b"\x80":
        return ""
    return (
        f" (it starts like a pickle or joblib file: {_LEGACY_TOOLS}; "
        "skvault.load(FILE, allow_pickle=True) reads it through the restricted unpickler)"
    )


def _aligned_bytes(size: int) -> memoryview:
    """Return a writable buffer of ``size`` bytes whose start is 64-byte aligned in memory."""
    raw = np.empty(size + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size].data


def _check_layout(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Return the byte size of an array of ``shape`` and ``dtype``, if numpy can represent it.

    numpy's own rule: every dimension, and the product of the non-zero ones times the item size,
    must fit in a signed 64-bit integer. Checked before numpy sees the shape, which it would
    otherwise refuse with a bare ValueError (or, for zero-size items, accept with a wrong size).
    """
    count = 1
    for dim in shape:
        if dim > _INTP_MAX:
            raise FormatError(f"{name}: array dimension {dim} is too large", member=name)
        count *= dim or 1
    if count * max(dtype.itemsize, 1) > _INTP_MAX:
        raise FormatError(f"{name}: an array of shape {shape} is too large", member=name)
    return dtype.itemsize * math.prod(shape)


_INTP_MAX = sys.maxsize  # numpy's npy_intp


def _mismatch(name: str, actual: str, expected: str) -> IntegrityError | None:
    if actual == expected:
        return None
    return IntegrityError(
        f"{name}: SHA-256 {actual} differs from the manifest's {expected}", member=name
    )


def _verify(name: str, actual: str, expected: str) -> None:
    broken = _mismatch(name, actual, expected)
    if broken is not None:
        raise broken


def _check_manifest(manifest: object) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise FormatError("not a .skv file: manifest.json does not declare format 'skvault'")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"invalid format_version {version!r}", member=MANIFEST)
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"this file uses .skv format version {version}; this skvault ({__version__}) reads "
            f"versions up to {FORMAT_VERSION}. Upgrade skvault to load it.",
            version=version,
        )
    for key in ("created_by", "packages"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise FormatError(f"manifest.json: {key!r} must be an object", member=MANIFEST)
    if manifest.get("graph") != GRAPH:
        raise FormatError("manifest.json must name graph.json as its graph", member=MANIFEST)
    members = manifest.get("members")
    if not isinstance(members, dict) or GRAPH not in members:
        raise FormatError("manifest.json has no valid 'members' table", member=MANIFEST)
    for name, entry in members.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and not isinstance(entry.get("size"), bool)
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
        ):
            raise FormatError(f"manifest entry for {name!r} is malformed", member=MANIFEST)
