"""Running statistics of statements (counts, durations, rows) for the `statistics` action and metrics."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class StatementStats:
    """Counters updated once per statement; cheap enough for the hot path (one lock, a few adds)."""

    recent_limit: int = 100
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    total_seconds: float = 0.0
    over_1s: int = 0
    over_5s: int = 0
    rows_written: int = 0
    rows_streamed: int = 0
    bytes_streamed: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=100))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, ok: bool, rows_written: int = 0) -> None:
        with self._lock:
            self.total += 1
            if ok:
                self.succeeded += 1
            else:
                self.failed += 1
            self.total_seconds += seconds
            self.over_1s += seconds > 1
            self.over_5s += seconds > 5
            self.rows_written += max(rows_written, 0)
            self.recent.append(round(seconds, 6))

    def streamed(self, rows: int, nbytes: int) -> None:
        with self._lock:
            self.rows_streamed += rows
            self.bytes_streamed += nbytes

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "total_queries": self.total,
                "successful_queries": self.succeeded,
                "failed_queries": self.failed,
                "success_rate": round(self.succeeded / self.total, 4) if self.total else 1.0,
                "avg_query_time": round(self.total_seconds / self.total, 6) if self.total else 0.0,
                "recent_query_times": list(self.recent),
                "queries_over_1s": self.over_1s,
                "queries_over_5s": self.over_5s,
                "rows_written": self.rows_written,
                "rows_streamed": self.rows_streamed,
                "bytes_streamed": self.bytes_streamed,
            }
