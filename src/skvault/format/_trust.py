"""The trust policy: which globals a file may name, and the only place that imports them.

The default allow-list is data (``allowlist.txt`` beside this module), reviewed like code. A name
is trusted when it is on that list or in the caller's ``trusted=`` list, compared as exact strings
of the form ``module.name``. Names are checked *before* anything is imported, and the object found
after the import must be the one the name claims to be.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterable
from functools import lru_cache
from importlib import resources

from ..errors import FormatError, UntrustedTypeError

__all__ = ["TrustPolicy", "default_allowlist", "is_valid_name", "resolve"]

# module path of dotted identifiers, then exactly one plain identifier: no nested qualnames,
# no attribute chains (``os.path.join`` names module ``os.path``, never ``os`` + ``path.join``)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_MAX_NAME = 300


def is_valid_name(name: object) -> bool:
    """Return whether ``name`` is a well-formed fully qualified ``module.name`` string."""
    return isinstance(name, str) and len(name) <= _MAX_NAME and _NAME.fullmatch(name) is not None


@lru_cache(maxsize=1)
def default_allowlist() -> frozenset[str]:
    """Return the reviewed default allow-list as a frozen set of ``module.name`` strings."""
    text = resources.files(__package__).joinpath("allowlist.txt").read_text("utf-8")
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            if not is_valid_name(line):  # pragma: no cover - guarded by a test on the data file
                raise RuntimeError(f"malformed allow-list entry: {line!r}")
            names.add(line)
    return frozenset(names)


class TrustPolicy:
    """The set of names one load may resolve: the default list plus the caller's additions.

    Parameters
    ----------
    trusted : iterable of str or None
        Extra fully qualified names to accept. ``True`` (blanket trust) is refused on purpose.
    """

    def __init__(self, trusted: Iterable[str] | None = None) -> None:
        if trusted is None:
            extra: frozenset[str] = frozenset()
        elif isinstance(trusted, bool) or not isinstance(trusted, Iterable):
            raise TypeError(
                "trusted must be a list of fully qualified names such as "
                "['mypackage.MyEstimator']; skvault has no blanket 'trust everything'"
            )
        else:
            items = [trusted] if isinstance(trusted, str) else list(trusted)
            bad = [t for t in items if not is_valid_name(t)]
            if bad:
                raise TypeError(f"trusted names must be 'module.name' strings, got {bad!r}")
            extra = frozenset(items)
        self._names = default_allowlist() | extra

    @classmethod
    def nothing(cls) -> TrustPolicy:
        """Return a policy that trusts no name at all (for plain-data graphs)."""
        policy = cls()
        policy._names = frozenset()
        return policy

    def untrusted(self, names: Collection[str]) -> list[str]:
        """Return the sorted names of ``names`` that this policy refuses."""
        return sorted(n for n in set(names) if n not in self._names)

    def check(self, names: Collection[str]) -> None:
        """Raise `UntrustedTypeError` listing every refused name, if any."""
        refused = self.untrusted(names)
        if refused:
            raise UntrustedTypeError(refused)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def missing_name_hint(module: str) -> str:
    """Say why a name a file uses may be missing from this environment."""
    if module == "__main__":
        return (
            "it was defined in the script that saved the file: define it in the loading script "
            "too, or better, move it into a module both can import"
        )
    return "the file was probably written with other package versions"


def resolve(name: str, policy: TrustPolicy) -> object:
    """Import and return the object ``name`` refers to, if ``policy`` trusts it.

    The trust check happens before the import. The import goes through the module path only, and
    the object must be found directly in that module's namespace: no attribute chains.
    """
    if not is_valid_name(name):
        raise FormatError(f"malformed type name {name!r}")
    if name not in policy:
        raise UntrustedTypeError([name])
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return vars(module)[attr]
    except (ImportError, KeyError) as exc:
        raise FormatError(
            f"{name} is trusted but cannot be found in this environment ({exc!r}); "
            + missing_name_hint(module_name)
        ) from exc
