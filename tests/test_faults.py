"""Server faults, injected for real: the database on a small tmpfs that fills up.

- The circuit breaker stays closed under one user's flood of failing queries (missing files, out of memory)
  and opens on the server's own faults (writes to the database or its WAL failing on a full disk).
- A fatal engine error (DuckDB invalidates the database when a checkpoint cannot be written) is repaired
  without a manual restart: the server reopens the file once it can, committed data intact, same process.

Needs root (mount); skipped where a tmpfs cannot be mounted.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import adbc_driver_manager
import pyarrow.flight as flight
import pytest

from support import launch_server


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, leave: int) -> Path:
    """Writes a file that leaves about `leave` bytes free on the file system of `folder`."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def health(server) -> dict:
    result = next(iter(server.flight_client().do_action(flight.Action("health", b""))))
    return json.loads(result.body.to_pybytes())


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None


def test_breaker_ignores_user_failures_and_opens_on_a_full_database_disk(small_disk, tmp_path):
    server = launch_server(tmp_path / "work", str(small_disk / "flight.duckdb"), memory_limit="64MB",
                           worker_threads=1, breaker_failure_threshold=3, breaker_reset_timeout=2,
                           data_dir=str(tmp_path / "data"))
    try:
        with server.connect() as conn:
            run(conn, "CREATE TABLE keep AS SELECT range AS i FROM range(1000)")
            run(conn, "CHECKPOINT")
            # A user's flood of failing queries: missing files, out of memory, bad SQL. Never the server's fault.
            for _ in range(8):
                for sql in ("SELECT * FROM read_csv('/nonexistent/missing.csv')",
                            "SELECT length(list(range)) FROM range(30000000)", "SELEC 1"):
                    with pytest.raises(adbc_driver_manager.Error):
                        run(conn, sql)
            assert health(server)["circuit_breaker"]["state"] == "closed"
            started = time.monotonic()
            assert run(conn, "SELECT count(*) FROM keep") == [(1000,)]
            assert time.monotonic() - started < 1.0
            # The server's own fault: the disk holding the database and its WAL is full.
            filler = fill(small_disk, leave=64 * 1024)
            failures = 0
            for _ in range(10):
                try:
                    run(conn, "INSERT INTO keep SELECT range FROM range(200000)")
                except adbc_driver_manager.Error as exc:
                    failures += 1
                    assert "No space left" in str(exc) or "circuit breaker" in str(exc) \
                        or "reopened" in str(exc), str(exc)
                if health(server)["circuit_breaker"]["state"] == "open":
                    break
            assert failures >= 3
            assert health(server)["circuit_breaker"]["state"] in ("open", "half_open")
            filler.unlink()
            deadline = time.monotonic() + 30
            while True:
                try:
                    run(conn, "INSERT INTO keep VALUES (-1)")
                    break
                except adbc_driver_manager.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            assert run(conn, "SELECT count(*) FROM keep WHERE i < 1000") == [(1001,)]
            assert health(server)["circuit_breaker"]["state"] == "closed"
    finally:
        server.stop()


def test_fatal_engine_error_recovers_without_a_restart(small_disk, tmp_path):
    server = launch_server(tmp_path / "work", str(small_disk / "flight.duckdb"), http_port=0,
                           data_dir=str(tmp_path / "data"), breaker_failure_threshold=100)
    pid = server.proc.pid
    try:
        with server.connect() as conn:
            run(conn, "CREATE TABLE keep AS SELECT range AS i FROM range(1000)")
            run(conn, "CHECKPOINT")
            filler = fill(small_disk, leave=300 * 1024)
            committed = 1000
            fatal = None
            for _ in range(40):
                try:
                    run(conn, "INSERT INTO keep SELECT range FROM range(20000)")
                    committed += 20000
                except adbc_driver_manager.Error:
                    pass
                try:
                    run(conn, "CHECKPOINT")
                except adbc_driver_manager.Error as exc:
                    fatal = str(exc)
                    break
            assert fatal is not None and "FATAL" in fatal.upper(), fatal
            # While the disk is full, writes fail cleanly (no crash), the process stays the same.
            with pytest.raises(adbc_driver_manager.Error):
                run(conn, "INSERT INTO keep SELECT range FROM range(200000)")
            assert server.alive()
            filler.unlink()
            deadline = time.monotonic() + 30
            while True:
                try:
                    with server.connect() as fresh:
                        run(fresh, "INSERT INTO keep VALUES (-1)")
                        count = run(fresh, "SELECT count(*) FROM keep")[0][0]
                    break
                except adbc_driver_manager.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        assert count == committed + 1
        report = health(server)
        assert report["database"]["reopens"] >= 1 and report["database"]["state"] == "open"
        assert report["status"] in ("healthy", "degraded")
        assert server.proc.pid == pid and server.alive()
        log = server.stderr_text()
        assert "database reopened after a fatal error" in log
    finally:
        server.stop()
