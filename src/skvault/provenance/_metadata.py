"""Assemble the metadata written beside a model, and read it back."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..format import open_artifact
from ..format._files import FileLike
from ._data import check_target, data_reference, fingerprint
from ._environment import capture_environment
from ._golden import golden_sample
from ._schema import derive_schema
from ._scores import cross_validation, given_scores
from ._source import main_script, source_record

__all__ = ["METADATA_VERSION", "build_metadata", "provenance_of", "read_metadata"]

METADATA_VERSION = 1


def build_metadata(
    obj: Any,
    *,
    data: Any = None,
    target: str | None = None,
    source: Any = None,
    scores: Any = None,
    cv: Any = None,
    scoring: Any = None,
    X: Any = None,
    y: Any = None,
    description: Any = None,
    tags: Any = None,
    metrics: Any = None,
    golden_rows: Any = 32,
    environment: Mapping[str, Any] | None = None,
    converted_from: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the metadata for a dump of ``obj`` (see docs/PROVENANCE.md for each field).

    ``converted_from`` (plain data) records the legacy file an artifact was converted from
    (``skvault convert``); only such artifacts have the key.
    """
    # check the cheap arguments before the slow work (cross-validation, hashing data)
    if target is not None:
        check_target(data, target)
    if description is not None and not isinstance(description, str):
        raise TypeError(f"description must be a string, not {type(description).__name__}")
    tag_list = _tags(tags)
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict, not {type(metrics).__name__}")
    if isinstance(golden_rows, bool) or not isinstance(golden_rows, int) or golden_rows < 0:
        raise ValueError(f"golden_rows must be an integer >= 0, not {golden_rows!r}")
    if cv is None and scoring is not None:
        raise ValueError("scoring= names the scores of cross-validation: pass cv= as well")
    if cv is not None and X is None:
        raise ValueError("cv= needs the training data: pass X= (and y= for supervised models)")
    if environment is not None and not isinstance(environment, Mapping):
        raise TypeError(f"environment must be a dict, not {type(environment).__name__}")

    schema = derive_schema(obj, X)
    score_section: dict[str, Any] = {}
    if scores is not None:
        score_section["given"] = given_scores(scores)
    if cv is not None:
        score_section["cv"] = cross_validation(obj, X, y, cv, scoring)
    if data is not None:
        data_section = data_reference(data)
        if target is not None:
            data_section["target"] = target
    elif X is not None:
        data_section = fingerprint(X, y)
    else:
        data_section = None
    if source is False:
        source_section = None
    elif source is None:
        source_section = main_script()
    else:
        source_section = source_record(source)
    golden = None
    if X is not None and golden_rows > 0:
        golden = golden_sample(obj, X, golden_rows, schema)
    meta: dict[str, Any] = {
        "skvault_metadata": METADATA_VERSION,
        "created_at": _now(),
        "environment": capture_environment(obj, environment),
        "schema": schema,
        "data": data_section,
        "source": source_section,
        "scores": score_section or None,
        "description": description,
        "tags": tag_list,
        "metrics": dict(metrics) if metrics is not None else {},
        "golden": golden,
    }
    if converted_from is not None:
        meta["converted_from"] = dict(converted_from)
    return meta


def _tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise TypeError(f"tags must be a list of strings, not {type(tags).__name__}")
    out = list(tags)
    for tag in out:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, not {type(tag).__name__}")
    return out


def _now() -> str:
    """The creation time in UTC; ``SOURCE_DATE_EPOCH`` pins it, for reproducible files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.strip().isdigit():
        moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
    else:
        moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="seconds")


def provenance_of(meta: Any) -> dict[str, Any] | None:
    """Return ``meta`` if it is skvault's provenance metadata, else None (nothing to check)."""
    if isinstance(meta, dict) and "skvault_metadata" in meta:
        return meta
    return None


def read_metadata(file: FileLike) -> dict[str, Any]:
    """Return the metadata of an artifact with its manifest under ``"manifest"``."""
    with open_artifact(file) as artifact:
        meta = artifact.metadata()
        manifest = artifact.manifest
    out: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    out["manifest"] = dict(manifest)
    return out
