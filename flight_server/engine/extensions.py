"""Loads DuckDB extensions from the installed `duckdb-extension-<name>` packages (no network), falling back to
DuckDB's own extension folder; configures S3 access through a DuckDB secret."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping

import duckdb


class ExtensionError(RuntimeError):
    """An extension cannot be found or loaded; the message names the package to install."""


def packaged_path(name: str) -> str | None:
    """The extension file shipped inside `duckdb-extension-<name>`, for this DuckDB version."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, "extensions", f"v{duckdb.__version__}", f"{name}.duckdb_extension")
    return path if os.path.exists(path) else None


def load(conn: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    for name in names:
        path = packaged_path(name)
        try:
            if path is not None:
                conn.execute(f"LOAD '{path}'")
            else:
                conn.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise ExtensionError(
                f"cannot load DuckDB extension {name!r}: install the package "
                f"'duckdb-extension-{name}=={duckdb.__version__}' ({str(exc).splitlines()[0]})") from None


def configure_s3(conn: duckdb.DuckDBPyConnection, settings: Mapping[str, str]) -> None:
    """Loads httpfs and creates the server-wide S3 secret from the given settings."""
    try:
        load(conn, ["httpfs"])
    except ExtensionError as exc:
        raise ExtensionError(f"S3 is enabled but httpfs is missing: pip install '.[s3]' "
                             f"(package duckdb-extension-httpfs). {exc}") from None
    options = {
        "KEY_ID": settings.get("access_key_id"),
        "SECRET": settings.get("secret_access_key"),
        "SESSION_TOKEN": settings.get("session_token"),
        "REGION": settings.get("region"),
        "ENDPOINT": settings.get("endpoint"),
        "URL_STYLE": settings.get("url_style"),
    }
    parts = ["TYPE S3"]
    for key, value in options.items():
        if value:
            parts.append(f"{key} '{_escape(value)}'")
    use_ssl = settings.get("use_ssl")
    if use_ssl:
        parts.append(f"USE_SSL {'true' if use_ssl.lower() in ('1', 'true', 'yes', 'on') else 'false'}")
    if not options["KEY_ID"]:
        parts.append("PROVIDER credential_chain")
    conn.execute(f"CREATE OR REPLACE SECRET flight_s3 ({', '.join(parts)})")


def _escape(value: str) -> str:
    return value.replace("'", "''")
