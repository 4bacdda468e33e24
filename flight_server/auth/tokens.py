"""Signed, expiring bearer tokens carrying user, role, session and a fingerprint of the user's entry.

A token is refused once it expired, its session was closed (revocations are kept in a file in the data folder,
so they survive a restart), its user is gone from the user store, the user's role is not the token's role any
more, or the user's password hash changed (which also covers a user removed and added again under the same
name)."""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("flight_server")


class TokenError(Exception):
    """The token is malformed, forged, expired or revoked (the message says which, without the token)."""


@dataclass(frozen=True)
class Claims:
    user: str
    role: str
    session: str
    expires: float


class TokenSigner:
    # Tokens whose signature and payload were checked, with their claims: a client sends its token on every
    # call (ADBC: about six per connect), and decoding it again costs more than the checks that must run each
    # time (expiry, revocation, the user's entry), which still do. Oldest first out.
    DECODED_MAX = 1024

    def __init__(self, secret: bytes | None, ttl: float, users=None, revocations: RevokedSessions | None = None):
        self._secret = secret or secrets.token_bytes(32)
        self.ttl = ttl
        self._users = users  # a UserStore; without one, tokens are not checked against the users
        self._revoked = revocations if revocations is not None else RevokedSessions(None)
        self._decoded: dict[str, tuple[Claims, str]] = {}
        self._decoded_lock = threading.Lock()
        self._entry_version = functools.lru_cache(maxsize=1024)(self._compute_version)

    def issue(self, user: str, role: str, session: str | None = None) -> str:
        now = time.time()
        version = self._version(user)
        claims = {"sub": user, "role": role, "sid": session or secrets.token_urlsafe(12),
                  "exp": int(now + self.ttl), "iat": int(now), "ver": version}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        token = payload + "." + _b64(self._sign(payload))
        self._remember(token, Claims(user, role, claims["sid"], float(claims["exp"])), version)
        return token

    def verify(self, token: str) -> Claims:
        with self._decoded_lock:
            decoded = self._decoded.get(token)
        claims, version = decoded if decoded is not None else self._decode(token)
        if claims.expires < time.time():
            raise TokenError("token has expired; authenticate again")
        self.check_revoked(claims.session)
        if self._users is not None:
            user = self._users.get(claims.user)
            if user is None:
                raise TokenError("token's user no longer exists")
            if user.role != claims.role:
                raise TokenError("token's role is no longer the user's role; authenticate again")
            if not hmac.compare_digest(version, self._version(claims.user)):
                raise TokenError("token's user was changed (new password or re-created); authenticate again")
        return claims

    def _decode(self, token: str) -> tuple[Claims, str]:
        """Checks the signature and reads the claims (remembered when both are good)."""
        payload, _, signature = token.partition(".")
        try:
            expected = self._sign(payload)
            if not hmac.compare_digest(expected, _unb64(signature)):
                raise TokenError("token signature is invalid")
            data = json.loads(_unb64(payload))
            claims = Claims(data["sub"], data["role"], data["sid"], float(data["exp"]))
            version = str(data.get("ver", ""))
        except TokenError:
            raise
        except Exception:
            raise TokenError("token is malformed") from None
        self._remember(token, claims, version)
        return claims, version

    def _remember(self, token: str, claims: Claims, version: str) -> None:
        with self._decoded_lock:
            self._decoded[token] = (claims, version)
            if len(self._decoded) > self.DECODED_MAX:
                del self._decoded[next(iter(self._decoded))]

    def check_revoked(self, session: str) -> None:
        if session in self._revoked:
            raise TokenError("token's session was closed; authenticate again")

    def revoke(self, session: str, expires: float | None = None) -> None:
        """Refuses tokens naming ``session`` until all of them have expired: those this signer issued expire
        within the TTL, an external token at ``expires``."""
        self._revoked.add(session, max(time.time() + self.ttl, expires or 0.0))

    def close(self) -> None:
        """At shutdown: the revocations not yet fsync'd go to disk."""
        self._revoked.close()

    def _version(self, user: str) -> str:
        """Binds a token to the user's current entry: keyed by the signing key, so it reveals nothing."""
        entry = self._users.get(user) if self._users is not None else None
        if entry is None:
            return ""
        return self._entry_version(entry.name, entry.password_hash)

    def _compute_version(self, name: str, password_hash: str) -> str:
        material = f"{name}\0{password_hash}".encode()
        return _b64(hmac.new(self._secret, b"user-version\0" + material, hashlib.sha256).digest()[:12])

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()


class RevokedSessions:
    """Closed sessions, each kept until the last token naming it expires. With a path they are kept in a
    JSON-lines file too (mode 0600, one ``[session, until]`` line appended per revocation, loaded at start;
    a damaged line, e.g. one cut short, is skipped and the file rewritten at the next revocation); once it has
    grown to twice the entries live at the last clean-up, the file is rewritten with the live ones (temp file,
    fsync'd, then os.replace), so it stays bounded by the revocations of about one token lifetime.

    Durability: when add() returns, the line has been written to the file (the append handle stays open), so
    the revocation survives a crash or kill of the server process at once. It is fsync'd off the caller's
    path, by a timer at most SYNC_INTERVAL (1 s) later, and by close() (called at shutdown): a crash of the
    machine itself loses at most the revocations of the last second."""

    SYNC_INTERVAL = 1.0

    def __init__(self, path: str | None):
        self._path = path
        self._until: dict[str, float] = {}
        self._lines = 0  # revocations recorded since the last clean-up (the file's lines)
        self._clean_at = 64
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one fsync at a time: close() returns after one in flight ended
        self._fd: int | None = None  # the open append handle (None until the first append, after a rewrite)
        self._unsynced = False  # lines written since the last fsync
        self._folder_unsynced = False  # the file was created or replaced since the folder was last fsync'd
        self._timer: threading.Timer | None = None
        if path:
            self._load(path)

    def __contains__(self, session: str) -> bool:
        with self._lock:
            until = self._until.get(session)
        return until is not None and until >= time.time()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, session: str, until: float) -> None:
        with self._lock:
            self._until[session] = max(until, self._until.get(session, 0.0))
            self._lines += 1
            clean = self._lines >= self._clean_at
            if clean:  # drop expired entries; amortized over the revocations since the last clean-up
                now = time.time()
                self._until = {sid: end for sid, end in self._until.items() if end >= now}
                self._lines = len(self._until)
                self._clean_at = 2 * self._lines + 64
            if not self._path:
                return
            try:
                if clean:
                    self._rewrite(self._path)
                else:
                    self._append(self._path, session, self._until[session])
            except OSError as exc:
                self._clean_at = 0  # a line may be cut short: the next revocation rewrites the file
                log.error("could not save a revoked session; its tokens work again after a restart",
                          file=self._path, error=exc.strerror)

    def sync(self) -> None:
        """Fsyncs what was written (the timer calls this; so may anyone who needs it on disk now)."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            fd = os.dup(self._fd) if self._unsynced and self._fd is not None else None
            folder = self._folder_unsynced
            self._unsynced = self._folder_unsynced = False
        # Outside the lock, so add() never waits for the disk; the duplicate stays valid if a rewrite closes
        # the handle meanwhile (the rewritten file was fsync'd itself).
        try:
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if folder:
                _fsync_folder(self._path)
        except OSError as exc:
            log.error("could not fsync the revoked sessions file", file=self._path, error=exc.strerror)

    def close(self) -> None:
        """Fsyncs what is unsynced and closes the append handle (a later add() opens it again)."""
        self.sync()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _load(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except FileNotFoundError:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            except OSError:
                pass  # reported when a revocation cannot be saved
            return
        now = time.time()
        lines = text.splitlines()
        damaged = bool(text) and not text.endswith("\n")
        for line in lines:
            try:
                session, until = json.loads(line)
                until = float(until)
            except (ValueError, TypeError):
                damaged = True  # e.g. a line cut short by a crash while appending
                continue
            if until >= now and isinstance(session, str):
                self._until[session] = max(until, self._until.get(session, 0.0))
        self._lines = len(lines)
        # A damaged file is rewritten at the next revocation rather than appended to.
        self._clean_at = 0 if damaged else 2 * len(self._until) + 64

    def _append(self, path: str, session: str, until: float) -> None:
        """Under the lock: one write of one whole line to the open handle (O_APPEND), then the sync timer."""
        if self._fd is None:
            created = not os.path.exists(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._folder_unsynced = self._folder_unsynced or created
        line = (json.dumps([session, until]) + "\n").encode()
        if os.write(self._fd, line) != len(line):
            raise OSError(errno.ENOSPC, "short write")
        self._unsynced = True
        self._sync_later()

    def _rewrite(self, path: str) -> None:
        """Under the lock: the live entries into a temp file, fsync'd, then put in place of the file; the
        append handle of the old file is closed (the next append opens the new one)."""
        folder = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(prefix=".revoked-", dir=folder)  # created with mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps([sid, until]) + "\n" for sid, until in self._until.items())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._unsynced = False  # what the old handle wrote is in the rewritten file, which is on disk
        self._folder_unsynced = True  # the rename is, once the folder is fsync'd
        self._sync_later()

    def _sync_later(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.SYNC_INTERVAL, self.sync)
            self._timer.daemon = True
            self._timer.name = "revoked-sessions-sync"
            self._timer.start()


def _fsync_folder(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
