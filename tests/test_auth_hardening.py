"""Tokens and logins against a hostile user: tokens end with their session, their user, the user's role or
password, also across a restart with the same --token-secret; failed logins slow down only the failing name,
never a correct password, and cannot grow the server's memory without bound.

The end-to-end tests start real servers (a users file, a data folder shared between a server and its restart)
and talk to them with pyarrow.flight and the ADBC Flight SQL driver. The throttle, the revocation list and the
token checks are also tested in-process, with an injected clock where time matters."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import secrets
import stat
import time

import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager
import pyarrow.flight as flight
import pytest

import flightsql_wire as wire
from flight_server.auth.passwords import hash_password
from flight_server.auth.throttle import LoginThrottle
from flight_server.auth.tokens import RevokedSessions, TokenError, TokenSigner
from flight_server.auth import users as users_module
from flight_server.auth.users import MAX_NAME_LENGTH, User, UserStore

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def write_users(path, entries: dict[str, tuple[str, str]]) -> None:
    """``entries``: name -> (password hash, role)."""
    path.write_text("".join(f'[users.{name}]\npassword_hash = "{stored}"\nrole = "{role}"\n\n'
                            for name, (stored, role) in entries.items()))


def login(server, user: str, password: str) -> str:
    """Handshake with Basic credentials; the bearer token the server answered."""
    client = flight.FlightClient(server.uri)
    try:
        _, value = client.authenticate_basic_token(user, password)
    finally:
        client.close()
    return value.decode().split(" ", 1)[1]


def bearer(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())], timeout=30)


def query(server, token: str, sql: str = "SELECT 42 AS x") -> list[dict]:
    client = flight.FlightClient(server.uri)
    try:
        options = bearer(token)
        info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.command_statement_query(sql)),
                                      options)
        return [row for ep in info.endpoints for row in client.do_get(ep.ticket, options).read_all().to_pylist()]
    finally:
        client.close()


def refused(server, token: str) -> str:
    """The token must be refused as unauthenticated; returns the server's message."""
    with pytest.raises(flight.FlightUnauthenticatedError) as info:
        query(server, token)
    return str(info.value)


def close_session(server, token: str) -> None:
    client = flight.FlightClient(server.uri)
    try:
        list(client.do_action(flight.Action("CloseSession", b""), bearer(token)))
    finally:
        client.close()


def adbc_with_token(server, token: str):
    return flightsql_dbapi.connect(server.uri, autocommit=True,
                                   db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def deployment(tmp_path, start_server):
    """A users file, a data folder and a token secret that survive restarts: ``deployment.start()``."""
    passwords = {"admin": "admin-" + secrets.token_urlsafe(9), "alice": "alice-" + secrets.token_urlsafe(9),
                 "bob": "bob-" + secrets.token_urlsafe(9), "carol": "carol-" + secrets.token_urlsafe(9)}
    hashes = {name: hash_password(pw) for name, pw in passwords.items()}
    users_file = tmp_path / "users.toml"
    entries = {"admin": (hashes["admin"], "admin"), "alice": (hashes["alice"], "write"),
               "bob": (hashes["bob"], "admin"), "carol": (hashes["carol"], "read")}
    write_users(users_file, entries)
    data = tmp_path / "data"
    secret = secrets.token_hex(24)
    running = []

    class Deployment:
        def start(self):
            for server in running:
                server.stop()
            server = start_server(auth="password", users_file=str(users_file), data_dir=str(data),
                                  database=str(tmp_path / "db.duckdb"), token_secret=secret,
                                  allowed_directories=str(tmp_path / "files"))
            running[:] = [server]
            return server

    deployment = Deployment()
    deployment.passwords, deployment.entries, deployment.users_file, deployment.data = (
        passwords, entries, users_file, data)
    return deployment


# ---------------------------------------------------------------------------
# Tokens across restarts (end to end)
# ---------------------------------------------------------------------------


def test_closed_session_token_stays_refused_after_restart(deployment):
    server = deployment.start()
    closed = login(server, "carol", deployment.passwords["carol"])
    kept = login(server, "carol", deployment.passwords["carol"])
    assert query(server, closed) == [{"x": 42}]
    close_session(server, closed)
    assert "closed" in refused(server, closed)

    revocations = deployment.data / "revoked-tokens.json"
    assert revocations.exists()
    assert stat.S_IMODE(revocations.stat().st_mode) == 0o600
    assert closed not in revocations.read_text()  # session ids only, never tokens

    server = deployment.start()
    # The same secret: the token that was not closed still works, so the refusal below is the revocation.
    assert query(server, kept) == [{"x": 42}]
    assert "closed" in refused(server, closed)
    # ADBC with the closed token is refused too; with the kept one it works.
    with pytest.raises(adbc_driver_manager.Error) as info:
        with adbc_with_token(server, closed) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, info.value
    with adbc_with_token(server, kept) as conn, conn.cursor() as cur:
        cur.execute("SELECT 'still here'")
        assert cur.fetchall() == [("still here",)]


def test_removed_demoted_and_recreated_users_tokens_refused_after_restart(deployment):
    server = deployment.start()
    tokens = {name: login(server, name, deployment.passwords[name]) for name in ("alice", "bob", "carol", "admin")}
    for token in tokens.values():
        assert query(server, token) == [{"x": 42}]

    # alice is removed, bob demoted from admin to read, carol removed and added again with a new password.
    entries = dict(deployment.entries)
    del entries["alice"]
    entries["bob"] = (entries["bob"][0], "read")
    carol_password = "carol-new-" + secrets.token_urlsafe(9)
    entries["carol"] = (hash_password(carol_password), "read")
    write_users(deployment.users_file, entries)
    server = deployment.start()

    assert query(server, tokens["admin"]) == [{"x": 42}]  # an unchanged user's token survives the restart
    assert "no longer exists" in refused(server, tokens["alice"])
    assert "role" in refused(server, tokens["bob"])
    assert "changed" in refused(server, tokens["carol"])
    # The demoted token cannot reach admin actions either (it is refused before any role check).
    client = flight.FlightClient(server.uri)
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(client.do_action(flight.Action("statistics", b""), bearer(tokens["bob"])))
    finally:
        client.close()

    # Logging in again gives tokens for the current entries: bob now reads only, carol's new password works.
    with flightsql_dbapi.connect(server.uri, autocommit=True, db_kwargs={
            "username": "bob", "password": deployment.passwords["bob"]}) as conn, conn.cursor() as cur:
        cur.execute("SELECT 7")
        assert cur.fetchall() == [(7,)]
        with pytest.raises(adbc_driver_manager.Error, match="may not"):
            cur.execute("CREATE TABLE bob_was_admin (i INTEGER)")
    assert query(server, login(server, "carol", carol_password)) == [{"x": 42}]
    with pytest.raises(flight.FlightUnauthenticatedError):
        login(server, "alice", deployment.passwords["alice"])


def test_closed_sso_session_stays_refused_after_restart(tmp_path, start_server):
    jwt = pytest.importorskip("jwt")
    key = "sso-secret-for-hardening-tests-0123456789"
    flags = dict(auth="password", data_dir=str(tmp_path / "data"), jwt_key=key, jwt_algorithms="HS256",
                 allowed_directories=str(tmp_path / "files"), token_ttl=60)
    # The JWT outlives the server's own token TTL: its revocation must last until the JWT's own expiry.
    claims = {"sub": "sso-user", "role": "read", "exp": int(time.time()) + 3600}
    closed = jwt.encode(dict(claims, jti="closed"), key, algorithm="HS256")
    kept = jwt.encode(dict(claims, jti="kept"), key, algorithm="HS256")
    server = start_server(**flags)
    assert query(server, closed) == [{"x": 42}]
    close_session(server, closed)
    assert "closed" in refused(server, closed)
    server.stop()
    lines = [json.loads(line) for line in (tmp_path / "data" / "revoked-tokens.json").read_text().splitlines()]
    assert len(lines) == 1 and lines[0][1] >= claims["exp"], lines

    server = start_server(**flags)
    assert query(server, kept) == [{"x": 42}]
    assert "closed" in refused(server, closed)


# ---------------------------------------------------------------------------
# Login throttle (end to end)
# ---------------------------------------------------------------------------


def failed_login(uri: str, user: str, password: str = "wrong") -> float:
    """One failed handshake on its own connection; returns how long the answer took."""
    client = flight.FlightClient(uri)
    started = time.perf_counter()
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(user, password)
        return time.perf_counter() - started
    finally:
        client.close()


def timed_login(server, user: str, password: str) -> float:
    started = time.perf_counter()
    token = login(server, user, password)
    elapsed = time.perf_counter() - started
    assert query(server, token) == [{"x": 42}]
    return elapsed


def test_failures_by_others_do_not_delay_a_correct_login(deployment):
    server = deployment.start()
    password = deployment.passwords["admin"]
    # 20 wrong passwords for admin and 20 for made-up names, from other connections, at once.
    names = ["admin"] * 20 + [f"nobody-{i}" for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        durations = list(pool.map(lambda name: failed_login(server.uri, name), names))
    assert max(durations) >= 1.0, durations  # admin's name is being throttled ...
    assert max(durations) < 5.0 + 10.0, durations  # ... with a capped delay
    # ... the right password still gets in at once (the limit is generous for a loaded test machine) ...
    elapsed = timed_login(server, "admin", password)
    assert elapsed < 1.0, elapsed
    # ... and that success cleared the count: the next wrong admin password is answered without delay.
    assert failed_login(server.uri, "admin") < 1.0
    # ADBC logs in quickly too.
    started = time.perf_counter()
    with flightsql_dbapi.connect(server.uri, autocommit=True,
                                 db_kwargs={"username": "admin", "password": password}) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == [(1,)]
    assert time.perf_counter() - started < 2.0


def test_a_throttled_name_slows_only_its_failures(deployment):
    server = deployment.start()
    for _ in range(5):
        failed_login(server.uri, "alice")
    assert failed_login(server.uri, "alice") >= 0.4  # the sixth failure waits 0.25 * 2**2 s
    assert failed_login(server.uri, "carol") < 0.4  # another name is not affected
    assert timed_login(server, "alice", deployment.passwords["alice"]) < 1.0


def test_failed_logins_with_long_names_keep_memory_bounded(deployment):
    server = deployment.start()
    login(server, "admin", deployment.passwords["admin"])  # the first password check has run
    time.sleep(0.5)
    before = rss_mb(server.proc.pid)
    # Names just under the limit go through the password check; longer ones are refused at once.
    names = ["n" + secrets.token_hex(MAX_NAME_LENGTH // 2 - 1) for _ in range(160)]
    names += [secrets.token_hex(2000) for _ in range(160)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: failed_login(server.uri, name), names))
    growth = rss_mb(server.proc.pid) - before
    # Before the fix the same burst grew the server by ~400 MB (16 MiB scrypt buffers kept per gRPC thread).
    assert growth < 150, f"RSS grew by {growth:.0f} MB"
    assert server.alive()
    assert timed_login(server, "admin", deployment.passwords["admin"]) < 2.0


def test_absurdly_long_name_is_refused_without_a_password_check(deployment, monkeypatch):
    server = deployment.start()
    client = flight.FlightClient(server.uri)
    try:
        with pytest.raises(flight.FlightUnauthenticatedError, match="invalid username or password"):
            client.authenticate_basic_token("x" * 5000, "whatever")
    finally:
        client.close()
    checked = []
    monkeypatch.setattr(users_module, "verify_password", lambda password, stored: checked.append(stored) or True)
    longest = "a" * MAX_NAME_LENGTH
    store = UserStore({longest: User(longest, "scrypt$stored", "read")})
    assert store.check(longest, "pw") is not None and checked == ["scrypt$stored"]
    assert store.check(longest + "a", "pw") is None
    assert len(checked) == 1  # no password check for the longer name
    with pytest.raises(ValueError, match="user names"):
        write_users(deployment.users_file, {"b" * (MAX_NAME_LENGTH + 1): (hash_password("pw"), "read")})
        users_module.read_users_file(str(deployment.users_file))


# ---------------------------------------------------------------------------
# The throttle with an injected clock
# ---------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_delays_grow_then_cap_and_reset():
    clock = Clock()
    throttle = LoginThrottle(free_attempts=3, base_delay=0.25, max_delay=5.0, forget_after=300, clock=clock)
    delays = [throttle.failed("admin") for _ in range(10)]
    assert delays == [0, 0, 0, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.failed("other") == 0  # one name's failures do not slow another
    throttle.succeeded("admin")
    assert throttle.failed("admin") == 0
    for _ in range(5):
        throttle.failed("bob")
    clock.now += 301  # quiet for longer than forget_after: counting starts again
    assert throttle.failed("bob") == 0
    assert throttle.failed("bob") == 0


def test_throttle_memory_is_bounded():
    clock = Clock()
    throttle = LoginThrottle(max_entries=100, forget_after=300, clock=clock)
    for i in range(5):
        throttle.failed("admin")
    for i in range(1000):
        clock.now += 0.01
        throttle.failed(secrets.token_hex(500) + str(i))
    assert len(throttle) == 100  # the oldest entries were evicted
    clock.now += 301
    throttle.failed("late")
    assert len(throttle) == 1  # entries older than forget_after are dropped
    assert throttle.failed("admin") == 0


# ---------------------------------------------------------------------------
# Tokens and revocations in-process
# ---------------------------------------------------------------------------


def test_revocations_survive_reload_expire_and_stay_bounded(tmp_path, monkeypatch):
    path = str(tmp_path / "sub" / "revoked-tokens.json")
    revoked = RevokedSessions(path)
    now = time.time()
    revoked.add("gone", now + 3600)
    revoked.add("short", now + 10)
    assert "gone" in revoked and "short" in revoked and "never" not in revoked
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "gone" in RevokedSessions(path)

    # Later: "short" has expired, "gone" has not.
    monkeypatch.setattr(time, "time", lambda: now + 60)
    reloaded = RevokedSessions(path)
    assert "gone" in reloaded and "short" not in reloaded
    assert "gone" in RevokedSessions(path)  # a reload keeps what is live


def test_revocation_file_stays_bounded(tmp_path, monkeypatch):
    path = tmp_path / "revoked-tokens.json"
    revoked = RevokedSessions(str(path))
    start = time.time()
    # The same session closed over and over (Basic credentials on one connection): one live entry.
    for _ in range(1000):
        revoked.add("same", start + 3600)
    assert len(path.read_text().splitlines()) <= 130
    # A steady stream of revocations that each live one second: about 100 live at any time.
    longest = 0
    for i in range(3000):
        now = start + i * 0.01
        monkeypatch.setattr(time, "time", lambda now=now: now)
        revoked.add(f"s{i}", now + 1)
        longest = max(longest, len(path.read_text().splitlines()) if i % 50 == 0 else 0)
    assert longest < 2 * 102 + 64 + 5, longest
    assert len(revoked) < 300
    reloaded = RevokedSessions(str(path))
    assert "same" in reloaded and "s2999" in reloaded and "s0" not in reloaded


def test_damaged_revocation_file_is_repaired(tmp_path):
    path = tmp_path / "revoked-tokens.json"
    until = time.time() + 3600
    path.write_text(json.dumps(["a", until]) + "\n" + '["b", 17')  # a crash cut the last line short
    revoked = RevokedSessions(str(path))
    assert "a" in revoked
    revoked.add("c", until)
    assert [json.loads(line)[0] for line in path.read_text().splitlines()] == ["a", "c"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tokens_follow_the_user_store():
    store = UserStore({"u": User("u", hash_password("pw"), "write")})
    signer = TokenSigner(b"k" * 32, 60, store)
    token = signer.issue("u", "write")
    assert signer.verify(token).role == "write"
    # The same secret with another store (as after a restart with a changed users file).
    for users, message in (({}, "no longer exists"),
                           ({"u": User("u", store.get("u").password_hash, "read")}, "role"),
                           ({"u": User("u", hash_password("pw"), "write")}, "changed")):
        with pytest.raises(TokenError, match=message):
            TokenSigner(b"k" * 32, 60, UserStore(users)).verify(token)
    assert TokenSigner(b"k" * 32, 60, UserStore({"u": store.get("u")})).verify(token).user == "u"
    # The user fingerprint is keyed by the secret: the token does not carry the password hash or a plain digest.
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert payload["ver"] and payload["ver"] not in store.get("u").password_hash


def test_revocation_lasts_until_an_external_token_expires():
    signer = TokenSigner(None, 1)
    signer.revoke("jwt-abc", time.time() + 3600)
    signer.revoke("own", None)
    time.sleep(1.2)
    with pytest.raises(TokenError, match="closed"):
        signer.check_revoked("jwt-abc")
    signer.check_revoked("own")  # this signer's tokens for it have all expired by now


def test_env_user_tokens_survive_a_restart():
    first = UserStore.load(None, "envuser", "env-password", "write")
    second = UserStore.load(None, "envuser", "env-password", "write")
    token = TokenSigner(b"s" * 32, 60, first).issue("envuser", "write")
    assert TokenSigner(b"s" * 32, 60, second).verify(token).user == "envuser"
    changed = UserStore.load(None, "envuser", "another-password", "write")
    with pytest.raises(TokenError, match="changed"):
        TokenSigner(b"s" * 32, 60, changed).verify(token)
