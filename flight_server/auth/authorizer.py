"""Applies a role to a session's work: statements by the role they need (auth/roles.py), ingest needs write."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from ..engine.errors import PermissionDeniedError
from . import roles


class RoleAuthorizer:
    def __init__(self, role: str, policy: roles.Policy = roles.Policy()):
        self.role = role
        self.policy = policy
        # What a statement's decision depends on besides its text: sessions remember the texts allowed under
        # this key (engine Session._parse). The policy is one object for the server's life.
        self.decision_key = (role, id(policy))

    @property
    def read_only(self) -> bool:
        """Read sessions run every statement in a DuckDB read-only transaction (the engine's second layer)."""
        return self.role == roles.READ

    def statements(self, statements: Sequence[duckdb.Statement]) -> None:
        problem = roles.check(self.role, statements, self.policy)
        if problem:
            raise PermissionDeniedError(problem)

    def ingest(self) -> None:
        if not roles.allows(self.role, roles.WRITE):
            raise PermissionDeniedError(f"role '{self.role}' may not ingest data (needs 'write')")

    def require(self, needed: str, what: str) -> None:
        if not roles.allows(self.role, needed):
            raise PermissionDeniedError(f"role '{self.role}' may not {what} (needs '{needed}')")
