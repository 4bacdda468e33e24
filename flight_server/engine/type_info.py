"""The DuckDB types reported by GetXdbcTypeInfo, with their JDBC/ODBC (XDBC) codes."""

from __future__ import annotations

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
    ("DECIMAL", _DECIMAL, 38, None, None, ["precision", "scale"], False, False, True, 0, 38, _DECIMAL, None, 10),
    ("FLOAT", _REAL, 24, None, None, None, False, False, False, None, None, _REAL, None, 2),
    ("DOUBLE", _DOUBLE, 53, None, None, None, False, False, False, None, None, _DOUBLE, None, 2),
    ("VARCHAR", _VARCHAR, None, "'", "'", None, True, None, False, None, None, _VARCHAR, None, None),
    ("BLOB", _VARBINARY, None, "'", "'", None, False, None, False, None, None, _VARBINARY, None, None),
    ("DATE", _DATE, 10, "DATE '", "'", None, False, None, False, None, None, _DATETIME, 1, None),
    ("TIME", _TIME, 15, "TIME '", "'", None, False, None, False, 0, 6, _DATETIME, 2, None),
    ("TIMESTAMP", _TIMESTAMP, 26, "TIMESTAMP '", "'", None, False, None, False, 0, 6, _DATETIME, 3, None),
    ("TIMESTAMP WITH TIME ZONE", _TIMESTAMP, 32, "TIMESTAMPTZ '", "'", None, False, None, False, 0, 6,
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
