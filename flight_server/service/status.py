"""The one place engine and protocol errors become Flight/gRPC status codes.

Who is at fault decides the code (see engine/errors.py): a client's mistake is INVALID_ARGUMENT, NOT_FOUND,
PERMISSION_DENIED or UNAUTHENTICATED; a user query's own failure keeps DuckDB's message under the status
that fits it (a missing file NOT_FOUND, an interrupt CANCELLED, out of memory UNKNOWN); INTERNAL is kept
for the server's own faults. Every message passes through `errors.client_message`: no stack traces, no
Python exception chains, no paths of the server's own files.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from ..engine import errors
from ..protocol.commands import ProtocolError

# pyarrow.flight can only emit the gRPC codes it has exception classes for. FAILED_PRECONDITION,
# RESOURCE_EXHAUSTED and ALREADY_EXISTS are not among them, and a google.rpc.Status in
# grpc-status-details-bin whose code differs from the wire status is rejected by grpc-go clients
# (ADBC) as a protocol error. So constraint, capacity and already-exists errors go out as UNKNOWN
# with DuckDB's message intact.
_BY_CLASS: tuple[tuple[type[errors.EngineError], type[BaseException]], ...] = (
    (errors.QueryError, pa.ArrowInvalid),  # INVALID_ARGUMENT
    (errors.PermissionDeniedError, flight.FlightUnauthorizedError),  # PERMISSION_DENIED
    (errors.NotFoundError, pa.ArrowKeyError),  # NOT_FOUND
    (errors.CancelledError, flight.FlightCancelledError),
    (errors.UnavailableError, flight.FlightUnavailableError),
    (errors.ConstraintError, flight.FlightServerError),  # UNKNOWN
    (errors.AlreadyExistsError, flight.FlightServerError),
)


def to_flight_error(exc: BaseException) -> BaseException:
    """Maps an exception onto the pyarrow.flight exception that carries the right gRPC status."""
    if isinstance(exc, (flight.FlightError, NotImplementedError)):
        return exc
    if isinstance(exc, ProtocolError):
        return pa.ArrowInvalid(errors.client_message(str(exc)))
    exc = errors.engine_error(exc) or exc
    if isinstance(exc, errors.EngineError):
        for engine_type, flight_type in _BY_CLASS:
            if isinstance(exc, engine_type):
                return flight_type(exc.message)
        if isinstance(exc, errors.ResourceError) and exc.fault != errors.SERVER:
            return flight.FlightServerError(exc.message)  # this query's out-of-memory or spill cap
        return flight.FlightInternalError(exc.message)
    # Not an engine error: a fault in the server's own code. Name it, never chain it.
    first = (str(exc).strip().splitlines() or [""])[0]
    return flight.FlightInternalError(errors.client_message(f"internal error: {type(exc).__name__}: {first}"))


def log_detail(exc: BaseException) -> str:
    """The full text of an error for the server log (DuckDB's stack trace and paths included)."""
    return getattr(exc, "detail", None) or str(exc)
