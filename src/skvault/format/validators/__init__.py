"""State validators: invariants checked before an allowed type is constructed.

A digest proves who wrote a file, not that its content is sane. Types whose compiled code indexes
into their own arrays (a decision tree's child pointers, a sparse matrix's ``indptr``) would read
or write out of bounds on a hostile state; their validator refuses such a state with
`InvalidStateError` before any constructor sees it. Estimators that hand their arrays to such
code are checked against those arrays (a forest's trees against its ``n_features_in_``).

Validators are registered per fully qualified type name, one module per type family; every rule
is vectorised numpy, so validation stays a small fraction of loading. ``docs/FORMAT.md`` lists
the rules.
"""

from __future__ import annotations

from . import _hgb, _linear, _misc, _neighbors, _sparse, _svm, _tree  # noqa: F401 (register)
from ._registry import (
    BATCH_VALIDATORS,
    BUILT_VALIDATORS,
    VALIDATORS,
    batch_validator,
    built_validator,
    deferred_validation,
    validate,
    validate_built,
    validator,
)

__all__ = [
    "BATCH_VALIDATORS",
    "BUILT_VALIDATORS",
    "VALIDATORS",
    "batch_validator",
    "built_validator",
    "deferred_validation",
    "validate",
    "validate_built",
    "validator",
]
