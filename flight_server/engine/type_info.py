"""DuckDB's types as JDBC/ODBC (XDBC) describe them: the rows of GetXdbcTypeInfo, and the column metadata
Flight SQL clients read from schemas (GetTables with include_schema; query results' schemas)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyarrow as pa

# XDBC data type codes (public Flight SQL spec, enum XdbcDataType).
_BIT, _TINYINT, _SMALLINT, _INTEGER, _BIGINT = -7, -6, 5, 4, -5
_FLOAT, _REAL, _DOUBLE, _DECIMAL = 6, 7, 8, 3
_VARCHAR, _VARBINARY, _DATE, _TIME, _TIMESTAMP, _INTERVAL, _DATETIME = 12, -3, 91, 92, 93, 10, 9

# (type_name, data_type, column_size, literal_prefix, literal_suffix, create_params, case_sensitive,
#  unsigned, fixed_prec_scale, min_scale, max_scale, sql_data_type, datetime_subcode, radix)
TYPES: list[tuple] = [
    ("BOOLEAN", _BIT, 1, None, None, None, False, None, False, None, None, _BIT, None, None),
    ("TINYINT", _TINYINT, 3, None, None, None, False, False, True, 0, 0, _TINYINT, None, 10),
    ("UTINYINT", _TINYINT, 3, None, None, None, False, True, True, 0, 0, _TINYINT, None, 10),
    ("SMALLINT", _SMALLINT, 5, None, None, None, False, False, True, 0, 0, _SMALLINT, None, 10),
    ("USMALLINT", _SMALLINT, 5, None, None, None, False, True, True, 0, 0, _SMALLINT, None, 10),
    ("INTEGER", _INTEGER, 10, None, None, None, False, False, True, 0, 0, _INTEGER, None, 10),
    ("UINTEGER", _INTEGER, 10, None, None, None, False, True, True, 0, 0, _INTEGER, None, 10),
    ("BIGINT", _BIGINT, 19, None, None, None, False, False, True, 0, 0, _BIGINT, None, 10),
    ("UBIGINT", _BIGINT, 20, None, None, None, False, True, True, 0, 0, _BIGINT, None, 10),
    ("HUGEINT", _DECIMAL, 38, None, None, None, False, False, True, 0, 0, _DECIMAL, None, 10),
    ("UHUGEINT", _DECIMAL, 39, None, None, None, False, True, True, 0, 0, _DECIMAL, None, 10),
    ("DECIMAL", _DECIMAL, 38, None, None, ["precision", "scale"], False, False, True, 0, 38, _DECIMAL, None, 10),
    ("FLOAT", _REAL, 24, None, None, None, False, False, False, None, None, _REAL, None, 2),
    ("DOUBLE", _DOUBLE, 53, None, None, None, False, False, False, None, None, _DOUBLE, None, 2),
    ("VARCHAR", _VARCHAR, None, "'", "'", None, True, None, False, None, None, _VARCHAR, None, None),
    ("BLOB", _VARBINARY, None, "'", "'", None, False, None, False, None, None, _VARBINARY, None, None),
    ("DATE", _DATE, 10, "DATE '", "'", None, False, None, False, None, None, _DATETIME, 1, None),
    ("TIME", _TIME, 15, "TIME '", "'", None, False, None, False, 6, 6, _DATETIME, 2, None),
    ("TIME_NS", _TIME, 18, "'", "'::TIME_NS", None, False, None, False, 9, 9, _DATETIME, 2, None),
    ("TIME WITH TIME ZONE", _TIME, 21, "TIMETZ '", "'", None, False, None, False, 6, 6, _DATETIME, 4, None),
    ("TIMESTAMP", _TIMESTAMP, 26, "TIMESTAMP '", "'", None, False, None, False, 6, 6, _DATETIME, 3, None),
    ("TIMESTAMP_S", _TIMESTAMP, 19, "TIMESTAMP_S '", "'", None, False, None, False, 0, 0, _DATETIME, 3, None),
    ("TIMESTAMP_MS", _TIMESTAMP, 23, "TIMESTAMP_MS '", "'", None, False, None, False, 3, 3, _DATETIME, 3, None),
    ("TIMESTAMP_NS", _TIMESTAMP, 29, "TIMESTAMP_NS '", "'", None, False, None, False, 9, 9, _DATETIME, 3, None),
    ("TIMESTAMP WITH TIME ZONE", _TIMESTAMP, 32, "TIMESTAMPTZ '", "'", None, False, None, False, 6, 6,
     _DATETIME, 5, None),
    ("INTERVAL", _INTERVAL, None, "INTERVAL '", "'", None, False, None, False, None, None, _INTERVAL, None, None),
    ("UUID", _VARCHAR, 36, "'", "'", None, False, None, False, None, None, _VARCHAR, None, None),
]


def rows(data_type: int | None = None) -> list[tuple]:
    """Rows in the GetXdbcTypeInfo column order, ordered by data_type then type_name."""
    out = []
    for (name, code, size, prefix, suffix, params, case, unsigned, fixed, min_scale, max_scale, sql_type,
         subcode, radix) in TYPES:
        if data_type is not None and code != data_type:
            continue
        out.append((name, code, size, prefix, suffix, params, 1, case, 3, unsigned, fixed, False, name,
                    min_scale, max_scale, sql_type, subcode, radix, None))
    return sorted(out, key=lambda r: (r[1], r[0]))


# -- column metadata ----------------------------------------------------------------------------------------

_BY_NAME = {row[0]: row for row in TYPES}
# DuckDB types that XDBC sees as another one of the table.
_ALIASES = {"JSON": "VARCHAR"}


@dataclass(frozen=True)
class ColumnType:
    """What JDBC/ODBC say about a column of one DuckDB type; None where a notion does not apply or is unknown
    (VARCHAR has no maximum length in DuckDB; nested types have no XDBC code)."""

    name: str  # as DuckDB spells it: DECIMAL(18,3), INTEGER[], STRUCT(a INTEGER)
    data_type: int | None
    column_size: int | None  # digits for exact numbers, bits for FLOAT/DOUBLE, characters for dates and times
    decimal_digits: int | None  # scale, or fractional-second digits
    radix: int | None
    datetime_subcode: int | None
    case_sensitive: bool


@functools.lru_cache(maxsize=1024)
def describe(type_name: str) -> ColumnType:
    """The XDBC description of a DuckDB type, from its name as duckdb_columns() or a result's types spell it."""
    upper = type_name.upper()
    if upper.startswith("DECIMAL(") and upper.endswith(")"):
        precision, scale = (int(part) for part in upper[len("DECIMAL("):-1].split(","))
        return ColumnType(type_name, _DECIMAL, precision, scale, 10, None, False)
    if upper.startswith("ENUM("):
        return ColumnType(type_name, _VARCHAR, None, None, None, None, True)
    row = _BY_NAME.get(_ALIASES.get(upper, upper))
    if row is None:  # lists, arrays, structs, maps, unions, BIT, BIGNUM ...
        return ColumnType(type_name, None, None, None, None, None, False)
    return ColumnType(type_name, data_type=row[1], column_size=row[2], decimal_digits=row[10], radix=row[13],
                      datetime_subcode=row[12], case_sensitive=row[6])


@dataclass(frozen=True)
class ColumnFacts:
    """What the catalog knows about a table's column beyond its type."""

    catalog: str
    schema: str
    table: str
    nullable: bool
    default: str | None = None
    comment: str | None = None
    read_only: bool = False


_FLIGHT_SQL = "ARROW:FLIGHT:SQL:"


def result_metadata(type_name: str) -> dict[str, str]:
    """Flight SQL's column metadata keys for a query result column: what its type alone tells."""
    return dict(_type_metadata(type_name))


def result_schema(schema: pa.Schema, type_names: list[str]) -> pa.Schema:
    """A query result's Arrow schema with each field's Flight SQL column metadata, from DuckDB's type names."""
    return pa.schema([_annotated(field, name) for field, name in zip(schema, type_names)])


@functools.lru_cache(maxsize=4096)
def _annotated(field: pa.Field, type_name: str) -> pa.Field:
    return field.with_metadata(result_metadata(type_name))  # cached: the same few fields recur


@functools.lru_cache(maxsize=1024)
def _type_metadata(type_name: str) -> tuple[tuple[str, str], ...]:
    column = describe(type_name)
    items = [(_FLIGHT_SQL + "TYPE_NAME", column.name)]
    if column.column_size is not None:
        items.append((_FLIGHT_SQL + "PRECISION", str(column.column_size)))
    if column.decimal_digits is not None:
        items.append((_FLIGHT_SQL + "SCALE", str(column.decimal_digits)))
    items += [(_FLIGHT_SQL + "IS_AUTO_INCREMENT", "0"),
              (_FLIGHT_SQL + "IS_CASE_SENSITIVE", "1" if column.case_sensitive else "0"),
              (_FLIGHT_SQL + "IS_READ_ONLY", "1"),  # a computed result column cannot be written through
              (_FLIGHT_SQL + "IS_SEARCHABLE", "1")]
    return tuple(items)


def table_metadata(type_name: str, facts: ColumnFacts) -> dict[str, str]:
    """Column metadata for a table's column (GetTables with include_schema): Flight SQL's keys, plus the XDBC_*
    and REMARKS keys ADBC's GetObjects metadata builder reads into its xdbc_* column fields (no Flight SQL key
    carries them; ADBC's Flight SQL driver, as of 1.12, drops them before that builder sees them)."""
    column = describe(type_name)
    auto_increment = bool(facts.default) and facts.default.lower().startswith("nextval(")
    metadata = result_metadata(type_name)
    metadata.update({
        _FLIGHT_SQL + "CATALOG_NAME": facts.catalog,
        _FLIGHT_SQL + "DB_SCHEMA_NAME": facts.schema,
        _FLIGHT_SQL + "SCHEMA_NAME": facts.schema,  # the name the Go, C++ and Java client libraries read
        _FLIGHT_SQL + "TABLE_NAME": facts.table,
        _FLIGHT_SQL + "IS_AUTO_INCREMENT": "1" if auto_increment else "0",
        _FLIGHT_SQL + "IS_READ_ONLY": "1" if facts.read_only else "0",
        "XDBC_TYPE_NAME": column.name,
        "XDBC_NULLABLE": "1" if facts.nullable else "0",
        "XDBC_IS_NULLABLE": "YES" if facts.nullable else "NO",
        "XDBC_IS_AUTOINCREMENT": "true" if auto_increment else "false",
    })
    optional = {"XDBC_DATA_TYPE": column.data_type, "XDBC_COLUMN_SIZE": column.column_size,
                "XDBC_DECIMAL_DIGITS": column.decimal_digits, "XDBC_NUM_PREC_RADIX": column.radix,
                "XDBC_DATETIME_SUB": column.datetime_subcode, "XDBC_COLUMN_DEF": facts.default,
                "REMARKS": facts.comment}
    metadata.update({key: str(value) for key, value in optional.items() if value is not None and value != ""})
    return metadata
