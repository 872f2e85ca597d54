"""Ed25519 signatures over an artifact's manifest and zip structure.

The manifest records the size and SHA-256 of every other member, so a signature over the
manifest's exact bytes covers all member data: a changed member fails its digest, a changed
manifest fails the signature. The signed message adds the digest of the zip structure (every
byte outside member data: local headers, padding, central directory, end record), so no byte of
the file escapes. The signature lives in the zip archive comment, which is the one place that
can hold it without being covered by it; readers that do not check signatures ignore it.

A valid signature proves who wrote the file, not that its content is sane: signed files are
audited and validated like any other.

Keys are files in PEM: PKCS #8 for the private key (written with mode 0600), SubjectPublicKeyInfo
for the public key. The ``cryptography`` package (the ``sign`` extra) does the arithmetic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import SignatureError
from ._container import ContainerReader, parse_json
from ._files import is_path

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["check_signature", "keygen", "load_public_key", "sign", "signature_info"]

ALGORITHM = "ed25519"
PublicKeyLike = Union[str, "os.PathLike[str]", bytes, "Ed25519PublicKey"]
PrivateKeyLike = Union[str, "os.PathLike[str]", bytes, "Ed25519PrivateKey"]
_KEY_FILE_LIMIT = 16 << 10


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "signing needs the cryptography package: install skvault[sign] for this"
        ) from None
    return serialization, ed25519


def _raw_public(key: Ed25519PublicKey) -> bytes:
    serialization, _ = _crypto()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Return a short, stable identifier of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def keygen(private_path: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """Create an Ed25519 key pair: ``private_path`` and ``private_path + ".pub"``.

    Parameters
    ----------
    private_path : str or os.PathLike
        Where to write the private key (PEM, PKCS #8, unencrypted, mode 0600). Keep it secret.
    overwrite : bool, default=False
        Replace existing key files; by default an existing file is an error, so a key that
        signed artifacts is never lost by accident.

    Returns
    -------
    (Path, Path)
        The private and public key paths.
    """
    serialization, ed25519 = _crypto()
    private = Path(private_path)
    public = private.with_name(private.name + ".pub")
    for path in (private, public):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private, private_pem, mode=0o600)
    _write_new(public, public_pem, mode=0o644)
    return private, public


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_bytes(key: object, what: str) -> bytes:
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if is_path(key):
        path = Path(key)
        if path.stat().st_size > _KEY_FILE_LIMIT:
            raise SignatureError(f"{path} is too large to be a {what} key file")
        return path.read_bytes()
    raise TypeError(f"{what} key must be a path, PEM bytes or an Ed25519 key object")


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """Return an Ed25519 public key from a PEM file path, PEM bytes or a key object."""
    serialization, ed25519 = _crypto()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    data = _key_bytes(key, "public")
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM public key: {exc}") from None
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise SignatureError(f"the public key is {type(loaded).__name__}, not Ed25519")
    return loaded


def _load_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    serialization, ed25519 = _crypto()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    data = _key_bytes(key, "private")
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise SignatureError(f"the private key is {type(loaded).__name__}, not Ed25519")
    return loaded


_MAGIC = b"skvault-signature-v1\n"


def _message(container: ContainerReader) -> bytes:
    return _MAGIC + hashlib.sha256(container.manifest_bytes).digest() + container.structure_digest()


def _parse_signature(raw: bytes) -> dict[str, Any]:
    doc = parse_json(raw, "the archive comment")
    fields = {"skvault_signature", "algorithm", "key_id", "public_key", "signature"}
    if not isinstance(doc, dict) or set(doc) != fields or doc["skvault_signature"] != 1:
        raise SignatureError("the archive comment is not a skvault signature (version 1)")
    if doc["algorithm"] != ALGORITHM:
        raise SignatureError(f"unsupported signature algorithm {doc['algorithm']!r}")
    for name in fields - {"skvault_signature"}:
        if not isinstance(doc[name], str):
            raise SignatureError(f"signature: {name!r} must be a string")
    try:
        doc["public_key_bytes"] = base64.b64decode(doc["public_key"], validate=True)
        doc["signature_bytes"] = base64.b64decode(doc["signature"], validate=True)
    except ValueError:
        raise SignatureError("the signature holds malformed base64") from None
    for name in ("public_key", "signature"):
        # base64 has spare bits: only the canonical spelling is accepted, so no byte is free
        if base64.b64encode(doc[f"{name}_bytes"]).decode("ascii") != doc[name]:
            raise SignatureError(f"the signature's {name!r} is not canonical base64")
    if len(doc["public_key_bytes"]) != 32 or len(doc["signature_bytes"]) != 64:
        raise SignatureError("the signature holds a key or signature of the wrong length")
    if doc["key_id"] != hashlib.sha256(doc["public_key_bytes"]).hexdigest()[:16]:
        raise SignatureError("the signature's key id does not match its public key")
    return doc


def _signature_doc(public: Ed25519PublicKey, signature: bytes) -> bytes:
    doc = {
        "skvault_signature": 1,
        "algorithm": ALGORITHM,
        "key_id": key_id(public),
        "public_key": base64.b64encode(_raw_public(public)).decode("ascii"),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def signature_info(container: ContainerReader) -> dict[str, str] | None:
    """Return ``{"algorithm", "key_id"}`` of the file's signature, or None when unsigned.

    Checks the signature's form only; `check_signature` checks it against a key.
    """
    raw = container.archive_comment()
    if not raw:
        return None
    doc = _parse_signature(raw)
    return {"algorithm": doc["algorithm"], "key_id": doc["key_id"]}


def check_signature(container: ContainerReader, public_key: PublicKeyLike) -> str:
    """Check that the artifact is signed by ``public_key``; return the key id.

    Raises
    ------
    SignatureError
        If the file is unsigned, signed by another key, or the signature does not match the
        manifest and zip structure.
    """
    from cryptography.exceptions import InvalidSignature

    expected = load_public_key(public_key)
    want = key_id(expected)
    raw = container.archive_comment()
    if not raw:
        raise SignatureError(f"the file is not signed; a signature by key {want} is required")
    doc = _parse_signature(raw)
    if doc["public_key_bytes"] != _raw_public(expected):
        raise SignatureError(
            f"the file is signed by another key ({doc['key_id']}), not by the required key {want}"
        )
    try:
        expected.verify(doc["signature_bytes"], _message(container))
    except InvalidSignature:
        raise SignatureError(
            f"the signature by key {want} does not match the file: it was changed after it "
            "was signed"
        ) from None
    return want


def sign(file: str | os.PathLike[str], key: PrivateKeyLike) -> str:
    """Sign the artifact at ``file`` in place with an Ed25519 private key; return the key id.

    The whole artifact is checked first (structure and every member's digest), so only an
    intact file gets signed. An existing signature is replaced. The file is rewritten
    atomically: a crash leaves the old file, never a half-signed one.

    Parameters
    ----------
    file : str or os.PathLike
        The ``.skv`` artifact.
    key : str, os.PathLike, bytes or Ed25519PrivateKey
        The private key, as a PEM file (see `keygen`), PEM bytes, or a key object.

    Returns
    -------
    str
        The signing key's id (16 hex digits of the SHA-256 of the public key), as
        ``skvault verify --public-key`` and signature errors show it.

    Raises
    ------
    FormatError, IntegrityError
        If the artifact is malformed or a member does not match its digest.
    """
    if not is_path(file):
        raise TypeError("sign needs a path: it rewrites the file in place")
    private = _load_private_key(key)
    public = private.public_key()
    path = Path(file)
    with open(path, "rb") as fh:
        container = ContainerReader(fh)
        try:
            container.check_all_digests()
            keep = container.file_size - len(container.archive_comment())
        finally:
            container.close()
    # the comment's length is fixed (fixed-size fields), so it is set before the structure is
    # hashed and the real signature then fills the same bytes
    placeholder = _signature_doc(public, bytes(64))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb+") as out:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out)
            out.truncate(keep)
            out.seek(keep - 2)
            out.write(len(placeholder).to_bytes(2, "little") + placeholder)
            out.flush()
            container = ContainerReader(out)
            try:
                signature = private.sign(_message(container))
            finally:
                container.close()
            final = _signature_doc(public, signature)
            if len(final) != len(placeholder):  # pragma: no cover - fixed-size fields
                raise RuntimeError("internal error: signature length changed")
            out.seek(keep)
            out.write(final)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return key_id(public)
