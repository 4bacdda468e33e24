"""The workloads of the results table, each run against one column's client.

A workload is a function ``(connect, ctx) -> float`` where ``connect()``
opens a connection of the column under test (see ``targets.py``) and ``ctx``
holds the shared inputs (settings, TPC-H query text, the ``lineitem`` Arrow
table for ingest).  Every workload warms up before it measures, repeats, and
reports a median (latencies: the p50 of many calls).
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa


@dataclass
class Context:
    """Inputs shared by every column's run of the workloads."""

    latency_iters: int
    warmup: int
    repeat: int
    concurrency: int
    duration: float
    queries: list[str]
    lineitem: pa.Table | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    run: Callable[[Callable[[], object], Context], float]
    fmt: str = "{:.3f}"


def percentile(samples: list[float], q: float) -> float:
    """``q``-th percentile (0..100) with linear interpolation."""
    s = sorted(samples)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def latency_samples(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    """Call ``fn`` ``warmup`` times, then return ``iters`` wall times (s)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# Slow systems stop repeating after this many seconds (at least one timed run).
TIME_BUDGET = 120.0


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1,
                setup: Callable[[], object] | None = None,
                teardown: Callable[[object], None] | None = None) -> float:
    """Median wall time of ``fn(state)`` over ``repeat`` runs after ``warmup`` runs.

    ``setup()`` (untimed) makes the state of each run, ``teardown(state)``
    (untimed) disposes of it.  Once the runs so far took ``TIME_BUDGET``
    seconds, no further run starts (there is always one timed run).
    """
    times: list[float] = []
    spent = 0.0
    for i in range(warmup + repeat):
        if times and spent > TIME_BUDGET:
            break
        state = setup() if setup else None
        gc.collect()
        t0 = time.perf_counter()
        fn(state)
        elapsed = time.perf_counter() - t0
        spent += elapsed
        if teardown:
            teardown(state)
        if i >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def run_concurrent(workers: list[Callable[[], None]], duration: float) -> tuple[int, float]:
    """Run each worker in its own thread in a loop for ``duration`` seconds.

    Every worker runs once untimed (warm-up), then all start together
    (barrier); a call already running at the deadline finishes and counts.
    Returns (calls completed, seconds until the last thread stopped).  An
    exception in a worker is re-raised here.
    """
    counts = [0] * len(workers)
    errors: list[BaseException] = []
    warmed = threading.Barrier(len(workers) + 1)
    go = threading.Barrier(len(workers) + 1)
    deadline = [0.0]

    def loop(i: int, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - propagated below
            errors.append(exc)
        warmed.wait()
        go.wait()
        try:
            while time.perf_counter() < deadline[0] and not errors:
                work()
                counts[i] += 1
        except BaseException as exc:  # noqa: BLE001 - propagated below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i, w), daemon=True)
               for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    warmed.wait()
    start = time.perf_counter()
    deadline[0] = start + duration
    go.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def with_connections(connect, n: int, body: Callable[[list], float]) -> float:
    """Open ``n`` connections, run ``body(conns)``, close them all."""
    conns = []
    try:
        for _ in range(n):
            conns.append(connect())
        return body(conns)
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown
                pass


# ---- the workloads ----------------------------------------------------


def select1_p50(connect, ctx: Context) -> float:
    """``SELECT 1`` on one open connection: p50 in ms."""
    def body(conns) -> float:
        c = conns[0]
        return percentile(latency_samples(lambda: c.rows("SELECT 1"), ctx.latency_iters,
                                          ctx.warmup), 50) * 1e3
    return with_connections(connect, 1, body)


def connect_select1_close(connect, ctx: Context) -> float:
    """Open a connection, ``SELECT 1``, close: p50 in ms."""
    def once() -> None:
        c = connect()
        try:
            c.rows("SELECT 1")
        finally:
            c.close()
    iters = max(10, ctx.latency_iters // 10)
    return percentile(latency_samples(once, iters, max(1, ctx.warmup // 10)), 50) * 1e3


def pull_lineitem(connect, ctx: Context) -> float:
    """All of ``lineitem`` as an Arrow table: median seconds.

    Each run on a fresh connection (connect untimed); the row count is checked.
    """
    expected = ctx.lineitem.num_rows

    def once(c) -> None:
        got = c.arrow("SELECT * FROM lineitem").num_rows
        if got != expected:
            raise RuntimeError(f"pulled {got} rows, expected {expected}")

    return median_time(once, ctx.repeat, setup=connect, teardown=lambda c: c.close())


def ingest_lineitem(connect, ctx: Context) -> float:
    """``lineitem`` (an Arrow table) into a new table: median seconds (no warm-up run:
    the data is in memory already, and each run replaces the table)."""
    data = ctx.lineitem

    def body(conns) -> float:
        c = conns[0]
        t = median_time(lambda _: c.ingest("lineitem_copy", data), ctx.repeat, warmup=0)
        n = c.rows("SELECT count(*) FROM lineitem_copy")[0][0]
        if n != data.num_rows:
            raise RuntimeError(f"ingested {n} rows, expected {data.num_rows}")
        c.update("DROP TABLE lineitem_copy")
        return t
    return with_connections(connect, 1, body)


def tpch_q1_q6(connect, ctx: Context) -> float:
    """``concurrency`` connections alternating TPC-H Q1 and Q6: queries/s."""
    queries = ctx.queries

    def body(conns) -> float:
        def worker(c, offset: int):
            state = [offset]

            def work() -> None:
                c.rows(queries[state[0] % len(queries)])
                state[0] += 1
            return work
        n, elapsed = run_concurrent([worker(c, i) for i, c in enumerate(conns)], ctx.duration)
        return n / elapsed
    return with_connections(connect, ctx.concurrency, body)


def _small_writes(connect, ctx: Context, prepared: bool) -> float:
    """``concurrency`` threads, own connections, single-row INSERTs: tx/s.

    Every INSERT is its own autocommit transaction.  The table's row count
    is checked afterwards against the number of INSERTs that returned.
    """
    def body(conns) -> float:
        before = conns[0].rows("SELECT count(*) FROM small_writes")[0][0]
        done = [0] * len(conns)

        def worker(thread: int, c):
            if prepared:
                insert = c.prepare("INSERT INTO small_writes VALUES (?, ?)")

                def work() -> None:
                    insert((thread, done[thread]))
                    done[thread] += 1
            else:
                def work() -> None:
                    c.update(f"INSERT INTO small_writes VALUES ({thread}, {done[thread]})")
                    done[thread] += 1
            return work

        n, elapsed = run_concurrent([worker(i, c) for i, c in enumerate(conns)], ctx.duration)
        after = conns[0].rows("SELECT count(*) FROM small_writes")[0][0]
        if after - before != sum(done):
            raise RuntimeError(f"table grew by {after - before} rows, {sum(done)} INSERTs returned")
        return n / elapsed
    return with_connections(connect, ctx.concurrency, body)


def small_writes(connect, ctx: Context) -> float:
    return _small_writes(connect, ctx, prepared=False)


def small_writes_prepared(connect, ctx: Context) -> float:
    return _small_writes(connect, ctx, prepared=True)


SMALL_WRITES_DDL = "CREATE TABLE small_writes (thread INTEGER, i BIGINT)"


def workloads(concurrency: int) -> list[Workload]:
    """The table's rows, in display order."""
    n = concurrency
    return [
        Workload("select1", "`SELECT 1` p50, one connection", "ms", False, select1_p50),
        Workload("connect", "connect + `SELECT 1` + close, p50", "ms", False,
                 connect_select1_close, "{:.2f}"),
        Workload("pull", "pull `lineitem` to Arrow, median", "s", False, pull_lineitem),
        Workload("ingest", "ingest `lineitem` from Arrow, median", "s", False, ingest_lineitem),
        Workload("qps", f"{n} connections, TPC-H Q1/Q6", "queries/s", True, tpch_q1_q6, "{:.2f}"),
        Workload("writes", f"{n} threads, single-row INSERT, autocommit", "tx/s", True,
                 small_writes, "{:,.0f}"),
        Workload("writes_prepared", f"{n} threads, same with a reused prepared INSERT", "tx/s",
                 True, small_writes_prepared, "{:,.0f}"),
    ]
