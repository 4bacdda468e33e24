"""The user directory: a TOML users file and/or one user from the environment; bootstraps an admin if empty."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import tomllib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .passwords import hash_password, verify_password
from .roles import ROLES

# Longer user names are refused at once (no password check); a users file may not name such a user.
MAX_NAME_LENGTH = 256
# Password checks run on a few dedicated threads. scrypt is CPU-bound, so more threads than cores gain nothing;
# and each check allocates 16 MiB, which glibc keeps in a per-thread arena once freed: checks spread over gRPC's
# many threads grew the server by hundreds of MB under a burst of failed logins.
_CHECKERS = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="password-check")


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str


class UserStore:
    """Users by name. A password that passed scrypt is remembered for a few minutes as an HMAC under a
    per-process key (never the password), so a client reconnecting, or sending Basic credentials on each
    call, costs microseconds instead of a 16 MiB, ~60 ms scrypt check. Failed attempts are never cached."""

    VERIFIED_TTL = 300.0
    VERIFIED_MAX = 1024

    def __init__(self, users: dict[str, User]):
        self._users = users
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def check(self, name: str, password: str) -> User | None:
        """The user if the password matches (same work whether or not the user exists)."""
        if len(name) > MAX_NAME_LENGTH:
            return None
        user = self._users.get(name)
        digest = hmac.new(self._key, name.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._verified_lock:
            seen = self._verified.get(digest)
        if user is not None and seen is not None and seen[0] == user.password_hash and now < seen[1]:
            return user
        stored = user.password_hash if user else _DUMMY_HASH
        ok = _CHECKERS.submit(verify_password, password, stored).result()
        if not (ok and user is not None):
            return None
        with self._verified_lock:
            self._verified[digest] = (user.password_hash, now + self.VERIFIED_TTL)
            self._verified.move_to_end(digest)
            while len(self._verified) > self.VERIFIED_MAX:
                self._verified.popitem(last=False)
        return user

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
            # A plain password gets a salt fixed by the name, so the hash (which tokens are bound to) is the same
            # at every start and tokens survive a restart.
            salt = hashlib.sha256(b"flight-env-user\0" + env_user.encode()).digest()[:16]
            stored = env_password if env_password.startswith("scrypt$") else hash_password(env_password, salt)
            users[env_user] = User(env_user, stored, env_role)
        return cls(users)


def read_users_file(path: str) -> dict[str, User]:
    """Reads `[users.NAME]` tables with `password_hash` and `role`."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    users = {}
    for name, entry in data.get("users", {}).items():
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"users file {path}: user names must have 1 to {MAX_NAME_LENGTH} characters")
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
