"""Turns Arrow parameter batches sent by clients into DuckDB values, bound exactly as DuckDB's own Arrow scan
would read the same column (same DuckDB type, same value, same range).

DuckDB's Python API binds only Python objects, and the natural ones lose information: `datetime` stops at year
9999 and at microseconds, `time` at microseconds, `timedelta` at 999999999 days, and pyarrow hands nanosecond
values to pandas. So no temporal value ever becomes a Python datetime here. Each column is converted once, column
by column: temporal columns are read as their raw integers and formatted (integer arithmetic only) as the text
DuckDB itself prints for that value; the text is then wrapped in a `duckdb.Value` of the DuckDB type the Arrow scan
gives, and DuckDB's own text cast turns it into that value, exactly. Other values (integers, decimals, strings,
bytes, lists, structs, maps) are Python objects DuckDB converts without loss, wrapped with their exact type too
(so a uint8 parameter is a UTINYINT, as in process, not an INTEGER).

Bulk INSERTs of many rows do not come through here at all: they scan the Arrow table itself (see session.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.value.constant import Value

from .errors import QueryError

_INT64_MAX = 2**63 - 1
_EMPTY_MAP = {"key": [], "value": []}
_INT32_MAX = 2**31 - 1
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_FRACTION_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_TIMESTAMP_TYPES = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}
_FLAT_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_int8, "TINYINT"), (pa.types.is_int16, "SMALLINT"),
    (pa.types.is_int32, "INTEGER"), (pa.types.is_int64, "BIGINT"),
    (pa.types.is_uint8, "UTINYINT"), (pa.types.is_uint16, "USMALLINT"),
    (pa.types.is_uint32, "UINTEGER"), (pa.types.is_uint64, "UBIGINT"),
    # DuckDB's Arrow scan refuses float16; widening it to FLOAT is exact.
    (pa.types.is_float16, "FLOAT"), (pa.types.is_float32, "FLOAT"), (pa.types.is_float64, "DOUBLE"),
    (pa.types.is_string, "VARCHAR"), (pa.types.is_large_string, "VARCHAR"), (pa.types.is_string_view, "VARCHAR"),
    (pa.types.is_binary, "BLOB"), (pa.types.is_large_binary, "BLOB"), (pa.types.is_binary_view, "BLOB"),
    (pa.types.is_fixed_size_binary, "BLOB"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_duration, "INTERVAL"), (pa.types.is_interval, "INTERVAL"),
]


def rows(batch: pa.RecordBatch | pa.Table) -> Iterator[list[object]]:
    """Yields one list of DuckDB-bindable values per parameter row, in column order."""
    columns = [_column_values(column) for column in batch.columns]
    for index in range(batch.num_rows):
        yield [values[index] for values in columns]


def stack_results(tables: list[pa.Table]) -> pa.Table:
    """The results of one query run once per parameter row, as one table. DuckDB's Python binding has no typed
    NULL, so a row whose parameter was NULL can give an all-NULL column of another type (`SELECT ?` gives INTEGER);
    such a column takes the type the other rows' results agree on."""
    if len(tables) < 2:
        return tables[0] if tables else pa.table({})
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        pass
    fields = list(tables[0].schema)
    for index, field in enumerate(fields):
        typed = {table.schema.field(index).type for table in tables if table.column(index).null_count < len(table)}
        if len(typed) == 1:
            fields[index] = field.with_type(typed.pop())
    schema = pa.schema(fields)
    aligned = []
    for table in tables:
        columns = [pa.nulls(len(column), field.type) if column.type != field.type and column.null_count == len(column)
                   else column for column, field in zip(table.columns, schema)]
        aligned.append(pa.Table.from_arrays(columns, names=schema.names))
    try:
        return pa.concat_tables(aligned, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        # Values DuckDB typed differently from row to row (a union parameter, say): no one column type to give.
        raise QueryError(f"the parameter rows give results of different types: {str(exc).splitlines()[0]}") \
            from None


@functools.lru_cache(maxsize=512)
def duckdb_type(kind: pa.DataType) -> str | None:
    """The DuckDB type DuckDB's Arrow scan reads an Arrow type as; None for types left to DuckDB to infer."""
    if pa.types.is_dictionary(kind) or pa.types.is_run_end_encoded(kind):
        return duckdb_type(kind.value_type)
    for test, name in _FLAT_TYPES:
        if test(kind):
            return name
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})" if kind.precision <= 38 else None
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP WITH TIME ZONE" if kind.tz is not None else _TIMESTAMP_TYPES[kind.unit]
    if pa.types.is_time(kind):
        return "TIME_NS" if kind.unit == "ns" else "TIME"
    if pa.types.is_map(kind):
        key, item = duckdb_type(kind.key_type), duckdb_type(kind.item_type)
        return f"MAP({key}, {item})" if key and item else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind) \
            or pa.types.is_large_list_view(kind) or pa.types.is_fixed_size_list(kind):
        child = duckdb_type(kind.value_type)
        if child is None:
            return None
        return f"{child}[{kind.list_size}]" if pa.types.is_fixed_size_list(kind) else f"{child}[]"
    if pa.types.is_struct(kind) or pa.types.is_union(kind):
        fields = [kind.field(index) for index in range(kind.num_fields)]
        children = [duckdb_type(field.type) for field in fields]
        if not children or None in children:
            return None
        members = ", ".join(f"{_quote(field.name)} {child}" for field, child in zip(fields, children))
        return f"{'STRUCT' if pa.types.is_struct(kind) else 'UNION'}({members})"
    return None


def _column_values(column: pa.Array | pa.ChunkedArray) -> list[object]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_null(column.type):
        return [None] * len(column)
    values = _python_values(column)
    type_name = duckdb_type(column.type)
    if type_name is None:
        return values
    sql_type = _sql_type(type_name)
    if type_name.endswith("]") or type_name.startswith("MAP("):
        # DuckDB keeps the "NULL" element type of an empty list or map rather than cast it: its text casts.
        values = [("{}" if isinstance(value, dict) else "[]") if value in ([], _EMPTY_MAP) else value
                  for value in values]
    return [None if value is None else Value(value, sql_type) for value in values]


@functools.lru_cache(maxsize=256)
def _sql_type(name: str) -> duckdb.DuckDBPyType:
    return duckdb.sqltype(name)


def _python_values(array: pa.Array) -> list[object]:
    """Python objects DuckDB converts without loss: temporal values and decimals as DuckDB's text for them."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _python_values(array.dictionary_decode())
    if pa.types.is_run_end_encoded(kind):
        return _python_values(pc.run_end_decode(array))
    formatter = _text_formatter(kind)
    if formatter is not None:
        return _format(array, formatter)
    if pa.types.is_floating(kind):
        # DuckDB's Python binding turns a NaN wrapped in a Value into NULL; its text cast keeps it NaN.
        return [value if value == value or value is None else "nan" for value in array.to_pylist()]
    if not _needs_conversion(kind):
        return array.to_pylist()
    valid = array.is_valid().to_pylist()
    if pa.types.is_struct(kind):
        names = [field.name for field in kind]
        children = [_python_values(child) for child in array.flatten()]
        return [dict(zip(names, values)) if ok else None for ok, values in zip(valid, zip(*children))] \
            if children else [None] * len(array)
    if pa.types.is_fixed_size_list(kind):
        size, start = kind.list_size, array.offset
        items = _python_values(array.values)
        return [items[(start + i) * size:(start + i + 1) * size] if ok else None for i, ok in enumerate(valid)]
    if pa.types.is_map(kind):
        # keys and items are the whole (unsliced) children; offsets index into them.
        keys, items = _python_values(array.keys), _python_values(array.items)
        offsets = array.offsets.to_pylist()
        return [{"key": keys[offsets[i]:offsets[i + 1]], "value": items[offsets[i]:offsets[i + 1]]} if ok else None
                for i, ok in enumerate(valid)]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        items = _python_values(array.values)
        offsets = array.offsets.to_pylist()
        return [items[offsets[i]:offsets[i + 1]] if ok else None for i, ok in enumerate(valid)]
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        items = _python_values(array.values)
        spans = zip(array.offsets.to_pylist(), array.sizes.to_pylist())
        return [items[start:start + size] if ok else None for ok, (start, size) in zip(valid, spans)]
    return array.to_pylist()


def _needs_conversion(kind: pa.DataType) -> bool:
    """Whether to_pylist() would lose something somewhere in this (possibly nested) type."""
    if _text_formatter(kind) is not None or pa.types.is_floating(kind) or pa.types.is_map(kind):
        return True  # maps: to_pylist() gives (key, value) tuples, which DuckDB reads as structs
    if pa.types.is_dictionary(kind) or pa.types.is_run_end_encoded(kind):
        return _needs_conversion(kind.value_type)
    return any(_needs_conversion(kind.field(i).type) for i in range(kind.num_fields))


def _format(array: pa.Array, formatter: Callable[[object], str]) -> list[str | None]:
    kind = array.type
    if pa.types.is_interval(kind) or pa.types.is_decimal(kind):
        raw = array.to_pylist()  # MonthDayNano tuples of plain integers; Decimals
    else:
        raw = array.view(pa.int32() if kind.bit_width == 32 else pa.int64()).to_pylist()
    return [None if value is None else formatter(value) for value in raw]


def _text_formatter(kind: pa.DataType) -> Callable[[object], str] | None:
    """How a value of a temporal or decimal Arrow type (its raw integer for temporal types) becomes DuckDB's text
    for the value DuckDB's Arrow scan reads."""
    if pa.types.is_decimal(kind):
        # Wider than DuckDB's 38 digits: left as Decimal objects, for DuckDB to bind as it binds those.
        return _decimal_text if kind.precision <= 38 else None
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            return functools.partial(_timestamptz_text, unit=kind.unit)
        return functools.partial(_timestamp_text, unit=kind.unit)
    if pa.types.is_date32(kind):
        return _date32_text
    if pa.types.is_date64(kind):
        return _date64_text
    if pa.types.is_time(kind):
        return functools.partial(_time_text, unit=kind.unit)
    if pa.types.is_duration(kind):
        return functools.partial(_duration_text, unit=kind.unit)
    if pa.types.is_interval(kind):
        return _month_day_nano_text
    return None


def _decimal_text(value) -> str:
    # A Decimal wrapped in a Value keeps its own width (DECIMAL(11,10) for 1E-10) instead of the column's.
    return format(value, "f")


# -- DuckDB's text for temporal values, from integers ---------------------------------------------------------


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (year 0 is 1 BC), for any integer."""
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def _date_text(days: int) -> str:
    year, month, day = _civil_from_days(days)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} (BC)"
    return f"{year:04d}-{month:02d}-{day:02d}"


def _clock_text(ticks: int, per_second: int, digits: int) -> str:
    """HH:MM:SS[.fraction] of a non-negative tick count within (or at the end of) one day."""
    seconds, fraction = divmod(ticks, per_second)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:0{digits}d}" if digits else text


def _instant_text(value: int, unit: str) -> str:
    per_second = _PER_SECOND[unit]
    days, ticks = divmod(value, 86_400 * per_second)
    return _date_text(days) + " " + _clock_text(ticks, per_second, _FRACTION_DIGITS[unit])


def _timestamp_text(value: int, unit: str) -> str:
    # DuckDB stores +-infinity as the extreme int64 values of TIMESTAMP and TIMESTAMP_NS.
    if unit in ("us", "ns") and abs(value) == _INT64_MAX:
        return "infinity" if value > 0 else "-infinity"
    return _instant_text(value, unit)


def _timestamptz_text(value: int, unit: str) -> str:
    micros = value * (1_000_000 // _PER_SECOND[unit]) if unit != "ns" else _truncate(value, 1000)
    if abs(micros) == _INT64_MAX:
        return "infinity" if micros > 0 else "-infinity"
    return _instant_text(micros, "us") + "+00"


def _date32_text(days: int) -> str:
    if abs(days) == _INT32_MAX:  # DATE's +-infinity
        return "infinity" if days > 0 else "-infinity"
    return _date_text(days)


def _date64_text(millis: int) -> str:
    return _date32_text(_truncate(millis, 86_400_000))


def _time_text(value: int, unit: str) -> str:
    if unit == "ns":
        return _clock_text(value, 1_000_000_000, 9)
    return _clock_text(value * (1_000_000 // _PER_SECOND[unit]), 1_000_000, 6)


def _duration_text(value: int, unit: str) -> str:
    micros = value * (1_000_000 // _PER_SECOND[unit]) if unit != "ns" else _truncate(value, 1000)
    return _micros_text(micros)


def _month_day_nano_text(value) -> str:
    months, days, nanos = value
    return f"{months} months {days} days " + _micros_text(_truncate(nanos, 1000))


def _micros_text(micros: int) -> str:
    if micros == -_INT64_MAX - 1:  # DuckDB reads the magnitude before the sign, and 2**63 is not an int64
        return f"{-_INT64_MAX} microseconds -1 microseconds"
    return f"{micros} microseconds"


def _truncate(value: int, divisor: int) -> int:
    """Division rounding toward zero, as DuckDB's Arrow scan converts units."""
    quotient = abs(value) // divisor
    return quotient if value >= 0 else -quotient


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
