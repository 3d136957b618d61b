"""compare's PNG curves: one figure per history metric, one line per run, drawn through matplotlib's
`Figure` itself rather than pyplot, so a notebook's backend is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tfsoftmax.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tfsoftmax.compare import Run

# Figure file name -> history key. --metric accuracy adds train_accuracy.png (overfitting shows there).
CURVES = {"train_loss": "loss", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
TITLES = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "accuracy": "training accuracy",
}
# Published test accuracies, drawn faintly on accuracy figures of Fashion-MNIST runs for orientation.
REFERENCES = (
    (0.83, "D2L softmax regression, test ~0.83", "top"),
    (0.842, "Fashion-MNIST paper, logistic regression, test 0.842", "bottom"),
)
REFERENCE_DATASET = "fashion_mnist"


def draw(runs: Sequence[Run], labels: Sequence[str], metric: str) -> dict[str, Figure]:
    """One figure per curve (file stem -> Figure), one line per run with its label; the published
    reference points are extra lines with gid "reference"."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {**CURVES, **({"train_accuracy": "accuracy"} if metric == "accuracy" else {})}
    colors = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    references = all(run.config.data.dataset.split(":")[0].split("/")[0] == REFERENCE_DATASET for run in runs)
    figures = {}
    for stem, key in curves.items():
        fig = Figure(figsize=(7.5, 4.5))
        ax = fig.add_subplot()
        for i, (run, text) in enumerate(zip(runs, labels, strict=True)):
            values = run.history[key]
            ax.plot(
                range(1, len(values) + 1),
                values,
                marker=".",
                label=text,
                color=colors(i % colors.N),
                linestyle=("-", "--", ":")[i // colors.N % 3],
            )
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
    return figures


def save(figures: dict[str, Figure], out: Path) -> None:
    """Each figure as `<stem>.png` in `out`."""
    for stem, fig in figures.items():
        atomic_write(out / f"{stem}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
