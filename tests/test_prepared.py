"""Prepared statements and parameter binding through the ADBC DB-API."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from support import scalar


def one(conn, sql, params):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        result = cur.fetchall()
        assert len(result) == 1, result
        return result[0][0]
    finally:
        cur.close()


def test_int_parameter(conn):
    assert one(conn, "SELECT ?::INT + 1", (41,)) == 42


def test_several_parameters_of_mixed_types(conn):
    cur = conn.cursor()
    cur.execute("SELECT ? + 1, ? || '!', ? * 2, ?", (1, "hi", 1.25, None))
    assert cur.fetchall() == [(2, "hi!", 2.5, None)]
    cur.close()


def test_string_parameter(conn):
    assert one(conn, "SELECT ? || '!'", ("héllo ✓",)) == "héllo ✓!"
    assert one(conn, "SELECT length(?)", ("x" * 100_000,)) == 100_000


def test_float_parameter(conn):
    assert one(conn, "SELECT ? * 2", (1.25,)) == 2.5


def test_decimal_parameter(conn):
    assert one(conn, "SELECT ?::DECIMAL(10,2) + 0.01", (decimal.Decimal("1.10"),)) == decimal.Decimal("1.11")
    assert one(conn, "SELECT ?", (decimal.Decimal("12345678901234567890.123456789"),)) == \
        decimal.Decimal("12345678901234567890.123456789")


def test_date_parameter(conn):
    assert one(conn, "SELECT ?::DATE + 1", (dt.date(2024, 2, 29),)) == dt.date(2024, 3, 1)


def test_naive_timestamp_parameter(conn):
    value = dt.datetime(2024, 2, 29, 23, 30, 0, 123456)
    assert one(conn, "SELECT ?::TIMESTAMP + INTERVAL 1 HOUR", (value,)) == dt.datetime(2024, 3, 1, 0, 30, 0, 123456)


def test_tz_aware_timestamp_parameter(conn):
    value = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert one(conn, "SELECT ?::TIMESTAMPTZ = TIMESTAMPTZ '2024-01-01 10:00:00+00'", (value,)) is True
    assert one(conn, "SELECT epoch_us(?::TIMESTAMPTZ)", (value,)) == 1704103200 * 1_000_000


def test_bool_bytes_parameters(conn):
    cur = conn.cursor()
    cur.execute("SELECT NOT ?, octet_length(?)", (True, b"\x00\x01\x02"))
    assert cur.fetchall() == [(False, 3)]
    cur.close()


def test_nanosecond_timestamp_record_batch(conn):
    ns = 1_700_000_000_123_456_789
    batch = pa.record_batch([pa.array([ns], pa.timestamp("ns"))], names=["ts"])
    assert one(conn, "SELECT epoch_ns(?::TIMESTAMP_NS)", batch) == ns


def test_nanosecond_tz_timestamp_table(conn):
    ns = 1_700_000_000_123_456_000
    table = pa.table({"ts": pa.array([ns], pa.timestamp("ns", tz="America/New_York"))})
    assert one(conn, "SELECT epoch_us(?::TIMESTAMPTZ)", table) == ns // 1000


def test_timestamp_units_record_batch(conn):
    batch = pa.record_batch(
        [pa.array([1_700_000_000], pa.timestamp("s")),
         pa.array([1_700_000_000_123], pa.timestamp("ms")),
         pa.array([1_700_000_000_123_456], pa.timestamp("us", tz="UTC"))],
        names=["s", "ms", "us"])
    cur = conn.cursor()
    cur.execute("SELECT epoch(?::TIMESTAMP)::BIGINT, epoch_ms(?::TIMESTAMP), epoch_us(?::TIMESTAMPTZ)", batch)
    assert cur.fetchall() == [(1_700_000_000, 1_700_000_000_123, 1_700_000_000_123_456)]
    cur.close()


def test_dictionary_parameter(conn):
    batch = pa.record_batch([pa.array(["abc"]).dictionary_encode()], names=["p"])
    assert one(conn, "SELECT ? || '!'", batch) == "abc!"


def test_large_string_parameter(conn):
    batch = pa.record_batch([pa.array(["big"], pa.large_string())], names=["p"])
    assert one(conn, "SELECT ? || '!'", batch) == "big!"


def test_string_view_parameter(conn):
    batch = pa.record_batch([pa.array(["a view string longer than twelve"], pa.string_view())], names=["p"])
    assert one(conn, "SELECT upper(?)", batch) == "A VIEW STRING LONGER THAN TWELVE"


def test_all_null_parameter_column(conn):
    batch = pa.record_batch([pa.array([None], pa.null())], names=["p"])
    assert one(conn, "SELECT ? IS NULL", batch) is True
    typed = pa.record_batch([pa.array([None], pa.int64())], names=["p"])
    assert one(conn, "SELECT coalesce(?::INTEGER, 7)", typed) == 7


def test_list_and_struct_parameters(conn):
    batch = pa.record_batch(
        [pa.array([[1, 2, 3]], pa.list_(pa.int64())),
         pa.array([{"a": 5, "b": "x"}], pa.struct([("a", pa.int64()), ("b", pa.string())]))],
        names=["l", "s"])
    cur = conn.cursor()
    cur.execute("SELECT list_sum(?), (?).b", batch)
    assert cur.fetchall() == [(6, "x")]
    cur.close()


def test_prepared_statement_reused_with_new_parameters(conn):
    cur = conn.cursor()
    for i in range(25):
        cur.execute("SELECT ?::INTEGER * 2, ?::VARCHAR", (i, f"v{i}"))
        assert cur.fetchall() == [(i * 2, f"v{i}")]
    cur.close()


def test_parameter_schema_and_execution(conn):
    cur = conn.cursor()
    param_schema = cur.adbc_prepare("SELECT ?::INTEGER + 1, ?::VARCHAR || 'x'")
    if param_schema is not None:
        assert len(param_schema) == 2
    cur.execute("SELECT ?::INTEGER + 1, ?::VARCHAR || 'x'", (1, "a"))
    assert cur.fetchall() == [(2, "ax")]
    cur.close()


def test_execute_schema_for_prepared_query(conn):
    cur = conn.cursor()
    schema = cur.adbc_execute_schema("SELECT 1::INTEGER AS a, 'x'::VARCHAR AS b, 2.5::DOUBLE AS c")
    assert schema.names == ["a", "b", "c"]
    assert [f.type for f in schema] == [pa.int32(), pa.string(), pa.float64()]
    cur.execute("SELECT 1::INTEGER AS a, 'x'::VARCHAR AS b, 2.5::DOUBLE AS c")
    assert cur.fetch_arrow_table().schema.names == ["a", "b", "c"]
    cur.close()


def test_executemany_rows(conn, unique_name):
    t = unique_name()
    n = 1000
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (id INTEGER, s VARCHAR)")
    cur.executemany(f"INSERT INTO {t} VALUES (?, ?)", [(i, f"s{i}") for i in range(n)])
    assert cur.rowcount == n
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {t}") == n
    assert scalar(conn, f"SELECT sum(id) FROM {t}") == sum(range(n))
    assert scalar(conn, f"SELECT s FROM {t} WHERE id = 777") == "s777"


def test_executemany_arrow_table(conn, unique_name):
    t = unique_name()
    n = 20_000
    data = pa.table({"a": pa.array(range(n), pa.int64()), "b": pa.array([i * 0.5 for i in range(n)])})
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (a BIGINT, b DOUBLE)")
    cur.executemany(f"INSERT INTO {t} VALUES (?, ?)", data)
    assert cur.rowcount == n
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {t}") == n
    assert scalar(conn, f"SELECT sum(a) FROM {t}") == sum(range(n))
    assert scalar(conn, f"SELECT sum(b) FROM {t}") == pytest.approx(sum(range(n)) * 0.5)


def test_executemany_update_and_delete_rowcount(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT i::INTEGER AS id, 0 AS hits FROM range(100) t(i)")
    cur.executemany(f"UPDATE {t} SET hits = hits + 1 WHERE id < ?", [(10,), (20,)])
    assert cur.rowcount == 30
    cur.executemany(f"DELETE FROM {t} WHERE id = ?", [(1,), (2,), (999,)])
    assert cur.rowcount == 2
    cur.close()
    # ids 0-9 were hit twice, 10-19 once; ids 1 and 2 (2 hits each) were deleted
    assert scalar(conn, f"SELECT sum(hits) FROM {t}") == 26
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 98


def test_parameterised_insert_then_select(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (d DATE, ts TIMESTAMP, v DECIMAL(10,2))")
    cur.execute(f"INSERT INTO {t} VALUES (?, ?, ?)",
                (dt.date(2020, 5, 17), dt.datetime(2020, 5, 17, 8, 30), decimal.Decimal("9.99")))
    cur.execute(f"SELECT * FROM {t}")
    assert cur.fetchall() == [(dt.date(2020, 5, 17), dt.datetime(2020, 5, 17, 8, 30), decimal.Decimal("9.99"))]
    cur.close()


def test_reexecuted_query_after_schema_change(conn, conn2, unique_name):
    """A cursor re-running the same SELECT (same prepared handle) after ALTER TABLE
    gets the new shape; the declared FlightInfo schema must match the stream."""
    t = unique_name()
    setup = conn2.cursor()
    setup.execute(f"CREATE TABLE {t} AS SELECT 1 AS a")
    setup.close()
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {t}")
    assert cur.fetchall() == [(1,)]
    alter = conn2.cursor()
    alter.execute(f"ALTER TABLE {t} ADD COLUMN b VARCHAR DEFAULT 'x'")
    alter.close()
    cur.execute(f"SELECT * FROM {t}")
    table = cur.fetch_arrow_table()
    assert table.column_names == ["a", "b"]
    assert table.to_pylist() == [{"a": 1, "b": "x"}]
    cur.close()


def test_echo_many_parameter_types(conn):
    batch = pa.record_batch({
        "i8": pa.array([-5], pa.int8()),
        "u64": pa.array([18446744073709551615], pa.uint64()),
        "f32": pa.array([1.5], pa.float32()),
        "dec": pa.array([decimal.Decimal("-12345678901234567890.0123456789")], pa.decimal128(38, 10)),
        "bin": pa.array([b"\x00\xff"], pa.binary()),
        "t": pa.array([dt.time(13, 14, 15, 161718)], pa.time64("us")),
        "d": pa.array([dt.date(1999, 12, 31)], pa.date32()),
        "ts_ms": pa.array([dt.datetime(2001, 2, 3, 4, 5, 6, 7000)], pa.timestamp("ms")),
        "iv": pa.array([pa.scalar((1, 2, 3_000), pa.month_day_nano_interval()).as_py()],
                       pa.month_day_nano_interval()),
        "lst": pa.array([[1, None, 3]], pa.list_(pa.int32())),
        "st": pa.array([{"k": "v", "n": 2}], pa.struct([("k", pa.string()), ("n", pa.int64())])),
    })
    cur = conn.cursor()
    cur.execute("SELECT " + ", ".join("?" for _ in batch.schema), batch)
    got = cur.fetchall()
    cur.close()
    assert len(got) == 1
    row = got[0]
    assert row[0] == -5
    assert row[1] == 18446744073709551615
    assert row[2] == 1.5
    assert row[3] == decimal.Decimal("-12345678901234567890.0123456789")
    assert row[4] == b"\x00\xff"
    assert row[5] == dt.time(13, 14, 15, 161718)
    assert row[6] == dt.date(1999, 12, 31)
    assert row[7] == dt.datetime(2001, 2, 3, 4, 5, 6, 7000)
    assert tuple(row[8]) == (1, 2, 3_000)
    assert row[9] == [1, None, 3]
    assert row[10] == {"k": "v", "n": 2}


def test_same_prepared_query_with_parameters_of_different_types(conn):
    cur = conn.cursor()
    cur.execute("SELECT ? AS v", (1,))
    assert cur.fetchall() == [(1,)]
    cur.execute("SELECT ? AS v", ("text",))
    assert cur.fetchall() == [("text",)]
    cur.execute("SELECT ? AS v", (2.5,))
    assert cur.fetchall() == [(2.5,)]
    cur.close()
