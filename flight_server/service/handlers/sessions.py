"""Transactions, session options (catalog/schema), session close and query cancel."""

from __future__ import annotations

import pyarrow.flight as flight

from ...engine import NotFoundError
from ...engine.errors import QueryError
from ...protocol import commands
from ...protocol import flight_core_pb2 as core
from ...protocol import flight_sql_pb2 as sql
from .base import Call

_END = sql.ActionEndTransactionRequest


class SessionHandlers:
    def action_begin_transaction(self, call: Call, request):
        transaction_id = call.session.begin()
        return [commands.pack(sql.ActionBeginTransactionResult(transaction_id=transaction_id))]

    def action_end_transaction(self, call: Call, request: sql.ActionEndTransactionRequest):
        if request.action not in (_END.END_TRANSACTION_COMMIT, _END.END_TRANSACTION_ROLLBACK):
            raise QueryError(f"EndTransaction needs action END_TRANSACTION_COMMIT (1) or END_TRANSACTION_ROLLBACK (2), "
                             f"not {request.action}")
        call.session.end(request.transaction_id, commit=request.action == _END.END_TRANSACTION_COMMIT)
        return []

    def action_set_session_options(self, call: Call, request: core.SetSessionOptionsRequest):
        result = core.SetSessionOptionsResult()
        wanted: dict[str, str] = {}
        for name, value in request.session_options.items():
            kind = value.WhichOneof("option_value")
            if name == "statement_timeout":
                seconds = _seconds(value, kind)
                if seconds is None or not self._timeout_allowed(seconds):
                    result.errors[name].value = core.SetSessionOptionsResult.INVALID_VALUE
                else:
                    call.session.options["statement_timeout"] = seconds
            elif name not in ("catalog", "schema"):
                result.errors[name].value = core.SetSessionOptionsResult.INVALID_NAME
            elif kind != "string_value":
                result.errors[name].value = core.SetSessionOptionsResult.INVALID_VALUE
            else:
                wanted[name] = value.string_value
        if wanted:
            call.session.use(wanted.get("catalog"), wanted.get("schema"))
        return [result.SerializeToString()]

    def _timeout_allowed(self, seconds: float) -> bool:
        """The server-wide --statement-timeout is a ceiling: a session may lower it, never raise or remove it
        (0 means no timeout)."""
        ceiling = self.config.statement_timeout
        return not ceiling or 0 < seconds <= ceiling

    def action_get_session_options(self, call: Call, request):
        result = core.GetSessionOptionsResult()
        result.session_options["catalog"].string_value = call.session.current_catalog()
        result.session_options["schema"].string_value = call.session.current_schema()
        if "statement_timeout" in call.session.options:
            result.session_options["statement_timeout"].double_value = call.session.options["statement_timeout"]
        return [result.SerializeToString()]

    def action_close_session(self, call: Call, request):
        closed = self.pool.close(call.key)
        if self.auth is not None and call.principal is not None:
            # Tokens naming this session stop working, also after a restart (a Basic-call session is named by
            # its key); an external token is remembered until it expires.
            self.auth.signer.revoke(call.principal.session or call.key[2:], call.principal.expires)
        status = core.CloseSessionResult.CLOSED if closed else core.CloseSessionResult.UNSPECIFIED
        if not closed:
            raise NotFoundError("session not found")
        return [core.CloseSessionResult(status=status).SerializeToString()]

    def action_cancel_flight_info(self, call: Call, request: core.CancelFlightInfoRequest):
        try:
            info = flight.FlightInfo.deserialize(request.info)
        except Exception:  # noqa: BLE001 - whatever pyarrow says, the bytes are not a FlightInfo
            raise QueryError("CancelFlightInfo needs the serialized FlightInfo of the query to cancel") from None
        status = core.CANCEL_STATUS_NOT_CANCELLABLE
        for endpoint in info.endpoints:
            try:
                ticket = commands.unpack_command(endpoint.ticket.ticket)
            except commands.ProtocolError:
                continue
            if isinstance(ticket, sql.TicketStatementQuery) and call.session.cancel(ticket.statement_handle):
                status = core.CANCEL_STATUS_CANCELLED
        return [core.CancelFlightInfoResult(status=status).SerializeToString()]

    def action_cancel_query(self, call: Call, request: sql.ActionCancelQueryRequest):
        inner = core.CancelFlightInfoRequest(info=request.info)
        self.action_cancel_flight_info(call, inner)
        result = sql.ActionCancelQueryResult(result=sql.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED)
        return [commands.pack(result)]


def _seconds(value: core.SessionOptionValue, kind: str | None) -> float | None:
    """A non-negative finite number of seconds from an int, double or numeric string option value."""
    if kind in ("int64_value", "double_value"):
        seconds = float(getattr(value, kind))
    elif kind == "string_value":
        try:
            seconds = float(value.string_value)
        except ValueError:
            return None
    else:
        return None
    return seconds if 0 <= seconds < float("inf") else None
