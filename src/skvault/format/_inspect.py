"""Describe an artifact without constructing it: object tree, arrays, manifest, trust, params."""

from __future__ import annotations

from typing import Any

from ._graph import GraphReader, display_path
from ._trust import TrustPolicy

__all__ = ["describe", "hyperparameters"]

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
        "params": hyperparameters(graph),
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


# -- hyper-parameters, read from the graph without building anything --------------------------

_PARAM_DEPTH = 12  # nested estimators (a pipeline in a search in an ensemble) stay well below
_PARAM_ITEMS = 50
_MAX_PARAMS = 2000
# steps of work (names read, values shown) for the whole walk: a hostile graph that shares one
# node everywhere would otherwise make a small file expand into an exponential walk
_PARAM_BUDGET = 100_000


def hyperparameters(graph: GraphReader) -> dict[str, Any]:
    """Return the root estimator's hyper-parameters, flattened the way ``get_params`` does.

    Read statically from the object node's state, never by building or importing anything: the
    scikit-learn convention names fitted attributes with a trailing underscore and private ones
    with a leading one, so the remaining attributes are the constructor's parameters. A nested
    estimator (a parameter's value, or a ``(name, estimator, ...)`` item of ``steps`` or
    ``transformers``) adds its own as ``<name>__<param>``. Values are shown as JSON values:
    scalars as they are, containers item by item, an estimator or function by its qualified
    name, an array as ``array(shape, dtype)``. The result is empty when the root is not an
    object (a plain dict or list was saved); references must have been checked first.
    """
    out: dict[str, Any] = {}
    root = graph.root
    if _node_kind(graph, root) == "object":
        walker = _Params(graph, out)
        walker.estimator(root["ref"], "", 0)
        if walker.budget < 0 or len(out) >= _MAX_PARAMS:
            out["..."] = "more parameters than inspection shows"
    return out


def _node_kind(graph: GraphReader, value: Any) -> str | None:
    if type(value) is dict and type(value.get("ref")) is int:
        node = graph.nodes[value["ref"]]
        kind = node.get("kind")
        return kind if isinstance(kind, str) else None
    return None


def _is_param(name: Any) -> bool:
    return (
        isinstance(name, str) and bool(name) and not name.startswith("_") and not name.endswith("_")
    )


class _Params:
    """Walks estimator nodes and fills a flat ``{name: value}`` dict, bounded in size."""

    def __init__(self, graph: GraphReader, out: dict[str, Any]) -> None:
        self.graph = graph
        self.out = out
        self.budget = _PARAM_BUDGET

    def spend(self) -> bool:
        """Take one step from the budget; False once it is spent (the walk then stops)."""
        self.budget -= 1
        return self.budget >= 0

    def estimator(self, index: int, prefix: str, depth: int) -> None:
        node = self.graph.nodes[index]
        names, values = node.get("names"), node.get("values")
        if not isinstance(names, list) or not isinstance(values, list) or depth > _PARAM_DEPTH:
            return
        for name, value in zip(names, values):
            if len(self.out) >= _MAX_PARAMS or not self.spend():
                return
            if not _is_param(name):
                continue
            self.out[prefix + name] = self.value(value, 0)
            self.nested(value, prefix, f"{prefix}{name}__", depth)

    def nested(self, value: Any, prefix: str, param_prefix: str, depth: int) -> None:
        """Add the parameters of the estimators a parameter's value holds.

        An estimator value adds ``<param>__<sub>``; a list of ``(name, estimator, ...)`` items
        (``steps``, ``transformers``, ``estimators``) adds ``<name>`` and ``<name>__<sub>`` at
        the holder's own level, as ``get_params(deep=True)`` does.
        """
        kind = _node_kind(self.graph, value)
        if kind == "object":
            self.estimator(value["ref"], param_prefix, depth + 1)
            return
        if kind not in ("list", "tuple"):
            return
        items = self.graph.nodes[value["ref"]].get("items")
        if not isinstance(items, list):
            return
        for item in items[:_PARAM_ITEMS]:
            if not self.spend():
                return
            if _node_kind(self.graph, item) not in ("list", "tuple"):
                continue
            pair = self.graph.nodes[item["ref"]].get("items")
            if (
                isinstance(pair, list)
                and len(pair) >= 2
                and _is_param(pair[0])
                and _node_kind(self.graph, pair[1]) == "object"
                and prefix + pair[0] not in self.out
            ):
                self.out[prefix + pair[0]] = self.value(pair[1], 0)
                self.estimator(pair[1]["ref"], f"{prefix}{pair[0]}__", depth + 1)

    def value(self, value: Any, depth: int) -> Any:
        """Return a parameter's value as JSON data (a label for what is not plain)."""
        if not self.spend():
            return "..."
        if type(value) is not dict:
            return _short(value)
        index = value.get("ref")
        if type(index) is not int:
            return None
        node = self.graph.nodes[index]
        kind = node.get("kind")
        if kind in ("list", "tuple", "set", "frozenset"):
            items = node.get("items")
            if not isinstance(items, list) or depth >= 4:
                return f"{kind}(...)"
            shown = [self.value(v, depth + 1) for v in items[:_PARAM_ITEMS]]
            if len(items) > _PARAM_ITEMS:
                shown.append(f"... {len(items) - _PARAM_ITEMS} more")
            return shown
        if kind == "dict":
            keys, values = node.get("keys"), node.get("values")
            if not isinstance(keys, list) or not isinstance(values, list) or depth >= 4:
                return "dict(...)"
            return {
                str(self.value(k, depth + 1)): self.value(v, depth + 1)
                for k, v in list(zip(keys, values))[:_PARAM_ITEMS]
            }
        if kind in ("object", "ext"):
            return str(node.get("type"))
        if kind == "global":
            return str(node.get("name"))
        if kind in ("float", "int", "scalar") and "value" in node:
            # non-finite floats and big integers are strings in the graph; shown as written
            return node["value"] if isinstance(node["value"], (int, float, str, bool)) else None
        if kind == "ndarray":
            shape = node.get("shape")
            dtype = _dtype_shown(node.get("dtype"), self.graph)
            return f"array(shape={shape}, dtype={dtype})"
        if kind == "dtype":
            return f"dtype({node.get('descr')})"
        return str(self.graph.reducer(index).describe(node))
