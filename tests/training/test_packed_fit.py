"""Runs trained by the packed pass (`train.engine`, "auto" for the Keras model): the numbers and files
`model.fit` gives, and XLA's compilation cache across processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import RUNTIME_ERROR
from tfsoftmax.training import train
from tfsoftmax.training.compile_cache import ENTRIES, ENV

from conftest import child_env, event_steps, tfsoftmax_command

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.mark.parametrize(
    "optimizer",
    ['optimizer = "sgd"', 'optimizer = "momentum"\nweight_decay = 0.01', 'optimizer = "adam"\nlr = 0.01'],
)
def test_a_packed_run_gives_model_fits_numbers(write_config: Callable[..., Path], optimizer: str) -> None:
    def run(engine: str) -> train.RunResult:
        text = f'[train]\nepochs = 3\nengine = "{engine}"\n{optimizer}\n[logging]\nrun_name = "{engine}"'
        return train.run(load_config(write_config(text)))

    packed, fitted = run("packed"), run("fit")
    for key in KEYS:
        np.testing.assert_allclose(packed.history[key], fitted.history[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert packed.history["steps"] == fitted.history["steps"] == [7, 7, 7]
    for a, b in zip(packed.model.get_weights(), fitted.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The optimizer's state too, as a checkpoint keeps it: its step count and its slots.
    for a, b in zip(packed.model.optimizer.variables, fitted.model.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=a.path)
    assert packed.test == pytest.approx(fitted.test, rel=1e-4)
    # The same TensorBoard runs and tags, one event per epoch.
    for run_dir in (packed.run_dir, fitted.run_dir):
        assert event_steps(run_dir / "train", "epoch_loss") == {0: 1, 1: 1, 2: 1}
        assert event_steps(run_dir / "validation", "epoch_accuracy") == {0: 1, 1: 1, 2: 1}
        assert event_steps(run_dir / "validation", "evaluation_loss_vs_iterations") == {7: 1, 14: 1, 21: 1}


def _cli_run(config: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`tfsoftmax run` of `config` as run `name`, in a child with `env` and no XLA flags of the test's."""
    inherited = {k: v for k, v in child_env().items() if k not in ("TF_XLA_FLAGS", ENV)}
    argv = tfsoftmax_command("run", str(config), "--set", f'logging.run_name="{name}"')
    return subprocess.run(argv, env={**inherited, **env}, capture_output=True, text=True, timeout=300)


def _numbers(config: Path, name: str) -> tuple[dict, dict]:
    record = json.loads((Path(load_config(config).logging.root) / "tiny" / name / "metrics.json").read_text())
    return {k: record["history"][k] for k in KEYS}, record["test"]


@pytest.mark.slow
def test_the_compiled_pass_is_reused_by_the_next_process(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, xdg = write_config("[train]\nepochs = 2"), tmp_path / "cache"
    cache = xdg / "tfsoftmax" / "xla"  # under the user's cache folder unless TFSOFTMAX_XLA_CACHE says otherwise
    assert _cli_run(config, "cold", XDG_CACHE_HOME=str(xdg)).returncode == 0
    entries = {p: p.stat().st_mtime_ns for p in cache.glob(f"*/{ENTRIES}")}
    assert entries, "the first process saves its compiled pass"
    assert _cli_run(config, "warm", XDG_CACHE_HOME=str(xdg)).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in cache.glob(f"*/{ENTRIES}")} == entries  # loaded, not compiled anew
    assert _numbers(config, "warm") == _numbers(config, "cold")  # bit for bit

    # A damaged entry: one line that says so, the entries removed, and the same command then works.
    for path in entries:
        path.write_bytes(path.read_bytes()[:1000])
    damaged = _cli_run(config, "damaged", **{ENV: str(cache)})
    assert damaged.returncode == RUNTIME_ERROR
    assert (
        damaged.stderr.strip()
        .splitlines()[-1]
        .startswith(f"tfsoftmax: error: XLA's compilation cache in {next(iter(entries)).parent} could not be read")
    )
    assert not list(cache.glob(f"*/{ENTRIES}"))
    assert _cli_run(config, "again", **{ENV: str(cache)}).returncode == 0
    assert _numbers(config, "again") == _numbers(config, "cold")

    # Turned off: nothing is written.
    elsewhere = tmp_path / "elsewhere"
    assert _cli_run(config, "off", **{ENV: "off", "XDG_CACHE_HOME": str(elsewhere)}).returncode == 0
    assert not (elsewhere / "tfsoftmax").exists() and _numbers(config, "off") == _numbers(config, "cold")
