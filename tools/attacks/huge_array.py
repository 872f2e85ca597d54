"""An array node claiming 10^12 float64 elements (8 TB) backed by a 64-byte buffer."""

from _skv import main, skv_bytes


def build() -> bytes:
    node = {
        "kind": "ndarray",
        "dtype": "<f8",
        "shape": [10**12],
        "fortran_order": False,
        "buffer": "buffers/0.bin",
        "offset": 0,
    }
    return skv_bytes({"nodes": [node], "root": {"ref": 0}}, {"buffers/0.bin": bytes(64)})


if __name__ == "__main__":
    main(build)
