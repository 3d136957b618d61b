"""Sweeps you can trust: the same file gives the same trials and scores in any process, executions are
different seeds, and no sweep can score its trials on the test split."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config, override
from tfsoftmax.sweeps import results, tune
from tfsoftmax.training import train

from conftest import ROOT, child_env, one_line_error, tfsoftmax_command

ALGORITHMS = {"random": 4, "grid": 4, "bayesian": 5, "hyperband": 0}  # bayesian: 3 random, then its model

SEARCH_ALL = """
import json, sys
from tfsoftmax.sweeps import tune
from tfsoftmax.config.loader import load_config
for path in sys.argv[2:]:
    tune.search(load_config(path, [f"logging.root={json.dumps(sys.argv[1])}"]))
"""


def _sweep_files(write_config: Callable[..., Path]) -> list[Path]:
    paths = []
    for algorithm, trials in ALGORITHMS.items():
        paths.append(
            write_config(
                f'[sweep]\nalgorithm = "{algorithm}"\nmax_trials = {max(trials, 1)}\nepochs = 3\n'
                '[sweep.space]\n"train.lr" = { min = 0.01, max = 1.0, sampling = "log" }\n'
                + ('"data.batch_size" = { values = [8, 16, 32] }\n' if algorithm != "bayesian" else ""),
                name=f"sweep_{algorithm}",
            )
        )
    return paths


def _trials(sweep: Path) -> list[tuple]:
    """Each trial's id, values, score and per-epoch training loss, as the sweep left them on disk."""
    saved = json.loads((sweep / "results.json").read_text())["trials"]
    return sorted(
        (
            t["trial_id"],
            t["values"],
            t["score"],
            json.loads((sweep / t["trial_id"] / "execution0" / "metrics.json").read_text())["history"]["loss"],
        )
        for t in saved
    )


def _search_in_child(root: Path, paths: list[Path]) -> dict[str, list[tuple]]:
    # A fresh interpreter each time: nothing seeded in this process (Python's random included) can leak in.
    done = subprocess.run(
        [sys.executable, "-c", SEARCH_ALL, str(root), *map(str, paths)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=500,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {path.stem: _trials(root / path.stem) for path in paths}


@pytest.mark.slow
def test_every_algorithm_proposes_and_scores_the_same_trials_in_two_processes(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    paths = _sweep_files(write_config)
    first, second = _search_in_child(tmp_path / "a", paths), _search_in_child(tmp_path / "b", paths)
    assert first == second
    for name, trials in first.items():
        assert len(trials) >= 3 and all(score is not None for _, _, score, _ in trials), (name, trials)
        assert len({json.dumps(values, sort_keys=True) for _, values, _, _ in trials}) > 1, name  # a real search


@pytest.mark.slow
def test_two_workers_propose_and_score_what_one_process_does(write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config(
        '[sweep]\nalgorithm = "random"\nmax_trials = 4\nepochs = 2\n[sweep.space]\n'
        '"train.lr" = { min = 0.01, max = 1.0, sampling = "log" }',
        name="sweep_workers",
    )
    alone = _search_in_child(tmp_path / "alone", [path])["sweep_workers"]
    done = subprocess.run(
        tfsoftmax_command("sweep", str(path), "--workers", "2", "--logdir", str(tmp_path / "w")),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    workers = _trials(tmp_path / "w" / "sweep_workers")
    # The same trials with the same values, their numbers equal to float rounding: which worker trains which
    # trial, and so the width of the pack it trains in, depends on timing, and a wide matmul's last bits
    # depend on its width (docs/features/reproducibility.md).
    assert [(trial, values) for trial, values, _, _ in workers] == [(trial, values) for trial, values, _, _ in alone]
    for (_, _, score, loss), (_, _, alone_score, alone_loss) in zip(workers, alone, strict=True):
        assert score == pytest.approx(alone_score, rel=1e-5) and loss == pytest.approx(alone_loss, rel=1e-5)


@pytest.mark.parametrize("how", ["file", "set"])
def test_sweep_without_a_validation_split_is_refused_before_it_starts(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], how: str
) -> None:
    space = '[sweep]\nmax_trials = 2\n[sweep.space]\n"train.lr" = { values = [0.1, 0.5] }'
    path = write_config(space + ("\n[data]\nvalidation_fraction = 0" if how == "file" else ""))
    overrides = [] if how == "file" else ["data.validation_fraction=0"]
    code, err = one_line_error(["sweep", str(path), *[a for o in overrides for a in ("--set", o)]], capsys)
    assert code == 2
    assert err == (
        f"tfsoftmax: error: {path}: data.validation_fraction: got 0.0, which would score and choose "
        "trials on the test split; allowed in a sweep: a number in (0, 1), e.g. 0.1 (--final then "
        "retrains the best on train+validation)"
    )
    config = load_config(path, overrides)
    assert not tune.sweep_dir(config).exists()  # no trial, no tuner state
    with pytest.raises(tune.TfsoftmaxError, match="would score and choose trials on the test split"):
        tune.search(config)  # the notebook path is guarded the same way
    assert not tune.sweep_dir(config).exists()


@pytest.mark.slow
def test_executions_are_different_seeds_each_rerunnable_and_averaged(write_config: Callable[..., Path]) -> None:
    config = load_config(
        write_config(
            '[sweep]\nalgorithm = "grid"\nmax_trials = 1\nepochs = 2\n'
            'executions_per_trial = 3\n[sweep.space]\n"train.lr" = { values = [0.05] }\n'
            "[train]\nseed = 7",
            name="sw",
        )
    )
    result = tune.search(config)
    trial = tune.sweep_dir(config) / result.rows[0].trial_id
    seeds = [load_config(trial / f"execution{i}" / "config.toml").train.seed for i in range(3)]
    assert seeds[0] == 7 and seeds == [results.execution_seed(7, i) for i in range(3)] and len(set(seeds)) == 3
    histories = [json.loads((trial / f"execution{i}" / "metrics.json").read_text())["history"] for i in range(3)]
    assert len({tuple(h["loss"]) for h in histories}) == 3
    row = result.rows[0]
    assert row.execution_scores == tuple(max(h["val_accuracy"]) for h in histories)
    assert row.score == pytest.approx(sum(row.execution_scores) / 3)
    assert row.spread == max(row.execution_scores) - min(row.execution_scores)
    # An execution's saved config re-runs it alone, to the same numbers.
    again = train.run(override(load_config(trial / "execution2" / "config.toml"), {"logging.experiment": "rerun"}))
    assert again.history["val_accuracy"] == histories[2]["val_accuracy"]
    assert again.history["loss"] == histories[2]["loss"]
