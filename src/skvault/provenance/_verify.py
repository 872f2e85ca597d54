"""`verify`: check an artifact end to end, one named check after another, and report them all.

The checks run in the order of `STEPS`: each is a function of the shared `_Run` state returning
its status and message, so a new check (a signature, say) is one more entry in that table.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FormatError, SkvaultError, UntrustedTypeError, VerificationError
from ..format import TrustPolicy, open_artifact
from ..format._files import FileLike, is_path
from ..format._signing import PublicKeyLike, check_signature, signature_info
from ._checks import environment_differences
from ._data import fingerprint, path_digest
from ._diff import json_ready
from ._golden import _decode_array, _dense, _outputs, decode_input, verify_golden
from ._metadata import provenance_of
from ._scores import cross_validation

__all__ = [
    "CV_ATOL",
    "CV_RTOL",
    "STEPS",
    "Check",
    "VerificationReport",
    "read_xy",
    "rebuild_splitter",
    "verify",
]

Status = Literal["ok", "failed", "skipped"]

# A re-run cross-validation mean passes within recorded mean +/- max(3 * std, tolerance), with
# tolerance = CV_ATOL + CV_RTOL * |recorded mean|: the same code on the same data and folds
# gives the same scores up to floating-point noise, which these absorb when every fold scored
# alike (std 0); 3 * std allows for another BLAS or platform changing the folds' fits a little.
CV_ATOL = 1e-6
CV_RTOL = 1e-6

# scikit-learn splitters that the recorded type and parameters rebuild exactly; splitters that
# need groups (not recorded) or an explicit fold list are not among them
_REPLAYABLE = frozenset(
    {
        "KFold",
        "StratifiedKFold",
        "RepeatedKFold",
        "RepeatedStratifiedKFold",
        "ShuffleSplit",
        "StratifiedShuffleSplit",
        "LeaveOneOut",
        "LeavePOut",
        "TimeSeriesSplit",
    }
)
_SUPERVISED = ("classification", "regression")


@dataclass(frozen=True)
class Check:
    """The outcome of one check of `verify`.

    Attributes
    ----------
    name : str
        ``"integrity"``, ``"environment"``, ``"load"``, ``"golden_sample"``, ``"data"`` or
        ``"cross_validation"``.
    status : {"ok", "failed", "skipped"}
        Skipped means the check could not be made (nothing recorded to check, or a check it
        depends on did not pass); the message says why.
    message : str
        What was found, for people.
    details : dict
        The same for programs: versions, differences, digests, scores (JSON-ready).
    """

    name: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the check as JSON-ready data."""
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "details": json_ready(self.details),
        }


@dataclass
class VerificationReport:
    """What `verify` found: one `Check` per step, in order.

    Attributes
    ----------
    file : str
        The artifact, as named by the caller.
    checks : list of Check
        Every check, including those skipped.
    """

    file: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not fail the file)."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "failed"]

    def __getitem__(self, name: str) -> Check:
        """Return the check called ``name``."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: ``file``, ``ok`` and ``checks``."""
        return {"file": self.file, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}

    def __str__(self) -> str:
        width = max([len("check"), *(len(c.name) for c in self.checks)])
        lines = [f"skvault verify {self.file}", f"{'check'.ljust(width)}  status   details"]
        for check in self.checks:
            status = "FAILED" if check.status == "failed" else check.status
            message = check.message.splitlines() or [""]
            lines.append(f"{check.name.ljust(width)}  {status.ljust(7)}  {message[0]}")
            lines += [f"{'':{width}}  {'':7}  {line}" for line in message[1:]]
        failed = len(self.failed)
        if failed:
            lines.append(f"result: FAILED ({failed} of {len(self.checks)} checks failed)")
        else:
            skipped = sum(c.status == "skipped" for c in self.checks)
            lines.append(
                f"result: ok ({len(self.checks) - skipped} checks passed, {skipped} skipped)"
            )
        return "\n".join(lines)


class _NotReadable(Exception):
    """The data file cannot be turned into X and y (a limit of skvault, not a finding)."""


@dataclass
class _Run:
    """The state the steps share: inputs, then what earlier steps found."""

    file: Any
    name: str
    data: str | os.PathLike[str] | None
    trusted: list[str] | None
    public_key: Any = None
    broken: bool = False  # the integrity check failed: nothing else can be trusted to run
    meta: dict[str, Any] | None = None
    model: Any = None
    loaded: bool = False
    # the data file once its digest matched the record, and X, y when already read
    data_path: Path | None = None
    data_note: str = ""
    xy: tuple[Any, Any] | None = None


Outcome = tuple[Status, str, dict[str, Any]]


def verify(
    file: FileLike,
    *,
    data: str | os.PathLike[str] | None = None,
    trusted: Iterable[str] | None = None,
    public_key: PublicKeyLike | None = None,
) -> VerificationReport:
    """Check an artifact end to end and report every check, failed or not.

    The checks, in order (each is a `Check` in the report):

    1. ``integrity``: the zip structure, every member's SHA-256 against the manifest, the
       object graph and the metadata. A failure here stops the others (they are reported as
       skipped).
    2. ``signature``: with ``public_key``, the file must carry a valid Ed25519 signature by
       that key (see `sign`); a failure stops the others too. Without a key, an existing
       signature is reported (who signed) but not checked.
    3. ``environment``: the recorded versions of Python and of every distribution the model
       uses against the running ones. Any difference fails: the model may compute other
       results here (``skvault env FILE --create DIR`` rebuilds the recorded environment).
    4. ``load``: the model is built with default trust (plus ``trusted``); untrusted names
       fail, listed.
    5. ``golden_sample``: the recorded golden outputs are recomputed and compared as `load`
       does with ``verify=True``; the largest difference is reported.
    6. ``data``: the training data file, ``data`` or else the recorded path when it still
       exists, is hashed and compared with the recorded SHA-256 (or, for a model trained on
       in-memory data, X and y are read from ``data`` and their fingerprint compared). A file
       that differs fails the check ("data differs") and is not used.
    7. ``cross_validation``: when the file records cross-validation scores and the data
       matched, cross-validation is run again on a clone of the model with the recorded
       splitter and scorers; each scorer's new mean must lie within the recorded mean
       +/- max(3 * std, `CV_ATOL` + `CV_RTOL` * |mean|). A splitter that cannot be rebuilt
       (shuffled without an integer ``random_state``, or needing groups) skips the check.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.
    data : str or os.PathLike, optional
        A copy of the training data: a file or folder to compare with a recorded path's
        digest, or a ``.npz`` (arrays ``X`` and ``y``), ``.npy``, ``.csv``, ``.tsv`` or
        ``.parquet`` file to read X and y from (see ``docs/PROVENANCE.md``).
    trusted : list of str, optional
        Names to trust beyond the default allow-list when building the model, as in `load`.
    public_key : str, os.PathLike, bytes or Ed25519PublicKey, optional
        The key the file must be signed by (a PEM file, PEM bytes or a key object), as in
        ``load(..., require_signature=...)``.

    Returns
    -------
    VerificationReport
        ``report.ok`` is True when no check failed; ``str(report)`` is a table;
        ``report.to_dict()`` is JSON-ready.

    Raises
    ------
    OSError
        If ``file`` cannot be read (a missing file, say). A malformed file is not raised: it
        is the integrity check's finding.

    Examples
    --------
    >>> import skvault
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    >>> model = LogisticRegression().fit(X, y)
    >>> report = skvault.verify(skvault.dumps(model, X=X, source=False))
    >>> report.ok, report["golden_sample"].status
    (True, 'ok')
    """
    name = _display_name(file)
    run = _Run(
        file=_reopenable(file),
        name=name,
        data=data,
        trusted=None if trusted is None else list(trusted),
        public_key=public_key,
    )
    report = VerificationReport(name)
    for check_name, step in STEPS:
        if run.broken:
            report.checks.append(
                Check(
                    check_name,
                    "skipped",
                    "not run: the file failed the integrity or signature check",
                )
            )
            continue
        status, message, details = step(run)
        report.checks.append(Check(check_name, status, message, details))
    return report


def _reopenable(file: FileLike) -> Any:
    """Return ``file`` in a form each step can open again from the start."""
    if is_path(file) or isinstance(file, (bytes, bytearray, memoryview)):
        return file
    seekable = getattr(file, "seekable", None)
    if callable(seekable) and seekable():
        return _Rewound(file)  # type: ignore[arg-type]
    return file.read()  # type: ignore[union-attr]  # a pipe: kept in memory


class _Rewound:
    """A caller's seekable file, sought back to where it was before each opening."""

    def __init__(self, fh: io.IOBase) -> None:
        self.fh = fh
        self.start = fh.tell()

    def get(self) -> io.IOBase:
        self.fh.seek(self.start)
        return self.fh


def _opened(run: _Run) -> Any:
    return run.file.get() if isinstance(run.file, _Rewound) else run.file


def _display_name(file: FileLike) -> str:
    if is_path(file):
        return os.fsdecode(os.fspath(file))
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else "<bytes>"


# -- the checks ---------------------------------------------------------------------------------


def _integrity(run: _Run) -> Outcome:
    try:
        with open_artifact(_opened(run)) as artifact:
            container = artifact.container
            names = container.names()
            total = sum(container.member_size(name) for name in names)
            check_all = getattr(container, "check_all_digests", None)
            if callable(check_all):
                check_all()  # streams every member through SHA-256
            else:
                for name in names:
                    container.read_bytes(name, container.member_size(name))
            artifact.untrusted(TrustPolicy())  # parses the graph and checks every reference
            run.meta = provenance_of(artifact.metadata())
    except FormatError as exc:
        run.broken = True
        return "failed", f"{type(exc).__name__}: {exc}", {"error": type(exc).__name__}
    return (
        "ok",
        f"{len(names)} members, {total:,} bytes: every SHA-256 matches the manifest; the "
        "object graph and the metadata are well-formed",
        {"members": len(names), "bytes": total},
    )


def _signature(run: _Run) -> Outcome:
    with open_artifact(_opened(run)) as artifact:
        try:
            info = signature_info(artifact.container)
            if run.public_key is None:
                if info is None:
                    return "skipped", "the file is not signed (no public key was given)", {}
                return (
                    "skipped",
                    f"signed by key {info['key_id']}; not checked: no public key was given",
                    dict(info),
                )
            key_id = check_signature(artifact.container, run.public_key)
        except FormatError as exc:  # SignatureError, or a malformed signature
            if run.public_key is not None:
                run.broken = True
            return "failed", f"{type(exc).__name__}: {exc}", {"error": type(exc).__name__}
    return "ok", f"signed by the given key {key_id}", {"key_id": key_id}


def _environment(run: _Run) -> Outcome:
    if run.meta is None:
        return "skipped", "the file records no provenance metadata", {}
    try:
        differences = environment_differences(run.meta)
    except FormatError as exc:
        return "failed", f"{type(exc).__name__}: {exc}", {}
    if differences:
        listed = "; ".join(
            f"{name}: recorded {recorded}, running {current or 'not installed'}"
            for name, (recorded, current) in differences.items()
        )
        return (
            "failed",
            f"{listed}\n(rebuild the recorded environment: skvault env {run.name} --create DIR)",
            {
                "differences": {
                    name: {"recorded": recorded, "current": current}
                    for name, (recorded, current) in differences.items()
                }
            },
        )
    env = run.meta.get("environment") or {}
    python = (env.get("python") or {}).get("version")
    model = env.get("model") or {}
    versions = ([f"python {python}"] if python else []) + [f"{k} {v}" for k, v in model.items()]
    return (
        "ok",
        f"same versions as recorded: {', '.join(versions) or 'nothing recorded to compare'}",
        {"versions": {"python": python, **model}},
    )


def _load(run: _Run) -> Outcome:
    try:
        with open_artifact(_opened(run)) as artifact:
            run.model = artifact.construct(TrustPolicy(run.trusted))
    except UntrustedTypeError as exc:
        return (
            "failed",
            "the file references types default trust refuses: "
            f"{', '.join(exc.types)}\n(review them with skvault inspect FILE, then trust them "
            "with trusted=[...] or --trust NAME)",
            {"untrusted": exc.types},
        )
    except SkvaultError as exc:
        return "failed", f"{type(exc).__name__}: {exc}", {"error": type(exc).__name__}
    run.loaded = True
    kind = type(run.model)
    label = f"{kind.__module__}.{kind.__qualname__}"
    trust = "default trust" + (" and the names passed as trusted" if run.trusted else "")
    return "ok", f"built {label} with {trust}", {"type": label}


def _golden(run: _Run) -> Outcome:
    golden = None if run.meta is None else run.meta.get("golden")
    if golden is None:
        return "skipped", "no golden sample recorded (dump with X=... to record one)", {}
    if not run.loaded:
        return "skipped", "the model did not load", {}
    schema = run.meta.get("schema") if run.meta is not None else None
    try:
        verify_golden(run.model, golden, schema)
    except VerificationError as exc:
        return (
            "failed",
            str(exc),
            {
                "output": exc.output,
                "index": exc.index,
                "recorded": exc.expected,
                "actual": exc.actual,
                "difference": exc.difference,
            },
        )
    except FormatError as exc:
        return "failed", f"{type(exc).__name__}: {exc}", {}
    rows, largest = _largest_difference(run.model, golden, schema)
    names = list(golden["outputs"])
    rtol, atol = golden.get("rtol"), golden.get("atol")
    return (
        "ok",
        f"{', '.join(names)} on {rows} rows reproduce the recorded outputs (largest difference "
        f"{largest:g}; tolerance rtol={rtol:g}, atol={atol:g})",
        {"outputs": names, "rows": rows, "largest_difference": largest},
    )


def _largest_difference(model: Any, golden: dict[str, Any], schema: Any) -> tuple[int, float]:
    """Return the sample's row count and the largest absolute difference of its float outputs.

    Called once `verify_golden` passed, so the sample and outputs are known to be well-formed.
    """
    X = decode_input(golden["X"], schema)
    rows = int(X.shape[0])
    largest = 0.0
    expected = golden["outputs"]
    for name, value in _outputs(model, X):
        if name not in expected or isinstance(value, BaseException):
            continue
        e, a = _dense(_decode_array(expected[name])), _dense(value)
        if e.size and e.dtype.kind in "fc" and a.dtype.kind in "biufc":
            with np.errstate(invalid="ignore"):
                d = np.abs(a.astype(np.complex128) - e.astype(np.complex128))
            d = d[~np.isnan(d)]
            if d.size:
                largest = max(largest, float(d.max()))
    return rows, largest


def _data(run: _Run) -> Outcome:
    record = None if run.meta is None else run.meta.get("data")
    given = run.data is not None
    if given:
        path = Path(os.fsdecode(os.fspath(run.data)))  # type: ignore[arg-type]
    if not isinstance(record, dict):
        if given:
            return "skipped", f"no training data recorded to compare {path} with; not used", {}
        return "skipped", "no training data recorded", {}
    if "fingerprint" in record:
        if not given:
            run.data_note = "pass a copy of X and y (data=PATH, --data PATH)"
            return (
                "skipped",
                "the model was trained on in-memory data (a fingerprint of X and y is recorded): "
                "pass a copy to check it (data=PATH, --data PATH: a .npz with arrays X and y, "
                "or a table)",
                {},
            )
        return _data_fingerprint(run, path, record)
    uri, recorded = record.get("uri"), record.get("sha256")
    if not given:
        if not isinstance(recorded, str) or not isinstance(uri, str):
            run.data_note = "pass a copy (data=PATH, --data PATH)"
            return (
                "skipped",
                f"recorded as {uri}, with no digest (skvault does not download remote data)",
                {"uri": uri},
            )
        path = Path(uri)
        if not path.exists():
            run.data_note = "pass a copy (data=PATH, --data PATH)"
            return (
                "skipped",
                f"the recorded file {uri} no longer exists: pass a copy to check it "
                "(data=PATH, --data PATH)",
                {"uri": uri},
            )
    if not isinstance(recorded, str):
        return (
            "skipped",
            f"no digest recorded for {uri}: {path} cannot be confirmed as the training data, "
            "so it is not used",
            {"uri": uri},
        )
    try:
        digest, size, _ = path_digest(path)
    except OSError as exc:
        return "failed", f"cannot read the data file {path}: {exc.strerror or exc}", {}
    details = {"path": str(path), "recorded_sha256": recorded, "sha256": digest, "size": size}
    if digest != recorded:
        run.data_note = "the data differs from the recorded one"
        return (
            "failed",
            f"data differs: recorded sha256 {recorded}, file {path} has sha256 {digest}; "
            "it is not used",
            details,
        )
    run.data_path = path
    return "ok", f"{path} has the recorded SHA-256 ({digest[:16]}..., {size:,} bytes)", details


def _data_fingerprint(run: _Run, path: Path, record: dict[str, Any]) -> Outcome:
    """Read X and y from ``path`` and compare their fingerprint with the recorded one."""
    recorded = record.get("fingerprint") or {}
    try:
        X, y = read_xy(path, record, run.meta.get("schema") if run.meta else None)
    except OSError as exc:
        return "failed", f"cannot read the data file {path}: {exc.strerror or exc}", {}
    except _NotReadable as exc:
        run.data_note = str(exc)
        return "skipped", f"{exc}; not used", {"path": str(path)}
    except Exception as exc:  # a parser's error on a damaged file: reported, not raised
        return "failed", f"cannot read X and y from {path}: {exc}", {"path": str(path)}
    found = fingerprint(X, y)["fingerprint"]
    details: dict[str, Any] = {"path": str(path)}
    differing = []
    for part in ("X", "y"):
        want, got = recorded.get(part), found.get(part)
        want_digest = want.get("sha256") if isinstance(want, dict) else None
        got_digest = got.get("sha256") if isinstance(got, dict) else None
        details[f"recorded_{part}_sha256"] = want_digest
        details[f"{part}_sha256"] = got_digest
        if want_digest != got_digest:
            differing.append(
                f"{part}: recorded sha256 {want_digest}, file {path} gives "
                f"{got_digest} (shape {None if got is None else got.get('shape')})"
            )
    if differing:
        run.data_note = "the data differs from the recorded one"
        return "failed", "data differs: " + "; ".join(differing) + "; it is not used", details
    run.data_path, run.xy = path, (X, y)
    return "ok", f"X and y read from {path} have the recorded fingerprint", details


def _cross_validation(run: _Run) -> Outcome:
    meta = run.meta or {}
    scores = meta.get("scores")
    cv = scores.get("cv") if isinstance(scores, dict) else None
    if not isinstance(cv, dict):
        return "skipped", "no cross-validation scores recorded (dump with cv=..., X=, y=)", {}
    if run.data_path is None:
        why = f": {run.data_note}" if run.data_note else ""
        return "skipped", f"needs the training data, checked against its record{why}", {}
    if not run.loaded:
        return "skipped", "the model did not load", {}
    try:
        names = [str(n) for n in cv["scoring"]]
        means = {n: float(cv["mean"][n]) for n in names}
        stds = {n: float(cv["std"][n]) for n in names}
        n_folds = len(cv["folds"][names[0]])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return "failed", f"the recorded cross-validation results are malformed: {exc!r}", {}
    splitter, why = rebuild_splitter(cv.get("splitter"), n_folds)
    if splitter is None:
        return "skipped", why, {"splitter": cv.get("splitter")}
    if run.xy is None:
        try:
            run.xy = read_xy(run.data_path, meta.get("data") or {}, meta.get("schema"))
        except _NotReadable as exc:
            return "skipped", str(exc), {}
        except Exception as exc:
            return "failed", f"cannot read X and y from {run.data_path}: {exc}", {}
    X, y = run.xy
    try:
        rebuilt = splitter.get_n_splits(X, y)
    except (TypeError, ValueError) as exc:
        return "failed", f"{splitter!r} cannot split this data: {exc}", {}
    if rebuilt != n_folds:
        return (
            "skipped",
            f"the rebuilt {splitter!r} makes {rebuilt} folds, the record has {n_folds}",
            {},
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            again = cross_validation(
                run.model, X, y, splitter, None if names == ["score"] else names
            )
        except Exception as exc:  # the estimator's own error on this data: a finding
            return "failed", f"cross-validation failed: {type(exc).__name__}: {exc}", {}
    lines, results, ok = [], {}, True
    for name in names:
        mean, std = means[name], stds[name]
        new = float(again["mean"][name])
        allowed = max(3 * std, CV_ATOL + CV_RTOL * abs(mean))
        within = math.isfinite(new) and abs(new - mean) <= allowed
        ok = ok and within
        results[name] = {
            "mean": new,
            "recorded_mean": mean,
            "recorded_std": std,
            "allowed": allowed,
            "folds": again["folds"][name],
            "ok": within,
        }
        verdict = "within" if within else "OUTSIDE"
        lines.append(
            f"{name}: mean {new:.6g} is {verdict} the recorded {mean:.6g} +/- {allowed:.3g}"
        )
    kinds = sorted({w.category.__name__ for w in caught})
    if kinds:
        lines.append(f"({len(caught)} warnings while fitting: {', '.join(kinds)})")
    where = f"{len(again['folds'][names[0]])} folds of {splitter!r}"
    lines[0] = f"{lines[0]} ({where})"
    return ("ok" if ok else "failed"), "\n".join(lines), {"scores": results}


STEPS: tuple[tuple[str, Callable[[_Run], Outcome]], ...] = (
    ("integrity", _integrity),
    ("signature", _signature),
    ("environment", _environment),
    ("load", _load),
    ("golden_sample", _golden),
    ("data", _data),
    ("cross_validation", _cross_validation),
)


# -- rebuilding what cross-validation used ---------------------------------------------------------


def rebuild_splitter(recorded: Any, n_folds: int) -> tuple[Any, str]:
    """Return the recorded CV splitter rebuilt, or None and why it cannot be.

    Only scikit-learn's own splitters are rebuilt, by their public name in
    ``sklearn.model_selection``: the type name comes from the file, which must not choose
    what gets imported. ``n_folds`` (the number of recorded fold scores) settles the
    ``n_splits`` of repeated splitters, recorded as the total by skvault 0.1.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("type"), str):
        return None, "the recorded splitter is malformed"
    module, _, name = recorded["type"].rpartition(".")
    if not module.startswith("sklearn.model_selection") or name not in _REPLAYABLE:
        return None, (
            f"the recorded splitter {recorded['type']} cannot be rebuilt from its record "
            "(skvault rebuilds scikit-learn's KFold, StratifiedKFold, ShuffleSplit, "
            "TimeSeriesSplit, LeaveOneOut, LeavePOut and their repeated and stratified forms; "
            "group splitters need groups, which are not recorded)"
        )
    params = recorded.get("params")
    if not isinstance(params, dict) or not all(
        v is None or isinstance(v, (bool, int, float)) for v in params.values()
    ):
        return None, (
            f"the {name} parameters were not recorded as plain values ({params!r}): a "
            "RandomState or a list of folds cannot be replayed"
        )
    random = "random_state" in params and (params.get("shuffle", True) is True)
    if random and params["random_state"] is None:
        return None, (
            f"{name} shuffled without a fixed random_state: its folds cannot be repeated "
            "(use random_state=<int> when recording cv=)"
        )
    params = dict(params)
    if "n_repeats" in params and isinstance(params.get("n_splits"), int):
        repeats = params["n_repeats"]
        if isinstance(repeats, int) and repeats > 0 and params["n_splits"] * repeats != n_folds:
            params["n_splits"] = params["n_splits"] // repeats
    import sklearn.model_selection

    cls = getattr(sklearn.model_selection, name)
    try:
        splitter = cls(**params)
    except (TypeError, ValueError) as exc:
        return None, f"the recorded {name} cannot be rebuilt here: {exc}"
    return splitter, ""


def read_xy(path: Path, record: dict[str, Any], schema: Any) -> tuple[Any, Any]:
    """Read the training data back as ``(X, y)`` from a ``.npz``, ``.npy`` or table file.

    ``.npz``: array ``X``, and ``y`` (or the array named by the recorded ``target``) when
    present. ``.npy``: X only. ``.csv``, ``.tsv`` and ``.parquet`` (with pandas): y is the
    recorded ``target`` column (or the name of the Series y was, for in-memory data); X is
    the model's recorded feature names when the table has them all, else every other column.
    X and y come back as arrays when the model was trained on arrays (in-memory data recorded
    without column names), as a DataFrame and a Series otherwise.
    """
    if path.is_dir():
        raise _NotReadable(f"{path} is a folder: skvault cannot read X and y from it")
    suffix = path.suffix.lower()
    target = record.get("target")
    fp = record.get("fingerprint") if isinstance(record.get("fingerprint"), dict) else None
    inputs = schema.get("input", {}) if isinstance(schema, dict) else {}
    task = (schema.get("output") or {}).get("task") if isinstance(schema, dict) else None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if "X" not in arrays.files:
                raise _NotReadable(f"{path} has no array named X (it has {arrays.files})")
            key = target if isinstance(target, str) else "y"
            X = arrays["X"]
            y = arrays[key] if key in arrays.files else None
    elif suffix == ".npy":
        X, y = np.load(path, allow_pickle=False), None
    elif suffix in (".csv", ".tsv", ".parquet"):
        X, y = _read_table(path, suffix, target, fp, inputs)
    else:
        raise _NotReadable(
            f"skvault reads X and y from .npz, .npy, .csv, .tsv and .parquet files, not {path.name}"
        )
    if y is None and task in _SUPERVISED and (fp is None or fp.get("y") is not None):
        raise _NotReadable(
            f"{path} gives no y for this {task} model: record the target column at dump with "
            "data=..., target='column' (or name the array y in a .npz)"
        )
    return X, y


def _read_table(
    path: Path, suffix: str, target: Any, fp: dict[str, Any] | None, inputs: dict[str, Any]
) -> tuple[Any, Any]:
    try:
        import pandas as pd
    except ImportError:
        raise _NotReadable(f"reading {path.name} needs pandas, which is not installed") from None
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise _NotReadable(f"reading {path.name} needs a parquet engine: {exc}") from None
    else:
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    if not isinstance(target, str) and fp is not None:
        y_record = fp.get("y")
        columns = y_record.get("columns") if isinstance(y_record, dict) else None
        if isinstance(columns, list) and len(columns) == 1:
            target = columns[0]
    columns = [str(c) for c in frame.columns]
    if isinstance(target, str) and target not in columns:
        raise _NotReadable(f"{path} has no target column {target!r} (it has {columns[:20]})")
    y = frame[target] if isinstance(target, str) else None
    features = inputs.get("feature_names")
    if isinstance(features, list) and features and all(f in columns for f in features):
        X = frame[features]
    else:
        X = frame.drop(columns=[target]) if isinstance(target, str) else frame
    as_arrays = fp is not None and isinstance(fp.get("X"), dict) and not fp["X"].get("columns")
    if as_arrays:  # trained on arrays: give the model (and the fingerprint) arrays again
        X = X.to_numpy()
        y = None if y is None else y.to_numpy()
    return X, y
