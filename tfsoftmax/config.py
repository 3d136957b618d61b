"""Experiment configs: frozen dataclasses, one per TOML section, validated whenever one is constructed
(from a file, `override`, or `dataclasses.replace`), and the only place defaults live.

Every default is D2L's reference value. A key left out is "not set" (None in Python): the field's
description says what it then means, and one property or function here resolves it. Reading files and
overrides into a Config is `loader`'s job. A config is validated completely before TensorFlow is imported, so a bad file fails at once with one line naming
the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tfsoftmax import tomlio
from tfsoftmax.checks import SEED_ALLOWED, SOURCE, at_least, check_field, choice, fail, positive, seed, spec
from tfsoftmax.space import SpaceEntry, entry_dict

OPTIMIZERS = ("sgd", "momentum", "adam")
MODEL_KINDS = ("keras", "scratch")
LOSSES = ("stable", "naive")
ALGORITHMS = ("random", "grid", "bayesian", "hyperband")
# Logged metrics whose direction keras-tuner infers by itself (accuracy up, loss down).
OBJECTIVES = ("val_accuracy", "val_loss", "accuracy", "loss")
MANUAL_DIR_ENV = "TFSOFTMAX_MANUAL_DIR"
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.\-]+)?(:[0-9]+\.[0-9]+\.[0-9]+)?$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_NAME_ALLOWED = "letters, digits, '_', '.', '-', starting with a letter or digit"


def _name(v: str) -> bool:
    return _RUN_NAME.fullmatch(v) is not None


@dataclass(frozen=True)
class _Section:
    """A TOML section: every field checked and coerced (an int is a fine float) when constructed."""

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "space":
                object.__setattr__(
                    self, f.name, check_field(type(self), self.NAME, f.name, getattr(self, f.name), SOURCE.get())
                )


@dataclass(frozen=True)
class DataConfig(_Section):
    """[data]: which dataset, how it is split, batched and shuffled."""

    NAME: ClassVar[str] = "data"
    dataset: str = spec(
        "fashion_mnist", lambda v: _TFDS_NAME.fullmatch(v) is not None, 'a TFDS dataset name such as "fashion_mnist"'
    )
    batch_size: int = spec(256, at_least(1), "an integer >= 1")
    validation_fraction: float = spec(
        0.1, lambda v: 0 <= v < 1, "a number in [0, 1); 0 trains on all of train with no validation split"
    )
    shuffle_seed: int = spec(0, seed, SEED_ALLOWED)
    data_dir: str | None = spec(None, None, "a path; not set means TFDS's default (~/tensorflow_datasets)")
    manual_dir: str | None = spec(None, None, f"a path; not set means ${MANUAL_DIR_ENV}")
    # D2L scales pixels to [0, 1]; false keeps 0..255, which makes the naive softmax overflow.
    scale: bool = spec(True, None, "true or false")

    @property
    def manual_folder(self) -> str | None:
        """Where the original dataset files are: manual_dir if set, else $TFSOFTMAX_MANUAL_DIR, else none."""
        return self.manual_dir or os.environ.get(MANUAL_DIR_ENV) or None


@dataclass(frozen=True)
class ModelConfig(_Section):
    """[model]: D2L's softmax regression, Keras-built or from scratch."""

    NAME: ClassVar[str] = "model"
    init_stddev: float = spec(0.01, positive, "a finite number > 0")
    kind: str = spec("keras", choice(MODEL_KINDS), " | ".join(MODEL_KINDS))
    loss: str = spec("stable", choice(LOSSES), " | ".join(LOSSES))


@dataclass(frozen=True)
class TrainConfig(_Section):
    """[train]: the optimiser and how long to train."""

    NAME: ClassVar[str] = "train"
    optimizer: str = spec("sgd", choice(OPTIMIZERS), " | ".join(OPTIMIZERS))
    lr: float = spec(0.1, positive, "a finite number > 0")
    momentum: float = spec(0.9, lambda v: 0 <= v < 1, 'a number in [0, 1), used by optimizer "momentum"')
    epochs: int = spec(10, at_least(1), "an integer >= 1")
    seed: int = spec(0, seed, SEED_ALLOWED)
    # D2L's weight decay: lambda / 2 * ||W||^2 added to the loss, the kernel only (biases are not decayed).
    weight_decay: float = spec(
        0.0,
        lambda v: math.isfinite(v) and v >= 0,
        "a finite number >= 0; the L2 penalty weight_decay / 2 * ||W||^2, 0 = none",
    )
    early_stopping: int = spec(
        0,
        at_least(0),
        "an integer >= 0: stop after this many epochs without a better "
        "validation accuracy and keep the best epoch's weights; 0 = off",
    )
    # Steps per call into the compiled graph: fewer Python round trips, the same arithmetic; batch-end
    # checks (divergence, Ctrl-C) run once per call. README, "Speed", has the figures.
    steps_per_execution: int = spec(64, at_least(1), "an integer >= 1")


@dataclass(frozen=True)
class LoggingConfig(_Section):
    """[logging]: where the run directory goes and what TensorBoard gets."""

    NAME: ClassVar[str] = "logging"
    root: str = spec("logs", lambda v: v != "", "a non-empty path")
    experiment: str | None = spec(None, _name, f"{_NAME_ALLOWED}; not set means the config file's name")
    run_name: str | None = spec(None, _name, f"{_NAME_ALLOWED}; not set means a timestamp")
    num_images: int = spec(18, at_least(0), "an integer >= 0 (test images in the prediction grid)")
    histograms: bool = spec(True, None, "true or false")


@dataclass(frozen=True)
class SweepConfig(_Section):
    """[sweep]: the keras-tuner search; the space is [sweep.space]."""

    NAME: ClassVar[str] = "sweep"
    algorithm: str = spec("random", choice(ALGORITHMS), " | ".join(ALGORITHMS))
    max_trials: int = spec(10, at_least(1), "an integer >= 1")
    objective: str = spec("val_accuracy", choice(OBJECTIVES), " | ".join(OBJECTIVES))
    executions_per_trial: int = spec(1, at_least(1), "an integer >= 1")
    epochs: int | None = spec(None, at_least(1), "an integer >= 1; not set means train.epochs")
    # keras-tuner reads a seed of 0 as "pick one at random"; the tuner gets seed + 1 (see tune.py).
    seed: int = spec(0, lambda v: 0 <= v < 2**32 - 1, "an integer in [0, 4294967294]")
    # Trials trained together in one pass over the batches (see packing.py); 1 trains each alone.
    pack: int = spec(16, at_least(1), "an integer >= 1: trials trained together at most; 1 trains each trial alone")
    # Distributed sweeps: workers report after every epoch, so a lease must outlast the longest epoch.
    lease_s: float = spec(
        300.0,
        positive,
        "a finite number > 0: seconds without a report before a worker's trial is handed to another worker",
    )
    max_retries: int = spec(
        2, at_least(0), "an integer >= 0: times a trial is handed on before it is recorded as failed"
    )
    chief_timeout_s: float = spec(
        60.0, positive, "a finite number > 0: seconds a worker waits for an unanswering chief before it exits"
    )
    space: tuple[SpaceEntry, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.space, tuple) or not all(isinstance(e, SpaceEntry) for e in self.space):
            raise fail(SOURCE.get(), "sweep.space: expected a tuple of SpaceEntry")
        keys = [e.key for e in self.space]
        if len(set(keys)) != len(keys):
            raise fail(SOURCE.get(), "sweep.space: a key is opened twice")


@dataclass(frozen=True)
class Config:
    """A whole experiment, section by section; the sections are checked together when constructed."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def __post_init__(self) -> None:
        source = SOURCE.get()
        if self.train.early_stopping and self.data.validation_fraction == 0:
            raise fail(
                source,
                f"train.early_stopping: got {self.train.early_stopping}, but there is no validation "
                "split to watch (data.validation_fraction = 0); allowed: 0, or a "
                "data.validation_fraction in (0, 1)",
            )
        if self.sweep.algorithm == "hyperband" and any(e.key == "train.epochs" for e in self.sweep.space):
            raise fail(
                source,
                'sweep.space."train.epochs": Hyperband sets each round\'s epochs itself (up to sweep.epochs); '
                "allowed: another algorithm, or sweep.epochs instead of opening train.epochs",
            )
        if self.model.kind == "keras" and self.model.loss != "stable":
            raise fail(
                source,
                'model.loss: "naive" is the from-scratch model\'s lesson; set model.kind = "scratch" '
                "(the Keras model always uses the stable loss from logits)",
            )
        if self.model.kind == "scratch":
            if self.train.optimizer != "sgd":
                raise fail(
                    source,
                    'model.kind "scratch" trains with its own minibatch SGD; set train.optimizer = '
                    f'"sgd" (got "{self.train.optimizer}")',
                )
            if any(e.key == "train.optimizer" and set(e.values) != {"sgd"} for e in self.sweep.space):
                raise fail(
                    source,
                    'sweep.space."train.optimizer": model.kind "scratch" trains with its own '
                    'minibatch SGD only; allowed: values = ["sgd"]',
                )

    @property
    def trial_epochs(self) -> int:
        """Epochs per sweep trial: the sweep's own setting if set, else the run's."""
        return self.train.epochs if self.sweep.epochs is None else self.sweep.epochs


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "logging": LoggingConfig,
    "sweep": SweepConfig,
}


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain nested dicts, as the TOML file holds them (None where a key is not set)."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        part = dataclasses.asdict(getattr(config, section))
        if section == "sweep":
            part["space"] = {e.key: entry_dict(e) for e in config.sweep.space}
        out[section] = part
    return out


def flat_config(config: Config) -> dict[str, Any]:
    """`section.key -> value` for the keys that describe how a run trained (not where it logs, not the
    sweep around it): what compare's tables and TensorBoard's HParams columns show."""
    return {
        f"{section}.{key}": value
        for section, part in to_dict(config).items()
        if section not in ("logging", "sweep")
        for key, value in part.items()
    }


def to_toml(config: Config, header: str = "") -> str:
    """The complete config as a TOML file that `load_config` reads back to an equal Config."""
    return tomlio.dumps(to_dict(config), header)
