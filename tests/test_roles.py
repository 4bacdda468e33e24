"""The role decision without a server: a corpus of statements with the least role each needs, decided on a
sandboxed engine exactly as the server decides (auth/roles.py + the engine's parser), plus the engine-level
layer (read-only transactions, the locked configuration) checked against DuckDB itself."""

from __future__ import annotations

import itertools
import os

import pytest

from flight_server.auth import roles
from flight_server.auth.authorizer import RoleAuthorizer
from flight_server.engine.database import SESSION_SETTINGS, Database, EngineSettings
from flight_server.engine.errors import PermissionDeniedError
from flight_server.engine.session import Session

R, W, A, N = roles.READ, roles.WRITE, roles.ADMIN, roles.NOBODY


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roles")
    database = Database(EngineSettings(database_path=str(folder / "flight.duckdb"),
                                       allowed_directories=(str(folder / "files"),),
                                       temp_directory=str(folder / "tmp")))
    database.connect().execute("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2); CREATE SEQUENCE s")
    db_file = os.path.realpath(folder / "flight.duckdb")
    policy = roles.Policy(protected_paths=(db_file, db_file + ".wal", os.path.realpath(folder / "tmp"),
                                           os.path.realpath(folder / "backups")),
                          table_functions=database.table_functions, parse=database.parse)
    yield folder, database, policy
    database.close()


def needed(engine, sql: str) -> str:
    _, database, policy = engine
    statements = database.parse(sql)
    return max((roles.decide(s, policy).role for s in statements), key=lambda r: roles._RANK[r])


# (statement, least role). Placeholders: {db} the database file, {files} the allowed folder.
CORPUS = [
    # reads
    ("SELECT 1", R), ("select a from t where a > 1 order by 1", R), ("FROM t", R), ("VALUES (1), (2)", R),
    ("WITH x AS (SELECT 1) SELECT * FROM x", R), ("SELECT * FROM t UNION ALL SELECT 2", R),
    ("DESCRIBE t", R), ("SHOW TABLES", R), ("SUMMARIZE t", R), ("PRAGMA table_info('t')", R),
    ("PRAGMA version", R), ("PRAGMA show_tables", R), ("PRAGMA database_list", R), ("CALL pragma_version()", R),
    ("SELECT * FROM duckdb_tables()", R), ("SELECT * FROM range(10)", R), ("SELECT currval('s')", R),
    ("SELECT * FROM read_csv('{files}/x.csv')", R), ("SELECT * FROM '{files}/x.parquet'", R),
    ("SELECT 'checkpoint()' AS text", R), ("SELECT 1 -- checkpoint()\n", R), ("SELECT /* nextval('s') */ 1", R),
    ("SELECT $$ nextval('s') $$", R), ("SELECT $q$ COPY t TO 'f' $q$", R), ('SELECT 1 AS "checkpoint"', R),
    ("UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME n VALUE v", R),
    ("EXPLAIN SELECT * FROM t", R), ("EXPLAIN ANALYZE SELECT * FROM t", R),
    ("EXPLAIN (FORMAT json) SELECT 1", R), ("EXPLAIN ANALYZE (SELECT 1)", R),
    ("CREATE TEMP TABLE x AS SELECT 1", R), ("CREATE TEMPORARY VIEW v AS SELECT 1", R),
    ("CREATE OR REPLACE TEMP MACRO m(x) AS x + 1", R),
    # per-session settings
    ("SET TimeZone = 'UTC'", R), ("SET SESSION TimeZone TO 'UTC'", R), ("SET search_path = 'main'", R),
    ("RESET TimeZone", R), ("SET VARIABLE v = 1", R), ("USE main", R), ("SET Calendar = 'gregorian'", R),
    ("SET integer_division = true", R), ("SET \"TimeZone\" = 'UTC'", R),
    # global or unknown settings
    ("SET GLOBAL TimeZone = 'UTC'", A), ("SET/**/GLOBAL TimeZone = 'UTC'", A), ("set global timezone='UTC'", A),
    ("SET default_order = 'DESC'", A), ("SET default_null_order = 'nulls_first'", A),
    ("SET default_collation = 'nocase'", A), ("SET threads = 1", A), ("PRAGMA threads = 1", A),
    ("SET memory_limit = '1GB'", A), ("SET custom_extension_repository = 'http://x'", A),
    ("SET autoinstall_known_extensions = true", A), ("SET s3_endpoint = 'x'", A),
    ("SET enable_external_access = true", A), ("SET lock_configuration = false", A), ("RESET threads", A),
    ("SET python_enable_replacements = true", A),
    # writes
    ("INSERT INTO t VALUES (3)", W), ("UPDATE t SET a = 2", W), ("DELETE FROM t", W),
    ("WITH x AS (SELECT 1) DELETE FROM t", W), ("CREATE TABLE x (a INT)", W), ("CREATE TABLE x AS SELECT 1", W),
    ("DROP TABLE t", W), ("ALTER TABLE t ADD COLUMN b INT", W), ("CREATE VIEW v AS SELECT 1", W),
    ("CREATE SCHEMA sx", W), ("CREATE SEQUENCE s2", W), ("CREATE INDEX i ON t (a)", W),
    ("CREATE MACRO m2(x) AS x", W), ("COMMENT ON TABLE t IS 'x'", W), ("VACUUM", W), ("ANALYZE", W),
    ("MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE", W),
    ("COPY t FROM '{files}/x.csv'", W), ("SELECT nextval('s')", W), ("SELECT main.nextval('s')", W),
    ("SELECT 1; SELECT nextval('s')", W), ("SELECT list_transform([1], x -> nextval('s'))", W),
    ("BEGIN", W), ("BEGIN TRANSACTION", W), ("COMMIT", W), ("ROLLBACK", W),
    ("BEGIN TRANSACTION; SELECT 1; COMMIT", W), ("PIVOT t ON a", W),
    ("EXPLAIN ANALYZE DELETE FROM t", W), ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", W),
    ("EXPLAIN ANALYZE DROP TABLE t", W), ("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", W),
    ("EXPLAIN DELETE FROM t", W), ("explain analyze update t set a = 1", W),
    ("EXPLAIN ANALYZE SELECT nextval('s')", W),
    # admin
    ("COPY t TO '{files}/x.csv'", A), ("COPY t /*(*/ TO '{files}/f'", A), ("COPY t --(\n TO '{files}/f'", A),
    ("COPY (SELECT $$($$ AS a) TO '{files}/f'", A), ("COPY (SELECT ')' AS a) TO '{files}/f'", A),
    ("COPY (SELECT 1) TO '{files}/f' (FORMAT csv)", A), ("copy t to '{files}/f'", A),
    ("EXPLAIN ANALYZE COPY (SELECT 'x') TO '{files}/f'", A), ("EXPLAIN COPY t TO '{files}/f'", A),
    ("EXPORT DATABASE '{files}/e'", A), ("ATTACH '{files}/x.db' AS x", A), ("DETACH x", A),
    ("LOAD json", A), ("INSTALL json", A), ("CHECKPOINT", A), ("FORCE CHECKPOINT", A),
    ("SELECT * FROM checkpoint()", A), ("CALL checkpoint()", A), ("SELECT * FROM force_checkpoint()", A),
    ('SELECT * FROM "checkpoint"()', A), ("SELECT * FROM main.checkpoint()", A),
    ("SELECT * FROM enable_logging()", A), ("SELECT * FROM disable_logging()", A), ("FROM duckdb_logs", A),
    ("SELECT * FROM duckdb_logs()", A), ("SELECT * FROM duckdb_log_contexts()", A),
    ("SELECT * FROM truncate_duckdb_logs()", A), ("SELECT write_log('x')", A),
    ("SELECT * FROM duckdb_secrets()", A), ("FROM duckdb_secrets", A), ("SELECT * FROM which_secret('s3://b', 's3')", A),
    ("SELECT * FROM query('SELECT 1')", A), ("SELECT * FROM json_execute_serialized_sql('{{}}')", A),
    ("SELECT * FROM enable_profiling()", A), ("PRAGMA enable_profiling", A), ("PRAGMA force_checkpoint", A),
    ("PREPARE p AS SELECT 1", A), ("EXECUTE p", A), ("CREATE SECRET sx (TYPE s3)", A),
    ("CREATE OR REPLACE PERSISTENT SECRET sx (TYPE s3)", A), ("DROP SECRET sx", A),
    ("COPY FROM DATABASE memory TO other", A),
    ("CREATE MACRO sneaky() AS TABLE SELECT * FROM checkpoint()", A),
    ("CREATE VIEW v2 AS SELECT * FROM duckdb_logs", A),
    # nobody
    ("CREATE OR REPLACE SECRET flight_s3 (TYPE s3)", N), ("DROP SECRET flight_s3", N),
    ("DROP SECRET IF EXISTS flight_s3", N),
    ("SELECT * FROM read_blob('{db}')", N), ("SELECT * FROM read_blob('{db}.wal')", N),
    ("SELECT * FROM read_blob('{files}/../flight.duckdb')", N), ("SELECT * FROM read_text('file://{db}')", N),
    ("COPY (SELECT 'x') TO '{db}' (FORMAT csv, USE_TMP_FILE false)", N),
    ("EXPLAIN ANALYZE COPY (SELECT 'x') TO '{db}' (FORMAT csv, USE_TMP_FILE false)", N),
    ("SELECT * FROM glob('{tmp}/*')", N), ("COPY t TO '{backups}/b/t.parquet'", N),
    ("SELECT E'a\\'b', checkpoint()", N),
    ("COPY t TO '{files}/o' (FORMAT csv, PARTITION_BY (a), FILENAME_PATTERN '../../flight')", N),
    ("COPY t TO '{files}/../files/x.csv'", N), ("COPY t TO ?", N), ("COPY (SELECT 'x') TO $1 (FORMAT csv, USE_TMP_FILE false)", N), ("SELECT 1 /* /* */ , checkpoint() --*/\n", N),
]


@pytest.mark.parametrize("sql,role", CORPUS, ids=[f"{i}-{c[1]}" for i, c in enumerate(CORPUS)])
def test_corpus(engine, sql, role):
    folder = engine[0]
    text = sql.format(db=os.path.realpath(folder / "flight.duckdb"), files=folder / "files",
                      tmp=os.path.realpath(folder / "tmp"), backups=os.path.realpath(folder / "backups"))
    assert needed(engine, text) == role, text


# Comments and quoting placed everywhere must never lower the role a statement needs.
DISGUISES = [
    lambda s: s.lower(), lambda s: s.upper(), lambda s: "/* x */ " + s, lambda s: s + " -- trailing",
    lambda s: "\n\t " + s.replace(" ", "\n  "), lambda s: s.replace(" ", " /**/ "),
    lambda s: "SELECT 1; " + s, lambda s: s + "; SELECT 1",
]
HOSTILE = [(sql, role) for sql, role in CORPUS if role in (W, A, N) and "{" not in sql]


@pytest.mark.parametrize("index,disguise", list(itertools.product(range(len(HOSTILE)), range(len(DISGUISES)))))
def test_disguises_never_lower_the_role(engine, index, disguise):
    sql, role = HOSTILE[index]
    text = DISGUISES[disguise](sql)
    try:
        got = needed(engine, text)
    except Exception:
        return  # DuckDB cannot parse the disguise: it cannot run either
    assert roles._RANK[got] >= roles._RANK[role], (text, got)


def test_explain_analyze_of_every_hostile_statement_needs_as_much(engine):
    for sql, role in HOSTILE:
        if sql.upper().startswith(("EXPLAIN", "PRAGMA", "SET", "RESET", "BEGIN", "COMMIT", "ROLLBACK", "SELECT 1;")):
            continue
        text = "EXPLAIN ANALYZE " + sql
        try:
            got = needed(engine, text)
        except Exception:
            continue
        assert roles._RANK[got] >= roles._RANK[role], (text, got)


def test_parse_time_escapes_stay_in_the_sandbox(engine):
    """Parsing happens on the sandboxed database: IMPORT DATABASE cannot read /etc, PRAGMA cannot install."""
    _, database, _ = engine
    with pytest.raises(Exception, match="(?i)permission|cannot access"):
        database.parse("IMPORT DATABASE '/etc'")
    with pytest.raises(Exception) as info:
        database.parse("PRAGMA create_fts_index('t', 'a', 'a')")
    assert "install" not in str(info.value).lower() or "autoinstall" in str(info.value).lower()


def _session(database, role):
    return Session(session_id=role, conn=database.connect(), parser=database.parse,
                   authorizer=RoleAuthorizer(role, roles.Policy(table_functions=database.table_functions,
                                                                parse=database.parse)))


def test_read_session_runs_in_a_read_only_transaction(engine):
    """The second layer: even a statement the role check let through cannot write for a reader."""
    _, database, _ = engine
    reader = _session(database, R)
    before = database.connect().execute("SELECT count(*) FROM t").fetchone()[0]
    reader.authorizer.statements = lambda statements: None  # pretend the first layer failed
    for sql in ("EXPLAIN ANALYZE DELETE FROM t", "SELECT nextval('s')", "INSERT INTO t VALUES (9)"):
        with pytest.raises(Exception, match="read-only"):
            reader.execute(sql).reader.read_all()
    assert database.connect().execute("SELECT count(*) FROM t").fetchone()[0] == before
    assert reader.execute("SELECT count(*) FROM t").reader.read_all().column(0)[0].as_py() == before
    reader.close()


def test_read_session_sees_new_commits(engine):
    _, database, _ = engine
    reader, writer = _session(database, R), _session(database, W)
    first = reader.execute("SELECT count(*) FROM t").reader.read_all().column(0)[0].as_py()
    writer.execute_update("INSERT INTO t VALUES (100)")
    assert reader.execute("SELECT count(*) FROM t").reader.read_all().column(0)[0].as_py() == first + 1
    writer.execute_update("DELETE FROM t WHERE a = 100")
    reader.close()
    writer.close()


def test_reader_refused_with_permission_error(engine):
    _, database, _ = engine
    reader = _session(database, R)
    with pytest.raises(PermissionDeniedError, match="role 'read'"):
        reader.execute("EXPLAIN ANALYZE DELETE FROM t")
    reader.close()


@pytest.mark.parametrize("name", SESSION_SETTINGS)
def test_allowed_settings_are_per_session(engine, name):
    """Every setting a non-admin may SET changes only its own connection (checked against DuckDB)."""
    _, database, _ = engine
    mine, other = database.connect(), database.connect()
    current = other.execute("SELECT current_setting(?)", [name]).fetchone()[0]
    values = {"TimeZone": "'Asia/Tokyo'", "Calendar": "'japanese'", "explain_output": "'all'",
              "lambda_syntax": "'ENABLE_SINGLE_ARROW'", "max_expression_depth": "77", "pivot_limit": "77"}
    value = values.get(name, "false" if current is True else "true")
    mine.execute(f"SET {name} = {value}")
    assert mine.execute("SELECT current_setting(?)", [name]).fetchone()[0] != current
    assert other.execute("SELECT current_setting(?)", [name]).fetchone()[0] == current
    assert database.connect().execute("SELECT current_setting(?)", [name]).fetchone()[0] == current


@pytest.mark.parametrize("sql", ["SET default_order = 'DESC'", "SET default_collation = 'nocase'",
                                 "SET threads = 1", "SET enable_external_access = true",
                                 "SET autoinstall_known_extensions = true", "SET lock_configuration = false",
                                 "SET python_enable_replacements = true", "PRAGMA threads = 2"])
def test_configuration_is_locked_inside_duckdb(engine, sql):
    """Even an admin's SQL (or one the role check missed) cannot change global settings."""
    _, database, _ = engine
    with pytest.raises(Exception, match="locked"):
        database.connect().execute(sql)
