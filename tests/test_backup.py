"""Backups: the admin `backup` action writes a signed snapshot the server writes itself; SQL (admin included)
cannot read or write the backup folder or the key; `duckdb-flight-server restore` refuses a backup that
changed since it was written and otherwise restores identical tables; health shows no server paths.

Servers are real subprocesses (conftest's ``start_server``); clients are ADBC and pyarrow.flight.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager
import pyarrow.flight as flight
import pytest

from support import REPO_ROOT, rows

Status = adbc_driver_manager.AdbcStatusCode
ADMIN = {"auth": "password", "user": "admin", "password": "backup-test-pw", "user_role": "admin"}

# Several types, NULLs in every column; each table is hashed row by row in its text form.
TABLES = {
    "numbers": """CREATE TABLE numbers AS SELECT i::INTEGER AS i, (i * 1000000007)::BIGINT AS big,
        (i * 1.25)::DECIMAL(18, 2) AS amount, (i::DECIMAL(38, 10) / 7) AS fine, i / 3.0 AS ratio,
        i::HUGEINT * 100000000000000000000 AS huge, i % 2 = 0 AS even
        FROM range(5000) t(i) UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL""",
    "texts": """CREATE TABLE texts AS SELECT i, 'name ' || i || ' h' || chr(233) || 'llo ' || chr(10003) AS s,
        ('\\x00\\xFF' || i)::BLOB AS b, uuid() AS u, CASE WHEN i % 5 = 0 THEN NULL ELSE repeat('x', i % 40) END AS maybe
        FROM range(3000) t(i)""",
    "times": """CREATE TABLE times AS SELECT i, TIMESTAMP '2024-02-29 12:34:56.789012' + to_seconds(i * 3600) AS ts,
        TIMESTAMPTZ '1999-12-31 23:59:59+00' + to_days(i) AS tstz, DATE '1970-01-01' + i::INTEGER AS d,
        TIME '23:59:59.999999' AS t, TIMESTAMP_NS '2024-01-01 00:00:00.123456789' AS ns,
        '2024-01-01 00:00:01'::TIMESTAMP_S AS secs, INTERVAL (i) DAY - INTERVAL 3 MONTH AS ivl,
        '12:00:00+05:30'::TIMETZ AS tz
        FROM range(2000) t(i) UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL""",
    "nested": """CREATE TABLE nested AS SELECT i, [i, NULL, i + 1] AS l, [] :: INTEGER[] AS empty_list,
        {'a': i, 'b': 'v' || i, 'c': [i::DOUBLE]} AS st, MAP {'k' || i: i} AS m, [i, i, i]::INTEGER[3] AS arr,
        [[ 'a', NULL ], NULL] AS ll, CASE WHEN i % 3 = 0 THEN NULL ELSE {'x': NULL, 'y': [NULL]} END AS nulls,
        'sad'::ENUM('sad', 'ok') AS mood
        FROM range(1500) t(i)""",
}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def admin_connect(server):
    return flightsql_dbapi.connect(server.uri, db_kwargs={"username": ADMIN["user"], "password": ADMIN["password"]},
                                   autocommit=True)


def action(server, name: str, authenticated: bool = True) -> dict:
    client = server.flight_client()
    try:
        headers = [client.authenticate_basic_token(ADMIN["user"], ADMIN["password"])] if authenticated else []
        results = list(client.do_action(flight.Action(name, b""), flight.FlightCallOptions(headers=headers)))
    finally:
        client.close()
    return json.loads(results[0].body.to_pybytes())


def execute(conn, *statements: str) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def table_hashes(conn) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every row's text form, per user table."""
    names = [row[0] for row in rows(conn, "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
                                         "ORDER BY table_name")]
    return {name: tuple(rows(conn, f"SELECT count(*), md5(string_agg(t::VARCHAR, '\n' ORDER BY t::VARCHAR)) "
                                  f"FROM \"{name}\" t")[0]) for name in names}


def restore_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for name in ("DUCKDB_DATABASE_PATH", "FLIGHT_DATA_DIR", "FLIGHT_CONFIG"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "flight_server", "restore", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def command_args(answer: dict, database: str) -> list[str]:
    """The restore command the backup action answered, pointed at another database file."""
    words = shlex.split(answer["restore"])
    assert words[:2] == ["duckdb-flight-server", "restore"] and words[2] == answer["path"]
    assert "--database" in words
    words[words.index("--database") + 1] = database
    return words[2:]


@pytest.fixture
def backed_up(start_server, tmp_path):
    """A server (admin user, sandbox confined to tmp_path/files) with TABLES, a view and a sequence, and the
    backup action's answer."""
    files = tmp_path / "files"
    server = start_server(database=str(tmp_path / "live.duckdb"), backup_dir=str(tmp_path / "backups"),
                          allowed_directories=str(files), data_dir=str(tmp_path / "data"), **ADMIN)
    with admin_connect(server) as conn:
        execute(conn, *TABLES.values(), "CREATE SEQUENCE ids START 100", "SELECT nextval('ids')",
                "CREATE VIEW big_amounts AS SELECT i, amount FROM numbers WHERE amount > 100",
                f"COPY (SELECT 42 AS answer) TO '{files}/answer.parquet'",
                f"CREATE VIEW answers AS SELECT * FROM read_parquet('{files}/answer.parquet')")
        hashes = table_hashes(conn)
    answer = action(server, "backup")
    return server, answer, hashes


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_backup_then_restore_gives_identical_tables(backed_up, tmp_path, start_server):
    server, answer, before = backed_up
    assert set(before) == set(TABLES) and all(count > 1000 for count, _ in before.values())
    assert answer["tables"] == len(TABLES) and answer["size_bytes"] > 10_000 and "warning" not in answer
    folder = Path(answer["path"])
    assert folder.parent == tmp_path / "backups" and (folder / "manifest.json").is_file()
    # Written for the server's account only.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.rglob("*") if p.is_file())
    assert stat.S_IMODE((tmp_path / "data" / "backup.key").stat().st_mode) == 0o600
    server.stop()

    restored = str(tmp_path / "restored.duckdb")
    result = restore_cli(*command_args(answer, restored))
    assert result.returncode == 0, result.stderr
    assert f"restored {len(TABLES)} tables" in result.stdout
    again = start_server(database=restored, allowed_directories=str(tmp_path / "files"), **ADMIN)
    with admin_connect(again) as conn:
        assert table_hashes(conn) == before
        assert rows(conn, "SELECT count(*) FROM big_amounts") == [(sum(1 for i in range(5000) if i * 1.25 > 100),)]
        assert rows(conn, "SELECT nextval('ids')") == [(101,)]
        assert rows(conn, "SELECT answer FROM answers") == [(42,)]  # a view on a file in the sandbox
        types = dict(rows(conn, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'times'"))
        assert types["secs"] == "TIMESTAMP_S" and types["ivl"] == "INTERVAL" and types["tz"] == "TIME WITH TIME ZONE"


@pytest.mark.parametrize("change", ["flip a byte", "add a file", "remove a file", "edit the manifest"])
def test_restore_refuses_a_changed_backup(backed_up, tmp_path, change):
    server, answer, _ = backed_up
    server.stop()
    folder = Path(answer["path"])
    data_files = sorted((folder / "tables").glob("*.parquet"))
    assert len(data_files) == len(TABLES)
    if change == "flip a byte":
        victim = data_files[1]
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        victim.write_bytes(bytes(raw))
        named = victim.relative_to(folder).as_posix()
    elif change == "add a file":
        (folder / "tables" / "0099-main.extra.parquet").write_bytes(data_files[0].read_bytes())
        named = "tables/0099-main.extra.parquet"
    elif change == "remove a file":
        data_files[-1].unlink()
        named = data_files[-1].relative_to(folder).as_posix()
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["tables"][0]["rows"] += 1
        (folder / "manifest.json").write_text(json.dumps(manifest))
        named = "manifest.json"
    target = tmp_path / "restored.duckdb"
    result = restore_cli(*command_args(answer, str(target)))
    assert result.returncode == 1
    assert "refused" in result.stderr and named in result.stderr, result.stderr
    assert not target.exists()


def test_restore_needs_the_key_that_signed_the_backup(backed_up, tmp_path):
    server, answer, _ = backed_up
    server.stop()
    other_key = tmp_path / "other.key"
    other_key.write_text(os.urandom(32).hex())
    args = command_args(answer, str(tmp_path / "restored.duckdb"))
    args[args.index("--backup-key") + 1] = str(other_key)
    result = restore_cli(*args)
    assert result.returncode == 1 and "signature does not match" in result.stderr
    assert not (tmp_path / "restored.duckdb").exists()


def test_restore_keeps_a_database_that_holds_data(backed_up, tmp_path):
    server, answer, before = backed_up
    server.stop()
    live = tmp_path / "live.duckdb"
    original = live.read_bytes()
    args = command_args(answer, str(live))
    refused = restore_cli(*args)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert live.read_bytes() == original
    forced = restore_cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("live.duckdb.pre-restore-")]
    assert len(kept) == 1 and kept[0].read_bytes() == original


def test_sql_cannot_reach_the_backup_folder_or_key(backed_up, tmp_path):
    server, answer, _ = backed_up
    backups = tmp_path / "backups"
    files = tmp_path / "files"
    with admin_connect(server) as conn:
        # The sandbox still lets SQL use its own folder, so the refusals below are about the backup folder.
        execute(conn, f"COPY (SELECT 1 AS x) TO '{files}/ok.csv'")
        assert (files / "ok.csv").is_file()
        for sql in (f"COPY (SELECT 1 AS x) TO '{backups}/x.csv'",
                    f"COPY (SELECT 1 AS x) TO '{answer['path']}/tables/0001-main.numbers.parquet'",
                    f"SELECT * FROM read_text('{backups}/*/manifest.json')",
                    f"SELECT * FROM read_parquet('{answer['path']}/tables/*.parquet')",
                    f"SELECT * FROM read_text('{tmp_path}/data/backup.key')"):
            with pytest.raises(adbc_driver_manager.Error) as info:
                rows(conn, sql)
            assert info.value.status_code == Status.UNAUTHORIZED, f"{sql}: {info.value}"
    assert not (backups / "x.csv").exists()
    assert sorted(p.name for p in backups.iterdir()) == [Path(answer["path"]).name]


def test_health_shows_no_paths(backed_up, tmp_path):
    server, _, _ = backed_up
    health = action(server, "health", authenticated=False)
    assert health["database_exists"] is True and health["database_size_mb"] > 0
    assert "database_path" not in health
    assert str(tmp_path) not in json.dumps(health)


def test_backup_needs_admin_and_warns_when_sql_can_reach_it(start_server, tmp_path):
    # The test harness allows SQL into the whole temp folder, which holds this backup folder too.
    server = start_server(backup_dir=str(tmp_path / "backups"), **ADMIN)
    client = server.flight_client()
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.do_action(flight.Action("backup", b"")))
    client.close()
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    answer = action(server, "backup")
    assert Path(answer["path"]).is_dir()
    assert "inside the allowed directory" in answer["warning"]


def test_restore_runs_the_backups_statements_inside_the_sandbox(tmp_path):
    """A backup's statements come from a database users wrote to: restore runs them in the server's sandbox
    (here a backup written without one, whose view reads a file outside the sandbox)."""
    import duckdb

    from flight_server.engine import backup

    secret = tmp_path / "secret.txt"
    secret.write_text("not for SQL\n")
    source = duckdb.connect(str(tmp_path / "open.duckdb"))
    source.execute(f"CREATE VIEW leak AS SELECT content FROM read_text('{secret}')")
    key = backup.load_key(str(tmp_path / "backup.key"), create=True)
    answer = backup.backup(source.cursor(), str(tmp_path / "backups"), key)
    source.close()
    target = tmp_path / "restored.duckdb"
    with pytest.raises(duckdb.PermissionException):
        backup.restore(answer["path"], str(target), key, allowed_directories=(str(tmp_path / "files"),))
    assert not target.exists() and not Path(str(target) + ".restoring").exists()
    assert backup.restore(answer["path"], str(target), key, allowed_directories=None)["tables"] == 0
    assert duckdb.connect(str(target)).execute("SELECT content FROM leak").fetchall() == [("not for SQL\n",)]
