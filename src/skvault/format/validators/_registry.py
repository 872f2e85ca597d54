"""The registry of state validators, the batch scope, and the error a validator raises."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from ...errors import InvalidStateError

__all__ = [
    "BATCH_VALIDATORS",
    "BUILT_VALIDATORS",
    "VALIDATORS",
    "Broken",
    "batch_validator",
    "built_validator",
    "deferred_validation",
    "fail",
    "flush_pending",
    "validate",
    "validate_built",
    "validator",
]

Validator = Callable[[tuple, Any], None]
# a batch validator checks many objects of one type at once: a list of (args, state)
BatchValidator = Callable[[list[tuple[tuple, Any]]], None]
# a built validator checks the constructed object, with compiled code of the type's own that is
# safe once the plain validator has passed (a tree's depth, walked by scikit-learn)
BuiltValidator = Callable[[Any], None]

VALIDATORS: dict[str, Validator] = {}
BATCH_VALIDATORS: dict[str, BatchValidator] = {}
BUILT_VALIDATORS: dict[str, BuiltValidator] = {}


class Broken(Exception):
    """Raised inside a validator: ``rule`` says which invariant failed.

    ``item`` is the position of the failing object in the list a batch validator received.
    """

    def __init__(self, rule: str, item: int = 0) -> None:
        super().__init__(rule)
        self.rule = rule
        self.item = item


def fail(rule: str, item: int = 0) -> NoReturn:
    """Stop validation: the invariant described by ``rule`` does not hold."""
    raise Broken(rule, item)


def _registrar(registry: dict[str, Any], names: tuple[str, ...]) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        for name in names:
            if name in registry:
                raise ValueError(f"two validators of one kind for {name}")
            registry[name] = fn
        return fn

    return register


def validator(*names: str) -> Callable[[Validator], Validator]:
    """Register the decorated function as the validator of the types ``names``.

    The function receives ``(args, state)`` and raises through `fail` when the state is invalid.
    """
    return _registrar(VALIDATORS, names)


def batch_validator(*names: str) -> Callable[[BatchValidator], BatchValidator]:
    """Register a validator that can check many objects of the types ``names`` in one go.

    Inside a `deferred_validation` scope the objects are queued and checked together when the
    scope ends; outside one, each object is checked alone, as a batch of one, before it is built.
    A type may have both: its plain validator runs first, before the object is built (the checks
    its constructor and ``__setstate__`` rely on), and the batch one is queued (the checks only
    later use relies on, such as the links a traversal follows).
    """
    return _registrar(BATCH_VALIDATORS, names)


def built_validator(*names: str) -> Callable[[BuiltValidator], BuiltValidator]:
    """Register a check of the constructed object for the types ``names``.

    It runs right after construction, only on objects whose state the plain validator of the
    type has accepted (a type with a built validator must have a plain one): it may call the
    object's own methods that rely on that state.
    """
    return _registrar(BUILT_VALIDATORS, names)


class _Pending:
    """Objects queued for a batch validator: per type, their paths and (args, state)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[list[object], list[tuple[tuple, Any]]]] = {}

    def add(self, type_name: str, path: object, args: tuple, state: Any) -> None:
        paths, entries = self.items.setdefault(type_name, ([], []))
        paths.append(path)
        entries.append((args, state))

    def flush(self) -> None:
        items, self.items = self.items, {}
        for type_name, (paths, entries) in items.items():
            _run_batch(type_name, paths, entries)


_PENDING: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "skvault_pending_validation", default=None
)


@contextlib.contextmanager
def deferred_validation() -> Iterator[None]:
    """Queue the checks of batch-validated types and run them together when the scope ends.

    Meant to surround the construction of one graph: the objects built inside the scope must not
    be handed to the caller before the scope has exited without an error, because their checks
    run only then. Many small objects (the hundreds of predictor trees of a gradient boosting
    model) are then checked in a few numpy operations instead of a few hundred each.
    """
    pending = _Pending()
    token = _PENDING.set(pending)
    try:
        yield
        pending.flush()
    finally:
        _PENDING.reset(token)


def flush_pending() -> None:
    """Run the queued batch checks now (for a validator that reads its children's state)."""
    pending = _PENDING.get()
    if pending is not None:
        pending.flush()


def _run_batch(type_name: str, paths: list[object], entries: list[tuple[tuple, Any]]) -> None:
    try:
        BATCH_VALIDATORS[type_name](entries)
    except Broken as exc:
        raise InvalidStateError(paths[exc.item], type_name, exc.rule) from None
    except InvalidStateError:
        raise
    except Exception as exc:  # a state so malformed that checking it failed is still invalid
        raise InvalidStateError(paths[0], type_name, f"malformed state ({exc!r})") from None


def validate(type_name: str, path: object, args: tuple, state: Any) -> None:
    """Check the arguments and state of a ``type_name`` object before it is constructed.

    Parameters
    ----------
    type_name : str
        Fully qualified name of the type, as written in the file.
    path : object
        Where the object sits in the graph; turned into text only when an error is raised.
    args : tuple
        Constructor arguments (``()`` for plain-state objects).
    state : object
        The state handed to ``__setstate__``.

    Raises
    ------
    InvalidStateError
        If the state breaks an invariant the type's compiled code relies on.
    """
    check = VALIDATORS.get(type_name)
    if check is not None:
        try:
            check(args, state)
        except Broken as exc:
            raise InvalidStateError(path, type_name, exc.rule) from None
        except InvalidStateError:
            raise
        except Exception as exc:  # a state so malformed that checking it failed is still invalid
            raise InvalidStateError(path, type_name, f"malformed state ({exc!r})") from None
    if type_name in BATCH_VALIDATORS:
        pending = _PENDING.get()
        if pending is None:
            _run_batch(type_name, [path], [(args, state)])
        else:
            pending.add(type_name, path, args, state)


def validate_built(type_name: str, path: object, obj: Any) -> None:
    """Check a ``type_name`` object just constructed from a state `validate` accepted.

    Raises
    ------
    InvalidStateError
        If the object breaks an invariant (it must then be discarded, never handed out).
    """
    check = BUILT_VALIDATORS.get(type_name)
    if check is None:
        return
    try:
        check(obj)
    except Broken as exc:
        raise InvalidStateError(path, type_name, exc.rule) from None
    except Exception as exc:  # pragma: no cover - the plain validator has vouched for the state
        raise InvalidStateError(path, type_name, f"checking it failed ({exc!r})") from None
