"""Single sign-on: bearer JWTs from an external issuer, checked for signature, issuer, audience and expiry."""

from __future__ import annotations

import time
import uuid

import adbc_driver_manager
import pyarrow.flight as flight
import pytest

jwt = pytest.importorskip("jwt")

SECRET = "shared-sso-secret-for-tests-0123456789"
ISSUER, AUDIENCE = "https://login.example.test", "flight-sql"


def make_token(role="read", *, key=SECRET, algorithm="HS256", issuer=ISSUER, audience=AUDIENCE, ttl=300, sub="sso-user"):
    claims = {"sub": sub, "role": role, "iss": issuer, "aud": audience, "exp": int(time.time()) + ttl,
              "jti": uuid.uuid4().hex}  # a token names its session; CloseSession revokes that token
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.fixture(scope="module")
def sso_server(tmp_path_factory):
    from support import launch_server

    workdir = tmp_path_factory.mktemp("sso")
    handle = launch_server(workdir, auth="password", allowed_directories=str(workdir / "files"),
                           jwt_key=SECRET, jwt_algorithms="HS256", jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    yield handle
    handle.stop()


def connect_with(server, token):
    return server.connect(db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})


def test_sso_token_gives_its_role(sso_server):
    with connect_with(sso_server, make_token("write")) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE sso_written AS SELECT 1 AS x")
        cur.execute("SELECT count(*) FROM sso_written")
        assert cur.fetchall() == [(1,)]
    with connect_with(sso_server, make_token("read")) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM sso_written")
        assert cur.fetchall() == [(1,)]
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute("DROP TABLE sso_written")
        assert "may not run DROP" in str(info.value)
    client = sso_server.flight_client()
    admin = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {make_token('admin')}".encode())])
    assert list(client.do_action(flight.Action("statistics", b""), admin))
    reader = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {make_token('read')}".encode())])
    with pytest.raises(flight.FlightUnauthorizedError):
        list(client.do_action(flight.Action("statistics", b""), reader))


@pytest.mark.parametrize("token", [
    make_token(audience="someone-else"),
    make_token(issuer="https://evil.example"),
    make_token(ttl=-30),
    make_token(key="not-the-right-secret-at-all-0123456789"),
    make_token(role="superuser"),
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
])
def test_bad_sso_tokens_are_unauthenticated(sso_server, token):
    client = sso_server.flight_client()
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights(options=options))


def test_rs256_with_public_key_file(start_server, tmp_path):
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    from cryptography.hazmat.primitives import serialization

    private = crypto.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(public_pem)
    server = start_server(auth="password", jwt_key=str(key_file), jwt_algorithms="RS256",
                          jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    good = make_token("read", key=private, algorithm="RS256")
    with connect_with(server, good) as conn, conn.cursor() as cur:
        cur.execute("SELECT 'signed by the issuer'")
        assert cur.fetchall() == [("signed by the issuer",)]
    forged = make_token("admin", key=SECRET, algorithm="HS256")  # HMAC with a guessable key: refused
    client = server.flight_client()
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {forged}".encode())])
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights(options=options))
