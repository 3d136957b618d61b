"""Finished runs side by side, outside TensorBoard: one table (printed, Markdown, CSV) and PNG curves.

Reads only a run directory's config and record, through `rundir`, so it needs no TensorFlow; the
curves are drawn by `figures`, which imports matplotlib only then.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax import figures, rundir
from tfsoftmax.config import OBJECTIVES, Config, flat_config
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_text
from tfsoftmax.table import format_table as text_table
from tfsoftmax.table import markdown_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_METRIC = "val_accuracy"
RUN_HINT = f"a run directory has {rundir.RECORD} and {rundir.CONFIG}"
CALIBRATION_COLUMNS = ("test_ece", "ece_calibrated", "acc_at_80pct")  # for runs with a calibration block


@dataclass(frozen=True)
class Run:
    """One run directory as read back: its config and the parts of its record compare shows."""

    path: Path
    name: str
    config: Config
    status: str
    epochs: int
    history: dict[str, list[float]]
    test_accuracy: float | None
    wall_time_s: float | None
    calibration: dict[str, Any] | None  # the record's block as written; None: no validation split, or older
    calibration_columns: dict[str, float | None]
    kept_epoch: int | None


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
        if rundir.RECORD in files or rundir.CONFIG in files:
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
                problems.append(f"{path}: not a run directory and holds none ({RUN_HINT})")
            else:
                for run in runs:
                    found.setdefault(os.path.abspath(run), run)
    return [found[key] for key in sorted(found)], problems


def shown(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.split(os.sep)[0] == ".." else relative


def _calibration_columns(block: dict[str, Any] | None, path: Path) -> dict[str, float | None]:
    """The table's calibration columns from a record's block, as `calibration.Calibration.to_json` writes it;
    None each for a run without one."""
    if block is None:
        return dict.fromkeys(CALIBRATION_COLUMNS)
    try:
        values = block["ece"], block["ece_calibrated"], block["accuracy_at"]["0.8"]
        return dict(zip(CALIBRATION_COLUMNS, map(float, values), strict=True))
    except (KeyError, TypeError, ValueError) as e:
        raise _broken(path, f"calibration: expected numbers ece, ece_calibrated, accuracy_at.0.8 ({e!r})") from None


def read_run(run_dir: Path) -> Run:
    """Read one run's config and record; a missing, broken or half-written file raises, naming it."""
    record = rundir.read_record(run_dir)
    if record is None:
        raise _broken(run_dir, f"no {rundir.RECORD} (still in its first epoch, or stopped before finishing one)")
    if not (run_dir / rundir.CONFIG).is_file():
        raise _broken(run_dir, f"{rundir.RECORD} without {rundir.CONFIG}")
    config = rundir.read_config(run_dir)
    epochs, history, test = record["epochs_completed"], record["history"], record["test"]
    missing = [key for key in figures.TITLES if key not in history and epochs and not key.startswith("val_")]
    if missing:
        raise _broken(run_dir / rundir.RECORD, f"history.{missing[0]}: 0 values for {epochs} completed epochs")
    # Trained with no validation split: no validation curve, never a test curve in its place.
    curves = {key: history.get(key, []) for key in figures.TITLES}
    return Run(
        path=run_dir,
        name=run_dir.name,
        config=config,
        status=record["status"],
        epochs=epochs,
        history=curves,
        test_accuracy=None if test is None else test["accuracy"],
        wall_time_s=record["wall_time_s"],
        calibration=record.get("calibration"),
        calibration_columns=_calibration_columns(record.get("calibration"), run_dir / rundir.RECORD),
        kept_epoch=record.get("kept_epoch"),
    )


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding all the runs (for a single run, its parent), as an absolute path."""
    absolute = [Path(os.path.abspath(path)) for path in paths]
    return absolute[0].parent if len(absolute) == 1 else Path(os.path.commonpath(absolute))


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys whose value is not the same in every run, in config order."""
    flat = [flat_config(run.config) for run in runs]
    return [key for key in flat[0] if len({f[key] for f in flat}) > 1]


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


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `compare` subcommand's arguments."""
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_DIR",
        help="run directories, experiment or sweep folders holding them, or glob patterns",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where the tables and figures go (default: compare/ in the deepest folder holding all the runs)",
    )
    p.add_argument(
        "--metric",
        choices=OBJECTIVES,
        default=DEFAULT_METRIC,
        help=f"metric of the best and final columns (default: {DEFAULT_METRIC}); "
        "accuracy also draws train_accuracy.png",
    )


def command(args: argparse.Namespace) -> int:
    """`tfsoftmax compare`: print the table and say where the files went."""
    result = compare(args.runs, args.out, args.metric)
    files = ["compare.md", "compare.csv", *(f"{stem}.png" for stem in result.figures)]
    skipped = f", {len(result.skipped)} path(s) skipped" if result.skipped else ""
    print(format_table(result.rows))
    print(f"\n{len(result.runs)} run(s) compared{skipped}; wrote {', '.join(files)} in {shown(result.out)}")
    return 0
