"""Benchmark skvault against pickle, joblib and skops: dump time, load time, file size.

Run from the repository root::

    .venv/bin/python benchmarks/bench_core.py            # full size (issue 2, point 7)
    .venv/bin/python benchmarks/bench_core.py --quick    # small smoke run

Every tool writes to, and reads from, the same temporary folder on disk. Each load reads a file that
was just written and read once untimed, so every tool reads from the warm page cache; the numbers
measure deserialisation, not the disk. Times are wall clock (``time.perf_counter``), median and
min over ``--repeat`` runs, in one process; the previous loaded object is deleted and garbage is
collected before each timed call.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import sklearn
import skops
import skops.io
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier

import skvault

MB = 1e6
# rows predicted to check that a loaded model matches the original
CHECK_ROWS = 500


@dataclass
class Row:
    """The measurements of one tool (or one load mode of a tool) on one model."""

    tool: str
    dump: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    size: int | None = None
    group: str = "plain"  # "plain" rows are compared with each other; "compressed" too

    @property
    def dump_med(self) -> float | None:
        return statistics.median(self.dump) if self.dump else None

    @property
    def load_med(self) -> float | None:
        return statistics.median(self.load) if self.load else None


@dataclass
class Tool:
    """How one tool writes and reads a file.

    ``loaders`` maps a row name to a load function, so one written file can be read in
    several ways (joblib plain and mmap_mode='r'; skvault plain and mmap=True).
    """

    name: str
    suffix: str
    dump: Callable[[Any, str], None]
    loaders: dict[str, Callable[[str], Any]]
    group: str = "plain"
    prepare: Callable[[str], None] | None = None  # untimed set-up after dump, before loads


def _pickle_dump(obj: Any, path: str) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=5)


def _pickle_load(path: str) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _skvault_dump_fileobj(obj: Any, path: str) -> None:
    # like pickle: write through an open file, no temporary file, fsync or rename
    with open(path, "wb") as fh:
        skvault.dump(obj, fh)


def _load_unvalidated(path: str) -> Any:
    """skvault.load with the state validators switched off: what validation costs (issue 5).

    Only for measuring; skvault itself has no way to skip validation.
    """
    from skvault.format import validators as v

    registries = (v.VALIDATORS, v.BATCH_VALIDATORS, v.BUILT_VALIDATORS)
    saved = [dict(r) for r in registries]
    with contextlib.ExitStack() as restore:
        for registry, content in zip(registries, saved):
            restore.callback(registry.update, content)
            registry.clear()
        return skvault.load(path)


class _Skops:
    """skops needs the list of untrusted names of a file; it is computed once, untimed."""

    def __init__(self) -> None:
        self.trusted: list[str] = []

    def dump(self, obj: Any, path: str) -> None:
        skops.io.dump(obj, path)

    def prepare(self, path: str) -> None:
        self.trusted = skops.io.get_untrusted_types(file=path)

    def load(self, path: str) -> Any:
        return skops.io.load(path, trusted=self.trusted)


def make_tools() -> list[Tool]:
    """Return every tool and variant the benchmark runs."""
    sk = _Skops()
    return [
        Tool("pickle", ".pkl", _pickle_dump, {"pickle p5": _pickle_load}),
        Tool(
            "joblib",
            ".joblib",
            lambda o, p: joblib.dump(o, p),
            {
                "joblib": joblib.load,
                "joblib mmap": lambda p: joblib.load(p, mmap_mode="r"),
            },
        ),
        Tool("skops", ".skops", sk.dump, {"skops": sk.load}, prepare=sk.prepare),
        Tool(
            "skvault",
            ".skv",
            lambda o, p: skvault.dump(o, p),
            {
                "skvault": skvault.load,
                "skvault mmap": lambda p: skvault.load(p, mmap=True),
                "sv unvalidated": _load_unvalidated,
            },
        ),
        Tool("skvault fileobj", ".skv", _skvault_dump_fileobj, {}),
        Tool(
            "joblib c=3",
            ".joblib",
            lambda o, p: joblib.dump(o, p, compress=3),
            {"joblib c=3": joblib.load},
            group="compressed",
        ),
        Tool(
            "skvault zlib",
            ".skv",
            lambda o, p: skvault.dump(o, p, compress="zlib"),
            {"skvault zlib": skvault.load},
            group="compressed",
        ),
        Tool(
            "skvault c=3",
            ".skv",
            lambda o, p: skvault.dump(o, p, compress=3),
            {"skvault c=3": skvault.load},
            group="compressed",
        ),
        Tool(
            "skvault lzma",
            ".skv",
            lambda o, p: skvault.dump(o, p, compress="lzma"),
            {"skvault lzma": skvault.load},
            group="compressed",
        ),
    ]


def make_models(quick: bool) -> list[tuple[str, Any, np.ndarray]]:
    """Fit the three benchmark models; return (name, model, rows to check predictions on)."""
    n_cls = 2_000 if quick else 20_000
    X, y = make_classification(
        n_samples=n_cls, n_features=50, n_informative=20, n_classes=2, random_state=0
    )
    models = []
    n_trees = 30 if quick else 300
    rf = RandomForestClassifier(n_estimators=n_trees, n_jobs=2, random_state=0).fit(X, y)
    rf.set_params(n_jobs=1)  # prediction checks are single-threaded, like a restored model
    models.append((f"RandomForestClassifier(n_estimators={n_trees})", rf, X[:CHECK_ROWS]))
    n_iter = 20 if quick else 200
    hgb = HistGradientBoostingClassifier(max_iter=n_iter, early_stopping=False, random_state=0)
    models.append(
        (
            f"HistGradientBoostingClassifier(max_iter={n_iter}, early_stopping=False)",
            hgb.fit(X, y),
            X[:CHECK_ROWS],
        )
    )
    n_knn = 20_000 if quick else 500_000
    rng = np.random.default_rng(0)
    Xk = rng.standard_normal((n_knn, 50))
    yk = rng.integers(0, 3, n_knn)
    knn = KNeighborsClassifier().fit(Xk, yk)
    models.append(
        (
            f"KNeighborsClassifier on {n_knn:,} x 50 float64",
            knn,
            rng.standard_normal((CHECK_ROWS // 5, 50)),
        )
    )
    return models


def _outputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(model.predict(X)), np.asarray(model.predict_proba(X))]


def verify(name: str, loaded: Any, expected: list[np.ndarray], X: np.ndarray) -> None:
    """Raise if ``loaded`` does not predict exactly like the original model."""
    got = _outputs(loaded, X)
    for method, a, b in zip(("predict", "predict_proba"), expected, got):
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            raise AssertionError(f"{name}: loaded model's {method} differs from the original")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_model(
    model: Any, X: np.ndarray, tools: list[Tool], folder: str, repeat: int, c_repeat: int
) -> list[Row]:
    """Dump and load ``model`` with every tool; return one row per tool and load mode."""
    expected = _outputs(model, X)
    rows: list[Row] = []
    for tool in tools:
        path = os.path.join(folder, "model" + tool.suffix)
        n = c_repeat if tool.group == "compressed" else repeat
        dumps: list[float] = []
        for _ in range(n):
            # remove the previous file untimed, so every tool writes a fresh file
            if os.path.exists(path):
                os.unlink(path)
            dt, _ = _timed(lambda: tool.dump(model, path))  # noqa: B023
            dumps.append(dt)
        size = os.path.getsize(path)
        if tool.prepare is not None:
            tool.prepare(path)
        if not tool.loaders:
            rows.append(Row(tool.name, dumps, [], size, tool.group))
        for i, (row_name, load) in enumerate(tool.loaders.items()):
            # untimed load: checks correctness and warms the page cache
            loaded = load(path)
            verify(row_name, loaded, expected, X)
            del loaded
            loads: list[float] = []
            for _ in range(n):
                dt, loaded = _timed(lambda: load(path))  # noqa: B023
                loads.append(dt)
                del loaded
            # a second load mode of the same file has no dump of its own
            rows.append(Row(row_name, dumps if i == 0 else [], loads, size, tool.group))
        os.unlink(path)
        print(f"  .. {tool.name} done", file=sys.stderr, flush=True)
    return rows


def _f(x: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def print_table(title: str, rows: list[Row]) -> None:
    """Print one model's table: times, sizes and ratios vs joblib and vs pickle."""
    by = {r.tool: r for r in rows}
    pk = by["pickle p5"]
    head = (
        f"{'tool':<16}{'dump med':>9}{'dump min':>9}{'load med':>9}{'load min':>9}"
        f"{'size MB':>9} | {'dump/jl':>7}{'load/jl':>8}{'size/jl':>8} | "
        f"{'dump/pk':>7}{'load/pk':>8}{'size/pk':>8}"
    )
    print(f"\n=== {title} ===")
    print(
        "times in seconds; ratios = this tool / joblib (jl) and / pickle p5 (pk), < 1 is better;"
        "\njl is plain joblib in the upper block, joblib compress=3 in the compressed block"
    )
    print(head)
    print("-" * len(head))
    last_group = rows[0].group
    for r in rows:
        jb = by["joblib c=3"] if r.group == "compressed" else by["joblib"]
        if r.group != last_group:
            print("-" * len(head))
            last_group = r.group
        print(
            f"{r.tool:<16}{_f(r.dump_med):>9}{_f(min(r.dump) if r.dump else None):>9}"
            f"{_f(r.load_med):>9}{_f(min(r.load) if r.load else None):>9}"
            f"{_f(r.size / MB if r.size else None, '{:.2f}'):>9} | "
            f"{_ratio(r.dump_med, jb.dump_med):>7}{_ratio(r.load_med, jb.load_med):>8}"
            f"{_ratio(r.size, jb.size):>8} | "
            f"{_ratio(r.dump_med, pk.dump_med):>7}{_ratio(r.load_med, pk.load_med):>8}"
            f"{_ratio(r.size, pk.size):>8}"
        )


def check_targets(results: list[tuple[str, list[Row]]]) -> bool:
    """Print every target of issue 2, point 7 with PASS/FAIL; return whether all passed."""
    lines: list[tuple[bool | None, str]] = []

    def add(ok: bool | None, text: str) -> None:
        lines.append((ok, text))

    for title, rows in results:
        by = {r.tool: r for r in rows}
        sv, jb, jm, pk = by["skvault"], by["joblib"], by["joblib mmap"], by["pickle p5"]
        svm = by["skvault mmap"]
        short = title.split("(")[0].split(" on ")[0]
        assert sv.load_med and jb.load_med and jm.load_med and pk.load_med and svm.load_med
        add(
            sv.load_med <= jb.load_med,
            f"{short}: load no slower than joblib: skvault {sv.load_med * 1e3:.1f} ms vs "
            f"joblib {jb.load_med * 1e3:.1f} ms ({sv.load_med / jb.load_med:.2f}x)",
        )
        add(
            None,
            f"{short}: skvault load vs joblib mmap_mode='r' {jm.load_med * 1e3:.1f} ms: "
            f"{sv.load_med / jm.load_med:.2f}x; skvault mmap=True {svm.load_med * 1e3:.1f} ms: "
            f"{svm.load_med / jm.load_med:.2f}x",
        )
        if short.startswith("KNeighbors"):
            add(
                svm.load_med < 0.010,
                f"{short}: load(mmap=True) under 10 ms: median {svm.load_med * 1e3:.2f} ms "
                f"(min {min(svm.load) * 1e3:.2f} ms)",
            )
        un = by["sv unvalidated"]
        assert un.load_med
        cost = sv.load_med / un.load_med - 1
        add(
            cost <= 0.10 if not short.startswith("KNeighbors") else None,
            f"{short}: state validation adds at most 10% to load (issue 5): {cost * 100:+.1f}% "
            f"({sv.load_med * 1e3:.1f} ms vs {un.load_med * 1e3:.1f} ms without validators; "
            f"min {min(sv.load) * 1e3:.1f} vs {min(un.load) * 1e3:.1f} ms)",
        )
        if short.startswith("HistGradientBoosting"):
            add(
                sv.load_med <= 3 * pk.load_med,
                f"{short}: load within 3x of pickle: {sv.load_med / pk.load_med:.2f}x "
                f"({sv.load_med * 1e3:.1f} ms vs {pk.load_med * 1e3:.1f} ms)",
            )
        assert sv.dump_med and jb.dump_med and sv.size and pk.size
        add(
            sv.dump_med <= 1.5 * jb.dump_med,
            f"{short}: dump within 1.5x of joblib: {sv.dump_med / jb.dump_med:.2f}x "
            f"({sv.dump_med * 1e3:.1f} ms vs {jb.dump_med * 1e3:.1f} ms)",
        )
        fo = by["skvault fileobj"]
        assert fo.dump_med
        add(
            None,
            f"{short}: skvault dump to an open file object (no temp file/fsync/rename): "
            f"{fo.dump_med / jb.dump_med:.2f}x joblib",
        )
        add(
            sv.size <= 1.05 * pk.size,
            f"{short}: uncompressed size within 5% of pickle: {sv.size / pk.size:.4f}x "
            f"({sv.size / MB:.2f} MB vs {pk.size / MB:.2f} MB)",
        )
        jc = by["joblib c=3"]
        assert jc.size
        for name in ("skvault c=3", "skvault zlib", "skvault lzma"):
            r = by[name]
            assert r.size
            add(
                r.size <= jc.size,
                f"{short}: {name} size no larger than joblib compress=3: "
                f"{r.size / jc.size:.4f}x ({r.size / MB:.2f} MB vs {jc.size / MB:.2f} MB)",
            )
    print("\n=== targets (issue 2, point 7; issue 5, point 4) ===")
    for ok, text in lines:
        tag = "info" if ok is None else ("PASS" if ok else "FAIL")
        print(f"[{tag}] {text}")
    graded = [ok for ok, _ in lines if ok is not None]
    print(f"\n{sum(graded)} of {len(graded)} targets pass")
    return all(graded)


def _fs_type(folder: str) -> str:
    # the mount holding ``folder``, so a run on tmpfs (memory, not disk) is visible in the output
    best, kind = "", "unknown filesystem"
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                _dev, mnt, fstype = line.split()[:3]
                if folder.startswith(mnt) and len(mnt) > len(best):
                    best, kind = mnt, f"{fstype} mounted at {mnt}"
    except OSError:
        pass
    return kind


def _source_state() -> str:
    # which skvault code ran: the benchmark is often run on a working tree with local changes
    src = os.path.dirname(os.path.abspath(skvault.__file__))
    try:
        out = subprocess.run(
            ["git", "-C", src, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return f"{src} at git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return src


def _loadavg() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every target passes, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, for a smoke run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument(
        "--compress-repeat",
        type=int,
        default=None,
        help="timed runs for compressed variants (default: min(repeat, 2); lzma is slow)",
    )
    parser.add_argument(
        "--dir", default=None, help="parent folder for the files (default: the system temp dir)"
    )
    args = parser.parse_args(argv)
    c_repeat = args.compress_repeat or min(args.repeat, 2)

    with tempfile.TemporaryDirectory(prefix="skvault-bench-", dir=args.dir) as folder:
        print(
            f"python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}, "
            f"skops {skops.__version__}, skvault {skvault.__version__}"
        )
        print(f"skvault from {_source_state()}")
        print(f"{platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or ''}")
        print(
            f"files in {folder} ({_fs_type(folder)}; all tools, same folder)\n"
            f"repeat={args.repeat}, compressed variants repeat={c_repeat}; median and min wall time"
        )
        print(
            "page cache: each file is read once untimed before its timed loads, so every tool "
            "reads from the warm page cache"
        )
        print(
            "skops loads with trusted=get_untrusted_types(file=...) computed once, untimed; "
            "skvault dump to a path includes its temp file + fsync + rename"
        )
        print(
            f"load average (1, 5, 15 min) at the start: {_loadavg()}; other processes on the "
            "machine skew the times"
        )
        print("fitting models...", file=sys.stderr, flush=True)
        models = make_models(args.quick)
        tools = make_tools()
        results = []
        for title, model, X in models:
            print(f"benchmarking {title}", file=sys.stderr, flush=True)
            load_before = _loadavg()
            rows = bench_model(model, X, tools, folder, args.repeat, c_repeat)
            print_table(title, rows)
            print(f"load average before / after this model: {load_before} / {_loadavg()}")
            results.append((title, rows))
            sys.stdout.flush()
        ok = check_targets(results)
        print(f"load average at the end: {_loadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
