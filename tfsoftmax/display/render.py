"""Results as a notebook shows them: a run's curves as a PNG (D2L's Animator's two panels), and short text
and HTML for a run, a sweep and a table. Reads results by their attributes only, so that nothing here
imports the modules that make them; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PANELS = (("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")))
LABELS = {"loss": "train loss", "val_loss": "val loss", "accuracy": "train acc", "val_accuracy": "val acc"}
FIGURE_SIZE = (7.0, 2.6)
FIGURE_DPI = 80


def curves_png(history: dict[str, list[float]], epochs: int | None = None, first_epoch: int = 0) -> bytes:
    """Loss and accuracy per epoch, train and validation, as D2L's Animator draws them; the x axis spans
    `epochs` when given, so a run drawn as it goes keeps its scale."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    for ax, (title, keys) in zip(fig.subplots(1, 2), PANELS, strict=True):
        for key in keys:
            values = history.get(key) or []
            if values:
                xs = range(first_epoch + 1, first_epoch + len(values) + 1)
                ax.plot(xs, values, marker="." if len(values) < 30 else None, label=LABELS[key])
        if epochs:
            ax.set_xlim(first_epoch + 0.5, max(epochs, first_epoch + 1) + 0.5)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _img(png: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in values.items()) or "-"


def table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain HTML table, numbers right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:{"right" if isinstance(c, int | float) else "left"}">{html.escape(_num(c))}</td>'
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def comparison_html(header: Sequence[str], rows: Sequence[Sequence[Any]], pngs: dict[str, bytes]) -> str:
    """`compare`'s table (its cells as it formats them) and its curves, one image per figure."""
    images = "".join(f"<div><b>{html.escape(name)}</b><br/>{_img(png)}</div>" for name, png in pngs.items())
    return f"<div>{table_html(header, rows)}{images}</div>"


def _status(status: str) -> str:
    color = {"completed": "green", "diverged": "#c00", "interrupted": "#c60", "failed": "#c00"}.get(status, "")
    return f'<b style="color:{color}">{html.escape(status)}</b>'


def _board_command(folder: Path) -> str:
    return f"tfsoftmax board {folder}  |  tfsoftmax.tensorboard('{folder}')"


def run_text(result: Any) -> str:
    """One line: where, how it ended, the test metrics, epochs and time; no per-epoch values."""
    epochs = len(result.history.get("loss", []))
    test = f" test {_metrics(result.test)}," if result.test else ""
    reason = f" ({result.divergence.get('reason', '')})" if result.divergence else ""
    return f"RunResult({result.run_dir}: {result.status}{reason},{test} {epochs} epoch(s), {result.wall_time_s:.1f} s)"


def run_html(result: Any) -> str:
    """A run's status, test metrics, epochs, time, folder, curves and the command that opens TensorBoard."""
    history = result.history
    rows = [
        ("status", _status(result.status)),
        ("test", html.escape(_metrics(result.test))),
        ("epochs", str(len(history.get("loss", [])))),
        ("wall time", f"{result.wall_time_s:.1f} s"),
        ("run directory", f"<code>{html.escape(str(result.run_dir))}</code>"),
        ("TensorBoard", f"<code>{html.escape(_board_command(result.run_dir))}</code>"),
    ]
    if result.divergence:
        rows.insert(1, ("diverged", html.escape(str(result.divergence.get("reason", "")))))
    body = "".join(
        f'<tr><th style="text-align:left">{k}</th><td style="text-align:left">{v}</td></tr>' for k, v in rows
    )
    curves = _img(curves_png(history)) if history.get("loss") else ""
    return f"<div><b>RunResult</b><table>{body}</table>{curves}</div>"


def diverged_html(result: Any) -> str:
    """The line a diverged run leaves in its cell."""
    reason = html.escape(str((result.divergence or {}).get("reason", "")))
    return (
        f'<div style="color:#c00"><b>diverged</b>: {reason}; record kept in '
        f"<code>{html.escape(str(result.run_dir))}</code></div>"
    )


def _swept_keys(rows: Sequence[Any]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.values))
    return list(keys)


def trial_text(row: Any) -> str:
    """One trial in one line: id, status, score, best epoch and values."""
    values = " ".join(f"{k}={_num(v)}" for k, v in row.values.items())
    score = "-" if row.score is None else f"{row.score:.4f}"
    epoch = "" if row.best_epoch is None else f" (epoch {row.best_epoch})"
    reason = f" [{row.reason}]" if row.reason and row.status != "completed" else ""
    return f"TrialRow({row.trial_id} {row.status} {score}{epoch} {values}{reason})"


def sweep_text(result: Any) -> str:
    """A sweep in a few lines: folder, trials, the best trial and the final run."""
    completed = sum(row.status == "completed" for row in result.rows)
    lines = [
        f"SweepResult({result.sweep_dir}: {len(result.rows)} trial(s), {completed} completed, "
        f"{result.wall_time_s:.1f} s"
    ]
    if result.rows:
        lines.append(f"  best: {trial_text(result.rows[0])}")
    if result.best_config_path:
        lines.append(f"  best config: {result.best_config_path}")
    if result.final is not None:
        lines.append(f"  final: {run_text(result.final)}")
    return "\n".join(lines) + ")"


def sweep_html(result: Any) -> str:
    """A sweep's ranked table (values, score, best epoch, status), its best trial and final run."""
    keys = _swept_keys(result.rows)
    header = ["rank", "trial", "status", "score", "best epoch", *keys]
    body = [
        [
            i + 1,
            row.trial_id,
            row.status,
            "-" if row.score is None else round(row.score, 4),
            "-" if row.best_epoch is None else row.best_epoch,
            *[row.values.get(k, "-") for k in keys],
        ]
        for i, row in enumerate(result.rows)
    ]
    completed = sum(row.status == "completed" for row in result.rows)
    best = result.rows[0] if result.rows and result.rows[0].score is not None else None
    parts = [
        f"<div><b>SweepResult</b> <code>{html.escape(str(result.sweep_dir))}</code>: {len(result.rows)} trial(s), "
        f"{completed} completed, {result.wall_time_s:.1f} s",
    ]
    if best is not None:
        values = ", ".join(f"{k} = {_num(v)}" for k, v in best.values.items())
        parts.append(
            f"<p>best: trial {html.escape(best.trial_id)}, score {best.score:.4f} at epoch {best.best_epoch}; "
            f"{html.escape(values)}; config <code>{html.escape(str(result.best_config_path))}</code></p>"
        )
    parts.append(table_html(header, body))
    if result.final is not None:
        parts.append(f"<p>final run (train + validation, tested once):</p>{run_html(result.final)}")
    parts.append(f"<p>TensorBoard (HParams): <code>{html.escape(_board_command(result.sweep_dir))}</code></p></div>")
    return "".join(parts)
