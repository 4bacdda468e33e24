"""What every handler gets: the caller's session and helpers to build FlightInfo and replies."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import Message

from ...engine import Session
from ...engine.errors import QueryError
from ...engine.incoming import IncomingBatches
from ...protocol import commands
from ...protocol import flight_sql_pb2 as sql
from ..identity import middleware
from ..status import to_flight_error


@dataclass
class Call:
    """One RPC: who is calling (session key, peer) and the session serving them."""

    key: str
    peer: str
    session: Session
    principal: object | None = None  # auth.credentials.Principal when authentication is on
    context: flight.ServerCallContext | None = None
    result: object | None = None  # the engine ResultStream this call sends, for its row/byte counts
    marker: object | None = None  # names this call's DuckDB work, so cancels interrupt only that work
    owner: str = ""  # whom per-user caps count this call against: the user, or the client's IP without auth
    lease: object | None = None  # resilience.admission.Lease: the execution slot of a statement call

    def stream(self, result) -> flight.RecordBatchStream:
        """Sends an engine ResultStream; when the call ends (finished, failed or cancelled) the stream is
        detached so an abandoned result is dropped rather than read on."""
        self.result = result
        result.marker = self.marker
        if result.complete is not None:  # small result read whole at GetFlightInfo: no Python per batch
            return flight.RecordBatchStream(result.complete)
        if self.context is not None:
            hooks = middleware(self.context)
            result.attach(self.context.is_cancelled)
            if hooks is not None:
                hooks.on_complete.append(lambda exc: result.detach())
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(result.schema, _mapped_errors(result)))


def _mapped_errors(batches):
    """Batches of a result stream; an error raised while DuckDB produces them (after the call has returned)
    leaves with the status for its fault, as errors raised inside the call do."""
    try:
        yield from batches
    except Exception as exc:  # noqa: BLE001 - every error leaves through status mapping
        raise to_flight_error(exc) from None


def incoming(call: Call, reader: flight.MetadataRecordBatchReader,
             required: bool = True) -> IncomingBatches | None:
    """The batches of a DoPut stream, each validated before use; ending the stream counts as clean only if the
    call was not cancelled. Without a schema message: QueryError, or None when `required` is false."""
    try:
        schema = reader.schema
    except Exception as exc:  # noqa: BLE001 - pyarrow refused the stream's first message
        if not required:
            return None
        raise QueryError(f"the DoPut stream carries no valid schema message: {str(exc).splitlines()[0][:300]}") \
            from None
    cancelled = call.context.is_cancelled if call.context is not None else None
    return IncomingBatches(schema, (chunk.data for chunk in reader), cancelled)


def info_for(descriptor: flight.FlightDescriptor, schema: pa.Schema, ticket_message: Message,
             total_records: int = -1) -> flight.FlightInfo:
    """A FlightInfo with one endpoint whose ticket is the packed message (served by this same server)."""
    ticket = flight.Ticket(commands.pack(ticket_message))
    endpoint = flight.FlightEndpoint(ticket, [])
    return flight.FlightInfo(schema, descriptor, [endpoint], total_records, -1)


def optional(message, name: str):
    """A proto3 `optional` field's value, or None when the client did not set it."""
    return getattr(message, name) if message.HasField(name) else None


def update_result(count: int) -> pa.Buffer:
    """The DoPut reply for updates and ingest: a bare DoPutUpdateResult."""
    return pa.py_buffer(sql.DoPutUpdateResult(record_count=count).SerializeToString())


def statement_ticket(handle: bytes) -> sql.TicketStatementQuery:
    return sql.TicketStatementQuery(statement_handle=handle)
