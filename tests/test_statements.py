"""DuckDB statement kinds beyond plain SELECT/INSERT, run through the DB-API
(which always prepares first) and compared with in-process DuckDB where useful."""

from __future__ import annotations

import duckdb
import pytest

from support import rows, scalar


@pytest.fixture
def table(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT * FROM (VALUES (1, 'x'), (2, 'y'), (9, 'z')) v(a, b)")
    cur.close()
    return t


def local_rows(setup: list[str], sql: str):
    con = duckdb.connect()
    try:
        for s in setup:
            con.execute(s)
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_show_tables_and_describe(conn, table):
    assert (table,) in rows(conn, "SHOW TABLES")
    assert [r[:2] for r in rows(conn, f"DESCRIBE {table}")] == [("a", "INTEGER"), ("b", "VARCHAR")]
    assert [r[1] for r in rows(conn, f"PRAGMA table_info('{table}')")] == ["a", "b"]


def test_explain_and_summarize(conn, table):
    plan = rows(conn, f"EXPLAIN SELECT * FROM {table} WHERE a > 1")
    assert plan and "SCAN" in str(plan).upper()
    summary = rows(conn, f"SUMMARIZE {table}")
    assert [r[0] for r in summary] == ["a", "b"]


def test_returning_clauses(conn, table):
    assert rows(conn, f"INSERT INTO {table} VALUES (5, 'r') RETURNING a, b") == [(5, "r")]
    assert sorted(rows(conn, f"UPDATE {table} SET a = a * 10 WHERE a < 3 RETURNING a")) == [(10,), (20,)]
    assert rows(conn, f"DELETE FROM {table} WHERE a = 9 RETURNING b") == [("z",)]
    assert sorted(rows(conn, f"SELECT a FROM {table}")) == [(5,), (10,), (20,)]


def test_pivot(conn, table):
    setup = [f"CREATE TABLE {table} AS SELECT * FROM (VALUES (1, 'x'), (2, 'y'), (9, 'z')) v(a, b)"]
    sql = f"PIVOT {table} ON b USING sum(a)"
    assert rows(conn, sql) == local_rows(setup, sql) == [(1, 2, 9)]


def test_multiple_statements_in_one_string(conn, unique_name):
    t = unique_name()
    assert rows(conn, f"CREATE TABLE {t} AS SELECT 41 AS z; SELECT z + 1 FROM {t}") == [(42,)]
    assert scalar(conn, f"SELECT z FROM {t}") == 41


def test_sql_level_transaction_in_autocommit_mode(conn, conn2, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")
    cur.execute("BEGIN TRANSACTION")
    cur.execute(f"INSERT INTO {t} VALUES (1)")
    assert scalar(conn2, f"SELECT count(*) FROM {t}") == 0
    cur.execute("ROLLBACK")
    cur.execute("BEGIN TRANSACTION")
    cur.execute(f"INSERT INTO {t} VALUES (2)")
    cur.execute("COMMIT")
    cur.close()
    assert rows(conn2, f"SELECT i FROM {t}") == [(2,)]


def test_copy_to_and_from_parquet(server, conn, table, unique_name):
    # The server's data folder (default ``data`` under its working directory) is
    # the place SQL file access is allowed by default.
    folder = server.workdir / "data"
    folder.mkdir(exist_ok=True)
    path = folder / f"{unique_name('out')}.parquet"
    cur = conn.cursor()
    cur.execute(f"COPY {table} TO '{path}' (FORMAT parquet)")
    cur.close()
    assert path.exists()
    assert scalar(conn, f"SELECT sum(a) FROM '{path}'") == 12
    t2 = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t2} (a INTEGER, b VARCHAR)")
    cur.execute(f"COPY {t2} FROM '{path}' (FORMAT parquet)")
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {t2}") == 3


def test_macro_sequence_variable(conn, unique_name):
    macro = unique_name("m")
    seq = unique_name("seq")
    cur = conn.cursor()
    cur.execute(f"CREATE MACRO {macro}(x) AS x + 1")
    cur.execute(f"CREATE SEQUENCE {seq}")
    cur.execute("SET VARIABLE e2e_var = 42")
    cur.close()
    assert scalar(conn, f"SELECT {macro}(1)") == 2
    assert scalar(conn, f"SELECT nextval('{seq}')") == 1
    assert scalar(conn, f"SELECT nextval('{seq}')") == 2
    assert scalar(conn, "SELECT getvariable('e2e_var')") == 42


def test_checkpoint_vacuum_analyze(start_server):
    # Private server: CHECKPOINT fails by design while *other* sessions hold write
    # transactions, so only this test's own session may exist.
    srv = start_server()
    c = srv.connect()
    cur = c.cursor()
    cur.execute("CREATE TABLE ck AS SELECT i FROM range(1000) t(i)")
    for sql in ("CHECKPOINT", "VACUUM", "ANALYZE", "CHECKPOINT"):
        cur.execute(sql)
    cur.close()
    assert scalar(c, "SELECT count(*) FROM ck") == 1000
    c.close()


def test_recursive_cte_and_from_first(conn, table):
    assert scalar(conn, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
                        "SELECT sum(n) FROM r") == 15
    assert sorted(rows(conn, f"FROM {table} SELECT a")) == [(1,), (2,), (9,)]
