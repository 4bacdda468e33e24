"""Slows down repeated failed logins from one user or one peer (exponential delay, capped)."""

from __future__ import annotations

import threading
import time


class LoginThrottle:
    def __init__(self, free_attempts: int = 3, max_delay: float = 5.0, forget_after: float = 300.0):
        self.free_attempts = free_attempts
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def delay_for(self, *keys: str) -> float:
        now = time.monotonic()
        worst = 0
        with self._lock:
            for key in keys:
                count, last = self._failures.get(key, (0, 0.0))
                if now - last > self.forget_after:
                    count = 0
                worst = max(worst, count)
        over = worst - self.free_attempts
        return 0.0 if over < 0 else min(self.max_delay, 0.25 * (2 ** over))

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                count, last = self._failures.get(key, (0, 0.0))
                self._failures[key] = (count + 1 if now - last <= self.forget_after else 1, now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
