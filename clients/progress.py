"""A one-line progress display for loads on a terminal (rows, MB, MB/s, and a bar when the total is known)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
REFRESH_S = 0.1


class Progress:
    """Counts rows and bytes; redraws one stderr line at most every REFRESH_S when the stream is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool | None = None):
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.rows = 0
        self.bytes = 0
        self.label = ""
        self.file_rows = 0
        self.file_total: int | None = None
        self._drawn = 0.0

    def start_file(self, label: str, total_rows: int | None) -> None:
        self.label, self.file_rows, self.file_total = label, 0, total_rows
        self._draw(force=True)

    def update(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.file_rows += rows
        self.bytes += nbytes
        self._draw()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def finish(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        seconds = max(self.elapsed(), 1e-9)
        mb = self.bytes / 1e6
        text = f"{self.label}  total {self.rows:,} rows  {mb:,.1f} MB  {mb / seconds:,.1f} MB/s  {seconds:.1f} s"
        if self.file_total:
            done = min(self.file_rows / self.file_total, 1.0)
            filled = int(done * BAR_WIDTH)
            text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} {text}"
        return text

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < REFRESH_S):
            return
        self._drawn = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
