"""Write a ``.skv`` file by hand: the shared helper of the attack scripts.

Each attack script builds one hostile file with `skv_bytes` and writes it to the path given on
its command line; ``tests/format/test_hostile.py`` checks that skvault refuses every one of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Callable
from typing import Any


def skv_bytes(
    graph: Any,
    members: dict[str, bytes] | None = None,
    *,
    edit_manifest: Callable[[dict[str, Any]], None] | None = None,
) -> bytes:
    """Return a zip with ``graph.json`` (a document, or raw bytes), members and a manifest.

    The manifest lists every member with its true size and SHA-256, then ``edit_manifest`` may
    change it. Members are stored; graph.json is deflated, as skvault writes it.
    """
    graph_raw = graph if isinstance(graph, bytes) else json.dumps(graph).encode()
    parts = {"graph.json": graph_raw, **(members or {})}
    manifest: dict[str, Any] = {
        "format": "skvault",
        "format_version": 1,
        "graph": "graph.json",
        "members": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in parts.items()
        },
    }
    if edit_manifest is not None:
        edit_manifest(manifest)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in parts.items():
            method = zipfile.ZIP_DEFLATED if name == "graph.json" else zipfile.ZIP_STORED
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
        zf.writestr("manifest.json", json.dumps(manifest))
    return buf.getvalue()


def main(build: Callable[[], bytes]) -> None:
    """Write ``build()`` to the path given as the only command-line argument."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} OUTPUT.skv")
    with open(sys.argv[1], "wb") as fh:
        fh.write(build())
