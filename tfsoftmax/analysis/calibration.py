"""When to trust a prediction: calibration (ECE, NLL, temperature scaling) and selective prediction.

D2L asks whether returning the most likely label is always wise, e.g. for a medical diagnosis. These
metrics say how far the softmax confidence can be trusted and what accuracy the model keeps if it may say
"not sure" on its least confident inputs. Everything is NumPy in float64, so the numbers are exact and
testable without TensorFlow. Probabilities and logits have shape (n, classes); labels are class ids (n,).
Whatever is chosen (the temperature, the 95% threshold) is chosen on validation only: `summarize` takes
the validation arrays to fit and the test arrays only to report. The figures are drawn by `figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BINS = 15  # Guo et al. (2017)'s ECE: 15 equal-width confidence bins
COVERAGES = tuple(round(0.1 * i, 1) for i in range(1, 11))
TARGET = 0.95  # the accuracy a cautious user asks for on the inputs the model does answer
T_RANGE = (1e-2, 1e2)  # the temperatures searched; a bound is returned when validation wants more
_BISECTIONS = 60  # halves the log-temperature interval to below 1e-16: the answer is exact in float64


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or labels.shape != scores.shape[:1] or not len(labels):
        raise ValueError(
            f"expected scores of shape (n, classes) and labels of shape (n,) with n > 0, "
            f"got {scores.shape} and {labels.shape}"
        )
    return scores, labels


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax) by log-sum-exp: finite for any finite logits, where exp alone overflows past ~709."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities of softmax(logits / temperature); temperature 1 is the model as trained."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def negative_log_likelihood(scores: np.ndarray, labels: np.ndarray, *, from_logits: bool = True) -> float:
    """Mean -log p(true class). From logits it goes through `log_softmax`, so huge logits stay finite;
    from probabilities a true class given probability 0 makes it inf, which is the truth about them."""
    scores, labels = _check(scores, labels)
    if from_logits:
        log_p = log_softmax(scores)[np.arange(len(labels)), labels]
    else:
        with np.errstate(divide="ignore"):
            log_p = np.log(scores[np.arange(len(labels)), labels])
    return float(-log_p.mean())


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin (edges[i], edges[i + 1]]: how many inputs, their mean confidence and their
    accuracy; NaN where a bin is empty, so a diagram draws nothing there rather than a false zero."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Mean |accuracy - confidence| over the bins, weighted by their share of the inputs: 0.05 means the
        model's stated confidence is off by five points on average."""
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / self.counts.sum())

    def to_json(self) -> dict[str, list[Any]]:
        """Plain JSON lists; an empty bin's NaN is the string "NaN", as `files.write_json` writes it, which
        float() reads back."""

        def floats(values: np.ndarray) -> list[float | str]:
            return [float(v) if math.isfinite(v) else "NaN" for v in values]

        return {
            "edges": floats(self.edges),
            "counts": [int(c) for c in self.counts],
            "confidence": floats(self.confidence),
            "accuracy": floats(self.accuracy),
        }


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> Reliability:
    """Bin the inputs by the predicted class's probability, as a reliability diagram draws them."""
    probs, labels = _check(probs, labels)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")  # right-closed bins, as Guo et al.
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    return Reliability(edges, counts, mean_conf, accuracy)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE of `probs`: see `Reliability.ece`."""
    return reliability(probs, labels, bins).ece


def fit_temperature(val_logits: np.ndarray, val_labels: np.ndarray) -> float:
    """The one scalar T > 0 minimising the validation NLL of softmax(logits / T) (Guo et al.'s
    temperature scaling). It takes validation arrays only: fitting on test would make the calibrated
    test numbers a fit, not a measurement.

    The NLL is convex in 1/T, so its derivative is increasing and bisection on its sign finds the
    minimum exactly and deterministically. No finite minimum exists when every validation input is
    classified correctly (sharper is always better): the smallest temperature of `T_RANGE` is returned.
    A single class or logits equal within every row make T irrelevant: 1 is returned.
    """
    logits, labels = _check(val_logits, val_labels)
    if np.all(np.ptp(logits, axis=1) == 0):
        return 1.0
    true = logits[np.arange(len(labels)), labels]

    def slope(log_beta: float) -> float:  # d NLL / d(1/T): expected logit under the model minus the true one
        beta = np.exp(log_beta)
        return float(((softmax(logits * beta) * logits).sum(axis=1) - true).mean())

    low, high = np.log(1 / T_RANGE[1]), np.log(1 / T_RANGE[0])
    if slope(low) >= 0:
        return T_RANGE[1]
    if slope(high) <= 0:
        return T_RANGE[0]
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if slope(mid) < 0 else (low, mid)
    return float(np.exp(-(low + high) / 2))


def ranked(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidences from most to least confident and whether each is correct; equal confidences keep
    their input order, so the same data always selects the same inputs."""
    probs, labels = _check(probs, labels)
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    return confidence[order], (probs.argmax(axis=1) == labels)[order]


def accuracy_coverage(
    probs: np.ndarray, labels: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> dict[float, float]:
    """Accuracy on the most confident fraction of the inputs, per fraction: what the model reaches if it
    may abstain on the rest. Coverage 1 is the plain accuracy."""
    _, correct = ranked(probs, labels)
    hits = np.cumsum(correct)
    out = {}
    for coverage in coverages:
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage must lie in (0, 1], got {coverage}")
        kept = max(1, round(coverage * len(correct)))
        out[coverage] = float(hits[kept - 1] / kept)
    return out


def threshold_for_accuracy(probs: np.ndarray, labels: np.ndarray, target: float = TARGET) -> tuple[float, float] | None:
    """The lowest confidence t such that the inputs with confidence >= t reach `target` accuracy, and the
    fraction of inputs they are; None if no threshold does. Inputs tied at t are all kept or all left."""
    if not 0 < target <= 1:
        raise ValueError(f"target accuracy must lie in (0, 1], got {target}")
    confidence, correct = ranked(probs, labels)
    ends = np.append(np.flatnonzero(confidence[1:] != confidence[:-1]), len(confidence) - 1)
    kept = ends + 1
    reached = np.flatnonzero(np.cumsum(correct)[ends] / kept >= target)
    if not len(reached):
        return None
    last = ends[reached[-1]]
    return float(confidence[last]), float((last + 1) / len(confidence))


def _accuracy_above(probs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float | None]:
    """Coverage and accuracy of the inputs with confidence >= threshold (accuracy None if there are none)."""
    confidence, correct = ranked(probs, labels)
    kept = confidence >= threshold
    return float(kept.mean()), float(correct[kept].mean()) if kept.any() else None


@dataclass(frozen=True)
class Calibration:
    """One run's calibration on test: raw and temperature-scaled ECE, NLL and reliability bins, the
    temperature, accuracy per coverage, and the confidence threshold chosen on validation for 95% accuracy
    with the coverage and accuracy it then gets on test (None where validation reaches 95% at no threshold)."""

    ece: float
    ece_calibrated: float
    nll: float
    nll_calibrated: float
    temperature: float
    accuracy_at: dict[float, float]
    threshold_95: float | None
    coverage_95: float | None
    accuracy_95: float | None
    reliability: Reliability
    reliability_calibrated: Reliability

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values for metrics.json; coverage keys become strings such as "0.8"."""
        out = asdict(self)
        out["accuracy_at"] = {f"{k:g}": v for k, v in self.accuracy_at.items()}
        out["reliability"] = self.reliability.to_json()
        out["reliability_calibrated"] = self.reliability_calibrated.to_json()
        return out


def summarize(
    val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray
) -> Calibration:
    """Fit the temperature and the 95% threshold on validation, then measure both on test.

    The threshold is on the raw softmax confidence, the number the model states. Choosing it on test
    would make 95% true by construction; chosen on validation, test's accuracy at it says whether it holds.
    """
    temperature = fit_temperature(val_logits, val_labels)
    threshold = threshold_for_accuracy(softmax(val_logits), val_labels, TARGET)
    probs, scaled = softmax(test_logits), softmax(test_logits, temperature)
    coverage, accuracy = (None, None) if threshold is None else _accuracy_above(probs, test_labels, threshold[0])
    raw, calibrated = reliability(probs, test_labels), reliability(scaled, test_labels)
    return Calibration(
        ece=raw.ece,
        ece_calibrated=calibrated.ece,
        nll=negative_log_likelihood(test_logits, test_labels),
        nll_calibrated=negative_log_likelihood(np.asarray(test_logits, dtype=np.float64) / temperature, test_labels),
        temperature=temperature,
        accuracy_at=accuracy_coverage(probs, test_labels),
        threshold_95=None if threshold is None else threshold[0],
        coverage_95=coverage,
        accuracy_95=accuracy,
        reliability=raw,
        reliability_calibrated=calibrated,
    )
