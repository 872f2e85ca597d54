"""``skvault report``: the model card, rendered in headless Chromium as a reader would see it.

The browser tests skip when Playwright or Chromium is missing, unless ``SKVAULT_REQUIRE_BROWSER=1``
(set in CI), where a missing browser is a failure: the card must be seen to render there.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.cli._app import cli

TESTS = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SKVAULT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# hostile strings, as a file from anyone may carry them: each sets window.__pwned if it runs
SCRIPT_NAME = "<script>window.__pwned = 'script'</script>"
ATTRIBUTE_NAME = '"><img src=x onerror="window.__pwned = \'attribute\'">'
DESCRIPTION = "Iris species <img src=x onerror=\"window.__pwned = 'description'\"> & more"
TAG = "<b onmouseover=\"window.__pwned = 'tag'\">bold</b>"
COLUMNS = ["sepal length", SCRIPT_NAME, ATTRIBUTE_NAME, "petal width"]
N_SPLITS = 5
SCORING = ["accuracy", "f1_macro"]


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module; skip (or fail in CI) when there is none."""
    required = os.environ.get("SKVAULT_REQUIRE_BROWSER") == "1"

    def unavailable(reason: str) -> None:
        if required:
            pytest.fail(f"{reason}, and SKVAULT_REQUIRE_BROWSER=1 requires the browser tests")
        pytest.skip(f"{reason} (set SKVAULT_REQUIRE_BROWSER=1 to make this a failure)")

    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"Chromium is not installed at {CHROMIUM} (set SKVAULT_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            unavailable(f"Chromium at {CHROMIUM} does not start: {exc}")
        yield chromium
        chromium.close()


@dataclass
class Opened:
    """A page showing a card, and every problem the browser reported while loading it."""

    page: Any
    url: str
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        assert self.problems == []
        assert self.requests == [self.url]  # self-contained: no font, style, image or script


@pytest.fixture
def open_card(browser) -> Iterator[Any]:
    pages = []

    def open_(path: Path) -> Opened:
        page = browser.new_page()
        pages.append(page)
        opened = Opened(page, path.resolve().as_uri())
        page.on(
            "console",
            lambda m: (
                opened.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: opened.problems.append(f"request failed: {r.url} {r.failure}"),
        )
        page.on("request", lambda r: opened.requests.append(r.url))
        page.goto(opened.url, wait_until="load")
        return opened

    yield open_
    for page in pages:
        page.close()


# -- artifacts and their cards -------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def write_card(artifact: Path) -> Path:
    card = artifact.with_suffix(".html")
    result = run("report", str(artifact), "-o", str(card))
    assert result.exit_code == 0, result.output
    return card


@pytest.fixture(scope="module")
def iris_frame():
    X, y = load_iris(return_X_y=True)
    return pd.DataFrame(X, columns=COLUMNS), y


@pytest.fixture(scope="module")
def forest(iris_frame):
    X, y = iris_frame
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def forest_card(forest, iris_frame, tmp_path_factory) -> Path:
    X, y = iris_frame
    path = tmp_path_factory.mktemp("forest") / "forest.skv"
    skvault.dump(
        forest,
        path,
        X=X,
        y=y,
        cv=N_SPLITS,
        scoring=SCORING,
        source=Path(__file__),
        description=DESCRIPTION,
        tags=["iris", TAG],
        metrics={"holdout_accuracy": 0.96},
    )
    return write_card(path)


def attributes(opened: Opened, selector: str, name: str) -> list[str]:
    return opened.page.locator(selector).evaluate_all(
        f"(nodes) => nodes.map((n) => n.getAttribute({name!r}))"
    )


def numbers(opened: Opened, selector: str, name: str) -> np.ndarray:
    return np.array([float(v) for v in attributes(opened, selector, name)])


# -- what a reader sees --------------------------------------------------------------------------


def test_card_renders_cleanly_with_its_title_and_features(open_card, forest_card):
    opened = open_card(forest_card)
    opened.check_clean()
    page = opened.page
    assert page.title() == "RandomForestClassifier — forest.skv"
    assert "RandomForestClassifier — forest.skv" in page.inner_text("h1")
    text = page.inner_text("body")
    assert "sepal length" in text
    assert "Iris species" in text
    for heading in ("Provenance", "Environment", "Schema", "Scores", "Golden sample"):
        assert heading in page.locator("h2").all_inner_texts()
    assert "holdout_accuracy" in page.inner_text("#metrics")
    # the golden sample holds the default 32 rows of the 150 given
    assert "32" in page.inner_text("#golden")
    # the full list of installed distributions is there, folded away
    details = page.locator("#environment details")
    assert details.count() == 1
    assert not details.evaluate("(d) => d.open")
    assert "numpy" in details.text_content()


def test_injected_markup_shows_as_text_and_does_not_run(open_card, forest_card):
    opened = open_card(forest_card)
    opened.check_clean()
    page = opened.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script").count() == 0
    assert page.locator("img").count() == 0
    assert page.locator("body b").count() == 0
    text = page.inner_text("body")
    for payload in (SCRIPT_NAME, ATTRIBUTE_NAME, DESCRIPTION, TAG):
        assert payload in text
    # an attribute value keeps the whole name, quotes included
    assert SCRIPT_NAME in attributes(opened, "svg.bars rect.bar", "data-feature")
    assert ATTRIBUTE_NAME in attributes(opened, "svg.bars rect.bar", "data-feature")


def test_importance_chart_has_a_bar_per_feature_in_order(open_card, forest_card, forest):
    opened = open_card(forest_card)
    opened.check_clean()
    importances = forest.feature_importances_
    order = np.argsort(-importances, kind="stable")
    assert opened.page.locator("figure.weights").count() == 1
    bars = "figure.weights svg.bars rect.bar"
    assert opened.page.locator(bars).count() == len(importances)
    assert attributes(opened, bars, "data-feature") == [COLUMNS[i] for i in order]
    np.testing.assert_allclose(numbers(opened, bars, "data-value"), importances[order])
    # bar lengths are proportional to the importances
    widths = numbers(opened, bars, "width")
    np.testing.assert_allclose(
        widths / widths[0], importances[order] / importances[order[0]], atol=1e-3
    )


def test_fold_plot_has_a_dot_per_fold_and_mean_and_band(open_card, forest_card, forest, iris_frame):
    opened = open_card(forest_card)
    opened.check_clean()
    X, y = iris_frame
    figures = opened.page.locator("figure.fold-plot")
    assert figures.count() == len(SCORING)
    assert attributes(opened, "figure.fold-plot", "data-scorer") == SCORING
    expected = cross_val_score(clone(forest), X, y, cv=N_SPLITS, scoring="accuracy")
    dots = 'figure.fold-plot[data-scorer="accuracy"] circle.fold'
    assert opened.page.locator(dots).count() == N_SPLITS
    np.testing.assert_allclose(numbers(opened, dots, "data-value"), expected)
    assert [int(v) for v in attributes(opened, dots, "data-fold")] == list(range(1, N_SPLITS + 1))
    # higher scores are drawn higher (smaller y); the mean line lies in the band
    cy = numbers(opened, dots, "cy")
    assert np.array_equal(np.argsort(cy, kind="stable"), np.argsort(-expected, kind="stable"))
    plot = 'figure.fold-plot[data-scorer="accuracy"]'
    mean_y = numbers(opened, f"{plot} line.mean", "y1")
    band_top = numbers(opened, f"{plot} rect.std-band", "y")
    band_height = numbers(opened, f"{plot} rect.std-band", "height")
    assert mean_y.shape == band_top.shape == (1,)
    assert band_top[0] < mean_y[0] < band_top[0] + band_height[0]
    if expected.std() > 0:
        assert cy.min() < mean_y[0] < cy.max()
    f1 = 'figure.fold-plot[data-scorer="f1_macro"] circle.fold'
    assert opened.page.locator(f1).count() == N_SPLITS
    assert opened.page.locator("table.folds tbody tr").count() == N_SPLITS + 2  # + mean, std


def test_coefficients_are_charted_per_class_top_30(open_card, tmp_path):
    X, y = make_classification(
        n_samples=300, n_features=40, n_informative=8, n_classes=3, random_state=0
    )
    model = LogisticRegression(max_iter=5000).fit(X, y)
    path = tmp_path / "logistic.skv"
    skvault.dump(model, path, source=False)
    opened = open_card(write_card(path))
    opened.check_clean()
    figures = opened.page.locator("figure.weights")
    assert figures.count() == len(model.classes_) == model.coef_.shape[0]
    for k, label in enumerate(model.classes_):
        figure = figures.nth(k)
        assert f"class {label}" in figure.locator("h3").inner_text()
        bars = figure.locator("rect.bar")
        assert bars.count() == 30
        shown = bars.evaluate_all("(nodes) => nodes.map((n) => n.getAttribute('data-feature'))")
        top = np.argsort(-np.abs(model.coef_[k]), kind="stable")[:30]
        assert shown == [f"x{i}" for i in top]
        negative = bars.evaluate_all(
            "(nodes) => nodes.map((n) => n.classList.contains('negative'))"
        )
        assert negative == [bool(model.coef_[k, i] < 0) for i in top]


def test_untrusted_model_gets_a_card_without_weights_and_says_why(open_card, tmp_path, monkeypatch):
    # a user's estimator class, from the conformance suite's helper module
    monkeypatch.syspath_prepend(str(TESTS))
    user = importlib.import_module("conformance._user_estimator").ShrunkCentroidClassifier
    name = f"{user.__module__}.{user.__qualname__}"
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), user(0.2, random_state=0)).fit(X, y)
    path = tmp_path / "user.skv"
    skvault.dump(model, path, X=X, y=y, cv=3, source=False)
    opened = open_card(write_card(path))
    opened.check_clean()
    page = opened.page
    assert page.locator("figure.weights").count() == 0
    assert page.locator("svg.bars").count() == 0
    assert page.locator("#weights ul.untrusted li").all_inner_texts() == [name]
    assert "not trusted by default" in page.inner_text("#weights .note")
    # what the metadata alone shows is still there
    assert page.locator("figure.fold-plot circle.fold").count() == 3
    assert "Pipeline" in page.inner_text("h1")


# -- the command ---------------------------------------------------------------------------------


def test_without_output_the_card_goes_to_stdout(forest_card, tmp_path):
    result = run("report", str(forest_card.with_suffix(".skv")))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout == forest_card.read_text(encoding="utf-8")


@pytest.mark.parametrize("cut", [0.5, 0.99], ids=["half", "last-bytes"])
def test_truncated_file_exits_1_with_a_clear_message(tmp_path, cut):
    path = tmp_path / "model.skv"
    skvault.dump({"w": np.arange(10.0)}, path, source=False)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    card = tmp_path / "card.html"
    result = run("report", str(path), "-o", str(card))
    assert result.exit_code == 1
    assert result.stderr.startswith("skvault: FormatError")
    assert "Traceback" not in result.output
    assert not card.exists()


def test_damaged_array_exits_1_though_the_metadata_reads(tmp_path):
    # the metadata is intact, the model's array is not: no card for a file that does not load
    path = tmp_path / "model.skv"
    values = np.full(10_000, 1.2345)  # 80 kB of the model's (packed in buffers/0.bin)
    skvault.dump({"w": values}, path, source=False)
    data = bytearray(path.read_bytes())
    data[data.find(values[:4].tobytes()) + 40_000] ^= 1
    path.write_bytes(bytes(data))
    assert skvault.read_metadata(path)["skvault_metadata"] == 1
    card = tmp_path / "card.html"
    result = run("report", str(path), "-o", str(card))
    assert result.exit_code == 1
    assert result.stderr.startswith("skvault: IntegrityError: buffers/0.bin: SHA-256")
    assert not card.exists()


def test_not_an_artifact_exits_1(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a zip\n")
    result = run("report", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith("skvault: FormatError")
    assert result.stdout == ""


def test_missing_input_exits_1(tmp_path):
    result = run("report", str(tmp_path / "absent.skv"))
    assert result.exit_code == 1
    assert "absent.skv" in result.stderr
    assert "No such file" in result.stderr


def test_output_in_a_missing_folder_exits_1_and_writes_nothing(tmp_path):
    path = tmp_path / "model.skv"
    skvault.dump({"w": np.arange(3.0)}, path, source=False)
    target = tmp_path / "missing" / "card.html"
    result = run("report", str(path), "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr == (
        f"skvault: cannot write {target}: the folder {target.parent} does not exist\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skv"]


def test_failed_write_keeps_the_old_card_and_leaves_no_partial_file(tmp_path):
    # a real write failure midway: the file size limit stops the write after 4 KiB (EFBIG)
    resource = pytest.importorskip("resource")
    path = tmp_path / "model.skv"
    skvault.dump({"w": np.arange(3.0)}, path, source=False)
    target = tmp_path / "card.html"
    target.write_text("the previous card\n")

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run(
        [sys.executable, "-m", "skvault", "report", str(path), "-o", str(target)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"skvault: cannot write {target}: ")
    assert "Traceback" not in result.stderr
    assert target.read_text() == "the previous card\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.html", "model.skv"]
