"""One verdict for every global a legacy file names: shared by the audit and the unpickler.

A pickle names globals as ``(module, name)`` pairs. The static audit (``skvault audit``) and the
restricted unpickler (``skvault convert``, ``load(..., allow_pickle=True)``) both ask this module,
so what the audit calls safe is exactly what the unpickler will resolve:

* ``safe``: on skvault's default allow-list (the same data file ``.skv`` loading uses), or one of
  the reconstruction helpers that pickle, numpy, scikit-learn's Cython types and joblib write
  (:data:`PICKLE_HELPERS`). The unpickler calls a helper only through a checked wrapper that
  validates its arguments; the audit only needs the name.
* ``dangerous``: a known code-execution or file-access gadget, a name under a module that exists to
  run code, reach the operating system or load another pickle, or any dotted name (an attribute
  chain such as ``numpy`` + ``load.__globals__``, which protocol 4 resolves attribute by
  attribute).
* ``unknown``: everything else. Not refused because it is known to be harmful, but because nobody
  vouched for it: ``trusted=`` accepts it by exact name.

Names are first canonicalised the way the unpickler sees them: Python 2 names for protocols 0-2
(``__builtin__``, ``copy_reg``), numpy 1.x's ``numpy.core`` (now ``numpy._core``), and the modules
scikit-learn made private in 0.22-1.1. Each mapping is exact: the same object under its new name.
"""

from __future__ import annotations

import _compat_pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..format._trust import TrustPolicy, default_allowlist

__all__ = [
    "DANGEROUS_MODULES",
    "DANGEROUS_NAMES",
    "PICKLE_HELPERS",
    "Classification",
    "Verdict",
    "canonical",
    "classify",
]

Classification = Literal["safe", "unknown", "dangerous"]

_PYX_UNPICKLE = "__pyx_unpickle_"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Globals that pickles of ordinary scikit-learn, numpy and joblib objects reference but that are
# not values a .skv graph names: they rebuild objects. The unpickler calls each one only through a
# wrapper that checks its arguments (types, sizes, that a class argument is itself allowed).
PICKLE_HELPERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("copyreg", "_reconstructor"),  # protocols 0-1 objects: base.__new__(cls, state)
        ("copyreg", "__newobj__"),
        ("_codecs", "encode"),  # protocols 0-2 bytes: encode(str, "latin1")
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma", "MaskedArray"),  # the class _mareconstruct is given (numpy 2 names it so)
        ("numpy.ma.core", "MaskedArray"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._generator", "Generator"),
        ("sklearn.metrics._dist_metrics", "newObj"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.neighbors._ball_tree", "newObj"),
        ("collections", "OrderedDict"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
    }
)

# Modules whose purpose is running code, reaching the OS or the network, or loading other
# serialized objects. A name under any of them (or a submodule) is dangerous.
DANGEROUS_MODULES: frozenset[str] = frozenset(
    {
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "importlib",
        "_imp",
        "imp",
        "pkgutil",
        "runpy",
        "zipimport",
        "ctypes",
        "_ctypes",
        "cffi",
        "pip",
        "setuptools",
        "distutils",
        "timeit",
        "cProfile",
        "profile",
        "_lsprof",
        "trace",
        "pdb",
        "bdb",
        "pty",
        "tty",
        "webbrowser",
        "code",
        "codeop",
        "socket",
        "_socket",
        "ssl",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "asyncio",
        "multiprocessing",
        "_multiprocessing",
        "concurrent",
        "threading",
        "_thread",
        "signal",
        "shutil",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "_io",
        "fileinput",
        "shelve",
        "dbm",
        "pickle",
        "_pickle",
        "pickletools",
        "copyreg",
        "marshal",
        "dill",
        "cloudpickle",
        "joblib",
        "torch",
        "tensorflow",
        "keras",
        "types",
        "inspect",
        "gc",
        "atexit",
        "site",
        "sysconfig",
        "platform",
        "ensurepip",
        "venv",
        "idlelib",
        "tkinter",
        "turtle",
        "xmlrpc",
        "logging",
        "unittest",
        "doctest",
        "imaplib",
        "poplib",
        "nntplib",
        "mailbox",
        "operator",
        "_operator",
        "functools",
        "_functools",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
        "numpy.lib.npyio",
        "numpy.lib.format",
        "pandas.io",
        "scipy.io",
        "scipy.weave",
        "sklearn.externals",
        "sklearn.utils._testing",
        "skops",
    }
)

# Names that are gadgets even though their module is otherwise harmless.
DANGEROUS_NAMES: frozenset[tuple[str, str]] = frozenset(
    {
        *(
            ("builtins", name)
            for name in (
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
                "object.__subclasses__",
                "__build_class__",
                "print",
            )
        ),
        ("numpy", "load"),
        ("numpy", "loadtxt"),
        ("numpy", "genfromtxt"),
        ("numpy", "fromfile"),
        ("numpy", "memmap"),
        ("numpy", "save"),
        ("numpy", "savez"),
        ("numpy", "savetxt"),
        ("numpy", "tofile"),
        ("pandas", "read_pickle"),
        ("pandas", "eval"),
        ("pandas", "read_csv"),
        ("scipy.sparse", "load_npz"),
        ("sklearn.datasets", "load_svmlight_file"),
    }
)

# Exact module renames: the object behind the old name is the object behind the new one.
_MODULE_RENAMES: dict[str, str] = {
    "numpy.core": "numpy._core",
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "numpy.core._multiarray_umath": "numpy._core._multiarray_umath",
    "numpy.core.umath": "numpy._core.umath",
    # scikit-learn 0.22 made its implementation modules private; 1.1 moved the distance metrics
    "sklearn.neighbors.dist_metrics": "sklearn.metrics._dist_metrics",
    "sklearn.neighbors._dist_metrics": "sklearn.metrics._dist_metrics",
    "sklearn.neighbors.kd_tree": "sklearn.neighbors._kd_tree",
    "sklearn.neighbors.ball_tree": "sklearn.neighbors._ball_tree",
    "sklearn.tree.tree": "sklearn.tree._classes",
    "sklearn.ensemble.forest": "sklearn.ensemble._forest",
    "sklearn.ensemble.gradient_boosting": "sklearn.ensemble._gb",
    "sklearn.ensemble.weight_boosting": "sklearn.ensemble._weight_boosting",
    "sklearn.linear_model.logistic": "sklearn.linear_model._logistic",
    "sklearn.linear_model.base": "sklearn.linear_model._base",
    "sklearn.linear_model.ridge": "sklearn.linear_model._ridge",
    "sklearn.linear_model.coordinate_descent": "sklearn.linear_model._coordinate_descent",
    "sklearn.linear_model.stochastic_gradient": "sklearn.linear_model._stochastic_gradient",
    "sklearn.svm.classes": "sklearn.svm._classes",
    "sklearn.preprocessing.data": "sklearn.preprocessing._data",
    "sklearn.preprocessing.label": "sklearn.preprocessing._label",
    "sklearn.preprocessing._encoders": "sklearn.preprocessing._encoders",
    "sklearn.naive_bayes": "sklearn.naive_bayes",
    "sklearn.neighbors.classification": "sklearn.neighbors._classification",
    "sklearn.neighbors.regression": "sklearn.neighbors._regression",
    "sklearn.cluster.k_means_": "sklearn.cluster._kmeans",
    "sklearn.decomposition.pca": "sklearn.decomposition._pca",
}


@dataclass(frozen=True)
class Verdict:
    """The classification of one ``(module, name)`` pair, after canonicalisation.

    Attributes
    ----------
    module, name : str
        The canonical pair the unpickler would resolve.
    classification : {"safe", "unknown", "dangerous"}
    reason : str
        One line for people: why the pair got its classification.
    """

    module: str
    name: str
    classification: Classification
    reason: str

    @property
    def qualified(self) -> str:
        """``module.name``, the form ``trusted=`` takes."""
        return f"{self.module}.{self.name}"


def canonical(module: str, name: str, protocol: int = 5) -> tuple[str, str]:
    """Return the ``(module, name)`` pair an unpickler resolves for a name read from a file.

    Parameters
    ----------
    module, name : str
        As written in the file (``GLOBAL``, ``STACK_GLOBAL``, ``INST``).
    protocol : int
        The pickle's protocol; below 3, Python 2 names are mapped as :mod:`pickle` does
        (``fix_imports=True``).
    """
    if protocol < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return _MODULE_RENAMES.get(module, module), name


def _under(module: str, roots: Iterable[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def classify(
    module: str, name: str, protocol: int = 5, policy: TrustPolicy | None = None
) -> Verdict:
    """Classify a global named by a legacy file.

    Parameters
    ----------
    module, name : str
        As written in the file.
    protocol : int
        The pickle protocol the name was read under (see :func:`canonical`).
    policy : TrustPolicy, optional
        Names the caller trusts in addition to the default allow-list; a trusted ``unknown`` name
        becomes ``safe``. A ``dangerous`` name stays dangerous whatever the caller trusts:
        trusting ``os.system`` by name is never what anyone meant.

    Returns
    -------
    Verdict
    """
    if not isinstance(module, str) or not isinstance(name, str):
        return Verdict(str(module), str(name), "dangerous", "the name is not a string")
    module, name = canonical(module, name, protocol)
    if not _MODULE.fullmatch(module) or len(module) > 200 or len(name) > 200:
        return Verdict(module, name, "dangerous", "malformed module name")
    if not _IDENTIFIER.fullmatch(name):
        # pickle resolves "a.b" attribute by attribute: an attribute chain, not a name
        return Verdict(module, name, "dangerous", "dotted or malformed name (attribute chain)")
    qualified = f"{module}.{name}"
    if (module, name) in DANGEROUS_NAMES:
        return Verdict(module, name, "dangerous", "known code-execution or file-access gadget")
    # the reviewed lists win over the module rule: copyreg._reconstructor is a helper even though
    # copyreg as a whole is not
    if (module, name) in PICKLE_HELPERS:
        return Verdict(module, name, "safe", "pickle reconstruction helper, arguments checked")
    if name.startswith(_PYX_UNPICKLE) and f"{module}.{name[len(_PYX_UNPICKLE) :]}" in (
        default_allowlist()
    ):
        # Cython's pickle helper of an allowed class (scikit-learn's loss objects): the
        # unpickler never calls it, it builds exactly that class and validates its state
        return Verdict(module, name, "safe", "Cython unpickle helper of an allowed class")
    if qualified in default_allowlist():
        return Verdict(module, name, "safe", "on the default allow-list")
    if _under(qualified, DANGEROUS_MODULES):
        return Verdict(module, name, "dangerous", "name under a module that runs code or does I/O")
    if policy is not None and qualified in policy:
        return Verdict(module, name, "safe", "trusted by the caller")
    return Verdict(module, name, "unknown", "not on the allow-list")
