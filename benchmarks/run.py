#!/usr/bin/env python
"""Benchmark the DuckDB Flight SQL server against in-process DuckDB.

One command::

    python benchmarks/run.py [--sf 1] [--repeat 3] [--output results.md]

What it does:

1. Generates TPC-H at scale factor ``--sf`` into
   ``benchmarks/.data/tpch-sf{sf}.duckdb`` with the TPC-H extension shipped in
   the ``duckdb_extension_tpch`` pip package (never ``INSTALL``; no network).
   The file is cached and reused on later runs.
2. Copies that file twice into a temporary directory: one copy for the
   in-process side, one for the server (so ingest never touches the cache).
3. Starts ``python -m flight_server`` on a free loopback port against its copy
   and waits until the port accepts TCP connections.
4. Measures, side by side, in-process DuckDB (``duckdb.connect``) and the
   server through the ADBC Flight SQL DB-API driver:

   * ``SELECT 1`` round-trip latency (p50 / p99),
   * pulling all of ``lineitem`` as an Arrow table (seconds, MB/s),
   * ingesting the ``lineitem`` Arrow table (seconds, rows/s),
   * loading ``lineitem`` from a Parquet file into a new table (seconds,
     rows/s): ``CREATE TABLE ... AS SELECT * FROM read_parquet(...)`` on a
     fresh database file vs the client CLI ``python -m clients load`` run as a
     subprocess (the Parquet file is cached in
     ``benchmarks/.data/lineitem-sf{sf}.parquet``),
   * exporting ``lineitem`` to a Parquet file (seconds, rows/s):
     ``COPY lineitem TO ... (FORMAT PARQUET)`` vs
     ``python -m clients query ... --output FILE.parquet`` as a subprocess,
   * N concurrent connections running TPC-H Q1 and Q6 (queries/s).

5. Prints a markdown table (and optionally writes it to ``--output``).

The server is always terminated (SIGTERM, then SIGKILL) on exit, including on
errors and Ctrl-C.  A failing server metric is reported as ``error`` in the
table instead of aborting the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow as pa

try:  # imported as part of a package
    from . import clients_bench
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import clients_bench

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"


# --------------------------------------------------------------------------
# Result bookkeeping
# --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table.

    ``kind`` is ``"time"`` (lower is better; ratio = server / in-process) or
    ``"rate"`` (higher is better; ratio = in-process / server).  Either way a
    ratio above 1 means the server is slower.
    """

    metric: str
    kind: str
    local: float | None = None
    server: float | None = None
    local_err: str | None = None
    server_err: str | None = None
    fmt: str = "{:.3f}"

    def ratio(self) -> str:
        """Return the ratio cell (">1 means the server is slower")."""
        if not self.local or not self.server:
            return "n/a"
        r = self.server / self.local if self.kind == "time" else self.local / self.server
        return f"{r:.2f}x"

    def cell(self, value: float | None, err: str | None) -> str:
        """Format one value cell, or the error that prevented measuring it."""
        if err:
            return err
        if value is None:
            return "—"
        return self.fmt.format(value)


@dataclass
class Results:
    """All table rows plus free-form notes printed under the table."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def error_ref(self, message: str) -> str:
        """Register an error message once; return a short cell label for it."""
        if message not in self.errors:
            self.errors.append(message)
        return f"error [E{self.errors.index(message) + 1}]"

    def to_markdown(self) -> str:
        """Render the results as a markdown table followed by notes."""
        lines = [
            "| metric | in-process DuckDB | Flight SQL server (ADBC) | ratio (server slowdown) |",
            "|---|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.metric} | {r.cell(r.local, r.local_err)} | "
                f"{r.cell(r.server, r.server_err)} | {r.ratio()} |"
            )
        if self.notes or self.errors:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
            lines.extend(f"- E{i}: {e}" for i, e in enumerate(self.errors, 1))
        return "\n".join(lines)


def short_error(exc: BaseException, limit: int = 300) -> str:
    """One-line, table-safe description of an exception."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CpuAccount:
    """Measure how much CPU *other* processes used while the benchmark ran.

    foreign CPU = machine busy time - this process - the server process
    - the ``python -m clients`` subprocesses of the CLI rows.
    Background work (builds, test suites) skews results, mostly concurrency.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.server_cpu = 0.0
        self._t0 = time.monotonic()
        self._busy0 = self._busy()
        self._self0 = self._own()

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _own(self) -> float:
        t = self._psutil.Process().cpu_times()
        return t.user + t.system

    def record_server(self, pid: int) -> None:
        """Remember the server's CPU time (call just before stopping it)."""
        with contextlib.suppress(Exception):
            t = self._psutil.Process(pid).cpu_times()
            self.server_cpu = t.user + t.system

    def summary(self) -> str:
        """Human-readable share of the machine used by other processes."""
        wall = time.monotonic() - self._t0
        foreign = max(0.0, self._busy() - self._busy0 - (self._own() - self._self0)
                      - self.server_cpu - clients_bench.CLI_CPU)
        share = foreign / (wall * (os.cpu_count() or 1)) * 100
        return (f"other processes used {foreign:.0f} CPU-s in {wall:.0f}s "
                f"({share:.0f}% of the machine{'; results are noisy' if share > 5 else ''})")


CPU: CpuAccount | None = None


# --------------------------------------------------------------------------
# Data generation
# --------------------------------------------------------------------------


def tpch_extension_path() -> str:
    """Path of the TPC-H extension binary shipped in ``duckdb_extension_tpch``."""
    import duckdb_extension_tpch

    path = os.path.join(
        os.path.dirname(duckdb_extension_tpch.__file__),
        "extensions",
        "v" + duckdb.__version__,
        "tpch.duckdb_extension",
    )
    if not os.path.exists(path):
        raise FileNotFoundError(f"TPC-H extension not found at {path}")
    return path


def load_tpch(con: duckdb.DuckDBPyConnection) -> None:
    """Load the packaged TPC-H extension into ``con`` (no INSTALL, no network)."""
    con.execute(f"LOAD '{tpch_extension_path()}'")


def sf_label(sf: float) -> str:
    """Scale factor as used in file names: 1 -> '1', 0.1 -> '0.1'."""
    return f"{sf:g}"


def ensure_tpch_file(sf: float) -> Path:
    """Create (once) and return the cached TPC-H DuckDB file for ``sf``.

    The database is written to a temporary name and renamed at the end, so an
    interrupted generation never leaves a half-written cache file behind.
    """
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"tpch-sf{sf_label(sf)}.duckdb"
    if path.exists():
        log(f"using cached {path.relative_to(REPO_ROOT)}")
        return path
    tmp = path.with_suffix(".duckdb.tmp")
    for stale in (tmp, Path(str(tmp) + ".wal")):
        stale.unlink(missing_ok=True)
    log(f"generating TPC-H sf={sf_label(sf)} into {path.relative_to(REPO_ROOT)} ...")
    t0 = time.perf_counter()
    con = duckdb.connect(str(tmp))
    try:
        load_tpch(con)
        con.execute(f"CALL dbgen(sf={sf})")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    tmp.rename(path)
    log(f"generated in {time.perf_counter() - t0:.1f}s")
    return path


def tpch_queries(nrs: tuple[int, ...] = (1, 6)) -> dict[int, str]:
    """SQL text of the given TPC-H queries, taken from ``tpch_queries()``."""
    con = duckdb.connect()
    try:
        load_tpch(con)
        placeholders = ",".join(str(n) for n in nrs)
        rows = con.execute(
            f"SELECT query_nr, query FROM tpch_queries() WHERE query_nr IN ({placeholders})"
        ).fetchall()
    finally:
        con.close()
    return {int(nr): sql for nr, sql in rows}


# --------------------------------------------------------------------------
# Server process management
# --------------------------------------------------------------------------


def free_port() -> int:
    """Ask the OS for a currently free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, n: int = 30) -> str:
    """Last ``n`` lines of a text file (for server diagnostics)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM ``proc``; SIGKILL it if it has not exited within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"server did not exit {timeout:.0f}s after SIGTERM; killing it")
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def flight_server(db_path: Path, log_path: Path, extra_args: list[str],
                  startup_timeout: float) -> Iterator[str]:
    """Run ``python -m flight_server`` against ``db_path``; yield its URI.

    Readiness = the port accepts TCP connections.  The server is terminated on
    exit from the ``with`` block no matter how it is left.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "flight_server", "--host", "127.0.0.1",
           "--port", str(port), "--database", str(db_path),
           "--auth", "none", "--http-port", "-1", "--log-level", "warning",
           "--data-dir", str(db_path.parent / "server-data"), *extra_args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log(f"starting server: {' '.join(cmd)}")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {proc.returncode} before listening; "
                    f"log tail:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server not listening on port {port} after {startup_timeout:.0f}s; "
                    f"log tail:\n{tail(log_path)}")
            time.sleep(0.1)
        log(f"server ready on port {port} (pid {proc.pid})")
        yield f"grpc://127.0.0.1:{port}"
    finally:
        if CPU is not None:
            CPU.record_server(proc.pid)
        t0 = time.perf_counter()
        stop_process(proc)
        log(f"server stopped in {time.perf_counter() - t0:.1f}s (exit code {proc.returncode})")


def adbc_connect(uri: str):
    """Open an autocommit ADBC Flight SQL DB-API connection."""
    from adbc_driver_flightsql import dbapi

    return dbapi.connect(uri, autocommit=True)


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------


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


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Run ``fn`` ``repeat`` times; return (best wall time, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_concurrent(workers: list[Callable[[], None]], duration: float) -> tuple[int, float]:
    """Run each worker in its own thread in a loop for ``duration`` seconds.

    Every worker call executes one query.  All threads start together (barrier);
    a query already running at the deadline is allowed to finish and is counted.
    Returns (queries completed, elapsed seconds until the last thread stopped).
    Any exception in a worker is re-raised in the caller.
    """
    counts = [0] * len(workers)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers) + 1)
    deadline = [0.0]

    def loop(i: int, work: Callable[[], None]) -> None:
        barrier.wait()
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
    start = time.perf_counter()
    deadline[0] = start + duration
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def alternating(run_query: Callable[[str], None], queries: list[str], offset: int) -> Callable[[], None]:
    """Worker that cycles through ``queries`` (starting at ``offset``)."""
    state = {"i": offset}

    def work() -> None:
        sql = queries[state["i"] % len(queries)]
        state["i"] += 1
        run_query(sql)

    return work


# ---- in-process DuckDB ---------------------------------------------------


def local_to_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Materialise ``sql`` as an Arrow table (``to_arrow_table``/``fetch_arrow_table``)."""
    res = con.execute(sql)
    if hasattr(res, "to_arrow_table"):
        return res.to_arrow_table()
    return res.fetch_arrow_table()


def local_via_reader(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Materialise ``sql`` via ``.arrow()`` (a RecordBatchReader in DuckDB >= 1.4)."""
    res = con.execute(sql).arrow()
    return res.read_all() if isinstance(res, pa.RecordBatchReader) else res


def rechunk(tbl: pa.Table, batch_rows: int) -> pa.Table:
    """Zero-copy re-slice ``tbl`` into record batches of at most ``batch_rows``.

    DuckDB hands back ~1M-row batches (~175 MB for ``lineitem``), larger than
    the ADBC Flight SQL driver's default 16 MiB gRPC message limit, and the
    driver does not split batches itself.  Both sides ingest the same table.
    """
    if batch_rows <= 0:
        return tbl
    return pa.Table.from_batches(tbl.to_batches(max_chunksize=batch_rows), schema=tbl.schema)


@dataclass
class Bench:
    """State shared by the per-metric functions.

    Each metric is measured in-process first and through the server right
    after, so both sides see the same machine conditions.  ``server_down``
    holds the table cell used when the server is unavailable.
    """

    args: argparse.Namespace
    queries: list[str]
    res: Results
    rows: dict[str, Row]
    con: duckdb.DuckDBPyConnection
    uri: str | None = None
    cur: object = None
    server_down: str | None = None
    tmpdir: Path | None = None
    parquet: Path | None = None

    def on_server(self, row_keys: list[str], fn: Callable[[], None]) -> None:
        """Run one server measurement; on failure mark ``row_keys`` as errors."""
        if self.uri is None:
            for k in row_keys:
                self.rows[k].server_err = self.server_down
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            msg = short_error(exc)
            log(f"server measurement failed: {msg}")
            ref = self.res.error_ref(msg)
            for k in row_keys:
                self.rows[k].server_err = ref


def metric_select1(b: Bench) -> None:
    """``SELECT 1`` round trip: p50/p99 in milliseconds."""
    a, rows = b.args, b.rows
    log("SELECT 1 latency: in-process")
    lat = latency_samples(lambda: b.con.execute("select 1").fetchall(),
                          a.latency_iters, a.warmup)
    rows["p50"].local = percentile(lat, 50) * 1e3
    rows["p99"].local = percentile(lat, 99) * 1e3

    def server() -> None:
        log("SELECT 1 latency: server")

        def once() -> None:
            b.cur.execute("select 1")
            b.cur.fetchall()

        lat = latency_samples(once, a.latency_iters, a.warmup)
        rows["p50"].server = percentile(lat, 50) * 1e3
        rows["p99"].server = percentile(lat, 99) * 1e3

    b.on_server(["p50", "p99"], server)


def metric_scan(b: Bench) -> pa.Table:
    """Pull all of ``lineitem`` as an Arrow table; return the in-process table."""
    a, rows, sql = b.args, b.rows, "select * from lineitem"
    log("lineitem -> Arrow: in-process")
    t_tbl, tbl = best_of(lambda: local_to_arrow(b.con, sql), a.repeat)
    del tbl
    t_rdr, tbl = best_of(lambda: local_via_reader(b.con, sql), a.repeat)
    best = min(t_tbl, t_rdr)
    rows["scan_s"].local = best
    rows["scan_mbs"].local = tbl.nbytes / 1e6 / best
    b.res.notes.append(
        f"in-process lineitem -> Arrow: to_arrow_table() {t_tbl:.3f}s, "
        f".arrow().read_all() {t_rdr:.3f}s (table shows the faster)")

    def server() -> None:
        log("lineitem -> Arrow: server")

        def once() -> pa.Table:
            b.cur.execute(sql)
            return b.cur.fetch_arrow_table()

        t, got = best_of(once, a.repeat)
        if got.num_rows != tbl.num_rows:
            raise RuntimeError(f"got {got.num_rows} rows, expected {tbl.num_rows}")
        rows["scan_s"].server = t
        rows["scan_mbs"].server = got.nbytes / 1e6 / t

    b.on_server(["scan_s", "scan_mbs"], server)
    return tbl


def metric_ingest(b: Bench, lineitem: pa.Table) -> None:
    """Ingest ``lineitem`` (an Arrow table) into a new table ``lineitem_copy``."""
    a, rows, con = b.args, b.rows, b.con
    n_rows = lineitem.num_rows
    log("ingest: in-process")
    con.register("arrow_tbl", lineitem)
    try:
        t, _ = best_of(lambda: con.execute(
            "CREATE OR REPLACE TABLE lineitem_copy AS SELECT * FROM arrow_tbl"), a.repeat)
        n = con.execute("select count(*) from lineitem_copy").fetchone()[0]
        if n != n_rows:
            raise RuntimeError(f"ingested {n} rows, expected {n_rows}")
        con.execute("DROP TABLE lineitem_copy")
    finally:
        con.unregister("arrow_tbl")
    rows["ingest_s"].local = t
    rows["ingest_rps"].local = n_rows / t

    def server() -> None:
        log("ingest: server")
        t, _ = best_of(lambda: b.cur.adbc_ingest("lineitem_copy", lineitem, mode="replace"),
                       a.repeat)
        b.cur.execute("select count(*) from lineitem_copy")
        n = b.cur.fetchall()[0][0]
        if n != n_rows:
            raise RuntimeError(f"ingested {n} rows, expected {n_rows}")
        b.cur.execute("DROP TABLE lineitem_copy")
        b.cur.fetchall()
        rows["ingest_s"].server = t
        rows["ingest_rps"].server = n_rows / t

    b.on_server(["ingest_s", "ingest_rps"], server)


def metric_cli_startup(b: Bench) -> None:
    """Fixed cost of one CLI subprocess (``query "select 1"``), as a note.

    It is part of every server time in the two CLI rows below.
    """
    if b.uri is None:
        return
    try:
        t, _ = best_of(lambda: clients_bench.run_cli(b.uri, ["query", "select 1"], REPO_ROOT),
                       b.args.repeat)
    except Exception as exc:  # noqa: BLE001 - only a note
        b.res.notes.append(f"CLI start-up probe failed: {short_error(exc)}")
        return
    b.res.notes.append(
        f"CLI fixed cost: `python -m clients query \"select 1\"` subprocess takes {t:.2f}s "
        f"(best of {b.args.repeat}); it is included in the server side of both CLI rows")


def metric_load_parquet(b: Bench) -> None:
    """Load the cached ``lineitem`` Parquet file into a new table."""
    a, rows, src = b.args, b.rows, b.parquet
    n_rows = clients_bench.parquet_rows(src)
    log(f"Parquet load ({n_rows:,} rows): in-process, fresh database file each run")
    db_path = b.tmpdir / "load-local.duckdb"
    timings: list[tuple[float, float]] = []

    def local_once() -> None:
        t_stmt, t_all, n = clients_bench.local_load(db_path, src)
        if n != n_rows:
            raise RuntimeError(f"loaded {n} rows, expected {n_rows}")
        timings.append((t_stmt, t_all))

    try:
        best_of(local_once, a.repeat)
    finally:
        for f in (db_path, Path(str(db_path) + ".wal")):
            f.unlink(missing_ok=True)
    t_stmt = min(t for t, _ in timings)
    t_all = min(t for _, t in timings)
    rows["load_s"].local = t_stmt
    rows["load_rps"].local = n_rows / t_stmt
    b.res.notes.append(
        f"Parquet load source: `{src.name}`, {n_rows:,} rows, "
        f"{clients_bench.parquet_summary(src)}")
    b.res.notes.append(
        f"in-process Parquet load: the CREATE TABLE statement alone (shown) {t_stmt:.3f}s; "
        f"with connect + close of the fresh database file {t_all:.3f}s")

    def server() -> None:
        log("Parquet load: server (python -m clients load ... --mode replace)")
        args = ["load", str(src), "--table", "lineitem_loaded", "--mode", "replace"]
        t, out = best_of(lambda: clients_bench.run_cli(b.uri, args, REPO_ROOT), a.repeat)
        b.cur.execute("select count(*) from lineitem_loaded")
        n = b.cur.fetchall()[0][0]
        if n != n_rows:
            raise RuntimeError(f"table has {n} rows after load, expected {n_rows}")
        b.cur.execute("DROP TABLE lineitem_loaded")
        b.cur.fetchall()
        rows["load_s"].server = t
        rows["load_rps"].server = n_rows / t
        own = clients_bench.parse_cli_summary(out, "load")
        if own:
            b.res.notes.append(
                f"server Parquet load: CLI's own summary of the last run: {own[0]:,} rows "
                f"in {own[1]:.2f}s (excludes interpreter start-up, imports and connect)")

    b.on_server(["load_s", "load_rps"], server)


def metric_export_parquet(b: Bench) -> None:
    """Export all of ``lineitem`` to a Parquet file; verify the written row counts."""
    a, rows = b.args, b.rows
    n_rows = b.con.execute("select count(*) from lineitem").fetchone()[0]
    out_local = b.tmpdir / "export-local.parquet"
    out_server = b.tmpdir / "export-server.parquet"
    log("Parquet export: in-process COPY ... (FORMAT PARQUET)")
    try:
        t, _ = best_of(lambda: clients_bench.local_export(b.con, out_local), a.repeat)
        n = clients_bench.parquet_rows(out_local)
        if n != n_rows:
            raise RuntimeError(f"wrote {n} rows, expected {n_rows}")
        b.res.notes.append(f"in-process export file: {clients_bench.parquet_summary(out_local)}")
    finally:
        out_local.unlink(missing_ok=True)
    rows["export_s"].local = t
    rows["export_rps"].local = n_rows / t

    def server() -> None:
        log("Parquet export: server (python -m clients query ... --output FILE.parquet)")
        args = ["query", "SELECT * FROM lineitem", "--output", str(out_server)]
        try:
            t, out = best_of(lambda: clients_bench.run_cli(b.uri, args, REPO_ROOT), a.repeat)
            n = clients_bench.parquet_rows(out_server)
            if n != n_rows:
                raise RuntimeError(f"wrote {n} rows, expected {n_rows}")
            summary = clients_bench.parquet_summary(out_server)
        finally:
            out_server.unlink(missing_ok=True)
        rows["export_s"].server = t
        rows["export_rps"].server = n_rows / t
        own = clients_bench.parse_cli_summary(out, "export")
        b.res.notes.append(
            f"server export file: {summary}"
            + (f"; CLI's own timing of the last run {own[1]:.2f}s" if own else ""))

    b.on_server(["export_s", "export_rps"], server)


def metric_concurrency(b: Bench) -> None:
    """N threads alternating TPC-H Q1/Q6 for ``--duration`` seconds: queries/s."""
    a, rows, n_conn = b.args, b.rows, b.args.concurrency
    log(f"{n_conn} x Q1/Q6 for {a.duration:g}s: in-process (cursors of one database)")
    cursors = [b.con.cursor() for _ in range(n_conn)]
    try:
        workers = [alternating(lambda q, c=c: c.execute(q).fetchall(), b.queries, i)
                   for i, c in enumerate(cursors)]
        n, elapsed = run_concurrent(workers, a.duration)
    finally:
        for c in cursors:
            c.close()
    rows["qps"].local = n / elapsed
    b.res.notes.append(f"in-process concurrency: {n} queries in {elapsed:.2f}s")

    def server() -> None:
        log(f"{n_conn} x Q1/Q6 for {a.duration:g}s: server ({n_conn} ADBC connections)")
        with contextlib.ExitStack() as stack:
            curs = []
            for _ in range(n_conn):
                conn = adbc_connect(b.uri)
                stack.callback(close_quietly, conn)
                curs.append(conn.cursor())
                stack.callback(close_quietly, curs[-1])

            def run(c, q: str) -> None:
                c.execute(q)
                c.fetchall()

            workers = [alternating(lambda q, c=c: run(c, q), b.queries, i)
                       for i, c in enumerate(curs)]
            n, elapsed = run_concurrent(workers, a.duration)
        rows["qps"].server = n / elapsed
        b.res.notes.append(f"server concurrency: {n} queries in {elapsed:.2f}s")

    b.on_server(["qps"], server)


def close_quietly(obj) -> None:
    """``obj.close()``, ignoring errors (teardown helper)."""
    with contextlib.suppress(Exception):
        obj.close()


def run_metrics(b: Bench) -> None:
    """Measure every metric, in-process then server, in table order."""
    metric_select1(b)
    tbl = metric_scan(b)
    b.res.notes.insert(0, f"lineitem: {tbl.num_rows:,} rows, {tbl.nbytes / 1e6:,.1f} MB as Arrow")
    lineitem = rechunk(tbl, b.args.ingest_batch_rows)
    del tbl
    metric_ingest(b, lineitem)
    del lineitem
    gc.collect()
    metric_cli_startup(b)
    metric_load_parquet(b)
    metric_export_parquet(b)
    metric_concurrency(b)


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress output goes to stderr so stdout carries only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_info() -> str:
    """One markdown line describing the machine and library versions."""
    import adbc_driver_flightsql

    try:
        from importlib.metadata import version
        adbc_ver = version("adbc-driver-flightsql")
    except Exception:  # noqa: BLE001
        adbc_ver = getattr(adbc_driver_flightsql, "__version__", "?")
    return (f"Machine: nproc={os.cpu_count()}, {platform.system()} {platform.machine()}, "
            f"python {platform.python_version()}, duckdb {duckdb.__version__}, "
            f"pyarrow {pa.__version__}, adbc-driver-flightsql {adbc_ver}")


def make_rows(args) -> dict[str, Row]:
    """Create the table rows in display order."""
    n = args.concurrency
    return {
        "p50": Row("`SELECT 1` latency p50 (ms)", "time"),
        "p99": Row("`SELECT 1` latency p99 (ms)", "time"),
        "scan_s": Row(f"`lineitem` -> Arrow table, best of {args.repeat} (s)", "time"),
        "scan_mbs": Row("`lineitem` -> Arrow throughput (MB/s)", "rate", fmt="{:,.0f}"),
        "ingest_s": Row(f"`lineitem` ingest, best of {args.repeat} (s)", "time"),
        "ingest_rps": Row("`lineitem` ingest (rows/s)", "rate", fmt="{:,.0f}"),
        "load_s": Row(f"`lineitem` Parquet file -> new table, best of {args.repeat} (s)", "time"),
        "load_rps": Row("`lineitem` Parquet file -> new table (rows/s)", "rate", fmt="{:,.0f}"),
        "export_s": Row(f"`lineitem` -> Parquet file, best of {args.repeat} (s)", "time"),
        "export_rps": Row("`lineitem` -> Parquet file (rows/s)", "rate", fmt="{:,.0f}"),
        "qps": Row(f"{n} concurrent connections, TPC-H Q1+Q6 (queries/s)", "rate",
                   fmt="{:.2f}"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--repeat", type=int, default=3, help="repeats for best-of timings (default 3)")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--latency-iters", type=int, default=1000, help="SELECT 1 samples (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="SELECT 1 warm-up calls (default 50)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent connections (default 8)")
    p.add_argument("--duration", type=float, default=15.0,
                   help="seconds per concurrency run (default 15)")
    p.add_argument("--ingest-batch-rows", type=int, default=65536,
                   help="rows per record batch of the ingested table (0: as fetched; "
                        "default 65536, keeps gRPC messages under 16 MiB)")
    p.add_argument("--pool-size", type=int, help="passed to the server as --pool-size")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra argument for the server (repeatable)")
    p.add_argument("--startup-timeout", type=float, default=60.0,
                   help="seconds to wait for the server port (default 60)")
    p.add_argument("--no-server", action="store_true", help="only run the in-process half")
    return p.parse_args(argv)


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the server."""
    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def start_server_side(b: Bench, stack: contextlib.ExitStack, db_path: Path,
                      log_path: Path, server_args: list[str]) -> None:
    """Start the server and open the main ADBC cursor, registering teardown.

    On failure every server cell will show the error instead of a number.
    """
    try:
        b.uri = stack.enter_context(
            flight_server(db_path, log_path, server_args, b.args.startup_timeout))
        conn = adbc_connect(b.uri)
        stack.callback(close_quietly, conn)
        b.cur = conn.cursor()
        stack.callback(close_quietly, b.cur)
    except Exception as exc:  # noqa: BLE001 - startup/connect failure
        log(str(exc))
        b.uri = None
        b.server_down = b.res.error_ref(short_error(exc).split(" log tail:")[0].rstrip("; "))


def keep_server_log(b: Bench, log_path: Path) -> None:
    """Copy the server log to ``benchmarks/.data``; surface it if anything failed."""
    if not log_path.exists():
        return
    kept = DATA_DIR / "server-last.log"
    shutil.copyfile(log_path, kept)
    if any(r.server_err for r in b.rows.values()):
        log(f"server log tail ({kept.relative_to(REPO_ROOT)}):\n{tail(log_path, 15)}")
        last = tail(log_path, 1).strip()
        if last:
            b.res.notes.append(f"server log (last line): `{last[:300]}`")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    res = Results()
    rows = make_rows(args)
    res.rows.extend(rows.values())
    load_at_start = os.getloadavg()[0]

    cached = ensure_tpch_file(args.sf)
    parquet = clients_bench.ensure_lineitem_parquet(
        cached, DATA_DIR / f"lineitem-sf{sf_label(args.sf)}.parquet", log)
    q = tpch_queries((1, 6))
    global CPU
    CPU = CpuAccount()
    server_args = [*args.server_arg]
    if args.pool_size is not None:
        server_args += ["--pool-size", str(args.pool_size)]

    with tempfile.TemporaryDirectory(prefix="flight-bench-") as tmp:
        tmpdir = Path(tmp)
        local_db, server_db = tmpdir / "local.duckdb", tmpdir / "server.duckdb"
        log_path = tmpdir / "server.log"
        shutil.copyfile(cached, local_db)
        con = duckdb.connect(str(local_db))
        b = Bench(args, [q[1], q[6]], res, rows, con, tmpdir=tmpdir, parquet=parquet)
        try:
            with contextlib.ExitStack() as stack:
                if args.no_server:
                    b.server_down = "skipped (--no-server)"
                else:
                    shutil.copyfile(cached, server_db)
                    start_server_side(b, stack, server_db, log_path, server_args)
                run_metrics(b)
        finally:
            con.close()
            keep_server_log(b, log_path)

    header = (f"## Flight SQL server vs in-process DuckDB — TPC-H sf={sf_label(args.sf)}\n\n"
              f"{machine_info()}\n\n"
              f"Background load: 1-min load average {load_at_start:.2f} at start; "
              f"during the run {CPU.summary()}\n\n")
    report = header + res.to_markdown() + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
