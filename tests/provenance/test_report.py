"""``skvault.report``: the model card's content, read back from its HTML with a parser.

How the card renders in a browser is tested in tests/cli/test_report.py; here the document
itself: escaping, what each kind of model gets, and how the card is written.
"""

from __future__ import annotations

import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault
from skvault.format import write_artifact

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><svg onload=alert(2)>',
    "' onmouseover='alert(3)",
    "</title><script>alert(4)</script>",
    "&lt;not an entity&gt;",
]


class Document(HTMLParser):
    """The elements of a page: tag, attributes and the text directly inside each."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and (cls is None or cls in (attrs.get("class") or "").split())
        ]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


@pytest.fixture(scope="module")
def iris_frame():
    X, y = load_iris(return_X_y=True)
    return pd.DataFrame(X, columns=["a", "b", "c", "d"]), y


def test_every_string_from_the_file_is_escaped(tmp_path, iris_frame):
    X, y = iris_frame
    X = X.set_axis(PAYLOADS[:4], axis=1)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    path = tmp_path / "m.skv"
    skvault.dump(
        model,
        path,
        X=X,
        y=y,
        source=False,
        description=PAYLOADS[0],
        tags=PAYLOADS,
        metrics={PAYLOADS[1]: PAYLOADS[2]},
        scores={PAYLOADS[3]: 1.0},
    )
    page = skvault.report(path)
    doc = Document(page)
    # the only elements are the card's own: no script, no handler, no svg beyond the charts
    assert doc.tags("script") == []
    assert all(not key.startswith("on") for _, attrs in doc.elements for key in attrs)
    assert len(doc.tags("svg")) == len(model.classes_)
    assert len(doc.tags("title")) == 1 + len(doc.tags("g", "row"))  # page title + tooltips
    for payload in PAYLOADS:
        assert payload in doc.all_text
    for payload in PAYLOADS[:4]:
        assert payload not in page  # only ever present escaped
    # attribute values come back whole, quotes included
    features = {attrs["data-feature"] for attrs in doc.tags("rect", "bar")}
    assert features == set(PAYLOADS[:4])


def test_a_script_cannot_run_even_if_escaping_failed(tmp_path):
    path = tmp_path / "m.skv"
    skvault.dump({"w": np.arange(3.0)}, path, source=False)
    metas = [
        attrs for attrs in Document(skvault.report(path)).tags("meta") if attrs.get("http-equiv")
    ]
    assert metas[0]["http-equiv"] == "Content-Security-Policy"
    directives = dict(d.strip().split(" ", 1) for d in metas[0]["content"].split(";"))
    assert directives["default-src"] == "'none'"
    assert "script-src" not in directives


def test_output_is_written_atomically_and_returned(tmp_path, logistic, iris):
    X, y = iris
    path = tmp_path / "m.skv"
    skvault.dump(logistic, path, X=X, y=y, source=False)
    target = tmp_path / "card.html"
    page = skvault.report(path, target)
    assert target.read_bytes() == page.encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.html", "m.skv"]
    buffer = io.BytesIO()
    assert skvault.report(path, buffer) == page
    assert buffer.getvalue() == page.encode("utf-8")


def test_output_in_a_missing_folder_raises_before_any_work(tmp_path):
    target = tmp_path / "missing" / "card.html"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        skvault.report(tmp_path / "absent.skv", target)  # the artifact is not even read
    assert info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_output_below_a_file_is_refused(tmp_path):
    path = tmp_path / "m.skv"
    skvault.dump({"w": np.arange(3.0)}, path, source=False)
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        skvault.report(path, path / "card.html")


def test_file_objects_and_bytes_give_the_same_card_without_a_file_name(tmp_path, logistic, iris):
    X, y = iris
    path = tmp_path / "m.skv"
    skvault.dump(logistic, path, X=X, y=y, source=False)
    data = path.read_bytes()
    from_bytes = skvault.report(data)
    with open(path, "rb") as fh:
        assert skvault.report(fh) == from_bytes
    assert "m.skv" not in from_bytes
    assert "m.skv" in skvault.report(path)
    bars = Document(from_bytes).tags("rect", "bar")
    assert len(bars) == logistic.coef_.size


def test_pipeline_charts_its_final_step_with_the_names_it_receives(tmp_path, iris_frame):
    X, y = iris_frame
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    path = tmp_path / "m.skv"
    skvault.dump(model, path, source=False)
    doc = Document(skvault.report(path))
    assert "final step 'logisticregression'" in doc.all_text
    figures = doc.tags("figure", "weights")
    assert [f["data-kind"] for f in figures] == ["coefficients"] * 3
    bars = doc.tags("rect", "bar")
    coef = model[-1].coef_
    expected = [list(X.columns[np.argsort(-np.abs(row), kind="stable")]) for row in coef]
    assert [b["data-feature"] for b in bars] == [name for row in expected for name in row]


def test_binary_coefficients_name_the_positive_class(tmp_path):
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "other"])[(y > 0).astype(int)]
    model = LogisticRegression(max_iter=1000).fit(X, labels)
    path = tmp_path / "m.skv"
    skvault.dump(model, path, source=False)
    doc = Document(skvault.report(path))
    assert len(doc.tags("svg", "bars")) == 1
    assert f"class {model.classes_[1]} (positive class)" in doc.all_text
    values = [float(b["data-value"]) for b in doc.tags("rect", "bar")]
    assert values == sorted(model.coef_[0], key=lambda v: -abs(v))


def test_regression_coefficients_one_chart_unnamed_features(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    model = Ridge().fit(X, X @ [3.0, -1.0, 0.5])
    path = tmp_path / "m.skv"
    skvault.dump(model, path, source=False)
    doc = Document(skvault.report(path))
    bars = doc.tags("rect", "bar")
    assert [b["data-feature"] for b in bars] == ["x0", "x1", "x2"]
    assert [b["class"] for b in bars] == ["bar positive", "bar negative", "bar positive"]
    assert "No feature names recorded" in doc.all_text


def test_model_without_weights_says_so(tmp_path, iris):
    X, y = iris
    path = tmp_path / "m.skv"
    skvault.dump(KNeighborsClassifier().fit(X, y), path, source=False)
    doc = Document(skvault.report(path))
    assert doc.tags("svg") == []
    assert "no feature_importances_ or coef_" in doc.all_text


def test_file_without_provenance_metadata(tmp_path):
    path = tmp_path / "plain.skv"
    write_artifact({"w": np.arange(3.0)}, path)
    doc = Document(skvault.report(path))
    assert "carries no provenance metadata" in doc.all_text
    assert "No environment recorded." in doc.all_text
    assert doc.tags("svg") == []


def test_malformed_metadata_does_not_break_the_card(tmp_path):
    # a hand-made file whose metadata has every field of the wrong type
    path = tmp_path / "odd.skv"
    meta = {
        "skvault_metadata": 1,
        "created_at": 5,
        "environment": {"python": "3.11", "installed": {"x": "1.0"}, "core": [1]},
        "schema": {"input": {"feature_names": "abc", "dtypes": 3}, "output": {"classes": 7}},
        "data": {"fingerprint": {"X": [1, 2]}},
        "source": {"git": "main", "text": 3},
        "scores": {"cv": {"folds": {"s": [1.0, "x", None, float("nan")]}, "mean": {"s": "?"}}},
        "description": {"not": "text"},
        "tags": "one",
        "metrics": [1, 2],
        "golden": {"X": {"sparse": "csr", "shape": "?"}},
    }
    write_artifact({"w": np.arange(3.0)}, path, metadata=meta)
    doc = Document(skvault.report(path))
    circles = doc.tags("circle", "fold")
    assert [c["data-value"] for c in circles] == ["1.0"]  # the only finite fold score
    assert "3 folds without a finite score are not drawn" in doc.all_text


def test_truncated_file_raises_format_error(tmp_path):
    path = tmp_path / "m.skv"
    skvault.dump({"w": np.arange(3.0)}, path, source=False)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(skvault.FormatError):
        skvault.report(path)


def test_model_whose_state_breaks_an_invariant_raises(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    model = Ridge().fit(X, X @ [1.0, 2.0, 3.0])
    model.n_features_in_ = 5  # coef_ has 3 columns
    path = tmp_path / "m.skv"
    skvault.dump(model, path, source=False)
    with pytest.raises(skvault.InvalidStateError, match="n_features_in_"):
        skvault.report(path)


def test_report_is_deterministic(tmp_path, logistic, iris):
    X, y = iris
    path = tmp_path / "m.skv"
    skvault.dump(logistic, path, X=X, y=y, cv=3, source=False)
    assert skvault.report(path) == skvault.report(str(path))  # no time of writing in it
