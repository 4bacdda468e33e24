"""Tickets any node of a cluster can serve: self-contained and signed.

Over a DuckLake, a query's ticket carries the query rewritten to read one lake snapshot (`AT (VERSION =>
n)`), the user and role it was issued to and an expiry, signed with HMAC-SHA256 under the cluster secret
that every node shares. DoGet on any node checks the signature, the expiry and the caller, runs the query and
sends the same rows whatever was committed since. A statement that needs its session (an open transaction,
temporary objects, another default catalog or schema, DML) keeps the session-bound ticket of a single server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time

import pyarrow as pa
import pyarrow.flight as flight

from ..engine import lake
from ..engine.errors import EngineError, NotFoundError, PermissionDeniedError
from ..protocol import commands
from ..protocol import flight_sql_pb2 as sql
from .handlers.base import Call, info_for

PREFIX = b"lake1."
REUSE_CONNECTION = flight.Location("arrow-flight-reuse-connection://?")  # Flight's "this same connection"

class ClusterTickets:
    def __init__(self, key: bytes, ttl: float, nodes: tuple[str, ...] = (), fan_out_min_rows: int = 1_000_000,
                 clock=time.time):
        self._key = key
        self._ttl = ttl
        # Fan-out: a plain scan of a large table becomes one endpoint per node, each with its own row range
        # of the same snapshot and that node as its location (rotated per query to spread the first part).
        self._nodes = [flight.Location(node) for node in nodes]
        self._fan_out_min_rows = fan_out_min_rows
        self._rotation = itertools.count()
        self._clock = clock
        self._builtins: frozenset[str] | None = None  # DuckDB's own function names, read at the first query

    # -- issuing ----------------------------------------------------------

    def flight_info(self, call: Call, query: str, parameters: pa.Table | None, descriptor: flight.FlightDescriptor,
                    parse) -> flight.FlightInfo | None:
        """A FlightInfo with a signed ticket for a plain query (and its bound parameters), or None when the
        statement needs its session (the caller then runs it the single-server way)."""
        session = call.session
        if _in_transaction(session):
            return None
        try:
            with session.busy() as conn:
                if self._builtins is None:
                    self._builtins = lake.builtin_functions(conn)
                nodes = len(self._nodes) if parameters is None else 1
                read = lake.portable_read(conn, parse, query, self._builtins, nodes, self._fan_out_min_rows)
            if read is None:
                return None
            # Binds the rewritten query through the session (role check included) without running it.
            schema = _bound_schema(session, read.query, parameters)
        except EngineError:
            return None
        if schema is None:
            return None
        query, snapshot, parts = read.query, read.snapshot, read.parts
        principal = call.principal
        claims = {"q": query, "p": _pack(parameters), "s": snapshot, "e": self._clock() + self._ttl,
                  "u": getattr(principal, "user", None), "r": getattr(principal, "role", None)}
        if parts is None:
            return info_for(descriptor, schema, sql.TicketStatementQuery(statement_handle=self.sign(claims)))
        first = next(self._rotation)
        endpoints = [flight.FlightEndpoint(
            commands.pack(sql.TicketStatementQuery(statement_handle=self.sign(dict(claims, q=part)))),
            [self._nodes[(first + index) % len(self._nodes)]]) for index, part in enumerate(parts)]
        return flight.FlightInfo(schema, descriptor, endpoints, -1, -1)

    @staticmethod
    def session_bound(info: flight.FlightInfo) -> flight.FlightInfo:
        """`info` with its endpoints pointing at the connection that asked: the node holding the session (a
        load balancer may route a client's next connection elsewhere; Flight clients read this location as
        "the connection you are on")."""
        endpoints = [flight.FlightEndpoint(endpoint.ticket, [REUSE_CONNECTION]) for endpoint in info.endpoints]
        return flight.FlightInfo(info.schema, info.descriptor, endpoints, info.total_records, info.total_bytes)

    def sign(self, claims: dict) -> bytes:
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        mac = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest())
        return PREFIX + body + b"." + mac

    # -- redeeming --------------------------------------------------------

    def claims(self, handle: bytes, call: Call) -> dict:
        """The verified claims of a signed ticket presented by `call`'s caller."""
        body, _, mac = handle[len(PREFIX):].partition(b".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise PermissionDeniedError("the ticket's signature is not valid for this cluster")
        claims = json.loads(base64.urlsafe_b64decode(body))
        if self._clock() > claims["e"]:
            raise NotFoundError("the ticket has expired: run the query again")
        principal = call.principal
        if (getattr(principal, "user", None), getattr(principal, "role", None)) != (claims["u"], claims["r"]):
            raise PermissionDeniedError("the ticket was issued to another user")
        return claims

    def stream(self, call: Call, handle: bytes) -> flight.RecordBatchStream:
        """Runs the ticket's query (it reads its lake snapshot) with its parameters and streams the rows."""
        claims = self.claims(handle, call)
        session = call.session
        parameters = _unpack(claims["p"])
        if parameters is None:
            outcome = session.execute(claims["q"])
        else:
            prepared = session.prepare(claims["q"])
            try:
                session.bind(prepared.handle, parameters.to_batches(), parameters.schema)
                outcome = session.execute_prepared(prepared.handle)
            finally:
                session.close_prepared(prepared.handle)
        return call.stream(session.stream(outcome.reader))


def is_signed(handle: bytes) -> bool:
    return handle.startswith(PREFIX)


def _bound_schema(session, query: str, parameters: pa.Table | None) -> pa.Schema | None:
    """The result schema of `query` as this session would run it (role check included), without running it."""
    if parameters is None:
        return session.schema_of(query)
    prepared = session.prepare(query)
    try:
        return prepared.dataset_schema
    finally:
        session.close_prepared(prepared.handle)


def _pack(table: pa.Table | None) -> str | None:
    if table is None or not table.num_columns:
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def _unpack(text: str | None) -> pa.Table | None:
    return None if text is None else pa.ipc.open_stream(base64.b64decode(text)).read_all()


def _in_transaction(session) -> bool:
    return session.transaction_id is not None or bool(getattr(session, "sql_transaction", False))
