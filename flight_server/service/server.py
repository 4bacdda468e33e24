"""The pyarrow.flight server: decodes each call once, resolves the caller's session, dispatches by message type."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import structlog

from ..config import Config
from ..engine import Database, SessionPool
from ..engine import errors
from ..engine.session import CURRENT_CALL
from ..observability.metrics import Metrics
from ..observability.stats import StatementStats
from ..resilience.admission import AdmissionController
from ..resilience.breaker import CircuitBreaker
from ..resilience.recovery import DatabaseRecovery
from ..resilience.watchdog import Watchdog
from ..protocol import commands
from ..protocol import flight_sql_pb2 as sql
from . import status
from .capabilities import sql_info_values
from .hangup import hang_up_clients
from .connections import LiveConnections, client_address, client_host
from .handlers.base import Call
from .handlers.ingest import IngestHandlers
from .handlers.lake_upkeep import LakeUpkeepHandlers
from .handlers.metadata import METADATA_COMMANDS, MetadataHandlers
from .handlers.prepared import PreparedHandlers
from .handlers.sessions import SessionHandlers
from .handlers.statements import StatementHandlers
from ..auth.authorizer import RoleAuthorizer
from ..auth.middleware import MIDDLEWARE_KEY as AUTH_KEY
from ..auth.middleware import AuthMiddlewareFactory, HandshakeAcceptor, principal_of
from ..auth import sql_scan
from ..auth.roles import ADMIN, Policy
from .handlers.operations import OperationsHandlers
from .handlers.plain_flight import PlainFlightHandlers
from .identity import MIDDLEWARE_KEY, CallMiddlewareFactory, SessionKeys, middleware

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
    "SetSessionOptions": ("action_set_session_options", "Set session options: 'catalog', 'schema', 'statement_timeout' (s)."),
    "GetSessionOptions": ("action_get_session_options", "Read session options."),
    "CloseSession": ("action_close_session", "Close this session: roll back and release its connection."),
}


# Handlers that run SQL: admitted, guarded by the breaker and watchdog, counted as statements.
STATEMENT_KINDS = {
    "get_flight_info_statement": "query",
    "get_flight_info_prepared": "prepared_query",
    "do_get_statement_direct": "query",
    "do_get_prepared": "prepared_query",
    "do_put_statement_update": "update",
    "do_put_prepared_update": "prepared_update",
    "do_put_ingest": "ingest",
    "do_put_path": "ingest",
    "action_create_prepared_statement": "prepare",
}
# DoGet of a parked result: DuckDB keeps working while the stream is pulled, so the admission slot and
# the watchdog stay on until the call completes.
STREAMING = {"do_get_statement"}
OPERATOR_ACTIONS = {
    "health": ("action_health", "Health report (JSON); needs no credentials."),
    "statistics": ("action_statistics", "Server statistics (JSON)."),
    "circuit-breaker-reset": ("action_circuit_breaker_reset", "Close the circuit breaker (JSON result)."),
    "backup": ("action_backup", "Write a signed Parquet snapshot of the database (JSON: path, size, restore command)."),
    "lake-upkeep": ("action_lake_upkeep", "DuckLake housekeeping: write out inlined rows, merge small files, expire "
                    "old snapshots, delete unneeded files (JSON body: older_than_seconds)."),
}


class FlightSqlServer(StatementHandlers, PreparedHandlers, MetadataHandlers, SessionHandlers, IngestHandlers,
                      OperationsHandlers, PlainFlightHandlers, LakeUpkeepHandlers, flight.FlightServerBase):
    """Arrow Flight SQL in front of one DuckDB database; one pooled connection per client session."""

    # pyarrow starts serving inside FlightServerBase.__init__, so calls can arrive before this object is
    # complete: until `constructed` is set (the last step of __init__) every RPC answers UNAVAILABLE "starting".
    constructed = False

    def __init__(self, config: Config, database: Database, pool: SessionPool,
                 auth: AuthMiddlewareFactory | None = None, tls: dict | None = None,
                 policy: Policy | None = None):
        # Keep Python tracebacks out of the error text pyarrow sends to clients.
        sys.tracebacklimit = 0
        # The server's own files never appear in a client's error message.
        errors.register_server_paths(_own_paths(config, database))
        # Everything the RPC guard touches exists before the port opens.
        self.metrics = Metrics()
        middlewares = {MIDDLEWARE_KEY: CallMiddlewareFactory()}
        if auth is not None:
            middlewares[AUTH_KEY] = auth
        handshake = HandshakeAcceptor() if auth is not None else None
        super().__init__(config.location, auth_handler=handshake, middleware=middlewares, **(tls or {}))
        self.auth = auth
        self.config = config
        self.database = database
        self.pool = pool
        self.keys = SessionKeys()
        self.policy = policy or Policy()
        self.started = time.time()
        self.sql_info_values = sql_info_values(config.read_only, database.version, database.keywords())
        self.stats = StatementStats()
        self.admission = AdmissionController(config.max_concurrent_statements, config.max_queued_statements,
                                             config.queue_timeout, per_user=config.user_statement_cap)
        self.pool.live_peers = LiveConnections(self.port)  # sessions of vanished clients are reclaimed
        self.breaker = CircuitBreaker(config.breaker_failure_threshold, config.breaker_window,
                                      config.breaker_reset_timeout)
        self.watchdog = Watchdog()
        self.watchdog.start()
        # A fatal engine error (DuckDB invalidated the database) is repaired by reopening the file.
        self.recovery = DatabaseRecovery(database, pool, on_recovered=self.breaker.reset)
        self.recovery.start()
        self.metrics.bind(lambda: len(self.pool.sessions()), self.admission.stats, self.breaker.stats)
        self._statement_ids = itertools.count(1)
        self.constructed = True

    # -- plumbing -----------------------------------------------------------

    def _call(self, context: flight.ServerCallContext) -> Call:
        """The caller's session: by token session, else by user and connection (or cookie) when auth is on."""
        peer = context.peer()
        if self.auth is None:
            key = self.keys.key_for(context)
            # No users: every session is admin, but the rules that hold for every role still apply. Per-user
            # caps count the client's IP address.
            owner = client_host(peer)
            session = self.pool.get(key, RoleAuthorizer(ADMIN, self.policy), owner, client_address(peer))
            return Call(key=key, peer=peer, session=session, context=context, owner=owner)
        principal = principal_of(context)
        if principal is None:
            raise flight.FlightUnauthenticatedError("authentication required")
        if principal.session is not None:
            key = "t:" + principal.session
        else:
            # Basic credentials on a call: one session per user and connection; hand back a token for it.
            key = f"b:{principal.user}|{self.keys.key_for(context)}"
            context.get_middleware(AUTH_KEY).outgoing_token = self.auth.signer.issue(
                principal.user, principal.role, key[2:])
        session = self.pool.get(key, RoleAuthorizer(principal.role, self.policy), principal.user,
                                client_address(peer))
        return Call(key=key, peer=peer, session=session, principal=principal, context=context,
                    owner=principal.user)

    def _require_admin(self, context, what: str) -> None:
        if self.auth is None:
            return
        principal = principal_of(context)
        if principal is None:
            raise flight.FlightUnauthenticatedError("authentication required")
        RoleAuthorizer(principal.role).require(ADMIN, what)

    def _dispatch(self, rpc: str, table: dict, context, message, *args):
        name = table.get(type(message))
        if name is None:
            raise NotImplementedError(f"{rpc} does not support {type(message).__name__}")
        return self._invoke(rpc, name, context, message, *args)

    def _invoke(self, rpc: str, name: str, context, message, *args):
        """Runs handler `name` for the caller's session, inside the statement wrapper when it runs SQL."""
        call = self._call(context)
        handler = getattr(self, name)
        if name in STREAMING and call.session.parked_complete(message.statement_handle):
            # A small result already read at GetFlightInfo: nothing left for DuckDB to do, so no admission
            # slot or watchdog; only the counters.
            result = handler(call, message, *args)
            self._count_streamed(call.result.rows_sent, call.result.bytes_sent)
            return result
        if name in STATEMENT_KINDS or name in STREAMING:
            return self._run_statement(rpc, name, context, call, message, lambda: handler(call, message, *args))
        return handler(call, message, *args)

    def _run_statement(self, rpc: str, name: str, context, call: Call, message, work):
        """Admission, breaker, watchdog, statistics, metrics and one log record around one statement."""
        kind = STATEMENT_KINDS.get(name, "stream")
        statement_id = next(self._statement_ids)
        self.recovery.check()
        self.breaker.before()
        try:
            call.lease = self.admission.lease(call.owner)
        except BaseException:
            self.breaker.abandon_probe()
            raise
        timeout = call.session.options.get("statement_timeout", self.config.statement_timeout) or None
        marker = call.marker = object()
        token = self.watchdog.watch(context.is_cancelled, lambda: call.session.interrupt_if_running(marker),
                                    timeout)
        started = time.perf_counter()
        deferred = False
        rows, error = -1, None
        try:
            current = CURRENT_CALL.set(marker)
            try:
                result = work()
            finally:
                CURRENT_CALL.reset(current)
            if isinstance(result, flight.FlightInfo):
                rows = result.total_records
            elif isinstance(result, int):
                rows = result
            if name in STREAMING:
                hooks = middleware(context)
                if hooks is not None:
                    deferred = True
                    hooks.on_complete.append(
                        lambda exc: self._finish(token, statement_id, kind, call, started, exc, rows, message))
                    self._release_when_stalled(token, call)
            return result
        except BaseException as exc:
            error = exc
            reason = self.watchdog.unwatch(token)
            token = None
            if reason == "timeout":
                raise flight.FlightTimedOutError(
                    f"statement exceeded the statement timeout of {timeout:g}s and was interrupted") from None
            raise
        finally:
            if not deferred:
                self._finish(token, statement_id, kind, call, started, error, rows, message)

    def _finish(self, token, statement_id, kind, call, started, error, rows, message) -> None:
        if token is not None:
            self.watchdog.unwatch(token)
        call.lease.release()
        seconds = time.perf_counter() - started
        mapped = status.to_flight_error(error) if error is not None else None
        outcome = "ok" if error is None else type(mapped).__name__
        if error is None:
            self.breaker.record_success()
        else:
            self.breaker.record_failure(error)
            self.recovery.report(error)
        if kind != "stream":
            self.stats.record(seconds, error is None, rows if kind in ("update", "prepared_update", "ingest") else 0)
            self.metrics.statements.labels(kind, "ok" if error is None else "error").inc()
            self.metrics.duration.labels(kind).observe(seconds)
            if error is None and rows > 0 and kind in ("update", "prepared_update", "ingest"):
                self.metrics.rows_written.inc(rows)
        nbytes = None
        if kind == "stream" and call.result is not None:
            rows, nbytes = call.result.rows_sent, call.result.bytes_sent
            self._count_streamed(rows, nbytes)
        fields = {"statement_id": statement_id, "session": call.session.session_id, "peer": call.peer,
                  "user": getattr(call.principal, "user", None), "type": kind,
                  "ms": round(seconds * 1000, 3), "rows": rows, "bytes": nbytes, "outcome": outcome}
        text = getattr(message, "query", None)
        handle = getattr(message, "prepared_statement_handle", None)
        if not text and handle:
            prepared = call.session.prepared.get(handle)
            text = prepared.sql if prepared is not None else None
        if text and self.config.log_sql:
            fields["sql"] = sql_scan.redact(text)
        if error is None:
            log.info("statement", **fields)
        else:
            # DuckDB's parser echoes the statement in its errors: for SQL that may carry a credential only the
            # error's kind is logged.
            detail = str(getattr(error, "message", error))
            if text and sql_scan.is_sensitive(text):
                detail = detail.split(":", 1)[0] + ": <details withheld: the statement may carry credentials>"
            log.info("statement", error=detail[:500], **fields)

    def _release_when_stalled(self, token: int, call: Call) -> None:
        """A stream whose client stops reading for --stall-timeout seconds gives up its execution slot (DuckDB
        does nothing for it meanwhile); it takes one again before DuckDB works for it again."""
        stream, lease, stall = call.result, call.lease, self.config.stall_timeout
        if stream is None or not stall:
            return
        stream.before_fetch = lease.hold

        def check() -> None:
            if lease.held and stream.stalled_for() > stall:
                lease.release()
                log.info("stalled stream gave up its slot", session=call.session.session_id, peer=call.peer,
                         user=call.owner, stalled_s=round(stream.stalled_for(), 1))
        self.watchdog.poll(token, check)

    def _count_streamed(self, rows: int, nbytes: int) -> None:
        self.stats.streamed(rows, nbytes)
        self.metrics.rows_streamed.inc(rows)
        self.metrics.bytes_streamed.inc(nbytes)

    def _guard(self, rpc: str, context, fn, *args):
        if not self.constructed:
            raise flight.FlightUnavailableError("starting")
        started = time.perf_counter()
        code = "ok"
        try:
            return fn(*args)
        except BaseException as exc:  # noqa: BLE001 - every error leaves through status mapping
            self.recovery.report(exc)
            mapped = status.to_flight_error(exc)
            code = type(mapped).__name__
            if isinstance(mapped, flight.FlightInternalError):
                # The full text (DuckDB's stack trace, paths) stays here; the client got the short form.
                log.error("rpc failed", rpc=rpc, error=status.log_detail(exc), exc_type=type(exc).__name__)
            raise mapped from None
        finally:
            self.metrics.rpcs.labels(rpc, code).inc()
            # One record per RPC is debug: a query is several RPCs, and each record costs more than the
            # routing itself. Statements keep their info record (with user, rows, time and outcome).
            log.debug("rpc", rpc=rpc, peer=context.peer(), outcome=code,
                      ms=round((time.perf_counter() - started) * 1000, 3))

    # -- Flight RPCs ----------------------------------------------------------

    def get_flight_info(self, context, descriptor):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                return self.get_flight_info_path(self._call(context), descriptor)
            command = _command(descriptor)
            return self._dispatch("GetFlightInfo", GET_FLIGHT_INFO, context, command, descriptor)
        return self._guard("GetFlightInfo", context, run)

    def get_schema(self, context, descriptor):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                return flight.SchemaResult(self.get_flight_info_path(self._call(context), descriptor).schema)
            command = _command(descriptor)
            schema = self._dispatch("GetSchema", GET_SCHEMA, context, command)
            return flight.SchemaResult(schema)
        return self._guard("GetSchema", context, run)

    def do_get(self, context, ticket):
        def run():
            return self._dispatch("DoGet", DO_GET, context, commands.unpack_command(ticket.ticket))
        return self._guard("DoGet", context, run)

    def do_put(self, context, descriptor, reader, writer):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                hooks = middleware(context)
                mode = hooks.ingest_mode if hooks is not None and hooks.ingest_mode else "create_append"
                call = self._call(context)
                return self._run_statement("DoPut", "do_put_path", context, call, descriptor,
                                           lambda: self.do_put_path(call, descriptor, reader, writer, mode))
            command = _command(descriptor)
            self._dispatch("DoPut", DO_PUT, context, command, reader, writer)
        return self._guard("DoPut", context, run)

    def do_action(self, context, action):
        def run():
            body = action.body.to_pybytes() if action.body is not None else b""
            operator = OPERATOR_ACTIONS.get(action.type)
            if operator is not None:
                if action.type != "health":
                    self._require_admin(context, f"run the {action.type} action")
                return [flight.Result(pa.py_buffer(item)) for item in getattr(self, operator[0])(context, body)]
            entry = ACTIONS.get(action.type)
            if entry is None:
                raise NotImplementedError(f"unknown action {action.type!r}")
            request = commands.unpack_action(action.type, body)
            results = self._invoke("DoAction", entry[0], context, request)
            return [flight.Result(pa.py_buffer(item)) for item in results]
        return self._guard("DoAction", context, run)

    def list_actions(self, context):
        # Without credentials only `health` is usable, but listing every action is harmless.
        if not self.constructed:
            raise flight.FlightUnavailableError("starting")
        entries = list(ACTIONS.items()) + list(OPERATOR_ACTIONS.items())
        return [flight.ActionType(name, description) for name, (_, description) in entries]

    def list_flights(self, context, criteria):
        def run():
            return self.list_tables(self._call(context))
        return iter(self._guard("ListFlights", context, run))

    def drain(self, grace_period: float) -> int:
        """Stops admitting statements, waits up to `grace_period` for running ones, interrupts the rest;
        returns how many were still running then."""
        self.admission.drain()
        deadline = time.monotonic() + grace_period
        while self.admission.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        running = int(self.admission.stats()["running"])
        self.watchdog.interrupt_all()
        return running

    def shutdown(self, timeout: float | None = None) -> dict:
        """Closes the Flight port, then every session. gRPC waits for each call in flight to end; a call
        whose client stalled mid-stream (an ingest that stopped sending, a reader that stopped reading) never
        does. With `timeout`, a quarter of it goes to calls ending by themselves (statements were interrupted
        by drain()), then the clients' connections are cut (which cancels their calls), and what is still held
        after `timeout` goes with the process. Says what was cut and what was left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        closer = threading.Thread(target=super().shutdown, name="grpc-shutdown", daemon=True)
        closer.start()
        closer.join(None if timeout is None else timeout / 4)
        cut = 0
        if closer.is_alive():
            cut = hang_up_clients(self.port)
            closer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.watchdog.stop()
        self.recovery.stop()
        left_open = self.pool.shutdown(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return {"connections_cut": cut, "calls_left": closer.is_alive(), "sessions_left": left_open}


def _own_paths(config: Config, database: Database) -> list[str]:
    """Absolute paths of the files the server itself owns (not the folders SQL may use)."""
    paths = [config.temp_directory, config.users_path, config.tls_cert, config.tls_key]
    if database.path != ":memory:":
        paths += [database.path, database.path + ".wal"]
    return [os.path.abspath(path) for path in paths if path]


def _command(descriptor: flight.FlightDescriptor):
    """The typed command; a command that is not a Flight SQL message but UTF-8 text is taken as SQL
    (plain Flight clients put a query in the descriptor)."""
    if descriptor.descriptor_type != flight.DescriptorType.CMD:
        raise commands.ProtocolError("expected a command descriptor")
    try:
        return commands.unpack_command(descriptor.command)
    except commands.ProtocolError:
        text = _as_sql_text(descriptor.command)
        if text is None:
            raise
        return sql.CommandStatementQuery(query=text)


def _as_sql_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = text.strip() and all(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if printable else None
