"""Unit tests of the verified-password cache (auth/users.py): a correct password is checked with scrypt
once, then remembered; wrong passwords always cost a full check; a changed password hash forgets it."""

from __future__ import annotations

from flight_server.auth import users as users_module
from flight_server.auth.passwords import hash_password
from flight_server.auth.users import User, UserStore


def _counting(monkeypatch):
    calls = []
    real = users_module.verify_password

    def counted(password, stored):
        calls.append(password)
        return real(password, stored)

    monkeypatch.setattr(users_module, "verify_password", counted)
    return calls


def test_correct_password_is_checked_once(monkeypatch):
    calls = _counting(monkeypatch)
    store = UserStore({"ann": User("ann", hash_password("right"), "read")})
    assert store.check("ann", "right").name == "ann"
    assert store.check("ann", "right").name == "ann"
    assert store.check("ann", "right").name == "ann"
    assert len(calls) == 1


def test_wrong_passwords_are_never_cached(monkeypatch):
    calls = _counting(monkeypatch)
    store = UserStore({"ann": User("ann", hash_password("right"), "read")})
    assert store.check("ann", "right") is not None
    for _ in range(3):
        assert store.check("ann", "wrong") is None
    assert store.check("nobody", "right") is None
    assert len(calls) == 5


def test_cache_expires_and_follows_the_password_hash(monkeypatch):
    calls = _counting(monkeypatch)
    store = UserStore({"ann": User("ann", hash_password("right"), "read")})
    assert store.check("ann", "right") is not None
    store._users["ann"] = User("ann", hash_password("other"), "read")  # password changed
    assert store.check("ann", "right") is None
    monkeypatch.setattr(UserStore, "VERIFIED_TTL", -1.0)  # remembered entries expire at once
    assert store.check("ann", "other") is not None
    assert store.check("ann", "other") is not None
    assert len(calls) == 4
