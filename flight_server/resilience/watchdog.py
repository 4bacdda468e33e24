"""Interrupts DuckDB work whose client has gone (cancel, deadline, disconnect) or that ran past its timeout, and
polls streaming calls (a stalled reader gives up its execution slot)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Watch:
    is_cancelled: Callable[[], bool]
    interrupt: Callable[[], None]
    deadline: float | None
    fired: bool = False
    reason: str = ""
    poll: Callable[[], None] | None = None  # called every interval while watched (must not block)


class Watchdog:
    """One thread polls every running call (every `interval` seconds) and interrupts the ones to stop."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._watches: dict[int, _Watch] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self.interrupts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def watch(self, is_cancelled: Callable[[], bool], interrupt: Callable[[], None],
              timeout: float | None) -> int:
        deadline = time.monotonic() + timeout if timeout else None
        token = next(self._ids)
        with self._lock:
            self._watches[token] = _Watch(is_cancelled, interrupt, deadline)
        return token

    def poll(self, token: int, check: Callable[[], None]) -> None:
        """Also calls `check` every interval while `token` is watched."""
        with self._lock:
            watch = self._watches.get(token)
            if watch is not None:
                watch.poll = check

    def unwatch(self, token: int) -> str:
        """Stops watching; returns why the call was interrupted ('' if it was not)."""
        with self._lock:
            watch = self._watches.pop(token, None)
        return watch.reason if watch else ""

    def interrupt_all(self, reason: str = "shutdown") -> None:
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            self._fire(watch, reason)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            due: list[tuple[_Watch, str]] = []
            checks: list[Callable[[], None]] = []
            # Poll under the lock: unwatch() (at call completion) then cannot race a poll of a
            # call context that gRPC is about to free.
            with self._lock:
                for watch in self._watches.values():
                    if watch.poll is not None:
                        checks.append(watch.poll)
                    if watch.fired:
                        continue
                    if watch.deadline is not None and now > watch.deadline:
                        due.append((watch, "timeout"))
                        continue
                    try:
                        if watch.is_cancelled():
                            due.append((watch, "cancelled"))
                    except Exception:
                        pass
            for watch, reason in due:
                self._fire(watch, reason)
            for check in checks:
                try:
                    check()
                except Exception:
                    pass

    def _fire(self, watch: _Watch, reason: str) -> None:
        watch.fired = True
        watch.reason = reason
        self.interrupts += 1
        try:
            watch.interrupt()
        except Exception:
            pass
