"""Baseline: a minimal Flight SQL server over DuckDB (benchmark only).

    python benchmarks/baselines/minimal_flightsql.py --port N --database FILE

Just enough Flight SQL for the ADBC driver and the benchmark's lean client:
statement queries and updates, prepared statements (parameters bound per
call), bulk ingest.  No auth, no sessions, no transactions, no metadata
commands, no limits, no logs: what the protocol itself costs over DuckDB.

Queries run in ``GetFlightInfo`` (so the schema is known) and the open
result waits under a handle for the ``DoGet`` that streams it.
"""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import parse_server_args, stream_query  # noqa: E402
from flightsql_wire import pack, sql_pb2, unpack  # noqa: E402

_IF_EXISTS = sql_pb2.CommandStatementIngest.TableDefinitionOptions


class MinimalFlightSqlServer(flight.FlightServerBase):
    def __init__(self, location: str, database: str):
        self._db = duckdb.connect(database)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._results: dict[bytes, flight.GeneratorStream] = {}  # handle -> open result
        self._prepared: dict[bytes, list] = {}      # handle -> [sql, params]
        super().__init__(location)  # starts serving: everything above must exist

    # ---- helpers ------------------------------------------------------

    def _handle(self) -> bytes:
        with self._lock:
            return str(next(self._ids)).encode()

    def _update(self, sql: str, rows: list | None = None) -> int:
        cur = self._db.cursor()
        try:
            count = 0
            for params in rows or [None]:
                cur.execute(sql, params) if params else cur.execute(sql)
                got = cur.fetchone()
                count += got[0] if got and isinstance(got[0], int) else 0
            return count
        finally:
            cur.close()

    @staticmethod
    def _param_rows(reader) -> list[list]:
        rows: list[list] = []
        for chunk in reader:
            rows.extend(list(r.values()) for r in chunk.data.to_pylist())
        return rows

    # ---- Flight methods -----------------------------------------------

    def get_flight_info(self, context, descriptor):
        cmd = unpack(descriptor.command)
        if isinstance(cmd, sql_pb2.CommandStatementQuery):
            schema, stream = stream_query(self._db, cmd.query)
        elif isinstance(cmd, sql_pb2.CommandPreparedStatementQuery):
            sql, params = self._prepared[cmd.prepared_statement_handle]
            schema, stream = stream_query(self._db, sql, params)
        else:
            raise flight.FlightServerError(f"unsupported command {type(cmd).__name__}")
        handle = self._handle()
        self._results[handle] = stream
        ticket = flight.Ticket(pack(sql_pb2.TicketStatementQuery(statement_handle=handle)))
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])],
                                 -1, -1)

    def do_get(self, context, ticket):
        return self._results.pop(unpack(ticket.ticket).statement_handle)

    def do_put(self, context, descriptor, reader, writer):
        cmd = unpack(descriptor.command)
        if isinstance(cmd, sql_pb2.CommandStatementUpdate):
            count = self._update(cmd.query)
        elif isinstance(cmd, sql_pb2.CommandPreparedStatementUpdate):
            sql = self._prepared[cmd.prepared_statement_handle][0]
            count = self._update(sql, self._param_rows(reader))
        elif isinstance(cmd, sql_pb2.CommandPreparedStatementQuery):
            rows = self._param_rows(reader)
            self._prepared[cmd.prepared_statement_handle][1] = rows[0] if rows else None
            writer.write(pa.py_buffer(sql_pb2.DoPutPreparedStatementResult(
                prepared_statement_handle=cmd.prepared_statement_handle).SerializeToString()))
            return
        elif isinstance(cmd, sql_pb2.CommandStatementIngest):
            count = self._ingest(cmd, reader)
        else:
            raise flight.FlightServerError(f"unsupported command {type(cmd).__name__}")
        writer.write(pa.py_buffer(
            sql_pb2.DoPutUpdateResult(record_count=count).SerializeToString()))

    def _ingest(self, cmd, reader) -> int:
        table = '"' + cmd.table.replace('"', '""') + '"'
        mode = cmd.table_definition_options.if_exists
        cur = self._db.cursor()
        try:
            cur.register("incoming", reader.to_reader())
            if mode == _IF_EXISTS.TABLE_EXISTS_OPTION_APPEND:
                cur.execute(f"INSERT INTO {table} SELECT * FROM incoming")
            elif mode == _IF_EXISTS.TABLE_EXISTS_OPTION_REPLACE:
                cur.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM incoming")
            else:
                cur.execute(f"CREATE TABLE {table} AS SELECT * FROM incoming")
            return cur.fetchone()[0]
        finally:
            cur.close()

    def do_action(self, context, action):
        cmd = unpack(action.body.to_pybytes())
        if isinstance(cmd, sql_pb2.ActionCreatePreparedStatementRequest):
            handle = self._handle()
            self._prepared[handle] = [cmd.query, None]
            result = sql_pb2.ActionCreatePreparedStatementResult(prepared_statement_handle=handle)
            return [flight.Result(pack(result))]
        if isinstance(cmd, sql_pb2.ActionClosePreparedStatementRequest):
            self._prepared.pop(cmd.prepared_statement_handle, None)
            return []
        raise flight.FlightServerError(f"unsupported action {action.type}")


def main() -> None:
    a = parse_server_args(__doc__)
    MinimalFlightSqlServer(f"grpc://127.0.0.1:{a.port}", a.database).serve()


if __name__ == "__main__":
    main()
