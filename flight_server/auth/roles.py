"""Roles (read < write < admin) and the role each SQL statement needs.

Decided from DuckDB's parse (statement types, and the parser again for the statement inside EXPLAIN) and its
tokenizer (`sql_scan`: comments and string literals are tokens, never code), as allow-lists: whatever is not
known to be harmless for a role needs admin. Some things no role may do (`NOBODY`): naming the server's own
files (database, WAL, spill folder, users file, backups) or replacing the server's S3 secret.

This is the first of two layers. The second is DuckDB itself: read sessions run every statement in a
read-only transaction, file access is confined to the allowed folders, and the configuration is locked so
that only per-session settings can change (see engine/database.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import duckdb

from ..engine.database import SESSION_SETTINGS as ENGINE_SESSION_SETTINGS
from . import sql_scan

READ, WRITE, ADMIN, NOBODY = "read", "write", "admin", "nobody"
ROLES = (READ, WRITE, ADMIN)
_RANK = {READ: 0, WRITE: 1, ADMIN: 2, NOBODY: 3}

T = duckdb.StatementType
_BY_TYPE = {
    T.SELECT: READ,
    T.INSERT: WRITE,
    T.UPDATE: WRITE,
    T.DELETE: WRITE,
    T.CREATE: WRITE,
    T.DROP: WRITE,
    T.ALTER: WRITE,
    T.VACUUM: WRITE,  # VACUUM and ANALYZE
    T.ANALYZE: WRITE,
    T.MERGE_INTO: WRITE,
    # Transaction control in SQL: writers only. Readers use the Flight SQL transaction actions, which open
    # read-only transactions; a reader's COMMIT in SQL would end the read-only transaction it runs in.
    T.TRANSACTION: WRITE,
    # Everything else needs admin: ATTACH, DETACH, LOAD/INSTALL, EXPORT, COPY_DATABASE, PRAGMA (the kinds
    # DuckDB does not expand into SELECTs), PREPARE/EXECUTE (EXECUTE would hide its statement), unknown kinds.
}

# Settings a read or write session may change for itself: the engine's per-connection list, which DuckDB's
# own configuration lock (allowed_configs) enforces too.
SESSION_SETTINGS = frozenset(name.lower() for name in ENGINE_SESSION_SETTINGS) | {"search_path", "schema"}

# Functions whose effect needs more than reading. Scalar ones are looked up by name wherever they are called.
FUNCTION_ROLES = {
    "nextval": WRITE, "setval": WRITE,
    "write_log": ADMIN,
    "checkpoint": ADMIN, "force_checkpoint": ADMIN,
    "enable_logging": ADMIN, "disable_logging": ADMIN, "truncate_duckdb_logs": ADMIN,
    "duckdb_logs": ADMIN, "duckdb_log_contexts": ADMIN,  # other users' statements
    "enable_profiling": ADMIN, "disable_profiling": ADMIN,
    "duckdb_secrets": ADMIN, "which_secret": ADMIN,
    "duckdb_temporary_files": ADMIN, "duckdb_external_file_cache": ADMIN,
    "query": ADMIN, "json_execute_serialized_sql": ADMIN,  # run SQL text this check never sees
    "dbgen": WRITE, "dsdgen": WRITE,  # tpch/tpcds data generators create tables
}
# Of those, the ones DuckDB also offers as views (`FROM duckdb_logs`): they count wherever the name appears.
_VIEW_NAMES = frozenset({"duckdb_logs", "duckdb_log_contexts", "duckdb_secrets", "duckdb_temporary_files",
                         "duckdb_external_file_cache"})
# Table functions a reader may call. Any other table function (one this list does not know, e.g. from an
# extension loaded later) needs admin.
READ_TABLE_FUNCTIONS = frozenset({
    "duckdb_approx_database_count", "duckdb_columns", "duckdb_connection_count", "duckdb_constraints",
    "duckdb_coordinate_systems", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory", "duckdb_optimizers",
    "duckdb_prepared_statements", "duckdb_schemas", "duckdb_secret_types", "duckdb_sequences",
    "duckdb_settings", "duckdb_table_sample", "duckdb_tables", "duckdb_types", "duckdb_variables",
    "duckdb_views", "generate_series", "glob", "icu_calendar_names", "json_each", "json_tree",
    "parquet_bloom_probe", "parquet_file_metadata", "parquet_full_metadata", "parquet_kv_metadata",
    "parquet_metadata", "parquet_scan", "parquet_schema", "pg_timezone_names", "pragma_collations",
    "pragma_database_size", "pragma_metadata_info", "pragma_platform", "pragma_show", "pragma_storage_info",
    "pragma_table_info", "pragma_user_agent", "pragma_version", "query_table", "range", "read_blob",
    "read_csv", "read_csv_auto", "read_duckdb", "read_json", "read_json_auto", "read_json_objects",
    "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_parquet",
    "read_text", "repeat", "repeat_row", "sniff_csv", "summary", "test_all_types", "test_vector_types",
    "unnest", "tpch_queries", "tpch_answers", "tpcds_queries", "tpcds_answers",
})
SERVER_SECRET = "flight_s3"
_REMOTE_PREFIXES = ("s3://", "s3a://", "s3n://", "gcs://", "gs://", "r2://", "http://", "https://",
                    "hf://", "az://", "azure://", "abfss://")


@dataclass(frozen=True)
class Policy:
    """What the role decision needs to know about the running server."""

    # Canonical absolute paths (files or folders) that no SQL may name, whatever the role.
    protected_paths: tuple[str, ...] = ()
    # Every table function the served database knows (so a call can be told from a column list).
    table_functions: frozenset[str] = frozenset()
    # Parses SQL into statements on a sandboxed connection (for the statement inside EXPLAIN).
    parse: Callable[[str], Sequence[duckdb.Statement]] | None = None
    cwd: str = field(default_factory=os.getcwd)
    # URL prefixes no SQL may name (a lake's data on S3), and name prefixes only admins may use (the lake's
    # catalog database, which DuckLake attaches under a reserved name).
    protected_urls: tuple[str, ...] = ()
    admin_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    role: str  # the least role that may run it (NOBODY: refused for all)
    reason: str


def required_role(statement: duckdb.Statement, policy: Policy = Policy()) -> str:
    return decide(statement, policy).role


def decide(statement: duckdb.Statement, policy: Policy = Policy(), depth: int = 0) -> Decision:
    """The least role that may run this statement, and why."""
    kind = statement.type
    text = statement.query
    if not text.strip():
        # Statements DuckDB generates without text (PIVOT's enum type, COPY FROM DATABASE's transaction).
        return Decision(_BY_TYPE.get(kind, ADMIN), _kind_name(kind))
    try:
        tokens = sql_scan.tokens(text)
    except sql_scan.Unclassifiable as exc:
        return Decision(NOBODY, str(exc))
    literal = _literals(tokens, policy)
    if literal is not None:
        return literal
    reserved = next((t.word for t in tokens if t.word and t.word.startswith(policy.admin_names)), None) \
        if policy.admin_names else None
    if reserved is not None:
        return Decision(ADMIN, f"the reserved name {reserved}")
    base = _by_kind(statement, tokens, policy, depth)
    functions = _functions(tokens, policy)
    return base if _RANK[base.role] >= _RANK[functions.role] else functions


def _by_kind(statement: duckdb.Statement, tokens: list[sql_scan.Token], policy: Policy, depth: int) -> Decision:
    kind = statement.type
    words = [t.word for t in tokens]
    name = _kind_name(kind)
    if kind == T.SELECT:
        return Decision(READ, name)
    if kind == T.EXPLAIN:
        return _explain(statement.query, tokens, policy, depth)
    if kind == T.SET:
        return _setting(tokens)
    if kind == T.COPY:
        direction = _top_level_word(tokens, ("to", "from"))
        if direction == "from":
            return Decision(WRITE, "COPY ... FROM")
        target = _after_top_level_word(tokens, "to")
        if target is None or target.kind != "string":
            # `COPY t TO ?` takes its file name from a parameter, which no check here could see.
            return Decision(NOBODY, "COPY ... TO needs its file name as a string literal")
        if any(t.kind == "string" and _climbs(t.value) for t in tokens):
            # FILENAME_PATTERN '../../x' would leave the folder the target names.
            return Decision(NOBODY, "COPY ... TO with '..' in a file name or pattern")
        return Decision(ADMIN, "COPY ... TO (writes files on the server)")
    if kind == T.CALL:
        if words and words[0] in ("checkpoint", "force"):
            return Decision(ADMIN, "CHECKPOINT")
        return Decision(READ, "CALL")
    if kind in (T.CREATE, T.DROP):
        if _names_secret(words):
            if any(t.word == SERVER_SECRET for t in tokens):
                return Decision(NOBODY, f"the server's own secret {SERVER_SECRET!r} cannot be changed by SQL")
            return Decision(ADMIN, "secrets")
        if kind == T.CREATE and _creates_temporary(words):
            # Temporary objects live in the session; DuckDB's read-only transaction still protects the database.
            return Decision(READ, "CREATE TEMPORARY")
    return Decision(_BY_TYPE.get(kind, ADMIN), name)


def _explain(text: str, tokens: list[sql_scan.Token], policy: Policy, depth: int) -> Decision:
    """EXPLAIN [ANALYZE] [(options)] <statement>: ANALYZE runs the statement, so the inner statement decides."""
    index = 1
    if index < len(tokens) and tokens[index].word == "analyze":
        index += 1
    starts = [index]
    if index < len(tokens) and tokens[index].text.startswith("("):
        end = _matching_paren(tokens, index)
        # `EXPLAIN (FORMAT json) SELECT ...` has options; in `EXPLAIN (SELECT 1)` the statement starts there.
        starts = [end + 1, index] if end is not None else [index]
    inner = None
    for start in starts:
        if start >= len(tokens) or policy.parse is None or depth > 4:
            continue
        try:
            inner = policy.parse(text[tokens[start].offset:])
            break
        except Exception:
            continue
    if not inner:
        return Decision(ADMIN, "EXPLAIN of a statement that cannot be read")
    worst = Decision(READ, "EXPLAIN")
    for statement in inner:
        decision = decide(statement, policy, depth + 1)
        if _RANK[decision.role] > _RANK[worst.role]:
            worst = Decision(decision.role, "EXPLAIN of " + decision.reason)
    return worst


def _setting(tokens: list[sql_scan.Token]) -> Decision:
    words = [t.word for t in tokens]
    if not words:
        return Decision(ADMIN, "SET")
    verb = words[0]
    if verb == "use":
        return Decision(READ, "USE")
    if verb not in ("set", "reset"):
        return Decision(ADMIN, "PRAGMA setting")  # PRAGMA name = value
    index = 1
    scope = words[index] if index < len(words) else ""
    if scope in ("global", "session", "local"):
        index += 1
    if scope == "global":
        return Decision(ADMIN, "SET GLOBAL")
    target = words[index] if index < len(words) else ""
    if target == "variable":
        return Decision(READ, "SET VARIABLE")
    if target in SESSION_SETTINGS and not (index + 1 < len(tokens) and tokens[index + 1].text == "."):
        return Decision(READ, f"SET {target}")
    return Decision(ADMIN, f"SET {target or '?'} (not a per-session setting)")


def _functions(tokens: list[sql_scan.Token], policy: Policy) -> Decision:
    """The role the functions called in the statement need (a name followed by an opening parenthesis)."""
    worst = Decision(READ, "")
    for index, token in enumerate(tokens):
        if index + 1 == len(tokens):
            if token.word in _VIEW_NAMES:
                return Decision(FUNCTION_ROLES[token.word], f"{token.word}")
            break
        name = token.word
        if not name or not (tokens[index + 1].text.startswith("(") or name in _VIEW_NAMES):
            continue
        needed = FUNCTION_ROLES.get(name, READ)
        if needed == READ and name in policy.table_functions and name not in READ_TABLE_FUNCTIONS:
            needed = ADMIN
        if _RANK[needed] > _RANK[worst.role]:
            worst = Decision(needed, f"function {name}()")
    return worst


def _literals(tokens: list[sql_scan.Token], policy: Policy) -> Decision | None:
    """Refuses string literals that name the server's own files, for every role."""
    for token in tokens:
        if token.kind != "string":
            continue
        value = token.value
        if value and policy.protected_urls and value.lower().startswith(
                tuple(url.lower() for url in policy.protected_urls)):
            return Decision(NOBODY, "the lake's own files")
        if not value or "\x00" in value or value.lower().startswith(_REMOTE_PREFIXES):
            continue
        path = _canonical(value, policy.cwd)
        for protected in policy.protected_paths:
            if path == protected or path.startswith(protected.rstrip("/") + "/"):
                return Decision(NOBODY, "a path that belongs to the server itself")
    return None


def _canonical(value: str, cwd: str) -> str:
    if value.lower().startswith("file://"):
        value = value[7:]
    value = os.path.expanduser(value)
    return os.path.realpath(os.path.join(cwd, value))


def _top_level(tokens: list[sql_scan.Token]):
    """(index, token) of the tokens outside parentheses and brackets."""
    depth = 0
    for index, token in enumerate(tokens):
        if token.kind == "operator":
            depth += token.text.count("(") + token.text.count("[") - token.text.count(")") - token.text.count("]")
        elif depth == 0:
            yield index, token


def _top_level_word(tokens: list[sql_scan.Token], wanted: tuple[str, ...]) -> str | None:
    return next((token.word for _, token in _top_level(tokens) if token.word in wanted), None)


def _climbs(value: str) -> bool:
    return ".." in value.replace("\\", "/").split("/")


def _after_top_level_word(tokens: list[sql_scan.Token], word: str) -> sql_scan.Token | None:
    """The token right after the first `word` outside parentheses."""
    index = next((i for i, token in _top_level(tokens) if token.word == word), None)
    return tokens[index + 1] if index is not None and index + 1 < len(tokens) else None


def _matching_paren(tokens: list[sql_scan.Token], start: int) -> int | None:
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind == "operator":
            depth += token.text.count("(") - token.text.count(")")
            if depth <= 0:
                return index
    return None


def _names_secret(words: list[str]) -> bool:
    """CREATE [OR REPLACE] [PERSISTENT|TEMPORARY|TEMP] SECRET ... / DROP [PERSISTENT|TEMPORARY] SECRET ..."""
    for word in words[1:6]:
        if word == "secret":
            return True
        if word not in ("or", "replace", "persistent", "temporary", "temp", "if", "exists", "not"):
            return False
    return False


def _creates_temporary(words: list[str]) -> bool:
    """CREATE [OR REPLACE] TEMP|TEMPORARY TABLE|VIEW|MACRO|FUNCTION|SEQUENCE ..."""
    rest = words[1:]
    if rest[:2] == ["or", "replace"]:
        rest = rest[2:]
    return len(rest) >= 2 and rest[0] in ("temp", "temporary") and \
        rest[1] in ("table", "view", "macro", "function", "sequence")


def _kind_name(kind) -> str:
    return str(kind).rsplit(".", 1)[-1]


def allows(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


def check(role: str, statements: Iterable[duckdb.Statement], policy: Policy = Policy()) -> str | None:
    """None if `role` may run every statement, else a message naming the first one it may not."""
    for statement in statements:
        decision = decide(statement, policy)
        if not allows(role, decision.role):
            if decision.role == NOBODY:
                return f"refused for every role: {decision.reason}"
            return f"role '{role}' may not run {decision.reason} (needs '{decision.role}')"
    return None
