"""Brings the database back after DuckDB invalidated it (a fatal error: disk full at checkpoint, an I/O failure
on the database file), without a manual restart.

DuckDB refuses every statement of an invalidated instance ("database has been invalidated ... must be
restarted"); the file itself and its WAL keep every committed transaction. So on the first fatal error seen,
a background thread closes all sessions (their connections belong to the dead instance) and reopens the
file, retrying with back-off while it cannot (the disk is still full). Until then statements are refused
with UNAVAILABLE naming the cause, and /health/live and /health/ready answer 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from ..engine.errors import UnavailableError, is_fatal

log = structlog.get_logger("flight_server")


class DatabaseRecovery:
    def __init__(self, database, pool, on_recovered: Callable[[], None] | None = None,
                 first_retry: float = 0.5, max_retry: float = 10.0):
        self.database = database
        self.pool = pool
        self.on_recovered = on_recovered
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="database-recovery", daemon=True)
        self.attempts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def broken(self) -> str | None:
        """The fatal error the database is recovering from, or None when it serves."""
        return self.database.invalidated

    def report(self, exc: BaseException | None) -> None:
        """Called with every error a call ended with; a fatal one starts the recovery."""
        if exc is None or not is_fatal(exc):
            return
        first = self.database.invalidated is None
        self.database.mark_invalidated(str(getattr(exc, "detail", None) or exc).splitlines()[0][:300])
        if first:
            log.error("database invalidated by a fatal error; reopening it", error=self.database.invalidated)
        self._wake.set()

    def check(self) -> None:
        """Raises UNAVAILABLE while the database is being reopened."""
        if self.database.invalidated is not None:
            raise UnavailableError("the database is being reopened after a fatal engine error (e.g. its disk "
                                   "was full); retry shortly")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            delay = self.first_retry
            while self.database.invalidated is not None and not self._stop.is_set():
                self.attempts += 1
                closed = self.pool.reset()
                try:
                    self.database.reopen()
                except Exception as exc:  # the file cannot be opened yet: try again later
                    log.warning("database reopen failed; retrying", error=str(exc).splitlines()[0][:300],
                                retry_in=delay, attempt=self.attempts)
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self.max_retry)
                    continue
                log.warning("database reopened after a fatal error", sessions_closed=closed,
                            attempt=self.attempts)
                if self.on_recovered is not None:
                    self.on_recovered()
