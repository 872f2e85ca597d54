"""The zip container under damage and attack: truncation, flipped bytes, hashes, names, bombs.

Also the write side's promise: a dump to a path replaces the old file only when the new one is
complete, whatever happens in between.

Every hostile file here is built by hand (``_crafting``) or by damaging a file that skvault wrote;
every refusal is checked on all the public reading entry points and the ``skvault inspect``
command (``assert_refused``).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from _crafting import (
    DEFLATED,
    GRAPH,
    LZMA,
    MANIFEST,
    STORED,
    Member,
    assert_refused,
    craft,
    field_at,
    graph_bytes,
    layout,
    manifest_for,
    nested,
    own_members_from,
    patch,
    repack,
    sha256,
    unpack,
    write_zip,
)
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.errors import (
    FormatError,
    IntegrityError,
    UnsupportedTypeError,
    UnsupportedVersionError,
)
from skvault.format._container import LARGE_ARRAY

BIG = np.arange(9000.0)  # 72,000 bytes: an arrays/*.npy member of its own (own_members_from)
SMALL = np.arange(12, dtype=np.int32)  # packed into buffers/0.bin


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def model(iris):
    X, y = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)


@pytest.fixture(scope="module", autouse=True)
def small_own_members():
    """Files written in this module give arrays of 64 KiB or more a member of their own."""
    with own_members_from(64 << 10):
        yield


@pytest.fixture(scope="module")
def artifact(model):
    """A real artifact: a fitted pipeline, a large array (own member) and a small one (buffer)."""
    return skvault.dumps({"model": model, "big": BIG, "small": SMALL, "text": ["a", 1, None]})


@pytest.fixture(scope="module")
def same_as_artifact(model, iris):
    """Return a check that an object loaded from a damaged ``artifact`` is the original."""
    X, _ = iris
    expected = model.predict_proba(X)

    def check(obj) -> bool:
        return (
            set(obj) == {"model", "big", "small", "text"}
            and obj["model"].predict_proba(X).tobytes() == expected.tobytes()
            and obj["big"].dtype == BIG.dtype
            and obj["big"].tobytes() == BIG.tobytes()
            and obj["small"].dtype == SMALL.dtype
            and obj["small"].tobytes() == SMALL.tobytes()
            and obj["text"] == ["a", 1, None]
        )

    return check


@pytest.fixture(scope="module")
def simple():
    """A small artifact with one member of each kind: arrays/0.npy, buffers/0.bin, graph.json."""
    return skvault.dumps({"big": BIG, "small": SMALL, "text": ["a", 1, 2.5, None]})


def same_as_simple(obj) -> bool:
    return (
        obj["big"].tobytes() == BIG.tobytes()
        and obj["small"].tobytes() == SMALL.tobytes()
        and obj["small"].dtype == SMALL.dtype
        and obj["text"] == ["a", 1, 2.5, None]
    )


def fields_named(data: bytes, prefix: str):
    return [f for f in layout(data) if f.name.startswith(prefix)]


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0xFF
    return bytes(out)


def test_only_arrays_of_megabytes_get_a_member_of_their_own():
    # the writer's own threshold (this module lowers it for its small files)
    with own_members_from(LARGE_ARRAY):
        data = skvault.dumps(
            {"at": np.zeros(LARGE_ARRAY, np.uint8), "below": np.ones(LARGE_ARRAY - 1, np.uint8)}
        )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        sizes = {i.filename: i.file_size for i in zf.infolist()}
    assert [name for name in sizes if name.startswith("arrays/")] == ["arrays/0.npy"]
    assert sizes["arrays/0.npy"] > LARGE_ARRAY
    assert LARGE_ARRAY - 1 <= sizes["buffers/0.bin"] < LARGE_ARRAY + 64
    loaded = skvault.loads(data)
    assert loaded["at"].sum() == 0 and loaded["below"].sum() == LARGE_ARRAY - 1


def test_crafted_files_are_valid_when_nothing_is_broken(simple):
    # the hostile files below are these, broken on purpose: the unbroken ones must load
    assert same_as_simple(skvault.loads(repack(simple)))
    assert skvault.loads(craft({"nodes": [], "root": "ok"})) == "ok"


# -- not a .skv file at all --------------------------------------------------------------------


def _plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"P",
        b"PK\x03\x04",
        b"not a zip file at all",
        bytes(range(256)) * 8,
        b"\x80\x05\x95" + bytes(40),  # the start of a pickle
        b"PK\x05\x06" + bytes(18),  # a valid empty zip
        _plain_zip(),  # a zip without a manifest
        _npz(),
    ],
    ids=["empty", "one-byte", "local-magic", "text", "noise", "pickle", "empty-zip", "zip", "npz"],
)
def test_files_that_are_not_skv_archives(data):
    # load sees a pickle for what it is (and refuses it without allow_pickle); the readers of
    # .skv files alone say it is not one
    assert_refused(data, FormatError, r"not a \.skv file|is a pickle file")


def test_empty_and_foreign_files_on_disk(tmp_path):
    empty = tmp_path / "empty.skv"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match=r"not a \.skv file"):
        skvault.load(empty)
    with pytest.raises(FormatError, match=r"not a \.skv file"):
        skvault.get_untrusted_types(str(empty))


# -- truncation --------------------------------------------------------------------------------


def _truncation_points(data: bytes) -> list[int]:
    """Every field boundary of the zip (and its neighbours), plus a sweep every 97 bytes."""
    points = set(range(0, len(data), 97))
    for f in layout(data):
        points |= {f.start - 1, f.start, f.start + 1, f.end - 1, f.end, f.end + 1}
    return sorted(p for p in points if 0 <= p < len(data))


def test_truncated_at_many_offsets(artifact):
    points = _truncation_points(artifact)
    assert len(points) > 700
    for cut in points:
        with pytest.raises(FormatError):
            skvault.loads(artifact[:cut])


def test_truncated_member_with_the_central_directory_kept(artifact):
    # a member cut short while the directory and end record survive: zipfile accepts such a
    # file and shifts every offset, so members start before the file or at the wrong bytes
    directory = min(f.start for f in fields_named(artifact, "central["))
    for cut in range(0, directory, 53):
        with pytest.raises(FormatError):
            skvault.loads(artifact[:cut] + artifact[directory:])


@pytest.mark.parametrize(
    "where",
    [
        "inside-central-directory",
        "inside-end-record",
        "inside-array",
        "inside-buffer",
        "after-local-header",
        "inside-local-header",
        "inside-manifest",
        "last-byte",
    ],
)
def test_truncated_at_named_places(artifact, where):
    fields = {f.name: f for f in layout(artifact)}
    cut = {
        "inside-central-directory": fields["central[graph.json].crc"].start,
        "inside-end-record": fields["end.central_offset"].start,
        "inside-array": fields["data[arrays/0.npy]"].start + 40_000,
        "inside-buffer": fields["data[buffers/0.bin]"].start + 8,
        "after-local-header": fields["data[arrays/0.npy]"].start,
        "inside-local-header": fields["local[graph.json].crc"].start,
        "inside-manifest": fields["data[manifest.json]"].start + 100,
        "last-byte": len(artifact) - 1,
    }[where]
    assert_refused(artifact[:cut], FormatError, "not a .skv file")


# -- flipped bytes ------------------------------------------------------------------------------

# Zip fields a flipped byte may hit while the file still loads, identical. The reader takes a
# member's sizes, method and flags from the central directory, its data offset from the local
# header's name and extra lengths, and relies on SHA-256 rather than CRC-32 (FORMAT.md section 1);
# the rest is metadata it never uses, or (zipfile's choice) counts it never needs.
_IGNORED = {
    "local": {
        "version_needed",
        "flags",
        "method",
        "time",
        "date",
        "crc",
        "compress_size",
        "file_size",
        "extra_header",
        "extra_align",
        "extra_padding",
    },
    "central": {
        "version_made_by",
        "version_needed",
        "flags",
        "time",
        "date",
        "crc",
        "disk_start",
        "internal_attr",
        "external_attr",
    },
    "end": {"disk", "central_disk", "entries_on_disk", "entries", "comment_length"},
}


def _may_load_after_flip(field_name: str, last_entry: str, compressed: set[str]) -> bool:
    if field_name.startswith("data["):
        # a compressed member is checked after decompression: a flip that leaves the output
        # unchanged (an unused bit of the deflate stream) is harmless
        return field_name[5:-1] in compressed
    area, _, key = field_name.rpartition(".")
    kind = area.split("[")[0]
    if key in _IGNORED.get(kind, set()):
        return True
    # zipfile reads the directory from a buffer that ends where the directory ends, so an
    # overlong name, extra or comment length of the last entry is cut off there
    return area == f"central[{last_entry}]" and key in {
        "name_length",
        "extra_length",
        "comment_length",
    }


def test_flipped_bytes_fail_or_load_identical(artifact, same_as_artifact):
    fields = layout(artifact)
    entries = [f for f in fields if f.name.endswith(".signature") and f.name.startswith("central")]
    last_entry = entries[-1].name[len("central[") : -len("].signature")]
    with zipfile.ZipFile(io.BytesIO(artifact)) as zf:
        compressed = {i.filename for i in zf.infolist() if i.compress_type != STORED}
    array_data = {f.name for f in fields if f.name.startswith(("data[arrays/", "data[buffers/"))}
    loaded_at = []
    for pos in range(len(artifact)):
        field = field_at(fields, pos)
        assert field is not None, f"byte {pos} is in no zip structure"
        if field.name in array_data and pos % 61:
            continue  # array bytes are all alike: a sample is enough
        try:
            obj = skvault.loads(flip(artifact, pos))
        except FormatError:
            continue
        assert same_as_artifact(obj), f"flip at {pos} ({field.name}) changed the loaded object"
        assert _may_load_after_flip(field.name, last_entry, compressed), (pos, field.name)
        loaded_at.append(field.name)
    # the sweep reached the ignored fields (a flip in a timestamp must load)
    assert any(name.endswith(".time") for name in loaded_at)


@pytest.mark.parametrize("compress", ["zlib", "lzma"])
def test_flipped_bytes_in_compressed_members(compress):
    data = skvault.dumps({"big": BIG, "small": SMALL}, compress=compress)
    members = [f for f in layout(data) if f.name.startswith("data[") and "manifest" not in f.name]
    for f in members:
        for pos in range(f.start, f.end, max(1, (f.end - f.start) // 40)):
            try:
                obj = skvault.loads(flip(data, pos))
            except FormatError:
                continue
            # only a flip that leaves the decompressed bytes unchanged can load
            assert obj["big"].tobytes() == BIG.tobytes(), (pos, f.name)
            assert obj["small"].tobytes() == SMALL.tobytes(), (pos, f.name)


# -- integrity: digests and sizes -----------------------------------------------------------------


def _stored_graph_artifact() -> bytes:
    """``simple`` rewritten with graph.json stored, so a changed byte stays readable text."""
    data = skvault.dumps({"big": BIG, "small": SMALL, "text": ["a", 1, 2.5, None]})
    _, graph, members = unpack(data)
    return craft(graph, members, methods={GRAPH: STORED})


@pytest.mark.parametrize("member", ["arrays/0.npy", "buffers/0.bin", GRAPH])
def test_changed_byte_in_a_member_names_the_member(member):
    data = _stored_graph_artifact()
    f = next(f for f in layout(data) if f.name == f"data[{member}]")
    broken = flip(data, f.end - 5)  # array data (after the .npy header), or the graph's tail
    with pytest.raises(IntegrityError, match=member.replace(".", r"\.")) as info:
        skvault.loads(broken)
    assert info.value.member == member
    if member == GRAPH:  # the graph is read (and verified) before anything can be described
        assert_refused(broken, IntegrityError, "graph.json")


@pytest.mark.parametrize("member", ["arrays/0.npy", "buffers/0.bin", GRAPH])
@pytest.mark.parametrize("digest", ["0" * 64, "z" * 64, "A" * 64])
def test_wrong_digest_in_the_manifest(simple, member, digest):
    broken = repack(simple, manifest=lambda m: m["members"][member].update(sha256=digest))
    with pytest.raises(IntegrityError, match="SHA-256") as info:
        skvault.loads(broken)
    assert info.value.member == member


@pytest.mark.parametrize("member", ["arrays/0.npy", "buffers/0.bin", GRAPH])
@pytest.mark.parametrize("delta", [-1, 1, 10**12])
def test_wrong_size_in_the_manifest(simple, member, delta):
    def edit(m):
        m["members"][member]["size"] += delta

    assert_refused(repack(simple, manifest=edit), IntegrityError, "differs from the manifest")


def test_mmap_checks_everything_but_large_array_bytes(tmp_path):
    """``mmap=True`` verifies graph.json, buffers and every size, but not mapped .npy data.

    Hashing a mapped .npy array would read every page, which is what mapping avoids; FORMAT.md
    (section 5.3) lets a reader skip those digests. Buffer members (small arrays) are mapped
    too but still verified. A changed .npy byte loads under ``mmap=True`` and is refused
    without it; a changed buffer byte is refused either way.
    """
    data = _stored_graph_artifact()
    fields = {f.name: f for f in layout(data)}
    path = tmp_path / "a.skv"
    f = fields["data[arrays/0.npy]"]
    path.write_bytes(flip(data, f.end - 5))
    with pytest.raises(IntegrityError, match=r"arrays/0\.npy"):
        skvault.load(path)
    obj = skvault.load(path, mmap=True)
    changed = obj["big"]
    assert not changed.flags.writeable
    assert changed.tobytes() != BIG.tobytes()  # mapped, not verified: as documented
    del obj, changed
    path.write_bytes(flip(data, fields["data[buffers/0.bin]"].start))
    for mmap in (False, True):
        with pytest.raises(IntegrityError, match=r"buffers/0\.bin"):
            skvault.load(path, mmap=mmap)
    path.write_bytes(flip(data, fields["data[graph.json]"].start + 3))
    with pytest.raises(IntegrityError, match=r"graph\.json"):
        skvault.load(path, mmap=True)
    # sizes are checked under mmap as well
    path.write_bytes(repack(data, manifest=lambda m: m["members"]["buffers/0.bin"].update(size=1)))
    with pytest.raises(IntegrityError, match=r"buffers/0\.bin"):
        skvault.load(path, mmap=True)


# -- the manifest ---------------------------------------------------------------------------------


def _with_manifest(simple: bytes, manifest: object) -> bytes:
    _, graph, members = unpack(simple)
    return craft(graph, members, manifest=manifest)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe{}",
        b"[]",
        b"null",
        b'"skvault"',
        b"42",
        b'{"format": "skvault", "format_version": NaN}',
        b'{"format": "skvault", "format": "skvault"}',
        nested(100_000),
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
    ids=[
        "empty",
        "unclosed",
        "not-utf8",
        "array",
        "null",
        "string",
        "number",
        "nan",
        "duplicate-key",
        "nested-lists-100000",
        "nested-objects-100000",
    ],
)
def test_manifest_that_is_not_a_json_object(simple, raw):
    assert_refused(_with_manifest(simple, raw), FormatError, "manifest.json|not a .skv file")


_MANIFEST_DAMAGE = {
    "no-format": lambda m: m.pop("format"),
    "format-other": lambda m: m.update(format="other"),
    "format-not-string": lambda m: m.update(format=["skvault"]),
    "no-version": lambda m: m.pop("format_version"),
    "version-string": lambda m: m.update(format_version="1"),
    "version-float": lambda m: m.update(format_version=1.0),
    "version-bool": lambda m: m.update(format_version=True),
    "version-zero": lambda m: m.update(format_version=0),
    "version-negative": lambda m: m.update(format_version=-1),
    "no-graph": lambda m: m.pop("graph"),
    "graph-elsewhere": lambda m: m.update(graph="buffers/0.bin"),
    "no-members": lambda m: m.pop("members"),
    "members-list": lambda m: m.update(members=[]),
    "graph-unlisted": lambda m: m["members"].pop(GRAPH),
    "entry-not-object": lambda m: m["members"].update({GRAPH: 5}),
    "entry-no-size": lambda m: m["members"][GRAPH].pop("size"),
    "entry-no-digest": lambda m: m["members"][GRAPH].pop("sha256"),
    "size-negative": lambda m: m["members"][GRAPH].update(size=-1),
    "size-string": lambda m: m["members"][GRAPH].update(size="10"),
    "size-bool": lambda m: m["members"][GRAPH].update(size=True),
    "digest-short": lambda m: m["members"][GRAPH].update(sha256="abc"),
    "digest-number": lambda m: m["members"][GRAPH].update(sha256=1),
    "created-by-string": lambda m: m.update(created_by="me"),
    "packages-list": lambda m: m.update(packages=["numpy"]),
}


@pytest.mark.parametrize("damage", list(_MANIFEST_DAMAGE))
def test_manifest_with_wrong_types_or_missing_keys(simple, damage):
    assert_refused(repack(simple, manifest=_MANIFEST_DAMAGE[damage]), FormatError)


def test_manifest_format_other_is_not_skvault(simple):
    broken = repack(simple, manifest=lambda m: m.update(format="other"))
    assert_refused(broken, FormatError, "does not declare format 'skvault'")


def test_newer_format_version_is_unsupported_with_a_clear_message(simple):
    broken = repack(simple, manifest=lambda m: m.update(format_version=999))
    assert_refused(broken, UnsupportedVersionError, "format version 999.*Upgrade skvault")
    with pytest.raises(UnsupportedVersionError) as info:
        skvault.loads(broken)
    assert info.value.version == 999
    assert info.value.member == MANIFEST


def test_manifest_ignores_unknown_keys(simple):
    # forward compatibility (FORMAT.md section 2): new keys do not break an older reader
    data = repack(simple, manifest=lambda m: m.update(signature={"by": "someone"}))
    assert same_as_simple(skvault.loads(data))


def test_compressed_manifest_is_refused(simple):
    _, graph, members = unpack(simple)
    listed = {GRAPH: graph_bytes(graph), **members}
    raw = json.dumps(manifest_for(listed)).encode()
    entries = [Member(n, d) for n, d in listed.items()] + [Member(MANIFEST, raw, DEFLATED)]
    assert_refused(write_zip(entries), FormatError, "stored uncompressed")


def test_manifest_declared_over_its_size_limit(simple):
    broken = patch(simple, "central[manifest.json].file_size", 1 << 30)
    assert_refused(broken, FormatError)


def test_graph_nested_100000_deep(simple):
    _, _, members = unpack(simple)
    for raw in (nested(100_000), b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        # stored: deflated, such a graph would already fail the graph's expansion cap
        stored = craft(raw, members, methods={"graph.json": zipfile.ZIP_STORED})
        assert_refused(stored, FormatError, "nested too deeply")
        assert_refused(craft(raw, members), FormatError, "allowed ratio")


def test_graph_that_is_not_json(simple):
    _, _, members = unpack(simple)
    for raw in (b"", b"{", b"\xff", b'{"nodes": [], "root": Infinity}', b"[]"):
        assert_refused(craft(raw, members), FormatError, "graph.json")


# -- members: missing, extra, duplicate, misnamed, overlapping ------------------------------------


def test_member_listed_but_missing(simple):
    def drop(members):
        del members["buffers/0.bin"]

    broken = repack(
        simple,
        members=drop,
        manifest=lambda m: m["members"].update(
            {"buffers/0.bin": {"size": 128, "sha256": "0" * 64}}
        ),
    )
    assert_refused(broken, FormatError, r"missing: \['buffers/0.bin'\]")


def test_member_present_but_not_listed(simple):
    _, graph, members = unpack(simple)
    assert_refused(craft(graph, members, unlisted={"extra.bin": b"x"}), FormatError, "not listed")


def test_graph_references_a_member_that_does_not_exist(simple):
    def retarget(graph):
        for node in graph["nodes"]:
            if node.get("member") == "arrays/0.npy":
                node["member"] = "arrays/7.npy"

    assert_refused_at_load(repack(simple, graph=retarget), FormatError, "missing member")


def assert_refused_at_load(data: bytes, error: type[Exception], match: str) -> None:
    """The file is structurally sound (it can be described) but cannot be built."""
    assert skvault.get_untrusted_types(io.BytesIO(data)) == []
    assert isinstance(skvault.inspect(io.BytesIO(data)), dict)
    with pytest.raises(error, match=match):
        skvault.loads(data)
    with pytest.raises(error, match=match):
        skvault.load(io.BytesIO(data), mmap=True)


@pytest.mark.parametrize("target", [MANIFEST, GRAPH, "buffers/0.bin"])
def test_array_node_pointing_at_a_non_array_member(simple, target):
    def retarget(graph):
        for node in graph["nodes"]:
            if node.get("member") == "arrays/0.npy":
                node["member"] = target

    # the manifest is not a hashed member; graph.json and a buffer have no .npy header (and the
    # buffer is also claimed by the small array)
    assert_refused_at_load(repack(simple, graph=retarget), FormatError, target.replace(".", r"\."))


def test_two_arrays_claim_one_member(simple):
    def duplicate(graph):
        node = next(n for n in graph["nodes"] if n.get("member") == "arrays/0.npy")
        graph["nodes"].append(dict(node))
        graph["root"] = {"ref": len(graph["nodes"]) - 1}
        graph["nodes"].append({"kind": "list", "items": [{"ref": 0}, graph["root"]]})
        graph["root"] = {"ref": len(graph["nodes"]) - 1}

    assert_refused_at_load(repack(simple, graph=duplicate), FormatError, "two arrays claim")


@pytest.mark.parametrize(
    "name",
    [
        "../evil.bin",
        "arrays/../../evil.bin",
        "/etc/evil.bin",
        "arrays\\evil.bin",
        "..\\evil.bin",
        "./evil.bin",
        "arrays//evil.bin",
        "arrays/",
        "evil\x07.bin",
        "evil\n.bin",
        "x" * 300,
    ],
)
@pytest.mark.parametrize("listed", [True, False])
def test_forbidden_member_names(simple, name, listed):
    _, graph, members = unpack(simple)
    if listed:
        data = craft(graph, {**members, name: b"payload"})
    else:
        data = craft(graph, members, unlisted={name: b"payload"})
    assert_refused(data, FormatError, "forbidden member name")


def test_member_name_cut_at_a_nul_byte(simple):
    # zipfile cuts names at NUL: "graph.json\0..." becomes a second graph.json
    _, graph, members = unpack(simple)
    data = craft(graph, members, unlisted={"graph.json\x00.evil": b"{}"})
    assert_refused(data, FormatError, "duplicate member name")


@pytest.mark.parametrize("name", [GRAPH, MANIFEST, "buffers/0.bin"])
def test_duplicate_member_names(simple, name):
    manifest, graph, members = unpack(simple)
    parts = {GRAPH: graph_bytes(graph), **members, MANIFEST: json.dumps(manifest).encode()}
    second = {
        GRAPH: graph_bytes({"nodes": [], "root": "other"}),
        MANIFEST: json.dumps({**manifest, "format_version": 999}).encode(),
        "buffers/0.bin": bytes(128),
    }[name]
    entries = [Member(n, d, DEFLATED if n == GRAPH else STORED) for n, d in parts.items()]
    for order in ([*entries, Member(name, second)], [Member(name, second), *entries]):
        assert_refused(write_zip(order), FormatError, "duplicate member name")


def test_two_directory_entries_share_one_local_header(simple):
    offset = next(f for f in layout(simple) if f.name == "local[arrays/0.npy].signature").start
    broken = patch(simple, "central[buffers/0.bin].header_offset", offset)
    assert_refused(broken, FormatError, "overlaps")


def test_member_overlapping_the_next_one(simple):
    f = next(f for f in layout(simple) if f.name == "data[arrays/0.npy]")
    broken = patch(simple, "central[arrays/0.npy].compress_size", f.end - f.start + 200)
    assert_refused(broken, FormatError)


def test_member_starting_outside_the_file(simple):
    broken = patch(simple, "central[buffers/0.bin].header_offset", len(simple) + 1000)
    assert_refused(broken, FormatError, "outside the archive")


def test_encrypted_member(simple):
    f = next(f for f in layout(simple) if f.name == "central[buffers/0.bin].flags")
    flags = int.from_bytes(simple[f.start : f.end], "little")
    assert_refused(patch(simple, f.name, flags | 1), FormatError, "encrypted")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, 99])
def test_unsupported_compression_method(simple, method):
    broken = patch(simple, "central[buffers/0.bin].method", method)
    assert_refused(broken, FormatError, "unsupported compression method")


@pytest.mark.parametrize("delta", [-1, 1])
def test_stored_member_with_inconsistent_sizes(simple, delta):
    with zipfile.ZipFile(io.BytesIO(simple)) as zf:
        size = zf.getinfo("buffers/0.bin").file_size
    broken = patch(simple, "central[buffers/0.bin].compress_size", size + delta)
    assert_refused(broken, FormatError, "inconsistent sizes|overlaps")


def _without_padding(data: bytes) -> bytes:
    """The same members, in the same order, rewritten by zipfile without alignment padding."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename), info.compress_type)
    return out.getvalue()


def test_array_data_must_be_aligned_in_the_file(simple):
    unpadded = _without_padding(simple)  # every digest still matches
    for mmap in (False, True):
        with pytest.raises(FormatError, match="not 64-byte aligned in the file") as info:
            skvault.load(io.BytesIO(unpadded), mmap=mmap)
        assert "archive starts at byte" not in str(info.value)


def test_artifact_after_other_data_says_where_the_archive_starts(simple):
    with pytest.raises(FormatError, match="archive starts at byte 6 of this input"):
        skvault.loads(b"HEADER" + simple)
    # after 64 bytes (or any multiple) the arrays are still aligned: it loads
    loaded = skvault.loads(bytes(64) + simple)
    np.testing.assert_array_equal(loaded["big"], BIG)
    np.testing.assert_array_equal(loaded["small"], SMALL)


# -- zip bombs: bounded memory --------------------------------------------------------------------


def _peak_memory(fn) -> int:
    """Run ``fn`` and return the peak of memory traced meanwhile (numpy's buffers included)."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _refused_with_little_memory(data: bytes, match: str) -> None:
    skvault.loads(craft({"nodes": [], "root": 1}))  # warm up: lazy imports are not the bomb

    def attempt():
        with pytest.raises(FormatError, match=match):
            skvault.loads(data)

    assert _peak_memory(attempt) < 4 * len(data) + (16 << 20)


@pytest.mark.parametrize("method", [DEFLATED, LZMA])
def test_bomb_declared_huge_with_tiny_compressed_data(simple, method):
    # a few hundred bytes of compressed data declaring 4 GB: refused by the expansion cap
    # before anything is allocated
    _, graph, members = unpack(simple)
    members["buffers/0.bin"] = bytes(4096)
    size = 4_000_000_000
    data = craft(
        graph,
        members,
        methods={"buffers/0.bin": method},
        manifest=lambda m: m["members"]["buffers/0.bin"].update(size=size),
    )
    data = patch(data, "central[buffers/0.bin].file_size", size)
    _refused_with_little_memory(data, "zip bomb")


def test_bomb_expanding_beyond_its_declared_size(simple):
    # graph.json really inflates to 64 MiB (the graph, then spaces: still valid JSON) but the
    # directory and manifest declare only the graph's own length: the reader stops there, and
    # the CRC of the whole stream cannot match what it read
    _, graph, members = unpack(simple)
    text = graph_bytes(graph)
    size, digest = len(text), sha256(text)
    data = craft(
        text + b" " * (64 << 20),
        members,
        manifest=lambda m: m["members"][GRAPH].update(size=size, sha256=digest),
    )
    assert len(data) < 200_000
    _refused_with_little_memory(patch(data, "central[graph.json].file_size", size), "CRC")


# -- atomic writes --------------------------------------------------------------------------------


class Spy:
    """Records the folder's files when dump reaches it: the proof a partial file existed."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __getstate__(self):
        Spy.seen = {
            n: os.path.getsize(os.path.join(self.folder, n)) for n in os.listdir(self.folder)
        }
        return {}


class Abort(BaseException):
    """Like KeyboardInterrupt: not an Exception, and dump must still clean up."""


class Interrupts:
    def __getstate__(self):
        raise Abort


def _failing_dump(tmp_path, error, payload) -> None:
    target = tmp_path / "model.skv"
    old = skvault.dumps({"old": np.arange(5)})
    target.write_bytes(old)
    Spy.seen = {}
    big = np.ones(200_000)  # 1.6 MB: written to the temporary file before the failure
    obj = {"a": big, "b": big * 2, "spy": Spy(str(tmp_path)), "bad": payload}
    with pytest.raises(error):
        skvault.dump(obj, target)
    partial = {n: s for n, s in Spy.seen.items() if n != "model.skv"}
    assert len(partial) == 1 and next(iter(partial.values())) > 3_000_000, Spy.seen
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.skv"]  # the temporary file is gone
    assert skvault.load(target)["old"].tolist() == [0, 1, 2, 3, 4]


def test_failed_dump_keeps_the_old_file(tmp_path):
    _failing_dump(tmp_path, UnsupportedTypeError, lambda x: x)


def test_interrupted_dump_keeps_the_old_file(tmp_path):
    _failing_dump(tmp_path, Abort, Interrupts())


class _Link:
    def __init__(self, nxt):
        self.next = nxt


def _nested(depth: int) -> list:
    top: list = []
    inner = top
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return top


def test_dump_of_a_deeply_nested_object_is_refused_and_keeps_the_old_file(tmp_path):
    # Python's recursion limit comes before skvault's own depth limit: still a clear error
    _failing_dump(tmp_path, UnsupportedTypeError, _nested(5_000))
    with pytest.raises(UnsupportedTypeError, match="nested too deeply"):
        skvault.dumps(_nested(100_000))
    chain = None
    for _ in range(3_000):
        chain = _Link(chain)
    with pytest.raises(UnsupportedTypeError, match=r"_Link at .*next\.next.*nested too deeply"):
        skvault.dumps(chain)
    assert skvault.loads(skvault.dumps(_nested(100))) == _nested(100)


def test_failed_dump_to_a_new_path_creates_nothing(tmp_path):
    with pytest.raises(UnsupportedTypeError):
        skvault.dump({"a": np.ones(100_000), "bad": lambda: 0}, tmp_path / "new.skv")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "chmod") or sys.platform == "win32", reason="POSIX modes")
def test_dump_over_a_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "model.skv"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    skvault.dump([1, 2], target)
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert skvault.load(target) == [1, 2]


_KILLED_DUMP = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import skvault

    class Blocker:
        # reached after the big array is written to the temporary file; waits to be killed
        def __getstate__(self):
            print("ready", flush=True)
            time.sleep(60)
            return {}

    skvault.dump({"big": np.ones(2_000_000), "block": Blocker()}, sys.argv[1])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_dump_keeps_the_old_file(tmp_path):
    """A process killed mid-dump leaves the old file intact and byte for byte the same.

    The temporary ``.skv-*.tmp`` file it was writing stays behind (nothing runs after SIGKILL
    to remove it); it is never mistaken for the target.
    """
    target = tmp_path / "model.skv"
    old = skvault.dumps({"old": np.arange(5)})
    target.write_bytes(old)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_DUMP, str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        partial = [n for n in os.listdir(tmp_path) if n != "model.skv"]
        assert len(partial) == 1 and os.path.getsize(tmp_path / partial[0]) > 16_000_000
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == old
    assert skvault.load(target)["old"].tolist() == [0, 1, 2, 3, 4]
    leftovers = [n for n in os.listdir(tmp_path) if n != "model.skv"]
    assert len(leftovers) == 1
    assert leftovers[0].startswith(".skv-") and leftovers[0].endswith(".tmp")


@pytest.mark.parametrize(
    "dtype",
    ["<f8", ">i4", "|b1", "<c16", "<U7", "|S3", [("a", "<f4"), ("é", "<i8")], ("<f8", (2, 3))],
)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (10**12, 2), (1, 2, 3, 4)])
@pytest.mark.parametrize("fortran", [False, True])
def test_npy_headers_are_the_ones_numpy_writes(dtype, shape, fortran):
    # readers compare each array's header with the one skvault builds: it must be numpy's own
    from skvault.format._container import _npy_header

    dtype = np.dtype(dtype)
    out = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": fortran,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(out, header)
    assert _npy_header(dtype, shape, fortran) == out.getvalue()
    assert np.lib.format.read_magic(io.BytesIO(_npy_header(dtype, shape, fortran))) == (1, 0)


def test_npy_header_with_thousands_of_fields_uses_format_2():
    from skvault.format._container import _npy_header

    dtype = np.dtype([(f"field_with_a_long_name_{i}", "<f8") for i in range(3000)])
    out = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (2,)}
    )
    assert _npy_header(dtype, (2,), False) == out.getvalue()


_FORKED_LOAD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import skvault
    data = skvault.dumps({"a": np.ones(3_000_000)})  # 24 MB: hashed on the worker thread
    assert skvault.loads(data)["a"].sum() == 3_000_000  # the parent's worker now exists
    pid = os.fork()
    if pid == 0:  # the child inherits the executor, not its thread
        ok = skvault.loads(data)["a"].sum() == 3_000_000
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_load_in_a_forked_child_does_not_hang():
    result = subprocess.run(
        [sys.executable, "-c", _FORKED_LOAD], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
