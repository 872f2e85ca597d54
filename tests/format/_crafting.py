"""Build ``.skv`` files by hand, well-formed or deliberately broken, for the hostile-input tests.

Everything here works on bytes and the ``zipfile`` module only: a test that uses it never relies on
skvault's own writer to produce the hostile file (only, where said, to produce a good file that is
then damaged).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import skvault
from skvault.cli import main as cli_main
from skvault.errors import FormatError, SkvaultError

STORED = zipfile.ZIP_STORED
DEFLATED = zipfile.ZIP_DEFLATED
LZMA = zipfile.ZIP_LZMA
MANIFEST = "manifest.json"
GRAPH = "graph.json"
ALIGN = 64
_PAD_ID = 0xD935
_DATE = (1980, 1, 1, 0, 0, 0)

# what `skvault verify` reports, in order (the API and CLI tests both expect exactly these)
VERIFY_CHECKS = [
    "integrity",
    "signature",
    "environment",
    "load",
    "golden_sample",
    "data",
    "cross_validation",
]
# an unsigned artifact checked without a public key: the signature check has nothing to do
VERIFY_ALL_OK = dict.fromkeys(VERIFY_CHECKS, "ok") | {"signature": "skipped"}


@contextlib.contextmanager
def own_members_from(nbytes: int = 64 << 10):
    """Make skvault's writer give arrays of ``nbytes`` or more a ``.npy`` member of their own.

    Its own threshold is megabytes, so a test file would need megabytes of data to hold an
    ``arrays/*.npy`` member; a file written with a lower one is just as valid (readers do not
    care where a writer drew the line).
    """
    from skvault.format import _container

    saved = _container.LARGE_ARRAY
    _container.LARGE_ARRAY = nbytes
    try:
        yield
    finally:
        _container.LARGE_ARRAY = saved


__all__ = [
    "DEFLATED",
    "GRAPH",
    "LZMA",
    "MANIFEST",
    "STORED",
    "Field",
    "Member",
    "assert_refused",
    "craft",
    "graph_bytes",
    "layout",
    "manifest_for",
    "nested",
    "npy",
    "patch",
    "repack",
    "run_cli",
    "sha256",
    "unpack",
    "write_zip",
]


def sha256(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def npy(arr: np.ndarray) -> bytes:
    """Return ``arr`` as ``.npy`` bytes, written by numpy (header padded to 64 bytes)."""
    out = io.BytesIO()
    np.lib.format.write_array(out, arr, allow_pickle=False)
    return out.getvalue()


def graph_bytes(graph: Any) -> bytes:
    """Return a graph document (or any JSON value) as compact UTF-8 JSON; bytes pass through."""
    if isinstance(graph, bytes):
        return graph
    return json.dumps(graph, separators=(",", ":")).encode("utf-8")


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    """Return JSON text nested ``depth`` levels deep, e.g. ``[[[...]]]``."""
    return (open_ * depth + close * depth).encode("ascii")


@dataclass
class Member:
    """One zip member to write: its name, bytes and compression method."""

    name: str
    data: bytes
    method: int = STORED


def write_zip(members: Iterable[Member | tuple[str, bytes]]) -> bytes:
    """Write ``members`` in order into a zip and return its bytes.

    Stored members get the zipalign-style padding skvault's writer uses, so their data starts
    64-byte aligned. Nothing is checked: duplicate or hostile names are written as given.
    """
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; they are the point
        with zipfile.ZipFile(buf, "w", allowZip64=False) as zf:
            for item in members:
                m = item if isinstance(item, Member) else Member(*item)
                info = zipfile.ZipInfo(m.name, date_time=_DATE)
                info.compress_type = m.method
                if m.method == STORED:
                    start = zf.start_dir + 30 + len(m.name.encode("utf-8"))
                    pad = -(start + 6) % ALIGN
                    info.extra = struct.pack("<HHH", _PAD_ID, 2 + pad, ALIGN) + bytes(pad)
                zf.writestr(info, m.data)
                info.extra = b""  # the padding belongs in the local header only
    return buf.getvalue()


def manifest_for(members: Mapping[str, bytes], **overrides: Any) -> dict[str, Any]:
    """Return a valid manifest for ``members`` (name -> uncompressed bytes), then ``overrides``."""
    manifest: dict[str, Any] = {
        "format": "skvault",
        "format_version": 1,
        "created_by": {"library": "skvault", "version": "0.1.0"},
        "packages": {},
        "graph": GRAPH,
        "members": {n: {"size": len(d), "sha256": sha256(d)} for n, d in members.items()},
    }
    manifest.update(overrides)
    return manifest


def craft(
    graph: Any,
    members: Mapping[str, bytes] | None = None,
    *,
    manifest: Callable[[dict[str, Any]], Any] | dict[str, Any] | bytes | None = None,
    unlisted: Mapping[str, bytes] | None = None,
    methods: Mapping[str, int] | None = None,
) -> bytes:
    """Return a ``.skv`` file holding ``graph`` and ``members`` with a correct manifest.

    Parameters
    ----------
    graph : dict or bytes
        The graph document (JSON-encoded here) or raw bytes for ``graph.json``.
    members : mapping of str to bytes
        Other members, listed in the manifest with their true size and digest.
    manifest : callable, dict or bytes
        A callable edits the generated manifest in place (or returns a replacement); a dict or
        bytes replaces it outright.
    unlisted : mapping of str to bytes
        Members written into the zip but left out of the manifest.
    methods : mapping of str to int
        Compression method per member name (``graph.json`` defaults to deflate, as written by
        skvault; everything else is stored).
    """
    listed = {GRAPH: graph_bytes(graph), **(members or {})}
    doc: Any = manifest_for(listed)
    if callable(manifest):
        edited = manifest(doc)
        doc = doc if edited is None else edited
    elif manifest is not None:
        doc = manifest
    raw = doc if isinstance(doc, bytes) else json.dumps(doc, indent=1).encode("utf-8")
    chosen = {GRAPH: DEFLATED, **(methods or {})}
    entries = [
        Member(n, d, chosen.get(n, STORED)) for n, d in {**listed, **(unlisted or {})}.items()
    ]
    entries.append(Member(MANIFEST, raw, STORED))
    return write_zip(entries)


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, bytes]]:
    """Split a good artifact into its manifest, graph and other members (read with zipfile)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        parts = {info.filename: zf.read(info) for info in zf.infolist()}
    manifest = json.loads(parts.pop(MANIFEST))
    graph = json.loads(parts.pop(GRAPH))
    return manifest, graph, parts


def repack(
    data: bytes,
    *,
    graph: Callable[[dict[str, Any]], Any] | None = None,
    members: Callable[[dict[str, bytes]], Any] | None = None,
    manifest: Callable[[dict[str, Any]], Any] | None = None,
) -> bytes:
    """Rewrite a good artifact after editing its graph and members; digests are recomputed.

    Each callable edits its argument in place (or returns a replacement); ``manifest`` runs last,
    on the manifest generated for the edited members, to break it on purpose.
    """
    _, doc, parts = unpack(data)
    if graph is not None:
        doc = _apply(graph, doc)
    if members is not None:
        parts = _apply(members, parts)
    return craft(doc, parts, manifest=manifest)


def _apply(fn: Callable[[Any], Any], value: Any) -> Any:
    out = fn(value)
    return value if out is None else out


# -- the byte layout of a zip, for flipping and patching single fields ------------------------


@dataclass(frozen=True)
class Field:
    """A byte range of a zip file, named like ``local[graph.json].crc`` or ``data[x.npy]``."""

    start: int
    end: int
    name: str


_LOCAL = [
    ("signature", 4),
    ("version_needed", 2),
    ("flags", 2),
    ("method", 2),
    ("time", 2),
    ("date", 2),
    ("crc", 4),
    ("compress_size", 4),
    ("file_size", 4),
    ("name_length", 2),
    ("extra_length", 2),
]
_CENTRAL = [
    ("signature", 4),
    ("version_made_by", 2),
    ("version_needed", 2),
    ("flags", 2),
    ("method", 2),
    ("time", 2),
    ("date", 2),
    ("crc", 4),
    ("compress_size", 4),
    ("file_size", 4),
    ("name_length", 2),
    ("extra_length", 2),
    ("comment_length", 2),
    ("disk_start", 2),
    ("internal_attr", 2),
    ("external_attr", 4),
    ("header_offset", 4),
]
_END = [
    ("signature", 4),
    ("disk", 2),
    ("central_disk", 2),
    ("entries_on_disk", 2),
    ("entries", 2),
    ("central_size", 4),
    ("central_offset", 4),
    ("comment_length", 2),
]


def _fields(base: int, spec: list[tuple[str, int]], prefix: str) -> list[Field]:
    out, pos = [], base
    for name, size in spec:
        out.append(Field(pos, pos + size, f"{prefix}.{name}"))
        pos += size
    return out


def layout(data: bytes) -> list[Field]:
    """Return every field of a (plain, non-zip64) zip file, in file order.

    Local headers are split into their fields, file name, extra field and data; the central
    directory into its entries' fields; then the end record.
    """
    end = data.rindex(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HLL", data, end + 10)
    out: list[Field] = []
    pos = cd_offset
    for _ in range(count):
        fixed = struct.unpack_from("<4s6H3L5H2L", data, pos)
        nlen, xlen, clen, offset = fixed[10], fixed[11], fixed[12], fixed[16]
        name = data[pos + 46 : pos + 46 + nlen].decode("utf-8")
        out += _fields(pos, _CENTRAL, f"central[{name}]")
        out.append(Field(pos + 46, pos + 46 + nlen, f"central[{name}].name"))
        pos += 46 + nlen
        if xlen:
            out.append(Field(pos, pos + xlen, f"central[{name}].extra"))
        if clen:
            out.append(Field(pos + xlen, pos + xlen + clen, f"central[{name}].comment"))
        pos += xlen + clen
        local = struct.unpack_from("<4s5H3L2H", data, offset)
        lnlen, lxlen, csize = local[9], local[10], local[7]
        out += _fields(offset, _LOCAL, f"local[{name}]")
        p = offset + 30
        out.append(Field(p, p + lnlen, f"local[{name}].name"))
        p += lnlen
        if lxlen:
            # the padding record: 2-byte id, 2-byte size, 2-byte alignment, then zero bytes
            out.append(Field(p, p + 4, f"local[{name}].extra_header"))
            out.append(Field(p + 4, p + 6, f"local[{name}].extra_align"))
            if lxlen > 6:
                out.append(Field(p + 6, p + lxlen, f"local[{name}].extra_padding"))
        p += lxlen
        out.append(Field(p, p + csize, f"data[{name}]"))
    out += _fields(end, _END, "end")
    return sorted(out, key=lambda f: f.start)


def field_at(fields: list[Field], position: int) -> Field | None:
    """Return the field holding byte ``position``, or None for bytes between fields."""
    for f in fields:
        if f.start <= position < f.end:
            return f
    return None


def patch(data: bytes, field: str, value: int) -> bytes:
    """Return ``data`` with the integer field named ``field`` (see `layout`) set to ``value``."""
    for f in layout(data):
        if f.name == field:
            size = f.end - f.start
            fmt = {2: "<H", 4: "<L"}[size]
            return data[: f.start] + struct.pack(fmt, value) + data[f.end :]
    raise KeyError(field)


def deflate_raw(data: bytes, level: int = 9) -> bytes:
    """Return ``data`` as a raw deflate stream, the form zip stores."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


# -- checks shared by the hostile-input tests ----------------------------------------------------


def run_cli(data: bytes, *args: str) -> tuple[int, str, str]:
    """Run ``skvault inspect`` on ``data`` saved to a file; return exit code, stdout, stderr.

    Goes through the console entry point, so an exception skvault does not handle would
    propagate here (and fail the calling test) instead of being turned into an exit code.
    """
    fd, path = tempfile.mkstemp(suffix=".skv")
    out, err = io.StringIO(), io.StringIO()
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["inspect", path, *args])
    finally:
        os.unlink(path)
    return code, out.getvalue(), err.getvalue()


def assert_refused(
    data: bytes, error: type[Exception] = FormatError, match: str | None = None, *, cli: bool = True
) -> None:
    """Assert that every public reading entry point refuses ``data`` with ``error``.

    ``load``, ``loads``, ``get_untrusted_types`` and ``inspect`` must each raise ``error`` (a
    subclass is fine) whose message matches ``match``; ``skvault inspect`` must exit with 1 and
    print the error on one line of stderr, without a traceback.
    """
    calls = {
        "loads": lambda: skvault.loads(data),
        "load": lambda: skvault.load(io.BytesIO(data)),
        "get_untrusted_types": lambda: skvault.get_untrusted_types(io.BytesIO(data)),
        "inspect": lambda: skvault.inspect(io.BytesIO(data)),
    }
    for name, call in calls.items():
        with pytest.raises(error, match=match) as info:
            call()
        assert isinstance(info.value, SkvaultError), name
    if cli:
        code, out, err = run_cli(data)
        assert code == 1, (out, err)
        assert err.startswith("skvault: ") and "Traceback" not in err, err
        if match is not None:
            assert re.search(match, err), err
