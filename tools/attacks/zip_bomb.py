"""A member whose zip entry and manifest declare 4 GB for a few hundred compressed bytes.

A reader that allocates the declared size before decompressing runs out of memory.
"""

import struct

from _skv import main, skv_bytes

SIZE = 4_000_000_000


def build() -> bytes:
    def declare(manifest: dict) -> None:
        manifest["members"]["graph.json"]["size"] = SIZE

    data = bytearray(skv_bytes({"nodes": [], "root": 0}, edit_manifest=declare))
    # the graph's central directory entry is the first: patch its uncompressed size
    directory = struct.unpack_from("<L", data, data.rindex(b"PK\x05\x06") + 16)[0]
    struct.pack_into("<L", data, directory + 24, SIZE)
    return bytes(data)


if __name__ == "__main__":
    main(build)
