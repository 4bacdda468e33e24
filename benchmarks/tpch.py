"""TPC-H data for the benchmark, generated once per scale factor and cached.

The ``tpch`` extension comes from the ``duckdb-extension-tpch`` pip package
and is loaded with ``LOAD`` (never ``INSTALL``; no network needed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import duckdb

DATA_DIR = Path(__file__).resolve().parent / ".data"


def tpch_extension_path() -> str:
    """Path of the TPC-H extension binary shipped in ``duckdb_extension_tpch``."""
    import duckdb_extension_tpch

    path = os.path.join(os.path.dirname(duckdb_extension_tpch.__file__), "extensions",
                        "v" + duckdb.__version__, "tpch.duckdb_extension")
    if not os.path.exists(path):
        raise FileNotFoundError(f"TPC-H extension not found at {path}")
    return path


def load_tpch(con: duckdb.DuckDBPyConnection) -> None:
    """Load the packaged TPC-H extension into ``con`` (no INSTALL, no network)."""
    con.execute(f"LOAD '{tpch_extension_path()}'")


def sf_label(sf: float) -> str:
    """Scale factor as used in file names: 1 -> '1', 0.1 -> '0.1'."""
    return f"{sf:g}"


def ensure_tpch_file(sf: float, log: Callable[[str], None]) -> Path:
    """Create (once) and return the cached TPC-H DuckDB file for ``sf``.

    Written to a temporary name and renamed at the end, so an interrupted
    generation never leaves a half-written cache file behind.
    """
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"tpch-sf{sf_label(sf)}.duckdb"
    if path.exists():
        log(f"using cached {path.name}")
        return path
    tmp = path.with_suffix(".duckdb.tmp")
    for stale in (tmp, Path(str(tmp) + ".wal")):
        stale.unlink(missing_ok=True)
    log(f"generating TPC-H sf={sf_label(sf)} into {path.name} ...")
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
