"""Works out who is calling (credentials, through auth/credentials.py) and which session a call belongs to (the
Flight session cookie when sent, else the client's gRPC connection), and runs per-call completion hooks when a
call, streaming included, has finished."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

import pyarrow.flight as flight

from ..auth.credentials import Authenticator, Principal

COOKIE_NAME = "arrow_flight_session_id"
MIDDLEWARE_KEY = "call"


class CallMiddleware(flight.ServerMiddleware):
    """Per-call state: who is calling, the cookie the call arrived with, the cookie and token to hand back,
    completion hooks. The service's only middleware: gRPC calls into Python three times per middleware and call."""

    def __init__(self, cookie: str | None, ingest_mode: str | None = None, principal: Principal | None = None,
                 token: str | None = None):
        self.cookie = cookie
        self.ingest_mode = ingest_mode  # plain-Flight DoPut mode header
        self.principal = principal  # None without authentication (or on a call that needs none)
        self.outgoing_token = token  # a bearer token to answer with (handshake, per-call Basic credentials)
        self.issue: str | None = None
        self.on_complete: list[Callable[[BaseException | None], None]] = []

    def sending_headers(self):
        if self.outgoing_token is None and (self.issue is None or self.issue == self.cookie):
            return {}
        headers = {}
        if self.outgoing_token:
            headers["authorization"] = f"Bearer {self.outgoing_token}"
        if self.issue and self.issue != self.cookie:
            headers["set-cookie"] = f"{COOKIE_NAME}={self.issue}"
        return headers

    def call_completed(self, exception):
        if not self.on_complete:
            return
        for hook in self.on_complete:
            try:
                hook(exception)
            except Exception:
                pass
        self.on_complete.clear()


class CallMiddlewareFactory(flight.ServerMiddlewareFactory):
    def __init__(self, authenticator: Authenticator | None = None):
        self.authenticator = authenticator

    def start_call(self, info, headers):
        principal = token = None
        if self.authenticator is not None:
            principal, token = self.authenticator.authenticate(info.method, headers)
        modes = headers.get("x-flight-ingest-mode")
        cookie = _cookie(headers) if "cookie" in headers else None
        return CallMiddleware(cookie, modes[0].strip().lower() if modes else None, principal, token)


def _cookie(headers: dict[str, list[str]]) -> str | None:
    for value in headers.get("cookie", []):
        for part in value.split(";"):
            name, _, content = part.strip().partition("=")
            if name == COOKIE_NAME and content:
                return content
    return None


def middleware(context: flight.ServerCallContext) -> CallMiddleware | None:
    return context.get_middleware(MIDDLEWARE_KEY)


def principal_of(context: flight.ServerCallContext) -> Principal | None:
    call = context.get_middleware(MIDDLEWARE_KEY)
    return call.principal if call is not None else None


class SessionKeys:
    """Derives stable, unguessable session keys from gRPC peers (so a cookie can name the same session)."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def key_for(self, context: flight.ServerCallContext) -> str:
        call = middleware(context)
        if call is not None and call.cookie:
            return call.cookie
        digest = hmac.new(self._secret, context.peer().encode(), hashlib.sha256).hexdigest()[:32]
        key = "p" + digest
        if call is not None:
            call.issue = key
        return key
