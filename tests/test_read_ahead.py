"""Results are fetched from DuckDB a couple of batches ahead of the one being sent (engine/streaming.py): every
batch still arrives once and in order, a statement run meanwhile on the same session still spills the rest,
errors still reach the reader, and an abandoned stream's helper thread ends."""

from __future__ import annotations

import threading
import time

import duckdb
import pyarrow as pa
import pytest

from flight_server.engine import SessionPool
from flight_server.engine.errors import EngineError
from flight_server.engine.spill import SpillSpace
from flight_server.engine.streaming import READ_AHEAD

ROWS = 2_000_000


@pytest.fixture()
def session(tmp_path):
    space = SpillSpace(str(tmp_path / "results"), 10**10)
    pool = SessionPool(duckdb.connect().cursor, max_sessions=4, idle_timeout=0, spill=space)
    yield pool.get("k", owner="u")
    pool.shutdown(5)


def _helpers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "result-read-ahead")


def _wait_for_no_helpers(seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while _helpers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _helpers()


def _streamed(session, sql):
    return session.take(session.park(session.execute(sql).reader))


def test_every_batch_once_and_in_order(session):
    stream = _streamed(session, f"SELECT range AS i FROM range({ROWS})")
    assert stream.complete is None  # a multi-batch result: the read-ahead path
    column = pa.Table.from_batches(list(stream), stream.schema).column("i")
    assert len(column) == ROWS
    assert column.to_pylist() == list(range(ROWS))
    assert stream.rows_sent == ROWS
    assert _wait_for_no_helpers() == 0


def test_a_statement_meanwhile_spills_the_rest_and_nothing_is_lost(session):
    stream = _streamed(session, f"SELECT range AS i FROM range({ROWS})")
    batches = iter(stream)
    first = [next(batches) for _ in range(READ_AHEAD + 1)]  # the helper has fetched ahead by now
    # The session needs its connection: what DuckDB has not produced yet goes to a spill file.
    assert session.execute("SELECT 42 AS x").reader.read_all().column("x").to_pylist() == [42]
    rest = list(batches)
    values = pa.Table.from_batches(first + rest, stream.schema).column("i").to_pylist()
    assert values == list(range(ROWS))


def test_an_abandoned_stream_stops_its_helper(session):
    before = _helpers()
    stream = _streamed(session, f"SELECT range AS i FROM range({ROWS * 5})")
    batches = iter(stream)
    next(batches)
    assert _helpers() == before + 1
    batches.close()  # what pyarrow does when the call ends early
    stream.detach()
    assert _wait_for_no_helpers() == 0
    # The session is usable at once.
    assert session.execute("SELECT 7 AS x").reader.read_all().column("x").to_pylist() == [7]


def test_an_error_while_producing_reaches_the_reader(session):
    sql = f"SELECT CASE WHEN range < {ROWS - 10} THEN range ELSE error('boom at the end') END AS i FROM range({ROWS})"
    stream = _streamed(session, sql)
    received = 0
    with pytest.raises(EngineError, match="boom at the end"):
        for batch in stream:
            received += batch.num_rows
    assert received < ROWS
    assert _wait_for_no_helpers() == 0


def test_a_closed_stream_ends_the_reader_cleanly(session):
    stream = _streamed(session, f"SELECT range AS i FROM range({ROWS})")
    batches = iter(stream)
    next(batches)
    stream.close()  # e.g. cancelled: the rest is dropped
    remaining = list(batches)
    assert len(remaining) <= READ_AHEAD + 1  # what was fetched ahead (and one in flight), then the end
    assert _wait_for_no_helpers() == 0
