"""Single sign-on: bearer JWTs from an external issuer, checked against a configured key, issuer and audience
(PyJWT does the verification)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .roles import READ, ROLES
from .tokens import Claims, TokenError


@dataclass(frozen=True)
class ExternalJwtVerifier:
    key: str  # HMAC secret, or a PEM public key for RS*/ES* algorithms
    algorithms: tuple[str, ...]
    issuer: str | None
    audience: str | None
    user_claim: str = "sub"
    role_claim: str = "role"

    def verify(self, token: str) -> Claims:
        import jwt  # optional dependency: pip install '.[sso]'

        try:
            data = jwt.decode(token, self.key, algorithms=list(self.algorithms), issuer=self.issuer,
                              audience=self.audience,
                              options={"require": ["exp"] + (["iss"] if self.issuer else [])
                                       + (["aud"] if self.audience else [])})
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired; authenticate again") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"token rejected: {type(exc).__name__}") from None
        user = data.get(self.user_claim)
        role = data.get(self.role_claim, READ)
        if not isinstance(user, str) or not user:
            raise TokenError(f"token has no '{self.user_claim}' claim")
        if role not in ROLES:
            raise TokenError(f"token's '{self.role_claim}' claim is not one of {', '.join(ROLES)}")
        # One session per token: the same token keeps reaching the same session.
        session = "jwt-" + hashlib.sha256(token.encode()).hexdigest()[:24]
        return Claims(user, role, session, float(data["exp"]))
