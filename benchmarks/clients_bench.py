"""The file load / export rows of ``benchmarks/run.py --cli-rows``.

The server side of these rows runs the client toolkit exactly as a user
would: ``python -m clients --uri URI load FILE ...`` and
``python -m clients --uri URI query SQL --output FILE`` as subprocesses, timed
end to end (interpreter start, imports, connect, transfer, file I/O, exit).
The in-process side is the one-statement DuckDB equivalent.  They make a
second, small table (in-process vs this server), printed under the main one.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq


def parquet_rows(path: Path) -> int:
    """Row count from a Parquet file's footer (raises if the file is unreadable)."""
    return pq.ParquetFile(path).metadata.num_rows


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


def run_cli(uri: str, args: list[str], repo_root: Path, timeout: float = 900.0,
            user: str | None = None, password: str | None = None) -> str:
    """Run ``python -m clients --uri URI ARGS...``; return its stdout.

    With ``user``, the CLI authenticates (the password goes in FLIGHT_PASSWORD).

    Raises :class:`CliError` with the last stderr line on a non-zero exit.
    The caller times the call, so the measured span is the whole subprocess.
    """
    global CLI_CPU
    cmd = [sys.executable, "-m", "clients", "--uri", uri, *(["--user", user] if user else []),
           *args]
    env = cli_env(repo_root)
    if password is not None:
        env["FLIGHT_PASSWORD"] = password
    before = os.times()
    try:
        proc = subprocess.run(cmd, cwd=repo_root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    finally:
        after = os.times()
        CLI_CPU += (after.children_user - before.children_user
                    + after.children_system - before.children_system)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise CliError(f"`python -m clients {args[0]}` exited {proc.returncode}: {last}")
    return proc.stdout


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")[:200]


class CliRows:
    """Parquet load and export: in-process DuckDB vs the ``clients`` CLI on this server.

    ``in_process(con=...)`` runs while the in-process system is measured,
    ``server(uri, user, password)`` while this server is up; ``to_markdown()``
    renders the second table.  Times are medians of ``--repeat`` runs.
    """

    def __init__(self, args, cached_db: Path, log):
        from tpch import DATA_DIR, sf_label

        self._args, self._log = args, log
        self._repo = Path(__file__).resolve().parent.parent
        self._parquet = ensure_lineitem_parquet(
            cached_db, DATA_DIR / f"lineitem-sf{sf_label(args.sf)}.parquet", log)
        self._rows = parquet_rows(self._parquet)
        self._tmp = Path(cached_db).parent
        self.local_s: dict[str, float] = {}
        self.server_s: dict[str, float | str] = {}
        self.notes: list[str] = []

    def _median(self, fn) -> float:
        times = []
        for _ in range(self._args.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def in_process(self, con) -> None:
        self._log("CLI rows: in-process Parquet load and export")
        db_path = self._tmp / "cli-load-local.duckdb"
        out = self._tmp / "cli-export-local.parquet"
        stmt_times = []

        def load() -> None:
            t_stmt, _, n = local_load(db_path, self._parquet)
            if n != self._rows:
                raise RuntimeError(f"loaded {n} rows, expected {self._rows}")
            stmt_times.append(t_stmt)

        try:
            self._median(load)
            self.local_s["load"] = statistics.median(stmt_times)
            self.local_s["export"] = self._median(lambda: local_export(con, out))
        except Exception as exc:  # noqa: BLE001 - a note, not a crash
            self.notes.append(f"in-process CLI rows failed: {_one_line(exc)}")
        finally:
            for f in (db_path, Path(str(db_path) + ".wal"), out):
                f.unlink(missing_ok=True)

    def server(self, uri: str, user: str, password: str) -> None:
        self._log("CLI rows: python -m clients load / query --output against this server")
        out = self._tmp / "cli-export-server.parquet"

        def cli(args: list[str]) -> str:
            return run_cli(uri, args, self._repo, user=user, password=password)

        try:
            fixed = self._median(lambda: cli(["query", "select 1"]))
            self.notes.append(f"CLI fixed cost (`python -m clients query \"select 1\"`): "
                              f"{fixed:.2f}s, included in both server times")
            self.server_s["load"] = self._median(lambda: cli(
                ["load", str(self._parquet), "--table", "lineitem_loaded", "--mode", "replace"]))
            self.server_s["export"] = self._median(lambda: cli(
                ["query", "SELECT * FROM lineitem", "--output", str(out)]))
            n = parquet_rows(out)
            if n != self._rows:
                raise RuntimeError(f"exported {n} rows, expected {self._rows}")
        except Exception as exc:  # noqa: BLE001 - shown in the table
            for k in ("load", "export"):
                self.server_s.setdefault(k, f"error: {_one_line(exc)}")
        finally:
            out.unlink(missing_ok=True)

    def to_markdown(self) -> str:
        lines = [f"CLI rows (`lineitem`, {self._rows:,} rows; median of {self._args.repeat}):", "",
                 "| workload | in-process DuckDB (s) | this server via `python -m clients` (s) "
                 "| ratio |", "|---|---:|---:|---:|"]
        labels = {"load": "Parquet file -> new table", "export": "`lineitem` -> Parquet file"}
        for k, label in labels.items():
            a, b = self.local_s.get(k), self.server_s.get(k)
            ratio = f"{b / a:.2f}x" if isinstance(a, float) and isinstance(b, float) else "n/a"
            cell = f"{b:.3f}" if isinstance(b, float) else (b or "—")
            lines.append(f"| {label} | {a:.3f} | {cell} | {ratio} |" if a else
                         f"| {label} | — | {cell} | {ratio} |")
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)
