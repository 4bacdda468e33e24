"""The bounded pool of client sessions: at most N live sessions, each holding one DuckDB connection; idle ones
expire (rolling back what they left open)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

import duckdb

from .errors import InternalError, UnavailableError
from .session import Session


class SessionPool:
    """At most `max_sessions` live sessions, each owning one DuckDB connection; idle ones expire."""

    def __init__(self, connect: Callable[[], duckdb.DuckDBPyConnection], max_sessions: int,
                 idle_timeout: float, max_prepared: int = 256,
                 parse: Callable[[str], Sequence[duckdb.Statement]] | None = None):
        self._connect = connect
        self._parse = parse
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.max_prepared = max_prepared
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        if self.idle_timeout > 0:
            self._reaper = threading.Thread(target=self._reap_loop, name="session-reaper", daemon=True)
            self._reaper.start()

    def get(self, key: str, authorizer: object | None = None) -> Session:
        """The session for a client key, created (with a fresh connection) on first use."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and not session.closed:
                session.touch()
                return session
            if len(self._sessions) >= self.max_sessions:
                self._expire_locked(time.monotonic())
            if len(self._sessions) >= self.max_sessions:
                raise UnavailableError(
                    f"session limit reached: {len(self._sessions)} of {self.max_sessions} connections in use "
                    "(raise --pool-size or close idle clients)")
            try:
                conn = self._connect()
            except Exception as exc:
                raise InternalError(f"could not open a DuckDB connection: {exc}") from None
            session = Session(session_id=f"s{next(self._ids)}", conn=conn, max_prepared=self.max_prepared,
                              authorizer=authorizer, parser=self._parse)
            self._sessions[key] = session
            return session

    def find(self, key: str) -> Session | None:
        with self._lock:
            return self._sessions.get(key)

    def close(self, key: str) -> bool:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is None:
            return False
        session.close()
        return True

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def stats(self) -> dict[str, int]:
        with self._lock:
            in_use = len(self._sessions)
        return {"total_connections": in_use, "available_connections": self.max_sessions - in_use,
                "max_connections": self.max_sessions}

    def reset(self) -> int:
        """Closes every session (their connections belong to a database instance being replaced); clients
        get new sessions on their next call. Returns how many were closed."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.interrupt()
            session.close()
        return len(sessions)

    def shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.interrupt()
            session.close()

    def _reap_loop(self) -> None:
        interval = max(0.5, min(self.idle_timeout / 4, 30.0))
        while not self._stop.wait(interval):
            with self._lock:
                self._expire_locked(time.monotonic())

    def _expire_locked(self, now: float) -> None:
        if self.idle_timeout <= 0:
            return
        for key, session in list(self._sessions.items()):
            if now - session.last_used > self.idle_timeout and session.lock.acquire(blocking=False):
                try:
                    del self._sessions[key]
                    session.close()
                finally:
                    session.lock.release()

