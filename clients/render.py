"""Readable, aligned text tables for query results, reading at most a bounded number of rows into memory."""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

NULL = "NULL"
ELLIPSIS = "…"


def head(batches: Iterable[pa.RecordBatch], schema: pa.Schema, limit: int) -> tuple[pa.Table, int]:
    """The first `limit` rows as a table, and the total row count (the rest is read and dropped)."""
    kept: list[pa.RecordBatch] = []
    total = 0
    for batch in batches:
        room = limit - total
        if room > 0:
            kept.append(batch.slice(0, room))
        total += batch.num_rows
    return pa.Table.from_batches(kept, schema=schema), total


def format_table(table: pa.Table, total: int | None = None, max_width: int = 40) -> str:
    """Header, separator, rows and a footer with the row count (and how many were left out)."""
    total = table.num_rows if total is None else total
    headers = [_clip(name, max_width) for name in table.column_names]
    columns = [[_clip(_cell(value), max_width) for value in _values(column)] for column in table.columns]
    widths = [max([len(h)] + [len(c) for c in cells]) for h, cells in zip(headers, columns)]
    right = [_numeric(field.type) for field in table.schema]
    lines = [_line(headers, widths, [False] * len(widths)), "-+-".join("-" * w for w in widths)]
    lines += [_line(row, widths, right) for row in zip(*columns)]
    lines.append(_footer(table.num_rows, total))
    return "\n".join(lines)


def _footer(shown: int, total: int) -> str:
    noun = "row" if total == 1 else "rows"
    if shown >= total:
        return f"({total:,} {noun})"
    return f"({total:,} {noun}; first {shown:,} shown, {total - shown:,} omitted: raise --max-rows to see more)"


def _line(cells, widths, right) -> str:
    return " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()


def _values(column: pa.ChunkedArray) -> list:
    try:
        return column.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException):  # e.g. timestamps beyond Python's datetime range
        pass
    try:
        return column.cast(pa.string()).to_pylist()
    except pa.ArrowException:
        return [None if null else f"<{column.type}>" for null in column.is_null().to_pylist()]


def _cell(value) -> str:
    if value is None:
        return NULL
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _clip(text: str, width: int) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
