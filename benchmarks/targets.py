"""The systems the benchmark compares, each behind one small connection API.

A *column* of the results table is a way to reach DuckDB: in-process, or a
server through a client.  Its ``connect()`` returns an object with

* ``rows(sql)``: run ``sql``, fetch the (small) result as Python rows,
* ``arrow(sql)``: run ``sql``, fetch the result as a ``pyarrow.Table``,
* ``update(sql)``: run a statement without a result set (INSERT),
* ``prepare(sql)``: a function that runs the prepared ``sql`` with a tuple of
  parameters, the statement prepared once and reused,
* ``ingest(table, arrow_table)``: create or replace ``table`` from Arrow data,
* ``close()``.

A client that cannot do one of these raises :class:`Unsupported`, shown as
``n/a`` in the table.  Two clients talk Flight SQL: the ADBC driver (what a
BI tool uses) and :class:`LeanFlightSql`, a few pyarrow.flight calls per
statement with nothing else in the way (the server's own cost).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from flightsql_wire import pack, sql_pb2, unpack

_TableOpts = sql_pb2.CommandStatementIngest.TableDefinitionOptions


class Unsupported(Exception):
    """This client cannot run this workload (the cell shows ``n/a: reason``)."""


# ---- in-process DuckDB ------------------------------------------------


class InProcess:
    """One DuckDB connection of the benchmark process (``con.cursor()``)."""

    def __init__(self, con):
        self._cur = con.cursor()

    def rows(self, sql: str) -> list:
        return self._cur.execute(sql).fetchall()

    def arrow(self, sql: str) -> pa.Table:
        return self._cur.execute(sql).to_arrow_table()

    def update(self, sql: str) -> None:
        self._cur.execute(sql)

    def prepare(self, sql: str):
        cur = self._cur
        return lambda params: cur.execute(sql, params)

    def ingest(self, table: str, data: pa.Table) -> None:
        # As a stream, like the servers receive it (DuckDB scans a registered
        # pa.Table through pyarrow.dataset, no faster here).
        self._cur.register("ingest_source", data.to_reader())
        try:
            self._cur.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM ingest_source")
        finally:
            self._cur.unregister("ingest_source")

    def close(self) -> None:
        self._cur.close()


# ---- ADBC (Flight SQL or Quack driver) --------------------------------


class Adbc:
    """An autocommit ADBC DB-API connection and one reused cursor."""

    def __init__(self, conn):
        self._conn = conn
        self._cur = conn.cursor()

    def rows(self, sql: str) -> list:
        self._cur.execute(sql)
        return self._cur.fetchall()

    def arrow(self, sql: str) -> pa.Table:
        self._cur.execute(sql)
        return self._cur.fetch_arrow_table()

    def update(self, sql: str) -> None:
        self._cur.execute(sql)
        self._cur.fetchall()

    def prepare(self, sql: str):
        # The DB-API cursor prepares once and reuses the statement for as long
        # as the same SQL text is executed again.
        cur = self._conn.cursor()
        self._extra = cur

        def run(params: tuple) -> None:
            cur.execute(sql, params)
            cur.fetchall()

        return run

    def ingest(self, table: str, data: pa.Table) -> None:
        self._cur.adbc_ingest(table, data, mode="replace")

    def close(self) -> None:
        for obj in (getattr(self, "_extra", None), self._cur, self._conn):
            if obj is not None:
                obj.close()


def adbc_flightsql(uri: str, user: str | None = None, password: str | None = None):
    """Connection factory: ADBC Flight SQL driver, optional basic auth."""
    from adbc_driver_flightsql import dbapi

    db_kwargs = {"username": user, "password": password} if user else None

    def connect() -> Adbc:
        return Adbc(dbapi.connect(uri, db_kwargs=db_kwargs, autocommit=True))

    return connect


class AdbcQuack(Adbc):
    """The Quack driver: says so when it cannot ingest a column type."""

    def ingest(self, table: str, data: pa.Table) -> None:
        try:
            super().ingest(table, data)
        except Exception as exc:
            if "unsupported array" not in str(exc):
                raise
            raise Unsupported("adbc-driver-quack cannot ingest "
                              + str(exc).split("[Quack] ", 1)[-1]) from exc


def adbc_quack(uri: str, token: str):
    """Connection factory: ADBC Quack driver with the server's token."""
    from adbc_driver_quack import dbapi

    def connect() -> Adbc:
        return AdbcQuack(dbapi.connect(uri, db_kwargs={"adbc.quack.token": token},
                                       autocommit=True))

    return connect


# ---- pyarrow.flight clients -------------------------------------------


def table_rows(tbl: pa.Table) -> list[tuple]:
    """A (small) Arrow table as a list of row tuples, like DB-API ``fetchall``."""
    return list(zip(*(c.to_pylist() for c in tbl.columns)))


class LeanFlightSql:
    """Flight SQL straight from pyarrow.flight: the fewest calls per statement.

    Query: GetFlightInfo(CommandStatementQuery) + DoGet of its ticket.
    Update: DoPut(CommandStatementUpdate).  Prepared update: one
    CreatePreparedStatement action, then DoPut(CommandPreparedStatementUpdate)
    with a one-row parameter batch per call.  Ingest: DoPut(CommandStatementIngest).
    With credentials, the basic-auth handshake runs once at connect and the
    bearer token goes with every call.
    """

    def __init__(self, uri: str, user: str | None = None, password: str | None = None):
        self._client = flight.FlightClient(uri)
        headers = []
        if user:
            headers.append(self._client.authenticate_basic_token(user, password))
        self._opts = flight.FlightCallOptions(headers=headers)

    def _query(self, sql: str) -> pa.Table:
        desc = flight.FlightDescriptor.for_command(pack(sql_pb2.CommandStatementQuery(query=sql)))
        info = self._client.get_flight_info(desc, self._opts)
        parts = [self._client.do_get(ep.ticket, self._opts).read_all() for ep in info.endpoints]
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def rows(self, sql: str) -> list:
        return table_rows(self._query(sql))

    arrow = _query

    def _put(self, command, data: pa.Table | None = None) -> bytes:
        desc = flight.FlightDescriptor.for_command(pack(command))
        schema = data.schema if data is not None else pa.schema([])
        writer, results = self._client.do_put(desc, schema, self._opts)
        if data is not None:
            writer.write_table(data)
        writer.done_writing()
        buf = results.read()
        writer.close()
        return buf.to_pybytes() if buf is not None else b""

    def update(self, sql: str) -> None:
        self._put(sql_pb2.CommandStatementUpdate(query=sql))

    def prepare(self, sql: str):
        body = pack(sql_pb2.ActionCreatePreparedStatementRequest(query=sql))
        action = flight.Action("CreatePreparedStatement", body)
        result = unpack(next(iter(self._client.do_action(action, self._opts))).body.to_pybytes())
        command = sql_pb2.CommandPreparedStatementUpdate(
            prepared_statement_handle=result.prepared_statement_handle)

        def run(params: tuple) -> None:
            batch = pa.table({f"p{i}": [v] for i, v in enumerate(params)})
            self._put(command, batch)

        return run

    def ingest(self, table: str, data: pa.Table) -> None:
        opts = _TableOpts(if_not_exist=_TableOpts.TABLE_NOT_EXIST_OPTION_CREATE,
                          if_exists=_TableOpts.TABLE_EXISTS_OPTION_REPLACE)
        self._put(sql_pb2.CommandStatementIngest(table=table, table_definition_options=opts), data)

    def close(self) -> None:
        self._client.close()


class BareFlight:
    """Client of ``baselines/bare_flight.py``: DoGet(SQL ticket), DoPut(table path)."""

    def __init__(self, uri: str):
        self._client = flight.FlightClient(uri)

    def arrow(self, sql: str) -> pa.Table:
        return self._client.do_get(flight.Ticket(sql.encode())).read_all()

    def rows(self, sql: str) -> list:
        return table_rows(self.arrow(sql))

    def update(self, sql: str) -> None:
        self.arrow(sql)

    def prepare(self, sql: str):
        raise Unsupported("no prepared statements in a bare DoGet server")

    def ingest(self, table: str, data: pa.Table) -> None:
        writer, _ = self._client.do_put(flight.FlightDescriptor.for_path(table), data.schema)
        writer.write_table(data)
        writer.close()

    def close(self) -> None:
        self._client.close()
