"""The minimal marker evaluator (used when ``packaging`` is absent) agrees with ``packaging``."""

from __future__ import annotations

import platform
import sys

import pytest

from skvault.provenance._markers import (
    MarkerError,
    _environment,
    _Parser,
    canonical_name,
    evaluate_marker,
    requirement_name,
)

markers = pytest.importorskip("packaging.markers")

PY = ".".join(platform.python_version_tuple()[:2])
MAJOR, MINOR = sys.version_info[:2]

CASES = [
    f'python_version >= "{PY}"',
    f'python_version > "{PY}"',
    f'python_version < "{MAJOR}.{MINOR + 1}"',
    f'python_version <= "{MAJOR}.{MINOR - 1}"',
    f'python_version == "{PY}"',
    f'python_version != "{PY}"',
    f'python_version == "{MAJOR}.*"',
    f'python_version ~= "{MAJOR}.{MINOR - 1}"',
    f'python_full_version >= "{platform.python_version()}"',
    'python_version < "3.8"',
    f"sys_platform == '{sys.platform}'",
    'sys_platform == "win32"',
    'sys_platform != "win32" and platform_machine != "nonexistent"',
    'os_name == "nt" or python_version >= "3"',
    '(os_name == "nt" or sys_platform == "darwin") and python_version >= "3"',
    'platform_python_implementation == "CPython"',
    'implementation_name == "pypy"',
    '"linux" in sys_platform',
    '"win" not in sys_platform',
    'extra == "test"',
    'python_version >= "3" and extra == "docs"',
    'extra == "test" or python_version >= "3"',
    'platform_system == "Windows"',
    f'platform_machine == "{platform.machine()}"',
]


@pytest.mark.parametrize("marker", CASES)
def test_agrees_with_packaging(marker):
    expected = markers.Marker(marker).evaluate({"extra": ""})
    assert _Parser(marker, _environment()).parse() is expected
    assert evaluate_marker(marker) is expected  # with the shortcut for extras


@pytest.mark.parametrize(
    "marker",
    ['python_version >= "3.13.0rc1"', "unknown_variable == '1'", "python_version >= ", "(("],
)
def test_refuses_what_it_cannot_read(marker):
    with pytest.raises(MarkerError):
        _Parser(marker, _environment()).parse()


@pytest.mark.parametrize(
    ("requirement", "name", "marker"),
    [
        ("numpy>=1.19.5", "numpy", None),
        ("Typing_Extensions (>=4.0)", "typing-extensions", None),
        ("pytest[testing]>=7; extra == 'test'", "pytest", "extra == 'test'"),
        ('tomli>=1.1.0 ; python_version < "3.11"', "tomli", 'python_version < "3.11"'),
        ("zope.interface", "zope-interface", None),
    ],
)
def test_requirement_names(requirement, name, marker):
    assert requirement_name(requirement) == (name, marker)


def test_canonical_name():
    assert canonical_name("Scikit_Learn") == "scikit-learn"
    assert canonical_name("zope..Interface") == "zope-interface"
