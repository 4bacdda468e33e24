"""The pyarrow.flight server: decodes each call once, resolves the caller's session, dispatches by message type."""

from __future__ import annotations

import sys
import time

import pyarrow as pa
import pyarrow.flight as flight
import structlog

from .. import __version__
from ..engine import Database, SessionPool
from ..protocol import commands
from ..protocol import flight_sql_pb2 as sql
from ..protocol import sql_info
from . import status
from .handlers.base import Call
from .handlers.ingest import IngestHandlers
from .handlers.metadata import METADATA_COMMANDS, MetadataHandlers
from .handlers.prepared import PreparedHandlers
from .handlers.sessions import SessionHandlers
from .handlers.statements import StatementHandlers
from .identity import SessionCookieFactory, SessionKeys

log = structlog.get_logger("flight_server")

# Handler method names by message type, one table per RPC (the Rust/Go FlightSqlService shape).
GET_FLIGHT_INFO = {
    sql.CommandStatementQuery: "get_flight_info_statement",
    sql.CommandPreparedStatementQuery: "get_flight_info_prepared",
    **{cls: "get_flight_info_metadata" for cls in METADATA_COMMANDS},
}
GET_SCHEMA = {
    sql.CommandStatementQuery: "get_schema_statement",
    sql.CommandPreparedStatementQuery: "get_schema_prepared",
    **{cls: "get_schema_metadata" for cls in METADATA_COMMANDS},
}
DO_GET = {
    sql.TicketStatementQuery: "do_get_statement",
    sql.CommandStatementQuery: "do_get_statement_direct",
    sql.CommandPreparedStatementQuery: "do_get_prepared",
    **{cls: "do_get_metadata" for cls in METADATA_COMMANDS},
}
DO_PUT = {
    sql.CommandStatementUpdate: "do_put_statement_update",
    sql.CommandPreparedStatementQuery: "do_put_prepared_query",
    sql.CommandPreparedStatementUpdate: "do_put_prepared_update",
    sql.CommandStatementIngest: "do_put_ingest",
}
# Action name -> (handler, description shown by ListActions).
ACTIONS = {
    "CreatePreparedStatement": ("action_create_prepared_statement",
                                "Prepare a SQL statement; returns its handle, result and parameter schemas."),
    "ClosePreparedStatement": ("action_close_prepared_statement", "Release a prepared statement handle."),
    "BeginTransaction": ("action_begin_transaction", "Open a transaction on this session."),
    "EndTransaction": ("action_end_transaction", "Commit or roll back a transaction."),
    "CancelFlightInfo": ("action_cancel_flight_info", "Cancel a query by the FlightInfo that started it."),
    "CancelQuery": ("action_cancel_query", "Deprecated form of CancelFlightInfo."),
    "SetSessionOptions": ("action_set_session_options", "Set session options: 'catalog' and 'schema'."),
    "GetSessionOptions": ("action_get_session_options", "Read session options: 'catalog' and 'schema'."),
    "CloseSession": ("action_close_session", "Close this session: roll back and release its connection."),
}


class FlightSqlServer(StatementHandlers, PreparedHandlers, MetadataHandlers, SessionHandlers, IngestHandlers,
                      flight.FlightServerBase):
    """Arrow Flight SQL in front of one DuckDB database; one pooled connection per client session."""

    def __init__(self, location: str, database: Database, pool: SessionPool, *, read_only: bool = False):
        # Keep Python tracebacks out of the error text pyarrow sends to clients.
        sys.tracebacklimit = 0
        super().__init__(location, middleware={"session": SessionCookieFactory()})
        self.database = database
        self.pool = pool
        self.keys = SessionKeys()
        self.started = time.time()
        self.sql_info_values = _sql_info_values(read_only)

    # -- plumbing -----------------------------------------------------------

    def _call(self, context: flight.ServerCallContext) -> Call:
        key = self.keys.key_for(context)
        return Call(key=key, peer=context.peer(), session=self.pool.get(key))

    def _dispatch(self, rpc: str, table: dict, context, message, *args):
        name = table.get(type(message))
        if name is None:
            raise NotImplementedError(f"{rpc} does not support {type(message).__name__}")
        call = self._call(context)
        return getattr(self, name)(call, message, *args)

    def _guard(self, rpc: str, fn, *args):
        started = time.perf_counter()
        try:
            return fn(*args)
        except BaseException as exc:  # noqa: BLE001 - every error leaves through status mapping
            mapped = status.to_flight_error(exc)
            if isinstance(mapped, flight.FlightInternalError):
                log.error("rpc failed", rpc=rpc, error=str(exc), exc_type=type(exc).__name__)
            else:
                log.debug("rpc error", rpc=rpc, error=str(exc))
            raise mapped from None
        finally:
            log.debug("rpc", rpc=rpc, ms=round((time.perf_counter() - started) * 1000, 3))

    # -- Flight RPCs ----------------------------------------------------------

    def get_flight_info(self, context, descriptor):
        def run():
            command = _command(descriptor)
            return self._dispatch("GetFlightInfo", GET_FLIGHT_INFO, context, command, descriptor)
        return self._guard("GetFlightInfo", run)

    def get_schema(self, context, descriptor):
        def run():
            command = _command(descriptor)
            schema = self._dispatch("GetSchema", GET_SCHEMA, context, command)
            return flight.SchemaResult(schema)
        return self._guard("GetSchema", run)

    def do_get(self, context, ticket):
        def run():
            return self._dispatch("DoGet", DO_GET, context, commands.unpack_command(ticket.ticket))
        return self._guard("DoGet", run)

    def do_put(self, context, descriptor, reader, writer):
        def run():
            command = _command(descriptor)
            return self._dispatch("DoPut", DO_PUT, context, command, reader, writer)
        return self._guard("DoPut", run)

    def do_action(self, context, action):
        def run():
            entry = ACTIONS.get(action.type)
            if entry is None:
                raise NotImplementedError(f"unknown action {action.type!r}")
            body = action.body.to_pybytes() if action.body is not None else b""
            request = commands.unpack_action(action.type, body)
            results = getattr(self, entry[0])(self._call(context), request)
            return [flight.Result(pa.py_buffer(item)) for item in results]
        return self._guard("DoAction", run)

    def list_actions(self, context):
        return [flight.ActionType(name, description) for name, (_, description) in ACTIONS.items()]

    def list_flights(self, context, criteria):
        return iter(())

    def shutdown(self):
        super().shutdown()
        self.pool.shutdown()


def _command(descriptor: flight.FlightDescriptor):
    if descriptor.descriptor_type != flight.DescriptorType.CMD:
        raise commands.ProtocolError("Flight SQL expects a command descriptor")
    return commands.unpack_command(descriptor.command)


def _sql_info_values(read_only: bool) -> dict[int, object]:
    import duckdb

    s = sql_info
    return {
        s.FLIGHT_SQL_SERVER_NAME: "DuckDB Flight SQL Server",
        s.FLIGHT_SQL_SERVER_VERSION: f"{__version__} (DuckDB {duckdb.__version__})",
        s.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
        s.FLIGHT_SQL_SERVER_READ_ONLY: read_only,
        s.FLIGHT_SQL_SERVER_SQL: True,
        s.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
        s.FLIGHT_SQL_SERVER_TRANSACTION: s.Int32(s.SQL_SUPPORTED_TRANSACTION_TRANSACTION),
        s.FLIGHT_SQL_SERVER_CANCEL: True,
        s.FLIGHT_SQL_SERVER_BULK_INGESTION: not read_only,
        s.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: True,
        s.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: s.Int32(0),
        s.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: s.Int32(0),
        s.SQL_DDL_CATALOG: True,
        s.SQL_DDL_SCHEMA: True,
        s.SQL_DDL_TABLE: True,
        s.SQL_IDENTIFIER_CASE: s.Int32(s.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        s.SQL_IDENTIFIER_QUOTE_CHAR: '"',
        s.SQL_QUOTED_IDENTIFIER_CASE: s.Int32(s.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        s.SQL_ALL_TABLES_ARE_SELECTABLE: True,
        s.SQL_NULL_ORDERING: s.Int32(s.SQL_NULLS_SORTED_AT_END),
        s.SQL_SEARCH_STRING_ESCAPE: "\\",
        s.SQL_SUPPORTS_COLUMN_ALIASING: True,
        s.SQL_NULL_PLUS_NULL_IS_NULL: True,
        s.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: True,
        s.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: True,
        s.SQL_SUPPORTS_NON_NULLABLE_COLUMNS: True,
        # Bitmasks: grammar (minimum|core|extended), ANSI92 (entry|intermediate|full).
        s.SQL_SUPPORTED_GRAMMAR: s.Int32(0b111),
        s.SQL_ANSI92_SUPPORTED_LEVEL: s.Int32(0b111),
        s.SQL_OUTER_JOINS_SUPPORT_LEVEL: s.Int32(s.SQL_FULL_OUTER_JOINS),
        s.SQL_SCHEMA_TERM: "schema",
        s.SQL_PROCEDURE_TERM: "",
        s.SQL_CATALOG_TERM: "database",
        s.SQL_CATALOG_AT_START: True,
        s.SQL_SELECT_FOR_UPDATE_SUPPORTED: False,
        s.SQL_STORED_PROCEDURES_SUPPORTED: False,
        s.SQL_SUPPORTED_SUBQUERIES: s.Int32(0b1111),
        s.SQL_CORRELATED_SUBQUERIES_SUPPORTED: True,
        s.SQL_SUPPORTED_UNIONS: s.Int32(0b11),
        s.SQL_DEFAULT_TRANSACTION_ISOLATION: s.Int32(s.SQL_TRANSACTION_SERIALIZABLE),
        s.SQL_TRANSACTIONS_SUPPORTED: True,
        # Bitmask with bit n for SqlTransactionIsolationLevel n: DuckDB runs snapshot isolation,
        # reported as SERIALIZABLE.
        s.SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS: s.Int32(1 << s.SQL_TRANSACTION_SERIALIZABLE),
        s.SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT: False,
        s.SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED: False,
        s.SQL_BATCH_UPDATES_SUPPORTED: True,
        s.SQL_SAVEPOINTS_SUPPORTED: False,
    }
