"""Every DuckDB type round-trips: the server streams exactly what in-process DuckDB produces."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from support import ALL_TYPES_SQL, TYPE_CASES


@pytest.fixture(scope="module")
def local_duckdb():
    con = duckdb.connect()
    yield con
    con.close()


def local_arrow(con, sql: str) -> pa.Table:
    return con.execute(sql).to_arrow_table()


def server_arrow(conn, sql: str) -> pa.Table:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetch_arrow_table()
    finally:
        cur.close()


def assert_same_table(actual: pa.Table, expected: pa.Table) -> None:
    assert actual.column_names == expected.column_names
    for a, e in zip(actual.schema, expected.schema):
        assert a.type == e.type, f"column {e.name}: server type {a.type} != DuckDB type {e.type}"
    assert actual.schema.equals(expected.schema), (
        f"schema differs:\nserver:\n{actual.schema}\nduckdb:\n{expected.schema}")
    assert actual.num_rows == expected.num_rows
    for name in expected.column_names:
        a_col = actual[name].combine_chunks() if actual[name].num_chunks != 1 else actual[name].chunk(0)
        e_col = expected[name].combine_chunks() if expected[name].num_chunks != 1 else expected[name].chunk(0)
        assert a_col.equals(e_col), f"column {name}: values differ\nserver: {a_col}\nduckdb: {e_col}"


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_type_round_trip(conn, local_duckdb, case):
    sql = TYPE_CASES[case]
    assert_same_table(server_arrow(conn, sql), local_arrow(local_duckdb, sql))


def test_all_types_in_one_result(conn, local_duckdb):
    assert_same_table(server_arrow(conn, ALL_TYPES_SQL), local_arrow(local_duckdb, ALL_TYPES_SQL))


def test_prepared_schema_matches_streamed_schema(conn):
    cur = conn.cursor()
    declared = cur.adbc_execute_schema(ALL_TYPES_SQL)
    cur.close()
    streamed = server_arrow(conn, ALL_TYPES_SQL).schema
    assert declared.names == streamed.names
    for d, s in zip(declared, streamed):
        assert d.type == s.type, f"{s.name}: declared {d.type} but streamed {s.type}"


def test_nan_float_and_double(conn):
    table = server_arrow(conn, "SELECT 'nan'::FLOAT AS f, 'nan'::DOUBLE AS d, 1.0::DOUBLE AS one")
    assert table.schema.field("f").type == pa.float32()
    assert table.schema.field("d").type == pa.float64()
    assert pc.is_nan(table["f"]).to_pylist() == [True]
    assert pc.is_nan(table["d"]).to_pylist() == [True]
    assert table["one"].to_pylist() == [1.0]


def test_python_values_via_fetchall(conn):
    cur = conn.cursor()
    cur.execute("""
        SELECT 123.4::DECIMAL(4,1), DATE '2024-02-29', TIMESTAMP '2024-02-29 12:34:56.789012',
               TIMESTAMPTZ '2024-02-29 12:00:00+02', '\\x00\\xFF'::BLOB, true, 'é'::VARCHAR,
               [1, 2]::INTEGER[], {'a': 1, 'b': 'x'}, 'y'::ENUM('x', 'y'),
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID, 3.25::DOUBLE, TIME '01:02:03'
    """)
    row = cur.fetchone()
    cur.close()
    assert row[0] == decimal.Decimal("123.4")
    assert row[1] == dt.date(2024, 2, 29)
    assert row[2] == dt.datetime(2024, 2, 29, 12, 34, 56, 789012)
    assert row[3] == dt.datetime(2024, 2, 29, 10, 0, tzinfo=dt.timezone.utc)
    assert row[4] == b"\x00\xff"
    assert row[5] is True
    assert row[6] == "é"
    assert row[7] == [1, 2]
    assert row[8] == {"a": 1, "b": "x"}
    assert row[9] == "y"
    assert str(row[10]) == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert math.isclose(row[11], 3.25)
    assert row[12] == dt.time(1, 2, 3)


def test_enum_dictionary_across_many_batches(conn, local_duckdb):
    sql = ("SELECT i, (['red', 'green', 'blue'])[i % 3 + 1]::ENUM('red', 'green', 'blue') AS c "
           "FROM range(200000) t(i) ORDER BY i")
    table = server_arrow(conn, sql)
    expected = local_arrow(local_duckdb, sql)
    assert table.schema.field("c").type == expected.schema.field("c").type
    assert table.num_rows == 200000
    counts = {d["values"]: d["counts"] for d in pc.value_counts(table["c"].combine_chunks().dictionary_decode()).to_pylist()}
    assert counts == {"red": 66667, "green": 66667, "blue": 66666}


def test_table_column_types_persisted(conn, local_duckdb, unique_name):
    """A table with every scalar type, written through the server, reads back identically."""
    t = unique_name()
    ddl = (f"CREATE TABLE {t} (a TINYINT, b UBIGINT, c HUGEINT, d DECIMAL(18,3), e DOUBLE, "
           "f VARCHAR, g BLOB, h BOOLEAN, i DATE, j TIMESTAMP, k TIMESTAMPTZ, l INTERVAL, m UUID, "
           "n INTEGER[], o STRUCT(x INTEGER), p MAP(VARCHAR, INTEGER), q TIMESTAMP_NS)")
    values = ("(-1, 18446744073709551615, -170141183460469231731687303715884105727, 12.345, 2.5, "
              "'s', '\\x01'::BLOB, true, DATE '2020-01-02', TIMESTAMP '2020-01-02 03:04:05', "
              "TIMESTAMPTZ '2020-01-02 03:04:05+00', INTERVAL 3 HOURS, "
              "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', [1, NULL], {'x': 7}, MAP {'k': 1}, "
              "TIMESTAMP_NS '2020-01-02 03:04:05.000000007')")
    cur = conn.cursor()
    cur.execute(ddl)
    cur.execute(f"INSERT INTO {t} VALUES {values}, ({', '.join(['NULL'] * 17)})")
    cur.close()
    got = server_arrow(conn, f"SELECT * FROM {t} ORDER BY a NULLS LAST")

    local_duckdb.execute(ddl)
    local_duckdb.execute(f"INSERT INTO {t} VALUES {values}, ({', '.join(['NULL'] * 17)})")
    want = local_arrow(local_duckdb, f"SELECT * FROM {t} ORDER BY a NULLS LAST")
    assert_same_table(got, want)
