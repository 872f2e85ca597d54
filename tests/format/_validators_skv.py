"""Surgery on real ``.skv`` files: change one value or one array element, keep integrity valid.

A test dumps a real fitted model, opens the bytes with `Skv`, edits exactly one field (a JSON value
in ``graph.json`` or bytes of an array inside its ``buffers/*.bin`` or ``arrays/*.npy`` member),
and saves: every member is written back in its original order, stored members 64-byte aligned the
way the format requires, and ``manifest.json`` gets the new sizes and SHA-256 digests, so the file
passes every integrity check and reaches the state validators. Only ``zipfile``, ``json`` and
numpy are used here: skvault's writer is not involved in producing the damaged file.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
GRAPH = "graph.json"
_ALIGN = 64
_PAD_ID = 0xD935

__all__ = ["Skv"]


def _descr(v: Any) -> Any:
    if isinstance(v, str):
        return v
    fields = []
    for f in v:
        name = tuple(f[0]) if isinstance(f[0], list) else f[0]
        sub = _descr(f[1])
        fields.append((name, sub) if len(f) == 2 else (name, sub, tuple(f[2])))
    return fields


class Skv:
    """An artifact opened for editing. ``nodes`` is the parsed graph's node list."""

    def __init__(self, data: bytes) -> None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
            self._methods = {i.filename: i.compress_type for i in infos}
            self._order = [i.filename for i in infos if i.filename != MANIFEST]
            self.members = {i.filename: bytearray(zf.read(i.filename)) for i in infos}
        self.manifest = json.loads(self.members[MANIFEST])
        self.graph = json.loads(self.members[GRAPH])
        self.nodes: list[dict[str, Any]] = self.graph["nodes"]

    # -- finding nodes ---------------------------------------------------------------------
    def find(self, type_name: str) -> list[int]:
        """Return the indices of the object/ext nodes of type ``type_name``, in graph order."""
        return [i for i, n in enumerate(self.nodes) if n.get("type") == type_name]

    def first(self, type_name: str) -> int:
        """Return the index of the first node of type ``type_name``."""
        found = self.find(type_name)
        assert found, f"no {type_name} node in the graph"
        return found[0]

    def ref(self, value: Any) -> int:
        """Return the node index a ``{"ref": i}`` value points to."""
        assert isinstance(value, dict) and "ref" in value, value
        return value["ref"]

    def attr(self, node: int, name: str) -> Any:
        """Return the raw JSON value of attribute ``name`` of object node ``node``."""
        n = self.nodes[node]
        return n["values"][n["names"].index(name)]

    def set_attr(self, node: int, name: str, value: Any) -> None:
        """Replace the raw JSON value of attribute ``name`` of object node ``node``."""
        n = self.nodes[node]
        n["values"][n["names"].index(name)] = value

    def state(self, node: int) -> int:
        """Return the node index of an ext node's state."""
        return self.ref(self.nodes[node]["state"])

    def key(self, node: int, key: str) -> Any:
        """Return the raw value at ``key`` of a dict node."""
        n = self.nodes[node]
        return n["values"][n["keys"].index(key)]

    def set_key(self, node: int, key: str, value: Any) -> None:
        """Replace the raw value at ``key`` of a dict node."""
        n = self.nodes[node]
        n["values"][n["keys"].index(key)] = value

    def item(self, node: int, i: int) -> Any:
        """Return the raw value of item ``i`` of a list/tuple node (or ext node arguments)."""
        n = self.nodes[node]
        return (n["items"] if "items" in n else n["args"])[i]

    def set_item(self, node: int, i: int, value: Any) -> None:
        """Replace the raw value of item ``i`` of a list/tuple node (or ext node arguments)."""
        n = self.nodes[node]
        (n["items"] if "items" in n else n["args"])[i] = value

    # -- arrays ----------------------------------------------------------------------------
    def dtype(self, node: int) -> np.dtype:
        """Return the dtype of ndarray node ``node``."""
        d = self.nodes[node]["dtype"]
        if isinstance(d, dict):
            d = self.nodes[self.ref(d)]["descr"]
        return np.lib.format.descr_to_dtype(_descr(d))

    def array(self, value: Any) -> np.ndarray:
        """Return a writable view of the bytes of an ndarray node (index or reference).

        Writing into it edits the member the array is stored in.
        """
        node = self.ref(value) if isinstance(value, dict) else value
        n = self.nodes[node]
        assert n["kind"] == "ndarray", n
        dtype = self.dtype(node)
        shape = tuple(n["shape"])
        order = "F" if n["fortran_order"] else "C"
        if "buffer" in n:
            buf, offset = self.members[n["buffer"]], n["offset"]
        else:
            buf = self.members[n["member"]]
            stream = io.BytesIO(bytes(buf))
            major, _ = np.lib.format.read_magic(stream)
            if major == 1:
                np.lib.format.read_array_header_1_0(stream)  # advances past the header
            else:
                np.lib.format.read_array_header_2_0(stream)
            offset = stream.tell()
        return np.ndarray(shape, dtype, buffer=memoryview(buf), offset=offset, order=order)

    # -- writing -----------------------------------------------------------------------------
    def save(self, *, fix_digests: bool = True) -> bytes:
        """Return the edited artifact, with a manifest whose digests match every member.

        With ``fix_digests=False`` the manifest keeps the digests of the original members: the
        edit is then damage that the integrity check must catch.
        """
        original = json.loads(json.dumps(self.manifest["members"]))
        self.members[GRAPH] = bytearray(json.dumps(self.graph, separators=(",", ":")).encode())
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for name in self._order:
                data = bytes(self.members[name])
                self.manifest["members"][name] = {
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()
                    if fix_digests or name == GRAPH
                    else original[name]["sha256"],
                }
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = self._methods[name]
                if info.compress_type == zipfile.ZIP_STORED:
                    start = out.tell() + 30 + len(name.encode())
                    pad = -(start + 6) % _ALIGN
                    info.extra = struct.pack("<HHH", _PAD_ID, 2 + pad, _ALIGN) + bytes(pad)
                zf.writestr(info, data)
            info = zipfile.ZipInfo(MANIFEST, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, json.dumps(self.manifest, indent=1).encode())
        return out.getvalue()
