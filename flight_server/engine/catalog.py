"""Catalog browsing: catalogs, schemas, tables, columns and keys, read from DuckDB's own duckdb_* functions."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from . import type_info
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


def table_schemas(conn, tables: Sequence[tuple[str, str, str, str]]) -> list[pa.Schema]:
    """For (catalog, schema, table, table_type) rows: the Arrow schema a SELECT * of each streams, every field with
    the column metadata JDBC/ODBC-minded clients read (type name, precision, scale, nullability, default,
    comment, read-only ...). One catalog query for all the tables' columns, and one query that gives all their
    Arrow types (NULLs cast to each column's type); a table whose types that way cannot give is bound alone."""
    if not tables:
        return []
    names = [list(column) for column in zip(*(row[:3] for row in tables))]
    rows = _rows(conn, "SELECT c.database_name, c.schema_name, c.table_name, c.column_name, c.data_type, "
                       "c.is_nullable, c.column_default, c.comment, d.readonly "
                       "FROM duckdb_columns() c JOIN duckdb_databases() d USING (database_name) "
                       "JOIN (SELECT unnest(?) AS database_name, unnest(?) AS schema_name, unnest(?) AS table_name) "
                       "w USING (database_name, schema_name, table_name) ORDER BY c.column_index", names)
    columns: dict[tuple[str, str, str], list[tuple]] = {}
    for row in rows:
        columns.setdefault(row[:3], []).append(row[3:])
    arrow_types = _arrow_types(conn, [column[1] for table_columns in columns.values() for column in table_columns])
    schemas, position = {}, 0
    for key, table_columns in columns.items():
        if arrow_types is not None:
            types = arrow_types[position:position + len(table_columns)]
            schemas[key] = pa.schema([pa.field(column[0], kind) for column, kind in zip(table_columns, types)])
        position += len(table_columns)
    return [_table_schema(conn, row, columns.get(tuple(row[:3]), []), schemas.get(tuple(row[:3])))
            for row in tables]


_TYPES_PER_QUERY = 1000


def _arrow_types(conn, type_names: list[str]) -> list[pa.DataType] | None:
    """The Arrow type DuckDB streams for each DuckDB type name, from a few `SELECT NULL::type, ...` queries (the
    Arrow type depends on the DuckDB type and the connection alone); None if a name does not parse back."""
    out: list[pa.DataType] = []
    for start in range(0, len(type_names), _TYPES_PER_QUERY):
        chunk = type_names[start:start + _TYPES_PER_QUERY]
        sql = "SELECT " + ", ".join(f"CAST(NULL AS {name}) AS c{index}" for index, name in enumerate(chunk))
        try:
            # DuckDB quotes what it prints; still, text from the catalog runs only as the one SELECT it should be.
            statements = conn.extract_statements(sql)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                return None
            fields = conn.sql(sql).limit(0).to_arrow_table().schema
        except Exception:  # a type DuckDB prints but cannot parse back (some extension types): bind per table
            return None
        if len(fields) != len(chunk):
            return None
        out += [field.type for field in fields]
    return out


def _table_schema(conn, row: tuple[str, str, str, str], columns: list[tuple],
                  arrow_schema: pa.Schema | None = None) -> pa.Schema:
    catalog, schema, table, table_type = row
    name = ".".join(quote(part) for part in (catalog, schema, table))
    if arrow_schema is None:
        try:
            arrow_schema = conn.sql(f"SELECT * FROM {name}").limit(0).to_arrow_table().schema
        except Exception as exc:
            raise classify(exc) from None
    by_name = {column[0]: column for column in columns}
    fields = []
    for index, arrow_field in enumerate(arrow_schema):
        column = columns[index] if index < len(columns) and columns[index][0] == arrow_field.name \
            else by_name.get(arrow_field.name)
        if column is None:  # not in the catalog (cannot happen for a table; kept plain rather than guessed)
            fields.append(arrow_field)
            continue
        _, type_name, nullable, default, comment, read_only_database = column
        facts = type_info.ColumnFacts(catalog, schema, table, nullable=bool(nullable), default=default,
                                      comment=comment, read_only=bool(read_only_database) or table_type == "VIEW")
        fields.append(arrow_field.with_nullable(bool(nullable))
                      .with_metadata(type_info.table_metadata(type_name, facts)))
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
