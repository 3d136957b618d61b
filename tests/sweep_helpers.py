"""Sweep files and process checks shared by the sweep, pack, distributed and CLI tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

SPACE = """
[sweep]
algorithm = "{algorithm}"
max_trials = {trials}
epochs = {epochs}
[sweep.space]
{space}
"""


def sweep_file(
    write_config: Callable[..., Path],
    space: str,
    trials: int = 3,
    epochs: int = 1,
    algorithm: str = "random",
    extra: str = "",
    pack: int | None = None,
) -> Path:
    """A sweep config; `pack` sets sweep.pack (1: every trial trained alone, through keras-tuner's loop)."""
    text = SPACE.format(algorithm=algorithm, trials=trials, epochs=epochs, space=space)
    if pack is not None:
        text = text.replace("[sweep]\n", f"[sweep]\npack = {pack}\n", 1)
    return write_config(extra + text, name="sw")


def trial_records(sweep: Path) -> dict[str, dict]:
    return {p.parent.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/execution0/metrics.json")}


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line holds `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
