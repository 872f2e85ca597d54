"""Scores: given by the user, or computed by cross-validation at dump time."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._plain import plain_scalar

__all__ = ["cross_validation", "given_scores"]


def given_scores(scores: Any) -> dict[str, Any]:
    """Return the ``given`` part of the ``scores`` section for a user's dict of scores."""
    if not isinstance(scores, Mapping):
        raise TypeError(f"scores must be a dict of name to score, not {type(scores).__name__}")
    return dict(scores)


def cross_validation(
    estimator: Any, X: Any, y: Any, cv: Any, scoring: str | list[str] | None
) -> dict[str, Any]:
    """Run ``cross_validate`` on a clone of ``estimator`` and return the ``cv`` part of ``scores``.

    ``scoring`` is None (the estimator's own ``score`` method, recorded as ``"score"``), a
    scorer name, or a list of names: names only, so that the run can be repeated from the file.
    """
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import check_cv, cross_validate

    if X is None:
        raise ValueError("cv= needs the training data: pass X= (and y= for supervised models)")
    names: list[str]
    if scoring is None:
        names = ["score"]
    elif isinstance(scoring, str):
        names = [scoring]
    elif (
        isinstance(scoring, (list, tuple)) and scoring and all(isinstance(s, str) for s in scoring)
    ):
        names = list(scoring)
    else:
        raise TypeError(
            "scoring must be None, a scorer name or a list of names (a callable cannot be "
            f"recorded so that the scores can be checked again), not {scoring!r}"
        )
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    results = cross_validate(
        clone(estimator), X, y, cv=splitter, scoring=None if scoring is None else names
    )
    folds = {}
    for name in names:
        key = "test_score" if scoring is None else f"test_{name}"
        folds[name] = [float(v) for v in np.asarray(results[key], dtype=float)]
    return {
        "scoring": names,
        "folds": folds,
        "mean": {name: float(np.mean(values)) for name, values in folds.items()},
        "std": {name: float(np.std(values)) for name, values in folds.items()},
        "splitter": _describe_splitter(splitter),
    }


def _describe_splitter(splitter: Any) -> dict[str, Any]:
    """Type and constructor parameters of a CV splitter, read the way scikit-learn's repr does."""
    cls = type(splitter)
    params: dict[str, Any] = {}
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for name, param in signature.parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            # scikit-learn splitters keep parameters as attributes, n_splits via get_n_splits
            if hasattr(splitter, name):
                params[name] = _param(getattr(splitter, name))
            elif name in getattr(splitter, "cvargs", {}):
                # the Repeated* splitters keep their inner splitter's arguments apart;
                # get_n_splits() would give n_splits * n_repeats
                params[name] = _param(splitter.cvargs[name])
            elif name == "n_splits" and hasattr(splitter, "get_n_splits"):
                params[name] = _param(splitter.get_n_splits())
    return {"type": f"{cls.__module__}.{cls.__qualname__}", "params": params}


def _param(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_param(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return plain_scalar(value)
    return repr(value)  # a RandomState or an iterable of folds: shown, not replayable
