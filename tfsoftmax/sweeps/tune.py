"""A whole sweep: `search` runs or resumes the keras-tuner search in this process (a worker's side too),
one sweep of an experiment at a time; `collect` hands the trials to `results` to rank and write; `launch`
runs the search in worker processes; and `sweep`, the whole command, adds the `--final` retrain of the
best config (`final_config`). The tuners themselves are in `tuners`.

A sweep's folder is `<root>/<experiment>/`, laid out as `rundir` describes: keras-tuner's project in
`tuner/`, each `<trial_id>/execution<N>/` a complete run directory and TensorBoard run, and the results
files at the top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from tfsoftmax import data as data_lib
from tfsoftmax.board import hparams
from tfsoftmax.config import Config, to_toml
from tfsoftmax.config.loader import load_config, override, require_space
from tfsoftmax.distributed import fingerprint
from tfsoftmax.distributed import launcher as distribute
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import locked, write_text
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.sweeps import kt_private, results
from tfsoftmax.sweeps.hypermodel import HyperModel
from tfsoftmax.sweeps.results import SweepResult
from tfsoftmax.sweeps.tuners import make_tuner, sweep_dir
from tfsoftmax.training import train
from tfsoftmax.training.stopping import StopSignal


@contextlib.contextmanager
def exclusive(config: Config, side: str = "sweep") -> Iterator[None]:
    """Keep a second sweep of the same experiment out while this one runs (two would share keras-tuner's
    oracle and trial folders), or, for `side` "chief", a second chief. The lock sits beside the sweep
    folder, which `--overwrite` deletes."""
    folder = sweep_dir(config)
    with locked(folder.parent / f".{folder.name}.{side}.lock", blocking=False) as mine:
        if not mine:
            raise TfsoftmaxError(
                f"{side}: {folder} is in use by another {side} process; wait for it to end or "
                "set another logging.experiment",
                RUNTIME_ERROR,
            )
        yield


def clear(config: Config) -> None:
    """Delete the whole earlier sweep: tuner state and TensorBoard runs, so no stale logs mix in."""
    if sweep_dir(config).exists():
        shutil.rmtree(sweep_dir(config))


def prepare(config: Config, overwrite: bool) -> tuple[data_lib.Dataset, data_lib.Splits]:
    """Check the space can be swept, clear an old sweep if asked, and load the data once."""
    require_space(config, "sweep")
    if overwrite:
        clear(config)
    dataset = data_lib.load_dataset(config.data)
    return dataset, data_lib.split(dataset, config.data)


def search(config: Config, overwrite: bool = False, display: bool = False) -> SweepResult | None:
    """Run (or resume) the search in this process; as a distributed worker or chief, only search. Each
    finished trial prints one progress line; `display` adds keras-tuner's own per-trial tables.

    Returns:
        SweepResult in a single process; None in a distributed chief or worker, where the launcher
        (or the user) reads the results afterwards with `collect`.
    """
    # The launcher (or the user) keeps other sweeps out; a chief keeps a second chief out.
    if kt_private.is_chief_oracle():
        with exclusive(config, "chief"), fingerprint.published(config, sweep_dir(config)):
            return _search(config, False, display)
    if kt_private.has_chief_oracle():
        fingerprint.check(config, sweep_dir(config), config.sweep.chief_timeout_s)
        heartbeat = kt_private.announce(config.sweep.chief_timeout_s, config.sweep.lease_s, sweep_dir(config))
        try:
            return _search(config, False, display)
        finally:
            heartbeat.close()
    with exclusive(config):
        return _search(config, overwrite, display)


def _search(config: Config, overwrite: bool, display: bool) -> SweepResult | None:
    started = time.perf_counter()
    dataset, splits = prepare(config, overwrite)
    folder = sweep_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    with StopSignal() as stop:
        tuner = make_tuner(config, HyperModel(config, dataset, splits, stop), stop)
        if not kt_private.has_chief_oracle() or kt_private.is_chief_oracle():
            hparams.write_sweep_config(config, folder)
        tuner.search(
            epochs=config.trial_epochs, callbacks=[train.tensorboard_callback(folder, config)], verbose=int(display)
        )
    if kt_private.has_chief_oracle():
        if kt_private.is_chief_oracle():
            # Without this save the oracle still lists the last trial as ongoing, and a restart re-runs it.
            tuner.oracle.save()
        return None
    tuner.oracle.save()
    return collect(config, started)


def collect(config: Config, started: float) -> SweepResult:
    """Read the sweep's trials from keras-tuner's state on disk, rank them and write the results files."""
    folder = sweep_dir(config)
    if not rundir.is_sweep(folder):
        raise TfsoftmaxError(f"sweep: no keras-tuner state in {folder / rundir.TUNER_PROJECT}", RUNTIME_ERROR)
    tuner = make_tuner(config, None, StopSignal())  # it reads, never trains: a stop nobody can request
    # The tuner reloads only its own id's state (absent after a distributed sweep): read the oracle's.
    tuner.oracle.reload()
    rows = results.rank(tuner.oracle, folder)
    best = results.write_results(config, rows, folder)
    return SweepResult(sweep_dir=folder, rows=rows, best_config_path=best, wall_time_s=time.perf_counter() - started)


def launch(config: Config, workers: int, display: bool) -> tuple[str, ...]:
    """A chief and `workers` worker processes searching `config`, which they read from a file beside the
    sweep's lock (removed once they are done); returns the workers' tuner ids."""
    folder = sweep_dir(config)
    path = folder.parent / f".{folder.name}.sweep.toml"
    write_text(path, to_toml(config, f"The config of the sweep {folder}, read by its chief and workers."))
    try:
        return tuple(distribute.launch([str(path), *(["--verbose"] if display else [])], workers))
    finally:
        path.unlink(missing_ok=True)


def sweep(
    config: Config, *, overwrite: bool = False, final: bool = False, workers: int = 0, display: bool = False
) -> SweepResult:
    """Run or resume a whole sweep; see `tfsoftmax.sweep`."""
    require_space(config, "sweep")
    started = time.perf_counter()
    if workers:
        with exclusive(config):
            if overwrite:
                clear(config)
            ran = launch(config, workers, display)
            result = dataclasses.replace(collect(config, started), workers=ran)
    elif kt_private.has_chief_oracle():
        raise TfsoftmaxError(
            f"sweep: ${distribute.ORACLE_IP} makes this process one side of a distributed sweep; "
            "unset it, or run that side with `tfsoftmax sweep --role`",
            CONFIG_ERROR,
        )
    else:
        result = search(config, overwrite=overwrite, display=display)
    if result.best_config_path is None:
        raise TfsoftmaxError(
            f"sweep: no trial completed, so there is no best configuration; each trial's "
            f"status and reason: {result.sweep_dir / rundir.RESULTS_CSV}",
            RUNTIME_ERROR,
        )
    if final:
        run = train.run(final_config(result.best_config_path)).raise_for_status("final run")
        result = dataclasses.replace(result, final=run)
    return result


def final_config(best_path: Path) -> Config:
    """The best config retrained on train+validation (D2L's split): the test split only reports."""
    return override(
        load_config(best_path),
        {"data.validation_fraction": 0.0, "logging.experiment": f"{best_path.parent.name}_final"},
    )
