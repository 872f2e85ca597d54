"""The training code: the text of a file, module or function, and its git state."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tokenize
import types
from pathlib import Path
from typing import Any

from ._environment import without_credentials

__all__ = ["git_info", "main_script", "source_record"]

_GIT_TIMEOUT = 10.0  # seconds per git command; a hung git must not hang a dump for long


def source_record(source: Any) -> dict[str, Any]:
    """Return the ``source`` section for a file path, a module or a function.

    Raises
    ------
    FileNotFoundError
        If a path names no file.
    TypeError
        If ``source`` is none of a path, a module or a function.
    ValueError
        If the source text of a module or function cannot be read (defined interactively, or
        compiled code without a ``.py`` file).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fsdecode(os.fspath(source)))
        if not path.is_file():
            raise FileNotFoundError(f"source= names no file: {str(path)!r}")
        return _file_record("file", path)
    if isinstance(source, types.ModuleType):
        kind, name = "module", source.__name__
    elif isinstance(source, (types.FunctionType, types.MethodType)):
        kind = "function"
        name = f"{source.__module__}.{source.__qualname__}"
    else:
        raise TypeError(
            f"source must be a file path, a module or a function, not {type(source).__name__}"
        )
    try:
        text = inspect.getsource(source)
        filename = inspect.getsourcefile(source)
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot read the source code of {name}: {exc}") from exc
    where = Path(filename).parent if filename else None
    return {"kind": kind, "name": name, "text": text, "git": _git_near(where, filename)}


def main_script() -> dict[str, Any] | None:
    """Return the ``source`` section for the running ``__main__`` script, or None.

    None in interactive sessions and notebooks (no script file), for ``python -c``, and when the
    script is a tool installed in the environment (such as the ``pytest`` entry point or a
    module run with ``-m`` from site-packages) rather than the user's code.
    """
    main = sys.modules.get("__main__")
    filename = getattr(main, "__file__", None)
    if not isinstance(filename, str) or hasattr(sys, "ps1") or sys.flags.interactive:
        return None
    path = Path(filename).resolve()
    if not path.is_file() or _installed(path):
        return None
    return _file_record("main", path)


def _installed(path: Path) -> bool:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for prefix in prefixes:
        try:
            path.relative_to(Path(prefix).resolve())
        except ValueError:
            continue
        return True
    return False


def _file_record(kind: str, path: Path) -> dict[str, Any]:
    path = path.resolve()
    if path.suffix == ".py":
        with tokenize.open(path) as fh:  # honours a PEP 263 coding line
            text = fh.read()
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    return {"kind": kind, "name": str(path), "text": text, "git": _git_near(path.parent, path)}


def _git_near(folder: Path | None, file: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    if folder is None or not folder.is_dir():
        return None
    return git_info(folder, None if file is None else Path(file))


def git_info(folder: Path, file: Path | None = None) -> dict[str, Any] | None:
    """Return commit, branch, remote and dirty flag of the git work tree holding ``folder``.

    None when git is not installed, ``folder`` is not in a work tree, or git fails. ``dirty`` is
    true when tracked files differ from the commit, or when ``file`` itself is not tracked (the
    commit then does not hold the code that ran). The remote is the upstream's remote, else
    ``origin``, else the first one, with any credentials removed from its URL.
    """
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = branch = upstream = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line.startswith("# branch.upstream "):
            upstream = line.split(" ", 2)[2].partition("/")[0]
        elif line and not line.startswith("#"):
            dirty = True
    if file is not None and not dirty:
        tracked = _git(folder, "ls-files", "--error-unmatch", "--", str(file))
        dirty = tracked is None
    return {"commit": commit, "branch": branch, "remote": _remote(folder, upstream), "dirty": dirty}


def _remote(folder: Path, preferred: str | None) -> str | None:
    listing = _git(folder, "config", "--get-regexp", r"^remote\..*\.url$")
    if not listing:
        return None
    urls = {}
    for line in listing.splitlines():
        key, _, url = line.partition(" ")
        urls[key[len("remote.") : -len(".url")]] = url.strip()
    for name in (preferred, "origin"):
        if name in urls:
            return without_credentials(urls[name])
    return without_credentials(next(iter(urls.values())))


def _git(folder: Path, *args: str) -> str | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")  # read only: take no index lock
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
