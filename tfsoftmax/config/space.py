"""The sweep space: the config keys a sweep may open, each `[sweep.space]` entry (a list of values or a
numeric range) checked when constructed, its TOML table form, and the same entry as keras-tuner's
hyperparameter and as TensorBoard's HParams domain (side by side, so the two never disagree)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tfsoftmax.config import tomlio
from tfsoftmax.config.checks import SOURCE, TYPE_NAMES, check_field, coerce, fail, from_source, kind_of, suggest
from tfsoftmax.config.sections import DataConfig, ModelConfig, TrainConfig

SAMPLINGS = ("linear", "log", "reverse_log")
SPACE_FIELDS = ("values", "min", "max", "sampling", "step")


# The sections a swept key may belong to; [sweep] itself (in `schema`) holds the space.
_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def tunable_keys() -> list[str]:
    """Keys a sweep may open: [model] and [train] ones, and the batch size. The other [data] keys
    would change the split itself, which a sweep loads once for all its trials."""
    return ["data.batch_size"] + [f"{s}.{f.name}" for s in ("model", "train") for f in dataclasses.fields(_SECTIONS[s])]


@dataclass(frozen=True)
class SpaceEntry:
    """One config key opened to the search: a list of values, or a numeric range; checked when constructed."""

    key: str
    values: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    sampling: str = "linear"
    step: float | None = None

    def __post_init__(self) -> None:
        source, where = SOURCE.get(), f'sweep.space."{self.key}"'
        tunable = tunable_keys()
        if self.key not in tunable:
            raise fail(
                source,
                f"{where}: not a config key that can be swept{suggest(self.key, tunable)}; "
                'allowed: data.batch_size or a [model] or [train] key such as "train.lr"',
            )
        section, name = self.key.split(".")
        cls = _SECTIONS[section]
        kind = kind_of(cls, name)[0]
        if self.values:
            if (self.min, self.max, self.step) != (None, None, None):
                raise fail(source, f"{where}: give either values or min/max, not both")
            checked = tuple(check_field(cls, section, name, v, f"{source}: {where}") for v in self.values)
            if len(set(checked)) != len(checked):
                raise fail(source, f"{where}.values: repeated value in {tomlio.value(list(self.values))}")
            object.__setattr__(self, "values", checked)
            return
        if kind not in (int, float):
            raise fail(
                source, f"{where}: {self.key} is {TYPE_NAMES[kind]}, so it takes {{ values = [...] }}, not a range"
            )
        if self.min is None or self.max is None:
            raise fail(source, f"{where}: a range needs both min and max")
        low = check_field(cls, section, name, self.min, f"{source}: {where}.min")
        high = check_field(cls, section, name, self.max, f"{source}: {where}.max")
        if not low < high:
            raise fail(source, f"{where}: empty range, min {tomlio.value(low)} must be < max {tomlio.value(high)}")
        if self.sampling not in SAMPLINGS:
            raise fail(source, f"{where}.sampling: got {tomlio.value(self.sampling)}; allowed: {' | '.join(SAMPLINGS)}")
        if self.sampling != "linear" and low <= 0:
            raise fail(source, f"{where}: {self.sampling} sampling needs min > 0, got {tomlio.value(low)}")
        step = self.step
        if step is not None:
            ok, step = coerce(step, kind)
            if not ok or not step > 0:
                raise fail(source, f"{where}.step: got {tomlio.value(self.step)}; allowed: {TYPE_NAMES[kind]} > 0")
        for name_, v in (("min", low), ("max", high), ("step", step)):
            object.__setattr__(self, name_, v)


def parse_entry(key: str, raw: Any, source: str) -> SpaceEntry:
    """A [sweep.space] entry from its TOML table, { values = [...] } or { min, max, sampling, step }."""
    where = f'sweep.space."{key}"'
    if not isinstance(raw, dict):
        raise fail(
            source,
            f'{where}: expected a table like {{ min = 0.001, max = 1.0, sampling = "log" }} '
            f"or {{ values = [...] }}, got {tomlio.value(raw)}",
        )
    unknown = set(raw) - set(SPACE_FIELDS)
    if unknown:
        raise fail(source, f"{where}: unknown field '{sorted(unknown)[0]}'; allowed: {', '.join(SPACE_FIELDS)}")
    if "values" in raw:
        if set(raw) != {"values"}:
            raise fail(source, f"{where}: give either values or min/max, not both")
        if not isinstance(raw["values"], list) or not raw["values"]:
            raise fail(source, f"{where}.values: expected a non-empty list, got {tomlio.value(raw['values'])}")
        with from_source(source):
            return SpaceEntry(key=key, values=tuple(raw["values"]))
    with from_source(source):
        return SpaceEntry(key=key, **raw)


def parse_space(raw: Any, source: str) -> tuple[SpaceEntry, ...]:
    if not isinstance(raw, dict):
        raise fail(source, f"[sweep.space]: expected a table, got {tomlio.value(raw)}")
    return tuple(parse_entry(k, v, source) for k, v in raw.items())


def entry_dict(entry: SpaceEntry) -> dict[str, Any]:
    if entry.values:
        return {"values": list(entry.values)}
    d: dict[str, Any] = {"min": entry.min, "max": entry.max, "sampling": entry.sampling}
    if entry.step is not None:
        d["step"] = entry.step
    return d


def declare(hp: Any, entry: SpaceEntry) -> Any:
    """Register the entry with keras-tuner's `HyperParameters` `hp`; return its value in the current trial."""
    if entry.values:
        return hp.Choice(entry.key, list(entry.values))
    if isinstance(entry.min, int):
        return hp.Int(
            entry.key,
            int(entry.min),
            int(entry.max),
            step=int(entry.step) if entry.step else None,
            sampling=entry.sampling,
        )
    return hp.Float(entry.key, entry.min, entry.max, step=entry.step, sampling=entry.sampling)


def hparams_domain(entry: SpaceEntry) -> Any:
    """The entry as a column of TensorBoard's HParams dashboard."""
    from tensorboard.plugins.hparams import api as hp_api

    if entry.values:
        return hp_api.Discrete(list(entry.values))
    if isinstance(entry.min, int):
        return hp_api.IntInterval(int(entry.min), int(entry.max))
    return hp_api.RealInterval(float(entry.min), float(entry.max))
