"""Experiment configs: frozen dataclasses, one per TOML section, and the only place defaults live.

Every default is D2L's reference value. A config is validated completely here, before TensorFlow is
imported, so a bad file fails at once with one line naming the file, the key, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

Check = Callable[[Any], bool]

OPTIMIZERS = ("sgd", "momentum", "adam")
MODEL_KINDS = ("keras", "scratch")
LOSSES = ("stable", "naive")
ALGORITHMS = ("random", "grid", "bayesian", "hyperband")
# Logged metrics whose direction keras-tuner infers by itself (accuracy up, loss down).
OBJECTIVES = ("val_accuracy", "val_loss", "accuracy", "loss")
SAMPLINGS = ("linear", "log", "reverse_log")
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.\-]+)?(:[0-9]+\.[0-9]+\.[0-9]+)?$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# TOML's integers: larger ones overflow a float and str() refuses those over 4300 digits.
_INT64 = range(-2**63, 2**63)
# Lone surrogates: Python's stand-ins for undecodable bytes in argv, which no UTF-8 file can hold.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _spec(default: Any, check: Check | None = None, allowed: str = "") -> Any:
    """A field with its check and the human description of what it allows."""
    return field(default=default, metadata={"check": check, "allowed": allowed})


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _at_least(n: int) -> Check:
    return lambda v: v >= n


def _choice(options: Sequence[str]) -> Check:
    return lambda v: v in options


# NumPy's legacy seeding, which Keras and keras-tuner use, takes 32-bit seeds only.
SEED_ALLOWED = "an integer in [0, 4294967295]"


def _seed(v: int) -> bool:
    return 0 <= v < 2**32


def _name(v: str) -> bool:
    return v == "" or _RUN_NAME.fullmatch(v) is not None


@dataclass(frozen=True)
class DataConfig:
    """[data]: which dataset, how it is split, batched and shuffled."""

    dataset: str = _spec("fashion_mnist", lambda v: _TFDS_NAME.fullmatch(v) is not None,
                         "a TFDS dataset name such as \"fashion_mnist\"")
    batch_size: int = _spec(256, _at_least(1), "an integer >= 1")
    validation_fraction: float = _spec(0.1, lambda v: 0 <= v < 1,
                                       "a number in [0, 1); 0 trains on all of train with no validation split")
    shuffle_seed: int = _spec(0, _seed, SEED_ALLOWED)
    data_dir: str = _spec("", None, "a path; \"\" means TFDS's default (~/tensorflow_datasets)")
    manual_dir: str = _spec("", None, "a path; \"\" means $TFSOFTMAX_MANUAL_DIR")
    # D2L scales pixels to [0, 1]; false keeps 0..255, which makes the naive softmax overflow.
    scale: bool = _spec(True, None, "true or false")


@dataclass(frozen=True)
class ModelConfig:
    """[model]: D2L's softmax regression, Keras-built or from scratch."""

    init_stddev: float = _spec(0.01, _positive, "a finite number > 0")
    kind: str = _spec("keras", _choice(MODEL_KINDS), " | ".join(MODEL_KINDS))
    loss: str = _spec("stable", _choice(LOSSES), " | ".join(LOSSES))


@dataclass(frozen=True)
class TrainConfig:
    """[train]: the optimiser and how long to train."""

    optimizer: str = _spec("sgd", _choice(OPTIMIZERS), " | ".join(OPTIMIZERS))
    lr: float = _spec(0.1, _positive, "a finite number > 0")
    momentum: float = _spec(0.9, lambda v: 0 <= v < 1, "a number in [0, 1), used by optimizer \"momentum\"")
    epochs: int = _spec(10, _at_least(1), "an integer >= 1")
    seed: int = _spec(0, _seed, SEED_ALLOWED)
    # Steps run per call into the compiled graph: fewer Python round trips, same arithmetic. Measured
    # with `tfsoftmax bench` at batch 256: 0.31 s/epoch at 1, 0.14 at 8, 0.107 at 64 (the NumPy floor
    # is 0.053); batch-end checks (divergence, Ctrl-C) then run every 64 steps.
    steps_per_execution: int = _spec(64, _at_least(1), "an integer >= 1")


@dataclass(frozen=True)
class LoggingConfig:
    """[logging]: where the run directory goes and what TensorBoard gets."""

    root: str = _spec("logs", lambda v: v != "", "a non-empty path")
    experiment: str = _spec("", _name, "letters, digits, '_', '.', '-'; \"\" means the config file's name")
    run_name: str = _spec("", _name, "letters, digits, '_', '.', '-'; \"\" means a timestamp")
    num_images: int = _spec(18, _at_least(0), "an integer >= 0 (test images in the prediction grid)")
    histograms: bool = _spec(True, None, "true or false")


@dataclass(frozen=True)
class SpaceEntry:
    """One config key opened to the search: a numeric range or a list of values."""

    key: str
    values: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    sampling: str = "linear"
    step: float | None = None


@dataclass(frozen=True)
class SweepConfig:
    """[sweep]: the keras-tuner search; the space is [sweep.space]."""

    algorithm: str = _spec("random", _choice(ALGORITHMS), " | ".join(ALGORITHMS))
    max_trials: int = _spec(10, _at_least(1), "an integer >= 1")
    objective: str = _spec("val_accuracy", _choice(OBJECTIVES), " | ".join(OBJECTIVES))
    executions_per_trial: int = _spec(1, _at_least(1), "an integer >= 1")
    epochs: int = _spec(0, _at_least(0), "an integer >= 0; 0 means train.epochs")
    # keras-tuner reads a seed of 0 as "pick one at random"; the tuner gets seed + 1 (see tune.py).
    seed: int = _spec(0, lambda v: 0 <= v < 2**32 - 1, "an integer in [0, 4294967294]")
    space: tuple[SpaceEntry, ...] = ()


@dataclass(frozen=True)
class Config:
    """A whole experiment, section by section."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    @property
    def trial_epochs(self) -> int:
        """Epochs per sweep trial: the sweep's own setting if set, else the run's."""
        return self.sweep.epochs or self.train.epochs


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
            "logging": LoggingConfig, "sweep": SweepConfig}


def _fail(source: str, message: str) -> TfsoftmaxError:
    return TfsoftmaxError(_printable(f"{source}: {message}"), CONFIG_ERROR)


def _printable(text: str) -> str:
    """The text on one line: line breaks and other unprintable characters, which keys, file names and
    --set strings may hold, written as Python escapes (\\n, \\x1e, \\u2028)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _toml_repr(value: Any, depth: int = 0) -> str:
    """The value as TOML would write it, for messages; arrays and tables nested past 8 levels are elided as
    "...", as tomllib reads nesting deeper than this function could recurse."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return repr(value)
        except ValueError:  # str() refuses ints over 4300 digits (a long hex literal); hex() does not
            return hex(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                          ("inf" if value > 0 else "-inf"))
    if isinstance(value, (list, tuple, dict)) and depth == 8:
        return "..."
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_repr(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_repr(v, depth + 1)}" for k, v in value.items()) + " }"
    return repr(value)


def _toml_string(text: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, except that with `ensure_ascii` JSON writes a character
    beyond U+FFFF as a surrogate pair, which TOML rejects; so keep non-ASCII as is, and escape DEL as TOML asks."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce(value: Any, kind: type) -> tuple[bool, Any]:
    """Strict typing: no bool for numbers, no float for an int; an int is a fine float if it is 64-bit."""
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool) or (isinstance(value, int) and value not in _INT64):
        return False, value
    if kind is float and isinstance(value, int):
        return True, float(value)
    return isinstance(value, kind), value


def check_value(section: str, name: str, value: Any, source: str) -> Any:
    """Type-check and range-check one value of `section.name`; return it coerced to the field's type."""
    cls = SECTIONS[section]
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = typing.get_type_hints(cls)[name]
    ok, value = _coerce(value, kind)
    allowed = spec.metadata["allowed"] or _TYPE_NAMES[kind]
    if not ok:
        too_big = kind in (int, float) and type(value) is int  # the type is fine, so the size is not
        expected = "an integer in TOML's 64-bit range" if too_big else _TYPE_NAMES[kind]
        raise _fail(source, f"{section}.{name}: expected {expected}, got {_toml_repr(value)} "
                            f"({type(value).__name__}); allowed: {allowed}")
    if isinstance(value, str) and _SURROGATE.search(value):
        raise _fail(source, f"{section}.{name}: got {_toml_repr(value)}, which is not Unicode text (undecodable "
                            f"bytes in a --set?); allowed: {allowed}")
    check = spec.metadata["check"]
    if check is not None and not check(value):
        raise _fail(source, f"{section}.{name}: got {_toml_repr(value)}; allowed: {allowed}")
    return value


def _tunable_keys() -> list[str]:
    """Keys a sweep may open: [model] and [train] ones, and the batch size. The other [data] keys
    would change the split itself, which a sweep loads once for all its trials."""
    return ["data.batch_size"] + [f"{s}.{f.name}" for s in ("model", "train")
                                 for f in dataclasses.fields(SECTIONS[s])]


def _parse_space_entry(key: str, raw: Any, source: str) -> SpaceEntry:
    where = f"sweep.space.\"{key}\""
    tunable = _tunable_keys()
    if key not in tunable or key.startswith("logging."):
        raise _fail(source, f"{where}: not a config key that can be swept{_suggest(key, tunable)}; "
                            "allowed: data.batch_size or a [model] or [train] key such as \"train.lr\"")
    if not isinstance(raw, dict):
        raise _fail(source, f"{where}: expected a table like {{ min = 0.001, max = 1.0, sampling = \"log\" }} "
                            f"or {{ values = [...] }}, got {_toml_repr(raw)}")
    section, name = key.split(".")
    kind = typing.get_type_hints(SECTIONS[section])[name]
    unknown = set(raw) - {"values", "min", "max", "sampling", "step"}
    if unknown:
        raise _fail(source, f"{where}: unknown field '{sorted(unknown)[0]}'; allowed: values, min, max, "
                            "sampling, step")
    if "values" in raw:
        if set(raw) != {"values"}:
            raise _fail(source, f"{where}: give either values or min/max, not both")
        values = raw["values"]
        if not isinstance(values, list) or not values:
            raise _fail(source, f"{where}.values: expected a non-empty list, got {_toml_repr(values)}")
        checked = tuple(check_value(section, name, v, f"{source}: {where}") for v in values)
        if len(set(checked)) != len(checked):
            raise _fail(source, f"{where}.values: repeated value in {_toml_repr(values)}")
        return SpaceEntry(key=key, values=checked)
    if kind not in (int, float):
        raise _fail(source, f"{where}: {key} is {_TYPE_NAMES[kind]}, so it takes {{ values = [...] }}, "
                            "not a range")
    if "min" not in raw or "max" not in raw:
        raise _fail(source, f"{where}: a range needs both min and max")
    low = check_value(section, name, raw["min"], f"{source}: {where}.min")
    high = check_value(section, name, raw["max"], f"{source}: {where}.max")
    if not low < high:
        raise _fail(source, f"{where}: empty range, min {_toml_repr(low)} must be < max {_toml_repr(high)}")
    sampling = raw.get("sampling", "linear")
    if sampling not in SAMPLINGS:
        raise _fail(source, f"{where}.sampling: got {_toml_repr(sampling)}; allowed: {' | '.join(SAMPLINGS)}")
    if sampling != "linear" and low <= 0:
        raise _fail(source, f"{where}: {sampling} sampling needs min > 0, got {_toml_repr(low)}")
    step = raw.get("step")
    if step is not None:
        ok, step = _coerce(step, kind)
        if not ok or not step > 0:
            raise _fail(source, f"{where}.step: got {_toml_repr(raw['step'])}; allowed: "
                                f"{_TYPE_NAMES[kind]} > 0")
    return SpaceEntry(key=key, min=low, max=high, sampling=sampling, step=step)


def _build_section(section: str, raw: Any, source: str) -> Any:
    cls = SECTIONS[section]
    if not isinstance(raw, dict):
        raise _fail(source, f"[{section}]: expected a table, got {_toml_repr(raw)}")
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in names:
            raise _fail(source, f"{section}.{name}: unknown key{_suggest(name, names)}; "
                                f"allowed: {', '.join(names)}")
        if section == "sweep" and name == "space":
            if not isinstance(value, dict):
                raise _fail(source, f"[sweep.space]: expected a table, got {_toml_repr(value)}")
            values[name] = tuple(_parse_space_entry(k, v, source) for k, v in value.items())
        else:
            values[name] = check_value(section, name, value, source)
    return cls(**values)


def from_dict(raw: Mapping[str, Any], source: str) -> Config:
    """Validate a parsed TOML document into a Config."""
    for section in raw:
        if section not in SECTIONS:
            raise _fail(source, f"[{section}]: unknown section{_suggest(section, list(SECTIONS))}; "
                                f"allowed: {', '.join(SECTIONS)}")
    config = Config(**{s: _build_section(s, raw[s], source) for s in raw})
    if config.model.kind == "keras" and config.model.loss != "stable":
        raise _fail(source, 'model.loss: "naive" is the from-scratch model\'s lesson; set model.kind = "scratch" '
                            '(the Keras model always uses the stable loss from logits)')
    if config.model.kind == "scratch":
        if config.train.optimizer != "sgd":
            raise _fail(source, 'model.kind "scratch" trains with its own minibatch SGD; set train.optimizer = '
                                f'"sgd" (got "{config.train.optimizer}")')
        if any(e.key == "train.optimizer" and set(e.values) != {"sgd"} for e in config.sweep.space):
            raise _fail(source, 'sweep.space."train.optimizer": model.kind "scratch" trains with its own '
                                'minibatch SGD only; allowed: values = ["sgd"]')
    return config


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain nested dicts, as the TOML file would hold them."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        part = dataclasses.asdict(getattr(config, section))
        if section == "sweep":
            part["space"] = {e.key: _space_entry_dict(e) for e in config.sweep.space}
        out[section] = part
    return out


def flat_config(config: Config) -> dict[str, Any]:
    """`section.key -> value` for the keys that describe how a run trained (not where it logs, not the
    sweep around it): what compare's tables and TensorBoard's HParams columns show."""
    return {f"{section}.{key}": value for section, part in to_dict(config).items()
            if section not in ("logging", "sweep") for key, value in part.items()}


def _space_entry_dict(entry: SpaceEntry) -> dict[str, Any]:
    if entry.values:
        return {"values": list(entry.values)}
    d: dict[str, Any] = {"min": entry.min, "max": entry.max, "sampling": entry.sampling}
    if entry.step is not None:
        d["step"] = entry.step
    return d


def to_toml(config: Config, header: str = "") -> str:
    """The complete config as a TOML file that `load_config` reads back to an equal Config."""
    lines = [f"# {_printable(line)}" for line in header.splitlines()]  # a TOML comment holds no control codes
    for section, values in to_dict(config).items():
        space = values.pop("space", None)
        lines += ["", f"[{section}]"] + [f"{k} = {_toml_repr(v)}" for k, v in values.items()]
        if space:
            lines += ["", f"[{section}.space]"] + [f"{_toml_key(k)} = {_toml_repr(v)}" for k, v in space.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _loads(text: str) -> dict[str, Any]:
    """`tomllib.loads`, with the two other errors it can raise turned into TOMLDecodeError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:  # a ValueError too, so let it through first
        raise
    except ValueError:  # int() refuses a decimal integer over 4300 digits
        raise tomllib.TOMLDecodeError("integer over 4300 digits") from None
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise tomllib.TOMLDecodeError("arrays or inline tables nested too deeply") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (path, value); the value is read as TOML, else taken as a bare string."""
    source = f"--set {text}"
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise _fail(source, "expected section.key=value, e.g. train.lr=0.3")
    if parts[:2] == ["sweep", "space"]:
        parts = parts[:2] + [".".join(parts[2:])] if len(parts) > 2 else parts
    elif len(parts) != 2:
        raise _fail(source, f"'{path}' is not section.key; allowed sections: {', '.join(SECTIONS)}")
    raw = raw.strip()
    try:
        doc = _loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return parts, raw
    # More lines of TOML after the value ("1\nx = 2") make it no single value: keep it all, drop nothing.
    return parts, doc["v"] if len(doc) == 1 else raw


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `--set` strings to a parsed TOML document (a new dict), checking each as it is set."""
    merged = {s: dict(v) if isinstance(v, dict) else v for s, v in raw.items()}
    for text in overrides:
        parts, value = parse_override(text)
        section = merged.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise _fail(f"--set {text}", f"[{parts[0]}] is not a table")
        if len(parts) == 3:
            space = section.setdefault("space", {})
            section["space"] = {**space, parts[2]: value} if parts[2] else value
        else:
            section[parts[1]] = value
        from_dict({parts[0]: section}, f"--set {text}")
    return merged


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read, override and validate an experiment file; the experiment is named after the file if unset.

    Args:
        path: a TOML experiment file.
        overrides: `section.key=value` strings, each value parsed as TOML.

    Returns:
        The frozen, validated Config.

    Raises:
        TfsoftmaxError: exit code 2, one line naming the file, key, value and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(str(path), "no such config file") from None
    except IsADirectoryError:
        raise _fail(str(path), "is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(str(path), f"cannot read config file: {e}") from None
    try:
        raw = _loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _fail(str(path), f"invalid TOML: {e}") from None
    from_dict(raw, str(path))  # the file's own mistakes are named as the file's, before any --set
    config = from_dict(apply_overrides(raw, overrides), str(path))
    if config.logging.experiment == "":
        # Only the characters logging.experiment allows, starting with a letter or digit as it must.
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem).lstrip("_.-")
        if not name:
            raise _fail(str(path), "logging.experiment: the file name has no letter or digit to name the "
                                   "experiment after; set logging.experiment")
        config = dataclasses.replace(config, logging=dataclasses.replace(config.logging, experiment=name))
    return config


def require_space(config: Config, source: str) -> None:
    """A sweep needs at least one opened key and a validation split of its own: with none, trials
    would be scored, and the best one chosen, on the test split."""
    if not config.sweep.space:
        raise _fail(source, '[sweep.space]: empty; open at least one key, e.g. '
                            '"train.lr" = { min = 1e-3, max = 1.0, sampling = "log" }')
    if config.data.validation_fraction == 0:
        raise _fail(source, "data.validation_fraction: got 0.0, which would score and choose trials on the "
                            "test split; allowed in a sweep: a number in (0, 1), e.g. 0.1 (--final then "
                            "retrains the best on train+validation)")


def override(config: Config, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
    """A new Config with keys replaced, validated as `--set` would be; for notebooks and sweeps."""
    texts = [f"{k}={_toml_repr(v)}" for k, v in overrides.items()] if isinstance(overrides, Mapping) \
        else list(overrides)
    return from_dict(apply_overrides(to_dict(config), texts), "override")
