"""Generate the security corpus: malicious pickle, joblib, ``.npy``, skops and ``.skv`` files.

Nothing hostile is committed as a binary: every sample is built here, from pickle opcodes written
by hand or from ``pickle.dumps`` of a small object whose ``__reduce__`` returns the gadget. Each
payload is harmless but observable: it creates one marker file (``touch MARKER`` through a
shell, or Python code ``open(MARKER, 'w')``), so a test can tell whether it ran.

:data:`SAMPLES` is the table the tests are parametrised over. For each sample it records what
the audit must report (`Flag`: the ``module.name`` an auditor must list and the classifications
acceptable for it; whether a problem with the stream must be reported) and how its payload is
proved real (`Sample.control`): the plain, unsafe loader that runs it (``pickle.load``,
``joblib.load``, ``numpy.load(allow_pickle=True)``, ``skops.io.load(trusted=...)``, or
``skvault.load(trusted=...)`` for ``.skv`` files), optionally followed by a use of the loaded
object (`Sample.use`: an estimator carrying ``os.system`` runs it when it transforms). Samples
with no control are "reference only" and say why (`Sample.reason`).

Run as a script (``python _corpus.py control DIR``), this module writes the corpus into ``DIR``
and runs every sample's control, then writes ``DIR/control.json`` (sample id -> whether its
marker appeared, and the exception the loader raised). The tests do that in one subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shlex
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SAMPLES",
    "Corpus",
    "Flag",
    "Sample",
    "run_control",
    "write_corpus",
]

# -- pickle opcodes ------------------------------------------------------------------------------

MARK = pickle.MARK
STOP = pickle.STOP
POP = pickle.POP
REDUCE = pickle.REDUCE
TUPLE = pickle.TUPLE
TUPLE1 = pickle.TUPLE1
EMPTY_TUPLE = pickle.EMPTY_TUPLE
EMPTY_LIST = pickle.EMPTY_LIST
APPENDS = pickle.APPENDS
NONE = pickle.NONE
NEWTRUE = pickle.NEWTRUE
GLOBAL = pickle.GLOBAL
INST = pickle.INST
OBJ = pickle.OBJ
BINGET = pickle.BINGET
MEMOIZE = pickle.MEMOIZE
STACK_GLOBAL = pickle.STACK_GLOBAL
FRAME = pickle.FRAME
PROTO = pickle.PROTO
BINUNICODE = pickle.BINUNICODE
SHORT_BINUNICODE = pickle.SHORT_BINUNICODE
SHORT_BINBYTES = pickle.SHORT_BINBYTES
UNICODE = pickle.UNICODE
LIST = pickle.LIST
APPEND = pickle.APPEND


def _str(text: str, proto: int) -> bytes:
    """A str pushed with the opcode the given protocol would use."""
    raw = text.encode("utf-8")
    if proto == 0:
        return UNICODE + text.encode("raw-unicode-escape") + b"\n"
    if proto >= 4 and len(raw) < 256:
        return SHORT_BINUNICODE + bytes([len(raw)]) + raw
    return BINUNICODE + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
    """The text-form GLOBAL opcode (every protocol reads it)."""
    return GLOBAL + f"{module}\n{name}\n".encode()


def _stack_global(module: str, name: str) -> bytes:
    return _str(module, 4) + _str(name, 4) + STACK_GLOBAL


def _tuple(*items: bytes) -> bytes:
    if not items:
        return EMPTY_TUPLE
    return MARK + b"".join(items) + TUPLE


def _call(fn: bytes, *args: bytes) -> bytes:
    """``fn(*args)``: the callable, its argument tuple, REDUCE."""
    return fn + _tuple(*args) + REDUCE


def _list(*items: bytes, proto: int) -> bytes:
    if proto == 0:
        return MARK + LIST + b"".join(item + APPEND for item in items)
    return EMPTY_LIST + MARK + b"".join(items) + APPENDS


def _pickle(body: bytes, proto: int) -> bytes:
    return (PROTO + bytes([proto]) if proto >= 2 else b"") + body + STOP


# -- payloads ------------------------------------------------------------------------------------


def shell(marker: Path) -> str:
    """A shell command that creates ``marker``."""
    return f"touch {shlex.quote(str(marker))}"


def code(marker: Path) -> str:
    """Python source (one expression statement) that creates ``marker``."""
    return f"open({str(marker)!r}, 'w').close()"


class _Reduce:
    """Pickles as ``fn(*args)``: what any class's ``__reduce__`` can make an unpickler call."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.fn, self.args


def _system(marker: Path) -> _Reduce:
    # os.system is posix.system on POSIX: pickle writes the defining module, "posix"
    return _Reduce(os.system, shell(marker))


# -- the sample table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A name the audit must list, and the classifications acceptable for it.

    Attributes
    ----------
    qualified : str
        ``module.name`` as an unpickler would resolve it (Python 3 names; a dotted pickle name is
        the module, a dot, then the dotted name).
    allowed : frozenset of str
        Acceptable classifications: ``{"dangerous"}`` for known gadgets, ``{"unknown"}`` for a
        type that is merely not on the allow-list.
    """

    qualified: str
    allowed: frozenset[str] = frozenset({"dangerous"})


def _flags(*names: str) -> tuple[Flag, ...]:
    return tuple(Flag(n) for n in names)


Builder = Callable[[Path, Path, Path], None]


@dataclass(frozen=True)
class Sample:
    """One malicious file of the corpus.

    Attributes
    ----------
    id : str
        The pytest id, also the file's stem and its marker's name.
    kind : {"pickle", "joblib", "npy", "skops", "skv"}
        What the file is (skvault detects it from the content; the suffix only helps people).
    build : callable
        ``build(dest, marker, aux)`` writes the file at ``dest``; ``aux`` is a directory for
        files the payload itself loads (nested loaders, a script for runpy).
    flags : tuple of Flag
        Names the audit must list, with acceptable classifications.
    problem : bool
        Whether the audit must also report a problem with the stream (truncation, framing).
    control : str or None
        The unsafe loader that runs the payload: ``"pickle"``, ``"pickle-all"`` (``pickle.load``
        until the end of the file), ``"pickle-py"`` (the pure-Python ``pickle._Unpickler``),
        ``"joblib"``, ``"numpy"``, ``"skops"`` (``skops.io.load`` trusting the names
        ``skops.io.get_untrusted_types`` lists), ``"skv"`` (``skvault.load`` trusting the flagged
        names). None: reference only.
    use : tuple or None
        ``(method, argument)`` called on the loaded object after the control loads it: the
        payload runs when the model is used, not when it is loaded.
    reason : str
        For reference-only samples, why the payload is not run in the control.
    """

    id: str
    kind: str
    build: Builder
    flags: tuple[Flag, ...] = ()
    problem: bool = False
    control: str | None = "pickle"
    use: tuple[str, Any] | None = None
    reason: str = ""

    @property
    def suffix(self) -> str:
        return {"pickle": ".pkl", "joblib": ".joblib", "npy": ".npy", "skops": ".skops"}.get(
            self.kind, ".skv"
        )


def _write(data: bytes) -> Builder:
    def build(dest: Path, marker: Path, aux: Path) -> None:
        dest.write_bytes(data)

    return build


def _bytes(fn: Callable[[Path], bytes]) -> Builder:
    """A builder from a function of the marker returning the file's bytes."""

    def build(dest: Path, marker: Path, aux: Path) -> None:
        dest.write_bytes(fn(marker))

    return build


def _dumps(make: Callable[[Path], Any], proto: int) -> Builder:
    return _bytes(lambda m: pickle.dumps(make(m), protocol=proto))


def _joblib(make: Callable[[Path], Any], compress: Any = 0) -> Builder:
    def build(dest: Path, marker: Path, aux: Path) -> None:
        import joblib

        joblib.dump(make(marker), dest, compress=compress)

    return build


SAMPLES: list[Sample] = []


def _add(*samples: Sample) -> None:
    SAMPLES.extend(samples)


# the basic gadget under every protocol, as pickle.dumps writes it
for _p in range(6):
    _add(Sample(f"system-proto{_p}", "pickle", _dumps(_system, _p), _flags("posix.system")))


def _os_system(m: Path) -> bytes:
    return _pickle(_call(_global("os", "system"), _str(shell(m), 2)), 2)


def _nt_system(m: Path) -> bytes:
    return _pickle(_call(_global("nt", "system"), _str(shell(m), 2)), 2)


def _subprocess_run(m: Path) -> bytes:
    # protocol 0: text opcodes only, the list built with MARK LIST / APPEND
    argv = _list(_str("touch", 0), _str(str(m), 0), proto=0)
    return _pickle(_call(_global("subprocess", "run"), argv), 0)


def _eval(m: Path) -> bytes:
    return _pickle(_call(_stack_global("builtins", "eval"), _str(code(m), 4)), 4)


def _compile_exec(m: Path) -> bytes:
    compiled = _call(
        _global("builtins", "compile"), *(_str(s, 3) for s in (code(m), "<x>", "exec"))
    )
    return _pickle(_call(_global("builtins", "exec"), compiled), 3)


def _getattr(obj: bytes, attr: str, proto: int) -> bytes:
    return _call(_global("builtins", "getattr"), obj, _str(attr, proto))


def _getattr_import(m: Path) -> bytes:
    os_module = _call(_global("builtins", "__import__"), _str("os", 2))
    return _pickle(_call(_getattr(os_module, "system", 2), _str(shell(m), 2)), 2)


def _import_module(m: Path) -> bytes:
    os_module = _call(_global("importlib", "import_module"), _str("os", 3))
    return _pickle(_call(_getattr(os_module, "system", 3), _str(shell(m), 3)), 3)


def _resolve_name(m: Path) -> bytes:
    system = _call(_global("pkgutil", "resolve_name"), _str("os:system", 4))
    return _pickle(_call(system, _str(shell(m), 4)), 4)


def _run_path(dest: Path, marker: Path, aux: Path) -> None:
    script = aux / f"{dest.stem}.py"
    script.write_text(code(marker) + "\n")
    dest.write_bytes(_pickle(_call(_global("runpy", "run_path"), _str(str(script), 4)), 4))


def _ctypes(m: Path) -> bytes:
    libc = _call(_global("ctypes", "CDLL"), NONE)
    cmd = shell(m).encode()
    return _pickle(_call(_getattr(libc, "system", 4), SHORT_BINBYTES + bytes([len(cmd)]) + cmd), 4)


def _pip(m: Path) -> bytes:
    # `pip freeze --log FILE` writes its log to FILE: offline, but still never run here
    args = ["freeze", "--log", str(m), "--disable-pip-version-check", "--no-input", "--isolated"]
    argv = _list(*(_str(a, 4) for a in args), proto=4)
    return _pickle(_call(_stack_global("pip._internal.cli.main", "main"), argv), 4)


def _timeit(m: Path) -> bytes:
    # the setup statement runs once; the timed "pass" a million times, in milliseconds
    return _pickle(_call(_global("timeit", "timeit"), _str("pass", 3), _str(code(m), 3)), 3)


def _cprofile(m: Path) -> bytes:
    return _pickle(_call(_global("cProfile", "run"), _str(code(m), 2)), 2)


def _pty(m: Path) -> bytes:
    argv = _list(_str("touch", 4), _str(str(m), 4), proto=4)
    return _pickle(_call(_stack_global("pty", "spawn"), argv), 4)


def _webbrowser_open(m: Path) -> bytes:
    # called without a URL: even a loader that ran it could not start a browser
    return _pickle(_call(_stack_global("webbrowser", "open")), 4)


def _webbrowser_get(m: Path) -> bytes:
    # webbrowser.get("touch %s") returns a GenericBrowser whose "browser" is touch; its open()
    # runs `touch URL` and waits for it
    browser = _call(_stack_global("webbrowser", "get"), _str("touch %s", 4))
    return _pickle(_call(_getattr(browser, "open", 4), _str(str(m), 4)), 4)


def _interpreter(m: Path) -> bytes:
    interp = _call(_global("code", "InteractiveInterpreter"))
    return _pickle(_call(_getattr(interp, "runsource", 4), _str(code(m), 4)), 4)


def _codeop(m: Path) -> bytes:
    compiled = _call(_global("codeop", "compile_command"), *(_str(s, 2) for s in (code(m), "<x>")))
    return _pickle(_call(_global("builtins", "exec"), compiled), 2)


def _attrgetter(m: Path) -> bytes:
    getter = _call(_global("operator", "attrgetter"), _str("system", 4))
    os_module = _call(_global("importlib", "import_module"), _str("os", 4))
    return _pickle(_call(_call(getter, os_module), _str(shell(m), 4)), 4)


def _methodcaller(m: Path) -> bytes:
    caller = _call(_global("operator", "methodcaller"), _str("system", 4), _str(shell(m), 4))
    os_module = _call(_global("builtins", "__import__"), _str("os", 4))
    return _pickle(_call(caller, os_module), 4)


def _partial(m: Path) -> bytes:
    bound = _call(_global("functools", "partial"), _global("os", "system"), _str(shell(m), 4))
    return _pickle(_call(bound), 4)


def _pipepager(m: Path) -> bytes:
    return _pickle(_call(_global("pydoc", "pipepager"), _str("", 3), _str(shell(m), 3)), 3)


def _reconstructor(m: Path) -> bytes:
    # copyreg._reconstructor(cls, base, state) calls base.__init__(obj, state): Popen(argv)
    popen = _global("subprocess", "Popen")
    argv = _list(_str("touch", 2), _str(str(m), 2), proto=2)
    return _pickle(_call(_global("copyreg", "_reconstructor"), popen, popen, argv), 2)


def _dotted(module: str, name: str, proto: int, *, stack: bool = True) -> Builder:
    def fn(m: Path) -> bytes:
        ref = _stack_global(module, name) if stack else _global(module, name)
        return _pickle(_call(ref, _str(shell(m), proto)), proto)

    return _bytes(fn)


def _load_builtins(m: Path) -> bytes:
    # numpy.load.__builtins__ is the builtins dict of a Python function (3.10+): .get("eval")
    getter = _stack_global("numpy", "load.__builtins__.get")
    return _pickle(_call(_call(getter, _str("eval", 4)), _str(code(m), 4)), 4)


def _load_globals(m: Path) -> bytes:
    # numpy.load.__globals__ is its module's namespace; .get("os") is the os module
    os_module = _call(_stack_global("numpy", "load.__globals__.get"), _str("os", 4))
    return _pickle(_call(_getattr(os_module, "system", 4), _str(shell(m), 4)), 4)


def _inner_pickle(aux: Path, stem: str, marker: Path) -> Path:
    inner = aux / f"{stem}-inner.pkl"
    inner.write_bytes(pickle.dumps(_system(marker), protocol=4))
    return inner


def _nested_joblib(dest: Path, marker: Path, aux: Path) -> None:
    import joblib

    inner = _inner_pickle(aux, dest.stem, marker)
    dest.write_bytes(pickle.dumps(_Reduce(joblib.load, str(inner)), protocol=4))


def _nested_pandas(dest: Path, marker: Path, aux: Path) -> None:
    inner = _inner_pickle(aux, dest.stem, marker)
    dest.write_bytes(_pickle(_call(_global("pandas", "read_pickle"), _str(str(inner), 4)), 4))


def _object_array(marker: Path) -> Any:
    import numpy as np

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 1.5, _system(marker)
    return arr


def _nested_numpy(dest: Path, marker: Path, aux: Path) -> None:
    import numpy as np

    inner = aux / f"{dest.stem}-inner.npy"
    np.save(inner, _object_array(marker), allow_pickle=True)
    # numpy.load(file, mmap_mode=None, allow_pickle=True)
    dest.write_bytes(pickle.dumps(_Reduce(np.load, str(inner), None, True), protocol=4))


def _npy(dest: Path, marker: Path, aux: Path) -> None:
    import numpy as np

    with open(dest, "wb") as fh:
        np.save(fh, _object_array(marker), allow_pickle=True)


def _after_array(marker: Path) -> Any:
    import numpy as np

    # 80 kB of raw array data first: scanners that stop at the first array miss what follows
    return (np.arange(10_000.0), _system(marker))


def _after_stop(m: Path) -> bytes:
    benign = pickle.dumps([1, 2, 3], protocol=4)
    return benign + pickle.dumps(_system(m), protocol=4)


def _truncated(m: Path) -> bytes:
    payload = _call(_global("os", "system"), _str(shell(m), 2))
    # then a BINUNICODE announcing 100 bytes of which 3 are there, and no STOP
    return PROTO + b"\x02" + payload + EMPTY_LIST + BINUNICODE + struct.pack("<I", 100) + b"abc"


def _frame(body: bytes, length: int) -> bytes:
    return PROTO + b"\x04" + FRAME + struct.pack("<Q", length) + body


def _frame_short(m: Path) -> bytes:
    # the frame announces only the first opcode (EMPTY_LIST, POP = 2 bytes); the payload
    # follows outside any frame, which CPython's unpickler reads all the same
    body = EMPTY_LIST + POP + _call(_stack_global("os", "system"), _str(shell(m), 4)) + STOP
    return _frame(body, 2)


def _frame_long(m: Path) -> bytes:
    body = _call(_stack_global("os", "system"), _str(shell(m), 4)) + STOP
    return _frame(body, len(body) + 1000)


def _inst(m: Path) -> bytes:
    # protocol 0 INST: MARK, args, INST module name -> module.name(*args)
    return MARK + _str(shell(m), 0) + INST + b"os\nsystem\n" + STOP


def _obj(m: Path) -> bytes:
    # protocol 1 OBJ: MARK, callable, args, OBJ -> callable(*args)
    argv = _list(_str("touch", 1), _str(str(m), 1), proto=1)
    return MARK + _global("subprocess", "check_call") + argv + OBJ + STOP


def _memo(m: Path) -> bytes:
    # the names are memoised, dropped, and fetched back for STACK_GLOBAL with BINGET
    names = _str("os", 4) + MEMOIZE + _str("system", 4) + MEMOIZE + POP + POP
    ref = BINGET + b"\x00" + BINGET + b"\x01" + STACK_GLOBAL
    return _pickle(names + _call(ref, _str(shell(m), 4)), 4)


def _function_transformer(marker: Path) -> Any:
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(func=os.system)


def _skops_estimator(dest: Path, marker: Path, aux: Path) -> None:
    import skops.io

    skops.io.dump(_function_transformer(marker), dest)


def _skops_node(loader: str, module: str, cls: str, **fields: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": loader, **fields}


def _skops_json(value: Any) -> dict[str, Any]:
    return _skops_node("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def _skops_file(schema: dict[str, Any]) -> Builder:
    def build(dest: Path, marker: Path, aux: Path) -> None:
        doc = {**schema, "protocol": 2, "_skops_version": "0.16.0"}
        text = json.dumps(doc).replace("@MARKER@", str(marker))
        with zipfile.ZipFile(dest, "w") as zf:
            zf.writestr("schema.json", text)

    return build


_SKOPS_REDUCE = _skops_node(
    "ConstructorFromReduceNode",
    "posix",
    "system",
    content=_skops_node("TupleNode", "builtins", "tuple", content=[_skops_json("touch @MARKER@")]),
)


def _skops_unknown(dest: Path, marker: Path, aux: Path) -> None:
    import collections

    import skops.io

    skops.io.dump(collections.UserDict(), dest)


def _crafting() -> Any:
    """``tests/format/_crafting.py``, the shared ``.skv`` builder, loaded from its path."""
    name = "_skvault_test_crafting"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "format" / "_crafting.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _skv(nodes: list[dict[str, Any]]) -> Builder:
    def build(dest: Path, marker: Path, aux: Path) -> None:
        text = json.dumps(nodes).replace("@MARKER@", str(marker))
        graph = {"nodes": json.loads(text), "root": {"ref": len(nodes) - 1}}
        dest.write_bytes(_crafting().craft(graph))

    return build


def _ft_node(func_ref: int) -> dict[str, Any]:
    return {
        "kind": "object",
        "type": "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "names": [
            "func",
            "inverse_func",
            "validate",
            "accept_sparse",
            "check_inverse",
            "feature_names_out",
            "kw_args",
            "inv_kw_args",
        ],
        "values": [{"ref": func_ref}, None, False, False, False, None, None, None],
    }


_STRING_LIST = {"kind": "list", "items": ["touch", "@MARKER@"]}

_AFTER_USE = ("transform", None)  # argument filled with the shell command per marker

_add(
    Sample("os.system-global", "pickle", _bytes(_os_system), _flags("os.system")),
    Sample(
        "nt.system",
        "pickle",
        _bytes(_nt_system),
        _flags("nt.system"),
        control=None,
        reason="the nt module exists only on Windows",
    ),
    Sample(
        "subprocess.call",
        "pickle",
        _dumps(lambda m: _Reduce(subprocess.call, ["touch", str(m)]), 4),
        _flags("subprocess.call"),
    ),
    Sample("subprocess.run-proto0", "pickle", _bytes(_subprocess_run), _flags("subprocess.run")),
    Sample(
        "builtins.exec-proto2",
        "pickle",
        _dumps(lambda m: _Reduce(exec, code(m)), 2),
        _flags("builtins.exec"),
    ),
    Sample("builtins.eval", "pickle", _bytes(_eval), _flags("builtins.eval")),
    Sample(
        "builtins.compile-exec",
        "pickle",
        _bytes(_compile_exec),
        _flags("builtins.compile", "builtins.exec"),
    ),
    Sample(
        "builtins.getattr-__import__",
        "pickle",
        _bytes(_getattr_import),
        _flags("builtins.getattr", "builtins.__import__"),
    ),
    Sample(
        "importlib.import_module",
        "pickle",
        _bytes(_import_module),
        _flags("importlib.import_module", "builtins.getattr"),
    ),
    Sample("pkgutil.resolve_name", "pickle", _bytes(_resolve_name), _flags("pkgutil.resolve_name")),
    Sample("runpy.run_path", "pickle", _run_path, _flags("runpy.run_path")),
    Sample("ctypes.CDLL", "pickle", _bytes(_ctypes), _flags("ctypes.CDLL", "builtins.getattr")),
    Sample(
        "pip-main",
        "pickle",
        _bytes(_pip),
        _flags("pip._internal.cli.main.main"),
        control=None,
        reason="pip is never run by the tests (its payload, `pip freeze --log MARKER`, would be)",
    ),
    Sample("timeit.timeit", "pickle", _bytes(_timeit), _flags("timeit.timeit")),
    Sample("cProfile.run", "pickle", _bytes(_cprofile), _flags("cProfile.run")),
    Sample(
        "pty.spawn",
        "pickle",
        _bytes(_pty),
        _flags("pty.spawn"),
        control=None,
        reason="pty.spawn takes over the terminal; never run by the tests",
    ),
    Sample(
        "webbrowser.open",
        "pickle",
        _bytes(_webbrowser_open),
        _flags("webbrowser.open"),
        control=None,
        reason="never start a browser: the call has no URL, so it cannot create the marker",
    ),
    Sample(
        "webbrowser.get-touch",
        "pickle",
        _bytes(_webbrowser_get),
        _flags("webbrowser.get", "builtins.getattr"),
    ),
    Sample(
        "code.InteractiveInterpreter",
        "pickle",
        _bytes(_interpreter),
        _flags("code.InteractiveInterpreter", "builtins.getattr"),
    ),
    Sample(
        "codeop.compile_command",
        "pickle",
        _bytes(_codeop),
        _flags("codeop.compile_command", "builtins.exec"),
    ),
    Sample(
        "operator.attrgetter",
        "pickle",
        _bytes(_attrgetter),
        _flags("operator.attrgetter", "importlib.import_module"),
    ),
    Sample(
        "operator.methodcaller",
        "pickle",
        _bytes(_methodcaller),
        _flags("operator.methodcaller", "builtins.__import__"),
    ),
    Sample(
        "functools.partial", "pickle", _bytes(_partial), _flags("functools.partial", "os.system")
    ),
    Sample(
        "pydoc.pipepager",
        "pickle",
        _bytes(_pipepager),
        # an obscure gadget: not on any deny-list skvault must know, but never allow-listed
        (Flag("pydoc.pipepager", frozenset({"dangerous", "unknown"})),),
    ),
    Sample(
        "copyreg._reconstructor-Popen",
        "pickle",
        _bytes(_reconstructor),
        _flags("subprocess.Popen"),
    ),
    Sample(
        "dotted-numpy-stack_global",
        "pickle",
        _dotted("numpy", "_pytesttester.os.system", 4),
        _flags("numpy._pytesttester.os.system"),
    ),
    Sample(
        "dotted-numpy-global-proto4",
        "pickle",
        _dotted("numpy", "lib._npyio_impl.os.system", 4, stack=False),
        _flags("numpy.lib._npyio_impl.os.system"),
    ),
    Sample(
        "dotted-numpy-load-builtins",
        "pickle",
        _bytes(_load_builtins),
        _flags("numpy.load.__builtins__.get"),
    ),
    Sample(
        "dotted-numpy-load-globals",
        "pickle",
        _bytes(_load_globals),
        _flags("numpy.load.__globals__.get", "builtins.getattr"),
    ),
    Sample(
        "dotted-numpy-core",
        "pickle",
        _dotted("numpy", "core.os.system", 4),
        _flags("numpy.core.os.system"),
        control=None,
        reason="numpy 2's numpy.core shim has no `os` attribute; numpy 1.x's had",
    ),
    Sample(
        "dotted-numpy-proto2",
        "pickle",
        _dotted("numpy", "_pytesttester.os.system", 2, stack=False),
        _flags("numpy._pytesttester.os.system"),
        control=None,
        reason="Python 3 walks dotted names only under protocol 4+; here: AttributeError",
    ),
    Sample(
        "nested-joblib.load",
        "pickle",
        _nested_joblib,
        _flags("joblib.numpy_pickle.load"),
    ),
    Sample("nested-pandas.read_pickle", "pickle", _nested_pandas, _flags("pandas.read_pickle")),
    Sample("nested-numpy.load", "pickle", _nested_numpy, _flags("numpy.load")),
    Sample("npy-object-array", "npy", _npy, _flags("posix.system"), control="numpy"),
    Sample(
        "joblib-object-array",
        "joblib",
        _joblib(_object_array),
        _flags("posix.system"),
        control="joblib",
    ),
    Sample(
        "joblib-after-array",
        "joblib",
        _joblib(_after_array),
        _flags("posix.system"),
        control="joblib",
    ),
    *(
        Sample(
            f"joblib-{method}",
            "joblib",
            _joblib(_after_array, (method, 3)),
            _flags("posix.system"),
            control="joblib",
        )
        for method in ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")
    ),
    Sample(
        "second-pickle-after-stop",
        "pickle",
        _bytes(_after_stop),
        _flags("posix.system"),
        control="pickle-all",
    ),
    Sample(
        "truncated-payload-first",
        "pickle",
        _bytes(_truncated),
        _flags("os.system"),
        problem=True,
    ),
    Sample("frame-too-short", "pickle", _bytes(_frame_short), problem=True),
    Sample(
        "frame-too-long",
        "pickle",
        _bytes(_frame_long),
        problem=True,
        # CPython's C unpickler reads a whole frame before running it and stops at the missing
        # bytes; the pure-Python unpickler (pickle._Unpickler) runs what is there
        control="pickle-py",
    ),
    Sample("inst-opcode", "pickle", _bytes(_inst), _flags("os.system")),
    Sample("obj-opcode", "pickle", _bytes(_obj), _flags("subprocess.check_call")),
    Sample("stack_global-from-memo", "pickle", _bytes(_memo), _flags("os.system")),
    Sample(
        "estimator-FunctionTransformer-pickle",
        "pickle",
        _dumps(_function_transformer, 5),
        _flags("posix.system"),
        use=_AFTER_USE,
    ),
    Sample(
        "estimator-FunctionTransformer-joblib",
        "joblib",
        _joblib(_function_transformer),
        _flags("posix.system"),
        control="joblib",
        use=_AFTER_USE,
    ),
    Sample(
        "skops-FunctionTransformer",
        "skops",
        _skops_estimator,
        _flags("posix.system"),
        control="skops",
        use=_AFTER_USE,
    ),
    Sample(
        "skops-reduce-system",
        "skops",
        _skops_file(_SKOPS_REDUCE),
        _flags("posix.system"),
        control="skops",
    ),
    Sample(
        "skops-unknown-type",
        "skops",
        _skops_unknown,
        (Flag("collections.UserDict", frozenset({"unknown"})),),
        control=None,
        reason="a type merely not allow-listed: building it runs no payload",
    ),
    Sample(
        "skv-FunctionTransformer-os.system",
        "skv",
        _skv([{"kind": "global", "name": "os.system"}, _ft_node(0)]),
        _flags("os.system"),
        control="skv",
        use=_AFTER_USE,
    ),
    Sample(
        "skv-ext-subprocess.Popen",
        "skv",
        _skv(
            [
                _STRING_LIST,
                {
                    "kind": "ext",
                    "type": "subprocess.Popen",
                    "construct": "call",
                    "args": [{"ref": 0}],
                },
            ]
        ),
        _flags("subprocess.Popen"),
        control="skv",
    ),
    Sample(
        "skv-global-builtins.eval",
        "skv",
        _skv([{"kind": "global", "name": "builtins.eval"}]),
        _flags("builtins.eval"),
        control=None,
        reason="the root is the function itself: loading returns it, nothing calls it",
    ),
    Sample(
        "skv-object-unknown-type",
        "skv",
        _skv([{"kind": "object", "type": "collections.UserDict", "names": [], "values": []}]),
        (Flag("collections.UserDict", frozenset({"unknown"})),),
        control=None,
        reason="a type merely not allow-listed: building it runs no payload",
    ),
    Sample(
        "skv-dotted-numpy.os.system",
        "skv",
        _skv([{"kind": "global", "name": "numpy.os.system"}, _ft_node(0)]),
        (Flag("numpy.os.system", frozenset({"dangerous", "unknown"})),),
        control=None,
        reason="skvault resolves exact names, never attribute chains: numpy.os does not exist",
    ),
)

# -- writing the corpus and running the controls ------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """A corpus written to disk: one file per sample, one (absent) marker per sample."""

    root: Path

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    def path(self, sample: Sample) -> Path:
        return self.samples_dir / f"{sample.id}{sample.suffix}"

    def marker(self, sample: Sample) -> Path:
        return self.root / "markers" / sample.id


def write_corpus(root: Path) -> Corpus:
    """Write every sample of :data:`SAMPLES` under ``root`` and return the `Corpus`."""
    corpus = Corpus(root)
    for sub in ("samples", "markers", "aux"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        sample.build(corpus.path(sample), corpus.marker(sample), root / "aux")
    return corpus


def _load(sample: Sample, path: Path) -> Any:
    control = sample.control
    if control == "pickle":
        with open(path, "rb") as fh:
            return pickle.load(fh)
    if control == "pickle-all":
        with open(path, "rb") as fh:
            objs = []
            while fh.peek(1):
                objs.append(pickle.load(fh))
            return objs[-1]
    if control == "pickle-py":
        with open(path, "rb") as fh:
            return pickle._Unpickler(fh).load()  # type: ignore[attr-defined]
    if control == "joblib":
        import joblib

        return joblib.load(path)
    if control == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=True)
    if control == "skops":
        import skops.io

        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    if control == "skv":
        import skvault

        return skvault.load(path, trusted=[f.qualified for f in sample.flags])
    raise ValueError(f"no control {control!r}")


def run_control(root: Path, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    """Write the corpus under ``root``, run each sample's unsafe loader, report the markers.

    Returns
    -------
    dict
        Sample id -> ``{"marker": bool, "error": str or None}`` for every sample that has a
        control. Payloads that start a process without waiting for it get until ``timeout``
        seconds after the last load to create their marker.
    """
    corpus = write_corpus(root)
    errors: dict[str, str | None] = {}
    for sample in SAMPLES:
        if sample.control is None:
            continue
        error = None
        try:
            obj = _load(sample, corpus.path(sample))
            if sample.use is not None:
                method, _ = sample.use
                getattr(obj, method)(shell(corpus.marker(sample)))
        except BaseException as exc:  # the payload may raise anything after it ran
            error = f"{type(exc).__name__}: {exc}"[:300]
        errors[sample.id] = error
    deadline = time.monotonic() + timeout
    pending = set(errors)
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if not (root / "markers" / i).exists()}
        if pending:
            time.sleep(0.05)
    return {i: {"marker": (root / "markers" / i).exists(), "error": e} for i, e in errors.items()}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "control":
        raise SystemExit("usage: python _corpus.py control DIR")
    out_root = Path(sys.argv[2])
    result = run_control(out_root)
    (out_root / "control.json").write_text(json.dumps(result, indent=1))
