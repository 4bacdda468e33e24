"""A DuckLake as the served database: attached at start (before the sandbox closes), the catalog every
session uses, and the snapshot arithmetic that lets any node serve a query as of one lake snapshot.

The catalog is a PostgreSQL database (many nodes over one lake) or a DuckDB file (one node); the data is
Parquet files in a folder or under an S3 prefix. DuckDB's internals reach both; users' SQL names the lake's
tables, never its files (the role check refuses the data folder, see app.build_policy).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from . import extensions

LAKE = "lake"  # the name the lake is attached under; every session's default catalog
METADATA_PREFIX = "__ducklake_metadata_"  # DuckLake attaches its catalog database under this prefix + LAKE
_INIT_ATTEMPTS = 5
_REMOTE = ("s3://", "s3a://", "gs://", "gcs://", "r2://", "az://", "abfss://", "http://", "https://")


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake's catalog and data live."""

    catalog: str  # 'postgres:<libpq connection string>' or a DuckDB file
    data_path: str  # 's3://bucket/prefix/' or a folder
    read_only: bool = False
    # S3 settings for an s3:// data path (as EngineSettings.s3); None: the AWS credential chain.
    s3: dict[str, str] | None = None

    @property
    def on_postgres(self) -> bool:
        return self.catalog.startswith(("postgres:", "postgresql:"))

    @property
    def remote_data(self) -> bool:
        return self.data_path.lower().startswith(_REMOTE)

    @property
    def data_location(self) -> str:
        """The data path as DuckDB is told it: a folder made absolute, always ending in '/'."""
        path = self.data_path if self.remote_data else os.path.abspath(self.data_path)
        return path.rstrip("/") + "/"

    @property
    def catalog_file(self) -> str | None:
        return None if self.on_postgres else os.path.abspath(self.catalog)

    def needs(self) -> list[str]:
        """The extensions attaching this lake loads."""
        names = ["ducklake"]
        if self.on_postgres:
            names.append("postgres_scanner")
        if self.remote_data:
            names.append("httpfs")
        return names


def attach(root: duckdb.DuckDBPyConnection, lake: LakeSettings) -> None:
    """Loads the lake's extensions and attaches it as LAKE. Runs before the sandbox closes (ATTACH reaches
    the network and files); the catalog's credentials come from the environment (PGPASSWORD, ~/.pgpass)."""
    extensions.load(root, lake.needs())
    if lake.remote_data:
        extensions.configure_s3(root, lake.s3 or {})
    if lake.catalog_file is not None:
        os.makedirs(os.path.dirname(lake.catalog_file), exist_ok=True)
        target = "ducklake:" + lake.catalog_file
    else:
        uri = lake.catalog.startswith(("postgresql://", "postgres://"))  # a libpq URI rather than key=value
        target = "ducklake:" + ("postgres:" + lake.catalog if uri else lake.catalog)
    if not lake.remote_data:
        os.makedirs(lake.data_location, exist_ok=True)
    options = [f"DATA_PATH '{_quote(lake.data_location)}'"]
    if lake.read_only:
        options.append("READ_ONLY")
    statement = f"ATTACH '{_quote(target)}' AS {LAKE} ({', '.join(options)})"
    for attempt in range(_INIT_ATTEMPTS):
        try:
            root.execute(statement)
            return
        except duckdb.Error as exc:
            # Nodes started together on an empty catalog race to create its tables; the losers attach again.
            if "failed to initialize ducklake" not in str(exc).lower() or attempt + 1 == _INIT_ATTEMPTS:
                raise
            time.sleep(0.5 * (attempt + 1))


def reachable(lake: LakeSettings) -> tuple[list[str], list[str]]:
    """What DuckDB must be allowed to reach for the lake once sealed: (local folders, remote prefixes)."""
    if lake.remote_data:
        return [], [lake.data_location]
    return [lake.data_location], []


def protected(lake: LakeSettings) -> list[str]:
    """Local paths users' SQL may not name: the data folder and a file catalog."""
    paths = [] if lake.remote_data else [os.path.realpath(lake.data_location)]
    if lake.catalog_file is not None:
        paths += [os.path.realpath(lake.catalog_file), os.path.realpath(lake.catalog_file) + ".wal"]
    return paths


def use(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Makes the lake the connection's default catalog (a new cursor starts in DuckDB's in-memory one)."""
    conn.execute(f"USE {LAKE}")
    return conn


# What decides whether a query means the same on another node, in one statement (each costs a catalog round
# trip): the default catalog and schema, temporary tables and views (`AT` would skip a temporary table and
# read the lake's table of that name), the lake's current snapshot, and DuckDB's parse of the query.
_PIN = (f"SELECT current_database() = '{LAKE}' AND current_schema() = 'main', "
        "(SELECT count(*) FROM duckdb_tables() WHERE temporary) "
        "+ (SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal), "
        f"(SELECT id FROM {LAKE}.current_snapshot()), json_serialize_sql(?)")


def builtin_functions(conn: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Names of the functions DuckDB and its loaded extensions define (not macros anyone created) that give the
    same answer wherever they run: no side effects (nextval) and not volatile (random), so a query using
    only these reads the same rows on any node, any number of times."""
    return frozenset(row[0].lower() for row in conn.execute(
        "SELECT function_name FROM duckdb_functions() WHERE database_name = 'system' GROUP BY function_name "
        "HAVING NOT bool_or(has_side_effects OR stability = 'VOLATILE')").fetchall())


def pin(conn: duckdb.DuckDBPyConnection, sql: str, builtins: frozenset[str]) -> tuple[str, dict, int] | None:
    """`sql` (one SELECT) rewritten so that every lake table it reads is read `AT (VERSION => n)` at the lake's
    current snapshot n: the same rows on any node, whatever was committed since. Returns (query, its parse
    tree, n), or None when the query depends on this connection (temporary objects, macros, another default
    catalog or schema). DuckDB's own parser does the work (json_serialize_sql / json_deserialize_sql); CTE
    names and tables of other catalogs are left alone."""
    default_place, temporary, snapshot, serialized = conn.execute(_PIN, [sql]).fetchone()
    tree = json.loads(serialized)
    if not default_place or temporary or tree.get("error"):
        return None
    nodes = list(_nodes(tree))
    if any(node.get("class") == "FUNCTION" and node.get("function_name", "").lower() not in builtins
           for node in nodes):
        return None  # a macro (it may exist in this session only), or a function with effects or chance
    ctes = {entry["key"].lower() for node in nodes if isinstance(node.get("cte_map"), dict)
            for entry in node["cte_map"].get("map", [])}
    version = {"unit": "VERSION", "expr": {"class": "CONSTANT", "type": "VALUE_CONSTANT", "alias": "",
                                           "query_location": 0,
                                           "value": {"type": {"id": "BIGINT", "type_info": None},
                                                     "is_null": False, "value": int(snapshot)}}}
    for node in nodes:
        if node.get("type") != "BASE_TABLE" or node.get("at_clause"):
            continue
        catalog = (node.get("catalog_name") or "").lower()
        unqualified = not catalog and not node.get("schema_name")
        if catalog not in ("", LAKE) or (unqualified and node.get("table_name", "").lower() in ctes):
            continue
        node["at_clause"] = version
    return _sql(conn, tree), tree, int(snapshot)


@dataclass(frozen=True)
class PortableRead:
    """A plain lake query pinned to one snapshot, as any node can run it; `parts` split it across nodes."""

    query: str
    snapshot: int
    parts: list[str] | None


def portable_read(conn: duckdb.DuckDBPyConnection, parse, sql: str, builtins: frozenset[str], nodes: int,
                  min_rows: int) -> PortableRead | None:
    """`sql` pinned to the current snapshot when it is one SELECT that reads the same rows on any node (split
    into `nodes` row-id ranges when large enough), else None: the statement then needs its own session."""
    try:
        statements = parse(sql)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return None
        pinned = pin(conn, sql, builtins)
        if pinned is None:
            return None
        query, tree, snapshot = pinned
        parts = partitions(conn, tree, nodes, min_rows) if nodes > 1 else None
    except duckdb.Error:
        return None  # e.g. a view read at a snapshot: the session-bound way gives the real answer
    return PortableRead(query, snapshot, parts)


def _sql(conn: duckdb.DuckDBPyConnection, tree: dict) -> str:
    return conn.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]


def partitions(conn: duckdb.DuckDBPyConnection, tree: dict, parts: int, min_rows: int) -> list[str] | None:
    """A query split into `parts` queries over disjoint row id ranges of its table, whose results together are
    its result; None unless it is a plain scan (`SELECT columns FROM one lake table [WHERE ...]`: no
    aggregates, joins, ordering, limits or CTEs) of at least `min_rows` rows. Give it the tree `pin` made, so
    that every part reads the same snapshot."""
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    table = node.get("from_table") or {}
    plain = (node.get("type") == "SELECT_NODE" and not node.get("modifiers") and not node.get("group_expressions")
             and not node.get("having") and not node.get("qualify") and not node.get("sample")
             and not (node.get("cte_map") or {}).get("map") and table.get("type") == "BASE_TABLE"
             and (table.get("catalog_name") or LAKE).lower() == LAKE and table.get("at_clause")
             and all(e.get("class") in ("COLUMN_REF", "STAR") for e in node.get("select_list", [None])))
    if not plain:
        return None
    name = ".".join(_identifier(part) for part in
                    (LAKE, table.get("schema_name") or "main", table["table_name"]))
    version = int(table["at_clause"]["expr"]["value"]["value"])
    low, high, count = conn.execute(
        f"SELECT min(rowid), max(rowid), count(*) FROM {name} AT (VERSION => {version})").fetchone()
    if count < min_rows or low is None:
        return None
    step = (high + 1 - low + parts - 1) // parts
    queries = []
    for index in range(parts):
        start, stop = low + index * step, low + (index + 1) * step
        rows = json.loads(conn.execute("SELECT json_serialize_sql(?)", [
            f"SELECT 1 WHERE rowid >= {start} AND rowid < {stop}"]).fetchone()[0])["statements"][0]["node"]
        bounded = json.loads(json.dumps(tree))
        part = bounded["statements"][0]["node"]
        where = part.get("where_clause")
        part["where_clause"] = rows["where_clause"] if not where else {
            "class": "CONJUNCTION", "type": "CONJUNCTION_AND", "alias": "", "query_location": 0,
            "children": [where, rows["where_clause"]]}
        queries.append(_sql(conn, bounded))
    return queries


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _nodes(tree) -> Iterable[dict]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _quote(text: str) -> str:
    return text.replace("'", "''")
