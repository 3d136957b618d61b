"""The package's figures, drawn through matplotlib's `Figure` itself rather than pyplot, so a notebook's
backend is left alone: compare's curves (one figure per history metric, one line per run), and a run's
calibration, as TensorBoard images of one run and as compare figures of many."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.analysis import calibration as cal
from tfsoftmax.analysis.runs import TITLES
from tfsoftmax.config import flat_config
from tfsoftmax.files import atomic_write

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tfsoftmax.analysis.calibration import Calibration, Reliability
    from tfsoftmax.analysis.runs import Run

# Figure file name -> history key. --metric accuracy adds train_accuracy.png (overfitting shows there).
CURVES = {"train_loss": "loss", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
# Published test accuracies, drawn faintly on accuracy figures of Fashion-MNIST runs for orientation.
REFERENCES = (
    (0.83, "D2L softmax regression, test ~0.83", "top"),
    (0.842, "Fashion-MNIST paper, logistic regression, test 0.842", "bottom"),
)
REFERENCE_DATASET = "fashion_mnist"


def value_text(value: Any) -> str:
    """A config value as tables and legends show it."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def label(run: Run, keys: Sequence[str]) -> str:
    """A legend entry: the config keys that differ between the runs, else the run's name; and the
    status if it did not complete."""
    flat = flat_config(run.config)
    text = ", ".join(f"{key}={value_text(flat[key])}" for key in keys) or run.name
    return text if run.status == "completed" else f"{text} ({run.status})"


def draw(runs: Sequence[Run], keys: Sequence[str], metric: str) -> dict[str, Figure]:
    """One figure per curve (file stem -> Figure), one line per run labelled by the differing config
    `keys`; the published reference points are extra lines with gid "reference", and a ring with gid
    "kept_epoch" marks the epoch whose weights an early-stopped run kept. Runs with a calibration block
    add `reliability` and `coverage`."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {**CURVES, **({"train_accuracy": "accuracy"} if metric == "accuracy" else {})}
    colors = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    references = all(run.config.data.dataset.split(":")[0].split("/")[0] == REFERENCE_DATASET for run in runs)
    labels = [label(run, keys) for run in runs]
    figures = {}
    for stem, key in curves.items():
        fig = Figure(figsize=(7.5, 4.5))
        ax = fig.add_subplot()
        ringed = False
        for i, (run, text) in enumerate(zip(runs, labels, strict=True)):
            values, color = run.history[key], colors(i % colors.N)
            ax.plot(
                range(1, len(values) + 1),
                values,
                marker=".",
                label=text,
                color=color,
                linestyle=("-", "--", ":")[i // colors.N % 3],
            )
            if run.kept_epoch is not None and run.kept_epoch <= len(values):
                note = "_kept" if ringed else "epoch whose weights were kept"  # one legend entry for all rings
                ring = {"markersize": 11, "markerfacecolor": "none", "markeredgewidth": 1.5, "gid": "kept_epoch"}
                ax.plot(run.kept_epoch, values[run.kept_epoch - 1], "o", color=color, label=note, **ring)
                ringed = True
        if references and key.endswith("accuracy"):
            for y, note, side in REFERENCES:
                ax.axhline(y, color="0.5", linewidth=0.8, linestyle="--", alpha=0.6, gid="reference")
                ax.text(0.01, y, note, transform=ax.get_yaxis_transform(), fontsize="x-small", color="0.4", va=side)
        ax.set(xlabel="epoch", ylabel=TITLES[key], title=f"{TITLES[key]} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(runs) > 8:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize="small")
        figures[stem] = fig
    return {**figures, **_calibration(runs, labels, colors)}


def _filled(bins: dict[str, list[Any]]) -> tuple[list[float], list[float]]:
    """The non-empty bins' mean confidence and accuracy, as metrics.json holds them (an empty bin's NaN
    is the string "NaN" there)."""
    kept = [i for i, count in enumerate(bins["counts"]) if count]
    return [float(bins["confidence"][i]) for i in kept], [float(bins["accuracy"][i]) for i in kept]


def _calibration(runs: Sequence[Run], labels: Sequence[str], colors: Any) -> dict[str, Figure]:
    """compare's reliability and coverage figures, one line per run that has a calibration block (runs
    recorded before the bins were kept are left out of reliability); none if no run has one."""
    shown = [
        (run.calibration, text, colors(i % colors.N))
        for i, (run, text) in enumerate(zip(runs, labels, strict=True))
        if run.calibration is not None
    ]
    binned = [entry for entry in shown if "reliability" in entry[0]]
    return {
        **({"reliability": _reliability_lines(binned)} if binned else {}),
        **({"coverage": _coverage_lines(shown)} if shown else {}),
    }


def _reliability_lines(shown: Sequence[tuple[dict[str, Any], str, Any]]) -> Figure:
    """Accuracy against confidence per bin, and below it each bin's share of the inputs: a bin far off
    the diagonal matters only as much as the inputs it holds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 8), layout="constrained")
    ax, share = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration", gid="reference")
    for block, text, color in shown:
        for key, style, note in (("reliability", "-", ""), ("reliability_calibrated", ":", ", temperature-scaled")):
            ax.plot(*_filled(block[key]), style, marker="o", markersize=4, color=color, label=f"{text}{note}")
        counts = block["reliability"]["counts"]
        share.stairs([c / sum(counts) for c in counts], block["reliability"]["edges"], color=color, label=text)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="test accuracy in the bin",
        title="Reliability on test: below the diagonal is overconfident",
    )
    share.set(xlabel="confidence (max softmax probability)", ylabel="share of inputs")
    for axes in (ax, share):
        axes.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    return fig


def _coverage_lines(shown: Sequence[tuple[dict[str, Any], str, Any]]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for block, text, color in shown:
        curve = {float(k): float(v) for k, v in block["accuracy_at"].items()}
        ax.plot(list(curve), list(curve.values()), marker="o", color=color, label=text)
    ax.axhline(
        cal.TARGET, color="0.5", linewidth=0.8, linestyle=":", gid="reference", label=f"{cal.TARGET:.0%} accuracy"
    )
    ax.set(
        xlabel="coverage (most confident fraction of test inputs answered)",
        ylabel="test accuracy",
        title="Accuracy when abstaining on the least confident inputs",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")
    return fig


DPI = 90  # TensorBoard's images


def png(fig: Figure, tight: bool = True) -> bytes:
    """The figure as PNG bytes, for TensorBoard's image summaries; `tight` trims the margins at the cost
    of drawing twice, which a constrained layout does not need."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _reliability_panel(ax: Axes, rel: Reliability, title: str) -> None:
    import numpy as np

    filled = rel.counts > 0
    left, width, accuracy = rel.edges[:-1][filled], np.diff(rel.edges)[filled], rel.accuracy[filled]
    style = {"width": width, "align": "edge"}
    bars = ax.bar(left, accuracy, **style, color="tab:blue", alpha=0.8, edgecolor="white", label="accuracy")
    gaps = ax.bar(
        left,
        rel.confidence[filled] - accuracy,
        bottom=accuracy,
        **style,
        facecolor="none",
        edgecolor="tab:red",
        hatch="///",
        linewidth=1,
        label="gap to mean confidence",
    )
    share = ax.stairs(
        rel.counts / rel.counts.sum(), rel.edges, color="tab:orange", linewidth=1.5, label="share of inputs"
    )
    (diagonal,) = ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (max softmax probability)",
        ylabel="accuracy",
        title=f"{title}: ECE {rel.ece:.4f}",
        aspect="equal",
    )
    ax.legend(handles=[bars, gaps, diagonal, share], loc="upper left", fontsize=8)


def reliability_bars(raw: Reliability, scaled: Reliability, temperature: float) -> Figure:
    """One run's reliability diagram, raw beside temperature-scaled; bars below the diagonal mean the
    model is more confident than it is right."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    _reliability_panel(left, raw, "raw")
    _reliability_panel(right, scaled, f"temperature-scaled (T = {temperature:.3f})")
    fig.suptitle(f"Reliability on {raw.counts.sum()} test inputs ({len(raw.counts)} bins)")
    return fig


def coverage_curve(coverage: np.ndarray, accuracy: np.ndarray, calibration: Calibration, target: float) -> Figure:
    """One run's accuracy on its most confident inputs per coverage, with the point that the threshold
    chosen on validation for `target` accuracy reaches on test."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(coverage, accuracy, color="tab:blue", label="accuracy on the most confident")
    grid = calibration.accuracy_at
    ax.plot(list(grid), list(grid.values()), "o", color="tab:blue", markersize=4)
    ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"target {target:.0%}")
    if calibration.threshold_95 is not None and calibration.accuracy_95 is not None:
        ax.plot(
            calibration.coverage_95,
            calibration.accuracy_95,
            "*",
            color="tab:red",
            markersize=14,
            label=f"confidence >= {calibration.threshold_95:.3f}: {calibration.accuracy_95:.1%} "
            f"on {calibration.coverage_95:.1%}",
        )
    ax.set(
        xlim=(0, 1.01),
        ylim=(max(0.0, min(min(grid.values()), target) - 0.05), 1.005),
        xlabel="coverage (fraction of test inputs answered)",
        ylabel="accuracy",
        title="Selective prediction: abstain on the least confident",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def save(figures: dict[str, Figure], out: Path) -> None:
    """Each figure as `<stem>.png` in `out`."""
    for stem, fig in figures.items():
        atomic_write(out / f"{stem}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))


def reliability_figure(test_logits: np.ndarray, test_labels: np.ndarray, calibration: Calibration) -> bytes:
    """PNG for TensorBoard: accuracy per confidence bin against the diagonal, raw beside temperature-scaled."""
    raw = cal.reliability(cal.softmax(test_logits), test_labels)
    scaled = cal.reliability(cal.softmax(test_logits, calibration.temperature), test_labels)
    return png(reliability_bars(raw, scaled, calibration.temperature), tight=False)


def coverage_figure(test_logits: np.ndarray, test_labels: np.ndarray, calibration: Calibration) -> bytes:
    """PNG for TensorBoard: test accuracy on the most confident fraction of inputs, for every fraction, with
    the point the validation-chosen 95% threshold reaches on test."""
    import numpy as np

    _, correct = cal.ranked(cal.softmax(test_logits), test_labels)
    kept = np.arange(1, len(correct) + 1)
    return png(coverage_curve(kept / len(correct), np.cumsum(correct) / kept, calibration, cal.TARGET), tight=False)
