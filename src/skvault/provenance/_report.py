"""``skvault.report``: a self-contained HTML model card for an artifact.

The card is built from what `read_metadata` and `inspect` return, which needs no trust and
builds nothing. Only the importance and coefficient charts need array values the metadata does
not hold: for them the model is loaded with the default trust (the allow-list alone), and when
that refuses the file, the card is rendered without those charts and says why.

Everything the file provides is untrusted text: every string goes through `_e` (``html.escape``,
quotes included, so it is safe in text and attribute contexts alike), and the page carries a
Content-Security-Policy that allows no script, no request and no external resource at all, so
a mistake in escaping would still not run anything. The charts are inline SVG written by the
small helpers below (no plotting library), the styles an inline ``<style>`` element.
"""

from __future__ import annotations

import errno
import hashlib
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import UntrustedTypeError
from ..format._files import FileLike, atomic_output, is_path, open_input

__all__ = ["TOP_FEATURES", "check_output_folder", "report", "write_report"]

TOP_FEATURES = 30
"""The number of features shown in an importance or coefficient chart: the largest magnitudes."""

_MAX_COEF_CHARTS = 20  # one chart per class; beyond this a card would be all charts
_LONG_TABLE = 30  # tables longer than this are collapsed in a <details>
_MAX_CATEGORIES = 20  # categories listed per column


def report(file: FileLike, output: FileLike | None = None) -> str:
    """Return a self-contained HTML model card for an artifact, and optionally write it.

    The card shows the description and tags, the provenance (creation time, skvault version,
    training code with its git commit, branch and dirty flag), the training environment (Python,
    OS, the versions of the key packages, and every installed distribution in a collapsed
    list), the input and output schema, the training data reference, the scores (cross-validation
    per fold as a chart and a table), the metrics, the size of the golden sample, the model's
    type and hyper-parameters, and, when the model has them, its feature importances or
    coefficients as a bar chart of the largest ones (per class for a multi-class linear model).

    Nothing named by the file is imported or built for the metadata. The importance and
    coefficient charts need the model's arrays: the model is loaded with the default trust
    only (no version check, no verification); if it references types outside the allow-list,
    the card leaves those charts out and names the types instead.

    The page is a single file: inline styles and SVG, no script, no font or other request, and a
    Content-Security-Policy that forbids them. Every string read from the file is escaped.

    Parameters
    ----------
    file : str, os.PathLike, binary file object or bytes
        The artifact.
    output : str, os.PathLike or binary file object, optional
        Where to write the card as UTF-8. A path is written atomically: a failure leaves no
        partial file, and an existing file is kept until the new one is complete.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    FormatError
        If the file is malformed, or the model cannot be built with the default trust for
        another reason than untrusted types (`IntegrityError` when a member differs from its
        digest, `InvalidStateError` when a state breaks an invariant): no card describes a
        file that does not load.
    FileNotFoundError
        If ``output`` is in a folder that does not exist (checked before any work).
    OSError
        If the artifact cannot be read or the card cannot be written.

    Examples
    --------
    >>> skvault.report("model.skv", "model.html")  # doctest: +SKIP
    """
    from .. import _api  # the public functions; imported here as _api imports this package

    if output is not None:
        check_output_folder(output)  # before the work, which may be long for a large model
    source = file if is_path(file) else _read_all(file)  # a stream is read once, used thrice
    meta = _api.read_metadata(source)
    description = _api.inspect(source)
    charts = _model_charts(source, meta)
    page = _render(meta, description, charts, _artifact_facts(source))
    if output is not None:
        write_report(page, output)
    return page


def write_report(page: str, output: FileLike) -> None:
    """Write ``page`` as UTF-8 to ``output``, atomically for a path.

    Raises
    ------
    FileNotFoundError
        If the folder of ``output`` does not exist (said in plain words rather than through
        the name of the temporary file).
    OSError
        If the file cannot be written; no partial file is left.
    """
    check_output_folder(output)
    with atomic_output(output) as fh:
        fh.write(page.encode("utf-8"))


def check_output_folder(output: FileLike) -> None:
    """Check that the folder of a path ``output`` exists: the write error worth finding early.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    NotADirectoryError
        If it is a file.
    """
    if not is_path(output):
        return
    target = os.fspath(output)
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"the folder {folder} does not exist", target)


def _read_all(file: FileLike) -> bytes:
    with open_input(file) as fh:
        return fh.read()


# -- facts taken from the file -------------------------------------------------------------------


@dataclass
class _Chart:
    """One bar chart: the largest-magnitude values of a per-feature array, largest first."""

    title: str
    labels: list[str]
    values: list[float]
    n_features: int  # before keeping the top ones


@dataclass
class _ModelCharts:
    """The importance or coefficient charts, or why there are none."""

    kind: str = ""  # "importances" or "coefficients"
    where: str = ""  # which estimator they come from, for a pipeline
    charts: list[_Chart] = field(default_factory=list)
    note: str = ""  # why there is no chart, or what was left out
    untrusted: list[str] = field(default_factory=list)


def _artifact_facts(source: Any) -> dict[str, Any]:
    """Name, size and SHA-256 of the artifact's bytes."""
    digest = hashlib.sha256()
    size = 0
    if is_path(source):
        with open(source, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        name = os.path.basename(os.fspath(source))
    else:
        digest.update(source)
        size = len(source)
        name = None
    return {"name": name, "size": size, "sha256": digest.hexdigest()}


def _model_charts(source: Any, meta: Mapping[str, Any]) -> _ModelCharts:
    """Load the model with the default trust and chart its importances or coefficients."""
    from .. import _api

    try:
        model = _api.load(source, on_mismatch="ignore", verify=False)
    except UntrustedTypeError as exc:
        return _ModelCharts(
            note="Feature importances and coefficients are not shown: they need the model's "
            "arrays, and the model references types that are not trusted by default, so "
            "skvault report did not build it. Review them with skvault inspect, and load the "
            "model with trusted=[...] to look at them.",
            untrusted=list(exc.types),
        )
    schema = _dict(meta.get("schema"))
    try:
        return _weight_charts(model, schema)
    except Exception as exc:  # a property that fails (unfitted, ...) must not sink the card
        return _ModelCharts(
            note=f"The model's feature importances or coefficients could not be read: {exc}"
        )


def _has_weights(model: Any) -> bool:
    return any(hasattr(model, a) for a in ("feature_importances_", "coef_"))


def _weight_charts(model: Any, schema: Mapping[str, Any]) -> _ModelCharts:
    names = _feature_names(_dict(schema.get("input")))
    classes = _dict(schema.get("output")).get("classes")
    estimator, where = model, ""
    if not _has_weights(model) and isinstance(getattr(model, "steps", None), list):
        # a pipeline: chart its final step, named by what the steps before it produce
        step_name, estimator = model.steps[-1]
        where = f"the final step {step_name!r} ({type(estimator).__name__}) of the pipeline"
        try:
            names = [str(n) for n in model[:-1].get_feature_names_out()]
        except Exception:  # a step without feature names: fall back to x0, x1, ...
            names = None
    if hasattr(estimator, "feature_importances_"):
        values = _real_array(estimator.feature_importances_)
        if values is None or values.ndim != 1:
            return _ModelCharts(note="The feature importances are not a 1-D array of numbers.")
        chart = _chart("Feature importances", values, names)
        return _ModelCharts(kind="importances", where=where, charts=[chart])
    if not hasattr(estimator, "coef_"):
        return _ModelCharts(
            note="The model has no feature_importances_ or coef_ attribute to chart."
        )
    coef = estimator.coef_
    if hasattr(coef, "toarray"):  # sparsified linear models keep a sparse coef_
        coef = coef.toarray()
    values = _real_array(coef)
    if values is None or values.ndim not in (1, 2):
        return _ModelCharts(note="The coefficients are not a 1-D or 2-D array of numbers.")
    if values.ndim == 1:
        charts = [_chart("Coefficients", values, names)]
    else:
        labels = _row_labels(values.shape[0], classes)
        charts = [
            _chart(f"Coefficients: {label}", row, names)
            for label, row in zip(labels[:_MAX_COEF_CHARTS], values)
        ]
    note = ""
    if values.ndim == 2 and values.shape[0] > _MAX_COEF_CHARTS:
        note = f"Only the first {_MAX_COEF_CHARTS} of {values.shape[0]} rows are shown."
    return _ModelCharts(kind="coefficients", where=where, charts=charts, note=note)


def _row_labels(rows: int, classes: Any) -> list[str]:
    """Name the rows of a 2-D ``coef_``: a class each, the positive class, or an output."""
    if isinstance(classes, (list, tuple, np.ndarray)) and _is_flat(classes):
        if len(classes) == rows:
            return [f"class {_plain(c)}" for c in classes]
        if rows == 1 and len(classes) == 2:
            return [f"class {_plain(classes[1])} (positive class)"]
    return [f"output {i}" for i in range(rows)]


def _is_flat(classes: Any) -> bool:
    return not any(isinstance(c, (list, tuple, np.ndarray)) for c in classes)


def _real_array(value: Any) -> np.ndarray | None:
    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.dtype.kind not in "biuf":
        return None
    return array.astype(np.float64)


def _chart(title: str, values: np.ndarray, names: list[str] | None) -> _Chart:
    """Keep the `TOP_FEATURES` finite values of largest magnitude, largest first."""
    if names is None or len(names) != len(values):
        names = [f"x{i}" for i in range(len(values))]
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(-np.abs(values[finite]), kind="stable")][:TOP_FEATURES]
    return _Chart(
        title=title,
        labels=[names[i] for i in order],
        values=[float(values[i]) for i in order],
        n_features=len(values),
    )


def _feature_names(schema_input: Mapping[str, Any]) -> list[str] | None:
    names = schema_input.get("feature_names")
    if isinstance(names, (list, tuple, np.ndarray)):
        return [str(n) for n in names]
    return None


# -- small helpers for untrusted plain data ------------------------------------------------------


def _dict(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one: a section may be absent or malformed."""
    return value if isinstance(value, Mapping) else {}


def _e(value: Any) -> str:
    """Escape for HTML text and attribute values alike (``&``, ``<``, ``>``, both quotes).

    None, a field not recorded, shows as a dash; inside containers and parameters it stays
    ``None``, as in Python.
    """
    if value is None:
        return "—"
    return html.escape(value if isinstance(value, str) else _plain(value), quote=True)


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _fmt(value: float, digits: int = 6) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}g}"


def _plain(value: Any, limit: int = 20) -> str:
    """A short, readable text for a plain-data value (not escaped)."""
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _fmt(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.size <= limit and value.ndim <= 1:
            return "[" + ", ".join(_plain(v) for v in value.tolist()) + "]"
        return f"array of shape {tuple(value.shape)}, dtype {value.dtype}"
    if isinstance(value, Mapping):
        items = list(value.items())
        text = ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in items[:limit])
        more = f", … ({len(items) - limit} more)" if len(items) > limit else ""
        return "{" + text + more + "}"
    if isinstance(value, (list, tuple)):
        text = ", ".join(_plain(v) for v in value[:limit])
        more = f", … ({len(value) - limit} more)" if len(value) > limit else ""
        return "[" + text + more + "]"
    return type(value).__name__


def _size(n: Any) -> str:
    if _number(n) is None:
        return "—"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _short_type(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1] if isinstance(name, str) else "—"


# -- SVG charts ----------------------------------------------------------------------------------
#
# Coordinates are pixels in a fixed viewBox; the SVG scales to the page width through CSS. Every
# text is escaped by the callers' `_e`. Data values are repeated in data-* attributes so that the
# page can be checked (and scraped) without reading pixels.

_BAR_ROW = 22  # pixels per bar, label included
_BAR_HEIGHT = 14
_BAR_LABEL_WIDTH = 240  # labels are right-aligned against the bars
_BAR_VALUE_WIDTH = 80  # the number printed at the right of each row
_BAR_CHART_WIDTH = 760
_LABEL_CHARS = 36  # longer labels are shortened; the full name is in the bar's tooltip


def svg_bar_chart(labels: Sequence[str], values: Sequence[float], label: str) -> str:
    """Return an SVG horizontal bar chart, one row per ``(label, value)``, in the given order.

    Bars start at a zero line; the horizontal domain always holds zero, so negative values
    (coefficients) extend to the left of it and bar lengths compare magnitudes.
    Each bar is a ``<rect class="bar">`` with ``data-feature`` and ``data-value`` attributes and
    a tooltip; the row's value is printed on the right.

    Parameters
    ----------
    labels : sequence of str
        The row names (feature names), as read from the file; escaped here.
    values : sequence of float
        Finite values, one per label.
    label : str
        The accessible name of the chart.
    """
    lo = min([0.0, *values])
    hi = max([0.0, *values])
    span = (hi - lo) or 1.0
    left = _BAR_LABEL_WIDTH + 8
    width = _BAR_CHART_WIDTH - left - _BAR_VALUE_WIDTH
    pad = 6
    height = pad * 2 + _BAR_ROW * len(values)

    def x(v: float) -> float:
        return left + (v - lo) / span * width

    zero = x(0.0)
    parts = [_svg_open(_BAR_CHART_WIDTH, height, "bars", label)]
    for i, (name, value) in enumerate(zip(labels, values)):
        top = pad + i * _BAR_ROW + (_BAR_ROW - _BAR_HEIGHT) / 2
        x0, x1 = sorted((zero, x(value)))
        baseline = top + _BAR_HEIGHT - 3
        shown = name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "…"
        sign = "negative" if value < 0 else "positive"
        parts.append(
            f'<g class="row"><title>{_e(name)}: {_e(_fmt(value))}</title>'
            f'<text class="label" x="{_BAR_LABEL_WIDTH}" y="{baseline:.2f}" '
            f'text-anchor="end">{_e(shown)}</text>'
            f'<rect class="bar {sign}" x="{x0:.2f}" y="{top:.2f}" width="{x1 - x0:.2f}" '
            f'height="{_BAR_HEIGHT}" data-feature="{_e(name)}" data-value="{value!r}"/>'
            f'<text class="value" x="{_BAR_CHART_WIDTH - _BAR_VALUE_WIDTH + 6}" '
            f'y="{baseline:.2f}">{_e(_fmt(value, 4))}</text></g>'
        )
    parts.append(
        f'<line class="zero" x1="{zero:.2f}" x2="{zero:.2f}" y1="{pad - 2}" '
        f'y2="{height - pad + 2}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


_FOLD_WIDTH = 560
_FOLD_HEIGHT = 220
_FOLD_MARGIN = {"left": 64, "right": 16, "top": 12, "bottom": 40}
_FOLD_TICKS = 5


def svg_fold_plot(
    values: Sequence[float], mean: float | None, std: float | None, label: str
) -> str:
    """Return an SVG plot of cross-validation scores: a dot per fold, the mean, mean ± std.

    Folds are spread evenly along the horizontal axis (numbered from 1), scores on the vertical
    one, whose range covers the values and the band with a margin. The mean is a line
    (``<line class="mean">``), mean ± std a band behind it (``<rect class="std-band">``), and each
    fold a ``<circle class="fold">`` with ``data-fold`` and ``data-value`` attributes. Folds
    whose score is not finite (a failed fit scored NaN) have no dot.

    Parameters
    ----------
    values : sequence of float
        The score of each fold, in fold order.
    mean, std : float or None
        The recorded mean and standard deviation; None (or non-finite) draws no line or band.
    label : str
        The accessible name of the plot.
    """
    m = _FOLD_MARGIN
    plot_w = _FOLD_WIDTH - m["left"] - m["right"]
    plot_h = _FOLD_HEIGHT - m["top"] - m["bottom"]
    has_mean = mean is not None and math.isfinite(mean)
    has_band = has_mean and std is not None and math.isfinite(std)
    extent = [v for v in values if math.isfinite(v)]
    if has_mean:
        extent.append(mean)  # type: ignore[arg-type]
    if has_band:
        extent += [mean - std, mean + std]  # type: ignore[operator]
    lo, hi = (min(extent), max(extent)) if extent else (0.0, 1.0)
    margin = (hi - lo) * 0.05 or (abs(hi) * 0.05 or 0.5)
    ticks = _nice_ticks(lo - margin, hi + margin)
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return m["top"] + (hi - v) / (hi - lo) * plot_h

    def x(i: int) -> float:
        return m["left"] + (i + 0.5) * plot_w / max(len(values), 1)

    right = m["left"] + plot_w
    bottom = m["top"] + plot_h
    parts = [_svg_open(_FOLD_WIDTH, _FOLD_HEIGHT, "folds", label)]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{m["left"]}" x2="{right}" y1="{ty:.2f}" y2="{ty:.2f}"/>'
            f'<text class="tick" x="{m["left"] - 6}" y="{ty + 4:.2f}" '
            f'text-anchor="end">{_e(_fmt(tick, 10))}</text>'
        )
    if has_band:
        top, low = y(mean + std), y(mean - std)  # type: ignore[operator]
        parts.append(
            f'<rect class="std-band" x="{m["left"]}" y="{top:.2f}" width="{plot_w}" '
            f'height="{low - top:.2f}"><title>mean ± std: {_e(_fmt(mean - std))} to '  # type: ignore[operator]
            f"{_e(_fmt(mean + std))}</title></rect>"  # type: ignore[operator]
        )
    if has_mean:
        my = y(mean)  # type: ignore[arg-type]
        parts.append(
            f'<line class="mean" x1="{m["left"]}" x2="{right}" y1="{my:.2f}" y2="{my:.2f}" '
            f'data-value="{mean!r}"><title>mean: {_e(_fmt(mean))}</title></line>'  # type: ignore[arg-type]
        )
    step = max(1, math.ceil(len(values) / 20))  # at most about 20 fold numbers on the axis
    for i, value in enumerate(values):
        if i % step == 0 or i == len(values) - 1:
            parts.append(
                f'<text class="tick" x="{x(i):.2f}" y="{bottom + 16}" '
                f'text-anchor="middle">{i + 1}</text>'
            )
        if math.isfinite(value):
            parts.append(
                f'<circle class="fold" cx="{x(i):.2f}" cy="{y(value):.2f}" r="4.5" '
                f'data-fold="{i + 1}" data-value="{value!r}">'
                f"<title>fold {i + 1}: {_e(_fmt(value))}</title></circle>"
            )
    parts.append(
        f'<line class="axis" x1="{m["left"]}" x2="{right}" y1="{bottom}" y2="{bottom}"/>'
        f'<text class="axis-title" x="{m["left"] + plot_w / 2:.2f}" y="{_FOLD_HEIGHT - 6}" '
        f'text-anchor="middle">fold</text></svg>'
    )
    return "".join(parts)


def _nice_ticks(lo: float, hi: float, count: int = _FOLD_TICKS) -> list[float]:
    """Round tick values covering ``[lo, hi]``: multiples of 1, 2, 2.5 or 5 times a power of 10."""
    raw = (hi - lo) / (count - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step) * step
    n = round((last - first) / step)
    # round away the binary noise of first + i * step (0.30000000000000004)
    digits = 3 - math.floor(math.log10(step))
    return [round(first + i * step, digits) for i in range(n + 1)]


def _svg_open(width: int, height: float, cls: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" role="img" '
        f'aria-label="{_e(label)}" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}">'
    )


# -- HTML ----------------------------------------------------------------------------------------


_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b;
       background: #f6f7f9; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #dde1e6; }
h3 { font-size: 16px; margin: 18px 0 6px; overflow-wrap: anywhere; }
.subtitle { color: #5a6470; margin: 0 0 8px; overflow-wrap: anywhere; }
.description { white-space: pre-wrap; overflow-wrap: anywhere; }
ul.tags { list-style: none; padding: 0; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 6px; }
ul.tags li { background: #e8eef6; border-radius: 10px; padding: 1px 10px; font-size: 13px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 14px; }
th, td { border: 1px solid #dde1e6; padding: 3px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f2f4f7; font-weight: 600; }
table.kv th { width: 200px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: 13px; overflow-wrap: anywhere; }
pre { background: #f6f8fa; border: 1px solid #dde1e6; padding: 8px; overflow: auto;
      max-height: 480px; font-size: 12.5px; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #2c5a8c; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 8px 0; }
.muted { color: #6b7480; }
figure { margin: 8px 0 16px; }
figcaption { font-size: 13px; color: #5a6470; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #1d232b; }
svg .value, svg .tick { fill: #5a6470; font-variant-numeric: tabular-nums; }
svg .bar.positive { fill: #3b6ea5; }
svg .bar.negative { fill: #c0504d; }
svg .zero, svg .axis { stroke: #5a6470; stroke-width: 1; }
svg .grid { stroke: #e6e9ed; stroke-width: 1; }
svg .std-band { fill: #3b6ea5; fill-opacity: 0.15; }
svg .mean { stroke: #3b6ea5; stroke-width: 2; }
svg .fold { fill: #1d232b; }
footer { margin-top: 40px; font-size: 13px; color: #6b7480; }
"""

# no script, no request of any kind: the page only needs its own inline styles
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _render(
    meta: Mapping[str, Any],
    description: Mapping[str, Any],
    charts: _ModelCharts,
    facts: Mapping[str, Any],
) -> str:
    tree = _dict(description.get("tree"))
    kind = tree.get("type")
    model_type: str = kind if isinstance(kind, str) else "model"
    title: str = f"{_short_type(model_type)} — {facts['name']}" if facts["name"] else model_type
    has_provenance = "skvault_metadata" in meta
    body = [_header(title, model_type, meta)]
    if not has_provenance:
        body.append(
            '<p class="note">This file carries no provenance metadata (it was written without '
            "skvault.dump): only what the file itself shows is reported.</p>"
        )
    body += [
        _provenance_section(meta, facts),
        _model_section(tree, description),
        _environment_section(_dict(meta.get("environment"))),
        _schema_section(_dict(meta.get("schema"))),
        _data_section(meta.get("data")),
        _scores_section(meta.get("scores")),
        _metrics_section(meta.get("metrics")),
        _golden_section(meta.get("golden")),
        _charts_section(charts),
        "<footer>Model card written by skvault "
        f"{_e(__version__)} (skvault report) from the file's metadata. No script, no external "
        "resource.</footer>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="skvault {_e(__version__)}">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )


def _header(title: str, model_type: str, meta: Mapping[str, Any]) -> str:
    parts = [f'<header>\n<h1 id="title">{_e(title)}</h1>']
    parts.append(f'<p class="subtitle mono">{_e(model_type)}</p>')
    text = meta.get("description")
    if isinstance(text, str) and text:
        parts.append(f'<p class="description">{_e(text)}</p>')
    tags = meta.get("tags")
    if isinstance(tags, (list, tuple)) and tags:
        parts.append('<ul class="tags">' + "".join(f"<li>{_e(t)}</li>" for t in tags) + "</ul>")
    parts.append("</header>")
    return "\n".join(parts)


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table; keys are trusted labels, values are HTML already escaped."""
    cells = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in rows)
    return f'<table class="kv">{cells}</table>'


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    cls: str = "",
) -> str:
    """A table; header labels are trusted, cells are HTML already escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _collapsible(summary: str, content: str, *, open_: bool = False) -> str:
    attr = " open" if open_ else ""
    return f"<details{attr}><summary>{summary}</summary>{content}</details>"


def _section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}">\n<h2>{title}</h2>\n{content}\n</section>'


def _missing(what: str) -> str:
    return f'<p class="muted">No {what} recorded.</p>'


def _provenance_section(meta: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    manifest = _dict(meta.get("manifest"))
    created_by = _dict(manifest.get("created_by"))
    env = _dict(meta.get("environment"))
    rows = []
    if facts["name"]:
        rows.append(("File", f"<code>{_e(facts['name'])}</code>"))
    rows += [
        ("Size", _e(_size(facts["size"]))),
        ("SHA-256", f"<code>{_e(facts['sha256'])}</code>"),
        ("Created (UTC)", _e(meta.get("created_at"))),
        ("skvault version", _e(env.get("skvault", created_by.get("version")))),
        ("Format version", _e(manifest.get("format_version"))),
    ]
    source = meta.get("source")
    parts = [_kv_table(rows)]
    if isinstance(source, Mapping):
        git = _dict(source.get("git"))
        src_rows = [
            ("Kind", _e(source.get("kind"))),
            ("Name", f"<code>{_e(source.get('name'))}</code>"),
        ]
        if git:
            src_rows += [
                ("Git commit", f"<code>{_e(git.get('commit'))}</code>"),
                ("Git branch", _e(git.get("branch"))),
                ("Git remote", _e(git.get("remote"))),
                ("Uncommitted changes", _e(git.get("dirty"))),
            ]
        else:
            src_rows.append(("Git", "not in a git work tree"))
        parts.append("<h3>Training code</h3>" + _kv_table(src_rows))
        text = source.get("text")
        if isinstance(text, str) and text:
            lines = text.count("\n") + (not text.endswith("\n"))
            parts.append(_collapsible(f"Source text ({lines} lines)", f"<pre>{_e(text)}</pre>"))
    else:
        parts.append("<h3>Training code</h3>" + _missing("training code"))
    return _section("provenance", "Provenance", "\n".join(parts))


def _model_section(tree: Mapping[str, Any], description: Mapping[str, Any]) -> str:
    rows = [("Type", f"<code>{_e(tree.get('type'))}</code>")]
    params = _hyper_parameters(tree)
    untrusted = description.get("untrusted")
    if isinstance(untrusted, list) and untrusted:
        listing = "<br>".join(f"<code>{_e(name)}</code>" for name in untrusted)
        rows.append(("Types not trusted by default", listing))
    parts = [_kv_table(rows)]
    if params:
        table = _table(
            ["parameter", "value"],
            [(f"<code>{_e(k)}</code>", f"<code>{_e(v)}</code>") for k, v in params],
        )
        parts.append(_collapsible(f"Hyper-parameters ({len(params)})", table, open_=True))
    return _section("model", "Model", "\n".join(parts))


def _hyper_parameters(tree: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The root object's public, unfitted attributes: scikit-learn's hyper-parameters."""

    def public(key: Any) -> bool:
        return isinstance(key, str) and not key.startswith("_") and not key.endswith("_")

    params = [(k, _plain(v)) for k, v in _dict(tree.get("attributes")).items() if public(k)]
    params += [(k, _describe_node(v)) for k, v in _dict(tree.get("children")).items() if public(k)]
    return sorted(params)


def _describe_node(node: Any) -> str:
    """A one-line description of a node of `skvault.inspect`'s tree."""
    if not isinstance(node, Mapping):
        return _plain(node)
    if "shared" in node:
        return f"same object as {_plain(node['shared'])}"
    kind = node.get("type")
    items = node.get("items")
    if kind in ("list", "tuple") and isinstance(items, list):
        pairs = [
            f"{item['items'][0]}: {_short_type(_dict(item['items'][1]).get('type'))}"
            for item in items
            if isinstance(item, Mapping)
            and isinstance(item.get("items"), list)
            and len(item["items"]) == 2
            and isinstance(item["items"][0], str)
            and isinstance(item["items"][1], Mapping)
        ]
        if pairs and len(pairs) == len(items):  # (name, estimator) steps, as in a Pipeline
            return ", ".join(pairs)
        return f"{kind} of {_plain(node.get('length'))}"
    if isinstance(kind, str) and "." in kind and "shape" not in node:
        return _short_type(kind)
    if "shape" in node:
        return f"{kind} of shape {_plain(node.get('shape'))}"
    return _plain(kind)


def _environment_section(env: Mapping[str, Any]) -> str:
    if not env:
        return _section("environment", "Environment", _missing("environment"))
    python = _dict(env.get("python"))
    system = _dict(env.get("platform"))
    rows = [
        ("Python", _e(f"{_plain(python.get('version'))} ({_plain(python.get('implementation'))})")),
        (
            "OS",
            _e(" ".join(_plain(system.get(k)) for k in ("system", "release", "machine"))),
        ),
    ]
    parts = [_kv_table(rows)]
    core, model = _dict(env.get("core")), _dict(env.get("model"))
    names = sorted(set(core) | set(model), key=str)
    if names:
        rows_pkg = [
            (
                f"<code>{_e(n)}</code>",
                _e(model.get(n, core.get(n))),
                "yes" if n in model else "",
            )
            for n in names
        ]
        parts.append(
            "<h3>Key packages</h3>" + _table(["package", "version", "used by the model"], rows_pkg)
        )
    installed = _dict(env.get("installed"))
    if installed:
        rows_all = []
        for name in sorted(installed, key=str):
            dist = _dict(installed[name])
            origin = dist.get("source")
            if origin and dist.get("editable"):
                origin = f"{_plain(origin)} (editable)"
            rows_all.append(
                (f"<code>{_e(name)}</code>", _e(dist.get("version")), _e(origin) if origin else "")
            )
        parts.append(
            _collapsible(
                f"All installed distributions ({len(rows_all)})",
                _table(["distribution", "version", "source"], rows_all),
            )
        )
    return _section("environment", "Environment", "\n".join(parts))


def _schema_section(schema: Mapping[str, Any]) -> str:
    if not schema:
        return _section("schema", "Schema", _missing("schema"))
    given = _dict(schema.get("input"))
    names = _feature_names(given)
    dtypes = _dict(given.get("dtypes"))
    categories = _dict(given.get("categories"))
    parts = ["<h3>Input</h3>", _kv_table([("Features", _e(given.get("n_features")))])]
    if names:
        rows = []
        for i, name in enumerate(names):
            cats = categories.get(name)
            cell = ""
            if isinstance(cats, (list, tuple, np.ndarray)):
                cell = _e(_plain(list(cats), limit=_MAX_CATEGORIES))
            rows.append((str(i), f"<code>{_e(name)}</code>", _e(dtypes.get(name, "")), cell))
        table = _table(["#", "feature", "dtype", "categories"], rows, numeric=[0])
        parts.append(
            _collapsible(f"{len(names)} named features", table, open_=len(names) <= _LONG_TABLE)
        )
    else:
        parts.append('<p class="muted">No feature names recorded (fitted on an array).</p>')
    out = _dict(schema.get("output"))
    methods = out.get("methods")
    methods = ", ".join(map(str, methods)) if isinstance(methods, (list, tuple)) else None
    out_rows = [
        ("Task", _e(out.get("task"))),
        ("Outputs", _e(out.get("n_outputs"))),
        ("Methods", _e(methods or None)),
    ]
    classes = out.get("classes")
    if classes is not None:
        count = len(classes) if isinstance(classes, (list, tuple, np.ndarray)) else "?"
        out_rows.append((f"Classes ({count})", _e(_plain(classes, limit=100))))
    parts += ["<h3>Output</h3>", _kv_table(out_rows)]
    return _section("schema", "Schema", "\n".join(parts))


def _data_section(data: Any) -> str:
    if not isinstance(data, Mapping):
        return _section("data", "Training data", _missing("training data reference"))
    if "fingerprint" in data:
        parts = ["<p>In-memory data, fingerprinted at dump:</p>"]
        for key, entry in _dict(data.get("fingerprint")).items():
            entry = _dict(entry)
            if not entry:
                continue
            dtypes = entry.get("dtypes")
            if isinstance(dtypes, Mapping):
                kinds = sorted({str(d) for d in dtypes.values()})
                dtypes = f"{len(dtypes)} columns: " + ", ".join(kinds)
            rows = [
                ("Shape", _e(entry.get("shape"))),
                ("Dtypes", _e(dtypes)),
                ("SHA-256", f"<code>{_e(entry.get('sha256'))}</code>"),
            ]
            columns = entry.get("columns")
            if columns is not None:
                rows.append(("Columns", _e(_plain(columns, limit=50))))
            parts.append(f"<h3>{_e(key)}</h3>" + _kv_table(rows))
        return _section("data", "Training data", "\n".join(parts))
    rows = [
        ("Location", f"<code>{_e(data.get('uri'))}</code>"),
        ("SHA-256", f"<code>{_e(data.get('sha256'))}</code>"),
        ("Size", _e(_size(data.get("size")))),
        ("Modified (UTC)", _e(data.get("mtime"))),
    ]
    return _section("data", "Training data", _kv_table(rows))


def _scores_section(scores: Any) -> str:
    if not isinstance(scores, Mapping) or not scores:
        return _section("scores", "Scores", _missing("scores"))
    parts = []
    given = _dict(scores.get("given"))
    if given:
        rows = [(f"<code>{_e(k)}</code>", _e(v)) for k, v in given.items()]
        parts.append("<h3>Given scores</h3>" + _table(["score", "value"], rows, numeric=[1]))
    cv = _dict(scores.get("cv"))
    if cv:
        parts.append(_cv_block(cv))
    return _section("scores", "Scores", "\n".join(parts))


def _cv_block(cv: Mapping[str, Any]) -> str:
    splitter = _dict(cv.get("splitter"))
    params = _dict(splitter.get("params"))
    detail = ", ".join(f"{_plain(k)}={_plain(v)}" for k, v in params.items())
    parts = [
        "<h3>Cross-validation</h3>",
        f"<p>Splitter: <code>{_e(splitter.get('type'))}</code>"
        + (f" ({_e(detail)})" if detail else "")
        + "</p>",
    ]
    folds = _dict(cv.get("folds"))
    means, stds = _dict(cv.get("mean")), _dict(cv.get("std"))
    series: dict[str, list[float]] = {}
    for name, values in folds.items():
        if isinstance(values, (list, tuple, np.ndarray)):
            numbers = [_number(v) for v in values]
            series[str(name)] = [math.nan if v is None else v for v in numbers]
    for name, values in series.items():
        mean, std = _number(means.get(name)), _number(stds.get(name))
        failed = sum(not math.isfinite(v) for v in values)
        caption = (
            f"<code>{_e(name)}</code> per fold ({len(values)} folds): dots are folds, the line "
            "the mean, the band mean ± standard deviation"
            + (f"; {failed} folds without a finite score are not drawn" if failed else "")
            + "."
        )
        plot = svg_fold_plot(values, mean, std, f"{name} per fold")
        parts.append(
            f'<figure class="fold-plot" data-scorer="{_e(name)}">{plot}'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    if series:
        names = list(series)
        length = max(len(v) for v in series.values())
        rows = [
            [str(i + 1)] + [_e(_fmt(series[n][i])) if i < len(series[n]) else "" for n in names]
            for i in range(length)
        ]
        for label, source in (("mean", means), ("std", stds)):
            rows.append(
                [f"<strong>{label}</strong>"]
                + [_e(_fmt(v)) if (v := _number(source.get(n))) is not None else "—" for n in names]
            )
        header = ["fold", *(f"<code>{_e(n)}</code>" for n in names)]
        parts.append(_table(header, rows, numeric=range(1, len(names) + 1), cls="folds"))
    return "\n".join(parts)


def _metrics_section(metrics: Any) -> str:
    if not isinstance(metrics, Mapping) or not metrics:
        return _section("metrics", "Metrics", _missing("metrics"))
    rows = [(f"<code>{_e(k)}</code>", _e(v)) for k, v in metrics.items()]
    return _section("metrics", "Metrics", _table(["metric", "value"], rows))


def _golden_section(golden: Any) -> str:
    if not isinstance(golden, Mapping):
        return _section("golden", "Golden sample", _missing("golden sample"))
    rows_count = _golden_rows(golden.get("X"))
    outputs = _dict(golden.get("outputs"))
    rows = [
        ("Rows", _e(rows_count)),
        ("Outputs checked", _e(", ".join(map(str, outputs)) or None)),
        ("Tolerance", _e(f"rtol={_plain(golden.get('rtol'))}, atol={_plain(golden.get('atol'))}")),
    ]
    text = (
        "<p>skvault.load recomputes these outputs after loading (always with verify=True, and "
        "by default when versions differ) and raises VerificationError when they change.</p>"
    )
    return _section("golden", "Golden sample", text + _kv_table(rows))


def _golden_rows(stored: Any) -> int | None:
    if isinstance(stored, np.ndarray):
        return int(stored.shape[0]) if stored.ndim else None
    stored = _dict(stored)
    if "sparse" in stored:
        shape = stored.get("shape")
        return int(shape[0]) if isinstance(shape, (list, tuple)) and shape else None
    columns = _dict(stored.get("data"))
    for column in columns.values():
        if isinstance(column, np.ndarray) and column.ndim:
            return int(column.shape[0])
    return None


def _charts_section(charts: _ModelCharts) -> str:
    title = "Coefficients" if charts.kind == "coefficients" else "Feature importances"
    if charts.kind == "":
        title = "Feature importances and coefficients"
    parts = []
    if charts.where:
        parts.append(f"<p>From {_e(charts.where)}.</p>")
    for chart in charts.charts:
        shown = len(chart.values)
        caption = (
            f"The {shown} largest in magnitude of {chart.n_features} features."
            if shown < chart.n_features
            else f"All {chart.n_features} features, by magnitude."
        )
        svg = svg_bar_chart(chart.labels, chart.values, chart.title)
        heading = f"<h3>{_e(chart.title)}</h3>" if chart.title != title else ""
        parts.append(
            f'<figure class="weights" data-kind="{charts.kind}">{heading}'
            f"{svg}<figcaption>{caption}</figcaption></figure>"
        )
    if charts.note:
        note = f'<p class="note">{_e(charts.note)}</p>'
        if charts.untrusted:
            note += (
                '<ul class="untrusted">'
                + "".join(f"<li><code>{_e(name)}</code></li>" for name in charts.untrusted)
                + "</ul>"
            )
        parts.append(note)
    return _section("weights", title, "\n".join(parts))
