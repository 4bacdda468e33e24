"""Operating the server: health/statistics actions, HTTP port, timeouts, cancel, admission, circuit breaker,
configuration errors, shutdown and durability. Each test runs its own server process with the flags it needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import adbc_driver_manager
import psutil
import pyarrow.flight as flight
import pytest

from support import REPO_ROOT, free_port

HEAVY = "SELECT sum(hash(i)) FROM range(20000000000) t(i)"
OOM = "SELECT list(i) FROM range(30000000) t(i)"


def action_json(server, name: str) -> dict:
    client = server.flight_client()
    try:
        results = list(client.do_action(flight.Action(name, b"")))
    finally:
        client.close()
    return json.loads(results[0].body.to_pybytes())


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_health_and_statistics_actions(start_server):
    server = start_server()
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ops_t AS SELECT * FROM range(10) t(i)")
        cur.execute("SELECT count(*) FROM ops_t")
        assert cur.fetchall() == [(10,)]
        health = action_json(server, "health")
        assert health["status"] == "healthy"
        assert health["service_initialized"] is True and health["database_exists"] is True
        assert health["database_size_mb"] > 0
        assert health["query_test"]["success"] is True
        assert health["connection_pool"]["max_connections"] >= health["connection_pool"]["total_connections"] >= 1
        assert health["circuit_breaker"]["state"] == "closed"
        stats = action_json(server, "statistics")
    assert stats["service"]["uptime_seconds"] > 0 and stats["service"]["worker_threads"] >= 1
    assert stats["metrics"]["total_queries"] >= 2 and 0 < stats["metrics"]["success_rate"] <= 1
    assert isinstance(stats["performance"]["recent_query_times"], list)
    assert stats["system"]["process_memory_mb"] > 10
    assert stats["sessions"]["active"] >= 1 and "queued" in stats["queue"]
    names = {a.type for a in server.flight_client().list_actions()}
    assert {"health", "statistics", "circuit-breaker-reset"} <= names


def test_http_port_health_and_metrics(start_server):
    port = free_port()
    server = start_server(http_port=port)
    assert http_get(port, "/health/live")[0] == 200
    code, body = http_get(port, "/health/ready")
    assert code == 200 and json.loads(body)["status"] == "ready"
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 42")
        assert cur.fetchall() == [(42,)]
    code, body = http_get(port, "/metrics")
    text = body.decode()
    assert code == 200
    assert 'flight_statements_total{outcome="ok",type="prepared_query"}' in text
    assert "flight_statement_duration_seconds_bucket" in text
    assert "flight_sessions_active" in text and "process_resident_memory_bytes" in text
    assert http_get(port, "/nope")[0] == 404


def test_statement_timeout_interrupts_and_session_survives(start_server):
    server = start_server(statement_timeout=1)
    with server.connect() as conn, conn.cursor() as cur:
        started = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute(HEAVY)
            cur.fetchall()
        assert time.monotonic() - started < 10
        assert "statement timeout" in str(info.value)
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_client_cancel_interrupts_duckdb(start_server):
    server = start_server()
    process = psutil.Process(server.proc.pid)
    with server.connect() as conn:
        cur = conn.cursor()
        threading.Timer(1.0, cur.adbc_cancel).start()
        started = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error):
            cur.execute(HEAVY)
            cur.fetchall()
        assert time.monotonic() - started < 5
        time.sleep(1.5)  # the watchdog polls every 0.1 s; DuckDB stops at its next check
        process.cpu_percent()
        time.sleep(1.0)
        assert process.cpu_percent() < 50, "DuckDB still busy after the client cancelled"
        other = conn.cursor()
        other.execute("SELECT 7")
        assert other.fetchall() == [(7,)]


def test_admission_limit_refuses_with_clear_message(start_server):
    server = start_server(max_concurrent_statements=1, max_queued_statements=0, statement_timeout=4)
    errors: list[BaseException] = []

    def long_running():
        with server.connect() as conn, conn.cursor() as cur:
            try:
                cur.execute(HEAVY)
                cur.fetchall()
            except adbc_driver_manager.Error:
                pass

    worker = threading.Thread(target=long_running)
    worker.start()
    time.sleep(1.0)
    with server.connect() as conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        except adbc_driver_manager.Error as exc:
            errors.append(exc)
    worker.join()
    assert errors, "second statement was admitted despite max_concurrent_statements=1"
    assert "max_concurrent_statements" in str(errors[0])
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchall() == [(2,)]
    assert action_json(server, "statistics")["queue"]["rejected"] >= 1


def test_circuit_breaker_counts_only_server_faults_and_recovers(start_server):
    """Bad SQL and a query's own out-of-memory never count; a database that cannot write its WAL does."""
    server = start_server(memory_limit="64MB", worker_threads=1, breaker_failure_threshold=2,
                          breaker_reset_timeout=2)
    wal = server.database + ".wal"

    def break_wal():
        if os.path.isfile(wal):
            os.remove(wal)
        os.mkdir(wal)  # DuckDB can no longer write commits: the server's own fault

    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE breaker_t (i INTEGER)")
        for _ in range(3):
            with pytest.raises(adbc_driver_manager.Error):
                cur.execute("SELEC 1")
        for _ in range(3):
            with pytest.raises(adbc_driver_manager.Error) as info:
                cur.execute(OOM)
                cur.fetchall()
            assert "Out of Memory" in str(info.value)
        assert action_json(server, "health")["circuit_breaker"]["state"] == "closed"
        cur.execute("CHECKPOINT")
        break_wal()
        for _ in range(2):
            with pytest.raises(adbc_driver_manager.InternalError) as info:
                cur.execute("INSERT INTO breaker_t VALUES (1)")
            assert "Failed to commit" in str(info.value)
            assert str(server.workdir) not in str(info.value)  # the server's own path stays in its log
        health = action_json(server, "health")
        assert health["circuit_breaker"]["state"] == "open" and health["status"] == "degraded"
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute("SELECT 1")
        assert "circuit breaker is open" in str(info.value) and "next trial in" in str(info.value)
        os.rmdir(wal)
        time.sleep(2.5)  # reset timeout passes: half-open lets one probe through
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
        assert action_json(server, "health")["circuit_breaker"]["state"] == "closed"
        # Trip again, then close it by hand.
        break_wal()
        for _ in range(2):
            with pytest.raises(adbc_driver_manager.Error):
                cur.execute("INSERT INTO breaker_t VALUES (2)")
        assert action_json(server, "health")["circuit_breaker"]["state"] == "open"
        os.rmdir(wal)
        reset = action_json(server, "circuit-breaker-reset")
        assert reset == {"previous_state": "open", "state": "closed"}
        cur.execute("INSERT INTO breaker_t VALUES (3)")
        cur.execute("SELECT i FROM breaker_t")
        assert cur.fetchall() == [(3,)]
    assert "Failed to commit" in server.stderr_text() and str(server.workdir) in server.stderr_text()


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "flight_server", *args], capture_output=True, text=True,
                          env=full_env, timeout=60)


@pytest.mark.parametrize("args,env,fragment", [
    (["--memory-limit", "lots"], {}, "--memory-limit"),
    (["--worker-threads", "-2"], {}, "--worker-threads"),
    ([], {"DUCKDB_MEMORY_LIMIT": "4 parsecs"}, "DUCKDB_MEMORY_LIMIT"),
    (["--database", "/proc/nope/x.duckdb"], {}, "DUCKDB_DATABASE_PATH"),
])
def test_bad_configuration_exits_2_with_one_line(tmp_path, args, env, fragment):
    result = _run_cli("--data-dir", str(tmp_path), "--port", str(free_port()), "--http-port", "-1", *args, env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0]


def test_port_in_use_exits_2(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli("--data-dir", str(tmp_path), "--port", str(port), "--http-port", "-1")
    assert result.returncode == 2 and "FLIGHT_PORT" in result.stderr


def test_print_config_redacts_and_reflects_precedence(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('pool_size = 7\nstatement_timeout = 3\n')
    result = _run_cli("--config", str(config), "--statement-timeout", "9", "--print-config",
                      env={"FLIGHT_POOL_SIZE": "11"})
    assert result.returncode == 0
    effective = json.loads(result.stdout)
    assert effective["pool_size"] == 11  # env beats file
    assert effective["statement_timeout"] == 9.0  # flag beats file


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_data_survives_shutdown(start_server, tmp_path, how):
    database = str(tmp_path / "durable.duckdb")
    server = start_server(database=database)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE durable AS SELECT * FROM range(1000) t(i)")
        cur.execute("INSERT INTO durable VALUES (1000)")
    if how == "sigterm":
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
    else:
        server.proc.kill()
        server.proc.wait(timeout=30)
    again = start_server(database=database)
    with again.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), max(i) FROM durable")
        assert cur.fetchall() == [(1001, 1000)]


def test_client_vanishing_mid_stream_leaves_server_serving(start_server):
    server = start_server()
    script = (
        "import os, sys, adbc_driver_flightsql.dbapi as d\n"
        f"conn = d.connect('{server.uri}', autocommit=True)\n"
        "cur = conn.cursor()\n"
        "cur.execute('SELECT i, i::VARCHAR AS s FROM range(200000000) t(i)')\n"
        "reader = cur.fetch_record_batch()\n"
        "reader.read_next_batch()\n"
        "print('got a batch', flush=True)\n"
        "os._exit(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "got a batch" in result.stdout, result.stderr
    process = psutil.Process(server.proc.pid)
    time.sleep(1.0)
    process.cpu_percent()
    time.sleep(1.0)
    assert process.cpu_percent() < 50, "server still producing the abandoned stream"
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM range(1000)")
        assert cur.fetchall() == [(1000,)]
    assert server.alive()


def test_cancel_flight_info_action_drops_the_result(start_server):
    """CancelFlightInfo, sent the way Flight clients send it, cancels a query by its FlightInfo."""
    from flight_server.protocol import commands, flight_core_pb2, flight_sql_pb2

    server = start_server()
    client = server.flight_client()
    command = commands.pack(flight_sql_pb2.CommandStatementQuery(
        query="SELECT i FROM range(10000000000) t(i) WHERE hash(i) % 1000 = 7"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    body = flight_core_pb2.CancelFlightInfoRequest(info=info.serialize()).SerializeToString()
    answer = list(client.do_action(flight.Action("CancelFlightInfo", body)))
    result = flight_core_pb2.CancelFlightInfoResult.FromString(answer[0].body.to_pybytes())
    assert result.status == flight_core_pb2.CANCEL_STATUS_CANCELLED
    with pytest.raises(KeyError):  # NOT_FOUND: the parked result is gone
        client.do_get(info.endpoints[0].ticket).read_all()
    again = client.get_flight_info(flight.FlightDescriptor.for_command(
        commands.pack(flight_sql_pb2.CommandStatementQuery(query="SELECT 5 AS five"))))
    assert client.do_get(again.endpoints[0].ticket).read_all().to_pylist() == [{"five": 5}]


def test_second_signal_exits_at_once(start_server):
    server = start_server(shutdown_grace_period=60)

    def long_running():
        try:
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute(HEAVY)
                cur.fetchall()
        except Exception:
            pass

    worker = threading.Thread(target=long_running, daemon=True)
    worker.start()
    time.sleep(1.0)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None, "first SIGTERM should wait for the running statement (grace period)"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=10)
    assert time.monotonic() - started < 5


def test_statement_logs_hide_credentials_in_sql(start_server):
    server = start_server()
    with server.connect() as conn, conn.cursor() as cur:
        try:
            cur.execute("CREATE SECRET leak_check (TYPE S3, KEY_ID 'AKIA-VISIBLE-1234', SECRET 'hunter2-shh')")
        except adbc_driver_manager.Error:
            pass  # without httpfs the S3 secret type is unknown; the statement is still logged
        cur.execute("SELECT 'plain text stays' AS s")
        assert cur.fetchall() == [("plain text stays",)]
    time.sleep(0.2)
    log = server.stderr_text()
    assert "CREATE SECRET leak_check" in log
    assert "hunter2-shh" not in log and "AKIA-VISIBLE-1234" not in log
    assert "plain text stays" in log
