"""Signed artifacts: keygen, sign, load(require_signature=...), through the public API."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.errors import IntegrityError, SignatureError, SkvaultError


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def model(iris):
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture()
def keys(tmp_path):
    return skvault.keygen(tmp_path / "key")


@pytest.fixture()
def signed(tmp_path, model, keys):
    path = tmp_path / "m.skv"
    skvault.dump(model, path)
    skvault.sign(path, keys[0])
    return path


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    private, public = skvault.keygen(tmp_path / "k")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert public.name == "k.pub"
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    pub = serialization.load_pem_public_key(public.read_bytes())
    assert pub.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_keygen_never_overwrites_a_key_by_accident(tmp_path):
    private, _ = skvault.keygen(tmp_path / "k")
    before = private.read_bytes()
    with pytest.raises(FileExistsError):
        skvault.keygen(tmp_path / "k")
    assert private.read_bytes() == before
    skvault.keygen(tmp_path / "k", overwrite=True)
    assert private.read_bytes() != before


@pytest.mark.parametrize("form", ["path", "pem", "object"])
def test_signed_file_loads_with_its_public_key(signed, keys, model, iris, form):
    public = keys[1]
    key = {
        "path": public,
        "pem": public.read_bytes(),
        "object": serialization.load_pem_public_key(public.read_bytes()),
    }[form]
    loaded = skvault.load(signed, require_signature=key)
    X, _ = iris
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert skvault.loads(signed.read_bytes(), require_signature=key).coef_.tolist() == (
        model.coef_.tolist()
    )


def test_signature_does_not_change_plain_loading(signed, model):
    assert skvault.load(signed).coef_.tolist() == model.coef_.tolist()
    assert skvault.get_untrusted_types(signed) == []


def test_unsigned_file_is_refused_when_a_signature_is_required(tmp_path, model, keys):
    path = tmp_path / "plain.skv"
    skvault.dump(model, path)
    with pytest.raises(SignatureError, match="not signed"):
        skvault.load(path, require_signature=keys[1])


def test_file_signed_by_another_key_is_refused(signed, tmp_path):
    _, other_public = skvault.keygen(tmp_path / "other")
    with pytest.raises(SignatureError, match="another key"):
        skvault.load(signed, require_signature=other_public)


def test_resigning_replaces_the_signature(signed, keys, tmp_path):
    other_private, other_public = skvault.keygen(tmp_path / "other")
    skvault.sign(signed, other_private)
    skvault.load(signed, require_signature=other_public)
    with pytest.raises(SignatureError, match="another key"):
        skvault.load(signed, require_signature=keys[1])


def _flip_everywhere(data: bytes, positions):
    for i in positions:
        bad = bytearray(data)
        bad[i] ^= 0x01
        yield i, bytes(bad)


@pytest.mark.parametrize("compress", [None, 6])
def test_every_changed_byte_fails(tmp_path, model, keys, compress):
    path = tmp_path / "m.skv"
    skvault.dump(model, path, compress=compress)
    skvault.sign(path, keys[0])
    data = path.read_bytes()
    public = keys[1].read_bytes()
    undetected = []
    for i, bad in _flip_everywhere(data, range(len(data))):
        try:
            skvault.loads(bad, require_signature=public, on_mismatch="ignore", verify=False)
        except SkvaultError:
            continue
        undetected.append(i)
    assert undetected == []


def test_every_changed_byte_fails_with_mmap(tmp_path, keys):
    # an array of 100 kB gets a .npy member of its own, which mmap does not hash by default
    scaler = StandardScaler().fit(np.random.default_rng(0).normal(size=(20, 12_800)))
    path = tmp_path / "big.skv"
    skvault.dump(scaler, path)
    skvault.sign(path, keys[0])
    data = path.read_bytes()
    positions = list(range(0, len(data), 509)) + list(range(len(data) - 2000, len(data)))
    target = tmp_path / "bad.skv"
    for _, bad in _flip_everywhere(data, positions):
        target.write_bytes(bad)
        with pytest.raises(SkvaultError):
            skvault.load(target, mmap=True, require_signature=keys[1], verify=False)
    loaded = skvault.load(path, mmap=True, require_signature=keys[1])
    np.testing.assert_array_equal(loaded.mean_, scaler.mean_)


def test_sign_refuses_a_corrupted_file_and_leaves_it_alone(tmp_path, model, keys):
    path = tmp_path / "m.skv"
    skvault.dump(model, path, compress=None)
    data = bytearray(path.read_bytes())
    start = data.index(b"buffers/0.bin") + len(b"buffers/0.bin")
    data[start + 80] ^= 0xFF  # inside the buffer member's data
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        skvault.sign(path, keys[0])
    assert path.read_bytes() == bytes(data)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "content", [b"not a zip at all", b"PK\x03\x04" + bytes(100), b""], ids=["text", "zip", "empty"]
)
def test_sign_refuses_what_is_not_an_artifact(tmp_path, keys, content):
    path = tmp_path / "x.skv"
    path.write_bytes(content)
    with pytest.raises(SkvaultError):
        skvault.sign(path, keys[0])
    assert path.read_bytes() == content


def _with_comment(data: bytes, comment: bytes) -> bytes:
    # the end record is 22 bytes, its last two the comment's length; the comment follows
    end = data.rindex(b"PK\x05\x06")
    return data[: end + 20] + len(comment).to_bytes(2, "little") + comment


@pytest.mark.parametrize(
    "comment",
    [
        b"garbage",
        b"{}",
        b'{"skvault_signature": 2}',
        b"[" * 5000,
        b'{"skvault_signature":1,"algorithm":"rsa","key_id":"","public_key":"","signature":""}',
    ],
    ids=["garbage", "empty-object", "version", "oversize", "algorithm"],
)
def test_malformed_signatures_are_refused(signed, keys, comment):
    bad = _with_comment(signed.read_bytes(), comment)
    with pytest.raises(SkvaultError):
        skvault.loads(bad, require_signature=keys[1])


def test_wrong_kinds_of_keys_are_refused(signed, tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_private = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SignatureError, match="not Ed25519"):
        skvault.sign(signed, rsa_private)
    with pytest.raises(SignatureError, match="not Ed25519"):
        skvault.load(signed, require_signature=rsa_public)
    with pytest.raises(SignatureError, match="PEM"):
        skvault.load(signed, require_signature=b"-----BEGIN PUBLIC KEY-----\nxx\n")
    huge = tmp_path / "huge.pub"
    huge.write_bytes(b"A" * 100_000)
    with pytest.raises(SignatureError, match="too large"):
        skvault.load(signed, require_signature=huge)
    with pytest.raises(TypeError):
        skvault.load(signed, require_signature=12345)
