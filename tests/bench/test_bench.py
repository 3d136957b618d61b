"""The benchmark's own loops learn, and its table and JSON name every method. No timing assertions:
speed is what `tfsoftmax bench` reports, not what tests check."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax import cli, load_config
from tfsoftmax.bench import loops as bench_loops
from tfsoftmax.bench import methods
from tfsoftmax.cli import bench as bench_cli

from conftest import ROOT, one_line_error


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.configure_parser(parser)
    return parser.parse_args(list(argv))


def _tiny(write_config: Callable[..., Path]) -> tuple:
    from tfsoftmax import data

    config = load_config(write_config())
    dataset = data.load_dataset(config.data)
    return config, dataset, data.split(dataset, config.data)


def test_numpy_floor_learns_tiny_data(write_config: Callable[..., Path]) -> None:
    config, dataset, splits = _tiny(write_config)
    result = bench_loops.numpy_sgd(dataset, splits, config, epochs=3)
    assert len(result.epoch_s) == 3  # the warm-up epoch is dropped
    assert result.test_accuracy >= 0.9


@pytest.mark.slow  # trains; the NumPy floor test stays fast
def test_eager_loop_learns_tiny_data(write_config: Callable[..., Path]) -> None:
    config, dataset, splits = _tiny(write_config)
    result = bench_loops.time_eager(dataset, splits, config, epochs=3)
    assert len(result.epoch_s) == 3
    assert result.test_accuracy >= 0.9


def _fake_report() -> dict:
    results = {
        name: bench_loops.MethodResult(
            warmup_s=1.0,
            epoch_s=[0.1 * (i + 1)] * 3,
            test_accuracy=0.8,
            whole_epoch_s=[0.2] * 3 if "fit" in name or i < 2 else None,
        )
        for i, name in enumerate(methods.METHODS)
    }
    return {
        "epochs": 3,
        "train_examples": 1000,
        "batch_size": 256,
        "methods": methods.summarize(results, n_train=1000),
        "whole_run": {"wall_s": 12.5, "in_run_wall_s": 9.0, "epochs": 10, "test_accuracy": 0.83},
        "sweep": [
            {"workers": w, "trials": 12, "completed": 12, "epochs": 3, "wall_s": 60.0 / w, "trials_per_min": 12.0 * w}
            for w in (1, 2)
        ],
    }


def test_ratio_is_relative_to_the_numpy_floor() -> None:
    summary = _fake_report()["methods"]
    assert summary["numpy"]["ratio_to_floor"] == 1.0
    assert summary["tfsoftmax"]["ratio_to_floor"] == pytest.approx(0.1 / 0.3)


def test_table_names_every_method_the_whole_run_and_the_sweep() -> None:
    table = methods.format_report(_fake_report())
    for label in methods.METHODS.values():
        assert label in table
    assert "whole `tfsoftmax run` process (start-up and imports included): 12.5 s" in table
    assert "train pass s" in table and "whole epoch s" in table
    assert "1 worker(s)" in table and "2 worker(s)" in table and "24.00 trials/min" in table


@pytest.mark.slow  # trains every method in turn
def test_command_writes_every_method_to_json(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = cli.main(["bench", str(write_config()), "--epochs", "1", "--no-whole-run", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["methods"]) == set(methods.METHODS)
    for method in report["methods"].values():
        assert {"warmup_s", "epoch_s", "median_epoch_s", "images_per_s", "ratio_to_floor", "test_accuracy"} <= set(
            method
        )
        assert len(method["epoch_s"]) == 1
    assert report["whole_run"] is None and report["sweep"] is None
    assert report["train_examples"] == 108  # 120 tiny images less the 10% validation split
    assert methods.METHODS["numpy"] in capsys.readouterr().out


def test_default_config_is_the_reference_experiment_with_d2l_values() -> None:
    config = load_config(ROOT / _args().config)
    assert (config.data.dataset, config.data.batch_size, config.train.lr, config.train.epochs) == (
        "fashion_mnist",
        256,
        0.1,
        10,
    )


@pytest.mark.slow  # sleeps in every save; test_train checks the same of `fit` in the fast loop
def test_whole_epoch_is_what_a_run_waits_for_its_writes_included(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from tfsoftmax.rundir import checkpoint

    save, delay = checkpoint.save, 0.5

    def slow_save(*args: object) -> None:
        time.sleep(delay)
        save(*args)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    config, dataset, splits = _tiny(write_config)
    result = bench_loops.time_run_fit(dataset, splits, config, epochs=1)
    assert len(result.whole_epoch_s) == 1  # the last epoch too: its writes come after Keras' epoch end
    assert all(whole - train >= delay for whole, train in zip(result.whole_epoch_s, result.epoch_s, strict=True))


def test_non_sgd_optimizer_is_a_config_error(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('[train]\noptimizer = "adam"')
    code, err = one_line_error(["bench", str(path), "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2
    assert err == (
        f'tfsoftmax: error: {path}: train.optimizer: bench compares minibatch SGD loops, got "adam"; allowed: "sgd"'
    )


@pytest.mark.slow  # trains four losses and times a layer: costs.py has fast tests of its own
def test_costs_prints_both_tables_and_writes_both_to_json(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tfsoftmax.lessons import costs

    out = tmp_path / "costs.json"
    argv = ["bench", str(write_config()), "--costs", "--classes", "10,20", "--epochs", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    firsts = [line.split()[0] for line in lines if line.strip()]
    assert "loss" in firsts and "classes" in firsts
    assert set(costs.LOSSES) <= set(firsts) and {"10", "20"} <= set(firsts)
    report = json.loads(out.read_text())
    assert [r["loss"] for r in report["costs"]["cross_entropy"]] == list(costs.LOSSES)
    assert all(len(r["epoch_s"]) == 1 for r in report["costs"]["cross_entropy"])
    assert [r["num_classes"] for r in report["costs"]["softmax_layer"]] == [10, 20]
    assert all(r["input_dim"] == 784 and r["batch_size"] == 16 for r in report["costs"]["softmax_layer"])
    assert report["train_examples"] == 120  # the whole tiny training set: no validation split to hold out
    assert "methods" not in report


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--costs", "--classes", "10,x"], "--classes: expected comma-separated integers >= 1 .* got '10,x'"),
        (["--costs", "--classes", "0"], "--classes: expected comma-separated integers >= 1 .* got '0'"),
        (["--costs", "--classes=-5"], "--classes: expected .* got '-5'"),
        (["--costs", "--classes", "10,,20"], "--classes: expected .* got '10,,20'"),
        (["--classes", "10"], "--classes sets the softmax layer's class counts; it needs --costs"),
        (["--costs", "--sweep"], "--costs measures the costs alone"),
    ],
)
def test_bad_costs_flags_are_one_line_errors_with_exit_code_2(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list, message: str
) -> None:
    import re

    out = tmp_path / "costs.json"
    assert cli.main(["bench", str(write_config()), *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and re.match(r"tfsoftmax: error: bench: " + message, err[0]), err
    assert not out.exists()


def test_a_child_s_peak_memory_is_its_own_not_its_parent_s() -> None:
    import sys

    import numpy as np

    from tfsoftmax.bench.process import run_child

    parent = np.ones(400_000_000, np.uint8)  # the bench holds TensorFlow and the data: far bigger than this child
    child = run_child(
        [sys.executable, "-c", "import numpy as np; a = np.ones(100_000_000, np.uint8); print(a[0])"], "x"
    )
    assert child.stdout.strip() == "1" and 100 < child.peak_rss_mb < 300, child
    assert parent[0] == 1
