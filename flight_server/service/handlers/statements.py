"""Ad-hoc SQL: CommandStatementQuery (GetFlightInfo/GetSchema/DoGet) and CommandStatementUpdate (DoPut)."""

from __future__ import annotations

import pyarrow.flight as flight

from ...protocol import flight_sql_pb2 as sql
from ...protocol import schemas
from ..cluster_tickets import is_signed
from .base import Call, info_for, optional, statement_ticket, update_result


class StatementHandlers:
    cluster_tickets = None  # service.cluster_tickets.ClusterTickets when nodes share a lake and a secret

    def get_flight_info_statement(self, call: Call, command: sql.CommandStatementQuery,
                                  descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        """Runs the statement now (so DDL/DML happen exactly once) and parks its stream for DoGet; in a cluster,
        a plain query gets a signed ticket any node can serve instead."""
        if self.cluster_tickets is not None and not command.HasField("transaction_id"):
            info = self.cluster_tickets.flight_info(call, command.query, None, descriptor, self.database.parse)
            if info is not None:
                return info
        transaction = optional(command, "transaction_id")
        outcome = call.session.execute(command.query, transaction)
        handle = call.session.park(outcome.reader)
        info = info_for(descriptor, outcome.reader.schema, statement_ticket(handle), outcome.rowcount)
        return info if self.cluster_tickets is None else self.cluster_tickets.session_bound(info)

    def get_schema_statement(self, call: Call, command: sql.CommandStatementQuery):
        schema = call.session.schema_of(command.query)
        return schemas.EMPTY if schema is None else schema

    def do_get_statement(self, call: Call, ticket: sql.TicketStatementQuery):
        if self.cluster_tickets is not None and is_signed(ticket.statement_handle):
            return self.cluster_tickets.stream(call, ticket.statement_handle)
        return call.stream(call.session.take(ticket.statement_handle))

    def do_get_statement_direct(self, call: Call, command: sql.CommandStatementQuery):
        """A ticket that carries the query itself (some clients build tickets by hand)."""
        outcome = call.session.execute(command.query)
        return call.stream(call.session.stream(outcome.reader))

    def do_put_statement_update(self, call: Call, command: sql.CommandStatementUpdate, reader, writer) -> int:
        transaction = optional(command, "transaction_id")
        count = call.session.execute_update(command.query, transaction)
        writer.write(update_result(count))
        return count
