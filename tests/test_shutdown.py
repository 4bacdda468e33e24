"""SIGTERM holds to its grace period whatever the clients do: running statements get the grace period, then
are interrupted; clients that stalled mid-stream (an ingest that stopped sending, a reader that stopped
reading) are cut off; the database is checkpointed and the process exits 0 with a `stopped` record."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

import flightsql_wire as wire
from support import HOST, REPO_ROOT, ServerHandle, free_port, scalar

GRACE = 3.0
SLACK = 4.0  # the bounded waits after the grace period (at most 3 s), signal and exit
HEAVY = "SELECT sum(hash(i)) FROM range(20000000000) t(i)"
WIDE = "SELECT i, repeat('x', 1000) AS s FROM range(100000000) t(i)"


def stopped_record(stderr: str) -> dict:
    for line in stderr.splitlines():
        if line.startswith("{") and '"stopped"' in line:
            record = json.loads(line)
            if record.get("event") == "stopped":
                return record
    raise AssertionError(f"no `stopped` record in:\n{stderr[-3000:]}")


def stall_an_ingest(server) -> tuple:
    """Starts an ingest, sends one batch and never finishes the stream."""
    client = server.flight_client()
    schema = pa.schema([("a", pa.int64())])
    descriptor = flight.FlightDescriptor.for_command(wire.command_statement_ingest("stalled_ingest"))
    writer, _ = client.do_put(descriptor, schema)
    writer.write_batch(pa.record_batch([pa.array(range(1000), pa.int64())], schema=schema))
    return client, writer  # the writer stays open: the stream never ends


def stall_a_reader(server) -> tuple:
    """Starts a large result, reads one batch and stops reading."""
    client = server.flight_client()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.command_statement_query(WIDE)))
    reader = client.do_get(info.endpoints[0].ticket)
    reader.read_chunk()
    return client, reader


def test_sigterm_with_stalled_clients_exits_within_the_grace_period(start_server, tmp_path):
    database = str(tmp_path / "kept.duckdb")
    server = start_server(database=database, shutdown_grace_period=GRACE)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept AS SELECT range AS i FROM range(1000)")
        cur.execute("INSERT INTO kept VALUES (1000)")
    stalled = [stall_an_ingest(server), stall_a_reader(server)]
    outcome: dict = {}

    def long_query():
        client = server.flight_client()
        try:
            wire.raw_query(client, HEAVY)
        except Exception as exc:  # noqa: BLE001 - interrupted at the end of the grace period
            outcome["error"] = str(exc)
        finally:
            client.close()

    worker = threading.Thread(target=long_query, daemon=True)
    worker.start()
    time.sleep(1.5)
    assert server.alive()

    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=GRACE + 30)
    took = time.monotonic() - started
    stderr = server.stderr_text()
    assert code == 0, f"exit code {code}\n{server.stderr_tail()}"
    assert took < GRACE + SLACK, f"took {took:.1f} s with a {GRACE:g} s grace period\n{server.stderr_tail()}"
    assert took >= GRACE - 0.5, "the running query did not get its grace period"
    record = stopped_record(stderr)
    assert record["seconds"] < GRACE + SLACK
    assert record["interrupted"] >= 1, record
    assert record["checkpoint"] == "done", record
    worker.join(timeout=10)
    assert "error" in outcome, "the long query should have been interrupted"
    for client, _ in stalled:
        client.close()

    again = start_server(database=database)
    with again.connect() as conn:
        assert scalar(conn, "SELECT count(*) FROM kept") == 1001
        assert scalar(conn, "SELECT max(i) FROM kept") == 1000
        # the stalled ingest never finished its stream: nothing of it was kept
        assert scalar(conn, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'stalled_ingest'") == 0


def test_sigterm_when_idle_exits_at_once(start_server):
    server = start_server(shutdown_grace_period=30)
    with server.connect() as conn:
        assert scalar(conn, "SELECT 42") == 42
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0, server.stderr_tail()
    assert time.monotonic() - started < 3
    record = stopped_record(server.stderr_text())
    assert record["interrupted"] == 0 and record["checkpoint"] == "done", record
    assert record["sessions_left"] == 0 and not record["calls_left"], record


def test_sigterm_right_after_writes_checkpoints_them_into_the_file(start_server, tmp_path):
    """The early checkpoint (run while the grace period starts) is a write transaction of its own: a quick
    shutdown must wait for it rather than have DuckDB refuse the final checkpoint ("other write transactions
    active"), which left the writes in the WAL."""
    database = str(tmp_path / "written.duckdb")
    server = start_server(database=database, shutdown_grace_period=30)
    with server.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE w AS SELECT range AS i FROM range(200000)")
        for i in range(20):
            cur.execute(f"INSERT INTO w VALUES ({i})")
        cur.close()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0, server.stderr_tail()
    record = stopped_record(server.stderr_text())
    assert record["checkpoint"] == "done", record
    wal = database + ".wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) == 0, "the writes were left in the WAL"


# A server whose connection cutting finds nothing to cut: the fallback bounds must still end the process.
CANNOT_HANG_UP = textwrap.dedent("""
    import sys
    import flight_server.service.server as server_module
    from flight_server.cli import main

    server_module.hang_up_clients = lambda port: 0
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_exits_even_when_stalled_connections_cannot_be_cut(start_server, tmp_path):
    database = str(tmp_path / "kept.duckdb")
    port = free_port()
    argv = [sys.executable, "-c", CANNOT_HANG_UP, "--host", HOST, "--port", str(port), "--http-port", "-1",
            "--auth", "none", "--database", database, "--data-dir", str(tmp_path),
            "--shutdown-grace-period", str(GRACE)]
    stderr_path = tmp_path / "server.stderr.log"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    server = ServerHandle(proc, port, tmp_path, database, stderr_path, argv)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept AS SELECT range AS i FROM range(500)")
        client, _writer = stall_an_ingest(server)
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=GRACE + 30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, server.stderr_tail()
    assert took < GRACE + SLACK, f"took {took:.1f} s with a {GRACE:g} s grace period\n{server.stderr_tail()}"
    record = stopped_record(server.stderr_text())
    assert record["connections_cut"] == 0 and record["sessions_left"] >= 1, record
    client.close()

    again = start_server(database=database)
    with again.connect() as conn:
        assert scalar(conn, "SELECT count(*) FROM kept") == 500
        assert scalar(conn, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'stalled_ingest'") == 0
