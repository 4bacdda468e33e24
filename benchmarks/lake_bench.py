"""Scaling out, measured: 1, 2, 3 servers over one DuckLake side by side with the single-file server.

Workloads (through ADBC, from this process): ``--concurrency`` clients alternating TPC-H Q1 and Q6 for
``--duration`` seconds (clients spread round-robin over the nodes; queries/s), and ``SELECT * FROM
lineitem`` pulled whole (median seconds; over the lake with 2+ nodes it fans out, one endpoint per node).

The lake's catalog is a private PostgreSQL (tests/postgres_cluster.py), its data a local folder (an object
store would add its own latency; moto's S3 server is too slow to measure anything but itself). Every server
runs on this machine, so N nodes share its cores: read the table as "what N processes on these cores give",
not as N machines.

    python benchmarks/lake_bench.py --sf 0.2 --nodes 1,2,3
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
sys.path.append(str(HERE.parent / "tests"))  # postgres_cluster; after benchmarks/, whose module names win

import processes  # noqa: E402
import targets  # noqa: E402
import tpch  # noqa: E402
import workloads  # noqa: E402
from postgres_cluster import PostgresCluster  # noqa: E402

from flight_server.engine import extensions  # noqa: E402

SECRET = "bench-cluster-secret"


def log(msg: str) -> None:
    print(f"[lake-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_lake(catalog: str, data: Path, source: Path) -> int:
    """Copies TPC-H lineitem from the generated file into a new lake; its row count."""
    con = duckdb.connect()
    try:
        extensions.load(con, ["ducklake", "postgres_scanner"])
        con.execute(f"ATTACH 'ducklake:{catalog}' AS lake (DATA_PATH '{data}/')")
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        con.execute("CREATE TABLE lake.lineitem AS SELECT * FROM src.lineitem")
        return con.execute("SELECT count(*) FROM lake.lineitem").fetchone()[0]
    finally:
        con.close()


@contextlib.contextmanager
def servers(count: int, workdir: Path, flags: list[str]):
    """`count` servers (auth off, loopback); yields their URIs."""
    ports = [processes.free_port() for _ in range(count)]
    nodes = ",".join(f"grpc://127.0.0.1:{port}" for port in ports)
    with contextlib.ExitStack() as stack:
        for index, port in enumerate(ports):
            folder = workdir / f"node{index}"
            folder.mkdir(parents=True, exist_ok=True)
            args = ["-m", "flight_server", "--port", str(port), "--http-port", "-1", "--auth", "none",
                    "--data-dir", str(folder), "--log-level", "warning", *flags]
            if count > 1 and "--lake-catalog" in flags:
                args += ["--cluster-nodes", nodes]
            stack.enter_context(processes.serving(args, port, folder / "server.log", 60, log))
        yield [f"grpc://127.0.0.1:{port}" for port in ports]


def round_robin(uris: list[str]):
    factories = itertools.cycle([targets.adbc_flightsql(uri) for uri in uris])
    return lambda: next(factories)()


def measure(uris: list[str], ctx: workloads.Context) -> tuple[float, float]:
    connect = round_robin(uris)
    qps = workloads.tpch_q1_q6(connect, ctx)
    pull = workloads.pull_lineitem(connect, ctx)
    return qps, pull


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", type=float, default=0.2, help="TPC-H scale factor (default 0.2)")
    parser.add_argument("--nodes", default="1,2,3", help="node counts over the lake (default 1,2,3)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of Q1/Q6 per system")
    parser.add_argument("--repeat", type=int, default=3, help="lineitem pulls per system (median)")
    args = parser.parse_args()

    source = tpch.ensure_tpch_file(args.sf, log)
    rows = duckdb.connect(str(source), read_only=True).execute("SELECT count(*) FROM lineitem").fetchone()[0]
    ctx = workloads.Context(latency_iters=0, warmup=1, repeat=args.repeat, concurrency=args.concurrency,
                            duration=args.duration, queries=list(tpch.tpch_queries((1, 6)).values()),
                            lineitem=types.SimpleNamespace(num_rows=rows))
    workdir = Path(tempfile.mkdtemp(prefix="lake-bench-"))
    results: list[tuple[str, int, float, float]] = []
    postgres = PostgresCluster.start(processes.free_port())
    try:
        database = workdir / "single.duckdb"
        shutil.copy(source, database)
        with servers(1, workdir / "single", ["--database", str(database)]) as uris:
            results.append(("single file", 1, *measure(uris, ctx)))
        catalog = postgres.create_database()
        data = workdir / "lake-data"
        t0 = time.perf_counter()
        loaded = load_lake(catalog, data, source)
        log(f"lake loaded: {loaded} rows in {time.perf_counter() - t0:.1f}s")
        for count in (int(n) for n in args.nodes.split(",")):
            flags = ["--lake-catalog", catalog, "--lake-data-path", str(data), "--cluster-secret", SECRET]
            with servers(count, workdir / f"lake{count}", flags) as uris:
                results.append(("DuckLake (PostgreSQL + folder)", count, *measure(uris, ctx)))
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"TPC-H sf={args.sf:g} (lineitem {rows:,} rows), {args.concurrency} ADBC clients, "
          f"{args.duration:g}s of Q1/Q6 each; all processes on this machine\n")
    print("| served from | nodes | Q1/Q6 queries/s | lineitem pull, s | lineitem rows/s |")
    print("|---|---|---|---|---|")
    for name, count, qps, pull in results:
        print(f"| {name} | {count} | {qps:.2f} | {pull:.2f} | {rows / pull:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
