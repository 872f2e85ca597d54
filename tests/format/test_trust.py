"""The trust policy and its data: the default allow-list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import skvault
from skvault.format import default_allowlist

ROOT = Path(__file__).resolve().parents[2]

# modules whose names must never be trusted by default: code execution, imports, I/O, pickling
FORBIDDEN_MODULES = {
    "builtins": {
        "eval",
        "exec",
        "compile",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "open",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "exit",
        "quit",
        "help",
        "memoryview",
        "type",
        "super",
        "classmethod",
        "staticmethod",
        "property",
    },
}
FORBIDDEN_PREFIXES = (
    "os",
    "posix",
    "nt",
    "sys",
    "subprocess",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "shutil",
    "socket",
    "ctypes",
    "runpy",
    "code",
    "codeop",
    "pty",
    "webbrowser",
    "operator",
    "functools",
    "joblib",
    "pkgutil",
    "timeit",
    "cProfile",
    "profile",
    "io",
    "tempfile",
    "numpy.lib",
    "numpy.f2py",
    "numpy.testing",
    "numpy.distutils",
    "scipy.io",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "sklearn.externals",
    "pandas",
)
FORBIDDEN_NUMPY = {
    "load",
    "save",
    "savez",
    "fromfile",
    "tofile",
    "frompyfunc",
    "vectorize",
    "loadtxt",
    "savetxt",
    "genfromtxt",
    "memmap",
    "piecewise",
    "apply_along_axis",
    "apply_over_axes",
    "fromregex",
    "DataSource",
}


def test_allowlist_is_up_to_date_with_the_pinned_versions():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_allowlist.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "src/skvault/format/allowlist.txt differs from what tools/generate_allowlist.py makes "
        "for the installed versions: regenerate it and review the diff"
    )


def test_allowlist_only_names_reviewed_packages():
    names = default_allowlist()
    assert len(names) > 500
    roots = {name.split(".", 1)[0] for name in names}
    assert roots <= {"builtins", "math", "numpy", "scipy", "sklearn"}


def test_allowlist_has_no_dangerous_names():
    names = default_allowlist()
    for name in names:
        module, _, attr = name.rpartition(".")
        assert not any(module == p or module.startswith(p + ".") for p in FORBIDDEN_PREFIXES), name
        assert attr not in FORBIDDEN_MODULES.get(module, set()), name
        if module == "numpy":
            assert attr not in FORBIDDEN_NUMPY, name
        assert not attr.startswith("__"), name


def test_core_types_are_trusted():
    names = default_allowlist()
    for name in (
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.model_selection._split.KFold",
        "sklearn.preprocessing._label.LabelEncoder",
        "scipy.sparse._csr.csr_matrix",
        "numpy.log1p",
        "numpy.float64",
    ):
        assert name in names, name


class _Local:
    pass


def test_user_types_need_explicit_trust():
    data = skvault.dumps({"x": _Local()})
    name = f"{__name__}._Local"
    assert skvault.get_untrusted_types(data) == [name]
    with pytest.raises(skvault.UntrustedTypeError) as info:
        skvault.loads(data)
    assert info.value.types == [name]
    assert isinstance(skvault.loads(data, trusted=[name])["x"], _Local)
    assert isinstance(skvault.loads(data, trusted=name)["x"], _Local)


def test_trusting_one_name_does_not_trust_its_module():
    data = skvault.dumps([_Local, _Local()])
    with pytest.raises(skvault.UntrustedTypeError):
        skvault.loads(data, trusted=[f"{__name__}._Other"])
