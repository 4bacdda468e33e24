"""Splits SQL with DuckDB's own parser and runs it on one connection, returning an Arrow stream or a row count."""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from . import type_info
from .errors import QueryError, classify

_COUNTING = {
    duckdb.StatementType.INSERT,
    duckdb.StatementType.UPDATE,
    duckdb.StatementType.DELETE,
}
_MERGE = getattr(duckdb.StatementType, "MERGE_INTO", None)
if _MERGE is not None:
    _COUNTING.add(_MERGE)

# Rough bytes per value by DuckDB type name, used to size record batches so that
# every Flight message stays well below the 16 MiB a client accepts by default.
_TARGET_BATCH_BYTES = 4 * 1024 * 1024
_MIN_BATCH_ROWS = 2048
_MAX_BATCH_ROWS = 256 * 1024
_WIDTHS = {
    "BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2,
    "INTEGER": 4, "UINTEGER": 4, "DATE": 4, "FLOAT": 4,
    "BIGINT": 8, "UBIGINT": 8, "DOUBLE": 8, "TIME": 8, "TIMESTAMP": 8,
    "HUGEINT": 16, "UHUGEINT": 16, "UUID": 16, "INTERVAL": 16,
}


@dataclass(frozen=True)
class Parsed:
    """One SQL text split into statements, with what DuckDB's parser says about the last one. Read-only once
    built: a cached Parsed serves every session that sends the same text."""

    statements: Sequence[duckdb.Statement]
    parameter_count: int
    # True when the last statement is SELECT-like (returns rows and changes nothing).
    is_query: bool = False
    # True when the last statement reports a changed-row count (INSERT, UPDATE, DELETE, MERGE).
    counts_rows: bool = False
    # The transaction statements in the text, in order: "begin" (BEGIN/START) or "end" (COMMIT/ROLLBACK/...).
    transactions: tuple[str, ...] = ()
    # Authorizers (by their decision_key) that have allowed this text: the decision depends only on the text,
    # the role and the policy, so it is made once (see Session._parse).
    allowed_for: set = field(default_factory=set, compare=False, repr=False)

    @property
    def last(self) -> duckdb.Statement:
        return self.statements[-1]


@dataclass
class Outcome:
    """What running a statement produced: a stream to send, and the changed-row count (-1 for queries)."""

    reader: pa.RecordBatchReader
    rowcount: int


def parse(sql: str, parser: Callable[[str], Sequence[duckdb.Statement]]) -> Parsed:
    """Parses SQL into statements with `parser` (a sandboxed connection's extract_statements, never DuckDB's
    default connection); a syntax error becomes QueryError with DuckDB's message."""
    try:
        statements = parser(sql)
    except Exception as exc:  # ParserException and friends
        raise classify(exc) from None
    if not statements:
        raise QueryError("no SQL statement to execute")
    names: set[str] = set()
    for statement in statements:
        names.update(statement.named_parameters)
    last = statements[-1]
    transactions = tuple(_transaction_kind(s.query) for s in statements if s.type == duckdb.StatementType.TRANSACTION)
    return Parsed(statements=statements, parameter_count=len(names),
                  is_query=list(last.expected_result_type) == [duckdb.ExpectedResultType.QUERY_RESULT],
                  counts_rows=last.type in _COUNTING, transactions=transactions)


def _transaction_kind(text: str) -> str:
    """'begin' for BEGIN/START TRANSACTION, 'end' for COMMIT/END/ROLLBACK/ABORT."""
    words = text.split()
    return "begin" if words and words[0].upper() in ("BEGIN", "START") else "end"


class ParseCache:
    """Parsed SQL by its text, shared by every session of one database. BI tools and dashboards send the same
    texts again and again, and parsing one and deciding its role again costs more than running `SELECT 1`.
    Parsing is pure (the text alone decides the tree, whoever sends it and whatever the catalog holds), so a
    cached parse is exact.

    Kept: queries and texts with parameters (what gets repeated), and what the caller asks to keep. Not kept:
    other statements without parameters (an INSERT with literal values is rarely sent twice, and a stream of
    them would push everything else out), texts that fail to parse, very long texts. Full: the least recently
    used entry goes."""

    def __init__(self, parser: Callable[[str], Sequence[duckdb.Statement]], entries: int = 1024,
                 longest: int = 16 * 1024):
        self._parser = parser
        self._entries: OrderedDict[str, Parsed] = OrderedDict()
        self._size = entries
        self._longest = longest
        self._lock = threading.Lock()

    def __call__(self, sql: str, keep: bool = False) -> Parsed:
        parsed = self._entries.get(sql)
        if parsed is not None:
            try:
                self._entries.move_to_end(sql)
            except KeyError:  # pushed out by another thread meanwhile
                pass
            return parsed
        parsed = parse(sql, self._parser)
        if len(sql) <= self._longest and (keep or parsed.is_query or parsed.parameter_count):
            with self._lock:
                self._entries[sql] = parsed
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return parsed

    def __len__(self) -> int:
        return len(self._entries)


def run(
    conn: duckdb.DuckDBPyConnection,
    parsed: Parsed,
    parameters: Sequence[object] | None = None,
) -> Outcome:
    """Executes every statement; returns the last one's result as a stream (or a one-row count)."""
    try:
        _execute(conn, parsed, parameters)
        if parsed.counts_rows and _is_count_result(conn):
            count = int(conn.fetchone()[0])
            table = pa.table({"Count": pa.array([count], pa.int64())})
            return Outcome(reader=table.to_reader(), rowcount=count)
        if not parsed.is_query:
            reader = conn.to_arrow_reader(_MIN_BATCH_ROWS)
            return Outcome(reader=reader, rowcount=0 if not parsed.counts_rows else -1)
        types = tuple(str(column[1]) for column in conn.description)
        reader = conn.to_arrow_reader(batch_rows(types))
        # The stream's schema (and so FlightInfo's) carries Flight SQL's column metadata, from the result's
        # DuckDB types; the batches pass through untouched.
        schema = type_info.result_schema(reader.schema, types)
        return Outcome(reader=pa.RecordBatchReader.from_batches(schema, reader), rowcount=-1)
    except Exception as exc:
        raise classify(exc) from None


def run_update(
    conn: duckdb.DuckDBPyConnection,
    parsed: Parsed,
    parameters: Sequence[object] | None = None,
) -> int:
    """Executes for effect and returns the changed-row count (0 for DDL and other statements).
    No Arrow on this path: executemany runs it once per parameter row."""
    try:
        _execute(conn, parsed, parameters)
        if parsed.counts_rows and _is_count_result(conn):
            return int(conn.fetchone()[0])
        if not parsed.is_query:
            return 0
        # A query sent as an update: drain it so its side effects (if any) complete.
        while conn.fetchmany(10_000):
            pass
        return 0
    except Exception as exc:
        raise classify(exc) from None


# `INSERT INTO target [(columns)] VALUES (?, ?, ...)` and nothing after: many parameter rows can then be
# inserted as one set-based INSERT ... SELECT from the Arrow parameter table instead of row by row.
_VALUES_OF_PARAMETERS = re.compile(r"\bVALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*;?\s*$", re.IGNORECASE)


def insert_from_table(parsed: Parsed, view: str) -> str | None:
    """The set-based rewrite of a single `INSERT ... VALUES (?, ...)`, reading rows from `view`; else None."""
    if len(parsed.statements) != 1 or parsed.last.type != duckdb.StatementType.INSERT:
        return None
    query = parsed.last.query
    match = _VALUES_OF_PARAMETERS.search(query)
    if match is None or query.count("?") != parsed.parameter_count:
        return None
    return query[:match.start()] + f"SELECT * FROM {view}"


def query_schema(conn: duckdb.DuckDBPyConnection, parsed: Parsed) -> pa.Schema | None:
    """The Arrow schema a parameterless query will stream, found by binding it without running it, with Flight SQL's
    column metadata for each field."""
    if len(parsed.statements) != 1 or not parsed.is_query or parsed.parameter_count:
        return None
    if parsed.last.type != duckdb.StatementType.SELECT or not parsed.last.query.strip():
        return None
    try:
        relation = conn.sql(parsed.last.query)
        types = [str(kind) for kind in relation.types]
        schema = _bound_schema(conn, relation.columns, types)
        if schema is None:
            schema = relation.limit(0).to_arrow_table().schema
    except Exception as exc:
        raise classify(exc) from None
    # Flight SQL's column metadata (type name, precision, scale ...) from the types DuckDB bound: no catalog query.
    return type_info.result_schema(schema, types)


# The Arrow type DuckDB streams for each plain scalar type. Building the schema from the bound types takes
# ~50 us; running the query with LIMIT 0 to see it (the fallback, for every other type) costs as much as running
# `SELECT 1` itself, on every CreatePreparedStatement. The table is checked once against DuckDB's own export.
_ARROW_OF = {
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INTEGER": pa.int32(),
    "BIGINT": pa.int64(), "UTINYINT": pa.uint8(), "USMALLINT": pa.uint16(), "UINTEGER": pa.uint32(),
    "UBIGINT": pa.uint64(), "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "VARCHAR": pa.string(),
    "BLOB": pa.binary(), "DATE": pa.date32(), "TIME": pa.time64("us"), "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP_S": pa.timestamp("s"), "TIMESTAMP_MS": pa.timestamp("ms"), "TIMESTAMP_NS": pa.timestamp("ns"),
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_table_checked: list[bool] = []  # [True] once the table above matched DuckDB's export, [False] if it did not


def _arrow_of(type_name: str) -> pa.DataType | None:
    known = _ARROW_OF.get(type_name)
    if known is not None:
        return known
    match = _DECIMAL.fullmatch(type_name)
    return pa.decimal128(int(match.group(1)), int(match.group(2))) if match else None


def _bound_schema(conn: duckdb.DuckDBPyConnection, names: Sequence[str], types: Sequence[str]) -> pa.Schema | None:
    """The schema from the bound column types when all are plain scalars with known Arrow types, else None."""
    if len(set(names)) != len(names):
        return None
    fields = []
    for name, type_name in zip(names, types):
        arrow = _arrow_of(type_name)
        if arrow is None:
            return None
        fields.append(pa.field(name, arrow))
    if not _table_checked:
        probe = ", ".join(f"NULL::{name} AS c{i}" for i, name in enumerate(list(_ARROW_OF) + ["DECIMAL(18,3)"]))
        exported = conn.sql(f"SELECT {probe}").limit(0).to_arrow_table().schema
        expected = list(_ARROW_OF.values()) + [pa.decimal128(18, 3)]
        _table_checked.append([f.type for f in exported] == expected)
    return pa.schema(fields) if _table_checked[0] else None


@functools.lru_cache(maxsize=1024)
def batch_rows(type_names: tuple[str, ...]) -> int:
    """Rows per record batch so that one batch is about 4 MiB on the wire, from the result's DuckDB type names
    (memoized: the same few result shapes recur)."""
    if not type_names:
        return _MIN_BATCH_ROWS
    width = 0
    for name in type_names:
        type_name = name.upper()
        width += _WIDTHS.get(type_name, 16 if type_name.startswith("DECIMAL") else 48)
    rows = _TARGET_BATCH_BYTES // max(width, 1)
    rows = max(_MIN_BATCH_ROWS, min(_MAX_BATCH_ROWS, rows))
    return rows - rows % _MIN_BATCH_ROWS


def _execute(conn: duckdb.DuckDBPyConnection, parsed: Parsed, parameters: Sequence[object] | None) -> None:
    """Runs every statement, binding the parameters to the last. Statement objects, not their text:
    statements DuckDB rewrites (PIVOT) carry no query text."""
    for statement in parsed.statements[:-1]:
        conn.execute(statement)
    conn.execute(parsed.last, parameters if parameters else None)


def _is_count_result(conn: duckdb.DuckDBPyConnection) -> bool:
    description = conn.description
    return bool(description) and len(description) == 1 and description[0][0] == "Count"
