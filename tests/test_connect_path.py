"""What a client's connect costs the server (issue 11): the GetSqlInfo and GetXdbcTypeInfo answers are built once
and shared, and answered without the session's connection.

In-process tests: the cached answers against the uncached builders."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flight_server.engine import type_info
from flight_server.protocol import flight_sql_pb2 as sql
from flight_server.protocol import schemas, sql_info
from flight_server.service.capabilities import sql_info_values
from flight_server.service.handlers import metadata
from flight_server.service.handlers.metadata import MetadataHandlers

VALUES = sql_info_values(False, "v1.5.5", ["ASOF", "PIVOT", "QUALIFY"])


# ---------------------------------------------------------------------------
# GetSqlInfo and GetXdbcTypeInfo
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("wanted", [
    [],  # every id
    [sql_info.SQL_KEYWORDS, sql_info.FLIGHT_SQL_SERVER_NAME, sql_info.SQL_IDENTIFIER_CASE],  # a subset, in order
    [sql_info.FLIGHT_SQL_SERVER_VERSION, sql_info.FLIGHT_SQL_SERVER_VERSION],  # the same id twice
    [99999, sql_info.FLIGHT_SQL_SERVER_READ_ONLY, 7],  # unknown ids are skipped
    [99999],  # nothing known: an empty table
])
def test_cached_sql_info_is_the_built_answer(wanted):
    answers = sql_info.Answers(VALUES)
    first = answers.table(wanted)
    assert first.equals(sql_info.table(VALUES, wanted))
    assert first.schema.equals(schemas.SQL_INFO)
    assert answers.table(tuple(wanted)) is first  # built once, shared (Tables are immutable)


def test_sql_info_cache_is_bounded():
    answers = sql_info.Answers(VALUES)
    for info_id in range(3 * answers.CACHED):
        assert answers.table([info_id]).equals(sql_info.table(VALUES, [info_id]))
    assert answers._cached.cache_info().currsize == answers.CACHED
    huge = [sql_info.FLIGHT_SQL_SERVER_NAME] * (answers.MAX_CACHED_IDS + 1)
    assert answers.table(huge).equals(sql_info.table(VALUES, huge))
    assert answers.table(huge) is not answers.table(huge)  # such requests are built each time, never kept


@pytest.mark.parametrize("data_type", [None, 12, 93, -5, 12345])
def test_cached_xdbc_type_info_is_the_built_answer(data_type):
    built = schemas.table(type_info.rows(data_type), schemas.XDBC_TYPE_INFO)
    assert metadata._xdbc_table(data_type).equals(built)
    assert metadata._xdbc_table(data_type) is metadata._xdbc_table(data_type)
    command = sql.CommandGetXdbcTypeInfo() if data_type is None else sql.CommandGetXdbcTypeInfo(data_type=data_type)
    assert MetadataHandlers()._xdbc(None, command).equals(built)


class _Server(MetadataHandlers):
    sql_info_values = VALUES


def _locked_session():
    def busy():
        raise AssertionError("a constant answer took the session's connection")
    return SimpleNamespace(session=SimpleNamespace(busy=busy))


@pytest.mark.parametrize("command", [sql.CommandGetSqlInfo(), sql.CommandGetSqlInfo(info=[0, 1]),
                                     sql.CommandGetXdbcTypeInfo(), sql.CommandGetTableTypes()])
def test_constant_metadata_needs_no_session_lock(command):
    server = _Server()
    assert server.do_get_metadata(_locked_session(), command) is not None
    if isinstance(command, sql.CommandGetSqlInfo):
        assert server._sql_info(None, command).equals(sql_info.table(VALUES, list(command.info)))
    with pytest.raises(AssertionError, match="session's connection"):  # a catalog command still takes it
        server.do_get_metadata(_locked_session(), sql.CommandGetCatalogs())


def test_sql_info_answers_follow_the_servers_values():
    server = _Server()
    assert server._sql_info(None, sql.CommandGetSqlInfo()).equals(sql_info.table(VALUES))
    server.sql_info_values = {**VALUES, sql_info.FLIGHT_SQL_SERVER_READ_ONLY: True}
    answer = server._sql_info(None, sql.CommandGetSqlInfo(info=[sql_info.FLIGHT_SQL_SERVER_READ_ONLY]))
    assert answer.equals(sql_info.table(server.sql_info_values, [sql_info.FLIGHT_SQL_SERVER_READ_ONLY]))
