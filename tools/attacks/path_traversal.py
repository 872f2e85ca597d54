"""Members named ``../../evil.sh`` and ``/etc/cron.d/evil``, listed in the manifest."""

from _skv import main, skv_bytes


def build() -> bytes:
    members = {"../../evil.sh": b"#!/bin/sh\n", "/etc/cron.d/evil": b"* * * * * root id\n"}
    return skv_bytes({"nodes": [], "root": None}, members)


if __name__ == "__main__":
    main(build)
