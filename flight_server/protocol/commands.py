"""Decodes descriptor, ticket and action bytes into typed Flight SQL messages, and packs replies as Any."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from . import flight_core_pb2 as core
from . import flight_sql_pb2 as sql

TYPE_URL_PREFIX = "type.googleapis.com/"

# Every Flight SQL message a client may send inside a descriptor command or a ticket.
COMMAND_TYPES: dict[str, type[Message]] = {
    TYPE_URL_PREFIX + cls.DESCRIPTOR.full_name: cls
    for cls in (
        sql.CommandStatementQuery,
        sql.CommandStatementUpdate,
        sql.CommandStatementIngest,
        sql.CommandStatementSubstraitPlan,
        sql.CommandPreparedStatementQuery,
        sql.CommandPreparedStatementUpdate,
        sql.TicketStatementQuery,
        sql.CommandGetSqlInfo,
        sql.CommandGetXdbcTypeInfo,
        sql.CommandGetCatalogs,
        sql.CommandGetDbSchemas,
        sql.CommandGetTables,
        sql.CommandGetTableTypes,
        sql.CommandGetPrimaryKeys,
        sql.CommandGetExportedKeys,
        sql.CommandGetImportedKeys,
        sql.CommandGetCrossReference,
    )
}

# Action name -> request message class (None: the action takes no body).
ACTION_TYPES: dict[str, type[Message] | None] = {
    "CreatePreparedStatement": sql.ActionCreatePreparedStatementRequest,
    "ClosePreparedStatement": sql.ActionClosePreparedStatementRequest,
    "BeginTransaction": sql.ActionBeginTransactionRequest,
    "EndTransaction": sql.ActionEndTransactionRequest,
    "BeginSavepoint": sql.ActionBeginSavepointRequest,
    "EndSavepoint": sql.ActionEndSavepointRequest,
    "CancelQuery": sql.ActionCancelQueryRequest,
    "CreatePreparedSubstraitPlan": sql.ActionCreatePreparedSubstraitPlanRequest,
    "CancelFlightInfo": core.CancelFlightInfoRequest,
    "SetSessionOptions": core.SetSessionOptionsRequest,
    "GetSessionOptions": core.GetSessionOptionsRequest,
    "CloseSession": core.CloseSessionRequest,
}


class ProtocolError(ValueError):
    """Bytes from a client that are not a well-formed Flight SQL message."""


def unpack_command(data: bytes) -> Message:
    """Parses Any-wrapped command bytes into the Flight SQL message they name."""
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except (DecodeError, RuntimeError) as exc:
        raise ProtocolError(f"command is not a protobuf Any: {exc}") from None
    cls = COMMAND_TYPES.get(envelope.type_url)
    if cls is None:
        shown = envelope.type_url or "(empty)"
        raise ProtocolError(f"unknown Flight SQL command type {shown!r}")
    return _parse(cls, envelope.value)


def unpack_action(action_type: str, body: bytes) -> Message:
    """Parses an action body; Flight SQL clients send most bodies wrapped in Any, some bare."""
    if action_type not in ACTION_TYPES:
        raise ProtocolError(f"unknown action {action_type!r}")
    cls = ACTION_TYPES[action_type]
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(body)
        if envelope.type_url == TYPE_URL_PREFIX + cls.DESCRIPTOR.full_name:
            return _parse(cls, envelope.value)
    except (DecodeError, RuntimeError):
        pass
    return _parse(cls, body)


def _parse(cls: type[Message], payload: bytes) -> Message:
    message = cls()
    try:
        message.ParseFromString(payload)
    except (DecodeError, RuntimeError) as exc:
        raise ProtocolError(f"malformed {cls.DESCRIPTOR.name}: {exc}") from None
    return message


def pack(message: Message) -> bytes:
    """Wraps a message in google.protobuf.Any and serializes it."""
    envelope = any_pb2.Any()
    envelope.Pack(message)
    return envelope.SerializeToString()
