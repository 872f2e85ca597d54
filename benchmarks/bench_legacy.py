"""Benchmark ``skvault.audit`` against loading, picklescan and fickling on big legacy files.

Run from the repository root::

    .venv/bin/python benchmarks/bench_legacy.py            # full size (issue 4, section 5)
    .venv/bin/python benchmarks/bench_legacy.py --quick    # small smoke run

Two files are written to a temporary folder:

(a) a joblib file of about 1 GB that is mostly numpy arrays (a fitted estimator, four 256 MB
    arrays, then an ``OrderedDict`` after them), written by ``joblib.dump``;
(b) a pickle of about 9 million opcodes shaped like a real scikit-learn model: a fitted
    ``CountVectorizer`` whose ``vocabulary_`` maps 3 million distinct words to column indices
    (``pickle.dumps``, default protocol).

Every measurement runs in a fresh subprocess, so that its peak memory can be read: the child
imports the tool, records its peak RSS so far (``VmHWM`` in ``/proc/self/status``; the baseline:
interpreter and imports, including the estimator modules for the loaders), times the one call
(wall clock and CPU time), then records the peak again. The table shows the call's wall time,
its CPU time, the peak RSS and the growth over the baseline. The reference ("load") is
``pickle.load`` for the pickle and ``joblib.load`` for the joblib file.

The joblib file is audited cold (its pages dropped from the page cache with
``posix_fadvise(DONTNEED)`` first) and warm. Other processes on the machine skew the wall times;
the CPU times are steadier, and the ratios are computed from both.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from typing import Any

MB = 1 << 20

# what each child runs: (setup statement, timed expression); FILE is the path. The loaders
# import the estimator modules first, so the timed load does not include importing scikit-learn.
_TOOLS = {
    "pickle.load": (
        "import pickle, sklearn.feature_extraction.text",
        "pickle.load(open(FILE, 'rb'))",
    ),
    "joblib.load": ("import joblib, sklearn.linear_model", "joblib.load(FILE)"),
    "skvault audit": ("import skvault", "skvault.audit(FILE)"),
    "picklescan": ("from picklescan.scanner import scan_file_path", "scan_file_path(FILE)"),
    "fickling": ("import fickling", "fickling.scan_file(FILE, graceful=True)"),
}

_CHILD = r"""
import json, sys, time
FILE = sys.argv[1]
def hwm():
    # the peak RSS of this process image (VmHWM): unlike ru_maxrss it does not inherit the
    # parent's peak across fork and exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
{setup}
base = hwm()
t0, c0 = time.perf_counter(), time.process_time()
result = {expr}
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = hwm()
listed = None
if hasattr(result, "references"):
    listed = len(result.references)
    verdict = "safe" if result.safe else "not safe"
elif hasattr(result, "globals"):
    listed = len(result.globals)
    verdict = f"{{result.issues_count}} issues, scan_err={{result.scan_err}}"
elif hasattr(result, "severity"):
    verdict = str(result.severity)
else:
    verdict = "loaded"
print(json.dumps({{"wall": wall, "cpu": cpu, "base_kb": base, "peak_kb": peak,
                  "listed": listed, "verdict": verdict}}))
"""


def run_child(tool: str, path: str, timeout: float) -> dict[str, Any]:
    setup, expr = _TOOLS[tool]
    code = _CHILD.format(setup=setup, expr=expr)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, path],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last[:80]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def drop_cache(path: str) -> bool:
    """Evict the file's pages from the page cache (works without privileges for clean pages)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def measure(
    tool: str, path: str, repeat: int, timeout: float, cold: bool = False
) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        if cold:
            drop_cache(path)
        run = run_child(tool, path, timeout)
        if "error" in run:
            return run
        runs.append(run)
    best = min(runs, key=lambda r: r["wall"])
    return {
        **best,
        "wall_med": statistics.median(r["wall"] for r in runs),
        "cpu_med": statistics.median(r["cpu"] for r in runs),
        "runs": len(runs),
    }


# -- the files -----------------------------------------------------------------------------------


def write_joblib(path: str, gigabytes: float) -> None:
    import collections

    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.rand(200, 10)
    model = LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int))
    n = int(gigabytes * 1e9 / 8 / 4)
    arrays = [np.full(n, float(i)) for i in range(4)]
    # an object after the arrays: a name only a scanner that reads past raw array data lists
    after = collections.OrderedDict(a=1)
    joblib.dump({"model": model, "arrays": arrays, "after": after}, path)


def write_vocabulary_pickle(path: str, words: int) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    rng = random.Random(0)
    vocabulary: dict[str, int] = {}
    letters = string.ascii_lowercase
    while len(vocabulary) < words:
        word = "".join(rng.choices(letters, k=rng.randint(3, 12)))
        vocabulary.setdefault(word, len(vocabulary))
    vectorizer = CountVectorizer()
    vectorizer.fit(["alpha beta"])
    vectorizer.vocabulary_ = vocabulary
    with open(path, "wb") as fh:
        pickle.dump(vectorizer, fh)


def count_opcodes(path: str) -> int:
    import pickletools

    with open(path, "rb") as fh:
        return sum(1 for _ in pickletools.genops(fh))


# -- output --------------------------------------------------------------------------------------


def fmt(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{'':>9} {'':>9} {'':>9} {'':>9}  {run['error']}"
    peak = run["peak_kb"] / 1024
    grew = (run["peak_kb"] - run["base_kb"]) / 1024
    listed = "" if run["listed"] is None else f"{run['listed']} names; "
    return (
        f"{run['wall']:>8.2f}s {run['cpu']:>8.2f}s {peak:>7.0f}MB {grew:>7.0f}MB  "
        f"{listed}{run['verdict']}"
    )


def table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(f"\n{title}")
    print(f"  {'tool':<22} {'wall':>9} {'cpu':>9} {'peak RSS':>9} {'growth':>9}  result")
    for name, run in rows:
        print(f"  {name:<22} {fmt(run)}")


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    if "error" in a or "error" in b or not b[key]:
        return None
    return a[key] / b[key]


def show_ratio(label: str, value: float | None, target: float | None = None) -> bool:
    if value is None:
        print(f"  {label}: n/a")
        return True
    verdict = ""
    ok = True
    if target is not None:
        ok = value <= target
        verdict = f"  (target <= {target:g}: {'PASS' if ok else 'FAIL'})"
    print(f"  {label}: {value:.2f}{verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small files, a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast measurement")
    parser.add_argument("--dir", default=None, help="parent folder of the temporary files")
    args = parser.parse_args()
    gigabytes = 0.064 if args.quick else 1.0
    words = 300_000 if args.quick else 3_000_000
    timeout = 60.0 if args.quick else 150.0

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    ok = True
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        jl = os.path.join(tmp, "arrays.joblib")
        t = time.perf_counter()
        write_joblib(jl, gigabytes)
        print(
            f"\n(a) joblib file: {os.path.getsize(jl) / 1e9:.3f} GB, written in "
            f"{time.perf_counter() - t:.1f} s"
        )
        rows = [
            ("joblib.load", measure("joblib.load", jl, args.repeat, timeout)),
            ("skvault audit (cold)", measure("skvault audit", jl, args.repeat, timeout, True)),
            ("skvault audit (warm)", measure("skvault audit", jl, args.repeat, timeout)),
            ("picklescan", measure("picklescan", jl, 1, timeout)),
            ("fickling", measure("fickling", jl, 1, timeout)),
        ]
        table("(a) 1 GB joblib file, mostly arrays", rows)
        audit_cold, audit_warm = rows[1][1], rows[2][1]
        if "error" not in audit_cold:
            target = 2.0 if not args.quick else None
            worst = max(audit_cold["wall"], audit_warm.get("wall", 0))
            ok &= show_ratio("audit wall time, worst of cold and warm (s)", worst, target)
        ok &= show_ratio("audit / joblib.load (wall)", ratio(audit_warm, rows[0][1], "wall"))
        os.remove(jl)

        pk = os.path.join(tmp, "vocabulary.pkl")
        t = time.perf_counter()
        write_vocabulary_pickle(pk, words)
        print(
            f"\n(b) pickle: {os.path.getsize(pk) / 1e6:.1f} MB, written in "
            f"{time.perf_counter() - t:.1f} s; counting opcodes...",
            end="",
            flush=True,
        )
        print(f" {count_opcodes(pk):,} opcodes")
        rows = [
            ("pickle.load", measure("pickle.load", pk, args.repeat, timeout)),
            ("skvault audit", measure("skvault audit", pk, args.repeat, timeout)),
            ("picklescan", measure("picklescan", pk, 1, timeout)),
            ("fickling", measure("fickling", pk, 1, timeout)),
        ]
        table(f"(b) fitted CountVectorizer, {words:,}-word vocabulary", rows)
        load, audit, scan = rows[0][1], rows[1][1], rows[2][1]
        target = None if args.quick else 2.0
        ok &= show_ratio(
            "audit / pickle.load (wall, best runs)", ratio(audit, load, "wall"), target
        )
        show_ratio("audit / pickle.load (cpu, best runs)", ratio(audit, load, "cpu"))
        show_ratio("audit / pickle.load (wall, medians)", ratio(audit, load, "wall_med"))
        if "error" not in audit:
            peak = audit["peak_kb"] / 1024
            ok &= show_ratio("audit peak RSS (MB)", peak, None if args.quick else 300)
        show_ratio("picklescan / pickle.load (wall)", ratio(scan, load, "wall"))
        show_ratio("picklescan / skvault audit (wall)", ratio(scan, audit, "wall"))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
