#!/usr/bin/env python
"""Where a server's time per call goes: the profile behind the per-call rows of run.py's table.

    python benchmarks/profile_calls.py                      # SELECT 1, lean client, this server and minimal
    python benchmarks/profile_calls.py --workload connect --client adbc --seconds 10

For each system (this server with its benchmark defaults, the minimal Flight SQL server), one client runs
the workload in a loop while py-spy samples the server with ``--gil`` (only the thread holding Python's
GIL: the time Python code and the C++ code that holds the GIL cost per call). Prints, per system: calls/s,
p50, server CPU per call (all threads, from the process's CPU time), GIL-held time per call, and the
functions with the most GIL-held time per call (inclusive). py-spy comes with the ``dev`` extra; it needs
permission to read the server's memory (root, or ptrace allowed).
"""

from __future__ import annotations

import argparse
import collections
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import processes  # noqa: E402
import run  # noqa: E402
import tpch  # noqa: E402

WORKLOADS = ("select1", "connect", "insert")


def _loop(connect, workload: str, seconds: float) -> list[float]:
    """Latencies of the calls made in `seconds` (connect: a whole connect + SELECT 1 + close)."""
    latencies: list[float] = []
    conn = None if workload == "connect" else connect()
    if conn is not None:
        conn.rows("SELECT 1")
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        started = time.perf_counter()
        if workload == "select1":
            conn.rows("SELECT 1")
        elif workload == "insert":
            conn.update(f"INSERT INTO small_writes VALUES (0, {i})")
        else:
            one = connect()
            one.rows("SELECT 1")
            one.close()
        latencies.append(time.perf_counter() - started)
        i += 1
    if conn is not None:
        conn.close()
    return latencies


def _frames(raw: Path, calls: int, rate: int, top: int) -> tuple[float, list[tuple[str, float]]]:
    """(GIL-held ms per call, [(function, inclusive ms per call)]) from py-spy's raw output."""
    total, inclusive = 0, collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for name in {frame.split(" (")[0] for frame in stack.split(";")}:
            inclusive[name or "(C++ holding the GIL, no Python frame)"] += n
    per_call = 1000.0 / rate / max(calls, 1)
    return total * per_call, [(name, n * per_call) for name, n in inclusive.most_common(top)]


def profile(system: run.System, column: str, args, db: Path, workdir: Path) -> None:
    port = processes.free_port()
    connect = system.columns[column](port)
    with processes.serving(system.command(port, db, workdir), port, workdir / f"{system.key}.log", 60,
                           lambda msg: None) as proc:
        server = psutil.Process(proc.pid)
        _loop(connect, args.workload, 1.0)  # warm-up: imports, caches, first connection
        raw = workdir / f"{system.key}.spy"
        spy = subprocess.Popen(["py-spy", "record", "--gil", "--nonblocking", "-r", str(args.rate), "-f", "raw",
                                "-d", str(int(args.seconds) + 2), "-p", str(proc.pid), "-o", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        before = server.cpu_times()
        latencies = _loop(connect, args.workload, args.seconds)
        after = server.cpu_times()
        spy.wait()
    calls = len(latencies)
    cpu = (after.user + after.system - before.user - before.system) * 1000 / max(calls, 1)
    latencies.sort()
    print(f"\n## {system.name}, {column}: {args.workload}")
    print(f"{calls / args.seconds:.0f} calls/s, p50 {latencies[calls // 2] * 1000:.3f} ms, "
          f"server CPU {cpu:.3f} ms/call")
    if not raw.exists():
        print("(no py-spy profile: is py-spy installed and allowed to attach?)")
        return
    held, frames = _frames(raw, calls, args.rate, args.top)
    print(f"GIL held {held:.3f} ms/call; by function (inclusive, ms/call):")
    for name, ms in frames:
        print(f"  {ms:7.3f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=WORKLOADS, default="select1")
    parser.add_argument("--client", choices=("lean", "adbc"), default="lean")
    parser.add_argument("--systems", default="this,minimal")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sf", type=float, default=0.1, help="TPC-H scale of the database served")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        print("py-spy not found: pip install '.[dev]'", file=sys.stderr)
        return 2
    options = argparse.Namespace(server_arg=[])
    systems = {s.key: s for s in run.make_systems(options, secrets.token_urlsafe(12), secrets.token_urlsafe(12))}
    cached = tpch.ensure_tpch_file(args.sf, lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="flight-profile-") as tmp:
        for key in args.systems.split(","):
            system = systems[key]
            column = next(c for c in system.columns if c.endswith("_" + args.client))
            workdir = Path(tmp) / key
            workdir.mkdir()
            db = run.fresh_copy(cached, workdir / "tpch.duckdb")
            profile(system, column, args, db, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
