"""Turns Arrow parameter batches sent by clients into DuckDB values without losing precision."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.value.constant import Value

_TIMESTAMP_NS = duckdb.sqltype("TIMESTAMP_NS")


def rows(batch: pa.RecordBatch | pa.Table) -> Iterator[list[object]]:
    """Yields one list of DuckDB-bindable values per parameter row, in column order."""
    columns = [_column_values(column) for column in batch.columns]
    for index in range(batch.num_rows):
        yield [values[index] for values in columns]


def _column_values(column: pa.Array | pa.ChunkedArray) -> list[object]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        column = column.cast(pa.string())
    elif pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
        column = column.cast(pa.binary())
    elif pa.types.is_timestamp(kind) and kind.unit == "ns" and kind.tz is None:
        # Python datetimes stop at microseconds; DuckDB parses the full-precision text.
        text = pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
        return [None if value is None else Value(value, _TIMESTAMP_NS) for value in text.to_pylist()]
    elif pa.types.is_null(kind):
        return [None] * len(column)
    return column.to_pylist()
