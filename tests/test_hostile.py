"""Issue 8's attacks, end to end: a hostile read, write and admin user against a real server (password auth,
sandbox, S3 on against a local endpoint). Each attack is refused with PERMISSION_DENIED (or DuckDB's own
refusal), and afterwards the database content is unchanged (hash of every table), no file appeared under the
data or allowed folders, and the server restarts cleanly on its file. Legitimate use keeps working."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager
import pyarrow as pa
import pytest

from support import launch_server

Status = adbc_driver_manager.AdbcStatusCode
USERS = {"reader": "read", "writer": "write", "boss": "admin"}


class Listener:
    """A TCP port on loopback that counts the connections made to it (an attacker's host, or a fake S3)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from flight_server.auth.passwords import hash_password

    work = tmp_path_factory.mktemp("hostile")
    data, files = work / "data", work / "files"
    files.mkdir()
    (files / "seed.csv").write_text("i\n10\n11\n")
    passwords = {name: secrets.token_urlsafe(12) for name in USERS}
    users = work / "users.toml"
    users.write_text("".join(f'[users.{n}]\npassword_hash = "{hash_password(passwords[n])}"\nrole = "{r}"\n'
                             for n, r in USERS.items()))
    s3 = Listener()
    flags = dict(auth="password", users_file=str(users), data_dir=str(data), allowed_directories=str(files),
                 token_secret=secrets.token_urlsafe(16), enable_s3="true", s3_endpoint=f"127.0.0.1:{s3.port}",
                 s3_access_key_id="AKIDHOSTILETEST", s3_secret_access_key="hostile-secret-key",
                 s3_use_ssl="false", s3_url_style="path", s3_region="us-east-1")
    server = launch_server(work, str(data / "flight.duckdb"), **flags)
    env = SimpleNamespace(server=server, work=work, data=data, files=files, passwords=passwords, flags=flags,
                          s3=s3, conns={})

    def conn(user):
        if user not in env.conns:
            env.conns[user] = flightsql_dbapi.connect(
                env.server.uri, db_kwargs={"username": user, "password": passwords[user]}, autocommit=True)
        return env.conns[user]

    env.conn = conn
    run(conn("boss"), "CREATE TABLE t AS SELECT range AS i, 'v' || range AS s FROM range(5)")
    run(conn("boss"), "CREATE SEQUENCE seq")
    run(conn("boss"), "CREATE TABLE ordered AS SELECT * FROM (VALUES (1, 'b'), (2, 'A'), (3, NULL)) v(k, name)")
    yield env
    for c in env.conns.values():
        try:
            c.close()
        except Exception:
            pass
    server.stop()
    s3.close()


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None


def content_hash(env) -> str:
    """A hash of every table's rows (as the admin sees them), in a fixed order."""
    admin = env.conn("boss")
    digest = hashlib.sha256()
    for (name,) in run(admin, "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1"):
        digest.update(name.encode())
        digest.update(repr(run(admin, f'SELECT * FROM "{name}" ORDER BY ALL')).encode())
    digest.update(repr(run(admin, "SELECT sequence_name, last_value FROM duckdb_sequences() ORDER BY 1")).encode())
    return digest.hexdigest()


def file_listing(*folders: Path) -> set[str]:
    found = set()
    for folder in folders:
        for path in folder.rglob("*"):
            found.add(str(path))
    return found


def refused(env, user, sql) -> adbc_driver_manager.Error:
    with pytest.raises(adbc_driver_manager.Error) as info:
        run(env.conn(user), sql)
    return info.value


def assert_permission_denied(exc):
    assert exc.status_code == Status.UNAUTHORIZED, f"{exc.status_code}: {exc}"


def db_file(env) -> str:
    return str(env.data / "flight.duckdb")


READER_ATTACKS = [
    "EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN ANALYZE INSERT INTO t VALUES (9, 'x')", "EXPLAIN ANALYZE DROP TABLE t",
    "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", "explain /* */ analyze delete from t",
    "EXPLAIN ANALYZE COPY (SELECT 'x') TO '{db}' (FORMAT csv, USE_TMP_FILE false)",
    "SELECT size FROM read_blob('{db}')", "SELECT size FROM read_blob('{files}/../data/flight.duckdb')",
    "SELECT nextval('seq')", "SELECT * FROM checkpoint()", "CHECKPOINT", "SELECT * FROM force_checkpoint()",
    "SET default_order = 'DESC'", "SET default_null_order = 'nulls_first'", "SET default_collation = 'nocase'",
    "SET GLOBAL TimeZone = 'Asia/Tokyo'", "SELECT * FROM enable_logging()", "FROM duckdb_logs",
    "SELECT * FROM duckdb_secrets()", "SELECT * FROM query('DELETE FROM t')",
    "BEGIN TRANSACTION; DELETE FROM t; COMMIT", "COMMIT; DELETE FROM t",
    "SET custom_extension_repository = 'http://127.0.0.1:9/'", "SET autoinstall_known_extensions = true",
    "COPY t TO '{files}/out.csv'", "INSERT INTO t VALUES (9, 'x')",
]


def test_reader_attacks_are_refused_and_change_nothing(hostile):
    env = hostile
    before, files_before = content_hash(env), file_listing(env.data, env.files)
    for attack in READER_ATTACKS:
        sql = attack.format(db=db_file(env), files=env.files)
        exc = refused(env, "reader", sql)
        assert_permission_denied(exc)
        assert run(env.conn("reader"), "SELECT 1") == [(1,)]  # the session stays usable
    assert content_hash(env) == before
    assert file_listing(env.data, env.files) <= files_before | {str(p) for p in env.data.rglob("*.wal")}
    # Another session's ORDER BY is untouched by the reader's attempts at global settings.
    assert run(env.conn("writer"), "SELECT k FROM ordered ORDER BY name") == [(2,), (1,), (3,)]


WRITER_ATTACKS = [
    "COPY t /*(*/ TO '{files}/a.csv'", "COPY t --(\n TO '{files}/b.csv'", "COPY (SELECT $$($$ AS a) TO '{files}/c.csv'",
    "COPY t TO '{data}/backups/evil.parquet'", "EXPORT DATABASE '{files}/export'", "ATTACH '{files}/x.db' AS x",
    "CREATE OR REPLACE SECRET flight_s3 (TYPE s3, ENDPOINT '127.0.0.1:1')", "DROP SECRET flight_s3",
    "CREATE SECRET mine (TYPE s3)", "LOAD httpfs", "INSTALL json", "SET threads = 1", "PRAGMA threads = 1",
    "PREPARE p AS DELETE FROM t", "SELECT * FROM truncate_duckdb_logs()", "SELECT write_log('x')",
]


def test_writer_attacks_are_refused(hostile):
    env = hostile
    before, files_before = content_hash(env), file_listing(env.data, env.files)
    for attack in WRITER_ATTACKS:
        exc = refused(env, "writer", attack.format(files=env.files, data=env.data))
        assert_permission_denied(exc)
    assert content_hash(env) == before
    assert file_listing(env.files) == {p for p in files_before if p.startswith(str(env.files))}


def test_admin_cannot_reach_the_server_files_or_settings(hostile):
    env = hostile
    before = content_hash(env)
    for attack in ["COPY (SELECT 'x') TO '{db}' (FORMAT csv, USE_TMP_FILE false)", "SELECT * FROM read_blob('{db}')",
                   "SELECT * FROM read_blob('{db}.wal')", "COPY t TO '{data}/backups/t.parquet'",
                   "SELECT * FROM glob('{data}/tmp/*')", "SELECT * FROM read_text('{data}/../users.toml')",
                   "CREATE OR REPLACE SECRET flight_s3 (TYPE s3, ENDPOINT '127.0.0.1:1')", "DROP SECRET flight_s3"]:
        exc = refused(env, "boss", attack.format(db=db_file(env), data=env.data))
        assert_permission_denied(exc)
        assert "every role" in str(exc)
    for locked in ["SET custom_extension_repository = 'http://127.0.0.1:9/'", "SET autoinstall_known_extensions = true",
                   "SET enable_external_access = true", "SET s3_url_compatibility_mode = false",
                   "SET default_order = 'DESC'"]:
        exc = refused(env, "boss", locked)
        assert "locked" in str(exc), str(exc)
    # A file name from a parameter could not be checked: COPY ... TO takes literals only.
    with env.conn("boss").cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute("COPY (SELECT 'x') TO ? (FORMAT csv, USE_TMP_FILE false)", parameters=[db_file(env)])
        assert info.value.status_code == Status.UNAUTHORIZED, str(info.value)
    assert content_hash(env) == before


def test_s3_url_parameters_never_reach_another_host(hostile):
    env = hostile
    attacker = Listener()
    try:
        url = f"s3://bucket/key?s3_endpoint=127.0.0.1:{attacker.port}&s3_use_ssl=false&s3_url_style=path"
        for user in ("reader", "boss"):
            with pytest.raises(adbc_driver_manager.Error):
                run(env.conn(user), f"SELECT * FROM read_text('{url}')")
        time.sleep(0.5)
        assert attacker.connections == 0
        assert env.s3.connections >= 1  # the request went to the configured endpoint instead
    finally:
        attacker.close()


def test_parse_time_escapes_stay_in_the_sandbox(hostile):
    env = hostile
    exc = refused(env, "boss", "IMPORT DATABASE '/etc'")
    assert "Permission" in str(exc) or exc.status_code == Status.UNAUTHORIZED, str(exc)
    started = time.monotonic()
    exc = refused(env, "boss", "PRAGMA tpch(1)")
    assert time.monotonic() - started < 10
    assert "download" not in str(exc).lower(), str(exc)


def test_legitimate_use_still_works(hostile):
    env = hostile
    reader, writer, admin = env.conn("reader"), env.conn("writer"), env.conn("boss")
    assert run(reader, "SELECT count(*) FROM t") == [(5,)]
    run(reader, "SET TimeZone = 'Asia/Tokyo'")
    assert run(reader, "SELECT current_setting('TimeZone')") == [("Asia/Tokyo",)]
    assert run(writer, "SELECT current_setting('TimeZone')") != [("Asia/Tokyo",)]
    run(reader, "SET search_path = 'main'")
    run(reader, "CREATE TEMP TABLE mine AS SELECT 1 AS x")
    assert run(reader, "SELECT * FROM mine") == [(1,)]
    # A reader's Flight SQL transaction (autocommit off) is read-only and sees a stable snapshot.
    tx = flightsql_dbapi.connect(env.server.uri, db_kwargs={"username": "reader", "password": env.passwords["reader"]},
                                 autocommit=False)
    try:
        assert run(tx, "SELECT count(*) FROM t") == [(5,)]
        with pytest.raises(adbc_driver_manager.Error):
            run(tx, "SELECT nextval('seq')")
        tx.rollback()
    finally:
        tx.close()
    # Writers: DML, DDL, ingest.
    run(writer, "CREATE TABLE w AS SELECT 1 AS a")
    run(writer, "INSERT INTO w VALUES (2)")
    run(writer, "UPDATE w SET a = a * 10")
    run(writer, f"COPY w FROM '{env.files}/seed.csv'")
    with writer.cursor() as cur:
        cur.adbc_ingest("w_ingest", pa.table({"a": [1, 2, 3]}), mode="create")
    assert run(writer, "SELECT count(*) FROM w_ingest") == [(3,)]
    assert run(writer, "SELECT sum(a) FROM w") == [(51,)]
    # Admins: COPY to and from the allowed folder, ATTACH an allowed file.
    run(admin, f"COPY w TO '{env.files}/w.parquet'")
    assert run(admin, f"SELECT count(*) FROM '{env.files}/w.parquet'") == [(4,)]
    run(admin, f"ATTACH '{env.files}/extra.duckdb' AS extra")
    run(admin, "CREATE TABLE extra.x AS SELECT 1 AS a")
    run(admin, "DETACH extra")
    run(writer, "DROP TABLE w")
    run(writer, "DROP TABLE w_ingest")


def test_zz_restarts_cleanly_with_content_intact(hostile):
    env = hostile
    before = content_hash(env)
    for c in env.conns.values():
        c.close()
    env.conns.clear()
    env.server.stop()
    env.server = launch_server(env.work, db_file(env), **env.flags)
    assert content_hash(env) == before
    log = Path(env.server.stderr_path).read_text() if Path(env.server.stderr_path).exists() else ""
    assert "hostile-secret-key" not in log


def test_other_rpcs_reach_the_same_check(hostile):
    """GetFlightInfo, GetSchema, DoGet with a statement ticket and a plain-Flight SQL descriptor all run the
    role check: a reader's EXPLAIN ANALYZE DELETE is refused on each, and nothing changes."""
    import pyarrow.flight as flight

    import flightsql_wire as wire

    env = hostile
    before = content_hash(env)
    client = flight.FlightClient(env.server.uri)
    token = client.authenticate_basic_token("reader", env.passwords["reader"])
    options = flight.FlightCallOptions(headers=[token])
    attack = "EXPLAIN ANALYZE DELETE FROM t"
    calls = [
        lambda: client.get_flight_info(flight.FlightDescriptor.for_command(wire.command_statement_query(attack)),
                                       options),
        lambda: client.get_schema(flight.FlightDescriptor.for_command(wire.command_statement_query(attack)), options),
        lambda: client.do_get(flight.Ticket(wire.command_statement_query(attack)), options).read_all(),
        lambda: client.get_flight_info(flight.FlightDescriptor.for_command(attack.encode()), options),
        lambda: client.do_action(flight.Action("CreatePreparedStatement",
                                               wire.action_create_prepared_statement(attack)), options),
    ]
    for call in calls:
        # (pyarrow turns a GetSchema refusal into UNKNOWN with the same message, hence ArrowException.)
        with pytest.raises((flight.FlightError, pa.ArrowException)) as info:
            result = call()
            if result is not None and not isinstance(result, (flight.FlightInfo, flight.SchemaResult)):
                list(result)
        assert "may not" in str(info.value), str(info.value)
    assert content_hash(env) == before
