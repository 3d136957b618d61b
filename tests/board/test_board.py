"""`tfsoftmax board`: the folder served and the dashboard opened fit what it is given; wrong paths fail at once."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tfsoftmax.board import serve as board
from tfsoftmax.errors import TfsoftmaxError

from conftest import child_env, tfsoftmax_command


def _run_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("")
    (folder / "metrics.json").write_text("{}")
    return folder


def _sweep(folder: Path) -> Path:
    _run_dir(folder / "trial_0" / "execution0")
    (folder / "tuner").mkdir()
    (folder / "tuner" / "oracle.json").write_text("{}")
    return folder


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A log root as runs and a sweep leave it: <root>/<experiment>/<run>, <root>/<sweep>/<trial>/execution0."""
    root = tmp_path / "logs"
    for run in ("20261201-101010", "20261201-111111"):
        _run_dir(root / "fashion_mnist" / run)
    _sweep(root / "fashion_mnist_sweep")
    return root


@pytest.mark.parametrize(
    ("where", "kind", "dashboard"),
    [
        ("fashion_mnist/20261201-101010", "run", "scalars"),
        ("fashion_mnist", "experiment", "scalars"),
        ("fashion_mnist_sweep", "sweep", "hparams"),
        ("fashion_mnist_sweep/trial_0/execution0", "run", "scalars"),  # one execution of a trial is a run
        (".", "log root", "scalars"),
    ],
)
def test_choose_serves_the_folder_on_the_dashboard_that_fits(logs: Path, where: str, kind: str, dashboard: str) -> None:
    view = board.choose(logs / where)
    assert (view.logdir, view.kind, view.dashboard) == (logs / where, kind, dashboard)


def test_an_empty_folder_is_a_log_root(tmp_path: Path) -> None:
    assert board.choose(tmp_path).kind == "log root"


def test_missing_path_and_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r"^board: .*nope: no such log directory$") as e:
        board.choose(tmp_path / "nope")
    assert e.value.exit_code == 2
    (tmp_path / "file").write_text("")
    with pytest.raises(TfsoftmaxError, match=r"file: not a directory; allowed: a run directory") as e:
        board.choose(tmp_path / "file")
    assert e.value.exit_code == 2


def test_dashboard_url_opens_the_dashboard() -> None:
    sweep = board.View(Path("logs/s"), "sweep", "hparams")
    assert board.dashboard_url("http://127.0.0.1:6006/", sweep) == "http://127.0.0.1:6006/#hparams"
    assert board.dashboard_url("http://localhost:6006", sweep) == "http://localhost:6006/#hparams"


def test_serve_hands_tensorboard_the_chosen_folder(logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = importlib.import_module("tensorboard.program")  # the module, not tensorboard's lazy proxy

    seen: list[Any] = []

    class FakeTensorBoard:
        def configure(self, argv: list[Any]) -> None:
            seen.extend(argv)

        def launch(self) -> str:
            return "http://127.0.0.1:6123/"

    monkeypatch.setattr(program, "TensorBoard", FakeTensorBoard)
    url = board.serve(board.choose(logs / "fashion_mnist_sweep"), "127.0.0.1", 0)
    assert url == "http://127.0.0.1:6123/#hparams"
    assert seen[seen.index("--logdir") + 1] == str(logs / "fashion_mnist_sweep")


@pytest.mark.slow
def test_missing_path_is_one_line_without_loading_tensorboard(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom tfsoftmax.cli import main\ncode = main(sys.argv[1:])\n"
        "assert 'tensorboard' not in sys.modules and 'tensorflow' not in sys.modules\nsys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "board", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"tfsoftmax: error: board: {tmp_path / 'nope'}: no such log directory\n"


@pytest.mark.slow
@pytest.mark.tensorboard
def test_board_on_a_sweep_prints_the_hparams_url_of_a_server_on_that_folder(logs: Path) -> None:
    sweep = logs / "fashion_mnist_sweep"
    process = subprocess.Popen(
        tfsoftmax_command("board", str(sweep), "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"TensorBoard on sweep {sweep}: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].split()[0]
        assert url.endswith("/#hparams")
        with urllib.request.urlopen(url.split("#")[0] + "data/environment", timeout=30) as response:
            assert json.loads(response.read())["data_location"] == str(sweep)
    finally:
        process.terminate()
        process.wait(timeout=30)
