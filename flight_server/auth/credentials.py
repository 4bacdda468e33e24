"""Flight authentication: Basic credentials answer with a bearer token (what ADBC and JDBC expect); bearer tokens
are verified on every call. Credentials and tokens never appear in errors or logs."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

import pyarrow.flight as flight

from .throttle import LoginThrottle
from .tokens import TokenError, TokenSigner
from .users import UserStore

# Calls allowed in without credentials: DoAction (only `health` is then served) and ListActions.
_OPEN_METHODS = {flight.FlightMethod.DO_ACTION, flight.FlightMethod.LIST_ACTIONS}


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    session: str | None  # the token's session id; None for per-call Basic credentials
    expires: float | None = None  # when the bearer token expires


class Authenticator:
    """Checks the credentials a call carries (its headers). The service's one call middleware asks it at the
    start of every call: one middleware instead of two halves the Python callbacks gRPC makes per call."""

    def __init__(self, users: UserStore, signer: TokenSigner, throttle: LoginThrottle, external=None):
        self.users = users
        self.signer = signer
        self.throttle = throttle
        self.external = external  # ExternalJwtVerifier for single sign-on tokens, or None

    def authenticate(self, method, headers) -> tuple[Principal | None, str | None]:
        """(who is calling, a bearer token to hand back or None). Raises FlightUnauthenticatedError; a call
        without credentials gets (None, None) only for the methods that need none."""
        values = headers.get("authorization") or headers.get("Authorization") or ()
        credential = values[0] if values else ""
        scheme, _, value = credential.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            token = value.strip()
            try:
                claims = self.signer.verify(token)
            except TokenError as exc:
                if self.external is None or token.count(".") != 2:
                    raise flight.FlightUnauthenticatedError(str(exc)) from None
                try:
                    claims = self.external.verify(token)
                    self.signer.check_revoked(claims.session)
                except TokenError as external_exc:
                    raise flight.FlightUnauthenticatedError(str(external_exc)) from None
            return Principal(claims.user, claims.role, claims.session, claims.expires), None
        if scheme == "basic":
            user = self._basic(value.strip())
            if method == flight.FlightMethod.HANDSHAKE:
                token = self.signer.issue(user.name, user.role)
                claims = self.signer.verify(token)
                return Principal(user.name, user.role, claims.session, claims.expires), token
            return Principal(user.name, user.role, None), None
        if method in _OPEN_METHODS:
            return None, None
        raise flight.FlightUnauthenticatedError(
            "authentication required: send Basic credentials (username/password) or a bearer token")

    def _basic(self, encoded: str):
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            name, _, password = base64.b64decode(padded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise flight.FlightUnauthenticatedError("malformed Basic credentials") from None
        user = self.users.check(name, password)
        if user is None:
            # Only the failed answer waits: a correct password is never delayed by others' failures.
            delay = self.throttle.failed(name)
            if delay:
                time.sleep(delay)
            raise flight.FlightUnauthenticatedError("invalid username or password")
        self.throttle.succeeded(name)
        return user


class HandshakeAcceptor(flight.ServerAuthHandler):
    """Lets the Handshake RPC through: the credentials travel in headers and the call middleware (service/identity.py)
    checks them and answers the bearer token. (Without an auth handler pyarrow answers Handshake UNIMPLEMENTED.)"""

    def authenticate(self, outgoing, incoming):
        pass

    def is_valid(self, token):
        return b""
