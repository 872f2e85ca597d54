"""Checks on load: recorded against running versions, and the golden sample recomputed.

Version mismatches are produced for real, through dump's documented ``environment=`` override;
changed golden samples by rewriting the artifact's metadata with the format's own writer.
"""

from __future__ import annotations

import importlib.metadata as md
import io
import platform
import warnings

import numpy as np
import pytest

import skvault
from skvault.format import open_artifact, write_artifact

SKLEARN = md.version("scikit-learn")
OLD = {"core": {"scikit-learn": "0.24.2"}, "model": {"scikit-learn": "0.24.2"}}


class Unlisted:
    """A type no allow-list trusts."""

    def __init__(self) -> None:
        self.value = 1


def _rewrite(data: bytes, change) -> bytes:
    """Return ``data`` with its metadata passed through ``change``; the model is unchanged."""
    with open_artifact(data) as artifact:
        meta = artifact.metadata()
    change(meta)
    buf = io.BytesIO()
    write_artifact(skvault.loads(data, on_mismatch="ignore", verify=False), buf, metadata=meta)
    return buf.getvalue()


@pytest.fixture(scope="module")
def sampled(logistic, iris):
    """An artifact with a golden sample, written in the running environment."""
    return skvault.dumps(logistic, X=iris[0])


@pytest.fixture(scope="module")
def old_sampled(logistic, iris):
    """The same model as if written with scikit-learn 0.24.2."""
    return skvault.dumps(logistic, X=iris[0], environment=OLD)


def test_same_environment_loads_silently(sampled, tmp_path):
    path = tmp_path / "m.skv"
    path.write_bytes(sampled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skvault.load(path)
        skvault.load(path, mmap=True)
        skvault.loads(sampled)


def test_version_mismatch_warns_with_both_versions(old_sampled, iris):
    with pytest.warns(skvault.VersionMismatchWarning) as record:
        model = skvault.loads(old_sampled)
    assert len(record) == 1
    warning = record[0].message
    assert warning.differences == {"scikit-learn": ("0.24.2", SKLEARN)}
    assert warning.recorded == {"scikit-learn": "0.24.2"}
    assert warning.current == {"scikit-learn": SKLEARN}
    assert f"scikit-learn: recorded 0.24.2, running {SKLEARN}" in str(warning)
    assert record[0].filename == __file__, "the warning points at the caller's load"
    np.testing.assert_array_equal(model.predict(iris[0]), model.predict(iris[0]))


def test_the_warning_can_be_caught_like_sklearns(old_sampled, tmp_path):
    path = tmp_path / "old.skv"
    path.write_bytes(old_sampled)
    with warnings.catch_warnings():
        warnings.simplefilter("error", skvault.VersionMismatchWarning)
        with pytest.raises(skvault.VersionMismatchWarning) as info:
            skvault.load(path)
    assert info.value.recorded["scikit-learn"] == "0.24.2"


def test_python_and_missing_distributions_are_compared(logistic):
    data = skvault.dumps(
        logistic,
        environment={"python": {"version": "3.8.0"}, "model": {"gone-package": "1.0"}},
    )
    with pytest.warns(skvault.VersionMismatchWarning, match="not installed") as record:
        skvault.loads(data)
    assert record[0].message.differences == {
        "python": ("3.8.0", platform.python_version()),
        "gone-package": ("1.0", None),
    }


def test_only_the_packages_that_matter_are_compared(logistic):
    # a different version of something the model does not use is no mismatch
    data = skvault.dumps(logistic, environment={"core": {"joblib": "0.1"}, "skvault": "0.0.1"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skvault.loads(data)


def test_on_mismatch_error_refuses_before_building(old_sampled, logistic):
    with pytest.raises(skvault.EnvironmentMismatchError) as info:
        skvault.loads(old_sampled, on_mismatch="error")
    assert info.value.differences == {"scikit-learn": ("0.24.2", SKLEARN)}
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, skvault.SkvaultError)
    assert "0.24.2" in str(info.value) and SKLEARN in str(info.value)
    # an untrusted type would fail the build: the version check came first
    untrusted = skvault.dumps(Unlisted(), environment=OLD)
    with pytest.raises(skvault.EnvironmentMismatchError):
        skvault.loads(untrusted, on_mismatch="error")
    with pytest.warns(skvault.VersionMismatchWarning), pytest.raises(skvault.UntrustedTypeError):
        skvault.loads(untrusted)


def test_on_mismatch_ignore_is_silent(old_sampled):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skvault.loads(old_sampled, on_mismatch="ignore")


def _nudge_proba(meta) -> None:
    meta["golden"]["outputs"]["predict_proba"][3, 1] += 1e-6


def test_verify_catches_a_changed_golden_output(sampled):
    tampered = _rewrite(sampled, _nudge_proba)
    with pytest.raises(skvault.VerificationError) as info:
        skvault.loads(tampered, verify=True)
    error = info.value
    assert error.output == "predict_proba"
    assert error.index == (3, 1)
    assert error.difference == pytest.approx(1e-6, rel=1e-6)
    assert error.expected - error.actual == pytest.approx(1e-6, rel=1e-6)
    assert "predict_proba" in str(error) and "row 3, column 1" in str(error)
    assert isinstance(error, RuntimeError) and isinstance(error, skvault.SkvaultError)


def test_verify_catches_a_changed_model(sampled, logistic):
    changed = skvault.loads(sampled)
    changed.coef_ = changed.coef_ * (1 + 1e-6)
    with open_artifact(sampled) as artifact:
        meta = artifact.metadata()
    buf = io.BytesIO()
    write_artifact(changed, buf, metadata=meta)
    with pytest.raises(skvault.VerificationError) as info:
        skvault.loads(buf.getvalue(), verify=True)
    assert info.value.output in ("predict_proba", "predict")


def test_verify_reports_the_largest_difference(sampled):
    def change(meta):
        proba = meta["golden"]["outputs"]["predict_proba"]
        proba[0, 0] += 1e-7
        proba[7, 2] -= 1e-3

    with pytest.raises(skvault.VerificationError) as info:
        skvault.loads(_rewrite(sampled, change), verify=True)
    assert info.value.index == (7, 2)
    assert "2 of 96 values" in str(info.value)


def test_verify_compares_labels_exactly(sampled, logistic, iris):
    def change(meta):
        labels = meta["golden"]["outputs"]["predict"]
        labels[5] = (labels[5] + 1) % 3

    with pytest.raises(skvault.VerificationError) as info:
        skvault.loads(_rewrite(sampled, change), verify=True)
    assert info.value.output == "predict"
    assert info.value.index == (5,)
    assert info.value.actual == logistic.predict(iris[0][5:6])[0]


def test_verify_uses_the_tolerance_stored_in_the_file(sampled):
    def loosen(meta):
        _nudge_proba(meta)
        meta["golden"]["rtol"] = 1e-3

    skvault.loads(_rewrite(sampled, loosen), verify=True)


def test_verify_passes_on_a_faithful_model(sampled, old_sampled):
    skvault.loads(sampled, verify=True)
    with pytest.warns(skvault.VersionMismatchWarning):
        skvault.loads(old_sampled, verify=True)


def test_auto_verifies_only_when_versions_differ(sampled, old_sampled):
    skvault.loads(_rewrite(sampled, _nudge_proba))  # same versions: not checked
    tampered_old = _rewrite(old_sampled, _nudge_proba)
    with pytest.warns(skvault.VersionMismatchWarning), pytest.raises(skvault.VerificationError):
        skvault.loads(tampered_old)
    with pytest.raises(skvault.VerificationError):
        skvault.loads(tampered_old, on_mismatch="ignore")  # still differs: still verified
    with pytest.warns(skvault.VersionMismatchWarning):
        skvault.loads(tampered_old, verify=False)


def test_verify_detects_a_missing_output_and_a_shape_change(sampled):
    def extra(meta):
        meta["golden"]["outputs"]["transform"] = np.zeros((32, 2))

    with pytest.raises(skvault.VerificationError, match="no transform method") as info:
        skvault.loads(_rewrite(sampled, extra), verify=True)
    assert info.value.output == "transform" and info.value.index is None

    def reshape(meta):
        meta["golden"]["outputs"]["predict_proba"] = meta["golden"]["outputs"]["predict_proba"][:5]

    with pytest.raises(skvault.VerificationError, match="shape"):
        skvault.loads(_rewrite(sampled, reshape), verify=True)


def test_verify_true_without_a_golden_sample_raises(logistic):
    with pytest.raises(skvault.VerificationError, match="no golden sample"):
        skvault.loads(skvault.dumps(logistic), verify=True)
    buf = io.BytesIO()
    write_artifact(logistic, buf)  # no metadata at all
    with pytest.raises(skvault.VerificationError, match="no golden sample"):
        skvault.loads(buf.getvalue(), verify=True)
    # "auto" has nothing to check and no versions to compare: loads
    skvault.loads(buf.getvalue())


@pytest.mark.parametrize("value", ["never", None, 0, "Warn"])
def test_bad_on_mismatch(sampled, value):
    with pytest.raises(ValueError, match="on_mismatch"):
        skvault.loads(sampled, on_mismatch=value)


@pytest.mark.parametrize("value", ["yes", None, 1, "AUTO"])
def test_bad_verify(sampled, tmp_path, value):
    with pytest.raises(ValueError, match="verify"):
        skvault.loads(sampled, verify=value)
    path = tmp_path / "m.skv"
    path.write_bytes(sampled)
    with pytest.raises(ValueError, match="verify"):
        skvault.load(path, verify=value)


def test_malformed_environment_is_a_format_error(sampled):
    def change(meta):
        meta["environment"]["model"] = ["scikit-learn"]

    with pytest.raises(skvault.FormatError, match=r"environment\.model"):
        skvault.loads(_rewrite(sampled, change))
    skvault.loads(_rewrite(sampled, change), on_mismatch="ignore", verify=False)


def test_a_malformed_golden_sample_is_a_format_error(sampled):
    def change(meta):
        meta["golden"]["X"] = "not rows"

    with pytest.raises(skvault.FormatError, match="golden sample is malformed"):
        skvault.loads(_rewrite(sampled, change), verify=True)
