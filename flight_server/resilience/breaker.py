"""Circuit breaker over the server's own faults (database I/O, disk full, engine faults), never users' queries."""

from __future__ import annotations

import threading
import time
from collections import deque

import pyarrow.flight as flight

from ..engine.errors import UnavailableError, is_server_fault

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def is_infrastructure_failure(exc: BaseException) -> bool:
    """Only the server's own faults count (engine/errors.py decides): I/O on the database file or WAL, a full
    disk, DuckDB INTERNAL/FATAL errors, an invalidated database. A client's mistake or a user query's own
    failure (bad SQL, a missing file, out of memory, an interrupt) never does."""
    if isinstance(exc, NotImplementedError):
        return False
    if isinstance(exc, flight.FlightError):  # already mapped: only INTERNAL is the server's
        return isinstance(exc, flight.FlightInternalError)
    return is_server_fault(exc)


class CircuitBreaker:
    """Opens after `threshold` infrastructure failures within `window` seconds; after `reset_timeout`
    one probe is let through (half-open); its success closes the breaker, its failure reopens it."""

    def __init__(self, threshold: int, window: float, reset_timeout: float, clock=time.monotonic):
        self.threshold = threshold
        self.window = window
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self.state = CLOSED
        self.opened_at = 0.0
        self.last_transition = time.time()
        self._probe_out = False
        self.successes = 0
        self.total_failures = 0

    def before(self) -> None:
        """Raises UnavailableError while open; in half-open lets exactly one probe through."""
        with self._lock:
            if self.state == OPEN:
                wait = self.opened_at + self.reset_timeout - self._clock()
                if wait > 0:
                    raise UnavailableError(
                        f"circuit breaker is open after repeated engine failures; next trial in {wait:.0f}s")
                self._transition(HALF_OPEN)
            if self.state == HALF_OPEN:
                if self._probe_out:
                    raise UnavailableError("circuit breaker is half-open; a trial request is in progress")
                self._probe_out = True

    def abandon_probe(self) -> None:
        """The request let through by before() never ran (refused elsewhere): allow another probe."""
        with self._lock:
            self._probe_out = False

    def record_success(self) -> None:
        with self._lock:
            self.successes += 1
            if self.state == HALF_OPEN:
                self._probe_out = False
                self._failures.clear()
                self._transition(CLOSED)

    def record_failure(self, exc: BaseException) -> None:
        if not is_infrastructure_failure(exc):
            self.record_success()
            return
        with self._lock:
            now = self._clock()
            self.total_failures += 1
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.window:
                self._failures.popleft()
            if self.state == HALF_OPEN or (self.state == CLOSED and len(self._failures) >= self.threshold):
                self._probe_out = False
                self.opened_at = now
                self._transition(OPEN)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._probe_out = False
            self._transition(CLOSED)

    def _transition(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.last_transition = time.time()

    def stats(self) -> dict[str, object]:
        with self._lock:
            now = self._clock()
            recent = sum(1 for t in self._failures if now - t <= self.window)
            total = self.successes + self.total_failures
            return {
                "state": self.state,
                "failure_count": recent,
                "total_failures": self.total_failures,
                "success_rate": round(self.successes / total, 4) if total else 1.0,
                "last_transition": self.last_transition,
                "seconds_until_trial": max(0.0, self.opened_at + self.reset_timeout - now)
                if self.state == OPEN else 0.0,
            }
