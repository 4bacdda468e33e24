"""The parse cache shared by a pool's sessions, and the role decisions remembered on it: a text one role may
run must still be refused to another, whichever asked first, however often."""

from __future__ import annotations

import pytest

from flight_server.auth import roles
from flight_server.auth.authorizer import RoleAuthorizer
from flight_server.engine.database import Database, EngineSettings
from flight_server.engine.errors import PermissionDeniedError, QueryError
from flight_server.engine.pool import SessionPool
from flight_server.engine.statements import ParseCache


@pytest.fixture()
def database(tmp_path):
    db = Database(EngineSettings(database_path=str(tmp_path / "cache.duckdb"),
                                 allowed_directories=(str(tmp_path / "files"),)))
    conn = db.connect()
    conn.execute("CREATE TABLE t AS SELECT range AS a FROM range(5)")
    conn.close()
    return db


@pytest.fixture()
def pool(database):
    pool = SessionPool(database.connect, max_sessions=8, idle_timeout=300, parse=database.parse)
    yield pool
    pool.shutdown(5)


def _policy(database):
    return roles.Policy(table_functions=database.table_functions, parse=database.parse)


def test_same_text_is_parsed_once(database):
    calls = []

    def counting(sql):
        calls.append(sql)
        return database.parse(sql)

    cache = ParseCache(counting)
    first = cache("SELECT 1")
    assert cache("SELECT 1") is first
    assert cache("SELECT 2") is not first
    assert calls == ["SELECT 1", "SELECT 2"]
    assert first.is_query and not first.counts_rows
    assert cache("DELETE FROM t").counts_rows


def test_failed_and_long_texts_are_not_kept(database):
    cache = ParseCache(database.parse, longest=50)
    for _ in range(2):
        with pytest.raises(QueryError, match="(?i)syntax"):
            cache("SELEC 1")
    assert len(cache) == 0
    long_text = "SELECT " + " + ".join(["1"] * 40)
    assert cache(long_text) is not cache(long_text)
    assert len(cache) == 0


def test_cache_is_bounded_and_drops_the_least_recently_used(database):
    cache = ParseCache(database.parse, entries=4)
    first, hot = cache("SELECT 0"), cache("SELECT 'hot'")
    for i in range(1, 10):
        cache(f"SELECT {i}")
        assert cache("SELECT 'hot'") is hot  # used all along: kept
    assert len(cache) == 4
    assert cache("SELECT 9") is cache("SELECT 9")
    assert cache("SELECT 0") is not first


def test_literal_statements_do_not_push_queries_out(database):
    """A stream of INSERTs with literal values (each text new) is not kept; queries, statements with
    parameters and what the caller asks to keep are."""
    cache = ParseCache(database.parse, entries=4)
    query = cache("SELECT count(*) FROM t")
    for i in range(50):
        cache(f"INSERT INTO t VALUES ({i})")
    assert cache("SELECT count(*) FROM t") is query
    assert len(cache) == 1
    assert cache("INSERT INTO t VALUES (?)") is cache("INSERT INTO t VALUES (?)")
    assert cache("COMMIT", keep=True) is cache("COMMIT")


# Texts the cache keeps (queries, or with parameters) that a reader may not run.
@pytest.mark.parametrize("sql", ["DELETE FROM t WHERE a = ?", "INSERT INTO t VALUES (?)",
                                 "UPDATE t SET a = ? WHERE a = 1", "EXPLAIN ANALYZE DELETE FROM t",
                                 "SELECT nextval('s')",
                                 "SELECT * FROM duckdb_secrets()"])
def test_allowed_for_one_role_is_still_refused_for_another(pool, database, sql):
    """Admin runs (or is allowed) a text first; a reader sending the same text through the same cache is refused,
    every time; and the writer's or admin's allowance does not leak to the reader by order either."""
    policy = _policy(database)
    admin = pool.get("admin", RoleAuthorizer(roles.ADMIN, policy), "admin")
    reader = pool.get("reader", RoleAuthorizer(roles.READ, policy), "reader")
    admin._parse(sql)  # the admin's check passes and is remembered on the shared parse
    parsed = pool.parse_cache(sql)
    assert (roles.ADMIN, id(policy)) in parsed.allowed_for
    for _ in range(3):
        with pytest.raises(PermissionDeniedError, match="role 'read' may not"):
            reader._parse(sql)
    assert (roles.READ, id(policy)) not in parsed.allowed_for


def test_refusals_for_every_role_are_never_remembered_as_allowed(pool, database, tmp_path):
    policy = roles.Policy(table_functions=database.table_functions, parse=database.parse,
                          protected_paths=(str(tmp_path / "cache.duckdb"),))
    admin = pool.get("admin", RoleAuthorizer(roles.ADMIN, policy), "admin")
    sql = f"SELECT * FROM read_blob('{tmp_path / 'cache.duckdb'}')"
    for _ in range(3):
        with pytest.raises(PermissionDeniedError, match="belongs to the server itself"):
            admin._parse(sql)
    assert not pool.parse_cache(sql).allowed_for


def test_a_new_policy_does_not_inherit_allowances(pool, database):
    """Allowances are keyed by the policy object too: a text allowed under one policy is decided again under
    another (e.g. one that protects more paths)."""
    loose = _policy(database)
    strict = roles.Policy(table_functions=database.table_functions, parse=database.parse,
                          protected_paths=("/",))
    sql = "SELECT * FROM read_text('notes.txt')"
    pool.get("a", RoleAuthorizer(roles.ADMIN, loose), "a")._parse(sql)
    with pytest.raises(PermissionDeniedError):
        pool.get("b", RoleAuthorizer(roles.ADMIN, strict), "b")._parse(sql)


def test_cached_statements_run_on_many_sessions(pool, database):
    """One cached parse serves several sessions' connections (DuckDB copies the statement on execute)."""
    policy = _policy(database)
    sessions = [pool.get(f"s{i}", RoleAuthorizer(roles.READ, policy), f"u{i}") for i in range(3)]
    for session in sessions * 2:
        table = session.execute("SELECT sum(a) AS s FROM t").reader.read_all()
        assert table.column("s")[0].as_py() == 10
    # The query, and a reader's BEGIN TRANSACTION READ ONLY / COMMIT, each parsed once for all sessions.
    assert len(pool.parse_cache) == 3
