"""Roles (read < write < admin) and the role each SQL statement needs, decided from DuckDB's own parser."""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb

READ, WRITE, ADMIN = "read", "write", "admin"
ROLES = (READ, WRITE, ADMIN)
_RANK = {READ: 0, WRITE: 1, ADMIN: 2}

T = duckdb.StatementType
_BY_TYPE = {
    T.SELECT: READ,
    T.EXPLAIN: READ,
    T.TRANSACTION: READ,
    T.INSERT: WRITE,
    T.UPDATE: WRITE,
    T.DELETE: WRITE,
    T.CREATE: WRITE,
    T.DROP: WRITE,
    T.ALTER: WRITE,
    T.VACUUM: WRITE,
    T.ANALYZE: WRITE,
    T.ATTACH: ADMIN,
    T.DETACH: ADMIN,
    T.LOAD: ADMIN,  # LOAD and INSTALL
    T.EXPORT: ADMIN,
    T.PREPARE: ADMIN,  # SQL-level PREPARE/EXECUTE would hide the inner statement from this check
    T.EXECUTE: ADMIN,
}
for _name in ("MERGE_INTO", "COPY_DATABASE"):
    if hasattr(T, _name):
        _BY_TYPE[getattr(T, _name)] = WRITE if _name == "MERGE_INTO" else ADMIN

# Settings a read or write session may change for itself; everything else (global resources,
# extension and file settings) needs admin.
SESSION_SETTINGS = {
    "search_path", "schema", "timezone", "calendar", "default_collation", "default_order",
    "default_null_order", "errors_as_json", "enable_profiling", "profiling_mode", "explain_output",
    "integer_division", "variable", "enable_progress_bar", "ieee_floating_point_ops",
}
_SET = re.compile(r"^\s*(?:SET|RESET)\s+(?:(GLOBAL|SESSION|LOCAL)\s+)?([A-Za-z_][\w.]*)", re.IGNORECASE)
_USE = re.compile(r"^\s*USE\b", re.IGNORECASE)
_COPY_TO = re.compile(r"\bTO\b", re.IGNORECASE)
_CHECKPOINT = re.compile(r"^\s*(FORCE\s+)?CHECKPOINT\b", re.IGNORECASE)


def required_role(statement: duckdb.Statement) -> str:
    """The least role that may run this statement (unknown kinds need admin)."""
    kind = statement.type
    query = statement.query
    if kind == T.SET:
        if _USE.match(query):
            return READ
        match = _SET.match(query)
        if match is None or (match.group(1) or "").upper() == "GLOBAL":
            return ADMIN  # PRAGMA x=..., SET GLOBAL ...
        name = match.group(2).lower()
        return READ if name in SESSION_SETTINGS or name.startswith("variable") else ADMIN
    if kind == T.COPY:
        # COPY t FROM file loads data (write); COPY ... TO file writes files on the server (admin).
        return ADMIN if _copies_to_file(query) else WRITE
    if kind == T.CALL:
        return ADMIN if _CHECKPOINT.match(query) else WRITE
    return _BY_TYPE.get(kind, ADMIN)


def _copies_to_file(query: str) -> bool:
    depth, index = 0, 0
    text = query
    while index < len(text):
        char = text[index]
        if char in "'\"":
            end = text.find(char, index + 1)
            index = len(text) if end < 0 else end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and _COPY_TO.match(text, index) and (index == 0 or not text[index - 1].isalnum()):
            return True
        index += 1
    return False


def allows(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


def check(role: str, statements: Iterable[duckdb.Statement]) -> str | None:
    """None if `role` may run every statement, else a message naming the first one it may not."""
    for statement in statements:
        needed = required_role(statement)
        if not allows(role, needed):
            kind = str(statement.type).rsplit(".", 1)[-1]
            return f"role '{role}' may not run {kind} statements (needs '{needed}')"
    return None
