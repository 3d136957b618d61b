"""The whole experiment config: the [sweep] section (with its space) and `Config`, which holds every
section and checks them together when constructed (from a file, `override`, or `dataclasses.replace`).

The run's sections and their defaults, D2L's reference values, are in `sections`; a key left out is "not
set" (None in Python), and the field's description says what it then means. Reading files and overrides
into a Config is `loader`'s job. A config is validated completely before TensorFlow is imported, so a bad
file fails at once with one line naming the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tfsoftmax.config import tomlio
from tfsoftmax.config.checks import SOURCE, at_least, choice, fail, positive, spec
from tfsoftmax.config.sections import (
    ALGORITHMS,
    OBJECTIVES,
    DataConfig,
    LoggingConfig,
    ModelConfig,
    TrainConfig,
    _Section,
)
from tfsoftmax.config.space import SpaceEntry, entry_dict


@dataclass(frozen=True)
class SweepConfig(_Section):
    """[sweep]: the keras-tuner search; the space is [sweep.space]."""

    NAME: ClassVar[str] = "sweep"
    algorithm: str = spec("random", choice(ALGORITHMS), " | ".join(ALGORITHMS))
    max_trials: int = spec(10, at_least(1), "an integer >= 1")
    objective: str = spec("val_accuracy", choice(OBJECTIVES), " | ".join(OBJECTIVES))
    executions_per_trial: int = spec(1, at_least(1), "an integer >= 1")
    epochs: int | None = spec(None, at_least(1), "an integer >= 1; not set means train.epochs")
    # keras-tuner reads a seed of 0 as "pick one at random"; the tuner gets seed + 1 (`tuners.make_tuner`).
    seed: int = spec(0, lambda v: 0 <= v < 2**32 - 1, "an integer in [0, 4294967294]")
    # Trials trained together in one pass over the batches (see packing.py); 1 trains each alone.
    pack: int = spec(16, at_least(1), "an integer >= 1: trials trained together at most; 1 trains each trial alone")
    # Distributed sweeps: a worker reports every quarter lease from a background thread, from joining to
    # exit, whatever it computes; a lease outlasts three missed reports and a late fourth (docs: distributed).
    lease_s: float = spec(
        20.0,
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
            if self.train.engine == "packed":
                raise fail(
                    source,
                    'train.engine: "packed" trains the Keras model; the scratch model trains with its own '
                    'train_step through model.fit; allowed: "auto" or "fit"',
                )
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
