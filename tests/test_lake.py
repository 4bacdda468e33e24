"""Servers over a DuckLake: one node with a file catalog, several nodes over a PostgreSQL catalog, data in a
folder or on S3 (moto); commits visible across nodes, write conflicts, signed tickets any node can serve, a
node killed mid-query."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from lake_fixtures import CLUSTER_SECRET, lake_nodes, local_data_path, moto_s3, postgres, s3_environment  # noqa: F401
from support import rows, scalar

from flight_server.auth.passwords import hash_password


def _users_file(tmp_path) -> str:
    path = tmp_path / "users.toml"
    path.write_text("".join(f'[users.{name}]\npassword_hash = "{hash_password(name + "-pw")}"\nrole = "{name}"\n'
                            for name in ("admin", "write", "read")))
    return str(path)


def _login(node, user):
    return node.connect(db_kwargs={"username": user, "password": user + "-pw"})


def _client(node, user=None):
    client = flight.FlightClient(node.uri)
    if user is None:
        return client, flight.FlightCallOptions()
    header = client.authenticate_basic_token(user, user + "-pw")
    return client, flight.FlightCallOptions(headers=[header])


def _ticket(node, sql, user=None):
    client, options = _client(node, user)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(sql), options)
    return info.endpoints[0].ticket


def _redeem(node, ticket, user=None) -> pa.Table:
    client, options = _client(node, user)
    return client.do_get(ticket, options).read_all()


# -- one node, file catalog ------------------------------------------------------------------------------


def test_single_node_file_catalog_roles_and_sandbox(lake_nodes, tmp_path):
    data = local_data_path(tmp_path)
    node, = lake_nodes(1, str(tmp_path / "catalog.ducklake"), data, auth="password",
                       users_file=_users_file(tmp_path), cluster_secret=None)
    with _login(node, "write") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE trips (id INTEGER, city VARCHAR)")
        cur.execute("INSERT INTO trips SELECT i, 'c' || (i % 3) FROM range(1000) t(i)")
        cur.execute("SELECT current_database()")
        assert cur.fetchall() == [("lake",)]
        # The lake's files and its catalog database are the server's, whatever the role.
        with pytest.raises(Exception, match="belongs to the server"):
            cur.execute(f"SELECT * FROM read_parquet('{data}/main/trips/*.parquet')")
        with pytest.raises(Exception, match="reserved name"):
            cur.execute("SELECT * FROM __ducklake_metadata_lake.ducklake_snapshot")
    with _login(node, "read") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT city) FROM trips")
        assert cur.fetchall() == [(1000, 3)]
        with pytest.raises(Exception, match="(?i)role 'read' may not|read-only"):
            cur.execute("INSERT INTO trips VALUES (1, 'x')")
        with pytest.raises(Exception, match="(?i)permission|disabled"):
            cur.execute("ATTACH 'other.ducklake' AS other")
    with _login(node, "admin") as conn:
        assert scalar(conn, "SELECT count(*) FROM trips") == 1000


# -- several nodes over a PostgreSQL catalog -------------------------------------------------------------


def test_commit_on_one_node_is_visible_on_the_others(lake_nodes, postgres, tmp_path):
    a, b, c = lake_nodes(3, postgres.create_database(), local_data_path(tmp_path))
    table = pa.table({"id": pa.array(range(50_000), pa.int64()), "v": pa.array([i * 0.5 for i in range(50_000)])})
    with a.connect() as conn, conn.cursor() as cur:
        cur.adbc_ingest("events", table, mode="create")
    with b.connect() as conn:
        assert rows(conn, "SELECT count(*), sum(id) FROM events") == [(50_000, sum(range(50_000)))]
        with conn.cursor() as cur:
            cur.execute("DELETE FROM events WHERE id >= 40000")
    for node in (a, c):
        with node.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM events") == 40_000
    assert all("dbname=" not in node.stderr_text() for node in (a, b, c))  # the catalog is never logged


def test_concurrent_conflicting_writes_fail_cleanly_with_a_retry_message(lake_nodes, postgres, tmp_path):
    a, b = lake_nodes(2, postgres.create_database(), local_data_path(tmp_path))
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (id INTEGER, balance INTEGER)")
        cur.execute("INSERT INTO accounts VALUES (1, 100), (2, 100)")
    first, second = a.connect(autocommit=False), b.connect(autocommit=False)
    try:
        with first.cursor() as one, second.cursor() as two:
            one.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
            two.execute("UPDATE accounts SET balance = balance - 50 WHERE id = 1")
            two.execute("INSERT INTO accounts VALUES (3, 7)")
            first.commit()
            with pytest.raises(Exception) as failed:
                second.commit()
        assert "retry" in str(failed.value)
        assert "conflict" in str(failed.value).lower()
    finally:
        first.close()
        second.close()
    with b.connect() as conn:  # the loser changed nothing; a retry succeeds
        assert rows(conn, "SELECT id, balance FROM accounts ORDER BY id") == [(1, 70), (2, 100)]
        with conn.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance - 50 WHERE id = 1")
        assert scalar(conn, "SELECT balance FROM accounts WHERE id = 1") == 20


def test_ticket_from_one_node_redeemed_on_another_reads_its_snapshot(lake_nodes, postgres, tmp_path):
    a, b = lake_nodes(2, postgres.create_database(), local_data_path(tmp_path))
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (i INTEGER)")
        cur.execute("INSERT INTO t SELECT * FROM range(10)")
    sql = "WITH big AS (SELECT i FROM t WHERE i >= 5) SELECT count(*) AS n, sum(i) AS s FROM big"
    ticket = _ticket(a, sql)
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t SELECT * FROM range(100, 110)")  # committed after the ticket was issued
    assert _redeem(b, ticket).to_pylist() == [{"n": 5, "s": 35}]
    assert _redeem(a, ticket).to_pylist() == [{"n": 5, "s": 35}]
    # A fresh query sees the new commit; so does one with parameters through ADBC (prepared, on node b).
    assert _redeem(b, _ticket(a, sql)).to_pylist() == [{"n": 15, "s": 35 + sum(range(100, 110))}]
    with b.connect() as conn:
        assert rows(conn, "SELECT count(*) FROM t WHERE i >= ?", (100,)) == [(10,)]
    # A tampered ticket is refused.
    raw = bytearray(ticket.ticket)
    raw[-60] ^= 1
    with pytest.raises(flight.FlightError):
        _redeem(b, flight.Ticket(bytes(raw)))


def test_session_bound_statements_keep_session_tickets(lake_nodes, postgres, tmp_path):
    a, b = lake_nodes(2, postgres.create_database(), local_data_path(tmp_path))
    client, options = _client(a)
    client.get_flight_info(flight.FlightDescriptor.for_command("CREATE TEMP TABLE scratch AS SELECT 42 AS x"),
                           options)
    info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT x FROM scratch"), options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"x": 42}]
    info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT x FROM scratch"), options)
    assert b"lake1." not in info.endpoints[0].ticket.ticket  # a session-bound ticket, not a signed one
    assert [loc.uri for loc in info.endpoints[0].locations] == [b"arrow-flight-reuse-connection://?"]
    with pytest.raises(KeyError, match="not found"):  # another node has no such session
        _redeem(b, info.endpoints[0].ticket)
    # A temporary table shadowing a lake table, a session's macro and a volatile function keep the session too;
    # each case in a session of its own (a new connection).
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE shadowed AS SELECT 'lake' AS v")
    cases = (("CREATE TEMP TABLE shadowed AS SELECT 'temp' AS v", "SELECT v FROM shadowed", [{"v": "temp"}], False),
             ("CREATE TEMP MACRO twice(x) AS x * 2", "SELECT twice(21) AS y", [{"y": 42}], False),
             (None, "SELECT random() < 2 AS r", [{"r": True}], False),
             (None, "SELECT v FROM shadowed", [{"v": "lake"}], True))
    for setup, sql, expected, portable in cases:
        fresh, fresh_options = _client(a)
        if setup:
            fresh.get_flight_info(flight.FlightDescriptor.for_command(setup), fresh_options)
        info = fresh.get_flight_info(flight.FlightDescriptor.for_command(sql), fresh_options)
        assert (b"lake1." in info.endpoints[0].ticket.ticket) == portable, sql
        assert fresh.do_get(info.endpoints[0].ticket, fresh_options).read_all().to_pylist() == expected
        fresh.close()
    # ADBC follows the location back to its own connection: temp tables work in a cluster.
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE mine AS SELECT 7 AS y")
        cur.execute("SELECT y FROM mine")
        assert cur.fetchall() == [(7,)]


def test_tickets_are_bound_to_their_user(lake_nodes, postgres, tmp_path):
    users = _users_file(tmp_path)
    a, b = lake_nodes(2, postgres.create_database(), local_data_path(tmp_path), auth="password", users_file=users)
    with _login(a, "write") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE secrets_table AS SELECT 1 AS k")
    ticket = _ticket(a, "SELECT k FROM secrets_table", "read")
    assert _redeem(b, ticket, "read").to_pylist() == [{"k": 1}]
    with pytest.raises(flight.FlightError, match="another user"):
        _redeem(b, ticket, "write")
    with pytest.raises(flight.FlightUnauthenticatedError):
        _redeem(b, ticket)


def test_a_node_killed_mid_query_the_others_serve_and_a_retry_succeeds(lake_nodes, postgres, tmp_path):
    a, b, c = lake_nodes(3, postgres.create_database(), local_data_path(tmp_path))
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE big AS SELECT i, i % 97 AS g, repeat('x', 40) AS pad FROM range(2000000) t(i)")
    sql = "SELECT i, g, pad FROM big"
    ticket = _ticket(a, sql)
    client, options = _client(a)
    reader = client.do_get(ticket, options)
    first = reader.read_chunk()  # the stream is under way on node a
    assert first.data.num_rows > 0
    a.proc.kill()
    a.proc.wait(timeout=10)
    with pytest.raises(Exception):
        while True:
            reader.read_chunk()
    # The client retries the same ticket on another node and gets every row.
    result = _redeem(b, ticket)
    assert result.num_rows == 2_000_000
    assert pa.compute.sum(result["i"]).as_py() == sum(range(2_000_000))
    with c.connect() as conn:
        assert scalar(conn, "SELECT count(*) FROM big WHERE g = 0") == len(range(0, 2_000_000, 97))


def test_many_clients_on_many_nodes_write_and_read(lake_nodes, postgres, tmp_path):
    nodes = lake_nodes(2, postgres.create_database(), local_data_path(tmp_path))
    with nodes[0].connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE log (node INTEGER, n INTEGER)")
    failures: list[str] = []

    def writer(index: int) -> None:
        node = nodes[index % 2]
        with node.connect() as conn, conn.cursor() as cur:
            for n in range(5):
                for _attempt in range(20):  # appends may conflict on the catalog: retry as the message says
                    try:
                        cur.execute("INSERT INTO log VALUES (?, ?)", (index, n))
                        break
                    except Exception as exc:  # noqa: BLE001
                        if "retry" not in str(exc):
                            failures.append(str(exc))
                            return
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    for node in nodes:
        with node.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM log") == 20


def test_lake_data_on_s3(lake_nodes, postgres, moto_s3, monkeypatch):
    port, s3 = moto_s3
    for name, value in s3_environment(port).items():
        monkeypatch.setenv(name, value)
    a, b = lake_nodes(2, postgres.create_database(), "s3://lake/warehouse/")
    with a.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE s3t AS SELECT i FROM range(100000) t(i)")
        with pytest.raises(Exception, match="lake's own files"):
            cur.execute("SELECT * FROM read_parquet('s3://lake/warehouse/main/s3t/x.parquet')")
    with b.connect() as conn:
        assert scalar(conn, "SELECT sum(i) FROM s3t") == sum(range(100000))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="warehouse/").get("Contents", [])]
    assert any(key.endswith(".parquet") for key in keys)
    assert _redeem(b, _ticket(a, "SELECT count(*) AS n FROM s3t")).to_pylist() == [{"n": 100000}]


def test_catalog_password_must_come_from_the_environment_and_settings_are_redacted(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "flight_server", "--lake-catalog",
                           "postgres:host=db dbname=lake password=hunter2", "--print-config"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "PGPASSWORD" in done.stderr and "hunter2" not in done.stderr
    shown = subprocess.run([sys.executable, "-m", "flight_server", "--lake-catalog", "postgres:host=db-7 dbname=lake",
                            "--cluster-secret", "s3cr3t-value", "--print-config"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0
    assert "db-7" not in shown.stdout and "s3cr3t-value" not in shown.stdout
    assert '"lake_catalog": "***"' in shown.stdout


def test_lake_upkeep_merges_files_and_expires_snapshots(lake_nodes, tmp_path):
    import json
    from pathlib import Path
    data = local_data_path(tmp_path)
    node, = lake_nodes(1, str(tmp_path / "catalog.ducklake"), data, cluster_secret=None, ticket_ttl=0)
    with node.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE small (i INTEGER, s VARCHAR)")
        for batch in range(12):
            cur.execute(f"INSERT INTO small SELECT i, 'v' || i FROM range({batch * 5000}, {(batch + 1) * 5000}) t(i)")
        before_snapshots = scalar(conn, "SELECT count(*) FROM lake.snapshots()")
    before_files = sorted(Path(data).rglob("*.parquet"))
    client = node.flight_client()
    with pytest.raises(pa.ArrowInvalid, match="older_than_seconds"):
        list(client.do_action(flight.Action("lake-upkeep", b'{"older_than_seconds": "soon"}')))
    report = json.loads(next(iter(client.do_action(
        flight.Action("lake-upkeep", b'{"older_than_seconds": 0}')))).body.to_pybytes())
    after_files = sorted(Path(data).rglob("*.parquet"))
    assert report["merged"] >= 1 and report["expired_snapshots"] >= 1, report
    assert len(after_files) < len(before_files), (before_files, after_files)
    with node.connect() as conn:
        assert rows(conn, "SELECT count(*), sum(i) FROM small") == [(60_000, sum(range(60_000)))]
        assert scalar(conn, "SELECT count(*) FROM lake.snapshots()") < before_snapshots


def test_fan_out_read_spreads_over_the_nodes_and_equals_the_single_node_result(lake_nodes, postgres, tmp_path):
    from support import free_port
    ports = [free_port() for _ in range(3)]
    nodes_flag = ",".join(f"grpc://127.0.0.1:{port}" for port in ports)
    catalog, data = postgres.create_database(), local_data_path(tmp_path)
    nodes = [lake_nodes(1, catalog, data, fixed_port=port, cluster_nodes=nodes_flag, fan_out_min_rows=1000)[0]
             for port in ports]
    with nodes[0].connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE wide AS SELECT i, i % 13 AS g, 'r' || i AS label FROM range(300000) t(i)")
        cur.execute("INSERT INTO wide SELECT i, 99, 'late' FROM range(300000, 310000) t(i)")
    sql = "SELECT i, label FROM wide WHERE g <> 5"
    client, options = _client(nodes[1])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(sql), options)
    assert len(info.endpoints) == 3
    assert {e.locations[0].uri.decode()
            for e in info.endpoints} == {f"grpc://127.0.0.1:{port}" for port in ports}
    parts = [_redeem(node, endpoint.ticket) for node, endpoint in zip(nodes, info.endpoints)]
    assert all(part.num_rows > 0 for part in parts)
    # Through ADBC: the driver reads every endpoint from its node; the rows equal one node's plain answer.
    with nodes[2].connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        fanned = cur.fetch_arrow_table()
        cur.execute(f"SELECT count(*), sum(i) FROM ({sql})")
        expected = cur.fetchall()
    assert (fanned.num_rows, pa.compute.sum(fanned["i"]).as_py()) == expected[0]
    assert sum(part.num_rows for part in parts) == fanned.num_rows
    assert sorted(pa.concat_tables(parts)["i"].to_pylist()) == sorted(fanned["i"].to_pylist())
    # Aggregates and small tables keep one endpoint.
    info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT count(*) FROM wide"), options)
    assert len(info.endpoints) == 1


def test_nodes_started_together_on_an_empty_catalog_all_attach(postgres, tmp_path):
    """Engines opened at once on a new catalog race to create its tables; every one attaches."""
    from flight_server.engine.database import Database, EngineSettings
    from flight_server.engine.lake import LakeSettings
    lake = LakeSettings(postgres.create_database(), local_data_path(tmp_path))
    opened: list = []
    errors: list = []

    def open_one() -> None:
        try:
            opened.append(Database(EngineSettings(lake=lake, allowed_directories=(str(tmp_path / "files"),))))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(opened) == 4
    opened[0].connect().execute("CREATE TABLE hello AS SELECT 1 AS x")
    assert [db.connect().execute("SELECT x FROM hello").fetchall() for db in opened] == [[(1,)]] * 4
    for db in opened:
        db.close()


# -- engine and ticket logic, in-process (file catalog, no server) -----------------------------------------


@pytest.fixture
def lake_connection(tmp_path):
    from flight_server.engine.database import Database, EngineSettings
    from flight_server.engine.lake import LakeSettings
    database = Database(EngineSettings(lake=LakeSettings(str(tmp_path / "c.ducklake"), str(tmp_path / "d")),
                                       allowed_directories=(str(tmp_path / "files"),)))
    conn = database.connect()
    conn.execute("CREATE TABLE t AS SELECT i, i % 3 AS g FROM range(1000) r(i)")
    conn.execute("CREATE SCHEMA other")
    yield database, conn
    conn.close()
    database.close()


def test_pin_reads_lake_tables_at_one_snapshot_and_refuses_session_state(lake_connection):
    from flight_server.engine import lake
    database, conn = lake_connection
    builtins = lake.builtin_functions(conn)
    query, _tree, snapshot = lake.pin(conn, "WITH c AS (SELECT * FROM t) SELECT count(*) FROM c, lake.main.t u "
                                            "WHERE c.i = u.i AND u.g IN (SELECT 1 FROM memory.main.x)", builtins)
    assert query.count(f"AT (VERSION => {snapshot})") == 2  # t and lake.main.t; not the CTE, not memory.x
    conn.execute("INSERT INTO t VALUES (5000, 1)")  # after the pin: not seen by the pinned query
    assert conn.execute(lake.pin(conn, "SELECT count(*) FROM t", builtins)[0]).fetchone()[0] == 1001
    assert conn.execute(query.replace("memory.main.x", "(SELECT 1)")).fetchone()[0] == 333  # i % 3 = 1, i < 1000
    other = database.connect()
    for setup, sql in (("CREATE TEMP TABLE scratch AS SELECT 1", "SELECT 1"), ("USE lake.other", "SELECT 1"),
                       ("CREATE TEMP MACRO twice(x) AS x * 2", "SELECT twice(1)"), (None, "SELECT random()"),
                       (None, "SELECT nextval('s')")):
        if setup:
            other.execute(setup)
        assert lake.pin(other, sql, builtins) is None, (setup, sql)
        other.close()
        other = database.connect()


def test_partitions_split_a_plain_scan_into_disjoint_ranges(lake_connection):
    from flight_server.engine import lake
    _database, conn = lake_connection
    builtins = lake.builtin_functions(conn)
    query, tree, _ = lake.pin(conn, "SELECT i FROM t WHERE g <> 1", builtins)
    parts = lake.partitions(conn, tree, 3, 10)
    assert len(parts) == 3
    got = sorted(row[0] for part in parts for row in conn.execute(part).fetchall())
    assert got == sorted(row[0] for row in conn.execute(query).fetchall())
    assert lake.partitions(conn, tree, 3, 1_000_000) is None  # too small
    for sql in ("SELECT count(*) FROM t", "SELECT i FROM t ORDER BY i", "SELECT i FROM t LIMIT 5",
                "SELECT a.i FROM t a JOIN t b USING (i)", "SELECT i + 1 FROM t"):
        assert lake.partitions(conn, lake.pin(conn, sql, builtins)[1], 3, 10) is None, sql


def test_signed_ticket_claims_checked():
    from types import SimpleNamespace

    from flight_server.engine.errors import NotFoundError, PermissionDeniedError
    from flight_server.service.cluster_tickets import ClusterTickets
    now = [1000.0]
    tickets = ClusterTickets(b"k1", 60, clock=lambda: now[0])
    handle = tickets.sign({"q": "SELECT 1", "p": None, "s": 1, "e": now[0] + 60, "u": "ann", "r": "read"})
    ann = SimpleNamespace(principal=SimpleNamespace(user="ann", role="read"))
    assert tickets.claims(handle, ann)["q"] == "SELECT 1"
    with pytest.raises(PermissionDeniedError, match="another user"):
        tickets.claims(handle, SimpleNamespace(principal=SimpleNamespace(user="bob", role="read")))
    with pytest.raises(PermissionDeniedError, match="another user"):  # same user, another role now
        tickets.claims(handle, SimpleNamespace(principal=SimpleNamespace(user="ann", role="write")))
    with pytest.raises(PermissionDeniedError, match="signature"):
        ClusterTickets(b"k2", 60, clock=lambda: now[0]).claims(handle, ann)
    with pytest.raises(PermissionDeniedError, match="signature"):
        tickets.claims(handle.replace(b"SELECT", b"SELECT"[::-1]) + b"x", ann)
    now[0] += 61
    with pytest.raises(NotFoundError, match="expired"):
        tickets.claims(handle, ann)


@pytest.mark.parametrize("flags, message", [
    (["--cluster-secret", "s"], "need a lake"),
    (["--lake-catalog", "c.ducklake", "--cluster-nodes", "grpc://127.0.0.1:1"], "set --cluster-secret"),
    (["--lake-catalog", "c.ducklake", "--cluster-secret", "s", "--cluster-nodes", "nonsense"], "not Flight locations"),
    (["--lake-catalog", "postgresql://flight:hunter2@db/lake"], "PGPASSWORD"),
])
def test_cluster_settings_that_cannot_work_stop_start_up(tmp_path, flags, message):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "flight_server", "--port", "0", "--http-port", "-1", "--auth", "none",
                           "--data-dir", str(tmp_path), *flags], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-500:]
    assert "hunter2" not in done.stderr


def test_catalog_as_a_postgresql_uri(postgres, tmp_path):
    from flight_server.engine.database import Database, EngineSettings
    from flight_server.engine.lake import LakeSettings
    keywords = dict(part.split("=", 1) for part in postgres.create_database().split(":", 1)[1].split())
    uri = f"postgresql://{keywords['user']}@{keywords['host']}:{keywords['port']}/{keywords['dbname']}"
    database = Database(EngineSettings(lake=LakeSettings(uri, local_data_path(tmp_path)),
                                       allowed_directories=(str(tmp_path / "files"),)))
    try:
        conn = database.connect()
        conn.execute("CREATE TABLE via_uri AS SELECT 42 AS answer")
        assert conn.execute("SELECT answer FROM via_uri").fetchall() == [(42,)]
    finally:
        database.close()


def test_read_only_node_reads_the_lake_and_refuses_writes(lake_nodes, postgres, tmp_path):
    catalog, data = postgres.create_database(), local_data_path(tmp_path)
    writer, = lake_nodes(1, catalog, data)
    with writer.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept AS SELECT 5 AS v")
    reader, = lake_nodes(1, catalog, data, read_only="true")
    with reader.connect() as conn, conn.cursor() as cur:
        assert rows(conn, "SELECT v FROM kept") == [(5,)]
        with pytest.raises(Exception, match="(?i)read.only"):
            cur.execute("INSERT INTO kept VALUES (6)")
    with writer.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO kept VALUES (7)")
    with reader.connect() as conn:  # the writer's commit, not the refused insert
        assert rows(conn, "SELECT v FROM kept ORDER BY v") == [(5,), (7,)]
