"""Admission control: a cap on statements executing at once, with a bounded, time-limited wait queue."""

from __future__ import annotations

import contextlib
import threading
import time

from ..engine.errors import UnavailableError


class AdmissionController:
    """Lets at most `max_running` statements execute; up to `max_queued` more wait up to `max_wait` seconds."""

    def __init__(self, max_running: int, max_queued: int, max_wait: float):
        self.max_running = max_running
        self.max_queued = max_queued
        self.max_wait = max_wait
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

    def acquire(self) -> None:
        started = time.monotonic()
        with self._cond:
            if self.draining:
                raise UnavailableError("server is shutting down and accepts no new statements")
            if self.running >= self.max_running:
                if self.queued >= self.max_queued:
                    self.rejected += 1
                    raise UnavailableError(
                        f"admission limit reached: {self.running} statements running (max_concurrent_statements="
                        f"{self.max_running}) and {self.queued} waiting (max_queued_statements={self.max_queued})")
                self.queued += 1
                try:
                    deadline = started + self.max_wait
                    while self.running >= self.max_running and not self.draining:
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
            self.running += 1
            self.admitted += 1
            self.total_wait += time.monotonic() - started

    def release(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify()

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
