"""Many clients at once, each with its own connection."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc

from support import rows, run_with_timeout, scalar

THREADS = 16


def run_threads(target, n=THREADS, timeout=180):
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    results: dict[int, object] = {}

    def wrapper(idx):
        try:
            barrier.wait(timeout=60)
            results[idx] = target(idx)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=wrapper, args=(i,), daemon=True) for i in range(n)]

    def run():
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run_with_timeout(run, timeout, f"{n} concurrent clients")
    assert not errors, f"{len(errors)} thread(s) failed; first: {errors[0]!r}"
    assert len(results) == n
    return results


def test_concurrent_queries_and_inserts(server, unique_name):
    shared = unique_name("shared")
    setup = server.connect()
    cur = setup.cursor()
    cur.execute(f"CREATE TABLE {shared} (worker INTEGER, seq INTEGER)")
    cur.close()

    per_thread = 50

    def work(idx):
        c = server.connect()
        try:
            own = f"{shared}_w{idx}"
            cur = c.cursor()
            # private table + inserts
            cur.execute(f"CREATE TABLE {own} AS SELECT i FROM range({1000 + idx}) t(i)")
            cur.executemany(f"INSERT INTO {shared} VALUES (?, ?)", [(idx, s) for s in range(per_thread)])
            assert cur.rowcount == per_thread
            # queries with per-thread expected results
            cur.execute(f"SELECT count(*), sum(i) FROM {own}")
            n = 1000 + idx
            assert cur.fetchall() == [(n, n * (n - 1) // 2)]
            m = idx * 100_000
            cur.execute(f"SELECT sum(i) FROM range({m}) t(i)")
            assert cur.fetchall() == [(m * (m - 1) // 2 if m else None,)]
            cur.execute("SELECT ?::INTEGER * 2", (idx,))
            assert cur.fetchall() == [(idx * 2,)]
            cur.execute(f"SELECT i FROM range({20_000 + idx}) t(i)")
            table = cur.fetch_arrow_table()
            assert table.num_rows == 20_000 + idx
            assert pc.sum(table["i"]).as_py() == (20_000 + idx) * (20_000 + idx - 1) // 2
            cur.close()
            return idx
        finally:
            c.close()

    run_threads(work)
    assert scalar(setup, f"SELECT count(*) FROM {shared}") == THREADS * per_thread
    assert rows(setup, f"SELECT worker, count(*), sum(seq) FROM {shared} GROUP BY worker ORDER BY worker") == [
        (w, per_thread, per_thread * (per_thread - 1) // 2) for w in range(THREADS)]
    setup.close()


def test_concurrent_sessions_keep_state_separate(server):
    def work(idx):
        c = server.connect()
        try:
            cur = c.cursor()
            cur.execute(f"CREATE TEMP TABLE mine AS SELECT {idx} AS owner")
            cur.execute(f"SET TimeZone = '{'UTC' if idx % 2 else 'Asia/Tokyo'}'")
            for _ in range(10):
                cur.execute("SELECT owner, current_setting('TimeZone') FROM mine")
                assert cur.fetchall() == [(idx, "UTC" if idx % 2 else "Asia/Tokyo")]
            cur.close()
            return idx
        finally:
            c.close()

    run_threads(work)


def test_concurrent_ingest(server, unique_name):
    base = unique_name("ing")

    def work(idx):
        c = server.connect()
        try:
            cur = c.cursor()
            data = pa.table({"v": pa.array(range(idx * 10_000, (idx + 1) * 10_000), pa.int64())})
            assert cur.adbc_ingest(f"{base}_{idx}", data, mode="create") == 10_000
            cur.close()
            return scalar(c, f"SELECT sum(v) FROM {base}_{idx}")
        finally:
            c.close()

    results = run_threads(work, n=8)
    for idx, total in results.items():
        assert total == sum(range(idx * 10_000, (idx + 1) * 10_000))
