"""A static pickle scanner: every global a pickle or joblib stream names, without running it.

The scanner walks the opcodes of protocols 0-5 itself and keeps a symbolic stack and memo: just
enough to know exactly which ``(module, name)`` every ``GLOBAL``, ``STACK_GLOBAL`` and ``INST``
resolves, where a ``STACK_GLOBAL`` takes its strings from (pushed long before, or fetched from the
memo), and what a joblib array wrapper says about the raw array bytes that follow it. Nothing from
the file is imported, called or unpickled.

Why not :func:`pickletools.genops`: it decodes every argument into a Python object and is about
ten times slower than loading; it also stops at the first joblib array, since joblib writes raw
array bytes in the middle of the pickle stream. This walk is built for speed instead:

* the common opcodes run in one tight loop over a byte buffer, with local variables only;
* a run of fixed-width numbers between ``MARK`` and ``APPENDS``/``SETITEMS`` is skipped by one
  compiled regular expression (which runs in C);
* a batch of strings and numbers between ``MARK`` and ``SETITEMS``/``APPENDS`` (a vocabulary:
  millions of ``SHORT_BINUNICODE MEMOIZE BININT``) is walked by a small loop that pushes nothing,
  since the closing opcode pops every item again, and only records where the memoized strings are;
* every other opcode, and every opcode close to the end of the buffer or of a frame, goes through
  one careful step that checks everything. The fast paths must leave the symbolic state exactly
  as the careful step would; the tests compare both on generated pickles.

Memory stays bounded whatever the file says: strings are kept only up to :data:`STR_CAP` bytes;
the memo is an ``array('q')`` of tagged codes: a memoized string of a seekable file is its offset
(read again if a ``GET`` fetches it), otherwise its bytes in one ``bytearray`` arena (capped);
symbolic tuples and dicts are small and capped; the stack, the memo and the number of distinct
names have hard limits, and going over one is reported as a problem, never ignored.

joblib writes each numpy array as a ``NumpyArrayWrapper`` followed, right after the ``BUILD`` that
sets the wrapper's state, by the raw array bytes (joblib >= 1.2 first writes one byte giving a
padding length, then that many padding bytes). The scanner reads the wrapper's state (shape,
dtype, alignment) symbolically, works out how many bytes follow and skips them (a seek when the
stream allows it); an object-dtype array is a nested pickle, which is scanned too. When the state
cannot be understood exactly, that is a problem and the scan stops: a guessed byte count would
let an attacker hide opcodes from the audit.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import FormatError
from ._policy import canonical

__all__ = [
    "Problem",
    "Reference",
    "ScanResult",
    "scan",
]

#: Longest string whose content is kept (names over 200 characters are malformed anyway).
STR_CAP = 256
#: Bytes kept for memoized strings; later ones are remembered as "a string, content not kept".
ARENA_CAP = 64 << 20
#: Memo entries allowed (each costs 8 bytes); more is a problem and ends the scan.
MEMO_CAP = 20_000_000
#: Stack entries allowed (over all MARK levels), MARK levels allowed, and bytes the strings on
#: the stack may hold.
STACK_CAP = 5_000_000
MARK_CAP = 100_000
STACK_BYTES_CAP = 128 << 20
#: Items a symbolic tuple or dict keeps; bigger ones are opaque.
CONTAINER_CAP = 64
#: Distinct references recorded before the scan gives up.
REFERENCE_CAP = 100_000
#: Problems recorded in full; later ones are counted.
PROBLEM_CAP = 200
#: Python memory blocks the symbolic state may grow by before containers stop being tracked, and
#: before the scan stops.
BLOCKS_SOFT = 1_000_000
BLOCKS_HARD = 4_000_000
_CHUNK = 1 << 20
_MARGIN = 16  # the longest fixed-width opcode the fast loop handles is 9 bytes

_I4 = struct.Struct("<i").unpack_from
_U4 = struct.Struct("<I").unpack_from
_U8 = struct.Struct("<Q").unpack_from


@dataclass(frozen=True)
class Reference:
    """One global a pickle names.

    Attributes
    ----------
    module, name : str
        As written in the file (not canonicalised; the audit classifies them with
        :func:`skvault.legacy._policy.classify`). For a dynamic name, placeholders.
    offset : int
        Byte offset of the opcode that names it, in the (decompressed) stream; the first one when
        the same name appears several times.
    pickle : int
        Index of the pickle section: 0 for the first, then one more for every pickle after a
        STOP and every nested pickle (object arrays in joblib files), in the order met.
    opcode : str
        ``GLOBAL``, ``STACK_GLOBAL`` or ``INST``.
    protocol : int
        The protocol in force when it was read (names are mapped for protocols below 3).
    count : int
        How many times the pickle section names it.
    dynamic : str or None
        Set when a ``STACK_GLOBAL`` takes something other than two known strings: says what.
    """

    module: str
    name: str
    offset: int
    pickle: int
    opcode: str
    protocol: int
    count: int = 1
    dynamic: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something in the stream that makes it unsafe to call clean, with where it is.

    Attributes
    ----------
    kind : str
        A short tag: ``truncated``, ``invalid``, ``data-after-stop``, ``frame``, ``extension``,
        ``persistent-id``, ``buffer``, ``inst-obj``, ``joblib-array``, ``unbalanced``, ``limit``
        (and, from the audit, ``format`` for a file of no known format).
    message : str
    offset : int or None
    pickle : int or None
    """

    kind: str
    message: str
    offset: int | None = None
    pickle: int | None = None


@dataclass
class ScanResult:
    """What :func:`scan` found.

    Attributes
    ----------
    references : list of Reference
    problems : list of Problem
    pickles : int
        Pickle sections seen (top level and nested).
    joblib : bool
        Whether the stream names a joblib array wrapper.
    arrays : int
        joblib arrays whose bytes were skipped (plus nested object-array pickles).
    array_bytes : int
        Bytes of raw array data skipped.
    protocols : set of int
    """

    references: list[Reference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    pickles: int = 0
    joblib: bool = False
    arrays: int = 0
    array_bytes: int = 0
    protocols: set[int] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------
# Symbolic values. Anything the scanner does not need to know is OPAQUE; text strings are bytes
# (UTF-8 as in the file), small ints are ints, None/True/False themselves.


class _Marker:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


OPAQUE = _Marker("value")
LONG_STR = _Marker(f"string over {STR_CAP} bytes")
LOST_STR = _Marker("string not kept (memory limit)")

# kinds of globals the scanner must recognise (after canonicalisation)
_K_OTHER, _K_WRAPPER, _K_ND, _K_ZND, _K_DTYPE, _K_RECON, _K_NEWOBJ, _K_OBJECT = range(8)
_KINDS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _K_WRAPPER,
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"): _K_ND,
    ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"): _K_ZND,
    # joblib.numpy_pickle imports both legacy wrappers, so these names resolve as well
    ("joblib.numpy_pickle", "NDArrayWrapper"): _K_ND,
    ("joblib.numpy_pickle", "ZNDArrayWrapper"): _K_ZND,
    ("numpy", "dtype"): _K_DTYPE,
    ("copyreg", "_reconstructor"): _K_RECON,
    ("copyreg", "__newobj__"): _K_NEWOBJ,
    ("builtins", "object"): _K_OBJECT,
}
_WRAPPERS = (_K_WRAPPER, _K_ND, _K_ZND)


class _Global:
    __slots__ = ("kind", "module", "name", "wrapper")

    def __init__(self, module: str, name: str, kind: int) -> None:
        self.module = module
        self.name = name
        self.kind = kind
        self.wrapper = kind in _WRAPPERS

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.name}>"


class _Instance:
    """An instance of a class the scanner follows: joblib's array wrappers and numpy dtypes."""

    __slots__ = ("attrs", "cls", "init", "state", "unknown", "wrapper")

    def __init__(self, cls: _Global, init: Any) -> None:
        self.cls = cls
        self.wrapper = cls.wrapper
        self.init = init  # constructor arguments (a tuple), None when built without __init__
        self.attrs: dict[bytes, Any] = {}  # __dict__ after BUILDs (wrappers)
        self.state: Any = None  # the last BUILD state (dtypes)
        self.unknown = False

    def __repr__(self) -> str:
        return f"<instance of {self.cls.module}.{self.cls.name}>"


class _Dict:
    """A small dict whose keys are text; ``opaque`` once it is too big or has other keys."""

    __slots__ = ("items", "opaque")

    def __init__(self) -> None:
        self.items: dict[bytes, Any] = {}
        self.opaque = False

    def update(self, flat: list[Any]) -> None:
        if self.opaque:
            return
        if len(self.items) + len(flat) // 2 > CONTAINER_CAP:
            self.opaque = True
            self.items = {}
            return
        items = self.items
        for i in range(0, len(flat) - 1, 2):
            key = flat[i]
            if type(key) is not bytes:
                self.opaque = True
                self.items = {}
                return
            items[key] = flat[i + 1]

    def __repr__(self) -> str:
        return "<dict>" if self.opaque else f"<dict {self.items!r}>"


def _tuple_value(items: list[Any], track: bool) -> Any:
    """The symbolic value of a tuple: kept when small and holding something the scanner uses."""
    if not track or len(items) > CONTAINER_CAP or all(v is OPAQUE for v in items):
        return OPAQUE if items else ()
    return tuple(items)


# memo codes (array('q')): -1 absent; 0 OPAQUE; code & 3 == 1: int (code >> 2);
# code & 3 == 2: string in the arena, (code >> 2) == offset << 10 | length;
# code & 3 == 3: memo_objs[code >> 2];
# code <= -2: the string pushed by the binary string opcode at offset -2 - code, read again from
# the file when needed (seekable files only: copying every memoized string into the arena costs
# more than the rest of the walk of a vocabulary)
_ABSENT = -1
_FIXED_OBJS = (LONG_STR, LOST_STR, None, True, False, ())
_LOST_CODE = (1 << 2) | 3
_INT_LIMIT = 1 << 60


class _Stop(Exception):
    """Scanning cannot go on (the problem is already recorded)."""


class _Truncated(Exception):
    """The stream ended in the middle of something."""


class _Invalid(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Pickle:
    """The state of one pickle section: stack, marks, memo, frame."""

    def __init__(
        self, index: int, *, arrays: bool, zfile: bool, start: int, nested: bool = False
    ) -> None:
        self.index = index
        self.nested = nested
        self.arrays = arrays  # joblib semantics: raw array bytes follow a wrapper's BUILD
        self.zfile = zfile  # joblib's legacy zfile: only the legacy wrappers are special
        self.start = start
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo = array("q")
        self.memo_sparse: dict[int, int] = {}
        self.memo_objs: list[Any] = list(_FIXED_OBJS)
        self.memo_count = 0
        self.dense = True  # memo keys are exactly 0..len(memo)-1
        self.arena = bytearray()
        self.strings: dict[int, Any] = {}  # memoized strings fetched lately, by memo code
        self.proto = 0
        self.frame_end = -1  # absolute offset where the current frame ends, -1 outside frames
        self.framed = False  # a FRAME was seen: opcodes outside frames are then suspicious
        self.unframed_start = -1  # where the current run of opcodes outside frames started
        self.unframed_flagged = False
        self.frame_trick = False
        self.pending: list[_Instance] = []  # arrays joblib reads at the end of the current frame
        self.track = True  # symbolic tuples and dicts (off when over the memory budget)
        self.wrapper_classes = 0  # wrapper classes on the stack not yet used to build one
        self.wrapper_objects = 0  # wrapper instances on the stack not yet built


# a run of fixed-width numbers (no memo, no globals) inside MARK ... APPENDS/SETITEMS: the
# symbolic effect of the whole run is known without walking it (see _run)
_NUMBER = rb"(?:K.|M..|J....|G........|N|\x88|\x89)"
_NUMBER_FIRST = frozenset(b"KMJGN\x88\x89")
_TEXT_FIRST = frozenset(b"\x8cX")


def _pairs_batch(
    buf: bytes, p: int, fend: int, nbase: int, index: int
) -> tuple[int, list[int], int, int] | None:
    """:func:`_text_batch` for the commonest case, MARK (string key, integer value)* SETITEMS.

    One pass per pair instead of one per item; None for anything else.
    """
    codes: list[int] = []
    add = codes.append
    count = 0
    u4 = _U4
    try:
        while True:
            if p >= fend:
                if p != fend or buf[p] != 0x95:
                    return None
                fend = p + 9 + _U8(buf, p + 1)[0]
                p += 9
                continue
            op = buf[p]
            if op == 0x8C:
                e = p + 2 + buf[p + 1]
            elif op == 0x75:
                break
            elif op == 0x58:
                e = p + 5 + u4(buf, p + 1)[0]
            else:
                return None
            m = buf[e]
            if m == 0x94:
                add(nbase - p)
                index += 1
                e += 1
            elif m == 0x71:
                if buf[e + 1] != index:
                    return None
                add(nbase - p)
                index += 1
                e += 2
            elif m == 0x72:
                if u4(buf, e + 1)[0] != index:
                    return None
                add(nbase - p)
                index += 1
                e += 5
            if e >= fend:
                if e != fend or buf[e] != 0x95:
                    return None
                fend = e + 9 + _U8(buf, e + 1)[0]
                e += 9
            v = buf[e]
            if v == 0x4A:
                p = e + 5
            elif v == 0x4D:
                p = e + 3
            elif v == 0x4B:
                p = e + 2
            else:
                return None
            count += 2
    except (IndexError, struct.error):
        return None
    if p + 1 > fend:
        return None
    return p + 1, codes, count, fend


def _text_batch(
    buf: bytes, p: int, fend: int, nbase: int, index: int
) -> tuple[int, list[int], int, int] | None:
    """Walk the items of MARK ... SETITEMS/APPENDS when they are strings and numbers only.

    The items are popped again by the closing opcode, so their only lasting effect is on the memo:
    return (offset after the closing opcode, the lazy memo codes of the memoized strings in
    order, the item count, where the frame now ends), or None when the batch holds anything else
    (the caller then walks it opcode by opcode). ``fend`` is where the current frame ends (past
    the buffer when there is no frame): an opcode may not cross it, and only a FRAME may start
    there. ``index`` is the next memo index, which BINPUT arguments must follow.
    This is what a vocabulary (``CountVectorizer.vocabulary_``) is made of: millions of
    ``SHORT_BINUNICODE MEMOIZE BININT`` triples.
    """
    codes: list[int] = []
    add = codes.append
    count = 0
    u4 = _U4
    try:
        while True:
            if p >= fend:
                if p != fend or buf[p] != 0x95:
                    return None
                fend = p + 9 + _U8(buf, p + 1)[0]
                p += 9
                continue
            op = buf[p]
            if op == 0x8C:
                e = p + 2 + buf[p + 1]
            elif op == 0x4B:
                p += 2
                count += 1
                continue
            elif op == 0x4D:
                p += 3
                count += 1
                continue
            elif op == 0x4A:
                p += 5
                count += 1
                continue
            elif op == 0x58:
                e = p + 5 + u4(buf, p + 1)[0]
            elif op == 0x75:
                if count & 1:
                    return None
                break
            elif op == 0x65:
                break
            elif op == 0x47:
                p += 9
                count += 1
                continue
            elif op == 0x4E or op == 0x88 or op == 0x89:
                p += 1
                count += 1
                continue
            else:
                return None
            count += 1
            m = buf[e]
            if m == 0x94:
                add(nbase - p)
                index += 1
                p = e + 1
            elif m == 0x71:
                if buf[e + 1] != index:
                    return None
                add(nbase - p)
                index += 1
                p = e + 2
            elif m == 0x72:
                if u4(buf, e + 1)[0] != index:
                    return None
                add(nbase - p)
                index += 1
                p = e + 5
            else:
                p = e
    except (IndexError, struct.error):
        return None
    if p + 1 > fend:
        return None
    return p + 1, codes, count, fend


_LIST_BATCH = re.compile(rb"\(" + _NUMBER + rb"*+[el\x90\x91]", re.DOTALL).match
_DICT_BATCH = re.compile(rb"\((?:" + _NUMBER + _NUMBER + rb")*+u", re.DOTALL).match

_OPNAMES = {
    0x28: "MARK",
    0x2E: "STOP",
    0x30: "POP",
    0x31: "POP_MARK",
    0x32: "DUP",
    0x46: "FLOAT",
    0x49: "INT",
    0x4A: "BININT",
    0x4B: "BININT1",
    0x4C: "LONG",
    0x4D: "BININT2",
    0x4E: "NONE",
    0x50: "PERSID",
    0x51: "BINPERSID",
    0x52: "REDUCE",
    0x53: "STRING",
    0x54: "BINSTRING",
    0x55: "SHORT_BINSTRING",
    0x56: "UNICODE",
    0x58: "BINUNICODE",
    0x61: "APPEND",
    0x62: "BUILD",
    0x63: "GLOBAL",
    0x64: "DICT",
    0x7D: "EMPTY_DICT",
    0x65: "APPENDS",
    0x67: "GET",
    0x68: "BINGET",
    0x69: "INST",
    0x6A: "LONG_BINGET",
    0x6C: "LIST",
    0x5D: "EMPTY_LIST",
    0x6F: "OBJ",
    0x70: "PUT",
    0x71: "BINPUT",
    0x72: "LONG_BINPUT",
    0x73: "SETITEM",
    0x74: "TUPLE",
    0x29: "EMPTY_TUPLE",
    0x75: "SETITEMS",
    0x47: "BINFLOAT",
    0x80: "PROTO",
    0x81: "NEWOBJ",
    0x82: "EXT1",
    0x83: "EXT2",
    0x84: "EXT4",
    0x85: "TUPLE1",
    0x86: "TUPLE2",
    0x87: "TUPLE3",
    0x88: "NEWTRUE",
    0x89: "NEWFALSE",
    0x8A: "LONG1",
    0x8B: "LONG4",
    0x42: "BINBYTES",
    0x43: "SHORT_BINBYTES",
    0x8C: "SHORT_BINUNICODE",
    0x8D: "BINUNICODE8",
    0x8E: "BINBYTES8",
    0x8F: "EMPTY_SET",
    0x90: "ADDITEMS",
    0x91: "FROZENSET",
    0x92: "NEWOBJ_EX",
    0x93: "STACK_GLOBAL",
    0x94: "MEMOIZE",
    0x95: "FRAME",
    0x96: "BYTEARRAY8",
    0x97: "NEXT_BUFFER",
    0x98: "READONLY_BUFFER",
}


def scan(
    stream: IO[bytes],
    *,
    joblib_arrays: bool = True,
    zfile: bool = False,
    origin: int | None = None,
    _fast: bool = True,
) -> ScanResult:
    """Scan every pickle in a binary stream, statically.

    Parameters
    ----------
    stream : binary file object
        Read from its current position to its end. Seeks are used to skip array data when the
        stream is seekable.
    joblib_arrays : bool, default=True
        Follow joblib's reading rules: raw array bytes follow the ``BUILD`` of a
        ``NumpyArrayWrapper`` (joblib's ``NumpyUnpickler``). Harmless for plain pickles, which
        do not name the wrapper.
    zfile : bool, default=False
        The stream is the content of joblib's legacy zfile format (``ZipNumpyUnpickler``): no raw
        array bytes in the stream, only references to other files.
    origin : int, optional
        Offset of the stream's current position in the file, added to every reported offset.
        Default: ``stream.tell()`` when the stream is seekable, else 0.

    Returns
    -------
    ScanResult
    """
    scanner = _Scanner(stream, arrays=joblib_arrays and not zfile, zfile=zfile, origin=origin)
    scanner.fast = _fast
    return scanner.run()


class _Scanner:
    def __init__(self, stream: IO[bytes], *, arrays: bool, zfile: bool, origin: int | None):
        self.stream = stream
        seekable = False
        try:
            seekable = bool(stream.seekable())
        except (AttributeError, OSError, ValueError):
            pass
        start = 0
        size = None
        if seekable:
            try:
                start = stream.tell()
                size = stream.seek(0, 2)
                stream.seek(start)
            except (OSError, ValueError):
                seekable = False
        self.seekable = seekable
        self.size = size  # absolute stream size when known
        self.origin = (start if seekable else 0) if origin is None else origin
        self.start = start  # stream position of offset 0 of our coordinates
        self.buf = b""
        self.pos = 0
        self.base = 0  # our offset of buf[0]
        self.eof = False
        self.arrays = arrays
        self.zfile = zfile
        self.fast = True
        self.result = ScanResult()
        self._refs: dict[tuple[Any, ...], list[Any]] = {}
        self._problem_count = 0
        self._blocks0 = sys.getallocatedblocks()

    # -- reporting -----------------------------------------------------------------------------

    def problem(self, kind: str, message: str, offset: int | None, p: _Pickle | None) -> None:
        self._problem_count += 1
        if self._problem_count <= PROBLEM_CAP:
            at = None if offset is None else self.origin + offset
            self.result.problems.append(Problem(kind, message, at, None if p is None else p.index))

    def reference(
        self,
        p: _Pickle,
        module: str,
        name: str,
        offset: int,
        opcode: str,
        dynamic: str | None = None,
    ) -> None:
        key = (p.index, module, name, dynamic, p.proto)
        entry = self._refs.get(key)
        if entry is not None:
            entry[1] += 1
            return
        if len(self._refs) >= REFERENCE_CAP:
            self.problem("limit", f"more than {REFERENCE_CAP} distinct globals", offset, p)
            raise _Stop
        self._refs[key] = [offset, 1, opcode]

    # -- top level -----------------------------------------------------------------------------

    def run(self) -> ScanResult:
        result = self.result
        first = True
        try:
            while True:
                if not self._fill(1):
                    if first:
                        self.problem("truncated", "the stream is empty", 0, None)
                    break
                offset = self.base + self.pos
                if not first:
                    self.problem(
                        "data-after-stop",
                        "data after the STOP opcode; scanned as a further pickle (a second "
                        "pickle.load on the same file reads it)",
                        offset,
                        None,
                    )
                first = False
                p = _Pickle(result.pickles, arrays=self.arrays, zfile=self.zfile, start=offset)
                result.pickles += 1
                if not self._run(p):
                    break
        except _Stop:
            pass
        except FormatError as exc:  # corrupt compressed data, or over the decompression cap
            self.problem(
                "truncated", f"the stream cannot be read further: {exc}", self.base + self.pos, None
            )
        for key, (offset, count, opcode) in self._refs.items():
            index, module, name, dynamic, proto = key
            result.references.append(
                Reference(module, name, self.origin + offset, index, opcode, proto, count, dynamic)
            )
        result.references.sort(key=lambda r: (r.pickle, r.offset))
        if self._problem_count > PROBLEM_CAP:
            result.problems.append(
                Problem("limit", f"{self._problem_count - PROBLEM_CAP} more problems not listed")
            )
        return result

    # -- buffer --------------------------------------------------------------------------------

    def _fill(self, n: int) -> int:
        """Make ``n`` bytes available from ``pos`` if the stream has them; return what is."""
        avail = len(self.buf) - self.pos
        if avail >= n or self.eof:
            return avail
        parts = [self.buf[self.pos :]] if avail else []
        while avail < n:
            data = self.stream.read(max(_CHUNK, n - avail))
            if not data:
                self.eof = True
                break
            parts.append(data)
            avail += len(data)
        self.base += self.pos
        self.buf = b"".join(parts)
        self.pos = 0
        return avail

    def _read(self, n: int) -> bytes:
        if self._fill(n) < n:
            raise _Truncated
        pos = self.pos
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def _skip(self, n: int) -> None:
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return
        n -= avail
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        if self.seekable and self.size is not None:
            here = self.start + self.base
            if here + n > self.size:
                self.stream.seek(self.size)
                self.base = self.size - self.start
                self.eof = True
                raise _Truncated
            self.stream.seek(here + n)
            self.base += n
            return
        while n:
            data = self.stream.read(min(n, 16 << 20))
            if not data:
                self.eof = True
                raise _Truncated
            n -= len(data)
            self.base += len(data)

    def _line(self, limit: int = STR_CAP) -> bytes | None:
        """Read through the next newline; the line without it, or None when over ``limit``."""
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos : end]
                self.pos = end + 1
                return line if len(line) <= limit else None
            avail = len(self.buf) - self.pos
            if avail > limit:
                break
            if self.eof or self._fill(avail + 1) <= avail:
                raise _Truncated
        # a long line: skip it without keeping it
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                self.pos = end + 1
                return None
            self.pos = len(self.buf)
            if not self._fill(1):
                raise _Truncated

    # -- the walk ------------------------------------------------------------------------------

    def _run(self, p: _Pickle) -> bool:
        """Walk one pickle section to its STOP: True there, False when the scan must end."""
        OP = OPAQUE
        LS = LONG_STR
        cap = STR_CAP
        acap = ARENA_CAP
        i4 = _I4
        u4 = _U4
        list_batch = _LIST_BATCH
        dict_batch = _DICT_BATCH
        memo = p.memo
        memo_append = memo.append
        arena = p.arena
        metastack = p.metastack
        fast = self.fast
        lazy = self.seekable
        strings_get = p.strings.get
        number_first = _NUMBER_FIRST
        text_first = _TEXT_FIRST
        memo_objs = p.memo_objs
        memo_code = self._memo_code
        make_tuple = _tuple_value
        text_batch = _text_batch
        pairs_batch = _pairs_batch
        while True:
            buf = self.buf
            pos = self.pos
            nbase = -2 - self.base
            stack = p.stack
            append = stack.append
            dense = p.dense
            track = p.track
            limit = len(buf)
            if p.frame_end >= 0:
                if p.frame_end - self.base < limit:
                    limit = p.frame_end - self.base
                safe = limit - _MARGIN if fast else -1
            elif p.framed and not p.unframed_flagged:
                safe = -1  # between frames: the careful step checks every opcode
            else:
                safe = limit - _MARGIN if fast else -1
            try:
                while pos < safe:
                    op = buf[pos]
                    if op == 0x8C:  # SHORT_BINUNICODE, often followed by MEMOIZE or BINPUT
                        end = pos + 2 + buf[pos + 1]
                        if end > limit:
                            break
                        s = buf[pos + 2 : end]
                        append(s)
                        if dense and end + 1 < limit:
                            nxt = buf[end]
                            if nxt == 0x94 or (nxt == 0x71 and buf[end + 1] == len(memo)):
                                if lazy:
                                    memo_append(nbase - pos)
                                else:
                                    off = len(arena)
                                    if off < acap:
                                        arena += s
                                        memo_append(((off << 10 | len(s)) << 2) | 2)
                                    else:
                                        memo_append(_LOST_CODE)
                                end += 1 if nxt == 0x94 else 2
                        pos = end
                    elif op == 0x94:  # MEMOIZE
                        if not dense:
                            break
                        v = stack[-1]
                        if v is OP:
                            memo_append(0)
                        elif type(v) is bytes:
                            off = len(arena)
                            if off < acap:
                                arena += v
                                memo_append(((off << 10 | len(v)) << 2) | 2)
                            else:
                                memo_append(_LOST_CODE)
                        else:
                            memo_append(memo_code(p, v))
                        pos += 1
                    elif op == 0x4B:  # BININT1
                        append(buf[pos + 1])
                        pos += 2
                    elif op == 0x4D:  # BININT2
                        append(buf[pos + 1] | buf[pos + 2] << 8)
                        pos += 3
                    elif op == 0x4A:  # BININT
                        append(i4(buf, pos + 1)[0])
                        pos += 5
                    elif op == 0x58:  # BINUNICODE, often followed by BINPUT or LONG_BINPUT
                        n = u4(buf, pos + 1)[0]
                        end = pos + 5 + n
                        if end > limit:
                            break
                        if n > cap:
                            append(LS)
                        else:
                            s = buf[pos + 5 : end]
                            append(s)
                            if lazy and dense and end + 4 < limit:
                                nxt = buf[end]
                                if nxt == 0x71:
                                    if buf[end + 1] == len(memo):
                                        memo_append(nbase - pos)
                                        end += 2
                                elif nxt == 0x72 and u4(buf, end + 1)[0] == len(memo):
                                    memo_append(nbase - pos)
                                    end += 5
                                elif nxt == 0x94:
                                    memo_append(nbase - pos)
                                    end += 1
                        pos = end
                    elif op == 0x71:  # BINPUT
                        if not dense:
                            break
                        v = stack[-1]
                        i = buf[pos + 1]
                        if i != len(memo):
                            break
                        if v is OP:
                            memo_append(0)
                        elif type(v) is bytes:
                            off = len(arena)
                            if off < acap:
                                arena += v
                                memo_append(((off << 10 | len(v)) << 2) | 2)
                            else:
                                memo_append(_LOST_CODE)
                        else:
                            memo_append(memo_code(p, v))
                        pos += 2
                    elif op == 0x68:  # BINGET
                        code = memo[buf[pos + 1]]
                        if code == 0:
                            append(OP)
                        elif code < -1 or code & 3 == 2:
                            # strings: shared through a cache, as the unpickler shares objects
                            v = strings_get(code)
                            if v is None:
                                break
                            append(v)
                        elif code < 0:
                            break  # never set: the careful step says so
                        elif code & 3 == 3:
                            v = memo_objs[code >> 2]
                            t = type(v)
                            if (t is _Global or t is _Instance) and v.wrapper:
                                break  # counted by the careful step
                            append(v)
                        else:
                            append(code >> 2)
                        pos += 2
                    elif op == 0x47:  # BINFLOAT
                        append(OP)
                        pos += 9
                    elif op == 0x28:  # MARK
                        if buf[pos + 1] in number_first:
                            m = list_batch(buf, pos, limit)
                            if m is not None:
                                end = m.end()
                                last = buf[end - 1]
                                if last == 0x65 or last == 0x90:  # APPENDS / ADDITEMS
                                    if not stack:
                                        break
                                else:  # LIST / FROZENSET
                                    append(OP)
                                pos = end
                                continue
                            m = dict_batch(buf, pos, limit)
                            if m is not None:
                                if not stack:
                                    break
                                end = m.end()
                                if end - pos > 2:
                                    t = stack[-1]
                                    if type(t) is _Dict and not t.opaque:
                                        t.opaque = True
                                        t.items = {}
                                pos = end
                                continue
                        elif lazy and dense and stack and (buf[pos + 1] in text_first):
                            # a batch of strings (memoized or not) and numbers: a vocabulary
                            fend = p.frame_end - self.base if p.frame_end >= 0 else len(buf) + 1
                            walked = pairs_batch(buf, pos + 1, fend, nbase, len(memo))
                            if walked is None:
                                walked = text_batch(buf, pos + 1, fend, nbase, len(memo))
                            if walked is not None:
                                end, codes, count, fend = walked
                                if buf[end - 1] == 0x75:  # SETITEMS
                                    t = stack[-1]
                                    if count and type(t) is _Dict and not t.opaque:
                                        if len(t.items) + count // 2 <= CONTAINER_CAP:
                                            walked = None  # the dict is followed: walk it
                                        else:
                                            t.opaque = True
                                            t.items = {}
                                if walked is not None:
                                    if codes:
                                        memo.extend(codes)
                                    if p.frame_end >= 0 and fend != p.frame_end - self.base:
                                        # the batch went on in the next frames
                                        p.frame_end = fend + self.base
                                        limit = min(fend, len(buf))
                                        safe = limit - _MARGIN
                                    pos = end
                                    continue
                        if len(metastack) >= MARK_CAP:
                            break
                        metastack.append(stack)
                        stack = []
                        append = stack.append
                        p.stack = stack
                        pos += 1
                    elif op == 0x65:  # APPENDS
                        target = metastack[-1]
                        if not target:
                            break
                        metastack.pop()
                        stack = target
                        append = stack.append
                        p.stack = stack
                        pos += 1
                    elif op == 0x75:  # SETITEMS
                        target = metastack[-1]
                        if not target or len(stack) & 1:
                            break
                        t = target[-1]
                        if type(t) is _Dict and stack:
                            t.update(stack)
                        metastack.pop()
                        stack = target
                        append = stack.append
                        p.stack = stack
                        pos += 1
                    elif op == 0x4E:  # NONE
                        append(None)
                        pos += 1
                    elif op == 0x88:  # NEWTRUE
                        append(True)
                        pos += 1
                    elif op == 0x89:  # NEWFALSE
                        append(False)
                        pos += 1
                    elif op == 0x5D:  # EMPTY_LIST
                        append(OP)
                        pos += 1
                    elif op == 0x29:  # EMPTY_TUPLE
                        append(())
                        pos += 1
                    elif op == 0x7D:  # EMPTY_DICT
                        append(_Dict() if track else OP)
                        pos += 1
                    elif op == 0x61:  # APPEND
                        if len(stack) < 2:
                            break
                        del stack[-1]
                        pos += 1
                    elif op == 0x73:  # SETITEM
                        if len(stack) < 3:
                            break
                        t = stack[-3]
                        if type(t) is _Dict:
                            t.update(stack[-2:])
                        del stack[-2:]
                        pos += 1
                    elif op == 0x85:  # TUPLE1
                        v = stack[-1]
                        if v is not OP:
                            stack[-1] = (v,) if track else OP
                        pos += 1
                    elif op == 0x86:  # TUPLE2
                        a = stack[-2]
                        v = stack[-1]
                        del stack[-1]
                        stack[-1] = OP if (a is OP and v is OP) or not track else (a, v)
                        pos += 1
                    elif op == 0x87:  # TUPLE3
                        a = stack[-3]
                        b = stack[-2]
                        v = stack[-1]
                        del stack[-2:]
                        if (a is OP and b is OP and v is OP) or not track:
                            stack[-1] = OP
                        else:
                            stack[-1] = (a, b, v)
                        pos += 1
                    elif op == 0x43:  # SHORT_BINBYTES
                        end = pos + 2 + buf[pos + 1]
                        if end > limit:
                            break
                        append(OP)
                        pos = end
                    elif op == 0x42:  # BINBYTES
                        end = pos + 5 + u4(buf, pos + 1)[0]
                        if end > limit:
                            break
                        append(OP)
                        pos = end
                    elif op == 0x55:  # SHORT_BINSTRING
                        end = pos + 2 + buf[pos + 1]
                        if end > limit:
                            break
                        append(buf[pos + 2 : end])
                        pos = end
                    elif op == 0x6A:  # LONG_BINGET
                        code = memo[u4(buf, pos + 1)[0]]
                        if code == 0:
                            append(OP)
                        elif code < -1 or code & 3 == 2:
                            v = strings_get(code)
                            if v is None:
                                break
                            append(v)
                        elif code < 0:
                            break  # never set: the careful step says so
                        elif code & 3 == 3:
                            v = memo_objs[code >> 2]
                            t = type(v)
                            if (t is _Global or t is _Instance) and v.wrapper:
                                break
                            append(v)
                        else:
                            append(code >> 2)
                        pos += 5
                    elif op == 0x72:  # LONG_BINPUT
                        if not dense:
                            break
                        v = stack[-1]
                        if u4(buf, pos + 1)[0] != len(memo):
                            break
                        if v is OP:
                            memo_append(0)
                        elif type(v) is bytes:
                            off = len(arena)
                            if off < acap:
                                arena += v
                                memo_append(((off << 10 | len(v)) << 2) | 2)
                            else:
                                memo_append(_LOST_CODE)
                        else:
                            memo_append(memo_code(p, v))
                        pos += 5
                    elif op == 0x30:  # POP
                        if not stack:
                            break
                        del stack[-1]
                        pos += 1
                    elif op == 0x52:  # REDUCE of a callable the scanner does not follow
                        f = stack[-2]
                        if type(f) is _Global and f.kind:
                            break
                        del stack[-1]
                        stack[-1] = OP
                        pos += 1
                    elif op == 0x62:  # BUILD of an object the scanner does not follow
                        if type(stack[-2]) is _Instance:
                            break
                        del stack[-1]
                        pos += 1
                    elif op == 0x74:  # TUPLE
                        target = metastack[-1]
                        metastack.pop()
                        v = make_tuple(stack, track)
                        stack = target
                        append = stack.append
                        p.stack = stack
                        append(v)
                        pos += 1
                    elif op == 0x81:  # NEWOBJ of a class the scanner does not follow
                        f = stack[-2]
                        if type(f) is _Global and f.kind:
                            break
                        del stack[-1]
                        stack[-1] = OP
                        pos += 1
                    else:
                        break
            except IndexError:
                # an empty stack or an unknown memo index: the careful step says which
                pass
            self.pos = pos
            p.stack = stack
            result = self._careful(p)
            if result is not None:
                return result

    # -- the careful step: one opcode, every check -----------------------------------------------

    def _careful(self, p: _Pickle) -> bool | None:
        """Execute the opcode at ``pos``; None to go on, True at STOP, False to end the scan."""
        if len(self.buf) - self.pos < 4096 and not self.eof:
            self._fill(_CHUNK)
            self._check_limits(p)
        offset = self.base + self.pos
        if p.frame_end >= 0 and offset >= p.frame_end:
            # an opcode starting exactly where the frame ends: the frame is over
            p.frame_end = -1
            if p.pending:
                return self._pending_arrays(p)
        unframed = p.frame_end < 0 and p.framed and not p.unframed_flagged
        op = -1
        try:
            if not self._fill(1):
                raise _Truncated
            op = self.buf[self.pos]
            self.pos += 1
            handler = _HANDLERS.get(op)
            if handler is None:
                raise _Invalid("invalid", f"invalid opcode byte 0x{op:02x}")
            result = handler(self, p, offset)
            if p.frame_end >= 0 and self.base + self.pos > p.frame_end and op != 0x95:
                self.problem(
                    "frame",
                    f"opcode {_OPNAMES[op]} at offset {self.origin + offset} runs past the end "
                    f"of its frame (declared to end at offset {self.origin + p.frame_end})",
                    offset,
                    p,
                )
                p.frame_end = -1
            if unframed and op != 0x95:
                self._unframed(p, op, offset)
            return result
        except _Truncated:
            where = f"in the middle of {_OPNAMES[op]}" if op in _OPNAMES else "before a STOP"
            message = f"the stream ends {where} (truncated)"
            if p.frame_end >= 0:
                message += (
                    f"; the current frame was declared to end at offset {self.origin + p.frame_end}"
                )
            self.problem("truncated", message, offset, p)
            return False
        except _Invalid as exc:
            self.problem(exc.kind, exc.message, offset, p)
            return False

    def _unframed(self, p: _Pickle, op: int, offset: int) -> None:
        """Check an opcode run outside frames in a framed pickle (protocol 4 and later)."""
        # pickle's framer writes the data it commits with a FRAME header unless there are fewer
        # than 4 bytes, and writes bytes and strings of 64 KiB and more outside frames: anything
        # else outside a frame is a frame length that does not match the data
        end = self.base + self.pos
        header = _LARGE.get(op)
        if header is not None and end - offset - header >= 65536:
            # the bytes committed before it (under 4) are written without a frame too
            if p.unframed_start < 0 or offset - p.unframed_start < 4:
                p.unframed_start = -1
                return
            end = offset
        elif p.unframed_start < 0:
            p.unframed_start = offset
        if end - p.unframed_start >= 4:
            self.problem(
                "frame",
                f"opcodes outside any frame from offset {self.origin + p.unframed_start} (a "
                "frame length that does not match where the next frame starts)",
                p.unframed_start,
                p,
            )
            p.unframed_flagged = True

    def _check_limits(self, p: _Pickle) -> None:
        depth = len(p.metastack)
        if depth > MARK_CAP:
            self.problem("limit", f"more than {MARK_CAP} nested MARKs", None, p)
            raise _Stop
        size = len(p.stack) + sum(map(len, p.metastack))
        if size > STACK_CAP:
            self.problem("limit", f"the pickle stack grows over {STACK_CAP} entries", None, p)
            raise _Stop
        if size > 100_000:
            held = sum(len(v) for seg in (p.stack, *p.metastack) for v in seg if type(v) is bytes)
            if held > STACK_BYTES_CAP:
                self.problem("limit", "the strings on the pickle stack grow too large", None, p)
                raise _Stop
        if len(p.memo) + len(p.memo_sparse) > MEMO_CAP:
            self.problem("limit", f"the memo grows over {MEMO_CAP} entries", None, p)
            raise _Stop
        blocks = sys.getallocatedblocks() - self._blocks0
        if blocks > BLOCKS_SOFT:
            p.track = False
        if blocks > BLOCKS_HARD:
            self.problem("limit", "the symbolic state of the pickle is too large", None, p)
            raise _Stop

    # -- stack helpers -------------------------------------------------------------------------

    @staticmethod
    def _pop(p: _Pickle, n: int = 1) -> list[Any]:
        stack = p.stack
        if len(stack) < n:
            raise _Invalid("invalid", "stack underflow")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    @staticmethod
    def _pop_mark(p: _Pickle) -> list[Any]:
        if not p.metastack:
            raise _Invalid("invalid", "no MARK to pop (missing MARK)")
        items = p.stack
        p.stack = p.metastack.pop()
        return items

    @staticmethod
    def _top(p: _Pickle) -> Any:
        if not p.stack:
            raise _Invalid("invalid", "stack underflow")
        return p.stack[-1]

    def _push_text(self, p: _Pickle, n: int) -> None:
        if n <= STR_CAP:
            p.stack.append(self._read(n))
        else:
            self._skip(n)
            p.stack.append(LONG_STR)

    def _tuple(self, p: _Pickle, items: list[Any]) -> Any:
        return _tuple_value(items, p.track)

    def _pushed(self, p: _Pickle, v: Any) -> Any:
        """Account for a wrapper class or instance appearing on the stack (GET, DUP)."""
        if p.arrays:
            if type(v) is _Global and v.kind in _WRAPPERS:
                p.wrapper_classes += 1
            elif type(v) is _Instance and v.cls.kind in _WRAPPERS:
                p.wrapper_objects += 1
        return v

    # -- memo ----------------------------------------------------------------------------------

    def _memo_code(self, p: _Pickle, v: Any) -> int:
        if v is OPAQUE:
            return 0
        t = type(v)
        if t is bytes:
            off = len(p.arena)
            if off >= ARENA_CAP:
                return _LOST_CODE
            p.arena += v
            return ((off << 10 | len(v)) << 2) | 2
        if t is int and -_INT_LIMIT < v < _INT_LIMIT:
            return (v << 2) | 1
        for k, fixed in enumerate(_FIXED_OBJS):
            if v is fixed:
                return (k << 2) | 3
        p.memo_objs.append(v)
        return ((len(p.memo_objs) - 1) << 2) | 3

    def _memo_value(self, p: _Pickle, code: int) -> Any:
        if code == 0:
            return OPAQUE
        if code < -1:
            return self._string_at(-2 - code)
        tag = code & 3
        if tag == 2:
            code >>= 2
            off = code >> 10
            return bytes(p.arena[off : off + (code & 1023)])
        if tag == 1:
            return code >> 2
        return p.memo_objs[code >> 2]

    def _string_at(self, offset: int) -> bytes | _Marker:
        """The string pushed by the binary string opcode at ``offset`` (read again)."""
        head = self._peek_at(offset, 9)
        op = head[0]
        if op in (0x8C, 0x55):
            n, skip = head[1], 2
        elif op == 0x58:
            n, skip = _U4(head, 1)[0], 5
        else:  # pragma: no cover - only the opcodes above are memoized lazily
            raise AssertionError(f"no lazy string at offset {offset}")
        if n > STR_CAP:
            return LONG_STR
        return self._peek_at(offset + skip, n)

    def _peek_at(self, offset: int, n: int) -> bytes:
        """Bytes at ``offset`` of a seekable stream, without moving the walk."""
        at = offset - self.base
        if at >= 0 and at + n <= len(self.buf):
            return self.buf[at : at + n]
        where = self.start + offset
        stream = self.stream
        if isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO):
            # a plain file: read at an offset without disturbing the buffered reader
            return os.pread(stream.raw.fileno(), n, where)
        here = self.stream.tell()
        try:
            self.stream.seek(where)
            return self.stream.read(n)
        finally:
            self.stream.seek(here)

    def _memo_put(self, p: _Pickle, index: int, v: Any) -> None:
        memo = p.memo
        size = len(memo)
        if p.dense:
            # the fast loop does not count: while dense, the count is the length
            if index == size:
                memo.append(self._memo_code(p, v))
                return
            if index < size:
                memo[index] = self._memo_code(p, v)
                return
            p.memo_count = size
            p.dense = False
        if index < size:
            if memo[index] == _ABSENT:
                p.memo_count += 1
            memo[index] = self._memo_code(p, v)
            return
        if index < size + 65536:
            memo.extend([_ABSENT] * (index - size))
            memo.append(self._memo_code(p, v))
            p.memo_count += 1
            return
        if index not in p.memo_sparse:
            p.memo_count += 1
        p.memo_sparse[index] = self._memo_code(p, v)

    def _memo_get(self, p: _Pickle, index: int) -> Any:
        code = p.memo[index] if 0 <= index < len(p.memo) else p.memo_sparse.get(index, _ABSENT)
        if code == _ABSENT:
            raise _Invalid("invalid", f"memo index {index} was never set (bad memo reference)")
        if code < -1 or code & 3 == 2:
            value = p.strings.get(code)
            if value is None:
                if len(p.strings) >= 4096:
                    p.strings.clear()
                value = p.strings[code] = self._memo_value(p, code)
            return value
        return self._pushed(p, self._memo_value(p, code))

    # -- globals and calls ---------------------------------------------------------------------

    def _global(self, p: _Pickle, module: Any, name: Any, offset: int, opcode: str) -> _Global:
        mod_s = _text(module)
        name_s = _text(name)
        dynamic = None
        if mod_s is None or name_s is None:
            dynamic = _why_dynamic(opcode, module if mod_s is None else name)
            mod_s = "<dynamic>" if mod_s is None else mod_s
            name_s = "<dynamic>" if name_s is None else name_s
        self.reference(p, mod_s, name_s, offset, opcode, dynamic)
        if dynamic is not None:
            return _Global(mod_s, name_s, _K_OTHER)
        kind = _KINDS.get(canonical(mod_s, name_s, p.proto), _K_OTHER)
        if kind in _WRAPPERS:
            self.result.joblib = True
        return _Global(mod_s, name_s, kind)

    def _instantiate(self, p: _Pickle, func: Any, args: Any, *, new: bool) -> Any:
        """The symbolic result of calling ``func(*args)`` (or ``func.__new__`` when ``new``)."""
        if type(func) is not _Global:
            return OPAQUE
        kind = func.kind
        if kind in _WRAPPERS:
            if p.arrays:
                p.wrapper_classes -= 1
                p.wrapper_objects += 1
            return _Instance(func, None if new else args)
        if kind == _K_DTYPE:
            return _Instance(func, args)
        if kind in (_K_RECON, _K_NEWOBJ) and not new and type(args) is tuple and args:
            cls = args[0]
            if type(cls) is _Global and cls.kind in _WRAPPERS:
                if p.arrays:
                    p.wrapper_classes -= 1
                    p.wrapper_objects += 1
                inst = _Instance(cls, None)
                if kind == _K_RECON and (
                    len(args) != 3 or type(args[1]) is not _Global or args[1].kind != _K_OBJECT
                ):
                    inst.unknown = True  # built through another base's __init__
                return inst
        return OPAQUE

    def _build(self, p: _Pickle, offset: int) -> bool | None:
        state = self._pop(p)[0]
        inst = self._top(p)
        if type(inst) is not _Instance:
            return None
        kind = inst.cls.kind
        if kind == _K_DTYPE:
            inst.state = state
            return None
        # a joblib wrapper: the state goes into __dict__ (the wrappers have no __setstate__)
        slots = None
        if type(state) is tuple and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if part is None or part == ():
                continue
            if type(part) is _Dict and not part.opaque:
                inst.attrs.update(part.items)
            else:
                inst.unknown = True
        if kind in (_K_ND, _K_ZND):
            if p.arrays or p.zfile:
                filename = _text(inst.attrs.get(b"filename"))
                what = repr(filename) if filename is not None else "a file the audit cannot name"
                self.problem(
                    "joblib-array",
                    f"legacy joblib array wrapper: joblib reads {what} from the same "
                    f"directory{' with allow_pickle=True' if kind == _K_ND else ''}; audit "
                    "that file too (joblib < 0.10 multi-file format)",
                    offset,
                    p,
                )
                if p.arrays:
                    p.wrapper_objects -= 1
                    p.stack[-1] = OPAQUE
            return None
        if not p.arrays:
            if not p.zfile:
                # a plain pickle (an object array's, a .npy's): pickle.load builds the wrapper
                # as an object, while a joblib-aware reader takes the bytes after it for array
                # data; the audit cannot say which reader the file will meet
                self.problem(
                    "joblib-array",
                    "a joblib array wrapper inside a plain pickle (a nested or .npy pickle): "
                    "readers disagree on whether array bytes follow it",
                    offset,
                    p,
                )
            return None
        p.wrapper_objects -= 1
        p.stack[-1] = OPAQUE  # joblib replaces the wrapper by the array it reads
        here = self.base + self.pos
        if p.frame_end >= 0 and here < p.frame_end:
            # the unpickler has read the whole frame already: joblib reads the array from after
            # it, then goes on with the opcodes left in the frame
            if not p.frame_trick:
                self.problem(
                    "frame",
                    "opcodes follow a joblib array wrapper inside the same frame; joblib reads "
                    "the array bytes from after the frame (a frame-length trick)",
                    offset,
                    p,
                )
                p.frame_trick = True
            p.pending.append(inst)
            return None
        if p.frame_end == here:
            p.frame_end = -1
        return self._array(p, inst, offset)

    def _pending_arrays(self, p: _Pickle) -> bool | None:
        pending, p.pending = p.pending, []
        for inst in pending:
            result = self._array(p, inst, self.base + self.pos)
            if result is not None:
                return result
        return None

    def _array(self, p: _Pickle, inst: _Instance, offset: int) -> bool | None:
        """Skip (or, for object arrays, scan) the data of one joblib array."""
        try:
            nbytes, padded, hasobject = _wrapper_layout(inst)
        except _Invalid as exc:
            self.problem(
                "joblib-array",
                f"joblib array wrapper whose state the audit does not understand ({exc.message}); "
                "cannot tell where the array data ends, so the rest of the stream is not scanned",
                offset,
                p,
            )
            return False
        self.result.arrays += 1
        start = self.base + self.pos
        try:
            if hasobject:
                nested = _Pickle(
                    self.result.pickles, arrays=False, zfile=False, start=start, nested=True
                )
                self.result.pickles += 1
                if not self._fill(1):
                    raise _Truncated
                if not self._run(nested):
                    return False
                return None
            if padded:
                self._skip(self._read(1)[0])
            self._skip(nbytes)
            self.result.array_bytes += nbytes
        except _Truncated:
            self.problem(
                "truncated",
                f"the stream ends inside the data of a joblib array ({nbytes} bytes expected)",
                start,
                p,
            )
            return False
        return None


# ---------------------------------------------------------------------------------------------
# careful handlers: (scanner, pickle, offset of the opcode) -> None | True (STOP) | False


def _text(v: Any) -> str | None:
    if type(v) is bytes:
        return v.decode("utf-8", "surrogateescape")
    return None


def _why_dynamic(opcode: str, v: Any) -> str:
    if v is OPAQUE:
        return f"{opcode} takes a value computed at load time"
    if isinstance(v, _Marker):
        return f"{opcode} takes a {v.what}"
    if type(v) is _Global:
        return f"{opcode} takes a global object, not a string"
    return f"{opcode} takes a {type(v).__name__}, not a string"


def _h_mark(s: _Scanner, p: _Pickle, offset: int) -> None:
    if len(p.metastack) >= MARK_CAP:
        raise _Invalid("limit", f"more than {MARK_CAP} nested MARKs")
    p.metastack.append(p.stack)
    p.stack = []


def _h_stop(s: _Scanner, p: _Pickle, offset: int) -> bool:
    s.result.protocols.add(p.proto)
    if not p.stack:
        raise _Invalid("invalid", "STOP with an empty stack (stack underflow)")
    if p.metastack or len(p.stack) > 1:
        s.problem(
            "unbalanced",
            "the stack holds more than the result at STOP (unused values or an open MARK)",
            offset,
            p,
        )
    if p.arrays and (p.wrapper_classes or p.wrapper_objects):
        s.problem(
            "joblib-array",
            "a joblib array wrapper is used in a way the audit cannot follow (not created and "
            "built in place); joblib may read array data where the audit reads opcodes",
            offset,
            p,
        )
    here = s.base + s.pos
    if p.frame_end > here:
        need = p.frame_end - here
        beyond = need <= _CHUNK and s._fill(need) < need
        s.problem(
            "frame",
            f"the pickle stops before the end of its frame (declared to end at offset "
            f"{s.origin + p.frame_end}{', past the end of the stream' if beyond else ''})",
            offset,
            p,
        )
        if p.nested:
            # joblib's unpickler for the nested pickle has read the whole frame: it drops the
            # rest, and the outer pickle goes on after the frame
            try:
                s._skip(p.frame_end - here)
            except _Truncated:
                pass
    if p.pending:
        s.problem("frame", "the pickle stops before joblib reads its array data", offset, p)
    return True


def _h_pop(s: _Scanner, p: _Pickle, offset: int) -> None:
    if p.stack:
        p.stack.pop()
    elif p.metastack:
        p.stack = p.metastack.pop()
    else:
        raise _Invalid("invalid", "POP on an empty stack (stack underflow)")


def _h_pop_mark(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop_mark(p)


def _h_dup(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(s._pushed(p, s._top(p)))


def _h_int(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(200)
    if line == b"00":
        p.stack.append(False)
    elif line == b"01":
        p.stack.append(True)
    else:
        p.stack.append(_parse_int(line, "INT"))


def _h_long(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(200)
    if line is not None and line.endswith(b"L"):
        line = line[:-1]
    p.stack.append(_parse_int(line, "LONG"))


def _parse_int(line: bytes | None, what: str) -> Any:
    if line is None:
        return OPAQUE  # a long integer literal: nothing the audit needs
    try:
        value = int(line, 0)
    except ValueError:
        try:
            value = int(line)  # pickle's INT also takes decimal with leading zeros
        except ValueError:
            raise _Invalid("invalid", f"{what} argument is not an integer") from None
    return value


def _h_binint(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(_I4(s._read(4))[0])


def _h_binint1(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(s._read(1)[0])


def _h_binint2(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(int.from_bytes(s._read(2), "little"))


def _h_long1(s: _Scanner, p: _Pickle, offset: int) -> None:
    n = s._read(1)[0]
    if n <= 16:
        p.stack.append(int.from_bytes(s._read(n), "little", signed=True))
    else:
        s._skip(n)
        p.stack.append(OPAQUE)


def _h_long4(s: _Scanner, p: _Pickle, offset: int) -> None:
    n = _I4(s._read(4))[0]
    if n < 0:
        raise _Invalid("invalid", "LONG4 with a negative byte count")
    if n <= 16:
        p.stack.append(int.from_bytes(s._read(n), "little", signed=True))
    else:
        s._skip(n)
        p.stack.append(OPAQUE)


def _h_string(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(4 * STR_CAP)
    if line is None:
        p.stack.append(LONG_STR)
        return
    if len(line) < 2 or line[0] != line[-1] or line[0] not in b"\"'":
        raise _Invalid("invalid", "the STRING opcode argument must be quoted")
    try:
        value = codecs.escape_decode(line[1:-1])[0]
    except ValueError:
        raise _Invalid("invalid", "STRING argument with a bad escape") from None
    p.stack.append(value if len(value) <= STR_CAP else LONG_STR)


def _h_binstring(s: _Scanner, p: _Pickle, offset: int) -> None:
    n = _I4(s._read(4))[0]
    if n < 0:
        raise _Invalid("invalid", "BINSTRING with a negative byte count")
    s._push_text(p, n)


def _h_short_binstring(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._push_text(p, s._read(1)[0])


def _h_bytes(n: int, s: _Scanner, p: _Pickle) -> None:
    s._skip(n)
    p.stack.append(OPAQUE)


def _h_binbytes(s: _Scanner, p: _Pickle, offset: int) -> None:
    _h_bytes(_U4(s._read(4))[0], s, p)


def _h_short_binbytes(s: _Scanner, p: _Pickle, offset: int) -> None:
    _h_bytes(s._read(1)[0], s, p)


def _h_binbytes8(s: _Scanner, p: _Pickle, offset: int) -> None:
    n = _U8(s._read(8))[0]
    if n > sys.maxsize:
        raise _Invalid("invalid", "BINBYTES8 exceeds system's maximum size")
    _h_bytes(n, s, p)


def _h_next_buffer(s: _Scanner, p: _Pickle, offset: int) -> None:
    s.problem(
        "buffer",
        "NEXT_BUFFER: the pickle refers to out-of-band data that is not in the file",
        offset,
        p,
    )
    p.stack.append(OPAQUE)


def _h_readonly_buffer(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._top(p)


def _h_none(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(None)


def _h_true(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(True)


def _h_false(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(False)


def _h_unicode(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(6 * STR_CAP)
    if line is None:
        p.stack.append(LONG_STR)
        return
    try:
        value = line.decode("raw-unicode-escape").encode("utf-8", "surrogatepass")
    except UnicodeError:
        raise _Invalid("invalid", "UNICODE argument with a bad escape") from None
    p.stack.append(value if len(value) <= STR_CAP else LONG_STR)


def _h_short_binunicode(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._push_text(p, s._read(1)[0])


def _h_binunicode(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._push_text(p, _U4(s._read(4))[0])


def _h_binunicode8(s: _Scanner, p: _Pickle, offset: int) -> None:
    n = _U8(s._read(8))[0]
    if n > sys.maxsize:
        raise _Invalid("invalid", "BINUNICODE8 exceeds system's maximum size")
    s._push_text(p, n)


def _h_float(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(200)
    if line is not None:
        try:
            float(line)
        except ValueError:
            raise _Invalid("invalid", "FLOAT argument is not a number") from None
    p.stack.append(OPAQUE)


def _h_binfloat(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._read(8)
    p.stack.append(OPAQUE)


def _h_empty_list(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(OPAQUE)


def _h_append(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop(p)
    s._top(p)


def _h_appends(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop_mark(p)
    s._top(p)


def _h_list(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop_mark(p)
    p.stack.append(OPAQUE)


def _h_empty_tuple(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(())


def _h_tuple(s: _Scanner, p: _Pickle, offset: int) -> None:
    items = s._pop_mark(p)
    p.stack.append(s._tuple(p, items))


def _h_tuple_n(n: int) -> Any:
    def handler(s: _Scanner, p: _Pickle, offset: int) -> None:
        items = s._pop(p, n)
        p.stack.append(s._tuple(p, items))

    return handler


def _h_empty_dict(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(_Dict() if p.track else OPAQUE)


def _h_dict(s: _Scanner, p: _Pickle, offset: int) -> None:
    items = s._pop_mark(p)
    if len(items) & 1:
        raise _Invalid("invalid", "odd number of items for DICT")
    if p.track:
        d = _Dict()
        d.update(items)
        p.stack.append(d)
    else:
        p.stack.append(OPAQUE)


def _h_setitem(s: _Scanner, p: _Pickle, offset: int) -> None:
    items = s._pop(p, 2)
    target = s._top(p)
    if type(target) is _Dict:
        target.update(items)


def _h_setitems(s: _Scanner, p: _Pickle, offset: int) -> None:
    items = s._pop_mark(p)
    target = s._top(p)
    if len(items) & 1:
        raise _Invalid("invalid", "odd number of items for SETITEMS")
    if type(target) is _Dict and items:
        target.update(items)


def _h_empty_set(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(OPAQUE)


def _h_additems(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop_mark(p)
    s._top(p)


def _h_frozenset(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop_mark(p)
    p.stack.append(OPAQUE)


def _h_get(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(40)
    try:
        index = int(line) if line is not None else -1
    except ValueError:
        raise _Invalid("invalid", "GET argument is not an integer") from None
    p.stack.append(s._memo_get(p, index))


def _h_binget(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(s._memo_get(p, s._read(1)[0]))


def _h_long_binget(s: _Scanner, p: _Pickle, offset: int) -> None:
    p.stack.append(s._memo_get(p, _U4(s._read(4))[0]))


def _h_put(s: _Scanner, p: _Pickle, offset: int) -> None:
    line = s._line(40)
    try:
        index = int(line) if line is not None else -1
    except ValueError:
        raise _Invalid("invalid", "PUT argument is not an integer") from None
    if index < 0:
        raise _Invalid("invalid", "negative PUT argument")
    s._memo_put(p, index, s._top(p))


def _h_binput(s: _Scanner, p: _Pickle, offset: int) -> None:
    index = s._read(1)[0]
    s._memo_put(p, index, s._top(p))


def _h_long_binput(s: _Scanner, p: _Pickle, offset: int) -> None:
    index = _U4(s._read(4))[0]
    s._memo_put(p, index, s._top(p))


def _h_memoize(s: _Scanner, p: _Pickle, offset: int) -> None:
    v = s._top(p)
    s._memo_put(p, len(p.memo) if p.dense else p.memo_count, v)


def _h_ext(size: int) -> Any:
    def handler(s: _Scanner, p: _Pickle, offset: int) -> None:
        raw = s._read(size)
        code = _I4(raw)[0] if size == 4 else int.from_bytes(raw, "little")
        s.problem(
            "extension",
            f"EXT{size if size != 4 else 4} code {code}: the copyreg extension registry of the "
            "loading process decides which global this is; the file does not name it",
            offset,
            p,
        )
        p.stack.append(OPAQUE)

    return handler


def _h_global(s: _Scanner, p: _Pickle, offset: int) -> None:
    module = s._line()
    name = s._line()
    p.stack.append(
        s._pushed(
            p,
            s._global(
                p,
                LONG_STR if module is None else module,
                LONG_STR if name is None else name,
                offset,
                "GLOBAL",
            ),
        )
    )


def _h_stack_global(s: _Scanner, p: _Pickle, offset: int) -> None:
    module, name = s._pop(p, 2)
    p.stack.append(s._pushed(p, s._global(p, module, name, offset, "STACK_GLOBAL")))


def _h_reduce(s: _Scanner, p: _Pickle, offset: int) -> None:
    func, args = s._pop(p, 2)
    p.stack.append(s._instantiate(p, func, args, new=False))


def _h_build(s: _Scanner, p: _Pickle, offset: int) -> bool | None:
    return s._build(p, offset)


def _h_inst(s: _Scanner, p: _Pickle, offset: int) -> None:
    module = s._line()
    name = s._line()
    args = s._pop_mark(p)
    cls = s._global(
        p,
        LONG_STR if module is None else module,
        LONG_STR if name is None else name,
        offset,
        "INST",
    )
    s.problem(
        "inst-obj",
        f"INST calls {cls.module}.{cls.name} directly (Python 3 never writes INST)",
        offset,
        p,
    )
    s._pushed(p, cls)
    p.stack.append(s._instantiate(p, cls, tuple(args), new=not args))


def _h_obj(s: _Scanner, p: _Pickle, offset: int) -> None:
    items = s._pop_mark(p)
    if not items:
        raise _Invalid("invalid", "OBJ without a class (stack underflow)")
    cls = items[0]
    what = f"{cls.module}.{cls.name}" if type(cls) is _Global else "a value computed at load time"
    s.problem("inst-obj", f"OBJ calls {what} directly (Python 3 never writes OBJ)", offset, p)
    p.stack.append(s._instantiate(p, cls, tuple(items[1:]), new=len(items) == 1))


def _h_newobj(s: _Scanner, p: _Pickle, offset: int) -> None:
    cls, args = s._pop(p, 2)
    p.stack.append(s._instantiate(p, cls, args, new=True))


def _h_newobj_ex(s: _Scanner, p: _Pickle, offset: int) -> None:
    cls, args, _kwargs = s._pop(p, 3)
    p.stack.append(s._instantiate(p, cls, args, new=True))


def _h_persid(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._line()
    s.problem(
        "persistent-id",
        "PERSID: the loading code's persistent_load decides what this is",
        offset,
        p,
    )
    p.stack.append(OPAQUE)


def _h_binpersid(s: _Scanner, p: _Pickle, offset: int) -> None:
    s._pop(p)
    s.problem(
        "persistent-id",
        "BINPERSID: the loading code's persistent_load decides what this is",
        offset,
        p,
    )
    p.stack.append(OPAQUE)


def _h_proto(s: _Scanner, p: _Pickle, offset: int) -> None:
    proto = s._read(1)[0]
    if proto > 5:
        raise _Invalid("invalid", f"unsupported pickle protocol: {proto}")
    p.proto = proto
    s.result.protocols.add(proto)


def _h_frame(s: _Scanner, p: _Pickle, offset: int) -> None:
    size = _U8(s._read(8))[0]
    if size > sys.maxsize:
        raise _Invalid("invalid", "frame size > sys.maxsize")
    if p.frame_end >= 0:
        s.problem(
            "frame",
            f"a new frame starts at offset {s.origin + offset} before the end of the current "
            f"one (declared to end at offset {s.origin + p.frame_end})",
            offset,
            p,
        )
    p.frame_end = s.base + s.pos + size
    p.framed = True
    p.unframed_start = -1


_HANDLERS: dict[int, Any] = {
    0x28: _h_mark,
    0x2E: _h_stop,
    0x30: _h_pop,
    0x31: _h_pop_mark,
    0x32: _h_dup,
    0x46: _h_float,
    0x49: _h_int,
    0x4A: _h_binint,
    0x4B: _h_binint1,
    0x4C: _h_long,
    0x4D: _h_binint2,
    0x4E: _h_none,
    0x50: _h_persid,
    0x51: _h_binpersid,
    0x52: _h_reduce,
    0x53: _h_string,
    0x54: _h_binstring,
    0x55: _h_short_binstring,
    0x56: _h_unicode,
    0x58: _h_binunicode,
    0x61: _h_append,
    0x62: _h_build,
    0x63: _h_global,
    0x64: _h_dict,
    0x7D: _h_empty_dict,
    0x65: _h_appends,
    0x67: _h_get,
    0x68: _h_binget,
    0x69: _h_inst,
    0x6A: _h_long_binget,
    0x6C: _h_list,
    0x5D: _h_empty_list,
    0x6F: _h_obj,
    0x70: _h_put,
    0x71: _h_binput,
    0x72: _h_long_binput,
    0x73: _h_setitem,
    0x74: _h_tuple,
    0x29: _h_empty_tuple,
    0x75: _h_setitems,
    0x47: _h_binfloat,
    0x80: _h_proto,
    0x81: _h_newobj,
    0x82: _h_ext(1),
    0x83: _h_ext(2),
    0x84: _h_ext(4),
    0x85: _h_tuple_n(1),
    0x86: _h_tuple_n(2),
    0x87: _h_tuple_n(3),
    0x88: _h_true,
    0x89: _h_false,
    0x8A: _h_long1,
    0x8B: _h_long4,
    0x42: _h_binbytes,
    0x43: _h_short_binbytes,
    0x8C: _h_short_binunicode,
    0x8D: _h_binunicode8,
    0x8E: _h_binbytes8,
    0x8F: _h_empty_set,
    0x90: _h_additems,
    0x91: _h_frozenset,
    0x92: _h_newobj_ex,
    0x93: _h_stack_global,
    0x94: _h_memoize,
    0x95: _h_frame,
    0x96: _h_binbytes8,  # BYTEARRAY8: same layout, and the audit needs neither's content
    0x97: _h_next_buffer,
    0x98: _h_readonly_buffer,
}


# ---------------------------------------------------------------------------------------------
# joblib array wrappers and numpy dtypes, read from their symbolic state

# opcodes CPython's framer writes outside frames when large, with their header sizes
_LARGE = {0x42: 5, 0x58: 5, 0x8D: 9, 0x8E: 9, 0x96: 9}

_WRAPPER_ARGS = (
    b"subclass",
    b"shape",
    b"order",
    b"dtype",
    b"allow_mmap",
    b"numpy_array_alignment_bytes",
)
_MISSING = _Marker("missing")
# dtype codes numpy writes as the first argument of numpy.dtype(...) in a pickle, with their sizes
_FIXED_SIZES = {
    b"b1": 1,
    b"i1": 1,
    b"u1": 1,
    b"i2": 2,
    b"u2": 2,
    b"f2": 2,
    b"i4": 4,
    b"u4": 4,
    b"f4": 4,
    b"i8": 8,
    b"u8": 8,
    b"f8": 8,
    b"c8": 8,
    b"c16": 16,
    b"f16": 16,
    b"f12": 12,
    b"c24": 24,
    b"c32": 32,
    b"M8": 8,
    b"m8": 8,
    b"O8": 8,
    b"O4": 4,
}
_FLEXIBLE = re.compile(rb"([SUV])(\d{1,12})")
_INT64_MAX = (1 << 63) - 1


def _wrapper_layout(inst: _Instance) -> tuple[int, bool, bool]:
    """Return (data bytes, whether a padding byte comes first, whether it is an object array)."""
    if inst.unknown:
        raise _Invalid("joblib-array", "its state is set in a way the audit does not follow")
    attrs: dict[bytes, Any] = {}
    if inst.init is not None:
        init = inst.init
        if type(init) is not tuple or not 4 <= len(init) <= 6:
            raise _Invalid("joblib-array", "unexpected constructor arguments")
        attrs.update(zip(_WRAPPER_ARGS, init, strict=False))
        attrs.setdefault(b"allow_mmap", False)
        attrs.setdefault(b"numpy_array_alignment_bytes", 16)
    attrs.update(inst.attrs)
    shape = attrs.get(b"shape", _MISSING)
    if type(shape) is not tuple or len(shape) > 64:
        raise _Invalid("joblib-array", f"shape is {_show(shape)}, not a tuple of integers")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise _Invalid("joblib-array", f"shape {_show(shape)} has a bad dimension")
        count *= dim
    if count > _INT64_MAX:
        raise _Invalid("joblib-array", "the element count overflows 64 bits")
    itemsize, hasobject = _dtype_layout(attrs.get(b"dtype", _MISSING), 0)
    nbytes = count * itemsize
    if nbytes > _INT64_MAX:
        raise _Invalid("joblib-array", "the byte count overflows 64 bits")
    align = attrs.get(b"numpy_array_alignment_bytes")
    if align is OPAQUE or isinstance(align, (_Marker, _Instance, _Global, _Dict)):
        raise _Invalid("joblib-array", "numpy_array_alignment_bytes is computed at load time")
    return nbytes, align is not None and not hasobject, hasobject


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _dtype_layout(dtype: Any, depth: int) -> tuple[int, bool]:
    """Return (itemsize, hasobject) of a symbolic ``numpy.dtype(...)`` with its BUILD state."""
    if depth > 8:
        raise _Invalid("joblib-array", "dtype nested too deeply")
    if type(dtype) is not _Instance or dtype.cls.kind != _K_DTYPE:
        raise _Invalid("joblib-array", f"dtype is {_show(dtype)}, not numpy.dtype(...)")
    args = dtype.init
    if type(args) is not tuple or len(args) != 3 or type(args[0]) is not bytes:
        raise _Invalid("joblib-array", "numpy.dtype called with unexpected arguments")
    code = args[0]
    state = dtype.state
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise _Invalid("joblib-array", "dtype state of an unknown layout")
    _, byteorder, subarray, names, fields, elsize, _alignment, flags = state[:8]
    if byteorder not in (b"<", b">", b"|", b"=") or type(flags) is not int:
        raise _Invalid("joblib-array", "dtype state with an unexpected byte order or flags")
    flexible = _FLEXIBLE.fullmatch(code)
    if flexible is not None:
        # numpy takes the item size of S/U/V types from the state, which must agree with the code
        size = int(flexible.group(2)) * (4 if flexible.group(1) == b"U" else 1)
        if type(elsize) is not int or elsize != size:
            raise _Invalid("joblib-array", "dtype item size disagrees with its code")
        hasobject = False
        if subarray is not None:
            if type(subarray) is not tuple or len(subarray) != 2:
                raise _Invalid("joblib-array", "malformed subarray dtype")
            base_size, hasobject = _dtype_layout(subarray[0], depth + 1)
            sub_shape = subarray[1]
            if type(sub_shape) is int:
                sub_shape = (sub_shape,)
            if type(sub_shape) is not tuple or not all(
                type(d) is int and d >= 0 for d in sub_shape
            ):
                raise _Invalid("joblib-array", "malformed subarray shape")
            total = base_size
            for d in sub_shape:
                total *= d
            if total != size:
                raise _Invalid("joblib-array", "subarray dtype size disagrees with its item size")
        if names is not None or fields is not None:
            if flexible.group(1) != b"V" or type(names) is not tuple:
                raise _Invalid("joblib-array", "malformed structured dtype")
            if type(fields) is not _Dict or fields.opaque or len(fields.items) != len(names):
                raise _Invalid("joblib-array", "structured dtype fields the audit cannot read")
            for name in names:
                entry = fields.items.get(name) if type(name) is bytes else None
                if type(entry) is not tuple or len(entry) not in (2, 3):
                    raise _Invalid("joblib-array", "malformed structured dtype field")
                field_size, field_object = _dtype_layout(entry[0], depth + 1)
                offset = entry[1]
                if type(offset) is not int or offset < 0 or offset + field_size > size:
                    raise _Invalid("joblib-array", "structured dtype field out of bounds")
                hasobject = hasobject or field_object
        if bool(flags & 1) != hasobject:
            raise _Invalid("joblib-array", "dtype flags disagree with its fields")
        return size, hasobject
    fixed = _FIXED_SIZES.get(code)
    if fixed is None:
        raise _Invalid("joblib-array", f"unknown dtype code {code!r}")
    if subarray is not None or names is not None or fields is not None or elsize != -1:
        raise _Invalid("joblib-array", "dtype state with unexpected fields for its code")
    hasobject = code.startswith(b"O")
    if bool(flags & 1) != hasobject:
        raise _Invalid("joblib-array", "dtype flags disagree with its type")
    return fixed, hasobject
