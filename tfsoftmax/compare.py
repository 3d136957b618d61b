"""Finished runs side by side, outside TensorBoard: one table (printed, Markdown, CSV) and PNG curves.

Reads only what a run directory holds (config.toml, metrics.json), so it needs no TensorFlow. matplotlib
is imported when the figures are drawn, through `Figure` itself rather than pyplot, so a notebook's
backend is left alone.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tfsoftmax.config import OBJECTIVES, Config, flat_config, load_config
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import atomic_write, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_METRIC = "val_accuracy"
# Figure file name -> history key. --metric accuracy adds train_accuracy.png (overfitting shows there).
CURVES = {"train_loss": "loss", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
TITLES = {"loss": "training loss", "val_loss": "validation loss", "val_accuracy": "validation accuracy",
          "accuracy": "training accuracy"}
RECORD_KEYS = ("status", "epochs_completed", "history", "test", "wall_time_s")
# A trial's config.toml carries its sweep's settings, which never change how that run trained (its
# epochs are already in train.epochs); logging only says where the run went.
# Published test accuracies, drawn faintly on accuracy figures of Fashion-MNIST runs for orientation.
REFERENCES = ((0.83, "D2L softmax regression, test ~0.83", "top"),
              (0.842, "Fashion-MNIST paper, logistic regression, test 0.842", "bottom"))
REFERENCE_DATASET = "fashion_mnist"


@dataclass(frozen=True)
class Run:
    """One run directory as read back: its config and the parts of metrics.json compare shows."""

    path: Path
    name: str
    config: Config
    status: str
    epochs: int
    history: dict[str, list[float]]
    test_accuracy: float | None
    wall_time_s: float | None


@dataclass
class Comparison:
    """What `compare` read, showed and wrote."""

    runs: list[Run]
    keys: list[str]
    rows: list[dict[str, Any]]
    figures: dict[str, Figure]
    out: Path
    skipped: list[str]


def _broken(path: Path, why: str) -> TfsoftmaxError:
    return TfsoftmaxError(f"{path}: {why}", RUNTIME_ERROR)


def _run_dirs(top: Path) -> list[Path]:
    """Folders under `top` (itself included) holding a run's files; run directories do not nest."""
    found = []
    for folder, subfolders, files in os.walk(top):
        if "metrics.json" in files or "config.toml" in files:
            found.append(Path(folder))
            subfolders[:] = []
    return found


def find_runs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Run directories under run, experiment or sweep folders and globs, deduplicated and sorted (each
    spelled as first found, for messages), and one warning for each input that holds none."""
    found: dict[str, Path] = {}
    problems = []
    for text in inputs:
        paths = [Path(text)]
        if not paths[0].exists() and any(c in text for c in "*?["):
            paths = sorted(Path(match) for match in glob.glob(text))
            if not paths:
                problems.append(f"{text}: no file matches this pattern")
        for path in paths:
            if not path.exists():
                problems.append(f"{path}: no such file or directory")
            elif not path.is_dir():
                problems.append(f"{path}: not a directory; give a run, experiment or sweep folder")
            elif not (runs := _run_dirs(path)):
                problems.append(f"{path}: not a run directory and holds none "
                                "(a run directory has metrics.json and config.toml)")
            else:
                for run in runs:
                    found.setdefault(os.path.abspath(run), run)
    return [found[key] for key in sorted(found)], problems


def shown(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.split(os.sep)[0] == ".." else relative


def _number(value: Any, where: str, path: Path) -> float:
    # write_json stores NaN and infinity as strings, which float() reads back.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    raise _broken(path, f"{where}: expected a number, got {json.dumps(value)}")


def read_run(run_dir: Path) -> Run:
    """Read one run's config and record; a missing, broken or half-written file raises, naming it."""
    metrics_file, config_file = run_dir / "metrics.json", run_dir / "config.toml"
    if not metrics_file.is_file():
        raise _broken(run_dir, "no metrics.json (still in its first epoch, or stopped before finishing one)")
    if not config_file.is_file():
        raise _broken(run_dir, "metrics.json without config.toml")
    try:
        record = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _broken(metrics_file, f"unreadable or half-written: {e}") from None
    config = load_config(config_file)
    if not isinstance(record, dict):
        raise _broken(metrics_file, f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise _broken(metrics_file, f"missing key(s) {', '.join(missing)}; expected {', '.join(RECORD_KEYS)}")
    epochs, history, test = record["epochs_completed"], record["history"], record["test"]
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise _broken(metrics_file, f"epochs_completed: expected an integer >= 0, got {json.dumps(epochs)}")
    if not isinstance(record["status"], str) or not isinstance(history, dict):
        raise _broken(metrics_file, "status must be a string and history an object")
    curves: dict[str, list[float]] = {}
    for key in TITLES:
        if key.startswith("val_") and key not in history:
            curves[key] = []  # trained with no validation split: no curve, never a test curve in its place
            continue
        values = history[key] if key in history else []
        if not isinstance(values, list) or len(values) != epochs:
            count = len(values) if isinstance(values, list) else "no list of"
            raise _broken(metrics_file, f"history.{key}: {count} values for {epochs} completed epochs")
        curves[key] = [_number(v, f"history.{key}", metrics_file) for v in values]
    if test is not None and not (isinstance(test, dict) and "accuracy" in test):
        raise _broken(metrics_file, f"test: expected null or an object with accuracy, got {json.dumps(test)}")
    wall = record["wall_time_s"]
    return Run(path=run_dir, name=run_dir.name, config=config, status=record["status"], epochs=epochs,
               history=curves, test_accuracy=None if test is None else _number(test["accuracy"], "test.accuracy",
                                                                                metrics_file),
               wall_time_s=None if wall is None else _number(wall, "wall_time_s", metrics_file))


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding all the runs (for a single run, its parent), as an absolute path."""
    absolute = [Path(os.path.abspath(path)) for path in paths]
    return absolute[0].parent if len(absolute) == 1 else Path(os.path.commonpath(absolute))


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys whose value is not the same in every run, in config order."""
    flat = [flat_config(run.config) for run in runs]
    return [key for key in flat[0] if len({f[key] for f in flat}) > 1]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def label(run: Run, keys: Sequence[str]) -> str:
    """A legend entry: what differs, else the run's name; and the status if it did not complete."""
    flat = flat_config(run.config)
    text = ", ".join(f"{key}={_fmt(flat[key])}" for key in keys) or run.name
    return text if run.status == "completed" else f"{text} ({run.status})"


def table_rows(runs: Sequence[Run], keys: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """One dict per run, raw values (None where the run has none), keyed by the CSV column names."""
    pick = max if metric.endswith("accuracy") else min
    rows = []
    for run in runs:
        values = run.history[metric]
        finite = [v for v in values if math.isfinite(v)]
        flat = flat_config(run.config)
        rows.append({"run": run.name, **{key: flat[key] for key in keys}, "epochs": run.epochs,
                     f"best_{metric}": pick(finite) if finite else None,
                     f"final_{metric}": values[-1] if values else None, "test_accuracy": run.test_accuracy,
                     "wall_time_s": run.wall_time_s, "status": run.status})
    return rows


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "wall_time_s":
        return f"{value:.1f}"
    if column.endswith(("accuracy", "loss")):
        return f"{value:.4f}"
    return _fmt(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    header = list(rows[0])
    body = [[_cell(c, row[c]) for c in header] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in [header, *body])


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table; numbers right-aligned."""
    header = list(rows[0])
    numeric = {c for row in rows for c, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    align = ["---:" if c in numeric else "---" for c in header]
    lines = [header, align, *[[_cell(c, row[c]) for c in header] for row in rows]]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, full precision, empty where a run has no value."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if v is None else v for c, v in row.items()} for row in rows)
    return buf.getvalue()


def draw(runs: Sequence[Run], keys: Sequence[str], metric: str) -> dict[str, Figure]:
    """One figure per curve (file stem -> Figure), one line per run; the published reference points
    are extra lines with gid "reference"."""
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
        for i, run in enumerate(runs):
            values = run.history[key]
            ax.plot(range(1, len(values) + 1), values, marker=".", label=label(run, keys),
                    color=colors(i % colors.N), linestyle=("-", "--", ":")[i // colors.N % 3])
        if references and key.endswith("accuracy"):
            for y, text, side in REFERENCES:
                ax.axhline(y, color="0.5", linewidth=0.8, linestyle="--", alpha=0.6, gid="reference")
                ax.text(0.01, y, text, transform=ax.get_yaxis_transform(), fontsize="x-small", color="0.4",
                        va=side)
        ax.set(xlabel="epoch", ylabel=TITLES[key], title=f"{TITLES[key]} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(runs) > 8:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize="small")
        figures[stem] = fig
    return figures


def compare(inputs: Sequence[str], out: str | Path | None = None, metric: str = DEFAULT_METRIC) -> Comparison:
    """Compare the runs under `inputs` and write compare.md, compare.csv and one PNG per curve.

    Args:
        inputs: run directories, experiment or sweep folders holding them, or glob patterns.
        out: output folder; None means `compare/` in the deepest folder holding all the runs.
        metric: the history metric of the best and final columns: val_accuracy, val_loss, accuracy, loss.

    Returns:
        Comparison with the runs, the differing config keys, the table rows, the figures and the folder.

    Raises:
        TfsoftmaxError: exit code 2 if no readable run remains (each skipped path is first reported on
        stderr, one line each) or the metric is unknown; 1 if the output cannot be written.
    """
    if metric not in OBJECTIVES:
        raise TfsoftmaxError(f"compare: --metric: got '{metric}'; allowed: {', '.join(OBJECTIVES)}", CONFIG_ERROR)
    paths, skipped = find_runs(inputs)
    runs = []
    for path in paths:
        try:
            runs.append(read_run(path))
        except TfsoftmaxError as e:
            skipped.append(str(e))
    for problem in skipped:
        print("tfsoftmax: warning: " + " ".join(problem.split()), file=sys.stderr)
    if not runs:
        raise TfsoftmaxError(f"compare: no runs to compare: {len(skipped)} problem(s) reported above "
                             "(a run directory has metrics.json and config.toml)", CONFIG_ERROR)
    root = common_root([run.path for run in runs])
    runs = [replace(run, name=os.path.relpath(os.path.abspath(run.path), root)) for run in runs]
    keys = differing_keys(runs)
    rows = table_rows(runs, keys, metric)
    out = Path(out) if out is not None else root / "compare"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TfsoftmaxError(f"compare: --out {out}: cannot create the folder: {e.strerror}", RUNTIME_ERROR) from None
    write_text(out / "compare.md", to_markdown(rows))
    write_text(out / "compare.csv", to_csv(rows))
    figures = draw(runs, keys, metric)
    for stem, fig in figures.items():
        atomic_write(out / f"{stem}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=100,
                                                                          bbox_inches="tight"))
    return Comparison(runs=runs, keys=keys, rows=rows, figures=figures, out=out, skipped=skipped)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `compare` subcommand's arguments."""
    p.add_argument("runs", nargs="+", metavar="RUN_OR_DIR",
                   help="run directories, experiment or sweep folders holding them, or glob patterns")
    p.add_argument("--out", metavar="DIR",
                   help="where the tables and figures go (default: compare/ in the deepest folder holding "
                        "all the runs)")
    p.add_argument("--metric", choices=OBJECTIVES, default=DEFAULT_METRIC,
                   help=f"metric of the best and final columns (default: {DEFAULT_METRIC}); "
                        "accuracy also draws train_accuracy.png")


def command(args: argparse.Namespace) -> int:
    """`tfsoftmax compare`: print the table and say where the files went."""
    result = compare(args.runs, args.out, args.metric)
    files = ["compare.md", "compare.csv", *(f"{stem}.png" for stem in result.figures)]
    print(format_table(result.rows))
    print(f"\n{len(result.runs)} run(s) compared"
          + (f", {len(result.skipped)} path(s) skipped" if result.skipped else "")
          + f"; wrote {', '.join(files)} in {shown(result.out)}")
    return 0
