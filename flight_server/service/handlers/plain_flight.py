"""Plain Arrow Flight for clients that do not speak Flight SQL: path descriptors name tables, command
descriptors may hold bare SQL text, ListFlights lists tables."""

from __future__ import annotations

import pyarrow.flight as flight

from ...engine import catalog
from ...engine.errors import QueryError
from ...engine.ingest import IfExists, IfMissing, IngestTarget
from ...protocol import flight_sql_pb2 as sql
from .base import Call, incoming, info_for, update_result

# DoPut with a path descriptor: the mode comes from this call header (default create_append).
INGEST_MODE_HEADER = "x-flight-ingest-mode"
_MODES = {
    "create": (IfExists.FAIL, IfMissing.CREATE),
    "append": (IfExists.APPEND, IfMissing.FAIL),
    "replace": (IfExists.REPLACE, IfMissing.CREATE),
    "create_append": (IfExists.APPEND, IfMissing.CREATE),
}


def table_parts(descriptor: flight.FlightDescriptor) -> list[str]:
    parts = [p.decode("utf-8") if isinstance(p, bytes) else p for p in descriptor.path]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise QueryError("a path descriptor names a table: [table], [schema, table] or [catalog, schema, table]")
    return parts


def table_query(parts: list[str]) -> sql.CommandStatementQuery:
    return sql.CommandStatementQuery(query="SELECT * FROM " + ".".join(catalog.quote(p) for p in parts))


class PlainFlightHandlers:
    def get_flight_info_path(self, call: Call, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        command = table_query(table_parts(descriptor))
        schema = call.session.schema_of(command.query)
        return info_for(descriptor, schema, command)

    def do_put_path(self, call: Call, descriptor: flight.FlightDescriptor, reader, writer, mode: str) -> int:
        """Streams the batches into the named table in one transaction."""
        if mode not in _MODES:
            raise QueryError(f"{INGEST_MODE_HEADER} must be one of {', '.join(_MODES)}, not {mode!r}")
        parts = table_parts(descriptor)
        if_exists, if_missing = _MODES[mode]
        target = IngestTarget(table=parts[-1], schema=parts[-2] if len(parts) > 1 else None,
                              catalog=parts[0] if len(parts) == 3 else None,
                              if_exists=if_exists, if_missing=if_missing)
        count = call.session.ingest(incoming(call, reader), target)
        writer.write(update_result(count))
        return count

    def list_tables(self, call: Call, criteria=None):
        with call.session.busy() as conn:
            rows = catalog.tables(conn, None, None, None, ("BASE TABLE", "VIEW"))
            infos = []
            for (catalog_name, schema_name, table_name, _), schema in zip(rows, catalog.table_schemas(conn, rows)):
                parts = [catalog_name, schema_name, table_name]
                descriptor = flight.FlightDescriptor.for_path(*parts)
                infos.append(info_for(descriptor, schema, table_query(parts)))
        return infos
