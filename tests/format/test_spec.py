"""docs/FORMAT.md stays in step with the code that reads and writes the format."""

from __future__ import annotations

import re
from pathlib import Path

from skvault.format import FORMAT_VERSION
from skvault.format._container import ALIGN, DEFAULT_LIMITS, LARGE_ARRAY
from skvault.format.reducers import REGISTRY

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md").read_text("utf-8")


def test_every_node_kind_is_specified_and_nothing_else():
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", SPEC, flags=re.MULTILINE))
    documented -= {"manifest.json", "graph.json"}
    member_rows = {
        "format",
        "format_version",
        "graph",
        "metadata",
        "members",
        "created_by",
        "packages",
        "metadata.json",
        # the signature's fields (section 5.5)
        "skvault_signature",
        "algorithm",
        "key_id",
        "public_key",
        "signature",
    }
    assert documented - member_rows == set(REGISTRY.by_kind)


def test_version_and_layout_constants_match():
    assert f"# The `.skv` format, version {FORMAT_VERSION}" in SPEC
    assert f"MUST be `{FORMAT_VERSION}`" in SPEC
    assert f"multiple of {ALIGN}" in SPEC
    assert f"{LARGE_ARRAY:,} bytes".replace(",", " ") in SPEC


def test_limits_table_matches_the_reader():
    limits = DEFAULT_LIMITS
    assert f"| `manifest.json` | {limits.manifest >> 20} MiB |" in SPEC
    assert f"| `graph.json` (uncompressed) | {limits.graph >> 30} GiB |" in SPEC
    assert f"| members | {limits.members:,} |".replace(",", " ") in SPEC
    assert f"| nodes | {limits.nodes:,} |".replace(",", " ") in SPEC
    assert f"| member name | {limits.name} bytes |" in SPEC
    lzma = f"{limits.ratio_lzma:,}".replace(",", " ")
    ratios = f"{limits.ratio_graph}:1 `graph.json`, {limits.ratio_deflate}:1 deflate, {lzma}:1 LZMA"
    assert ratios in SPEC
