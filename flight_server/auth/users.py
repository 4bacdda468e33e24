"""The user directory: a TOML users file and/or one user from the environment; bootstraps an admin if empty."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .passwords import hash_password, verify_password
from .roles import ROLES


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str


class UserStore:
    def __init__(self, users: dict[str, User]):
        self._users = users

    def __len__(self) -> int:
        return len(self._users)

    def check(self, name: str, password: str) -> User | None:
        """The user if the password matches (same work whether or not the user exists)."""
        user = self._users.get(name)
        stored = user.password_hash if user else _DUMMY_HASH
        ok = verify_password(password, stored)
        return user if ok and user is not None else None

    @classmethod
    def load(cls, users_file: str | None, env_user: str | None, env_password: str | None,
             env_role: str) -> UserStore:
        users: dict[str, User] = {}
        if users_file:
            users.update(read_users_file(users_file))
        if env_user:
            if not env_password:
                raise ValueError("FLIGHT_USER is set but FLIGHT_PASSWORD is not")
            if env_role not in ROLES:
                raise ValueError(f"FLIGHT_USER_ROLE: {env_role!r} is not one of {', '.join(ROLES)}")
            stored = env_password if env_password.startswith("scrypt$") else hash_password(env_password)
            users[env_user] = User(env_user, stored, env_role)
        return cls(users)


def read_users_file(path: str) -> dict[str, User]:
    """Reads `[users.NAME]` tables with `password_hash` and `role`."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    users = {}
    for name, entry in data.get("users", {}).items():
        role = entry.get("role", "read")
        if role not in ROLES:
            raise ValueError(f"users file {path}: user {name!r} has unknown role {role!r}")
        stored = entry.get("password_hash", "")
        if not stored.startswith("scrypt$"):
            raise ValueError(f"users file {path}: user {name!r} needs a password_hash "
                             "(make one with `duckdb-flight-server hash-password`)")
        users[name] = User(name, stored, role)
    return users


def bootstrap_admin(path: str) -> str:
    """Creates a users file with one admin and a random password; returns the password (shown once)."""
    password = secrets.token_urlsafe(18)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    content = ("# Created at first start. Add users with password hashes from\n"
               "# `duckdb-flight-server hash-password`; roles: read, write, admin.\n"
               f'[users.admin]\npassword_hash = "{hash_password(password)}"\nrole = "admin"\n')
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return password


_DUMMY_HASH = hash_password(secrets.token_hex(8))
