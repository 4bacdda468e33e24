"""The one place engine and protocol errors become Flight/gRPC status codes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from ..engine import errors
from ..protocol.commands import ProtocolError

# gRPC codes (google.rpc.Code) for errors pyarrow.flight has no exception class for.
FAILED_PRECONDITION = 9
RESOURCE_EXHAUSTED = 8
ALREADY_EXISTS = 6


def _rpc_status(code: int, message: str) -> bytes:
    """A serialized google.rpc.Status, sent as grpc-status-details-bin so clients can read the precise code."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


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
        if isinstance(exc, errors.NotFoundError):
            return pa.ArrowKeyError(message)
        if isinstance(exc, errors.CancelledError):
            return flight.FlightCancelledError(message)
        if isinstance(exc, errors.UnavailableError):
            return flight.FlightUnavailableError(message)
        if isinstance(exc, errors.ConstraintError):
            return flight.FlightServerError(message, extra_info=_rpc_status(FAILED_PRECONDITION, message))
        if isinstance(exc, errors.ResourceError):
            return flight.FlightServerError(message, extra_info=_rpc_status(RESOURCE_EXHAUSTED, message))
        if isinstance(exc, errors.AlreadyExistsError):
            return flight.FlightServerError(message, extra_info=_rpc_status(ALREADY_EXISTS, message))
        return flight.FlightInternalError(message)
    if isinstance(exc, NotImplementedError):
        return exc
    return flight.FlightInternalError(f"internal error: {type(exc).__name__}: {exc}")
