"""Admission control: a cap on statements executing at once, with a bounded, time-limited wait queue, and a
share of both per user so one account cannot fill them."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter

from ..engine.errors import UnavailableError


class AdmissionController:
    """Lets at most `max_running` statements execute; up to `max_queued` more wait up to `max_wait` seconds.
    One user may have at most `per_user` running and `per_user` waiting (0: no per-user cap)."""

    def __init__(self, max_running: int, max_queued: int, max_wait: float, per_user: int = 0):
        self.max_running = max_running
        self.max_queued = max_queued
        self.max_wait = max_wait
        self.per_user = per_user
        self._user_running: Counter[str] = Counter()
        self._user_queued: Counter[str] = Counter()
        self._cond = threading.Condition()
        self.running = 0
        self.queued = 0
        self.rejected = 0
        self.total_wait = 0.0
        self.admitted = 0
        self.draining = False

    @contextlib.contextmanager
    def slot(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def lease(self, user: str = "") -> Lease:
        """A slot for one statement of `user` (waits in the queue if need be)."""
        lease = Lease(self, user)
        lease.hold()
        return lease

    def _full_for(self, user: str) -> bool:
        return self.running >= self.max_running or (
            bool(user) and bool(self.per_user) and self._user_running[user] >= self.per_user)

    def acquire(self, user: str = "") -> None:
        started = time.monotonic()
        with self._cond:
            if self.draining:
                raise UnavailableError("server is shutting down and accepts no new statements")
            if self._full_for(user):
                if user and self.per_user and self._user_queued[user] >= self.per_user:
                    self.rejected += 1
                    raise UnavailableError(
                        f"user {user!r} already has {self._user_running[user]} statements running and "
                        f"{self._user_queued[user]} waiting (max_statements_per_user={self.per_user})")
                if self.queued >= self.max_queued:
                    self.rejected += 1
                    raise UnavailableError(
                        f"admission limit reached: {self.running} statements running (max_concurrent_statements="
                        f"{self.max_running}) and {self.queued} waiting (max_queued_statements={self.max_queued})")
                self.queued += 1
                self._user_queued[user] += 1
                try:
                    deadline = started + self.max_wait
                    while self._full_for(user) and not self.draining:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            self.rejected += 1
                            raise UnavailableError(
                                f"admission wait exceeded {self.max_wait:g}s (queue_timeout): "
                                f"{self.running} statements running, {self.queued} waiting")
                        self._cond.wait(remaining)
                    if self.draining:
                        raise UnavailableError("server is shutting down and accepts no new statements")
                finally:
                    self.queued -= 1
                    self._user_queued[user] -= 1
                    if not self._user_queued[user]:
                        del self._user_queued[user]
            self.running += 1
            self._user_running[user] += 1
            self.admitted += 1
            self.total_wait += time.monotonic() - started

    def release(self, user: str = "") -> None:
        with self._cond:
            self.running -= 1
            self._user_running[user] -= 1
            if not self._user_running[user]:
                del self._user_running[user]
            # Waiters wait for different things (a free slot, or a slot under their user's cap).
            self._cond.notify_all()

    def drain(self) -> None:
        with self._cond:
            self.draining = True
            self._cond.notify_all()

    def stats(self) -> dict[str, float]:
        with self._cond:
            return {
                "running": self.running,
                "queued": self.queued,
                "max_running": self.max_running,
                "max_queued": self.max_queued,
                "rejected": self.rejected,
                "avg_wait_seconds": (self.total_wait / self.admitted) if self.admitted else 0.0,
            }


class Lease:
    """One statement's admission slot. Released at most once however many paths end the statement; a stream
    that gave its slot up while its client stalled takes one again (hold) before DuckDB works for it again."""

    def __init__(self, controller: AdmissionController, user: str):
        self._controller = controller
        self.user = user
        self._lock = threading.Lock()
        self.held = False

    def hold(self) -> None:
        """Takes a slot unless this lease holds one (may wait in the queue; raises UnavailableError)."""
        with self._lock:
            if self.held:
                return
        self._controller.acquire(self.user)  # not under the lock: release() must never wait for the queue
        with self._lock:
            extra, self.held = self.held, True
        if extra:
            self._controller.release(self.user)

    def release(self) -> None:
        with self._lock:
            if not self.held:
                return
            self.held = False
        self._controller.release(self.user)
