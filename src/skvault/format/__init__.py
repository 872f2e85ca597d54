"""The ``.skv`` format: container, object graph, reducers and trust policy.

Every reading entry point goes through `open_artifact`: open, check sizes and digests, parse the
graph (no imports), and only then, in `Artifact.construct`, audit against the trust policy and
build.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, SkvaultError
from ._container import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    GRAPH,
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


@dataclass
class Artifact:
    """An opened and structurally checked artifact whose objects are not yet built."""

    manifest: dict[str, Any]
    graph: GraphReader
    container: ContainerReader

    def untrusted(self, policy: TrustPolicy) -> list[str]:
        """Return the names in the graph that ``policy`` refuses."""
        with _bad_file_errors():
            self.graph.check_references()
            return policy.untrusted(self.graph.required_globals())

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready report of the artifact, building nothing."""
        with _bad_file_errors():
            self.graph.check_references()
            return describe(self.graph, self.manifest, self.container.file_size)

    def construct(self, policy: TrustPolicy, *, mmap: bool = False) -> Any:
        """Audit against ``policy`` and build the root object."""
        with _bad_file_errors():
            return self.graph.construct(policy, mmap=mmap)


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
        try:
            container = ContainerReader(fh, limits=limits)
            doc = parse_json(container.read_bytes(GRAPH, limits.graph), GRAPH, strict_keys=False)
            graph = GraphReader(doc, REGISTRY, container, limits)
        except (SkvaultError, OSError, MemoryError):
            raise
        except Exception as exc:  # anything else a hostile file provokes is still a bad file
            raise FormatError(f"malformed .skv file: {exc!r}") from None
        try:
            yield Artifact(container.manifest, graph, container)
        finally:
            container.close()


def write_artifact(obj: Any, file: FileLike, *, compress: object = None) -> None:
    """Write ``obj`` as a ``.skv`` artifact to a path (atomically) or a binary file object."""
    with atomic_output(file) as fh:
        writer = ContainerWriter(fh, compress)
        try:
            graph = GraphWriter(REGISTRY, writer, DEFAULT_LIMITS.depth)
            root = graph.value(obj, "")
            data = json.dumps(
                graph.graph(root), separators=(",", ":"), allow_nan=False, ensure_ascii=False
            ).encode("utf-8")
            writer.add_bytes(GRAPH, data, deflate=True)
            writer.close()
        except BaseException:
            writer.abort()
            raise
