"""No input crashes the server, and every error says whose fault it is.

Corrupt record batches on every DoPut path are refused with INVALID_ARGUMENT naming the column; a client
killed in the middle of an ingest leaves nothing committed; calls in the start-up window get UNAVAILABLE
"starting"; client mistakes never come back INTERNAL; the server-wide statement timeout is a ceiling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import adbc_driver_manager
import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import flightsql_wire as wire
import fuzz_cases
from support import REPO_ROOT, HOST, free_port, scalar

DECLARED = pa.schema([("a", pa.string()), ("b", pa.int64())])


def mismatched_batch() -> pa.RecordBatch:
    """The issue's reproduction: another schema's batch read as if it had the declared schema."""
    other = pa.record_batch([pa.array([7, 8, 9] * 100, pa.int64()), pa.array(["x" * 30] * 300)], names=["x", "y"])
    return pa.ipc.read_record_batch(other.serialize(), DECLARED)


def table_exists(conn, name: str) -> bool:
    return scalar(conn, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{name}'") > 0


def prepared_handle(client: flight.FlightClient, sql: str) -> bytes:
    results = list(client.do_action(flight.Action("CreatePreparedStatement", wire.action_create_prepared_statement(sql))))
    return wire.parse_create_prepared_statement_result(results[0].body.to_pybytes())["handle"]


def put_descriptor(kind: str, client: flight.FlightClient, table: str) -> flight.FlightDescriptor:
    if kind == "path":
        return flight.FlightDescriptor.for_path(table)
    if kind == "ingest":
        return flight.FlightDescriptor.for_command(fuzz_cases.ingest_command(table, if_exists=1))
    handle = prepared_handle(client, f"SELECT ?::VARCHAR AS a, ?::BIGINT AS b")
    if kind == "prepared query":
        return flight.FlightDescriptor.for_command(wire.command_prepared_statement_query(handle))
    return flight.FlightDescriptor.for_command(fuzz_cases.prepared_update_command(handle))


@pytest.mark.parametrize("kind", ["ingest", "path", "prepared query", "prepared update"])
def test_batch_that_does_not_fit_its_schema_is_refused_naming_the_column(server, conn, unique_name, kind):
    table = unique_name()
    client = server.flight_client()
    try:
        writer, _ = client.do_put(put_descriptor(kind, client, table), DECLARED)
        with pytest.raises(pa.ArrowInvalid) as info:
            writer.write_batch(mismatched_batch())
            writer.close()
    finally:
        client.close()
    message = str(info.value)
    assert "column 'a'" in message and "malformed" in message, message
    assert "Traceback" not in message
    assert server.alive()
    assert not table_exists(conn, table)
    assert scalar(conn, "SELECT 1") == 1


@pytest.mark.parametrize("corruption,column_kind", [
    ("dictionary index out of range", "dict"),
    ("corrupt view buffer", "string_view"),
    ("bad offsets", "list"),
    ("invalid utf-8", "string"),
])
def test_corrupt_buffers_refused_before_duckdb_sees_them(server, conn, unique_name, corruption, column_kind):
    import random
    rng = random.Random(corruption)
    good = fuzz_cases.valid_column(rng, column_kind, 64)
    bad = fuzz_cases.ARRAY_CORRUPTIONS[corruption](rng, good)
    batch = pa.record_batch([pa.array(range(64)), bad], names=["id", "v"])
    table = unique_name()
    frames = [fuzz_cases.flight_data(meta, body, fuzz_cases.descriptor_path(table) if i == 0 else None)
              for i, (meta, body) in enumerate(fuzz_cases.ipc_messages(batch.schema, [batch]))]
    target = fuzz_cases.Target(server.uri)
    try:
        with pytest.raises(grpc.RpcError) as info:
            target.raw_bidi("DoPut", frames)
    finally:
        target.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "column 'v'" in info.value.details()
    assert server.alive() and not table_exists(conn, table)


def test_valid_stream_after_refusals_still_ingests(server, conn, unique_name):
    table = unique_name()
    data = pa.table({"a": ["p", "q", None], "b": [1, 2, 3]})
    with conn.cursor() as cur:
        cur.adbc_ingest(table, data, mode="create")
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 3


KILLED_CLIENT = textwrap.dedent("""
    import sys, time
    import adbc_driver_flightsql.dbapi as flightsql
    import pyarrow as pa
    import pyarrow.flight as flight

    uri, table, how = sys.argv[1], sys.argv[2], sys.argv[3]
    schema = pa.schema([("i", pa.int64()), ("s", pa.string())])

    def batches():
        for n in range(1_000_000):
            yield pa.record_batch([pa.array(range(n * 10_000, (n + 1) * 10_000)), pa.array(["row"] * 10_000)],
                                  schema=schema)
            if n == 50:
                print("streaming", flush=True)
            time.sleep(0.002)

    if how == "adbc":
        conn = flightsql.connect(uri, autocommit=True)
        with conn.cursor() as cur:
            cur.adbc_ingest(table, pa.RecordBatchReader.from_batches(schema, batches()), mode="create")
    else:  # plain Flight DoPut with a path descriptor
        writer, _ = flight.FlightClient(uri).do_put(flight.FlightDescriptor.for_path(table), schema)
        for batch in batches():
            writer.write_batch(batch)
        writer.close()
    print("finished", flush=True)
""")


@pytest.mark.parametrize("how", ["adbc", "plain-flight"])
def test_client_killed_mid_ingest_commits_nothing(start_server, unique_name, how):
    server = start_server()
    table = unique_name()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    client = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, server.uri, table, how], stdout=subprocess.PIPE,
                              env=env, text=True)
    try:
        assert client.stdout.readline().strip() == "streaming"
        time.sleep(1.0)  # well into the stream: the server has received many batches
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
    # The server notices the call ended without a clean end of stream and rolls back.
    deadline = time.monotonic() + 30
    while '"type": "ingest"' not in server.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert '"type": "ingest"' in server.stderr_text(), server.stderr_tail()
    assert server.alive()
    with server.connect() as conn:
        assert not table_exists(conn, table), "a killed client's partial upload was committed"
        with conn.cursor() as cur:  # and the server keeps serving, the name free for a real upload
            cur.adbc_ingest(table, pa.table({"i": [1, 2], "s": ["a", "b"]}), mode="create")
        assert scalar(conn, f"SELECT count(*) FROM {table}") == 2


STARTUP_DELAYED = textwrap.dedent("""
    import sys, time
    import flight_server.service.server as server_module
    from flight_server.cli import main

    original = server_module.sql_info_values

    def slow_sql_info_values(*args, **kwargs):
        # Runs inside FlightSqlServer.__init__ after the port is already open: widens the start-up window.
        print("listening-but-not-ready", flush=True)
        time.sleep(3)
        return original(*args, **kwargs)

    server_module.sql_info_values = slow_sql_info_values
    sys.exit(main(sys.argv[1:]))
""")


def test_calls_in_the_startup_window_get_unavailable_starting(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", STARTUP_DELAYED, "--host", HOST, "--port", str(port), "--http-port", "-1",
            "--auth", "none", "--database", str(tmp_path / "db.duckdb"), "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    answers: list[str] = []
    try:
        assert proc.stdout.readline().strip() == "listening-but-not-ready"
        client = flight.FlightClient(f"grpc://{HOST}:{port}")
        options = flight.FlightCallOptions(timeout=5)
        descriptor = flight.FlightDescriptor.for_command(wire.command_statement_query("SELECT 1"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            calls = (lambda: client.get_flight_info(descriptor, options),
                     lambda: list(client.do_action(flight.Action("health", b""), options)),
                     lambda: list(client.list_actions(options)))
            try:
                for call in calls:
                    call()
                break  # ready: everything answers
            except flight.FlightUnavailableError as exc:
                answers.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - any other answer is the bug
                pytest.fail(f"call in the start-up window answered {type(exc).__name__}: {exc}")
            time.sleep(0.05)
        info = client.get_flight_info(descriptor, options)
        assert client.do_get(info.endpoints[0].ticket, options).read_all().column(0).to_pylist() == [1]
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert answers, "no call landed in the start-up window"
    assert all("starting" in answer and "attribute" not in answer and "Traceback" not in answer
               for answer in answers), answers


def set_option(client: flight.FlightClient, name: str, value: str) -> bool:
    """SetSessionOptions; True when the server accepted the value."""
    results = list(client.do_action(flight.Action("SetSessionOptions", wire.set_session_string_option(name, value))))
    body = results[0].body.to_pybytes() if results else b""
    return 1 not in wire.decode_fields(body)  # field 1: the per-option errors


def test_server_statement_timeout_is_a_ceiling_for_sessions(start_server):
    server = start_server(statement_timeout=2)
    client = server.flight_client()
    try:
        assert not set_option(client, "statement_timeout", "0")    # would remove the timeout
        assert not set_option(client, "statement_timeout", "30")   # would raise it
        assert not set_option(client, "statement_timeout", "-1")
        started = time.monotonic()
        with pytest.raises(flight.FlightTimedOutError):
            wire.raw_query(client, "SELECT sum(hash(i)) FROM range(20000000000) t(i)")
        assert time.monotonic() - started < 10  # the server's 2 s still applied
        assert set_option(client, "statement_timeout", "0.5")      # lowering is fine
        options = wire.parse_session_options(
            list(client.do_action(flight.Action("GetSessionOptions", b"")))[0].body.to_pybytes())
        assert options.get("statement_timeout") == 0.5, options
        started = time.monotonic()
        with pytest.raises(flight.FlightTimedOutError) as info:
            wire.raw_query(client, "SELECT sum(hash(i)) FROM range(20000000000) t(i)")
        assert time.monotonic() - started < 1.9
        assert "0.5s" in str(info.value)
    finally:
        client.close()


def test_session_without_server_timeout_may_set_any(start_server):
    server = start_server()
    client = server.flight_client()
    try:
        assert set_option(client, "statement_timeout", "0")
        assert set_option(client, "statement_timeout", "3600")
        assert not set_option(client, "statement_timeout", "nan")
    finally:
        client.close()


@pytest.mark.parametrize("action,body,fragment", [
    ("EndTransaction", wire.pack_any("ActionEndTransactionRequest", wire.field_bytes(1, b"x" * 16)), "COMMIT"),
    ("EndTransaction", wire.pack_any("ActionEndTransactionRequest", wire.field_varint(2, 9)), "COMMIT"),
    ("CancelFlightInfo", wire.field_bytes(1, b"\xff\x00garbage"), "FlightInfo"),
    ("CancelQuery", wire.pack_any("ActionCancelQueryRequest", wire.field_bytes(1, b"junk")), "FlightInfo"),
])
def test_malformed_actions_are_invalid_argument(server, action, body, fragment):
    client = server.flight_client()
    try:
        with pytest.raises(pa.ArrowInvalid) as info:
            list(client.do_action(flight.Action(action, body)))
    finally:
        client.close()
    assert fragment in str(info.value) and "internal" not in str(info.value).lower()
    assert server.alive()


def test_do_exchange_is_unimplemented_not_a_crash(server):
    client = server.flight_client()
    try:
        with pytest.raises(pa.ArrowNotImplementedError):
            writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(b"\x00\xffjunk"))
            writer.begin(DECLARED)
            writer.write_batch(pa.record_batch([pa.array(["a"]), pa.array([1])], schema=DECLARED))
            writer.done_writing()
            reader.read_all()
    finally:
        client.close()
    assert server.alive()


def test_missing_file_is_not_found_with_duckdbs_message(conn, tmp_path):
    missing = tmp_path / "no_such_file.csv"
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute(f"SELECT * FROM read_csv('{missing}')")
            cur.fetchall()
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND, info.value
    assert "No files found" in str(info.value) and str(missing) in str(info.value)


def test_unknown_command_bytes_are_invalid_argument(server):
    client = server.flight_client()
    try:
        for payload in (wire.pack_any("NoSuchCommand", b"\x01\x02"), b"\x0a\x03abc\x12\xff"):
            with pytest.raises(pa.ArrowInvalid):
                client.get_flight_info(flight.FlightDescriptor.for_command(payload))
            with pytest.raises(pa.ArrowInvalid):
                client.do_get(flight.Ticket(payload)).read_all()
    finally:
        client.close()
    assert server.alive()


def test_error_while_a_result_streams_keeps_its_status(server):
    """An error DuckDB raises after the call has returned (mid-stream) is still the client's INVALID_ARGUMENT."""
    client = server.flight_client()
    query = ("SELECT CASE WHEN i = 3000000 THEN error('boom at row 3000000') ELSE i END AS v, "
             "repeat('x', 40) AS s FROM range(5000000) t(i)")
    try:
        with pytest.raises(pa.ArrowInvalid) as info:
            wire.raw_query(client, query)
    finally:
        client.close()
    assert "boom at row 3000000" in str(info.value)
    assert "QueryError" not in str(info.value)  # no Python class names of the server
    assert server.alive()
