"""Experiment configs, validated before TensorFlow loads: the typed, frozen sections that hold every default,
one value's check, the sweep space, TOML in and out, and reading files and overrides into a Config."""

from tfsoftmax.config.loader import load_config, override, require_space
from tfsoftmax.config.schema import SECTIONS, Config, SweepConfig, flat_config, to_dict, to_toml
from tfsoftmax.config.sections import (
    MANUAL_DIR_ENV,
    OBJECTIVES,
    DataConfig,
    LoggingConfig,
    ModelConfig,
    TrainConfig,
)
from tfsoftmax.config.space import SpaceEntry

__all__ = [
    "MANUAL_DIR_ENV",
    "OBJECTIVES",
    "SECTIONS",
    "Config",
    "DataConfig",
    "LoggingConfig",
    "ModelConfig",
    "SpaceEntry",
    "SweepConfig",
    "TrainConfig",
    "flat_config",
    "load_config",
    "override",
    "require_space",
    "to_dict",
    "to_toml",
]
