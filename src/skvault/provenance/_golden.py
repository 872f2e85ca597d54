"""The golden sample: a few input rows and the model's outputs on them, checked again at load.

Outputs are compared exactly when they are not floating point (labels, integers, strings), and
within ``|actual - expected| <= atol + rtol * |expected|`` when they are, with ``rtol=1e-9`` and
``atol=0`` by default: the same code on the same data gives the same bits, so any visible
difference means the computation changed, while a last-digit one from another BLAS build does
not (unless the recorded value is exactly zero).
The tolerances are stored in the sample, so a file keeps the ones it was written with.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import FormatError, VerificationError
from ._plain import NotPlainError, is_dataframe, is_sparse, plain_array

__all__ = ["ATOL", "GOLDEN_METHODS", "RTOL", "golden_sample", "verify_golden"]

GOLDEN_METHODS = ("predict", "predict_proba", "decision_function", "transform")
RTOL = 1e-9
ATOL = 0.0
_MEMBER = "metadata.json"


def golden_sample(model: Any, X: Any, rows: int, schema: dict[str, Any]) -> dict[str, Any] | None:
    """Return the ``golden`` section: the first ``rows`` rows of ``X`` and the model's outputs.

    Methods the model lacks, or that fail on the sample, are left out; None when none succeeds
    or when ``X`` cannot be stored as plain data.
    """
    try:
        stored = _encode_input(_head(X, rows))
        sample = decode_input(stored, schema)  # exactly what verification will feed the model
    except (NotPlainError, FormatError, ValueError, TypeError, KeyError):
        return None  # a sample that cannot be stored and rebuilt cannot verify anything
    outputs = {}
    for name, output in _outputs(model, sample):
        if isinstance(output, BaseException):
            continue
        try:
            outputs[name] = _encode_output(output)
        except NotPlainError:
            continue
    if not outputs:
        return None
    return {"X": stored, "outputs": outputs, "rtol": RTOL, "atol": ATOL}


def _head(X: Any, rows: int) -> Any:
    if is_dataframe(X):
        return X.iloc[:rows]
    if is_sparse(X):
        return X.tocsr()[:rows]
    if isinstance(X, (list, tuple)):
        return np.asarray(X[:rows])
    return np.asarray(X)[:rows]


def _encode_input(X: Any) -> Any:
    if is_dataframe(X):
        columns = list(X.columns)
        return {"columns": columns, "data": {c: plain_array(X[c]) for c in columns}}
    return _encode_output(X)


def _encode_output(value: Any) -> Any:
    if is_sparse(value):
        csr = value.tocsr()
        return {
            "sparse": "csr",
            "shape": [int(n) for n in csr.shape],
            "data": plain_array(csr.data),
            "indices": plain_array(csr.indices),
            "indptr": plain_array(csr.indptr),
        }
    if is_dataframe(value):
        value = value.to_numpy()
    return plain_array(value)


def decode_input(stored: Any, schema: Any) -> Any:
    """Rebuild the model input from its stored form: a DataFrame, a sparse matrix or an array."""
    if isinstance(stored, dict) and "columns" in stored:
        return _dataframe(stored, schema)
    return _decode_array(stored)


def _decode_array(stored: Any) -> Any:
    if isinstance(stored, dict) and stored.get("sparse") == "csr":
        import scipy.sparse

        return scipy.sparse.csr_matrix(
            (stored["data"], stored["indices"], stored["indptr"]), shape=tuple(stored["shape"])
        )
    if not isinstance(stored, np.ndarray):
        raise FormatError("metadata: the golden sample is malformed", member=_MEMBER)
    return stored


def _dataframe(stored: dict[str, Any], schema: Any) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise VerificationError(
            "the golden sample is a pandas DataFrame: install pandas to verify it"
        ) from exc
    columns, data = stored.get("columns"), stored.get("data")
    if not isinstance(columns, list) or not isinstance(data, dict) or set(columns) != set(data):
        raise FormatError("metadata: the golden sample is malformed", member=_MEMBER)
    inputs = schema.get("input", {}) if isinstance(schema, dict) else {}
    dtypes = inputs.get("dtypes") or {}
    categories = inputs.get("categories") or {}
    frame = pd.DataFrame({c: data[c] for c in columns}, columns=columns)
    for c in columns:
        dtype = dtypes.get(c)
        if dtype == "category":
            frame[c] = pd.Categorical(frame[c], categories=categories.get(c))
        elif isinstance(dtype, str) and dtype != str(frame[c].dtype):
            frame[c] = frame[c].astype(dtype)
    return frame


def _outputs(model: Any, X: Any) -> list[tuple[str, Any]]:
    """Call each golden method the model has; a failure is returned in place of the output."""
    results: list[tuple[str, Any]] = []
    for name in GOLDEN_METHODS:
        try:
            method = getattr(model, name, None)
        except Exception:
            continue
        if not callable(method):
            continue
        # the user did not call these: their warnings (feature names, convergence) are noise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                results.append((name, method(X)))
            except Exception as exc:
                results.append((name, exc))
    return results


def verify_golden(model: Any, golden: Any, schema: Any) -> None:
    """Recompute the golden outputs on ``model`` and raise `VerificationError` if they differ."""
    if not isinstance(golden, dict) or not isinstance(golden.get("outputs"), dict):
        raise FormatError("metadata: the golden sample is malformed", member=_MEMBER)
    rtol, atol = golden.get("rtol", RTOL), golden.get("atol", ATOL)
    if not all(isinstance(t, (int, float)) and t >= 0 for t in (rtol, atol)):
        raise FormatError("metadata: the golden tolerances must be numbers >= 0", member=_MEMBER)
    try:
        X = decode_input(golden.get("X"), schema)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FormatError(
            f"metadata: the golden sample is malformed: {exc}", member=_MEMBER
        ) from exc
    expected_outputs = golden["outputs"]
    actual_outputs = {}
    for name, value in _outputs(model, X):
        if name in expected_outputs:
            actual_outputs[name] = value
    for name, expected in expected_outputs.items():
        if name not in actual_outputs:
            raise VerificationError(
                f"golden sample: the loaded model has no {name} method", output=name
            )
        actual = actual_outputs[name]
        if isinstance(actual, BaseException):
            raise VerificationError(
                f"golden sample: {name} now fails: {actual!r}", output=name
            ) from actual
        try:
            recorded = _dense(_decode_array(expected))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise FormatError(
                f"metadata: the golden {name} output is malformed: {exc}", member=_MEMBER
            ) from exc
        _compare(name, recorded, _dense(actual), float(rtol), float(atol))


def _dense(value: Any) -> np.ndarray:
    if is_sparse(value):
        return np.asarray(value.toarray())
    if is_dataframe(value):
        return value.to_numpy()
    return np.asarray(value)


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _compare(name: str, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> None:
    if expected.shape != actual.shape:
        raise VerificationError(
            f"golden sample: {name} has shape {actual.shape}, recorded {expected.shape}",
            output=name,
        )
    if expected.size == 0:
        return
    numeric = all(a.dtype.kind in "biufc" for a in (expected, actual))
    inexact = numeric and any(a.dtype.kind in "fc" for a in (expected, actual))
    if inexact:
        with np.errstate(invalid="ignore", over="ignore"):
            e, a = expected.astype(np.complex128), actual.astype(np.complex128)
            same = (a == e) | (np.isnan(a) & np.isnan(e))  # equal infinities, NaN where NaN was
            diff = np.abs(a - e)
            diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
            bad = diff > atol + rtol * np.abs(e)
    elif numeric:
        e, a = expected.astype(object), actual.astype(object)
        diff = np.abs(a - e).astype(float)
        bad = diff > 0
    else:
        bad = np.array([x != y for x, y in zip(expected.ravel().tolist(), actual.ravel().tolist())])
        bad = bad.reshape(expected.shape)
        diff = None
    if not bad.any():
        return
    if diff is not None:
        flat = int(np.argmax(np.where(bad, diff, -1.0)))
    else:
        flat = int(np.flatnonzero(bad)[0])
    index = tuple(int(i) for i in np.unravel_index(flat, expected.shape))
    exp_value, act_value = _item(expected[index]), _item(actual[index])
    difference = None if diff is None else float(diff[index])
    where = f"row {index[0]}" + (f", column {index[1]}" if len(index) > 1 else "")
    if len(index) > 2:
        where = f"index {index}"
    tolerance = f" (tolerance rtol={rtol:g}, atol={atol:g})" if inexact else ""
    count = int(bad.sum())
    raise VerificationError(
        f"golden sample: {name} differs from the recorded output in {count} of {bad.size} "
        f"values; the largest difference is at {where}: recorded {exp_value!r}, now "
        f"{act_value!r}"
        + (f", difference {difference:g}" if difference is not None else "")
        + tolerance,
        output=name,
        index=index,
        expected=exp_value,
        actual=act_value,
        difference=difference,
    )
