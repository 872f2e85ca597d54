"""Load pickle and joblib files without running code chosen by the file: the restricted unpickler.

A pickle is a program: ``GLOBAL`` names any importable object, ``REDUCE`` calls it, ``BUILD``
calls its ``__setstate__``. This unpickler runs the same opcodes with three rules:

* **Names.** Every global goes through :func:`~skvault.legacy._policy.classify`, the verdict the
  static audit gives too: only ``safe`` names (the default allow-list, the reconstruction helpers
  of :data:`~skvault.legacy._policy.PICKLE_HELPERS`, names the caller trusts) are imported, by
  exact ``module.name`` after the check. A refused name switches the unpickler to a dry run
  that imports and calls nothing, so one error lists every refused name.
* **Calls.** Nothing the file names is called directly. ``REDUCE`` runs a checked wrapper for
  each reconstruction helper (``numpy.dtype(str, bool, bool)``, ``_reconstruct(ndarray, (0,),
  b"b")``, ``_codecs.encode(str, "latin1")``, ...) or one of a few extension types whose own
  ``__reduce__`` rebuilds them from constructor arguments (the decision ``Tree``, scikit-learn's
  Cython losses), with checked arguments; a function is never called, even an allowed one
  (``numpy.add`` may be a value, as in ``FunctionTransformer(func=np.log1p)``, but calling it on
  crafted arrays is a memory bomb). ``NEWOBJ`` creates instances of allowed Python classes
  (``cls.__new__(cls)``); builtin, numpy and random-generator types are only created by their
  helpers, so ``bytearray(10**12)`` cannot be asked for.
* **State.** ``BUILD`` applies only to an object created by one of those paths and not yet
  built; the state goes through the type's validator (``skvault.format.validators``, the one
  ``.skv`` loading runs) before ``__setstate__``, so a tree whose child index points outside its
  node array is refused instead of crashing at ``predict``. numpy's own states (dtype, array,
  masked array) are checked here: sizes against shapes, dtypes rebuilt from their description.

joblib files are pickles with each array's bytes written right after its ``NumpyArrayWrapper``:
those bytes are read here (never by joblib's loader, whose object-array path calls plain
``pickle.load``), object arrays through a nested restricted unpickler. Persistent ids, the
``copyreg`` extension registry, out-of-band buffers and data after ``STOP`` are refused; any
error inside the stream becomes a `FormatError` naming the byte offset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import math
import os
import pickle
import re
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np

from ..errors import (
    FormatError,
    InvalidStateError,
    PickleNotAllowedError,
    SkvaultError,
    UntrustedTypeError,
)
from ..format._files import FileLike, open_input
from ..format._trust import TrustPolicy, default_allowlist, missing_name_hint, resolve
from ..format.reducers._numpy import BIT_GENERATORS as _BIT_GENERATORS
from ..format.reducers._objects import (
    OWN_KIND_BASES,
    default_reduce,
    is_named_tuple,
    refusal_reason,
)
from ..format.validators import (
    BATCH_VALIDATORS,
    VALIDATORS,
    deferred_validation,
    validate,
    validate_built,
)
from ._detect import COMPRESSED, detect_file, open_stream
from ._policy import Verdict, classify

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LegacyObject",
    "legacy_format_name",
    "load_legacy",
    "read_legacy",
]

#: The most (decompressed) bytes a legacy file may hold.
DEFAULT_MAX_BYTES = 64 << 30
#: The most memo entries one pickle may create (each costs at least ~100 bytes of memory).
MAX_MEMO = 1 << 26
_CHUNK = 1 << 20
_MAX_DIMS = 64
_MAX_FIELDS = 4096
_PYX = "__pyx_unpickle_"
_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_JOBLIB_OLD = (
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
)
_WRAPPER_KEYS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)
# types that only their own helpers create (a generic NEWOBJ/REDUCE could ask numpy or a random
# generator for any allocation, or skip the checks their helper makes)
_HELPER_MADE = (
    *OWN_KIND_BASES,
    np.random.RandomState,
    np.random.BitGenerator,
    np.random.SeedSequence,
)
_DTYPE_BASE = re.compile(r"^[biufcSUVOMm][0-9]{1,9}$")
_DATETIME_UNITS = frozenset(
    {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "generic"}
)
_ALIGNED_STRUCT = 0x80  # NPY_ALIGNED_STRUCT in a dtype's flags
# values a state walk never needs to enter
_LEAVES = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, type})


# -- reading -----------------------------------------------------------------------------------


class _Reader:
    """The pickle's bytes: large reads in chunks (a length read from the file allocates only
    what the file holds), a running offset for messages, and the size cap."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.pos = 0
        self.left: int | None = None  # bytes left in the file, when it is seekable
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if raw.seekable():
                here = raw.tell()
                self.left = raw.seek(0, os.SEEK_END) - here
                raw.seek(here)

    def _count(self, n: int) -> None:
        self.pos += n
        if self.left is not None:
            self.left -= n
        if self.pos > self._limit:
            raise FormatError(f"the file is over the size limit of {self._limit:,} bytes")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise FormatError("unbounded read")
        if n <= _CHUNK:
            data = self._raw.read(n)
        else:
            data = bytes(self.read_bytearray(n, exact=False))
            return data  # counted by read_bytearray
        self._count(len(data))
        return data

    def read_bytearray(self, n: int, *, exact: bool = True) -> bytearray:
        """Read ``n`` bytes into a new bytearray; with ``exact``, fewer is a truncated file."""
        if self.left is not None and n <= self.left:
            out = bytearray(n)  # the file holds them: allocate once
            view = memoryview(out)
            got = 0
            while got < n:
                k = self._raw.readinto(view[got : got + _CHUNK])  # type: ignore[attr-defined]
                if not k:
                    break
                got += k
            view.release()
            del out[got:]
        else:  # unknown or too short: grow with what actually arrives
            out = bytearray()
            while len(out) < n:
                chunk = self._raw.read(min(_CHUNK, n - len(out)))
                if not chunk:
                    break
                out += chunk
                if self.pos + len(out) > self._limit:
                    break
        self._count(len(out))
        if exact and len(out) != n:
            raise FormatError(f"the file is truncated: {n:,} bytes announced at byte {self.pos}")
        return out

    def readline(self) -> bytes:
        line = self._raw.readline()
        self._count(len(line))
        return line


class _Dispatch(dict):
    """The opcode table; an unknown opcode is a malformed file, not a KeyError."""

    def __missing__(self, key: int) -> Callable[..., None]:
        raise pickle.UnpicklingError(f"unknown opcode 0x{key:02x}")


class _Inert:
    """Stands for a refused global and for everything built from it during the dry run."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<refused>"


_INERT = _Inert()


class _WrapperDraft:
    """A joblib ``NumpyArrayWrapper`` before its ``BUILD``: never part of a loaded object."""

    __slots__ = ()


@dataclasses.dataclass(eq=False)
class _Pending:
    """An object created through a checked path, waiting for its ``BUILD``."""

    kind: str  # "object", "dtype", "ndarray", "masked", "bitgen", "generator", "randomstate", ...
    name: str  # the type's fully qualified name (the validators' key)
    args: tuple
    obj: Any
    validated: bool
    empty_state: Any  # what a validator sees when no BUILD comes: {} for plain objects


class _Session:
    """What one load shares between the top-level unpickler and the nested ones (joblib's object
    arrays): the policy, the stream, the refused names, the objects waiting for their state."""

    def __init__(self, policy: TrustPolicy, reader: _Reader) -> None:
        self.policy = policy
        self.reader = reader
        self.refused: dict[str, Verdict] = {}
        self.dry = False
        self.resolved: dict[str, Any] = {}
        self.names: dict[int, str] = {}  # id of a resolved global -> its name (kept alive above)
        self.pending: dict[int, _Pending] = {}
        # containers a validated state holds: the file may not change them afterwards
        self.sealed: dict[int, Any] = {}
        self.trusted_used: set[str] = set()
        self.joblib = False
        self.protocol: int | None = None
        # joblib writes array data only after wrappers of its top-level pickle; in an object
        # array's pickle, or a .npy file's, a wrapper is a trick (joblib would read no data there)
        self.inline_arrays = True

    def resolve(self, verdict: Verdict) -> Any:
        name = verdict.qualified
        try:
            return self.resolved[name]
        except KeyError:
            pass
        if name in self.policy:
            obj = resolve(name, self.policy)  # the allow-list's own path: exact, import after check
        else:  # a reconstruction helper: safe by the policy's reviewed list, not a .skv name
            obj = _import_exact(verdict.module, verdict.name)
        if name in self.policy and name not in default_allowlist():
            self.trusted_used.add(name)
        self.resolved[name] = obj
        self.names.setdefault(id(obj), name)
        return obj

    def register(self, obj: Any, kind: str, name: str, args: tuple, empty_state: Any) -> None:
        validated = kind in ("object", "cython") and (
            name in VALIDATORS or name in BATCH_VALIDATORS
        )
        self.pending[id(obj)] = _Pending(kind, name, args, obj, validated, empty_state)

    def take(self, obj: Any) -> _Pending | None:
        p = self.pending.pop(id(obj), None)
        if p is not None and p.obj is not obj:  # pragma: no cover - ids of live objects are unique
            return None
        return p

    def finish(self, where: str) -> None:
        """Check the objects that got no ``BUILD``: their validator sees an empty state."""
        for p in list(self.pending.values()):
            if p.kind in ("wrapper", "seedseq"):
                raise FormatError(f"{where}: a {p.name} without its state")
            if p.kind in ("object", "cython"):
                validate(p.name, where, p.args, p.empty_state)
        self.pending.clear()

    def refusal(self, cause: BaseException | None) -> SkvaultError:
        """The error for the refused names: untrusted, or missing from the running versions."""
        verdicts = sorted(self.refused.values(), key=lambda v: v.qualified)
        missing = [v for v in verdicts if v.classification == "unknown" and _missing_module(v)]
        note = ""
        if cause is not None:
            note = f"\n(the stream could not be followed to its end either: {cause})"
        if missing and len(missing) == len(verdicts):
            names = "\n".join(f"  - {v.qualified}" for v in missing)
            return FormatError(
                "the file was written with other versions of its packages: these names do not "
                f"exist in the running versions\n{names}\nThis is a version problem, not a "
                "security one: load the file where it was written (same scikit-learn/numpy) and "
                "save it with skvault there, or convert it there with skvault convert." + note
            )
        err = UntrustedTypeError([v.qualified for v in verdicts])
        lines = []
        for v in verdicts:
            if v.classification == "dangerous":
                lines.append(f"  - {v.qualified}: DANGEROUS ({v.reason}); never loaded")
            elif v in missing:
                lines.append(f"  - {v.qualified}: not in the running versions (a version problem)")
            else:
                lines.append(f"  - {v.qualified}: not on the allow-list")
        err.args = (
            "the file references names that skvault does not load:\n"
            + "\n".join(lines)
            + "\nAudit the file (skvault audit FILE); names that are only unknown can be "
            "accepted with trusted=[...] (--trust NAME on the command line), dangerous ones "
            "never." + note,
        )
        return err


def _message(exc: BaseException) -> str:
    """``Type: message`` of an exception, short (its text may quote the file's data)."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # a message that cannot even be shown (deeply nested data)
        text = type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _exc(exc: BaseException) -> str:
    """``repr`` of an exception for a message, short."""
    try:
        text = repr(exc)
    except Exception:
        text = type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _import_exact(module: str, name: str) -> Any:
    try:
        return vars(importlib.import_module(module))[name]
    except (ImportError, KeyError) as exc:
        raise FormatError(
            f"{module}.{name} cannot be found in this environment ({_exc(exc)}); "
            f"{missing_name_hint(module)} (not a security problem)"
        ) from None


_ECOSYSTEM = ("sklearn", "numpy", "scipy", "joblib")


def _missing_module(verdict: Verdict) -> bool:
    """Whether an unknown name no longer exists in the running versions (renamed or removed).

    Decided without importing anything the file names: a module already imported is looked
    into, otherwise only whether the module exists is asked (which imports its parent packages,
    scikit-learn's or numpy's own).
    """
    root = verdict.module.partition(".")[0]
    if root not in _ECOSYSTEM:
        return False
    module = sys.modules.get(verdict.module)
    if module is not None:  # imported already (for the file's other names): nothing new runs
        return verdict.name not in vars(module)
    try:
        return importlib.util.find_spec(verdict.module) is None
    except (ImportError, ValueError, AttributeError):
        return True


# -- argument checks -----------------------------------------------------------------------------


def _fail(where: str, message: str) -> FormatError:
    return FormatError(f"{where}: {message}")


def _is_int(v: object) -> bool:
    return type(v) is int


def _shape(value: object, where: str) -> tuple[int, ...]:
    if (
        type(value) is not tuple
        or len(value) > _MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in value)
    ):
        raise _fail(where, f"an array shape must be a tuple of non-negative ints, not {value!r}")
    return value


def _scalar_args(args: tuple, where: str, name: str) -> None:
    if len(args) > 4 or not all(type(a) in (int, float, bool) for a in args):
        raise _fail(where, f"{name} takes up to 4 plain numbers, got {_describe(args)}")


def _tree_args(args: tuple, where: str, name: str) -> None:
    # Tree(n_features, n_classes, n_outputs): __cinit__ allocates n_outputs entries and copies
    # n_classes[:n_outputs]; the validator checks the rest against the state at BUILD
    ok = (
        len(args) == 3
        and _is_int(args[0])
        and 0 < args[0] < 2**31
        and _is_int(args[2])
        and 0 < args[2] < 2**31
        and isinstance(args[1], np.ndarray)
        and args[1].ndim == 1
        and args[1].dtype.kind == "i"
        and args[1].shape == (args[2],)
    )
    if ok and args[1].size:
        ok = bool(args[1].min() >= 1) and bool(args[1].max() < 2**31)
    if not ok:
        raise _fail(where, f"bad constructor arguments for {name}: {_describe(args)}")


# Extension types whose own __reduce__ is (cls, args): the only classes REDUCE may call (the
# ".skv" ext "call" form), each with the check of its arguments.
_CALL_CLASSES: dict[str, Callable[[tuple, str, str], None]] = {
    "sklearn.tree._tree.Tree": _tree_args,
}
_CALL_MODULES: dict[str, Callable[[tuple, str, str], None]] = {
    "sklearn._loss._loss": _scalar_args,  # CyHalfTweedieLoss(power), CyPinballLoss(quantile)...
    "sklearn.linear_model._sgd_fast": _scalar_args,  # Hinge(threshold), Huber(c)...
}


def _describe(value: object) -> str:
    if isinstance(value, tuple):
        return (
            "("
            + ", ".join(_describe(v) for v in value[:8])
            + (", ..." if len(value) > 8 else "")
            + ")"
        )
    if isinstance(value, (int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) < 40 else text[:37] + "..."
    return type(value).__name__


# -- the unpickler -------------------------------------------------------------------------------


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with every calling opcode replaced by a checked one."""

    dispatch = _Dispatch(pickle._Unpickler.dispatch)

    # state and methods pickle._Unpickler sets up in load(), which typeshed does not declare
    stack: list[Any]
    memo: dict[int, Any]
    proto: int
    append: Callable[[Any], None]
    read: Callable[[int], bytes]
    readline: Callable[[], bytes]
    pop_mark: Callable[[], list[Any]]
    _unframer: Any

    def __init__(self, session: _Session, *, nested: bool = False) -> None:
        super().__init__(session.reader, fix_imports=True)
        self.s = session
        self.nested = nested

    # where we are, for messages: the stream offset, less what the current frame still holds
    def offset(self) -> int:
        return self.s.reader.pos - self._frame_left()

    def where(self) -> str:
        return f"byte {self.offset()}"

    def _frame_left(self) -> int:
        unframer = getattr(self, "_unframer", None)
        frame = unframer.current_frame if unframer is not None else None
        if frame is None:
            return 0
        with frame.getbuffer() as view:
            return view.nbytes - frame.tell()

    # -- names

    def find_class(self, module: str, name: str) -> Any:
        s = self.s
        verdict = classify(module, name, self.proto, s.policy)
        if verdict.classification != "safe":
            s.refused.setdefault(verdict.qualified, verdict)
            s.dry = True
            return _INERT
        return s.resolve(verdict)

    def _name_of(self, obj: Any, what: str) -> str:
        name = self.s.names.get(id(obj))
        if name is None:
            raise _fail(self.where(), f"{what} a {type(obj).__name__} that is not a named global")
        return name

    # -- calling opcodes

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise _fail(self.where(), "REDUCE arguments must be a tuple")
        if self.s.dry and (func is _INERT or any(a is _INERT for a in args)):
            stack[-1] = _INERT
            return
        stack[-1] = self._call(func, args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _call(self, func: Any, args: tuple) -> Any:
        where = self.where()
        name = self._name_of(func, "the file calls")
        helper = _HELPERS.get(name)
        if helper is None and name.rpartition(".")[2].startswith(_PYX):
            helper = _h_pyx_unpickle
        if self.s.dry and (helper is None or helper in _CONSTRUCTORS):
            # the load fails anyway: only the data helpers still run (a joblib file's array
            # sizes depend on its dtypes), so that every refused name can be listed
            return _INERT
        if helper is not None:
            return helper(self, name, args, where)
        if not isinstance(func, type):
            raise _fail(
                where,
                f"the file calls {name} while loading. skvault never calls functions from a "
                "legacy file: an allowed function may be stored as a value (for example "
                "FunctionTransformer(func=numpy.log1p)), not run on the file's arguments",
            )
        builtin = _BUILTIN_CALLS.get(name)
        if builtin is not None:
            return builtin(args, where)
        check = self._args_check(name)
        if check is None:
            raise _fail(
                where,
                f"the file calls the class {name} with arguments; only reconstruction helpers "
                "and extension types that rebuild themselves from constructor arguments (such "
                "as sklearn.tree._tree.Tree) are called",
            )
        self._check_buildable(func, name, where)
        check(args, where, name)
        try:
            obj = func(*args)
        except Exception as exc:
            raise InvalidStateError(where, name, f"its constructor failed: {_exc(exc)}") from None
        self.s.register(obj, "object", name, args, None)
        return obj

    def _args_check(self, name: str) -> Callable[[tuple, str, str], None] | None:
        check = _CALL_CLASSES.get(name) or _CALL_MODULES.get(name.rpartition(".")[0])
        if check is None and name in self.s.trusted_used:
            return _any_args  # the caller vouched for this class, as for a .skv "ext" node
        return check

    def _check_buildable(self, cls: type[Any], name: str, where: str) -> None:
        if cls.__module__ == "builtins" or issubclass(cls, _HELPER_MADE):
            raise _fail(where, f"{name} objects are only created by their own helpers")
        reason = refusal_reason(cls)  # type: ignore[arg-type]  # (mypy: a class is not Hashable)
        if reason is not None:
            raise _fail(where, f"{name} is {reason}")

    def new(self, cls: Any, args: tuple, kwargs: dict[str, Any] | None = None) -> Any:
        """``cls.__new__(cls, *args)`` for NEWOBJ, NEWOBJ_EX, OBJ/INST and copyreg.__newobj__."""
        where = self.where()
        if kwargs:
            raise _fail(where, "keyword arguments to __new__ are not supported")
        if type(args) is not tuple:
            raise _fail(where, "NEWOBJ arguments must be a tuple")
        if not isinstance(cls, type):
            raise _fail(where, f"NEWOBJ needs a class, not a {type(cls).__name__}")
        name = self._name_of(cls, "NEWOBJ on")
        if name == _JOBLIB_WRAPPER:
            if args:
                raise _fail(where, "NumpyArrayWrapper takes no arguments")
            draft = _WrapperDraft()
            self.s.register(draft, "wrapper", name, (), None)
            self.s.joblib = True
            return draft
        if name in _JOBLIB_OLD:
            raise _fail(
                where,
                f"unsupported legacy joblib layout ({name}: joblib < 0.10 kept arrays in "
                "separate files or compressed them one by one); load it with the joblib that "
                "wrote it and save it again",
            )
        self._check_buildable(cls, name, where)
        if args:
            check = self._args_check(name)
            if check is None and is_named_tuple(cls):
                check = _any_args  # its fields (pickle passes them to __new__, as a .skv "call")
            if check is None:
                raise _fail(where, f"{name}.__new__ is given arguments {_describe(args)}")
            check(args, where, name)
        try:
            obj = cls.__new__(cls, *args)
        except Exception as exc:
            raise InvalidStateError(where, name, f"creating it failed: {_exc(exc)}") from None
        self.s.register(obj, "object", name, args, {} if default_reduce(cls) else None)
        return obj

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._dry_new(cls) or self.new(cls, args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def _dry_new(self, cls: Any) -> Any:
        """During a dry run, the inert result of creating ``cls`` (a joblib wrapper is created:
        it reads its array's bytes, which must be skipped to go on)."""
        if not self.s.dry or self.s.names.get(id(cls)) == _JOBLIB_WRAPPER:
            return None
        return _INERT

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if type(kwargs) is not dict:
            raise _fail(self.where(), "NEWOBJ_EX keyword arguments must be a dict")
        self.append(self._dry_new(cls) or self.new(cls, args, kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: list) -> None:
        # INST/OBJ (Python 2 classic classes): only the argument-free form, which is cls.__new__
        if self.s.dry:
            self.append(_INERT)
            return
        if args:
            raise _fail(self.where(), "INST/OBJ with constructor arguments is not supported")
        self.append(self.new(klass, ()))

    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        s = self.s
        if inst is _INERT:
            return
        p = s.take(inst)
        where = self.where()
        if s.dry and (p is None or p.kind not in _DATA_KINDS):
            return  # nothing more is built once the load is known to fail
        if p is None:
            raise _fail(
                where,
                f"BUILD on a {type(inst).__name__} that the file did not create through a "
                "checked constructor, or that was built already",
            )
        _BUILDERS[p.kind](self, p, state, where)

    dispatch[pickle.BUILD[0]] = load_build

    def build_object(self, p: _Pending, state: Any, where: str, *, cython: bool = False) -> None:
        if p.validated:
            self._seal(p, state, where)
        validate(p.name, where, p.args, state)
        inst = p.obj
        try:
            setstate = getattr(inst, "__setstate_cython__" if cython else "__setstate__", None)
            if setstate is not None:
                setstate(state)
            elif not state:
                pass
            elif (
                isinstance(state, dict)
                and all(type(k) is str for k in state)
                and hasattr(inst, "__dict__")
            ):
                inst.__dict__.update(state)
            else:
                raise _fail(where, f"the state of {p.name} is not a dict of attributes")
        except (FormatError, InvalidStateError):
            raise
        except Exception as exc:
            raise InvalidStateError(
                where, p.name, f"restoring its state failed: {_exc(exc)}"
            ) from None
        validate_built(p.name, where, inst)

    def _seal(self, p: _Pending, state: Any, where: str) -> None:
        """Prepare a validated state: what the validator reads must be final.

        A validator may read the objects in the state (a forest's trees): each must be built
        already, and the lists, dicts and sets that lead to them may not change afterwards
        (a pickle can append to a list it memoised long after handing it to a ``BUILD``).
        """
        s = self.s
        sealed = s.sealed
        seen: set[int] = set()
        todo = [state]
        while todo:
            v = todo.pop()
            t = type(v)
            if t in _LEAVES or id(v) in seen:
                continue
            seen.add(id(v))
            waiting = s.pending.get(id(v))
            if waiting is not None and (waiting.validated or waiting.kind in _DATA_KINDS):
                raise _fail(
                    where, f"the state of {p.name} holds a {waiting.name} that is not built yet"
                )
            if isinstance(v, (list, dict, set)):
                sealed[id(v)] = v
                todo.extend(v.values() if isinstance(v, dict) else v)
            elif isinstance(v, (tuple, frozenset)):
                todo.extend(v)
            elif isinstance(v, np.ndarray):
                if v.dtype.hasobject:
                    todo.extend(v.ravel(order="K"))
            else:
                attrs = getattr(v, "__dict__", None)
                if type(attrs) is dict:
                    todo.extend(attrs.values())

    def _check_open(self, target: Any, what: str) -> None:
        if id(target) in self.s.sealed:
            raise _fail(
                self.where(),
                f"{what} on a container that a validated object's state already holds",
            )

    # -- containers: builtin behaviour only, never a method of an allowed class

    def load_append(self) -> None:
        value = self.stack.pop()
        self._extend(self.stack[-1], [value])

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._extend(self.stack[-1], items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def _extend(self, target: Any, items: list) -> None:
        self._check_open(target, "APPEND")
        if type(target) is list:
            target.extend(items)
        elif isinstance(target, list):
            list.extend(target, items)
        elif not self.s.dry:
            raise _fail(self.where(), f"APPEND on a {type(target).__name__}, not a list")

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._setitems(self.stack[-1], [key, value])

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._setitems(self.stack[-1], items)

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def _setitems(self, target: Any, items: list) -> None:
        self._check_open(target, "SETITEM")
        t = type(target)
        if t is dict or t is OrderedDict:  # the stdlib's own mappings keep their own order
            for i in range(0, len(items), 2):
                target[items[i]] = items[i + 1]
        elif isinstance(target, dict):  # a dict subclass (Bunch): its items, not its methods
            for i in range(0, len(items), 2):
                dict.__setitem__(target, items[i], items[i + 1])
        elif not self.s.dry:
            raise _fail(self.where(), f"SETITEM on a {t.__name__}, not a dict")

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        self._check_open(target, "ADDITEMS")
        if isinstance(target, set):
            set.update(target, items)
        elif not self.s.dry:
            raise _fail(self.where(), f"ADDITEMS on a {type(target).__name__}, not a set")

    dispatch[pickle.ADDITEMS[0]] = load_additems

    # -- memo: bounded, and never handing out a joblib wrapper

    def _get(self, i: int) -> None:
        try:
            value = self.memo[i]
        except KeyError:
            raise pickle.UnpicklingError(f"memo value not found at index {i}") from None
        if type(value) is _WrapperDraft:
            raise _fail(self.where(), "a joblib array wrapper is referenced twice")
        self.append(value)

    def load_get(self) -> None:
        self._get(int(self.readline()[:-1]))

    dispatch[pickle.GET[0]] = load_get

    def load_binget(self) -> None:
        self._get(self.read(1)[0])

    dispatch[pickle.BINGET[0]] = load_binget

    def load_long_binget(self) -> None:
        (i,) = struct.unpack("<I", self.read(4))
        self._get(i)

    dispatch[pickle.LONG_BINGET[0]] = load_long_binget

    def _put(self, i: int) -> None:
        if i < 0:
            raise pickle.UnpicklingError("negative memo index")
        memo = self.memo
        if len(memo) >= MAX_MEMO and i not in memo:
            raise _fail(self.where(), f"the memo is over its limit of {MAX_MEMO:,} entries")
        memo[i] = self.stack[-1]

    def load_put(self) -> None:
        self._put(int(self.readline()[:-1]))

    dispatch[pickle.PUT[0]] = load_put

    def load_binput(self) -> None:
        self._put(self.read(1)[0])

    dispatch[pickle.BINPUT[0]] = load_binput

    def load_long_binput(self) -> None:
        (i,) = struct.unpack("<I", self.read(4))
        self._put(i)

    dispatch[pickle.LONG_BINPUT[0]] = load_long_binput

    def load_memoize(self) -> None:
        self._put(len(self.memo))

    dispatch[pickle.MEMOIZE[0]] = load_memoize

    # -- bytes: the announced length is checked against what the file holds

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if self._frame_left():
            data = bytearray(self.read(n))  # small ones live in the current frame
            if len(data) != n:
                raise _fail(self.where(), "the file is truncated")
        else:
            self._unframer.current_frame = None
            data = self.s.reader.read_bytearray(n)
        self.append(data)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # -- refused opcodes

    def _refuse(self, what: str) -> None:
        raise _fail(self.where(), f"{what} are not supported (no scikit-learn file uses them)")

    def load_persid(self) -> None:
        self._refuse("persistent ids (PERSID)")

    dispatch[pickle.PERSID[0]] = load_persid

    def load_binpersid(self) -> None:
        self._refuse("persistent ids (BINPERSID)")

    dispatch[pickle.BINPERSID[0]] = load_binpersid

    def load_ext(self) -> None:
        self._refuse("references to the copyreg extension registry (EXT1/EXT2/EXT4)")

    dispatch[pickle.EXT1[0]] = load_ext
    dispatch[pickle.EXT2[0]] = load_ext
    dispatch[pickle.EXT4[0]] = load_ext

    def load_buffer(self) -> None:
        self._refuse("out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER)")

    dispatch[pickle.NEXT_BUFFER[0]] = load_buffer
    dispatch[pickle.READONLY_BUFFER[0]] = load_buffer

    def load_frame(self) -> None:
        # a frame announces its length: one longer than the data left is a truncated file (the
        # pure-Python unframer would otherwise read on from whatever it got)
        (n,) = struct.unpack("<Q", self.read(8))
        if self._frame_left():
            raise _fail(self.where(), "a new frame begins before the end of the current one")
        self._unframer.current_frame = io.BytesIO(self.s.reader.read_bytearray(n))

    dispatch[pickle.FRAME[0]] = load_frame

    def load_dup(self) -> None:
        if type(self.stack[-1]) is _WrapperDraft:
            raise _fail(self.where(), "a joblib array wrapper is duplicated")
        self.append(self.stack[-1])

    dispatch[pickle.DUP[0]] = load_dup

    def load_proto(self) -> None:
        super().load_proto()  # type: ignore[misc]  # (not in typeshed's _Unpickler)
        if self.s.protocol is None:
            self.s.protocol = self.proto

    dispatch[pickle.PROTO[0]] = load_proto

    def load_stop(self) -> None:
        value = self.stack.pop()
        if not self.nested:
            end = self.offset()
            if self._frame_left() or self.s.reader.read(1):
                raise FormatError(
                    f"data after the end of the pickle at byte {end}: a second pickle or "
                    "appended bytes (skvault reads exactly one pickle per file)"
                )
        raise pickle._Stop(value)  # type: ignore[attr-defined]

    dispatch[pickle.STOP[0]] = load_stop

    # -- joblib arrays

    def read_raw(self, n: int, where: str) -> bytearray:
        """Read bytes written outside the pickle opcodes (joblib's array data)."""
        if self._frame_left():
            raise _fail(where, "array data starts inside a pickle frame")
        self._unframer.current_frame = None
        return self.s.reader.read_bytearray(n)


def _any_args(args: tuple, where: str, name: str) -> None:
    """No check: the caller trusted the class by name (a .skv "ext" node calls it too)."""


# -- reconstruction helpers ----------------------------------------------------------------------

Helper = Callable[[_RestrictedUnpickler, str, tuple, str], Any]


def _h_encode(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> bytes:
    # protocols 0-2 write bytes as _codecs.encode(latin-1 text, "latin1")
    if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
        raise _fail(
            where, f"_codecs.encode is only used as encode(str, 'latin1'), not {_describe(args)}"
        )
    return args[0].encode("latin-1")


def _h_reconstructor(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    # protocols 0-1: copyreg._reconstructor(cls, base, state) is base.__new__(cls, state)
    if len(args) != 3 or not isinstance(args[0], type):
        raise _fail(where, f"bad arguments for copyreg._reconstructor: {_describe(args)}")
    cls, base, state = args
    if base is object:
        if state is not None:
            raise _fail(where, "copyreg._reconstructor with base object takes no state")
        return u.new(cls, ())
    if (base is dict and type(state) is dict and issubclass(cls, dict)) or (
        base is list and type(state) is list and issubclass(cls, list)
    ):
        obj = u.new(cls, ())
        if base is dict:
            dict.update(obj, state)
        else:
            list.extend(obj, state)
        return obj
    raise _fail(where, f"copyreg._reconstructor with base {_describe(base)} is not supported")


def _h_newobj(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    if not args:
        raise _fail(where, "copyreg.__newobj__ needs a class")
    return u.new(args[0], tuple(args[1:]))


def _h_cython_new(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    # scikit-learn's newObj(cls) is cls.__new__(cls) for its Cython trees and metrics
    if len(args) != 1 or not isinstance(args[0], type) or default_reduce(args[0]):
        raise _fail(where, f"{name} is only used as newObj(extension class): {_describe(args)}")
    return u.new(args[0], ())


def _h_pyx_unpickle(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    # Cython's __pyx_unpickle_X(cls, checksum, state) is X.__new__(X) then its generated state
    # setter. The helper itself is not called: the class is created here, and the state goes
    # through the path of BUILD (validator, then __setstate_cython__), now or at the BUILD that
    # follows when the state comes separately.
    module, _, func = name.rpartition(".")
    cls = args[0] if args else None
    if (
        len(args) != 3
        or not isinstance(cls, type)
        or u.s.names.get(id(cls)) != f"{module}.{func[len(_PYX) :]}"
        or type(args[1]) is not int
        or not hasattr(cls, "__setstate_cython__")
    ):
        raise _fail(where, f"bad arguments for {name}: {_describe(args)}")
    cls_name = f"{module}.{cls.__name__}"
    if cls is np.random.SeedSequence:
        obj = cls.__new__(cls)
        u.s.register(obj, "seedseq", cls_name, (), None)
    else:
        u._check_buildable(cls, cls_name, where)
        try:
            obj = cls.__new__(cls)  # type: ignore[call-overload]
        except Exception as exc:
            raise InvalidStateError(where, cls_name, f"creating it failed: {_exc(exc)}") from None
        u.s.register(obj, "cython", cls_name, (), None)
    if args[2] is not None:
        p = u.s.take(obj)
        assert p is not None
        _BUILDERS[p.kind](u, p, args[2], where)
    return obj


def _h_ordered_dict(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    if args:
        raise _fail(where, "OrderedDict is rebuilt empty, then filled item by item")
    return OrderedDict()


def _h_dtype(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> np.dtype:
    if (
        len(args) != 3
        or type(args[0]) is not str
        or not _DTYPE_BASE.match(args[0])
        or not all(type(a) in (bool, int) and a in (0, 1) for a in args[1:])
    ):
        raise _fail(
            where,
            f"numpy.dtype is only rebuilt as dtype(type code, align, copy), not {_describe(args)}",
        )
    try:
        dtype = np.dtype(args[0], bool(args[1]), True)  # copy: a fresh object for BUILD to fill
    except (TypeError, ValueError) as exc:
        raise _fail(where, f"invalid dtype {args[0]!r}: {exc}") from None
    u.s.register(dtype, "dtype", name, (), None)
    return dtype


def _h_reconstruct(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> np.ndarray:
    if len(args) != 3 or args[1] != (0,) or args[2] not in (b"b", "b") or not _array_class(args[0]):
        raise _fail(
            where,
            f"_reconstruct is only used as _reconstruct(ndarray, (0,), b'b'): {_describe(args)}",
        )
    arr = np.ndarray.__new__(args[0], (0,), "b")
    u.s.register(arr, "ndarray", name, (), None)
    return arr


def _array_class(cls: object) -> bool:
    """numpy.ndarray, or an allowed subclass that pickles exactly like it."""
    return cls is np.ndarray or (
        isinstance(cls, type)
        and issubclass(cls, np.ndarray)
        and not issubclass(cls, np.ma.MaskedArray)
        and cls.__reduce__ is np.ndarray.__reduce__
        and cls.__setstate__ is np.ndarray.__setstate__
    )


def _h_mareconstruct(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    if (
        len(args) != 4
        or args[0] is not np.ma.MaskedArray
        or args[1] is not np.ndarray
        or args[2] != (0,)
        or args[3] not in (b"b", "b")
    ):
        raise _fail(where, f"_mareconstruct is only used for MaskedArray: {_describe(args)}")
    arr = np.ma.core._mareconstruct(  # type: ignore[attr-defined]
        np.ma.MaskedArray, np.ndarray, (0,), "b"
    )
    u.s.register(arr, "masked", name, (), None)
    return arr


def _h_scalar(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    if len(args) not in (1, 2) or not _dtype_arg(u, args[0], where):
        raise _fail(where, f"bad arguments for numpy scalar: {_describe(args)}")
    dtype = args[0]
    if dtype.hasobject:
        if dtype != np.dtype(object) or len(args) != 2:
            raise _fail(where, "object scalars with fields are not supported")
        return args[1]  # numpy's scalar(dtype('O'), obj) is obj itself
    data = args[1] if len(args) == 2 else b""
    if type(data) is str:  # Python 2 pickles
        data = data.encode("latin-1")
    if type(data) not in (bytes, bytearray) or len(data) != dtype.itemsize:
        raise _fail(where, f"a {dtype} scalar needs {dtype.itemsize} bytes, got {_describe(data)}")
    if not data:
        return dtype.type()
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _h_frombuffer(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> np.ndarray:
    # protocol 5: _frombuffer(buffer, dtype, shape, order[, axis_order]); numpy 2 writes order
    # "K" with the axis order for arrays that are neither C nor Fortran contiguous
    if (
        len(args) not in (4, 5)
        or type(args[0]) not in (bytes, bytearray)
        or not _dtype_arg(u, args[1], where)
        or args[3] not in (("C", "F") if len(args) == 4 else ("K",))
    ):
        raise _fail(where, f"bad arguments for _frombuffer: {_describe(args)}")
    buf, dtype = args[0], args[1]
    shape = _shape(args[2], where)
    axes = args[4] if len(args) == 5 else None
    if axes is not None and (
        type(axes) is not tuple
        or sorted(axes) != list(range(len(shape)))
        or not all(_is_int(a) for a in axes)
    ):
        raise _fail(where, f"bad axis order for _frombuffer: {_describe(axes)}")
    if dtype.hasobject:
        raise _fail(where, "object arrays have no raw buffer")
    _check_data(dtype, shape, len(buf), where)
    array = np.frombuffer(buf, dtype=dtype)
    if axes is not None:
        return array.reshape(shape, order="C").transpose(axes)
    return array.reshape(shape, order=args[3])


def _dtype_arg(u: _RestrictedUnpickler, value: object, where: str) -> bool:
    """Whether ``value`` is a dtype whose state is set (BUILD may still change one that is not:
    it must not be in use by then)."""
    if not isinstance(value, np.dtype):
        return False
    if id(value) in u.s.pending:
        raise _fail(where, "a dtype is used before its state is set")
    return True


def _check_data(dtype: np.dtype, shape: tuple[int, ...], nbytes: int, where: str) -> None:
    count = math.prod(shape)
    if dtype.itemsize == 0 and count:
        raise _fail(where, f"arrays of the empty dtype {dtype} are not supported")
    if count * dtype.itemsize != nbytes:
        raise _fail(
            where,
            f"an array {shape} of {dtype} needs {count * dtype.itemsize:,} bytes, got {nbytes:,}",
        )


def _bit_generator_class(value: object, where: str) -> type:
    if isinstance(value, str) and value in _BIT_GENERATORS:
        return _BIT_GENERATORS[value]
    if isinstance(value, type) and value in _BIT_GENERATORS.values():
        return value
    raise _fail(where, f"unknown bit generator {_describe(value)}")


def _h_bit_generator(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    if len(args) != 1:
        raise _fail(where, f"bad arguments for {name}: {_describe(args)}")
    bg = _bit_generator_class(args[0], where)()
    u.s.register(bg, "bitgen", name, (), None)
    return bg


def _bit_generator_arg(u: _RestrictedUnpickler, args: tuple, where: str) -> Any:
    """The bit generator of __generator_ctor / __randomstate_ctor: an instance, or by name."""
    if not 1 <= len(args) <= 2:
        raise _fail(where, f"bad arguments for a random generator: {_describe(args)}")
    if len(args) == 2 and u.s.names.get(id(args[1])) != "numpy.random._pickle.__bit_generator_ctor":
        raise _fail(where, "a random generator is rebuilt with numpy's own bit generator ctor")
    value = args[0]
    if type(value) in _BIT_GENERATORS.values():
        return value
    return _bit_generator_class(value, where)()


def _h_generator(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    gen = np.random.Generator(_bit_generator_arg(u, args, where))
    u.s.register(gen, "generator", name, (), None)
    return gen


def _h_randomstate(u: _RestrictedUnpickler, name: str, args: tuple, where: str) -> Any:
    rs = np.random.RandomState(_bit_generator_arg(u, args, where))
    u.s.register(rs, "randomstate", name, (), None)
    return rs


# helpers that create instances of classes, which a dry run does not do
_CONSTRUCTORS = frozenset({_h_reconstructor, _h_newobj, _h_cython_new, _h_pyx_unpickle})
# what a dry run still builds: numpy's data types, and joblib's arrays (to skip their bytes)
_DATA_KINDS = frozenset({"dtype", "ndarray", "masked", "wrapper"})

_HELPERS: dict[str, Helper] = {
    "_codecs.encode": _h_encode,
    "copyreg._reconstructor": _h_reconstructor,
    "copyreg.__newobj__": _h_newobj,
    "collections.OrderedDict": _h_ordered_dict,
    "numpy.dtype": _h_dtype,
    "numpy._core.multiarray._reconstruct": _h_reconstruct,
    "numpy._core.multiarray.scalar": _h_scalar,
    "numpy._core.numeric._frombuffer": _h_frombuffer,
    "numpy.ma.core._mareconstruct": _h_mareconstruct,
    "numpy.random._pickle.__bit_generator_ctor": _h_bit_generator,
    "numpy.random._pickle.__generator_ctor": _h_generator,
    "numpy.random._pickle.__randomstate_ctor": _h_randomstate,
    "sklearn.metrics._dist_metrics.newObj": _h_cython_new,
    "sklearn.neighbors._kd_tree.newObj": _h_cython_new,
    "sklearn.neighbors._ball_tree.newObj": _h_cython_new,
}


# builtin types that pickle rebuilds through REDUCE, with what their arguments may be


def _b_set(args: tuple, where: str) -> set:
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise _fail(where, f"set is rebuilt from a list, not {_describe(args)}")
    return set(*args)


def _b_frozenset(args: tuple, where: str) -> frozenset:
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise _fail(where, f"frozenset is rebuilt from a list, not {_describe(args)}")
    return frozenset(*args)


def _b_bytearray(args: tuple, where: str) -> bytearray:
    # bytearray(int) allocates what the file asks: only copies of data in the file are allowed
    if not args:
        return bytearray()
    if len(args) == 1 and type(args[0]) in (bytes, bytearray):
        return bytearray(args[0])
    if len(args) == 2 and type(args[0]) is str and args[1] in ("latin-1", "latin1"):
        return bytearray(args[0], "latin-1")
    raise _fail(where, f"bytearray is rebuilt from bytes, not {_describe(args)}")


def _b_bytes(args: tuple, where: str) -> bytes:
    if not args:
        return b""
    if len(args) == 1 and type(args[0]) in (bytes, bytearray):
        return bytes(args[0])
    raise _fail(where, f"bytes is rebuilt from bytes, not {_describe(args)}")


def _b_complex(args: tuple, where: str) -> complex:
    if len(args) > 2 or not all(type(a) in (int, float) for a in args):
        raise _fail(where, f"complex is rebuilt from two numbers, not {_describe(args)}")
    return complex(*args)


def _b_slice(args: tuple, where: str) -> slice:
    if not 1 <= len(args) <= 3 or not all(a is None or type(a) is int for a in args):
        raise _fail(where, f"slice is rebuilt from ints, not {_describe(args)}")
    return slice(*args)


def _b_range(args: tuple, where: str) -> range:
    # the checks every reader shares (the .skv ext node and skops run the same validator)
    validate("builtins.range", where, args, None)
    return range(*args)


_BUILTIN_CALLS: dict[str, Callable[[tuple, str], Any]] = {
    "builtins.set": _b_set,
    "builtins.frozenset": _b_frozenset,
    "builtins.bytearray": _b_bytearray,
    "builtins.bytes": _b_bytes,
    "builtins.complex": _b_complex,
    "builtins.slice": _b_slice,
    "builtins.range": _b_range,
}


# -- BUILD of numpy's own types ------------------------------------------------------------------


def _dtype_from_state(u: _RestrictedUnpickler, base: np.dtype, state: Any, where: str) -> np.dtype:
    """Rebuild a dtype from its pickled state with numpy's public constructors.

    The state's flags, element size and alignment are not trusted: numpy trusts them in
    ``__setstate__`` (an object dtype flagged as holding no references is a use-after-free), so
    the dtype is described again from names, formats, offsets and shapes, and that is the state
    applied.
    """
    bad = _fail(where, f"malformed dtype state {_describe(state)}")
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise bad
    endian, sub, names, fields, elsize, flags = (
        state[1],
        state[2],
        state[3],
        state[4],
        state[5],
        state[7],
    )
    if endian not in ("<", ">", "|", "=") or not _is_int(elsize) or not _is_int(flags):
        raise bad
    try:
        if names is not None or fields is not None:
            canonical = _struct_dtype(u, names, fields, elsize, flags, where)
        elif sub is not None:
            if type(sub) is not tuple or len(sub) != 2 or not _dtype_arg(u, sub[0], where):
                raise bad
            canonical = np.dtype((sub[0], _shape(sub[1], where)))
        else:
            canonical = _plain_dtype(base, state, elsize, where)
            if endian in "<>" and canonical.byteorder != "|":
                canonical = canonical.newbyteorder(endian)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(where, f"invalid dtype state: {exc}") from None
    if canonical.hasobject and canonical != np.dtype(object):
        raise _fail(where, "dtypes with object fields or object subarrays are not supported")
    if canonical.kind != base.kind or canonical.itemsize != base.itemsize:
        raise _fail(where, f"dtype state {canonical} does not match its type code {base.str}")
    return canonical


def _plain_dtype(base: np.dtype, state: tuple, elsize: int, where: str) -> np.dtype:
    kind = base.kind
    if kind in "SUV" and elsize > 0:
        if kind == "U" and elsize % 4:
            raise _fail(where, f"a unicode dtype of {elsize} bytes")
        return np.dtype(f"{kind}{elsize // 4 if kind == 'U' else elsize}")
    if kind in "mM":
        meta = state[8] if len(state) == 9 else None
        if (
            type(meta) is not tuple
            or len(meta) != 2
            or type(meta[1]) is not tuple
            or len(meta[1]) != 4
        ):
            raise _fail(where, "a datetime dtype without its unit")
        unit, num = meta[1][0], meta[1][1]
        if isinstance(unit, bytes):
            unit = unit.decode("ascii", "replace")
        if unit not in _DATETIME_UNITS or not _is_int(num) or not 0 < num < 2**31:
            raise _fail(where, f"bad datetime unit {_describe(meta[1])}")
        if unit == "generic":
            return np.dtype(f"{kind}8")
        return np.dtype(f"{kind}8[{'' if num == 1 else num}{unit}]")
    return np.dtype(base.str)


def _struct_dtype(
    u: _RestrictedUnpickler, names: Any, fields: Any, elsize: int, flags: int, where: str
) -> np.dtype:
    if (
        type(names) is not tuple
        or not 0 < len(names) <= _MAX_FIELDS
        or not all(type(n) is str for n in names)
        or len(set(names)) != len(names)
        or type(fields) is not dict
        or not 0 <= elsize < 2**31
    ):
        raise _fail(where, "malformed structured dtype state")
    formats, offsets, titles = [], [], []
    for n in names:
        f = fields.get(n)
        if (
            type(f) is not tuple
            or len(f) not in (2, 3)
            or not _dtype_arg(u, f[0], where)
            or not _is_int(f[1])
            or not 0 <= f[1] < 2**31
            or (len(f) == 3 and f[2] is not None and type(f[2]) is not str)
        ):
            raise _fail(where, f"malformed field {n!r} in a structured dtype state")
        formats.append(f[0])
        offsets.append(f[1])
        titles.append(f[2] if len(f) == 3 else None)
    spec: dict[str, Any] = {
        "names": list(names),
        "formats": formats,
        "offsets": offsets,
        "itemsize": elsize,
    }
    if any(t is not None for t in titles):
        spec["titles"] = titles
    return np.dtype(spec, align=bool(flags & _ALIGNED_STRUCT))  # type: ignore[call-overload]


def _b_dtype(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    dtype: np.dtype = p.obj
    canonical = _dtype_from_state(u, dtype, state, where)
    try:
        dtype.__setstate__(canonical.__reduce__()[2])  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise _fail(where, f"invalid dtype state: {exc}") from None
    if (
        dtype != canonical
        or dtype.str != canonical.str
        or dtype.itemsize != canonical.itemsize
        or dtype.hasobject != canonical.hasobject
    ):  # pragma: no cover - numpy applies its own state exactly
        raise _fail(where, f"dtype state does not rebuild {canonical}")


def _array_state(u: _RestrictedUnpickler, state: Any, n_extra: int, where: str) -> tuple[Any, ...]:
    """Check the state ``(version, shape, dtype, fortran, data, *extra)`` of an array."""
    if type(state) is not tuple or len(state) not in (4 + n_extra, 5 + n_extra):
        raise _fail(where, f"malformed array state {_describe(state)}")
    if len(state) == 5 + n_extra:
        if not _is_int(state[0]):
            raise _fail(where, "malformed array state version")
        state = state[1:]
    shape, dtype, fortran, data = state[:4]
    shape = _shape(shape, where)
    if not _dtype_arg(u, dtype, where):
        raise _fail(where, f"an array's dtype is a {type(dtype).__name__}")
    if type(fortran) not in (bool, int) or fortran not in (0, 1):
        raise _fail(where, "an array's order flag must be a bool")
    if dtype.hasobject:
        if dtype != np.dtype(object) or type(data) is not list:
            raise _fail(where, "an object array's items must be a list")
        if len(data) != math.prod(shape):
            raise _fail(where, f"an object array {shape} with {len(data)} items")
    else:
        if type(data) is str:  # Python 2 pickles read with encoding="latin1"
            data = data.encode("latin-1")
        if type(data) not in (bytes, bytearray):
            raise _fail(where, f"an array's data is a {type(data).__name__}")
        _check_data(dtype, shape, len(data), where)
    return (shape, dtype, fortran, data, *state[4:])


def _b_ndarray(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    shape, dtype, fortran, data = _array_state(u, state, 0, where)
    try:
        p.obj.__setstate__((1, shape, dtype, bool(fortran), data))
    except (TypeError, ValueError) as exc:
        raise _fail(where, f"invalid array state: {exc}") from None


def _b_masked(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    shape, dtype, fortran, data, mask, fill = _array_state(u, state, 2, where)
    if type(mask) is str:
        mask = mask.encode("latin-1")
    mask_dtype = np.ma.make_mask_descr(dtype)
    if type(mask) not in (bytes, bytearray):
        raise _fail(where, "a masked array's mask must be bytes")
    _check_data(mask_dtype, shape, len(mask), where)
    if not (
        fill is None or isinstance(fill, (np.ndarray, np.generic, int, float, complex, str, bytes))
    ):
        raise _fail(where, f"a masked array's fill value is a {type(fill).__name__}")
    try:
        p.obj.__setstate__((1, shape, dtype, bool(fortran), data, mask, fill))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(where, f"invalid masked array state: {exc}") from None


def _b_bitgen(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    # numpy 2: (state dict, seed sequence or None); numpy 1.x: the state dict
    if type(state) is tuple and len(state) == 2:
        if state[1] is not None and type(state[1]) is not np.random.SeedSequence:
            raise _fail(where, "a bit generator's seed sequence must be a SeedSequence")
        if u.s.pending.get(id(state[1])) is not None:
            raise _fail(where, "a bit generator's seed sequence is not built yet")
    elif type(state) is not dict:
        raise _fail(where, f"a bit generator's state is a {type(state).__name__}")
    if type(state if type(state) is dict else state[0]) is not dict:
        raise _fail(where, "a bit generator's state must be a dict")
    _set_numpy_state(p, state, where)


def _b_random(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    # RandomState: its get_state() dict or the legacy tuple; Generator (numpy 1.x): a dict
    if type(state) is not dict and not (p.kind == "randomstate" and type(state) is tuple):
        raise _fail(where, f"a random generator's state is a {type(state).__name__}")
    _set_numpy_state(p, state, where)


def _set_numpy_state(p: _Pending, state: Any, where: str) -> None:
    # numpy checks these states itself (the generator's name, key lengths, value ranges)
    try:
        p.obj.__setstate__(state)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise InvalidStateError(where, p.name, f"bad generator state: {exc}") from None


def _b_wrapper(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    """joblib's NumpyArrayWrapper: read the array written right after it, in its place."""
    if u.nested or not u.s.inline_arrays:
        raise _fail(
            where,
            "a joblib array wrapper inside an object array's or a .npy file's pickle (joblib "
            "reads array data only after wrappers of its top-level pickle)",
        )
    if (
        type(state) is not dict
        or not {"subclass", "shape", "order", "dtype"} <= set(state) <= _WRAPPER_KEYS
    ):
        raise _fail(where, f"malformed joblib array wrapper {_describe(state)}")
    shape = _shape(state["shape"], where)
    dtype, order, align = state["dtype"], state["order"], state.get("numpy_array_alignment_bytes")
    if (
        not _array_class(state["subclass"])
        or not _dtype_arg(u, dtype, where)
        or order not in ("C", "F")
    ):
        raise _fail(where, "malformed joblib array wrapper (subclass, dtype or order)")
    if align is not None and (not _is_int(align) or not 0 < align <= 4096):
        raise _fail(where, f"bad joblib array alignment {align!r}")
    if dtype.hasobject:
        # an object array is a complete pickle of its own, right after the wrapper
        if u._frame_left():
            raise _fail(where, "array data starts inside a pickle frame")
        u._unframer.current_frame = None
        array = _RestrictedUnpickler(u.s, nested=True).load()
        if u.s.dry:
            u.stack[-1] = _INERT
            return
        if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != shape:
            raise _fail(where, "a joblib object array does not match its wrapper")
    else:
        if align is not None:
            (pad,) = u.read_raw(1, where)
            if pad > align:
                raise _fail(where, f"joblib array padding of {pad} bytes (alignment {align})")
            u.read_raw(pad, where)
        count = math.prod(shape)
        _check_data(dtype, shape, count * dtype.itemsize, where)
        data = u.read_raw(count * dtype.itemsize, where)
        flat = np.frombuffer(data, dtype=dtype) if count else np.empty(0, dtype=dtype)
        array = flat.reshape(shape[::-1]).transpose() if order == "F" else flat.reshape(shape)
        if _byte_order_mismatch(array.dtype):
            # joblib's default (ensure_native_byte_order="auto"): values kept, host byte order
            array = array.byteswap().view(array.dtype.newbyteorder("="))
    u.stack[-1] = array


def _byte_order_mismatch(dtype: np.dtype) -> bool:
    other = ">" if sys.byteorder == "little" else "<"
    if dtype.byteorder == other:
        return True
    return bool(
        dtype.byteorder == "|"
        and dtype.fields
        and all(f[0].byteorder == other for f in dtype.fields.values())
    )


def _seed_sequence(state: Any, where: str) -> None:
    """SeedSequence's generated setter assigns ``pool`` and ``pool_size`` as they come, and its
    mixing loops index the pool up to ``pool_size``: they must agree."""
    ok: Any = type(state) is tuple and len(state) == 5
    if ok:
        entropy, spawned, pool, pool_size, spawn_key = state
        ok = (
            _is_int(pool_size)
            and 4 <= pool_size <= 1 << 16
            and isinstance(pool, np.ndarray)
            and pool.dtype == np.uint32
            and pool.shape == (pool_size,)
            and _is_int(spawned)
            and 0 <= spawned < 2**32
            and type(spawn_key) is tuple
            and all(_is_int(k) and k >= 0 for k in spawn_key)
            and (
                entropy is None
                or (isinstance(entropy, (int, np.integer)) and entropy >= 0)
                or (
                    isinstance(entropy, (list, tuple, np.ndarray))
                    and len(entropy) <= 1 << 16
                    and all(isinstance(e, (int, np.integer)) and e >= 0 for e in entropy)
                )
            )
        )
    if not ok:
        raise InvalidStateError(where, "numpy.random.bit_generator.SeedSequence", "malformed state")


def _b_object(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    u.build_object(p, state, where)


def _b_cython(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    u.build_object(p, state, where, cython=True)


def _b_seedseq(u: _RestrictedUnpickler, p: _Pending, state: Any, where: str) -> None:
    _seed_sequence(state, where)
    try:
        p.obj.__setstate_cython__(state)
    except Exception as exc:
        raise InvalidStateError(where, p.name, f"restoring its state failed: {_exc(exc)}") from None


_BUILDERS: dict[str, Callable[[_RestrictedUnpickler, _Pending, Any, str], None]] = {
    "object": _b_object,
    "dtype": _b_dtype,
    "ndarray": _b_ndarray,
    "masked": _b_masked,
    "bitgen": _b_bitgen,
    "generator": _b_random,
    "randomstate": _b_random,
    "wrapper": _b_wrapper,
    "cython": _b_cython,
    "seedseq": _b_seedseq,
}


# -- loading -------------------------------------------------------------------------------------


@dataclasses.dataclass
class LegacyObject:
    """An object read from a legacy file, with what :func:`read_legacy` learnt about the file.

    Attributes
    ----------
    obj : object
        The rebuilt object.
    format : str
        ``"pickle"``, ``"joblib"`` (a plain joblib file), ``"joblib-<compression>"`` (``zlib``,
        ``gzip``, ``bz2``, ``lzma``, ``xz``, ``lz4``, ``zfile``), ``"npy"`` or ``"skops"``.
    protocol : int or None
        The pickle protocol, when the file is a pickle.
    trusted : list of str
        The names of ``trusted=`` that the file used (default trust would have refused them).
    """

    obj: Any
    format: str
    protocol: int | None = None
    trusted: list[str] = dataclasses.field(default_factory=list)


def legacy_format_name(kind: str, *, joblib: bool = False) -> str:
    """Return the name shown to people for a format :func:`~._detect.detect` reports."""
    if kind == "pickle":
        return "joblib" if joblib else "pickle"
    if kind in COMPRESSED:
        return "joblib-zfile" if kind == "ZF" else f"joblib-{kind}"
    return kind


def _run(session: _Session) -> Any:
    """Unpickle one pickle from the session's stream, turning every failure into skvault's."""
    u = _RestrictedUnpickler(session)
    error: SkvaultError | None = None
    value = None
    try:
        with deferred_validation():
            value = u.load()
            if not session.dry:
                session.finish(u.where())
    except SkvaultError as exc:
        error = exc
    except MemoryError:
        error = FormatError(
            f"not a loadable pickle (at {u.where()}): it asks for more memory than is available"
        )
    except RecursionError:
        error = FormatError(f"not a loadable pickle (at {u.where()}): nested too deeply")
    except Exception as exc:  # whatever the stream made pickle raise: the file is malformed
        error = FormatError(f"not a valid pickle (at {u.where()}): {_message(exc)}")
    if session.refused:
        raise session.refusal(error) from None
    if error is not None:
        raise error from None
    return value


def _load_npy(reader: _Reader, policy: TrustPolicy, allow_pickle: bool) -> tuple[Any, _Session]:
    session = _Session(policy, reader)
    try:
        version = np.lib.format.read_magic(reader)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(reader)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(reader)
    except Exception as exc:  # numpy's header parser: ValueError, SyntaxError, TokenError...
        raise FormatError(f"not a valid .npy file: {_message(exc)}") from None
    shape = _shape(tuple(shape), "the .npy header")
    if dtype.hasobject:
        if not allow_pickle:
            raise PickleNotAllowedError(
                "this .npy file holds an object array, stored as a pickle: load it with "
                "allow_pickle=True (skvault's restricted unpickler) or audit it first with "
                "skvault audit FILE",
                format="npy",
            )
        session.inline_arrays = False
        array = _run(session)
        if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != shape:
            raise FormatError("the pickle in this .npy file does not match its header")
        return array, session
    count = math.prod(shape)
    _check_data(dtype, shape, count * dtype.itemsize, "the .npy header")
    data = reader.read_bytearray(count * dtype.itemsize)
    if reader.read(1):
        raise FormatError(f"data after the end of the .npy array at byte {reader.pos - 1}")
    flat = np.frombuffer(data, dtype=dtype) if count else np.empty(0, dtype=dtype)
    return (flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)), session


def _display(file: FileLike) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else "FILE"


def _not_allowed(file: FileLike, kind: str) -> PickleNotAllowedError:
    shown = _display(file)
    what = legacy_format_name(kind)
    return PickleNotAllowedError(
        f"{shown} is a {what} file: loading pickle or joblib data can run code chosen by "
        "whoever wrote it, so skvault does not load it by default.\n"
        f"  - list what it references, without loading it:  skvault audit {shown}\n"
        f"  - convert it once to a safe .skv artifact:        skvault convert {shown} OUT.skv\n"
        "  - or load it through skvault's restricted unpickler (allow-listed types only, no "
        "code from the file): skvault.load(file, allow_pickle=True)",
        format=what,
    )


def _read(
    fh: IO[bytes],
    file: FileLike,
    policy: TrustPolicy,
    *,
    allow_pickle: bool,
    max_bytes: int,
) -> LegacyObject:
    kind = detect_file(fh)
    if kind == "skv":
        raise FormatError("this file is already a .skv artifact: read it with skvault.load")
    if kind == "skops":
        from ._skops import read_skops  # the skops reader: skvault's own, under the same policy

        return LegacyObject(read_skops(fh).construct(policy), "skops")
    if kind == "zip":
        raise FormatError("a zip file that is neither a .skv artifact nor a skops file")
    if kind in ("empty", "unknown"):
        raise FormatError(f"not a pickle, joblib, skops or .npy file (format: {kind})")
    if kind != "npy" and not allow_pickle:
        raise _not_allowed(file, kind)
    with open_stream(fh, max_bytes=max_bytes) as stream:
        reader = _Reader(stream, max_bytes)
        if kind == "npy":
            obj, session = _load_npy(reader, policy, allow_pickle)
        else:
            session = _Session(policy, reader)
            obj = _run(session)
    return LegacyObject(
        obj,
        legacy_format_name(kind, joblib=session.joblib),
        session.protocol,
        sorted(session.trusted_used),
    )


def read_legacy(
    file: FileLike,
    *,
    trusted: Iterable[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LegacyObject:
    """Read a pickle, joblib, skops or ``.npy`` file through skvault's restricted readers.

    Reading a pickle or joblib file this way is what the caller asks for (``skvault convert``,
    ``load(..., allow_pickle=True)``): nothing outside the allow-list is imported, and nothing
    from the file is called except checked reconstruction paths.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The legacy file; its format is detected from its content.
    trusted : list of str, optional
        Names to accept beyond the default allow-list (never a dangerous one).
    max_bytes : int, default=DEFAULT_MAX_BYTES
        The most bytes the file, decompressed, may hold.

    Returns
    -------
    LegacyObject

    Raises
    ------
    UntrustedTypeError
        If the file names globals that are not trusted; every refused name is listed.
    InvalidStateError
        If an object's state breaks an invariant its type relies on.
    FormatError
        If the file is malformed, truncated, has data after its pickle, uses an unsupported
        construct, or names classes that no longer exist in the running versions.
    """
    policy = TrustPolicy(trusted)
    with open_input(file, limit=max_bytes) as fh:
        return _read(fh, file, policy, allow_pickle=True, max_bytes=max_bytes)


def load_legacy(
    file: FileLike,
    *,
    trusted: Iterable[str] | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Load a legacy file (pickle, joblib, skops or ``.npy``): ``skvault.load``'s other half.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The file; its format is detected from its content.
    trusted : list of str, optional
        Names to accept beyond the default allow-list.
    allow_pickle : bool, default=False
        Pickle and joblib files (and ``.npy`` files of object arrays) load only when True, and
        then through the restricted unpickler; skops and plain ``.npy`` files need no flag.

    Returns
    -------
    object

    Raises
    ------
    PickleNotAllowedError
        If the file is a pickle or joblib file and ``allow_pickle`` is False; the message says
        how to audit or convert it.
    UntrustedTypeError, InvalidStateError, FormatError
        As :func:`read_legacy`.
    """
    policy = TrustPolicy(trusted)
    with open_input(file, limit=DEFAULT_MAX_BYTES) as fh:
        return _read(fh, file, policy, allow_pickle=allow_pickle, max_bytes=DEFAULT_MAX_BYTES).obj
