"""The registry of reducers, one module per type family, filled by explicit imports."""

from __future__ import annotations

from .._graph import Registry
from . import _builtins, _numpy, _objects

__all__ = ["REGISTRY"]

REGISTRY = Registry()
# order matters only among rule-based reducers: globals before extension types before objects
for _family in (_builtins, _numpy, _objects):
    for _reducer in _family.REDUCERS:
        REGISTRY.register(_reducer)
