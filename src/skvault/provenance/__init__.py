"""Provenance: what an artifact records about its making, and the checks made when loading it.

A layer above `skvault.format`: it builds plain-data metadata that `write_artifact` stores as
``metadata.json``, and reads it back through `open_artifact`, never touching zip members itself.
The schema is described in ``docs/PROVENANCE.md``.

Internal API (used by ``skvault._api`` and the command line):

- `build_metadata` assembles the metadata for a dump; `read_metadata` and `provenance_of` read it.
- `check_options`, `check_environment` and `verify_model` are the checks made by ``load``.
- `installed_distributions`, `current_version` and `path_digest` serve the other commands
  (environment rebuild, verification of a data file).
"""

from __future__ import annotations

from ._checks import (
    ON_MISMATCH,
    check_environment,
    check_options,
    environment_differences,
    verify_model,
)
from ._data import path_digest
from ._environment import current_version, installed_distributions
from ._golden import ATOL, RTOL
from ._markers import canonical_name
from ._metadata import METADATA_VERSION, build_metadata, provenance_of, read_metadata

__all__ = [
    "ATOL",
    "METADATA_VERSION",
    "ON_MISMATCH",
    "RTOL",
    "build_metadata",
    "canonical_name",
    "check_environment",
    "check_options",
    "current_version",
    "environment_differences",
    "installed_distributions",
    "path_digest",
    "provenance_of",
    "read_metadata",
    "verify_model",
]
