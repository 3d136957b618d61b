"""The scripts in benchmarks/ parse their arguments, and compute and format what they report. No timing
assertions: speed is what the scripts report, not what tests check."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import pytest

from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a script of benchmarks/ by name, as `python benchmarks/NAME.py` would see its siblings."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


HELP_WITHOUT_TF = """
import os, runpy, sys
path = sys.argv[1]
sys.argv = [path, "--help"]
sys.path.insert(0, os.path.dirname(path))  # as `python benchmarks/NAME.py` sees its siblings
try:
    runpy.run_path(path, run_name="__main__")
except SystemExit as e:
    assert e.code == 0, e.code
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""


@pytest.mark.parametrize("name", ["goals", "reproduce", "plain_keras_tuner"])
def test_each_script_answers_help_without_tensorflow(name: str) -> None:
    path = BENCHMARKS / f"{name}.py"
    result = subprocess.run(
        [sys.executable, "-c", HELP_WITHOUT_TF, str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {path.name} [-h]"), result.stdout


def test_goals_sweep_is_the_plain_keras_tuner_search(script: Callable[[str], ModuleType]) -> None:
    goals, plain = script("goals"), script("plain_keras_tuner")
    lr, batch = goals.SPACE
    assert (lr.min, lr.max, lr.sampling) == (*plain.LR_RANGE, "log")
    assert list(batch.values) == plain.BATCH_SIZES
    assert (plain.TRIALS, plain.EPOCHS) == (12, 3)  # the goal's sweep, as the goals table names it


def test_goals_table_gives_each_goal_its_ratio_and_verdict(script: Callable[[str], ModuleType]) -> None:
    goals = script("goals")
    values = [(0.12, 0.08), (9.0, 5.0), (9.0, 66.0), (30.0, 60.0), (0.5, 0.13), (20.0, 70.0), (1300.0, 1290.0)]
    result = {
        "goals": [goals.goal_row(goal, v, p) for goal, (v, p) in zip(goals.GOALS, values, strict=True)],
        "floor_threads": 1,
        "floor_key": "1",
        "floor_epoch_s": {"1": 0.08, "None": 0.09},
        "packed_epoch_s": 0.088,
        "best_val_accuracy_small_sweep": {"tfsoftmax": 0.83, "plain": 0.84},
        "bookkeeping": {"training and validation": 0.2, "+ record and checkpoint": 0.21},
        "two_matmuls_s": 0.13,
        "micro_batch": 32,
        "lanes": 2,
        "micro_matmuls_s": 0.273,
    }
    text = goals.format_goals(result)
    rows = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "1.500" in rows["one more epoch"] and rows["one more epoch"].rstrip().endswith("yes")
    assert "1.800" in rows["whole run"] and rows["whole run"].rstrip().endswith("NO")
    assert "0.136" in rows["12 x 3 sweep"] and "+0.010" in text and "0.088 s, 1.10x the floor" in text
    assert "3.846" in rows["packed pass"] and rows["packed pass"].rstrip().endswith("NO")
    assert "micro-batch of 32, in its 2 lane(s) side by side (in process): 0.273 s, 2.10x the two wide" in text
    assert "0.286" in rows["Hyperband"] and rows["Hyperband"].rstrip().endswith("yes")


def test_reproduce_reports_settled_trials_apart_from_oscillating_ones(script: Callable[[str], ModuleType]) -> None:
    reproduce = script("reproduce")
    assert reproduce.swing([0.80, 0.84, 0.70, 0.75]) == pytest.approx(0.14)
    rows = [
        {"status": "completed", "val_accuracy": [0.8, 0.8], "test_accuracy": [0.81, 0.8098], "swing": 0.0},
        {"status": "completed", "val_accuracy": [0.7, 0.718], "test_accuracy": [0.7, 0.717], "swing": 0.14},
        {"status": "completed", "val_accuracy": [0.8, 0.8], "test_accuracy": [0.8, 0.8], "swing": 0.005},
        {"status": "diverged", "val_accuracy": [0.1, 0.9], "test_accuracy": [0.1, 0.9], "swing": 0.0},
    ]
    result = reproduce.summarize(rows, 30.0, "sweep.toml")
    assert result["settled"] == 2
    assert result["max_difference"]["all"] == pytest.approx({"val_accuracy": 0.018, "test_accuracy": 0.017})
    assert result["max_difference"]["settled"] == pytest.approx({"val_accuracy": 0.0, "test_accuracy": 0.0002})
    lines = reproduce.format_reproduce(result).splitlines()
    assert lines[0].startswith("4 trials swept in 30.0 s")
    assert lines[1].startswith("all 4 trials:") and lines[1].endswith("NOT met)")
    assert lines[2].startswith("2 settled:") and "0.00020" in lines[2] and lines[2].endswith(": met)")


def test_reproduce_without_a_completed_trial_stops_with_one_line(script: Callable[[str], ModuleType]) -> None:
    reproduce = script("reproduce")
    rows = [{"status": "diverged", "val_accuracy": [0.1, 0.9], "test_accuracy": [0.1, 0.9], "swing": 0.0}]
    with pytest.raises(SystemExit, match=r"^reproduce: no trial of sweep.toml completed; nothing to compare$"):
        reproduce.summarize(rows, 1.0, "sweep.toml")
