"""Parameters at the edges of their types bind exactly as in-process DuckDB reads them.

The reference is DuckDB itself, in this process: for Arrow parameters, DuckDB scanning the very same Arrow
column (`SELECT v FROM table`); for Python parameters, `duckdb.connect().execute("SELECT ?::T", [value])`.
Every Arrow type is sent at its minimum, maximum, epoch/zero and NULL through real ADBC prepared statements
(`execute` with a record batch, the per-row `executemany` path and the set-based INSERT path), and Hypothesis
draws more values across each type's whole range.

Known, deliberate differences (not tested as equal):
- a NULL parameter binds as an untyped NULL (DuckDB's Python binding has no typed NULL), so `SELECT ?` of a
  NULL int64 is an int32 NULL column where the in-process scan gives an int64 NULL column;
- float16 parameters bind as FLOAT, where DuckDB's Arrow scan refuses the type;
- values outside DuckDB's documented range for the type (e.g. a timestamp[s] of -2**63) are refused by the
  server with a conversion error, where DuckDB's Arrow scan copies some of them unchecked.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math

import adbc_driver_manager
import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1

# Each DuckDB range end as the raw integer of the Arrow type (DuckDB's own limits, not int64's).
_TS_MIN = {"s": -9223372022400, "ms": -9223372022400000, "us": -9223372022400000000,
           "ns": -9223372036854775000}
_TS_MAX = {"s": 9223372036854, "ms": 9223372036854775, "us": I64_MAX - 1, "ns": I64_MAX - 1}
# DuckDB converts a timestamp[ns] it scans (to store it) only from 1677-09-22 on, though it parses (and so binds)
# values down to _TS_MIN["ns"]; generated values for the bulk paths stay within what it stores.
_TS_NS_STORED_MIN = -9223286400000000000
_TIME_END = {"s": 86399, "ms": 86399_999, "us": 86399_999_999, "ns": 86399_999_999_999}
_DURATION_MAX = {"s": 9223372036854, "ms": 9223372036854775, "us": I64_MAX, "ns": I64_MAX}
_DATE_MAX_DAYS = I32_MAX - 1


def _time_type(unit: str) -> pa.DataType:
    return pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)


def _edge_cases() -> dict[str, tuple[pa.DataType, list]]:
    """Arrow type -> values at its minimum, maximum, zero/epoch and NULL."""
    cases: dict[str, tuple[pa.DataType, list]] = {}
    for bits in (8, 16, 32, 64):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        cases[f"int{bits}"] = (getattr(pa, f"int{bits}")(), [lo, hi, 0, None])
        cases[f"uint{bits}"] = (getattr(pa, f"uint{bits}")(), [0, 2**bits - 1, None])
    cases["float32"] = (pa.float32(), [-3.4028234663852886e38, 3.4028234663852886e38, 1.401298464324817e-45,
                                       0.0, -0.0, math.inf, -math.inf, math.nan, None])
    cases["float64"] = (pa.float64(), [-1.7976931348623157e308, 1.7976931348623157e308, 5e-324, 0.0, -0.0,
                                       math.inf, -math.inf, math.nan, None])
    nines = "9" * 38
    cases["decimal128_38_0"] = (pa.decimal128(38, 0), [decimal.Decimal("-" + nines), decimal.Decimal(nines),
                                                       decimal.Decimal(0), None])
    cases["decimal128_38_10"] = (pa.decimal128(38, 10), [
        decimal.Decimal("-" + nines[:28] + "." + nines[28:]), decimal.Decimal(nines[:28] + "." + nines[28:]),
        decimal.Decimal("0.0000000001"), decimal.Decimal(0), None])
    cases["decimal128_38_38"] = (pa.decimal128(38, 38), [decimal.Decimal("-0." + nines),
                                                         decimal.Decimal("0." + nines), None])
    text = ["", "héllo ✓ 日本", "x" * 5000, "quote ' and \" and \\", None]
    cases["string"] = (pa.string(), text)
    cases["large_string"] = (pa.large_string(), text)
    cases["string_view"] = (pa.string_view(), text)
    blobs = [b"", b"\x00\xff\x10", bytes(range(256)), None]
    cases["binary"] = (pa.binary(), blobs)
    cases["large_binary"] = (pa.large_binary(), blobs)
    cases["bool"] = (pa.bool_(), [True, False, None])
    cases["date32"] = (pa.date32(), [-_DATE_MAX_DAYS, _DATE_MAX_DAYS, -I32_MAX, I32_MAX, 0, -1, None])
    # date64 values must be whole days (the server refuses other values as malformed Arrow).
    cases["date64"] = (pa.date64(), [-_DATE_MAX_DAYS * 86_400_000, _DATE_MAX_DAYS * 86_400_000, 0, -86_400_000,
                                      None])
    for unit, end in _TIME_END.items():
        cases[f"time_{unit}"] = (_time_type(unit), [0, end, 1, None])
    for unit in ("s", "ms", "us", "ns"):
        values = [_TS_MIN[unit], _TS_MAX[unit], 0, -1, 1, None]
        if unit in ("us", "ns"):
            values += [I64_MAX, -I64_MAX]  # DuckDB's +-infinity
        cases[f"timestamp_{unit}"] = (pa.timestamp(unit), values)
        tz_values = values if unit != "ns" else values + [-(2**63)]
        cases[f"timestamptz_{unit}"] = (pa.timestamp(unit, tz="UTC"), tz_values)
        cases[f"timestamptz_{unit}_new_york"] = (pa.timestamp(unit, tz="America/New_York"), [0, -1, None])
        cases[f"duration_{unit}"] = (pa.duration(unit), [-_DURATION_MAX[unit], _DURATION_MAX[unit], 0, -1, None]
                                     + ([-(2**63)] if unit in ("us", "ns") else []))
    cases["month_day_nano"] = (pa.month_day_nano_interval(), [
        pa.MonthDayNano([I32_MAX, -(2**31), -(2**63)]), pa.MonthDayNano([-(2**31), I32_MAX, I64_MAX]),
        pa.MonthDayNano([0, 0, -1999]), pa.MonthDayNano([0, 0, 0]), None])
    cases["null"] = (pa.null(), [None])
    cases["list_timestamp_ns"] = (pa.list_(pa.timestamp("ns")), [[_TS_MIN["ns"], _TS_MAX["ns"], None], None])
    cases["struct_time_ns_date"] = (pa.struct([("t", pa.time64("ns")), ("d", pa.date32())]),
                                    [{"t": _TIME_END["ns"], "d": -_DATE_MAX_DAYS}, None])
    cases["map_string_timestamptz"] = (pa.map_(pa.string(), pa.timestamp("us", tz="UTC")),
                                       [[("max", _TS_MAX["us"]), ("min", _TS_MIN["us"])], None])
    cases["list_view_timestamp_ns"] = (pa.list_view(pa.timestamp("ns")),
                                       [[_TS_MAX["ns"], None], [], [_TS_MIN["ns"]], None])
    cases["run_end_encoded_timestamp_ns"] = (pa.run_end_encoded(pa.int32(), pa.timestamp("ns")),
                                             [_TS_MAX["ns"], _TS_MAX["ns"], None, _TS_MIN["ns"]])
    cases["dictionary_string"] = (pa.dictionary(pa.int32(), pa.string()), ["b", "a", "b", None])
    cases["list_int64"] = (pa.list_(pa.int64()), [[-(2**63), I64_MAX, None], [], None])
    cases["fixed_size_list_decimal"] = (pa.list_(pa.decimal128(38, 2), 2),
                                        [[decimal.Decimal("-" + nines[:36] + ".99"), decimal.Decimal(0)], None])
    return cases


EDGE_CASES = _edge_cases()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local():
    con = duckdb.connect()
    yield con
    con.close()


def _batch(array: pa.Array) -> pa.RecordBatch:
    return pa.record_batch([array], names=["p"])


def in_process(con, array: pa.Array) -> pa.Array | Exception:
    """What DuckDB in this process reads from the same Arrow column."""
    param_table = pa.table({"v": array})  # noqa: F841 - read by DuckDB's replacement scan
    try:
        return con.execute("SELECT v FROM param_table").to_arrow_table().column(0).combine_chunks()
    except duckdb.Error as exc:
        return exc


def through_server(cur, array: pa.Array) -> pa.Array | Exception:
    """`SELECT ?` with a parameter batch (one result row per parameter row), through an ADBC prepared statement."""
    try:
        cur.execute("SELECT ? AS v", _batch(array))
        return cur.fetch_arrow_table().column(0).combine_chunks()
    except adbc_driver_manager.Error as exc:
        return exc


def _same_values(got: pa.Array, want: pa.Array) -> bool:
    if got.equals(want):
        return True
    # NaN is never equal to itself in Arrow's comparison; compare the Python values with NaN as a token.
    def tokens(array):
        return [("nan" if isinstance(v, float) and math.isnan(v) else v) for v in array.to_pylist()]
    return len(got) == len(want) and tokens(got) == tokens(want)


def assert_binds_like_duckdb(got, want, what: str) -> None:
    if isinstance(want, Exception):
        assert isinstance(got, Exception), f"{what}: DuckDB refuses ({want}) but the server returned {got}"
        assert got.status_code != adbc_driver_manager.AdbcStatusCode.INTERNAL, f"{what}: {got}"
        return
    assert not isinstance(got, Exception), f"{what}: the server failed ({got}); DuckDB reads {want}"
    if want.null_count == len(want):
        assert got.null_count == len(got) == len(want), f"{what}: {got} != {want}"
        return
    assert got.type == want.type, f"{what}: server type {got.type} != DuckDB type {want.type}"
    assert _same_values(got, want), f"{what}: server {got} != DuckDB {want}"


# ---------------------------------------------------------------------------
# Edge values, one execute per value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_values_bind_like_in_process_duckdb(conn, local, case):
    kind, values = EDGE_CASES[case]
    cur = conn.cursor()
    try:
        for value in values:
            # A fresh one-value array rather than a slice: the ADBC driver's IPC writer fails on list-view slices.
            one = pa.array([value], kind)
            assert_binds_like_duckdb(through_server(cur, one), in_process(local, one), f"{case}[{value!r}]")
    finally:
        cur.close()


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_values_in_one_batch(conn, local, case):
    """All of a type's edge values (NULL among them) bound as one batch: the query runs once per row and the
    rows' results stack into one column of the type DuckDB reads."""
    kind, values = EDGE_CASES[case]
    array = pa.array(values, kind)
    cur = conn.cursor()
    try:
        assert_binds_like_duckdb(through_server(cur, array), in_process(local, array), case)
    finally:
        cur.close()


@pytest.mark.parametrize("case", ["list_timestamp_ns", "struct_time_ns_date", "map_string_timestamptz",
                                  "list_int64", "timestamp_ns", "decimal128_38_10"])
def test_parameters_across_batches(conn, local, case):
    """Parameter rows sent as several record batches (each a slice of one array) bind like the whole array."""
    kind, values = EDGE_CASES[case]
    array = pa.array(values + values, kind)
    cut = len(values) + 1
    table = pa.Table.from_batches([_batch(array.slice(0, cut)), _batch(array.slice(cut))])
    cur = conn.cursor()
    try:
        cur.execute("SELECT ? AS v", table)
        got = cur.fetch_arrow_table().column(0).combine_chunks()
    finally:
        cur.close()
    assert_binds_like_duckdb(got, in_process(local, array), case)


def test_float16_parameters_bind_as_float(conn):
    """DuckDB's Arrow scan refuses float16; the server widens it to FLOAT, which holds every float16 exactly."""
    values = [-65504.0, 65504.0, 6.103515625e-05, 5.960464477539063e-08, 0.0, -0.0, math.inf, None]
    cur = conn.cursor()
    try:
        cur.execute("SELECT ? AS v", _batch(pa.array(values, pa.float16())))
        got = cur.fetch_arrow_table().column(0).combine_chunks()
    finally:
        cur.close()
    assert got.type == pa.float32()
    assert got.to_pylist() == values
    assert [math.copysign(1, v) for v in got.to_pylist()[4:6]] == [1, -1]


def test_union_parameters(conn, local):
    """A union parameter binds as DuckDB's UNION of the same members, each value in its own member."""
    def union(codes, ints, texts):
        return pa.UnionArray.from_sparse(pa.array(codes, pa.int8()), [pa.array(ints, pa.int64()),
                                                                      pa.array(texts, pa.string())], ["i", "s"])
    cur = conn.cursor()
    try:
        for array in (union([0], [-(2**63)], [None]), union([1], [None], ["x"]),
                      union([0, 1, 0], [I64_MAX, None, 0], [None, "", None])):
            assert_binds_like_duckdb(through_server(cur, array), in_process(local, array), str(array.to_pylist()))
    finally:
        cur.close()


def test_former_failures_now_bind(conn):
    """The values issue 11 lists: timestamptz at the ends of the s/ms/us ranges (OverflowError), ns timestamps
    at the end of their range (pandas' OutOfBoundsDatetime), time64[ns] (TIME -> TIME_NS cast), timestamp[ns]
    near its minimum."""
    batch = pa.record_batch({
        "tz_s": pa.array([_TS_MAX["s"]], pa.timestamp("s", tz="UTC")),
        "tz_ms": pa.array([_TS_MIN["ms"]], pa.timestamp("ms", tz="UTC")),
        "tz_us": pa.array([_TS_MAX["us"]], pa.timestamp("us", tz="UTC")),
        "tz_ns": pa.array([I64_MAX], pa.timestamp("ns", tz="UTC")),
        "ns_max": pa.array([I64_MAX - 1], pa.timestamp("ns")),
        "ns_min": pa.array([_TS_MIN["ns"]], pa.timestamp("ns")),
        "time_ns": pa.array([_TIME_END["ns"]], pa.time64("ns")),
    })
    cur = conn.cursor()
    cur.execute("SELECT epoch_us(?), epoch_ms(?), epoch_us(?), epoch_us(?), epoch_ns(?), epoch_ns(?), "
                "?::VARCHAR", batch)
    row = cur.fetchone()
    cur.close()
    assert row == (_TS_MAX["s"] * 1_000_000, _TS_MIN["ms"], _TS_MAX["us"], I64_MAX // 1000,
                   I64_MAX - 1, _TS_MIN["ns"], "23:59:59.999999999")


def test_many_parameters_in_one_row(conn, local):
    """Every edge type in one parameter row, one statement."""
    names = sorted(name for name in EDGE_CASES if name != "null")
    arrays = [pa.array(EDGE_CASES[name][1][:1], EDGE_CASES[name][0]) for name in names]
    batch = pa.record_batch(arrays, names=names)
    cur = conn.cursor()
    cur.execute("SELECT " + ", ".join(f"? AS {name}" for name in names), batch)
    got = cur.fetch_arrow_table()
    cur.close()
    for name, array in zip(names, arrays):
        want = in_process(local, array)
        if isinstance(want, Exception):
            continue
        assert_binds_like_duckdb(got.column(name).combine_chunks(), want, name)


# ---------------------------------------------------------------------------
# Python parameters against DuckDB's own Python binding
# ---------------------------------------------------------------------------

UTC = dt.timezone.utc
PYTHON_CASES = [
    ("TIMESTAMPTZ", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("TIMESTAMPTZ", dt.datetime(1, 1, 1, tzinfo=UTC)),
    ("TIMESTAMPTZ", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-14)))),
    ("TIMESTAMPTZ", dt.datetime(1970, 1, 1, tzinfo=UTC)),
    ("TIMESTAMP", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    ("TIMESTAMP", dt.datetime(1, 1, 1)),
    ("DATE", dt.date(9999, 12, 31)),
    ("DATE", dt.date(1, 1, 1)),
    ("TIME", dt.time(23, 59, 59, 999999)),
    ("TIME", dt.time(0, 0)),
    # The client sends a timedelta as nanoseconds: int64 nanoseconds at most.
    ("INTERVAL", dt.timedelta(microseconds=I64_MAX // 1000)),
    ("INTERVAL", dt.timedelta(microseconds=-(I64_MAX // 1000))),
    ("BIGINT", I64_MAX),
    ("BIGINT", -(2**63)),
    ("DECIMAL(38,0)", decimal.Decimal("9" * 38)),
    ("DECIMAL(38,10)", decimal.Decimal("-" + "9" * 28 + "." + "9" * 10)),
    ("DOUBLE", math.inf),
    ("DOUBLE", -0.0),
    ("VARCHAR", "héllo ✓"),
    ("BLOB", b"\x00\xff"),
    ("BOOLEAN", False),
    ("INTEGER", None),
]


@pytest.mark.parametrize("sql_type,value", PYTHON_CASES, ids=[f"{t}-{v!r}" for t, v in PYTHON_CASES])
def test_python_values_bind_like_duckdb(conn, local, sql_type, value):
    sql = f"SELECT ?::{sql_type} AS v"
    want = local.execute(sql, [value]).to_arrow_table().column(0).combine_chunks()
    cur = conn.cursor()
    cur.execute(sql, [value])
    got = cur.fetch_arrow_table().column(0).combine_chunks()
    cur.close()
    if pa.types.is_interval(want.type):
        # The client sends a timedelta as an Arrow duration (all in the time part); DuckDB's Python binding
        # splits it into days and time. DuckDB compares intervals normalised, and so does this test.
        got, want = _normalised_intervals(got), _normalised_intervals(want)
    assert got.type == want.type and _same_values(got, want), f"server {got} != DuckDB {want}"


def _normalised_intervals(array: pa.Array) -> pa.Array:
    day = 86_400 * 10**9
    return pa.array([None if v is None else (v.months * 30 + v.days) * day + v.nanoseconds
                     for v in array.to_pylist()], pa.decimal128(38, 0))


# ---------------------------------------------------------------------------
# Generated values across each type's whole range
# ---------------------------------------------------------------------------


def _ints(lo: int, hi: int) -> st.SearchStrategy:
    """Integers in [lo, hi], with the ends and zero drawn often."""
    specials = [v for v in (lo, hi, 0, -1, 1) if lo <= v <= hi]
    return st.one_of(st.sampled_from(specials), st.integers(lo, hi))


def _generated() -> dict[str, tuple[pa.DataType, st.SearchStrategy]]:
    gens: dict[str, tuple[pa.DataType, st.SearchStrategy]] = {}
    for bits in (8, 64):
        gens[f"int{bits}"] = (getattr(pa, f"int{bits}")(), _ints(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
        gens[f"uint{bits}"] = (getattr(pa, f"uint{bits}")(), _ints(0, 2**bits - 1))
    gens["float32"] = (pa.float32(), st.floats(width=32))
    gens["float64"] = (pa.float64(), st.floats())
    gens["decimal128_38_6"] = (pa.decimal128(38, 6), st.decimals(
        min_value=decimal.Decimal("-" + "9" * 32 + ".999999"), max_value=decimal.Decimal("9" * 32 + ".999999"),
        places=6, allow_nan=False, allow_infinity=False))
    gens["string"] = (pa.string(), st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
    gens["binary"] = (pa.binary(), st.binary())
    gens["date32"] = (pa.date32(), _ints(-I32_MAX, I32_MAX))
    for unit in ("s", "ms", "us", "ns"):
        gens[f"time_{unit}"] = (_time_type(unit), _ints(0, _TIME_END[unit]))
        lowest = _TS_NS_STORED_MIN if unit == "ns" else _TS_MIN[unit]
        gens[f"timestamp_{unit}"] = (pa.timestamp(unit), _ints(lowest, _TS_MAX[unit]))
        gens[f"timestamptz_{unit}"] = (pa.timestamp(unit, tz="UTC"), _ints(_TS_MIN[unit], _TS_MAX[unit]))
        gens[f"duration_{unit}"] = (pa.duration(unit), _ints(-_DURATION_MAX[unit], _DURATION_MAX[unit]))
    gens["month_day_nano"] = (pa.month_day_nano_interval(), st.builds(
        lambda m, d, n: pa.MonthDayNano([m, d, n]), _ints(-(2**31), I32_MAX), _ints(-(2**31), I32_MAX),
        _ints(-(2**63), I64_MAX)))
    return gens


GENERATED = _generated()
SETTINGS = settings(max_examples=12, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _column_type(local, array: pa.Array) -> str:
    """The DuckDB type DuckDB's Arrow scan gives the column (the reference, not the server's idea of it)."""
    param_table = pa.table({"v": array})  # noqa: F841 - read by DuckDB's replacement scan
    return str(local.sql("SELECT v FROM param_table").types[0])


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_select_parameters(conn, local, case):
    kind, values = GENERATED[case]
    cur = conn.cursor()

    @SETTINGS
    @given(value=values)
    def check(value):
        array = pa.array([value], kind)
        assert_binds_like_duckdb(through_server(cur, array), in_process(local, array), f"{case}[{value!r}]")

    try:
        check()
    finally:
        cur.close()


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_executemany_paths(conn, local, unique_name, case):
    """executemany both ways: a set-based INSERT (DuckDB scans the parameter table) and an UPDATE run once per
    parameter row; the table then holds what DuckDB reads from the same Arrow column."""
    kind, values = GENERATED[case]
    table = unique_name("edge")
    cur = conn.cursor()
    column_type = _column_type(local, pa.array([], kind))
    cur.execute(f"CREATE TABLE {table} (k INTEGER, v {column_type}, w {column_type})")

    @SETTINGS
    @given(items=st.lists(st.one_of(st.none(), values), min_size=1, max_size=12))
    def check(items):
        array = pa.array(items, kind)
        keys = pa.array(range(len(items)), pa.int32())
        cur.execute(f"DELETE FROM {table}")
        cur.executemany(f"INSERT INTO {table} (k, v) VALUES (?, ?)", pa.record_batch([keys, array], ["k", "v"]))
        cur.executemany(f"UPDATE {table} SET w = ? WHERE k = ?", pa.record_batch([array, keys], ["w", "k"]))
        cur.execute(f"SELECT v, w FROM {table} ORDER BY k")
        got = cur.fetch_arrow_table()
        want = in_process(local, array)
        assert not isinstance(want, Exception), want
        assert_binds_like_duckdb(got.column("v").combine_chunks(), want, f"{case} INSERT {items!r}")
        assert_binds_like_duckdb(got.column("w").combine_chunks(), want, f"{case} UPDATE {items!r}")

    try:
        check()
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.close()
