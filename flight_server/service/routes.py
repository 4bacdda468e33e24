"""Which handler serves each Flight SQL message, one table per RPC (the Rust/Go FlightSqlService shape): typed rows
that say whether the handler runs SQL, so the statement guard is applied by the table, not by a list of names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..protocol import flight_sql_pb2 as sql
from .handlers.ingest import IngestHandlers
from .handlers.lake_upkeep import LakeUpkeepHandlers
from .handlers.metadata import METADATA_COMMANDS, MetadataHandlers
from .handlers.operations import OperationsHandlers
from .handlers.plain_flight import PlainFlightHandlers
from .handlers.prepared import PreparedHandlers
from .handlers.sessions import SessionHandlers
from .handlers.statements import StatementHandlers


@dataclass(frozen=True)
class Route:
    """One handler. `handler(server, call, message, *rpc_args)` for session calls."""

    handler: Callable[..., object]
    # The statement kind when the handler runs SQL: admitted, guarded by the breaker and the watchdog, counted
    # and logged as one statement (service/guard.py). None: no SQL runs (metadata, session actions).
    kind: str | None = None
    # DuckDB keeps working while the result is pulled (DoGet of a parked result): the guard holds the admission
    # slot and the watchdog until the stream ends, not until the handler returns.
    streaming: bool = False


@dataclass(frozen=True)
class ActionRoute:
    route: Route
    description: str  # shown by ListActions


@dataclass(frozen=True)
class OperatorAction:
    """Server operations: handler(server, context, body) -> list of bytes. No session; admin only except health."""

    handler: Callable[..., list]
    description: str
    open: bool = False  # served without credentials


_METADATA_INFO = Route(MetadataHandlers.get_flight_info_metadata)

GET_FLIGHT_INFO: dict[type, Route] = {
    sql.CommandStatementQuery: Route(StatementHandlers.get_flight_info_statement, "query"),
    sql.CommandPreparedStatementQuery: Route(PreparedHandlers.get_flight_info_prepared, "prepared_query"),
    **{command: _METADATA_INFO for command in METADATA_COMMANDS},
}
GET_SCHEMA: dict[type, Route] = {
    sql.CommandStatementQuery: Route(StatementHandlers.get_schema_statement),
    sql.CommandPreparedStatementQuery: Route(PreparedHandlers.get_schema_prepared),
    **{command: Route(MetadataHandlers.get_schema_metadata) for command in METADATA_COMMANDS},
}
DO_GET: dict[type, Route] = {
    sql.TicketStatementQuery: Route(StatementHandlers.do_get_statement, "stream", streaming=True),
    sql.CommandStatementQuery: Route(StatementHandlers.do_get_statement_direct, "query"),
    sql.CommandPreparedStatementQuery: Route(PreparedHandlers.do_get_prepared, "prepared_query"),
    **{command: Route(MetadataHandlers.do_get_metadata) for command in METADATA_COMMANDS},
}
DO_PUT: dict[type, Route] = {
    sql.CommandStatementUpdate: Route(StatementHandlers.do_put_statement_update, "update"),
    sql.CommandPreparedStatementQuery: Route(PreparedHandlers.do_put_prepared_query),
    sql.CommandPreparedStatementUpdate: Route(PreparedHandlers.do_put_prepared_update, "prepared_update"),
    sql.CommandStatementIngest: Route(IngestHandlers.do_put_ingest, "ingest"),
}
# Plain Flight: a path descriptor names a table (plain_flight.py).
GET_FLIGHT_INFO_PATH = Route(PlainFlightHandlers.get_flight_info_path)
DO_PUT_PATH = Route(PlainFlightHandlers.do_put_path, "ingest")
LIST_FLIGHTS = Route(PlainFlightHandlers.list_tables)

ACTIONS: dict[str, ActionRoute] = {
    "CreatePreparedStatement": ActionRoute(
        Route(PreparedHandlers.action_create_prepared_statement, "prepare"),
        "Prepare a SQL statement; returns its handle, result and parameter schemas."),
    "ClosePreparedStatement": ActionRoute(Route(PreparedHandlers.action_close_prepared_statement),
                                          "Release a prepared statement handle."),
    "BeginTransaction": ActionRoute(Route(SessionHandlers.action_begin_transaction),
                                    "Open a transaction on this session."),
    "EndTransaction": ActionRoute(Route(SessionHandlers.action_end_transaction), "Commit or roll back a transaction."),
    "CancelFlightInfo": ActionRoute(Route(SessionHandlers.action_cancel_flight_info),
                                    "Cancel a query by the FlightInfo that started it."),
    "CancelQuery": ActionRoute(Route(SessionHandlers.action_cancel_query), "Deprecated form of CancelFlightInfo."),
    "SetSessionOptions": ActionRoute(Route(SessionHandlers.action_set_session_options),
                                     "Set session options: 'catalog', 'schema', 'statement_timeout' (s)."),
    "GetSessionOptions": ActionRoute(Route(SessionHandlers.action_get_session_options), "Read session options."),
    "CloseSession": ActionRoute(Route(SessionHandlers.action_close_session),
                                "Close this session: roll back and release its connection."),
}
OPERATOR_ACTIONS: dict[str, OperatorAction] = {
    "health": OperatorAction(OperationsHandlers.action_health, "Health report (JSON); needs no credentials.",
                             open=True),
    "statistics": OperatorAction(OperationsHandlers.action_statistics, "Server statistics (JSON)."),
    "circuit-breaker-reset": OperatorAction(OperationsHandlers.action_circuit_breaker_reset,
                                            "Close the circuit breaker (JSON result)."),
    "backup": OperatorAction(OperationsHandlers.action_backup,
                             "Write a signed Parquet snapshot of the database (JSON: path, size, restore command)."),
    "lake-upkeep": OperatorAction(LakeUpkeepHandlers.action_lake_upkeep,
                                  "DuckLake housekeeping: write out inlined rows, merge small files, expire old "
                                  "snapshots, delete unneeded files (JSON body: older_than_seconds)."),
}
