#!/usr/bin/env python
"""Benchmark this Flight SQL server against DuckDB baselines, side by side.

One command::

    python benchmarks/run.py [--sf 1] [--output results.md]

One run measures, one system after another (never two at once), on copies
of the same TPC-H database:

* in-process DuckDB (the reference every ratio is against),
* a bare pyarrow.flight DoGet server over DuckDB (``baselines/bare_flight.py``),
* a minimal Flight SQL server over DuckDB (``baselines/minimal_flightsql.py``),
  through ADBC and through a lean pyarrow.flight client,
* DuckDB's Quack server (``baselines/quack_server.py``) through adbc-driver-quack,
* this server with its defaults (auth on with one user, info logs, metrics
  endpoint), through ADBC and through the lean pyarrow.flight client,

running the workloads of ``workloads.py`` (SELECT 1 latency, connect +
SELECT 1 + close, pulling and ingesting ``lineitem``, 8 connections of TPC-H
Q1/Q6, 8 threads of single-row INSERTs with and without a prepared
statement), and prints one markdown table (``report.py``) with the targets
the server aims for.  Every server listens on 127.0.0.1 on a free port and is
terminated when its part ends, errors and Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients_bench  # noqa: E402
import machine  # noqa: E402
import processes  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402
import tpch  # noqa: E402
import workloads  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
BASELINES = BENCH_DIR / "baselines"
BENCH_USER = "bench"


def log(msg: str) -> None:
    """Progress output goes to stderr so stdout carries only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class System:
    """One thing to benchmark: how to start it, and its table columns.

    ``command(port, db, workdir)`` returns the server's Python arguments (None:
    in-process).  ``columns`` maps a column key to ``(port) -> connect``.
    """

    key: str
    name: str
    command: Callable[[int, Path, Path], list[str]] | None
    columns: dict[str, Callable[[int], Callable[[], object]]]


def make_systems(args, password: str, token: str) -> list[System]:
    def uri(port: int) -> str:
        return f"grpc://127.0.0.1:{port}"

    def this_server(port: int, db: Path, workdir: Path) -> list[str]:
        users = workdir / "users.toml"
        users.write_text(f'[users.{BENCH_USER}]\npassword_hash = "{hash_password(password)}"\n'
                         'role = "admin"\n')
        return ["-m", "flight_server", "--host", "127.0.0.1", "--port", str(port),
                "--database", str(db), "--data-dir", str(workdir / "server-data"),
                "--users-file", str(users), "--http-port", str(processes.free_port()),
                *args.server_arg]

    def baseline(script: str, *extra: str):
        return lambda port, db, _: [str(BASELINES / script), "--port", str(port),
                                    "--database", str(db), *extra]

    return [
        System("inproc", "in-process DuckDB", None, {}),
        System("bare", "bare Flight DoGet server", baseline("bare_flight.py"),
               {"bare": lambda p: lambda: targets.BareFlight(uri(p))}),
        System("minimal", "minimal Flight SQL server", baseline("minimal_flightsql.py"),
               {"min_adbc": lambda p: targets.adbc_flightsql(uri(p)),
                "min_lean": lambda p: lambda: targets.LeanFlightSql(uri(p))}),
        System("quack", "DuckDB quack server", baseline("quack_server.py", "--token", token),
               {"quack": lambda p: targets.adbc_quack(f"quack://127.0.0.1:{p}", token)}),
        System("this", "this server (defaults: auth, info logs, metrics)", this_server,
               {"this_adbc": lambda p: targets.adbc_flightsql(uri(p), BENCH_USER, password),
                "this_lean": lambda p: lambda: targets.LeanFlightSql(uri(p), BENCH_USER,
                                                                     password)}),
    ]


def hash_password(password: str) -> str:
    from flight_server.auth.passwords import hash_password as scrypt_hash

    return scrypt_hash(password)


def measure(res: report.Results, ctx: workloads.Context,
            columns: dict[str, Callable[[], object]]) -> None:
    """Run every workload on every column of one system, workload by workload."""
    for w in res.workloads:
        for col, connect in columns.items():
            log(f"{w.key}: {col}")
            try:
                value = float(w.run(connect, ctx))
            except targets.Unsupported as exc:
                res.cells[(w.key, col)] = f"n/a: {exc}"
                continue
            except Exception as exc:  # noqa: BLE001 - reported in the table
                msg = report.short_error(exc)
                log(f"{w.key} on {col} failed: {msg}")
                res.cells[(w.key, col)] = res.error_ref(f"{col}, {w.key}: {msg}")
                continue
            res.cells[(w.key, col)] = value
            log(f"{w.key}: {col} = {w.fmt.format(value)} {w.unit}")


def fresh_copy(cached: Path, dest: Path) -> Path:
    """Copy the cached TPC-H file to ``dest`` and add the small-writes table."""
    shutil.copyfile(cached, dest)
    con = duckdb.connect(str(dest))
    try:
        con.execute(workloads.SMALL_WRITES_DDL)
    finally:
        con.close()
    return dest


def run_system(system: System, res: report.Results, ctx: workloads.Context, cached: Path,
               tmpdir: Path, args, cpu: machine.CpuAccount, extra=None) -> None:
    """Measure one system on its own copy of the data; stop it afterwards.

    A note records how busy the rest of the machine was during this system's part.
    """
    own_cpu = machine.CpuAccount()
    try:
        _run_system(system, res, ctx, cached, tmpdir, args,
                    lambda pid: (cpu.record(pid), own_cpu.record(pid)), extra)
    finally:
        res.notes.append(f"during {system.name}: {own_cpu.summary()}")


def _run_system(system: System, res: report.Results, ctx: workloads.Context, cached: Path,
                tmpdir: Path, args, on_stop: Callable[[int], None], extra) -> None:
    workdir = tmpdir / system.key
    workdir.mkdir()
    db = fresh_copy(cached, workdir / "tpch.duckdb")
    try:
        if system.command is None:
            con = duckdb.connect(str(db))
            try:
                con.execute("SET enable_progress_bar = false")
                measure(res, ctx, {"inproc": lambda: targets.InProcess(con)})
                if extra:
                    extra(con=con)
            finally:
                con.close()
            return
        port = processes.free_port()
        log_path = workdir / "server.log"
        try:
            with processes.serving(system.command(port, db, workdir), port, log_path,
                                   args.startup_timeout, log, on_stop=on_stop):
                measure(res, ctx, {k: make(port) for k, make in system.columns.items()})
                if extra:
                    extra(port=port)
        except Exception as exc:  # noqa: BLE001 - start-up failure: every cell says so
            ref = res.error_ref(f"{system.name} did not start: "
                                + report.short_error(exc).split(" log tail:")[0])
            for w in res.workloads:
                for col in system.columns:
                    res.cells.setdefault((w.key, col), ref)
        finally:
            if log_path.exists():
                shutil.copyfile(log_path, tpch.DATA_DIR / f"server-{system.key}-last.log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def load_lineitem(cached: Path, batch_rows: int) -> pa.Table:
    """``lineitem`` as Arrow, re-sliced (zero-copy) into ``batch_rows``-row batches.

    DuckDB hands back ~1M-row batches (~175 MB), above the ADBC Flight SQL
    driver's default 16 MiB gRPC message limit; the driver does not split
    batches.  Every column ingests this same table.
    """
    con = duckdb.connect(str(cached), read_only=True)
    try:
        tbl = con.execute("SELECT * FROM lineitem").to_arrow_table()
    finally:
        con.close()
    return pa.Table.from_batches(tbl.to_batches(max_chunksize=batch_rows), schema=tbl.schema)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    keys = "inproc,bare,minimal,quack,this"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed runs of pull and ingest, after one warm-up (median; default 3)")
    p.add_argument("--latency-iters", type=int, default=1000,
                   help="SELECT 1 samples (default 1000; connect+SELECT 1+close takes a tenth)")
    p.add_argument("--warmup", type=int, default=50, help="SELECT 1 warm-up calls (default 50)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="connections/threads of the Q1/Q6 and small-write rows (default 8)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds per concurrent run (default 10)")
    p.add_argument("--ingest-batch-rows", type=int, default=65536,
                   help="rows per record batch of the ingested table (default 65536)")
    p.add_argument("--systems", default=keys,
                   help=f"comma-separated subset of {keys} (default: all)")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra argument for this server (repeatable)")
    p.add_argument("--cli-rows", action="store_true",
                   help="also time Parquet load/export through the `clients` CLI against "
                        "this server, next to in-process DuckDB (a second table)")
    p.add_argument("--startup-timeout", type=float, default=60.0,
                   help="seconds to wait for a server's port (default 60)")
    args = p.parse_args(argv)
    unknown = set(args.systems.split(",")) - set(keys.split(","))
    if unknown:
        p.error(f"--systems: unknown {', '.join(sorted(unknown))}")
    return args


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers."""
    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    load_at_start = os.getloadavg()[0]
    cached = tpch.ensure_tpch_file(args.sf, log)
    q = tpch.tpch_queries((1, 6))
    log("loading lineitem as Arrow (ingest source)")
    lineitem = load_lineitem(cached, args.ingest_batch_rows)
    ctx = workloads.Context(args.latency_iters, args.warmup, args.repeat, args.concurrency,
                            args.duration, [q[1], q[6]], lineitem)
    res = report.Results(workloads.workloads(args.concurrency))
    res.notes.append(f"`lineitem`: {lineitem.num_rows:,} rows, "
                     f"{lineitem.nbytes / 1e6:,.0f} MB as Arrow")
    cpu = machine.CpuAccount()
    cli = clients_bench.CliRows(args, cached, log) if args.cli_rows else None
    password, token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    chosen = args.systems.split(",")
    with tempfile.TemporaryDirectory(prefix="flight-bench-") as tmp:
        for system in make_systems(args, password, token):
            if system.key not in chosen:
                continue
            log(f"=== {system.name} ===")
            extra = None
            if cli is not None and system.key in ("inproc", "this"):
                extra = cli.in_process if system.key == "inproc" else (
                    lambda port: cli.server(f"grpc://127.0.0.1:{port}", BENCH_USER, password))
            run_system(system, res, ctx, cached, Path(tmp), args, cpu, extra)
    if cli is not None:
        cpu.add(clients_bench.CLI_CPU)
    header = (f"## This server vs DuckDB baselines — TPC-H sf={tpch.sf_label(args.sf)}, "
              f"{time.strftime('%Y-%m-%d', time.gmtime())}\n\n{machine.machine_info()}; "
              f"{machine.code_version(str(processes.REPO_ROOT))}\n\n"
              f"Background load: 1-min load average {load_at_start:.2f} at start; "
              f"during the run {cpu.summary()}\n\n")
    out = header + res.to_markdown() + "\n"
    if cli is not None:
        out += "\n" + cli.to_markdown() + "\n"
    print(out)
    if args.output:
        args.output.write_text(out)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
