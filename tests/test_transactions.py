"""Explicit transactions (Flight SQL BeginTransaction / EndTransaction) via autocommit=False."""

from __future__ import annotations

import warnings

import adbc_driver_manager
import pytest

from support import rows, scalar


@pytest.fixture
def table(conn, unique_name):
    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, s VARCHAR)")
    cur.close()
    return t


@pytest.fixture
def txn_conn(server):
    with warnings.catch_warnings():
        # The DB-API silently falls back to autocommit (with a warning) when
        # the server does not support transactions; make that a failure.
        warnings.simplefilter("error")
        c = server.connect(autocommit=False)
    yield c
    c.close()


def test_autocommit_off_is_supported(txn_conn):
    assert txn_conn._autocommit is False
    assert txn_conn._commit_supported is True


def test_uncommitted_insert_invisible_until_commit(txn_conn, conn, table):
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')")
    cur.close()
    # the writer sees its own changes
    assert scalar(txn_conn, f"SELECT count(*) FROM {table}") == 2
    # another session does not
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 0
    txn_conn.commit()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 2
    assert rows(conn, f"SELECT id, s FROM {table} ORDER BY id") == [(1, "a"), (2, "b")]


def test_rollback_discards(txn_conn, conn, table):
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
    cur.close()
    assert scalar(txn_conn, f"SELECT count(*) FROM {table}") == 1
    txn_conn.rollback()
    assert scalar(txn_conn, f"SELECT count(*) FROM {table}") == 0
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 0
    # a new transaction starts automatically and can commit
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (2, 'b')")
    cur.close()
    txn_conn.commit()
    assert rows(conn, f"SELECT id FROM {table}") == [(2,)]


def test_several_commits_in_a_row(txn_conn, conn, table):
    for i in range(5):
        cur = txn_conn.cursor()
        cur.execute(f"INSERT INTO {table} VALUES ({i}, 'x')")
        cur.close()
        assert scalar(conn, f"SELECT count(*) FROM {table}") == i
        txn_conn.commit()
        assert scalar(conn, f"SELECT count(*) FROM {table}") == i + 1


def test_rollback_of_ddl(txn_conn, conn, unique_name):
    t = unique_name()
    cur = txn_conn.cursor()
    cur.execute(f"CREATE TABLE {t} (i INTEGER)")
    cur.execute(f"INSERT INTO {t} VALUES (1)")
    cur.close()
    assert scalar(txn_conn, f"SELECT count(*) FROM {t}") == 1
    txn_conn.rollback()
    assert scalar(conn, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'") == 0
    assert scalar(txn_conn, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'") == 0


def test_update_and_delete_inside_transaction(txn_conn, conn, table):
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} SELECT i, 'v' || i FROM range(10) t(i)")
    cur.close()
    cur = txn_conn.cursor()
    cur.execute(f"UPDATE {table} SET s = 'changed' WHERE id < 5")
    cur.execute(f"DELETE FROM {table} WHERE id >= 8")
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {table} WHERE s = 'changed'") == 0
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 10
    txn_conn.commit()
    assert scalar(conn, f"SELECT count(*) FROM {table} WHERE s = 'changed'") == 5
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 8


def test_executemany_inside_transaction(txn_conn, conn, table):
    cur = txn_conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(i, str(i)) for i in range(50)])
    assert cur.rowcount == 50
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 0
    txn_conn.commit()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 50


def test_error_inside_transaction_then_rollback(txn_conn, conn, table):
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
    with pytest.raises(adbc_driver_manager.Error):
        cur.execute(f"INSERT INTO {table} VALUES (1, 'duplicate')")
    cur.close()
    txn_conn.rollback()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 0
    # the connection keeps working after the failed transaction
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (3, 'c')")
    cur.close()
    txn_conn.commit()
    assert rows(conn, f"SELECT id FROM {table}") == [(3,)]


def test_autocommit_connection_is_immediately_visible(conn, conn2, table):
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
    cur.close()
    assert scalar(conn2, f"SELECT count(*) FROM {table}") == 1


def test_close_with_open_transaction_discards(server, conn, table):
    c = server.connect(autocommit=False)
    cur = c.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (42, 'never committed')")
    cur.close()
    c.close()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 0


def test_prepared_statement_reused_across_commit(txn_conn, conn, table):
    """The DB-API reuses the prepared handle (created inside the first transaction)
    for the same SQL after commit(); it must run in the *new* transaction."""
    cur = txn_conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (?, 'x')", (1,))
    txn_conn.commit()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 1
    cur.execute(f"INSERT INTO {table} VALUES (?, 'x')", (2,))
    # not visible (and not auto-committed) before the second commit
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 1
    txn_conn.rollback()
    assert rows(conn, f"SELECT id FROM {table}") == [(1,)]
    assert rows(txn_conn, f"SELECT id FROM {table}") == [(1,)]
    cur.close()


def test_close_with_open_transaction_releases_it(server, conn, table):
    """CloseSession ends the session's transaction: its uncommitted insert neither
    becomes visible nor keeps blocking the same key for others."""
    c = server.connect(autocommit=False)
    cur = c.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (7, 'abandoned')")
    cur.close()
    c.close()
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (7, 'kept')")
    cur.close()
    assert rows(conn, f"SELECT id, s FROM {table}") == [(7, "kept")]
