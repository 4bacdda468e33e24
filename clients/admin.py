"""Operator actions (health, statistics, breaker reset, backup) over plain Arrow Flight, answered as JSON."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.flight as flight

from .connect import DEFAULT_URI, read_pem, tls_uri
from .errors import message


class AdminError(Exception):
    """The server refused or failed an action, or could not be reached."""


class AdminClient:
    """`AdminClient(uri).health()` and friends; credentials, when given, go through the Basic-auth handshake."""

    def __init__(self, uri: str = DEFAULT_URI, user: str | None = None, password: str | None = None,
                 tls_root_certs: str | bytes | os.PathLike | None = None):
        kwargs = {}
        if tls_root_certs is not None:
            uri = tls_uri(uri)
            kwargs["tls_root_certs"] = read_pem(tls_root_certs)
        self._client = flight.FlightClient(uri, **kwargs)
        headers = []
        if user is not None:
            headers.append(self._guard(lambda: self._client.authenticate_basic_token(user, password or "")))
        self._options = flight.FlightCallOptions(headers=headers)

    def health(self) -> dict:
        return self.call("health")

    def statistics(self) -> dict:
        return self.call("statistics")

    def reset_breaker(self) -> dict:
        return self.call("circuit-breaker-reset")

    def backup(self) -> dict:
        return self.call("backup", {})

    def actions(self) -> dict[str, str]:
        """Action name -> description, as the server lists them."""
        listed = self._guard(lambda: list(self._client.list_actions(self._options)))
        return {action.type: action.description for action in listed}

    def call(self, name: str, body: dict | None = None) -> dict:
        """Runs action `name` with an optional JSON body and decodes its single JSON answer."""
        payload = b"" if body is None else json.dumps(body).encode()
        results = self._guard(lambda: list(self._client.do_action(flight.Action(name, payload), self._options)))
        if not results:
            raise AdminError(f"action {name!r} answered nothing")
        try:
            return json.loads(results[0].body.to_pybytes())
        except ValueError as exc:
            raise AdminError(f"action {name!r} answered non-JSON data: {exc}") from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @staticmethod
    def _guard(work):
        try:
            return work()
        except (pa.ArrowException, OSError) as exc:
            raise AdminError(message(exc)) from None
