"""Slows down repeated failed logins for one user name: the answer to a failed attempt is delayed (exponentially,
capped); a correct password is never delayed, so failures caused by someone else cannot lock the real user out.

pyarrow does not show the client's address to login code (the middleware's call info names only the method and
the Handshake auth handler gets no call context), so failures are counted per user name. Memory stays bounded:
names are kept as short digests and the least recently failed entries are evicted beyond ``max_entries``."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    def __init__(self, free_attempts: int = 3, base_delay: float = 0.25, max_delay: float = 5.0,
                 forget_after: float = 300.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.free_attempts = free_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_entries = max_entries
        self._clock = clock
        self._failures: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # digest -> (count, last failure)
        self._lock = threading.Lock()

    def failed(self, name: str) -> float:
        """Counts a failed login for ``name``; returns the seconds to wait before answering it."""
        key = _digest(name)
        now = self._clock()
        with self._lock:
            count, last = self._failures.pop(key, (0, now))
            count = count + 1 if now - last <= self.forget_after else 1
            self._failures[key] = (count, now)  # (re)inserted last: the order is oldest failure first
            while len(self._failures) > self.max_entries or \
                    now - next(iter(self._failures.values()))[1] > self.forget_after:
                self._failures.popitem(last=False)  # the oldest: evicted beyond the cap, or forgotten
        over = count - self.free_attempts - 1
        return 0.0 if over < 0 else min(self.max_delay, self.base_delay * (2 ** min(over, 32)))

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(_digest(name), None)

    def __len__(self) -> int:
        return len(self._failures)


def _digest(name: str) -> bytes:
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
