"""``skvault inspect FILE``: what an artifact holds, without loading it."""

from __future__ import annotations

import json
from typing import Any

import click

from .._api import inspect as inspect_file
from .._api import read_metadata
from ..errors import FormatError
from ..provenance._diff import json_ready
from ._app import EXIT_FINDING, cli, reports_errors


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--depth", default=6, show_default=True, help="Levels of the object tree to show.")
@reports_errors
def inspect(file: str, as_json: bool, depth: int) -> None:
    """Show the provenance, object tree, arrays, manifest and untrusted types of FILE.

    The provenance is everything dump recorded: environment, schema, training data, source,
    scores, golden sample, description, tags and metrics (--json has all of it, the golden
    sample summarised). Nothing in FILE is imported or run. Exits with 1 when FILE is broken
    or references types that default trust refuses.
    """
    report = inspect_file(file)
    error = None
    try:
        meta = read_metadata(file)
    except FormatError as exc:  # the model graph is shown all the same; the file is broken
        meta, error = {}, f"{type(exc).__name__}: {exc}"
    meta.pop("manifest", None)  # inspect's own report has the manifest's content
    if as_json:
        report = {**report, "metadata": metadata_json(meta) if meta else None}
        if error is not None:
            report["metadata_error"] = error
        click.echo(json.dumps(json_ready(report), indent=2))
    else:
        lines = render(report, file, depth)
        shown = [f"provenance: unreadable ({error})"] if error else render_metadata(meta)
        # provenance after the header, before the (long) object tree
        split = lines.index("")
        click.echo("\n".join([*lines[:split], "", *shown, *lines[split:]]))
    if error is not None:
        click.echo(f"skvault: {error}", err=True)
    if report["untrusted"] or error is not None:
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
        _signature_line(report.get("signature")),
    ]
    if report["untrusted"]:
        lines.append("UNTRUSTED (load refuses these unless passed in trusted=):")
        lines += [f"  - {name}" for name in report["untrusted"]]
    else:
        lines.append(f"trust: all {len(report['globals'])} referenced names are trusted by default")
    lines.append("")
    lines += _tree(report["tree"], "", depth)
    return lines


def _signature_line(signature: Any) -> str:
    if not signature:
        return "signature: none"
    if "error" in signature:
        return f"signature: MALFORMED ({signature['error']})"
    return (
        f"signature: {signature['algorithm']} by key {signature['key_id']} (not checked here: "
        "skvault verify FILE --public-key KEY.pub)"
    )


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


def metadata_json(meta: dict[str, Any]) -> dict[str, Any]:
    """Return the metadata for ``--json``: all of it, the golden sample as its size and shapes."""
    out = dict(meta)
    golden = meta.get("golden")
    if isinstance(golden, dict):
        out["golden"] = _golden_summary(golden)
    return out


def _golden_summary(golden: dict[str, Any]) -> dict[str, Any]:
    outputs = golden.get("outputs")
    if not isinstance(outputs, dict):
        outputs = {}
    return {
        "rows": _rows(golden.get("X")),
        "outputs": {name: _shape(value) for name, value in outputs.items()},
        "rtol": golden.get("rtol"),
        "atol": golden.get("atol"),
    }


def _rows(sample: Any) -> int | None:
    if isinstance(sample, dict):
        if "shape" in sample and isinstance(sample["shape"], list) and sample["shape"]:
            return sample["shape"][0]  # sparse
        data = sample.get("data")
        if isinstance(data, dict) and data:
            return _rows(next(iter(data.values())))
        return None
    shape = getattr(sample, "shape", None)
    return int(shape[0]) if shape else None


def _shape(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"shape": value.get("shape"), "dtype": "sparse"}
    return {
        "shape": list(getattr(value, "shape", ()) or ()),
        "dtype": str(getattr(value, "dtype", type(value).__name__)),
    }


def render_metadata(meta: dict[str, Any]) -> list[str]:
    """Return the provenance metadata as lines for a terminal."""
    if "skvault_metadata" not in meta:
        return ["provenance: none recorded (the file was written without metadata)"]
    lines = [f"created: {meta.get('created_at')}"]
    lines += _environment(meta.get("environment"))
    lines += _schema(meta.get("schema"))
    lines += _data(meta.get("data"))
    lines += _source(meta.get("source"))
    lines += _scores(meta.get("scores"))
    golden = meta.get("golden")
    if isinstance(golden, dict):
        g = _golden_summary(golden)
        outputs = ", ".join(f"{k} {tuple(v['shape'] or ())}" for k, v in g["outputs"].items())
        lines.append(
            f"golden sample: {g['rows']} rows; outputs {outputs} (rtol={g['rtol']}, "
            f"atol={g['atol']})"
        )
    else:
        lines.append("golden sample: none")
    lines.append(f"description: {meta.get('description') or '-'}")
    lines.append(f"tags: {', '.join(map(str, meta.get('tags') or [])) or '-'}")
    metrics = meta.get("metrics") or {}
    shown = ", ".join(f"{k}={_value(v)}" for k, v in metrics.items())
    lines.append(f"metrics: {shown or '-'}")
    # keys this skvault does not know (newer files, or records such as converted_from)
    lines += [f"{key}: {_value(value, 200)}" for key, value in meta.items() if key not in _SHOWN]
    return lines


_SHOWN = frozenset(
    {
        "skvault_metadata",
        "created_at",
        "environment",
        "schema",
        "data",
        "source",
        "scores",
        "golden",
        "description",
        "tags",
        "metrics",
    }
)


def _value(value: Any, limit: int = 60) -> str:
    text = repr(json_ready(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _environment(env: Any) -> list[str]:
    if not isinstance(env, dict):
        return ["environment: -"]
    python = env.get("python") or {}
    plat = env.get("platform") or {}
    lines = [
        f"environment: Python {python.get('version', '?')} ({python.get('implementation', '?')})"
        f" on {plat.get('system', '?')} {plat.get('machine', '')} {plat.get('release', '')}"
        f"; skvault {env.get('skvault', '?')}".replace("  ", " ")
    ]
    for key, label in (("core", "core"), ("model", "model uses")):
        versions = env.get(key) or {}
        if versions:
            lines.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    installed = env.get("installed") or {}
    if installed:
        lines.append(
            f"  installed: {len(installed)} distributions (skvault env FILE --full pins them all)"
        )
    return lines


def _schema(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return ["schema: -"]
    inp, out = schema.get("input") or {}, schema.get("output") or {}
    names = inp.get("feature_names")
    features = f"{inp.get('n_features', '?')} features"
    if names:
        features += f" {_value(names)}"
    lines = [f"schema: input {features}"]
    if inp.get("dtypes"):
        lines.append(f"  dtypes: {_value(inp['dtypes'], 200)}")
    if inp.get("categories"):
        lines.append(f"  categories: {_value(inp['categories'], 200)}")
    classes = out.get("classes")
    lines.append(
        f"  output: {out.get('task') or 'task unknown'}"
        + (f", classes {_value(classes)}" if classes is not None else "")
        + (f", {out['n_outputs']} outputs" if (out.get("n_outputs") or 1) > 1 else "")
        + f"; methods {', '.join(out.get('methods') or []) or '-'}"
    )
    return lines


def _data(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["data: -"]
    if "fingerprint" in data:
        lines = ["data: in-memory (fingerprint)"]
        for part in ("X", "y"):
            fp = (data.get("fingerprint") or {}).get(part)
            if isinstance(fp, dict):
                lines.append(
                    f"  {part}: shape {fp.get('shape')}, dtype {_value(fp.get('dtypes'))}, "
                    f"sha256 {fp.get('sha256')}"
                )
        return lines
    line = f"data: {data.get('uri')}"
    if data.get("sha256"):
        line += (
            f" (sha256 {data['sha256']}, {data.get('size'):,} bytes, modified {data.get('mtime')})"
        )
    if data.get("target"):
        line += f"; target {data['target']!r}"
    return [line]


def _source(source: Any) -> list[str]:
    if not isinstance(source, dict):
        return ["source: -"]
    text = source.get("text")
    size = f", {len(text.splitlines())} lines" if isinstance(text, str) else ""
    line = f"source: {source.get('kind')} {source.get('name')}{size}"
    git = source.get("git")
    if isinstance(git, dict):
        line += f"; git {git.get('commit')}"
        if git.get("branch"):
            line += f" on {git['branch']}"
        if git.get("dirty"):
            line += " (dirty)"
        if git.get("remote"):
            line += f", remote {git['remote']}"
    return [line]


def _scores(scores: Any) -> list[str]:
    if not isinstance(scores, dict):
        return ["scores: -"]
    lines = []
    given = scores.get("given")
    if isinstance(given, dict):
        lines.append("scores: " + ", ".join(f"{k}={_value(v)}" for k, v in given.items()))
    cv = scores.get("cv")
    if isinstance(cv, dict):
        splitter = cv.get("splitter") or {}
        params = ", ".join(f"{k}={v!r}" for k, v in (splitter.get("params") or {}).items())
        kind = str(splitter.get("type", "?")).rpartition(".")[2]
        lines.append(f"cross-validation: {kind}({params})")
        for name in cv.get("scoring") or []:
            folds = (cv.get("folds") or {}).get(name) or []
            mean = (cv.get("mean") or {}).get(name)
            std = (cv.get("std") or {}).get(name)
            lines.append(
                f"  {name}: mean {_number(mean)} +/- {_number(std)} over {len(folds)} folds "
                f"[{', '.join(_number(f) for f in folds)}]"
            )
    return lines or ["scores: -"]


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
