"""Calibration and selective prediction on small generated arrays with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax.analysis import calibration as cal
from tfsoftmax.analysis import figures
from tfsoftmax.files import write_json


def _binary(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities whose predicted class (0) has `confidence`; the label is 0 where correct."""
    probs = np.stack([confidence, 1 - confidence], axis=1)
    return probs, np.where(correct, 0, 1)


def _sampled(rng: np.random.Generator, n: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z / temperature): the model is right with T = temperature."""
    logits = rng.normal(scale=3.0, size=(n, 10))
    probs = cal.softmax(logits, temperature)
    labels = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, 9)


def test_ece_of_calibrated_data_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, size=200_000)
    probs, labels = _binary(confidence, rng.random(confidence.size) < confidence)
    assert cal.expected_calibration_error(probs, labels) < 0.005


def test_ece_of_overconfident_data_is_the_gap() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.6, 1.0, size=200_000)
    probs, labels = _binary(confidence, rng.random(confidence.size) < confidence - 0.1)
    assert cal.expected_calibration_error(probs, labels) == pytest.approx(0.1, abs=0.005)


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25]])
    labels = np.array([0, 1, 1, 2])
    # bins of 0.25: (0.75, 1] holds 0.9 (right): gap 0.1; (0.5, 0.75] holds 0.6 (wrong) and 0.7 (right):
    # accuracy 0.5, confidence 0.65; (0.25, 0.5] holds 0.4 (wrong): gap 0.4. (1 * 0.1 + 2 * 0.15 + 0.4) / 4
    assert cal.expected_calibration_error(probs, labels, bins=4) == pytest.approx(0.2, abs=1e-12)
    rel = cal.reliability(probs, labels, bins=4)
    np.testing.assert_array_equal(rel.counts, [0, 1, 2, 1])
    np.testing.assert_allclose(rel.accuracy[1:], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(rel.confidence[1:], [0.4, 0.65, 0.9])
    assert np.isnan(rel.accuracy[0]) and np.isnan(rel.confidence[0])
    assert rel.ece == pytest.approx(0.2, abs=1e-12)


def test_ece_bins_are_closed_on_the_right() -> None:
    probs, labels = _binary(np.array([0.5, 1.0]), np.array([True, True]))
    rel = cal.reliability(probs, labels, bins=2)
    np.testing.assert_array_equal(rel.counts, [1, 1])


def test_nll_is_mean_negative_log_of_the_true_class() -> None:
    rng = np.random.default_rng(2)
    logits, labels = rng.normal(size=(50, 4)), rng.integers(0, 4, size=50)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(50), labels]))
    assert cal.negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-12)
    assert cal.negative_log_likelihood(probs, labels, from_logits=False) == pytest.approx(expected, rel=1e-12)


def test_nll_is_finite_for_huge_logits_where_the_naive_one_overflows() -> None:
    logits, labels = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4 - 2.0]]), np.array([0, 2])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.isnan(naive).any()
    # row 1: log softmax of the true class is -2 - log(1 + e^-2); row 0 is exactly 0
    expected = (2.0 + np.log1p(np.exp(-2.0))) / 2
    assert cal.negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-12)


def test_nll_from_probabilities_is_inf_when_the_true_class_has_probability_zero() -> None:
    assert cal.negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1]), from_logits=False) == np.inf


@pytest.mark.parametrize("true_t", [0.5, 2.0, 4.0])
def test_fit_temperature_recovers_the_generating_temperature(true_t: float) -> None:
    logits, labels = _sampled(np.random.default_rng(3), 20_000, true_t)
    assert cal.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)


def test_fit_temperature_is_one_on_calibrated_data_and_lowers_the_nll() -> None:
    logits, labels = _sampled(np.random.default_rng(4), 20_000, 1.0)
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(1.0, rel=0.05)
    for other in (0.8 * t, 1.25 * t):
        assert cal.negative_log_likelihood(logits / t, labels) < cal.negative_log_likelihood(logits / other, labels)


def test_fit_temperature_on_all_correct_data_returns_the_smallest_temperature() -> None:
    logits, labels = np.array([[5.0, 0.0], [0.0, 3.0], [4.0, 1.0]]), np.array([0, 1, 0])
    assert cal.fit_temperature(logits, labels) == cal.T_RANGE[0]


def test_fit_temperature_is_one_where_it_cannot_matter() -> None:
    assert cal.fit_temperature(np.array([[2.0], [-1.0]]), np.array([0, 0])) == 1.0
    assert cal.fit_temperature(np.full((3, 4), 7.0), np.array([0, 1, 2])) == 1.0


def test_fit_temperature_is_deterministic() -> None:
    logits, labels = _sampled(np.random.default_rng(5), 2_000, 1.5)
    assert cal.fit_temperature(logits, labels) == cal.fit_temperature(logits.copy(), labels.copy())


def test_summarize_fits_on_validation_only() -> None:
    rng = np.random.default_rng(6)
    val = _sampled(rng, 5_000, 2.0)
    first = cal.summarize(*val, *_sampled(rng, 3_000, 2.0))
    second = cal.summarize(*val, *_sampled(rng, 3_000, 0.5))
    assert first.temperature == second.temperature == cal.fit_temperature(*val)
    assert first.threshold_95 == second.threshold_95
    assert first.ece != second.ece


def test_summarize_applies_the_validation_temperature_to_test() -> None:
    rng = np.random.default_rng(7)
    val, (test_logits, test_labels) = _sampled(rng, 10_000, 2.0), _sampled(rng, 10_000, 2.0)
    summary = cal.summarize(*val, test_logits, test_labels)
    scaled = cal.softmax(test_logits, summary.temperature)
    assert summary.ece_calibrated == cal.expected_calibration_error(scaled, test_labels)
    assert summary.ece_calibrated < summary.ece / 3
    assert summary.nll_calibrated < summary.nll
    assert summary.accuracy_at[1.0] == np.mean(test_logits.argmax(axis=1) == test_labels)


def test_summarize_reports_the_validation_threshold_on_test() -> None:
    rng = np.random.default_rng(8)
    val, test = _sampled(rng, 10_000, 1.0), _sampled(rng, 10_000, 1.0)
    summary = cal.summarize(*val, *test)
    threshold = cal.threshold_for_accuracy(cal.softmax(val[0]), val[1])
    assert threshold is not None and summary.threshold_95 == threshold[0]
    confidence = cal.softmax(test[0]).max(axis=1)
    kept = confidence >= summary.threshold_95
    assert summary.coverage_95 == kept.mean()
    assert summary.accuracy_95 == np.mean(test[0].argmax(axis=1)[kept] == test[1][kept])
    assert summary.accuracy_95 == pytest.approx(0.95, abs=0.02)


def test_summarize_without_a_reachable_threshold() -> None:
    logits, labels = np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([1, 0])
    summary = cal.summarize(logits, labels, logits, labels)
    assert (summary.threshold_95, summary.coverage_95, summary.accuracy_95) == (None, None, None)


def test_summarize_keeps_the_test_reliability_bins_raw_and_temperature_scaled() -> None:
    rng = np.random.default_rng(12)
    val, (test_logits, test_labels) = _sampled(rng, 2_000, 2.0), _sampled(rng, 2_000, 2.0)
    summary = cal.summarize(*val, test_logits, test_labels)
    raw = cal.reliability(cal.softmax(test_logits), test_labels)
    scaled = cal.reliability(cal.softmax(test_logits, summary.temperature), test_labels)
    for kept, expected in ((summary.reliability, raw), (summary.reliability_calibrated, scaled)):
        for field in ("edges", "counts", "confidence", "accuracy"):
            np.testing.assert_array_equal(getattr(kept, field), getattr(expected, field))
    assert (summary.reliability.ece, summary.reliability_calibrated.ece) == (summary.ece, summary.ece_calibrated)


def test_to_json_is_strict_json_and_what_the_record_writer_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    summary = cal.summarize(*_sampled(rng, 500, 1.0), *_sampled(rng, 500, 1.0))
    text = json.dumps(summary.to_json(), allow_nan=False)  # strict JSON: no bare NaN
    data = json.loads(text)
    write_json(tmp_path / "record.json", summary.to_json())
    assert json.loads((tmp_path / "record.json").read_text()) == data
    assert set(data["accuracy_at"]) == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"}
    assert data["temperature"] == summary.temperature and data["accuracy_at"]["0.8"] == summary.accuracy_at[0.8]
    bins = data["reliability"]
    assert set(bins) == {"edges", "counts", "confidence", "accuracy"} and len(bins["edges"]) == cal.BINS + 1
    assert bins["counts"] == summary.reliability.counts.tolist() and sum(bins["counts"]) == 500
    empty = [i for i, count in enumerate(bins["counts"]) if not count]
    assert empty and all(bins["confidence"][i] == bins["accuracy"][i] == "NaN" for i in empty)
    filled = summary.reliability.counts > 0
    np.testing.assert_array_equal(
        [float(v) for v in np.array(bins["accuracy"])[filled]], summary.reliability.accuracy[filled]
    )
    assert data["reliability_calibrated"]["counts"] == summary.reliability_calibrated.counts.tolist()


def test_accuracy_coverage_falls_as_less_confident_inputs_are_added() -> None:
    confidence = np.linspace(0.99, 0.51, 100)
    probs, labels = _binary(confidence, np.arange(100) % 10 < 10 - np.arange(100) // 10)
    curve = cal.accuracy_coverage(probs, labels)
    values = [curve[c] for c in cal.COVERAGES]
    assert values == sorted(values, reverse=True) and values[0] == 1.0 and values[-1] < values[0]
    assert curve[1.0] == np.mean(probs.argmax(axis=1) == labels)


def test_accuracy_coverage_breaks_ties_by_input_order() -> None:
    probs, labels = _binary(np.full(4, 0.7), np.array([True, True, False, False]))
    assert cal.accuracy_coverage(probs, labels, (0.5, 1.0)) == {0.5: 1.0, 1.0: 0.5}
    rng = np.random.default_rng(11)
    confidence, correct = rng.choice([0.6, 0.7, 0.8], size=1_000), rng.random(1_000) < 0.5
    order = np.lexsort((np.arange(1_000), -confidence))  # by confidence, then by position
    expected = {c: correct[order][: round(c * 1_000)].mean() for c in cal.COVERAGES}
    assert cal.accuracy_coverage(*_binary(confidence, correct)) == expected
    with pytest.raises(ValueError, match="coverage must lie in"):
        cal.accuracy_coverage(probs, labels, (0.0,))


def test_threshold_for_accuracy_is_the_lowest_that_reaches_the_target() -> None:
    probs, labels = _binary(np.array([0.6, 0.9, 0.7, 0.8]), np.array([True, True, False, True]))
    assert cal.threshold_for_accuracy(probs, labels, 0.75) == (0.6, 1.0)
    assert cal.threshold_for_accuracy(probs, labels, 0.8) == (0.8, 0.5)


def test_threshold_for_accuracy_keeps_or_drops_ties_together() -> None:
    probs, labels = _binary(np.array([0.8, 0.9, 0.8]), np.array([True, True, False]))
    assert cal.threshold_for_accuracy(probs, labels, 1.0) == (0.9, pytest.approx(1 / 3))


def test_threshold_for_accuracy_is_none_when_unreachable() -> None:
    probs, labels = _binary(np.array([0.9, 0.8]), np.array([False, True]))
    assert cal.threshold_for_accuracy(probs, labels, 0.95) is None
    with pytest.raises(ValueError, match="target accuracy"):
        cal.threshold_for_accuracy(probs, labels, 1.5)


def test_inputs_of_the_wrong_shape_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"got \(3,\) and \(3,\)"):
        cal.expected_calibration_error(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"got \(2, 2\) and \(3,\)"):
        cal.fit_temperature(np.ones((2, 2)), np.zeros(3))


@pytest.mark.parametrize("reachable", [True, False])
def test_figures_are_png(reachable: bool) -> None:
    rng = np.random.default_rng(10)
    val, test = _sampled(rng, 400, 2.0), _sampled(rng, 400, 2.0)
    val_labels = val[1] if reachable else (val[0].argmax(axis=1) + 1) % 10  # always wrong: no threshold
    summary = cal.summarize(val[0], val_labels, *test)
    assert (summary.threshold_95 is not None) == reachable
    for png in (figures.reliability_figure(*test, summary), figures.coverage_figure(*test, summary)):
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
