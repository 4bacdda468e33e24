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
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter

import duckdb

from ..engine.database import SESSION_SETTINGS as ENGINE_SESSION_SETTINGS
from . import sql_scan

READ, WRITE, ADMIN, NOBODY = "read", "write", "admin", "nobody"
ROLES = (READ, WRITE, ADMIN)
_RANK = {READ: 0, WRITE: 1, ADMIN: 2, NOBODY: 3}

# Statement kinds by name (duckdb.StatementType's member names). Statements are looked up by the enum's integer
# value: comparing or hashing the pybind11 enum objects themselves costs ~0.7 us each time.
_KIND_NAMES = {kind.value: name for name, kind in duckdb.StatementType.__members__.items()}
_BY_TYPE = {
    "SELECT": READ,
    "INSERT": WRITE,
    "UPDATE": WRITE,
    "DELETE": WRITE,
    "CREATE": WRITE,
    "DROP": WRITE,
    "ALTER": WRITE,
    "VACUUM": WRITE,  # VACUUM and ANALYZE
    "ANALYZE": WRITE,
    "MERGE_INTO": WRITE,
    # Transaction control in SQL: writers only. Readers use the Flight SQL transaction actions, which open
    # read-only transactions; a reader's COMMIT in SQL would end the read-only transaction it runs in.
    "TRANSACTION": WRITE,
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

    @cached_property
    def derived(self) -> _Derived:
        """What the checks need in the form they use it, computed once per policy instead of per statement
        (cached_property writes the instance's __dict__ directly, which a frozen dataclass allows)."""
        return _Derived(self)


class _Derived:
    """The parts of a Policy the per-statement checks use, prepared once."""

    def __init__(self, policy: Policy):
        self.protected_urls = tuple(url.lower() for url in policy.protected_urls)
        # (path, path + "/"): a literal names a protected path if it resolves to it or to something inside it.
        self.protected_paths = tuple((path, path.rstrip("/") + "/") for path in policy.protected_paths)
        # The working directory, resolved once. Relative file names are opened by DuckDB from the process's
        # working directory, a directory that renaming or re-linking its parents does not move; policy.cwd
        # is os.getcwd() (already free of symbolic links) unless a caller passes another. Names inside it are
        # still looked up on every check (see _resolve).
        self.cwd = os.path.realpath(policy.cwd)
        # Table functions of the served database that readers may not call (not in READ_TABLE_FUNCTIONS).
        self.admin_table_functions = policy.table_functions - READ_TABLE_FUNCTIONS
        # Every name _functions can find needing more than read: a statement naming none of them needs read.
        self.raising_names = frozenset(FUNCTION_ROLES) | _VIEW_NAMES | self.admin_table_functions
        self.admin_names = policy.admin_names
        # Whether a reserved name can only be in a word if it is in the statement's lower-cased text: true for
        # ASCII prefixes without '"' (a word is a piece of the text, lower-cased character by character;
        # only a quoted identifier's '""' -> '"' changes it otherwise).
        self.admin_names_in_text = all(name and name.isascii() and '"' not in name for name in policy.admin_names)
        self.lower_admin_names = tuple(name.lower() for name in policy.admin_names)


@dataclass(frozen=True)
class Decision:
    role: str  # the least role that may run it (NOBODY: refused for all)
    reason: str


def required_role(statement: duckdb.Statement, policy: Policy = Policy()) -> str:
    return decide(statement, policy).role


def decide(statement: duckdb.Statement, policy: Policy = Policy(), depth: int = 0) -> Decision:
    """The least role that may run this statement, and why."""
    kind = _kind_name(statement.type)
    text = statement.query
    if not text.strip():
        # Statements DuckDB generates without text (PIVOT's enum type, COPY FROM DATABASE's transaction).
        return Decision(_BY_TYPE.get(kind, ADMIN), kind)
    try:
        tokens = sql_scan.tokens(text)
    except sql_scan.Unclassifiable as exc:
        return Decision(NOBODY, str(exc))
    derived = policy.derived
    literal = _literals(tokens, derived)
    if literal is not None:
        return literal
    reserved = _reserved_name(tokens, text, derived)
    if reserved is not None:
        return Decision(ADMIN, f"the reserved name {reserved}")
    base = _by_kind(kind, text, tokens, policy, depth)
    functions = _functions(tokens, derived)
    return base if _RANK[base.role] >= _RANK[functions.role] else functions


def _reserved_name(tokens: list[sql_scan.Token], text: str, derived: _Derived) -> str | None:
    """The first word starting with a name prefix only admins may use (the lake's catalog database)."""
    if not derived.admin_names:
        return None
    if derived.admin_names_in_text:
        lowered = text.lower()
        if not any(name in lowered for name in derived.lower_admin_names):
            return None  # most statements: one pass over the text instead of one per token
    return next((word for word in map(_word, tokens) if word and word.startswith(derived.admin_names)), None)


def _by_kind(kind: str, text: str, tokens: list[sql_scan.Token], policy: Policy, depth: int) -> Decision:
    if kind == "SELECT":
        return Decision(READ, kind)
    if kind == "EXPLAIN":
        return _explain(text, tokens, policy, depth)
    if kind == "SET":
        return _setting(tokens)
    words = [t.word for t in tokens]
    if kind == "COPY":
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
    if kind == "CALL":
        if words and words[0] in ("checkpoint", "force"):
            return Decision(ADMIN, "CHECKPOINT")
        return Decision(READ, "CALL")
    if kind in ("CREATE", "DROP"):
        if _names_secret(words):
            if any(t.word == SERVER_SECRET for t in tokens):
                return Decision(NOBODY, f"the server's own secret {SERVER_SECRET!r} cannot be changed by SQL")
            return Decision(ADMIN, "secrets")
        if kind == "CREATE" and _creates_temporary(words):
            # Temporary objects live in the session; DuckDB's read-only transaction still protects the database.
            return Decision(READ, "CREATE TEMPORARY")
    return Decision(_BY_TYPE.get(kind, ADMIN), kind)


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


_word = attrgetter("word")  # map(_word, tokens): the tokens' words, without a Python-level loop


def _functions(tokens: list[sql_scan.Token], derived: _Derived) -> Decision:
    """The role the functions called in the statement need (a name followed by an opening parenthesis)."""
    worst = Decision(READ, "")
    if derived.raising_names.isdisjoint(map(_word, tokens)):
        return worst  # most statements: no name below could raise the role
    for token, following in zip(tokens, tokens[1:]):
        name = token.word
        if not name or not (following.text.startswith("(") or name in _VIEW_NAMES):
            continue
        needed = FUNCTION_ROLES.get(name, READ)
        if needed == READ and name in derived.admin_table_functions:
            needed = ADMIN
        if _RANK[needed] > _RANK[worst.role]:
            worst = Decision(needed, f"function {name}()")
    if tokens and tokens[-1].word in _VIEW_NAMES:  # `FROM duckdb_logs` at the very end
        return Decision(FUNCTION_ROLES[tokens[-1].word], tokens[-1].word)
    return worst


def _literals(tokens: list[sql_scan.Token], derived: _Derived) -> Decision | None:
    """Refuses string literals that name the server's own files, for every role."""
    for token in [token for token in tokens if token.kind == "string"]:
        value = token.value
        if not value:
            continue
        lowered = value.lower()
        if derived.protected_urls and lowered.startswith(derived.protected_urls):
            return Decision(NOBODY, "the lake's own files")
        if "\x00" in value or lowered.startswith(_REMOTE_PREFIXES) or not derived.protected_paths:
            continue
        path = _resolve(value, derived.cwd)
        if any(path == protected or path.startswith(inside) for protected, inside in derived.protected_paths):
            return Decision(NOBODY, "a path that belongs to the server itself")
    return None


def _resolve(value: str, cwd: str) -> str:
    """The canonical path a file name literal stands for: os.path.realpath(os.path.join(cwd, name)), `file://`
    and `~` handled, computed with as few file system lookups as realpath's result allows.

    realpath looks up (lstat) every component of the joined path, the working directory's included, for
    every literal ('1998-12-01' too). Here, the working directory comes resolved (_Derived.cwd), and the
    literal's own components are looked up one by one, exactly as realpath does, until one cannot be looked
    up: nothing exists below a name that does not exist, so realpath would read the rest as written, and
    so does this. A symbolic link anywhere, or a '..' (which can climb from a missing name back into
    existing folders), hands the whole name to realpath itself. Typical literals cost one lookup.
    """
    if value[:7].lower() == "file://":
        value = value[7:]
    value = os.path.expanduser(value)  # unchanged unless it starts with '~'
    names = value.split("/")
    if ".." in names:
        return os.path.realpath(os.path.join(cwd, value))
    path = "" if value.startswith("/") else cwd.rstrip("/")  # "" stands for the root
    for index, name in enumerate(names):
        if not name or name == ".":
            continue
        candidate = path + "/" + name
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            # Missing (or not searchable, or not a folder): neither is anything below it. realpath keeps
            # the rest of the name as written, dropping empty and '.' components.
            rest = [part for part in names[index + 1:] if part and part != "."]
            return "/".join([candidate, *rest])
        if stat.S_ISLNK(mode):
            return os.path.realpath(os.path.join(cwd, value))
        path = candidate
    return path or "/"


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


def _kind_name(kind: duckdb.StatementType) -> str:
    """The statement kind's name ('SELECT'), looked up by the enum's integer value."""
    return _KIND_NAMES.get(kind.value) or str(kind).rsplit(".", 1)[-1]


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
