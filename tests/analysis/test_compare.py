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

from tfsoftmax.analysis import compare
from tfsoftmax.cli import compare as compare_cli
from tfsoftmax.config import Config, to_toml
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import TfsoftmaxError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LRS = (0.03, 0.1, 0.3)


def fake_run(
    folder: Path,
    lr: float,
    val_accuracy: list[float],
    status: str = "completed",
    test: float | None = 0.8,
    **extra: Any,
) -> Path:
    """A run directory written by hand, as `train.run` leaves it: no training; `extra` are further record
    keys (calibration, kept_epoch)."""
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
        **extra,
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def calibration_block(ece: float, shift: float = 0.0) -> dict[str, Any]:
    """A record's calibration block as `write_json` leaves it: four bins, the first empty ("NaN")."""
    bins = {
        "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
        "counts": [0, 10, 30, 60],
        "confidence": ["NaN", 0.4, 0.65, 0.9],
        "accuracy": ["NaN", 0.3 + shift, 0.6 + shift, 0.92],
    }
    return {
        "ece": ece,
        "ece_calibrated": ece / 2,
        "nll": 0.5,
        "nll_calibrated": 0.49,
        "temperature": 0.9,
        "accuracy_at": {f"{c / 10:g}": 1.0 - c / 100 - shift for c in range(1, 11)},
        "threshold_95": 0.8,
        "coverage_95": 0.6,
        "accuracy_95": 0.95,
        "reliability": bins,
        "reliability_calibrated": {**bins, "confidence": ["NaN", 0.35, 0.62, 0.91]},
    }


def three_runs(root: Path) -> list[Path]:
    return [
        fake_run(root / f"lr_{lr}", lr, [0.70 + lr / 10, 0.80 + lr / 10, 0.75 + lr / 10], test=0.8 + lr / 10)
        for lr in LRS
    ]


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    compare_cli.configure_parser(parser)
    return compare_cli.command(parser.parse_args(argv))


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


def test_calibrated_runs_add_ece_coverage_and_kept_epoch_columns(tmp_path: Path) -> None:
    older = {k: v for k, v in calibration_block(0.04).items() if not k.startswith("reliability")}
    fake_run(tmp_path / "exp" / "a", 0.03, [0.7, 0.8, 0.75], calibration=calibration_block(0.02), kept_epoch=2)
    fake_run(tmp_path / "exp" / "b", 0.1, [0.7, 0.8, 0.85], calibration=older)  # recorded before the bins
    fake_run(tmp_path / "exp" / "c", 0.3, [0.7, 0.8, 0.85])  # no validation split, or recorded before calibration
    result = compare.compare([str(tmp_path / "exp")], tmp_path / "out")
    assert list(result.rows[0]) == [
        "run",
        "train.lr",
        "epochs",
        "kept_epoch",
        "best_val_accuracy",
        "final_val_accuracy",
        "test_accuracy",
        "test_ece",
        "ece_calibrated",
        "acc_at_80pct",
        "wall_time_s",
        "status",
    ]
    assert [(r["kept_epoch"], r["test_ece"], r["ece_calibrated"], r["acc_at_80pct"]) for r in result.rows] == [
        (2, 0.02, 0.01, pytest.approx(0.92)),
        (None, 0.04, 0.02, pytest.approx(0.92)),
        (None, None, None, None),
    ]
    markdown = (tmp_path / "out" / "compare.md").read_text()
    assert "| a | 0.03 | 3 | 2 | 0.8000 | 0.7500 | 0.8000 | 0.0200 | 0.0100 | 0.9200 | 12.5 | completed |" in markdown
    assert "| c | 0.3 | 3 | - | 0.8500 | 0.8500 | 0.8000 | - | - | - | 12.5 | completed |" in markdown
    rows = list(csv.DictReader((tmp_path / "out" / "compare.csv").open()))
    assert [(r["kept_epoch"], r["test_ece"]) for r in rows] == [("2", "0.02"), ("", "0.04"), ("", "")]

    # reliability: the non-empty bins of each run that kept them, raw and temperature-scaled, and the diagonal
    reliability = result.figures["reliability"].axes[0]
    lines = run_lines(result.figures["reliability"])
    assert [line.get_label() for line in lines] == ["train.lr=0.03", "train.lr=0.03, temperature-scaled"]
    assert list(lines[0].get_xdata()) == [0.4, 0.65, 0.9] and list(lines[0].get_ydata()) == [0.3, 0.6, 0.92]
    assert list(lines[1].get_xdata()) == [0.35, 0.62, 0.91]
    (diagonal,) = [line for line in reliability.get_lines() if line.get_gid() == "reference"]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, 1]
    (share,) = result.figures["reliability"].axes[1].patches  # the raw bins' share of the inputs
    assert list(share.get_data().values) == [0.0, 0.1, 0.3, 0.6]
    # coverage: every run with a calibration block, accuracy per coverage 10..100%
    lines = run_lines(result.figures["coverage"])
    assert [line.get_label() for line in lines] == ["train.lr=0.03", "train.lr=0.1"]
    assert list(lines[0].get_xdata()) == pytest.approx([c / 10 for c in range(1, 11)])
    assert list(lines[1].get_ydata()) == pytest.approx([1.0 - c / 100 for c in range(1, 11)])
    # the early-stopped run's kept epoch is ringed on every curve, once in the legend
    for fig in result.figures.values():
        rings = [line for line in fig.axes[0].get_lines() if line.get_gid() == "kept_epoch"]
        assert len(rings) == (0 if fig in (result.figures["reliability"], result.figures["coverage"]) else 1)
    (ring,) = [line for line in result.figures["val_accuracy"].axes[0].get_lines() if line.get_gid() == "kept_epoch"]
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([2], [0.8])
    assert ring.get_label() == "epoch whose weights were kept"
    for name in ("reliability.png", "coverage.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_SIGNATURE


def test_the_block_a_run_records_is_what_compare_reads(tmp_path: Path) -> None:
    import numpy as np

    from tfsoftmax.analysis import calibration
    from tfsoftmax.files import write_json

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(scale=3.0, size=(400, 10)), rng.integers(0, 10, size=400)
    summary = calibration.summarize(logits[:200], labels[:200], logits[200:], labels[200:])
    run = fake_run(tmp_path / "exp" / "run", 0.1, [0.8, 0.82])
    record = json.loads((run / "metrics.json").read_text())
    write_json(run / "metrics.json", {**record, "calibration": summary.to_json()})  # empty bins as "NaN"
    result = compare.compare([str(run)], tmp_path / "out")
    row = result.rows[0]
    assert (row["test_ece"], row["ece_calibrated"]) == (summary.ece, summary.ece_calibrated)
    assert row["acc_at_80pct"] == summary.accuracy_at[0.8] and "kept_epoch" not in row
    filled = summary.reliability.counts > 0
    (raw, _) = run_lines(result.figures["reliability"])
    assert list(raw.get_ydata()) == list(summary.reliability.accuracy[filled])


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
        (
            lambda d: (d / "metrics.json").write_text(
                json.dumps({**json.loads((d / "metrics.json").read_text()), "calibration": {"ece": 0.1}})
            ),
            "calibration: expected numbers ece, ece_calibrated, accuracy_at.0.8 (KeyError('ece_calibrated'))",
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
        "import sys\nimport tfsoftmax.analysis.compare as c\n"
        "assert 'matplotlib' not in sys.modules and 'tensorflow' not in sys.modules\n"
        f"c.compare([{str(tmp_path / 'exp')!r}])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_reads_back_what_a_real_run_writes(write_config: Callable[..., Path]) -> None:
    from tfsoftmax.training.train import run

    trained = run(load_config(write_config()))
    result = compare.compare([str(trained.run_dir)])
    assert result.out == trained.run_dir.parent / "compare"
    row = result.rows[0]
    assert row["run"] == trained.run_dir.name and row["status"] == trained.status == "completed"
    assert row["epochs"] == 2 and row["final_val_accuracy"] == trained.history["val_accuracy"][-1]
    assert row["best_val_accuracy"] == max(trained.history["val_accuracy"])
    assert row["test_accuracy"] == pytest.approx(trained.test["accuracy"])
    assert row["wall_time_s"] == pytest.approx(trained.wall_time_s)
    lines = {stem: len(run_lines(fig)) for stem, fig in result.figures.items()}
    # a run with a validation split is calibrated: raw and temperature-scaled reliability, one coverage line
    assert lines == {"train_loss": 1, "val_loss": 1, "val_accuracy": 1, "reliability": 2, "coverage": 1}
    recorded = json.loads((trained.run_dir / "metrics.json").read_text())["calibration"]
    assert (row["test_ece"], row["acc_at_80pct"]) == (recorded["ece"], recorded["accuracy_at"]["0.8"])
    assert list(run_lines(result.figures["train_loss"])[0].get_ydata()) == trained.history["loss"]


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize(
    "group, pattern, key",
    [
        ("d2l_lr", "d2l_lr_*.toml", "train.lr"),
        ("d2l_batch", "d2l_batch_*.toml", "data.batch_size"),
        ("d2l_long", "d2l_long.toml", "train.epochs"),
    ],
)
def test_d2l_exercise_experiments_differ_from_the_reference_in_one_key(group: str, pattern: str, key: str) -> None:
    reference = compare.flat_config(load_config(EXPERIMENTS / "fashion_mnist.toml"))
    files = sorted(EXPERIMENTS.glob(pattern))
    configs = [load_config(path) for path in files]
    assert len(files) >= (1 if group == "d2l_long" else 4)
    for path, config in zip(files, configs, strict=True):
        changed = {k for k, v in compare.flat_config(config).items() if v != reference[k]}
        assert changed <= {key}, path
        assert config.logging.experiment == group, path  # one folder per exercise, for `compare`
        assert path.read_text().startswith("# D2L exercise"), path
    assert len({compare.flat_config(c)[key] for c in configs}) == len(files)


def test_the_overfitting_fix_is_the_long_run_plus_early_stopping_in_the_same_folder() -> None:
    long, fixed = (load_config(EXPERIMENTS / name) for name in ("d2l_long.toml", "d2l_long_fixed.toml"))
    changed = {k for k, v in compare.flat_config(fixed).items() if v != compare.flat_config(long)[k]}
    assert "train.early_stopping" in changed and changed <= {"train.early_stopping", "train.weight_decay"}
    assert fixed.logging.experiment == long.logging.experiment == "d2l_long"  # one compare covers the pair
    header = (EXPERIMENTS / "d2l_long_fixed.toml").read_text()
    assert header.startswith("# D2L exercise") and "tfsoftmax compare logs/d2l_long" in header
