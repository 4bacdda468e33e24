"""One place that knows how to open an ADBC Flight SQL connection to the server (TLS, credentials, options)."""

from __future__ import annotations

import os

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql

DEFAULT_URI = "grpc://127.0.0.1:31337"
_OPTIONS = adbc_driver_flightsql.DatabaseOptions


def read_pem(certs: str | bytes | os.PathLike) -> bytes:
    """PEM bytes from PEM text or from the path of a PEM file."""
    if isinstance(certs, bytes):
        return certs
    if isinstance(certs, str) and "-----BEGIN" in certs:
        return certs.encode()
    with open(certs, "rb") as handle:
        return handle.read()


def tls_uri(uri: str) -> str:
    """`grpc://` becomes `grpc+tls://`; other schemes are left alone."""
    return "grpc+tls://" + uri[len("grpc://"):] if uri.startswith("grpc://") else uri


def connect(uri: str = DEFAULT_URI, user: str | None = None, password: str | None = None, tls: bool = False,
            tls_root_certs: str | bytes | os.PathLike | None = None, skip_verify: bool = False,
            autocommit: bool = True, **db_kwargs: str):
    """An ADBC DB-API connection; root certificates or skip_verify imply TLS. Extra db_kwargs pass through."""
    options = dict(db_kwargs)
    if user is not None:
        options["username"] = user
    if password is not None:
        options["password"] = password
    if tls_root_certs is not None:
        options[_OPTIONS.TLS_ROOT_CERTS.value] = read_pem(tls_root_certs).decode()
    if skip_verify:
        options[_OPTIONS.TLS_SKIP_VERIFY.value] = "true"
    if tls or tls_root_certs is not None or skip_verify:
        uri = tls_uri(uri)
    return flightsql.connect(uri, db_kwargs=options or None, autocommit=autocommit)
