"""Helpers for the file load / export rows of ``benchmarks/run.py``.

The server side of these rows runs the client toolkit exactly as a user
would: ``python -m clients --uri URI load FILE ...`` and
``python -m clients --uri URI query SQL --output FILE`` as subprocesses, timed
end to end (interpreter start, imports, connect, transfer, file I/O, exit).
The in-process side is the one-statement DuckDB equivalent.

Nothing here touches the results table; ``run.py`` does the bookkeeping.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq


def parquet_rows(path: Path) -> int:
    """Row count from a Parquet file's footer (raises if the file is unreadable)."""
    return pq.ParquetFile(path).metadata.num_rows


def parquet_summary(path: Path) -> str:
    """'N MB, K row groups, <codec>' for a note under the table."""
    meta = pq.ParquetFile(path).metadata
    codec = meta.row_group(0).column(0).compression if meta.num_row_groups else "?"
    return (f"{path.stat().st_size / 1e6:,.0f} MB, {meta.num_row_groups} row groups, "
            f"{codec.lower()}, written by `{meta.created_by}`")


def ensure_lineitem_parquet(cached_db: Path, out: Path, log) -> Path:
    """Write (once) ``lineitem`` of ``cached_db`` to ``out``; return ``out``.

    Written under a temporary name and renamed, so an interrupted run never
    leaves a truncated cache file.  The cached database is opened read-only.
    """
    if out.exists():
        log(f"using cached {out.name}")
        return out
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    log(f"writing lineitem to {out.name} ...")
    t0 = time.perf_counter()
    con = duckdb.connect(str(cached_db), read_only=True)
    try:
        con.execute(f"COPY lineitem TO '{sql_path(tmp)}' (FORMAT PARQUET)")
    finally:
        con.close()
    tmp.rename(out)
    log(f"wrote {out.name} ({out.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f}s")
    return out


def sql_path(path: Path) -> str:
    """``path`` as the body of a single-quoted SQL string literal."""
    return str(path).replace("'", "''")


def local_load(db_path: Path, parquet: Path) -> tuple[float, float, int]:
    """``CREATE TABLE x AS SELECT * FROM read_parquet(...)`` on a fresh file database.

    Returns (seconds for the CREATE TABLE statement alone, seconds for
    connect + statement + close, rows in ``x``).  Any previous file at
    ``db_path`` is removed first so every run starts from an empty database.
    """
    for stale in (db_path, Path(str(db_path) + ".wal")):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect(str(db_path))
    try:
        t1 = time.perf_counter()
        con.execute(f"CREATE TABLE x AS SELECT * FROM read_parquet('{sql_path(parquet)}')")
        t_stmt = time.perf_counter() - t1
        n = con.execute("SELECT count(*) FROM x").fetchone()[0]
    finally:
        con.close()
    return t_stmt, time.perf_counter() - t0, n


def local_export(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """``COPY lineitem TO out (FORMAT PARQUET)`` on the benchmark's connection."""
    con.execute(f"COPY lineitem TO '{sql_path(out)}' (FORMAT PARQUET)")


# CPU seconds used by all CLI subprocesses so far (reaped children), so that
# run.py's background-load accounting does not count them as foreign work.
CLI_CPU = 0.0


class CliError(RuntimeError):
    """The ``python -m clients`` subprocess failed."""


def cli_env(repo_root: Path) -> dict[str, str]:
    """Environment for the CLI subprocess: the repository importable, no tty tricks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    return env


def run_cli(uri: str, args: list[str], repo_root: Path, timeout: float = 900.0) -> str:
    """Run ``python -m clients --uri URI ARGS...``; return its stdout.

    Raises :class:`CliError` with the last stderr line on a non-zero exit.
    The caller times the call, so the measured span is the whole subprocess.
    """
    global CLI_CPU
    cmd = [sys.executable, "-m", "clients", "--uri", uri, *args]
    before = os.times()
    try:
        proc = subprocess.run(cmd, cwd=repo_root, env=cli_env(repo_root), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    finally:
        after = os.times()
        CLI_CPU += (after.children_user - before.children_user
                    + after.children_system - before.children_system)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise CliError(f"`python -m clients {args[0]}` exited {proc.returncode}: {last}")
    return proc.stdout


_LOADED = re.compile(r"loaded ([\d,]+) rows .* in ([\d.]+) s")
_WROTE = re.compile(r"wrote ([\d,]+) rows .* in ([\d.]+) s")


def parse_cli_summary(stdout: str, kind: str) -> tuple[int, float] | None:
    """(rows, seconds) from the CLI's own summary line ('loaded ...' / 'wrote ...')."""
    m = (_LOADED if kind == "load" else _WROTE).search(stdout)
    if not m:
        return None
    return int(m.group(1).replace(",", "")), float(m.group(2))
