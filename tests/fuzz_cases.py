"""A seeded generator of malformed requests for every Flight RPC, and the driver that sends them.

Used by tests/test_fuzz.py (a short run in the suite) and benchmarks/fuzz.py (the long run). Every case is
a client's mistake, so the server must answer it with a client error (never INTERNAL) and keep running.

Kinds of cases:
- DoPut streams whose record batches do not fit their schema: another schema's batch, flipped validity
  bits, bad string/list offsets, dictionary indices out of range, corrupt view buffers, invalid UTF-8, and
  garbage, mutated, truncated or huge IPC headers; on every DoPut path (Flight SQL ingest, prepared statement
  parameters, plain-Flight path descriptors, statement updates). Sent as raw FlightData frames over gRPC so
  the corrupt bytes reach the server exactly as built (pyarrow's writer would refuse some of them).
- Garbage command, ticket and action bytes; Flight SQL messages with garbage fields (EndTransaction with
  action 0, CancelFlightInfo with junk); unknown actions; garbage headers (authorization, ingest mode).
- Garbage Handshake, DoExchange, ListFlights and unary request frames.

The messages are built by hand (tests/flightsql_wire.py), never with the server's own protobuf modules.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pyarrow as pa
import pyarrow.flight as flight

import flightsql_wire as wire

SERVICE = "/arrow.flight.protocol.FlightService/"
CALL_TIMEOUT_S = 20.0


# -- protobuf by hand ---------------------------------------------------------------------------------

def _fb(num: int, data: bytes | str) -> bytes:
    return wire.field_bytes(num, data)


def _fv(num: int, value: int) -> bytes:
    return wire.field_varint(num, value)


def descriptor_cmd(command: bytes) -> bytes:
    return _fv(1, 2) + _fb(2, command)


def descriptor_path(*parts: str) -> bytes:
    return _fv(1, 1) + b"".join(_fb(3, part) for part in parts)


def flight_data(header: bytes = b"", body: bytes = b"", descriptor: bytes | None = None) -> bytes:
    out = b""
    if descriptor is not None:
        out += _fb(1, descriptor)
    if header:
        out += _fb(2, header)
    if body:
        out += _fb(1000, body)
    return out


def ingest_command(table: str, if_exists: int, if_not_exist: int = 1, temporary: bool = False) -> bytes:
    options = _fv(1, if_not_exist) + _fv(2, if_exists)
    payload = _fb(1, options) + _fb(2, table) + (_fv(5, 1) if temporary else b"")
    return wire.pack_any("CommandStatementIngest", payload)


def prepared_update_command(handle: bytes) -> bytes:
    return wire.pack_any("CommandPreparedStatementUpdate", _fb(1, handle))


def statement_update_command(sql: str) -> bytes:
    return wire.pack_any("CommandStatementUpdate", _fb(1, sql))


# -- record batches, valid and corrupt -----------------------------------------------------------------

COLUMN_KINDS = ("int64", "string", "binary", "large_string", "list", "dict", "string_view", "binary_view",
                "struct", "bool", "double", "fixed_list")


def _words(rng: random.Random, n: int, long: bool = False) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < 0.15:
            out.append(None)
        else:
            size = rng.randint(13, 40) if long or rng.random() < 0.5 else rng.randint(0, 12)
            out.append("".join(rng.choice(string.ascii_letters) for _ in range(size)))
    return out


def valid_column(rng: random.Random, kind: str, n: int) -> pa.Array:
    ints = [None if rng.random() < 0.15 else rng.randint(-10**6, 10**6) for _ in range(n)]
    if kind == "int64":
        return pa.array(ints, pa.int64())
    if kind == "double":
        return pa.array([None if v is None else v / 7 for v in ints], pa.float64())
    if kind == "bool":
        return pa.array([None if v is None else v % 2 == 0 for v in ints], pa.bool_())
    if kind == "string":
        return pa.array(_words(rng, n), pa.string())
    if kind == "large_string":
        return pa.array(_words(rng, n), pa.large_string())
    if kind == "binary":
        return pa.array([None if w is None else w.encode() for w in _words(rng, n)], pa.binary())
    if kind == "string_view":
        return pa.array(_words(rng, n, long=True), pa.string_view())
    if kind == "binary_view":
        return pa.array([None if w is None else w.encode() for w in _words(rng, n, long=True)], pa.binary_view())
    if kind == "list":
        return pa.array([None if v is None else list(range(abs(v) % 5)) for v in ints], pa.list_(pa.int32()))
    if kind == "fixed_list":
        return pa.array([None if v is None else [v % 100, 1, 2] for v in ints], pa.list_(pa.int16(), 3))
    if kind == "dict":
        return pa.array([None if v is None else f"k{abs(v) % 7}" for v in ints]).dictionary_encode()
    if kind == "struct":
        return pa.StructArray.from_arrays([pa.array(ints, pa.int32()), pa.array(_words(rng, n))], ["a", "b"])
    raise ValueError(kind)


def valid_batch(rng: random.Random, columns: int | None = None, rows: int | None = None) -> pa.RecordBatch:
    columns = columns or rng.randint(1, 3)
    rows = rows if rows is not None else rng.randint(1, 200)
    kinds = [rng.choice(COLUMN_KINDS) for _ in range(columns)]
    arrays = [valid_column(rng, kind, rows) for kind in kinds]
    return pa.record_batch(arrays, names=[f"c{i}_{kind}" for i, kind in enumerate(kinds)])


def _mutable(buffer: pa.Buffer | None) -> bytearray:
    return bytearray(buffer.to_pybytes()) if buffer is not None else bytearray()


def _int_at(data: bytearray, index: int, width: int) -> int:
    return int.from_bytes(data[index * width:(index + 1) * width], "little", signed=True)


def _set_int(data: bytearray, index: int, width: int, value: int) -> None:
    data[index * width:(index + 1) * width] = value.to_bytes(width, "little", signed=True)


def flip_validity(rng: random.Random, array: pa.Array) -> pa.Array:
    """Random validity bits flipped; the null count is left as it was (so it no longer matches)."""
    buffers = array.buffers()
    bitmap = _mutable(buffers[0]) or bytearray(b"\xff" * ((len(array) + 7) // 8))
    for _ in range(rng.randint(1, 8)):
        bit = rng.randrange(max(1, len(array)))
        bitmap[bit // 8] ^= 1 << (bit % 8)
    type_ = array.type
    own = 3 if pa.types.is_binary_view(type_) or pa.types.is_string_view(type_) else None
    if pa.types.is_struct(type_):
        return pa.Array.from_buffers(type_, len(array), [pa.py_buffer(bytes(bitmap))],
                                     null_count=array.null_count,
                                     children=[array.field(i) for i in range(type_.num_fields)])
    if pa.types.is_list(type_) or pa.types.is_fixed_size_list(type_):
        own_buffers = buffers[:2] if pa.types.is_list(type_) else buffers[:1]
        return pa.Array.from_buffers(type_, len(array), [pa.py_buffer(bytes(bitmap))] + own_buffers[1:],
                                     null_count=array.null_count, children=[array.values])
    if pa.types.is_dictionary(type_):
        indices = flip_validity(rng, array.indices)
        return pa.DictionaryArray.from_arrays(indices, array.dictionary)
    rest = buffers[1:] if own is None else buffers[1:]
    return pa.Array.from_buffers(type_, len(array), [pa.py_buffer(bytes(bitmap))] + rest,
                                 null_count=array.null_count)


def bad_offsets(rng: random.Random, array: pa.Array) -> pa.Array | None:
    """Offsets that go backwards, negative or past the data; the first and last stay sound (pyarrow's own
    IPC writer slices the data by them)."""
    type_ = array.type
    if len(array) < 2:
        return None
    if pa.types.is_string(type_) or pa.types.is_binary(type_) or pa.types.is_large_string(type_):
        width = 8 if pa.types.is_large_string(type_) else 4
        buffers = array.buffers()
        offsets = _mutable(buffers[1])
        slot = rng.randint(1, len(array) - 1)
        last = _int_at(offsets, len(array), width)
        _set_int(offsets, slot, width, rng.choice([-rng.randint(1, 1000), last + rng.randint(1, 10**6),
                                                   _int_at(offsets, slot - 1, width) - 1]))
        return pa.Array.from_buffers(type_, len(array), [buffers[0], pa.py_buffer(bytes(offsets)), buffers[2]],
                                     null_count=array.null_count)
    if pa.types.is_list(type_):
        buffers = array.buffers()
        offsets = _mutable(buffers[1])
        slot = rng.randint(1, len(array) - 1)
        last = _int_at(offsets, len(array), 4)
        _set_int(offsets, slot, 4, rng.choice([-5, last + rng.randint(1, 10**6), 2**31 - 1]))
        return pa.Array.from_buffers(type_, len(array), [buffers[0], pa.py_buffer(bytes(offsets))],
                                     null_count=array.null_count, children=[array.values])
    return None


def bad_dictionary(rng: random.Random, array: pa.Array) -> pa.Array | None:
    if not pa.types.is_dictionary(array.type) or len(array) == 0:
        return None
    indices = _mutable(array.indices.buffers()[1])
    width = array.indices.type.bit_width // 8
    for _ in range(rng.randint(1, 3)):
        _set_int(indices, rng.randrange(len(array)), width,
                 rng.choice([len(array.dictionary) + rng.randint(0, 1000), -rng.randint(1, 50), 2**(8 * width - 1) - 1]))
    bad = pa.Array.from_buffers(array.indices.type, len(array), [None, pa.py_buffer(bytes(indices))], null_count=0)
    return pa.DictionaryArray.from_arrays(bad, array.dictionary, safe=False)


def bad_views(rng: random.Random, array: pa.Array) -> pa.Array | None:
    """Views pointing at a missing data buffer, past its end, or with negative lengths."""
    type_ = array.type
    if not (pa.types.is_string_view(type_) or pa.types.is_binary_view(type_)) or len(array) == 0:
        return None
    buffers = array.buffers()
    views = _mutable(buffers[1])
    for _ in range(rng.randint(1, 3)):
        slot = rng.randrange(len(array))
        base = slot * 16
        mode = rng.randrange(4)
        if mode == 0:  # long view, buffer index out of range
            views[base:base + 4] = (100).to_bytes(4, "little")
            views[base + 8:base + 12] = rng.randint(5, 1000).to_bytes(4, "little")
        elif mode == 1:  # long view, offset past the buffer
            views[base:base + 4] = (50).to_bytes(4, "little")
            views[base + 8:base + 12] = (0).to_bytes(4, "little")
            views[base + 12:base + 16] = rng.randint(10**6, 2**31 - 1).to_bytes(4, "little")
        elif mode == 2:  # negative length
            views[base:base + 4] = (-rng.randint(1, 100)).to_bytes(4, "little", signed=True)
        else:  # random bytes
            views[base:base + 16] = bytes(rng.randrange(256) for _ in range(16))
    return pa.Array.from_buffers(type_, len(array), [buffers[0], pa.py_buffer(bytes(views))] + buffers[2:],
                                 null_count=array.null_count)


def bad_utf8(rng: random.Random, array: pa.Array) -> pa.Array | None:
    if not pa.types.is_string(array.type) or len(array) == 0:
        return None
    buffers = array.buffers()
    data = _mutable(buffers[2])
    if not data:
        return None
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.choice([0xFF, 0xC0, 0xFE, 0x80])
    return pa.Array.from_buffers(array.type, len(array), [buffers[0], buffers[1], pa.py_buffer(bytes(data))],
                                 null_count=array.null_count)


ARRAY_CORRUPTIONS: dict[str, Callable[[random.Random, pa.Array], pa.Array | None]] = {
    "flipped validity bits": flip_validity,
    "bad offsets": bad_offsets,
    "dictionary index out of range": bad_dictionary,
    "corrupt view buffer": bad_views,
    "invalid utf-8": bad_utf8,
}


def ipc_messages(schema: pa.Schema, batches: list[pa.RecordBatch]) -> list[tuple[bytes, bytes]]:
    """(metadata, body) of every IPC message of a stream: schema, dictionaries, batches."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    reader = pa.ipc.MessageReader.open_stream(sink.getvalue())
    out = []
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return out
        body = message.body.to_pybytes() if message.body is not None else b""
        out.append((message.metadata.to_pybytes(), body))


def corrupt_stream(rng: random.Random) -> tuple[str, pa.Schema, list[tuple[bytes, bytes]]]:
    """A declared schema and IPC messages whose batches do not fit it."""
    kind = rng.choice(["array"] * 6 + ["wrong schema"] * 2 + ["garbage header", "mutated header",
                                                                "truncated body", "huge header", "garbage schema",
                                                                "batch before schema", "garbage body"])
    if kind == "array":
        for _ in range(20):
            label = rng.choice(list(ARRAY_CORRUPTIONS))
            batch = valid_batch(rng)
            index = rng.randrange(batch.num_columns)
            try:
                bad = ARRAY_CORRUPTIONS[label](rng, batch.column(index))
            except (pa.ArrowException, ValueError, IndexError):
                bad = None
            if bad is None:
                continue
            columns = list(batch.columns)
            columns[index] = bad
            schema = batch.schema.set(index, batch.schema.field(index).with_type(bad.type))
            corrupt = pa.RecordBatch.from_arrays(columns, schema=schema)
            good = [valid_batch_like(rng, schema) for _ in range(rng.randint(0, 2))]
            return label, schema, ipc_messages(schema, good + [corrupt])
        kind = "wrong schema"
    declared_batch = valid_batch(rng)
    schema = declared_batch.schema
    messages = ipc_messages(schema, [declared_batch])
    if kind == "wrong schema":
        other = valid_batch(rng, columns=schema.__len__() if rng.random() < 0.7 else None,
                            rows=declared_batch.num_rows if rng.random() < 0.7 else None)
        return kind, schema, messages[:1] + ipc_messages(other.schema, [other])[1:]
    schema_message, rest = messages[0], messages[1:]
    last_meta, last_body = rest[-1]
    if kind == "garbage header":
        rest[-1] = (_random_bytes(rng, rng.randint(1, 600)), last_body)
    elif kind == "mutated header":
        meta = bytearray(last_meta)
        for _ in range(rng.randint(1, 6)):
            meta[rng.randrange(len(meta))] = rng.randrange(256)
        rest[-1] = (bytes(meta), last_body)
    elif kind == "truncated body":
        rest[-1] = (last_meta, last_body[:rng.randrange(max(1, len(last_body)))])
    elif kind == "huge header":
        rest[-1] = (last_meta + _random_bytes(rng, rng.randint(1 << 16, 1 << 21)), last_body)
    elif kind == "garbage schema":
        schema_message = (_random_bytes(rng, rng.randint(1, 300)), b"")
    elif kind == "batch before schema":
        schema_message = rest[-1]
    elif kind == "garbage body":
        rest[-1] = (last_meta, _random_bytes(rng, len(last_body)))
    return kind, schema, [schema_message] + rest


def valid_batch_like(rng: random.Random, schema: pa.Schema) -> pa.RecordBatch:
    rows = rng.randint(1, 50)
    arrays = []
    for field in schema:
        try:
            arrays.append(valid_column(rng, field.name.split("_", 1)[1], rows).cast(field.type))
        except (pa.ArrowException, ValueError):
            arrays.append(pa.nulls(rows, field.type))
    return pa.record_batch(arrays, schema=schema)


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


# -- the target server and one case ---------------------------------------------------------------------

@dataclass
class Outcome:
    code: str  # a gRPC status name, "OK", or "CLIENT:<error>" when the client itself refused
    message: str = ""


class Target:
    """Clients for one server: pyarrow.flight plus a raw gRPC channel, with the caller's credentials."""

    def __init__(self, uri: str, headers: list[tuple[bytes, bytes]] | None = None):
        self.uri = uri
        self.headers = list(headers or [])
        self.client, self.channel = _connect(uri)
        self.metadata = [(k.decode().lower(), v.decode()) for k, v in self.headers]
        self.prepared_handle = b""
        self.credentials: tuple[str, str] | None = None

    def options(self, extra: list[tuple[bytes, bytes]] | None = None) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(timeout=CALL_TIMEOUT_S, headers=self.headers + list(extra or []))

    def prepare(self) -> None:
        """A real prepared statement on the raw channel's session, so parameter DoPuts reach a handle."""
        body = wire.action_create_prepared_statement("SELECT CAST(? AS INTEGER) AS v")
        results = self.raw_stream("DoAction", _fb(1, "CreatePreparedStatement") + _fb(2, body))
        if results:
            fields = wire.decode_fields(results[0])
            if 2 in fields:  # Result.body
                self.prepared_handle = wire.parse_create_prepared_statement_result(fields[2][0])["handle"]

    def raw_stream(self, method: str, request: bytes, extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        call = self.channel.unary_stream(SERVICE + method, request_serializer=_same, response_deserializer=_same)
        return list(call(request, timeout=CALL_TIMEOUT_S, metadata=self.metadata + list(extra or [])))

    def raw_bidi(self, method: str, frames: list[bytes], extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        call = self.channel.stream_stream(SERVICE + method, request_serializer=_same, response_deserializer=_same)
        return list(call(iter(frames), timeout=CALL_TIMEOUT_S, metadata=self.metadata + list(extra or [])))

    def raw_unary(self, method: str, request: bytes) -> bytes:
        call = self.channel.unary_unary(SERVICE + method, request_serializer=_same, response_deserializer=_same)
        return call(request, timeout=CALL_TIMEOUT_S, metadata=self.metadata)

    def select_one(self) -> int:
        """SELECT 1 on this target's session."""
        descriptor = flight.FlightDescriptor.for_command(wire.command_statement_query("SELECT 1 AS one"))
        info = self.client.get_flight_info(descriptor, self.options())
        table = self.client.do_get(info.endpoints[0].ticket, self.options()).read_all()
        return table.column(0)[0].as_py()

    @classmethod
    def login(cls, uri: str, user: str, password: str) -> "Target":
        """A target whose calls carry the bearer token the server hands out for `user`."""
        target = cls(uri)
        target.credentials = (user, password)
        target.renew()
        return target

    def renew(self) -> None:
        """A fresh session (a new bearer token, or without authentication a new connection) with a prepared
        statement in it: CloseSession revokes the old token, BeginTransaction leaves a transaction open."""
        if self.credentials is None:
            self.close()
            self.client, self.channel = _connect(self.uri)
        else:
            header = self.client.authenticate_basic_token(*self.credentials)
            self.headers = [header]
            self.metadata = [(k.decode().lower(), v.decode()) for k, v in self.headers]
        self.prepare()

    def close(self) -> None:
        self.client.close()
        self.channel.close()


def fresh_check(uri: str, user: str | None = None, password: str | None = None) -> Callable[[], int]:
    """SELECT 1 on a new connection and session each time."""
    def check() -> int:
        target = Target.login(uri, user, password) if user else Target(uri)
        try:
            return target.select_one()
        finally:
            target.close()
    return check


def _connect(uri: str) -> tuple[flight.FlightClient, grpc.Channel]:
    channel = grpc.insecure_channel(uri.split("://", 1)[1], options=[("grpc.max_send_message_length", 64 << 20),
                                                                     ("grpc.max_receive_message_length", 64 << 20)])
    return flight.FlightClient(uri), channel


def _same(data: bytes) -> bytes:
    return data


@dataclass
class Case:
    number: int
    rpc: str
    label: str
    run: Callable[[Target], object]

    def __repr__(self) -> str:
        return f"<case {self.number} {self.rpc}: {self.label}>"


def execute(case: Case, target: Target) -> Outcome:
    try:
        case.run(target)
        return Outcome("OK")
    except grpc.RpcError as exc:
        return Outcome(exc.code().name, exc.details() or "")
    except flight.FlightError as exc:
        return Outcome(_flight_code(exc), str(exc))
    except pa.ArrowException as exc:
        return Outcome(_arrow_code(exc), str(exc))
    except OSError as exc:  # pyarrow's generic status (an error raised by server middleware lands here)
        return Outcome("UNAUTHENTICATED" if "Unauthenticated" in str(exc) else "UNKNOWN", str(exc))


def _flight_code(exc: BaseException) -> str:
    for cls, code in ((flight.FlightInternalError, "INTERNAL"), (flight.FlightTimedOutError, "DEADLINE_EXCEEDED"),
                      (flight.FlightUnavailableError, "UNAVAILABLE"), (flight.FlightCancelledError, "CANCELLED"),
                      (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
                      (flight.FlightUnauthorizedError, "PERMISSION_DENIED"), (flight.FlightServerError, "UNKNOWN")):
        if isinstance(exc, cls):
            return code
    return "UNKNOWN"


def _arrow_code(exc: BaseException) -> str:
    for cls, code in ((pa.ArrowInvalid, "INVALID_ARGUMENT"), (pa.ArrowKeyError, "NOT_FOUND"),
                      (pa.ArrowNotImplementedError, "UNIMPLEMENTED"), (pa.ArrowIOError, "UNKNOWN"),
                      (pa.ArrowException, "UNKNOWN")):
        if isinstance(exc, cls):
            return code
    return "CLIENT:" + type(exc).__name__


# -- the generators -------------------------------------------------------------------------------------

_TYPE_NAMES = ("CommandStatementQuery", "CommandStatementUpdate", "CommandStatementIngest",
               "CommandPreparedStatementQuery", "CommandPreparedStatementUpdate", "TicketStatementQuery",
               "CommandGetSqlInfo", "CommandGetTables", "CommandGetDbSchemas", "CommandGetPrimaryKeys",
               "CommandGetCrossReference", "CommandGetXdbcTypeInfo", "CommandStatementSubstraitPlan",
               "NoSuchCommand")
_ACTIONS = ("CreatePreparedStatement", "ClosePreparedStatement", "BeginTransaction", "EndTransaction",
            "CancelFlightInfo", "CancelQuery", "SetSessionOptions", "GetSessionOptions", "CloseSession",
            "BeginSavepoint", "EndSavepoint", "CreatePreparedSubstraitPlan", "health", "no-such-action", "")


def garbage_command(rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return _random_bytes(rng, rng.randint(0, 200))
    if choice == 1:  # an Any naming a known type, carrying junk
        return wire.pack_any(rng.choice(_TYPE_NAMES), _random_bytes(rng, rng.randint(0, 100)))
    if choice == 2:  # an Any with a junk type URL
        return _fb(1, "type.googleapis.com/" + "".join(rng.choice(string.printable) for _ in range(20))) + \
            _fb(2, _random_bytes(rng, 10))
    if choice == 3:  # a real command, truncated
        whole = wire.command_statement_query("SELECT " + str(rng.randint(0, 100)))
        return whole[:rng.randrange(len(whole))]
    if choice == 4:  # SQL text that is not valid SQL
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 80))).encode()
    # a query over a file that does not exist: the user's query fails, the client is told NOT_FOUND
    return wire.command_statement_query(f"SELECT * FROM read_csv('/nonexistent/fuzz_{rng.randrange(10**6)}.csv')")


def garbage_action_body(rng: random.Random, action: str) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return _random_bytes(rng, rng.randint(0, 300))
    if action == "EndTransaction" or choice == 1:
        transaction = _fb(1, _random_bytes(rng, 16)) if rng.random() < 0.8 else b""
        return wire.pack_any("ActionEndTransactionRequest", transaction + _fv(2, rng.choice([0, 3, 7, 2**31])))
    if action in ("CancelFlightInfo", "CancelQuery") or choice == 2:
        return _fb(1, _random_bytes(rng, rng.randint(0, 200)))
    if action == "SetSessionOptions" or choice == 3:
        value = rng.choice([_fb(1, "x" * rng.randint(0, 10)), _fv(2, 1), b"\x19" + _random_bytes(rng, 8),
                            b"\x21" + _random_bytes(rng, 8), _random_bytes(rng, 5)])
        name = rng.choice(["catalog", "schema", "statement_timeout", "", "\x00", "zz"])
        return _fb(1, _fb(1, name) + _fb(2, value))
    return wire.pack_any("ActionCreatePreparedStatementRequest", _fb(1, _random_bytes(rng, rng.randint(0, 50))))


def _put_descriptor(rng: random.Random) -> tuple[str, Callable[[Target], bytes]]:
    """Every DoPut path: Flight SQL ingest, prepared parameters (a real handle and a made-up one), a prepared
    update, a plain-Flight path descriptor, a statement update."""
    table = f"fuzz_{rng.randrange(10**9)}"
    if_exists, temporary, junk = rng.choice([1, 2, 3]), rng.random() < 0.3, _random_bytes(rng, 16)
    choices: list[tuple[str, Callable[[Target], bytes]]] = [
        ("ingest", lambda t: descriptor_cmd(ingest_command(table, if_exists, temporary=temporary))),
        ("path", lambda t: descriptor_path(table)),
        ("prepared parameters", lambda t: descriptor_cmd(wire.command_prepared_statement_query(t.prepared_handle))),
        ("prepared update", lambda t: descriptor_cmd(prepared_update_command(t.prepared_handle))),
        ("unknown prepared handle", lambda t: descriptor_cmd(wire.command_prepared_statement_query(junk))),
        ("statement update", lambda t: descriptor_cmd(statement_update_command("SELECT 1"))),
    ]
    return rng.choice(choices)


def do_put_case(rng: random.Random, number: int) -> Case:
    label, schema, messages = corrupt_stream(rng)
    where, descriptor_of = _put_descriptor(rng)
    headers = [("x-flight-ingest-mode", rng.choice(["create", "append", "replace", "bogus", ""]))] \
        if where == "path" and rng.random() < 0.3 else []

    def run(target: Target):
        descriptor = descriptor_of(target)
        frames = [flight_data(meta, body, descriptor if i == 0 else None) for i, (meta, body) in enumerate(messages)]
        return target.raw_bidi("DoPut", frames, headers)

    return Case(number, "DoPut", f"{label} via {where}", run)


def garbage_frames_case(rng: random.Random, number: int) -> Case:
    method = rng.choice(["Handshake", "DoExchange", "DoPut"])
    frames = [garbage_message(rng) for _ in range(rng.randint(0, 4))]
    if method == "DoExchange" and rng.random() < 0.5:
        batch = valid_batch(rng)
        messages = ipc_messages(batch.schema, [batch])
        frames = [flight_data(m, b, descriptor_cmd(garbage_command(rng)) if i == 0 else None)
                  for i, (m, b) in enumerate(messages)]
    return Case(number, method, "garbage frames", lambda target: target.raw_bidi(method, frames))


def garbage_message(rng: random.Random) -> bytes:
    """Random bytes, or random but well-formed protobuf fields (so the frame gets past gRPC's parser)."""
    if rng.random() < 0.4:
        return _random_bytes(rng, rng.randint(0, 300))
    out = b""
    for _ in range(rng.randint(0, 5)):
        number = rng.choice([1, 2, 3, 4, 5, 1000, rng.randint(1, 2**20)])
        if rng.random() < 0.5:
            out += _fv(number, rng.choice([0, 1, 2, 3, 2**31, 2**63, rng.randrange(2**64)]))
        else:
            out += _fb(number, rng.choice([garbage_command(rng), _random_bytes(rng, rng.randint(0, 60))]))
    return out


def garbage_unary_case(rng: random.Random, number: int) -> Case:
    method = rng.choice(["GetFlightInfo", "GetSchema", "PollFlightInfo"])
    request = garbage_message(rng)
    return Case(number, method, "garbage request frame", lambda target: target.raw_unary(method, request))


def garbage_stream_request_case(rng: random.Random, number: int) -> Case:
    method = rng.choice(["DoGet", "DoAction", "ListFlights", "ListActions"])
    request = garbage_message(rng)
    return Case(number, method, "garbage request frame", lambda target: target.raw_stream(method, request))


def flight_info_case(rng: random.Random, number: int) -> Case:
    command = garbage_command(rng)
    if rng.random() < 0.5:
        return Case(number, "GetFlightInfo", "garbage command",
                    lambda t: t.client.get_flight_info(flight.FlightDescriptor.for_command(command), t.options()))
    if rng.random() < 0.3:
        parts = ["".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(0, 5))]
        return Case(number, "GetSchema", "garbage path",
                    lambda t: t.client.get_schema(flight.FlightDescriptor.for_path(*parts), t.options()))
    return Case(number, "GetSchema", "garbage command",
                lambda t: t.client.get_schema(flight.FlightDescriptor.for_command(command), t.options()))


def do_get_case(rng: random.Random, number: int) -> Case:
    ticket = garbage_command(rng) if rng.random() < 0.6 else \
        wire.pack_any("TicketStatementQuery", _fb(1, _random_bytes(rng, rng.randint(0, 40))))
    return Case(number, "DoGet", "garbage ticket",
                lambda t: t.client.do_get(flight.Ticket(ticket), t.options()).read_all())


def do_action_case(rng: random.Random, number: int) -> Case:
    action = rng.choice(_ACTIONS)
    body = garbage_action_body(rng, action)
    return Case(number, "DoAction", f"{action or '(empty)'} with a garbage body",
                lambda t: list(t.client.do_action(flight.Action(action, body), t.options())))


def header_case(rng: random.Random, number: int) -> Case:
    name = rng.choice([b"authorization", b"cookie", b"x-flight-ingest-mode"])
    value = rng.choice([b"Bearer " + rng.randbytes(rng.randint(0, 60)).hex().encode(),
                        b"Basic " + rng.randbytes(rng.randint(0, 30)).hex().encode(),
                        b"arrow_flight_session_id=" + rng.randbytes(8).hex().encode(),
                        "".join(rng.choice(string.printable[:94]) for _ in range(rng.randint(0, 40))).encode()])
    query = wire.command_statement_query("SELECT 2")

    def run(t: Target):
        headers = [h for h in t.headers if h[0].lower() != name] + [(name, value)]
        options = flight.FlightCallOptions(timeout=CALL_TIMEOUT_S, headers=headers)
        return t.client.get_flight_info(flight.FlightDescriptor.for_command(query), options)

    return Case(number, "GetFlightInfo", f"garbage {name.decode()} header", run)


def list_flights_case(rng: random.Random, number: int) -> Case:
    criteria = _random_bytes(rng, rng.randint(0, 50))
    return Case(number, "ListFlights", "garbage criteria",
                lambda t: list(t.client.list_flights(criteria, t.options())))


# (weight, generator): corrupt DoPut streams dominate, as they did in the crashes.
GENERATORS: tuple[tuple[int, Callable[[random.Random, int], Case]], ...] = (
    (45, do_put_case),
    (6, garbage_frames_case),
    (4, garbage_unary_case),
    (4, garbage_stream_request_case),
    (12, flight_info_case),
    (8, do_get_case),
    (14, do_action_case),
    (4, header_case),
    (3, list_flights_case),
)


def cases(seed: int, count: int, start: int = 0):
    """`count` cases from `seed`; case n is the same whatever `count` is (each has its own seeded generator)."""
    weights = [weight for weight, _ in GENERATORS]
    makers = [maker for _, maker in GENERATORS]
    for number in range(start, start + count):
        rng = random.Random(f"{seed}:{number}")
        maker = rng.choices(makers, weights)[0]
        yield maker(rng, number)


# Answers that are acceptable for a client's mistake. INTERNAL never is; DEADLINE_EXCEEDED is a hang;
# UNAVAILABLE means the server went away.
CLIENT_ERROR_CODES = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED",
                      "CANCELLED", "UNKNOWN"}


def refused_by_grpc(case: Case, outcome: Outcome) -> bool:
    """gRPC's C++ core answers a request frame that is not valid protobuf with a bare INTERNAL before any server
    code runs (the server never sees the call); counted apart, as it is not the server's answer."""
    return case.label == "garbage request frame" and outcome.code == "INTERNAL" and not outcome.message


def problem(outcome: Outcome, server_paths: tuple[str, ...] = ()) -> str | None:
    """Why an answer to a client's mistake is wrong (None when it is fine)."""
    if outcome.code == "INTERNAL":
        return "INTERNAL answer to a client's mistake"
    if outcome.code == "DEADLINE_EXCEEDED":
        return "no answer in time (hang)"
    if outcome.code not in CLIENT_ERROR_CODES:
        return f"unexpected answer {outcome.code}"
    for marker in ("Traceback", "has no attribute", "Stack Trace", "The above exception"):
        if marker in outcome.message:
            return f"message carries {marker!r}"
    for path in server_paths:
        if path in outcome.message:
            return "message names a server file"
    return None


@dataclass
class Report:
    cases: int = 0
    crashes: int = 0
    hangs: int = 0
    internal: int = 0
    other_problems: int = 0
    grpc_refused: int = 0  # unparseable request frames answered by gRPC itself (see refused_by_grpc)
    rss_before: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    codes: dict | None = None
    examples: list | None = None

    def line(self) -> str:
        return (f"cases={self.cases} crashes={self.crashes} hangs={self.hangs} internal={self.internal} "
                f"grpc_refused_frames={self.grpc_refused} "
                f"other_problems={self.other_problems} rss_before_mb={self.rss_before / 2**20:.1f} "
                f"rss_after_mb={self.rss_after / 2**20:.1f} rss_peak_mb={self.rss_peak / 2**20:.1f}")


def _leaves_session_changed(case: Case, outcome: Outcome) -> bool:
    return ("CloseSession" in case.label or "BeginTransaction" in case.label
            or (case.rpc == "DoAction" and outcome.code == "UNAUTHENTICATED"))


def run_fuzz(target: Target, alive: Callable[[], bool], rss: Callable[[], int], check: Callable[[], int],
             seed: int, count: int,
             batch: int = 100, rss_growth_limit: int = 512 << 20, server_paths: tuple[str, ...] = (),
             progress: Callable[[Report], None] | None = None) -> Report:
    """Sends `count` cases; after each `batch` checks the server is alive, answers SELECT 1 (`check`, on a
    fresh session, since the cases may leave theirs in an aborted transaction) and its RSS
    stayed within `rss_growth_limit` of where it was after the first batch. Stops at the first crash."""
    report = Report(codes={}, examples=[])
    target.renew()
    report.rss_before = rss()
    baseline = None
    done = 0
    for case in cases(seed, count):
        outcome = execute(case, target)
        if _leaves_session_changed(case, outcome):
            target.renew()
        report.cases += 1
        report.codes[outcome.code] = report.codes.get(outcome.code, 0) + 1
        trouble = problem(outcome, server_paths)
        if refused_by_grpc(case, outcome):
            report.grpc_refused += 1
        elif trouble is not None:
            if outcome.code == "INTERNAL":
                report.internal += 1
            elif outcome.code == "DEADLINE_EXCEEDED":
                report.hangs += 1
            elif outcome.code == "UNAVAILABLE" and not alive():
                report.crashes += 1
                report.examples.append(f"{case!r}: server died")
                break
            else:
                report.other_problems += 1
            if len(report.examples) < 20:
                report.examples.append(f"{case!r}: {trouble}: {outcome.code} {outcome.message[:300]}")
        done += 1
        if done % batch == 0 or done == count:
            if not alive():
                report.crashes += 1
                report.examples.append(f"server died by {case!r}")
                break
            try:
                if check() != 1:
                    raise RuntimeError("SELECT 1 answered something else")
            except Exception as exc:  # noqa: BLE001 - any failure here is the finding
                report.other_problems += 1
                report.examples.append(f"after {case!r}: SELECT 1 failed: {exc}")
                if not alive():
                    report.crashes += 1
                    break
                target.prepare()  # the session may have been closed by a CloseSession case
            current = rss()
            report.rss_peak = max(report.rss_peak, current)
            if baseline is None:
                baseline = current
            elif current - baseline > rss_growth_limit:
                report.other_problems += 1
                report.examples.append(f"RSS grew from {baseline} to {current} bytes by {case!r}")
            if progress is not None:
                progress(report)
            target.prepare()  # a case may have closed the session and so the handle
    report.rss_after = rss() if alive() else 0
    return report
