"""Security: password auth and bearer tokens, roles per statement, DuckDB's sandbox, TLS and mutual TLS,
operator actions, the first-start admin, secrets kept out of logs, read-only mode, and the refusal to serve
an unauthenticated network port.

Most tests share one module-wide server (``role_server``) with a users file holding a read, a write and an
admin user (plus ``victim``, a user whose logins the throttle test fails on purpose).  Servers with other
flags (token TTL, TLS, read-only, bootstrap) are started by the tests that need them.  Every password, token
and signing key sent to the shared server is collected in ``SENT_SECRETS``; the last test checks that none of
them reached the server's log.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager
import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import flightsql_wire as wire
from support import HOST, REPO_ROOT, free_port, launch_server, run_with_timeout

Status = adbc_driver_manager.AdbcStatusCode
DbOpt = adbc_driver_flightsql.DatabaseOptions

ROLES = {"read": "read", "write": "write", "admin": "admin", "victim": "read"}
SENT_SECRETS: set[str] = set()  # passwords, tokens and keys sent to the shared server (checked last)
SEED_ROWS = 3  # every per-case table starts as range(3): i = 0, 1, 2


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _server_env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    for name in ("FLIGHT_USER", "FLIGHT_PASSWORD", "FLIGHT_USER_ROLE", "FLIGHT_USERS_FILE", "FLIGHT_AUTH",
                 "FLIGHT_TOKEN_SECRET", "FLIGHT_CONFIG", "FLIGHT_ALLOW_UNAUTHENTICATED_NETWORK"):
        env.pop(name, None)
    return env


def adbc_connect(uri: str, user: str | None = None, password: str | None = None, **options: str):
    db_kwargs = dict(options)
    if user is not None:
        db_kwargs["username"] = user
        db_kwargs["password"] = password or ""
    return flightsql_dbapi.connect(uri, db_kwargs=db_kwargs or None, autocommit=True)


def run_sql(conn, sql: str):
    """Executes ``sql``; returns its rows, or None when it produces no result set."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None
    finally:
        cur.close()


def one(conn, sql: str):
    return run_sql(conn, sql)[0][0]


def adbc_error(fn) -> adbc_driver_manager.Error:
    """Runs ``fn``, which must fail with an ADBC error; returns it."""
    with pytest.raises(adbc_driver_manager.Error) as info:
        fn()
    return info.value


def assert_denied(exc: adbc_driver_manager.Error) -> None:
    """A role refusal: gRPC PERMISSION_DENIED (ADBC UNAUTHORIZED) naming what the role may not do."""
    assert exc.status_code == Status.UNAUTHORIZED, f"{exc.status_code}: {exc}"
    assert "may not" in str(exc), str(exc)


def assert_unauthenticated(exc: adbc_driver_manager.Error) -> None:
    assert exc.status_code == Status.UNAUTHENTICATED or "UNAUTHENTICATED" in str(exc), f"{exc.status_code}: {exc}"


def options_for(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())], timeout=30)


def basic_token(uri_or_server, user: str, password: str, remember: bool = True) -> str:
    """Handshake with Basic credentials over pyarrow; returns the bearer token the server answered."""
    uri = uri_or_server if isinstance(uri_or_server, str) else uri_or_server.uri
    client = flight.FlightClient(uri)
    try:
        if remember:
            SENT_SECRETS.add(password)
        name, value = client.authenticate_basic_token(user, password)
    finally:
        client.close()
    assert name.lower() == b"authorization" and value.startswith(b"Bearer "), (name, value)
    token = value.decode().split(" ", 1)[1]
    if remember:
        SENT_SECRETS.add(token)
    return token


def flight_query(client: flight.FlightClient, sql: str, options: flight.FlightCallOptions | None = None):
    """GetFlightInfo(CommandStatementQuery) + DoGet with the given call options; returns a pyarrow Table."""
    options = options or flight.FlightCallOptions(timeout=30)
    descriptor = flight.FlightDescriptor.for_command(wire.command_statement_query(sql))
    info = client.get_flight_info(descriptor, options)
    tables = [client.do_get(ep.ticket, options).read_all() for ep in info.endpoints]
    return pa.concat_tables(tables) if tables else info.schema.empty_table()


def token_query(server, token: str, sql: str = "SELECT 42 AS x"):
    client = server.flight_client()
    try:
        return flight_query(client, sql, options_for(token))
    finally:
        client.close()


def action(server, name: str, token: str | None = None, uri: str | None = None) -> dict:
    client = flight.FlightClient(uri or server.uri)
    try:
        options = options_for(token) if token else flight.FlightCallOptions(timeout=30)
        results = list(client.do_action(flight.Action(name, b""), options))
    finally:
        client.close()
    return json.loads(results[0].body.to_pybytes())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sql_info(server, token: str, info_id: int):
    """Raw Flight SQL GetSqlInfo for one id; returns the value of the dense-union column."""
    command = wire.pack_any("CommandGetSqlInfo", wire.field_varint(1, info_id))
    client = server.flight_client()
    try:
        options = options_for(token)
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
        table = pa.concat_tables([client.do_get(ep.ticket, options).read_all() for ep in info.endpoints])
    finally:
        client.close()
    values = {row["info_name"]: row["value"] for row in table.to_pylist()}
    assert info_id in values, table
    return values[info_id]


# ---------------------------------------------------------------------------
# Users, PKI and the shared server
# ---------------------------------------------------------------------------


def write_users_file(path: Path, hashes_by_user: dict[str, str]) -> None:
    lines = []
    for name, role in ROLES.items():
        lines += [f"[users.{name}]", f'password_hash = "{hashes_by_user[name]}"', f'role = "{role}"', ""]
    path.write_text("\n".join(lines))


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """A users file with read/write/admin/victim users; the admin's hash comes from the CLI."""
    from flight_server.auth.passwords import hash_password

    folder = tmp_path_factory.mktemp("users")
    passwords = {name: f"{name}-pw-{secrets.token_urlsafe(12)}" for name in ROLES}
    done = subprocess.run([sys.executable, "-m", "flight_server", "hash-password"],
                          input=passwords["admin"] + "\n", capture_output=True, text=True,
                          cwd=str(REPO_ROOT), env=_server_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    admin_hash = done.stdout.strip()
    assert admin_hash.startswith("scrypt$"), done.stdout
    assert passwords["admin"] not in done.stdout + done.stderr
    hashes_by_user = {name: hash_password(pw) for name, pw in passwords.items() if name != "admin"}
    hashes_by_user["admin"] = admin_hash
    path = folder / "users.toml"
    write_users_file(path, hashes_by_user)
    assert not any(pw in path.read_text() for pw in passwords.values())
    SENT_SECRETS.update(passwords.values())
    return SimpleNamespace(path=str(path), passwords=passwords)


@pytest.fixture(scope="module")
def role_server(tmp_path_factory, users):
    """The shared password-auth server; its sandbox allows only ``<workdir>/files``."""
    workdir = tmp_path_factory.mktemp("security")
    files = workdir / "files"
    files.mkdir()
    (files / "seed.csv").write_text("i\n10\n11\n")
    secret = secrets.token_urlsafe(24)
    SENT_SECRETS.add(secret)
    server = launch_server(workdir, None, auth="password", users_file=users.path,
                           allowed_directories=str(files), token_secret=secret)
    server.files = files
    server.users = users
    conns = {}

    def conn_for(role: str):
        if role not in conns:
            conns[role] = adbc_connect(server.uri, role, users.passwords[role])
        return conns[role]

    server.conn_for = conn_for
    yield server
    for conn in conns.values():
        try:
            conn.close()
        except Exception:
            pass
    server.stop()


@pytest.fixture(scope="module")
def outside():
    """An existing folder outside the sandbox: only the sandbox can stop files appearing here."""
    folder = Path(tempfile.mkdtemp(prefix="flight-sec-outside-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def seeded(role_server):
    """A fresh table of SEED_ROWS rows created by the admin; returns its name."""
    name = f"sec_{uuid.uuid4().hex[:10]}"
    run_sql(role_server.conn_for("admin"), f"CREATE TABLE {name} AS SELECT range AS i FROM range({SEED_ROWS})")
    return name


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer_cert=None, issuer_key=None, *, ca=False, server=False):
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a rogue CA's client cert."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("flight-test-ca", ca_key, ca=True)
    server_key = _key()
    server_cert = _cert("flight-test-server", server_key, ca, ca_key, server=True)
    client_key = _key()
    client_cert = _cert("flight-test-client", client_key, ca, ca_key)
    rogue_ca_key = _key()
    rogue_ca = _cert("rogue-ca", rogue_ca_key, ca=True)
    rogue_key = _key()
    rogue_cert = _cert("rogue-client", rogue_key, rogue_ca, rogue_ca_key)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    out = SimpleNamespace(
        ca_pem=pem(ca), client_cert=pem(client_cert), client_key=_pem_key(client_key),
        rogue_cert=pem(rogue_cert) + pem(rogue_ca), rogue_key=_pem_key(rogue_key))
    for name, data in (("ca.pem", out.ca_pem), ("server.pem", pem(server_cert) + out.ca_pem),
                       ("server.key", _pem_key(server_key))):
        (folder / name).write_bytes(data)
    out.ca_file = str(folder / "ca.pem")
    out.server_cert_file = str(folder / "server.pem")
    out.server_key_file = str(folder / "server.key")
    return out


# ---------------------------------------------------------------------------
# 1. Roles: what each role may run, and that a refused statement changes nothing
# ---------------------------------------------------------------------------

COUNT = "SELECT count(*) FROM {t}"
MAX_I = "SELECT max(i) FROM {t}"
NEW_TABLE = "SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}_new'"
TABLE_EXISTS = "SELECT count(*) FROM duckdb_tables() WHERE table_name = '{t}'"
COLUMNS = "SELECT count(*) FROM duckdb_columns() WHERE table_name = '{t}'"
OUT_FILE = "SELECT count(*) FROM glob('{files}/{t}.csv')"
EXPORTED = "SELECT count(*) FROM glob('{files}/{t}_export/*')"
ATTACHED = "SELECT count(*) FROM duckdb_databases() WHERE database_name = '{t}_db'"
TIMEZONE = "SELECT current_setting('TimeZone')"
THREADS = "SELECT current_setting('threads')"

# (role, sql, allowed, check): for an allowed statement ``check`` is (sql, value expected afterwards); for a
# refused one it is a list of queries whose answers (as the admin) must be the same before and after.
ROLE_CASES = [
    ("read", "SELECT count(*) FROM {t}", True, (COUNT, 3)),
    ("read", "EXPLAIN SELECT * FROM {t}", True, None),
    ("read", "DESCRIBE {t}", True, None),
    ("read", "SHOW TABLES", True, None),
    ("read", "PRAGMA table_info('{t}')", True, None),
    ("read", "SET TimeZone = 'UTC'", True, None),
    ("read", "SET search_path = 'main'", True, None),
    ("read", "SET VARIABLE sec_var = 42", True, None),
    ("read", "USE main", True, None),
    # Readers control transactions through Flight SQL (read-only transactions), not in SQL.
    ("read", "BEGIN TRANSACTION; SELECT count(*) FROM {t}; COMMIT", False, [COUNT]),
    ("read", "INSERT INTO {t} VALUES (99)", False, [COUNT]),
    ("read", "UPDATE {t} SET i = i + 100", False, [MAX_I]),
    ("read", "DELETE FROM {t}", False, [COUNT]),
    ("read", "CREATE TABLE {t}_new (x INTEGER)", False, [NEW_TABLE]),
    # Temporary tables live in the reader's session; DuckDB's read-only transaction permits them.
    ("read", "CREATE TEMP TABLE {t}_new AS SELECT 1 AS x", True, (NEW_TABLE, 0)),
    ("read", "DROP TABLE {t}", False, [TABLE_EXISTS, COUNT]),
    ("read", "ALTER TABLE {t} ADD COLUMN extra INTEGER", False, [COLUMNS]),
    ("read", "COPY {t} FROM '{files}/seed.csv'", False, [COUNT]),
    ("read", "SELECT 1; INSERT INTO {t} VALUES (99)", False, [COUNT]),
    ("read", "SELECT 1; DROP TABLE {t}", False, [TABLE_EXISTS]),
    ("read", "SET threads = 1", False, [THREADS]),
    ("write", "INSERT INTO {t} VALUES (99)", True, (COUNT, 4)),
    ("write", "UPDATE {t} SET i = i + 100", True, (MAX_I, 102)),
    ("write", "DELETE FROM {t} WHERE i = 0", True, (COUNT, 2)),
    ("write", "CREATE TABLE {t}_new AS SELECT * FROM {t}", True, (NEW_TABLE, 1)),
    ("write", "ALTER TABLE {t} ADD COLUMN extra INTEGER", True, (COLUMNS, 2)),
    ("write", "DROP TABLE {t}", True, (TABLE_EXISTS, 0)),
    ("write", "COPY {t} FROM '{files}/seed.csv'", True, (COUNT, 5)),
    ("write", "SET TimeZone = 'UTC'", True, None),
    ("write", "COPY {t} TO '{files}/{t}.csv'", False, [OUT_FILE]),
    ("write", "INSERT INTO {t} VALUES (7); COPY {t} TO '{files}/{t}.csv'", False, [COUNT, OUT_FILE]),
    ("write", "EXPORT DATABASE '{files}/{t}_export'", False, [EXPORTED]),
    ("write", "ATTACH ':memory:' AS {t}_db", False, [ATTACHED]),
    ("write", "SET GLOBAL TimeZone = 'Asia/Tokyo'", False, [TIMEZONE]),
    ("write", "SET threads = 1", False, [THREADS]),
    ("write", "CHECKPOINT", False, [COUNT]),
    ("write", "PREPARE {t}_p AS DELETE FROM {t}", False, [COUNT]),
    ("write", "LOAD json", False, [COUNT]),
    ("write", "INSTALL json", False, [COUNT]),
    ("admin", "CHECKPOINT", True, (COUNT, 3)),
    ("admin", "COPY {t} TO '{files}/{t}.csv'", True, (OUT_FILE, 1)),
    ("admin", "EXPORT DATABASE '{files}/{t}_export'", True, ("SELECT count(*) > 0 FROM glob('{files}/{t}_export/*')",
                                                               True)),
    ("admin", "ATTACH ':memory:' AS {t}_db", True, (ATTACHED, 1)),
    ("admin", "PREPARE {t}_p AS DELETE FROM {t} WHERE i = 0; EXECUTE {t}_p", True, (COUNT, 2)),
    ("admin", "SET GLOBAL TimeZone = 'UTC'", True, (TIMEZONE, "UTC")),
    ("admin", "DROP TABLE {t}", True, (TABLE_EXISTS, 0)),
]


def _case_id(case) -> str:
    role, sql, allowed, _ = case
    return f"{role}-{'ok' if allowed else 'denied'}-{sql.split(' {')[0][:40]}"


@pytest.mark.parametrize("role,sql,allowed,check", ROLE_CASES, ids=[_case_id(c) for c in ROLE_CASES])
def test_role_matrix(role_server, seeded, role, sql, allowed, check):
    admin = role_server.conn_for("admin")
    fmt = {"t": seeded, "files": str(role_server.files)}
    statement = sql.format(**fmt)
    if allowed:
        run_sql(role_server.conn_for(role), statement)
        if check is not None:
            assert one(admin, check[0].format(**fmt)) == check[1], statement
        return
    probes = [q.format(**fmt) for q in check]
    before = [run_sql(admin, q) for q in probes]
    exc = adbc_error(lambda: run_sql(role_server.conn_for(role), statement))
    assert_denied(exc)
    assert f"role '{role}'" in str(exc), str(exc)
    assert [run_sql(admin, q) for q in probes] == before, f"{statement!r} had an effect although refused"
    # The session stays usable after a refusal.
    assert one(role_server.conn_for(role), "SELECT 1") == 1


def test_bulk_ingest_needs_write(role_server, seeded):
    admin = role_server.conn_for("admin")
    data = pa.table({"i": pa.array([50, 51], pa.int64())})
    target = f"{seeded}_ingest"

    def ingest(role, table, mode):
        cur = role_server.conn_for(role).cursor()
        try:
            return cur.adbc_ingest(table, data, mode=mode)
        finally:
            cur.close()

    assert_denied(adbc_error(lambda: ingest("read", seeded, "append")))
    assert_denied(adbc_error(lambda: ingest("read", target, "create")))
    assert one(admin, f"SELECT count(*) FROM {seeded}") == SEED_ROWS
    assert one(admin, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{target}'") == 0
    ingest("write", seeded, "append")
    assert one(admin, f"SELECT count(*) FROM {seeded}") == SEED_ROWS + 2


# ---------------------------------------------------------------------------
# 2. The sandbox: no way out of the allowed folders, even for the admin
# ---------------------------------------------------------------------------

ESCAPES = {
    "read_etc_passwd": ("SELECT count(*) FROM read_csv('/etc/passwd')", "Permission Error"),
    "read_dotdot": ("SELECT * FROM read_csv('{files}/../../../../../../etc/passwd')", "Permission Error"),
    "copy_to_outside": ("COPY (SELECT 1 AS x) TO '{outside}/evil.csv'", "Permission Error"),
    "attach_outside": ("ATTACH '{outside}/x.duckdb' AS escaped_db", "Permission Error"),
    "install_httpfs": ("INSTALL httpfs", "Permission Error"),
    "load_httpfs": ("LOAD httpfs", "Permission Error"),
    "enable_external_access": ("SET enable_external_access = true", "Invalid Input Error"),
    "allowed_directories": ("SET allowed_directories = ['/']", "Invalid Input Error"),
    "symlink_file": ("SELECT count(*) FROM read_csv('{files}/passwd_link.csv', header = false, sep = '|')",
                     "Permission Error"),
    "symlink_dir": ("COPY (SELECT 1 AS x) TO '{files}/outside_link/evil.csv'", "Permission Error"),
    "read_url": ("SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')", "Permission Error"),
}


@pytest.mark.parametrize("role", ["admin", "write", "read"])
@pytest.mark.parametrize("escape", list(ESCAPES))
def test_sandbox_escape_refused(role_server, seeded, outside, escape, role):
    admin = role_server.conn_for("admin")
    template, duckdb_error = ESCAPES[escape]
    # Symlinks inside the allowed folder that point out of it must not work as a way out either.
    for link, target in (("passwd_link.csv", Path("/etc/passwd")), ("outside_link", outside)):
        if not (role_server.files / link).is_symlink():
            (role_server.files / link).symlink_to(target)
    statement = template.format(files=role_server.files, outside=outside)
    exc = adbc_error(lambda: run_sql(role_server.conn_for(role), statement))
    text = str(exc)
    if role == "admin":
        # The admin passes the role check: DuckDB's own sandbox refuses, with its own message.
        assert duckdb_error in text, text
        if duckdb_error == "Permission Error":
            assert exc.status_code == Status.UNAUTHORIZED, f"{exc.status_code}: {text}"
    else:
        assert duckdb_error in text or exc.status_code == Status.UNAUTHORIZED, f"{exc.status_code}: {text}"
    # Nothing escaped and nothing was lost.
    assert list(outside.iterdir()) == [], list(outside.iterdir())
    assert run_sql(admin, f"SELECT count(*), sum(i) FROM {seeded}") == [(SEED_ROWS, 3)]
    assert one(admin, "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'escaped_db'") == 0
    assert str(one(admin, "SELECT current_setting('enable_external_access')")).lower() == "false"
    allowed = one(admin, "SELECT current_setting('allowed_directories')")
    assert "/" not in [str(a).rstrip("/") or "/" for a in allowed], allowed


def test_allowed_folder_works(role_server, seeded):
    admin = role_server.conn_for("admin")
    target = role_server.files / f"ok_{seeded}.parquet"
    run_sql(admin, f"COPY (SELECT * FROM {seeded}) TO '{target}' (FORMAT parquet)")
    assert target.is_file()
    for role in ("read", "write", "admin"):
        rows = run_sql(role_server.conn_for(role), f"SELECT count(*), sum(i) FROM read_parquet('{target}')")
        assert rows == [(SEED_ROWS, 3)], (role, rows)
    # write may load files from the allowed folder into tables.
    run_sql(role_server.conn_for("write"), f"INSERT INTO {seeded} SELECT i + 10 FROM read_parquet('{target}')")
    assert one(admin, f"SELECT count(*) FROM {seeded}") == 2 * SEED_ROWS


# ---------------------------------------------------------------------------
# 3. Credentials and tokens
# ---------------------------------------------------------------------------


def test_wrong_password_and_unknown_user(role_server):
    wrong = f"wrong-{secrets.token_urlsafe(9)}"
    SENT_SECRETS.add(wrong)
    client = role_server.flight_client()
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token("write", wrong)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(f"nobody-{uuid.uuid4().hex[:6]}", wrong)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token("write", "")
    finally:
        client.close()

    def adbc_wrong():
        with adbc_connect(role_server.uri, "write", wrong) as conn:
            run_sql(conn, "SELECT 1")

    assert_unauthenticated(adbc_error(adbc_wrong))
    # The right password still works (and resets the user's failure count).
    with adbc_connect(role_server.uri, "write", role_server.users.passwords["write"]) as conn:
        assert one(conn, "SELECT 41 + 1") == 42


def test_missing_and_malformed_credentials(role_server):
    def adbc_anonymous():
        with adbc_connect(role_server.uri) as conn:
            run_sql(conn, "SELECT 1")

    assert_unauthenticated(adbc_error(adbc_anonymous))
    client = role_server.flight_client()
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            flight_query(client, "SELECT 1")
        for header in (b"Bearer not-a-token", b"Bearer ", b"Bearer a.b.c", b"Basic !!!notbase64",
                       b"Digest abc"):
            opts = flight.FlightCallOptions(headers=[(b"authorization", header)], timeout=30)
            with pytest.raises(flight.FlightUnauthenticatedError):
                flight_query(client, "SELECT 1", opts)
        # Metadata and ingest-style calls are guarded as well, not only queries.
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(flight.FlightDescriptor.for_command(wire.command_get_catalogs()),
                                   flight.FlightCallOptions(timeout=30))
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(client.do_action(flight.Action("BeginTransaction", b""), flight.FlightCallOptions(timeout=30)))
    finally:
        client.close()


def test_forged_and_tampered_tokens(role_server):
    token = basic_token(role_server, "read", role_server.users.passwords["read"])
    assert token_query(role_server, token).to_pylist() == [{"x": 42}]
    payload, _, signature = token.partition(".")
    claims = json.loads(_unb64(payload))
    assert claims["role"] == "read" and claims["sub"] == "read", claims
    # The genuine token is a read token: operator actions are refused.
    with pytest.raises(flight.FlightUnauthorizedError):
        action(role_server, "statistics", token)

    escalated = dict(claims, role="admin", sub="admin")
    tampered_payload = _b64(json.dumps(escalated, separators=(",", ":")).encode())
    forged_key = secrets.token_bytes(32)
    candidates = {
        "tampered payload, original signature": tampered_payload + "." + signature,
        "forged signature (other key)": tampered_payload + "." + _b64(
            hmac.new(forged_key, tampered_payload.encode(), hashlib.sha256).digest()),
        "own payload, forged signature": payload + "." + _b64(
            hmac.new(forged_key, payload.encode(), hashlib.sha256).digest()),
        "no signature": tampered_payload + ".",
        "extended expiry, original signature": _b64(json.dumps(dict(claims, exp=claims["exp"] + 10**6)).encode())
                                     + "." + signature,
        "truncated signature": payload + "." + signature[:-4],
    }
    for what, forged in candidates.items():
        SENT_SECRETS.add(forged)
        with pytest.raises(flight.FlightUnauthenticatedError):
            token_query(role_server, forged)
        with pytest.raises(flight.FlightUnauthenticatedError, match="(?i)token|auth"):
            action(role_server, "statistics", forged)
        assert forged != token, what
    # The original still works: nothing above revoked or damaged it.
    assert token_query(role_server, token).num_rows == 1


def test_token_revoked_by_close_session(role_server):
    password = role_server.users.passwords["read"]
    token = basic_token(role_server, "read", password)
    other = basic_token(role_server, "read", password)
    assert token != other
    assert token_query(role_server, token).num_rows == 1
    client = role_server.flight_client()
    try:
        list(client.do_action(flight.Action("CloseSession", b""), options_for(token)))
    finally:
        client.close()
    with pytest.raises(flight.FlightUnauthenticatedError):
        token_query(role_server, token)
    # Only that session's token is revoked.
    assert token_query(role_server, other).to_pylist() == [{"x": 42}]


def test_expired_token(start_server, users, tmp_path):
    server = start_server(auth="password", users_file=users.path, allowed_directories=str(tmp_path / "files"),
                          token_ttl=1)
    password = users.passwords["read"]
    token = basic_token(server, "read", password, remember=False)
    assert token_query(server, token).num_rows == 1
    time.sleep(2.2)
    with pytest.raises(flight.FlightUnauthenticatedError, match="(?i)expired"):
        token_query(server, token)
    # Logging in again gives a fresh, working token.
    fresh = basic_token(server, "read", password, remember=False)
    assert token_query(server, fresh).num_rows == 1
    log = server.stderr_text()
    assert log.strip(), "server wrote no log at all"
    for secret in (password, token, fresh):
        assert secret not in log


def test_failed_logins_are_slowed_down(role_server):
    client = role_server.flight_client()
    wrong = f"wrong-{secrets.token_urlsafe(9)}"
    SENT_SECRETS.add(wrong)
    durations = []
    try:
        for _ in range(5):
            started = time.perf_counter()
            with pytest.raises(flight.FlightUnauthenticatedError):
                client.authenticate_basic_token("victim", wrong)
            durations.append(time.perf_counter() - started)
    finally:
        client.close()
    assert durations[4] - durations[0] >= 0.2, durations
    assert durations[4] > durations[3] > durations[0], durations
    # Throttled, not locked out: the right password still gets in.
    token = basic_token(role_server, "victim", role_server.users.passwords["victim"])
    assert token_query(role_server, token).num_rows == 1


# ---------------------------------------------------------------------------
# 4. TLS and mutual TLS
# ---------------------------------------------------------------------------


def _tls_uri(server) -> str:
    return f"grpc+tls://{HOST}:{server.port}"


def assert_transport_refused(exc: adbc_driver_manager.Error, detail: str = "") -> None:
    """The connection itself failed (gRPC UNAVAILABLE -> ADBC IO), not the login or the query."""
    text = str(exc)
    assert exc.status_code == Status.IO and "Unavailable" in text, f"{exc.status_code}: {text}"
    assert detail.lower() in text.lower(), text


def test_tls(start_server, users, pki, tmp_path):
    server = start_server(auth="password", users_file=users.path, allowed_directories=str(tmp_path / "files"),
                          tls_cert=pki.server_cert_file, tls_key=pki.server_key_file)
    uri = _tls_uri(server)
    password = users.passwords["read"]
    with adbc_connect(uri, "read", password, **{DbOpt.TLS_ROOT_CERTS.value: pki.ca_pem.decode()}) as conn:
        assert one(conn, "SELECT 6 * 7") == 42
    with adbc_connect(f"grpc+tls://localhost:{server.port}", "read", password,
                      **{DbOpt.TLS_ROOT_CERTS.value: pki.ca_pem.decode()}) as conn:
        assert one(conn, "SELECT 1") == 1
    client = flight.FlightClient(uri, tls_root_certs=pki.ca_pem)
    try:
        health = json.loads(list(client.do_action(flight.Action("health", b""),
                                                  flight.FlightCallOptions(timeout=30)))[0].body.to_pybytes())
    finally:
        client.close()
    assert health["status"] == "healthy"

    def plaintext_adbc():
        with adbc_connect(f"grpc://{HOST}:{server.port}", "read", password) as conn:
            run_sql(conn, "SELECT 1")

    assert_transport_refused(run_with_timeout(lambda: adbc_error(plaintext_adbc), 60,
                                              "plaintext ADBC client against TLS"))

    def plaintext_flight():
        plain = flight.FlightClient(f"grpc://{HOST}:{server.port}")
        try:
            with pytest.raises(flight.FlightError):
                list(plain.do_action(flight.Action("health", b""), flight.FlightCallOptions(timeout=10)))
        finally:
            plain.close()

    run_with_timeout(plaintext_flight, 60, "plaintext Flight client against TLS")

    def untrusted():  # TLS, but the client does not trust the test CA
        with adbc_connect(uri, "read", password) as conn:
            run_sql(conn, "SELECT 1")

    assert_transport_refused(run_with_timeout(lambda: adbc_error(untrusted), 60, "TLS client without the CA"),
                             "certificate")
    assert server.alive()


def test_mutual_tls(start_server, users, pki, tmp_path):
    server = start_server(auth="password", users_file=users.path, allowed_directories=str(tmp_path / "files"),
                          tls_cert=pki.server_cert_file, tls_key=pki.server_key_file, tls_client_ca=pki.ca_file)
    uri = _tls_uri(server)
    password = users.passwords["read"]
    root = {DbOpt.TLS_ROOT_CERTS.value: pki.ca_pem.decode()}
    with adbc_connect(uri, "read", password, **root, **{DbOpt.MTLS_CERT_CHAIN.value: pki.client_cert.decode(),
                                                        DbOpt.MTLS_PRIVATE_KEY.value: pki.client_key.decode()}) as conn:
        assert one(conn, "SELECT 42") == 42
    client = flight.FlightClient(uri, tls_root_certs=pki.ca_pem, cert_chain=pki.client_cert,
                                 private_key=pki.client_key)
    try:
        assert list(client.do_action(flight.Action("health", b""), flight.FlightCallOptions(timeout=30)))
    finally:
        client.close()

    def without_client_cert():
        with adbc_connect(uri, "read", password, **root) as conn:
            run_sql(conn, "SELECT 1")

    assert_transport_refused(run_with_timeout(lambda: adbc_error(without_client_cert), 60,
                                              "mTLS without a client certificate"))

    def rogue_client_cert():
        rogue = {DbOpt.MTLS_CERT_CHAIN.value: pki.rogue_cert.decode(),
                 DbOpt.MTLS_PRIVATE_KEY.value: pki.rogue_key.decode()}
        with adbc_connect(uri, "read", password, **root, **rogue) as conn:
            run_sql(conn, "SELECT 1")

    assert_transport_refused(run_with_timeout(lambda: adbc_error(rogue_client_cert), 60,
                                              "mTLS with a certificate from another CA"))

    def flight_without_cert():
        bare = flight.FlightClient(uri, tls_root_certs=pki.ca_pem)
        try:
            with pytest.raises(flight.FlightError):
                list(bare.do_action(flight.Action("health", b""), flight.FlightCallOptions(timeout=10)))
        finally:
            bare.close()

    run_with_timeout(flight_without_cert, 60, "pyarrow mTLS without a client certificate")
    assert server.alive()


# ---------------------------------------------------------------------------
# 5. Operator actions
# ---------------------------------------------------------------------------


def test_operator_actions_need_admin(role_server):
    health = action(role_server, "health")  # no credentials at all
    assert health["status"] == "healthy", health
    read_token = basic_token(role_server, "read", role_server.users.passwords["read"])
    write_token = basic_token(role_server, "write", role_server.users.passwords["write"])
    admin_token = basic_token(role_server, "admin", role_server.users.passwords["admin"])
    backups_before = set((role_server.workdir / "data" / "backups").glob("*"))
    for name in ("statistics", "backup", "circuit-breaker-reset"):
        with pytest.raises(flight.FlightUnauthenticatedError):
            action(role_server, name)
        for token in (read_token, write_token):
            with pytest.raises(flight.FlightUnauthorizedError, match="may not"):
                action(role_server, name, token)
    assert set((role_server.workdir / "data" / "backups").glob("*")) == backups_before
    stats = action(role_server, "statistics", admin_token)
    assert stats["service"]["uptime_seconds"] > 0, stats
    reset = action(role_server, "circuit-breaker-reset", admin_token)
    assert reset["state"] == "closed", reset
    backup = action(role_server, "backup", admin_token)
    assert Path(backup["path"]).is_dir() and backup["size_bytes"] > 0, backup
    assert action(role_server, "health", read_token)["status"] == "healthy"


# ---------------------------------------------------------------------------
# 6. First start: an admin with a random password written to a private file
# ---------------------------------------------------------------------------


def test_first_start_bootstraps_admin(start_server, tmp_path, monkeypatch):
    for name in ("FLIGHT_USER", "FLIGHT_PASSWORD", "FLIGHT_USERS_FILE", "FLIGHT_DATA_DIR", "FLIGHT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    server = start_server(auth="password", allowed_directories=str(tmp_path / "files"))
    data = server.workdir / "data"
    secret_file = data / "initial-admin-password"
    users_file = data / "users.toml"
    password = secret_file.read_text().strip()
    assert len(password) >= 16, password
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert password not in users_file.read_text()
    assert "[users.admin]" in users_file.read_text()
    with adbc_connect(server.uri, "admin", password) as conn:
        run_sql(conn, "CREATE TABLE boot_t AS SELECT 1 AS x")
        assert one(conn, "SELECT count(*) FROM boot_t") == 1
    assert action(server, "statistics", basic_token(server, "admin", password, remember=False))["service"]
    with pytest.raises(flight.FlightUnauthenticatedError):
        basic_token(server, "admin", password + "x", remember=False)
    assert password not in server.stderr_text()
    assert "initial-admin-password" in server.stderr_text()  # the log says where to find it
    # A restart keeps the admin and its password; nothing is regenerated.
    server.stop()
    again = launch_server(server.workdir, server.database, auth="password",
                          allowed_directories=str(tmp_path / "files"))
    try:
        assert secret_file.read_text().strip() == password
        with adbc_connect(again.uri, "admin", password) as conn:
            assert one(conn, "SELECT count(*) FROM boot_t") == 1
        assert password not in again.stderr_text()
    finally:
        again.stop()


# ---------------------------------------------------------------------------
# 8. Read-only mode
# ---------------------------------------------------------------------------

FLIGHT_SQL_SERVER_READ_ONLY = 3


def test_read_only_mode(start_server, users, tmp_path, role_server):
    path = tmp_path / "ro.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE ro_t AS SELECT range AS i FROM range(5)")
    server = start_server(database=str(path), read_only="true", auth="password", users_file=users.path,
                          allowed_directories=str(tmp_path / "files"))
    admin_password = users.passwords["admin"]
    with adbc_connect(server.uri, "admin", admin_password) as conn:
        info = conn.adbc_get_info()
        if "vendor_read_only" in info:
            assert info["vendor_read_only"] is True, info
        assert one(conn, "SELECT count(*) FROM ro_t") == 5
        for sql in ("INSERT INTO ro_t VALUES (9)", "CREATE TABLE ro_new (x INTEGER)", "DELETE FROM ro_t",
                    "DROP TABLE ro_t"):
            exc = adbc_error(lambda: run_sql(conn, sql))
            assert "read-only" in str(exc).lower() or "read only" in str(exc).lower(), str(exc)
        cur = conn.cursor()
        try:
            adbc_error(lambda: cur.adbc_ingest("ro_t", pa.table({"i": pa.array([7], pa.int64())}), mode="append"))
        finally:
            cur.close()
        assert one(conn, "SELECT count(*) FROM ro_t") == 5
        assert one(conn, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ro_new'") == 0
    token = basic_token(server, "read", users.passwords["read"], remember=False)
    assert sql_info(server, token, FLIGHT_SQL_SERVER_READ_ONLY) is True
    # A normal server says it is writable.
    rw_token = basic_token(role_server, "read", role_server.users.passwords["read"])
    assert sql_info(role_server, rw_token, FLIGHT_SQL_SERVER_READ_ONLY) is False
    server.stop()
    with duckdb.connect(str(path)) as db:
        assert db.execute("SELECT count(*), sum(i) FROM ro_t").fetchone() == (5, 10)


# ---------------------------------------------------------------------------
# 9. No authentication on a network address
# ---------------------------------------------------------------------------


def _server_argv(tmp: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flight_server", "--host", "0.0.0.0", "--port", str(port), "--http-port", "-1",
            "--database", str(tmp / "net.duckdb"), "--data-dir", str(tmp / "data"),
            "--allowed-directories", str(tmp / "files"), *extra]


def test_auth_none_on_network_address_refused(tmp_path):
    port = free_port()
    done = subprocess.run(_server_argv(tmp_path, port, "--auth", "none"), cwd=str(tmp_path), env=_server_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "authentication" in done.stderr.lower(), done.stderr[-2000:]
    with socket.socket() as probe:  # nothing is listening
        assert probe.connect_ex((HOST, port)) != 0
    # Explicitly allowed: it starts (and serves).
    proc = subprocess.Popen(_server_argv(tmp_path, port, "--auth", "none", "--allow-unauthenticated-network",
                                         "true"),
                            cwd=str(tmp_path), env=_server_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    up = True
                    break
            time.sleep(0.1)
        assert up, f"server with --allow-unauthenticated-network did not start (rc={proc.poll()})"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()


# ---------------------------------------------------------------------------
# 7. Secrets never reach the log (runs last: checks everything sent above)
# ---------------------------------------------------------------------------


def test_zz_no_credentials_in_logs(role_server, users):
    # Make sure this server has seen logins, queries, refusals and failures, whatever ran before.
    token = basic_token(role_server, "admin", users.passwords["admin"])
    assert token_query(role_server, token).num_rows == 1
    with pytest.raises(flight.FlightUnauthenticatedError):
        basic_token(role_server, "write", "definitely-" + secrets.token_hex(6))
    log = role_server.stderr_text()
    assert '"statement"' in log or "statement" in log, "the server logged no statements; the check is vacuous"
    assert len(SENT_SECRETS) >= 8, SENT_SECRETS
    leaked = sorted(s for s in SENT_SECRETS if s and s in log)
    assert not leaked, f"{len(leaked)} secret(s) found in the server log, e.g. {leaked[0][:12]}..."
    for name, password in users.passwords.items():
        assert base64.b64encode(f"{name}:{password}".encode()).decode() not in log
    # With a users file given, no admin was bootstrapped and no password file written.
    assert not (role_server.workdir / "data" / "initial-admin-password").exists()
