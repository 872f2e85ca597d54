"""``skvault.audit``: list every global a model file names, classified, importing nothing.

The format is detected from the content (:mod:`._detect`), then:

* pickle and joblib files (every compression joblib writes, and its legacy zfile) are walked by
  the static scanner (:mod:`._pickle_scan`), raw joblib array data skipped, nested object-array
  pickles scanned;
* ``.npy`` files have their header read; an object array's embedded pickle is scanned;
* ``.skv`` files are parsed by skvault's own reader without building anything, and the globals
  their graph names are listed node by node;
* skops files are parsed by skvault's skops reader (:mod:`._skops`), never by skops itself.

Every pickle name is classified by :func:`._policy.classify`, the same function the restricted
unpickler asks, so what the audit calls safe is what the unpickler will resolve. ``.skv`` and
skops names are safe exactly when the trust policy those readers use accepts them.
"""

from __future__ import annotations

import ast
import io
import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import FormatError, SkvaultError
from ..format._trust import TrustPolicy
from ._detect import COMPRESSED, HEAD_SIZE, detect, detect_file, open_stream, peekable
from ._pickle_scan import Problem, ScanResult, scan
from ._policy import classify

__all__ = ["AuditReport", "AuditedName", "Problem", "audit"]

#: The most bytes a compressed pickle may expand to before the audit calls it a bomb.
MAX_DECOMPRESSED = 8 << 30
#: The largest ``.npy`` header read (numpy itself refuses headers over 10 000 bytes by default).
MAX_NPY_HEADER = 1 << 20
#: Members of a foreign zip file whose pickles are scanned (torch and similar put pickles there).
MAX_ZIP_MEMBERS = 1000

_FORMAT_NAMES = {"ZF": "zfile"}


@dataclass(frozen=True)
class AuditedName:
    """One global a file names, with its classification.

    Attributes
    ----------
    module, name : str
        The pair as the loader resolves it (for pickles: after the exact renames an unpickler
        applies, such as Python 2 names and ``numpy.core``). ``<dynamic>`` when a pickle computes
        the name at load time.
    classification : {"safe", "unknown", "dangerous"}
    reason : str
        Why it got its classification.
    location : str
        Where it is, for people: a byte offset (and pickle section), a graph node, a JSON path.
    offset : int or None
        Byte offset of the opcode naming it, in the decompressed pickle stream.
    pickle : int or None
        Pickle section: 0 for the first, then one more per pickle after a STOP or nested.
    count : int
        How many times that section names it.
    """

    module: str
    name: str
    classification: str
    reason: str
    location: str
    offset: int | None = None
    pickle: int | None = None
    count: int = 1

    @property
    def qualified(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {
            "module": self.module,
            "name": self.name,
            "classification": self.classification,
            "reason": self.reason,
            "location": self.location,
            "offset": self.offset,
            "pickle": self.pickle,
            "count": self.count,
        }


@dataclass
class AuditReport:
    """What :func:`audit` found in one file.

    Attributes
    ----------
    file : str or None
        The path audited (None for a file object without a name).
    format : str
        ``pickle``, ``joblib``, ``npy``, ``skv``, ``skops``, ``zip`` (another zip file),
        ``empty`` or ``unknown``.
    compression : str or None
        For joblib files: ``zlib``, ``gzip``, ``bz2``, ``lzma``, ``xz``, ``lz4`` or ``zfile``.
    references : list of AuditedName
        Every global the file names.
    problems : list of Problem
        Everything that keeps the file from being called clean whatever it names: truncated or
        invalid streams, data after STOP, frame tricks, extension codes, persistent ids, joblib
        array states the audit cannot follow, a file of no known format...
    details : dict
        Counts: pickle sections, joblib arrays skipped and their bytes, protocols.
    """

    file: str | None
    format: str
    compression: str | None = None
    references: list[AuditedName] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        """True only when every reference is safe and there is no problem."""
        return not self.problems and all(r.classification == "safe" for r in self.references)

    def counts(self) -> dict[str, int]:
        """Return how many references have each classification."""
        counts = {"safe": 0, "unknown": 0, "dangerous": 0}
        for ref in self.references:
            counts[ref.classification] = counts.get(ref.classification, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "file": self.file,
            "format": self.format,
            "compression": self.compression,
            "safe": self.safe,
            "counts": self.counts(),
            "references": [r.to_dict() for r in self.references],
            "problems": [
                {"kind": p.kind, "message": p.message, "offset": p.offset, "pickle": p.pickle}
                for p in self.problems
            ],
            "details": dict(self.details),
        }

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        what = self.format + (f" ({self.compression})" if self.compression else "")
        counts = self.counts()
        parts = [f"{counts[k]} {k}" for k in ("safe", "unknown", "dangerous") if counts[k]]
        refs = ", ".join(parts) if parts else "no globals"
        problems = len(self.problems)
        plural = "s" if problems != 1 else ""
        verdict = "SAFE" if self.safe else "NOT SAFE"
        return f"{self.file or '<file>'}: {what}, {refs}, {problems} problem{plural}: {verdict}"

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.references:
            rows = [("MODULE", "NAME", "CLASSIFICATION", "WHERE")]
            for ref in self.references:
                where = ref.location + (f" ({ref.count} times)" if ref.count > 1 else "")
                rows.append((ref.module, ref.name, ref.classification, where))
            widths = [min(max(len(row[i]) for row in rows), 48) for i in range(3)]
            for row in rows:
                cells = [row[i].ljust(widths[i]) for i in range(3)]
                lines.append("  " + "  ".join([*cells, row[3]]).rstrip())
        for problem in self.problems:
            where = "" if problem.offset is None else f" at offset {problem.offset}"
            if problem.pickle:
                where += f" (pickle {problem.pickle})"
            lines.append(f"  problem [{problem.kind}]{where}: {problem.message}")
        return "\n".join(lines)


def audit(
    file: str | os.PathLike[str] | IO[bytes] | bytes,
    *,
    trusted: Iterable[str] | None = None,
) -> AuditReport:
    """Audit a model file statically: every global it names, classified, nothing imported.

    Parameters
    ----------
    file : str, os.PathLike, bytes or binary file object
        A pickle, joblib (any compression), ``.npy``, ``.skv`` or skops file; the format is
        detected from the content. A file object is read from its current position; bytes are
        the file's content.
    trusted : list of str, optional
        Fully qualified names (``"mypackage.MyEstimator"``) to accept on top of skvault's
        default allow-list, as ``load(..., trusted=...)`` does. A name classified dangerous stays
        dangerous.

    Returns
    -------
    AuditReport
        ``report.safe`` is True only when every name is safe and the file has no problem.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    TypeError
        ``trusted`` is not a list of ``module.name`` strings.

    Examples
    --------
    >>> import pickle, io, skvault
    >>> from sklearn.linear_model import LinearRegression
    >>> report = skvault.audit(io.BytesIO(pickle.dumps(LinearRegression())))
    >>> report.safe, report.format
    (True, 'pickle')
    """
    policy = TrustPolicy(trusted)
    name = _file_name(file)
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(file)  # the content, as skvault.load takes bytes
    file = peekable(file)  # a pipe: its first bytes are looked at twice
    kind = detect_file(file)
    if kind == "skv":
        return _audit_skv(file, name, policy)
    if kind == "skops":
        return _audit_skops(file, name, policy)
    if kind == "npy":
        return _audit_npy(file, name, policy)
    if kind == "pickle" or kind in COMPRESSED:
        return _audit_pickle(file, name, kind, policy)
    if kind == "zip":
        return _audit_zip(file, name, policy)
    report = AuditReport(name, kind)
    message = (
        "the file is empty" if kind == "empty" else "not a pickle, joblib, npy, skops or .skv file"
    )
    report.problems.append(Problem("format", message, 0))
    return report


def _file_name(file: Any) -> str | None:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else None


# -- pickles -------------------------------------------------------------------------------------


def _audit_pickle(file: Any, name: str | None, kind: str, policy: TrustPolicy) -> AuditReport:
    compression = _FORMAT_NAMES.get(kind, kind) if kind in COMPRESSED else None
    report = AuditReport(name, "joblib" if compression else "pickle", compression)
    try:
        with open_stream(file, max_bytes=MAX_DECOMPRESSED) as stream:
            result = scan(stream, zfile=kind == "ZF")
    except FormatError as exc:  # a missing optional decompressor, a bad zfile header
        report.problems.append(Problem("format", str(exc), 0))
        return report
    _add_scan(report, result, policy, decompressed=compression is not None)
    if result.joblib:
        report.format = "joblib"
    return report


def _add_scan(
    report: AuditReport,
    result: ScanResult,
    policy: TrustPolicy,
    *,
    decompressed: bool = False,
    prefix: str = "",
) -> None:
    for ref in result.references:
        where = f"{prefix}offset {ref.offset}"
        if decompressed:
            where += " (decompressed)"
        if ref.pickle:
            where += f", pickle {ref.pickle}"
        if ref.dynamic is not None:
            report.references.append(
                AuditedName(
                    ref.module,
                    ref.name,
                    "dangerous",
                    f"name computed at load time: {ref.dynamic}",
                    where,
                    ref.offset,
                    ref.pickle,
                    ref.count,
                )
            )
            continue
        verdict = classify(ref.module, ref.name, ref.protocol, policy)
        reason = verdict.reason
        if ref.opcode == "INST":
            reason += "; named by INST, which calls it"
        report.references.append(
            AuditedName(
                verdict.module,
                verdict.name,
                verdict.classification,
                reason,
                where,
                ref.offset,
                ref.pickle,
                ref.count,
            )
        )
    report.problems.extend(result.problems)
    details = report.details
    details["pickles"] = details.get("pickles", 0) + result.pickles
    details["arrays_skipped"] = details.get("arrays_skipped", 0) + result.arrays
    details["array_bytes_skipped"] = details.get("array_bytes_skipped", 0) + result.array_bytes
    details["protocols"] = sorted(set(details.get("protocols", [])) | result.protocols)


# -- .npy ----------------------------------------------------------------------------------------


def _audit_npy(file: Any, name: str | None, policy: TrustPolicy) -> AuditReport:
    report = AuditReport(name, "npy")
    with _opened(file) as fh:
        try:
            header, descr, shape = _npy_header(fh)
        except FormatError as exc:
            report.problems.append(Problem("invalid", f"bad .npy header: {exc}", 0))
            return report
        data_start = fh.tell()
        report.details["header"] = header
        hasobject, itemsize = _descr_layout(descr)
        if hasobject is None:
            report.problems.append(
                Problem("invalid", f"the .npy header's dtype is not understood: {descr!r}", 0)
            )
            return report
        if hasobject:
            # numpy.load(allow_pickle=True) unpickles the rest of the file
            result = scan(fh, joblib_arrays=False, origin=data_start)
            _add_scan(report, result, policy)
            return report
        count = 1
        for dim in shape:
            count *= dim
        expected = count * itemsize
        end = fh.seek(0, 2)
        actual = end - data_start
        if actual < expected:
            report.problems.append(
                Problem(
                    "truncated",
                    f"the array data is {actual} bytes, the header announces {expected}",
                    data_start,
                )
            )
        elif actual > expected:
            report.problems.append(
                Problem(
                    "data-after-stop",
                    f"{actual - expected} bytes after the array data, which numpy does not read",
                    data_start + expected,
                )
            )
    return report


def _npy_header(fh: IO[bytes]) -> tuple[dict[str, Any], Any, tuple[int, ...]]:
    head = fh.read(8)
    if len(head) < 8:
        raise FormatError("truncated")
    major = head[6]
    if major == 1:
        raw = fh.read(2)
        size = struct.unpack("<H", raw)[0] if len(raw) == 2 else -1
        encoding = "latin1"
    elif major in (2, 3):
        raw = fh.read(4)
        size = struct.unpack("<I", raw)[0] if len(raw) == 4 else -1
        encoding = "latin1" if major == 2 else "utf8"
    else:
        raise FormatError(f"unsupported format version {major}.{head[7]}")
    if size < 0 or size > MAX_NPY_HEADER:
        raise FormatError("header length missing or over the limit")
    text = fh.read(size)
    if len(text) < size:
        raise FormatError("truncated header")
    try:
        # the same literal-only parser numpy uses: no names, no calls
        header = ast.literal_eval(text.decode(encoding))
    except (
        ValueError,
        TypeError,
        SyntaxError,
        UnicodeDecodeError,
        MemoryError,
        RecursionError,
    ) as exc:
        raise FormatError(f"header is not a Python literal ({type(exc).__name__})") from None
    if (
        not isinstance(header, dict)
        or set(header) != {"descr", "fortran_order", "shape"}
        or not isinstance(header["shape"], tuple)
        or not all(type(d) is int and d >= 0 for d in header["shape"])
        or type(header["fortran_order"]) is not bool
    ):
        raise FormatError("header does not hold exactly descr, fortran_order and shape")
    return header, header["descr"], header["shape"]


def _descr_layout(descr: Any) -> tuple[bool | None, int]:
    """Return (hasobject, itemsize) for a ``.npy`` descr; (None, 0) when it is not understood."""
    import numpy as np

    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError):
        return None, 0
    return bool(dtype.hasobject), int(dtype.itemsize)


# -- zip-based formats ---------------------------------------------------------------------------


def _audit_skv(file: Any, name: str | None, policy: TrustPolicy) -> AuditReport:
    from ..format import open_artifact

    report = AuditReport(name, "skv")
    try:
        with open_artifact(file) as artifact:
            artifact.container.check_all_digests()
            graph = artifact.graph
            graph.check_references()
            for index, node in enumerate(graph.nodes):
                for qualified in graph.reducer(index).globals(node):
                    report.references.append(_named(qualified, f"graph.json node {index}", policy))
    except SkvaultError as exc:
        report.problems.append(Problem("invalid", f"{type(exc).__name__}: {exc}"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # a graph the reader's own checks let through: still a broken file, not a crash
        report.problems.append(Problem("invalid", f"malformed .skv file: {exc!r}"))
    return report


def _audit_skops(file: Any, name: str | None, policy: TrustPolicy) -> AuditReport:
    from ._skops import read_skops

    report = AuditReport(name, "skops")
    try:
        with _opened(file) as fh:
            doc = read_skops(fh)
    except SkvaultError as exc:
        report.problems.append(Problem("invalid", f"{type(exc).__name__}: {exc}"))
        return report
    for ref in doc.names():
        where = f"schema.json {ref.where}"
        if ref.builtin:
            report.references.append(
                AuditedName(
                    ref.module,
                    ref.name,
                    "safe",
                    "built by skvault's skops reader from its own table (never imported by name)",
                    where,
                )
            )
        else:
            report.references.append(_named(ref.full_name, where, policy, ref.module, ref.name))
    return report


def _named(
    qualified: Any,
    where: str,
    policy: TrustPolicy,
    module: str | None = None,
    name: str | None = None,
) -> AuditedName:
    """Classify a name a ``.skv`` or skops graph gives as one ``module.name`` string."""
    if not isinstance(qualified, str):
        return AuditedName(str(qualified), "", "dangerous", "the name is not a string", where)
    if module is None or name is None:
        module, _, name = qualified.rpartition(".")
    if qualified in policy:
        return AuditedName(module, name, "safe", "on the allow-list or trusted", where)
    verdict = classify(module, name, 5, None)
    if verdict.classification == "dangerous":
        return AuditedName(module, name, "dangerous", verdict.reason, where)
    return AuditedName(module, name, "unknown", "not on the allow-list", where)


def _audit_zip(file: Any, name: str | None, policy: TrustPolicy) -> AuditReport:
    """A zip that is neither ``.skv`` nor skops: say so, and scan any pickle it holds."""
    report = AuditReport(name, "zip")
    report.problems.append(
        Problem("format", "a zip file that is neither a .skv nor a skops file", 0)
    )
    with _opened(file) as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            report.problems.append(Problem("invalid", f"unreadable zip file: {exc}", 0))
            return report
        with archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                report.problems.append(
                    Problem("limit", f"{len(infos)} members; only the first {MAX_ZIP_MEMBERS} read")
                )
            for info in infos[:MAX_ZIP_MEMBERS]:
                _audit_member(report, archive, info, policy)
    return report


def _audit_member(
    report: AuditReport, archive: zipfile.ZipFile, info: zipfile.ZipInfo, policy: TrustPolicy
) -> None:
    member = info.filename
    try:
        with archive.open(info) as raw:
            head = raw.read(HEAD_SIZE)
            kind = detect(head)
            if kind != "pickle" and kind not in COMPRESSED:
                return
        with archive.open(info) as raw, open_stream(raw, max_bytes=MAX_DECOMPRESSED) as stream:
            result = scan(stream, zfile=kind == "ZF", origin=0)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        report.problems.append(Problem("invalid", f"member {member!r} is unreadable: {exc}"))
        return
    _add_scan(report, result, policy, prefix=f"member {member!r} ")


class _opened:
    """A seekable binary file for a path or file object; a path is closed on exit."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._own: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if isinstance(self._file, (str, os.PathLike)):
            self._own = open(self._file, "rb")
            return self._own
        fh = self._file
        try:
            seekable = bool(fh.seekable())
        except (AttributeError, OSError, ValueError):
            seekable = False
        return fh if seekable else io.BytesIO(fh.read())

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.close()
