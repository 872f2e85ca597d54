"""The object graph: Python objects to JSON nodes and back, through the reducer registry.

A graph is ``{"nodes": [node, ...], "root": value}``. A *value* is ``null``, ``true``/``false``,
a string, an integer, a finite float, or a reference ``{"ref": i}`` to node ``i``. A node is a JSON
object with a ``"kind"`` naming the reducer that wrote it. Nodes are listed children first, so a
reference always points backward (to a smaller index than the node holding it): a graph cannot
contain a cycle, a node referenced twice is one shared object after loading, and a reader builds
the nodes in list order without recursion.

Reading is three phases: `GraphReader.__init__` checks the document's structure (no imports),
`GraphReader.required_globals` lists what the file asks to resolve (for the audit), and
`GraphReader.construct` builds the objects, resolving names only through the trust policy and
checking each reference as it follows it. Readers that do not construct (the audit, inspection)
check every reference first with `GraphReader.check_references`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import FormatError, UnsupportedTypeError
from ._trust import TrustPolicy, is_valid_name, resolve
from .validators import deferred_validation

if TYPE_CHECKING:
    import numpy as np

    from ._container import ContainerReader, ContainerWriter, Limits

__all__ = [
    "GraphReader",
    "GraphWriter",
    "Reducer",
    "Registry",
    "child_path",
    "qualified_name",
]

INT_LIMIT = 2**63  # integers at or beyond this magnitude go through an "int" node


def qualified_name(cls: type) -> str:
    """Return ``module.qualname`` of a class, the form used in files and allow-lists."""
    return f"{cls.__module__}.{cls.__qualname__}"


def child_path(path: str, key: object, *, attr: bool = False) -> str:
    """Extend a location such as ``steps[1]`` by an item index/key or an attribute name."""
    if attr and isinstance(key, str):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


_MISSING = object()


def display_path(path: object) -> str:
    """Return ``path`` as shown to people: no leading dot, ``<root>`` when empty."""
    return str(path).lstrip(".") or "<root>"


class Reducer:
    """One type family: how its objects become nodes (`reduce`) and nodes objects (`construct`).

    Subclasses set `kind` (the node's ``"kind"``), list the exact Python types they handle in
    `types`, or override `accepts` for a family matched by a rule rather than by exact type.
    """

    kind: ClassVar[str]
    types: ClassVar[tuple[type, ...]] = ()
    # whether nodes of this kind may be referenced before they are built (see `allocate`)
    forward: ClassVar[bool] = False

    def accepts(self, obj: object) -> bool:
        """Return whether this reducer handles ``obj`` (used only when no exact type matched)."""
        return False

    def reduce(self, obj: Any, w: GraphWriter, path: str) -> dict[str, Any]:
        """Return the node's fields (without ``"kind"``); children go through ``w.value``."""
        raise NotImplementedError

    def globals(self, node: dict[str, Any]) -> list[str]:
        """Return the fully qualified names this node asks the loader to resolve."""
        return []

    def construct(self, node: dict[str, Any], r: GraphReader, path: str) -> Any:
        """Build the object a node describes; children come from ``r.value``."""
        raise NotImplementedError

    def describe(self, node: dict[str, Any]) -> str:
        """Return a short type label for ``node``, for inspection."""
        return self.kind

    def allocate(self, node: dict[str, Any], r: GraphReader) -> Any:
        """Create the still empty object of a `forward` node that is referenced before it is built.

        `construct` later fills that same object (`GraphReader.preallocated`).
        """
        raise NotImplementedError

    def children(self, node: dict[str, Any]) -> Iterator[tuple[int, str]]:
        """Yield ``(node index, location label)`` for each reference in ``node``."""
        for key, field in node.items():
            if key == "kind":
                continue
            if isinstance(field, dict):
                yield field["ref"], f".{key}"
            elif isinstance(field, list):
                for i, item in enumerate(field):
                    if isinstance(item, dict):
                        yield item["ref"], f"[{i}]" if key == "items" else f".{key}[{i}]"


class Registry:
    """All reducers, found by exact type when writing and by node kind when reading."""

    def __init__(self) -> None:
        self.by_kind: dict[str, Reducer] = {}
        # the kinds whose nodes can name a global: the audit only needs to look at those
        self.naming_kinds: set[str] = set()
        self._by_type: dict[type, Reducer] = {}
        self._rules: list[Reducer] = []

    def register(self, reducer: Reducer) -> Reducer:
        """Add ``reducer``; exact types are tried before rules, rules in registration order."""
        if reducer.kind in self.by_kind:
            raise ValueError(f"kind {reducer.kind!r} registered twice")
        self.by_kind[reducer.kind] = reducer
        if type(reducer).globals is not Reducer.globals:
            self.naming_kinds.add(reducer.kind)
        for t in reducer.types:
            self._by_type[t] = reducer
        if type(reducer).accepts is not Reducer.accepts:
            self._rules.append(reducer)
        return reducer

    def for_object(self, obj: object) -> Reducer | None:
        """Return the reducer for ``obj``, or None when nothing can represent it."""
        reducer = self._by_type.get(type(obj))
        if reducer is not None:
            return reducer
        for rule in self._rules:
            if rule.accepts(obj):
                return rule
        return None


class GraphWriter:
    """Turns an object into graph nodes, writing arrays to the container as it goes."""

    def __init__(self, registry: Registry, container: ContainerWriter, max_depth: int) -> None:
        self.registry = registry
        self.container = container
        self.nodes: list[dict[str, Any]] = []
        self._memo: dict[int, int] = {}
        self._active: dict[int, Reducer] = {}
        self._fixups: dict[int, list[dict[str, int]]] = {}
        # ids are only unique while objects live: keep every object seen (including temporary
        # state dicts made by __getstate__) alive until the graph is complete
        self._keep: list[object] = []
        self._interned: dict[object, Any] = {}
        self._depth = 0
        self._max_depth = max_depth

    def value(self, obj: object, path: str) -> Any:
        """Return the JSON value for ``obj``: inline when it is a plain scalar, else a reference."""
        t = type(obj)
        if obj is None or t is bool:
            return obj
        if t is str:
            if not obj.isascii():  # type: ignore[attr-defined]
                _check_utf8(obj, path)  # type: ignore[arg-type]
            return obj
        if t is int and -INT_LIMIT < obj < INT_LIMIT:  # type: ignore[operator]
            return obj
        if t is float and math.isfinite(obj):  # type: ignore[arg-type]
            return obj
        key = id(obj)
        if key in self._memo:
            return {"ref": self._memo[key]}
        if key in self._active:
            if not self._active[key].forward:
                raise UnsupportedTypeError(
                    display_path(path),
                    qualified_name(t),
                    "the object contains itself through a container (a cycle only objects with "
                    "a __dict__ state can close)",
                )
            # a cycle back to an object still being written: its index is known only once it
            # is finished, so the reference is patched then
            placeholder = {"ref": -1}
            self._fixups.setdefault(key, []).append(placeholder)
            return placeholder
        reducer = self.registry.for_object(obj)
        if reducer is None:
            raise UnsupportedTypeError(display_path(path), qualified_name(t), _why_unsupported(obj))
        if self._depth >= self._max_depth:
            raise UnsupportedTypeError(
                display_path(path), qualified_name(t), "the object is nested too deeply"
            )
        self._active[key] = reducer
        self._keep.append(obj)
        self._depth += 1
        try:
            fields = reducer.reduce(obj, self, path)
        except RecursionError:
            # Python's own limit came first (each level costs several frames); the frame that
            # catches this may itself be too deep to build the error, then the next one up does
            raise UnsupportedTypeError(
                display_path(path),
                qualified_name(t),
                f"the object is nested too deeply ({self._depth} levels)",
            ) from None
        finally:
            self._depth -= 1
            del self._active[key]
        # post-order: children got their indices first, so references point backward (but for
        # the patched references that close a cycle)
        index = len(self.nodes)
        self.nodes.append({"kind": reducer.kind, **fields})
        self._memo[key] = index
        for placeholder in self._fixups.pop(key, ()):
            placeholder["ref"] = index
        return {"ref": index}

    def shared(self, key: object, obj: object) -> Any:
        """Return a reference to ``obj``, writing it once for all callers that pass ``key``.

        For values that are equal but not identical (dtype objects of the same structure).
        """
        ref = self._interned.get(key)
        if ref is None:
            ref = self._interned[key] = self.value(obj, f"<shared {key}>")
        return ref

    def keep(self, obj: object) -> None:
        """Keep a temporary object alive until the graph is written (see ``_keep``)."""
        self._keep.append(obj)

    def graph(self, root: Any) -> dict[str, Any]:
        """Return the finished graph document."""
        return {"nodes": self.nodes, "root": root}


def _check_utf8(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedTypeError(
            display_path(path), "builtins.str", "it holds an unpaired surrogate, not valid Unicode"
        ) from None


def _why_unsupported(obj: object) -> str:
    name = getattr(obj, "__qualname__", "")
    if "<lambda>" in name:
        return "lambdas cannot be saved without pickle; use a named module-level function"
    if "<locals>" in name:
        return "functions defined inside functions (closures) cannot be saved without pickle"
    if hasattr(obj, "read") or hasattr(obj, "fileno"):
        return "open files and streams cannot be saved"
    return (
        "it has no safe representation: skvault saves builtin containers and scalars, numpy and "
        "scipy data, importable functions and classes, and objects whose state is a plain "
        "__dict__ (the scikit-learn convention)"
    )


class Where:
    """A node's location in the graph, worked out only when an error message needs it."""

    def __init__(self, reader: GraphReader, index: int) -> None:
        self._reader = reader
        self._index = index

    def __str__(self) -> str:
        return self._reader.path_of(self._index)

    def __add__(self, other: str) -> str:
        return str(self) + other


class GraphReader:
    """Parses a graph document and constructs its objects under a trust policy."""

    def __init__(
        self,
        doc: object,
        registry: Registry,
        container: ContainerReader | None,
        limits: Limits,
    ) -> None:
        self.registry = registry
        self.container = container
        self.limits = limits
        if not isinstance(doc, dict) or set(doc) != {"nodes", "root"}:
            raise FormatError("graph.json must be an object with exactly 'nodes' and 'root'")
        nodes = doc["nodes"]
        if not isinstance(nodes, list):
            raise FormatError("graph.json: 'nodes' must be a list")
        if len(nodes) > limits.nodes:
            raise FormatError(f"graph.json has {len(nodes)} nodes, over the limit")
        self.nodes: list[dict[str, Any]] = nodes
        kinds = registry.by_kind
        index = 0
        try:
            for index, node in enumerate(nodes):
                if type(node) is not dict or node.get("kind") not in kinds:
                    raise FormatError(f"graph node {index} is not an object with a known 'kind'")
        except TypeError:  # an unhashable 'kind' (a JSON list or object)
            raise FormatError(f"graph node {index} is not an object with a known 'kind'") from None
        self.root = doc["root"]
        if type(self.root) is dict:
            self.ref(self.root, len(nodes))
        elif type(self.root) is list:
            raise FormatError("graph.json: 'root' must be a value, not a JSON list")
        self._built: list[Any] = []
        self._early: dict[int, Any] = {}
        self._resolved: dict[str, Any] = {}
        self._current = 0
        self._parents: dict[int, tuple[int, str]] | None = None
        self._references_checked = False
        self.policy: TrustPolicy | None = None
        self.mmap = False

    def check_references(self) -> None:
        """Check every reference: ``{"ref": i}`` with exactly that key and ``i`` before its holder.

        Construction checks each reference as it follows it (`value`), so loading does not pay
        for this pass; readers that do not construct (the audit, inspection) call it first, so
        they never meet a dangling, forward or malformed reference either.
        """
        if self._references_checked:
            return
        for index, node in enumerate(self.nodes):
            for field in node.values():
                if type(field) is dict:
                    self.ref(field, index)
                elif type(field) is list and field:
                    # most lists hold scalars only, which the C-level set of types tells fast
                    types = set(map(type, field))
                    if dict in types or list in types:
                        self._check_refs(field, index)
        self._references_checked = True

    def _check_refs(self, items: list[Any], holder: int) -> None:
        """Check the references anywhere inside a list held by node ``holder``."""
        stack = [items]
        while stack:  # a loop, not recursion: the nesting depth is the file's choice
            for item in stack.pop():
                if type(item) is dict:
                    ref = item.get("ref")
                    if type(ref) is not int or not 0 <= ref < holder or len(item) != 1:
                        self.ref(item, holder)  # raises, saying what is wrong
                elif type(item) is list:
                    stack.append(item)

    def reducer(self, index: int) -> Reducer:
        """Return the reducer that handles node ``index``."""
        return self.registry.by_kind[self.nodes[index]["kind"]]

    def required_globals(self) -> list[str]:
        """Return every fully qualified name the graph asks to resolve, sorted and unique."""
        by_kind = self.registry.by_kind
        naming = self.registry.naming_kinds
        names: set[str] = set()
        for index, node in enumerate(self.nodes):
            kind = node["kind"]
            if kind in naming:
                for name in by_kind[kind].globals(node):
                    # each distinct name is checked once: hundreds of nodes share a few types
                    if type(name) is not str or (name not in names and not is_valid_name(name)):
                        raise FormatError(f"graph node {index} names a malformed global {name!r}")
                    names.add(name)
        return sorted(names)

    def construct(self, policy: TrustPolicy, *, mmap: bool = False) -> Any:
        """Audit every global against ``policy``, then build and return the root object.

        Nodes are built in list order; every reference points to an already built node.
        """
        policy.check(self.required_globals())
        self.policy = policy
        self.mmap = mmap
        self._built = []
        self._early = {}
        by_kind = self.registry.by_kind
        # array digests are computed on a worker thread while the objects are built from them
        # (every state is validated anyway: a digest says who wrote it, not that it is sane),
        # and checks that can wait until every node is built run together: hundreds of small
        # trees cost a few numpy operations instead of hundreds. Both end before the root is
        # returned.
        digests = self.container.deferred_digests() if self.container else nullcontext()
        with digests, deferred_validation():
            for index, node in enumerate(self.nodes):
                self._current = index
                # a Where stands in for the path string (str() and + work), built only on error
                where: Any = Where(self, index)
                self._built.append(by_kind[node["kind"]].construct(node, self, where))
            if self.container is not None:
                self.container.check_regions()
            root = self.value(self.root)
        return root

    def preallocated(self) -> Any | None:
        """Return the object allocated early for the node being built, if it was referenced
        before its turn (a cycle); its `construct` must fill that object rather than a new one.
        """
        return self._early.pop(self._current, None)

    def resolve(self, name: str) -> Any:
        """Resolve a global through the trust policy (the only way construction imports)."""
        assert self.policy is not None, "construct() sets the policy"
        found = self._resolved.get(name, _MISSING)
        if found is _MISSING:
            found = self._resolved[name] = resolve(name, self.policy)
        return found

    def value(self, value: Any) -> Any:
        """Return the object for a JSON value (a reference returns the node built for it).

        Only nodes already built can be referenced: that is the backward-reference rule, and
        it is what makes cycles impossible.
        """
        if type(value) is dict:
            index = self.ref(value, len(self._built))
            if index < len(self._built):
                return self._built[index]
            # a forward reference (checked by ref() to name a `forward` kind): a cycle
            early = self._early.get(index)
            if early is None:
                node = self.nodes[index]
                early = self._early[index] = self.reducer(index).allocate(node, self)
            return early
        if type(value) is list:
            raise FormatError("a JSON list cannot stand for a value")
        return value

    def ref(self, value: Any, holder: int) -> int:
        """Return the node index of reference ``value`` held by node ``holder``, checked."""
        ref = value.get("ref") if type(value) is dict else None
        if type(ref) is not int or len(value) != 1:
            raise FormatError(
                f"{self._holder(holder)}: JSON objects inside the graph must be {{'ref': index}}"
            )
        if not 0 <= ref < holder and not (
            holder < len(self.nodes)
            and 0 <= ref < len(self.nodes)
            and self.registry.by_kind[self.nodes[ref]["kind"]].forward
        ):
            raise FormatError(
                f"{self._holder(holder)} references node {ref}, which is missing or not earlier "
                "in the list (only object nodes may be referenced ahead, to close a cycle)"
            )
        return ref

    def _holder(self, holder: int) -> str:
        return "the root" if holder >= len(self.nodes) else f"graph node {holder}"

    def array(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
    ) -> np.ndarray:
        """Read an array member through the container (copied, or memory-mapped when asked)."""
        if self.container is None:
            raise FormatError("this graph has no container to read arrays from")
        return self.container.read_array(name, dtype, shape, fortran, mmap=self.mmap)

    def buffer_array(
        self, name: str, offset: int, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
    ) -> np.ndarray:
        """Return an array stored in a shared buffer member."""
        if self.container is None:
            raise FormatError("this graph has no container to read arrays from")
        return self.container.buffer_array(name, offset, dtype, shape, fortran, mmap=self.mmap)

    def path_of(self, index: int) -> str:
        """Return where node ``index`` sits below the root, as in ``steps[1][1].tree_``."""
        if self._parents is None:
            self._parents = {}
            for parent in range(len(self.nodes) - 1, -1, -1):
                try:
                    for child, label in self.reducer(parent).children(self.nodes[parent]):
                        if type(child) is int and child < parent:
                            self._parents.setdefault(child, (parent, label))
                except (AttributeError, KeyError, TypeError, ValueError):
                    continue  # a malformed node: its children get no path
        parts = []
        seen = set()
        while index in self._parents and index not in seen:
            seen.add(index)
            index, label = self._parents[index]
            parts.append(label)
        if not (type(self.root) is dict and self.root.get("ref") == index):
            parts.append(f"<node {index}>")
        return display_path("".join(reversed(parts)))


def expect(node: dict[str, Any], key: str, check: Callable[[Any], bool], what: str) -> Any:
    """Return ``node[key]`` if it passes ``check``, else raise a `FormatError` saying ``what``."""
    if key not in node or not check(node[key]):
        raise FormatError(f"{node.get('kind')} node: '{key}' must be {what}")
    return node[key]
