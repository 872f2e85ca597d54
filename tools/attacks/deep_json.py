"""graph.json nested 100,000 levels deep: a parser that recurses would overflow the stack."""

from _skv import main, skv_bytes


def build() -> bytes:
    return skv_bytes(b"[" * 100_000 + b"]" * 100_000)


if __name__ == "__main__":
    main(build)
