"""Reading configs: a TOML experiment file, `--set` strings and Python overrides turned into a checked
Config, every mistake blamed on where the value came from (the file, the --set, or "override")."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tfsoftmax.config import tomlio
from tfsoftmax.config.checks import fail, from_source, suggest
from tfsoftmax.config.schema import SECTIONS, Config
from tfsoftmax.config.space import parse_entry, parse_space
from tfsoftmax.errors import TfsoftmaxError


def _unknown_key(section: str, name: str, source: str) -> None:
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if name not in names:
        raise fail(source, f"{section}.{name}: unknown key{suggest(name, names)}; allowed: {', '.join(names)}")


def _section(section: str, raw: Any, source: str) -> Any:
    if not isinstance(raw, dict):
        raise fail(source, f"[{section}]: expected a table, got {tomlio.value(raw)}")
    for name in raw:
        _unknown_key(section, name, source)
    values = {k: parse_space(v, source) if (section, k) == ("sweep", "space") else v for k, v in raw.items()}
    with from_source(source):
        return SECTIONS[section](**values)


def _unknown_section(section: str, source: str) -> None:
    if section not in SECTIONS:
        raise fail(
            source, f"[{section}]: unknown section{suggest(section, list(SECTIONS))}; allowed: {', '.join(SECTIONS)}"
        )


def from_dict(raw: Mapping[str, Any], source: str) -> Config:
    """Validate a parsed TOML document into a Config."""
    for section in raw:
        _unknown_section(section, source)
    parts = {s: _section(s, raw[s], source) for s in raw}
    with from_source(source):
        return Config(**parts)


def _key_path(path: str, source: str) -> list[str]:
    """`section.key` (or `sweep.space.KEY`, whose KEY has a dot of its own) as its parts."""
    parts = path.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise fail(source, "expected section.key=value, e.g. train.lr=0.3")
    if parts[:2] == ["sweep", "space"]:
        return parts[:2] + [".".join(parts[2:])] if len(parts) > 2 else parts
    if len(parts) != 2:
        raise fail(source, f"'{path}' is not section.key; allowed sections: {', '.join(SECTIONS)}")
    return parts


def _set(config: Config, parts: list[str], value: Any, source: str) -> Config:
    """`config` with one key set, checked as a file's value would be."""
    section = parts[0]
    _unknown_section(section, source)
    part = getattr(config, section)
    if parts[:2] == ["sweep", "space"]:
        if len(parts) == 2:
            changes = {"space": parse_space(value, source)}
        else:
            entry = parse_entry(parts[2], value, source)
            kept = [e for e in part.space if e.key != entry.key]
            at = next((i for i, e in enumerate(part.space) if e.key == entry.key), len(kept))
            changes = {"space": tuple(kept[:at] + [entry] + kept[at:])}
    else:
        _unknown_key(section, parts[1], source)
        changes = {parts[1]: value}
    with from_source(source):
        return dataclasses.replace(config, **{section: dataclasses.replace(part, **changes)})


def override(config: Config, overrides: Mapping[str, Any] | Sequence[str], flag: str = "--set") -> Config:
    """A new Config with keys replaced and checked as a file's values are: `{"train.lr": 0.3}` from Python,
    or `["train.lr=0.3"]` strings, whose values are read as TOML; an error names such a string after
    `flag`, the words its user typed it with (`--set` on the command line)."""
    if isinstance(overrides, Mapping):
        for path, value in overrides.items():
            config = _set(config, _key_path(path, "override"), value, "override")
        return config
    for text in overrides:
        source = f"{flag} {text}"
        path, sep, raw = text.partition("=")
        if not sep:
            raise fail(source, "expected section.key=value, e.g. train.lr=0.3")
        config = _set(config, _key_path(path, source), tomlio.parse_value(raw), source)
    return config


def _experiment_name(path: Path) -> str:
    """The experiment named after its file: only the characters logging.experiment allows, starting with a
    letter or digit as it must."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem).lstrip("_.-")
    if not name:
        raise fail(
            str(path),
            "logging.experiment: the file name has no letter or digit to name the "
            "experiment after; set logging.experiment",
        )
    return name


def load_config(path: str | Path, overrides: Sequence[str] = (), flag: str = "--set") -> Config:
    """Read, override and validate an experiment file; the experiment is named after the file if unset.

    Args:
        path: a TOML experiment file.
        overrides: `section.key=value` strings, each value parsed as TOML.
        flag: the words an override's error starts with, as its user gave it (`--set` or `override`).

    Returns:
        The frozen, validated Config.

    Raises:
        TfsoftmaxError: exit code 2, one line naming the file, key, value and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(str(path), "no such config file") from None
    except IsADirectoryError:
        raise fail(str(path), "is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise fail(str(path), f"cannot read config file: {e}") from None
    try:
        raw = tomlio.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise fail(str(path), f"invalid TOML: {e}") from None
    config = override(from_dict(raw, str(path)), overrides, flag)  # the file's own mistakes are the file's
    if config.logging.experiment is None:
        config = override(config, {"logging.experiment": _experiment_name(path)})
    return config


def require_space(config: Config, source: str) -> None:
    """A sweep needs at least one opened key and a validation split of its own: with none, trials
    would be scored, and the best one chosen, on the test split."""
    if not config.sweep.space:
        raise fail(
            source,
            "[sweep.space]: empty; open at least one key, e.g. "
            '"train.lr" = { min = 1e-3, max = 1.0, sampling = "log" }',
        )
    if config.data.validation_fraction == 0:
        raise fail(
            source,
            "data.validation_fraction: got 0.0, which would score and choose trials on the "
            "test split; allowed in a sweep: a number in (0, 1), e.g. 0.1 (--final then "
            "retrains the best on train+validation)",
        )
    _every_trial_is_a_config(config, source)


COMBINED = ("model.kind", "model.loss", "train.optimizer")
"""Keys whose values must agree with each other (Config's cross-section rules)."""


def _every_trial_is_a_config(config: Config, source: str) -> None:
    """Each value a trial can draw makes a valid Config, in every combination of the keys that must agree,
    so a bad space stops the sweep before its first trial rather than at the trial that draws it."""
    import itertools

    choices = [(e.key, e.values or (e.min, e.max)) for e in config.sweep.space]
    combined = [(k, v) for k, v in choices if k in COMBINED]
    alone = [(k, v) for k, v in choices if k not in COMBINED]
    cases = [
        dict(zip([k for k, _ in combined], draw, strict=True)) for draw in itertools.product(*[v for _, v in combined])
    ]
    cases += [{key: value} for key, values in alone for value in values]
    for case in cases:
        try:
            override(config, case)
        except TfsoftmaxError as e:
            drawn = ", ".join(f"{k} = {tomlio.value(v)}" for k, v in case.items())
            raise fail(
                source,
                f"[sweep.space]: a trial drawing {drawn} would be an invalid config: "
                f"{str(e).removeprefix('override: ')}",
            ) from None
