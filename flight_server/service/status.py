"""The one place engine and protocol errors become Flight/gRPC status codes."""

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


def to_flight_error(exc: BaseException) -> BaseException:
    """Maps an exception onto the pyarrow.flight exception that carries the right gRPC status."""
    if isinstance(exc, flight.FlightError):
        return exc
    if isinstance(exc, ProtocolError):
        return pa.ArrowInvalid(str(exc))
    if isinstance(exc, errors.EngineError):
        message = exc.message
        if isinstance(exc, errors.QueryError):
            return pa.ArrowInvalid(message)
        if isinstance(exc, errors.PermissionDeniedError):
            return flight.FlightUnauthorizedError(message)
        if isinstance(exc, errors.NotFoundError):
            return pa.ArrowKeyError(message)
        if isinstance(exc, errors.CancelledError):
            return flight.FlightCancelledError(message)
        if isinstance(exc, errors.UnavailableError):
            return flight.FlightUnavailableError(message)
        if isinstance(exc, (errors.ConstraintError, errors.ResourceError, errors.AlreadyExistsError)):
            return flight.FlightServerError(message)
        return flight.FlightInternalError(message)
    if isinstance(exc, NotImplementedError):
        return exc
    return flight.FlightInternalError(f"internal error: {type(exc).__name__}: {exc}")
