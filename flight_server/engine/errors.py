"""The engine's own small exception classes, and the one place that sorts DuckDB's exceptions into them.

Every class says whose fault an error is (`fault`):

- ``"client"``: the request itself is wrong (bad SQL, unknown handle, refused by a role, data that does not
  fit its schema). The client fixes the request.
- ``"user_query"``: a well-formed query failed on its own terms (its file is missing, it ran out of memory,
  it was interrupted, S3 answered 404). The user's problem, never the server's.
- ``"server"``: the server or its database is in trouble (I/O on the database file or WAL, disk full,
  DuckDB INTERNAL/FATAL errors, an invalidated database). Only these count toward the circuit breaker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb
import pyarrow as pa

CLIENT, USER_QUERY, SERVER = "client", "user_query", "server"


class EngineError(Exception):
    """Base class; `message` is what the client sees (DuckDB's own text where there is one, without stack
    traces or the server's own file paths); `detail` is the full original text, for the server log."""

    fault = SERVER

    def __init__(self, message: str, fault: str | None = None, detail: str | None = None):
        message = client_message(message)
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message
        if fault is not None:
            self.fault = fault


class QueryError(EngineError):
    """The statement is wrong: syntax, binder, catalog, type or conversion errors; malformed input data."""

    fault = CLIENT


class PermissionDeniedError(EngineError):
    """The caller's role does not allow this statement; nothing ran."""

    fault = CLIENT


class NotFoundError(EngineError):
    """A named object, handle or file does not exist (prepared statement, transaction, table, input file)."""

    fault = CLIENT


class ConstraintError(EngineError):
    """A constraint or transaction conflict stopped the statement."""

    fault = CLIENT


class AlreadyExistsError(EngineError):
    """The object to create exists already (bulk ingest in create mode)."""

    fault = CLIENT


class ResourceError(EngineError):
    """Out of memory or the spill cap for one query (its own fault), or the disk is full (the server's)."""

    fault = USER_QUERY


class CancelledError(EngineError):
    """The statement was interrupted (client cancel, deadline, shutdown), or the client ended its call
    before finishing its upload."""

    fault = USER_QUERY


class UnavailableError(EngineError):
    """The engine cannot take the request now (pool exhausted, shutting down, breaker open)."""

    fault = SERVER


class InternalError(EngineError):
    """Anything else: an engine fault that is not the client's doing."""

    fault = SERVER


# -- what clients may see ---------------------------------------------------------------------------------

# The server's own files and folders (database, WAL, data folder, spill folder ...): named in the log, never
# in a client's error message. Registered once at start-up by whoever opens the database.
_server_paths: list[str] = []


def register_server_paths(paths: Iterable[str]) -> None:
    """Declares folders and files that belong to the server (longest first, so the most specific wins)."""
    for path in paths:
        path = (path or "").rstrip("/")
        if len(path) > 1 and path.startswith("/") and path not in _server_paths:
            _server_paths.append(path)
    _server_paths.sort(key=len, reverse=True)


def server_paths() -> tuple[str, ...]:
    return tuple(_server_paths)


# DuckDB appends a C++ stack trace to INTERNAL errors (and some others); it starts on a line of its own.
_STACK_TRACE = re.compile(r"\n+\s*(?:Stack Trace|Stack trace)\b.*\Z", re.DOTALL)
# Python exception chains must never reach a client.
_CHAIN = re.compile(r"\n+(?:Traceback \(most recent call last\)|The above exception was the direct cause|"
                    r"During handling of the above exception).*\Z", re.DOTALL)


def client_message(text: str) -> str:
    """`text` without stack traces, Python exception chains or the server's own paths."""
    text = _STACK_TRACE.sub("", text)
    text = _CHAIN.sub("", text)
    for path in _server_paths:
        if path in text:
            text = re.sub(re.escape(path) + r"[^\s\"':]*", "<server file>", text)
    return text.rstrip()


def engine_error(exc: BaseException) -> EngineError | None:
    """The EngineError for an engine exception (ours or DuckDB's, wherever it escaped from), else None."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, duckdb.Error):
        return classify(exc)
    return None


def is_fatal(exc: BaseException) -> bool:
    """True when DuckDB invalidated the database: every later statement fails until it is reopened."""
    if isinstance(exc, duckdb.FatalException):
        return True
    text = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc).lower()
    return _INVALIDATED in text or text.startswith("fatal error")


def is_server_fault(exc: BaseException) -> bool:
    """True for faults of the server or its database: what the circuit breaker counts. A busy or closed
    server (UnavailableError) is not a new fault."""
    error = classify(exc)
    return error.fault == SERVER and not isinstance(error, UnavailableError)


# -- sorting DuckDB's exceptions ---------------------------------------------------------------------------

# Order matters: the first matching class wins (subclasses before their parents).
_CLASSIFICATION: tuple[tuple[type[BaseException], type[EngineError]], ...] = (
    (duckdb.InterruptException, CancelledError),
    (duckdb.OutOfMemoryException, ResourceError),
    (duckdb.ConstraintException, ConstraintError),
    (duckdb.TransactionException, ConstraintError),
    (duckdb.IntegrityError, ConstraintError),
    (duckdb.ProgrammingError, QueryError),  # parser, syntax, binder, catalog
    (duckdb.DataError, QueryError),  # conversion, out of range, type mismatch
    (duckdb.NotSupportedError, QueryError),
    (duckdb.InvalidInputException, QueryError),
    (duckdb.InvalidTypeException, QueryError),
    (duckdb.PermissionException, PermissionDeniedError),  # the sandbox refused a file, URL or extension
    (duckdb.DependencyException, QueryError),
    (duckdb.SequenceException, QueryError),
    (duckdb.ConversionException, QueryError),
    (duckdb.SerializationException, QueryError),
    (duckdb.FatalException, InternalError),
    (duckdb.InternalError, InternalError),
)


def classify(exc: BaseException) -> EngineError:
    """Turns any exception raised by DuckDB (or pyarrow while reading client data) into an EngineError."""
    if isinstance(exc, EngineError):
        return exc
    original = str(exc)
    message = original
    lowered = message.lower()
    if _CONFLICT in lowered:
        # Another node or session committed a conflicting change first (DuckLake checks at commit): nothing of
        # this transaction was committed, and running it again is the fix.
        return ConstraintError(f"write conflict, nothing was committed: retry the transaction ({message})",
                               detail=original)
    if _INVALIDATED in lowered or (_COMMIT_FAILED in lowered and any(hint in lowered for hint in _IO_HINTS)):
        # The database cannot go on, or could not write a commit (WAL, database file): the server's fault.
        return InternalError(message, detail=original)
    if isinstance(exc, duckdb.IOException) or message.startswith(("IO Error", "HTTP Error")):
        return _io_error(exc, message)
    for duck_type, engine_type in _CLASSIFICATION:
        if isinstance(exc, duck_type):
            return engine_type(message, detail=original)
    # Errors raised while DuckDB streams Arrow batches arrive as plain OSError/ArrowException carrying
    # DuckDB's message; its "<Kind> Error:" prefix says what happened.
    for prefix, engine_type in _MESSAGE_PREFIXES:
        if message.startswith(prefix):
            return engine_type(message, detail=original)
    if isinstance(exc, (ValueError, TypeError, pa.ArrowNotImplementedError)):
        return QueryError(message, detail=original)  # pyarrow refusing client data, a bad parameter value
    if isinstance(exc, duckdb.Error):
        # A DuckDB error of a kind not listed above (e.g. an extension that cannot be loaded): the
        # statement's own failure, with DuckDB's message.
        return QueryError(message, fault=USER_QUERY, detail=original)
    return InternalError(message or type(exc).__name__, detail=original)


def _io_error(exc: BaseException, message: str) -> EngineError:
    """I/O on the server's own files (database, WAL, spill folder) or a full disk is the server's fault;
    I/O on a file or URL a query named is that query's failure."""
    lowered = message.lower()
    if "max_temp_directory_size" in lowered:
        return ResourceError(message, detail=message)
    if "no space left" in lowered or "disk full" in lowered:
        return ResourceError(message, fault=SERVER, detail=message)
    if any(path in message for path in _server_paths) or ".wal" in lowered:
        return InternalError(message, detail=message)
    if isinstance(exc, duckdb.HTTPException) or message.startswith("HTTP Error"):
        status = getattr(exc, "status_code", None)
        if status == 404 or " 404" in message:
            return NotFoundError(message, fault=USER_QUERY, detail=message)
        if status in (401, 403) or " 403" in message or " 401" in message:
            return PermissionDeniedError(message, fault=USER_QUERY, detail=message)
        return QueryError(message, fault=USER_QUERY, detail=message)
    if any(hint in lowered for hint in _MISSING_FILE_HINTS):
        return NotFoundError(message, fault=USER_QUERY, detail=message)
    return QueryError(message, fault=USER_QUERY, detail=message)


_INVALIDATED = "database has been invalidated"
_COMMIT_FAILED = "failed to commit"
_CONFLICT = "transaction conflict"
_IO_HINTS = (".wal", "cannot open file", "could not write", "could not read", "no space left", "i/o error",
             "io error")
_MISSING_FILE_HINTS = ("no files found", "no such file", "does not exist", "not found")

_MESSAGE_PREFIXES: tuple[tuple[str, type[EngineError]], ...] = (
    ("INTERRUPT Error", CancelledError),
    ("Out of Memory Error", ResourceError),
    ("Constraint Error", ConstraintError),
    ("TransactionContext Error", ConstraintError),
    ("Invalid Input Error", QueryError),
    ("Conversion Error", QueryError),
    ("Out of Range Error", QueryError),
    ("Binder Error", QueryError),
    ("Catalog Error", QueryError),
    ("Parser Error", QueryError),
    ("Not implemented Error", QueryError),
    ("Invalid Error", QueryError),
    ("Permission Error", PermissionDeniedError),
    ("Mismatch Type Error", QueryError),
    ("INTERNAL Error", InternalError),
    ("FATAL Error", InternalError),
)
