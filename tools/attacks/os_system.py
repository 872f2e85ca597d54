"""The names pickle exploits use: os.system as a function, subprocess.Popen as a class."""

from _skv import main, skv_bytes


def build() -> bytes:
    nodes = [
        {"kind": "global", "name": "os.system"},
        {"kind": "object", "type": "subprocess.Popen", "names": ["args"], "values": ["id"]},
        {"kind": "ext", "type": "builtins.eval", "construct": "call", "args": ["1"]},
        {"kind": "list", "items": [{"ref": 0}, {"ref": 1}, {"ref": 2}]},
    ]
    return skv_bytes({"nodes": nodes, "root": {"ref": 3}})


if __name__ == "__main__":
    main(build)
