"""Works out which session a call belongs to (the Flight session cookie when sent, else the client's gRPC
connection) and runs per-call completion hooks when a call, streaming included, has finished."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

import pyarrow.flight as flight

COOKIE_NAME = "arrow_flight_session_id"
MIDDLEWARE_KEY = "call"


class CallMiddleware(flight.ServerMiddleware):
    """Per-call state: the cookie the call arrived with, the cookie to hand back, completion hooks."""

    def __init__(self, cookie: str | None, ingest_mode: str | None = None):
        self.cookie = cookie
        self.ingest_mode = ingest_mode  # plain-Flight DoPut mode header
        self.issue: str | None = None
        self.on_complete: list[Callable[[BaseException | None], None]] = []

    def sending_headers(self):
        if self.issue and self.issue != self.cookie:
            return {"set-cookie": f"{COOKIE_NAME}={self.issue}"}
        return {}

    def call_completed(self, exception):
        for hook in self.on_complete:
            try:
                hook(exception)
            except Exception:
                pass
        self.on_complete.clear()


class CallMiddlewareFactory(flight.ServerMiddlewareFactory):
    def start_call(self, info, headers):
        modes = headers.get("x-flight-ingest-mode", [])
        return CallMiddleware(_cookie(headers), modes[0].strip().lower() if modes else None)


def _cookie(headers: dict[str, list[str]]) -> str | None:
    for value in headers.get("cookie", []):
        for part in value.split(";"):
            name, _, content = part.strip().partition("=")
            if name == COOKIE_NAME and content:
                return content
    return None


def middleware(context: flight.ServerCallContext) -> CallMiddleware | None:
    return context.get_middleware(MIDDLEWARE_KEY)


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
