"""The command line: instant help and config errors (no TensorFlow), one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax import cli
from tfsoftmax.config.loader import load_config
from tfsoftmax.sweeps import tune

from sweep_helpers import sweep_file

NO_TF = (
    "import sys, runpy; sys.argv = ['tfsoftmax'] + sys.argv[1:]\n"
    "from tfsoftmax.cli import main\ncode = main(sys.argv[1:])\n"
    "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
    "sys.exit(code)"
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_TF, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_commands_without_tensorflow() -> None:
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "board"):
        assert command in result.stdout


def test_config_error_is_one_line_exit_2_without_tensorflow(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlr = -1\n")
    result = _cli("run", str(path))
    assert result.returncode == 2
    assert result.stderr == f"tfsoftmax: error: {path}: train.lr: got -1.0; allowed: a finite number > 0\n"


def test_bad_override_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("")
    result = _cli("run", str(path), "--set", "data.batch_size=0")
    assert (result.returncode, result.stderr.count("\n")) == (2, 1)
    assert "--set data.batch_size=0: data.batch_size: got 0" in result.stderr
    result = _cli("run", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "missing.toml: no such config file" in result.stderr


def test_board_on_missing_logdir(tmp_path: Path) -> None:
    result = _cli("board", str(tmp_path / "nope"))
    assert result.returncode == 2 and "no such log directory" in result.stderr


@pytest.mark.slow
def test_run_prints_summary_and_logdir_override(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "other root"
    assert cli.main(["run", str(write_config()), "--logdir", str(root)]) == 0
    out = capsys.readouterr().out
    run_dir = next((root / "tiny").iterdir())
    assert f"run directory: {run_dir}" in out and f"tfsoftmax board {root}" in out
    assert "run completed: test accuracy" in out


@pytest.mark.slow  # a whole run; test_train checks divergence fast
def test_diverged_run_exits_1_with_reason(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config("[train]\nlr = 1e36\n[data]\nscale = false")
    assert cli.main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("tfsoftmax: error: run diverged: training loss became nan at epoch 1") and err.count("\n") == 1
    )
    run_dir = Path(err.rsplit("record kept in ", 1)[1].strip())
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--verbose", "run", "x.toml"], True),
        (["run", "x.toml", "--verbose"], True),
        (["run", "x.toml"], False),
        (["--verbose", "board"], True),
        (["board", "--verbose"], True),
    ],
)
def test_verbose_goes_before_or_after_the_command(argv: list[str], expected: bool) -> None:
    assert cli.build_parser().parse_args(argv).verbose is expected


def test_sweep_workers_read_the_resolved_config_and_inherit_verbose(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsoftmax.config.loader import load_config
    from tfsoftmax.distributed import launcher as distribute

    class Launched(Exception):
        pass

    seen: dict = {}

    def launch(sweep_args: list[str], workers: int) -> None:
        seen.update(args=sweep_args, workers=workers, config=load_config(sweep_args[0]))
        raise Launched

    monkeypatch.setattr(distribute, "launch", launch)
    path = write_config('[sweep]\nmax_trials = 2\n[sweep.space]\n"train.lr" = { min = 0.1, max = 1.0 }', name="sw")
    with pytest.raises(Launched):
        cli.main(["sweep", str(path), "--set", "train.epochs=3", "--workers", "2", "--verbose"])
    assert seen["args"][1:] == ["--verbose"] and seen["workers"] == 2
    assert seen["config"] == load_config(path, ["train.epochs=3"])  # what the launcher resolved, overrides too
    assert not Path(seen["args"][0]).exists()  # removed once the processes are done


@pytest.mark.parametrize(
    ("flags", "variable", "display"), [([], None, False), (["--verbose"], None, True), ([], "1", True)]
)
def test_sweep_shows_keras_tuner_tables_only_when_verbose(
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    variable: str | None,
    display: bool,
) -> None:
    from tfsoftmax.display.terminal import VERBOSE_ENV
    from tfsoftmax.sweeps import tune

    class Searched(Exception):
        pass

    def search(config: object, **kwargs: object) -> None:
        raise Searched(kwargs)

    monkeypatch.setattr(tune, "search", search)
    if variable is None:
        monkeypatch.delenv(VERBOSE_ENV, raising=False)
    else:
        monkeypatch.setenv(VERBOSE_ENV, variable)
    path = write_config('[sweep]\nmax_trials = 2\n[sweep.space]\n"train.lr" = { min = 0.1, max = 1.0 }')
    with pytest.raises(Searched) as e:
        cli.main(["sweep", str(path), *flags])
    assert e.value.args[0]["display"] is display


def test_role_needs_oracle(write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = sweep_file(write_config, '"data.batch_size" = { values = [8, 16] }', trials=5)
    assert cli.main(["sweep", str(path), "--role", "worker"]) == 2
    assert "--role and --oracle go together" in capsys.readouterr().err
    assert cli.main(["sweep", str(path), "--role", "worker", "--oracle", "nohost"]) == 2
    assert "--oracle: got 'nohost'; allowed: HOST:PORT" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("pack", [1, 16])
def test_dry_run_trains_nothing(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], pack: int
) -> None:
    path = sweep_file(write_config, '"data.batch_size" = { values = [8, 16] }', trials=5, pack=pack)
    assert cli.main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    measured = "batch 8:" if pack == 1 else "measured pack of 5 trials (micro-batch 8)"
    assert "trials: 5, 1 epochs each" in out and measured in out and "estimated time:" in out
    assert not tune.sweep_dir(load_config(path)).exists()


def test_empty_space_is_refused(write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", str(write_config())]) == 2
    assert "[sweep.space]: empty; open at least one key" in capsys.readouterr().err


def test_a_sweep_without_a_completed_trial_exits_1(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = sweep_file(
        write_config, '"train.lr" = { values = [1e36] }', trials=1, algorithm="grid", extra="[data]\nscale = false\n"
    )
    code = cli.main(["sweep", str(path)])
    sweep = tune.sweep_dir(load_config(path))
    # Above it, keras-tuner's traceback of the failed trial (its DEBUG default).
    last = capsys.readouterr().err.splitlines()[-1]
    assert code == 1 and last == (
        "tfsoftmax: error: sweep: no trial completed, so there is no best configuration; "
        f"each trial's status and reason: {sweep / 'results.csv'}"
    )
    assert "diverged" in (sweep / "results.csv").read_text() and not (sweep / "best.toml").exists()
