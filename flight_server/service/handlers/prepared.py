"""Prepared statements: create/close actions, parameter binding by DoPut, execution by GetFlightInfo/DoGet/DoPut."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from ...protocol import commands
from ...protocol import flight_sql_pb2 as sql
from ...protocol import schemas
from .base import Call, incoming, info_for, optional, statement_ticket, update_result


def _read_parameters(call: Call, reader: flight.MetadataRecordBatchReader) \
        -> tuple[list[pa.RecordBatch], pa.Schema | None]:
    """Parameter rows sent with DoPut, every batch validated; ([], None) when the client sent none."""
    batches = incoming(call, reader, required=False)
    if batches is None:
        return [], None
    return batches.read_all(), batches.schema


class PreparedHandlers:
    def action_create_prepared_statement(self, call: Call, request: sql.ActionCreatePreparedStatementRequest):
        transaction = optional(request, "transaction_id")
        prepared = call.session.prepare(request.query, transaction)
        dataset = prepared.dataset_schema
        result = sql.ActionCreatePreparedStatementResult(
            prepared_statement_handle=prepared.handle,
            dataset_schema=dataset.serialize().to_pybytes() if dataset is not None else b"",
            parameter_schema=prepared.parameter_schema().serialize().to_pybytes(),
            is_update=prepared.is_update,
        )
        return [commands.pack(result)]

    def action_close_prepared_statement(self, call: Call, request: sql.ActionClosePreparedStatementRequest):
        call.session.close_prepared(request.prepared_statement_handle)
        return []

    def do_put_prepared_query(self, call: Call, command: sql.CommandPreparedStatementQuery, reader, writer):
        """Binds parameter rows; they are used by the next execution of this handle."""
        batches, schema = _read_parameters(call, reader)
        if schema is not None:
            call.session.bind(command.prepared_statement_handle, batches, schema)
        result = sql.DoPutPreparedStatementResult(prepared_statement_handle=command.prepared_statement_handle)
        writer.write(pa.py_buffer(result.SerializeToString()))

    def get_flight_info_prepared(self, call: Call, command: sql.CommandPreparedStatementQuery,
                                 descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        if self.cluster_tickets is not None:  # a query any node of the cluster can serve (statements.py)
            prepared = call.session.get_prepared(command.prepared_statement_handle)
            info = self.cluster_tickets.flight_info(call, prepared.sql, prepared.bound, descriptor,
                                                    self.database.parse)
            if info is not None:
                return info
        outcome = call.session.execute_prepared(command.prepared_statement_handle)
        handle = call.session.park(outcome.reader)
        info = info_for(descriptor, outcome.reader.schema, statement_ticket(handle), outcome.rowcount)
        return info if self.cluster_tickets is None else self.cluster_tickets.session_bound(info)

    def get_schema_prepared(self, call: Call, command: sql.CommandPreparedStatementQuery):
        prepared = call.session.get_prepared(command.prepared_statement_handle)
        return prepared.dataset_schema if prepared.dataset_schema is not None else schemas.EMPTY

    def do_get_prepared(self, call: Call, command: sql.CommandPreparedStatementQuery):
        outcome = call.session.execute_prepared(command.prepared_statement_handle)
        return call.stream(call.session.stream(outcome.reader))

    def do_put_prepared_update(self, call: Call, command: sql.CommandPreparedStatementUpdate, reader, writer):
        """Runs the statement once per parameter row sent (or per bound row); replies with the summed count."""
        batches, schema = _read_parameters(call, reader)
        sent = schema is not None and (batches or len(schema) > 0)
        count = call.session.execute_prepared_update(
            command.prepared_statement_handle, batches if sent else None, schema if sent else None)
        writer.write(update_result(count))
        return count
