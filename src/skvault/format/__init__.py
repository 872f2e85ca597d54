"""The ``.skv`` format: container, object graph, reducers and trust policy.

Every reading entry point goes through `open_artifact`: open, check sizes and digests, parse the
graph (no imports), and only then, in `Artifact.construct`, audit against the trust policy and
build.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError, SkvaultError, UnsupportedTypeError
from ._container import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    GRAPH,
    METADATA,
    ContainerReader,
    ContainerWriter,
    Limits,
    parse_json,
)
from ._files import FileLike, atomic_output, open_input
from ._graph import GraphReader, GraphWriter
from ._inspect import describe
from ._trust import TrustPolicy, default_allowlist
from .reducers import REGISTRY

# Read the allow-list now rather than at the first audit: reading it goes through
# importlib.resources, which imports modules lazily, and auditing a file must import nothing.
default_allowlist()

__all__ = [
    "FORMAT_VERSION",
    "Artifact",
    "Limits",
    "TrustPolicy",
    "default_allowlist",
    "open_artifact",
    "write_artifact",
]


class Artifact:
    """An opened and structurally checked artifact whose objects are not yet built.

    The graph is parsed on first use, so reading only the manifest or the metadata stays cheap.
    """

    def __init__(self, container: ContainerReader) -> None:
        self.container = container
        self.manifest: dict[str, Any] = container.manifest
        self._graph: GraphReader | None = None

    @property
    def graph(self) -> GraphReader:
        """The model's object graph, parsed and structurally checked (nothing imported)."""
        if self._graph is None:
            self._graph = self._parse(GRAPH)
        return self._graph

    def _parse(self, member: str) -> GraphReader:
        limits = self.container.limits
        with _bad_file_errors():
            raw = self.container.read_bytes(member, limits.graph)
            doc = parse_json(raw, member, strict_keys=False)
            return GraphReader(doc, REGISTRY, self.container, limits)

    def untrusted(self, policy: TrustPolicy) -> list[str]:
        """Return the names in the graph that ``policy`` refuses."""
        graph = self.graph
        with _bad_file_errors():
            graph.check_references()
            return policy.untrusted(graph.required_globals())

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready report of the artifact, building nothing."""
        graph = self.graph
        with _bad_file_errors():
            graph.check_references()
            return describe(graph, self.manifest, self.container.file_size)

    def construct(self, policy: TrustPolicy, *, mmap: bool = False) -> Any:
        """Audit against ``policy`` and build the root object."""
        graph = self.graph
        with _bad_file_errors():
            return graph.construct(policy, mmap=mmap)

    def metadata(self) -> Any:
        """Return the artifact's metadata (plain data, no names resolved), or None if it has none.

        Reads only the manifest, ``metadata.json`` and the members its arrays live in.
        """
        name = self.manifest.get("metadata")
        if name is None:
            return None
        if name != METADATA:
            raise FormatError(f"manifest.json names {name!r} as metadata, not {METADATA!r}")
        graph = self._parse(METADATA)
        with _bad_file_errors():
            return graph.construct(TrustPolicy.nothing())


@contextlib.contextmanager
def _bad_file_errors() -> Iterator[None]:
    """Report any other error that reading a file provokes as a `FormatError`.

    The reducers check what they read, but a malformed node that slips past a check must still
    surface as a bad file (a `FormatError` the caller can catch), never as a bare KeyError or
    TypeError; the original error stays attached as the cause.
    """
    try:
        yield
    except (SkvaultError, OSError, MemoryError):
        raise
    except RecursionError:
        raise FormatError("the object graph is nested too deeply") from None
    except Exception as exc:
        raise FormatError(f"malformed .skv file: {exc!r}") from exc


@contextlib.contextmanager
def open_artifact(file: FileLike, *, limits: Limits = DEFAULT_LIMITS) -> Iterator[Artifact]:
    """Open ``file`` and yield an `Artifact` whose structure, sizes and digests are checked.

    Raises `FormatError` (or a subclass) for anything malformed; never imports a name from the file.
    """
    with open_input(file) as fh:
        with _bad_file_errors():
            container = ContainerReader(fh, limits=limits)
        try:
            yield Artifact(container)
        finally:
            container.close()


def write_artifact(
    obj: Any, file: FileLike, *, compress: object = None, metadata: Any = None
) -> None:
    """Write ``obj`` as a ``.skv`` artifact to a path (atomically) or a binary file object.

    ``metadata``, when given, is plain data (builtin containers and scalars, numpy arrays and
    scalars: nothing that names a class or function) stored as ``metadata.json``, a second graph
    that `Artifact.metadata` reads without trusting anything.
    """
    with atomic_output(file) as fh:
        writer = ContainerWriter(fh, compress)
        try:
            writer.add_bytes(GRAPH, _graph_bytes(obj, writer), deflate=True)
            extra = None
            if metadata is not None:
                data = _graph_bytes(metadata, writer, plain=True)
                writer.add_bytes(METADATA, data, deflate=True)
                extra = {"metadata": METADATA}
            writer.close(extra)
        except BaseException:
            writer.abort()
            raise


def _graph_bytes(obj: Any, writer: ContainerWriter, *, plain: bool = False) -> bytes:
    graph = GraphWriter(REGISTRY, writer, DEFAULT_LIMITS.depth)
    root = graph.value(obj, "metadata" if plain else "")
    if plain:
        named = [n for n in graph.nodes if REGISTRY.by_kind[n["kind"]].globals(n)]
        if named:
            raise UnsupportedTypeError(
                "metadata",
                REGISTRY.by_kind[named[0]["kind"]].describe(named[0]),
                "metadata must be plain data: containers, scalars and arrays only",
            )
    doc = graph.graph(root)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
