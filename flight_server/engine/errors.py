"""The engine's own small exception classes, and the one place that sorts DuckDB's exceptions into them."""

from __future__ import annotations

import duckdb


class EngineError(Exception):
    """Base class; `message` is what the client sees (DuckDB's own text where there is one)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class QueryError(EngineError):
    """The statement is wrong: syntax, binder, catalog, type or conversion errors."""


class PermissionDeniedError(EngineError):
    """The caller's role does not allow this statement; nothing ran."""


class NotFoundError(EngineError):
    """A named object or handle does not exist (prepared statement, transaction, table to append to)."""


class ConstraintError(EngineError):
    """A constraint or transaction conflict stopped the statement."""


class AlreadyExistsError(EngineError):
    """The object to create exists already (bulk ingest in create mode)."""


class ResourceError(EngineError):
    """Out of memory, disk or another capacity limit."""


class CancelledError(EngineError):
    """The statement was interrupted (client cancel, deadline, shutdown)."""


class UnavailableError(EngineError):
    """The engine cannot take the request now (pool exhausted, shutting down)."""


class InternalError(EngineError):
    """Anything else: an engine fault that is not the client's doing."""


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
)


def classify(exc: BaseException) -> EngineError:
    """Turns any exception raised by DuckDB (or pyarrow while reading client data) into an EngineError."""
    if isinstance(exc, EngineError):
        return exc
    message = str(exc)
    if isinstance(exc, duckdb.IOException) and _looks_like_disk_full(message):
        return ResourceError(message)
    for duck_type, engine_type in _CLASSIFICATION:
        if isinstance(exc, duck_type):
            return engine_type(message)
    # Errors raised while DuckDB streams Arrow batches arrive as plain OSError/ArrowException carrying
    # DuckDB's message; its "<Kind> Error:" prefix says what happened.
    for prefix, engine_type in _MESSAGE_PREFIXES:
        if message.startswith(prefix):
            return engine_type(message)
    if isinstance(exc, (ValueError, TypeError)):
        return QueryError(message)
    return InternalError(message or type(exc).__name__)


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
)


def _looks_like_disk_full(message: str) -> bool:
    lowered = message.lower()
    return "no space left" in lowered or "max_temp_directory_size" in lowered
