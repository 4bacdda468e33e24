"""Hand-rolled protobuf encoding of the few Flight SQL messages the raw tests send.

The raw ``pyarrow.flight`` tests must not depend on the server's own generated
protobuf modules, so the handful of messages they need are encoded here by
hand (field numbers from ``FlightSql.proto``).  Every command travels wrapped
in ``google.protobuf.Any``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."

# Wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return _varint((num << 3) | _LEN) + _varint(len(data)) + data


def field_varint(num: int, value: int) -> bytes:
    return _varint((num << 3) | _VARINT) + _varint(value)


def decode_fields(buf: bytes) -> dict[int, list]:
    """Decode one message level: {field_number: [values]} (LEN -> bytes, VARINT -> int)."""
    out: dict[int, list] = {}
    i = 0
    n = len(buf)

    def read_varint() -> int:
        nonlocal i
        shift = 0
        result = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < n:
        key = read_varint()
        num, wt = key >> 3, key & 7
        if wt == _VARINT:
            val: object = read_varint()
        elif wt == _LEN:
            length = read_varint()
            if i + length > n:
                raise ValueError("truncated length-delimited field")
            val = bytes(buf[i:i + length])
            i += length
        elif wt == _I64:
            val = bytes(buf[i:i + 8])
            i += 8
        elif wt == _I32:
            val = bytes(buf[i:i + 4])
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.setdefault(num, []).append(val)
    return out


def pack_any(type_name: str, payload: bytes) -> bytes:
    return field_bytes(1, TYPE_PREFIX + type_name) + field_bytes(2, payload)


def unpack_any(buf: bytes) -> tuple[str, bytes]:
    fields = decode_fields(buf)
    type_url = fields.get(1, [b""])[0].decode()
    value = fields.get(2, [b""])[0]
    return type_url, value


# --- commands ----------------------------------------------------------------

def command_statement_query(sql: str, transaction_id: bytes | None = None) -> bytes:
    body = field_bytes(1, sql)
    if transaction_id is not None:
        body += field_bytes(2, transaction_id)
    return pack_any("CommandStatementQuery", body)


def command_statement_ingest(table: str) -> bytes:
    """Ingest into a new table (TableDefinitionOptions: create it if missing, fail if it exists)."""
    options = field_varint(1, 1) + field_varint(2, 1)
    return pack_any("CommandStatementIngest", field_bytes(1, options) + field_bytes(2, table))


def command_get_catalogs() -> bytes:
    return pack_any("CommandGetCatalogs", b"")


def command_prepared_statement_query(handle: bytes) -> bytes:
    return pack_any("CommandPreparedStatementQuery", field_bytes(1, handle))


def action_create_prepared_statement(sql: str, transaction_id: bytes | None = None) -> bytes:
    body = field_bytes(1, sql)
    if transaction_id is not None:
        body += field_bytes(2, transaction_id)
    return pack_any("ActionCreatePreparedStatementRequest", body)


def action_close_prepared_statement(handle: bytes) -> bytes:
    return pack_any("ActionClosePreparedStatementRequest", field_bytes(1, handle))


def parse_create_prepared_statement_result(body: bytes) -> dict:
    """ActionCreatePreparedStatementResult (wrapped in Any) -> dict."""
    type_url, value = unpack_any(body)
    if not type_url.endswith("ActionCreatePreparedStatementResult"):
        raise ValueError(f"unexpected result type {type_url!r}")
    fields = decode_fields(value)
    return {
        "handle": fields.get(1, [b""])[0],
        "dataset_schema": fields.get(2, [b""])[0],
        "parameter_schema": fields.get(3, [b""])[0],
    }


def schema_from_ipc(message: bytes) -> pa.Schema | None:
    """A Flight SQL schema field is an IPC-encapsulated schema message."""
    if not message:
        return None
    return pa.ipc.read_schema(pa.py_buffer(message))


# --- convenience --------------------------------------------------------------

def raw_query(client: flight.FlightClient, sql: str) -> tuple[flight.FlightInfo, pa.Table]:
    """GetFlightInfo(CommandStatementQuery) then DoGet every endpoint."""
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command_statement_query(sql)))
    tables = [client.do_get(ep.ticket).read_all() for ep in info.endpoints]
    if not tables:
        return info, info.schema.empty_table()
    return info, pa.concat_tables(tables) if len(tables) > 1 else tables[0]


# --- Flight core session actions (bodies are bare messages, not Any) ----------

def parse_session_options(body: bytes) -> dict:
    """GetSessionOptionsResult -> {name: value} (string/bool/int64/double/string list)."""
    import struct

    out: dict = {}
    for entry in decode_fields(body).get(1, []):
        fields = decode_fields(entry)
        key = fields.get(1, [b""])[0].decode()
        value_msg = fields.get(2, [b""])[0]
        vf = decode_fields(value_msg) if value_msg else {}
        if 1 in vf:
            value: object = vf[1][0].decode()
        elif 2 in vf:
            value = bool(vf[2][0])
        elif 3 in vf:
            value = struct.unpack("<q", vf[3][0])[0]
        elif 4 in vf:
            value = struct.unpack("<d", vf[4][0])[0]
        elif 5 in vf:
            value = [v.decode() for v in decode_fields(vf[5][0]).get(1, [])]
        else:
            value = None
        out[key] = value
    return out


def set_session_string_option(name: str, value: str) -> bytes:
    """SetSessionOptionsRequest with one string option."""
    option_value = field_bytes(1, value)
    entry = field_bytes(1, name) + field_bytes(2, option_value)
    return field_bytes(1, entry)
