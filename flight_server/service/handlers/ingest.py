"""Bulk ingest (CommandStatementIngest): the DoPut stream goes straight into DuckDB's Arrow scan."""

from __future__ import annotations

from ...engine.errors import QueryError
from ...engine.ingest import IfExists, IfMissing, IngestTarget
from ...protocol import flight_sql_pb2 as sql
from .base import Call, incoming, optional, update_result

_OPTIONS = sql.CommandStatementIngest.TableDefinitionOptions
_IF_EXISTS = {
    _OPTIONS.TABLE_EXISTS_OPTION_FAIL: IfExists.FAIL,
    _OPTIONS.TABLE_EXISTS_OPTION_APPEND: IfExists.APPEND,
    _OPTIONS.TABLE_EXISTS_OPTION_REPLACE: IfExists.REPLACE,
}
_IF_MISSING = {
    _OPTIONS.TABLE_NOT_EXIST_OPTION_CREATE: IfMissing.CREATE,
    _OPTIONS.TABLE_NOT_EXIST_OPTION_FAIL: IfMissing.FAIL,
}


class IngestHandlers:
    def do_put_ingest(self, call: Call, command: sql.CommandStatementIngest, reader, writer) -> int:
        options = command.table_definition_options
        if options.if_exists not in _IF_EXISTS or options.if_not_exist not in _IF_MISSING:
            raise QueryError("CommandStatementIngest needs if_exists and if_not_exist options set")
        target = IngestTarget(
            table=command.table,
            schema=optional(command, "schema"),
            catalog=optional(command, "catalog"),
            temporary=command.temporary,
            if_exists=_IF_EXISTS[options.if_exists],
            if_missing=_IF_MISSING[options.if_not_exist],
        )
        transaction = optional(command, "transaction_id")
        count = call.session.ingest(incoming(call, reader), target, transaction)
        writer.write(update_result(count))
        return count
