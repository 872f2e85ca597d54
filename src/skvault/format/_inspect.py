"""Describe an artifact without constructing it: object tree, arrays, manifest, trust."""

from __future__ import annotations

from typing import Any

from ._graph import GraphReader, display_path
from ._trust import TrustPolicy

__all__ = ["describe"]

_MAX_DEPTH = 40
_MAX_ITEMS = 25
_MAX_TEXT = 80


def describe(graph: GraphReader, manifest: dict[str, Any], file_size: int) -> dict[str, Any]:
    """Return a JSON-ready report of an opened artifact (nothing is imported or built)."""
    members = manifest.get("members", {})
    return {
        "file_size": file_size,
        "format_version": manifest.get("format_version"),
        "created_by": manifest.get("created_by"),
        "packages": manifest.get("packages"),
        "members": len(members),
        "member_bytes": sum(m.get("size", 0) for m in members.values()),
        "untrusted": TrustPolicy().untrusted(graph.required_globals()),
        "globals": graph.required_globals(),
        "tree": _Describer(graph).value(graph.root, 0),
    }


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[: _MAX_TEXT - 3] + "..."
    return value


class _Describer:
    def __init__(self, graph: GraphReader) -> None:
        self.graph = graph
        self.seen: dict[int, str] = {}

    def value(self, value: Any, depth: int, path: str = "") -> Any:
        if not isinstance(value, dict):
            return _short(value)
        index = value["ref"]
        if index in self.seen:
            return {"shared": display_path(self.seen[index])}
        self.seen[index] = path
        node = self.graph.nodes[index]
        kind = node["kind"]
        out: dict[str, Any] = {"type": self.graph.reducer(index).describe(node)}
        if depth >= _MAX_DEPTH:
            out["truncated"] = True
            return out
        if kind == "ndarray":
            out.update(_array(node, self.graph))
        elif kind == "object":
            params, children = {}, {}
            for name, v in zip(node.get("names", []), node.get("values", [])):
                if isinstance(v, dict):
                    children[name] = self.value(v, depth + 1, f"{path}.{name}")
                else:
                    params[name] = _short(v)
            out["attributes"] = params
            out["children"] = children
        elif kind in ("list", "tuple", "set", "frozenset"):
            items = node.get("items", [])
            out["length"] = len(items)
            out["items"] = [
                self.value(v, depth + 1, f"{path}[{i}]") for i, v in enumerate(items[:_MAX_ITEMS])
            ]
        elif kind == "dict":
            keys, values = node.get("keys", []), node.get("values", [])
            out["length"] = len(keys)
            out["items"] = {
                str(self.value(k, depth + 1)): self.value(v, depth + 1, f"{path}[{k!r}]")
                for k, v in list(zip(keys, values))[:_MAX_ITEMS]
            }
        elif kind == "ext":
            out["args"] = [
                self.value(v, depth + 1, f"{path}.__args__") for v in node.get("args", [])
            ]
            if "state" in node:
                out["state"] = self.value(node["state"], depth + 1, f"{path}.__state__")
        elif kind == "scalar":
            out["dtype"] = node.get("dtype")
            out["value"] = node.get("value", "<raw>")
        elif kind in ("float", "int", "complex", "dtype", "global"):
            out.update({k: v for k, v in node.items() if k != "kind"})
        return out


def _dtype_shown(dtype: Any, graph: GraphReader) -> Any:
    if isinstance(dtype, dict):  # a shared dtype node (references are checked before this)
        dtype = graph.nodes[dtype["ref"]].get("descr")
    return dtype if isinstance(dtype, (str, list)) else None


def _array(node: dict[str, Any], graph: GraphReader) -> dict[str, Any]:
    # shown as the file has them, but only in the forms the format allows
    shape = node.get("shape")
    dtype = node.get("dtype")
    out: dict[str, Any] = {
        "shape": shape if isinstance(shape, list) and all(type(d) is int for d in shape) else None,
        "dtype": _dtype_shown(dtype, graph),
    }
    member = node.get("member")
    if isinstance(member, str) and graph.container is not None:
        out["member"] = member
        try:
            out["bytes"] = graph.container.member_size(member)
        except Exception:  # a missing member is reported at load; here it is just shown
            out["bytes"] = None
    return out
