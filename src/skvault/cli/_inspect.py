"""``skvault inspect FILE``: what an artifact holds, without loading it."""

from __future__ import annotations

import json
from typing import Any

import click

from .._api import inspect as inspect_file
from ._app import EXIT_FINDING, cli, reports_errors


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--depth", default=6, show_default=True, help="Levels of the object tree to show.")
@reports_errors
def inspect(file: str, as_json: bool, depth: int) -> None:
    """Show the object tree, arrays, manifest and untrusted types of FILE.

    Nothing in FILE is imported or run. Exits with 1 when FILE is broken or references types
    that default trust refuses.
    """
    report = inspect_file(file)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo("\n".join(render(report, file, depth)))
    if report["untrusted"]:
        raise SystemExit(EXIT_FINDING)


def render(report: dict[str, Any], file: str, depth: int) -> list[str]:
    """Return the report as lines for a terminal."""
    pkgs = report.get("packages") or {}
    created = report.get("created_by") or {}
    lines = [
        f"{file}: {report['file_size']:,} bytes, .skv format {report['format_version']}, "
        f"written by skvault {created.get('version', '?')}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in pkgs.items()),
        f"members: {report['members']} ({report['member_bytes']:,} bytes uncompressed)",
    ]
    if report["untrusted"]:
        lines.append("UNTRUSTED (load refuses these unless passed in trusted=):")
        lines += [f"  - {name}" for name in report["untrusted"]]
    else:
        lines.append(f"trust: all {len(report['globals'])} referenced names are trusted by default")
    lines.append("")
    lines += _tree(report["tree"], "", depth)
    return lines


def _label(node: Any) -> str:
    if not isinstance(node, dict):
        return repr(node)
    if "shared" in node:
        return f"(same object as {node['shared']})"
    kind = node["type"]
    if "shape" in node:
        dtype = node["dtype"]
        if not isinstance(dtype, str):
            dtype = f"struct[{len(dtype)} fields]" if isinstance(dtype, list) else "?"
        size = f", {node['bytes']:,} bytes" if node.get("bytes") is not None else ""
        shape = tuple(node["shape"]) if node["shape"] is not None else "(malformed shape)"
        return f"array {shape} {dtype}{size}"
    if "length" in node:
        return f"{kind} of {node['length']}"
    if "value" in node:
        return f"{kind} {node['value']!r}"
    if "name" in node:
        return f"{node['name']}"
    return kind


def _tree(node: Any, indent: str, depth: int, name: str = "") -> list[str]:
    head = f"{indent}{name + ': ' if name else ''}{_label(node)}"
    if isinstance(node, dict) and node.get("attributes"):
        attrs = ", ".join(f"{k}={v!r}" for k, v in node["attributes"].items())
        head += f"  ({attrs})"
    lines = [head]
    if not isinstance(node, dict) or depth <= 0:
        return lines
    sub = indent + "  "
    children: list[tuple[str, Any]] = []
    if "children" in node:
        children = list(node["children"].items())
    elif isinstance(node.get("items"), list):
        children = [(f"[{i}]", v) for i, v in enumerate(node["items"])]
    elif isinstance(node.get("items"), dict):
        children = [(f"[{k}]", v) for k, v in node["items"].items()]
    elif "args" in node:
        children = [(f"arg{i}", v) for i, v in enumerate(node["args"])]
        if "state" in node:
            children.append(("state", node["state"]))
    for child_name, child in children:
        lines += _tree(child, sub, depth - 1, child_name)
    if "length" in node and isinstance(node.get("items"), (list, dict)):
        hidden = node["length"] - len(node["items"])
        if hidden > 0:
            lines.append(f"{sub}... {hidden} more")
    return lines
