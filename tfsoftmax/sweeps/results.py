"""Sweep results: trials ranked by the objective, the results table and files, and each trial's config
(the sweep's config with the trial's values), which the best trial's `best.toml` is made from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.config import Config, to_toml
from tfsoftmax.config.loader import override
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.files import write_json, write_text
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.table import format_table as text_table

if TYPE_CHECKING:
    from tfsoftmax.training.result import RunResult


def config_for(config: Config, values: dict[str, Any]) -> Config:
    """The full config of one trial: the sweep's config with the trial's swept values set."""
    swept = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return override(config, swept) if swept else config


def execution_seed(seed: int, execution: int) -> int:
    """The `train.seed` of a trial's execution: the trial's own seed for the first, then seeds drawn from
    (seed, execution), so executions differ and each re-runs alone from its saved config."""
    import numpy as np

    return seed if execution == 0 else int(np.random.SeedSequence([seed, execution]).generate_state(1)[0])


@dataclass(frozen=True, repr=False)
class TrialRow:
    """One line of the results table."""

    trial_id: str
    status: str
    score: float | None
    values: dict[str, Any]
    best_epoch: int | None
    reason: str
    execution_scores: tuple[float, ...] = ()
    kept_epoch: int | None = None  # with early stopping: the epoch whose weights the first execution kept

    @property
    def spread(self) -> float | None:
        """Best minus worst execution: how much of the score is the seed's doing."""
        return max(self.execution_scores) - min(self.execution_scores) if len(self.execution_scores) > 1 else None

    def __repr__(self) -> str:
        from tfsoftmax.display.render import trial_text

        return trial_text(self)


def _trial_status(trial: Any, first_execution: Path | None) -> tuple[str, str, dict[str, Any]]:
    """keras-tuner's status, refined by our record (a failed trial that diverged says so), its reason, and the
    first execution's record (empty where there is none)."""
    status = str(trial.status).lower()
    try:
        record = (rundir.read_record(first_execution) if first_execution else None) or {}
    except TfsoftmaxError as e:
        return "failed", str(e), {}
    if record.get("status") == "diverged":
        return "diverged", str((record.get("divergence") or {}).get("reason", "")), record
    message = (trial.message or "").strip().splitlines()
    return status, message[-1] if message and status != "completed" else "", record


def _execution_scores(executions: list[Path], objective: Any) -> tuple[float, ...]:
    """Each execution's best epoch by the objective, as keras-tuner averages them into the trial's score."""
    scores = []
    for run_dir in executions:
        history = (rundir.read_record(run_dir) or {"history": {}})["history"]
        best = rundir.best_epoch(history, objective.name)
        if best is not None:
            scores.append(history[objective.name][best])
    return tuple(scores)


def rank(oracle: Any, folder: Path) -> list[TrialRow]:
    """All trials of keras-tuner's `oracle` for the sweep in `folder`, best first by the objective;
    unfinished and failed ones last."""
    objective = oracle.objective
    rows = []
    for trial in oracle.trials.values():
        executions = rundir.execution_dirs(rundir.trial_dir(folder, trial.trial_id))
        status, reason, record = _trial_status(trial, executions[0] if executions else None)
        score = trial.score if status == "completed" and trial.score is not None else None
        rows.append(
            TrialRow(
                trial_id=trial.trial_id,
                status=status,
                score=score,
                values={k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
                best_epoch=None if trial.best_step is None else int(trial.best_step) + 1,
                reason=reason,
                execution_scores=_execution_scores(executions, objective) if score is not None else (),
                kept_epoch=record.get("kept_epoch") if score is not None else None,
            )
        )
    sign = -1.0 if objective.direction == "max" else 1.0
    return sorted(rows, key=lambda r: (r.score is None, sign * (r.score or 0.0), r.trial_id))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[TrialRow], keys: list[str], objective: str) -> str:
    """An aligned text table of the ranked trials."""
    spread = any(r.spread is not None for r in rows)  # only with several executions per trial
    header = ["rank", "trial", "status", objective, *(["spread"] if spread else []), "best epoch", *keys]
    body = [
        [
            str(i + 1),
            r.trial_id,
            r.status,
            "-" if r.score is None else f"{r.score:.4f}",
            *([("-" if r.spread is None else f"{r.spread:.4f}")] if spread else []),
            "-" if r.best_epoch is None else str(r.best_epoch),
            *[_fmt(r.values.get(k, "-")) for k in keys],
        ]
        for i, r in enumerate(rows)
    ]
    return text_table(header, body)


def write_results(config: Config, rows: list[TrialRow], folder: Path) -> Path | None:
    """results.csv, results.json and best.toml (the best completed trial's full config) in `folder`."""
    import csv
    import io

    keys = [e.key for e in config.sweep.space]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "trial", "status", config.sweep.objective, "spread", "best_epoch", *keys, "reason"])
    for i, r in enumerate(rows):
        writer.writerow(
            [
                i + 1,
                r.trial_id,
                r.status,
                "" if r.score is None else r.score,
                "" if r.spread is None else r.spread,
                "" if r.best_epoch is None else r.best_epoch,
                *[r.values.get(k, "") for k in keys],
                r.reason,
            ]
        )
    write_text(folder / rundir.RESULTS_CSV, buf.getvalue())
    trials = [{**dataclasses.asdict(r), "spread": r.spread} for r in rows]
    write_json(folder / rundir.RESULTS_JSON, {"objective": config.sweep.objective, "trials": trials})
    best = next((r for r in rows if r.score is not None), None)
    if best is None:
        return None
    best_config = best_trial_config(config, best)
    path = folder / rundir.BEST_CONFIG
    write_text(
        path,
        to_toml(
            best_config,
            f"Best trial {best.trial_id} of sweep {folder} "
            f"({config.sweep.objective} {best.score:.4f}).\n"
            f"Run with: tfsoftmax run {path}",
        ),
    )
    return path


def best_trial_config(config: Config, best: TrialRow) -> Config:
    """The best trial's full config as a plain experiment: its values, all the epochs it trained (not cut at
    its best epoch), no sweep. A trial with early stopping kept its best epoch's weights (by validation
    accuracy, whatever the objective): the config trains to that epoch with no early stopping, so
    `--final`, which has no validation split to watch, trains to the same epoch."""
    chosen = config_for(config, best.values)
    epochs = chosen.train.epochs if "train.epochs" in best.values else config.trial_epochs
    stopping = chosen.train.early_stopping
    if stopping and best.kept_epoch is not None:
        epochs, stopping = best.kept_epoch, 0
    return dataclasses.replace(
        chosen,
        train=dataclasses.replace(chosen.train, epochs=epochs, early_stopping=stopping),
        logging=dataclasses.replace(chosen.logging, experiment=f"{config.logging.experiment}_best"),
        sweep=dataclasses.replace(chosen.sweep, space=()),
    )


@dataclass(repr=False)
class SweepResult:
    """What a finished sweep returns: its trials ranked best first, the best trial's config file, and the
    worker processes that ran it and the `--final` retrain where there were any."""

    sweep_dir: Path
    rows: list[TrialRow]
    best_config_path: Path | None
    wall_time_s: float
    workers: tuple[str, ...] = ()
    final: RunResult | None = None

    def __repr__(self) -> str:
        from tfsoftmax.display.render import sweep_text

        return sweep_text(self)

    def _repr_html_(self) -> str:
        """The ranked trials (values, score, best epoch, status), the best one and the final run."""
        from tfsoftmax.display.render import sweep_html

        return sweep_html(self)
