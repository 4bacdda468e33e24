"""The bounded pool of client sessions: at most N live sessions, each holding one DuckDB connection, at most M of
them per user; idle ones expire (rolling back what they left open), and so do sessions idle inside a
transaction and sessions whose client connection is gone."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import duckdb

from . import statements
from .errors import InternalError, UnavailableError
from .session import Session
from .spill import SpillSpace

# A session whose client connections are all gone is reclaimed once it has been idle this long (a client that
# reconnects at once keeps it). The connection table is read at most once per GONE_SCAN seconds.
GONE_GRACE = 1.0
GONE_SCAN = 1.0


class SessionPool:
    """At most `max_sessions` live sessions, each owning one DuckDB connection; idle ones expire."""

    def __init__(self, connect: Callable[[], duckdb.DuckDBPyConnection], max_sessions: int,
                 idle_timeout: float, max_prepared: int = 256,
                 parse: Callable[[str], Sequence[duckdb.Statement]] | None = None,
                 max_sessions_per_user: int = 0, idle_in_transaction_timeout: float = 0.0,
                 spill: SpillSpace | None = None, max_parked: int = 16):
        self._connect = connect
        self._parse = parse
        self.parse_cache = statements.ParseCache(parse) if parse is not None else None
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.max_prepared = max_prepared
        self.max_sessions_per_user = max_sessions_per_user  # 0: no per-user cap
        self.idle_in_transaction_timeout = idle_in_transaction_timeout  # 0: never
        self.spill = spill
        self.max_parked = max_parked
        # Which client connections are open now (names as given to get(); None: cannot tell). Set by the
        # service, which knows the transport.
        self.live_peers: Callable[[], set[str] | None] | None = None
        self.reclaimed: Counter[str] = Counter()  # sessions closed by the pool, by reason
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        self._reaper = threading.Thread(target=self._reap_loop, name="session-reaper", daemon=True)
        self._reaper.start()

    def get(self, key: str, authorizer: object | None = None, owner: str = "", peer: str | None = None) -> Session:
        """The session for a client key, created (with a fresh connection) on first use. `owner` names the
        user the per-user cap counts; `peer` the client connection making this call."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and not session.closed:
                session.touch()
                if peer:
                    session.peers[peer] = session.last_used
                return session
            if len(self._sessions) >= self.max_sessions:
                self._expire_locked(time.monotonic())
            if len(self._sessions) >= self.max_sessions and self.max_sessions_per_user:
                self._reclaim_over_cap(owner)
            if len(self._sessions) >= self.max_sessions:
                raise UnavailableError(
                    f"session limit reached: {len(self._sessions)} of {self.max_sessions} connections in use "
                    "(raise --pool-size or close idle clients)")
            try:
                conn = self._connect()
            except Exception as exc:
                raise InternalError(f"could not open a DuckDB connection: {exc}") from None
            session = Session(session_id=f"s{next(self._ids)}", conn=conn, max_prepared=self.max_prepared,
                              authorizer=authorizer, parser=self._parse, parse_cache=self.parse_cache, owner=owner,
                              max_parked=self.max_parked, spill_space=self.spill)
            if peer:
                session.peers[peer] = session.last_used
            self._sessions[key] = session
            return session

    def _reclaim_over_cap(self, owner: str) -> None:
        """The pool is full and `owner` needs a session: the oldest idle session (one outside a transaction
        first) of a user over the per-user cap is closed. A user may hold more sessions than the cap while the
        pool has room. UnavailableError when `owner` is at its cap and nothing could be reclaimed."""
        cap = self.max_sessions_per_user
        counts = Counter(s.owner for s in self._sessions.values())
        over = [(key, s) for key, s in self._sessions.items() if counts[s.owner] > cap]
        over.sort(key=lambda item: (item[1].in_transaction, item[1].last_used))
        for key, session in over:
            if self._close_if_idle_locked(key, session, "user session cap"):
                return
        if counts[owner] >= cap:
            raise UnavailableError(
                f"user {owner!r} has {counts[owner]} sessions open (max_sessions_per_user={cap}) and none is "
                "idle; close a connection or wait for one to finish")

    def _close_if_idle_locked(self, key: str, session: Session, reason: str) -> bool:
        """Closes a session nobody is using right now (not running; not sending a result, unless it sat idle
        past the session idle timeout: its reader stopped reading that long ago); True if it was closed."""
        if not session.lock.acquire(blocking=False):
            return False
        try:
            if session.running is not None or (session.streaming and reason != "idle"):
                return False
            del self._sessions[key]
            session.close()
            self.reclaimed[reason] += 1
            return True
        finally:
            session.lock.release()

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

    def shutdown(self, timeout: float | None = None) -> int:
        """Interrupts and closes every session; returns how many were left open. A session still busy after
        `timeout` seconds (its call waits on a client that neither sends nor reads) is left to the process
        exit: DuckDB never made its open transaction durable, so it is rolled back all the same."""
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.interrupt()
        deadline = None if timeout is None else time.monotonic() + timeout
        left_open = 0
        for session in sessions:
            wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            if not session.lock.acquire(timeout=wait):
                left_open += 1
                continue
            try:
                session.close()
            finally:
                session.lock.release()
        return left_open

    def _reap_loop(self) -> None:
        timeouts = [t for t in (self.idle_timeout, self.idle_in_transaction_timeout) if t > 0]
        interval = max(0.1, min([0.5] + [t / 4 for t in timeouts]))
        last_scan = 0.0
        while not self._stop.wait(interval):
            scanned = time.monotonic()
            live = None
            if self.live_peers is not None and scanned - last_scan >= GONE_SCAN and self._may_be_gone(scanned):
                last_scan = scanned
                try:
                    live = self.live_peers()
                except Exception:
                    live = None
            with self._lock:
                self._expire_locked(time.monotonic(), live, scanned)

    def _may_be_gone(self, now: float) -> bool:
        with self._lock:
            return any(s.peers and now - s.last_used > GONE_GRACE for s in self._sessions.values())

    def _expire_locked(self, now: float, live: set[str] | None = None, scanned: float = 0.0) -> None:
        """Closes sessions idle past the idle timeout, idle inside a transaction past the idle-in-transaction
        timeout, or whose client connections (seen before the scan at `scanned`) are all gone."""
        for key, session in list(self._sessions.items()):
            idle = now - session.last_used
            reason = None
            if self.idle_timeout > 0 and idle > self.idle_timeout:
                reason = "idle"
            elif session.in_transaction and 0 < self.idle_in_transaction_timeout < idle:
                reason = "idle in transaction"
            elif live is not None and session.peers and idle > GONE_GRACE:
                alive = {peer: seen for peer, seen in session.peers.items() if peer in live or seen >= scanned}
                if alive:
                    session.peers = alive
                else:
                    reason = "client gone"
            if reason is not None:
                self._close_if_idle_locked(key, session, reason)
            elif 0 < self.idle_in_transaction_timeout < idle and session.lock.acquire(blocking=False):
                try:
                    session.end_idle_snapshot()
                finally:
                    session.lock.release()

