"""Reducers for named things: functions and classes, plain-state objects, extension types.

These are the only node kinds that name a global; the loader resolves each name through the trust
policy, and an allowed type's state is checked by its validator (``_validators``) before the
object is built.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...errors import FormatError, InvalidStateError, UnsupportedTypeError
from .._graph import (
    GraphReader,
    GraphWriter,
    Reducer,
    child_path,
    display_path,
    expect,
    qualified_name,
)
from .._trust import is_valid_name
from ..validators import validate, validate_built
from ._builtins import decode_dict, dict_children, encode_dict, encode_items, is_list

__all__ = [
    "OWN_KIND_BASES",
    "REDUCERS",
    "default_reduce",
    "has_own_kind",
    "is_named_tuple",
    "refusal_reason",
]

_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    np.ufunc,
)
# modules searched for a ufunc, which carries a name but no module
_UFUNC_HOMES = ("numpy", "scipy.special")


def _importable_name(obj: Any) -> str | None:
    """Return the ``module.name`` under which ``obj`` can be imported back, or None."""
    if isinstance(obj, np.ufunc):
        candidates = [f"{home}.{obj.__name__}" for home in _UFUNC_HOMES]
    else:
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            return None
        candidates = [f"{module}.{qualname}"]
    for name in candidates:
        if not is_valid_name(name):
            continue
        module_name, _, attr = name.rpartition(".")
        try:
            found = vars(importlib.import_module(module_name)).get(attr)
        except ImportError:
            continue
        if found is obj:
            return name
    return None


def _is_function_like(obj: object) -> bool:
    if isinstance(obj, (type, *_FUNCTION_TYPES)):
        return True
    # numpy's array-function dispatchers (np.mean, np.median, ...) are their own type
    return type(obj).__name__ == "_ArrayFunctionDispatcher" and callable(obj)


class GlobalReducer(Reducer):
    """A function, class or ufunc, stored by the name it can be imported under."""

    kind = "global"

    def accepts(self, obj: object) -> bool:
        return _is_function_like(obj)

    def reduce(self, obj: Any, w: GraphWriter, path: str) -> dict[str, Any]:
        name = _importable_name(obj)
        if name is None:
            what = getattr(obj, "__qualname__", repr(obj))
            reason = (
                "lambdas cannot be saved without pickle; use a named module-level function"
                if "<lambda>" in what
                else "functions defined inside functions (closures) cannot be saved"
                if "<locals>" in what
                else f"{what} cannot be imported back by its name"
            )
            raise UnsupportedTypeError(display_path(path), qualified_name(type(obj)), reason)
        return {"name": name}

    def globals(self, node: dict[str, Any]) -> list[str]:
        return [node.get("name")]  # type: ignore[list-item]

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Any:
        return r.resolve(node["name"])

    def describe(self, node: dict[str, Any]) -> str:
        return str(node.get("name"))


# Classes whose own restoring code runs code built from their state: scipy.stats' distributions
# exec() an argument parser generated from their attributes in __setstate__. Trusting one would
# hand the file code execution, so dump refuses them and load refuses them even when trusted.
_REFUSED_BASES = {
    "scipy.stats._distn_infrastructure.rv_generic": "a scipy.stats distribution",
    "scipy.stats._distn_infrastructure.rv_frozen": "a frozen scipy.stats distribution",
}
_REFUSAL_HINT = (
    "restoring it runs code generated from its state (scipy's __setstate__ calls exec), so it "
    "can never be loaded safely; give RandomizedSearchCV lists of values instead, or save the "
    "fitted best_estimator_"
)


@functools.lru_cache(maxsize=1024)
def refusal_reason(cls: type) -> str | None:
    """Return why instances of ``cls`` can never be saved or loaded, or None."""
    for base in cls.__mro__:
        what = _REFUSED_BASES.get(f"{base.__module__}.{base.__qualname__}")
        if what is not None:
            return f"{what}: {_REFUSAL_HINT}"
    return None


# Types with a node kind of their own are only ever built by that kind: through an object or
# ext node, bytearray(10**9) or numpy.ndarray(shape) would allocate whatever the file asks.
OWN_KIND_BASES = (np.ndarray, np.generic, np.dtype, np.ufunc, np.random.Generator)


# The one builtin type an ext node may call: a range is three integers and allocates nothing
# (GridSearchCV's param_grid={"n_neighbors": range(1, 30)} holds one)
_CALLED_BUILTINS = (range,)


def has_own_kind(cls: type, *, call: bool = False) -> bool:
    """Whether objects of ``cls`` are built only by a node kind of their own, never by an object
    or ext node; ``call`` says the node would call the class with its arguments."""
    if cls.__module__ == "builtins":
        return not (call and cls in _CALLED_BUILTINS)
    return issubclass(cls, OWN_KIND_BASES)


def _class_to_build(r: GraphReader, name: str, path: object, *, call: bool = False) -> type[Any]:
    """Resolve ``name`` (trust-checked) and return it if it is a class these nodes may build.

    ``call`` says the node calls the class with its arguments (an ext node's ``"call"``).
    """
    cls = r.resolve(name)
    if not isinstance(cls, type):
        raise FormatError(f"{name} at {display_path(path)} is not a class")
    if has_own_kind(cls, call=call):
        raise FormatError(
            f"{name} at {display_path(path)} has a node kind of its own and cannot be built "
            "from an object or ext node"
        )
    reason = refusal_reason(cls)
    if reason is not None:
        raise FormatError(f"{name} at {display_path(path)} is {reason}")
    return cls


def _str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def default_reduce(cls: type) -> bool:
    """Whether ``cls`` pickles by object's own protocol (state = its ``__dict__``)."""
    return cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__


def _pickled_state(obj: Any, where: str, name: str) -> dict[str, Any]:
    """Return the state pickle would save for ``obj``, if it is a plain dict of attributes.

    Asking ``__reduce_ex__`` (rather than ``__getstate__``) applies pickle's own refusals: an
    object whose C-level layout holds more than its ``__dict__`` (an open file, a lock) cannot
    be pickled, so its ``__dict__`` alone would rebuild something else.
    """
    cls = type(obj)
    try:
        rv = obj.__reduce_ex__(2)
    except Exception as exc:
        if hasattr(obj, "fileno") or hasattr(obj, "read"):
            reason = "open files and streams cannot be saved"
        else:
            reason = f"it cannot be pickled either ({exc!r})"
        raise UnsupportedTypeError(where, name, reason) from None
    if not isinstance(rv, tuple) or len(rv) < 2 or rv[1] != (cls,):
        raise UnsupportedTypeError(
            where, name, "it is rebuilt from constructor arguments (__getnewargs__), not state"
        )
    state = rv[2] if len(rv) > 2 else None
    if state is None:  # an empty __dict__: pickle then sets no state either
        state = {}
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise UnsupportedTypeError(where, name, "its state is not a plain dict of attributes")
    return state


class ObjectReducer(Reducer):
    """An instance of a Python class whose state is a plain ``__dict__`` (scikit-learn's rule).

    Written as the class name and the state dict pickle would save (``__reduce_ex__(2)``,
    which calls ``__getstate__``); refused when pickle would need more than that; read back as
    ``cls.__new__(cls)`` followed by ``__setstate__(state)`` (or a ``__dict__`` update), exactly
    what pickle does for such classes, with no other callable taken from the file.
    """

    kind = "object"
    forward = True

    def accepts(self, obj: object) -> bool:
        cls = type(obj)
        return (
            hasattr(obj, "__dict__")
            and default_reduce(cls)
            and not isinstance(obj, (type, types.ModuleType, *_FUNCTION_TYPES))
            and (not isinstance(obj, (list, tuple, set, frozenset)))
            and not _is_function_like(obj)
            and cls.__module__ != "builtins"
        )

    def reduce(self, obj: Any, w: GraphWriter, path: str) -> dict[str, Any]:
        cls = type(obj)
        refusal = refusal_reason(cls)  # type: ignore[arg-type]
        if refusal is not None:
            raise UnsupportedTypeError(display_path(path), qualified_name(cls), f"it is {refusal}")
        name = _importable_name(cls)
        if name is None:
            raise UnsupportedTypeError(
                display_path(path),
                qualified_name(cls),
                "its class cannot be imported back by name (defined inside a function or "
                "in an interactive session?)",
            )
        state = _pickled_state(obj, display_path(path), name)
        w.keep(state)
        node: dict[str, Any] = {
            "type": name,
            "names": list(state),
            "values": [w.value(v, child_path(path, k, attr=True)) for k, v in state.items()],
        }
        if isinstance(obj, dict):
            items = dict(obj)
            w.keep(items)
            encoded = encode_dict(items, w, path)
            node["item_keys"], node["item_values"] = encoded["keys"], encoded["values"]
        return node

    def globals(self, node: dict[str, Any]) -> list[str]:
        return [node.get("type")]  # type: ignore[list-item]

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Any:
        name = node["type"]
        names = expect(node, "names", _str_list, "a list of attribute names")
        values = expect(node, "values", is_list, "a list")
        if len(names) != len(values) or len(set(names)) != len(names):
            raise FormatError(f"{name} at {display_path(path)}: malformed attribute lists")
        cls = _class_to_build(r, name, path)
        state = dict(zip(names, map(r.value, values)))
        validate(name, path, (), state)
        try:
            obj = r.preallocated()
            if obj is None:
                obj = cls.__new__(cls)  # type: ignore[call-overload]
            if "item_keys" in node:
                if not isinstance(obj, dict):
                    raise FormatError(f"{name} at {display_path(path)} is not a mapping")
                items = {"keys": node["item_keys"], "values": node.get("item_values")}
                dict.update(obj, decode_dict(items, r, path))
            setstate = getattr(obj, "__setstate__", None)
            if not state:
                pass
            elif setstate is not None:
                setstate(state)
            else:
                obj.__dict__.update(state)
        except (FormatError, InvalidStateError):
            raise
        except Exception as exc:
            raise InvalidStateError(path, name, f"restoring its state failed: {exc!r}") from None
        return obj

    def allocate(self, node: dict[str, Any], r: GraphReader) -> Any:
        # referenced ahead of its turn (a cycle, like Birch's linked leaves): pickle too creates
        # the instance first and sets its state once the state's own objects exist
        name = node.get("type")
        cls = _class_to_build(r, name, name)  # type: ignore[arg-type]
        try:
            return cls.__new__(cls)  # type: ignore[call-overload]
        except Exception as exc:
            raise InvalidStateError(name, str(name), f"creating it failed: {exc!r}") from None

    def describe(self, node: dict[str, Any]) -> str:
        return str(node.get("type"))

    def children(self, node: dict[str, Any]) -> Iterator[tuple[int, str]]:
        for name, value in zip(node.get("names") or (), node.get("values") or ()):
            if isinstance(value, dict):
                yield value["ref"], f".{name}"
        yield from dict_children(node.get("item_keys"), node.get("item_values"))


# How an extension type (Cython class) pickles itself, and how skvault rebuilds it instead:
# "call" - (cls, args[, state]):          cls(*args), then __setstate__(state)
# "new"  - (newObj, (cls,), state):       cls.__new__(cls), then __setstate__(state)
# "cython" - (__pyx_unpickle_X, (cls, checksum, state)): cls.__new__(cls), __setstate_cython__
_CONSTRUCT = ("call", "new", "cython")


def is_named_tuple(cls: type) -> bool:
    """Whether ``cls`` was made by ``collections.namedtuple`` (or ``typing.NamedTuple``)."""
    fields = getattr(cls, "_fields", None)
    return (
        issubclass(cls, tuple)
        and isinstance(fields, tuple)
        and all(type(f) is str for f in fields)
        and callable(getattr(cls, "_make", None))
    )


def _ext_form(obj: Any) -> tuple[str, tuple, Any] | None:
    cls = type(obj)
    if is_named_tuple(cls):
        # pickled as copyreg.__newobj__(cls, *fields); cls(*fields) builds the same tuple
        # (IterativeImputer's imputation_sequence_ holds such triplets)
        return "call", tuple(obj), None
    try:
        rv = obj.__reduce_ex__(2)
    except Exception:
        return None
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 3:
        return None
    fn, args = rv[0], rv[1]
    state = rv[2] if len(rv) == 3 else None
    if fn is cls and isinstance(args, tuple):
        return "call", args, state
    fn_name = getattr(fn, "__name__", "")
    if fn_name == "newObj" and args == (cls,):
        return "new", (), state
    if (
        fn_name.startswith("__pyx_unpickle_")
        and isinstance(args, tuple)
        and len(args) == 3
        and args[0] is cls
        and hasattr(obj, "__setstate_cython__")
    ):
        return "cython", (), args[2]
    return None


class ExtensionReducer(Reducer):
    """Extension types (scikit-learn's Cython classes) by their constructor arguments and state.

    The callable a type's ``__reduce__`` names is never stored or called: the node records which
    of three fixed construction forms applies, and loading performs it on the resolved class.
    """

    kind = "ext"

    def accepts(self, obj: object) -> bool:
        cls = type(obj)
        return (
            (not default_reduce(cls) or is_named_tuple(cls))
            and not _is_function_like(obj)
            and _importable_name(cls) is not None
            and _ext_form(obj) is not None
        )

    def reduce(self, obj: Any, w: GraphWriter, path: str) -> dict[str, Any]:
        cls = type(obj)
        name = _importable_name(cls)
        form = _ext_form(obj)
        assert name is not None and form is not None  # accepts() checked both
        construct, args, state = form
        w.keep(args)
        w.keep(state)
        node: dict[str, Any] = {
            "type": name,
            "construct": construct,
            "args": encode_items(args, w, path + ".__args__"),
        }
        if state is not None:
            node["state"] = w.value(state, path + ".__state__")
        return node

    def globals(self, node: dict[str, Any]) -> list[str]:
        return [node.get("type")]  # type: ignore[list-item]

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Any:
        name = node["type"]
        form = expect(node, "construct", lambda v: v in _CONSTRUCT, f"one of {_CONSTRUCT}")
        arg_values = expect(node, "args", is_list, "a list")
        if form != "call" and arg_values:
            raise FormatError(f"{name} at {display_path(path)}: only 'call' takes arguments")
        cls = _class_to_build(r, name, path, call=form == "call")
        args = tuple(r.value(v) for i, v in enumerate(arg_values))
        state = r.value(node.get("state"))
        validate(name, path, args, state)
        try:
            if form == "call":
                obj = cls(*args)
            else:
                obj = cls.__new__(cls)  # type: ignore[call-overload]
            if form == "cython":
                if state is not None:
                    obj.__setstate_cython__(state)
            elif state is not None:
                obj.__setstate__(state)
        except (FormatError, InvalidStateError):
            raise
        except Exception as exc:
            raise InvalidStateError(path, name, f"restoring its state failed: {exc!r}") from None
        validate_built(name, path, obj)
        return obj

    def describe(self, node: dict[str, Any]) -> str:
        return str(node.get("type"))


REDUCERS: tuple[Reducer, ...] = (GlobalReducer(), ExtensionReducer(), ObjectReducer())
