"""Cancelling a running statement frees the session promptly."""

from __future__ import annotations

import threading
import time

import adbc_driver_manager

from support import run_with_timeout, scalar

# Runs for minutes unless interrupted.
LONG_QUERY = "SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1"


def test_cancel_long_running_query(start_server):
    # A private server: if cancellation is not honoured the query keeps a core busy.
    srv = start_server(database=":memory:")
    conn = srv.connect()
    cur = conn.cursor()
    outcome: dict = {}

    def run():
        start = time.monotonic()
        try:
            cur.execute(LONG_QUERY)
            outcome["value"] = cur.fetchall()
        except adbc_driver_manager.Error as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive(), f"query finished too early: {outcome}"
    cur.adbc_cancel()
    worker.join(15)
    assert not worker.is_alive(), "execute() still blocked 15s after cancel"
    assert "error" in outcome, outcome
    # The same session answers promptly: the server interrupted DuckDB.
    assert run_with_timeout(lambda: scalar(conn, "SELECT 42"), 15,
                            "query on the same connection after cancel") == 42
    cur.close()
    conn.close()


def test_cancel_does_not_affect_other_sessions(start_server):
    srv = start_server(database=":memory:")
    busy = srv.connect()
    other = srv.connect()
    cur = busy.cursor()
    done = threading.Event()

    def run():
        try:
            cur.execute(LONG_QUERY)
            cur.fetchall()
        except adbc_driver_manager.Error:
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(1.0)
    # another session is served while the first one is busy
    assert run_with_timeout(lambda: scalar(other, "SELECT 7"), 15, "query on another session") == 7
    cur.adbc_cancel()
    assert done.wait(15)
    other.close()
