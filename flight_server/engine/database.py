"""Opens the one embedded DuckDB database the server serves, with its settings, and hands out connections."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from . import extensions
from . import lake as lakes
from .errors import classify


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs to open the database; built from the server's configuration."""

    database_path: str = ":memory:"
    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None
    max_temp_directory_size: str | None = None
    read_only: bool = False
    # Sandbox: when set, SQL may touch only these folders (no other files, no URLs, no extension installs).
    allowed_directories: tuple[str, ...] | None = None
    extensions: tuple[str, ...] = ()
    # S3 access (httpfs + a secret): access_key_id, secret_access_key, session_token, region, endpoint,
    # url_style, use_ssl. None: S3 off.
    s3: dict[str, str] | None = None
    # A DuckLake to serve instead of the database file (database_path is then ':memory:').
    lake: lakes.LakeSettings | None = None


# Per-connection settings (checked with two connections in tests/test_roles.py) that sessions may change
# while the configuration is locked. DuckDB's names; search_path and schema are always allowed by DuckDB.
SESSION_SETTINGS = (
    "TimeZone", "Calendar", "explain_output", "integer_division", "ieee_floating_point_ops",
    "order_by_non_integer_literal", "scalar_subquery_error_on_multiple_rows", "lambda_syntax",
    "binary_as_string", "max_expression_depth", "pivot_limit",
)


class Database:
    """The embedded DuckDB instance; every session's connection is a cursor on it."""

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self._parser_lock = threading.Lock()
        # Held while the instance is replaced (reopen): connect() and parse() wait for the new one.
        self._swap = threading.RLock()
        # Set when DuckDB invalidated the instance (a fatal error: disk full at checkpoint, I/O failure);
        # cleared by a successful reopen(). The message of the fatal error that did it.
        self.invalidated: str | None = None
        self.reopens = 0
        self._open()

    def _open(self) -> None:
        settings = self.settings
        config: dict[str, object] = {}
        if settings.memory_limit:
            config["memory_limit"] = settings.memory_limit
        if settings.threads:
            config["threads"] = settings.threads
        if settings.temp_directory:
            Path(settings.temp_directory).mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = settings.temp_directory
        if settings.max_temp_directory_size:
            config["max_temp_directory_size"] = settings.max_temp_directory_size
        # Never fetch extensions from the network (any role, any statement), and never let SQL read Python
        # objects of the server process through DuckDB's Python replacement scans.
        config["autoinstall_known_extensions"] = False
        config["python_enable_replacements"] = False
        if settings.allowed_directories is not None:
            config["autoload_known_extensions"] = False
        path = settings.database_path
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
        try:
            root = duckdb.connect(path, read_only=settings.read_only, config=config)
        except Exception as exc:
            raise classify(exc) from None
        self._root = root
        try:
            # Extensions and secrets first: the sandbox below forbids loading anything afterwards.
            extensions.load(root, settings.extensions)
            if settings.s3 is not None:
                extensions.configure_s3(root, settings.s3)
            folders, remote = settings.allowed_directories, ("s3://",) if settings.s3 is not None else ()
            if settings.lake is not None:
                lakes.attach(root, settings.lake)
                lake_folders, lake_remote = lakes.reachable(settings.lake)
                folders = None if folders is None else folders + tuple(lake_folders)
                remote += tuple(lake_remote)
            if folders is not None:
                self._seal(folders, remote)
            # Statements are parsed on a connection of this (sandboxed) database, never on DuckDB's default
            # connection: parsing can already read files (IMPORT DATABASE) or look for extensions (PRAGMA).
            self._parser = root.cursor()
            self.table_functions = frozenset(row[0].lower() for row in root.execute(
                "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'pragma')"
            ).fetchall())
        except BaseException:
            root.close()
            raise

    def reopen(self) -> None:
        """Replaces an invalidated instance with a fresh one on the same file (committed data comes back
        from the file and its WAL). Callers close every session's connection first: those belong to the old
        instance. Raises (and stays invalidated) when DuckDB cannot open the file yet, e.g. the disk is full."""
        with self._swap, self._parser_lock:
            for handle in (self._parser, self._root):
                try:
                    handle.close()
                except Exception:
                    pass
            self._open()
            self.invalidated = None
            self.reopens += 1

    def _seal(self, folders: tuple[str, ...], remote: tuple[str, ...] = ()) -> None:
        """DuckDB's own sandbox: after this, file access outside `folders`, URLs and extension installs
        fail inside DuckDB, and the settings cannot be loosened again while the database runs."""
        paths = []
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
            paths.append(os.path.join(os.path.abspath(folder), ""))
        listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths + list(remote))
        self._root.execute(f"SET allowed_directories = [{listing}]")
        self._root.execute("SET enable_external_access = false")
        if remote:
            # URL query parameters (s3://b/k?s3_endpoint=...) would override the server's S3 settings and send
            # its signed requests anywhere: DuckDB ignores them in compatibility mode (globs go with them).
            self._root.execute("SET GLOBAL s3_url_compatibility_mode = true")
        # Lock DuckDB's configuration: from here on only the per-session settings below can change, so no
        # session can alter another's results (default_order, default_collation are global in DuckDB) or
        # loosen the sandbox, whatever SQL reaches the engine.
        allowed = ", ".join(f"'{name}'" for name in SESSION_SETTINGS)
        self._root.execute(f"SET allowed_configs = [{allowed}]")
        self._root.execute("SET lock_configuration = true")

    @property
    def version(self) -> str:
        return duckdb.__version__

    def parse(self, sql: str) -> Sequence[duckdb.Statement]:
        """DuckDB's parse of `sql` (raises DuckDB's own errors)."""
        with self._parser_lock:
            return self._parser.extract_statements(sql)

    def mark_invalidated(self, message: str) -> None:
        """Records that DuckDB invalidated this instance (see errors.is_fatal); reopen() clears it."""
        self.invalidated = self.invalidated or message

    def keywords(self) -> list[str]:
        """DuckDB's SQL keywords, upper-case, for clients that ask (JDBC's getSQLKeywords)."""
        rows = self._root.execute("SELECT upper(keyword_name) FROM duckdb_keywords() ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    @property
    def path(self) -> str:
        return self.settings.database_path

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new connection with its own transaction, temp tables and settings."""
        with self._swap:
            cursor = self._root.cursor()
        return lakes.use(cursor) if self.settings.lake is not None else cursor

    def setting(self, name: str) -> str:
        return self._root.execute("SELECT current_setting(?)", [name]).fetchone()[0]

    def checkpoint(self) -> None:
        if self.settings.database_path != ":memory:" and not self.settings.read_only:
            self._root.execute("CHECKPOINT")

    def close(self) -> None:
        try:
            self.checkpoint()
        finally:
            self._root.close()
