"""A list that contains itself, and a forward reference: cycles a recursive builder loops on."""

from _skv import main, skv_bytes


def build() -> bytes:
    nodes = [
        {"kind": "list", "items": [{"ref": 1}]},
        {"kind": "list", "items": [{"ref": 0}]},
    ]
    return skv_bytes({"nodes": nodes, "root": {"ref": 1}})


if __name__ == "__main__":
    main(build)
