"""Backups the server writes itself, outside SQL's reach, and their verified restore.

A backup is a folder `backup-<UTC time>` under the backup directory: one Parquet file (ZSTD) per table in
`tables/`, and `manifest.json` with the schema (CREATE statements), every file's size and SHA-256 and an
HMAC-SHA256 over all of it. The HMAC key is `backup.key` in the data folder, a file SQL cannot reach.

Tables are read as Arrow batches through an ordinary connection inside one read-only transaction (one
consistent snapshot) and written by pyarrow, so DuckDB's own file access is never used: the backup folder
stays outside the folders the sandbox lets SQL touch, and nobody can add to or change a backup through SQL.

Restore (server stopped) checks the manifest's HMAC and every file before reading anything, builds the
database in a new file next to the target and moves it into place only when it is complete.

Types Parquet cannot hold as they are (INTERVAL, TIME WITH TIME ZONE, BIT, UNION, TIMESTAMP_S, also inside lists
and structs) are stored as DuckDB's text form of the value and cast back on restore (a UNION value comes back
under the first member its text casts to). Not kept: comments, macro parameter
defaults, temporary objects, other attached databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import EngineError, classify

FORMAT = "duckdb-flight-server backup"
VERSION = 1
MANIFEST = "manifest.json"
KEY_FILE = "backup.key"
BATCH_ROWS = 122_880  # one DuckDB row group: bounded memory per batch, few Parquet row groups
# Column types Parquet (through pyarrow) cannot hold, or that DuckDB's Arrow export would change: kept as text.
_AS_TEXT = re.compile(r"\bINTERVAL\b|\bTIME WITH TIME ZONE\b|\bTIMETZ\b|\bBIT\b|\bUNION\(|\bTIMESTAMP_S\b")


class BackupError(Exception):
    """A backup cannot be written, or a backup folder cannot be restored (changed, incomplete, wrong key)."""


# -- the signing key ----------------------------------------------------------------------------------------

def key_path(data_dir: str) -> str:
    return os.path.join(os.path.abspath(data_dir), KEY_FILE)


def load_key(path: str, create: bool = False) -> bytes:
    """The HMAC key in `path` (hex text); with `create`, a new random key is written there (0600) first."""
    if create and not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created meanwhile by another backup
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    try:
        with open(path) as handle:
            key = bytes.fromhex(handle.read().strip())
    except FileNotFoundError:
        raise BackupError(f"backup key {path} does not exist; it is written by the first backup "
                          "(pass the key file of the server that wrote the backup)") from None
    except ValueError:
        raise BackupError(f"backup key {path} is not a hex key") from None
    if len(key) < 16:
        raise BackupError(f"backup key {path} is too short")
    return key


def _sign(key: bytes, document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a regular file (symbolic links are refused)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# -- backup -------------------------------------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_quote(schema)}.{_quote(name)}"


def _catalog(conn: duckdb.DuckDBPyConnection) -> tuple[dict, list[dict]]:
    """The current database's schema as CREATE statements, and its tables in creation order (a table after
    the tables its foreign keys name)."""
    database = conn.execute("SELECT current_database()").fetchone()[0]

    def rows(sql: str) -> list[tuple]:
        return conn.execute(sql, [database]).fetchall()

    schemas = [f"CREATE SCHEMA IF NOT EXISTS {_quote(name)};" for (name,) in rows(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? AND NOT internal ORDER BY oid")]
    types = []
    for schema, name in rows("SELECT schema_name, type_name FROM duckdb_types() "
                             "WHERE database_name = ? AND NOT internal ORDER BY type_oid"):
        definition = conn.execute(f"SELECT typeof(CAST(NULL AS {_qualified(schema, name)}))").fetchone()[0]
        types.append(f"CREATE TYPE {_qualified(schema, name)} AS {definition};")
    # DuckDB's statement names the sequence without its schema; its START is the next value to hand out.
    sequences = [f"CREATE SEQUENCE {_qualified(schema, name)}{sql[sql.rindex(' INCREMENT BY '):]}"
                 for schema, name, sql in rows("SELECT schema_name, sequence_name, sql FROM duckdb_sequences() "
                                               "WHERE database_name = ? AND NOT temporary ORDER BY sequence_oid")]
    # One row per overload; the overloads of one macro share its oid and make one statement.
    overloads: dict[int, tuple[str, list[str]]] = {}
    for oid, schema, name, kind, parameters, body in rows(
            "SELECT function_oid, schema_name, function_name, function_type, parameters, macro_definition "
            "FROM duckdb_functions() WHERE database_name = ? AND NOT internal "
            "AND function_type IN ('macro', 'table_macro') ORDER BY function_oid"):
        table = "TABLE " if kind == "table_macro" else ""
        head, bodies = overloads.setdefault(oid, (f"CREATE MACRO {_qualified(schema, name)}", []))
        bodies.append(f"({', '.join(_quote(p) for p in parameters)}) AS {table}{body}")
    macros = [f"{head}{', '.join(bodies)};" for head, bodies in overloads.values()]
    views = [sql for (sql,) in rows("SELECT sql FROM duckdb_views() "
                                    "WHERE database_name = ? AND NOT internal AND NOT temporary ORDER BY view_oid")]
    indexes = [sql for (sql,) in rows("SELECT sql FROM duckdb_indexes() "
                                      "WHERE database_name = ? AND sql IS NOT NULL ORDER BY index_oid")]
    tables = [{"schema": schema, "name": name, "oid": oid, "sql": sql} for schema, name, oid, sql in rows(
        "SELECT schema_name, table_name, table_oid, sql FROM duckdb_tables() "
        "WHERE database_name = ? AND NOT internal AND NOT temporary ORDER BY table_oid")]
    for table in tables:
        table["columns"] = [
            {"name": column, "type": data_type, "text": bool(_AS_TEXT.search(data_type))}
            for column, data_type in conn.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_oid = ? ORDER BY column_index",
                [table["oid"]]).fetchall()]
    references = rows("SELECT schema_name, table_name, referenced_table FROM duckdb_constraints() "
                      "WHERE database_name = ? AND constraint_type = 'FOREIGN KEY'")
    schema = {"schemas": schemas, "types": types, "sequences": sequences, "macros_and_views": macros + views,
              "indexes": indexes}
    return schema, _creation_order(tables, references)


def _creation_order(tables: list[dict], references: list[tuple]) -> list[dict]:
    """Tables ordered so that each comes after the tables its foreign keys reference (catalog order otherwise)."""
    by_key = {(t["schema"], t["name"]): t for t in tables}
    needs: dict[tuple, set] = {key: set() for key in by_key}
    for schema, name, referenced in references:
        target = (schema, referenced) if (schema, referenced) in by_key else next(
            (key for key in by_key if key[1] == referenced), None)
        if (schema, name) in needs and target is not None and target != (schema, name):
            needs[(schema, name)].add(target)
    ordered: list[dict] = []
    done: set = set()
    while len(ordered) < len(tables):
        ready = [t for t in tables if (t["schema"], t["name"]) not in done
                 and needs[(t["schema"], t["name"])] <= done]
        if not ready:  # a cycle cannot be created in DuckDB; keep catalog order for whatever is left
            ready = [t for t in tables if (t["schema"], t["name"]) not in done]
        for table in ready:
            done.add((table["schema"], table["name"]))
            ordered.append(table)
    return ordered


def _file_name(index: int, table: dict) -> str:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{table['schema']}.{table['name']}")[:80]
    return f"tables/{index:04d}-{label}.parquet"


def _write_table(conn: duckdb.DuckDBPyConnection, table: dict, path: Path) -> int:
    """Streams one table into a Parquet file (0600); answers its row count."""
    select = ", ".join(f"CAST({_quote(c['name'])} AS VARCHAR) AS {_quote(c['name'])}" if c["text"]
                       else _quote(c["name"]) for c in table["columns"])
    reader = conn.execute(f"SELECT {select} FROM {_qualified(table['schema'], table['name'])}"
                          ).to_arrow_reader(BATCH_ROWS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    rows = 0
    with os.fdopen(fd, "wb") as handle:
        # No dictionary pages: per row group they cost more than they save once ZSTD has seen the values
        # (a 1M-row mixed table: 28.5 MB with them, 14 MB without).
        with pq.ParquetWriter(handle, reader.schema, compression="zstd", use_dictionary=False) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        handle.flush()
        os.fsync(handle.fileno())
    return rows


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(conn: duckdb.DuckDBPyConnection, backup_dir: str, key: bytes) -> dict[str, object]:
    """Writes a consistent snapshot of the current database into a new dated folder under `backup_dir`.

    `conn` must be a connection of its own (not in a transaction); it is used for reading only."""
    started = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    root = Path(backup_dir).resolve()
    os.makedirs(root, mode=0o700, exist_ok=True)
    final = root / f"backup-{stamp}"
    partial = root / f"backup-{stamp}.partial"
    os.mkdir(partial, 0o700)
    try:
        os.mkdir(partial / "tables", 0o700)
        files: dict[str, dict] = {}
        entries = []
        conn.execute("BEGIN TRANSACTION READ ONLY")
        try:
            schema, tables = _catalog(conn)
            for index, table in enumerate(tables, 1):
                name = _file_name(index, table)
                rows = _write_table(conn, table, partial / name)
                size, digest = _digest(partial / name)
                files[name] = {"size": size, "sha256": digest}
                entries.append({"schema": table["schema"], "name": table["name"], "sql": table["sql"],
                                "columns": table["columns"], "file": name, "rows": rows})
        finally:
            conn.execute("ROLLBACK")
        document = {"format": FORMAT, "version": VERSION, "created_at": now.isoformat(),
                    "duckdb_version": duckdb.__version__, "schema": schema, "tables": entries, "files": files}
        document["hmac"] = _sign(key, document)
        fd = os.open(partial / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(partial / "tables")
        _fsync_dir(partial)
        os.rename(partial, final)
        _fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, (duckdb.Error, pa.ArrowException)):
            raise classify(exc) from None
        if isinstance(exc, OSError):
            raise EngineError(f"cannot write the backup: {exc.strerror or exc}") from None
        raise
    size = sum(entry["size"] for entry in files.values()) + (final / MANIFEST).stat().st_size
    return {"path": str(final), "size_bytes": size, "tables": len(entries),
            "rows": sum(entry["rows"] for entry in entries), "format": "parquet", "created_at": stamp,
            "seconds": round(time.monotonic() - started, 3)}


# -- verify and restore -------------------------------------------------------------------------------------

def verify(folder: str, key: bytes) -> dict:
    """The backup's manifest, once its HMAC and every file's size and SHA-256 match and no file was added or
    removed; otherwise BackupError naming what changed."""
    root = Path(folder)
    if not root.is_dir():
        raise BackupError(f"{folder} is not a folder")
    try:
        document = json.loads((root / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{folder} has no {MANIFEST}: not a backup folder, or an incomplete one") from None
    except ValueError:
        raise BackupError(f"{MANIFEST} is not valid JSON: it changed since the backup was written") from None
    signature = document.pop("hmac", None) if isinstance(document, dict) else None
    if not isinstance(signature, str) or not hmac.compare_digest(signature, _sign(key, document)):
        raise BackupError(f"{MANIFEST}: signature does not match: the manifest changed since the backup was "
                          "written, or this is not the key of the server that wrote it")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise BackupError(f"{MANIFEST}: unknown backup format {document.get('format')!r} "
                          f"version {document.get('version')!r}")
    listed: dict = document["files"]
    problems = []
    present = set()
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            problems.append(f"{name}: not a regular file")
        elif path.is_file() and name != MANIFEST:
            present.add(name)
    problems += [f"{name}: added after the backup was written" for name in sorted(present - set(listed))]
    problems += [f"{name}: missing" for name in sorted(set(listed) - present)]
    for name in sorted(set(listed) & present):
        size, digest = _digest(root / name)
        if size != listed[name]["size"]:
            problems.append(f"{name}: size changed ({listed[name]['size']} -> {size} bytes)")
        elif not hmac.compare_digest(digest, listed[name]["sha256"]):
            problems.append(f"{name}: content changed (SHA-256 differs)")
    if problems:
        raise BackupError(f"backup {folder} changed since it was written; refusing to restore it:\n  "
                          + "\n  ".join(problems))
    return document


def _holds_data(path: str) -> bool:
    """True when the DuckDB file at `path` has any table, view, sequence, macro or type."""
    try:
        conn = duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        raise BackupError(f"cannot open {path} ({exc}); is the server still running? Stop it first") from None
    try:
        return conn.execute(
            "SELECT (SELECT count(*) FROM duckdb_tables() WHERE NOT internal)"
            " + (SELECT count(*) FROM duckdb_views() WHERE NOT internal)"
            " + (SELECT count(*) FROM duckdb_sequences())"
            " + (SELECT count(*) FROM duckdb_types() WHERE NOT internal)"
            " + (SELECT count(*) FROM duckdb_functions() WHERE NOT internal)").fetchone()[0] > 0
    finally:
        conn.close()


def _insertable(conn: duckdb.DuckDBPyConnection, target: str, column: str) -> bool:
    """False for generated columns (the catalog does not say which they are; an empty INSERT does)."""
    try:
        conn.execute(f"INSERT INTO {target} ({_quote(column)}) SELECT NULL WHERE false")
    except duckdb.BinderException as exc:
        if "generated" in str(exc).lower():
            return False
        raise
    return True


def _load_table(conn: duckdb.DuckDBPyConnection, root: Path, table: dict) -> int:
    target = _qualified(table["schema"], table["name"])
    columns = [c for c in table["columns"] if _insertable(conn, target, c["name"])]
    if not columns:
        return 0
    names = ", ".join(_quote(c["name"]) for c in columns)
    # A NULL text cast to a UNION would become a member holding NULL: keep NULLs NULL.
    values = ", ".join(
        f"CASE WHEN {_quote(c['name'])} IS NULL THEN NULL ELSE CAST({_quote(c['name'])} AS {c['type']}) END"
        if c["text"] else _quote(c["name"]) for c in columns)
    source = pq.ParquetFile(root / table["file"])
    batches = source.iter_batches(batch_size=BATCH_ROWS, columns=[c["name"] for c in columns])
    schema = pa.schema([source.schema_arrow.field(c["name"]) for c in columns])
    conn.register("backup_batches", pa.RecordBatchReader.from_batches(schema, batches))
    try:
        inserted = conn.execute(f"INSERT INTO {target} ({names}) SELECT {values} FROM backup_batches").fetchone()[0]
    finally:
        conn.unregister("backup_batches")
    if inserted != table["rows"]:
        raise BackupError(f"{table['file']}: {inserted} rows read, the manifest says {table['rows']}")
    return inserted


def _create_in_any_order(conn: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    """Runs CREATE statements that may depend on each other (views on views, macros on views ...): each pass
    runs what it can until all ran, or a pass makes no progress (then the first failure is raised)."""
    pending = list(statements)
    while pending:
        failed = []
        first_error: Exception | None = None
        for statement in pending:
            try:
                conn.execute(statement)
            except duckdb.CatalogException as exc:
                failed.append(statement)
                first_error = first_error or exc
        if len(failed) == len(pending):
            raise first_error  # type: ignore[misc]
        pending = failed


def _confine(conn: duckdb.DuckDBPyConnection, folders: tuple[str, ...] | None) -> None:
    """The statements of a backup come from a database users wrote to: they run in the server's sandbox (file
    access only below `folders`, where views may read; no network). None: no sandbox, as on the server."""
    if folders is None:
        return
    listing = ", ".join("'" + os.path.join(os.path.abspath(f), "").replace("'", "''") + "'" for f in folders)
    conn.execute(f"SET allowed_directories = [{listing}]")
    conn.execute("SET enable_external_access = false")


def restore(folder: str, database_path: str, key: bytes, force: bool = False,
            allowed_directories: tuple[str, ...] | None = ()) -> dict[str, object]:
    """Loads a verified backup into a new database at `database_path` (the server must be stopped).

    An existing database that holds anything is kept: refused without `force`, moved aside with it. The
    backup's statements may touch files only below `allowed_directories` (the server's sandbox; None: any)."""
    started = time.monotonic()
    document = verify(folder, key)
    root = Path(folder)
    target = os.path.abspath(database_path)
    wal = target + ".wal"
    existing = os.path.exists(target) or os.path.exists(wal)
    # A WAL without its database file would be replayed into the restored one: treat it as data.
    occupied = existing and (not os.path.exists(target) or _holds_data(target))
    if occupied and not force:
        raise BackupError(f"{target} already holds data; pass --force to restore anyway "
                          "(the current file is then kept next to it as .pre-restore-<time>)")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = target + ".restoring"
    for leftover in (staging, staging + ".wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    rows = 0
    conn = duckdb.connect(staging, config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        _confine(conn, allowed_directories)
        schema = document["schema"]
        for statement in schema["schemas"] + schema["types"] + schema["sequences"]:
            conn.execute(statement)
        for table in document["tables"]:
            conn.execute(table["sql"])
            rows += _load_table(conn, root, table)
        _create_in_any_order(conn, schema["macros_and_views"])
        for statement in schema["indexes"]:
            conn.execute(statement)
        conn.execute("CHECKPOINT")
    except BaseException:
        conn.close()
        for leftover in (staging, staging + ".wal"):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
    conn.close()
    kept = None
    if existing:
        kept = f"{target}.pre-restore-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
        for old, new in ((target, kept), (wal, kept + ".wal")):
            if os.path.exists(old):
                if occupied:
                    os.rename(old, new)
                else:
                    os.remove(old)
        kept = kept if occupied else None
    os.replace(staging, target)
    return {"database": target, "tables": len(document["tables"]), "rows": rows, "previous_database": kept,
            "seconds": round(time.monotonic() - started, 3)}
