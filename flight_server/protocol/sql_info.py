"""SqlInfo ids from the Flight SQL spec and the dense-union table that answers CommandGetSqlInfo."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import pyarrow as pa

from . import schemas

# Ids (public spec, enum SqlInfo) for the entries this server reports.
FLIGHT_SQL_SERVER_NAME = 0
FLIGHT_SQL_SERVER_VERSION = 1
FLIGHT_SQL_SERVER_ARROW_VERSION = 2
FLIGHT_SQL_SERVER_READ_ONLY = 3
FLIGHT_SQL_SERVER_SQL = 4
FLIGHT_SQL_SERVER_SUBSTRAIT = 5
FLIGHT_SQL_SERVER_TRANSACTION = 8
FLIGHT_SQL_SERVER_CANCEL = 9
FLIGHT_SQL_SERVER_BULK_INGESTION = 10
FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
SQL_DDL_CATALOG = 500
SQL_DDL_SCHEMA = 501
SQL_DDL_TABLE = 502
SQL_IDENTIFIER_CASE = 503
SQL_IDENTIFIER_QUOTE_CHAR = 504
SQL_QUOTED_IDENTIFIER_CASE = 505
SQL_ALL_TABLES_ARE_SELECTABLE = 506
SQL_NULL_ORDERING = 507
SQL_KEYWORDS = 508
SQL_SEARCH_STRING_ESCAPE = 513
SQL_SUPPORTS_COLUMN_ALIASING = 515
SQL_NULL_PLUS_NULL_IS_NULL = 516
SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY = 520
SQL_SUPPORTED_GROUP_BY = 522
SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE = 523
SQL_SUPPORTS_NON_NULLABLE_COLUMNS = 524
SQL_SUPPORTED_GRAMMAR = 525
SQL_ANSI92_SUPPORTED_LEVEL = 526
SQL_OUTER_JOINS_SUPPORT_LEVEL = 528
SQL_SCHEMA_TERM = 529
SQL_PROCEDURE_TERM = 530
SQL_CATALOG_TERM = 531
SQL_CATALOG_AT_START = 532
SQL_SELECT_FOR_UPDATE_SUPPORTED = 536
SQL_STORED_PROCEDURES_SUPPORTED = 537
SQL_SUPPORTED_SUBQUERIES = 538
SQL_CORRELATED_SUBQUERIES_SUPPORTED = 539
SQL_SUPPORTED_UNIONS = 540
SQL_DEFAULT_TRANSACTION_ISOLATION = 562
SQL_TRANSACTIONS_SUPPORTED = 563
SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS = 564
SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT = 565
SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED = 566
SQL_BATCH_UPDATES_SUPPORTED = 572
SQL_SAVEPOINTS_SUPPORTED = 573

# Enum values used as SqlInfo answers (public spec).
SQL_SUPPORTED_TRANSACTION_TRANSACTION = 1
SQL_CASE_SENSITIVITY_CASE_INSENSITIVE = 1
SQL_NULLS_SORTED_AT_END = 3
SQL_FULL_OUTER_JOINS = 2
SQL_TRANSACTION_SERIALIZABLE = 4


class Int32(int):
    """Marks an int reported as int32_bitmask (ints otherwise go out as bigint_value)."""


_STRING, _BOOL, _BIGINT, _INT32, _STRING_LIST, _INT_MAP = range(6)


def _slot(value: object) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, Int32):
        return _INT32
    if isinstance(value, int):
        return _BIGINT
    if isinstance(value, str):
        return _STRING
    if isinstance(value, Mapping):
        return _INT_MAP
    return _STRING_LIST


def table(values: Mapping[int, object], wanted: Iterable[int] = ()) -> pa.Table:
    """The GetSqlInfo answer: every known id, or only the wanted ones (unknown ids are skipped)."""
    ids = [i for i in wanted if i in values] if wanted else sorted(values)
    children: list[list[object]] = [[] for _ in range(6)]
    type_ids, offsets = [], []
    for info_id in ids:
        value = values[info_id]
        slot = _slot(value)
        type_ids.append(slot)
        offsets.append(len(children[slot]))
        children[slot].append(list(value.items()) if slot == _INT_MAP else value)
    union_type = schemas.SQL_INFO_VALUE
    child_arrays = [pa.array(items, type=union_type.field(i).type) for i, items in enumerate(children)]
    union = pa.UnionArray.from_dense(
        pa.array(type_ids, pa.int8()), pa.array(offsets, pa.int32()), child_arrays,
        [union_type.field(i).name for i in range(6)], list(range(6)))
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), union], schema=schemas.SQL_INFO)


class Answers:
    """GetSqlInfo answers for one server's values, which are fixed for its life. ADBC asks on every connect and
    building the table costs ~200 us, so the tables are kept per requested id tuple (in request order; the empty
    tuple is every id) for the most recent CACHED requests. The tables are shared: pyarrow Tables are immutable.
    A request naming more than MAX_CACHED_IDS ids is built each time, so the cache stays small."""

    CACHED = 64
    MAX_CACHED_IDS = 1024

    def __init__(self, values: Mapping[int, object]):
        self.values = values
        self._cached = functools.lru_cache(maxsize=self.CACHED)(self._build)

    def table(self, wanted: Iterable[int] = ()) -> pa.Table:
        ids = tuple(wanted)
        if len(ids) > self.MAX_CACHED_IDS:
            return self._build(ids)
        return self._cached(ids)

    def _build(self, ids: tuple[int, ...]) -> pa.Table:
        return table(self.values, ids)
