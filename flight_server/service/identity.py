"""Works out which session a call belongs to: the Flight session cookie when sent, else the client's gRPC connection."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyarrow.flight as flight

COOKIE_NAME = "arrow_flight_session_id"


class SessionCookieMiddleware(flight.ServerMiddleware):
    """Remembers the cookie a call arrived with, and hands the session id back as a cookie."""

    def __init__(self, cookie: str | None):
        self.cookie = cookie
        self.issue: str | None = None

    def sending_headers(self):
        if self.issue and self.issue != self.cookie:
            return {"set-cookie": f"{COOKIE_NAME}={self.issue}"}
        return {}


class SessionCookieFactory(flight.ServerMiddlewareFactory):
    def start_call(self, info, headers):
        return SessionCookieMiddleware(_cookie(headers))


def _cookie(headers: dict[str, list[str]]) -> str | None:
    for value in headers.get("cookie", []):
        for part in value.split(";"):
            name, _, content = part.strip().partition("=")
            if name == COOKIE_NAME and content:
                return content
    return None


class SessionKeys:
    """Derives stable, unguessable session keys from gRPC peers (so a cookie can name the same session)."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def key_for(self, context: flight.ServerCallContext) -> str:
        middleware = context.get_middleware("session")
        if middleware is not None and middleware.cookie:
            return middleware.cookie
        digest = hmac.new(self._secret, context.peer().encode(), hashlib.sha256).hexdigest()[:32]
        key = "p" + digest
        if middleware is not None:
            middleware.issue = key
        return key
