"""Large results are streamed, not materialised on the server."""

from __future__ import annotations

import threading
import time

import psutil
import pyarrow.compute as pc

from support import run_with_timeout, scalar

MB = 1024 * 1024


class RssSampler:
    """Samples the peak RSS of a process (and its children) in the background."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def test_five_million_rows_fetch_arrow_table(conn):
    n = 5_000_000

    def fetch():
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT * FROM range({n})")
            return cur.fetch_arrow_table()
        finally:
            cur.close()

    table = run_with_timeout(fetch, 120, "fetching 5M rows")
    assert table.num_rows == n
    assert pc.sum(table.column(0)).as_py() == n * (n - 1) // 2


def test_hundred_million_rows_stream_with_bounded_server_memory(server, conn):
    n = 100_000_000
    baseline = RssSampler(server.proc.pid).rss()

    def stream():
        total_rows = 0
        total_sum = 0
        batches = 0
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT * FROM range({n})")
            reader = cur.fetch_record_batch()
            for batch in reader:
                total_rows += batch.num_rows
                total_sum += pc.sum(batch.column(0)).as_py() or 0
                batches += 1
        finally:
            cur.close()
        return total_rows, total_sum, batches

    start = time.monotonic()
    with RssSampler(server.proc.pid) as sampler:
        total_rows, total_sum, batches = run_with_timeout(stream, 90, "streaming 100M rows")
    elapsed = time.monotonic() - start
    growth = sampler.peak - baseline
    assert total_rows == n
    assert total_sum == n * (n - 1) // 2
    assert batches > 1
    assert growth < 500 * MB, f"server RSS grew by {growth / MB:.0f} MB while streaming"
    assert elapsed < 60, f"streaming 100M rows took {elapsed:.1f}s"


def test_abandoned_stream_releases_session(conn):
    """Closing a cursor after one batch of a huge result must not wedge the session."""
    cur = conn.cursor()
    cur.execute("SELECT * FROM range(1000000000)")
    reader = cur.fetch_record_batch()
    first = reader.read_next_batch()
    assert first.num_rows > 0
    cur.close()
    start = time.monotonic()
    assert run_with_timeout(lambda: scalar(conn, "SELECT 123"), 30, "query after abandoned stream") == 123
    elapsed = time.monotonic() - start
    # The rest of the billion-row result must be abandoned, not produced.
    assert elapsed < 5, f"next query on the connection waited {elapsed:.1f}s for the abandoned stream"


def test_many_small_queries_are_quick(conn):
    cur = conn.cursor()
    start = time.monotonic()
    for i in range(200):
        cur.execute("SELECT ?::INTEGER", (i,))
        assert cur.fetchall() == [(i,)]
    cur.close()
    assert time.monotonic() - start < 60


def test_wide_rows_fit_default_client_message_size(conn):
    """~100 MB of 1 kB strings: the server must cut record batches small enough for the
    stock ADBC Go driver, which by default refuses gRPC messages over 16 MiB."""
    cur = conn.cursor()
    cur.execute("SELECT i, repeat('x', 1000) AS s FROM range(100000) t(i)")
    table = cur.fetch_arrow_table()
    cur.close()
    assert table.num_rows == 100000
    assert pc.min(pc.utf8_length(table["s"])).as_py() == 1000
    assert pc.max(pc.utf8_length(table["s"])).as_py() == 1000
    assert pc.sum(table["i"]).as_py() == 100000 * 99999 // 2


def _drain(reader, first=None):
    """(rows, sum) of a record batch reader, or the exception that ended it."""
    rows = first.num_rows if first is not None else 0
    total = pc.sum(first.column(0)).as_py() or 0 if first is not None else 0
    try:
        for batch in reader:
            rows += batch.num_rows
            total += pc.sum(batch.column(0)).as_py() or 0
    except Exception as exc:  # noqa: BLE001 - returned to the caller
        return exc
    return rows, total


# Large enough that the server cannot have sent the whole first result (into
# gRPC buffers and the driver's prefetch queue) before the second statement runs.
INTERLEAVE_ROWS = 20_000_000


def test_statement_during_open_stream_on_same_connection(conn):
    """Running another statement while a result is still streaming on the same
    connection must never silently truncate the first result: it either completes
    in full or fails with an error."""
    n = INTERLEAVE_ROWS
    a = conn.cursor()
    a.execute(f"SELECT i FROM range({n}) t(i)")
    reader = a.fetch_record_batch()
    first = reader.read_next_batch()
    assert first.num_rows < n
    b = conn.cursor()
    b.execute("SELECT count(*) FROM range(1000)")
    assert b.fetchall() == [(1000,)]
    b.close()
    outcome = _drain(reader, first)
    a.close()
    if not isinstance(outcome, Exception):
        assert outcome == (n, n * (n - 1) // 2), f"stream silently truncated: got {outcome}"


def test_two_interleaved_streams_on_same_connection(conn):
    n = INTERLEAVE_ROWS
    a = conn.cursor()
    a.execute(f"SELECT i FROM range({n}) t(i)")
    ra = a.fetch_record_batch()
    b = conn.cursor()
    b.execute(f"SELECT i FROM range({n}) t(i)")
    rb = b.fetch_record_batch()
    counts = [0, 0]
    error = None
    done = [False, False]
    try:
        while not all(done):
            for idx, reader in enumerate((ra, rb)):
                if done[idx]:
                    continue
                try:
                    counts[idx] += reader.read_next_batch().num_rows
                except StopIteration:
                    done[idx] = True
    except Exception as exc:  # noqa: BLE001
        error = exc
    a.close()
    b.close()
    if error is None:
        assert counts == [n, n], f"interleaved streams silently truncated: {counts}"
