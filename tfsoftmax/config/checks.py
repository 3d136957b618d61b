"""Checking one config value: each field's check and the words for what it allows, strict typing, and the
one-line error that names the source, the key, the value received and what is allowed."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tfsoftmax.config import tomlio
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

Check = Callable[[Any], bool]

TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
# TOML's integers: larger ones overflow a float and str() refuses those over 4300 digits.
_INT64 = range(-(2**63), 2**63)
# NumPy's legacy seeding, which Keras and keras-tuner use, takes 32-bit seeds only.
SEED_ALLOWED = "an integer in [0, 4294967295]"


SOURCE = contextvars.ContextVar("source", default="config")
"""Where the values being validated came from (a file, a --set): the start of every config error."""


@contextlib.contextmanager
def from_source(name: str) -> Iterator[None]:
    """Values checked within are blamed on `name` in any error."""
    token = SOURCE.set(name)
    try:
        yield
    finally:
        SOURCE.reset(token)


def spec(default: Any, check: Check | None = None, allowed: str = "") -> Any:
    """A field with its check and the human description of what it allows."""
    return dataclasses.field(default=default, metadata={"check": check, "allowed": allowed})


def positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def at_least(n: int) -> Check:
    return lambda v: v >= n


def choice(options: Sequence[str]) -> Check:
    return lambda v: v in options


def seed(v: int) -> bool:
    return 0 <= v < 2**32


def fail(source: str, message: str) -> TfsoftmaxError:
    """The config error: exit code 2, one printable line starting with where the value came from."""
    return TfsoftmaxError(tomlio.printable(f"{source}: {message}"), CONFIG_ERROR)


def suggest(name: str, options: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" for the closest option, or nothing."""
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def kind_of(cls: type, name: str) -> tuple[type, bool]:
    """A field's value type, and whether it may be unset (None)."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType):
        (kind,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return kind, True
    return hint, False


def coerce(value: Any, kind: type) -> tuple[bool, Any]:
    """Strict typing: no bool for numbers, no float for an int; an int is a fine float if it is 64-bit."""
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool) or (isinstance(value, int) and value not in _INT64):
        return False, value
    if kind is float and isinstance(value, int):
        return True, float(value)
    return isinstance(value, kind), value


def _legacy_unset(value: Any, kind: type, check: Check | None) -> bool:
    """Older run directories wrote an unset number as 0 where 0 is not allowed (`sweep.epochs = 0`)."""
    return kind is int and type(value) is int and value == 0 and check is not None and not check(0)


def check_field(cls: type, section: str, name: str, value: Any, source: str) -> Any:
    """Type-check and range-check `section.name`'s value; return it coerced to the field's type. An unset
    field (None, or "" for text, as older run directories wrote it) stays None."""
    spec_ = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind, optional = kind_of(cls, name)
    check = spec_.metadata["check"]
    if optional and (value is None or value == "" or _legacy_unset(value, kind, check)):
        return None
    ok, value = coerce(value, kind)
    allowed = spec_.metadata["allowed"] or TYPE_NAMES[kind]
    if not ok:
        too_big = kind in (int, float) and type(value) is int  # the type is fine, so the size is not
        expected = "an integer in TOML's 64-bit range" if too_big else TYPE_NAMES[kind]
        raise fail(
            source,
            f"{section}.{name}: expected {expected}, got {tomlio.value(value)} "
            f"({type(value).__name__}); allowed: {allowed}",
        )
    if isinstance(value, str) and tomlio.has_surrogates(value):
        raise fail(
            source,
            f"{section}.{name}: got {tomlio.value(value)}, which is not Unicode text (undecodable "
            f"bytes in a --set?); allowed: {allowed}",
        )
    if check is not None and not check(value):
        raise fail(source, f"{section}.{name}: got {tomlio.value(value)}; allowed: {allowed}")
    return value
