"""TOML text in and out, hardened for any input: values written back exactly as TOML reads them, text
made printable for one-line messages, and `tomllib`'s other failures turned into its decode error."""

from __future__ import annotations

import json
import math
import re
import tomllib
from typing import Any

# Lone surrogates: Python's stand-ins for undecodable bytes in argv, which no UTF-8 file can hold.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_SHOWN_DEPTH = 8
"""Arrays and tables nested deeper are shown as "...": tomllib reads nesting deeper than a message could recurse."""


def printable(text: str) -> str:
    """The text on one line: line breaks and other unprintable characters, which keys, file names and
    --set strings may hold, written as Python escapes (\\n, \\x1e, \\u2028)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def has_surrogates(text: str) -> bool:
    """Whether the text holds undecodable bytes from the command line, which no UTF-8 file can hold."""
    return _SURROGATE.search(text) is not None


def string(text: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, except that with `ensure_ascii` JSON writes a character
    beyond U+FFFF as a surrogate pair, which TOML rejects; so keep non-ASCII as is, and escape DEL as TOML asks."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def key(name: str) -> str:
    """A TOML key: bare where it can be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else string(name)


def value(v: Any, depth: int = 0) -> str:
    """The value as TOML writes it: for files, and for messages, where deep nesting is elided."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        try:
            return repr(v)
        except ValueError:  # str() refuses ints over 4300 digits (a long hex literal); hex() does not
            return hex(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, (list, tuple, dict)) and depth == MAX_SHOWN_DEPTH:
        return "..."
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x, depth + 1) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x, depth + 1)}" for k, x in v.items()) + " }"
    return repr(v)


def dumps(document: dict[str, dict[str, Any]], header: str = "") -> str:
    """Sections of plain values, a section's nested tables (such as [sweep.space]) after its values; None
    values are left out, as TOML has no null. The header becomes comment lines."""
    lines = [f"# {printable(line)}" for line in header.splitlines()]  # a TOML comment holds no control codes
    for section, values in document.items():
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines += ["", f"[{section}]"] + [
            f"{key(k)} = {value(v)}" for k, v in values.items() if k not in tables and v is not None
        ]
        for name, table in tables.items():
            if table:
                lines += ["", f"[{section}.{name}]"] + [f"{key(k)} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def loads(text: str) -> dict[str, Any]:
    """`tomllib.loads`, with the two other errors it can raise turned into TOMLDecodeError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:  # a ValueError too, so let it through first
        raise
    except ValueError:  # int() refuses a decimal integer over 4300 digits
        raise tomllib.TOMLDecodeError("integer over 4300 digits") from None
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise tomllib.TOMLDecodeError("arrays or inline tables nested too deeply") from None


def parse_value(text: str) -> Any:
    """A `--set` value: one TOML value, else the text taken whole as a bare string (so `adam` needs no quotes,
    and more lines of TOML after a value, "1\\nx = 2", are kept, not dropped)."""
    text = text.strip()
    try:
        doc = loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if len(doc) == 1 else text
