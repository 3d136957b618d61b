"""Sweep progress as one line per finished trial, readable in a terminal and in a log file alike:
trial k of N, its values, its score, the best so far and which trial, elapsed and estimated time left. In a
notebook the same line is one display, updated in place, with a bar of trials done."""

from __future__ import annotations

import re
import time
from typing import Any

from tfsoftmax.display.notebook import in_notebook
from tfsoftmax.display.shown import Shown


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class SweepProgress:
    """Counts trials ended through the oracle, this session's and those a resumed sweep had before."""

    def __init__(self, total: int, objective: str) -> None:
        self.total, self.objective = total, objective
        self.started = time.perf_counter()
        self.ended_here = 0
        self.shown = Shown() if in_notebook() else None

    def line(self, trial: Any, ended: int | None, best: Any | None, reason: str) -> str:
        """The line for `trial`, given how many trials have ended so far and the best of them; a
        distributed worker knows neither (None): its line has no count, best or time left."""
        values = " ".join(
            f"{k}={_value(v)}" for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
        )
        status = str(trial.status).lower()
        if status == "completed" and trial.score is not None:
            outcome = f"{self.objective} {trial.score:.4f}"
        else:  # a diverged trial is a failed one whose reason says so
            outcome = reason if reason.startswith("diverged") else f"{status}{': ' + reason if reason else ''}"
        elapsed = time.perf_counter() - self.started
        if ended is None:
            return f"trial {trial.trial_id} {values}: {outcome} | {_duration(elapsed)} elapsed"
        eta = elapsed / self.ended_here * max(self.total - ended, 0)
        best_text = "none yet" if best is None else f"{best.score:.4f} (trial {best.trial_id})"
        return (
            f"trial {ended}/{self.total} (id {trial.trial_id}) {values}: {outcome} | best {best_text} | "
            f"{_duration(elapsed)} elapsed, ~{_duration(eta)} left"
        )

    def report(self, trial: Any, oracle: Any, local: bool) -> None:
        """Print the line for a trial the oracle has just ended; `local` when this process holds the
        oracle (a distributed worker only holds a client to the chief's)."""
        self.ended_here += 1
        message = (trial.message or "").strip().splitlines()
        failed = bool(message) and str(trial.status).lower() != "completed"
        # keras-tuner keeps the traceback's last line: drop its exception class, keep our message.
        reason = re.sub(r"^[\w.]+Error: ", "", message[-1]) if failed else ""
        if not local:
            self._show(self.line(trial, None, None, reason), None)
            return
        ended = [t for t in oracle.trials.values() if str(t.status).lower() not in ("running", "idle")]
        # keras-tuner pads its best list with unfinished trials when none has completed.
        best = next((t for t in oracle.get_best_trials(1) if str(t.status).lower() == "completed"), None)
        self._show(self.line(trial, len(ended), best, reason), len(ended))

    def _show(self, line: str, ended: int | None) -> None:
        if self.shown is None:
            print(line, flush=True)
            return
        import html

        from IPython.display import HTML

        bar = "" if ended is None else f'<progress value="{ended}" max="{self.total}"></progress> '
        self.shown.show(HTML(f"<div>{bar}<code>{html.escape(line)}</code></div>"))
