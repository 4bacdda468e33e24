"""Unit tests (no server) for the containment pieces: per-user admission, leases, spill caps, spilled results."""

from __future__ import annotations

import threading
import time

import duckdb
import pyarrow as pa
import pytest

from flight_server.engine import ResourceError, SessionPool, UnavailableError
from flight_server.engine.spill import SpillSpace
from flight_server.resilience.admission import AdmissionController


def test_per_user_cap_leaves_room_for_others():
    admission = AdmissionController(max_running=4, max_queued=8, max_wait=5, per_user=1)
    admission.acquire("hog")
    waited = threading.Event()

    def second():
        admission.acquire("hog")  # waits: the hog is at its cap although slots are free
        waited.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    time.sleep(0.2)
    assert not waited.is_set()
    started = time.monotonic()
    admission.acquire("other")  # at once
    assert time.monotonic() - started < 0.1
    with pytest.raises(UnavailableError, match="max_statements_per_user=1"):
        admission.acquire("hog")  # one running and one waiting already: refused at once
    admission.release("hog")
    thread.join(2)
    assert waited.is_set()
    assert admission.stats()["running"] == 2


def test_lease_releases_once_and_is_taken_again():
    admission = AdmissionController(max_running=1, max_queued=0, max_wait=0)
    lease = admission.lease("u")
    lease.release()
    lease.release()
    assert admission.stats()["running"] == 0
    lease.hold()
    lease.hold()
    assert admission.stats()["running"] == 1
    with pytest.raises(UnavailableError):
        admission.lease("v")
    lease.release()
    assert admission.stats()["running"] == 0


def test_spill_caps(tmp_path):
    space = SpillSpace(str(tmp_path / "results"), limit=1000, per_user=600, per_session=400)
    space.charge("u", "s1", 400)
    with pytest.raises(ResourceError, match="max_spill_per_session"):
        space.charge("u", "s1", 1)
    space.charge("u", "s2", 200)
    with pytest.raises(ResourceError, match="max_spill_per_user"):
        space.charge("u", "s3", 1)
    space.charge("v", "s4", 400)
    with pytest.raises(ResourceError, match="spill space is full"):
        space.charge("w", "s5", 1)
    space.refund("u", "s1", 400)
    space.charge("w", "s5", 300)
    assert space.stats()["spilled_bytes"] == 900


def _pool(tmp_path, limit=10**10):
    db = duckdb.connect()
    space = SpillSpace(str(tmp_path / "results"), limit, memory=1)
    return SessionPool(db.cursor, max_sessions=4, idle_timeout=0, spill=space), space


def test_parked_result_spills_and_streams_back_complete(tmp_path):
    pool, space = _pool(tmp_path)
    session = pool.get("k", owner="u")
    n = 3_000_000
    handle = session.park(session.execute(f"SELECT range FROM range({n})").reader)
    small = session.park(session.execute("SELECT 1 AS one").reader)  # pushes the first out to a file
    files = list((tmp_path / "results").iterdir())
    assert len(files) == 2  # the big result, and the small one (the memory budget is one byte)
    table = pa.Table.from_batches(list(session.take(handle)))
    assert table.num_rows == n and table.column(0).to_pylist()[-1] == n - 1
    assert pa.Table.from_batches(list(session.take(small))).column(0).to_pylist() == [1]
    assert list((tmp_path / "results").iterdir()) == []
    assert space.stats()["spilled_bytes"] == 0


def test_result_over_the_cap_is_dropped_with_the_reason(tmp_path):
    pool, space = _pool(tmp_path, limit=2_000_000)
    session = pool.get("k", owner="u")
    handle = session.park(session.execute("SELECT range FROM range(3000000)").reader)
    assert session.execute("SELECT 2").reader.read_all().column(0).to_pylist() == [2]
    with pytest.raises(ResourceError, match="did not fit on disk: the spill space is full"):
        list(session.take(handle))
    assert list((tmp_path / "results").iterdir()) == []
    assert space.stats() == {"spilled_bytes": 0, "spill_limit_bytes": 2_000_000, "whole_results_bytes": 0,
                             "dropped_results": 1}


def test_session_close_deletes_spill_files(tmp_path):
    pool, space = _pool(tmp_path)
    session = pool.get("k", owner="u")
    session.park(session.execute("SELECT range FROM range(2000000)").reader)
    session.execute("SELECT 1")
    assert len(list((tmp_path / "results").iterdir())) == 1
    pool.close("k")
    assert list((tmp_path / "results").iterdir()) == []
    assert space.stats()["spilled_bytes"] == 0


def test_sql_transactions_count_for_the_idle_in_transaction_timeout(tmp_path):
    pool, _ = _pool(tmp_path)
    pool.idle_in_transaction_timeout = 0.2
    session = pool.get("k", owner="u")
    session.execute_update("BEGIN TRANSACTION")
    assert session.in_transaction
    session.execute_update("COMMIT")
    assert not session.in_transaction
    session.execute_update("BEGIN")
    time.sleep(0.3)
    with pool._lock:
        pool._expire_locked(time.monotonic())
    assert pool.find("k") is None and pool.reclaimed["idle in transaction"] == 1


def test_over_cap_user_gives_way_when_the_pool_is_full(tmp_path):
    pool, _ = _pool(tmp_path)
    pool.max_sessions_per_user = 2
    for key in "abcd":
        pool.get(key, owner="hog")  # a user may pass its cap while the pool has room
    pool.get("e", owner="other")  # the pool is full: the hog's oldest idle session makes room
    assert pool.find("a") is None and pool.find("e") is not None
    pool.get("f", owner="other")
    with pytest.raises(UnavailableError, match="max_sessions_per_user=2"):
        pool.get("g", owner="other")  # at its own cap, and the hog is no longer over its own
