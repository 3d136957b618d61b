"""Aligned text tables, the one formatter behind every table the package prints (sweep results,
compare, bench, numerics): a header row, then rows of cells already turned into text."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """The header and rows as columns two spaces apart, left-aligned except the columns in `right`
    (numbers read best right-aligned); trailing spaces are dropped."""
    lines = [list(header), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """The same table in Markdown, the columns in `right` right-aligned."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return "".join("| " + " | ".join(line) + " |\n" for line in [list(header), align, *[list(r) for r in rows]])
