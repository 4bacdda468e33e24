"""Consistent backups with DuckDB's EXPORT DATABASE (Parquet), and restore with IMPORT DATABASE."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb

from .errors import classify


def backup(conn: duckdb.DuckDBPyConnection, backup_dir: str) -> dict[str, object]:
    """Exports every table, view and sequence of the current database into a new dated folder."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = Path(backup_dir).resolve() / f"backup-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    literal = str(target).replace("'", "''")
    try:
        conn.execute(f"EXPORT DATABASE '{literal}' (FORMAT PARQUET, COMPRESSION ZSTD)")
    except Exception as exc:
        raise classify(exc) from None
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {"path": str(target), "size_bytes": size, "format": "parquet",
            "created_at": stamp, "restore": f"IMPORT DATABASE '{literal}'"}


def restore(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    """Loads a backup folder into the (empty) database behind `conn`."""
    if not os.path.isdir(path):
        raise FileNotFoundError(path)
    literal = path.replace("'", "''")
    try:
        conn.execute(f"IMPORT DATABASE '{literal}'")
    except Exception as exc:
        raise classify(exc) from None
