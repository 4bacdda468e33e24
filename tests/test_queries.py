"""Plain queries, DDL and DML through the ADBC DB-API, pandas and polars."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from support import rows, scalar


def test_select_literals_fetchall(conn):
    cur = conn.cursor()
    cur.execute("SELECT 42 AS answer, 'hello' AS greeting, NULL::INTEGER AS nothing")
    assert cur.fetchall() == [(42, "hello", None)]
    assert [d[0] for d in cur.description] == ["answer", "greeting", "nothing"]
    cur.close()


def test_fetchone_fetchmany_iteration(conn):
    cur = conn.cursor()
    cur.execute("SELECT i FROM range(10) t(i) ORDER BY i")
    assert cur.fetchone() == (0,)
    assert cur.fetchmany(3) == [(1,), (2,), (3,)]
    assert [r[0] for r in cur] == [4, 5, 6, 7, 8, 9]
    assert cur.fetchone() is None
    cur.close()


def test_fetch_arrow_table(conn):
    cur = conn.cursor()
    cur.execute("SELECT i, i * 2 AS twice, 'row' || i AS label FROM range(1000) t(i)")
    table = cur.fetch_arrow_table()
    cur.close()
    assert isinstance(table, pa.Table)
    assert table.num_rows == 1000
    assert table.column_names == ["i", "twice", "label"]
    assert table.schema.field("i").type == pa.int64()
    assert table.schema.field("label").type in (pa.string(), pa.large_string(), pa.string_view())
    assert pc.sum(table["i"]).as_py() == sum(range(1000))
    assert pc.sum(table["twice"]).as_py() == 2 * sum(range(1000))


def test_many_batches_in_order(conn):
    # Several DuckDB vectors / Arrow batches; ORDER BY forces a single ordered stream.
    n = 300_000
    cur = conn.cursor()
    cur.execute(f"SELECT i FROM range({n}) t(i) ORDER BY i")
    table = cur.fetch_arrow_table()
    cur.close()
    assert table.num_rows == n
    col = table["i"].combine_chunks()
    assert col[0].as_py() == 0 and col[n - 1].as_py() == n - 1
    assert pc.all(pc.equal(pc.subtract(col[1:], col[:-1]), 1)).as_py()


def test_empty_result_keeps_schema(conn):
    cur = conn.cursor()
    cur.execute("SELECT i AS x, 'a' AS y FROM range(10) t(i) WHERE i < 0")
    table = cur.fetch_arrow_table()
    cur.close()
    assert table.num_rows == 0
    assert table.column_names == ["x", "y"]
    assert table.schema.field("x").type == pa.int64()


def test_same_cursor_reexecuted(conn):
    cur = conn.cursor()
    for i in range(5):
        cur.execute(f"SELECT {i} * 10")
        assert cur.fetchall() == [(i * 10,)]
    cur.execute("SELECT 'other'")
    assert cur.fetchall() == [("other",)]
    cur.close()


def test_pandas_read_sql(conn):
    df = pd.read_sql("SELECT i AS id, i * 1.5 AS val, 'n' || i AS name FROM range(100) t(i) ORDER BY i", conn)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["id", "val", "name"]
    assert len(df) == 100
    assert int(df["id"].sum()) == sum(range(100))
    assert df["val"].iloc[10] == pytest.approx(15.0)
    assert df["name"].iloc[99] == "n99"


def test_polars_read_database(conn):
    df = pl.read_database("SELECT i AS id, i % 3 AS grp FROM range(99) t(i) ORDER BY i", conn)
    assert isinstance(df, pl.DataFrame)
    assert df.columns == ["id", "grp"]
    assert df.height == 99
    assert df["id"].sum() == sum(range(99))
    assert df.group_by("grp").len().sort("grp")["len"].to_list() == [33, 33, 33]


def test_ddl_and_dml_apply_without_fetch(server, unique_name):
    """CREATE/INSERT take effect at execute time, exactly once, even if never fetched."""
    t = unique_name("nofetch")
    writer = server.connect()
    reader = server.connect()
    try:
        cur = writer.cursor()
        cur.execute(f"CREATE TABLE {t} (id INTEGER, s VARCHAR)")
        cur.execute(f"INSERT INTO {t} VALUES (1, 'one')")
        # never fetched; check from an independent connection
        assert scalar(reader, f"SELECT count(*) FROM {t}") == 1
        cur.execute(f"INSERT INTO {t} VALUES (2, 'two'), (3, 'three')")
        assert scalar(reader, f"SELECT count(*) FROM {t}") == 3
        cur.execute(f"UPDATE {t} SET s = upper(s) WHERE id >= 2")
        cur.execute(f"DELETE FROM {t} WHERE id = 1")
        assert rows(reader, f"SELECT id, s FROM {t} ORDER BY id") == [(2, "TWO"), (3, "THREE")]
        cur.close()
    finally:
        writer.close()
        reader.close()


def test_dml_rowcount_via_execute(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT i FROM range(10) t(i)")
    cur.execute(f"INSERT INTO {t} SELECT i FROM range(5) t(i)")
    assert cur.rowcount == 5
    # The server marks DML as is_update, so drivers that honour it run it as an update (no result
    # set); older drivers run it as a query and see DuckDB's one-row count.
    assert cur.fetchall() in ([], [(5,)])
    cur.execute(f"UPDATE {t} SET i = i + 100 WHERE i < 3")
    assert cur.rowcount == 6
    assert cur.fetchall() in ([], [(6,)])
    cur.execute(f"DELETE FROM {t} WHERE i >= 100")
    assert cur.rowcount == 6
    assert cur.fetchall() in ([], [(6,)])
    cur.execute(f"DELETE FROM {t} WHERE i > 1000")
    assert cur.rowcount == 0
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 9


def test_ddl_rowcount_via_execute(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    # DDL affects no rows: ADBC surfaces FlightInfo.total_records, which must be 0.
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")
    assert cur.rowcount == 0
    cur.execute(f"ALTER TABLE {t} ADD COLUMN j INTEGER")
    assert cur.rowcount == 0
    cur.execute(f"CREATE VIEW {t}_v AS SELECT * FROM {t}")
    assert cur.rowcount == 0
    cur.execute(f"DROP VIEW {t}_v")
    cur.execute(f"DROP TABLE {t}")
    assert cur.rowcount == 0
    cur.close()


def test_same_insert_reexecuted_on_one_cursor_runs_each_time(conn, unique_name):
    """The DB-API reuses one prepared statement for repeated SQL; each execute must run it."""
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")
    for _ in range(3):
        cur.execute(f"INSERT INTO {t} VALUES (1)")
        assert cur.rowcount == 1
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 3


def test_same_select_reexecuted_sees_fresh_data(conn, conn2, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")
    for expected in range(4):
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(expected,)]
        w = conn2.cursor()
        w.execute(f"INSERT INTO {t} VALUES ({expected})")
        w.close()
    cur.close()


def test_trailing_semicolon_and_comments(conn):
    assert scalar(conn, "SELECT 1;") == 1
    assert scalar(conn, "-- leading comment\nSELECT 2 /* inline */") == 2
    assert scalar(conn, "  \n\tSELECT 3  ;  ") == 3


def _execute_update(conn, sql: str) -> int:
    """ADBC ExecuteUpdate (Flight SQL DoPut CommandStatementUpdate): exact row count."""
    cur = conn.cursor()
    try:
        stmt = cur.adbc_statement
        stmt.set_sql_query(sql)
        return stmt.execute_update()
    finally:
        cur.close()


def test_execute_update_row_counts(conn, unique_name):
    t = unique_name()
    assert _execute_update(conn, f"CREATE TABLE {t} (id INTEGER, v DOUBLE)") == 0
    assert _execute_update(conn, f"INSERT INTO {t} SELECT i, i / 2 FROM range(7) t(i)") == 7
    assert _execute_update(conn, f"UPDATE {t} SET v = -1 WHERE id < 3") == 3
    assert _execute_update(conn, f"DELETE FROM {t} WHERE id >= 5") == 2
    assert _execute_update(conn, f"DELETE FROM {t} WHERE id > 1000") == 0
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 5
    assert _execute_update(conn, f"DROP TABLE {t}") == 0
    assert scalar(conn, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'") == 0


def test_execute_update_applies_exactly_once(server, unique_name):
    t = unique_name()
    c = server.connect()
    try:
        _execute_update(c, f"CREATE TABLE {t} (id INTEGER)")
        for _ in range(3):
            assert _execute_update(c, f"INSERT INTO {t} VALUES (1)") == 1
        assert scalar(c, f"SELECT count(*) FROM {t}") == 3
    finally:
        c.close()


def test_ddl_visible_to_other_connections(conn, conn2, unique_name):
    t = unique_name()
    v = unique_name("v")
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT i FROM range(4) t(i)")
    cur.execute(f"CREATE VIEW {v} AS SELECT sum(i) AS s FROM {t}")
    cur.close()
    assert scalar(conn2, f"SELECT s FROM {v}") == 6
    cur = conn.cursor()
    cur.execute(f"DROP VIEW {v}")
    cur.execute(f"DROP TABLE {t}")
    cur.close()
    assert scalar(conn2, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'") == 0


def test_connection_execute_shortcut(conn):
    cur = conn.execute("SELECT 'x' || 'y'")
    assert cur.fetchone() == ("xy",)
    cur.close()


def test_utf8_and_long_strings(conn):
    cur = conn.cursor()
    cur.execute("SELECT 'héllo wörld ✓ 日本語' AS s, repeat('ab', 50000) AS big")
    s, big = cur.fetchone()
    cur.close()
    assert s == "héllo wörld ✓ 日本語"
    assert big == "ab" * 50000


def test_execute_partitions_and_read_partition(conn):
    cur = conn.cursor()
    partitions, schema = cur.adbc_execute_partitions("SELECT i, i * 3 AS t FROM range(50000) t(i)")
    assert len(partitions) >= 1
    if schema is not None:
        assert schema.names == ["i", "t"]
    total_rows = 0
    total = 0
    for partition in partitions:
        reader = conn.cursor()
        reader.adbc_read_partition(partition)
        table = reader.fetch_arrow_table()
        reader.close()
        total_rows += table.num_rows
        total += pc.sum(table["t"]).as_py()
    cur.close()
    assert total_rows == 50000
    assert total == 3 * sum(range(50000))
