"""The security corpus: malicious legacy files are flagged by the audit and refused by load/convert.

Every sample of ``_corpus.SAMPLES`` is generated at test time (nothing hostile is committed) and
carries a harmless payload that would create a marker file. For each sample:

1. ``test_control_payload_runs``: the payload is real. One subprocess per session writes its own
   copy of the corpus into a fresh directory and opens every sample with the plain, unsafe loader
   (``pickle.load``, ``joblib.load``, ``numpy.load(allow_pickle=True)``, ``skops.io.load`` trusting
   the names it lists, ``skvault.load`` trusting them for ``.skv``), then the marker must exist.
   Reference-only samples (never run: pip, pty, a browser; or not runnable on this Python) give
   their reason in the table.
2. ``test_audit_flags``: ``skvault.audit`` reports the file unsafe and lists the expected names
   with the expected classification, or the problem with the stream.
3. ``test_load_refuses`` / ``test_convert_refuses``: ``skvault.load`` (with ``allow_pickle=True``
   for pickle-based files) and ``skvault.convert`` raise skvault's own errors; convert leaves no
   output behind.
4. The marker never appears: checked after each of those calls, and once more at the end.
"""

from __future__ import annotations

import _compat_pickle
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import skvault
from skvault.errors import PickleNotAllowedError, SkvaultError, UntrustedTypeError

from . import _corpus
from ._corpus import SAMPLES, Corpus, Sample

PICKLE_BASED = {"pickle", "joblib", "npy"}
CONTROLLED = [s for s in SAMPLES if s.control is not None]


def _ids(samples: list[Sample]) -> list[str]:
    return [s.id for s in samples]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The corpus the skvault calls are made on (its markers must never appear)."""
    return _corpus.write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def control(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run every sample's unsafe loader once, in one subprocess with its own corpus copy."""
    root = tmp_path_factory.mktemp("control")
    # no display and no $BROWSER: webbrowser can only find the "touch" browser a sample names
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    proc = subprocess.run(
        [sys.executable, _corpus.__file__, "control", str(root)],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / "control.json").read_text())


def _qualified(module: str, name: str) -> str:
    """``module.name`` with Python 2 names mapped as pickle maps them (``__builtin__``...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _raised(call: Callable[[], object]) -> Exception | None:
    """Run ``call``; return the exception it raised, or None when it returned."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


def _assert_skvault_error(exc: Exception | None, what: str) -> None:
    assert exc is not None, f"{what} accepted the file"
    assert isinstance(exc, SkvaultError), f"{what} raised a non-skvault error: {exc!r}"


# -- the table itself --------------------------------------------------------------------------


def test_corpus_table_is_complete():
    ids = _ids(SAMPLES)
    assert len(ids) == len(set(ids))
    assert len(SAMPLES) >= 40
    assert len(CONTROLLED) >= 40
    for sample in SAMPLES:
        assert sample.flags or sample.problem, sample.id
        assert (sample.control is None) == bool(sample.reason), sample.id
    assert {s.kind for s in SAMPLES} == {"pickle", "joblib", "npy", "skops", "skv"}


# -- 1. the payloads are real --------------------------------------------------------------------


@pytest.mark.parametrize("sample", CONTROLLED, ids=_ids(CONTROLLED))
def test_control_payload_runs(sample: Sample, control: dict[str, dict[str, Any]]):
    result = control[sample.id]
    assert result["marker"], (
        f"{sample.control} did not run the payload; it raised {result['error']}"
    )


# -- 2. the audit flags every sample -------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_audit_flags(sample: Sample, corpus: Corpus):
    report = skvault.audit(corpus.path(sample))
    assert not corpus.marker(sample).exists()
    assert report.safe is False
    listed: dict[str, set[str]] = {}
    for ref in report.references:
        listed.setdefault(_qualified(ref.module, ref.name), set()).add(ref.classification)
    for flag in sample.flags:
        assert flag.qualified in listed, f"{flag.qualified} not listed; listed: {sorted(listed)}"
        assert listed[flag.qualified] <= flag.allowed, (flag.qualified, listed[flag.qualified])
    if sample.problem:
        assert report.problems, "the broken stream is not reported as a problem"


# -- 3. load and convert refuse every sample -----------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_load_refuses(sample: Sample, corpus: Corpus):
    path = corpus.path(sample)
    plain = _raised(lambda: skvault.load(path))
    restricted = None
    if sample.kind in PICKLE_BASED:
        restricted = _raised(lambda: skvault.load(path, allow_pickle=True))
    assert not corpus.marker(sample).exists(), "the payload ran"
    _assert_skvault_error(plain, "load")
    if sample.kind in ("skv", "skops"):
        # the names are read before anything is built: the error lists every refused one
        assert isinstance(plain, UntrustedTypeError), repr(plain)
        assert {f.qualified for f in sample.flags} <= set(plain.types), plain.types
    if sample.kind in PICKLE_BASED:
        if sample.kind != "npy":
            assert isinstance(plain, PickleNotAllowedError), repr(plain)
        _assert_skvault_error(restricted, "load(allow_pickle=True)")


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_convert_refuses(sample: Sample, corpus: Corpus, tmp_path: Path):
    out = tmp_path / "out.skv"
    exc = _raised(lambda: skvault.convert(corpus.path(sample), out))
    assert not corpus.marker(sample).exists(), "the payload ran"
    _assert_skvault_error(exc, "convert")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "convert left files behind"


# -- the command line, on the whole corpus at once -----------------------------------------------


def test_cli_audit_flags_every_file(corpus: Corpus):
    files = sorted(str(corpus.path(s)) for s in SAMPLES)
    proc = subprocess.run(
        [sys.executable, "-m", "skvault", "audit", *files, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["safe"] is False
    verdicts = {str(Path(report["file"]).resolve()): report["safe"] for report in doc["files"]}
    assert sorted(verdicts) == sorted(str(Path(f).resolve()) for f in files)
    assert [f for f, safe in verdicts.items() if safe is not False] == []
    assert [s.id for s in SAMPLES if corpus.marker(s).exists()] == []


# -- 4. no payload ran, whatever the order the tests ran in ------------------------------------


def test_no_marker_appeared(corpus: Corpus):
    # last in the file: payloads that start a process without waiting would show up here
    assert sorted(p.name for p in (corpus.root / "markers").iterdir()) == []
