"""Per-connection sessions: temp tables, SET, current catalog/schema, pool and idle limits.

Session tests run twice: plain connections and connections using the ADBC
cookie middleware (``adbc.flight.sql.rpc.with_cookie_middleware``).
"""

from __future__ import annotations

import signal
import threading
import time

import adbc_driver_manager
import pytest

from support import rows, run_with_timeout, scalar


@pytest.fixture(params=["plain", "cookies"])
def connect(request, server):
    """Factory opening connections in the parametrised mode; all closed at teardown."""
    opened = []
    cookies = request.param == "cookies"

    def _connect(**kwargs):
        c = server.connect(cookies=cookies, **kwargs)
        opened.append(c)
        return c

    yield _connect
    for c in opened:
        try:
            c.close()
        except Exception:
            pass


def test_temp_table_persists_across_statements(connect, unique_name):
    t = unique_name("tmp")
    c = connect()
    cur = c.cursor()
    cur.execute(f"CREATE TEMP TABLE {t} AS SELECT i FROM range(10) t(i)")
    cur.close()
    # new cursors (new statements) in the same connection see it
    for _ in range(3):
        assert scalar(c, f"SELECT count(*) FROM {t}") == 10
    cur = c.cursor()
    cur.execute(f"INSERT INTO {t} VALUES (100)")
    cur.close()
    assert scalar(c, f"SELECT sum(i) FROM {t}") == 145


def test_temp_tables_not_shared_between_connections(connect, unique_name):
    t = unique_name("tmp")
    a = connect()
    b = connect()
    cur = a.cursor()
    cur.execute(f"CREATE TEMP TABLE {t} (x INTEGER)")
    cur.execute(f"INSERT INTO {t} VALUES (1)")
    cur.close()
    with pytest.raises(adbc_driver_manager.Error) as info:
        rows(b, f"SELECT * FROM {t}")
    assert "does not exist" in str(info.value)
    # b can create its own temp table with the same name, independent of a's
    cur = b.cursor()
    cur.execute(f"CREATE TEMP TABLE {t} (x INTEGER)")
    cur.execute(f"INSERT INTO {t} VALUES (2), (3)")
    cur.close()
    assert scalar(a, f"SELECT sum(x) FROM {t}") == 1
    assert scalar(b, f"SELECT sum(x) FROM {t}") == 5


def test_temp_table_gone_after_close(connect, unique_name):
    t = unique_name("tmp")
    a = connect()
    cur = a.cursor()
    cur.execute(f"CREATE TEMP TABLE {t} (x INTEGER)")
    cur.close()
    a.close()
    # Whatever DuckDB connection the server hands out next must not carry it.
    for _ in range(3):
        b = connect()
        assert scalar(b, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'") == 0
        b.close()


def test_session_setting_persists_within_connection(connect):
    c = connect()
    cur = c.cursor()
    cur.execute("SET integer_division = true")
    cur.close()
    assert scalar(c, "SELECT current_setting('integer_division')") is True


def test_global_setting_is_locked(connect):
    """DuckDB's configuration is locked at start: `threads` is database-wide, so no session may change it."""
    c = connect()
    original = scalar(c, "SELECT current_setting('threads')")
    cur = c.cursor()
    with pytest.raises(Exception, match="locked"):
        cur.execute("SET threads = 1")
    cur.close()
    assert scalar(connect(), "SELECT current_setting('threads')") == original


def test_session_setting_isolated_between_connections(connect):
    a = connect()
    b = connect()
    default_tz = scalar(b, "SELECT current_setting('TimeZone')")
    target = "America/Denver" if default_tz != "America/Denver" else "Asia/Tokyo"
    cur = a.cursor()
    cur.execute(f"SET TimeZone = '{target}'")
    cur.close()
    assert scalar(a, "SELECT current_setting('TimeZone')") == target
    assert scalar(a, "SELECT current_setting('TimeZone')") == target
    assert scalar(b, "SELECT current_setting('TimeZone')") == default_tz
    a.close()
    # a pooled DuckDB connection must not leak the setting into a new session
    for _ in range(3):
        c = connect()
        assert scalar(c, "SELECT current_setting('TimeZone')") == default_tz
        c.close()


def test_current_catalog_and_schema(connect):
    c = connect()
    assert c.adbc_current_catalog == scalar(c, "SELECT current_database()")
    assert c.adbc_current_db_schema == scalar(c, "SELECT current_schema()") == "main"


def test_set_current_db_schema(connect, unique_name):
    schema = unique_name("s")
    t = unique_name()
    c = connect()
    cur = c.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    cur.close()
    c.adbc_current_db_schema = schema
    assert c.adbc_current_db_schema == schema
    assert scalar(c, "SELECT current_schema()") == schema
    cur = c.cursor()
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")  # unqualified -> lands in the new schema
    cur.close()
    assert scalar(c, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}' "
                     f"AND schema_name = '{schema}'") == 1
    # other sessions keep their own current schema
    other = connect()
    assert scalar(other, "SELECT current_schema()") == "main"
    assert other.adbc_current_db_schema == "main"


def test_set_current_catalog(connect, unique_name):
    db = unique_name("cat")
    c = connect()
    original = c.adbc_current_catalog
    cur = c.cursor()
    cur.execute(f"ATTACH ':memory:' AS {db}")
    cur.close()
    try:
        c.adbc_current_catalog = db
        assert c.adbc_current_catalog == db
        assert scalar(c, "SELECT current_database()") == db
        other = connect()
        assert scalar(other, "SELECT current_database()") == original
        c.adbc_current_catalog = original
        assert scalar(c, "SELECT current_database()") == original
    finally:
        cur = c.cursor()
        cur.execute(f"USE {original}")
        cur.execute(f"DETACH {db}")
        cur.close()


def test_use_statement_changes_reported_schema(connect, unique_name):
    schema = unique_name("s")
    c = connect()
    cur = c.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    cur.execute(f"USE {schema}")
    cur.close()
    assert scalar(c, "SELECT current_schema()") == schema
    assert c.adbc_current_db_schema == schema


def test_many_connections_open_and_close(connect):
    # Sessions are released on close: far more connections than any pool.
    for i in range(40):
        c = connect()
        assert scalar(c, f"SELECT {i}") == i
        c.close()


# ---------------------------------------------------------------------------
# Private servers: pool size, idle timeout, shutdown
# ---------------------------------------------------------------------------


def test_pool_size_sessions_are_released(start_server):
    srv = start_server(pool_size=2)
    for i in range(8):
        c = srv.connect()
        assert scalar(c, f"SELECT {i} + 1") == i + 1
        c.close()
    a, b = srv.connect(), srv.connect()
    assert scalar(a, "SELECT 1") == 1 and scalar(b, "SELECT 2") == 2
    a.close()
    b.close()
    assert srv.alive()


def test_pool_size_limit_waits_or_rejects_then_recovers(start_server):
    """With --pool-size 2 and two busy sessions, a third either waits for a free
    slot or is rejected with an error; it never hangs after a slot frees up."""
    # All test clients are one user (127.0.0.1): a per-user cap of 1 would reclaim a's idle session.
    srv = start_server(pool_size=2, max_sessions_per_user=2)
    a, b = srv.connect(), srv.connect()
    cur = a.cursor()
    cur.execute("CREATE TEMP TABLE hold_a AS SELECT 1 AS x")
    cur.close()
    cur = b.cursor()
    cur.execute("CREATE TEMP TABLE hold_b AS SELECT 1 AS x")
    cur.close()

    outcome: dict = {}

    def third():
        c = None
        try:
            c = srv.connect()
            outcome["value"] = scalar(c, "SELECT 3")
        except adbc_driver_manager.Error as exc:
            outcome["error"] = exc
        finally:
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass

    t = threading.Thread(target=third, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # waiting for a slot: free one
        a.close()
        a = None
        t.join(20)
        assert not t.is_alive(), "third session still blocked after a pool slot was freed"
        assert outcome.get("value") == 3, outcome
    elif "error" in outcome:
        # rejected: a clear, retryable error rather than a hang
        assert "Traceback" not in str(outcome["error"])
        assert outcome["error"].status_code in (
            adbc_driver_manager.AdbcStatusCode.IO,  # gRPC UNAVAILABLE
            adbc_driver_manager.AdbcStatusCode.INTERNAL,  # gRPC RESOURCE_EXHAUSTED
        ), outcome["error"]
    else:
        assert outcome.get("value") == 3

    # a and b kept their sessions (if still open)
    assert scalar(b, "SELECT x FROM hold_b") == 1
    if a is not None:
        assert scalar(a, "SELECT x FROM hold_a") == 1
        a.close()
    b.close()
    # after everything is released, new sessions work
    c = srv.connect()
    assert scalar(c, "SELECT 4") == 4
    c.close()


def test_idle_session_expires(start_server):
    srv = start_server(session_idle_timeout=1)
    c = srv.connect()
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE idle_probe AS SELECT 1 AS x")
    cur.close()
    assert scalar(c, "SELECT x FROM idle_probe") == 1
    time.sleep(4)
    # the idle session (and its temp table) is gone
    with pytest.raises(adbc_driver_manager.Error):
        rows(c, "SELECT x FROM idle_probe")
    c.close()
    fresh = srv.connect()
    assert scalar(fresh, "SELECT 5") == 5
    fresh.close()


def test_active_session_does_not_expire(start_server):
    srv = start_server(session_idle_timeout=2)
    c = srv.connect()
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE busy_probe AS SELECT 7 AS x")
    cur.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert scalar(c, "SELECT x FROM busy_probe") == 7
        time.sleep(0.5)
    c.close()


def test_idle_session_frees_pool_slot(start_server):
    srv = start_server(pool_size=1, session_idle_timeout=1)
    idle = srv.connect()
    cur = idle.cursor()
    cur.execute("CREATE TEMP TABLE slot_holder AS SELECT 1 AS x")
    cur.close()

    def second_session():
        deadline = time.monotonic() + 15
        while True:
            c = None
            try:
                c = srv.connect()
                return scalar(c, "SELECT 42")
            except adbc_driver_manager.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            finally:
                if c is not None:
                    c.close()

    assert run_with_timeout(second_session, 25, "second session on a full pool") == 42
    idle.close()


def test_memory_database(start_server, unique_name):
    srv = start_server(database=":memory:")
    a, b = srv.connect(), srv.connect()
    t = unique_name()
    cur = a.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT 1 AS x")
    cur.close()
    # one shared in-memory database, not one per session
    assert scalar(b, f"SELECT x FROM {t}") == 1
    a.close()
    b.close()


def test_file_database_persists_across_restart(start_server, tmp_path, unique_name):
    path = str(tmp_path / "persist.duckdb")
    t = unique_name()
    srv = start_server(database=path)
    c = srv.connect()
    cur = c.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT i FROM range(100) t(i)")
    cur.close()
    c.close()
    code = srv.stop()
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{srv.stderr_tail()}"
    srv2 = start_server(database=path)
    c = srv2.connect()
    assert scalar(c, f"SELECT sum(i) FROM {t}") == 4950
    c.close()


def test_sigterm_shuts_down_promptly(start_server):
    srv = start_server()
    c = srv.connect()
    assert scalar(c, "SELECT 1") == 1
    c.close()
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(timeout=15)
    assert time.monotonic() - start < 10
    assert srv.proc.returncode in (0, -signal.SIGTERM), srv.stderr_tail()


def test_idle_session_rolls_back_open_transaction(start_server):
    srv = start_server(session_idle_timeout=1)
    setup = srv.connect()
    cur = setup.cursor()
    cur.execute("CREATE TABLE idle_txn (id INTEGER PRIMARY KEY, who VARCHAR)")
    cur.close()
    txn = srv.connect(autocommit=False)
    cur = txn.cursor()
    cur.execute("INSERT INTO idle_txn VALUES (1, 'abandoned')")
    cur.close()
    time.sleep(4)
    # the abandoned transaction was rolled back: the same key can be inserted
    cur = setup.cursor()
    cur.execute("INSERT INTO idle_txn VALUES (1, 'winner')")
    cur.close()
    assert rows(setup, "SELECT id, who FROM idle_txn") == [(1, "winner")]
    try:
        txn.close()
    except Exception:
        pass
    setup.close()
