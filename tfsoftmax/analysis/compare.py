"""Finished runs side by side, outside TensorBoard: one table (printed, Markdown, CSV) and PNG curves.

Reads only a run directory's config and record, through `rundir`, so it needs no TensorFlow; the
curves are drawn by `figures`, which imports matplotlib only then.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.analysis import figures
from tfsoftmax.analysis.runs import (
    CALIBRATION_COLUMNS,
    RUN_HINT,
    Run,
    common_root,
    differing_keys,
    find_runs,
    read_run,
)
from tfsoftmax.config import OBJECTIVES, flat_config
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_text
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.table import format_table as text_table
from tfsoftmax.table import markdown_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_METRIC = "val_accuracy"


@dataclass(repr=False)
class Comparison:
    """What `compare` read, showed and wrote."""

    runs: list[Run]
    keys: list[str]
    rows: list[dict[str, Any]]
    figures: dict[str, Figure]
    out: Path
    skipped: list[str]

    def __repr__(self) -> str:
        return format_table(self.rows)

    def _repr_html_(self) -> str:
        """The table and the curves, rendered in a notebook."""
        from tfsoftmax.display.render import comparison_html

        return comparison_html(*_cells(self.rows), {name: figures.png(fig) for name, fig in self.figures.items()})


def table_rows(runs: Sequence[Run], keys: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """One dict per run, raw values (None where the run has none), keyed by the CSV column names."""
    kept = any(run.kept_epoch is not None for run in runs)
    calibrated = any(run.calibration is not None for run in runs)
    rows = []
    for run in runs:
        values = run.history[metric]
        best = rundir.best_epoch(run.history, metric)
        flat = flat_config(run.config)
        rows.append(
            {
                "run": run.name,
                **{key: flat[key] for key in keys},
                "epochs": run.epochs,
                **({"kept_epoch": run.kept_epoch} if kept else {}),
                f"best_{metric}": None if best is None else values[best],
                f"final_{metric}": values[-1] if values else None,
                "test_accuracy": run.test_accuracy,
                **(run.calibration_columns if calibrated else {}),
                "wall_time_s": run.wall_time_s,
                "status": run.status,
            }
        )
    return rows


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "wall_time_s":
        return f"{value:.1f}"
    if column.endswith(("accuracy", "loss")) or column in CALIBRATION_COLUMNS:
        return f"{value:.4f}"
    return figures.value_text(value)


def _cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = list(rows[0])
    return header, [[_cell(c, row[c]) for c in header] for row in rows]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    return text_table(*_cells(rows))


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table; numbers right-aligned."""
    header, body = _cells(rows)
    numeric = {c for row in rows for c, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return markdown_table(header, body, right=[i for i, c in enumerate(header) if c in numeric])


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, full precision, empty where a run has no value."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if v is None else v for c, v in row.items()} for row in rows)
    return buf.getvalue()


def compare(inputs: Sequence[str], out: str | Path | None = None, metric: str = DEFAULT_METRIC) -> Comparison:
    """Compare the runs under `inputs` and write compare.md, compare.csv and one PNG per curve (with
    reliability.png and coverage.png where runs were calibrated).

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
        raise TfsoftmaxError(
            f"compare: no runs to compare: {len(skipped)} problem(s) reported above ({RUN_HINT})", CONFIG_ERROR
        )
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
    drawn = figures.draw(runs, keys, metric)
    figures.save(drawn, out)
    return Comparison(runs=runs, keys=keys, rows=rows, figures=drawn, out=out, skipped=skipped)
