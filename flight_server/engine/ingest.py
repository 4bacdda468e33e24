"""Bulk ingest: streams client record batches into a table through DuckDB's Arrow scan, in one transaction.

Every batch is validated before DuckDB sees it (see incoming.py), and the transaction commits only when the
client's stream ended cleanly: a cancelled call or a vanished client rolls everything back."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum

import duckdb
import pyarrow as pa

from .catalog import quote
from .errors import AlreadyExistsError, NotFoundError, QueryError, classify
from .incoming import IncomingBatches


class IfExists(Enum):
    FAIL = "fail"
    APPEND = "append"
    REPLACE = "replace"


class IfMissing(Enum):
    CREATE = "create"
    FAIL = "fail"


@dataclass(frozen=True)
class IngestTarget:
    """Where the rows go and what to do when the table is (or is not) there."""

    table: str
    schema: str | None = None
    catalog: str | None = None
    temporary: bool = False
    if_exists: IfExists = IfExists.FAIL
    if_missing: IfMissing = IfMissing.CREATE


def ingest(conn: duckdb.DuckDBPyConnection, batches: IncomingBatches, target: IngestTarget,
           in_transaction: bool) -> int:
    """Loads every batch into the target; returns rows written. Nothing changes on failure, nor when the
    stream did not end cleanly (inside the session's own transaction the failed statement aborts it)."""
    if not target.table:
        raise QueryError("ingest needs a table name")
    if target.temporary and target.catalog not in (None, "", "temp"):
        raise QueryError("a temporary table lives in the 'temp' catalog; do not name another catalog")
    catalog = "temp" if target.temporary else target.catalog
    schema = target.schema or (None if catalog is None else "main")
    name = ".".join(quote(part) for part in (catalog, schema, target.table) if part)
    view = f"__flight_ingest_{secrets.token_hex(6)}"
    own_transaction = not in_transaction
    try:
        if own_transaction:
            conn.execute("BEGIN TRANSACTION")
        exists = _exists(conn, catalog, schema, target.table)
        if exists and target.if_exists is IfExists.FAIL:
            raise AlreadyExistsError(f"table {name} already exists")
        if not exists and target.if_missing is IfMissing.FAIL:
            raise NotFoundError(f"table {name} does not exist")
        conn.register(view, _CStream(batches.reader()))
        if exists and target.if_exists is IfExists.APPEND:
            sql = f"INSERT INTO {name} BY NAME SELECT * FROM {view}"
        else:
            create = "CREATE OR REPLACE" if exists else "CREATE"
            temp = " TEMPORARY" if target.temporary else ""
            sql = f"{create}{temp} TABLE {name} AS SELECT * FROM {view}"
        conn.execute(sql)
        row = conn.fetchone()
        count = int(row[0]) if row else 0
        batches.check_complete()
        if own_transaction:
            conn.execute("COMMIT")
        return count
    except Exception as exc:
        if own_transaction:
            try:
                conn.execute("ROLLBACK")
            except Exception:
                pass
        # The validation error says which batch and column; DuckDB's wrapping of it says less.
        raise (batches.error or classify(exc)) from None
    finally:
        batches.close()
        try:
            conn.unregister(view)
        except Exception:
            pass


class _CStream:
    """Offers only the Arrow C stream interface, so DuckDB scans the batches directly instead of through
    a pyarrow dataset scanner (about 3x faster for a one-pass stream)."""

    def __init__(self, reader: pa.RecordBatchReader):
        self._reader = reader

    def __arrow_c_stream__(self, requested_schema=None):
        return self._reader.__arrow_c_stream__(requested_schema)


def _exists(conn: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, table: str) -> bool:
    sql = "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"
    params: list[object] = [table]
    if catalog:
        sql += " AND database_name = ?"
        params.append(catalog)
    else:
        sql += " AND database_name = current_database()"
    if schema:
        sql += " AND schema_name = ?"
        params.append(schema)
    else:
        sql += " AND schema_name = current_schema()"
    return conn.execute(sql, params).fetchone()[0] > 0
