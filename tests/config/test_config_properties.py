"""Property test of the config loader, fed generated files and --set strings, valid and not.

Whatever it is given, `load_config` returns a Config whose every field has its declared type and passes
its check, and whose saved TOML reads back equal, or it raises the package's one-line config error
(exit code 2), never any other exception. Inputs built only from allowed values load as written.
The examples are derandomized and counted, so CI runs the same ones every time; run pytest with
--hypothesis-show-statistics to see how many load and how many fail.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tfsoftmax.config import OBJECTIVES, SECTIONS, Config, to_toml
from tfsoftmax.config.checks import kind_of
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.config.sections import ALGORITHMS, ENGINES, LOSSES, OPTIMIZERS
from tfsoftmax.config.space import SAMPLINGS, SpaceEntry
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

# tmp_path is shared by a test's examples; each example overwrites the files it reads.
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FAST = settings(SETTINGS, max_examples=40)


def both_loops(test: Callable[..., None], **strategies: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    """The property twice: with FAST's few examples in the fast loop, with SETTINGS' many in the full
    suite (marked slow). Derandomized, the fast examples are where the full run starts."""
    return FAST(given(**strategies)(test)), pytest.mark.slow(SETTINGS(given(**strategies)(test)))


INT64 = range(-(2**63), 2**63)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.\-]+)?(:[0-9]+\.[0-9]+\.[0-9]+)?")
# Each field's value type; OPTIONAL fields may also be None ("not set", which "" in a file also means).
HINTS = {
    section: {name: kind_of(cls, name)[0] for name in typing.get_type_hints(cls) if name != "NAME"}
    for section, cls in SECTIONS.items()
}
OPTIONAL = {
    (section, f.name)
    for section, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
    if f.name != "space" and kind_of(cls, f.name)[1]
}
FIELDS = {section: [f.name for f in dataclasses.fields(cls)] for section, cls in SECTIONS.items()}
TUNABLE = ["data.batch_size"] + [f"{s}.{name}" for s in ("model", "train") for name in FIELDS[s]]
CHOICES = {
    ("model", "kind"): ("keras", "scratch"),
    ("model", "loss"): LOSSES,
    ("train", "optimizer"): OPTIMIZERS,
    ("train", "engine"): ENGINES,
    ("sweep", "algorithm"): ALGORITHMS,
    ("sweep", "objective"): OBJECTIVES,
}

FIT_ENGINES = ("auto", "fit")  # the engines of the scratch model, which only `model.fit` trains


@dataclasses.dataclass(frozen=True)
class Raw:
    """TOML text written as is: spellings a Python value does not round-trip to."""

    text: str


# Any Unicode scalar value, control characters and line breaks included; a UTF-8 file holds no surrogates.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
# Command-line arguments can also carry lone surrogates (undecodable bytes, via surrogateescape).
ARGV_TEXT = st.text(st.characters(exclude_categories=()), max_size=16)
HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, -(10**400)])
ODD_TOML = st.sampled_from(
    [
        Raw(t)
        for t in (
            "0x" + "f" * 4000,  # fine for tomllib, over 4300 decimal digits for str()
            "9" * 5000,  # over int()'s 4300-digit limit
            "1e400",
            "-1e400",
            "+inf",
            "-nan",
            "-0.0",
            "5e-324",
            "0o17",
            "0b101",
            "1_000",
            "0xff",
            "1979-05-27T07:32:00Z",
            "1979-05-27T00:32:00.999999-07:00",
            "1979-05-27",
            "07:32:00",
            "'literal \\ string'",
            '"""multi\nline"""',
            "'''raw\nlines'''",
            "{}",
            "[]",
            "[[]]",
            "{ a = {} }",
            "{ a = " * 200 + "1" + " }" * 200,
        )
    ]
) | st.integers(1, 1100).map(lambda n: Raw("[" * n + "]" * n))
# Nesting: tomllib spends about two stack frames a level and a message showing the value once spent three,
# so some depths parsed but could not be shown (331 to 496 at Python's default recursion limit; Hypothesis
# raises the limit, hence depths up to 1100).
SCALARS = st.one_of(
    st.integers(),
    HUGE_INTS,
    st.floats(),
    st.booleans(),
    TEXT,
    ODD_TOML,
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)


def toml_str(text: str) -> str:
    """A TOML basic string, written here rather than by the code under test."""
    escaped = (f"\\{c}" if c in '"\\' else f"\\u{ord(c):04x}" if c < " " or c == "\x7f" else c for c in text)
    return '"' + "".join(escaped) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan" if math.isnan(value) else f"{value:+}"[:4]
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def toml_document(doc: dict[str, Any]) -> str:
    """Values that are not tables first, then one [section] per table."""
    lines = [f"{toml_str(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for section, table in doc.items():
        if isinstance(table, dict):
            lines += [f"[{toml_str(section)}]"] + [f"{toml_str(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 8) -> st.SearchStrategy[Any]:
    """`common`, except one time in `odds`: enough wrong inputs, and whole files that still load often."""
    return st.integers(1, odds).flatmap(lambda i: rare if i == 1 else common)


# --- Values that the schema allows, field by field.

POSITIVE = st.floats(min_value=0, exclude_min=True, allow_infinity=False) | st.integers(1, 10**6)
UNIT = st.floats(min_value=0, max_value=1, exclude_max=True)


def valid_value(section: str, name: str) -> st.SearchStrategy[Any]:
    kind = HINTS[section][name]
    if (section, name) in CHOICES:
        return st.sampled_from(CHOICES[section, name])
    if kind is bool:
        return st.booleans()
    if name == "dataset":
        return st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[A-Za-z0-9_.\-]{1,4})?(:[0-9]\.[0-9]{1,2}\.[0-9])?", fullmatch=True)
    if name in ("experiment", "run_name"):
        return st.just("") | st.from_regex(NAME, fullmatch=True).filter(lambda s: len(s) < 20)
    if name == "root":
        return TEXT.filter(bool)
    if kind is str:
        return TEXT
    if name in ("init_stddev", "lr"):
        return POSITIVE
    if name == "validation_fraction":  # > 0: with 0, train.early_stopping > 0 is refused (nothing to watch)
        return UNIT.filter(lambda v: v > 0)
    if name == "momentum":
        return UNIT
    if (section, name) == ("sweep", "seed"):  # the tuner gets seed + 1, which must stay 32-bit
        return st.integers(0, 2**32 - 2) | st.integers(0, 100)
    if name in ("shuffle_seed", "seed"):
        return st.integers(0, 2**32 - 1) | st.integers(0, 100)
    low = 0 if name == "num_images" else 1
    return st.integers(low, 2**63 - 1) | st.integers(low, 100)


def field_value(section: str, name: str) -> st.SearchStrategy[Any]:
    """An allowed value, or anything TOML can hold, or for a string an allowed one with text after it (a
    trailing newline passes a `^...$` check)."""
    valid = valid_value(section, name)
    odd = VALUES | ODD_TOML
    if HINTS[section][name] is str:
        odd |= st.builds(str.__add__, valid, st.sampled_from(["\n", " "]) | TEXT)
    return mostly(valid, odd)


@st.composite
def space_entries(draw: st.DrawFn, key: str) -> Any:
    """A [sweep.space] entry for `key`: a list of values, a range, or something else."""
    section, _, name = key.partition(".")
    if section not in FIELDS or name not in FIELDS[section]:
        return draw(VALUES)
    value = field_value(section, name)
    entry = draw(mostly(st.sampled_from(["values", "range"]), st.just("other")))
    if entry == "values":
        return {"values": draw(st.lists(value, max_size=4))}
    if entry == "range":
        parts = {"min": draw(value), "max": draw(value)}
        for extra, strategy in (("sampling", st.sampled_from(SAMPLINGS) | VALUES), ("step", value)):
            if draw(st.booleans()):
                parts[extra] = draw(strategy)
        return parts
    return draw(VALUES)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A parsed TOML document shaped like the schema: known and unknown sections, keys and values."""
    doc: dict[str, Any] = {}
    for section in draw(st.lists(mostly(st.sampled_from(list(SECTIONS)), TEXT), unique=True, max_size=4)):
        if section not in SECTIONS or draw(st.integers(0, 9)) == 0:
            doc[section] = draw(st.dictionaries(TEXT, VALUES, max_size=2) | VALUES)
            continue
        table = {}
        for name in draw(st.lists(mostly(st.sampled_from(FIELDS[section]), TEXT), unique=True, max_size=5)):
            if (section, name) == ("sweep", "space"):
                keys = draw(
                    st.lists(
                        mostly(st.sampled_from(TUNABLE), st.sampled_from(["data.dataset", "logging.root"]) | TEXT),
                        unique=True,
                        max_size=3,
                    )
                )
                table[name] = {k: draw(space_entries(k)) for k in keys}
            elif name in FIELDS[section]:
                table[name] = draw(field_value(section, name))
            else:
                table[name] = draw(VALUES)
        doc[section] = table
    return doc


def splice(text: str, at: int, cut: int, insert: str) -> str:
    """Damage a document a little: cut some characters at one place and insert others."""
    at %= len(text) + 1
    return text[:at] + insert + text[at + cut :]


FILE_BYTES = mostly(
    documents().map(toml_document).map(str.encode),
    st.one_of(
        st.builds(splice, documents().map(toml_document), st.integers(0, 10**4), st.integers(0, 3), TEXT).map(
            str.encode
        ),
        TEXT.map(str.encode),
        st.binary(max_size=40),
    ),
    odds=2,
)
OVERRIDE_PATHS = (
    st.sampled_from(
        [f"{s}.{name}" for s in SECTIONS for name in FIELDS[s]]
        + [f"sweep.space.{k}" for k in TUNABLE]
        + [
            "sweep.space",
            "sweep.space.",
            "sweep.space.data.dataset",
            "train",
            "",
            "train.lr.x",
            "data..x",
            ".train",
            " train . lr ",
            "trian.lr",
        ]
    )
    | ARGV_TEXT
)


@st.composite
def override_strings(draw: st.DrawFn) -> str:
    """One --set argument: a known key with an allowed or odd value, or any text at all."""
    kind = draw(st.sampled_from(["field", "field", "field", "space", "path", "text"]))
    if kind == "field":
        section = draw(st.sampled_from(list(SECTIONS)))
        name = draw(st.sampled_from(FIELDS[section]))
        value = VALUES if name == "space" else field_value(section, name)
        return f"{section}.{name}={toml_value(draw(value))}"
    if kind == "space":
        key = draw(st.sampled_from(TUNABLE))
        return f"sweep.space.{key}={toml_value(draw(space_entries(key)))}"
    if kind == "path":
        return f"{draw(OVERRIDE_PATHS)}={draw(ARGV_TEXT | VALUES.map(toml_value))}"
    return draw(ARGV_TEXT)


FILE_NAMES = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), max_size=10)


# --- What a loaded Config must satisfy.


def assert_valid(config: Config) -> None:
    """Every field has its declared type and passes its check; space entries are well formed."""
    for section, cls in SECTIONS.items():
        part = getattr(config, section)
        assert type(part) is cls
        for f in dataclasses.fields(cls):
            if f.name != "space":
                assert_field(section, f.name, getattr(part, f.name))
    assert TFDS_NAME.fullmatch(config.data.dataset)
    assert NAME.fullmatch(config.logging.experiment)  # named after the file when not given
    assert config.logging.run_name is None or NAME.fullmatch(config.logging.run_name)
    assert config.model.kind == "scratch" or config.model.loss == "stable"
    assert config.model.kind == "keras" or config.train.optimizer == "sgd"
    assert config.model.kind == "keras" or config.train.engine in FIT_ENGINES
    keys = [e.key for e in config.sweep.space]
    assert len(set(keys)) == len(keys) and set(keys) <= set(TUNABLE)
    for entry in config.sweep.space:
        assert type(entry) is SpaceEntry
        section, name = entry.key.split(".")
        kind = HINTS[section][name]
        if entry.values:
            assert len(set(entry.values)) == len(entry.values)
            for v in entry.values:
                assert_field(section, name, v)
            assert (entry.min, entry.max, entry.step) == (None, None, None)
        else:
            assert kind in (int, float) and entry.sampling in SAMPLINGS
            assert_field(section, name, entry.min)
            assert_field(section, name, entry.max)
            assert entry.min < entry.max and (entry.sampling == "linear" or entry.min > 0)
            assert entry.step is None or (type(entry.step) is kind and entry.step > 0)


def assert_field(section: str, name: str, value: Any) -> None:
    if value is None and (section, name) in OPTIONAL:
        return
    kind = HINTS[section][name]
    assert type(value) is kind, (section, name, value)
    if kind is int:
        assert value in INT64, (section, name)  # TOML's integers are 64-bit
    if kind is str:
        value.encode("utf-8")  # no lone surrogates: the saved file must be UTF-8
    check = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name).metadata["check"]
    assert check is None or check(value), (section, name, value)


def assert_config_error(call: Callable[[], Any]) -> Any:
    """Call: a Config comes back, or the package's config error on one line; nothing else escapes."""
    try:
        return call()
    except TfsoftmaxError as e:
        assert e.exit_code == CONFIG_ERROR
        assert len(str(e).splitlines()) == 1 and "\n" not in str(e), str(e)
        return None


def assert_saved_config_reads_back(config: Config, folder: Path, header: str = "") -> None:
    saved = folder / "saved.toml"
    saved.write_text(to_toml(config, header), encoding="utf-8")
    assert load_config(saved) == config
    assert override(config, {}) == config


# --- The properties.


def _any_file_and_overrides_load_or_fail_with_the_config_error(
    tmp_path: Path, content: bytes, overrides: list[str], stem: str, header: str
) -> None:
    path = tmp_path / "in" / f"{stem}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    config = assert_config_error(lambda: load_config(path, overrides))
    event("loaded" if config is not None else "config error")
    if config is not None:
        assert_valid(config)
        assert_saved_config_reads_back(config, tmp_path, header)


test_any_file_and_overrides_load_or_fail_with_the_config_error, test_any_file_and_overrides_in_full = both_loops(
    _any_file_and_overrides_load_or_fail_with_the_config_error,
    content=FILE_BYTES,
    overrides=st.lists(override_strings(), max_size=3),
    stem=FILE_NAMES,
    header=TEXT,
)


def _override_from_python_returns_a_valid_config_or_the_config_error(
    tmp_path: Path, overrides: list[str], mapping: dict[str, Any]
) -> None:
    for change in (overrides, {k: v.text if isinstance(v, Raw) else v for k, v in mapping.items()}):
        config = assert_config_error(lambda change=change: override(Config(), change))
        event(f"{type(change).__name__}: {'loaded' if config is not None else 'config error'}")
        if config is not None:
            # Only load_config names the experiment after the file; name it here as it would.
            if config.logging.experiment is None:
                config = dataclasses.replace(config, logging=dataclasses.replace(config.logging, experiment="x"))
            assert_valid(config)
            assert_saved_config_reads_back(config, tmp_path)


test_override_from_python_returns_a_valid_config_or_the_config_error, test_override_from_python_in_full = both_loops(
    _override_from_python_returns_a_valid_config_or_the_config_error,
    overrides=st.lists(override_strings(), min_size=1, max_size=3),
    mapping=st.dictionaries(
        OVERRIDE_PATHS,
        VALUES | st.one_of(*(valid_value(s, n) for s in SECTIONS for n in FIELDS[s] if n != "space")),
        max_size=3,
    ),
)


def _coerced(section: str, name: str, value: Any) -> Any:
    return float(value) if HINTS[section][name] is float else value


@st.composite
def valid_configs(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, Any]], Config]:
    """A document and --set overrides built only from allowed values, and the Config they must give."""
    scratch = draw(st.booleans())
    doc: dict[str, dict[str, Any]] = {}
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), unique=True)):
        table = {}
        for name in draw(st.lists(st.sampled_from(FIELDS[section]), unique=True)):
            if (section, name) == ("sweep", "space"):
                continue
            if (section, name) == ("model", "loss") and not scratch:
                table[name] = "stable"
            elif (section, name) == ("train", "optimizer") and scratch:
                table[name] = "sgd"
            elif (section, name) == ("train", "engine") and scratch:
                table[name] = draw(st.sampled_from(FIT_ENGINES))
            else:
                table[name] = draw(valid_value(section, name))
        doc[section] = table
    if scratch:
        doc.setdefault("model", {})["kind"] = "scratch"
    elif doc.get("model", {}).get("kind") == "scratch":
        doc["model"]["kind"] = "keras"
    space = {
        k: draw(valid_space_entry(k, scratch))
        # Not train.epochs: under Hyperband (which the overrides may pick) it is refused.
        for k in draw(st.lists(st.sampled_from([k for k in TUNABLE if k != "train.epochs"]), unique=True, max_size=4))
    }
    if space:
        doc.setdefault("sweep", {})["space"] = space
    # Overrides leave alone the keys that must agree with others (kind, loss, optimizer).
    free = [(s, n) for s in SECTIONS for n in FIELDS[s] if (s, n) not in CHOICES or s == "sweep"]
    overrides = [
        (s, n, draw(valid_value(s, n))) for s, n in draw(st.lists(st.sampled_from(free), max_size=3)) if n != "space"
    ]
    merged = {s: {n: _coerced(s, n, v) for n, v in table.items() if n != "space"} for s, table in doc.items()}
    for s, n, v in overrides:
        merged.setdefault(s, {})[n] = _coerced(s, n, v)
    merged.setdefault("logging", {}).setdefault("experiment", "")
    if merged["logging"]["experiment"] == "":
        merged["logging"]["experiment"] = "exp"
    sweep_space = tuple(expected_space_entry(k, e) for k, e in space.items())
    expected = Config(**{s: SECTIONS[s](**values) for s, values in merged.items()})
    expected = dataclasses.replace(expected, sweep=dataclasses.replace(expected.sweep, space=sweep_space))
    return doc, overrides, expected


@st.composite
def valid_space_entry(draw: st.DrawFn, key: str, scratch: bool) -> dict[str, Any]:
    section, name = key.split(".")
    kind = HINTS[section][name]
    if key == "train.optimizer" and scratch:
        return {"values": ["sgd"]}
    if key == "train.engine" and scratch:
        return {"values": draw(st.lists(st.sampled_from(FIT_ENGINES), min_size=1, unique=True))}
    value = valid_value(section, name)
    if kind not in (int, float) or draw(st.booleans()):
        values = draw(st.lists(value, min_size=1, max_size=4, unique_by=lambda v: _coerced(section, name, v)))
        return {"values": values}
    low, high = sorted(
        draw(st.lists(value, min_size=2, max_size=2, unique_by=lambda v: _coerced(section, name, v))),
        key=lambda v: _coerced(section, name, v),
    )
    entry = {"min": low, "max": high, "sampling": draw(st.sampled_from(SAMPLINGS if low > 0 else ["linear"]))}
    if draw(st.booleans()):
        entry["step"] = draw(st.integers(1, 10**6) if kind is int else POSITIVE)
    return entry


def expected_space_entry(key: str, entry: dict[str, Any]) -> SpaceEntry:
    section, name = key.split(".")
    if "values" in entry:
        return SpaceEntry(key=key, values=tuple(_coerced(section, name, v) for v in entry["values"]))
    return SpaceEntry(
        key=key,
        min=_coerced(section, name, entry["min"]),
        max=_coerced(section, name, entry["max"]),
        sampling=entry["sampling"],
        step=_coerced(section, name, entry["step"]) if "step" in entry else None,
    )


def _allowed_values_load_as_written(tmp_path: Path, case: tuple[dict[str, Any], list[Any], Config]) -> None:
    doc, overrides, expected = case
    path = tmp_path / "exp.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    texts = [f"{s}.{n}={toml_value(v)}" for s, n, v in overrides]
    config = load_config(path, texts)
    assert config == expected
    assert_valid(config)
    assert_saved_config_reads_back(config, tmp_path)
    # The same changes from Python, as notebooks make them, give the same Config; only load_config names
    # the experiment after the file, so an override to "" (not set) leaves it unnamed.
    mapping = {f"{s}.{n}": v for s, n, v in overrides}
    if mapping.get("logging.experiment") == "":
        expected = dataclasses.replace(expected, logging=dataclasses.replace(expected.logging, experiment=None))
    assert override(load_config(path), mapping) == expected


test_allowed_values_load_as_written, test_allowed_values_in_full = both_loops(
    _allowed_values_load_as_written, case=valid_configs()
)
