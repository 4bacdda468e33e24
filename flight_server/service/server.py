"""The pyarrow.flight server: decodes each call once, resolves the caller's session, dispatches by message type."""

from __future__ import annotations

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
from ..observability.metrics import Metrics
from ..observability.stats import StatementStats
from ..resilience.admission import AdmissionController
from ..resilience.breaker import CircuitBreaker
from ..resilience.recovery import DatabaseRecovery
from ..resilience.watchdog import Watchdog
from ..protocol import commands
from ..protocol import flight_sql_pb2 as sql
from ..protocol import sql_info
from . import routes, status
from .capabilities import sql_info_values
from .guard import StatementGuard
from .hangup import hang_up_clients
from .connections import LiveConnections, client_address, client_host
from .handlers.base import Call
from .handlers.ingest import IngestHandlers
from .handlers.lake_upkeep import LakeUpkeepHandlers
from .handlers.metadata import MetadataHandlers
from .handlers.prepared import PreparedHandlers
from .handlers.sessions import SessionHandlers
from .handlers.statements import StatementHandlers
from ..auth.authorizer import RoleAuthorizer
from ..auth.credentials import Authenticator, HandshakeAcceptor
from ..auth.roles import ADMIN, Policy
from .handlers.operations import OperationsHandlers
from .handlers.plain_flight import PlainFlightHandlers
from .identity import MIDDLEWARE_KEY, CallMiddlewareFactory, SessionKeys, middleware, principal_of
from .routes import Route

log = structlog.get_logger("flight_server")


class FlightSqlServer(StatementHandlers, PreparedHandlers, MetadataHandlers, SessionHandlers, IngestHandlers,
                      OperationsHandlers, PlainFlightHandlers, LakeUpkeepHandlers, flight.FlightServerBase):
    """Arrow Flight SQL in front of one DuckDB database; one pooled connection per client session."""

    # pyarrow starts serving inside FlightServerBase.__init__, so calls can arrive before this object is
    # complete: until `constructed` is set (the last step of __init__) every RPC answers UNAVAILABLE "starting".
    constructed = False

    def __init__(self, config: Config, database: Database, pool: SessionPool,
                 auth: Authenticator | None = None, tls: dict | None = None,
                 policy: Policy | None = None):
        # Keep Python tracebacks out of the error text pyarrow sends to clients.
        sys.tracebacklimit = 0
        # The server's own files never appear in a client's error message.
        errors.register_server_paths(_own_paths(config, database))
        # pyarrow imports pandas (when installed) on the first pa.array() from Python values: 0.7-1.4 s that the
        # first client's first call (GetSqlInfo) would wait for. Paid here, before the port opens.
        pa.array([0])
        # Everything the RPC guard touches exists before the port opens.
        self.metrics = Metrics()
        self._debug = config.log_level == "debug"
        handshake = HandshakeAcceptor() if auth is not None else None
        super().__init__(config.location, auth_handler=handshake,
                         middleware={MIDDLEWARE_KEY: CallMiddlewareFactory(auth)}, **(tls or {}))
        self.auth = auth
        self.config = config
        self.database = database
        self.pool = pool
        self.keys = SessionKeys()
        self.policy = policy or Policy()
        self._authorizers: dict[str, RoleAuthorizer] = {}
        self.started = time.time()
        self.sql_info = sql_info.Answers(sql_info_values(config.read_only, database.version, database.keywords()))
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
        self.guard = StatementGuard(config, self.admission, self.breaker, self.watchdog, self.recovery, self.stats,
                                    self.metrics)
        self.constructed = True

    # -- plumbing -----------------------------------------------------------

    def _authorizer(self, role: str) -> RoleAuthorizer:
        found = self._authorizers.get(role)
        if found is None:
            found = self._authorizers[role] = RoleAuthorizer(role, self.policy)
        return found

    def _call(self, context: flight.ServerCallContext) -> Call:
        """The caller's session: by token session, else by user and connection (or cookie) when auth is on."""
        peer = context.peer()
        if self.auth is None:
            key = self.keys.key_for(context)
            # No users: every session is admin, but the rules that hold for every role still apply. Per-user
            # caps count the client's IP address.
            owner = client_host(peer)
            session = self.pool.get(key, self._authorizer(ADMIN), owner, client_address(peer))
            return Call(key=key, peer=peer, session=session, context=context, owner=owner)
        principal = principal_of(context)
        if principal is None:
            raise flight.FlightUnauthenticatedError("authentication required")
        if principal.session is not None:
            key = "t:" + principal.session
        else:
            # Basic credentials on a call: one session per user and connection; hand back a token for it.
            key = f"b:{principal.user}|{self.keys.key_for(context)}"
            middleware(context).outgoing_token = self.auth.signer.issue(principal.user, principal.role, key[2:])
        session = self.pool.get(key, self._authorizer(principal.role), principal.user, client_address(peer))
        return Call(key=key, peer=peer, session=session, principal=principal, context=context,
                    owner=principal.user)

    def _require_admin(self, context, what: str) -> None:
        if self.auth is None:
            return
        principal = principal_of(context)
        if principal is None:
            raise flight.FlightUnauthenticatedError("authentication required")
        self._authorizer(principal.role).require(ADMIN, what)

    def _dispatch(self, rpc: str, table: dict[type, Route], context, message, *args):
        route = table.get(type(message))
        if route is None:
            raise NotImplementedError(f"{rpc} does not support {type(message).__name__}")
        return self._serve(route, context, message, *args)

    def _serve(self, route: Route, context, message, *args):
        """Runs the route's handler for the caller's session, under the statement guard when it runs SQL."""
        call = self._call(context)
        if route.kind is None:
            return route.handler(self, call, message, *args)
        if route.streaming and call.session.parked_complete(message.statement_handle):
            # A small result already read at GetFlightInfo: nothing left for DuckDB to do, so no admission
            # slot or watchdog; only the counters.
            result = route.handler(self, call, message, *args)
            self.guard.count_streamed(call.result.rows_sent, call.result.bytes_sent)
            return result
        with self.guard.statement(route, call, context, message) as statement:
            result = route.handler(self, call, message, *args)
            statement.produced(result)
            return result

    def _guard(self, rpc: str, context, fn, *args):
        if not self.constructed:
            raise flight.FlightUnavailableError("starting")
        started = time.perf_counter() if self._debug else 0.0
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
            self.metrics.labels(self.metrics.rpcs, rpc, code).inc()
            if self._debug:
                # One record per RPC is debug: a query is several RPCs, and each record costs more than the
                # routing itself. Statements keep their info record (with user, rows, time and outcome).
                log.debug("rpc", rpc=rpc, peer=context.peer(), outcome=code,
                          ms=round((time.perf_counter() - started) * 1000, 3))

    # -- Flight RPCs ----------------------------------------------------------

    def get_flight_info(self, context, descriptor):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                return self._serve(routes.GET_FLIGHT_INFO_PATH, context, descriptor)
            command = _command(descriptor)
            return self._dispatch("GetFlightInfo", routes.GET_FLIGHT_INFO, context, command, descriptor)
        return self._guard("GetFlightInfo", context, run)

    def get_schema(self, context, descriptor):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                return flight.SchemaResult(self._serve(routes.GET_FLIGHT_INFO_PATH, context, descriptor).schema)
            command = _command(descriptor)
            return flight.SchemaResult(self._dispatch("GetSchema", routes.GET_SCHEMA, context, command))
        return self._guard("GetSchema", context, run)

    def do_get(self, context, ticket):
        def run():
            return self._dispatch("DoGet", routes.DO_GET, context, commands.unpack_command(ticket.ticket))
        return self._guard("DoGet", context, run)

    def do_put(self, context, descriptor, reader, writer):
        def run():
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                hooks = middleware(context)
                mode = hooks.ingest_mode if hooks is not None and hooks.ingest_mode else "create_append"
                return self._serve(routes.DO_PUT_PATH, context, descriptor, reader, writer, mode)
            command = _command(descriptor)
            self._dispatch("DoPut", routes.DO_PUT, context, command, reader, writer)
        return self._guard("DoPut", context, run)

    def do_action(self, context, action):
        def run():
            body = action.body.to_pybytes() if action.body is not None else b""
            operator = routes.OPERATOR_ACTIONS.get(action.type)
            if operator is not None:
                if not operator.open:
                    self._require_admin(context, f"run the {action.type} action")
                return [flight.Result(pa.py_buffer(item)) for item in operator.handler(self, context, body)]
            entry = routes.ACTIONS.get(action.type)
            if entry is None:
                raise NotImplementedError(f"unknown action {action.type!r}")
            request = commands.unpack_action(action.type, body)
            results = self._serve(entry.route, context, request)
            return [flight.Result(pa.py_buffer(item)) for item in results]
        return self._guard("DoAction", context, run)

    def list_actions(self, context):
        # Without credentials only `health` is usable, but listing every action is harmless.
        if not self.constructed:
            raise flight.FlightUnavailableError("starting")
        entries = [(name, entry.description) for name, entry in routes.ACTIONS.items()]
        entries += [(name, entry.description) for name, entry in routes.OPERATOR_ACTIONS.items()]
        return [flight.ActionType(name, description) for name, description in entries]

    def list_flights(self, context, criteria):
        def run():
            return self._serve(routes.LIST_FLIGHTS, context, None)
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
