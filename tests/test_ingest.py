"""Bulk ingest (Flight SQL CommandStatementIngest) through ``cursor.adbc_ingest``."""

from __future__ import annotations

import datetime as dt
import decimal

import adbc_driver_manager
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from support import rows, scalar

N = 1_000_000


def make_table(n: int = N, offset: int = 0, chunk: int = 100_000) -> pa.Table:
    """id = offset..offset+n-1, val = id / 2, label = str(id % 1000).

    Split into record batches of ``chunk`` rows: the ADBC Go driver sends one
    gRPC message per batch and refuses messages over 16 MiB on its side.
    """
    ids = np.arange(offset, offset + n, dtype=np.int64)
    table = pa.table({
        "id": pa.array(ids),
        "val": pa.array(ids.astype(np.float64) * 0.5),
        "label": pc.cast(pa.array(ids % 1000), pa.string()),
    })
    return pa.Table.from_batches(table.to_batches(max_chunksize=chunk), schema=table.schema)


def ingest(conn, table_name, data, mode, **kwargs) -> int:
    cur = conn.cursor()
    try:
        return cur.adbc_ingest(table_name, data, mode=mode, **kwargs)
    finally:
        cur.close()


def table_exists(conn, name: str, schema: str | None = None) -> bool:
    where = f"table_name = '{name}'" + (f" AND schema_name = '{schema}'" if schema else "")
    return scalar(conn, f"SELECT count(*) FROM duckdb_tables() WHERE {where}") > 0


def check_contents(conn, name: str, count: int, id_sum: int) -> None:
    assert rows(conn, f"SELECT count(*), sum(id) FROM {name}") == [(count, id_sum)]


def test_ingest_create_million_rows(conn, conn2, unique_name):
    t = unique_name()
    data = make_table()
    assert ingest(conn, t, data, "create") == N
    # Visible to another session, with the right count and sum.
    check_contents(conn2, t, N, N * (N - 1) // 2)
    assert scalar(conn2, f"SELECT sum(val) FROM {t}") == pytest.approx(N * (N - 1) / 4)
    assert scalar(conn2, f"SELECT count(DISTINCT label) FROM {t}") == 1000


def test_ingest_append_replace_create_append(conn, conn2, unique_name):
    t = unique_name()
    first = make_table()
    assert ingest(conn, t, first, "create") == N
    second = make_table(offset=N)
    assert ingest(conn, t, second, "append") == N
    check_contents(conn2, t, 2 * N, (2 * N) * (2 * N - 1) // 2)

    replacement = make_table(offset=5_000_000)
    replaced_sum = (5_000_000 + 5_000_000 + N - 1) * N // 2
    assert ingest(conn, t, replacement, "replace") == N
    check_contents(conn2, t, N, replaced_sum)

    # create_append on an existing table appends ...
    assert ingest(conn, t, make_table(n=10), "create_append") == 10
    check_contents(conn2, t, N + 10, replaced_sum + 45)
    # ... and on a missing one creates it.
    t2 = unique_name()
    assert ingest(conn, t2, make_table(), "create_append") == N
    check_contents(conn2, t2, N, N * (N - 1) // 2)


def test_ingest_replace_creates_missing_table(conn, unique_name):
    t = unique_name()
    assert ingest(conn, t, make_table(n=5), "replace") == 5
    check_contents(conn, t, 5, 10)


def test_ingest_replace_changes_schema(conn, unique_name):
    t = unique_name()
    ingest(conn, t, make_table(n=5), "create")
    other = pa.table({"x": pa.array(["a", "b"]), "y": pa.array([True, False])})
    assert ingest(conn, t, other, "replace") == 2
    assert rows(conn, f"SELECT x, y FROM {t} ORDER BY x") == [("a", True), ("b", False)]


def test_ingest_record_batch_reader(conn, unique_name):
    t = unique_name()
    batches = [make_table(n=10_000, offset=i * 10_000).to_batches()[0] for i in range(10)]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
    assert ingest(conn, t, reader, "create") == 100_000
    check_contents(conn, t, 100_000, sum(range(100_000)))


def test_ingest_temporary(server, unique_name):
    t = unique_name("tmp")
    owner = server.connect()
    other = server.connect()
    try:
        assert ingest(owner, t, make_table(n=1000), "create", temporary=True) == 1000
        check_contents(owner, t, 1000, sum(range(1000)))
        assert scalar(owner, f"SELECT bool_and(temporary) FROM duckdb_tables() WHERE table_name = '{t}'") is True
        # Temporary tables are private to the session that made them.
        with pytest.raises(adbc_driver_manager.Error):
            rows(other, f"SELECT count(*) FROM {t}")
        assert not table_exists(other, t)
    finally:
        owner.close()
        other.close()


def test_ingest_into_db_schema(conn, conn2, unique_name):
    schema = unique_name("s")
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    cur.close()
    assert ingest(conn, t, make_table(n=500), "create", db_schema_name=schema) == 500
    check_contents(conn2, f"{schema}.{t}", 500, sum(range(500)))
    assert table_exists(conn2, t, schema)
    assert not table_exists(conn2, t, "main")
    assert ingest(conn, t, make_table(n=5), "append", db_schema_name=schema) == 5
    assert scalar(conn2, f"SELECT count(*) FROM {schema}.{t}") == 505


def test_ingest_append_to_missing_table_fails_and_creates_nothing(conn, unique_name):
    t = unique_name("missing")
    with pytest.raises(adbc_driver_manager.Error) as info:
        ingest(conn, t, make_table(n=10), "append")
    assert "Traceback" not in str(info.value)
    assert not table_exists(conn, t)
    # the connection is still usable
    assert scalar(conn, "SELECT 1") == 1


def test_ingest_append_to_missing_table_is_not_found(conn, unique_name):
    t = unique_name("missing")
    with pytest.raises(adbc_driver_manager.Error) as info:
        ingest(conn, t, make_table(n=10), "append")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND, (
        f"status {info.value.status_code!r}: {info.value}")


def test_ingest_create_on_existing_table_fails(conn, unique_name):
    t = unique_name()
    ingest(conn, t, make_table(n=10), "create")
    with pytest.raises(adbc_driver_manager.Error) as info:
        ingest(conn, t, make_table(n=20, offset=100), "create")
    assert "Traceback" not in str(info.value)
    # existing data untouched
    check_contents(conn, t, 10, 45)


def test_ingest_append_with_incompatible_schema_fails(conn, unique_name):
    t = unique_name()
    ingest(conn, t, make_table(n=10), "create")
    bad = pa.table({"nope": pa.array([1.5]), "other": pa.array([b"x"])})
    with pytest.raises(adbc_driver_manager.Error):
        ingest(conn, t, bad, "append")
    check_contents(conn, t, 10, 45)


def test_ingest_many_types_round_trip(conn, unique_name):
    t = unique_name()
    data = pa.table({
        "i8": pa.array([1, None, -3], pa.int8()),
        "u32": pa.array([0, 4294967295, None], pa.uint32()),
        "f": pa.array([1.5, None, -0.25], pa.float64()),
        "s": pa.array(["a", "héllo", None], pa.string()),
        "ls": pa.array(["x", None, "z"], pa.large_string()),
        "b": pa.array([True, False, None]),
        "bin": pa.array([b"\x00\x01", None, b""], pa.binary()),
        "d": pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)], pa.date32()),
        "ts": pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 1), None, dt.datetime(1999, 12, 31)],
                       pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc), None, None],
                       pa.timestamp("us", tz="UTC")),
        "dec": pa.array([decimal.Decimal("12.34"), None, decimal.Decimal("-0.01")], pa.decimal128(10, 2)),
        "lst": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
        "st": pa.array([{"x": 1, "y": "a"}, None, {"x": None, "y": "c"}],
                       pa.struct([("x", pa.int32()), ("y", pa.string())])),
    })
    assert ingest(conn, t, data, "create") == 3
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {t}")
    got = cur.fetch_arrow_table()
    cur.close()
    assert got.column_names == data.column_names
    # Compare as Python values: DuckDB may normalise e.g. large_string -> string.
    assert sorted(got.to_pylist(), key=repr) == sorted(data.to_pylist(), key=repr)



def test_ingest_names_that_need_quoting(conn, unique_name):
    t = f'Mixed Case "{unique_name("q")}" tbl'
    data = pa.table({"Col With Space": pa.array([1, 2, 3]), 'quote"col': pa.array(["a", "b", "c"])})
    assert ingest(conn, t, data, "create") == 3
    quoted = '"' + t.replace('"', '""') + '"'
    assert rows(conn, f'SELECT sum("Col With Space"), string_agg("quote""col", \'\' ORDER BY 1) FROM {quoted}') \
        == [(6, "abc")]
    assert ingest(conn, t, data, "append") == 3
    assert scalar(conn, f"SELECT count(*) FROM {quoted}") == 6


def test_ingest_into_attached_catalog(conn, unique_name):
    cat = unique_name("cat")
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"ATTACH ':memory:' AS {cat}")
    cur.close()
    try:
        assert ingest(conn, t, make_table(n=100), "create", catalog_name=cat, db_schema_name="main") == 100
        assert rows(conn, f"SELECT count(*), sum(id) FROM {cat}.main.{t}") == [(100, 4950)]
        # created only in the attached catalog, not in the default one
        assert rows(conn, f"SELECT database_name FROM duckdb_tables() WHERE table_name = '{t}'") == [(cat,)]
    finally:
        cur = conn.cursor()
        cur.execute(f"DETACH {cat}")
        cur.close()
