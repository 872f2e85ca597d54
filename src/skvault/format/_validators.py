"""State validators: invariants checked before an allowed type is constructed.

A digest proves who wrote a file, not that its content is sane. Types whose compiled code indexes
into their own arrays (a decision tree's child pointers, a sparse matrix's ``indptr``) would read
out of bounds on a hostile state; their validator refuses such a state with `InvalidStateError`
before any constructor sees it. Validators are registered per fully qualified type name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["VALIDATORS", "validate", "validator"]

Validator = Callable[[str, tuple, Any], None]
VALIDATORS: dict[str, Validator] = {}


def validator(*names: str) -> Callable[[Validator], Validator]:
    """Register the decorated function as the validator of the types ``names``."""

    def register(fn: Validator) -> Validator:
        for name in names:
            if name in VALIDATORS:
                raise ValueError(f"two validators for {name}")
            VALIDATORS[name] = fn
        return fn

    return register


def validate(type_name: str, path: str, args: tuple, state: Any) -> None:
    """Run the validator registered for ``type_name``, if any, on its arguments and state."""
    check = VALIDATORS.get(type_name)
    if check is not None:
        check(path, args, state)
