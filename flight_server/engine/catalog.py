"""Catalog browsing: catalogs, schemas, tables, columns and keys, read from DuckDB's own duckdb_* functions."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from .errors import classify

TABLE_TYPES = ("BASE TABLE", "LOCAL TEMPORARY", "VIEW")


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    try:
        return conn.execute(sql, list(params)).fetchall()
    except Exception as exc:
        raise classify(exc) from None


def _filters(column_values: Sequence[tuple[str, str | None, bool]]) -> tuple[str, list[object]]:
    """WHERE clauses for (column, value, is_pattern); None values do not filter."""
    clauses, params = [], []
    for column, value, is_pattern in column_values:
        if value is None:
            continue
        clauses.append(f"{column} LIKE ? ESCAPE '\\'" if is_pattern else f"{column} = ?")
        params.append(value)
    return (" AND " + " AND ".join(clauses) if clauses else ""), params


def catalogs(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = _rows(conn, "SELECT database_name FROM duckdb_databases() "
                       "WHERE NOT internal OR database_name = 'temp' ORDER BY 1")
    return [row[0] for row in rows]


def schemas(conn, catalog: str | None, pattern: str | None) -> list[tuple[str, str]]:
    where, params = _filters([("database_name", catalog, False), ("schema_name", pattern, True)])
    return _rows(conn, "SELECT database_name, schema_name FROM duckdb_schemas() "
                       "WHERE (NOT internal OR database_name = 'temp' OR schema_name = 'main')"
                       " AND database_name IN (SELECT database_name FROM duckdb_databases() "
                       "WHERE NOT internal OR database_name = 'temp')" + where + " ORDER BY 1, 2", params)


def tables(conn, catalog: str | None, schema_pattern: str | None, table_pattern: str | None,
           table_types: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(catalog, schema, table, type) for tables and views, ordered as the spec asks."""
    where, params = _filters([("database_name", catalog, False), ("schema_name", schema_pattern, True),
                              ("table_name", table_pattern, True)])
    sql = ("SELECT * FROM ("
           " SELECT database_name, schema_name, table_name,"
           "  CASE WHEN temporary THEN 'LOCAL TEMPORARY' ELSE 'BASE TABLE' END AS table_type"
           " FROM duckdb_tables() WHERE NOT internal"
           " UNION ALL"
           " SELECT database_name, schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal"
           ") WHERE true" + where)
    if table_types:
        sql += " AND table_type IN (" + ", ".join("?" for _ in table_types) + ")"
        params = params + list(table_types)
    return _rows(conn, sql + " ORDER BY 1, 2, 3, 4", params)


def columns(conn, catalog: str, schema: str, table: str) -> list[tuple]:
    """(name, DuckDB type, nullable, precision, scale) per column in order."""
    return _rows(conn, "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale "
                       "FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
                       "ORDER BY column_index", [catalog, schema, table])


def table_schema(conn, catalog: str, schema: str, table: str) -> pa.Schema:
    """The Arrow schema a SELECT * of the table streams, with Flight SQL column metadata."""
    name = ".".join(quote(part) for part in (catalog, schema, table))
    try:
        arrow_schema = conn.sql(f"SELECT * FROM {name}").limit(0).to_arrow_table().schema
    except Exception as exc:
        raise classify(exc) from None
    details = {row[0]: row for row in columns(conn, catalog, schema, table)}
    fields = []
    for arrow_field in arrow_schema:
        _, type_name, nullable, precision, scale = details.get(arrow_field.name, (None, "", True, None, None))
        metadata = {
            "ARROW:FLIGHT:SQL:CATALOG_NAME": catalog,
            "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": schema,
            "ARROW:FLIGHT:SQL:TABLE_NAME": table,
            "ARROW:FLIGHT:SQL:TYPE_NAME": type_name,
            "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "0",
            "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE": "1" if type_name == "VARCHAR" else "0",
            "ARROW:FLIGHT:SQL:IS_READ_ONLY": "0",
            "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1",
        }
        if precision is not None:
            metadata["ARROW:FLIGHT:SQL:PRECISION"] = str(precision)
        if scale is not None:
            metadata["ARROW:FLIGHT:SQL:SCALE"] = str(scale)
        fields.append(arrow_field.with_nullable(bool(nullable)).with_metadata(metadata))
    return pa.schema(fields)


def primary_keys(conn, catalog: str | None, schema: str | None, table: str) -> list[tuple]:
    """(catalog, schema, table, column, key_name, key_sequence) ordered by the spec's keys."""
    where, params = _filters([("database_name", catalog, False), ("schema_name", schema, False),
                              ("table_name", table, False)])
    rows = _rows(conn, "SELECT database_name, schema_name, table_name, constraint_name, constraint_column_names "
                       "FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'" + where, params)
    out = []
    for catalog_name, schema_name, table_name, key_name, column_names in rows:
        for sequence, column in enumerate(column_names, start=1):
            out.append((catalog_name, schema_name, table_name, column, key_name, sequence))
    return sorted(out, key=lambda r: (r[0], r[1], r[2], r[4] or "", r[5]))


def foreign_keys(conn, pk: tuple[str | None, str | None, str | None],
                 fk: tuple[str | None, str | None, str | None]) -> list[tuple]:
    """Foreign-key column pairs as the spec's key rows; pk/fk are (catalog, schema, table) filters."""
    where, params = _filters([
        ("c.database_name", fk[0], False), ("c.schema_name", fk[1], False), ("c.table_name", fk[2], False),
        ("c.database_name", pk[0], False), ("c.schema_name", pk[1], False), ("c.referenced_table", pk[2], False),
    ])
    rows = _rows(conn, "SELECT c.database_name, c.schema_name, c.table_name, c.constraint_name, "
                       "c.constraint_column_names, c.referenced_table, c.referenced_column_names "
                       "FROM duckdb_constraints() c WHERE c.constraint_type = 'FOREIGN KEY'" + where, params)
    out = []
    for catalog_name, schema_name, table_name, key_name, fk_columns, ref_table, ref_columns in rows:
        for sequence, (fk_column, pk_column) in enumerate(zip(fk_columns, ref_columns), start=1):
            # DuckDB only allows references within one schema; ON UPDATE/DELETE are always NO ACTION (3).
            out.append((catalog_name, schema_name, ref_table, pk_column, catalog_name, schema_name, table_name,
                        fk_column, sequence, key_name, None, 3, 3))
    return out


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
