"""What a client's connect costs the server (issue 11): the GetSqlInfo and GetXdbcTypeInfo answers are built once
and shared, and answered without the session's connection; CloseSession's revocation is written at once and
fsync'd off the caller's path; a token is decoded once, while its checks still run on every call.

In-process tests: the cached answers against the uncached builders, and the revocation file's durability
(observed through the fsync calls it makes) against threads, rewrites and reloads."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from types import SimpleNamespace

import pytest

from flight_server.auth import tokens
from flight_server.auth.passwords import hash_password
from flight_server.auth.tokens import RevokedSessions, TokenError, TokenSigner
from flight_server.auth.users import User, UserStore
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
    sql_info = sql_info.Answers(VALUES)


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
    server.sql_info = sql_info.Answers({**VALUES, sql_info.FLIGHT_SQL_SERVER_READ_ONLY: True})
    answer = server._sql_info(None, sql.CommandGetSqlInfo(info=[sql_info.FLIGHT_SQL_SERVER_READ_ONLY]))
    assert answer.equals(sql_info.table(server.sql_info.values, [sql_info.FLIGHT_SQL_SERVER_READ_ONLY]))


# ---------------------------------------------------------------------------
# Revocations: written at once, fsync'd within a second and at close()
# ---------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch):
    """The (device, inode) of everything fsync'd from here on."""
    synced: list[tuple[int, int]] = []
    real = os.fsync

    def fsync(fd):
        info = os.fstat(fd)
        synced.append((info.st_dev, info.st_ino))
        real(fd)
    monkeypatch.setattr(tokens.os, "fsync", fsync)
    return synced


def _identity(path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def test_revocation_is_written_at_once_and_fsynced_at_close(tmp_path, fsyncs, monkeypatch):
    monkeypatch.setattr(RevokedSessions, "SYNC_INTERVAL", 60.0)  # the timer does not fire during the test
    path = tmp_path / "data" / "revoked-tokens.json"
    revoked = RevokedSessions(str(path))
    revoked.add("closed", time.time() + 3600)
    assert "closed" in RevokedSessions(str(path))  # in the file (page cache) when add() returns ...
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert fsyncs == []  # ... without waiting for the disk
    revoked.close()
    assert _identity(path) in fsyncs and _identity(path.parent) in fsyncs  # the lines, and the new file's name
    fsyncs.clear()
    revoked.close()  # nothing left to sync
    assert fsyncs == []
    revoked.add("later", time.time() + 3600)  # usable after close(): the handle opens again
    assert {"closed", "later"} <= set(RevokedSessions(str(path))._until)
    revoked.close()
    assert fsyncs == [_identity(path)]


def test_revocations_are_fsynced_within_the_interval(tmp_path, fsyncs, monkeypatch):
    monkeypatch.setattr(RevokedSessions, "SYNC_INTERVAL", 0.05)
    path = tmp_path / "revoked-tokens.json"
    revoked = RevokedSessions(str(path))
    revoked.add("closed", time.time() + 3600)
    deadline = time.monotonic() + 5
    while _identity(path) not in fsyncs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _identity(path) in fsyncs
    assert revoked._timer is None and not revoked._unsynced
    revoked.close()


def test_rewrite_replaces_the_file_and_appends_go_to_the_new_one(tmp_path, fsyncs, monkeypatch):
    monkeypatch.setattr(RevokedSessions, "SYNC_INTERVAL", 60.0)
    path = tmp_path / "revoked-tokens.json"
    revoked = RevokedSessions(str(path))
    now = time.time()
    for i in range(63):
        revoked.add(f"old{i}", now - 1 if i % 2 else now + 3600)  # half of them already expired
    before = _identity(path)
    revoked.add("trigger", now + 3600)  # the 64th line: the file is rewritten with the live entries
    after = _identity(path)
    assert after != before and after in fsyncs  # a new file, fsync'd before it took the old one's place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    revoked.add("appended", now + 3600)  # goes to the new file, not to the replaced one
    lines = [json.loads(line)[0] for line in path.read_text().splitlines()]
    assert lines == [f"old{i}" for i in range(0, 63, 2)] + ["trigger", "appended"]
    reloaded = RevokedSessions(str(path))
    assert "appended" in reloaded and "old0" in reloaded and "old1" not in reloaded
    revoked.close()
    assert _identity(path) in fsyncs and _identity(tmp_path) in fsyncs


def test_concurrent_revocations_keep_every_line(tmp_path):
    path = tmp_path / "revoked-tokens.json"
    revoked = RevokedSessions(str(path))
    until = time.time() + 3600
    start = threading.Barrier(8)

    def close_sessions(worker: int) -> None:
        start.wait()
        for i in range(150):
            revoked.add(f"w{worker}-{i}", until)
    threads = [threading.Thread(target=close_sessions, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    revoked.close()
    expected = {f"w{worker}-{i}" for worker in range(8) for i in range(150)}
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # every line whole
    assert {session for session, _ in lines} == expected
    assert set(RevokedSessions(str(path))._until) == expected


def test_revocations_without_a_file_need_no_close():
    revoked = RevokedSessions(None)
    revoked.add("closed", time.time() + 60)
    assert "closed" in revoked
    revoked.close()


# ---------------------------------------------------------------------------
# Tokens: decoded once, checked on every call
# ---------------------------------------------------------------------------


def _signer(tmp_path, users: UserStore) -> TokenSigner:
    return TokenSigner(b"k" * 32, 60, users, RevokedSessions(str(tmp_path / "revoked-tokens.json")))


def test_a_remembered_token_is_still_checked_on_every_call(tmp_path, monkeypatch):
    store = UserStore({"u": User("u", hash_password("pw"), "write")})
    signer = _signer(tmp_path, store)
    token = signer.issue("u", "write", "s1")
    claims = signer.verify(token)
    assert (claims.user, claims.role, claims.session) == ("u", "write", "s1")
    assert token in signer._decoded
    # A changed user entry ends the token though it is remembered.
    store._users["u"] = User("u", hash_password("new"), "write")
    with pytest.raises(TokenError, match="changed"):
        signer.verify(token)
    store._users["u"] = User("u", store.get("u").password_hash, "read")
    with pytest.raises(TokenError, match="role"):
        signer.verify(token)
    del store._users["u"]
    with pytest.raises(TokenError, match="no longer exists"):
        signer.verify(token)
    # So do closing its session and its expiry.
    store._users["u"] = User("u", hash_password("pw"), "write")
    token = signer.issue("u", "write", "s2")
    signer.verify(token)
    signer.revoke("s2")
    with pytest.raises(TokenError, match="closed"):
        signer.verify(token)
    token = signer.issue("u", "write", "s3")
    signer.verify(token)
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)


def test_forged_tokens_are_never_remembered(tmp_path):
    store = UserStore({"u": User("u", hash_password("pw"), "write")})
    signer = _signer(tmp_path, store)
    token = signer.issue("u", "write")
    payload, _, signature = token.partition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (forged, payload, "x.y", ""):
        with pytest.raises(TokenError):
            signer.verify(bad)
        assert bad not in signer._decoded
    # A token issued by another key is refused, also by a signer that remembers tokens of its own.
    other = TokenSigner(b"o" * 32, 60, store).issue("u", "write")
    with pytest.raises(TokenError, match="signature"):
        signer.verify(other)


def test_remembered_tokens_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(TokenSigner, "DECODED_MAX", 10)
    store = UserStore({"u": User("u", hash_password("pw"), "write")})
    signer = _signer(tmp_path, store)
    issued = [signer.issue("u", "write") for _ in range(25)]
    assert len(signer._decoded) == 10 and issued[-1] in signer._decoded and issued[0] not in signer._decoded
    assert all(signer.verify(token).user == "u" for token in issued)  # a forgotten token is decoded again
