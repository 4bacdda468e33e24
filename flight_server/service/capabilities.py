"""What this server tells clients about itself through GetSqlInfo: every value true to what it does."""

from __future__ import annotations

import pyarrow as pa

from .. import __version__
from ..protocol import sql_info


def sql_info_values(read_only: bool, engine_version: str, keywords: list[str]) -> dict[int, object]:
    s = sql_info
    return {
        s.FLIGHT_SQL_SERVER_NAME: "DuckDB Flight SQL Server",
        s.FLIGHT_SQL_SERVER_VERSION: f"{__version__} (DuckDB {engine_version})",
        s.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
        s.FLIGHT_SQL_SERVER_READ_ONLY: read_only,
        s.FLIGHT_SQL_SERVER_SQL: True,
        s.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
        s.FLIGHT_SQL_SERVER_TRANSACTION: s.Int32(s.SQL_SUPPORTED_TRANSACTION_TRANSACTION),
        s.FLIGHT_SQL_SERVER_CANCEL: True,
        s.FLIGHT_SQL_SERVER_BULK_INGESTION: not read_only,
        s.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: True,
        s.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: s.Int32(0),
        s.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: s.Int32(0),
        s.SQL_DDL_CATALOG: True,
        s.SQL_DDL_SCHEMA: True,
        s.SQL_DDL_TABLE: True,
        s.SQL_IDENTIFIER_CASE: s.Int32(s.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        s.SQL_IDENTIFIER_QUOTE_CHAR: '"',
        s.SQL_QUOTED_IDENTIFIER_CASE: s.Int32(s.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        s.SQL_ALL_TABLES_ARE_SELECTABLE: True,
        s.SQL_NULL_ORDERING: s.Int32(s.SQL_NULLS_SORTED_AT_END),
        s.SQL_KEYWORDS: keywords,
        s.SQL_SEARCH_STRING_ESCAPE: "\\",
        s.SQL_SUPPORTS_COLUMN_ALIASING: True,
        s.SQL_NULL_PLUS_NULL_IS_NULL: True,
        s.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: True,
        s.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: True,
        s.SQL_SUPPORTS_NON_NULLABLE_COLUMNS: True,
        # Bitmasks: grammar (minimum|core|extended), ANSI92 (entry|intermediate|full).
        s.SQL_SUPPORTED_GRAMMAR: s.Int32(0b111),
        s.SQL_ANSI92_SUPPORTED_LEVEL: s.Int32(0b111),
        s.SQL_OUTER_JOINS_SUPPORT_LEVEL: s.Int32(s.SQL_FULL_OUTER_JOINS),
        s.SQL_SCHEMA_TERM: "schema",
        s.SQL_PROCEDURE_TERM: "",
        s.SQL_CATALOG_TERM: "database",
        s.SQL_CATALOG_AT_START: True,
        s.SQL_SELECT_FOR_UPDATE_SUPPORTED: False,
        s.SQL_STORED_PROCEDURES_SUPPORTED: False,
        s.SQL_SUPPORTED_SUBQUERIES: s.Int32(0b1111),
        s.SQL_CORRELATED_SUBQUERIES_SUPPORTED: True,
        s.SQL_SUPPORTED_UNIONS: s.Int32(0b11),
        s.SQL_DEFAULT_TRANSACTION_ISOLATION: s.Int32(s.SQL_TRANSACTION_SERIALIZABLE),
        s.SQL_TRANSACTIONS_SUPPORTED: True,
        # Bitmask with bit n for SqlTransactionIsolationLevel n: DuckDB runs snapshot isolation,
        # reported as SERIALIZABLE.
        s.SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS: s.Int32(1 << s.SQL_TRANSACTION_SERIALIZABLE),
        s.SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT: False,
        s.SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED: False,
        s.SQL_BATCH_UPDATES_SUPPORTED: True,
        s.SQL_SAVEPOINTS_SUPPORTED: False,
    }
