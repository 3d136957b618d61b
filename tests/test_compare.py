"""`compare`: runs read back from their files, the table, the figures, and bad input skipped in one line."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfsoftmax import compare
from tfsoftmax.config import Config, to_toml
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.loader import load_config, override

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LRS = (0.03, 0.1, 0.3)


def fake_run(
    folder: Path, lr: float, val_accuracy: list[float], status: str = "completed", test: float | None = 0.8
) -> Path:
    """A run directory written by hand, as `train.run` leaves it: no training."""
    folder.mkdir(parents=True)
    epochs = len(val_accuracy)
    config = override(Config(), {"train.lr": lr, "train.epochs": max(epochs, 1)})
    (folder / "config.toml").write_text(to_toml(config))
    history = {
        "loss": [1.0 / (e + 1) for e in range(epochs)],
        "accuracy": [a - 0.01 for a in val_accuracy],
        "val_loss": [1.1 / (e + 1) for e in range(epochs)],
        "val_accuracy": val_accuracy,
        "learning_rate": [lr] * epochs,
        "steps": [211] * epochs,
    }
    record = {
        "status": status,
        "epochs_completed": epochs,
        "epochs_planned": epochs,
        "history": history,
        "test": None if test is None else {"loss": 0.5, "accuracy": test},
        "wall_time_s": 12.5,
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def three_runs(root: Path) -> list[Path]:
    return [
        fake_run(root / f"lr_{lr}", lr, [0.70 + lr / 10, 0.80 + lr / 10, 0.75 + lr / 10], test=0.8 + lr / 10)
        for lr in LRS
    ]


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    compare.configure_parser(parser)
    return compare.command(parser.parse_args(argv))


def json_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as e:
        return str(e)
    raise AssertionError("valid JSON")


def run_lines(fig: Any) -> list[Any]:
    return [line for line in fig.axes[0].get_lines() if line.get_gid() != "reference"]


def test_three_learning_rates_give_table_csv_markdown_and_pngs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_runs(tmp_path / "exp")
    assert cli([str(tmp_path / "exp")]) == 0
    out = tmp_path / "exp" / "compare"  # the default: beside the runs
    printed = capsys.readouterr()
    assert printed.err == ""
    header, *body = printed.out.splitlines()[:4]
    assert header.split() == [
        "run",
        "train.lr",
        "epochs",
        "best_val_accuracy",
        "final_val_accuracy",
        "test_accuracy",
        "wall_time_s",
        "status",
    ]
    assert [line.split() for line in body] == [
        ["lr_0.03", "0.03", "3", "0.8030", "0.7530", "0.8030", "12.5", "completed"],
        ["lr_0.1", "0.1", "3", "0.8100", "0.7600", "0.8100", "12.5", "completed"],
        ["lr_0.3", "0.3", "3", "0.8300", "0.7800", "0.8300", "12.5", "completed"],
    ]

    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["run"], float(r["train.lr"]), r["status"]) for r in rows] == [
        ("lr_0.03", 0.03, "completed"),
        ("lr_0.1", 0.1, "completed"),
        ("lr_0.3", 0.3, "completed"),
    ]
    assert float(rows[2]["best_val_accuracy"]) == pytest.approx(0.83)
    assert float(rows[2]["final_val_accuracy"]) == pytest.approx(0.78)
    markdown = (out / "compare.md").read_text().splitlines()
    assert len(markdown) == 2 + len(LRS) and markdown[0].startswith("| run | train.lr | epochs |")
    assert "| lr_0.3 | 0.3 | 3 | 0.8300 | 0.7800 | 0.8300 | 12.5 | completed |" in markdown

    import matplotlib.image

    for name in ("train_loss.png", "val_loss.png", "val_accuracy.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = matplotlib.image.imread(out / name).shape
        assert height > 100 and width > 100


def test_figures_have_one_line_per_run_labelled_by_what_differs(tmp_path: Path) -> None:
    three_runs(tmp_path / "exp")
    result = compare.compare([str(tmp_path / "exp")], tmp_path / "out")
    assert sorted(result.figures) == ["train_loss", "val_accuracy", "val_loss"]
    first_run = {
        "train_loss": [1.0, 0.5, 1 / 3],
        "val_loss": [1.1, 0.55, 1.1 / 3],
        "val_accuracy": [0.703, 0.803, 0.753],
    }
    for stem, fig in result.figures.items():
        lines = run_lines(fig)
        assert [line.get_label() for line in lines] == [f"train.lr={lr}" for lr in LRS]
        assert list(lines[0].get_ydata()) == pytest.approx(first_run[stem])
    # Fashion-MNIST runs get D2L's and the Fashion-MNIST paper's test accuracies, on accuracy figures only.
    references = [line for line in result.figures["val_accuracy"].axes[0].get_lines() if line.get_gid() == "reference"]
    assert sorted(line.get_ydata()[0] for line in references) == [0.83, 0.842]
    assert len(result.figures["val_loss"].axes[0].get_lines()) == len(LRS)


def test_metric_accuracy_ranks_by_training_accuracy_and_adds_its_figure(tmp_path: Path) -> None:
    three_runs(tmp_path / "exp")
    result = compare.compare([str(tmp_path / "exp")], tmp_path / "out", metric="accuracy")
    assert result.rows[0]["best_accuracy"] == pytest.approx(0.793)
    assert len(run_lines(result.figures["train_accuracy"])) == len(LRS)
    assert (tmp_path / "out" / "train_accuracy.png").read_bytes()[:8] == PNG_SIGNATURE


def test_bad_inputs_are_one_line_each_and_the_others_still_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = three_runs(tmp_path / "exp")
    broken = good[1] / "metrics.json"
    broken.write_text(broken.read_text()[:100])  # half-written
    not_a_run = tmp_path / "notes"
    not_a_run.mkdir()
    (not_a_run / "readme.txt").write_text("no run here")
    missing = tmp_path / "missing"
    assert cli([str(tmp_path / "exp"), str(not_a_run), str(missing), "--out", str(tmp_path / "out")]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        f"tfsoftmax: warning: {not_a_run}: not a run directory and holds none "
        "(a run directory has metrics.json and config.toml)",
        f"tfsoftmax: warning: {missing}: no such file or directory",
        f"tfsoftmax: warning: {broken}: unreadable or half-written record ({json_error(broken.read_text())})",
    ]
    rows = list(csv.DictReader((tmp_path / "out" / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["lr_0.03", "lr_0.3"]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "metrics.json").write_text(""), "unreadable or half-written record (Expecting value"),
        (
            lambda d: (d / "metrics.json").write_text('{"status": "completed"}'),
            "missing key(s) epochs_completed, history, test, wall_time_s",
        ),
        (
            lambda d: (d / "metrics.json").write_text(
                json.dumps(
                    {
                        "status": "running",
                        "epochs_completed": 2,
                        "history": {"loss": [1.0]},
                        "test": None,
                        "wall_time_s": None,
                    }
                )
            ),
            "history.loss: 1 values for 2 completed epochs",
        ),
        (lambda d: (d / "config.toml").write_text("[train]\nlr = -1\n"), "train.lr: got -1.0"),
        (lambda d: (d / "config.toml").unlink(), "metrics.json without config.toml"),
        (lambda d: (d / "metrics.json").unlink(), "no metrics.json (still in its first epoch"),
    ],
)
def test_broken_record_is_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], Any], reason: str
) -> None:
    good, bad = three_runs(tmp_path / "exp")[:2]
    damage(bad)
    result = compare.compare([str(tmp_path / "exp")], tmp_path / "out")
    assert [run.path for run in result.runs] == [good, tmp_path / "exp" / "lr_0.3"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tfsoftmax: warning: ") and reason in err
    assert str(bad) in err


def test_nothing_to_compare_is_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path / "exp" / "only", 0.1, [0.8])
    (run / "metrics.json").write_text("{")
    with pytest.raises(TfsoftmaxError, match="^compare: no runs to compare: 2 problem") as e:
        cli([str(tmp_path / "exp"), str(tmp_path / "missing")])
    assert e.value.exit_code == 2
    assert capsys.readouterr().err.count("tfsoftmax: warning: ") == 2


def test_sweep_folders_and_globs_are_expanded_deduplicated_and_sorted(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for trial, lr in (("01", 0.3), ("00", 0.1)):
        fake_run(sweep / trial / "execution0", lr, [0.8, 0.82], test=None)
    (sweep / "tuner" / "trial_00").mkdir(parents=True)  # keras-tuner's state: no runs, no warning
    (sweep / "best.toml").write_text("")
    result = compare.compare([str(sweep / "*" / "execution0"), str(sweep), str(sweep / "00" / "execution0")])
    assert [row["run"] for row in result.rows] == ["00/execution0", "01/execution0"]
    assert result.out == sweep / "compare" and result.skipped == []
    assert result.rows[0]["test_accuracy"] is None and result.keys == ["train.lr"]


def test_diverged_run_without_finished_epochs_is_listed(tmp_path: Path) -> None:
    fake_run(tmp_path / "exp" / "ok", 0.1, [0.8, 0.82])
    fake_run(tmp_path / "exp" / "diverged", 30.0, [], status="diverged", test=None)
    result = compare.compare([str(tmp_path / "exp")])
    assert result.rows[0] == {
        "run": "diverged",
        "train.lr": 30.0,
        "train.epochs": 1,
        "epochs": 0,
        "best_val_accuracy": None,
        "final_val_accuracy": None,
        "test_accuracy": None,
        "wall_time_s": 12.5,
        "status": "diverged",
    }
    assert "| diverged | 30 | 1 | 0 | - | - | - | 12.5 | diverged |" in (result.out / "compare.md").read_text()
    labels = [line.get_label() for line in run_lines(result.figures["val_accuracy"])]
    assert labels == ["train.lr=30, train.epochs=1 (diverged)", "train.lr=0.1, train.epochs=2"]


@pytest.mark.slow
def test_compare_needs_neither_tensorflow_nor_pyplot(tmp_path: Path) -> None:
    three_runs(tmp_path / "exp")
    code = (
        "import sys\nimport tfsoftmax.compare as c\n"
        "assert 'matplotlib' not in sys.modules and 'tensorflow' not in sys.modules\n"
        f"c.compare([{str(tmp_path / 'exp')!r}])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_reads_back_what_a_real_run_writes(write_config: Callable[..., Path]) -> None:
    from tfsoftmax.train import run

    trained = run(load_config(write_config()))
    result = compare.compare([str(trained.run_dir)])
    assert result.out == trained.run_dir.parent / "compare"
    row = result.rows[0]
    assert row["run"] == trained.run_dir.name and row["status"] == trained.status == "completed"
    assert row["epochs"] == 2 and row["final_val_accuracy"] == trained.history["val_accuracy"][-1]
    assert row["best_val_accuracy"] == max(trained.history["val_accuracy"])
    assert row["test_accuracy"] == pytest.approx(trained.test["accuracy"])
    assert row["wall_time_s"] == pytest.approx(trained.wall_time_s)
    assert [len(run_lines(fig)) for fig in result.figures.values()] == [1, 1, 1]
    assert list(run_lines(result.figures["train_loss"])[0].get_ydata()) == trained.history["loss"]


@pytest.mark.parametrize(
    "group, key", [("d2l_lr", "train.lr"), ("d2l_batch", "data.batch_size"), ("d2l_long", "train.epochs")]
)
def test_d2l_exercise_experiments_differ_from_the_reference_in_one_key(group: str, key: str) -> None:
    experiments = Path(__file__).resolve().parent.parent / "experiments"
    reference = compare.flat_config(load_config(experiments / "fashion_mnist.toml"))
    files = sorted(experiments.glob(f"{group}*.toml"))
    configs = [load_config(path) for path in files]
    assert len(files) >= (1 if group == "d2l_long" else 4)
    for path, config in zip(files, configs, strict=True):
        changed = {k for k, v in compare.flat_config(config).items() if v != reference[k]}
        assert changed <= {key}, path
        assert config.logging.experiment == group, path  # one folder per exercise, for `compare`
        assert path.read_text().startswith("# D2L exercise"), path
    assert len({compare.flat_config(c)[key] for c in configs}) == len(files)
