"""Requirement names and PEP 508 environment markers, without the ``packaging`` library.

skvault's core dependencies are numpy, scipy and scikit-learn only, so the ``requires`` lists of
the recorded environment cannot rely on ``packaging`` being importable. Requirement strings in
installed metadata are machine-written and simple; this module takes the name of each and
evaluates its marker against the running interpreter, with ``extra`` set to ``""`` (a requirement
that only an extra pulls in is left out, as pip does for a plain install). A marker this parser
cannot read is handed to ``packaging`` when it is importable; failing that, the caller decides.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
from typing import Any

__all__ = ["MarkerError", "canonical_name", "evaluate_marker", "requirement_name"]

_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'[^']*'|"[^"]*")
      | (?P<op>===|==|!=|<=|>=|~=|<|>|\(|\)|not\s+in\b|in\b|and\b|or\b)
      | (?P<var>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_VERSION_VARS = frozenset({"python_version", "python_full_version", "implementation_version"})
_COMPARISONS = frozenset({"===", "==", "!=", "<=", ">=", "~=", "<", ">", "in", "not in"})
_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(.*)$")
# most markers in installed metadata only select an extra: false without one, and common
_EXTRA_ONLY = re.compile(r"""\bextra\s*==\s*(['"])[^'"]+\1""")
_OR = re.compile(r"\bor\b")


class MarkerError(ValueError):
    """A marker this minimal parser does not understand."""


def canonical_name(name: str) -> str:
    """PEP 503 normalized form of a distribution name: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> tuple[str, str | None]:
    """Split a requirement string into its canonical name and its marker (None if it has none)."""
    match = _NAME.match(requirement)
    if match is None:
        raise MarkerError(f"no distribution name in requirement {requirement!r}")
    _, sep, marker = requirement.partition(";")
    return canonical_name(match.group(1)), (marker.strip() or None) if sep else None


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, str]:
    impl = sys.implementation
    version = f"{impl.version.major}.{impl.version.minor}.{impl.version.micro}"
    if impl.version.releaselevel != "final":
        version += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
        "extra": "",
    }


@functools.lru_cache(maxsize=1024)
def evaluate_marker(marker: str) -> bool:
    """Return whether ``marker`` holds in the running interpreter (``extra`` is ``""``).

    Raises `MarkerError` when neither this parser nor ``packaging`` (if importable) can read it.
    """
    if _EXTRA_ONLY.search(marker) and not _OR.search(marker):
        return False  # a conjunction with ``extra == "name"`` while extra is ""
    try:
        return _Parser(marker, _environment()).parse()
    except MarkerError:
        try:
            from packaging.markers import InvalidMarker, Marker
        except ImportError:
            raise
        try:
            return bool(Marker(marker).evaluate({"extra": ""}))
        except (InvalidMarker, ValueError, TypeError) as exc:
            raise MarkerError(f"cannot evaluate marker {marker!r}: {exc}") from exc


class _Parser:
    """Recursive descent over PEP 508's marker grammar (``or`` binds looser than ``and``)."""

    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text = text
        self.env = env
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise MarkerError(f"cannot parse marker {text!r} at {text[pos:]!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, re.sub(r"\s+", " ", match.group(kind))))
            pos = match.end()
        return tokens

    def parse(self) -> bool:
        result = self._or()
        if self.pos != len(self.tokens):
            raise MarkerError(f"unexpected {self.tokens[self.pos][1]!r} in marker {self.text!r}")
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise MarkerError(f"marker {self.text!r} ends too early")
        self.pos += 1
        return token

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == ("op", "or"):
            self.pos += 1
            right = self._and()  # evaluate both sides: a syntax error must not hide
            result = result or right
        return result

    def _and(self) -> bool:
        result = self._atom()
        while self._peek() == ("op", "and"):
            self.pos += 1
            right = self._atom()
            result = result and right
        return result

    def _atom(self) -> bool:
        if self._peek() == ("op", "("):
            self.pos += 1
            result = self._or()
            if self._take() != ("op", ")"):
                raise MarkerError(f"unbalanced parenthesis in marker {self.text!r}")
            return result
        left, left_var = self._value()
        kind, op = self._take()
        if kind != "op" or op not in _COMPARISONS:
            raise MarkerError(f"expected a comparison in marker {self.text!r}, found {op!r}")
        right, right_var = self._value()
        versions = left_var in _VERSION_VARS or right_var in _VERSION_VARS
        return _compare(left, op, right, versions=versions)

    def _value(self) -> tuple[str, str | None]:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1], None
        if kind == "var":
            if text not in self.env:
                raise MarkerError(f"unknown marker variable {text!r} in {self.text!r}")
            return self.env[text], text
        raise MarkerError(f"expected a value in marker {self.text!r}, found {text!r}")


def _release(version: str) -> tuple[tuple[int, ...], str]:
    match = _RELEASE.match(version)
    if match is None:
        raise MarkerError(f"not a version: {version!r}")
    return tuple(int(p) for p in match.group(1).split(".")), match.group(2).strip()


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def _compare(left: str, op: str, right: str, *, versions: bool) -> bool:
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    if op == "===":
        return left == right
    if not versions:
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        raise MarkerError(f"cannot order the strings {left!r} and {right!r}")
    if op in ("==", "!=") and right.endswith(".*"):
        prefix = _release(right[:-2])[0]
        equal = _release(left)[0][: len(prefix)] == prefix
        return equal if op == "==" else not equal
    (lv, lrest), (rv, rrest) = _release(left), _release(right)
    if lrest or rrest:
        # pre-releases and local versions need packaging's full ordering rules
        raise MarkerError(f"cannot compare versions {left!r} and {right!r}")
    a, b = _padded(lv, rv)
    result: Any
    if op == "==":
        result = a == b
    elif op == "!=":
        result = a != b
    elif op == "<":
        result = a < b
    elif op == "<=":
        result = a <= b
    elif op == ">":
        result = a > b
    elif op == ">=":
        result = a >= b
    else:  # "~=": at least this version, within the same release series
        if len(rv) < 2:
            raise MarkerError(f"~= needs at least two release numbers, not {right!r}")
        a, b = _padded(lv, rv)
        result = a >= b and lv[: len(rv) - 1] == rv[:-1]
    return bool(result)
