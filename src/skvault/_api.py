"""The public functions: dump, dumps, load, loads, get_untrusted_types, inspect, read_metadata."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from . import provenance
from .errors import SignatureError
from .format import TrustPolicy, open_artifact, write_artifact
from .format._files import FileLike, open_input
from .format._signing import PublicKeyLike, check_signature, signature_info
from .legacy._detect import detect_file

__all__ = [
    "dump",
    "dumps",
    "get_untrusted_types",
    "inspect",
    "load",
    "loads",
    "read_metadata",
]

OnMismatch = Literal["warn", "error", "ignore"]
Verify = bool | Literal["auto"]


def dump(
    obj: Any,
    file: FileLike,
    *,
    compress: object = None,
    data: str | os.PathLike[str] | None = None,
    target: str | None = None,
    source: Any = None,
    scores: Mapping[str, Any] | None = None,
    cv: Any = None,
    scoring: str | list[str] | None = None,
    X: Any = None,
    y: Any = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    golden_rows: int = 32,
    environment: Mapping[str, Any] | None = None,
) -> None:
    """Save ``obj`` as a ``.skv`` artifact, with the record of how it was made.

    Every artifact records the environment (Python, platform, the versions of scikit-learn and
    its dependencies, of the distributions the model uses and of everything installed), the
    creation time, and the model's input and output schema. The keywords add the training
    data, code, scores and a golden sample; `read_metadata` returns it all, and `load` checks
    it. See ``docs/PROVENANCE.md``.

    Parameters
    ----------
    obj : object
        A fitted estimator, or any graph of builtin containers, scalars, numpy and scipy data,
        importable functions and classes, and objects whose state is a plain ``__dict__``.
    file : str, os.PathLike or binary file object
        Where to write. A path is written atomically: the old file stays until the new one is
        complete and synced.
    compress : None, bool, int, {"zlib", "lzma"} or (str, int), default=None
        Compress members. Smaller files, but arrays then cannot be memory-mapped.
    data : str or os.PathLike, optional
        The training data: a local file or folder (recorded with the SHA-256 of its bytes, its
        size and modification time) or a URI such as ``s3://bucket/train.parquet`` (recorded as
        given). Without it, ``X`` and ``y`` are fingerprinted (digest, shape, dtypes, columns).
    target : str, optional
        With ``data``: the label column of a ``.csv``, ``.tsv`` or ``.parquet`` file (or the
        name of the y array in a ``.npz``, ``"y"`` by default), recorded so that
        ``skvault.verify`` can read X and y back and re-run cross-validation.
    source : path, module, function or False, optional
        The training code, stored as text with the git commit, branch, remote and dirty flag
        when it lives in a git work tree. By default, the running ``__main__`` script when there
        is one (not in interactive sessions or notebooks); False records none.
    scores : dict, optional
        Scores to record as given, for example ``{"accuracy": 0.93}``.
    cv : int or cross-validation splitter, optional
        Run ``sklearn.model_selection.cross_validate`` on a clone of ``obj`` with ``X`` and
        ``y``, and record per-fold scores, their mean and standard deviation and the splitter.
    scoring : str or list of str, optional
        Scorer names for ``cv``; by default the estimator's ``score`` method.
    X, y : array-like, DataFrame or sparse matrix, optional
        Training data (or a sample of it): fingerprinted when ``data`` is not given, used by
        ``cv``, and the first ``golden_rows`` rows of ``X`` form the golden sample.
    description : str, optional
        Free text.
    tags : list of str, optional
        Labels.
    metrics : dict, optional
        Any other plain values to keep (numbers, strings, lists, dicts, arrays).
    golden_rows : int, default=32
        How many rows of ``X`` to keep with the model's outputs on them (``predict``,
        ``predict_proba``, ``decision_function``, ``transform``: those that succeed); 0 for none.
    environment : dict, optional
        Merged over the captured environment (nested dicts merge, other values replace), for
        example ``{"model": {"scikit-learn": "1.5.0"}}``. Meant for tests of the load checks
        and for migrations that rewrite an artifact for a new environment; a normal dump never
        needs it.

    Raises
    ------
    UnsupportedTypeError
        If part of ``obj`` cannot be represented without pickle; the message says where. Also
        if ``scores`` or ``metrics`` hold something other than plain data.
    FileNotFoundError
        If ``data`` or ``source`` names a file that does not exist.
    ValueError
        If ``cv`` is given without ``X``, ``target`` without ``data`` or naming no column of
        it, or the source of a function cannot be read.

    Examples
    --------
    >>> import skvault
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> skvault.loads(skvault.dumps(model)).predict([[0.9]]).tolist()
    [1]
    """
    metadata = provenance.build_metadata(
        obj,
        data=data,
        target=target,
        source=source,
        scores=scores,
        cv=cv,
        scoring=scoring,
        X=X,
        y=y,
        description=description,
        tags=tags,
        metrics=metrics,
        golden_rows=golden_rows,
        environment=environment,
    )
    write_artifact(obj, file, compress=compress, metadata=metadata)


def dumps(
    obj: Any,
    *,
    compress: object = None,
    data: str | os.PathLike[str] | None = None,
    target: str | None = None,
    source: Any = None,
    scores: Mapping[str, Any] | None = None,
    cv: Any = None,
    scoring: str | list[str] | None = None,
    X: Any = None,
    y: Any = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    golden_rows: int = 32,
    environment: Mapping[str, Any] | None = None,
) -> bytes:
    """Return ``obj`` as the bytes of a ``.skv`` artifact; see `dump`."""
    buf = io.BytesIO()
    dump(
        obj,
        buf,
        compress=compress,
        data=data,
        target=target,
        source=source,
        scores=scores,
        cv=cv,
        scoring=scoring,
        X=X,
        y=y,
        description=description,
        tags=tags,
        metrics=metrics,
        golden_rows=golden_rows,
        environment=environment,
    )
    return buf.getvalue()


def load(
    file: FileLike,
    *,
    trusted: Iterable[str] | None = None,
    mmap: bool = False,
    on_mismatch: OnMismatch = "warn",
    verify: Verify = "auto",
    require_signature: PublicKeyLike | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Load an object from a ``.skv`` artifact (or a legacy file), building only trusted types.

    Before building, the versions recorded at dump (Python, and every distribution the model
    uses) are compared with the running ones; after building, the model can be checked against
    its golden sample.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.
    trusted : list of str, optional
        Fully qualified names to trust beyond the default allow-list, for example your own
        estimator class ``["mypackage.models.MyEstimator"]``. Review them first with
        `get_untrusted_types`.
    mmap : bool, default=False
        Memory-map uncompressed arrays instead of reading them: loading is near instant and
        the arrays are read-only views of the file. Their digests are then not checked at load
        (that would read every page); the graph and every other member still are. Meant for
        prediction: to train further (``warm_start``, ``partial_fit``), load without it, as
        training writes into the arrays.
    on_mismatch : {"warn", "error", "ignore"}, default="warn"
        What to do when a recorded version differs from the running one: warn with
        `VersionMismatchWarning`, raise `EnvironmentMismatchError` before building anything,
        or nothing. Files without provenance metadata are not checked.
    verify : bool or "auto", default="auto"
        Recompute the golden sample's outputs on the loaded model and compare them with the
        recorded ones: labels and integers exactly, floats within the tolerance stored in the
        file (by default ``rtol=1e-9``, ``atol=0``). ``"auto"`` verifies when versions differ
        and the file has a golden sample; True always verifies and raises if there is no
        sample.
    require_signature : str, os.PathLike, bytes or Ed25519PublicKey, optional
        A public key (PEM file, PEM bytes or key object, see `keygen` and `sign`): refuse the
        file unless it carries a valid signature by that key, checked before anything else is
        read. With ``mmap=True`` every member's digest is then checked too, so that no byte of
        a signed file goes unchecked. A signature proves who wrote the file; its content is
        still audited and validated as usual.
    allow_pickle : bool, default=False
        The format is detected from the content. skops files load under the same allow-list as
        ``.skv`` files, read by skvault's own reader. Pickle and joblib files (and ``.npy``
        files of object arrays) load only with ``allow_pickle=True``, and then through
        skvault's restricted unpickler: only allow-listed names are resolved, nothing from the
        file is called but checked reconstruction paths, every object's state is validated.
        Prefer ``skvault audit FILE`` and ``skvault convert FILE OUT.skv``. Legacy files carry
        no provenance: ``on_mismatch``, ``verify`` and ``mmap`` do not apply to them.

    Returns
    -------
    object
        The rebuilt object.

    Raises
    ------
    UntrustedTypeError
        If the file references names that are not trusted; nothing has been imported then.
    FormatError
        If the file is malformed, truncated, or from a newer format version.
    IntegrityError
        If a member's digest differs from the manifest.
    SignatureError
        With ``require_signature``, if the file is unsigned, signed by another key, or changed
        after signing.
    PickleNotAllowedError
        If the file is a pickle or joblib file and ``allow_pickle`` is False.
    InvalidStateError
        If an object's state breaks an invariant its type relies on.
    EnvironmentMismatchError
        With ``on_mismatch="error"``, if versions differ.
    VerificationError
        If the model's outputs on its golden sample differ from the recorded ones (the error
        says which output, where, and by how much).
    ValueError
        If ``on_mismatch`` or ``verify`` has another value.

    Warns
    -----
    VersionMismatchWarning
        With ``on_mismatch="warn"``, if versions differ; it carries the recorded and current
        versions.
    """
    return _load(file, trusted, mmap, on_mismatch, verify, require_signature, allow_pickle)


def _load(
    file: FileLike,
    trusted: Iterable[str] | None,
    mmap: bool,
    on_mismatch: OnMismatch,
    verify: Verify,
    require_signature: PublicKeyLike | None,
    allow_pickle: bool,
) -> Any:
    """The one read path of `load` and `loads`; only ever called by them."""
    provenance.check_options(on_mismatch, verify)
    policy = TrustPolicy(trusted)
    meta = None
    with open_input(file) as fh:
        kind = detect_file(fh)
        if kind not in _SKV_KINDS:
            if require_signature is not None:
                raise SignatureError(
                    f"the file is a {kind} file, which cannot carry a signature; a signed "
                    ".skv artifact is required"
                )
            from .legacy._unpickler import load_legacy

            return load_legacy(fh, trusted=trusted, allow_pickle=allow_pickle)
        with open_artifact(fh) as artifact:
            if require_signature is not None:
                check_signature(artifact.container, require_signature)
                if mmap:
                    artifact.container.check_all_digests()
            if on_mismatch != "ignore" or verify is not False:
                meta = provenance.provenance_of(artifact.metadata())
            # before building: a model that fails to build in this environment says why first
            # the warning points at the user's call: check_environment < _load < load(s) < user
            differences = provenance.check_environment(meta, on_mismatch, stacklevel=4)
            obj = artifact.construct(policy, mmap=mmap)
    if verify is True or (verify == "auto" and differences and _has_golden(meta)):
        provenance.verify_model(obj, meta)
    return obj


# what detect_file reports for files the .skv reader reads (or explains why it cannot)
_SKV_KINDS = frozenset({"skv", "zip", "empty", "unknown"})


def _has_golden(meta: dict[str, Any] | None) -> bool:
    return meta is not None and meta.get("golden") is not None


def loads(
    data: bytes,
    *,
    trusted: Iterable[str] | None = None,
    on_mismatch: OnMismatch = "warn",
    verify: Verify = "auto",
    require_signature: PublicKeyLike | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Load an object from the bytes of a ``.skv`` artifact; see `load`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads expects bytes, not {type(data).__name__}")
    return _load(
        io.BytesIO(data), trusted, False, on_mismatch, verify, require_signature, allow_pickle
    )


def get_untrusted_types(file: FileLike) -> list[str]:
    """Return the fully qualified names in an artifact that default trust would refuse.

    Reads the file without importing or constructing anything from it.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact, or a skops file (which `load` reads under the same allow-list).

    Returns
    -------
    list of str
        Sorted names; empty when the file loads with default trust.

    Raises
    ------
    FormatError
        If the file is malformed, or is a pickle or joblib file (`audit` lists what those
        reference).
    """
    with open_input(file) as fh:
        if detect_file(fh) == "skops":
            from .legacy._skops import read_skops

            return read_skops(fh).untrusted(TrustPolicy())
        with open_artifact(fh) as artifact:
            return artifact.untrusted(TrustPolicy())


def inspect(file: FileLike) -> dict[str, Any]:
    """Describe an artifact without loading it: object tree, arrays, manifest, untrusted names.

    Safe on any file: nothing named by the file is imported or constructed.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.

    Returns
    -------
    dict
        JSON-serialisable report with keys ``file_size``, ``format_version``, ``created_by``,
        ``packages``, ``members``, ``member_bytes``, ``globals``, ``untrusted``, ``tree``,
        ``params`` and ``signature`` (None, ``{"algorithm", "key_id"}`` of the signer — not
        checked against any key, see `verify` — or ``{"error": message}`` when malformed).
    """
    with open_artifact(file) as artifact:
        report = artifact.describe()
        try:
            report["signature"] = signature_info(artifact.container)
        except SignatureError as exc:
            report["signature"] = {"error": str(exc)}
        return report


def read_metadata(file: FileLike) -> dict[str, Any]:
    """Return what an artifact records about its making, without loading the model.

    Reads only the manifest and the metadata members: nothing named by the file is imported or
    built, so no trust is needed, and it stays fast however large the model is.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.

    Returns
    -------
    dict
        The metadata described in ``docs/PROVENANCE.md`` (``skvault_metadata``, ``created_at``,
        ``environment``, ``schema``, ``data``, ``source``, ``scores``, ``description``,
        ``tags``, ``metrics``, ``golden``), plus the file's manifest under ``"manifest"``. A file
        written without metadata (by `skvault.format.write_artifact` alone) gives a dict with
        only ``"manifest"``.

    Raises
    ------
    FormatError
        If the file is malformed.
    IntegrityError
        If a member read differs from its digest in the manifest.
    """
    return provenance.read_metadata(file)
