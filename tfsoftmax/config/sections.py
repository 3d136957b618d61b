"""The config sections a run reads, [data], [model], [train] and [logging]: frozen dataclasses whose
fields hold every default (D2L's reference values) and check each value when constructed. [sweep] and
the whole Config live in `schema`, which also knows the sweep space built from these sections."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from typing import ClassVar

from tfsoftmax.config.checks import SEED_ALLOWED, SOURCE, at_least, check_field, choice, positive, seed, spec

OPTIMIZERS = ("sgd", "momentum", "adam")
# What trains a run: "packed" is the packed pass (`training.pack`) as a pack of one, "fit" is Keras'
# `model.fit`; "auto" is "packed" for the Keras model and "fit" for the scratch one, which only `fit` trains.
ENGINES = ("auto", "packed", "fit")
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
    # checks (divergence, Ctrl-C) run once per call. docs/speed.md has the figures.
    steps_per_execution: int = spec(64, at_least(1), "an integer >= 1")
    engine: str = spec("auto", choice(ENGINES), " | ".join(ENGINES))


@dataclass(frozen=True)
class LoggingConfig(_Section):
    """[logging]: where the run directory goes and what TensorBoard gets."""

    NAME: ClassVar[str] = "logging"
    root: str = spec("logs", lambda v: v != "", "a non-empty path")
    experiment: str | None = spec(None, _name, f"{_NAME_ALLOWED}; not set means the config file's name")
    run_name: str | None = spec(None, _name, f"{_NAME_ALLOWED}; not set means a timestamp")
    num_images: int = spec(18, at_least(0), "an integer >= 0 (test images in the prediction grid)")
    histograms: bool = spec(True, None, "true or false")
