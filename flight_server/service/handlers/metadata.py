"""Catalog and server metadata commands: GetSqlInfo, GetXdbcTypeInfo, GetCatalogs ... GetCrossReference.

GetFlightInfo answers with the fixed result schema and a ticket that is the command itself;
the data is read at DoGet time.
"""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.flight as flight

from ...engine import catalog, type_info
from ...protocol import flight_sql_pb2 as sql
from ...protocol import schemas
from .base import Call, info_for, optional

# Flight SQL reports DuckDB's table types with the usual JDBC names.
_TYPE_NAMES = {"BASE TABLE": "TABLE", "LOCAL TEMPORARY": "LOCAL TEMPORARY", "VIEW": "VIEW"}
_TYPE_FILTERS = {value: key for key, value in _TYPE_NAMES.items()}


class MetadataHandlers:
    def metadata_schema(self, command) -> pa.Schema:
        if isinstance(command, sql.CommandGetTables):
            return schemas.TABLES_WITH_SCHEMA if command.include_schema else schemas.TABLES
        return _SCHEMAS[type(command)]

    def get_flight_info_metadata(self, call: Call, command, descriptor: flight.FlightDescriptor):
        return info_for(descriptor, self.metadata_schema(command), command)

    def get_schema_metadata(self, call: Call, command):
        return self.metadata_schema(command)

    def do_get_metadata(self, call: Call, command):
        builder = getattr(self, _BUILDERS[type(command)])
        if type(command) in _CONSTANT:
            # Answers fixed for the process need no DuckDB connection, so they wait for no statement of the
            # session (ADBC asks GetSqlInfo on every connect).
            return flight.RecordBatchStream(builder(None, command))
        with call.session.busy() as conn:
            table = builder(conn, command)
        return flight.RecordBatchStream(table)

    # -- builders (run under the session lock, except the _CONSTANT ones, which get no connection) ----------

    def _sql_info(self, conn, command: sql.CommandGetSqlInfo) -> pa.Table:
        return self.sql_info.table(command.info)

    def _xdbc(self, conn, command: sql.CommandGetXdbcTypeInfo) -> pa.Table:
        return _xdbc_table(optional(command, "data_type"))

    def _catalogs(self, conn, command) -> pa.Table:
        return schemas.table([(name,) for name in catalog.catalogs(conn)], schemas.CATALOGS)

    def _db_schemas(self, conn, command: sql.CommandGetDbSchemas) -> pa.Table:
        rows = catalog.schemas(conn, optional(command, "catalog"), optional(command, "db_schema_filter_pattern"))
        return schemas.table(rows, schemas.DB_SCHEMAS)

    def _tables(self, conn, command: sql.CommandGetTables) -> pa.Table:
        types = [_TYPE_FILTERS.get(t.upper(), t) for t in command.table_types]
        raw_rows = catalog.tables(conn, optional(command, "catalog"), optional(command, "db_schema_filter_pattern"),
                                  optional(command, "table_name_filter_pattern"), types)
        rows = [(c, s, t, _TYPE_NAMES.get(kind, kind)) for c, s, t, kind in raw_rows]
        if not command.include_schema:
            return schemas.table(rows, schemas.TABLES)
        with_schema = [row + (schema.serialize().to_pybytes(),)
                       for row, schema in zip(rows, catalog.table_schemas(conn, raw_rows))]
        return schemas.table(with_schema, schemas.TABLES_WITH_SCHEMA)

    def _table_types(self, conn, command) -> pa.Table:
        return _table_types_table()

    def _primary_keys(self, conn, command: sql.CommandGetPrimaryKeys) -> pa.Table:
        rows = catalog.primary_keys(conn, optional(command, "catalog"), optional(command, "db_schema"), command.table)
        return schemas.table(rows, schemas.PRIMARY_KEYS)

    def _exported_keys(self, conn, command: sql.CommandGetExportedKeys) -> pa.Table:
        pk = (optional(command, "catalog"), optional(command, "db_schema"), command.table)
        rows = sorted(catalog.foreign_keys(conn, pk, (None, None, None)),
                      key=lambda r: (r[4] or "", r[5] or "", r[6], r[9] or "", r[8]))
        return schemas.table(rows, schemas.FOREIGN_KEYS)

    def _imported_keys(self, conn, command: sql.CommandGetImportedKeys) -> pa.Table:
        fk = (optional(command, "catalog"), optional(command, "db_schema"), command.table)
        rows = sorted(catalog.foreign_keys(conn, (None, None, None), fk),
                      key=lambda r: (r[0] or "", r[1] or "", r[2], r[10] or "", r[8]))
        return schemas.table(rows, schemas.FOREIGN_KEYS)

    def _cross_reference(self, conn, command: sql.CommandGetCrossReference) -> pa.Table:
        pk = (optional(command, "pk_catalog"), optional(command, "pk_db_schema"), command.pk_table)
        fk = (optional(command, "fk_catalog"), optional(command, "fk_db_schema"), command.fk_table)
        rows = sorted(catalog.foreign_keys(conn, pk, fk),
                      key=lambda r: (r[4] or "", r[5] or "", r[6], r[9] or "", r[8]))
        return schemas.table(rows, schemas.FOREIGN_KEYS)


@functools.lru_cache(maxsize=64)
def _xdbc_table(data_type: int | None) -> pa.Table:
    """GetXdbcTypeInfo's answer (fixed for the process; Tables are immutable, so one is shared), per filter."""
    return schemas.table(type_info.rows(data_type), schemas.XDBC_TYPE_INFO)


@functools.cache
def _table_types_table() -> pa.Table:
    return schemas.table([(name,) for name in sorted(_TYPE_NAMES.values())], schemas.TABLE_TYPES)


_SCHEMAS = {
    sql.CommandGetSqlInfo: schemas.SQL_INFO,
    sql.CommandGetXdbcTypeInfo: schemas.XDBC_TYPE_INFO,
    sql.CommandGetCatalogs: schemas.CATALOGS,
    sql.CommandGetDbSchemas: schemas.DB_SCHEMAS,
    sql.CommandGetTableTypes: schemas.TABLE_TYPES,
    sql.CommandGetPrimaryKeys: schemas.PRIMARY_KEYS,
    sql.CommandGetExportedKeys: schemas.FOREIGN_KEYS,
    sql.CommandGetImportedKeys: schemas.FOREIGN_KEYS,
    sql.CommandGetCrossReference: schemas.FOREIGN_KEYS,
}

_BUILDERS = {
    sql.CommandGetSqlInfo: "_sql_info",
    sql.CommandGetXdbcTypeInfo: "_xdbc",
    sql.CommandGetCatalogs: "_catalogs",
    sql.CommandGetDbSchemas: "_db_schemas",
    sql.CommandGetTables: "_tables",
    sql.CommandGetTableTypes: "_table_types",
    sql.CommandGetPrimaryKeys: "_primary_keys",
    sql.CommandGetExportedKeys: "_exported_keys",
    sql.CommandGetImportedKeys: "_imported_keys",
    sql.CommandGetCrossReference: "_cross_reference",
}

# Answered from process-wide constants, without the session's connection.
_CONSTANT = frozenset({sql.CommandGetSqlInfo, sql.CommandGetXdbcTypeInfo, sql.CommandGetTableTypes})

METADATA_COMMANDS = tuple(_BUILDERS)
