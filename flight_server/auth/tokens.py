"""Signed, expiring bearer tokens carrying user, role and session; revoked when their session closes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass


class TokenError(Exception):
    """The token is malformed, forged, expired or revoked (the message says which, without the token)."""


@dataclass(frozen=True)
class Claims:
    user: str
    role: str
    session: str
    expires: float


class TokenSigner:
    def __init__(self, secret: bytes | None, ttl: float):
        self._secret = secret or secrets.token_bytes(32)
        self.ttl = ttl
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, user: str, role: str, session: str | None = None) -> str:
        claims = {"sub": user, "role": role, "sid": session or secrets.token_urlsafe(12),
                  "exp": int(time.time() + self.ttl), "iat": int(time.time())}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return payload + "." + _b64(self._sign(payload))

    def verify(self, token: str) -> Claims:
        payload, _, signature = token.partition(".")
        try:
            expected = self._sign(payload)
            if not hmac.compare_digest(expected, _unb64(signature)):
                raise TokenError("token signature is invalid")
            data = json.loads(_unb64(payload))
            claims = Claims(data["sub"], data["role"], data["sid"], float(data["exp"]))
        except TokenError:
            raise
        except Exception:
            raise TokenError("token is malformed") from None
        if claims.expires < time.time():
            raise TokenError("token has expired; authenticate again")
        self.check_revoked(claims.session)
        return claims

    def check_revoked(self, session: str) -> None:
        with self._lock:
            if session in self._revoked:
                raise TokenError("token's session was closed; authenticate again")

    def revoke(self, session: str) -> None:
        with self._lock:
            now = time.time()
            self._revoked[session] = now + self.ttl
            for sid, until in list(self._revoked.items()):
                if until < now:
                    del self._revoked[sid]

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
