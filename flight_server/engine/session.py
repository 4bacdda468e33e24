"""A client's session: its own DuckDB connection, prepared statements, transaction and results in flight."""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from . import ingest, parameters, statements
from .errors import NotFoundError, QueryError, UnavailableError, classify
from .incoming import IncomingBatches
from .spill import SpillSpace
from .streaming import ResultStream


@dataclass
class PreparedStatement:
    """A parsed statement kept by handle; parameters bound by DoPut wait here until execution."""

    handle: bytes
    sql: str
    parsed: statements.Parsed
    dataset_schema: pa.Schema | None
    bound: pa.Table | None = None

    @property
    def is_update(self) -> bool:
        """True when clients should run it as an update (no result set). A RETURNING clause (or the word
        anywhere) keeps the query path, which always works."""
        return not self.parsed.is_query and not _RETURNING.search(self.sql)

    def parameter_schema(self) -> pa.Schema:
        """DuckDB does not expose parameter types before binding, so parameters are announced untyped."""
        count = self.parsed.parameter_count
        return pa.schema([pa.field(f"${index + 1}", pa.null()) for index in range(count)])


@dataclass
class Session:
    """One client's DuckDB connection with everything that lives as long as it does."""

    session_id: str
    conn: duckdb.DuckDBPyConnection
    max_prepared: int = 256
    lock: threading.RLock = field(default_factory=threading.RLock)
    prepared: OrderedDict[bytes, PreparedStatement] = field(default_factory=OrderedDict)
    parked: OrderedDict[bytes, ResultStream] = field(default_factory=OrderedDict)
    streams: list[ResultStream] = field(default_factory=list)
    transaction_id: bytes | None = None
    options: dict[str, object] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False
    # Optional policy (e.g. a role): .statements(list of duckdb.Statement) and .ingest() raise to refuse.
    authorizer: object | None = None
    # Marker of the call whose work DuckDB is doing right now (see interrupt_if_running).
    running: object | None = None
    # Splits SQL into statements on a sandboxed connection (the Database's parser); None: this session's own.
    parser: Callable[[str], Sequence[duckdb.Statement]] | None = None
    # Parses through a cache shared by the database's sessions (statements.ParseCache); None: no cache.
    parse_cache: Callable[[str], statements.Parsed] | None = None
    # Whose session this is (a user, or a client address without auth): per-user caps count it.
    owner: str = ""
    # Client connections (names given by the service) that used it, with when they were last seen: the pool
    # reclaims the session once none of them is open any more.
    peers: dict[str, float] = field(default_factory=dict)
    max_parked: int = 16
    # Where results go that must leave the connection before they are read (SpillSpace.default() if None).
    spill_space: SpillSpace | None = None
    # A transaction opened by SQL (BEGIN in a statement) rather than by BeginTransaction.
    sql_transaction: bool = False
    # Open read-only transaction the session runs a read-only role's statements in (see _statement_begins).
    _read_transaction: bool = False

    @property
    def read_only(self) -> bool:
        """Whether DuckDB must refuse every write of this session (a read role): each statement then runs in
        a read-only transaction, so EXPLAIN ANALYZE of a DELETE, nextval() and the like fail inside DuckDB."""
        return bool(getattr(self.authorizer, "read_only", False))

    # -- the connection ---------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether the client holds a transaction open (BeginTransaction, or BEGIN in SQL)."""
        return self.transaction_id is not None or self.sql_transaction

    @property
    def streaming(self) -> bool:
        """Whether a call is sending one of this session's results now."""
        return any(stream.streaming for stream in self.streams)

    @contextlib.contextmanager
    def busy(self):
        """Holds the connection for one operation. Results still being sent (or parked for DoGet) go to spill
        files first, since DuckDB ends a connection's open result when it runs the next statement."""
        with self.lock:
            if self.closed:
                raise UnavailableError("session is closed")
            self.touch()
            self.running = CURRENT_CALL.get()
            try:
                for stream in self.streams:
                    stream.spill()
                self.streams = [s for s in self.streams if not s.finished]
                if self._read_transaction:
                    self._end_read_transaction()
                yield self.conn
            finally:
                self.running = None

    def _result(self, reader: pa.RecordBatchReader) -> ResultStream:
        return ResultStream(reader, self.lock, self.touch, self._set_running, self.spill_space,
                            (self.owner, self.session_id))

    def park(self, reader: pa.RecordBatchReader) -> bytes:
        """Keeps a result until the client fetches it with DoGet; returns its handle."""
        with self.lock:
            handle = secrets.token_bytes(16)
            stream = self._result(reader)
            self.running = CURRENT_CALL.get()
            try:
                stream.read_ahead()
            finally:
                self.running = None
            self.parked[handle] = stream
            if not stream.finished:
                self.streams.append(stream)
            while len(self.parked) > self.max_parked:
                _, old = self.parked.popitem(last=False)
                old.close()
            return handle

    def parked_complete(self, handle: bytes) -> bool:
        """Whether the parked result under `handle` was small enough to be read whole already."""
        stream = self.parked.get(handle)
        return stream is not None and stream.complete is not None

    def take(self, handle: bytes) -> ResultStream:
        """Hands a parked result over for streaming (once)."""
        with self.lock:
            stream = self.parked.pop(handle, None)
        if stream is None:
            raise NotFoundError("result ticket not found (already fetched, cancelled or expired)")
        stream.release_memory()  # a small whole result now belongs to the call that sends it
        return stream

    def stream(self, reader: pa.RecordBatchReader) -> ResultStream:
        """Wraps a result that is sent right away (tickets that carry their own statement)."""
        with self.lock:
            stream = self._result(reader)
            self.streams.append(stream)
            return stream

    def cancel(self, handle: bytes) -> bool:
        """Drops a parked result and interrupts whatever the connection is running."""
        with self.lock:
            stream = self.parked.pop(handle, None)
        self.interrupt()
        if stream is not None:
            stream.close()
        return stream is not None

    # -- statements -------------------------------------------------------

    def _parse(self, sql: str) -> statements.Parsed:
        if self.parse_cache is not None:
            parsed = self.parse_cache(sql)
        else:
            parsed = statements.parse(sql, self.parser or self._own_parse)
        if self.authorizer is not None:
            # An authorizer with a decision_key (role and policy) has its allowances remembered on the parse;
            # refusals are decided again each time (rare, and the message is rebuilt).
            key = getattr(self.authorizer, "decision_key", None)
            if key is None or key not in parsed.allowed_for:
                self.authorizer.statements(parsed.statements)
                if key is not None:
                    parsed.allowed_for.add(key)
        return parsed

    def _own_parse(self, sql: str) -> Sequence[duckdb.Statement]:
        with self.lock:
            return self.conn.extract_statements(sql)

    def _statement_begins(self) -> None:
        """Called with the connection held, right before a client's statements run: a read-only session
        outside an explicit transaction gets a fresh read-only transaction (a new snapshot each time),
        ended when the session next uses its connection."""
        if not self.read_only or self.transaction_id is not None:
            return
        try:
            self.conn.execute(self._control("BEGIN TRANSACTION READ ONLY"))
        except Exception as exc:
            raise classify(exc) from None
        self._read_transaction = True

    def _end_read_transaction(self) -> None:
        self._read_transaction = False
        try:
            self.conn.execute(self._control("COMMIT"))
        except Exception:
            self._quiet_rollback()

    def _control(self, sql: str):
        """A fixed statement the session runs itself (a reader's BEGIN/COMMIT around every statement), parsed
        once through the shared cache instead of on every use."""
        return self.parse_cache(sql, keep=True).last if self.parse_cache is not None else sql

    def end_idle_snapshot(self) -> None:
        """Ends the read-only transaction a read session keeps after a statement, once no result of it is left
        on the connection (call with the lock held): an idle reader then pins no old row versions."""
        if self._read_transaction and not any(stream.on_engine for stream in self.streams):
            self._end_read_transaction()

    def execute(self, sql: str, transaction_id: bytes | None = None) -> statements.Outcome:
        """Runs SQL now (DDL and DML take effect here) and returns its result stream."""
        parsed = self._parse(sql)
        with self.busy():
            self._check_transaction(transaction_id)
            self._statement_begins()
            return self._tracked(parsed, lambda: statements.run(self.conn, parsed))

    def execute_update(self, sql: str, transaction_id: bytes | None = None) -> int:
        parsed = self._parse(sql)
        with self.busy():
            self._check_transaction(transaction_id)
            self._statement_begins()
            return self._tracked(parsed, lambda: statements.run_update(self.conn, parsed))

    def _tracked(self, parsed: statements.Parsed, run: Callable[[], object]):
        """Runs `run`, noting whether SQL left a transaction open (BEGIN ... without COMMIT), for the
        idle-in-transaction timeout. After a failure a BEGIN among the statements counts as open (DuckDB keeps
        a failed transaction open until ROLLBACK)."""
        kinds = parsed.transactions
        if not kinds:
            return run()
        try:
            result = run()
        except BaseException:
            if "begin" in kinds:
                self.sql_transaction = True
            raise
        self.sql_transaction = kinds[-1] == "begin"
        return result

    def schema_of(self, sql: str) -> pa.Schema | None:
        """The result schema of a query without running it (None when it cannot be known beforehand)."""
        parsed = self._parse(sql)
        with self.busy():
            return statements.query_schema(self.conn, parsed)

    # -- prepared statements ----------------------------------------------

    def prepare(self, sql: str, transaction_id: bytes | None = None) -> PreparedStatement:
        parsed = self._parse(sql)
        with self.busy():
            self._check_transaction(transaction_id)
            schema = statements.query_schema(self.conn, parsed)
            handle = secrets.token_bytes(16)
            prepared = PreparedStatement(handle=handle, sql=sql, parsed=parsed, dataset_schema=schema)
            self.prepared[handle] = prepared
            while len(self.prepared) > self.max_prepared:
                self.prepared.popitem(last=False)
            return prepared

    def get_prepared(self, handle: bytes) -> PreparedStatement:
        with self.lock:
            prepared = self.prepared.get(handle)
            if prepared is None:
                raise NotFoundError("prepared statement handle not found (closed, expired or from another session)")
            self.prepared.move_to_end(handle)
            return prepared

    def close_prepared(self, handle: bytes) -> None:
        with self.lock:
            self.prepared.pop(handle, None)

    def bind(self, handle: bytes, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> None:
        """Keeps parameter rows sent with DoPut for the next execution of the prepared statement."""
        prepared = self.get_prepared(handle)
        table = pa.Table.from_batches(list(batches), schema=schema)
        expected = prepared.parsed.parameter_count
        if table.num_columns != expected:
            raise QueryError(f"statement takes {expected} parameter(s) but {table.num_columns} were bound")
        prepared.bound = table

    def execute_prepared(self, handle: bytes) -> statements.Outcome:
        """Runs a prepared query once per bound parameter row (once with none bound)."""
        prepared = self.get_prepared(handle)
        with self.busy():
            rows = self._parameter_rows(prepared)
            self._statement_begins()
            if len(rows) <= 1:
                return statements.run(self.conn, prepared.parsed, rows[0] if rows else None)
            tables = []
            for row in rows:
                outcome = statements.run(self.conn, prepared.parsed, row)
                tables.append(outcome.reader.read_all())
            table = parameters.stack_results(tables)
            return statements.Outcome(reader=table.to_reader(), rowcount=-1)

    def execute_prepared_update(self, handle: bytes, batches: Iterable[pa.RecordBatch] | None = None,
                                schema: pa.Schema | None = None) -> int:
        """Runs a prepared update once per parameter row, atomically; the count is the sum."""
        prepared = self.get_prepared(handle)
        with self.busy():
            self._statement_begins()
            if batches is not None and schema is not None:
                table = pa.Table.from_batches(list(batches), schema=schema)
            else:
                table = prepared.bound
            if table is not None and table.num_rows > 1:
                rewritten = statements.insert_from_table(prepared.parsed, "__flight_parameters")
                if rewritten is not None and table.num_columns == prepared.parsed.parameter_count:
                    return self._insert_many(rewritten, table)
            rows = list(parameters.rows(table)) if table is not None and table.num_columns else \
                self._parameter_rows(prepared)
            if len(rows) <= 1:
                return statements.run_update(self.conn, prepared.parsed, rows[0] if rows else None)
            return self._run_many(prepared.parsed, rows)

    def _insert_many(self, sql: str, table: pa.Table) -> int:
        """All parameter rows in one INSERT ... SELECT over the Arrow table (one statement, atomic)."""
        columns = [column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
                   for column in (c.combine_chunks() for c in table.columns)]
        flat = pa.table(columns, names=[f"p{i}" for i in range(len(columns))])
        self.conn.register("__flight_parameters", flat)
        try:
            return int(self.conn.execute(sql).fetchone()[0])
        except Exception as exc:
            raise classify(exc) from None
        finally:
            self.conn.unregister("__flight_parameters")

    def _run_many(self, parsed: statements.Parsed, rows: Sequence[Sequence[object]]) -> int:
        own_transaction = self._try_begin()
        try:
            total = 0
            for row in rows:
                total += statements.run_update(self.conn, parsed, row)
            if own_transaction:
                self.conn.execute("COMMIT")
            return total
        except Exception as exc:
            if own_transaction:
                self._quiet_rollback()
            raise classify(exc) from None

    def _parameter_rows(self, prepared: PreparedStatement) -> list[list[object]]:
        if prepared.bound is None or prepared.bound.num_columns == 0:
            if prepared.parsed.parameter_count:
                raise QueryError(
                    f"statement takes {prepared.parsed.parameter_count} parameter(s) but none were bound")
            return []
        return list(parameters.rows(prepared.bound))

    # -- bulk ingest ------------------------------------------------------

    def ingest(self, batches: IncomingBatches, target: ingest.IngestTarget,
               transaction_id: bytes | None = None) -> int:
        """Bulk-loads validated client batches into a table, joining the session's open transaction if there
        is one; commits only when the client's stream ended cleanly."""
        if self.authorizer is not None:
            self.authorizer.ingest()
        with self.busy():
            self._check_transaction(transaction_id)
            return ingest.ingest(self.conn, batches, target, in_transaction=self.transaction_id is not None)

    # -- transactions -----------------------------------------------------

    def begin(self) -> bytes:
        with self.busy():
            if self.transaction_id is not None:
                raise QueryError("a transaction is already open on this session")
            try:
                self.conn.execute("BEGIN TRANSACTION READ ONLY" if self.read_only else "BEGIN TRANSACTION")
            except Exception as exc:
                raise classify(exc) from None
            self.transaction_id = secrets.token_bytes(16)
            return self.transaction_id

    def end(self, transaction_id: bytes, commit: bool) -> None:
        with self.busy():
            if self.transaction_id is None or transaction_id != self.transaction_id:
                raise NotFoundError("transaction not found (already ended, expired or from another session)")
            self.transaction_id = None
            try:
                self.conn.execute("COMMIT" if commit else "ROLLBACK")
            except Exception as exc:
                self._quiet_rollback()
                raise classify(exc) from None

    def _check_transaction(self, transaction_id: bytes | None) -> None:
        if transaction_id and transaction_id != self.transaction_id:
            raise NotFoundError("transaction not found (already ended, expired or from another session)")

    def _try_begin(self) -> bool:
        """Opens a transaction unless one is already open (by BeginTransaction or by SQL)."""
        if self.transaction_id is not None:
            return False
        try:
            self.conn.execute("BEGIN TRANSACTION")
            return True
        except duckdb.TransactionException:
            return False

    def _quiet_rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except Exception:
            pass

    # -- catalog and schema -----------------------------------------------

    def current_catalog(self) -> str:
        with self.busy():
            return self.conn.execute("SELECT current_database()").fetchone()[0]

    def current_schema(self) -> str:
        with self.busy():
            return self.conn.execute("SELECT current_schema()").fetchone()[0]

    def use(self, catalog: str | None = None, schema: str | None = None) -> None:
        """Switches the default catalog and/or schema; an unknown one raises NotFoundError."""
        with self.busy():
            catalog = catalog or self.current_catalog()
            schema = schema or ("main" if catalog != self.current_catalog() else self.current_schema())
            found = self.conn.execute(
                "SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?",
                [catalog, schema]).fetchone()[0]
            if not found:
                raise NotFoundError(f"catalog {catalog!r} with schema {schema!r} does not exist")
            self.conn.execute(f"USE {_quote(catalog)}.{_quote(schema)}")

    # -- lifetime ---------------------------------------------------------

    def interrupt_if_running(self, marker: object) -> None:
        """Interrupts DuckDB only while it works for the call that `marker` names: a late cancel of a
        finished call must not hit the client's next statement."""
        if marker is not None and self.running is marker:
            self.interrupt()

    def _set_running(self, marker: object | None) -> None:
        self.running = marker

    def interrupt(self) -> None:
        try:
            self.conn.interrupt()
        except Exception:
            pass

    def close(self) -> None:
        """Rolls back anything open and closes the connection."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.in_transaction or self._read_transaction:
                self._quiet_rollback()
                self.transaction_id = None
                self._read_transaction = self.sql_transaction = False
            self.prepared.clear()
            closed = UnavailableError("the session was closed while this result was being sent")
            for stream in list(self.parked.values()) + self.streams:
                stream.close(closed)  # deletes its spill file
            self.parked.clear()
            self.streams.clear()
            try:
                self.conn.close()
            except Exception:
                pass

    def touch(self) -> None:
        self.last_used = time.monotonic()


# The call (a marker object set by the service) on whose behalf this thread works; busy() records it as
# the session's running call while it holds the connection.
CURRENT_CALL: contextvars.ContextVar[object | None] = contextvars.ContextVar("current_call", default=None)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
